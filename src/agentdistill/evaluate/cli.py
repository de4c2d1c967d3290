"""`agentdistill eval` and `agentdistill report`."""

from __future__ import annotations

from agentdistill.cli_options import ModelName, RunDir
from agentdistill.errors import NotBuiltYet


def eval_model(run: RunDir, model: ModelName = "student") -> None:
    """Evaluate a model as an agent on the held-out split -> eval/<name>/metrics.json."""
    raise NotBuiltYet("eval", 6)


def report(run: RunDir) -> None:
    """Write report.html comparing every evaluated model."""
    raise NotBuiltYet("report", 6)
