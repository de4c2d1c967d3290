"""`agentdistill models list | prepare`."""

from __future__ import annotations

import typer

from agentdistill.errors import NotBuiltYet

app = typer.Typer(help="Bundled and configured models, and their conversion cache.", no_args_is_help=True)


@app.command("list")
def list_models() -> None:
    """Show each model's parameters, vocabulary, chat family and whether it is prepared."""
    raise NotBuiltYet("models list", 2)


@app.command("prepare")
def prepare(
    name: str = typer.Argument(None, help="Model to prepare; all bundled models when omitted."),
) -> None:
    """Convert GGUF weights once into a plain Hugging Face folder in the cache."""
    raise NotBuiltYet("models prepare", 2)
