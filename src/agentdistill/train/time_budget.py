"""Training that ends within a wall-clock budget: a slower CPU trains fewer steps instead of overrunning.

The same config runs on machines whose step times differ twofold (the bundled example: 3.8 s per step on a
2-core Xeon with AMX, ~8 s on a 2-core EPYC without it), and a fixed step count either wastes the fast
one or overruns on the slow one. With ``sft.time_budget_min`` the planned steps (epochs x batches, or
``sft.max_steps``) stay the plan as long as they fit. After the first steps, and then at every eighth
of the plan, the mean time per step so far predicts the end; when it falls past the budget the plan
shrinks to the steps that fit, and the cosine learning-rate schedule ends at the new last step (it
still decays to zero where training stops, rather than being cut off at a high rate). When later
steps run faster than the first ones, the plan grows back, never past the configured steps: a demo
whose first ten steps ran at 4.7 s/step was cut to 255 of 334 steps and then averaged 3.9 s/step,
ending after 16.7 of its 20 minutes. A machine fast enough trains exactly the configured steps.

A killed run resumes with its plan: the schedule's end is saved with the scheduler (``PlannedCosine``
is a callable object, whose attributes LambdaLR saves) and the time already spent with each checkpoint.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from agentdistill.run_layout import CHECKPOINT_SPENT as SPENT_FILE  # in each checkpoint folder: seconds spent to it


class PlannedCosine:
    """The LambdaLR factor of transformers' cosine schedule (linear warm-up, half a cosine to zero at ``end``)
    with an ``end`` that a ``TimeBudget`` may move earlier during training."""

    def __init__(self, warmup: int, end: int):
        self.warmup = warmup
        self.end = end

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return step / max(1, self.warmup)
        progress = (step - self.warmup) / max(1, self.end - self.warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


class PlannedCosineMixin:
    """For a transformers Trainer: ``lr_scheduler_type="cosine"`` as a ``PlannedCosine`` (the same rates),
    so that a ``TimeBudget`` can move its end; any other schedule is the trainer's own."""

    def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
        from torch.optim.lr_scheduler import LambdaLR

        if self.args.lr_scheduler_type != "cosine":  # type: ignore[attr-defined]
            return super().create_scheduler(num_training_steps, optimizer)  # type: ignore[misc]
        if self.lr_scheduler is None:  # type: ignore[has-type]
            cosine = PlannedCosine(self.args.get_warmup_steps(num_training_steps), num_training_steps)  # type: ignore[attr-defined]
            self.lr_scheduler = LambdaLR(optimizer or self.optimizer, cosine)  # type: ignore[attr-defined]
            self._created_lr_scheduler = True
        return self.lr_scheduler


def planned_cosine(lr_scheduler: Any) -> PlannedCosine:
    """The ``PlannedCosine`` inside a trainer's scheduler; a clear error for any other schedule."""
    factors = getattr(lr_scheduler, "lr_lambdas", None) or [None]
    if not isinstance(factors[0], PlannedCosine):
        raise TypeError("a time budget needs the trainer's PlannedCosine schedule (use PlannedCosineMixin)")
    return factors[0]


class TimeBudget(TrainerCallback):
    """Moves the end of the planned steps, and of the cosine schedule with them, so that training ends within
    ``budget_s``: earlier when the steps so far predict an overrun, later again (up to the trainer's plan)
    when they predict time to spare.

    ``report`` receives a sentence each time the plan changes; ``clock`` is injectable for tests.
    """

    def __init__(self, budget_s: float, *, first_check: int = 10, checks: int = 8,
                 report: Callable[[str], None] = print, clock: Callable[[], float] = time.perf_counter):
        if budget_s <= 0:
            raise ValueError(f"budget_s must be positive, got {budget_s}")
        self.budget_s = budget_s
        self.first_check = first_check
        self.checks = checks
        self.report = report
        self.clock = clock
        self.spent_before = 0.0  # seconds spent by earlier processes of a resumed run
        self.t0 = 0.0
        self.step0 = 0
        self.every = 1
        self.planned_steps = 0  # the trainer's plan before any budget cut
        self.progress: Any = None  # the trainer's ProgressCallback, whose bar is resized with the plan

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        cosine = planned_cosine(kwargs.get("lr_scheduler"))
        self.planned_steps = state.max_steps
        state.max_steps = min(state.max_steps, cosine.end)  # a resumed run keeps the plan it had shrunk to
        spent = _checkpoint_dir(args, state) / SPENT_FILE
        if state.global_step and spent.is_file():
            self.spent_before = float(json.loads(spent.read_text())["spent_s"])
        self.step0 = state.global_step
        self.every = max(1, state.max_steps // self.checks)
        self.t0 = self.clock()

    def spent_s(self) -> float:
        return self.spent_before + self.clock() - self.t0

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        done = state.global_step - self.step0
        if done < self.first_check or (done - self.first_check) % self.every:
            return
        cosine = planned_cosine(kwargs.get("lr_scheduler"))
        spent = self.spent_s()
        s_per_step = (spent - self.spent_before) / done
        fits = min(self.planned_steps, state.global_step + max(1, int((self.budget_s - spent) / s_per_step)))
        if fits == cosine.end:
            return
        self.report(f"time budget {self.budget_s / 60:.1f} min: at {s_per_step:.2f} s/step the {cosine.end} planned "
                    f"steps would take {(spent + (cosine.end - state.global_step) * s_per_step) / 60:.1f} "
                    f"min; training {fits} steps")
        cosine.end = state.max_steps = fits
        bar = getattr(self.progress, "training_bar", None)
        if bar is not None:
            bar.total = fits
            bar.refresh()

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        folder = _checkpoint_dir(args, state)
        if folder.is_dir():
            (folder / SPENT_FILE).write_text(json.dumps({"spent_s": round(self.spent_s(), 3)}) + "\n")


def _checkpoint_dir(args: Any, state: Any) -> Path:
    """The folder the trainer saves the checkpoint of ``state.global_step`` in."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    return Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
