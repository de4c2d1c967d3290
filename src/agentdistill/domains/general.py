"""The general pack: safe arithmetic, unit conversion and dates (tools/general.py), for any domain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentdistill.config import RunConfig
from agentdistill.domains import DomainPack, currency_aliases
from agentdistill.tools.general import TOOLS, calculator, calculator_for


def tools(cfg: RunConfig, run_dir: Path | None) -> list[Any]:
    """The general tools; the calculator also drops the run's packs' currency spellings ("Fr. 500 * 2"), which
    only the packs know."""
    currencies = currency_aliases(cfg)
    if not currencies:
        return list(TOOLS)
    return [calculator_for(currencies) if t is calculator else t for t in TOOLS]


PACK = DomainPack(name="general", tools=tools)
