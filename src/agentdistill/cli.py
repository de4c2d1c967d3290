"""The `agentdistill` command line. Each stage's command lives beside its code (``<pkg>/cli.py``);
this file only assembles them and turns user errors into a message and exit status 2.

An OS error a user can cause (a run directory that cannot be written, a full disk, a missing file) is a
user error too: one line naming the path and what happened, a hint, status 2. ``--debug`` shows the
traceback instead, of those and of user errors."""

from __future__ import annotations

import errno
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

_debug = False


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="Show the traceback of an error.")) -> None:
    global _debug
    _debug = debug


app.command("demo")(pipeline_cli.demo)
app.command("run")(pipeline_cli.run)
app.add_typer(models_cli.app, name="models")
app.command("ingest")(corpus_cli.ingest)
app.command("search")(corpus_cli.search)
app.command("questions")(synth_cli.questions)
app.command("traces")(synth_cli.traces)
app.command("synth-calls")(synth_cli.synth_calls)
app.command("sft")(train_cli.sft)
app.command("teacher-cache")(train_cli.teacher_cache)
app.command("distill")(train_cli.distill)
app.command("eval")(evaluate_cli.eval_model)
app.command("report")(evaluate_cli.report)
app.command("compare")(evaluate_cli.compare)
app.add_typer(evaluate_cli.bench_app, name="bench")
app.command("chat")(agent_cli.chat)
app.command("serve")(serve_cli.serve)
app.command("export")(export_cli.export)


def main() -> None:
    try:
        try:
            app()
        except Exception as e:
            user_error = as_user_error(e)
            if user_error is None or _debug:
                raise
            raise user_error from e
    except UserError as e:
        if _debug:
            raise
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


# errno -> (what happened, what to do); the path is added where the error names one.
_OS_ERRORS = {
    errno.EACCES: ("permission denied", "Check the permissions of the path, or use a run directory you can write "
                   "(--run DIR)."),
    errno.EPERM: ("operation not permitted", "Check the permissions of the path, or use another run directory."),
    errno.EROFS: ("read-only file system", "Use a run directory on a writable disk (--run DIR)."),
    errno.ENOSPC: ("no space left on the device", "Free some space, or use a run directory on another disk, "
                   "then run the same command again: what was written is kept."),
    errno.EDQUOT: ("disk quota exceeded", "Free some space, then run the same command again: what was written "
                   "is kept."),
    errno.ENOENT: ("no such file or folder", "Check the path."),
    errno.ENOTDIR: ("not a folder", "Check the path."),
    errno.EISDIR: ("is a folder, not a file", "Check the path."),
    errno.EMFILE: ("too many open files", "Raise the limit (ulimit -n) and run the same command again."),
}


def as_user_error(e: BaseException) -> UserError | None:
    """The user error an exception stands for: an OS error a user can cause, or a vector-store error about a
    read-only database (chromadb wraps sqlite's); None for anything else, which is a bug and keeps its
    traceback."""
    if isinstance(e, OSError) and e.errno in _OS_ERRORS:
        what, hint = _OS_ERRORS[e.errno]
        where = f": {e.filename}" if e.filename else ""
        return UserError(f"{what}{where}.", hint=hint)
    text = str(e).lower()
    if type(e).__module__.split(".")[0] in ("chromadb", "sqlite3") and ("readonly" in text or "read-only" in text):
        return UserError(f"the run's vector index cannot be written ({e}).",
                         hint="The run directory is read-only: make it writable, or use another (--run DIR).")
    if type(e).__module__.split(".")[0] in ("chromadb", "sqlite3") and ("disk is full" in text or "no space" in text):
        return UserError(f"the run's vector index cannot be written ({e}).", hint=_OS_ERRORS[errno.ENOSPC][1])
    return None


def _say_interrupted() -> None:
    typer.echo("\ninterrupted: what was written is kept; run the same command again to resume.", err=True)


if __name__ == "__main__":
    main()
