"""`agentdistill ingest` and `agentdistill search`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from agentdistill.citations import CitationStyle
from agentdistill.cli_options import ConfigPath, RunDir
from agentdistill.config import open_run
from agentdistill.errors import UserError
from agentdistill.run_layout import RunLayout
from agentdistill.run_lock import run_lock

console = Console()


def ingest(
    paths: list[Path] = typer.Argument(None, help="Files, folders or globs (default: corpus.paths of the config)."),
    run: RunDir = ...,
    config: ConfigPath = None,
    prune: bool = typer.Option(False, "--prune", help="Make PATHS the whole corpus: remove every document "
                               "ingested earlier from other paths (each is listed)."),
) -> None:
    """Read documents, chunk, embed, cluster, and index them in Chroma (only what changed since the last run).

    Documents ingested earlier from other paths stay; one is removed only when its file is gone from a
    folder given again (or with --prune). A PATH that does not exist is an error and changes nothing.
    """
    from agentdistill.corpus.ingest import check_paths
    from agentdistill.corpus.ingest import ingest as run_ingest

    check_paths(list(paths or []))  # before the run directory is touched
    with run_lock(run, "ingest", create=True):
        cfg = open_run(run, config)
        report = run_ingest(list(paths or []), run, cfg, prune=prune)

    table = Table(title=f"ingest -> {run}", show_header=False)
    table.add_row("files", str(report.files))
    table.add_row(
        "documents",
        f"{report.documents} ({report.new_documents} new or changed, "
        f"{report.removed_documents} removed, {len(report.duplicates)} duplicates"
        + (f", {report.kept_documents} kept from earlier paths" if report.kept_documents else "") + ")",
    )
    table.add_row("chunks", f"{report.chunks} ({report.embedded_chunks} embedded now)")
    table.add_row("skipped", str(len(report.skipped)))
    table.add_row("clusters", f"{report.clusters} ({report.cluster_rule})")
    table.add_row("time", f"{report.seconds:.1f} s")
    console.print(table)
    for source in report.removed:
        console.print(f"[yellow]removed[/yellow] {source}")
    for d in report.duplicates:
        console.print(f"[dim]duplicate[/dim] {d['path']} (same content as {d['same_as']})")
    for s in report.skipped:
        console.print(f"[yellow]skipped[/yellow] {s.path}: {s.reason}")
    if report.skipped:
        console.print(f"[yellow]{len(report.skipped)} skipped[/yellow]; details in {RunLayout(run).ingest_report}")


def search(
    query: str = typer.Argument(None, help="What to look for (omit with --eval)."),
    run: RunDir = ...,
    k: int = typer.Option(5, "-k", help="How many chunks to return (or the k of recall@k)."),
    json_out: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    eval_file: Path = typer.Option(
        None,
        "--eval",
        help='JSONL of {"id","question","answers":[citations]}: print recall@k and MRR, dense vs hybrid.',
    ),
    hybrid: bool = typer.Option(None, "--hybrid/--dense", help="Fuse BM25 with dense (default: corpus.hybrid)."),
) -> None:
    """Search the run's index; with --eval, measure retrieval on a question set."""
    from agentdistill.config import load_run_config
    from agentdistill.corpus.search import Searcher
    from agentdistill.domains import citation_style

    if k < 1:
        raise UserError(f"-k is {k}; it must be at least 1.")
    if eval_file is None and not query:
        raise UserError("give a QUERY or --eval FILE.", hint='agentdistill search "annual leave days" --run DIR')
    searcher = Searcher.open(run)
    if eval_file is not None:
        _evaluate(searcher, eval_file, k, json_out, citation_style(load_run_config(run)))
        return
    hits = searcher.search(query, k=k, hybrid=hybrid)
    if json_out:
        rows = [
            {"rank": i, "score": h.score, "citation": h.citation, "chunk": h.chunk.model_dump(mode="json")}
            for i, h in enumerate(hits, start=1)
        ]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    mode = "hybrid" if (searcher.hybrid if hybrid is None else hybrid) else "dense"
    table = Table(title=f"{query!r} ({mode})")
    for col in ("#", "score", "citation", "text"):
        table.add_column(col, overflow="fold")
    for i, h in enumerate(hits, start=1):
        text = " ".join(h.chunk.text.split())
        table.add_row(str(i), f"{h.score:.3f}", h.citation, text[:240] + ("..." if len(text) > 240 else ""))
    console.print(table)


def _evaluate(searcher, eval_file: Path, k: int, json_out: bool, style: CitationStyle) -> None:
    from agentdistill.corpus.recall import evaluate, load_eval

    result = evaluate(searcher, load_eval(eval_file, style), k=k, style=style)
    if json_out:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"retrieval: {eval_file.name}, {result['n']} questions")
    for col in ("mode", f"recall@{k}", f"MRR@{k}"):
        table.add_column(col)
    for mode in ("dense", "hybrid"):
        name = mode + (" (default)" if mode == result["default"] else "")
        table.add_row(name, f"{result[mode]['recall']:.3f}", f"{result[mode]['mrr']:.3f}")
    console.print(table)
    missed = [q for q in result["questions"] if q[f"{result['default']}_rank"] is None]
    for q in missed:
        console.print(
            f"[yellow]miss[/yellow] {q['id']}: {q['question']} -> wanted {'; '.join(q['answers'])}; "
            f"got {' | '.join(q[result['default'] + '_top'][:3])}"
        )
