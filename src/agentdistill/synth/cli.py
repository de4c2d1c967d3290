"""`agentdistill questions`, `agentdistill traces` and `agentdistill synth-calls`: run the stage, then print the
numbers that matter."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from agentdistill.cli_options import ConfigPath, RunDir
from agentdistill.config import open_run
from agentdistill.run_layout import RunLayout
from agentdistill.run_lock import run_lock

console = Console()


def _table(title: str, counts: dict[str, Any], total: int | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("")
    table.add_column("n", justify="right")
    if total:
        table.add_column("share", justify="right")
    for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        table.add_row(str(key), str(n), *([f"{n / total:.1%}"] if total else []))
    return table


def questions(run: RunDir, config: ConfigPath = None) -> None:
    """Synthesize questions from the corpus clusters -> questions.jsonl (rule templates or an LLM teacher)."""
    from agentdistill.synth.questions import make_questions

    with run_lock(run, "questions"):
        cfg = open_run(run, config)
        console.print(f"[bold]questions[/] teacher={cfg.teacher.kind} n={cfg.questions.n_questions} "
                      f"mix={cfg.questions.mix}")
        report = make_questions(run, cfg, console=console)
    console.print(_table("questions by kind", report.by_kind, report.n))
    console.print(_table("by persona", report.by_persona, report.n))
    console.print(_table("by expected tool", report.by_tool, report.n))
    console.print(f"split: {report.split} (by {cfg.split.by}; no test question shares a source chunk with train)")
    if report.counts:
        console.print(f"dropped/notes: {report.counts}")
    layout = RunLayout(run)
    console.print(f"wrote {report.n} questions to {layout.questions} (stats in {layout.questions_stats})")


def traces(run: RunDir, config: ConfigPath = None) -> None:
    """Record the teacher's ReAct traces -> traces.jsonl (resumes; rejected ones go to traces.rejected.jsonl)."""
    from agentdistill.synth.traces import run_traces

    with run_lock(run, "traces"):
        cfg = open_run(run, config)
        stats = run_traces(run, cfg, console=console)
    accepted = stats["accepted"]
    console.print(f"[bold]traces[/]: {stats['recorded']}/{stats['questions']} questions recorded, "
                  f"{accepted} accepted, {stats['rejected']} rejected "
                  f"({stats['seconds_this_run']:.1f} s this run)")
    if stats["rejections"]:
        console.print(_table("rejections by reason", stats["rejections"], stats["recorded"]))
    console.print(_table("accepted by tool", stats["accepted_by_tool"], accepted))
    console.print(_table("accepted by persona", stats["accepted_by_persona"], accepted))
    console.print(f"no-tool share of accepted: {stats['no_tool_share']:.1%}; split: {stats['accepted_by_split']} "
                  "(eval split shares no source chunk with train: checked)")
    if stats["complete"]:
        console.print(f"exported the training split: {stats.get('export')}")
    else:
        console.print(f"[yellow]incomplete[/]: {stats['questions'] - stats['recorded']} questions have no record yet "
                      f"({stats['backend_errors_this_run']} backend errors this run); run the same command again.")
    console.print(f"stats: {RunLayout(run).traces_stats}")


def synth_calls(
    run: RunDir,
    config: ConfigPath = None,
    n: int = typer.Option(3000, "--n", min=1, help="Training traces to write."),
    n_dev: int = typer.Option(None, "--n-dev", min=0, help="Dev traces, over the held-out domains (default: n / 10)."),
    dev_domains: int = typer.Option(3, "--dev-domains", min=0, help="Function domains held out for dev."),
    irrelevance: float = typer.Option(0.25, "--irrelevance", min=0.0, max=1.0,
                                      help="Share of questions that no offered function answers."),
    force: bool = typer.Option(False, "--force", help="Overwrite a traces.jsonl that another stage wrote."),
) -> None:
    """Write function-calling traces over invented functions -> traces.jsonl (for `agentdistill sft`).

    Every trace offers its own 1 to 5 functions, drawn from a few hundred invented ones across many domains,
    and asks for one of them with its values in a person's words (a single Action with those values), or,
    for --irrelevance of them, for something none offered does (an Answer that says so). Whole domains are
    held out for the dev split, written also as BFCL-format files in <run>/bfcl_dev/ that
    `agentdistill bench bfcl --data <run>/bfcl_dev --categories simple,multiple,irrelevance` scores.
    No benchmark data is used. Deterministic under the config's seed.
    """
    from agentdistill.errors import UserError
    from agentdistill.synth.function_calls import write_run

    with run_lock(run, "synth-calls", create=True):
        cfg = open_run(run, config)
        layout = RunLayout(run)
        if layout.traces.exists() and not layout.synth_calls_stats.exists() and not force:
            raise UserError(f"{layout.traces} exists and was not written by synth-calls.",
                            hint="Use a new run directory, or --force to replace it.")
        stats = write_run(run, n, n // 10 if n_dev is None else n_dev, seed=cfg.seed, n_dev_domains=dev_domains,
                          irrelevance=irrelevance)
    console.print(f"[bold]synth-calls[/]: {stats['functions']} invented functions in {stats['domains']} domains; "
                  f"dev holds out {', '.join(stats['dev_domains']) or 'none'}")
    console.print(_table("traces by split", stats["traces"]))
    console.print(_table("irrelevance traces by split", stats["irrelevance"]))
    console.print(_table("functions offered per trace", stats["tools_offered"]))
    console.print(f"wrote {layout.traces}; dev as BFCL files in {run / 'bfcl_dev'} {stats['bfcl_dev']}")
