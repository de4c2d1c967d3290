"""The UAE labour law pack: corpus lookups, entitlement calculators that cite the law, the personas who
ask about them, how the law is cited and its article headings read (citations.py), and an offline teacher
with its question writer (no LLM needed)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from agentdistill.config import RunConfig
from agentdistill.domains import DomainPack
from agentdistill.domains.uae_labour.calculators import annual_leave, calculate_gratuity, notice_period, overtime_pay
from agentdistill.domains.uae_labour.citations import STYLE
from agentdistill.domains.uae_labour.lookup import LabourLawLookup
from agentdistill.tools.spec import Tool

TOPIC = "UAE labour law"
# How the law, the calculators and people write the dirham (the code "AED" is also read by the generic
# three-capital rule; it is listed so that a lower-case "aed 500" counts too).
CURRENCIES = {"aed": "AED", "dhs": "AED", "dh": "AED", "dirham": "AED", "dirhams": "AED"}

PERSONAS = [
    {"name": "HR manager", "asks_about": "policies, contracts, leave and end-of-service rules for staff"},
    {"name": "employer", "asks_about": "obligations, costs, notice and termination"},
    {"name": "employee", "asks_about": "own rights, pay, leave, gratuity and resignation"},
    {"name": "domestic worker", "asks_about": "rights of housemaids, nannies and drivers"},
]


def tools(cfg: RunConfig, run_dir: Path | None) -> list[Tool]:
    lookup = LabourLawLookup(run_dir, cfg)
    search = lookup.documents.tool(fn=lookup.search_labour_law)  # the documents search under the law's name
    fns = [lookup.get_article, calculate_gratuity, annual_leave, overtime_pay, notice_period]
    return [search, *(Tool.from_function(f) for f in fns)]


def warm_up(registry: Any) -> None:
    """Open the corpus index before the first timed call: loading the embedder takes seconds."""
    tool = registry.get("search_labour_law")
    if tool is not None:
        with contextlib.suppress(Exception):  # the real call will report any problem as an observation
            tool.fn(query="warm up")


def offline_teacher(run_dir: Path | None, cfg: RunConfig) -> Any:
    from agentdistill.domains.uae_labour.teacher import RuleTeacher

    return RuleTeacher(run_dir, cfg, domain=TOPIC)


def offline_questions(*args: Any, **kwargs: Any) -> tuple[list[Any], dict[str, int]]:
    from agentdistill.domains.uae_labour.questions import rule_questions

    return rule_questions(*args, **kwargs)


def spec_questions(*args: Any, **kwargs: Any) -> list[Any]:
    from agentdistill.domains.uae_labour.questions import questions_from_spec

    return questions_from_spec(*args, **kwargs)


PACK = DomainPack(name="uae_labour", tools=tools, topic=TOPIC, personas=PERSONAS,
                  offline_teacher=offline_teacher, offline_questions=offline_questions,
                  spec_questions=spec_questions, warm_up=warm_up,
                  citations=STYLE, currencies=CURRENCIES, example="uae_labour", demo=True)
