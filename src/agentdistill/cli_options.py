"""Options shared by the stage commands, so every command spells them the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RunDir = Annotated[
    Path, typer.Option("--run", help="Run directory: every stage reads and writes its files here.")
]
ConfigPath = Annotated[
    Path | None,
    typer.Option("--config", help="Run config YAML; saved into the run directory for later stages."),
]
ConfigOverrides = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config value, e.g. --set sft.epochs=2 (YAML value; repeatable)."),
]
ModelName = Annotated[
    str,
    typer.Option(
        "--model",
        help="Registry name (see `agentdistill models list`), HF id, local folder, "
        "or a run-relative adapter such as adapters/smollm2-135m.",
    ),
]
