"""Tools the agent can call: packs of typed Python functions behind one validating registry.

``load_tools(cfg, run_dir)`` builds the registry a run uses, from ``cfg.tools.packs``. The same
registry serves the teacher while traces are recorded, the student in eval and chat, and any code
that wants to call a domain tool directly::

    tools = load_tools(cfg, run_dir)
    tools.call("calculator", {"expression": "21 * 9000 / 30 * 5"}).content

The packs are domain packs (agentdistill.domains): a built-in name (a folder or module of agentdistill/domains/) or the
user's own module or ``.py`` file with ``PACK``, ``TOOLS`` or ``tools(cfg, run_dir)``.
"""

from __future__ import annotations

from pathlib import Path

from agentdistill.config import RunConfig
from agentdistill.domains import load_packs
from agentdistill.errors import UserError
from agentdistill.tools.registry import ToolRegistry, ToolResult
from agentdistill.tools.spec import Tool, tool

__all__ = ["Tool", "ToolRegistry", "ToolResult", "load_tools", "tool"]


def load_tools(cfg: RunConfig, run_dir: Path | None) -> ToolRegistry:
    """The registry of every tool in ``cfg.tools.packs``; ``run_dir`` holds the corpus the lookups read."""
    registry = ToolRegistry(timeout_s=cfg.tools.timeout_s)
    for pack in load_packs(cfg):
        for t in pack.tools(cfg, run_dir):
            try:
                registry.add(t)
            except (ValueError, TypeError) as e:
                raise UserError(f"tool pack {pack.name!r}: {e}", hint="Every tool needs a unique name, type hints "
                                "and a docstring.") from e
    return registry
