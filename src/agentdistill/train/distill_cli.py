"""`agentdistill teacher-cache` and `agentdistill distill`."""

from __future__ import annotations

from agentdistill.cli_options import ConfigPath, RunDir
from agentdistill.errors import NotBuiltYet


def teacher_cache(run: RunDir, config: ConfigPath = None) -> None:
    """Store the teacher's top-k sorted probabilities for every assistant token."""
    raise NotBuiltYet("teacher-cache", 7)


def distill(run: RunDir, config: ConfigPath = None) -> None:
    """Distill the teacher into the student with the ULD loss (cross-tokenizer)."""
    raise NotBuiltYet("distill", 7)
