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
    GGUF_EXPORT_SECONDS,
    MIN_SFT_SECONDS,
    START_STAGE,
    TUNED_PER_UNTUNED_CALL,
    TUNED_PER_UNTUNED_CALL_LLAMACPP,
    UNKNOWN_QUESTION_CALLS,
    UNTIMED_SECONDS,
    add_stage_seconds,
    expected_calls,
    sft_budget,
    stage_seconds,
)
from agentdistill.records import Expect, Question
from agentdistill.run_layout import RunLayout

BEFORE_SFT = ["ingest", "questions", "traces", "eval untuned student"]


def _run_dir(tmp_path: Path, seconds: dict[str, float], untuned_n: int = 16, untuned_mean_steps: float = 2.5) -> Path:
    (tmp_path / "eval" / "smollm2-135m-untuned").mkdir(parents=True)
    for name, secs in seconds.items():
        add_stage_seconds(tmp_path, name, secs)
    (tmp_path / "eval" / "smollm2-135m-untuned" / "metrics.json").write_text(
        json.dumps({"n": untuned_n, "mean_steps": untuned_mean_steps}))
    return tmp_path


def _question(i: int, tools: list[str] | None, split: str = "test") -> Question:
    return Question(id=f"q{i}", text="?", persona="p", cluster=i, split=split,
                    expect=Expect(tools=tools) if tools is not None else None)


# one question of each shape the example asks: no tool, one tool, a search then a calculator
TUNED = [_question(0, []), _question(1, ["get_article"]), _question(2, ["search_labour_law", "overtime_pay"])] * 40


def _budget(cfg: RunConfig, run_dir: Path, tuned: list[Question] = TUNED, llamacpp_evals: bool = False):
    return sft_budget(cfg, run_dir, before_sft=BEFORE_SFT, untuned_eval_stage="eval untuned student",
                      untuned_eval_dir=run_dir / "eval" / "smollm2-135m-untuned", tuned_questions=lambda: tuned,
                      llamacpp_evals=llamacpp_evals)


def test_a_tuned_agent_is_expected_to_call_each_expected_tool_once_then_answer():
    assert expected_calls(TUNED[:3]) == 1 + 2 + 3
    assert expected_calls([_question(3, None)]) == UNKNOWN_QUESTION_CALLS  # written without expected tools


def test_stage_seconds_add_up_over_the_processes_that_ran_a_stage(tmp_path):
    add_stage_seconds(tmp_path, "sft student", 100.0)
    add_stage_seconds(tmp_path, "ingest", 12.5)
    add_stage_seconds(tmp_path, "sft student", 50.25)  # resumed after a kill or a failure
    assert stage_seconds(tmp_path) == {"sft student": 150.25, "ingest": 12.5}


def test_a_damaged_stage_record_reads_as_empty_rather_than_failing_the_run(tmp_path):
    RunLayout(tmp_path).stage_seconds.write_text('{"ingest": 12.5, "quest')
    assert stage_seconds(tmp_path) == {}
    add_stage_seconds(tmp_path, "ingest", 3.0)
    assert stage_seconds(tmp_path) == {"ingest": 3.0}


def test_sft_gets_the_budget_less_the_stages_before_it_and_the_forecast_eval(tmp_path):
    cfg = RunConfig()
    cfg.pipeline.time_budget_min = 30
    run_dir = _run_dir(tmp_path, {START_STAGE: 4, "ingest": 40, "questions": 10, "traces": 16,
                                  "eval untuned student": 160, "eval sft student": 999})  # a later stage: not spent
    budget = _budget(cfg, run_dir)
    forecast = 160 / (16 * 2.5) * TUNED_PER_UNTUNED_CALL * 240  # 120 questions, 240 calls
    assert budget.seconds == pytest.approx(1800 - 230 - forecast - UNTIMED_SECONDS)
    assert "3.8 min spent" in budget.explanation and "120 questions (240 model calls expected)" in budget.explanation

    # through llama.cpp, the tuned eval's calls are forecast with that backend's own ratio
    llamacpp = _budget(cfg, run_dir, llamacpp_evals=True)
    assert budget.seconds - llamacpp.seconds == pytest.approx(
        160 / (16 * 2.5) * 240 * (TUNED_PER_UNTUNED_CALL_LLAMACPP - TUNED_PER_UNTUNED_CALL))

    # a faster machine's stages leave SFT more
    faster = _run_dir(tmp_path / "fast", {"ingest": 12, "questions": 8, "traces": 13, "eval untuned student": 120})
    assert _budget(cfg, faster).seconds > budget.seconds + 60


