"""Constrained tool names: once a reply opens an action object, the bundled SmolLM2 can only write a
registered tool's name; outside that span its text is untouched."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from agentdistill.agent.runtime import run_agent
from agentdistill.agent.wire import parse_step
from agentdistill.config import RunConfig
from agentdistill.llm import make_llm
from agentdistill.llm.base import GenerationRequest
from agentdistill.llm.constrain import (
    ActionConstraint,
    CitationsShown,
    WrittenNumber,
    argument_unit,
    citations_read,
    citations_shown,
    laws_read,
    numbers_for,
    numbers_written,
    open_citation,
    open_key,
    open_plan,
    plan_written,
    tools_asked_for,
    words_written,
)
from agentdistill.tools import load_tools

# names no untuned model would write on its own, so a registered name in the output shows the constraint worked
ODD_TOOLS = ["zq_tally", "zq_lookup_rule"]
ODD_ARGUMENTS = {"zq_tally": {"zq_count": {"type": "integer"}, "zq_unit": {"type": "string", "enum": ["kg", "lb"]},
                              "zq_note": {"type": "string"}}}  # zq_lookup_rule's are left free
OPEN_ACTION = 'Thought: I will use a tool.\nAction: {"name": "'


@pytest.fixture(scope="module")
def llm():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    # float32, so the untuned student's own choices that the tests contrast with (the 60 below) do not move
    # with the rounding of bf16 generation
    cfg = RunConfig()
    cfg.models.generation_bf16 = False
    yield make_llm("student", None, cfg, batch_size=4, device="cpu")
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def constraint(llm):
    return ActionConstraint(llm.tokenizer, ODD_TOOLS, ODD_ARGUMENTS)


@pytest.mark.parametrize(("text", "partial"), [
    ('Thought: t\nAction: {"name": "zq_t', '"name": "zq_t'),
    ("Action: {", ""),
    ('Action:{"name":"zq', '"name":"zq'),
    ('Action: {"name": "zq_tally"', None),  # complete: the arguments are free
    ('Action: {"name": "search', None),  # left the shape: the parser's business
    ('Action: {"arguments": {}', None),
    ("Thought: no action yet", None),
    ('Action: {"name": "zq_tally", "arguments": {}}\nAction: {"name": "zq_l', '"name": "zq_l'),  # the last action
])
def test_the_partial_name_is_the_text_after_the_last_open_action(constraint, text, partial):
    assert constraint.partial_name(text) == partial


@pytest.mark.parametrize("text", ["Thought: I have the rules; next: zq_tally.\nAction:",
                                  "Thought: I have the rules; next: zq_tally.\nAction: "])
def test_after_the_action_marker_only_the_object_can_open(constraint, llm, text):
    # the SFT student wrote "Action: 25 percent and 50 percent at night (...)" after a search
    span = constraint.open_span(text)
    assert span is not None
    allowed = {llm.tokenizer.decode([i]) for i in constraint.allowed(span[1], span[0])}
    assert allowed and all(t.lstrip(" ").startswith("{") or t == " " for t in allowed), allowed
    assert ("{" in allowed) and (" 25" not in allowed)


def test_allowed_tokens_only_lead_to_registered_names(constraint, llm):
    allowed = [llm.tokenizer.decode([i]) for i in constraint.allowed('"name": "zq_')]
    assert allowed
    targets = [f'{name}"' for name in ODD_TOOLS]
    assert all(any(t.startswith(f"zq_{s}") or f"zq_{s}".startswith(t) for t in targets) for s in allowed)
    assert "t" in allowed and "l" in allowed


@pytest.mark.parametrize(("arguments", "at_key"), [
    ("", ("", [], True)),
    ('"zq_count": 3, "zq_u', (' "zq_u', ["zq_count"], False)),
    ('"zq_count": 3,', ("", ["zq_count"], False)),
    ('"zq_co', ('"zq_co', [], False)),
    ('"zq_count"', ('"zq_count"', ["zq_count"], False)),  # the key's colon is still to come
    ('"zq_count": 3', None),  # in a value
    ('"q": "a, \\"b\\" {", ', (" ", ["q"], False)),  # commas, quotes and braces inside a string value
    ('"a": {"b": 1, "c', None),  # a nested object
    ('"zq_count": 3}', None),  # closed
])
def test_open_key_finds_a_key_of_the_arguments_object(arguments, at_key):
    assert open_key(arguments) == at_key


ARGS_OPEN = 'Action: {"name": "zq_tally", "arguments": {'


@pytest.mark.parametrize(("text", "targets", "partial"), [
    (ARGS_OPEN, ('"zq_count":', '"zq_unit":', '"zq_note":', ' "zq_count":', ' "zq_unit":', ' "zq_note":', "}"), ""),
    (ARGS_OPEN + '"zq_count": 2, "zq', (' "zq_unit":', '"zq_unit":', ' "zq_note":', '"zq_note":'), ' "zq'),
    (ARGS_OPEN + '"zq_count": 2, "zq_unit": "kg", "zq_note": "x", ', None, None),  # every argument written
    (ARGS_OPEN + '"zq_count": ', ("<integer>",), " "),
    (ARGS_OPEN + '"zq_count": 25', ("<integer>",), " 25"),
    (ARGS_OPEN + '"zq_count": 2.', None, None),  # not an integer any more: left to the parser
    (ARGS_OPEN + '"zq_count": 2, "zq_unit": "k', (' "kg"', ' "lb"', '"kg"', '"lb"'), ' "k'),
    (ARGS_OPEN + '"zq_note": "any', None, None),  # a free string
    (ARGS_OPEN + '"overtime', None, None),  # left the shape
    ('Action: {"name": "zq_lookup_rule", "arguments": {"', None, None),  # no argument schemas given: free
])
def test_an_argument_is_an_unused_one_of_the_named_tool_with_a_value_of_its_type(constraint, text, targets, partial):
    span = constraint.open_span(text)
    if targets is None:
        assert span is None
    else:
        assert set(span[0]) == set(targets) and span[1] == partial


def test_allowed_tokens_at_a_key_only_lead_to_the_tools_argument_names(constraint, llm):
    targets, partial = constraint.open_span(ARGS_OPEN + '"zq_')
    allowed = [llm.tokenizer.decode([i]) for i in constraint.allowed(partial, targets)]
    assert allowed and "{" not in allowed
    assert all(any(t.startswith('"zq_' + s) or ('"zq_' + s).startswith(t) for t in targets) for s in allowed)


@pytest.mark.parametrize(("partial", "ok", "not_ok"), [
    (" ", ["2", " 2", "-"], ["%", "}", '"', "x"]),
    (" 25", ["0", "}", "}}", ",", " }"], ["%", ".", "x", " percent"]),
])
def test_an_integer_goes_on_with_digits_or_ends_with_a_comma_or_brace(constraint, llm, partial, ok, not_ok):
    allowed = {llm.tokenizer.decode([i]) for i in constraint.allowed(partial, ("<integer>",))}
    vocabulary = {llm.tokenizer.decode([i]) for i in range(len(llm.tokenizer))}
    assert {s for s in ok if s in vocabulary} <= allowed and ok[0] in allowed
    assert not {s for s in not_ok if s in vocabulary} & allowed


@pytest.mark.parametrize(("text", "numbers"), [
    ("AED 24,250 for 1.5 hours", ["24250", "1.5"]),
    ("What date is 30 days before 2024-06-01?", ["30", "2024", "6", "1"]),
    ("25 percent, then 25 again, and 0.5 or 100.", ["25", "0.5", "100"]),
    ("no figures here", []),
])
def test_the_numbers_a_user_wrote_are_read_as_json_literals(text, numbers):
    assert [n.literal for n in numbers_written(text)] == numbers


@pytest.mark.parametrize(("text", "units"), [
    ("the pay for 2 hours on a basic salary of AED 44,000", {"2": "hour", "44000": "money"}),
    ("a 30-day notice, AED 13,250 a month, 17 days served", {"30": "day", "13250": "money", "17": "day"}),
    ("1.5 extra hours after 6.5 years for 19 months", {"1.5": "hour", "6.5": "year", "19": "month"}),
    ("7 days before 2023-09-17", {"7": "day", "2023": "date", "9": "date", "17": "date"}),
    ("earn 13,250 a month, or 500 dirhams, or $12", {"13250": None, "500": "money", "12": "money"}),
])
def test_a_number_keeps_the_unit_it_was_written_with(text, units):
    assert {n.literal: n.unit for n in numbers_written(text)} == units


@pytest.mark.parametrize(("argument", "unit"), [
    ("overtime_hours", "hour"), ("years_of_service", "year"), ("months_of_service", "month"),
    ("contract_notice_days", "day"), ("monthly_basic_salary", "money"), ("monthly_wage", "money"),
    ("value", None), ("top_k", None),
])
def test_an_argument_is_named_for_its_unit(argument, unit):
    assert argument_unit(argument) == unit


def test_an_argument_named_for_a_unit_takes_numbers_of_that_unit_or_else_those_without_one():
    numbers = numbers_written("Pay for 2 hours on AED 44,000, after 2023-09-17, ref 77")
    assert numbers_for("overtime_hours", numbers, units=True) == ["2"]
    assert numbers_for("monthly_basic_salary", numbers, units=True) == ["44000"]
    assert numbers_for("years_of_service", numbers, units=True) == ["77"]  # no years: the unitless one
    assert numbers_for("value", numbers, units=True) == ["2", "44000", "2023", "9", "17", "77"]
    assert numbers_for("overtime_hours", numbers, units=False) == numbers_for("value", numbers, units=True)


def test_with_the_users_numbers_a_number_argument_can_only_be_one_of_them(constraint, llm):
    targets, partial = constraint.open_span(ARGS_OPEN + '"zq_count": 2', numbers_written("24, 30 and 1.5"))
    assert partial == " 2"
    assert set(targets) == {f"{space}{sign}{n}{end}" for n in ("24", "30") for sign in ("", "-")
                            for space in ("", " ") for end in ",}"}  # 1.5 is no integer
    allowed = {llm.tokenizer.decode([i]) for i in constraint.allowed(partial, targets)}
    assert "4" in allowed and not {"5", "0", "}", ",", "."} & allowed
    # none of the user's numbers suits an integer: any integer, as without them
    assert constraint.open_span(ARGS_OPEN + '"zq_count": 2', numbers_written("1.5")) == (("<integer>",), " 2")
    assert constraint.open_span(ARGS_OPEN + '"zq_count": 2', []) == (("<integer>",), " 2")


UNIT_TOOLS = {"zq_hours_pay": {"zq_hours": {"type": "number"}, "zq_salary": {"type": "number"}},
              "zq_years_pay": {"zq_years": {"type": "number"}, "zq_salary": {"type": "number"},
                               "zq_absence_days": {"type": "number", "default": 0}},
              "zq_note": {"text": {"type": "string"}}}


@pytest.mark.parametrize(("question", "offered"), [
    ("the pay for 2 hours on AED 44,000", {"zq_hours_pay", "zq_note"}),
    ("the pay after 3 years on AED 9,000", {"zq_years_pay", "zq_note"}),  # its days have a default
    ("the pay after 3 years and 2 hours on AED 9,000", set(UNIT_TOOLS)),
    ("the pay for 2 hours", {"zq_note"}),  # no salary
    ("the pay for 2 on 9000", {"zq_note"}),  # a duration may not: "15% of 16,600" is no length of service
    ("the pay for 3 years on AED 9,000 and 5 days off", set(UNIT_TOOLS) - {"zq_hours_pay"}),
])
def test_with_units_only_the_tools_the_users_numbers_can_serve_are_offered(llm, question, offered):
    constraint = ActionConstraint(llm.tokenizer, list(UNIT_TOOLS), UNIT_TOOLS)
    numbers = numbers_written(question)
    names, partial = constraint.open_span('Action: {"name": "zq', numbers, words_written(question))
    assert {t.split('"')[3] for t in names} == offered
    assert len(constraint.open_span('Action: {"name": "zq', numbers)[0]) == 2 * len(UNIT_TOOLS)  # units off


NOTICE = {"zq_notice": {"contract_notice_days": {"type": "integer", "default": 30},
                        "monthly_wage": {"type": "number", "default": 0.0},
                        "days_already_served": {"type": "integer", "default": 0},
                        "period": {"type": "string", "enum": ["normal", "night", "rest_day"], "default": "normal"}}}
NOTICE_OPEN = 'Action: {"name": "zq_notice", "arguments": {'


def notice_span(llm, question: str, arguments: str):
    constraint = ActionConstraint(llm.tokenizer, list(NOTICE), NOTICE)
    return constraint.open_span(NOTICE_OPEN + arguments, numbers_written(question), words_written(question))


def numbers_in(targets) -> set[str]:
    return {t.strip(" ,}-") for t in targets}


SERVED = "The contract says 60 days notice, the wage is AED 19,000 and 4 days were served."


def test_of_two_numbers_of_a_unit_an_argument_takes_the_one_beside_a_word_of_its_name(llm):
    assert numbers_in(notice_span(llm, SERVED, '"contract_notice_days": ')[0]) == {"60"}
    assert numbers_in(notice_span(llm, SERVED, '"days_already_served": ')[0]) == {"4"}
    assert numbers_in(notice_span(llm, SERVED, '"monthly_wage": ')[0]) == {"19000"}


def test_the_arguments_cannot_close_while_a_time_quantity_the_user_wrote_is_left(llm):
    targets, _ = notice_span(llm, SERVED, '"contract_notice_days": 60, "monthly_wage": 1')
    assert {t[-1] for t in targets} == {","}  # the 4 days served are left
    targets, _ = notice_span(llm, SERVED, '"contract_notice_days": 60, "days_already_served": 4, "monthly_wage": 1')
    assert {t[-1] for t in targets} == {"}"}  # nothing left the user gave a value for


def test_a_number_is_taken_once_and_an_argument_with_a_default_only_where_the_user_gave_it_a_value(llm):
    question = "My notice period is 100 days. What applies?"
    first_keys = "".join(notice_span(llm, question, "")[0])
    assert "contract_notice_days" in first_keys and "monthly_wage" not in first_keys  # no wage was written
    targets, _ = notice_span(llm, question, '"contract_notice_days": 10')
    assert numbers_in(targets) == {"100"} and {t[-1] for t in targets} == {"}"}  # the 100 cannot serve twice


@pytest.mark.parametrize(("question", "offered", "choices"), [
    ("4 hours at night on AED 9,000", True, {"normal", "night"}),
    ("4 hours on my weekly rest day on AED 9,000", True, {"normal", "rest_day"}),
    ("4 hours on AED 9,000", False, None),
])
def test_a_choice_with_a_default_is_written_only_where_the_user_named_it(llm, question, offered, choices):
    at_key = notice_span(llm, question, '"monthly_wage": 9000, "')
    assert ("period" in "".join(at_key[0]) if at_key else False) == offered
    if choices:
        assert {t.strip(' "') for t in notice_span(llm, question, '"period": ')[0]} == choices
    # and one the user named cannot be left out
    ends = {t[-1] for t in notice_span(llm, question, '"monthly_wage": 9')[0]}
    assert ends == ({","} if offered else {"}"})


def test_a_tool_whose_arguments_all_have_defaults_is_offered_only_where_the_user_gave_one_a_value(llm):
    figures = {"zq_notice": {a: s for a, s in NOTICE["zq_notice"].items() if a != "period"}}
    constraint = ActionConstraint(llm.tokenizer, list(figures), figures)
    def names_for(question: str) -> tuple[str, ...]:
        return constraint.names_for(numbers_written(question), words_written(question))

    assert names_for("I have worked 67 months.") == ()
    assert names_for("I served 4 days.") == constraint.targets
    # figures without a unit would fill any of its arguments, but give none of them a value
    assert names_for("What is 15% of 16,600?") == ()
    assert names_for("I earn AED 16,600.") == constraint.targets


DATE_TOOLS = {"zq_between": {"start_date": {"type": "string"}, "end_date": {"type": "string"}},
              "zq_after": {"date": {"type": "string"}, "days": {"type": "integer"}}}


@pytest.mark.parametrize(("question", "offered"), [
    ("What date is 30 days after 2019-09-26?", {"zq_after"}),
    ("I started on 2020-05-28 and left on 2021-05-02. How long is that?", {"zq_between"}),
    ("From 2024-01-01 to 2024-01-15?", {"zq_between"}),  # dates that share their year and month
    ("How many days are in 3 weeks?", set()),
])
def test_a_tool_is_offered_only_where_the_user_wrote_a_date_for_each_of_its_date_arguments(llm, question, offered):
    constraint = ActionConstraint(llm.tokenizer, list(DATE_TOOLS), DATE_TOOLS)
    names = constraint.names_for(numbers_written(question), words_written(question))
    assert {t.split('"')[-2] for t in names} == offered


ARTICLE_TOOLS = {"zq_article": {"law": {"type": "string"}, "article": {"type": "integer"}},
                 "zq_lookup": {"query": {"type": "string"}}}


@pytest.mark.parametrize(("question", "offered"), [
    ("Show me Article 43 of the labour law.", {"zq_article", "zq_lookup"}),
    ("Can you get the domestic workers law, Art. 19 for me?", {"zq_article", "zq_lookup"}),
    ("What is the time between 2019-02-25 and 2026-10-23?", {"zq_lookup"}),
    ("How many minutes are in 75 hours?", {"zq_lookup"}),
])
def test_a_whole_number_that_names_no_unit_is_offered_only_where_the_user_wrote_a_bare_number(llm, question, offered):
    constraint = ActionConstraint(llm.tokenizer, list(ARTICLE_TOOLS), ARTICLE_TOOLS)
    names = constraint.names_for(numbers_written(question), words_written(question))
    assert {t.split('"')[-2] for t in names} == offered


ARITHMETIC_TOOLS = {"zq_calc": {"expression": {"type": "string"}}, "zq_after": DATE_TOOLS["zq_after"],
                    "zq_lookup": {"query": {"type": "string"}}}


@pytest.mark.parametrize(("question", "offered"), [
    ("What date is 7 days before 2023-09-17?", {"zq_after", "zq_lookup"}),
    ("How many minutes are in 75 hours?", {"zq_lookup"}),
    ("What is 3,200 divided by 4?", {"zq_calc", "zq_lookup"}),
    ("How much is 12.5% of AED 4,350?", {"zq_calc", "zq_lookup"}),  # money is computed with
    ("What is 75 hours times 3?", {"zq_calc", "zq_lookup"}),
    ("What does the law say about overtime?", {"zq_lookup"}),
])
def test_an_expression_tool_is_offered_only_where_the_user_wrote_a_number_no_date_or_duration_holds(
        llm, question, offered):
    constraint = ActionConstraint(llm.tokenizer, list(ARITHMETIC_TOOLS), ARITHMETIC_TOOLS)
    names = constraint.names_for(numbers_written(question), words_written(question))
    assert {t.split('"')[-2] for t in names} == offered


def test_where_the_user_gave_no_argument_a_value_the_keys_are_still_the_tools(llm):
    targets, _ = notice_span(llm, "From 2020-05-28 to 2021-05-02?", '"contract_notice_days": 2021, "')
    assert {t.strip(' ":') for t in targets} == {"monthly_wage", "days_already_served"}  # no unnamed choice


def test_a_reply_constrained_by_units_names_the_tool_the_numbers_serve(llm):
    pay_tools = {name: UNIT_TOOLS[name] for name in ("zq_hours_pay", "zq_years_pay")}
    requests = [GenerationRequest(messages=[{"role": "user", "content": question}], prefix=OPEN_ACTION,
                                  max_tokens=12, tool_names=list(pay_tools), tool_arguments=pay_tools,
                                  argument_numbers=numbers_written(question), user_words=words_written(question))
                for question in ("Pay for 2 hours on AED 44,000?", "Pay after 3 years on AED 9,000?")]
    names = [c.text[len(OPEN_ACTION):].split('"')[0] for [c] in llm.generate(requests)]
    assert names == ["zq_hours_pay", "zq_years_pay"]


def test_a_reply_constrained_to_the_users_numbers_writes_one_of_them(llm):
    prefix = 'Thought: I will count the 5 boxes.\nAction: {"name": "zq_tally", "arguments": {"zq_count":'
    request = GenerationRequest(messages=[{"role": "user", "content": "Count 37 apples in 5 boxes."}],
                                prefix=prefix, max_tokens=8, tool_names=ODD_TOOLS, tool_arguments=ODD_ARGUMENTS,
                                argument_numbers=[WrittenNumber("37")])
    [[constrained]] = llm.generate([request])
    value = constrained.text[len(prefix):].split(",")[0].split("}")[0].strip()
    assert value in ("37", "-37"), constrained.text


def test_a_constrained_reply_writes_only_the_named_tools_arguments(llm):
    prefix = 'Thought: I will count.\nAction: {"name": "zq_tally", "arguments": {"'
    request = GenerationRequest(messages=[{"role": "user", "content": "Count 3 apples in kg."}], prefix=prefix,
                                max_tokens=24, tool_names=ODD_TOOLS)
    free, constrained = llm.generate([request, replace(request, tool_arguments=ODD_ARGUMENTS)])
    key_of = [c[0].text[len(prefix):].split('"')[0] for c in (free, constrained)]
    assert key_of[0] not in ODD_ARGUMENTS["zq_tally"]
    assert key_of[1] in ODD_ARGUMENTS["zq_tally"]


def ask_to_act(tool_names, **kw) -> GenerationRequest:
    return GenerationRequest(messages=[{"role": "user", "content": "How many days of annual leave do I get?"}],
                             prefix=OPEN_ACTION, max_tokens=20, tool_names=tool_names, **kw)


def test_a_constrained_reply_names_a_registered_tool_and_an_unconstrained_one_does_not(llm):
    free, constrained = llm.generate([ask_to_act(None), ask_to_act(ODD_TOOLS)])
    name_of = [c.text[len(OPEN_ACTION):].split('"')[0] for c in (free[0], constrained[0])]
    assert name_of[0] not in ODD_TOOLS
    assert name_of[1] in ODD_TOOLS


def test_every_sampled_candidate_names_a_registered_tool(llm):
    [candidates] = llm.generate([ask_to_act(ODD_TOOLS, temperature=1.0, n=4)])
    assert len(candidates) == 4
    assert {c.text[len(OPEN_ACTION):].split('"')[0] for c in candidates} <= set(ODD_TOOLS)


def test_the_runtime_constrains_the_student_to_its_tools(llm):
    tools = load_tools(RunConfig(), None)
    result = run_agent(llm, tools, "What is 12 * 7?", max_steps=1, first_thought_prefix=OPEN_ACTION,
                       constrain_tool_names=True, max_tokens=48)
    step = result.messages[2]
    if step["role"] == "assistant":
        assert step["tool_calls"][0]["name"] in tools.names()
    else:  # the name was forced, so only the arguments after it can have failed to parse
        raw = result.raw_steps[0]
        assert raw.startswith(OPEN_ACTION)
        assert raw[len(OPEN_ACTION):].split('"')[0] in tools.names()
        with pytest.raises(ValueError):
            parse_step(raw)


def test_the_runtime_constrains_arguments_to_the_named_tools(llm):
    tools = load_tools(RunConfig(), None)
    open_arguments = OPEN_ACTION + 'convert_units", "arguments": {"'
    result = run_agent(llm, tools, "How many pounds are 3 kg?", max_steps=1, first_thought_prefix=open_arguments,
                       constrain_tool_names=True, constrain_arguments=True, max_tokens=48)
    key = result.raw_steps[0][len(open_arguments):].split('"')[0]
    assert key in ("value", "from_unit", "to_unit")


def test_the_runtime_constrains_number_arguments_to_the_users_numbers(llm):
    tools = load_tools(RunConfig(), None)
    open_value = OPEN_ACTION + 'convert_units", "arguments": {"value":'
    result = run_agent(llm, tools, "How many pounds are 3 kg? I have 12 bags.", max_steps=1,
                       first_thought_prefix=open_value, constrain_tool_names=True, constrain_arguments=True,
                       numbers_from_user=True, max_tokens=48)
    value = result.raw_steps[0][len(open_value):].split(",")[0].split("}")[0].strip()
    assert value in ("3", "-3", "12", "-12"), result.raw_steps[0]


@pytest.mark.parametrize("arguments_from_user", [False, True])
def test_the_runtime_gives_the_served_days_the_number_beside_its_words(llm, arguments_from_user):
    tools = load_tools(RunConfig(), None)
    open_value = OPEN_ACTION + 'notice_period", "arguments": {"days_already_served":'
    result = run_agent(llm, tools, "I have served 4 days so far; my contract says 60 days notice. What is owed?",
                       max_steps=1, first_thought_prefix=open_value, constrain_tool_names=True,
                       constrain_arguments=True, numbers_from_user=True, arguments_from_user=arguments_from_user,
                       max_tokens=48)
    value = result.raw_steps[0][len(open_value):].split(",")[0].split("}")[0].strip()
    # with the numbers alone the untuned student writes the notice's 60; beside "served" is the 4
    assert value == ("4" if arguments_from_user else "60"), result.raw_steps[0]


SHOWN = ["Federal Decree-Law 33/2021, Art. 17", "Cabinet Resolution 1/2022, Art. 15"]
SHOWN_ARTICLES = CitationsShown(tuple(SHOWN))


def test_the_citations_shown_are_read_as_written():
    text = ("Normal hours (Federal Decree-Law 33/2021, Art. 17; Cabinet Resolution 1/2022, Art. 15). Again "
            "Federal Decree-Law 33/2021, Art. 17 and (Cabinet Decision 106/2022, Arts. 5-6); Art. 9 alone.")
    assert citations_read(text) == [*SHOWN, "Cabinet Decision 106/2022, Arts. 5-6"]


@pytest.mark.parametrize(("text", "partial", "only"), [
    ("hours (Federal Decree-Law 33/2021, Art. 1", "Federal Decree-Law 33/2021, Art. 1", True),
    ("hours (Federal Decree-Law 33/2021, Art. 17; Cabinet Res", "Cabinet Res", False),
    ("hours (Cabinet Resolution 1/2022, Art. 15", "Cabinet Resolution 1/2022, Art. 15", True),  # may end
    ("hours (", "", False),  # on its way to a law's name: a law not shown is refused
    ("hours (Federal Decree-Law 33/2021, Art. 19", None, None),  # left the citations shown: left alone
    ("hours (for example", None, None),
    ("hours (Federal Decree-Law 33/2021, Art. 17) and", None, None),
])
def test_a_citation_is_open_after_a_parenthesis_or_semicolon(text, partial, only):
    cited = open_citation(text, SHOWN_ARTICLES)
    assert (cited[1:] if cited else (None, None)) == (partial, only)


def _masked(constraint, llm, text, shown):
    scores = torch.zeros(1, len(llm.tokenizer))
    constraint.apply(torch.zeros(1, 0, dtype=torch.long), scores, [text], citations=[shown])
    allowed = torch.nonzero(scores[0] == 0).flatten().tolist()
    return {llm.tokenizer.decode([i]) for i in allowed}, len(scores[0]) - len(allowed)


@pytest.mark.parametrize(("text", "partial", "only"), [
    ("Answer: The rule is in Federal", "Federal", False),  # the first word: a law not shown is refused
    ("Answer: The rule is in Federal Decree-Law 33/2021, Art. 1", "Federal Decree-Law 33/2021, Art. 1", True),
    ("Answer: It is governed by Federal Decree-Law 33/2021", "Federal Decree-Law 33/2021", True),  # may end
    ("Answer: As amended by Federal Decree-Law No. 9 of 20", "Federal Decree-Law No. 9 of 20", True),
    ("Answer: Art. 17 and (see Cabinet", "Cabinet", False),  # a parenthesis that opens no citation
    ("Answer: The Federal government", None, None),
    ("Answer: The rule is in Federal Decree-Law 33/2021 on", None, None),  # named, then running text
    ("Thought: I will read Federal", None, None),  # a thought, not an answer
    ("Answer: Minimum wage", None, None),  # begins like "Ministerial" but is another word
])
def test_in_an_answer_a_law_named_in_running_text_opens_a_citation(text, partial, only):
    shown = citations_shown(" ".join(SHOWN) + ", as amended by Federal Decree-Law No. 9 of 2024")
    cited = open_citation(text, shown)
    assert (cited[1:] if cited else (None, None)) == (partial, only)


def test_the_laws_read_are_those_named_in_full_as_written():
    text = "(Federal Decree-Law 33/2021, Art. 17), as amended by Federal Decree-Law No. 9 of 2024; see FDL 9/2022."
    assert laws_read(text) == ["Federal Decree-Law 33/2021", "Federal Decree-Law No. 9 of 2024"]
    assert citations_shown(text) == CitationsShown(("Federal Decree-Law 33/2021, Art. 17",), tuple(laws_read(text)))


def test_an_answer_cannot_name_a_law_it_did_not_read(constraint, llm):
    # the SFT student answered "The result is in Federal Law 33/2021, Art. 29" having read Federal Decree-Law
    # 33/2021, Art. 29: written without a bracket, the citation had been left alone
    text = "Thought: I have the result.\nAnswer: The result is in Federal"
    allowed, refused = _masked(constraint, llm, text, CitationsShown(("Federal Decree-Law 33/2021, Art. 29",)))
    assert " Dec" in allowed and " government" in allowed
    assert " Law" not in allowed
    assert 0 < refused < 100


def test_a_citation_can_only_go_on_to_an_article_shown(constraint, llm):
    allowed, _ = _masked(constraint, llm, "The maximum is 8 hours (Federal Decree-Law 33/2021, Art. 1",
                         SHOWN_ARTICLES)
    assert "7" in allowed and not {"5", "9", ")", "0"} & allowed


def test_a_citation_of_a_law_not_shown_cannot_begin(constraint, llm):
    allowed, refused = _masked(constraint, llm, "The worker must be compensated (",
                               CitationsShown(("Federal Decree-Law 33/2021, Art. 19",)))
    assert {"Federal", "for", "see"} <= allowed
    assert "Cabinet" not in allowed and "Ministerial" not in allowed
    assert 0 < refused < 100  # only the way to another law is refused


def test_the_runtime_lets_an_answer_cite_only_what_the_conversation_showed(llm):
    tools = load_tools(RunConfig(), None)
    answer = "Thought: The question names the article.\nAnswer: It sets the rest day (Federal Decree-Law 33/2021, Art. "
    result = run_agent(llm, tools, "What does Federal Decree-Law 33/2021, Art. 21 say about rest days?", max_steps=1,
                       first_thought_prefix=answer, constrain_tool_names=True, citations_from_observations=True,
                       max_tokens=6)
    assert result.raw_steps[0][len(answer):].startswith("21"), result.raw_steps[0]


@pytest.mark.parametrize(("thought", "plan"), [
    ("I need the rules on overtime pay, so I will search the law texts; next: overtime_pay.", "overtime_pay"),
    ("I have the rules; next: the answer.", "the answer"),
    ("I will use convert_units.", None),
])
def test_the_plan_is_what_a_thought_says_comes_next(thought, plan):
    assert plan_written(thought) == plan


@pytest.mark.parametrize(("text", "partial"), [
    ("Thought: I have the rules; next:", ""),
    ("Thought: I have the rules; next: overt", " overt"),
    ("Thought: I have the rules; next: the", None),  # left the plan: left alone
    ("Thought: I have the rules; next: overtime_pay.", None),  # written
    ("Thought: I have the rules", None),
])
def test_a_next_is_open_while_it_is_on_its_way_to_the_plan(text, partial):
    planned = open_plan(text, ["overtime_pay"])
    assert (planned[1] if planned else None) == partial
    assert planned is None or planned[0] == (" overtime_pay.",)


def test_after_an_observation_the_next_step_can_only_name_the_plan(constraint, llm):
    scores = torch.zeros(1, len(llm.tokenizer))
    constraint.apply(torch.zeros(1, 0, dtype=torch.long), scores, ["Thought: I have the rules; next:"],
                     plans=["overtime_pay"])
    allowed = {llm.tokenizer.decode([i]) for i in torch.nonzero(scores[0] == 0).flatten().tolist()}
    assert " overtime" in allowed or " over" in allowed
    assert not {" the", " annual", " answer"} & allowed


@pytest.mark.parametrize(("thought", "due", "names"), [
    ("I have the rules; next: zq_tally.", True, {"zq_tally"}),  # the due plan written again: it is called
    ("I have the rules; next: zq_tally.", False, {"zq_tally", "zq_lookup_rule"}),  # a first thought's plan
    ("I have the rules.", True, {"zq_tally", "zq_lookup_rule"}),  # not written: the name is free
])
def test_a_thought_that_writes_its_due_plan_again_names_it_as_the_action(constraint, thought, due, names):
    text = f'Thought: {thought}\nAction: {{"name": "'
    span = constraint.open_span(text, due_plan="zq_tally" if due else None)
    assert span is not None and {t.split('"')[-2] for t in span[0]} == names


@pytest.mark.parametrize(("text", "may_end"), [
    ("Thought: Done: the notice period is 90 days.", False),  # runs/s17d: a result stated, then the turn ended
    ("Thought: Done: I have what I need to answer.\nAnswer: 90 days.", True),
    ("Thought: No tool is needed.\nFinal Answer: Hello!", True),
    ("Hello! How can I help?", True),  # no thought written: the rule does not reach it
])
def test_a_turn_cannot_end_after_a_thought_until_an_action_or_answer_follows(constraint, text, may_end):
    end = 7
    scores = torch.zeros(1, 16)
    constraint.apply(torch.zeros(1, 0, dtype=torch.long), scores, [text], end_ids=[end])
    assert (scores[0, end] == 0) == may_end
    assert (scores[0, :end] == 0).all()  # nothing else is refused


@pytest.mark.parametrize(("text", "ran_on"), [
    ("Thought: t\nAnswer: 800.\nAnswer:", True),  # runs/s18a: a second answer after the first
    ("Thought: t\nAnswer: 800.\nExample:\n", True),  # the system prompt's example heading, imitated
    ("Thought: t\nAnswer: 800.\nThe", False),  # a second line of the answer's own
    ("Thought: t\nAnswer:", False),
])
def test_only_the_end_of_the_turn_may_follow_an_answer_that_ran_on_into_another_step(constraint, text, ran_on):
    end = 7
    scores = torch.zeros(1, 16)
    constraint.apply(torch.zeros(1, 0, dtype=torch.long), scores, [text], end_ids=[end])
    assert set(torch.nonzero(scores[0] == 0).flatten().tolist()) == ({end} if ran_on else set(range(16)))


def test_a_plan_is_due_after_an_observation_and_only_a_tool_is():
    from agentdistill.agent.runtime import _plan_due

    user = {"role": "user", "content": "q"}
    observed = {"role": "tool", "name": "search_labour_law", "content": "Overtime is paid at 125%."}
    assert _plan_due([user, observed], "overtime_pay")
    assert not _plan_due([user], "overtime_pay")  # a first thought's plan is the step after its own
    assert not _plan_due([user, observed], "the answer")
    assert not _plan_due([user, observed], None)


@pytest.mark.parametrize("plan", [None, "zq_years_pay"])
def test_with_units_a_plan_names_only_a_tool_the_users_numbers_can_serve(llm, plan):
    constraint = ActionConstraint(llm.tokenizer, list(UNIT_TOOLS), UNIT_TOOLS)
    question = "the pay for 2 hours on AED 44,000"
    scores = torch.zeros(1, len(llm.tokenizer))
    constraint.apply(torch.zeros(1, 0, dtype=torch.long), scores, ["Thought: I will search; next: zq_"],
                     [numbers_written(question)], plans=[plan], words=[words_written(question)])
    allowed = {llm.tokenizer.decode([i]) for i in torch.nonzero(scores[0] == 0).flatten().tolist()}
    assert {"h", "n"} <= {s[0] for s in allowed}  # zq_hours_pay, zq_note
    assert not any(s.startswith("y") for s in allowed)  # not zq_years_pay, planned or not


def test_the_runtime_asks_for_the_plan_only_after_an_observation(llm):
    from agentdistill.agent.runtime import _plan

    planned = {"role": "assistant", "thought": "I will search; next: overtime_pay.",
               "tool_calls": [{"name": "search_labour_law", "arguments": {"query": "overtime"}}]}
    observed = {"role": "tool", "name": "search_labour_law", "content": "Overtime is paid at 125%."}
    assert _plan([{"role": "user", "content": "q"}, planned, observed]) == "overtime_pay"
    assert _plan([{"role": "user", "content": "q"}]) is None


def test_after_a_step_carried_out_its_plan_the_answer_is_next_unless_an_asked_tool_is_left():
    from agentdistill.agent.runtime import _plan

    user = {"role": "user", "content": "q"}
    carried_out = {"role": "assistant", "thought": "I have the rules; next: notice_period.",
                   "tool_calls": [{"name": "notice_period", "arguments": {"contract_notice_days": 60}}]}
    observed = {"role": "tool", "name": "notice_period", "content": "60 days is within the legal limits."}
    assert _plan([user, carried_out, observed], ["notice_period"]) == "the answer"
    assert _plan([user, carried_out, observed]) == "the answer"
    assert _plan([user, carried_out, observed], ["notice_period", "annual_leave"]) == "annual_leave"
    unplanned = {**carried_out, "thought": "Computing notice with notice_period."}
    assert _plan([user, unplanned, observed], ["notice_period"]) is None  # no plan written: free


@pytest.mark.parametrize(("question", "asked"), [
    ("Can you explain the gratuity formula, and what would I get after 12 years on a basic salary of AED 20,000?",
     ["calculate_gratuity"]),
    ("Look up notice rules, then what notice pay applies if my contract says 60 days notice and I earn AED 44,750?",
     ["notice_period"]),
    ("What are the rules on sick leave: 90 days a year, full pay then half pay?", []),  # one unit: no tool
    ("What is 15% of 16,600?", []),
])
def test_the_tools_asked_for_are_those_whose_arguments_the_users_numbers_fill(question, asked):
    tools = load_tools(RunConfig(), None)
    arguments = {spec["name"]: spec["parameters"]["properties"] for spec in tools.specs()}
    assert tools_asked_for(arguments, numbers_written(question)) == asked


def test_a_thought_without_a_plan_plans_the_asked_tool_no_call_has_used():
    from agentdistill.agent.runtime import _plan

    user = {"role": "user", "content": "q"}
    searched = {"role": "assistant", "thought": "I will search.",
                "tool_calls": [{"name": "search_labour_law", "arguments": {"query": "gratuity"}}]}
    computed = {"role": "assistant", "thought": "I will compute.",
                "tool_calls": [{"name": "calculate_gratuity", "arguments": {"years_of_service": 2}}]}
    observed = {"role": "tool", "name": "search_labour_law", "content": "Gratuity is 21 days a year."}
    assert _plan([user], ["calculate_gratuity"]) == "calculate_gratuity"
    assert _plan([user, searched, observed], ["calculate_gratuity"]) == "calculate_gratuity"
    assert _plan([user, computed, observed], ["calculate_gratuity"]) is None  # already called
    planned = {**searched, "thought": "I will search; next: the answer."}
    assert _plan([user, planned, observed], ["calculate_gratuity"]) == "the answer"  # a written plan is followed


# --- natural phrasing: the syntax-only constraint (the defaults) lets the right call through -------------
# A person writes "20k", "four and a half years", "after 2 years" (for a tool that takes months): the right
# argument is a number nobody wrote. Constrained decoding restricts syntax and must never forbid such a call
# (DESIGN.md); the semantic rules (numbers_from_user and the rest) can, which is why they are off by default.

NATURAL = [
    ("What's the gratuity for someone on 20k basic with 11 years service?",
     "calculate_gratuity", {"monthly_basic_salary": 20000, "years_of_service": 11}),
    ("I'm resigning after four and a half years on AED12,000",
     "calculate_gratuity", {"monthly_basic_salary": 12000, "years_of_service": 4.5}),
    ("How much vacation after 2 years?", "annual_leave", {"months_of_service": 24}),
]


@pytest.fixture(scope="module")
def uae_constraint(llm):
    """The constraint the runtime builds for the default tool packs (``run_agent``'s tool names and arguments)."""
    tools = load_tools(RunConfig(), None)
    arguments = {spec["name"]: spec["parameters"].get("properties", {}) for spec in tools.specs()}
    return ActionConstraint(llm.tokenizer, tools.names(), arguments)


def refusals(llm, constraint, question: str, reply: str, numbers_from_user: bool = False,
             arguments_from_user: bool = False) -> tuple[list[tuple[str, str]], bool]:
    """Force-feed ``reply``'s tokens through the logits processor the local backend builds for ``question``
    (the user's numbers and words passed as ``run_agent`` passes them under these rules): (text so far, the
    token refused there) for every refused token of the reply, and whether the turn may end after it."""
    tok = llm.tokenizer
    numbers = [numbers_written(question)] if numbers_from_user else None
    words = [words_written(question)] if numbers_from_user and arguments_from_user else None
    processor = constraint.processor(0, [""], numbers, None, None, words, None, llm.eos_ids)
    ids = tok.encode(reply, add_special_tokens=False)
    assert tok.decode(ids) == reply
    refused = []
    for k in range(len(ids) + 1):
        scores = processor(torch.tensor([ids[:k]], dtype=torch.long), torch.zeros(1, len(tok)))
        if k < len(ids) and scores[0, ids[k]] != 0:
            refused.append((tok.decode(ids[:k]), tok.decode([ids[k]])))
    return refused, all(scores[0, i] == 0 for i in llm.eos_ids)


def right_reply(tool: str, arguments: dict) -> str:
    from agentdistill.agent.wire import render_action

    return f"Thought: I will compute it with {tool}.\n" + render_action({"name": tool, "arguments": arguments})


def test_the_default_constraint_is_syntax_only():
    agent = RunConfig().agent
    assert agent.constrain_tool_names and agent.constrain_arguments
    assert not (agent.numbers_from_user or agent.arguments_from_user or agent.follow_plan
                or agent.citations_from_observations)


@pytest.mark.parametrize(("question", "tool", "arguments"), NATURAL)
@pytest.mark.parametrize("order", [1, -1])  # the schema's order of the arguments, and the reverse
def test_the_syntax_constraint_lets_the_right_call_through_for_natural_phrasing(
        llm, uae_constraint, question, tool, arguments, order):
    reply = right_reply(tool, dict(list(arguments.items())[::order]))
    refused, may_end = refusals(llm, uae_constraint, question, reply)
    assert refused == [], reply
    assert may_end  # the turn ends after the action
    assert parse_step(reply).tool_calls == [{"name": tool, "arguments": arguments}]


@pytest.mark.parametrize(("question", "tool", "arguments", "blocked_at", "allowed"), [
    # "20k" is read as 20: the salary can only be 20 or 11
    (*NATURAL[0], '"monthly_basic_salary": 20', {"20", "11"}),
    # "four and a half" is no figure: the years can only be the 12,000 of the salary
    (*NATURAL[1], '"years_of_service": ', {"12000"}),
    # "2 years" for a tool that takes months: only the 2, so the 24 stops after its first digit
    (*NATURAL[2], '"months_of_service": 2', {"2"}),
])
def test_numbers_from_user_blocks_the_right_call_for_natural_phrasing(
        llm, uae_constraint, question, tool, arguments, blocked_at, allowed):
    # Expected today, and why the rule is off by default: the numbers a person writes are not always the
    # arguments a tool takes.
    reply = right_reply(tool, arguments)
    refused, _ = refusals(llm, uae_constraint, question, reply, numbers_from_user=True)
    assert refused, reply
    assert refused[0][0].rstrip().endswith(blocked_at.rstrip()), refused  # the first refusal is in that value
    key = f'"{blocked_at.split(chr(34))[1]}":'
    targets, _ = uae_constraint.open_span(reply[:reply.index(key) + len(key)], numbers_written(question))
    assert {t.strip(" ,}-") for t in targets} == allowed  # what the value may be instead


@pytest.mark.parametrize(("question", "tool", "arguments", "blocked_at"), [
    (*NATURAL[0], '"monthly_basic_salary": 20'),
    (*NATURAL[1], 'Action: {"name": "'),  # no years written as a figure: calculate_gratuity is not offered
    (*NATURAL[2], 'Action: {"name": "'),  # no months written: annual_leave is not offered
])
def test_arguments_from_user_blocks_natural_phrasing_at_the_tool_name(llm, uae_constraint, question, tool,
                                                                       arguments, blocked_at):
    refused, _ = refusals(llm, uae_constraint, question, right_reply(tool, arguments), numbers_from_user=True,
                          arguments_from_user=True)
    assert refused and refused[0][0].endswith(blocked_at), refused
