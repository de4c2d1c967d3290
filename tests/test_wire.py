"""The ReAct wire format: render -> parse round-trips, the sloppy outputs small models really emit,
and precise errors (what was expected, at which character of the model's own text)."""

from __future__ import annotations

import json
import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentdistill.agent.wire import (
    STOP_SEQUENCES,
    WireFormatError,
    answer_ran_on,
    fold_whitespace,
    in_answer,
    parse_step,
    render_assistant,
    render_message,
    render_observation,
)
from agentdistill.records import check_message

PROPERTY = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])

# Text that stresses the parser: markers, quotes, braces, fences, newlines, non-ASCII, mixed with noise.
_TRICKY = [
    "Thought:", "Action:", "Answer:", "Final Answer:", "Observation:", "Action Input:", "```", "```json",
    "{", "}", "[", "]", '"', "'", "\\", ",", ":", "\n", " ", "\t", "é", "مادة 51", "日本", "😀", "null", "true",
]
tricky_text = st.lists(st.sampled_from(_TRICKY) | st.text(max_size=6), max_size=12).map("".join)
any_text = st.text() | tricky_text

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | any_text
)
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(any_text, kids, max_size=4),
    max_leaves=8,
)
arguments = st.dictionaries(any_text, json_values, max_size=5)
tool_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,24}", fullmatch=True)
tool_calls = st.lists(st.fixed_dictionaries({"name": tool_names, "arguments": arguments}), min_size=1, max_size=3)


def _ends_turn(answer: str) -> bool:
    """A line that opens another step (or an "Example:" heading) is where the model stopped answering; a
    wider net than the parser's, which is all a filter needs."""
    step_line = r"\n\s*[>*#]*[ \t]*(observation|thought|action|answer|final answer|example)"
    return re.search(step_line, answer, re.I) is not None


answers = any_text.filter(lambda a: a.strip() != "" and not _ends_turn(a.strip()))
plain_thoughts = st.text(alphabet=string.ascii_letters + string.digits + " .,'-", max_size=60).filter(
    lambda t: not re.match(r"\s*(thought|action|answer|final answer)\s*:", t, re.I)
)


# --- round trips -------------------------------------------------------------------------------


@PROPERTY
@given(thought=any_text, calls=tool_calls)
def test_action_step_round_trips(thought, calls):
    message = {"role": "assistant", "thought": thought, "tool_calls": calls}
    step = parse_step(render_assistant(message))
    assert step.to_message() == {"role": "assistant", "thought": fold_whitespace(thought), "tool_calls": calls}
    assert not step.is_answer


@PROPERTY
@given(thought=any_text, answer=answers)
def test_answer_step_round_trips(thought, answer):
    message = {"role": "assistant", "thought": thought, "content": answer}
    step = parse_step(render_assistant(message))
    assert step.is_answer
    assert step.to_message() == {"role": "assistant", "thought": fold_whitespace(thought), "content": answer.strip()}


@PROPERTY
@given(thought=any_text, name=tool_names, args=arguments)
def test_action_input_form_parses_like_json_action(thought, name, args):
    text = f"Thought: {fold_whitespace(thought)}\nAction: {name}\nAction Input: {json.dumps(args, ensure_ascii=False)}"
    assert parse_step(text).tool_calls == [{"name": name, "arguments": args}]


@PROPERTY
@given(name=tool_names, args=arguments)
def test_python_style_dict_parses_like_json(name, args):
    text = f"Thought: look it up\nAction: {repr({'name': name, 'arguments': args})}"
    assert parse_step(text).tool_calls == [{"name": name, "arguments": args}]


@PROPERTY
@given(thought=any_text, answer=answers, fence=st.sampled_from(["```", "```text", "```markdown"]))
def test_step_wrapped_in_a_code_fence_parses_like_the_bare_step(thought, answer, fence):
    message = {"role": "assistant", "thought": thought, "content": answer}
    bare = parse_step(render_assistant(message))
    assert parse_step(f"{fence}\n{render_assistant(message)}\n```") == bare


