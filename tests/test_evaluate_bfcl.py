"""The BFCL checker against BFCL's own answers (the dev data), its rules one by one, the reply parser, and a
real SmolLM2 run that writes results.jsonl and metrics.json and resumes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from agentdistill.errors import UserError
from agentdistill.evaluate.bfcl import BfclEntry, check_call, check_entry, read_category, standardize_string
from agentdistill.evaluate.bfcl_runner import RESULTS, messages_for, parse_calls, run_bfcl, wilson_interval

DEV = Path("/work/shared/data/bfcl_dev")
needs_dev = pytest.mark.skipif(not (DEV / "BFCL_v3_simple.json").exists(), reason="BFCL dev data not present")


def _simple() -> list[BfclEntry]:
    return read_category(DEV, "simple")


def _answerable(entries: list[BfclEntry]) -> list[BfclEntry]:
    """The entries whose answer names their function: simple_363's answer calls ``find_closest`` for the
    function ``restaurant_search.find_closest``, so no reply can pass it, in BFCL's checker or here."""
    out = [e for e in entries if next(iter(e.ground_truth[0])) == e.functions[0]["name"]]
    assert [e.id for e in entries if e not in out] == ["simple_363"]
    return out


def _pick(allowed: list[Any], k: int = 0) -> Any:
    """The k-th allowed value that is not the "may be omitted" marker, with dict answers made into calls."""
    value = [a for a in allowed if a != ""][k]
    if isinstance(value, dict):  # a dict parameter's answer holds allowed values per key
        return {key: _pick(vals) for key, vals in value.items() if any(v != "" for v in vals)}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [_pick([v]) for v in value]
    return value


def _first_call(entry: BfclEntry, omit_optional: bool = False) -> dict[str, dict[str, Any]]:
    """The call made of each parameter's first allowed value; with ``omit_optional``, without the parameters
    that may be left out (the answer allows "" and the function does not require them: in a few entries,
    such as simple_17, the answer allows "" for a required parameter, and BFCL then requires it)."""
    name, params = next(iter(entry.ground_truth[0].items()))
    required = set(entry.functions[0]["parameters"].get("required", []))
    return {name: {p: _pick(a) for p, a in params.items()
                   if any(v != "" for v in a) and not (omit_optional and "" in a and p not in required)}}


@needs_dev
def test_every_listed_possible_answer_of_the_dev_data_is_accepted():
    entries = _simple()
    assert len(entries) == 400
    broken = next(e for e in entries if e.id == "simple_363")
    assert not check_entry(broken, [_first_call(broken)]).valid
    checked = 0
    for e in _answerable(entries):
        call = _first_call(e)
        assert check_entry(e, [call]).valid, (e.id, call, check_entry(e, [call]))
        # the optional parameters ("" among the allowed values) left out
        assert check_entry(e, [_first_call(e, omit_optional=True)]).valid, e.id
        # every other allowed value of each parameter, the rest at their first
        name, params = next(iter(e.ground_truth[0].items()))
        for p, allowed in params.items():
            for k in range(1, len([a for a in allowed if a != ""])):
                other = copy.deepcopy(call)
                other[name][p] = _pick(allowed, k)
                verdict = check_entry(e, [other])
                assert verdict.valid, (e.id, p, other, verdict)
                checked += 1
    assert checked == 284  # every alternative the dev answers list was tried


def _perturbations(e: BfclEntry) -> list[tuple[str, str, dict[str, dict[str, Any]]]]:
    """(what, expected error_type, call) for each way to spoil the first allowed call of ``e``."""
    call = _first_call(e)
    name = next(iter(call))
    args = call[name]
    function = e.functions[0]
    props = function["parameters"]["properties"]
    out = [("wrong name", "wrong_func_name", {name + "_x": args}),
           ("unknown parameter", "unexpected_param", {name: {**args, "not_a_parameter_zz": 1}})]
    for p in function["parameters"].get("required", []):
        out.append((f"missing {p}", "missing_required", {name: {k: v for k, v in args.items() if k != p}}))
    for p, v in args.items():
        kind = props[p]["type"]
        # a value of neither the documented type nor the answer's own (BFCL's "variable" case)
        wrong = {"x": [1]} if kind not in ("dict",) else [[1]]
        out.append((f"{p} of the wrong type", "type_error", {name: {**args, p: wrong}}))
        not_allowed = {"string": "zz not an allowed value zz", "integer": 987654321, "float": 98765.4321,
                       "boolean": (not v) if isinstance(v, bool) else None}.get(kind)
        allowed = e.ground_truth[0][name][p]
        if not_allowed is not None and type(not_allowed) is type(_pick(allowed)) and not_allowed not in allowed:
            out.append((f"{p} not allowed", "value_error", {name: {**args, p: not_allowed}}))
    return out


