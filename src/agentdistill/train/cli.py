"""`agentdistill sft`."""

from __future__ import annotations

import typer

from agentdistill.cli_options import ConfigPath, RunDir
from agentdistill.config import open_run


def sft(
    run: RunDir,
    config: ConfigPath = None,
    model: str = typer.Option(
        None, "--model", help="student, teacher, or a registry name / HF id / local folder (default: sft.model)."
    ),
    max_steps: int = typer.Option(None, "--max-steps", help="Stop after N optimizer steps (default: sft.max_steps)."),
    force: bool = typer.Option(False, "--force", help="Retrain from scratch even if the adapter exists."),
) -> None:
    """Fine-tune a model on the run's traces (LoRA by default, assistant turns only) -> adapters/<model>/.

    Resumes from the latest checkpoint in <run>/checkpoints/ after an interruption. For several GPUs:
    accelerate launch -m agentdistill.cli sft --run DIR
    """
    from agentdistill.train.sft import train_sft

    cfg = open_run(run, config)
    train_sft(run, cfg, model, max_steps=max_steps, force=force)
