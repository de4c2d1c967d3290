"""`agentdistill chat`."""

from __future__ import annotations

from agentdistill.cli_options import ModelName
from agentdistill.errors import NotBuiltYet


def chat(model: ModelName = "student") -> None:
    """Talk to an agent in the terminal and watch each Thought, Action and Observation."""
    raise NotBuiltYet("chat", 4)
