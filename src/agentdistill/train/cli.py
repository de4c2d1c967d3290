"""`agentdistill sft`, `teacher-cache` and `distill`."""

from __future__ import annotations

from agentdistill.cli_options import ConfigPath, RunDir
from agentdistill.errors import NotBuiltYet


def sft(run: RunDir, config: ConfigPath = None) -> None:
    """Fine-tune a model on the run's traces (LoRA by default, assistant turns only)."""
    raise NotBuiltYet("sft", 6)


def teacher_cache(run: RunDir, config: ConfigPath = None) -> None:
    """Store the teacher's top-k sorted probabilities for every assistant token."""
    raise NotBuiltYet("teacher-cache", 7)


def distill(run: RunDir, config: ConfigPath = None) -> None:
    """Distill the teacher into the student with the ULD loss (cross-tokenizer)."""
    raise NotBuiltYet("distill", 7)
