"""`agentdistill serve`."""

from __future__ import annotations

from agentdistill.cli_options import ModelName
from agentdistill.errors import NotBuiltYet


def serve(model: ModelName = "student") -> None:
    """Serve an agent behind an OpenAI-compatible endpoint."""
    raise NotBuiltYet("serve", 8)
