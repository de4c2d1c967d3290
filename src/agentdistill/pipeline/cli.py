"""`agentdistill demo` and `agentdistill run`."""

from __future__ import annotations

from pathlib import Path

import typer

from agentdistill.errors import NotBuiltYet


def demo(
    run: Path = typer.Option(Path("runs/demo"), "--run", help="Run directory."),
    quick: bool = typer.Option(False, "--quick", help="A tiny version that finishes in minutes."),
) -> None:
    """Run the whole pipeline offline on the bundled models and the UAE labour example."""
    raise NotBuiltYet("demo", 6)


def run(config: Path = typer.Argument(..., help="Run config YAML.")) -> None:
    """Run every stage of a configured run in order, skipping stages whose outputs are complete."""
    raise NotBuiltYet("run", 6)