@PROPERTY
@given(thought=plain_thoughts, calls=tool_calls, tail=any_text)
def test_sloppy_variants_of_an_action_parse_the_same(thought, calls, tail):
    """Missing 'Thought:', fenced JSON, prose after the JSON, an invented observation."""
    rendered = render_assistant({"role": "assistant", "thought": thought, "tool_calls": calls})
    expected = parse_step(rendered)
    first = json.dumps(calls[0], ensure_ascii=False)
    variants = [
        rendered.removeprefix("Thought: ") if thought.strip() else rendered,
        rendered + " I will wait for the result.",
        rendered + "\nObservation: " + tail,
    ]
    for text in variants:
        assert parse_step(text) == expected, text
    fenced = f"Thought: {fold_whitespace(thought)}\nAction:\n```json\n{first}\n```\nObservation: {tail}"
    assert parse_step(fenced).tool_calls == [calls[0]]


@PROPERTY
@given(text=any_text)
def test_parser_returns_a_canonical_step_or_a_wire_error_never_anything_else(text):
    try:
        step = parse_step(text)
    except WireFormatError as e:
        assert 0 <= e.position <= len(text)
        assert f"at character {e.position}" in str(e)
    else:
        check_message(step.to_message())


@PROPERTY
@given(prefix=tricky_text, payload=tricky_text)
def test_parser_fuzzed_around_an_action_marker_never_crashes(prefix, payload):
    text = f"{prefix}\nAction: {{{payload}"
    try:
        step = parse_step(text)
    except WireFormatError as e:
        assert 0 <= e.position <= len(text)
    else:
        check_message(step.to_message())


# --- what small models really emit --------------------------------------------------------------

CALL = {"name": "get_article", "arguments": {"law": "Federal Decree-Law 33/2021", "article": 51}}


@pytest.mark.parametrize(
    "text",
    [
        'Thought: I need Art. 51.\nAction: {"name": "get_article", "arguments": '
        '{"law": "Federal Decree-Law 33/2021", "article": 51}} Let me check that.',
        'Thought: I need Art. 51.\nAction:\n```json\n{"name": "get_article", "arguments": '
        '{"law": "Federal Decree-Law 33/2021", "article": 51}}\n```',
        'Thought: I need Art. 51.\nAction: ```json {"name": "get_article", "arguments": '
        '{"law": "Federal Decree-Law 33/2021", "article": 51}}```',
        '```\nThought: I need Art. 51.\nAction: {"name": "get_article", "arguments": '
        '{"law": "Federal Decree-Law 33/2021", "article": 51}}\n```',
        'Thought: I need Art. 51.\nAction: {"name": "get_article", "arguments": '
        '{"law": "Federal Decree-Law 33/2021", "article": 51,},}',
        'Thought: I need Art. 51.\nAction: get_article\nAction Input: {"law": "Federal Decree-Law 33/2021", '
        '"article": 51}',
        'Thought: I need Art. 51.\nAction: get_article\nAction Input:\n```json\n{"law": "Federal Decree-Law 33/2021",'
        ' "article": 51}\n```',
        'I need Art. 51.\nAction: {"name": "get_article", "arguments": '
        '{"law": "Federal Decree-Law 33/2021", "article": 51}}',
        'Thought: I need Art. 51.\nAction: {"name": "get_article", "arguments": '
        '{"law": "Federal Decree-Law 33/2021", "article": 51}}\nObservation: Art. 51 says...\n'
        "Thought: done\nAnswer: 21 days",
        "Thought: I need Art. 51.\nAction: {'name': 'get_article', 'arguments': "
        "{'law': 'Federal Decree-Law 33/2021', 'article': 51}}",
        'Thought: I need Art. 51.\nAction: {"name": "get_article", "arguments": '
        '"{\\"law\\": \\"Federal Decree-Law 33/2021\\", \\"article\\": 51}"}',
        'Thought: I need Art. 51.\nAction: {"name": "get_article", "parameters": '
        '{"law": "Federal Decree-Law 33/2021", "article": 51}}',
        'thought: I need Art. 51.\naction: {"name": "get_article", "arguments": '
        '{"law": "Federal Decree-Law 33/2021", "article": 51}}',
        '**Thought**: I need Art. 51.\n**Action**: {"name": "get_article", "arguments": '
        '{"law": "Federal Decree-Law 33/2021", "article": 51}}',
    ],
    ids=[
        "text-after-json", "fenced-json-lines", "fenced-json-inline", "whole-step-fenced", "trailing-commas",
        "action-input", "action-input-fenced", "no-thought-prefix", "hallucinated-observation", "python-dict",
        "double-encoded-arguments", "parameters-key", "lowercase-markers", "markdown-bold-markers",
    ],
)
def test_sloppy_action_is_understood(text):
    step = parse_step(text)
    assert step.tool_calls == [CALL]
    assert step.thought == "I need Art. 51."


