"""The pipeline as an ordered list of stages, each a CLI command plus a test of whether it is done.

Each stage runs as its own `agentdistill <command>` process: the user can run any of them by hand with
the same result, and memory held by one stage (a model, a trainer) is returned before the next one.
A stage is skipped when its outputs are complete; an incomplete stage is run again and resumes itself.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from agentdistill.config import RunConfig
from agentdistill.errors import UserError
from agentdistill.pipeline.time_budget import GGUF_EXPORT_SECONDS, add_stage_seconds, sft_budget
from agentdistill.run_layout import SFT_EVAL_SUFFIX, ULD_SUFFIX, RunLayout

console = Console(stderr=True)


@dataclass
class Stage:
    name: str
    args: list[str]
    is_done: Callable[[Path], bool]
    # arguments that depend on how the stages before this one went, decided when it starts
    args_at_start: Callable[[Path], list[str]] | None = None

    def run(self, run_dir: Path) -> float:
        args = [*self.args, *(self.args_at_start(run_dir) if self.args_at_start else [])]
        console.rule(f"[bold]{self.name}[/]  agentdistill {' '.join(args)}")
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "agentdistill.cli", *args], check=False)
        elapsed = time.perf_counter() - start
        add_stage_seconds(run_dir, self.name, elapsed)
        if proc.returncode != 0:
            raise UserError(
                f"stage '{self.name}' failed (exit {proc.returncode}) after {elapsed:.0f} s.",
                hint=f"Fix what it printed above, then run the same command again: finished stages in {run_dir} "
                "are skipped and this one resumes.",
            )
        return elapsed


def student_adapter(cfg: RunConfig) -> str:
    return RunLayout(Path()).adapter(cfg.models.student).as_posix()


def gguf_evals_available() -> bool:
    """Whether the student's evals can run through llama.cpp: llama-cpp-python and llama.cpp's GGUF converter
    (from llama-cpp-python's sdist, see export/gguf.py) are both here."""
    try:
        import llama_cpp  # noqa: F401

        from agentdistill.export.gguf import find_converter

        find_converter()
    except (ImportError, UserError):
        return False
    return True


def build_stages(cfg: RunConfig, run_dir: Path, distill: bool) -> list[Stage]:
    run = ["--run", str(run_dir)]
    student = cfg.models.student
    paths = [str(p) for p in cfg.corpus.paths]
    sizes = [n for n in (cfg.eval.max_questions, cfg.eval.baseline_max_questions) if n is not None]
    baseline_subset = ["--max-questions", str(min(sizes))] if cfg.eval.baseline_max_questions is not None else []
    gguf = cfg.pipeline.gguf_evals and gguf_evals_available()
    quant = cfg.export.gguf_quant
    relative = RunLayout(Path())  # paths as a command names them: relative to the run
    tuned_gguf = relative.gguf(student, quant).as_posix()  # export's file for the adapter adapters/<student>
    untuned = f"{student}-untuned"  # its folder under eval/
    sft_eval = f"{student}{SFT_EVAL_SUFFIX}"
    untuned_eval = Stage(
        "eval untuned student",
        ["eval", *run, "--model", f"{student}@gguf" if gguf else "student", "--name", untuned, *baseline_subset],
        lambda run_dir: RunLayout(run_dir).eval_done(untuned),
    )
    before_sft = [
        Stage("ingest", ["ingest", *paths, *run], lambda run_dir: RunLayout(run_dir).ingest_done()),
        Stage("questions", ["questions", *run], lambda run_dir: RunLayout(run_dir).questions_done()),
        Stage("traces", ["traces", *run], lambda run_dir: RunLayout(run_dir).traces_done()),
        untuned_eval,
    ]
    export_seconds = GGUF_EXPORT_SECONDS if gguf else 0.0
    stages = [
        *before_sft,
        Stage("sft student", ["sft", *run, "--model", "student"],
              lambda run_dir: RunLayout(run_dir).adapter_done(student),
              args_at_start=lambda run_dir: _sft_budget_args(cfg, run_dir, before_sft, untuned_eval.name,
                                                             RunLayout(run_dir).eval_dir(untuned), export_seconds,
                                                             llamacpp_evals=gguf)),
        *([Stage("export student", ["export", *run, "--to", "gguf", "--quant", quant],
                 lambda run_dir: RunLayout(run_dir).gguf_done(student, quant))]
          if gguf else []),
        Stage(
            "eval sft student",
            ["eval", *run, "--model", tuned_gguf if gguf else student_adapter(cfg), "--name", sft_eval],
            lambda run_dir: RunLayout(run_dir).eval_done(sft_eval),
        ),
    ]
    if distill:
        stages += distill_stages(cfg, run_dir, gguf)
    stages.append(Stage("report", ["report", *run], lambda _: False))  # cheap: always refreshed
    return stages


def distill_stages(cfg: RunConfig, run_dir: Path, gguf: bool) -> list[Stage]:
    """The comparison SFT + ULD against SFT alone: the teacher (trained here unless distill.teacher names one
    from an earlier run), its cache, the student distilled for as many steps as the SFT student trained (same
    data, seed and evaluation path), exported and evaluated as the SFT student was; the report compares the two
    on the same questions with paired intervals."""
    run = ["--run", str(run_dir)]
    student, teacher, quant = cfg.models.student, cfg.models.teacher, cfg.export.gguf_quant
    distilled = RunLayout(Path()).uld_adapter(student)  # as a command names it: relative to the run
    stages = []
    if cfg.distill.teacher is None:
        stages.append(Stage("sft teacher", ["sft", *run, "--model", "teacher"],
                            lambda run_dir: RunLayout(run_dir).adapter_done(teacher)))
    stages += [
        Stage("teacher cache", ["teacher-cache", *run], lambda run_dir: RunLayout(run_dir).teacher_cache_done()),
        Stage("distill", ["distill", *run], lambda run_dir: RunLayout(run_dir).uld_adapter_done(student),
              args_at_start=lambda run_dir: _steps_of_sft(cfg, run_dir)),
    ]
    if gguf:
        stages.append(Stage("export distilled student",
                            ["export", *run, "--adapter", distilled.as_posix(), "--to", "gguf", "--quant", quant],
                            lambda run_dir: RunLayout(run_dir).gguf_done(distilled.name, quant)))
    model = RunLayout(Path()).gguf(distilled.name, quant).as_posix() if gguf else distilled.as_posix()
    name = f"{student}{ULD_SUFFIX}"
    stages.append(Stage("eval distilled student", ["eval", *run, "--model", model, "--name", name],
                        lambda run_dir: RunLayout(run_dir).eval_done(name)))
    return stages


def _steps_of_sft(cfg: RunConfig, run_dir: Path) -> list[str]:
    """``--max-steps`` of the SFT student, so that both arms train equally long; none when distill.max_steps is
    set (the user's choice) or the SFT adapter records no steps."""
    from agentdistill.export.merge import adapter_facts

    if cfg.distill.max_steps is not None:
        return []
    steps = adapter_facts(RunLayout(run_dir).adapter(cfg.models.student)).get("steps")
    return ["--max-steps", str(steps)] if isinstance(steps, int) and steps > 0 else []


def _sft_budget_args(cfg: RunConfig, run_dir: Path, before_sft: list[Stage], untuned_eval_stage: str,
                     untuned_eval_dir: Path, after_sft_seconds: float = 0.0, llamacpp_evals: bool = False) -> list[str]:
    """``--time-budget-min`` for the student's SFT: what the pipeline's time budget leaves it."""
    from agentdistill.evaluate.runner import select_questions

    budget = sft_budget(
        cfg, run_dir, before_sft=[s.name for s in before_sft], untuned_eval_stage=untuned_eval_stage,
        untuned_eval_dir=untuned_eval_dir,
        tuned_questions=lambda: select_questions(run_dir, cfg.eval.split, cfg.eval.max_questions, cfg.seed),
        after_sft_seconds=after_sft_seconds, llamacpp_evals=llamacpp_evals,
    )
    if budget is None:
        if cfg.pipeline.time_budget_min is not None:
            console.print(f"[yellow]pipeline.time_budget_min: the untuned eval's time is not recorded in {run_dir}, "
                          "so SFT's share cannot be forecast; SFT keeps sft.time_budget_min[/]")
        return []
    console.print(f"[yellow]{budget.explanation}[/]")
    return ["--time-budget-min", f"{budget.seconds / 60:.2f}"]


def run_stages(stages: list[Stage], run_dir: Path) -> dict[str, float]:
    """Run each stage that is not done yet; return seconds per stage that ran."""
    timings: dict[str, float] = {}
    for stage in stages:
        if stage.is_done(run_dir):
            console.print(f"[dim]skip {stage.name}: outputs complete in {run_dir}[/]")
            continue
        timings[stage.name] = stage.run(run_dir)
    return timings
