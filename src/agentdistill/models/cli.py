"""`agentdistill models list | prepare`."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from agentdistill.cli_options import ConfigPath
from agentdistill.errors import UserError

app = typer.Typer(help="Bundled and configured models, and their conversion cache.", no_args_is_help=True)
# Piped output (CI logs, tests) would otherwise be squeezed to 80 columns and fold every path.
console = Console(width=None if Console().is_terminal else 200)


def _configured(config: ConfigPath) -> tuple[list[str], object]:
    if config is None:
        return [], None
    from agentdistill.config import load_config

    cfg = load_config(config)
    return [cfg.models.student, cfg.models.teacher], cfg.models.cache_dir


def _millions(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.0f}M"


@app.command("list")
def list_models(config: ConfigPath = None) -> None:
    """Show each model's parameters, vocabulary, chat family and whether it is prepared."""
    from agentdistill.models.cache import cache_root
    from agentdistill.models.registry import model_rows

    extra, cache_dir = _configured(config)
    table = Table(title=f"models (cache: {cache_root(cache_dir) / 'models'})")
    for col in ("name", "role", "params", "vocab", "chat family", "prepared"):
        table.add_column(col, no_wrap=True)
    table.add_column("path", overflow="fold")
    for row in model_rows(extra, cache_dir):
        prepared = "yes" if row["path"] else "no"
        if row["role"] == "embedder":
            prepared = "bundled" if row["path"] else "missing"
        vocab = "-" if row["vocab"] is None else f"{row['vocab']:,}"
        path = row["path"] or row.get("error") or "run `agentdistill models prepare`"
        path = path.replace(str(Path.home()), "~", 1)
        table.add_row(row["name"], row["role"], _millions(row["params"]), vocab, row["family"], prepared, path)
    console.print(table)


@app.command("prepare")
def prepare(
    name: str = typer.Argument(None, help="Model to prepare; all bundled models when omitted."),
    config: ConfigPath = None,
) -> None:
    """Convert GGUF weights once into a plain Hugging Face folder in the cache."""
    from agentdistill.models.registry import BUNDLED, EMBEDDERS, prepare, resolve

    _extra, cache_dir = _configured(config)
    if name is None:
        names = list(BUNDLED)
    elif name in EMBEDDERS:
        console.print(f"{name}: the embedder is used as bundled; nothing to prepare.")
        return
    else:
        try:
            resolve(name)
        except UserError as e:  # name the valid choices, not only what was wrong
            raise UserError(e.message, hint=f"Valid registry names: {', '.join(BUNDLED)}; or an HF id or a local "
                            "folder / .gguf file. See `agentdistill models list`.") from e
        names = [name]
    for n in names:
        t0 = time.perf_counter()
        path = prepare(n, cache_dir)
        console.print(f"[green]ready[/green] {n} -> {path} ({time.perf_counter() - t0:.1f} s)")