def test_python_literals_become_json_values():
    step = parse_step("Action: {'name': 'f', 'arguments': {'ok': True, 'none': None, 'pair': (1, 2), 3: 'x'}}")
    assert step.tool_calls[0]["arguments"] == {"ok": True, "none": None, "pair": [1, 2], "3": "x"}
    json.dumps(step.to_message())  # what the runtime stores must be JSON


def test_several_actions_in_one_turn_are_all_kept():
    text = 'Thought: both\nAction: {"name": "a", "arguments": {}}\nAction: {"name": "b", "arguments": {"x": 1}}'
    assert parse_step(text).tool_calls == [{"name": "a", "arguments": {}}, {"name": "b", "arguments": {"x": 1}}]


@pytest.mark.parametrize("marker", ["Answer:", "Final Answer:", "final answer:", "**Answer**:"])
def test_answer_markers(marker):
    step = parse_step(f"Thought: I know this.\n{marker} 30 days, Federal Decree-Law 33/2021, Art. 29.")
    assert step.answer == "30 days, Federal Decree-Law 33/2021, Art. 29."
    assert step.thought == "I know this."


def test_answer_stops_at_an_invented_observation():
    step = parse_step("Thought: t\nAnswer: 30 days.\nObservation: made up\nThought: more")
    assert step.answer == "30 days."


@pytest.mark.parametrize(("reply", "answer"), [  # the first three as runs/s18a's held-out answers ran on
    ("Thought: t\nAnswer: The law texts are in; next: the answer.\nAnswer: The result answers the question.",
     "The law texts are in; next: the answer."),
    ("Thought: t\nAnswer: I can't help with that.\nExample:\nThought: No tool can answer this.\nAnswer: x",
     "I can't help with that."),
    ('Thought: t\nAnswer: AED 170,000.00 for 10 years.\nAction: {"name": "calculate_gratuity", "arguments": {}}',
     "AED 170,000.00 for 10 years."),
    ("Thought: t\nAnswer: 105 days.\nExample: 5 years of service give 105 days.",  # an example in its own words
     "105 days.\nExample: 5 years of service give 105 days."),
])
def test_an_answer_ends_at_a_line_that_opens_another_step(reply, answer):
    assert parse_step(reply).answer == answer
    assert answer_ran_on(reply) == (answer != reply.split("Answer:", 1)[1].strip())


def test_code_fences_inside_answers_and_arguments_are_content_and_kept():
    answer = "Use this:\n```python\nprint(30 * 21)\n```\nThat is 630."
    assert parse_step(f"Thought: t\nAnswer: {answer}").answer == answer
    args = {"code": "```python\nx = 1\n```", "note": "a ``` b"}
    call = {"name": "f", "arguments": args}
    text = render_assistant({"role": "assistant", "thought": "use ``` here", "tool_calls": [call]})
    step = parse_step(text)
    assert step.tool_calls[0]["arguments"] == args
    assert step.thought == "use ``` here"


def test_thought_whitespace_is_folded_on_render():
    text = render_assistant({"role": "assistant", "thought": "  two\n lines\t here ", "content": "x"})
    assert text.splitlines()[0] == "Thought: two lines here"


# --- rendering ----------------------------------------------------------------------------------


def test_render_matches_the_design_wire_format():
    call = {"name": "calculate_gratuity", "arguments": {"years": 6, "salary": 10000}}
    text = render_assistant({"role": "assistant", "thought": "Compute it.", "tool_calls": [call]})
    assert text == (
        'Thought: Compute it.\nAction: {"name": "calculate_gratuity", "arguments": {"years": 6, "salary": 10000}}'
    )
    answer = render_assistant({"role": "assistant", "thought": "Done.", "content": " 21 days \n"})
    assert answer == "Thought: Done.\nAnswer: 21 days"


def test_render_keeps_non_ascii_readable():
    # escaped \\uXXXX would cost the small model many more tokens and differ from what it reads
    text = render_assistant(
        {"role": "assistant", "thought": "t", "tool_calls": [{"name": "s", "arguments": {"q": "مادة ٥١"}}]}
    )
    assert "مادة ٥١" in text


def test_render_message_for_every_role():
    assert render_message({"role": "system", "content": "sys"}) == "sys"
    assert render_message({"role": "user", "content": "How long?"}) == "How long?"
    assert render_message({"role": "tool", "name": "s", "content": " result \n"}) == "Observation: result"
    assert render_observation("x") == "Observation: x"
    assert render_message({"role": "assistant", "thought": "t", "content": "a"}) == "Thought: t\nAnswer: a"


