"""`agentdistill demo` and `agentdistill run`."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

import agentdistill
from agentdistill.cli_options import ConfigOverrides
from agentdistill.config import RunConfig, apply_overrides, load_config, save_resolved
from agentdistill.errors import UserError
from agentdistill.pipeline.stages import build_stages, run_stages
from agentdistill.pipeline.time_budget import START_STAGE, add_stage_seconds
from agentdistill.run_layout import METRICS, RunLayout
from agentdistill.run_lock import PIPELINE, run_lock

console = Console()

HEADLINE = [
    ("format_valid_rate", "format valid"),
    ("tool_selection_accuracy", "tool selection"),
    ("answer_correct_rate", "answer correct"),
    ("task_success_rate", "task success"),
    ("no_tool_accuracy", "no-tool acc."),
    ("loop_rate", "loop rate"),
    ("hallucinated_citation_rate", "halluc. cit."),
    ("mean_latency_s", "latency s"),
]


def example_dir() -> Path:
    """The demo pack's example (domains.demo_pack), found beside the source tree of an editable install."""
    from agentdistill.domains import demo_pack

    name = demo_pack().example
    candidates = [Path(agentdistill.__file__).resolve().parents[2] / "examples" / name, Path.cwd() / "examples" / name]
    for c in candidates:
        if (c / "config.yaml").exists():
            return c
    raise UserError(
        f"the bundled example (examples/{name}/config.yaml) was not found.",
        hint="Install agentdistill from a checkout with `pip install -e .`, or run from the repository root.",
    )


def quick_overrides(cfg: RunConfig) -> RunConfig:
    """A tiny but complete run: every stage executes for real, on a few records and a few steps."""
    cfg.questions.n_questions = 60
    cfg.sft.max_steps = 6
    cfg.sft.batch_size = 1  # whole traces are ~1.1k tokens: keep a CPU step to seconds
    cfg.sft.grad_accum = 1
    cfg.sft.save_steps = 3
    cfg.eval.max_questions = 8
    cfg.eval.max_new_tokens = 96  # an untuned model rambles to the limit; a tuned step is ~50 tokens
    cfg.agent.max_steps = 3
    cfg.eval.bootstrap = 200
    return cfg


def print_summary(run_dir: Path) -> None:
    root = RunLayout(run_dir).evals
    evals = sorted(root.glob(f"*/{METRICS}")) if root.exists() else []
    if not evals:
        return
    # One column per model and one row per metric: a row per model with seven metric columns does not fit
    # an 80-column terminal, and rich then cuts every number to "0.9…".
    table = Table(title=f"Agent evaluation on the held-out split ({run_dir})")
    table.add_column("metric", no_wrap=True)
    metrics = [json.loads(path.read_text()) for path in evals]
    for path in evals:
        table.add_column(path.parent.name, justify="right", no_wrap=True, overflow="fold")
    table.add_row("questions (n)", *(str(m.get("n", "")) for m in metrics))
    for key, label in HEADLINE:
        values = [m.get(key) for m in metrics]
        table.add_row(label, *("-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v) for v in values))
    console.print(table)


def process_seconds() -> float:
    """Seconds since this process started: its imports count against the pipeline's time like any stage."""
    import psutil

    return time.time() - psutil.Process().create_time()


def _run_pipeline(cfg: RunConfig, run_dir: Path, distill: bool) -> None:
    # the whole run is the pipeline's until it ends; the stages it starts know their parent holds it
    with run_lock(run_dir, PIPELINE, create=True):
        _run_locked(cfg, run_dir, distill)


def _run_locked(cfg: RunConfig, run_dir: Path, distill: bool) -> None:
    save_resolved(cfg, run_dir)
    started = process_seconds()
    add_stage_seconds(run_dir, START_STAGE, started)
    timings = run_stages(build_stages(cfg, run_dir, distill=distill), run_dir)
    total = process_seconds()
    print_summary(run_dir)
    for name, secs in {START_STAGE: started, **timings}.items():
        console.print(f"  {name:<24} {secs:7.1f} s")
    console.print(f"[bold]done[/] in {total / 60:.1f} min. Report: {RunLayout(run_dir).report}")


def demo(
    run: Path = typer.Option(Path("runs/demo"), "--run", help="Run directory (created; resumed if it exists)."),
    quick: bool = typer.Option(False, "--quick", help="A tiny version of every stage that finishes in minutes."),
    distill: bool = typer.Option(
        False,
        "--distill/--no-distill",
        help="Also compare distillation with SFT alone: SFT the Gemma teacher (or take distill.teacher from an "
        "earlier run), cache its top-k, distill it into the student (CE + ULD) for as many steps as SFT "
        "trained, evaluate it as the SFT student was; report.html shows the difference with intervals. "
        "Rerun on a finished demo's --run to add only these stages.",
    ),
    overrides: ConfigOverrides = None,
) -> None:
    """Run the whole pipeline offline on the bundled models and the bundled example (examples/).

    Ingests the example corpus, synthesizes questions and rule-teacher traces, fine-tunes SmolLM2-135M with
    LoRA, evaluates the untuned and the tuned student as agents, and writes report.html.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cfg = load_config(example_dir() / "config.yaml")
    if quick:
        cfg = quick_overrides(cfg)
    _run_pipeline(apply_overrides(cfg, overrides), run, distill=distill)


def run(
    config: Path = typer.Argument(..., help="Run config YAML (each folder in examples/ has one)."),
    run_dir: Path = typer.Option(None, "--run", help="Run directory; default runs/<name from the config>."),
    distill: bool = typer.Option(False, "--distill/--no-distill", help="Include the cross-tokenizer ULD stages."),
    overrides: ConfigOverrides = None,
) -> None:
    """Run every stage of a configured run in order, skipping stages whose outputs are complete."""
    cfg = apply_overrides(load_config(config), overrides)
    _run_pipeline(cfg, run_dir or Path("runs") / cfg.name, distill=distill)
