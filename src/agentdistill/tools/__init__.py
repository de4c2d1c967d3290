"""Tools the agent can call: packs of typed Python functions behind one validating registry.

``load_tools(cfg, run_dir)`` builds the registry a run uses, from ``cfg.tools.packs``. The same
registry serves the teacher while traces are recorded, the student in eval and chat, and any code
that wants to call a domain tool directly::

    tools = load_tools(cfg, run_dir)
    tools.call("calculate_gratuity", {"monthly_basic_salary": 9000, "years_of_service": 7}).content

A pack is a built-in name ("uae_labour", "general") or the user's own Python tools as
"package.module" or "path/to/tools.py": a module with ``TOOLS`` (a list of functions or Tools) or
``tools(cfg, run_dir) -> list``.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentdistill.config import RunConfig
from agentdistill.errors import UserError
from agentdistill.tools.registry import ToolRegistry, ToolResult
from agentdistill.tools.spec import Tool, tool

__all__ = ["BUILTIN_PACKS", "Tool", "ToolRegistry", "ToolResult", "load_tools", "tool"]


def _uae_labour(cfg: RunConfig, run_dir: Path | None) -> list[Any]:
    from agentdistill.tools import uae_labour

    return uae_labour.tools(cfg, run_dir)


def _general(cfg: RunConfig, run_dir: Path | None) -> list[Any]:
    from agentdistill.tools.general import TOOLS

    return list(TOOLS)


BUILTIN_PACKS: dict[str, Callable[[RunConfig, Path | None], list[Any]]] = {
    "uae_labour": _uae_labour,
    "general": _general,
}


def _import_pack(spec: str) -> Any:
    try:
        if spec.endswith(".py"):
            path = Path(spec).expanduser().resolve()
            module_spec = importlib.util.spec_from_file_location(f"agentdistill_user_tools_{path.stem}", path)
            if module_spec is None or module_spec.loader is None or not path.exists():
                raise FileNotFoundError(path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            return module
        return importlib.import_module(spec)
    except (ImportError, FileNotFoundError) as e:
        raise UserError(
            f"tool pack {spec!r} is neither a built-in pack ({', '.join(BUILTIN_PACKS)}) nor an importable "
            f"module or .py file ({e}).",
            hint="Fix tools.packs in the run config.",
        ) from e


def _pack_tools(spec: str, cfg: RunConfig, run_dir: Path | None) -> list[Any]:
    if spec in BUILTIN_PACKS:
        return BUILTIN_PACKS[spec](cfg, run_dir)
    module = _import_pack(spec)
    if hasattr(module, "tools") and callable(module.tools):
        return list(module.tools(cfg, run_dir))
    if hasattr(module, "TOOLS"):
        return list(module.TOOLS)
    raise UserError(f"tool pack {spec!r} defines neither TOOLS nor tools(cfg, run_dir).",
                    hint="Add TOOLS = [my_function, ...] to the module (typed functions with docstrings).")


def load_tools(cfg: RunConfig, run_dir: Path | None) -> ToolRegistry:
    """The registry of every tool in ``cfg.tools.packs``; ``run_dir`` holds the corpus the lookups read."""
    registry = ToolRegistry(timeout_s=cfg.tools.timeout_s)
    for spec in cfg.tools.packs:
        for t in _pack_tools(spec, cfg, run_dir):
            try:
                registry.add(t)
            except (ValueError, TypeError) as e:
                raise UserError(f"tool pack {spec!r}: {e}", hint="Every tool needs a unique name, type hints "
                                "and a docstring.") from e
    return registry
