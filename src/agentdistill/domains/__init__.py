"""Domain packs: everything one domain adds to the generic core, behind one small interface.

The core (corpus, agent, llm, synth, train, evaluate) names no domain. A pack brings:

- ``tools(cfg, run_dir)``: its typed Python tools (the corpus search tools included, if it has any);
- ``personas``: who asks its questions, used when a config names no personas file;
- optionally ``offline_teacher(run_dir, cfg)``: a model-free teacher (an ``LLM``) that answers its
  questions through its tools, and ``offline_questions(chunks, clusters, personas, tools, cfg)``: the
  question writer that teacher is made for, so ``teacher.kind: rule`` runs without any LLM;
- optionally ``spec_questions(rows, chunks, tools, family)``: questions written by hand in the pack's row
  format, with answer facts from its tools (``questions.seed_questions`` trains on them);
- optionally ``warm_up(tools)``: opens what the first tool call would (an index, an embedder), so the
  first recorded call is not timed with it;
- optionally ``citations``: how its documents are cited and their sections headed (a ``CitationStyle``,
  agentdistill.citations); a run whose packs bring none uses the generic one (section paths, Markdown
  headings). ``citation_style(cfg)`` is the run's, for the generic code that reads or checks citations.
- optionally ``currencies``: how its documents, tools and askers write its currency beyond the generic spellings
  (agentdistill.currencies), each spelling lower-case to the currency's code (``{"fr": "CHF", "francs": "CHF"}``).
  ``currency_aliases(cfg)`` is the run's, for the generic code that reads amounts (the answer checker, the
  calculator, the schema question writer): a spelling is a currency only in a run whose packs declare it.

``cfg.tools.packs`` names the packs a run uses: a built-in name (``BUILTIN_PACKS``), or an importable
module or ``.py`` file that defines ``PACK`` (a ``DomainPack``), or only ``TOOLS`` / ``tools(cfg, run_dir)``
(a tools-only pack: the simplest way to bring your own functions).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentdistill.citations import GENERIC, CitationStyle
from agentdistill.config import RunConfig
from agentdistill.errors import UserError

# Built-in packs: every module and package in this folder, by name (imported only when a run names one).
BUILTIN_PACKS: dict[str, str] = {m.name: f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__)}


@dataclass(frozen=True)
class DomainPack:
    name: str
    tools: Callable[[RunConfig, Path | None], list[Any]]
    topic: str = ""  # what the domain is about, as the agent says it ("the tax rules of ...")
    personas: list[dict[str, Any]] = field(default_factory=list)
    offline_teacher: Callable[[Path | None, RunConfig], Any] | None = None
    offline_questions: Callable[..., tuple[list[Any], dict[str, int]]] | None = None
    # ``spec_questions(rows, chunks, tools, family)``: questions written by hand (the pack's row format), with
    # their answer facts from the tools; a row it cannot use raises ValueError naming it
    spec_questions: Callable[..., list[Any]] | None = None
    warm_up: Callable[[Any], None] | None = None
    citations: CitationStyle | None = None
    currencies: dict[str, str] = field(default_factory=dict)  # spelling (lower-case) -> currency code
    # The folder under examples/ with a config and corpus for this pack; the demo runs the example of the
    # one built-in pack marked ``demo``.
    example: str | None = None
    demo: bool = False


def _import_module(spec: str) -> Any:
    try:
        if spec.endswith(".py"):
            path = Path(spec).expanduser().resolve()
            module_spec = importlib.util.spec_from_file_location(f"agentdistill_user_pack_{path.stem}", path)
            if module_spec is None or module_spec.loader is None or not path.exists():
                raise FileNotFoundError(path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            return module
        return importlib.import_module(spec)
    except (ImportError, FileNotFoundError) as e:
        raise UserError(
            f"pack {spec!r} is neither a built-in pack ({', '.join(BUILTIN_PACKS)}) nor an importable "
            f"module or .py file ({e}).",
            hint="Fix tools.packs in the run config.",
        ) from e


def load_pack(spec: str) -> DomainPack:
    """The pack ``spec`` names (see the module docstring for the accepted forms)."""
    module = _import_module(BUILTIN_PACKS.get(spec, spec))
    if isinstance(getattr(module, "PACK", None), DomainPack):
        return module.PACK
    if callable(getattr(module, "tools", None)):
        return DomainPack(name=spec, tools=lambda cfg, run_dir: list(module.tools(cfg, run_dir)))
    if hasattr(module, "TOOLS"):
        return DomainPack(name=spec, tools=lambda cfg, run_dir: list(module.TOOLS))
    raise UserError(f"pack {spec!r} defines neither PACK, TOOLS nor tools(cfg, run_dir).",
                    hint="Add TOOLS = [my_function, ...] to the module (typed functions with docstrings).")


def load_packs(cfg: RunConfig) -> list[DomainPack]:
    return [load_pack(spec) for spec in cfg.tools.packs]


def offline_pack(cfg: RunConfig) -> DomainPack:
    """The run's pack that brings an offline teacher (``teacher.kind: rule``); when none does, the
    ``documents`` pack, whose generic teacher and question writer work from any tools' schemas."""
    packs = load_packs(cfg)
    for pack in packs:
        if pack.offline_teacher is not None:
            return pack
    if any(pack.tools(cfg, None) for pack in packs):
        return load_pack("documents")
    raise UserError(
        f"teacher.kind is 'rule' but the run's packs ({', '.join(p.name for p in packs) or 'none'}) bring no "
        "tools, so no offline teacher can answer through them.",
        hint="Name packs with tools in tools.packs (e.g. [documents, general]), or use an LLM teacher "
             "(teacher.kind: openai with base_url and model).",
    )


def citation_style(cfg: RunConfig) -> CitationStyle:
    """How the run's documents are cited: the style of the first of its packs that brings one, else the generic
    style (``agentdistill.citations.GENERIC``)."""
    return next((pack.citations for pack in load_packs(cfg) if pack.citations is not None), GENERIC)


def currency_aliases(cfg: RunConfig) -> dict[str, str]:
    """The currency spellings of the run's packs (``DomainPack.currencies``), keys lower-cased; where two packs
    spell one word differently, the first pack's wins."""
    out: dict[str, str] = {}
    for pack in load_packs(cfg):
        for spelling, code in pack.currencies.items():
            out.setdefault(spelling.lower(), code)
    return out


def default_personas(cfg: RunConfig) -> list[dict[str, Any]]:
    """The personas of the run's packs, for a config that names no personas file."""
    return [p for pack in load_packs(cfg) for p in pack.personas]


def demo_pack() -> DomainPack:
    """The built-in pack whose example ``agentdistill demo`` runs."""
    packs = [load_pack(name) for name in sorted(BUILTIN_PACKS)]
    marked = [p for p in packs if p.demo and p.example]
    if len(marked) != 1:
        raise UserError(f"{len(marked)} built-in packs are marked as the demo's; exactly one must be.",
                        hint="Run an example with `agentdistill run examples/<name>/config.yaml --run DIR`.")
    return marked[0]
