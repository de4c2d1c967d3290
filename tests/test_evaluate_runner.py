"""The eval runner end to end: real runtime, real tools, the real rule teacher as the model (no weights),
and a real SmolLM2 adapter for the slow test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentdistill.cli import app
from agentdistill.config import RunConfig, save_resolved
from agentdistill.errors import UserError
from agentdistill.evaluate.runner import default_name, evaluate, select_questions
from agentdistill.jsonl import write_records
from agentdistill.records import Expect, Question


def _q(i: int, text: str, tools: list[str], arguments: dict | None = None, split: str = "test",
       kind: str = "calculation", persona: str = "employee") -> Question:
    return Question(id=f"q{i}", text=text, persona=persona, cluster=i, split=split, kind=kind,
                    expect=Expect(tools=tools, arguments=arguments))


QUESTIONS = [
    _q(0, "What is 12 * 7?", ["calculator"], {"calculator": {"expression": "12*7"}}),
    _q(1, "How many days between 2024-01-01 and 2024-03-01?", ["date_diff"],
       {"date_diff": {"start_date": "2024-01-01", "end_date": "2024-03-01"}}, persona="hr"),
    _q(2, "Convert 10 km to miles.", ["convert_units"]),
    _q(3, "Hello, who are you?", [], kind="no_tool", persona="hr"),
    # the expectation disagrees with what the question asks: the rule teacher follows the record (it
    # plans from what the writer recorded) and calls convert_units, which the wording cannot fill, so
    # the call fails and the task with it
    _q(4, "What is 3 + 4?", ["convert_units"]),
    _q(5, "What is 1 + 1?", ["calculator"], split="train"),
]


def make_run(run: Path) -> RunConfig:
    cfg = RunConfig()
    cfg.tools.packs = ["general", "uae_labour"]  # the latter brings the offline teacher
    cfg.eval.batch_size = 2
    cfg.eval.bootstrap = 100
    run.mkdir(parents=True, exist_ok=True)
    save_resolved(cfg, run)
    write_records(run / "questions.jsonl", QUESTIONS)
    return cfg


def test_rule_teacher_eval_scores_what_it_did_and_resumes(tmp_path):
    cfg = make_run(tmp_path)
    m = evaluate(tmp_path, cfg, "rule", quiet=True)
    out = tmp_path / "eval" / "rule-teacher"
    assert m["n"] == 5 and m["split"] == "test"  # the train question is not evaluated
    assert m["format_valid_rate"] == 1.0 and m["loop_rate"] == 0.0
    assert m["tool_selection_accuracy"] == 1.0  # the teacher takes the recorded tools, q4's too
    assert m["no_tool_accuracy"] == 1.0 and m["argument_match"] == 1.0
    assert m["argument_validity"] == 0.75  # 3 of 4 calls: q4's convert_units has no arguments the wording gives
    assert m["task_success_rate"] == 0.8
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["task_success_rate"] == 0.8 and set(on_disk["ci95"]) >= {"task_success_rate", "loop_rate"}

    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["question_id"] for r in rows) == ["q0", "q1", "q2", "q3", "q4"]
    q0 = next(r for r in rows if r["question_id"] == "q0")
    assert q0["trace"]["messages"][2]["tool_calls"][0]["name"] == "calculator"
    assert "84" in q0["trace"]["outcome"]["answer"] and q0["scores"]["task_success"] == 1

    # kill simulation: the last two results never got written, and metrics.json is gone
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").write_text("".join(lines[:3]) + lines[3][:20])  # + a torn line
    (out / "metrics.json").unlink()
    again = evaluate(tmp_path, cfg, "rule", quiet=True)
    assert len((out / "results.jsonl").read_text().splitlines()) == 5  # 3 kept + 2 rerun, torn line dropped
    assert {k: again[k] for k in ("n", "task_success_rate", "per_tool")} == {
        k: m[k] for k in ("n", "task_success_rate", "per_tool")}

    with pytest.raises(UserError, match="holds an eval of model 'rule'"):
        evaluate(tmp_path, cfg, "student", name="rule-teacher", quiet=True)
    # the same model decoded another way is another eval: its results must not mix with these
    for option in ("constrain_tool_names", "constrain_arguments"):
        was = getattr(cfg.agent, option)
        toggled = cfg.model_copy(update={"agent": cfg.agent.model_copy(update={option: not was})})
        with pytest.raises(UserError, match=rf"{option}={was}.* not of 'rule' .*{option}={not was}"):
            evaluate(tmp_path, toggled, "rule", quiet=True)
    assert json.loads((out / "metrics.json").read_text())["constrain_tool_names"] is True


def test_an_eval_resumes_with_its_model_file_named_from_the_run_or_from_the_working_directory(tmp_path):
    from agentdistill.evaluate.runner import _check_same_model

    run, out = tmp_path / "run", tmp_path / "run" / "eval" / "x"
    out.mkdir(parents=True)
    for name in ("a.gguf", "b.gguf"):
        (run / name).write_bytes(b"GGUF")
    meta = {"model": "a.gguf", "split": "test", "served_model": None}
    _check_same_model(out, meta, run)
    _check_same_model(out, {**meta, "model": str(run / "a.gguf")}, run)  # the same file, another spelling
    with pytest.raises(UserError, match="holds an eval of model .*a.gguf"):
        _check_same_model(out, {**meta, "model": "b.gguf"}, run)


def test_max_questions_subsets_are_nested_and_bad_inputs_are_explained(tmp_path):
    make_run(tmp_path)
    three = [q.id for q in select_questions(tmp_path, "test", 3, seed=0)]
    four = [q.id for q in select_questions(tmp_path, "test", 4, seed=0)]
    assert len(three) == 3 and set(three) < set(four)
    with pytest.raises(UserError, match="no questions in the 'train' split"):
        write_records(tmp_path / "questions.jsonl", [q for q in QUESTIONS if q.split == "test"])
        select_questions(tmp_path, "train", None, 0)
    with pytest.raises(UserError, match="questions.jsonl does not exist"):
        select_questions(tmp_path / "nowhere", "test", None, 0)


def test_cli_eval_then_report(tmp_path):
    make_run(tmp_path)
    runner = CliRunner()
    r = runner.invoke(app, ["eval", "--run", str(tmp_path), "--model", "rule", "--max-questions", "3"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "eval" / "rule-teacher" / "metrics.json").read_text())["n"] == 3
    r = runner.invoke(app, ["report", "--run", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "rule-teacher" in (tmp_path / "report.html").read_text()


def test_default_names(tmp_path):
    cfg = RunConfig()
    assert default_name("student", tmp_path, cfg) == "smollm2-135m-untuned"
    assert default_name("rule", tmp_path, cfg) == "rule-teacher"
    assert default_name("http://127.0.0.1:8080/v1", tmp_path, cfg, served_model="qwen2.5-7b") == "qwen2.5-7b"
    sft = tmp_path / "adapters" / "smollm2-135m"
    sft.mkdir(parents=True)
    (sft / "adapter_config.json").write_text("{}")
    (sft / "agentdistill.json").write_text(json.dumps({"base_model": "smollm2-135m", "kind": "sft"}))
    assert default_name("adapters/smollm2-135m", tmp_path, cfg) == "smollm2-135m-sft"
    uld = tmp_path / "adapters" / "smollm2-135m-uld"
    uld.mkdir()
    (uld / "adapter_config.json").write_text("{}")
    assert default_name(str(uld), tmp_path, cfg) == "smollm2-135m-uld"


@pytest.mark.slow
def test_trained_adapter_is_evaluated_as_an_agent(tmp_path):
    """sft (1 step) -> eval of adapters/smollm2-135m through LocalBackend, batched: a real, if weak, agent."""
    from test_train_sft import make_run as make_traces  # tests/ is on sys.path (rootdir conftest)
    from test_train_sft import tiny_cfg

    from agentdistill.train.sft import train_sft

    cfg = make_run(tmp_path)
    make_traces(tmp_path)
    sft_cfg = tiny_cfg()
    cfg.sft = sft_cfg.sft
    train_sft(tmp_path, cfg, "student", max_steps=1)
    cfg.agent.max_steps = 1
    cfg.eval.max_new_tokens = 16
    m = evaluate(tmp_path, cfg, "adapters/smollm2-135m", max_questions=2, quiet=True)
    assert m["name"] == "smollm2-135m-sft" and m["n"] == 2
    rows = [json.loads(line) for line in (tmp_path / "eval" / "smollm2-135m-sft" / "results.jsonl").open()]
    assert len(rows) == 2
    for r in rows:
        assert r["trace"]["teacher"].endswith("smollm2-135m")  # the local backend ran the adapter
        assert r["trace"]["outcome"]["status"] in {"answered", "max_steps", "parse_error"}
        assert r["raw_steps"] and all(isinstance(t, str) for t in r["raw_steps"])
    assert 0.0 <= m["format_valid_rate"] <= 1.0 and m["mean_latency_s"] > 0


def test_backend_errors_are_recorded_as_failures_and_retried_on_the_next_run(tmp_path):
    from fault_server import MODEL, fault_server  # fault injection: an endpoint that answers 500

    cfg = make_run(tmp_path)
    cfg.teacher.max_retries = 0
    with fault_server([500]) as server:
        m = evaluate(tmp_path, cfg, server.url, served_model=MODEL, quiet=True)
        assert m["name"] == MODEL and m["statuses"] == {"backend_error": 5} and m["task_success_rate"] == 0.0
    with fault_server(["text:Thought: I can answer that.\nAnswer: Hello."]) as server:
        m = evaluate(tmp_path, cfg, server.url, served_model=MODEL, quiet=True)
        assert server.chat_requests() == 5  # every failed question was asked again, nothing else
    assert m["statuses"] == {"answered": 5} and m["no_tool_accuracy"] == 1.0 and m["tool_selection_accuracy"] == 0.0
    assert len((tmp_path / "eval" / MODEL / "results.jsonl").read_text().splitlines()) == 10


@pytest.mark.llamacpp
def test_eval_of_an_openai_compatible_endpoint_through_a_real_llamacpp_server(tmp_path, llamacpp_server):
    cfg = make_run(tmp_path)
    cfg.agent.max_steps = 2
    cfg.eval.max_new_tokens = 32
    m = evaluate(tmp_path, cfg, llamacpp_server.url, served_model=llamacpp_server.model, max_questions=2, quiet=True)
    assert m["name"] == llamacpp_server.model and m["n"] == 2
    assert "backend_error" not in m["statuses"] and m["mean_latency_s"] > 0
    rows = [json.loads(line) for line in (tmp_path / "eval" / m["name"] / "results.jsonl").open()]
    assert all(r["raw_steps"] and r["raw_steps"][0].strip() for r in rows)  # the server really generated text


def _with_facts(facts: dict[str, list[str]], family: str = "family.a") -> list[Question]:
    return [q.model_copy(update={"answer_facts": facts.get(q.id, []), "family": family if q.id != "q3" else "greet"})
            for q in QUESTIONS]


FACTS = {"q0": ["84"], "q1": ["60 days"], "q2": ["7 miles"], "q3": ["greeting"]}  # q2's fact is wrong on purpose


def test_answers_are_checked_and_each_result_keeps_its_verdict(tmp_path):
    cfg = make_run(tmp_path)
    write_records(tmp_path / "questions.jsonl", _with_facts(FACTS))
    m = evaluate(tmp_path, cfg, "rule", quiet=True)
    assert m["answer_correct_rate"] == 0.75  # q4 has no facts: not counted
    assert m["task_success_rate"] == 0.6  # q2 chose the right tool but its answer is not the one due
    assert m["answer_checker"] == {"judge": None, "judged": 0, "checked": 4}
    assert m["per_family"]["greet"]["answer_correct_rate"] == 1.0 and m["per_family"]["family.a"]["n"] == 4
    assert m["ci95"]["answer_correct_rate"] is not None and "retrieval_hit_rate" in m
    rows = {r["question_id"]: r for r in map(json.loads, (tmp_path / "eval" / "rule-teacher" / "results.jsonl").open())}
    assert rows["q0"]["verdict"] == {"correct": True, "reason": "the answer states 84", "by": "offline"}
    assert rows["q2"]["verdict"]["correct"] is False and "7 miles" in rows["q2"]["verdict"]["reason"]
    assert rows["q2"]["scores"]["tool_selection"] == 1 and rows["q2"]["scores"]["task_success"] == 0
    assert rows["q4"]["verdict"]["correct"] is None


def test_an_llm_judge_gives_the_verdicts_and_they_are_reused(tmp_path):
    from test_evaluate_answer_check import judge_server  # a stdlib OpenAI-compatible endpoint with canned replies

    from agentdistill.config import JudgeConfig
    from agentdistill.evaluate.runner import compute_metrics

    cfg = make_run(tmp_path)
    questions = _with_facts(FACTS)
    write_records(tmp_path / "questions.jsonl", questions)
    with judge_server(['{"correct": true, "reason": "the judge agrees"}'] * 3 + [500]) as (url, requests):
        cfg.eval.judge = JudgeConfig(base_url=url, model="judge-model", max_retries=0)
        m = evaluate(tmp_path, cfg, "rule", quiet=True)
        assert len(requests) == 4  # one per question with facts; the last one met a 500
        rows = [json.loads(line) for line in (tmp_path / "eval" / "rule-teacher" / "results.jsonl").open()]
        by = sorted(r["verdict"]["by"] for r in rows if r["verdict"]["correct"] is not None)
        assert by == ["judge:judge-model"] * 3 + ["offline"]  # the failed one fell back to the offline checker
        assert m["answer_checker"] == {"judge": "judge:judge-model", "judged": 3, "checked": 4}
        again = compute_metrics(tmp_path, [q for q in questions if q.split == "test"],
                                tmp_path / "eval" / "rule-teacher" / "results.jsonl", cfg)
        assert len(requests) == 4 and again["answer_correct_rate"] == m["answer_correct_rate"]  # no second ask
    # without the judge configured, its stored verdicts are not used: the offline checker's count
    cfg.eval.judge = None
    offline = compute_metrics(tmp_path, [q for q in questions if q.split == "test"],
                              tmp_path / "eval" / "rule-teacher" / "results.jsonl", cfg)
    assert offline["answer_correct_rate"] == 0.75 and offline["answer_checker"]["judged"] == 0


def test_cli_eval_on_the_dev_split_prints_answer_correctness(tmp_path):
    make_run(tmp_path)
    write_records(tmp_path / "questions.jsonl",
                  [q.model_copy(update={"split": "dev", "answer_facts": FACTS.get(q.id, [])}) for q in QUESTIONS])
    r = CliRunner().invoke(app, ["eval", "--run", str(tmp_path), "--model", "rule", "--split", "dev"])
    assert r.exit_code == 0, r.output
    assert "answer_correct_rate" in r.output and "answers checked: 4 of 6" in r.output
    assert json.loads((tmp_path / "eval" / "rule-teacher" / "metrics.json").read_text())["split"] == "dev"
    r = CliRunner().invoke(app, ["eval", "--run", str(tmp_path), "--model", "rule", "--split", "validation"])
    assert isinstance(r.exception, UserError) and "unknown split" in str(r.exception)


def test_cli_eval_on_a_question_file_uses_all_its_questions_whatever_their_split(tmp_path):
    make_run(tmp_path)
    fixed = tmp_path / "fixed.jsonl"
    write_records(fixed, [q.model_copy(update={"answer_facts": FACTS.get(q.id, [])}) for q in QUESTIONS[:3]])
    r = CliRunner().invoke(app, ["eval", "--run", str(tmp_path), "--model", "rule", "--questions", str(fixed),
                                 "--name", "fixed"])
    assert r.exit_code == 0, r.output
    metrics = json.loads((tmp_path / "eval" / "fixed" / "metrics.json").read_text())
    assert metrics["n"] == 3 and metrics["split"] == "file:fixed.jsonl"
    results = [json.loads(line) for line in (tmp_path / "eval" / "fixed" / "results.jsonl").open()]
    assert [row["question_id"] for row in results] == ["q0", "q1", "q2"]
    r = CliRunner().invoke(app, ["eval", "--run", str(tmp_path), "--model", "rule",
                                 "--questions", str(tmp_path / "missing.jsonl")])
    assert isinstance(r.exception, UserError) and "missing.jsonl does not exist" in str(r.exception)
    r = CliRunner().invoke(app, ["eval", "--run", str(tmp_path), "--model", "rule", "--questions", str(fixed),
                                 "--split", "dev"])
    assert isinstance(r.exception, UserError) and "--split and --questions" in str(r.exception)


def test_cli_eval_records_the_relevance_above_which_a_tool_comes_first_and_refuses_a_bad_one(tmp_path):
    make_run(tmp_path)
    base = ["eval", "--run", str(tmp_path), "--model", "rule", "--max-questions", "1"]
    r = CliRunner().invoke(app, [*base, "--act-above-relevance", "0.4", "--name", "on"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "eval" / "on" / "metrics.json").read_text())["act_above_relevance"] == 0.4
    r = CliRunner().invoke(app, [*base, "--act-above-relevance", "off", "--name", "off"])
    assert json.loads((tmp_path / "eval" / "off" / "metrics.json").read_text())["act_above_relevance"] is None
    for bad in ("1.5", "high"):
        r = CliRunner().invoke(app, [*base, "--act-above-relevance", bad, "--name", "bad"])
        assert isinstance(r.exception, UserError) and f"--act-above-relevance {bad!r}" in str(r.exception)


def test_cli_eval_routes_first_steps_only_with_training_traces_and_refuses_a_bad_count(tmp_path):
    from test_agent_routing import trace

    make_run(tmp_path)
    base = ["eval", "--run", str(tmp_path), "--model", "rule", "--max-questions", "1"]
    r = CliRunner().invoke(app, [*base, "--route-neighbours", "3", "--name", "routed"])
    assert isinstance(r.exception, UserError) and "no training traces" in str(r.exception)
    write_records(tmp_path / "traces.jsonl", [trace("What is 15% of 4,000?", "calculator")])
    r = CliRunner().invoke(app, [*base, "--route-neighbours", "3", "--name", "routed"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "eval" / "routed" / "metrics.json").read_text())["route_neighbours"] == 3
    for bad in ("0", "many"):
        r = CliRunner().invoke(app, [*base, "--route-neighbours", bad, "--name", "bad"])
        assert isinstance(r.exception, UserError) and f"--route-neighbours {bad!r}" in str(r.exception)
