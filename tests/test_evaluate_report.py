"""report.html: one self-contained page comparing every evaluated model."""

from __future__ import annotations

import json
import re

import pytest
from test_evaluate_runner import make_run

from agentdistill.errors import UserError
from agentdistill.evaluate.report import pick_examples, write_report
from agentdistill.evaluate.runner import evaluate


def test_report_compares_models_with_embedded_charts_and_traces(tmp_path):
    cfg = make_run(tmp_path)
    evaluate(tmp_path, cfg, "rule", quiet=True)
    unconstrained = cfg.model_copy(update={"agent": cfg.agent.model_copy(update={"constrain_tool_names": False})})
    evaluate(tmp_path, unconstrained, "rule", max_questions=3, name="rule-small", quiet=True)
    free_arguments = cfg.model_copy(update={"agent": cfg.agent.model_copy(update={"constrain_arguments": False})})
    evaluate(tmp_path, free_arguments, "rule", max_questions=3, name="rule-free-arguments", quiet=True)
    (tmp_path / "eval" / "half-done").mkdir()
    (tmp_path / "eval" / "half-done" / "results.jsonl").write_text("")
    page = write_report(tmp_path).read_text()

    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "rule-teacher" in page and "rule-small" in page
    assert page.count("tool and argument names constrained") == 1  # the decoding each model ran under is shown
    assert page.count("tool names constrained") == 1
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) >= 2 and all(len(b) > 1000 for b in images)  # headline + per-kind charts, inline
    assert not re.search(r"(src|href)=['\"]https?://", page)  # nothing fetched from a server
    rule = json.loads((tmp_path / "eval" / "rule-teacher" / "metrics.json").read_text())
    assert f"{rule['task_success_rate']:.3f}" in page
    assert "Not finished" in page and "half-done" in page
    assert page.count("<details>") >= 4  # example traces of both models
    assert "Observation: " in page and "Action: {" in page  # traces rendered in the wire format


def test_example_picker_shows_a_success_and_distinct_failures():
    def row(i, ok, status):
        return {"question_id": str(i), "scores": {"task_success": ok}, "trace": {"outcome": {"status": status}}}

    rows = [row(0, 0, "loop"), row(1, 0, "loop"), row(2, 1, "answered"), row(3, 0, "parse_error")]
    assert [r["question_id"] for r in pick_examples(rows, 3)] == ["2", "0", "3"]


def test_trace_text_is_escaped():
    from agentdistill.evaluate.report import _render_trace

    row = {"question": {"text": "Is <script>alert(1)</script> ok?", "persona": "x", "expect": None},
           "scores": {"task_success": 1, "called": []},
           "trace": {"outcome": {"status": "answered", "steps": 1},
                     "messages": [{"role": "user", "content": "<script>alert(1)</script>"},
                                  {"role": "assistant", "thought": "a < b", "content": "<b>no</b>"}]}}
    out = _render_trace(row)
    assert "<script>" not in out and "&lt;script&gt;" in out and "&lt;b&gt;no&lt;/b&gt;" in out


def test_replies_that_did_not_parse_are_shown_as_the_model_wrote_them():
    from agentdistill.evaluate.report import _turns

    row = {"raw_steps": ["I think the answer is 5", "Thought: ok\nAnswer: 5"],
           "trace": {"messages": [
               {"role": "system", "content": "tools"}, {"role": "user", "content": "2+3?"},
               {"role": "tool", "name": "format_error", "content": "Error: expected 'Action:' or 'Answer:'"},
               {"role": "assistant", "thought": "ok", "content": "5"}]}}
    roles = [r for r, _ in _turns(row)]
    assert roles == ["user", "assistant (did not parse)", "observation", "assistant"]
    assert _turns(row)[1][1] == "I think the answer is 5"
    row["raw_steps"][1] = "gibberish"  # a run that ended in parse_error: its last raw turn has no message
    row["trace"]["messages"].pop()
    assert _turns(row)[-1] == ("assistant (did not parse)", "gibberish")


def test_report_without_any_eval_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no finished evaluation"):
        write_report(tmp_path)


def test_report_shows_answer_correctness_per_family_and_each_verdict(tmp_path):
    from test_evaluate_runner import FACTS, _with_facts

    from agentdistill.jsonl import write_records

    cfg = make_run(tmp_path)
    write_records(tmp_path / "questions.jsonl", _with_facts(FACTS))
    evaluate(tmp_path, cfg, "rule", quiet=True)
    page = write_report(tmp_path).read_text()
    assert "answer correct" in page and "0.750" in page  # the headline column
    assert "By phrasing family" in page and "family.a" in page and "greet" in page
    assert "task success / answer correct" in page
    from agentdistill.evaluate.report import _render_trace
    from agentdistill.evaluate.runner import load_results

    rows = load_results(tmp_path / "eval" / "rule-teacher" / "results.jsonl")
    wrong = _render_trace(rows["q2"])
    assert "answer <span class='bad'>wrong</span> (the answer does not state 7 miles; offline)" in wrong
    assert "answer facts 7 miles" in wrong and "<span class='bad'>failure</span>" in wrong
    assert "answer <span class='ok'>correct</span>" in _render_trace(rows["q0"])


def test_report_compares_the_distilled_student_with_the_sft_student_on_their_common_questions(tmp_path):
    cfg = make_run(tmp_path)
    evaluate(tmp_path, cfg, "rule", name="student-sft", quiet=True)
    assert "Distillation against SFT alone" not in write_report(tmp_path).read_text()  # no pair yet
    evaluate(tmp_path, cfg, "rule", max_questions=3, name="student-uld", quiet=True)
    page = write_report(tmp_path).read_text()
    section = page.split("Distillation against SFT alone", 1)[1].split("<h2>", 1)[0]
    assert "student: 3 questions" in section  # paired on the questions both answered
    assert "<td>task_success_rate</td>" in section and "+0.000" in section  # the same model on both sides
