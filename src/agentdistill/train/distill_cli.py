"""`agentdistill teacher-cache` and `agentdistill distill`."""

from __future__ import annotations

import typer

from agentdistill.cli_options import ConfigPath, RunDir
from agentdistill.config import open_run
from agentdistill.run_lock import run_lock


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
