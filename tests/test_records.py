"""Canonical records: the four message shapes, errors that say which message is wrong, and the
schema-version guard."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentdistill.records import SCHEMA_VERSION, Chunk, Expect, Question, Trace, check_message

SYSTEM = {"role": "system", "content": "You answer UAE labour-law questions with tools."}
USER = {"role": "user", "content": "How much annual leave after two years?"}
CALL = {
    "role": "assistant",
    "thought": "Look it up.",
    "tool_calls": [{"name": "annual_leave", "arguments": {"years": 2}}],
}
RESULT = {"role": "tool", "name": "annual_leave", "content": "30 days (Federal Decree-Law 33/2021, Art. 29)"}
ANSWER = {"role": "assistant", "thought": "Done.", "content": "30 days (Federal Decree-Law 33/2021, Art. 29)."}


def _trace(messages, **over):
    fields = dict(
        id="t1",
        question_id="q1",
        tools=[{"name": "annual_leave", "description": "d", "parameters": {"type": "object", "properties": {}}}],
        messages=messages,
        teacher="rule",
        outcome={"answer": ANSWER["content"], "steps": 2, "status": "answered"},
        split="train",
    )
    fields.update(over)
    return Trace(**fields)


@pytest.mark.parametrize("message", [SYSTEM, USER, CALL, RESULT, ANSWER])
def test_canonical_shapes_are_accepted(message):
    check_message(message)


def test_a_call_may_omit_its_arguments():
    check_message({"role": "assistant", "thought": "", "tool_calls": [{"name": "now"}]})


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ({"role": "robot", "content": "x"}, "unknown role 'robot'"),
        ({"content": "x"}, "unknown role None"),
        ({"role": "user"}, "string 'content'"),
        ({"role": "system", "content": ["x"]}, "string 'content'"),
        ({"role": "tool", "content": "x"}, "'name' and 'content'"),
        ({"role": "tool", "name": "s", "content": 3}, "'name' and 'content'"),
        ({"role": "assistant", "content": "x"}, "string 'thought'"),
        ({"role": "assistant", "thought": "t"}, "either 'tool_calls' or 'content'"),
        ({**CALL, "content": "x"}, "either 'tool_calls' or 'content'"),
        ({"role": "assistant", "thought": "t", "tool_calls": []}, "non-empty list"),
        ({"role": "assistant", "thought": "t", "tool_calls": {"name": "a"}}, "non-empty list"),
        ({"role": "assistant", "thought": "t", "content": None}, "string 'content'"),
        ({"role": "assistant", "thought": "t", "content": 30}, "string 'content'"),
        ({"role": "assistant", "thought": "t", "tool_calls": [{"arguments": {}}]}, "tool_calls[0]: name"),
        ({"role": "assistant", "thought": "t", "tool_calls": [{"name": "a", "arguments": "x=1"}]}, "arguments"),
        ({"role": "assistant", "thought": "t", "tool_calls": [{"name": "a", "args": {}}]}, "tool_calls[0]: args"),
        ("user: hi", "must be a JSON object"),
    ],
)
def test_malformed_messages_are_refused_with_where_and_what(message, problem):
    with pytest.raises(ValueError) as info:
        check_message(message, where="messages[3]")
    assert str(info.value).startswith("messages[3]")
    assert problem in str(info.value)


def test_trace_validates_every_message_and_names_the_bad_one():
    bad = {"role": "assistant", "thought": "t", "tool_calls": [{"name": "a"}, {"arguments": {}}]}
    with pytest.raises(ValidationError) as info:
        _trace([SYSTEM, USER, bad])
    assert "messages[2].tool_calls[1]" in str(info.value)


def test_trace_round_trips_through_json():
    trace = _trace([SYSTEM, USER, CALL, RESULT, ANSWER])
    again = Trace.model_validate_json(trace.model_dump_json())
    assert again == trace
    assert again.schema_version == SCHEMA_VERSION


def test_records_refuse_unknown_fields():
    # a typo in a writer must fail loudly rather than drop the field
    with pytest.raises(ValidationError, match="questoin_id"):
        _trace([USER], questoin_id="q1")
    with pytest.raises(ValidationError):
        Chunk(id="c", doc_id="d", source="s", title="t", section_path="p", text="x", n_tokens=1, tokens=1)


def test_newer_schema_version_is_refused_with_advice():
    with pytest.raises(ValidationError, match="upgrade agentdistill"):
        Question(id="q", text="?", persona="p", cluster=0, schema_version=SCHEMA_VERSION + 1)
    assert Question(id="q", text="?", persona="p", cluster=0, schema_version=SCHEMA_VERSION).schema_version == 2
    # a file written before questions carried a family and facts still reads
    old = Question(id="q", text="?", persona="p", cluster=0, schema_version=1)
    assert old.family == "" and old.answer_facts == []


def test_question_expectations():
    no_tool = Question(id="q", text="Hi", persona="p", cluster=0, expect=Expect(tools=[]))
    unknown = Question(id="q", text="Hi", persona="p", cluster=0)
    assert no_tool.expect is not None and no_tool.expect.tools == []  # "answer without a tool"
    assert unknown.expect is None  # "no expectation recorded": not the same thing
    assert Question(id="q", text="?", persona="p", cluster=0, split="dev").split == "dev"
    with pytest.raises(ValidationError):
        Question(id="q", text="?", persona="p", cluster=0, split="validation")


def test_outcome_and_split_are_checked():
    with pytest.raises(ValidationError):
        _trace([USER], outcome={"answer": None, "steps": "many", "status": "loop"})
    with pytest.raises(ValidationError):
        _trace([USER], split="validation")
