"""The command line: help for every docs/design.md command, and user errors as a message + status 2,
never a traceback."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest
import typer
from typer.testing import CliRunner

from agentdistill import cli
from agentdistill.errors import NotBuiltYet, UserError

COMMANDS = [
    "demo", "run", "models", "ingest", "search", "questions", "traces", "sft", "teacher-cache", "distill",
    "eval", "report", "chat", "serve", "export",
]


def _agentdistill(*args: str) -> subprocess.CompletedProcess:
    """The real program in a fresh interpreter, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "agentdistill.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_console_script_points_at_main():
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("agentdistill") == "agentdistill.cli:main"


def test_help_runs_and_lists_every_command():
    result = _agentdistill("--help")
    assert result.returncode == 0, result.stderr
    for name in COMMANDS:
        assert name in result.stdout, name


@pytest.mark.parametrize("args", [[c] for c in COMMANDS if c != "models"] + [["models", "list"], ["models", "prepare"]])
def test_every_command_has_help(args):
    result = CliRunner().invoke(cli.app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def _main_with(monkeypatch, capsys, fn, *args: str) -> tuple[int, str]:
    """Run cli.main() on an app holding one command ``fn``: main's error handling, whatever the stages do."""
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    app.command("go")(fn)
    app.command("other")(lambda: None)  # two commands, so typer keeps the "go" subcommand
    monkeypatch.setattr(cli, "app", app)
    monkeypatch.setattr(sys, "argv", ["agentdistill", "go", *args])
    with pytest.raises(SystemExit) as info:
        cli.main()
    return info.value.code, capsys.readouterr().err


def test_user_error_prints_message_and_hint_and_exits_2(monkeypatch, capsys):
    def go() -> None:
        raise UserError("runs/x/questions.jsonl does not exist.", hint="Run `agentdistill questions` first.")

    code, err = _main_with(monkeypatch, capsys, go)
    assert code == 2
    assert "error: runs/x/questions.jsonl does not exist." in err
    assert "hint: Run `agentdistill questions` first." in err
    assert "Traceback" not in err


def test_unimplemented_stage_exits_2_naming_command_and_issue(monkeypatch, capsys):
    def go() -> None:
        raise NotBuiltYet("export", 8)

    code, err = _main_with(monkeypatch, capsys, go)
    assert code == 2
    assert "`agentdistill export` is not implemented yet (tracked in issue 8)" in err
    assert "Traceback" not in err


def test_interrupt_keeps_work_and_exits_130(monkeypatch, capsys):
    def go() -> None:
        raise KeyboardInterrupt

    code, err = _main_with(monkeypatch, capsys, go)
    assert code == 130
    assert "run the same command again to resume" in err


def test_bug_is_not_disguised_as_a_user_error(monkeypatch, capsys):
    def go() -> None:
        raise ZeroDivisionError("a real bug")

    with pytest.raises(ZeroDivisionError):
        _main_with(monkeypatch, capsys, go)


@pytest.mark.parametrize(
    "args",
    [
        ["run", "{tmp}/missing.yaml"],
        ["search", "annual leave", "--run", "{tmp}/empty-run"],
    ],
    ids=["run-missing-config", "search-empty-run"],
)
def test_failing_commands_exit_2_with_a_message_not_a_traceback(tmp_path, args):
    (tmp_path / "empty-run").mkdir()
    result = _agentdistill(*[a.format(tmp=tmp_path) for a in args])
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [(["frobnicate"], "No such command"), (["search", "annual leave"], "--run")],
)
def test_usage_mistakes_exit_2_with_usage(args, expected):
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 2
    assert expected in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