def test_the_forecast_follows_the_calls_not_the_questions(tmp_path):
    """An untuned model that loops to max_steps makes more calls per question than one that stops at a parse
    error: its eval's seconds per call, not per question, say what a call of the tuned eval costs; and the tuned
    eval's questions cost by how many tools they expect."""
    cfg = RunConfig()
    cfg.pipeline.time_budget_min = 30
    seconds = {"ingest": 40, "questions": 10, "traces": 16, "eval untuned student": 160}
    looping = _run_dir(tmp_path / "loops", seconds, untuned_mean_steps=5.0)
    stopping = _run_dir(tmp_path / "stops", seconds, untuned_mean_steps=1.0)
    assert _budget(cfg, looping).seconds > _budget(cfg, stopping).seconds + 60

    no_tool = [_question(i, []) for i in range(120)]
    two_tools = [_question(i, ["search_labour_law", "overtime_pay"]) for i in range(120)]
    assert _budget(cfg, looping, no_tool).seconds > _budget(cfg, looping, two_tools).seconds + 60


def test_sft_time_budget_min_stays_an_upper_bound(tmp_path):
    cfg = RunConfig()
    cfg.pipeline.time_budget_min = 30
    cfg.sft.time_budget_min = 12
    run_dir = _run_dir(tmp_path, {"ingest": 40, "questions": 10, "traces": 16, "eval untuned student": 160})
    budget = _budget(cfg, run_dir)
    assert budget.seconds == 12 * 60 and "sft.time_budget_min=12" in budget.explanation
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
    stepless = _run_dir(tmp_path / "stepless", {"ingest": 40, "eval untuned student": 160}, untuned_mean_steps=0)
    assert _budget(cfg, stepless) is None  # metrics.json without the steps: no calls to divide by


def test_the_sft_stage_is_given_its_share_of_the_budget_when_it_starts(tmp_path, monkeypatch):
    from agentdistill.pipeline import stages

    cfg = RunConfig()
    cfg.pipeline.gguf_evals = False
    cfg.pipeline.time_budget_min = 30
    cfg.eval.max_questions = 3
    questions = [_question(i, ["get_article"], split="test" if i % 2 else "train") for i in range(10)]
    write_records(tmp_path / "questions.jsonl", questions)
    run_dir = _run_dir(tmp_path, {"ingest": 40, "questions": 10, "traces": 16, "eval untuned student": 160})
    sft = next(s for s in build_stages(cfg, run_dir, distill=False) if s.name == "sft student")

    flag, minutes = sft.args_at_start(run_dir)
    forecast = 160 / (16 * 2.5) * TUNED_PER_UNTUNED_CALL * 3 * 2  # 5 test questions, 3 evaluated, 2 calls each
    assert flag == "--time-budget-min"
    assert float(minutes) == pytest.approx((1800 - 226 - forecast - UNTIMED_SECONDS) / 60, abs=0.01)
    # evals on GGUF files: the tuned student's export comes out of SFT's share too, and llama.cpp's ratio forecasts
    cfg.pipeline.gguf_evals = True
    monkeypatch.setattr(stages, "gguf_evals_available", lambda: True)
    sft = next(s for s in build_stages(cfg, run_dir, distill=False) if s.name == "sft student")
    with_export = float(sft.args_at_start(run_dir)[1])
    llamacpp_forecast = forecast / TUNED_PER_UNTUNED_CALL * TUNED_PER_UNTUNED_CALL_LLAMACPP
    assert with_export == pytest.approx(float(minutes) - GGUF_EXPORT_SECONDS / 60 + (forecast - llamacpp_forecast) / 60,
                                        abs=0.01)
    cfg.pipeline.gguf_evals = False

    cfg.pipeline.time_budget_min = None
    sft = next(s for s in build_stages(cfg, run_dir, distill=False) if s.name == "sft student")
    assert sft.args_at_start(run_dir) == []
