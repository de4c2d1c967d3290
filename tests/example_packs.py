"""The bundled example's packs, for tests of its tools and teacher: the config's default packs are the
generic ones (search over the run's documents, general tools)."""

from __future__ import annotations

from typing import Any

from agentdistill.config import RunConfig, ToolsConfig

EXAMPLE_PACKS = ["uae_labour", "general"]


def example_config(**sections: Any) -> RunConfig:
    return RunConfig(tools=ToolsConfig(packs=list(EXAMPLE_PACKS)), **sections)
