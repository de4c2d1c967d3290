"""The pipeline's time budget: the student's SFT trains for what the stages before it and the forecast eval
leave of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentdistill.config import RunConfig
from agentdistill.jsonl import write_records
from agentdistill.pipeline.stages import build_stages
from agentdistill.pipeline.time_budget import (
    MIN_SFT_SECONDS,
    STAGE_SECONDS_FILE,
    TUNED_PER_UNTUNED_QUESTION,
    UNTIMED_SECONDS,
    add_stage_seconds,
    sft_budget,
    stage_seconds,
)
from agentdistill.records import Question

BEFORE_SFT = ["ingest", "questions", "traces", "eval untuned student"]


def _run_dir(tmp_path: Path, seconds: dict[str, float], untuned_n: int = 32) -> Path:
    (tmp_path / "eval" / "smollm2-135m-untuned").mkdir(parents=True)
    for name, secs in seconds.items():
        add_stage_seconds(tmp_path, name, secs)
    (tmp_path / "eval" / "smollm2-135m-untuned" / "metrics.json").write_text(json.dumps({"n": untuned_n}))
    return tmp_path


def _budget(cfg: RunConfig, run_dir: Path, tuned_n: int = 128):
    return sft_budget(cfg, run_dir, before_sft=BEFORE_SFT, untuned_eval_stage="eval untuned student",
                      untuned_eval_dir=run_dir / "eval" / "smollm2-135m-untuned", count_tuned_questions=lambda: tuned_n)


def test_stage_seconds_add_up_over_the_processes_that_ran_a_stage(tmp_path):
    add_stage_seconds(tmp_path, "sft student", 100.0)
    add_stage_seconds(tmp_path, "ingest", 12.5)
    add_stage_seconds(tmp_path, "sft student", 50.25)  # resumed after a kill or a failure
    assert stage_seconds(tmp_path) == {"sft student": 150.25, "ingest": 12.5}


def test_a_damaged_stage_record_reads_as_empty_rather_than_failing_the_run(tmp_path):
    (tmp_path / STAGE_SECONDS_FILE).write_text('{"ingest": 12.5, "quest')
    assert stage_seconds(tmp_path) == {}
    add_stage_seconds(tmp_path, "ingest", 3.0)
    assert stage_seconds(tmp_path) == {"ingest": 3.0}


def test_sft_gets_the_budget_less_the_stages_before_it_and_the_forecast_eval(tmp_path):
    cfg = RunConfig()
    cfg.pipeline.time_budget_min = 30
    run_dir = _run_dir(tmp_path, {"ingest": 40, "questions": 10, "traces": 16, "eval untuned student": 160,
                                  "eval sft student": 999})  # a later stage's record does not count
    budget = _budget(cfg, run_dir, tuned_n=128)
    forecast = 160 / 32 * TUNED_PER_UNTUNED_QUESTION * 128
    assert budget.seconds == pytest.approx(1800 - 226 - forecast - UNTIMED_SECONDS)
    assert "3.8 min spent" in budget.explanation and "128 questions" in budget.explanation

    # a faster machine's stages leave SFT more
    faster = _run_dir(tmp_path / "fast", {"ingest": 12, "questions": 8, "traces": 13, "eval untuned student": 120})
    assert _budget(cfg, faster).seconds > budget.seconds + 60


def test_sft_time_budget_min_stays_an_upper_bound(tmp_path):
    cfg = RunConfig()
    cfg.pipeline.time_budget_min = 30
    cfg.sft.time_budget_min = 15
    run_dir = _run_dir(tmp_path, {"ingest": 40, "questions": 10, "traces": 16, "eval untuned student": 160})
    budget = _budget(cfg, run_dir)
    assert budget.seconds == 15 * 60 and "sft.time_budget_min=15" in budget.explanation
    cfg.sft.time_budget_min = 29  # more than the pipeline leaves: the pipeline's share wins
    assert _budget(cfg, run_dir).seconds < 25 * 60


def test_a_spent_budget_still_trains_the_minimum_and_says_the_run_will_overrun(tmp_path):
    cfg = RunConfig()
    cfg.pipeline.time_budget_min = 5
    run_dir = _run_dir(tmp_path, {"ingest": 40, "questions": 10, "traces": 16, "eval untuned student": 160})
    budget = _budget(cfg, run_dir)
    assert budget.seconds == MIN_SFT_SECONDS and "overrun" in budget.explanation


def test_no_budget_without_a_pipeline_budget_or_without_the_untuned_eval_time(tmp_path):
    cfg = RunConfig()
    run_dir = _run_dir(tmp_path, {"ingest": 40, "eval untuned student": 160})
    assert _budget(cfg, run_dir) is None
    cfg.pipeline.time_budget_min = 30
    assert _budget(cfg, run_dir) is not None
    untimed = _run_dir(tmp_path / "old", {"ingest": 40})  # a run directory from before the record was kept
    assert _budget(cfg, untimed) is None


def test_the_sft_stage_is_given_its_share_of_the_budget_when_it_starts(tmp_path):
    cfg = RunConfig()
    cfg.pipeline.time_budget_min = 30
    cfg.eval.max_questions = 3
    questions = [Question(id=f"q{i}", text="?", persona="p", cluster=i, split="test" if i % 2 else "train")
                 for i in range(10)]
    write_records(tmp_path / "questions.jsonl", questions)
    run_dir = _run_dir(tmp_path, {"ingest": 40, "questions": 10, "traces": 16, "eval untuned student": 160})
    sft = next(s for s in build_stages(cfg, run_dir, distill=False) if s.name == "sft student")

    flag, minutes = sft.args_at_start(run_dir)
    forecast = 160 / 32 * TUNED_PER_UNTUNED_QUESTION * 3  # 5 test questions, 3 evaluated
    assert flag == "--time-budget-min"
    assert float(minutes) == pytest.approx((1800 - 226 - forecast - UNTIMED_SECONDS) / 60, abs=0.01)

    cfg.pipeline.time_budget_min = None
    sft = next(s for s in build_stages(cfg, run_dir, distill=False) if s.name == "sft student")
    assert sft.args_at_start(run_dir) == []
