"""`agentdistill serve`: the run's agent behind an OpenAI-compatible endpoint, with a chat page at /."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from agentdistill.cli_options import RunDir
from agentdistill.config import RunConfig, load_run_config
from agentdistill.errors import UserError
from agentdistill.run_layout import RunLayout


def default_model(run: Path, cfg: RunConfig) -> str:
    """The run's fine-tuned student: its SFT adapter, else its distilled one, else the untuned student."""
    student = Path(cfg.models.student).name if Path(cfg.models.student).expanduser().exists() else cfg.models.student
    relative = RunLayout(Path())  # as --model names them: relative to the run
    for folder in (relative.adapter(student).as_posix(), relative.uld_adapter(student).as_posix()):
        if (run / folder / "adapter_config.json").exists():
            return folder
    return "student"


def served_name(model: str, cfg: RunConfig, served_model: str | None) -> str:
    """The model's name in /v1/models: an adapter's folder name, the student's name, or the served model's."""
    if model.startswith(("http://", "https://")):
        return served_model or "model"
    if model in ("student", "teacher"):
        model = cfg.models.student if model == "student" else cfg.models.teacher
    return Path(model).name or model


def serve(
    run: RunDir,
    model: Annotated[str | None, typer.Option(
        "--model", help="Default: the run's adapter (adapters/<student>), else the untuned student. Also a "
        "registry name, HF id, folder, 'rule' or the http:// URL of an OpenAI-compatible server.")] = None,
    served_model: Annotated[str | None, typer.Option("--served-model", help="Model name on an http:// server.")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind; 0.0.0.0 exposes the server to the network.")
                    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    api_key_env: Annotated[str | None, typer.Option(
        "--api-key-env", help="Require 'Authorization: Bearer <key>', the key read from this environment variable.")
    ] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Most tokens a request may ask per model turn.")
                          ] = 1024,
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="Seconds a request may take before a 504.")
                       ] = 120.0,
    max_body_bytes: Annotated[int, typer.Option("--max-body-bytes", min=1024, help="Largest request body (413 above).")
                              ] = 1_000_000,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1, help="Model requests generated together "
                                                    "(default: the config's eval.batch_size).")] = None,
    max_in_flight: Annotated[int, typer.Option("--max-in-flight", min=1, help="Requests served at once (429 above).")
                             ] = 64,
) -> None:
    """Serve the run's agent: an OpenAI-compatible API (/v1/chat/completions, /v1/models) and a chat page at /.

    Model NAME does tool calling with the tools a client sends; NAME-agent runs the ReAct loop with the
    run's own tools and returns (or streams) every step with the answer. /health says what is served.
    """
    import uvicorn

    from agentdistill.agent.routing import first_step_router_or_none
    from agentdistill.agent.runtime import agent_options
    from agentdistill.domains import citation_style, currency_aliases
    from agentdistill.llm import make_llm
    from agentdistill.serve.app import Limits, Served, create_app
    from agentdistill.serve.batcher import Batcher
    from agentdistill.tools import load_tools

    if not run.is_dir():
        raise UserError(f"run directory {run} does not exist.",
                        hint="Pass the folder a run wrote, e.g. runs/my-domain.")
    api_key = None
    if api_key_env is not None:
        api_key = os.environ.get(api_key_env, "").strip()
        if not api_key:
            raise UserError(f"--api-key-env {api_key_env}: that environment variable is empty or not set.",
                            hint=f"export {api_key_env}=<a long random key>, then start the server again.")
    cfg = load_run_config(run)
    model = model or default_model(run, cfg)
    if model == "student":
        typer.echo(f"no adapter in {RunLayout(run).adapters}: serving the untuned student", err=True)
    tools = load_tools(cfg, run)
    batch = batch_size or cfg.eval.batch_size
    llm = make_llm(model, run, cfg, served_model=served_model, batch_size=batch)
    name = served_name(model, cfg, served_model)
    router = first_step_router_or_none(run, cfg, lambda why: typer.echo(why, err=True))
    served = Served(name=name, batcher=Batcher(llm, max_batch=batch), tools=tools,
                    agent_options={**agent_options(cfg.agent, currency_aliases(cfg)), "router": router},
                    constrain=cfg.agent.constrain_tool_names, constrain_arguments=cfg.agent.constrain_arguments,
                    citations=citation_style(cfg))
    limits = Limits(max_body_bytes=max_body_bytes, max_tokens=max_tokens, timeout_s=timeout,
                    default_max_tokens=min(cfg.eval.max_new_tokens, max_tokens), max_in_flight=max_in_flight)
    if host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        typer.echo(f"warning: {host} is reachable from other machines and no --api-key-env is set", err=True)
    typer.echo(f"serving {name} (tool calling) and {name}-agent (tools: {', '.join(tools.names())}) "
               f"at http://{host}:{port}/v1; chat page at http://{host}:{port}/", err=True)
    uvicorn.run(create_app(served, limits, api_key), host=host, port=port, log_level="info",
                timeout_graceful_shutdown=5)