@needs_dev
def test_perturbed_answers_of_the_dev_data_are_rejected_for_the_right_reason():
    kinds: dict[str, int] = {}
    for e in _answerable(_simple()):
        for what, error_type, call in _perturbations(e):
            verdict = check_entry(e, [call])
            assert not verdict.valid, (e.id, what, call)
            assert verdict.error_type == error_type, (e.id, what, verdict)
            kinds[error_type] = kinds.get(error_type, 0) + 1
    assert kinds["wrong_func_name"] == 399 and kinds["unexpected_param"] == 399
    assert kinds["missing_required"] > 400 and kinds["type_error"] > 400 and kinds["value_error"] > 300


@needs_dev
def test_a_reply_with_no_call_or_two_calls_fails_a_simple_entry():
    e = _simple()[0]
    assert check_entry(e, None).error_type == "decoder_failed"
    assert check_entry(e, []).error_type == "wrong_count"
    assert check_entry(e, [_first_call(e), _first_call(e)]).error_type == "wrong_count"


FUNCTION = {"name": "area", "description": "Area.", "parameters": {"type": "dict", "required": ["base"], "properties": {
    "base": {"type": "float"}, "unit": {"type": "string"}, "flag": {"type": "boolean"},
    "count": {"type": "integer"}, "points": {"type": "array", "items": {"type": "float"}},
    "where": {"type": "dict", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}}}}}
ANSWER = {"area": {"base": [10.0], "unit": ["square meters", ""], "flag": [True, ""], "count": [3, ""],
                   "points": [[1.5, 2.5], ""], "where": [{"city": ["New York", "NYC"], "zip": ["", "10001"]}, ""]}}


@pytest.mark.parametrize(("arguments", "valid"), [
    ({"base": 10}, True),  # an int is accepted where a float is documented
    ({"base": 10.0, "count": 3.0}, False),  # but no float where an int is
    ({"base": 10.0, "count": True}, False),  # and a bool is no int
    ({"base": 10.0, "flag": 1}, False),  # nor an int a bool
    ({"base": 10.0, "unit": "Square-Meters"}, True),  # strings standardized: case, spaces, ,./-_*^
    ({"base": 10.0, "unit": "square feet"}, False),
    ({"base": 10.0, "points": [1.5, 2.5]}, True),
    ({"base": 10.0, "points": [2.5, 1.5]}, False),  # lists compare element by element, in order
    ({"base": 10.0, "points": [1.5, "2.5"]}, False),  # and their items are type-checked
    ({"base": 10.0, "where": {"city": "nyc"}}, True),  # a dict key whose answer holds "" may be left out
    ({"base": 10.0, "where": {"city": "NYC", "zip": "10001"}}, True),
    ({"base": 10.0, "where": {"zip": "10001"}}, False),  # one whose answer does not, may not
    ({"base": 10.0, "where": {"city": "NYC", "state": "NY"}}, False),  # nor may an unknown key appear
    ({"base": 10.0, "where": {"city": "Boston"}}, False),
])
def test_bfcl_type_and_value_rules(arguments, valid):
    assert check_call(FUNCTION, {"area": arguments}, ANSWER).valid is valid


def test_an_answer_parameter_without_the_empty_marker_must_be_given():
    answer = copy.deepcopy(ANSWER)
    answer["area"]["unit"] = ["square meters"]
    verdict = check_call(FUNCTION, {"area": {"base": 10.0}}, answer)
    assert not verdict.valid and verdict.error_type == "missing_optional"


def test_a_parameter_the_function_knows_but_the_answer_omits_is_unexpected():
    answer = {"area": {"base": [10.0]}}
    assert check_call(FUNCTION, {"area": {"base": 10.0, "unit": "m"}}, answer).error_type == "unexpected_param"


def test_a_value_of_the_answers_own_type_is_a_variable_and_compared_as_is():
    # BFCL's answers name a variable as a string where another type is documented
    answer = {"area": {"base": ["b"]}}
    assert check_call(FUNCTION, {"area": {"base": "b"}}, answer).valid
    assert not check_call(FUNCTION, {"area": {"base": "B"}}, answer).valid  # not standardized


def test_standardize_string_is_bfcls():
    assert standardize_string("April 1, 2024") == standardize_string("april-1 2024") == "april12024"
    assert standardize_string("it's") == 'it"s'


