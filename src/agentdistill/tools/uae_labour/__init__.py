"""The UAE labour law domain pack: corpus lookups plus entitlement calculators that cite the law."""

from __future__ import annotations

from pathlib import Path

from agentdistill.config import RunConfig
from agentdistill.tools.spec import Tool
from agentdistill.tools.uae_labour.calculators import annual_leave, calculate_gratuity, notice_period, overtime_pay
from agentdistill.tools.uae_labour.lookup import LabourLawLookup


def tools(cfg: RunConfig, run_dir: Path | None) -> list[Tool]:
    lookup = LabourLawLookup(run_dir, cfg)
    # The first search loads the embedder and opens the index (seconds to a minute on a busy CPU):
    # that must not read as a hung tool, so search gets a longer timeout than the others.
    search = Tool.from_function(lookup.search_labour_law, timeout_s=max(cfg.tools.timeout_s, 120.0))
    fns = [lookup.get_article, calculate_gratuity, annual_leave, overtime_pay, notice_period]
    return [search, *(Tool.from_function(f) for f in fns)]
