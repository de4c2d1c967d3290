"""`agentdistill demo --quick`: the whole pipeline, for real, on the bundled models (tiny sizes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentdistill.config import load_run_config

METRIC_KEYS = {
    "n", "format_valid_rate", "tool_selection_accuracy", "exact_tool_match", "argument_validity",
    "task_success_rate", "no_tool_accuracy", "loop_rate", "hallucinated_citation_rate", "mean_steps",
    "mean_latency_s", "per_tool", "per_persona",
}


def _demo(run_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    # a --set value reaches every stage through the run's saved config (checked below)
    return subprocess.run([sys.executable, "-m", "agentdistill.cli", "demo", "--quick", "--run", str(run_dir),
                           "--set", "eval.bootstrap=150"], capture_output=True, text=True, env=env, timeout=2400)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # every stage runs for real: ingest, synthesis, 2 evals, LoRA SFT
def test_quick_demo_evaluates_the_untuned_and_the_tuned_student_and_resumes(tmp_path):
    run_dir = tmp_path / "demo"
    proc = _demo(run_dir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # 8 at most: the quick demo's 60 questions hold out as many test questions as their families and topics allow
    n_test = sum(json.loads(line)["split"] == "test" for line in (run_dir / "questions.jsonl").open())
    for name in ("smollm2-135m-untuned", "smollm2-135m-sft"):
        metrics = json.loads((run_dir / "eval" / name / "metrics.json").read_text())
        assert set(metrics) >= METRIC_KEYS, f"{name} lacks {METRIC_KEYS - set(metrics)}"
        assert metrics["n"] == min(8, n_test) >= 5
        results = (run_dir / "eval" / name / "results.jsonl").read_text().splitlines()
        assert len(results) == metrics["n"]
    assert (run_dir / "adapters" / "smollm2-135m" / "adapter_config.json").exists()
    # the SFT stage was given what the demo's 30-minute budget left after the stages before it
    seconds = json.loads((run_dir / "stage_seconds.json").read_text())
    assert set(seconds) >= {"start", "ingest", "questions", "traces", "eval untuned student", "sft student",
                            "eval sft student"}
    assert seconds["start"] > 0  # the demo process's own imports
    sft_config = json.loads((run_dir / "adapters" / "smollm2-135m" / "agentdistill.json").read_text())["sft"]
    spent = sum(seconds[s] for s in ("start", "ingest", "questions", "traces", "eval untuned student"))
    assert 0 < sft_config["time_budget_min"] < 30 - spent / 60
    assert load_run_config(run_dir).eval.bootstrap == 150
    report = (run_dir / "report.html").read_text()
    assert "smollm2-135m-untuned" in report and "smollm2-135m-sft" in report

    # A second run finds every stage complete and only refreshes the report.
    again = _demo(run_dir)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "skip traces" in again.stderr and "skip sft student" in again.stderr


def test_the_untuned_baseline_runs_on_the_configured_subset_and_the_tuned_student_on_all():
    from agentdistill.config import RunConfig
    from agentdistill.pipeline.stages import build_stages

    def eval_args(cfg: RunConfig) -> tuple[list[str], list[str]]:
        stages = {s.name: s.args for s in build_stages(cfg, Path("run"), distill=False)}
        return stages["eval untuned student"], stages["eval sft student"]

    cfg = RunConfig()
    cfg.eval.max_questions, cfg.eval.baseline_max_questions = 200, 32
    untuned, tuned = eval_args(cfg)
    assert untuned[-2:] == ["--max-questions", "32"] and "--max-questions" not in tuned
    cfg.eval.max_questions = 8  # --quick: the baseline never gets more questions than the tuned student
    assert eval_args(cfg)[0][-2:] == ["--max-questions", "8"]
    cfg.eval.baseline_max_questions = None
    assert "--max-questions" not in eval_args(cfg)[0]


def test_with_llama_cpp_the_evals_run_on_gguf_files_and_the_adapter_is_exported_between(monkeypatch):
    from agentdistill.config import RunConfig
    from agentdistill.pipeline import stages as pipeline_stages

    def stage_args(cfg: RunConfig, available: bool) -> dict[str, list[str]]:
        monkeypatch.setattr(pipeline_stages, "gguf_evals_available", lambda: available)
        return {s.name: s.args for s in pipeline_stages.build_stages(cfg, Path("run"), distill=False)}

    cfg = RunConfig()
    cfg.export.gguf_quant = "q8_0"
    fast = stage_args(cfg, available=True)
    names = list(fast)
    assert names.index("sft student") < names.index("export student") < names.index("eval sft student")
    assert fast["export student"][-4:] == ["--to", "gguf", "--quant", "q8_0"]
    assert "smollm2-135m@gguf" in fast["eval untuned student"]
    assert "export/gguf/smollm2-135m-q8_0.gguf" in fast["eval sft student"]
    without = stage_args(cfg, available=False)
    cfg.pipeline.gguf_evals = False
    for plain in (without, stage_args(cfg, available=True)):
        assert "export student" not in plain and "adapters/smollm2-135m" in plain["eval sft student"]
        assert "student" in plain["eval untuned student"]


def test_with_distill_the_student_distills_as_long_as_sft_trained_and_is_evaluated_the_same_way(
        tmp_path, monkeypatch):
    from agentdistill.config import RunConfig
    from agentdistill.pipeline import stages as pipeline_stages

    monkeypatch.setattr(pipeline_stages, "gguf_evals_available", lambda: True)
    cfg = RunConfig()
    cfg.export.gguf_quant = "q8_0"
    stages = {s.name: s for s in pipeline_stages.build_stages(cfg, tmp_path, distill=True)}
    names = list(stages)
    assert names.index("eval sft student") < names.index("sft teacher") < names.index("teacher cache") \
        < names.index("distill") < names.index("export distilled student") < names.index("eval distilled student")
    assert stages["export distilled student"].args[-6:] == ["--adapter", "adapters/smollm2-135m-uld", "--to", "gguf",
                                                            "--quant", "q8_0"]
    assert "export/gguf/smollm2-135m-uld-q8_0.gguf" in stages["eval distilled student"].args
    assert stages["eval distilled student"].args[-1] == "smollm2-135m-uld"
    assert stages["eval sft student"].args[-1] == "smollm2-135m-sft"  # the pair the report compares

    distill = stages["distill"]
    assert distill.args_at_start(tmp_path) == []  # no SFT adapter yet: the configured steps
    adapter = tmp_path / "adapters" / "smollm2-135m"
    adapter.mkdir(parents=True)
    (adapter / "agentdistill.json").write_text(json.dumps({"steps": 248, "planned_steps": 298}))
    assert distill.args_at_start(tmp_path) == ["--max-steps", "248"]  # the steps SFT got, not those planned
    cfg.distill.max_steps = 50
    assert stages["distill"].args_at_start(tmp_path) == []  # the user's own choice stands

    cfg.distill.teacher = "runs/earlier/adapters/gemma3-270m"  # a teacher from an earlier run of the same data
    assert "sft teacher" not in {s.name for s in pipeline_stages.build_stages(cfg, tmp_path, distill=True)}


def test_the_summary_table_prints_every_rate_whole_on_an_80_column_terminal(tmp_path, capfd, monkeypatch):
    from agentdistill.pipeline.cli import print_summary

    monkeypatch.setenv("COLUMNS", "80")  # what rich assumes when the output is not a terminal
    for name, rate in (("smollm2-135m-untuned", 0.0), ("smollm2-135m-sft", 0.984375)):
        (tmp_path / "eval" / name).mkdir(parents=True)
        metrics = {"n": 128, "format_valid_rate": rate, "tool_selection_accuracy": 0.673, "loop_rate": 0.039,
                   "hallucinated_citation_rate": None, "mean_latency_s": 59.8}
        (tmp_path / "eval" / name / "metrics.json").write_text(json.dumps(metrics))
    print_summary(tmp_path)
    printed = capfd.readouterr().out
    assert "…" not in printed
    assert "0.984" in printed and "0.673" in printed and "smollm2-135m-untuned" in printed
    assert max(len(line) for line in printed.splitlines()) <= 80