def _entry(category: str, ground_truth: list[dict[str, Any]] | None = None) -> BfclEntry:
    two = [FUNCTION, {"name": "volume", "description": "Volume.", "parameters": {
        "type": "dict", "required": ["side"], "properties": {"side": {"type": "integer"}}}}]
    return BfclEntry(id=f"{category}_0", category=category, messages=[{"role": "user", "content": "q"}],
                     functions=two, ground_truth=ground_truth)


def test_irrelevance_passes_only_when_no_function_is_called():
    e = _entry("irrelevance")
    assert check_entry(e, []).valid
    assert check_entry(e, None).valid  # a reply that does not parse calls nothing, as in BFCL
    assert not check_entry(e, [{"area": {"base": 1.0}}]).valid
    assert check_entry(_entry("live_relevance"), [{"area": {}}]).valid
    assert not check_entry(_entry("live_relevance"), []).valid


def test_multiple_checks_the_one_call_against_the_answers_function():
    e = _entry("multiple", [{"volume": {"side": [3]}}])
    assert check_entry(e, [{"volume": {"side": 3}}]).valid
    assert check_entry(e, [{"area": {"base": 3.0}}]).error_type == "wrong_func_name"


def test_parallel_matches_calls_in_any_order_each_call_once():
    e = _entry("parallel_multiple", [{"volume": {"side": [3]}}, {"volume": {"side": [4]}}, {"area": {"base": [2.0]}}])
    calls = [{"area": {"base": 2}}, {"volume": {"side": 4}}, {"volume": {"side": 3}}]
    assert check_entry(e, calls).valid
    assert not check_entry(e, [calls[0], calls[1], calls[1]]).valid  # one call cannot answer two
    assert check_entry(e, calls[:2]).error_type == "wrong_count"


def test_parse_calls_reads_action_lines_a_json_list_and_answers():
    one = 'Thought: t\nAction: {"name": "f", "arguments": {"x": 1}}'
    assert parse_calls(one) == [{"f": {"x": 1}}]
    two = one + '\nAction: {"name": "g", "arguments": {}}'
    assert parse_calls(two) == [{"f": {"x": 1}}, {"g": {}}]
    listed = 'Thought: t\nAction: [{"name": "f", "arguments": {"x": 1}}, {"name": "g", "arguments": {"y": "a"}}]'
    assert parse_calls(listed) == [{"f": {"x": 1}}, {"g": {"y": "a"}}]
    assert parse_calls("Thought: none fits\nAnswer: I cannot do that.") == []
    assert parse_calls("The area is 25.") is None
    assert parse_calls("Action: [1, 2]") is None


@needs_dev
def test_the_prompt_shows_the_functions_as_tools_with_their_bfcl_types():
    e = _simple()[0]  # calculate_triangle_area(base: integer, height: integer, unit?: string)
    system, user = messages_for(e)
    assert "calculate_triangle_area(base: int, height: int, unit?: str)" in system["content"]
    assert "one Action line per call" in system["content"]
    assert user == {"role": "user", "content": e.messages[0]["content"]}


def test_wilson_interval_brackets_the_rate_and_narrows_with_n():
    lo, hi = wilson_interval(20, 40)
    assert lo < 0.5 < hi
    lo2, hi2 = wilson_interval(200, 400)
    assert hi2 - lo2 < hi - lo
    assert wilson_interval(0, 0) is None and wilson_interval(0, 5)[0] == 0.0


class CountingLLM:
    """The real model, with a count of the requests it was given (to see what a resumed run generates)."""

    def __init__(self, llm: Any):
        self.llm, self.name, self.requests = llm, llm.name, 0

    def generate(self, requests):
        self.requests += len(requests)
        return self.llm.generate(requests)


