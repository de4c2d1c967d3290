"""A time budget for the whole pipeline: the student's SFT trains for what the other stages leave of it.

The demo must end within 30 minutes on a 2-core CPU, and SFT is the one stage whose length is a choice:
every other stage does a fixed amount of work. So when the SFT stage starts, the minutes it gets are the
budget less the seconds the stages before it took (recorded in ``stage_seconds.json``, across resumed
processes) and less a forecast of the stages after it. The eval of the tuned student is forecast from the
eval of the untuned one, which ran the same questions' prompts on the same model and machine a few minutes
earlier: its seconds per question, times ``TUNED_PER_UNTUNED_QUESTION``, times the questions the tuned
eval will run. The minutes are passed to ``agentdistill sft --time-budget-min``, whose ``TimeBudget``
fits the steps to them (train/time_budget.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agentdistill.config import RunConfig
from agentdistill.jsonl import write_json_atomic

STAGE_SECONDS_FILE = "stage_seconds.json"

# Seconds per question of the tuned student's eval over those of the untuned one: measured 0.445 on a
# 2-core Xeon with AMX (runs/s11a: 221.8 s for 127 questions, 125.7 s for 32), 0.51 and 0.447 on 2-core EPYCs
# (runs/s12a: 297.1 s, 146.5 s; runs/s13a: 430.1 s, 242.1 s) and 0.40 where the untuned eval shared the CPU
# for two minutes (runs/s13b). The untuned model rambles to max_new_tokens and loops to max_steps; the tuned
# one writes ~64-token turns over two or three steps. Rounded up: a forecast too long costs training steps
# (0.55 cost runs/s13b 158 s, 25 steps), one too short overruns the budget.
TUNED_PER_UNTUNED_QUESTION = 0.5
# The SFT stage's own start (imports, tokenizing, loading the model) and end (saving the adapter) fall
# outside the training loop that TimeBudget times, and the report follows: 47 s and 2 s in runs/s13b.
UNTIMED_SECONDS = 60.0
# Training gets at least this long, however late it starts: fewer steps would not teach the format.
MIN_SFT_SECONDS = 120.0


def stage_seconds(run_dir: Path) -> dict[str, float]:
    """Seconds each stage of the run has taken so far, summed over the processes that ran it."""
    path = Path(run_dir) / STAGE_SECONDS_FILE
    if not path.exists():
        return {}
    try:
        return {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
    except (json.JSONDecodeError, OSError, TypeError, ValueError, AttributeError):
        return {}  # a damaged record only costs the forecast; the stages' outputs are elsewhere


def add_stage_seconds(run_dir: Path, stage: str, seconds: float) -> None:
    """Add ``seconds`` to ``stage``'s record; written whole (temp file + rename), so a kill loses nothing."""
    record = stage_seconds(run_dir)
    record[stage] = round(record.get(stage, 0.0) + seconds, 3)
    write_json_atomic(Path(run_dir) / STAGE_SECONDS_FILE, record)


@dataclass(frozen=True)
class SFTBudget:
    seconds: float  # for SFT's training loop
    explanation: str  # one sentence for the console: where the seconds came from


def sft_budget(cfg: RunConfig, run_dir: Path, *, before_sft: list[str], untuned_eval_stage: str,
               untuned_eval_dir: Path, count_tuned_questions: Callable[[], int]) -> SFTBudget | None:
    """The training seconds that keep the pipeline within ``cfg.pipeline.time_budget_min``, or None when it
    has no budget or the untuned eval's time is unknown (a run directory from before the record was kept).

    ``before_sft`` names the stages that ran before SFT, among them ``untuned_eval_stage``, whose metrics.json
    in ``untuned_eval_dir`` holds its number of questions; ``count_tuned_questions`` says how many the tuned
    eval will run. ``cfg.sft.time_budget_min``, where set, stays an upper bound.
    """
    if cfg.pipeline.time_budget_min is None:
        return None
    seconds = stage_seconds(run_dir)
    untuned_n = _questions_evaluated(untuned_eval_dir)
    if untuned_eval_stage not in seconds or not untuned_n:
        return None
    spent = sum(seconds.get(name, 0.0) for name in before_sft)
    tuned_n = count_tuned_questions()
    untuned_s = seconds[untuned_eval_stage]
    forecast = untuned_s / untuned_n * TUNED_PER_UNTUNED_QUESTION * tuned_n
    left = cfg.pipeline.time_budget_min * 60 - spent - forecast - UNTIMED_SECONDS
    explanation = (f"pipeline time budget {cfg.pipeline.time_budget_min:g} min: {spent / 60:.1f} min spent, the tuned "
                   f"student's eval of {tuned_n} questions forecast at {forecast / 60:.1f} min (the untuned one took "
                   f"{untuned_s:.0f} s for {untuned_n}), {UNTIMED_SECONDS:.0f} s kept for loading and saving")
    if cfg.sft.time_budget_min is not None and cfg.sft.time_budget_min * 60 < left:
        return SFTBudget(cfg.sft.time_budget_min * 60, f"{explanation}; SFT trains at most "
                         f"sft.time_budget_min={cfg.sft.time_budget_min:g} min")
    if left < MIN_SFT_SECONDS:
        return SFTBudget(MIN_SFT_SECONDS, f"{explanation}: {left / 60:.1f} min are left, fewer than the "
                         f"{MIN_SFT_SECONDS / 60:.0f} min SFT needs to teach the format; the run will overrun")
    return SFTBudget(left, f"{explanation}; SFT trains {left / 60:.1f} min")


def _questions_evaluated(eval_dir: Path) -> int:
    try:
        return int(json.loads((eval_dir / "metrics.json").read_text()).get("n") or 0)
    except (OSError, json.JSONDecodeError, TypeError, ValueError, AttributeError):
        return 0
