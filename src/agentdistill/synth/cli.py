"""`agentdistill questions` and `agentdistill traces`."""

from __future__ import annotations

from agentdistill.cli_options import ConfigPath, RunDir
from agentdistill.errors import NotBuiltYet


def questions(run: RunDir, config: ConfigPath = None) -> None:
    """Synthesize questions from the corpus clusters -> questions.jsonl."""
    raise NotBuiltYet("questions", 5)


def traces(run: RunDir, config: ConfigPath = None) -> None:
    """Record the teacher's ReAct traces -> traces.jsonl (resumes)."""
    raise NotBuiltYet("traces", 5)
