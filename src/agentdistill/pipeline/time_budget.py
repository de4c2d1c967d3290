"""A time budget for the whole pipeline: the student's SFT trains for what the other stages leave of it.

The demo must end within 30 minutes on a 2-core CPU, and SFT is the one stage whose length is a choice:
every other stage does a fixed amount of work. So when the SFT stage starts, the minutes it gets are the
budget less the seconds the stages before it took (recorded in ``stage_seconds.json``, across resumed
processes, and the start of the process that runs them) and less a forecast of the stages after it. The
eval of the tuned student is forecast from the eval of the untuned one, which ran the same kind of prompts
on the same model and machine a few minutes earlier, counted in model calls rather than questions: the
untuned model calls about three times a question and rambles to ``max_new_tokens``, and its 16 questions
fill one batch where the tuned eval's fill eight, so its seconds per question say little about the tuned
eval's. Its seconds per call, times ``TUNED_PER_UNTUNED_CALL``, times the calls the tuned student is expected
to make (each expected tool once, then the answer), make the forecast. The minutes are passed to
``agentdistill sft --time-budget-min``, whose ``TimeBudget`` fits the steps to them (train/time_budget.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agentdistill.config import RunConfig
from agentdistill.jsonl import write_json_atomic
from agentdistill.records import Question
from agentdistill.run_layout import METRICS, RunLayout

# Seconds per model call of the tuned student's eval over those of the untuned one, on a 2-core Xeon with
# AMX, in three demos: 0.49 (343.2 s for 258 calls of 127 questions, 123.8 s for 46 calls of 16), 0.55 and
# 0.63 (a machine that slowed as it ran: SFT's mean step rose from 6.05 to 6.64 s, and at 0.55 the demo ended
# at 30.8 min). Per question the ratio was 0.345 on that Xeon and on a 2-core EPYC.
# Above the largest measured: a forecast too long costs a few training steps, one too short overruns.
TUNED_PER_UNTUNED_CALL = 0.65
# The same ratio when both evals run through llama.cpp, one sequence per core, on a 2-core EPYC: 0.46 (310 s for
# 211 calls of 117 questions, 122 s for 38 calls of 16) and 0.65 (414 s for 225 calls of 110, 104 s for 37 of
# 16). A call there is mostly decoding; the untuned model decodes to max_new_tokens, the tuned one stops early.
TUNED_PER_UNTUNED_CALL_LLAMACPP = 0.70
# A question whose expected tools are unknown (an LLM wrote it without them): one tool call and the answer.
UNKNOWN_QUESTION_CALLS = 2
# The pipeline process's own start (imports: 33 s on a fresh machine's first run, 3 s after) is spent too.
START_STAGE = "start"
# The SFT stage's own start (imports, tokenizing, loading the model) and end (saving the adapter) fall
# outside the training loop that TimeBudget times, and the report follows: 47 s and 2 s measured.
UNTIMED_SECONDS = 60.0
# Exporting the tuned student to GGUF for its eval (merge, llama.cpp's converter, quantize): 45-84 s measured
# on a loaded 2-core machine.
GGUF_EXPORT_SECONDS = 90.0
# Training gets at least this long, however late it starts: fewer steps would not teach the format.
MIN_SFT_SECONDS = 120.0


def stage_seconds(run_dir: Path) -> dict[str, float]:
    """Seconds each stage of the run has taken so far, summed over the processes that ran it."""
    path = RunLayout(run_dir).stage_seconds
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
    write_json_atomic(RunLayout(run_dir).stage_seconds, record)


@dataclass(frozen=True)
class SFTBudget:
    seconds: float  # for SFT's training loop
    explanation: str  # one sentence for the console: where the seconds came from


def expected_calls(questions: list[Question]) -> int:
    """The model calls a trained agent makes on ``questions``: each expected tool once, then the answer
    (on the demo's 127 held-out questions: 259 expected, 258 made by the SFT student)."""
    return sum(len(q.expect.tools) + 1 if q.expect is not None else UNKNOWN_QUESTION_CALLS for q in questions)


def sft_budget(cfg: RunConfig, run_dir: Path, *, before_sft: list[str], untuned_eval_stage: str,
               untuned_eval_dir: Path, tuned_questions: Callable[[], list[Question]],
               after_sft_seconds: float = 0.0, llamacpp_evals: bool = False) -> SFTBudget | None:
    """The training seconds that keep the pipeline within ``cfg.pipeline.time_budget_min``, or None when it
    has no budget or the untuned eval's time is unknown (a run directory from before the record was kept).

    ``before_sft`` names the stages that ran before SFT, among them ``untuned_eval_stage``, whose metrics.json
    in ``untuned_eval_dir`` holds its questions and mean steps; ``tuned_questions`` gives the questions the
    tuned eval will run; ``after_sft_seconds`` is kept for work between SFT and that eval (an export);
    ``llamacpp_evals`` says both evals run through llama.cpp, whose ratio of tuned to untuned call differs.
    ``cfg.sft.time_budget_min``, where set, stays an upper bound.
    """
    if cfg.pipeline.time_budget_min is None:
        return None
    seconds = stage_seconds(run_dir)
    untuned_calls = _calls_made(untuned_eval_dir)
    if untuned_eval_stage not in seconds or not untuned_calls:
        return None
    spent = sum(seconds.get(name, 0.0) for name in [START_STAGE, *before_sft])
    questions = tuned_questions()
    tuned_calls = expected_calls(questions)
    untuned_s = seconds[untuned_eval_stage]
    ratio = TUNED_PER_UNTUNED_CALL_LLAMACPP if llamacpp_evals else TUNED_PER_UNTUNED_CALL
    forecast = untuned_s / untuned_calls * ratio * tuned_calls
    left = cfg.pipeline.time_budget_min * 60 - spent - forecast - UNTIMED_SECONDS - after_sft_seconds
    explanation = (f"pipeline time budget {cfg.pipeline.time_budget_min:g} min: {spent / 60:.1f} min spent, the tuned "
                   f"student's eval of {len(questions)} questions ({tuned_calls} model calls expected) forecast at "
                   f"{forecast / 60:.1f} min (the untuned one took {untuned_s:.0f} s for {untuned_calls} calls), "
                   f"{UNTIMED_SECONDS + after_sft_seconds:.0f} s kept for loading, saving and exporting")
    if cfg.sft.time_budget_min is not None and cfg.sft.time_budget_min * 60 < left:
        return SFTBudget(cfg.sft.time_budget_min * 60, f"{explanation}; SFT trains at most "
                         f"sft.time_budget_min={cfg.sft.time_budget_min:g} min")
    if left < MIN_SFT_SECONDS:
        return SFTBudget(MIN_SFT_SECONDS, f"{explanation}: {left / 60:.1f} min are left, fewer than the "
                         f"{MIN_SFT_SECONDS / 60:.0f} min SFT needs to teach the format; the run will overrun")
    return SFTBudget(left, f"{explanation}; SFT trains {left / 60:.1f} min")


def _calls_made(eval_dir: Path) -> int:
    """The model calls an eval made: its questions times their mean steps (every step is one call)."""
    try:
        metrics = json.loads((eval_dir / METRICS).read_text())
        return round(float(metrics.get("n") or 0) * float(metrics.get("mean_steps") or 0))
    except (OSError, json.JSONDecodeError, TypeError, ValueError, AttributeError):
        return 0
