"""Comparing two arms of evals, each over several training seeds, question by question."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentdistill.errors import UserError
from agentdistill.evaluate.compare import compare_arms, plot_comparison


def _eval(tmp_path: Path, name: str, correct: list[int], texts: list[str] | None = None) -> Path:
    """An eval folder whose question i was answered correctly when correct[i] is 1."""
    folder = tmp_path / name
    folder.mkdir()
    texts = texts or [f"question {i}" for i in range(len(correct))]
    with open(folder / "results.jsonl", "w") as f:
        for text, ok in zip(texts, correct, strict=True):
            scores = {"one": 1, "format_valid": 1, "checks_answer": 1, "answer_correct": ok}
            row = {"question_id": f"q-{text}", "question": {"text": text}, "scores": scores}
            f.write(json.dumps(row) + "\n")
    return folder


def _rate(result, metric: str):
    return next(r for r in result.rates if r.metric == metric)


def test_an_arm_right_where_the_other_is_wrong_differs_by_one_with_a_tight_interval(tmp_path):
    a = [_eval(tmp_path, f"a{s}", [0] * 40) for s in range(3)]
    b = [_eval(tmp_path, f"b{s}", [1] * 40) for s in range(3)]
    r = _rate(compare_arms(a, b, ["answer_correct_rate"]), "answer_correct_rate")
    assert (r.a.value, r.b.value, r.difference, r.interval) == (0.0, 1.0, 1.0, [1.0, 1.0])


def test_identical_arms_differ_by_zero_and_the_interval_holds_zero(tmp_path):
    pattern = [i % 2 for i in range(40)]
    a = [_eval(tmp_path, f"a{s}", pattern) for s in range(3)]
    b = [_eval(tmp_path, f"b{s}", pattern) for s in range(3)]
    r = _rate(compare_arms(a, b), "answer_correct_rate")
    assert r.difference == 0.0 and r.interval[0] <= 0.0 <= r.interval[1]


def test_seeds_that_disagree_widen_the_interval(tmp_path):
    """Same pooled rates; in the noisy arm one seed is right everywhere and the others nowhere."""
    steady = [_eval(tmp_path, f"steady{s}", [1] * 20 + [0] * 40) for s in range(3)]
    noisy = [_eval(tmp_path, "noisy0", [1] * 60), _eval(tmp_path, "noisy1", [0] * 60),
             _eval(tmp_path, "noisy2", [0] * 60)]
    base = [_eval(tmp_path, f"base{s}", [0] * 60) for s in range(3)]
    calm, wild = (_rate(compare_arms(base, arm), "answer_correct_rate") for arm in (steady, noisy))
    assert calm.difference == pytest.approx(wild.difference)
    assert wild.interval[1] - wild.interval[0] > 2 * (calm.interval[1] - calm.interval[0])


def test_only_questions_every_eval_answered_are_compared(tmp_path):
    a = [_eval(tmp_path, "a", [1, 1, 1], ["x", "y", "z"])]
    b = [_eval(tmp_path, "b", [0, 0], ["y", "w"])]
    result = compare_arms(a, b, ["answer_correct_rate"])
    assert result.n_questions == 1 and _rate(result, "answer_correct_rate").difference == -1.0


def test_evals_without_a_shared_question_or_results_are_refused(tmp_path):
    a, b = _eval(tmp_path, "a", [1], ["x"]), _eval(tmp_path, "b", [1], ["y"])
    with pytest.raises(UserError, match="share no question"):
        compare_arms([a], [b])
    with pytest.raises(UserError, match="holds no results.jsonl"):
        compare_arms([a], [tmp_path])
    with pytest.raises(UserError, match="unknown metric 'accuracy'"):
        compare_arms([a], [a], ["accuracy"])


def test_cli_compare_prints_each_arm_per_seed_and_the_difference(tmp_path):
    a = [_eval(tmp_path, f"a{s}", [1, 0, 0, 0]) for s in range(2)]
    b = [_eval(tmp_path, f"b{s}", [1, 1, 0, 0]) for s in range(2)]
    args = [x for pair in [("--a", str(p)) for p in a] + [("--b", str(p)) for p in b] for x in pair]
    command = [sys.executable, "-m", "agentdistill.cli", "compare", *args, "--metric", "answer_correct_rate"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    assert "4 questions, 2 vs 2 seeds" in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if "answer_correct_rate" in line)
    assert "0.250/0.250" in row and "0.500/0.500" in row and "+0.250" in row


def test_the_plot_draws_one_panel_per_rate_both_arms_have(tmp_path):
    from PIL import Image

    a = [_eval(tmp_path, f"a{s}", [1, 0, 0, 0]) for s in range(3)]
    b = [_eval(tmp_path, f"b{s}", [1, 1, 0, 0]) for s in range(3)]
    one = plot_comparison(compare_arms(a, b, ["answer_correct_rate"]), tmp_path / "one.png", ("CE", "ULD"))
    both = compare_arms(a, b, ["answer_correct_rate", "format_valid_rate"])
    two = plot_comparison(both, tmp_path / "sub" / "two.png")
    width_one, width_two = Image.open(one).size[0], Image.open(two).size[0]
    assert width_two > 1.5 * width_one  # a second panel, not the first one stretched
    with pytest.raises(UserError, match="nothing to plot"):
        plot_comparison(compare_arms(a, b, ["tool_selection_accuracy"]), tmp_path / "none.png")


def test_cli_compare_names_the_arms_and_refuses_a_third_label(tmp_path):
    a, b = _eval(tmp_path, "a", [1, 0]), _eval(tmp_path, "b", [1, 1])
    base = [sys.executable, "-m", "agentdistill.cli", "compare", "--a", str(a), "--b", str(b), "--metric",
            "answer_correct_rate"]
    env = {**os.environ, "COLUMNS": "200"}
    ok = subprocess.run([*base, "--labels", "CE,ULD", "--plot", str(tmp_path / "p.png")], capture_output=True,
                        text=True, timeout=120, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "ULD - CE on 2 questions" in ok.stdout and (tmp_path / "p.png").stat().st_size > 1000
    bad = subprocess.run([*base, "--labels", "CE,ULD,KL"], capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode != 0 and "names 3 arms" in bad.stdout + bad.stderr
