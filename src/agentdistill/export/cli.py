"""`agentdistill export`."""

from __future__ import annotations

from agentdistill.cli_options import RunDir
from agentdistill.errors import NotBuiltYet


def export(run: RunDir) -> None:
    """Merge an adapter and write a HF folder, a GGUF file and an Ollama Modelfile."""
    raise NotBuiltYet("export", 8)
