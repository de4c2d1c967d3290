"""`agentdistill sft`, `agentdistill teacher-cache` and `agentdistill distill`."""

from __future__ import annotations

import typer

from agentdistill.cli_options import ConfigPath, RunDir
from agentdistill.config import load_config, load_run_config, open_run
from agentdistill.run_lock import run_lock


def sft(
    run: RunDir,
    config: ConfigPath = None,
    model: str = typer.Option(
        None, "--model", help="student, teacher, or a registry name / HF id / local folder (default: sft.model)."
    ),
    max_steps: int = typer.Option(None, "--max-steps", help="Stop after N optimizer steps (default: sft.max_steps)."),
    force: bool = typer.Option(False, "--force", help="Retrain from scratch even if the adapter exists."),
    time_budget_min: float = typer.Option(
        None, "--time-budget-min", min=0.01,
        help="Train at most this many minutes: a slower machine trains fewer of the planned steps, with the "
        "learning-rate schedule ending at the last one (default: sft.time_budget_min).",
    ),
) -> None:
    """Fine-tune a model on the run's traces (LoRA by default, assistant turns only) -> adapters/<model>/.

    Resumes from the latest checkpoint in <run>/checkpoints/ after an interruption. For several GPUs:
    accelerate launch -m agentdistill.cli sft --run DIR
    """
    from agentdistill.train.sft import adapter_subdir, model_name, train_sft

    # one lock per trained model: the student's and the teacher's SFT write different folders
    planned = load_config(config) if config is not None else load_run_config(run)
    with run_lock(run, f"sft-{adapter_subdir(model_name(model or planned.sft.model, planned))}"):
        cfg = open_run(run, config)
        if time_budget_min is not None:
            cfg.sft.time_budget_min = time_budget_min
        train_sft(run, cfg, model, max_steps=max_steps, force=force)


def teacher_cache(
    run: RunDir,
    config: ConfigPath = None,
    force: bool = typer.Option(False, "--force", help="Delete teacher_topk/ and compute it again."),
) -> None:
    """Store the teacher's top-k sorted probabilities for every assistant token -> <run>/teacher_topk/.

    The teacher is distill.teacher, or by default the adapter of `agentdistill sft --model teacher`.
    Resumes after an interruption; only traces not yet cached are computed.
    """
    from agentdistill.train.teacher_cache import build_teacher_cache

    with run_lock(run, "teacher-cache"):
        cfg = open_run(run, config)
        build_teacher_cache(run, cfg, force=force)


def distill(
    run: RunDir,
    config: ConfigPath = None,
    max_steps: int = typer.Option(None, "--max-steps", help="Stop after N optimizer steps."),
    force: bool = typer.Option(False, "--force", help="Retrain from scratch even if the adapter exists."),
) -> None:
    """Distill the teacher into the student with CE + ULD (cross-tokenizer) -> adapters/<student>-uld/.

    distill.mode offline (default) reads <run>/teacher_topk/ (run `agentdistill teacher-cache` first);
    online runs the teacher inside the training loop. Resumes from the latest checkpoint.
    """
    from agentdistill.train.distill import train_distill

    with run_lock(run, "distill"):
        cfg = open_run(run, config)
        train_distill(run, cfg, max_steps=max_steps, force=force)