@needs_dev
@pytest.mark.slow
def test_a_real_smollm2_run_writes_results_and_metrics_and_resumes(bundled_models, tmp_path):
    from typer.testing import CliRunner

    from agentdistill.cli import app
    from agentdistill.config import RunConfig
    from agentdistill.llm import make_llm

    out = tmp_path / "bfcl"
    result = CliRunner().invoke(app, ["bench", "bfcl", "--model", "smollm2-135m", "--data", str(DEV), "--limit", "3",
                                      "--max-tokens", "24", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "simple" in result.output and "irrelevance" in result.output
    rows = [json.loads(line) for line in (out / RESULTS).read_text().splitlines()]
    assert [r["id"] for r in rows if r["category"] == "simple"] == ["simple_0", "simple_1", "simple_2"]
    assert len(rows) == 6
    assert all(isinstance(r["output"], str) and isinstance(r["valid"], bool) for r in rows)
    # decoded under the step grammar (the default): every reply opens a step, and a call names an offered function
    assert all(r["grammar"] and r["output"].startswith("Thought:") for r in rows)
    assert not any(r["error_type"] in ("wrong_func_name", "unexpected_param") for r in rows)
    metrics = json.loads((out / "metrics.json").read_text())
    for category in ("simple", "irrelevance"):
        m = metrics["categories"][category]
        assert m["n"] == 3 and m["correct"] == sum(r["valid"] for r in rows if r["category"] == category)
        assert m["ci95"][0] <= m["accuracy"] <= m["ci95"][1]
    # a second run with a larger limit generates only the new entries and keeps the old rows
    llm = CountingLLM(make_llm("smollm2-135m", None, RunConfig(), batch_size=8))
    metrics = run_bfcl(llm, DEV, ["simple", "irrelevance"], out, limit=5, max_tokens=24)
    rows2 = [json.loads(line) for line in (out / RESULTS).read_text().splitlines()]
    assert llm.requests == 4 and len(rows2) == 10 and rows2[:6] == rows
    assert metrics["categories"]["irrelevance"]["n"] == 5 and metrics["grammar"] is True
    assert json.loads((out / "metrics.json").read_text()) == metrics
    # free replies never join a folder of constrained ones
    with pytest.raises(UserError, match="decoded under the step grammar"):
        run_bfcl(llm, DEV, ["simple"], out, limit=6, max_tokens=24, grammar=False)


@needs_dev
def test_under_the_grammar_a_call_names_an_offered_function_with_every_required_argument():
    import llguidance
    import llguidance.hf

    from agentdistill.evaluate.bfcl_runner import MAX_CALLS, request_for, tools_for
    from agentdistill.llm.grammar import step_grammar
    from agentdistill.models.registry import load_tokenizer

    entry = _simple()[0]
    assert request_for(entry, 32, grammar=False).grammar is None
    grammar = request_for(entry, 32, grammar=True).grammar
    assert grammar == step_grammar(tools_for(entry), max_actions=MAX_CALLS)
    tokenizer = load_tokenizer("smollm2-135m")
    lltok = llguidance.hf.from_tokenizer(tokenizer)

    def accepted(text: str) -> bool:
        matcher = llguidance.LLMatcher(lltok, llguidance.grammar_from("gbnf", grammar))
        return matcher.consume_tokens(tokenizer.encode(text, add_special_tokens=False)) and matcher.is_accepting()

    function = entry.functions[0]  # calculate_triangle_area(base: integer, height: integer, unit?: string)
    call = {"name": function["name"], "arguments": {"base": 10, "height": 5}}
    assert function["parameters"]["required"] == ["base", "height"]
    assert accepted(f"Thought: t\nAction: {json.dumps(call)}")
    assert accepted(f"Thought: t\nAction: {json.dumps(call)}\nAction: {json.dumps(call)}")  # parallel lines
    assert accepted("Thought: t\nAnswer: none of the functions fits.")
    for wrong in ({"name": function["name"], "arguments": {"base": 10}},  # a required argument left out
                  {"name": function["name"], "arguments": {"base": 10, "height": 5, "colour": "red"}},  # not its own
                  {"name": function["name"], "arguments": {"base": "10", "height": 5}},  # a string for an integer
                  {"name": "triangle_area", "arguments": {"base": 10, "height": 5}}):  # not an offered function
        assert not accepted(f"Thought: t\nAction: {json.dumps(wrong)}"), wrong



@needs_dev
def test_the_html_report_shows_bfcl_accuracy_when_a_bench_is_in_the_run(tmp_path):
    from test_evaluate_runner import make_run

    from agentdistill.evaluate.bfcl_runner import rescore, summarize
    from agentdistill.evaluate.report import build_report
    from agentdistill.evaluate.runner import evaluate

    evaluate(tmp_path, make_run(tmp_path), "rule", quiet=True)
    assert "BFCL" not in build_report(tmp_path)
    e = _simple()[0]  # replies as a model might write them, scored by the real checker
    good = f'Thought: t\nAction: {json.dumps({"name": e.functions[0]["name"], "arguments": {"base": 10, "height": 5}})}'
    rows = [rescore(e, {"id": e.id, "category": "simple", "output": text}) for text in (good, "no call", good)]
    bench = tmp_path / "bench" / "bfcl" / "smollm2-135m-untuned"
    bench.mkdir(parents=True)
    (bench / "metrics.json").write_text(json.dumps({"categories": summarize(rows, ["simple"])}))
    page = build_report(tmp_path)
    assert "BFCL v3" in page and "smollm2-135m-untuned" in page and ">0.667<" in page
    lo, hi = wilson_interval(2, 3)
    assert f"{lo:.3f}-{hi:.3f}" in page
