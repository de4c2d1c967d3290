"""`agentdistill eval` and `agentdistill report`."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from agentdistill.cli_options import ConfigPath, ModelName, RunDir
from agentdistill.config import open_run

console = Console()

SHOWN = [
    "n", "format_valid_rate", "tool_selection_accuracy", "exact_tool_match", "argument_validity", "argument_match",
    "answer_correct_rate", "task_success_rate", "no_tool_accuracy", "loop_rate", "hallucinated_citation_rate",
    "tool_error_rate", "retrieval_hit_rate", "question_as_query_hit_rate", "mean_steps", "mean_latency_s",
]


def _decoding_option(flags: str, key: str, what: str) -> bool:
    """A --x/--no-x option that overrides ``agent.<key>`` for one eval (None: the config's setting)."""
    return typer.Option(None, flags, help=f"{what} (default: agent.{key}). Give the other setting its own --name.")


def eval_model(
    run: RunDir,
    model: ModelName = "student",
    split: str = typer.Option(None, "--split", help="Question split to evaluate on: test (to report), dev (to choose "
                              "changes) or train (default: eval.split, 'test')."),
    max_questions: int = typer.Option(None, "--max-questions", help="Evaluate a fixed random subset of N questions."),
    name: str = typer.Option(None, "--name", help="Folder under eval/ (default: derived from --model)."),
    served_model: str = typer.Option(None, "--served-model", help="Model name to request from an http:// endpoint."),
    constrain_tool_names: bool = _decoding_option(
        "--constrain-tool-names/--free-tool-names", "constrain_tool_names",
        "Decode action names only as registered tools' names (local models), or let the model write any name"),
    constrain_arguments: bool = _decoding_option(
        "--constrain-arguments/--free-arguments", "constrain_arguments",
        "With constrained tool names, decode argument names only as the named tool's and number, enum and "
        "boolean values only as valid ones"),
    numbers_from_user: bool = _decoding_option(
        "--numbers-from-user/--any-numbers", "numbers_from_user",
        "With constrained arguments, decode a number argument only as a number the user wrote (or its "
        "negation), or as any number"),
    arguments_from_user: bool = _decoding_option(
        "--arguments-from-user/--numbers-by-type", "arguments_from_user",
        "With the user's numbers, let an argument named for a unit (hours, days, months, years, a wage) take "
        "only numbers written with it, offer only the tools such numbers can serve, and write an argument with "
        "a default only where the user gave it a value; or match numbers by type alone"),
    citations_from_observations: bool = _decoding_option(
        "--cite-shown/--cite-any", "citations_from_observations",
        "With constrained tool names, let an answer cite only articles the question or a tool's result "
        "showed, or any"),
    follow_plan: bool = _decoding_option(
        "--follow-plan/--free-plan", "follow_plan",
        "With constrained tool names, let a thought after an observation name as 'next:' only what the "
        "thought before planned, or anything"),
    config: ConfigPath = None,
) -> None:
    """Evaluate a model as an agent on the held-out split -> eval/<name>/{results.jsonl,metrics.json}.

    MODEL: student | teacher (untuned), a registry name or HF id, an adapter folder (adapters/smollm2-135m,
    relative to the run), http://host:port/v1 (with --served-model), or rule (the offline rule teacher).
    Resumes: questions already in results.jsonl are skipped.
    """
    from agentdistill.evaluate.runner import evaluate

    if split not in (None, "train", "dev", "test"):
        from agentdistill.errors import UserError

        raise UserError(f"unknown split {split!r}.",
                        hint="Use --split test (held out, to report), dev (held out, to choose changes) or train.")
    from agentdistill.config import load_config, load_run_config
    from agentdistill.evaluate.runner import default_name
    from agentdistill.run_lock import run_lock

    # one lock per eval folder: evals of different models may run side by side
    planned = load_config(config) if config is not None else load_run_config(run)
    with run_lock(run, f"eval-{name or default_name(model, run, planned, served_model)}"):
        cfg = open_run(run, config)
        decoding = {"constrain_tool_names": constrain_tool_names, "constrain_arguments": constrain_arguments,
                    "numbers_from_user": numbers_from_user, "arguments_from_user": arguments_from_user,
                    "citations_from_observations": citations_from_observations,
                    "follow_plan": follow_plan}
        for key, value in decoding.items():  # an option left out keeps the config's setting
            if value is not None:
                setattr(cfg.agent, key, value)
        metrics = evaluate(run, cfg, model, split=split, max_questions=max_questions, name=name,
                           served_model=served_model)
    table = Table(title=f"eval/{metrics['name']} ({metrics['split']} split)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("95% CI", justify="right")
    for key in SHOWN:
        value, ci = metrics.get(key), metrics.get("ci95", {}).get(key)
        table.add_row(key, "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value),
                      f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "")
    console.print(table)
    console.print(f"statuses: {metrics['statuses']}")
    checker = metrics.get("answer_checker") or {}
    judge = checker.get("judge")
    by = f"{judge} ({checker.get('judged', 0)} judged, the rest offline)" if judge else "the offline checker"
    console.print(f"answers checked: {checker.get('checked', 0)} of {metrics['n']} (with answer_facts), by {by}")


def report(run: RunDir) -> None:
    """Write report.html comparing every evaluated model (tables, charts, example traces)."""
    from agentdistill.evaluate.report import write_report
    from agentdistill.run_lock import run_lock

    with run_lock(run, "report"):
        path = write_report(run)
    console.print(f"report written to {path}")
