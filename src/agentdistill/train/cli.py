"""`agentdistill sft`."""

from __future__ import annotations

from agentdistill.cli_options import ConfigPath, RunDir
from agentdistill.errors import NotBuiltYet


def sft(run: RunDir, config: ConfigPath = None) -> None:
    """Fine-tune a model on the run's traces (LoRA by default, assistant turns only)."""
    raise NotBuiltYet("sft", 6)
