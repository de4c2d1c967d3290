"""The `agentdistill` command line. Each stage's command lives beside its code (``<pkg>/cli.py``);
this file only assembles them and turns user errors into a message and exit status 2."""

from __future__ import annotations

import sys

import typer

from agentdistill.agent import cli as agent_cli
from agentdistill.corpus import cli as corpus_cli
from agentdistill.errors import UserError
from agentdistill.evaluate import cli as evaluate_cli
from agentdistill.export import cli as export_cli
from agentdistill.models import cli as models_cli
from agentdistill.pipeline import cli as pipeline_cli
from agentdistill.serve import cli as serve_cli
from agentdistill.synth import cli as synth_cli
from agentdistill.train import cli as train_cli
from agentdistill.train import distill_cli

app = typer.Typer(
    name="agentdistill",
    help=(
        "Turn a small open language model into a reliable tool-calling ReAct agent for one domain, "
        "by distilling a larger teacher, and measure it.\n\n"
        "Pipeline: ingest -> questions -> traces -> sft [-> teacher-cache -> distill] -> eval -> report "
        "-> export. Every stage reads and writes files in a run directory (--run DIR) and resumes "
        "where it stopped. `agentdistill demo` runs all of it offline on the bundled models."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

app.command("demo")(pipeline_cli.demo)
app.command("run")(pipeline_cli.run)
app.add_typer(models_cli.app, name="models")
app.command("ingest")(corpus_cli.ingest)
app.command("search")(corpus_cli.search)
app.command("questions")(synth_cli.questions)
app.command("traces")(synth_cli.traces)
app.command("sft")(train_cli.sft)
app.command("teacher-cache")(distill_cli.teacher_cache)
app.command("distill")(distill_cli.distill)
app.command("eval")(evaluate_cli.eval_model)
app.command("report")(evaluate_cli.report)
app.command("chat")(agent_cli.chat)
app.command("serve")(serve_cli.serve)
app.command("export")(export_cli.export)


def main() -> None:
    try:
        app()
    except UserError as e:
        typer.secho(f"error: {e.message}", fg=typer.colors.RED, err=True)
        if e.hint:
            typer.echo(f"  hint: {e.hint}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        _say_interrupted()
        sys.exit(130)
    except SystemExit as e:
        # typer turns Ctrl-C into SystemExit(130) itself, so the except above rarely runs.
        if e.code == 130:
            _say_interrupted()
        raise


def _say_interrupted() -> None:
    typer.echo("\ninterrupted: what was written is kept; run the same command again to resume.", err=True)


if __name__ == "__main__":
    main()
