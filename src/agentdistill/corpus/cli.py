"""`agentdistill ingest` and `agentdistill search`."""

from __future__ import annotations

from pathlib import Path

import typer

from agentdistill.cli_options import ConfigPath, RunDir
from agentdistill.errors import NotBuiltYet


def ingest(
    paths: list[Path] = typer.Argument(..., help="Files, folders or globs."),
    run: RunDir = ...,
    config: ConfigPath = None,
) -> None:
    """Read documents, chunk, embed, cluster, and index them in Chroma."""
    raise NotBuiltYet("ingest", 3)


def search(
    query: str = typer.Argument(None),
    run: RunDir = ...,
    k: int = typer.Option(5, "-k"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Search the run's index."""
    raise NotBuiltYet("search", 3)
