"""SFT within a time budget: the plan shrinks to the steps that fit and the cosine schedule ends with it."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import SimpleNamespace

import pytest
import torch
from torch.optim.lr_scheduler import LambdaLR
from transformers import get_cosine_schedule_with_warmup

from agentdistill.train.time_budget import SPENT_FILE, PlannedCosine, TimeBudget


def _scheduler(warmup: int, end: int) -> LambdaLR:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return LambdaLR(opt, PlannedCosine(warmup, end))


def test_planned_cosine_gives_the_rates_of_transformers_cosine_schedule():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    theirs = get_cosine_schedule_with_warmup(opt, num_warmup_steps=5, num_training_steps=100)
    ours = PlannedCosine(5, 100)
    assert all(ours(s) == pytest.approx(theirs.lr_lambdas[0](s)) for s in range(0, 101))


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _run(budget: TimeBudget, clock: _Clock, sched: LambdaLR, tmp_path, planned: int,
         s_per_step: float | Callable[[int], float], start: int = 0, stop: int | None = None) -> SimpleNamespace:
    """Simulated training: ``s_per_step`` seconds per step (or a function of the step), until the plan ends
    or ``stop`` (a kill)."""
    args = SimpleNamespace(output_dir=str(tmp_path))
    state = SimpleNamespace(global_step=start, max_steps=planned)
    budget.on_train_begin(args, state, None, lr_scheduler=sched)
    while state.global_step < min(state.max_steps, stop or state.max_steps):
        clock.now += s_per_step(state.global_step) if callable(s_per_step) else s_per_step
        state.global_step += 1
        budget.on_step_end(args, state, None, lr_scheduler=sched)
    return state


def test_a_slow_machine_trains_the_steps_that_fit_and_the_rate_decays_to_zero_there(tmp_path):
    clock, reports = _Clock(), []
    sched = _scheduler(5, 100)
    budget = TimeBudget(100.0, first_check=10, clock=clock, report=reports.append)
    state = _run(budget, clock, sched, tmp_path, planned=100, s_per_step=2.0)  # 100 steps would take 200 s
    assert state.global_step == 50 and clock.now == pytest.approx(100.0)
    assert sched.lr_lambdas[0].end == 50 and sched.lr_lambdas[0](50) == pytest.approx(0.0)
    assert len(reports) == 1 and "training 50 steps" in reports[0]


def test_a_fast_machine_trains_exactly_the_planned_steps(tmp_path):
    clock, reports = _Clock(), []
    sched = _scheduler(5, 100)
    state = _run(TimeBudget(100.0, clock=clock, report=reports.append), clock, sched, tmp_path, 100, 0.9)
    assert state.global_step == 100 and sched.lr_lambdas[0].end == 100 and not reports


def test_a_slowdown_later_in_training_shrinks_the_plan_again(tmp_path):
    clock = _Clock()
    sched = _scheduler(0, 100)
    budget = TimeBudget(100.0, first_check=10, checks=10, clock=clock, report=lambda m: None)

    def busy_from_step_40(step: int) -> float:
        return 0.9 if step < 40 else 3.0

    state = _run(budget, clock, sched, tmp_path, planned=100, s_per_step=busy_from_step_40)
    assert state.global_step < 100 and clock.now <= 100.0 + 3 * 3.0


def test_a_plan_cut_by_slow_first_steps_grows_back_when_later_steps_run_faster(tmp_path):
    clock, reports = _Clock(), []
    sched = _scheduler(5, 100)
    budget = TimeBudget(100.0, first_check=10, clock=clock, report=reports.append)

    def slow_start(step: int) -> float:  # 100 steps at this pace take 65 s: the whole plan fits
        return 2.0 if step < 10 else 0.5

    state = _run(budget, clock, sched, tmp_path, planned=100, s_per_step=slow_start)
    assert "training 50 steps" in reports[0]  # cut at step 10, when the mean was 2 s/step
    assert state.global_step == 100 and sched.lr_lambdas[0].end == 100  # never past the configured plan
    assert clock.now == pytest.approx(65.0)


def test_a_resumed_run_keeps_its_shrunk_plan_and_counts_the_time_already_spent(tmp_path):
    clock = _Clock()
    sched = _scheduler(5, 100)
    budget = TimeBudget(100.0, first_check=10, clock=clock, report=lambda m: None)
    # 2 s per step: the plan shrinks to 50 at step 10; killed after checkpoint 20
    state = _run(budget, clock, sched, tmp_path, planned=100, s_per_step=2.0, stop=20)
    assert state.global_step == 20
    (tmp_path / "checkpoint-20").mkdir()
    budget.on_save(SimpleNamespace(output_dir=str(tmp_path)), state, None)
    assert json.loads((tmp_path / "checkpoint-20" / SPENT_FILE).read_text())["spent_s"] == pytest.approx(40.0)

    resumed = _scheduler(5, 100)
    resumed.load_state_dict(sched.state_dict())  # what the trainer restores from the checkpoint
    clock2 = _Clock()
    again = TimeBudget(100.0, first_check=10, clock=clock2, report=lambda m: None)
    state2 = _run(again, clock2, resumed, tmp_path, planned=100, s_per_step=2.0, start=20)
    assert state2.global_step == 50 and 40.0 + clock2.now == pytest.approx(100.0)


def test_a_budget_needs_the_planned_cosine_schedule(tmp_path):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    other = get_cosine_schedule_with_warmup(opt, num_warmup_steps=0, num_training_steps=10)
    with pytest.raises(TypeError, match="PlannedCosine"):
        TimeBudget(10.0).on_train_begin(SimpleNamespace(output_dir=str(tmp_path)),
                                        SimpleNamespace(global_step=0, max_steps=10), None, lr_scheduler=other)
