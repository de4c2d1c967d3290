"""`agentdistill chat`: talk to an agent in the terminal and watch it think, act and observe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from agentdistill.cli_options import ModelName
from agentdistill.config import RunConfig, load_run_config

console = Console()
OBSERVATION_SHOWN = 700  # characters of an observation printed; the model sees it whole


def _print_event(event: Any) -> None:
    """Render one runtime event (agent.runtime.AgentEvent) as it happens."""
    m = event.message or {}
    if event.kind == "step":
        console.print(Text.assemble(("Thought: ", "bold cyan"), m.get("thought", "")))
        for call in m.get("tool_calls", []):
            args = json.dumps(call.get("arguments", {}), ensure_ascii=False)
            console.print(Text.assemble(("Action: ", "bold yellow"), f"{call['name']} {args}"))
    elif event.kind == "observation":
        content = m.get("content", "")
        shown = content if len(content) <= OBSERVATION_SHOWN else content[:OBSERVATION_SHOWN] + " ..."
        style = "red" if content.startswith("Error") else "green"
        console.print(Text.assemble(("Observation: ", f"bold {style}"), (shown, "dim")))
    elif event.kind == "format_error":
        console.print(Text.assemble(("Reply not understood: ", "bold red"), (event.text.strip() or "(empty)", "dim")))
    elif event.kind == "end" and event.text != "answered":
        console.print(Text(f"(stopped: {event.text})", style="bold red"))


def chat(
    model: ModelName = "student",
    run: Annotated[Path | None, typer.Option("--run", help="Run directory: its config and corpus.")] = None,
    served_model: Annotated[str | None, typer.Option("--served-model",
                                                     help="Model name on an http:// server.")] = None,
    question: Annotated[str | None, typer.Option("--question", "-q", help="Ask one question and exit.")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="Default: the config's agent.max_steps.")] = None,
    self_consistency: Annotated[int | None, typer.Option("--self-consistency",
                                                         help="Sample N candidate steps, keep the majority.")] = None,
) -> None:
    """Talk to an agent in the terminal and watch each Thought, Action and Observation as it happens.

    --model: a registry name, "student"/"teacher", an adapter folder (adapters/NAME in the run),
    or the http:// URL of an OpenAI-compatible server (name its model with --served-model).

    Each question is its own conversation; an empty line, "exit" or Ctrl-D ends the chat.
    """
    from agentdistill.agent.routing import first_step_router_or_none
    from agentdistill.agent.runtime import agent_options, run_agent
    from agentdistill.domains import currency_aliases
    from agentdistill.llm import make_llm
    from agentdistill.tools import load_tools

    cfg = load_run_config(run) if run is not None else RunConfig()
    tools = load_tools(cfg, run)
    if run is None:
        console.print("[dim]no --run: tools that search a corpus have none to read.[/dim]")
    with console.status(f"loading {model} ..."):
        llm = make_llm(model, run, cfg, served_model=served_model, batch_size=1)
    console.print(f"[bold]{llm.name}[/bold] with tools: {', '.join(tools.names())}")
    options = {**agent_options(cfg.agent, currency_aliases(cfg)), "on_event": _print_event}
    if run is not None:
        options["router"] = first_step_router_or_none(run, cfg, lambda why: console.print(f"[dim]{why}[/dim]"))
    options["max_steps"] = max_steps or options["max_steps"]
    options["self_consistency"] = self_consistency or options["self_consistency"]
    while True:
        if question is not None:
            text = question
        else:
            try:
                text = console.input("[bold magenta]you> [/bold magenta]").strip()
            except EOFError:
                text = ""
            if text.lower() in ("", "exit", "quit"):
                return
        result = run_agent(llm, tools, text, **options)
        if result.outcome.answer is not None:
            console.print(Panel(Text(result.outcome.answer), title="Answer", title_align="left", border_style="bold"))
        console.print(f"[dim]{result.outcome.steps} steps, {result.latency_s:.1f} s, {result.outcome.status}[/dim]")
        if question is not None:
            return
