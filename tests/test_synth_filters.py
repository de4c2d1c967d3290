"""Trace filters: real rule-teacher traces through the real runtime and tools are kept; each fault is
rejected with its own reason (the faults are injected into otherwise real traces)."""

from __future__ import annotations

import copy

import pytest

from agentdistill.agent.runtime import run_agents
from agentdistill.config import RunConfig, ToolsConfig
from agentdistill.domains.uae_labour.citations import STYLE as LAW_CITATIONS
from agentdistill.domains.uae_labour.teacher import RuleTeacher
from agentdistill.records import Expect, Outcome, Question, Trace
from agentdistill.synth.filters import Rejection, check_trace
from agentdistill.tools import load_tools

QUESTIONS = {
    "calc": ("What is 18% of 4,500?", ["calculator"], {"calculator": {"expression": "18% of 4,500"}}),
    "convert": ("Convert 12 km to miles.", ["convert_units"], {"convert_units": {"value": 12}}),
    "hello": ("Hello there!", [], None),
}


@pytest.fixture(scope="module")
def tools():
    return load_tools(RunConfig(tools=ToolsConfig(packs=["general"])), None)


@pytest.fixture(scope="module")
def recorded(tools):
    """(question, trace) per key, recorded by the rule teacher through the real runtime."""
    keys = list(QUESTIONS)
    teacher = RuleTeacher(tool_names=tools.names())
    out = {}
    for i, result in run_agents(teacher, tools, [QUESTIONS[k][0] for k in keys], max_steps=4):
        text, expected, args = QUESTIONS[keys[i]]
        q = Question(id=f"q{i}", text=text, persona="employee", cluster=-1,
                     expect=Expect(tools=expected, arguments=args), kind="calculation" if expected else "no_tool")
        t = Trace(id=f"t{i}", question_id=q.id, tools=tools.specs(), messages=result.messages, teacher="rule",
                  outcome=result.outcome)
        out[keys[i]] = (q, t)
    return out


def _edit(trace: Trace, **outcome) -> Trace:
    t = copy.deepcopy(trace)
    if outcome:
        t.outcome = Outcome(**{**t.outcome.model_dump(), **outcome})
    return t


def test_good_traces_are_kept(recorded, tools):
    for q, t in recorded.values():
        assert check_trace(t, q, tools, max_steps=4) is None


def test_an_unfinished_conversation_is_rejected_by_status(recorded, tools):
    q, t = recorded["calc"]
    assert check_trace(_edit(t, status="max_steps"), q, tools, 4)[0] == "status_max_steps"
    assert check_trace(_edit(t, status="loop"), q, tools, 4)[0] == "status_loop"


def test_more_steps_than_allowed_is_rejected(recorded, tools):
    q, t = recorded["calc"]
    assert check_trace(t, q, tools, max_steps=1)[0] == "too_many_steps"


def test_a_citation_not_seen_in_any_observation_is_ungrounded(recorded, tools):
    q, t = recorded["calc"]
    bad = copy.deepcopy(t)
    bad.messages[-1]["content"] += " (Federal Decree-Law 33/2021, Art. 51)"
    reason, detail = check_trace(bad, q, tools, 4, LAW_CITATIONS)
    assert reason == "ungrounded" and "FDL 33/2021 Art. 51" in detail


def test_with_the_generic_style_a_section_no_observation_showed_is_ungrounded(recorded, tools):
    q, t = recorded["calc"]
    bad = copy.deepcopy(t)
    bad.messages[-1]["content"] += " (Handbook > Annual leave)"
    reason, detail = check_trace(bad, q, tools, 4)
    assert reason == "ungrounded" and "Handbook > Annual leave" in detail
    shown = copy.deepcopy(bad)
    obs = next(m for m in shown.messages if m["role"] == "tool")
    obs["content"] += "\n[1] Handbook > Annual leave: Staff get 30 days a year."
    assert check_trace(shown, q, tools, 4) is None


def test_using_a_tool_on_a_no_tool_question_is_rejected(recorded, tools):
    q, _ = recorded["hello"]
    _, t = recorded["calc"]
    assert check_trace(t, q, tools, 4)[0] == "unexpected_tool"


def test_missing_the_expected_tool_is_rejected(recorded, tools):
    q, _ = recorded["convert"]
    _, t = recorded["calc"]
    assert check_trace(t, q, tools, 4)[0] == "missing_tool"


def test_arguments_the_question_fixes_must_match(recorded, tools):
    q, t = recorded["convert"]
    bad_q = q.model_copy(update={"expect": Expect(tools=["convert_units"], arguments={"convert_units": {"value": 13}})})
    assert check_trace(t, bad_q, tools, 4)[0] == "wrong_arguments"


def test_an_invalid_call_and_a_tool_error_are_rejected(recorded, tools):
    q, t = recorded["convert"]
    bad = copy.deepcopy(t)
    bad.messages[2]["tool_calls"][0]["arguments"] = {"value": "twelve", "from_unit": "km", "to_unit": "miles"}
    assert check_trace(bad, q, tools, 4)[0] == "invalid_call"
    # a real failing call: the registry turns the tool's ValueError into an "Error: ..." observation
    result = tools.call("convert_units", {"value": 12, "from_unit": "km", "to_unit": "parsecs"})
    assert not result.ok
    bad = copy.deepcopy(t)
    bad.messages[3]["content"] = result.content
    assert check_trace(bad, q, tools, 4)[0] == "tool_error"


def test_a_reply_that_did_not_parse_is_a_parse_rejection(recorded, tools):
    q, t = recorded["calc"]
    bad = copy.deepcopy(t)
    bad.messages.insert(2, {"role": "tool", "name": "format_error", "content": "Error: expected 'Action:' ..."})
    assert check_trace(bad, q, tools, 4)[0] == "parse"


def test_a_rejection_record_round_trips(recorded):
    q, t = recorded["calc"]
    r = Rejection(question_id=q.id, reason="ungrounded", detail="x", trace=t)
    assert Rejection.model_validate_json(r.model_dump_json()) == r
