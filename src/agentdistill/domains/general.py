"""The general pack: safe arithmetic, unit conversion and dates (tools/general.py), for any domain."""

from __future__ import annotations

from agentdistill.domains import DomainPack
from agentdistill.tools.general import TOOLS

PACK = DomainPack(name="general", tools=lambda cfg, run_dir: list(TOOLS))