def test_rendered_action_contains_no_stop_sequence():
    """The stop sequences cut generation at an invented observation; a real step must not trigger them."""
    text = render_assistant({"role": "assistant", "thought": "t", "tool_calls": [CALL]})
    assert not any(s in text for s in STOP_SEQUENCES)


# --- precise errors -----------------------------------------------------------------------------


def _error(text: str) -> WireFormatError:
    with pytest.raises(WireFormatError) as info:
        parse_step(text)
    assert f"at character {info.value.position}" in str(info.value)
    return info.value


def test_no_action_or_answer_points_at_the_end():
    text = "I think the leave is 30 days.\n"
    e = _error(text)
    assert "'Action:' or 'Answer:'" in e.expected
    assert e.position == len(text.rstrip())


def test_empty_answer_points_after_the_marker():
    text = "Thought: t\nAnswer:   \n"
    e = _error(text)
    assert "answer text" in e.expected
    assert e.position == text.index("Answer:") + len("Answer:")


def test_missing_json_value_points_at_the_brace():
    text = 'Thought: t\nAction: {"name": "a", "arguments": {"x": }}'
    e = _error(text)
    assert "valid JSON" in e.expected
    assert e.position == text.index('"x": }') + len('"x": ')


def test_missing_comma_points_at_the_next_key():
    text = 'Thought: t\nAction: {"name": "a", "arguments": {"a": 1 "b": 2}}'
    e = _error(text)
    assert e.position == text.index('"b"')


def test_error_position_indexes_the_models_text_after_fences_and_trailing_commas():
    text = '```json\nThought: t\nAction:\n```json\n{"name": "a", "arguments": {"l": [1, 2,], "a": 1 "b": 2}}\n```'
    e = _error(text)
    assert e.position == text.index('"b"')
    assert text[e.position :].startswith('"b"')


def test_unclosed_object_points_at_the_end():
    text = 'Thought: t\nAction: {"name": "a", "arguments": {"x": 1}'
    e = _error(text)
    assert "closing '}'" in e.expected
    assert e.position == len(text)


def test_action_without_name_points_at_the_object():
    text = 'Thought: t\nAction: {"arguments": {"x": 1}}'
    e = _error(text)
    assert '"name"' in e.expected
    assert e.position == text.index("{")


def test_arguments_that_are_not_an_object_are_refused():
    e = _error('Action: {"name": "a", "arguments": [1, 2]}')
    assert '"arguments"' in e.expected


def test_tool_name_without_action_input_points_after_the_name():
    text = "Thought: t\nAction: search_labour_law\nI will now search."
    e = _error(text)
    assert "Action Input" in e.expected
    assert e.position == text.index("I will")


def test_action_input_that_is_not_an_object_points_at_it():
    text = "Thought: t\nAction: search_labour_law\nAction Input: annual leave"
    e = _error(text)
    assert e.position == text.index("annual leave")


def test_prose_after_action_points_at_the_prose():
    text = "Thought: t\nAction: I will look up the law"
    e = _error(text)
    assert "JSON object" in e.expected
    assert e.position == text.index("I will")


def test_unparseable_python_dict_points_at_the_first_bad_character():
    text = "Action: {'name': 'a', 'arguments': {'x': true, }"
    e = _error(text + "}")
    assert e.position == text.index("'name'")


@pytest.mark.parametrize(
    "payload", ["{[]: 1}", "{'name': 'a', 'arguments': {'s': {1, 2}}}", "{'name': b'a'}", "{1: 2, **x}"]
)
def test_python_values_that_are_not_json_are_refused(payload):
    _error(f"Action: {payload}")


def test_deeply_nested_json_is_a_wire_error_not_a_crash():
    text = 'Action: {"name": "a", "arguments": {"x": ' + "[" * 50_000 + "]" * 50_000 + "}}"
    e = _error(text)
    assert e.position == text.index("{")


@pytest.mark.parametrize(("text", "answering"), [
    ("Thought: I have the rules.\nAnswer: The rule is in Federal", True),
    ("Thought: The rule is in Federal", False),
    ('Thought: t\nAction: {"name": "get_article", "arguments": {"law": "Federal', False),
    ("Final Answer: It is", True),
    ("The rule is", False),  # no marker yet
])
def test_an_answer_is_open_after_its_marker(text, answering):
    assert in_answer(text) is answering
