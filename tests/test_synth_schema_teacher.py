"""The generic offline teacher follows each question's record through the real agent loop and real tools:
the recorded calls, then an answer that states the tool's result or the retrieved passage with its
citation, "not covered" when the search finds nothing, and replies for messages that need no tool."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentdistill.agent.runtime import run_agents
from agentdistill.config import CorpusConfig, QuestionsConfig, RunConfig, ToolsConfig
from agentdistill.corpus import ingest
from agentdistill.records import Expect, Question, Trace
from agentdistill.synth.filters import check_trace
from agentdistill.synth.questions import load_corpus, load_personas
from agentdistill.synth.schema_questions import schema_questions
from agentdistill.synth.schema_teacher import (
    Call,
    SchemaTeacher,
    action_text,
    in_mention_order,
    lookup_answer,
    opening_words,
    passages,
    query_parameter,
    reply_step,
    result_text,
    search_query,
)
from agentdistill.tools import load_tools

SHOP = Path(__file__).resolve().parents[1] / "examples" / "shop"


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    run = tmp_path_factory.mktemp("shop")
    cfg = RunConfig(corpus=CorpusConfig(paths=[SHOP / "corpus"], chunk_tokens=256, chunk_overlap=32, n_clusters=6,
                                        min_similarity=0.25),
                    tools=ToolsConfig(packs=["shop", "general"]), questions=QuestionsConfig(n_questions=60))
    ingest([SHOP / "corpus"], run, cfg, progress=False)
    chunks, clusters = load_corpus(run)
    tools = load_tools(cfg, run)
    questions, _ = schema_questions(chunks, clusters, load_personas(None, cfg), tools, cfg)
    return run, cfg, tools, questions


def record(teacher, tools, questions, max_steps=4):
    teacher.know(questions)
    results = dict(run_agents(teacher, tools, [q.text for q in questions], max_steps=max_steps))
    return [Trace(id=f"t{i}", question_id=q.id, tools=tools.specs(), messages=results[i].messages, teacher="rule",
                  outcome=results[i].outcome) for i, q in enumerate(questions)]


def test_a_search_tool_is_known_by_its_query_argument_and_the_query_is_the_users_topic():
    tools = load_tools(RunConfig(tools=ToolsConfig(packs=["shop", "general"])), None)
    assert [s["name"] for s in tools.specs() if query_parameter(s)] == ["search_policies"]
    assert search_query("Hi! Could you explain the restocking fee for opened electronics to me?") == \
        "restocking fee opened electronics"


def test_every_kind_of_question_is_answered_as_recorded_and_kept_by_the_trace_filter(shop):
    run, cfg, tools, questions = shop
    sample = [q for kind in ("lookup", "calculation", "multi_step", "no_tool")
              for q in [q for q in questions if q.kind == kind][:6]]
    traces = record(SchemaTeacher(run, cfg), tools, sample)
    verdicts = [check_trace(t, q, tools, 4) for t, q in zip(traces, sample, strict=True)]
    assert verdicts.count(None) >= len(sample) - 1, [v for v in verdicts if v]
    for t, q in zip(traces, sample, strict=True):
        calls = [c for m in t.messages if m["role"] == "assistant" for c in m.get("tool_calls", [])]
        assert [c["name"] for c in calls] == q.expect.tools
        for name, args in (q.expect.arguments or {}).items():
            assert next(c["arguments"] for c in calls if c["name"] == name) == args


def test_a_lookup_answer_quotes_the_best_passage_with_its_citation(shop):
    run, cfg, tools, _ = shop
    q = Question(id="q1", text="How long do I have to return an item?", persona="customer", cluster=0,
                 kind="lookup", expect=Expect(tools=["search_policies"]), answer_facts=["x"])
    (trace,) = record(SchemaTeacher(run, cfg), tools, [q])
    observation = next(m["content"] for m in trace.messages if m["role"] == "tool")
    text, cite = lookup_answer(observation, q.text)
    assert trace.outcome.answer == f"{text} ({cite})"
    assert cite in [c for c, _ in passages(observation)] and "30 days" in trace.outcome.answer


def test_a_two_tool_plan_opens_with_its_second_tool_and_answers_with_its_result_first(shop):
    run, cfg, tools, questions = shop
    two_tool = [q for q in questions if q.kind == "multi_step"][:3]
    assert two_tool
    for trace in record(SchemaTeacher(run, cfg), tools, two_tool):
        computed = [m["content"] for m in trace.messages if m["role"] == "tool" and m["name"] != "search_policies"]
        assert computed and trace.outcome.answer.startswith(result_text(computed[-1])), trace.outcome.answer
        second = next(m for m in trace.messages if m["role"] == "tool" and m["name"] != "search_policies")["name"]
        first_thought = next(m for m in trace.messages if m["role"] == "assistant")["thought"]
        assert first_thought.startswith(f"Two steps, then {second}:"), first_thought  # decided in its first words


def test_a_topic_the_documents_do_not_cover_is_said_to_be_not_covered(shop):
    run, cfg, tools, _ = shop
    q = Question(id="q2", text="What are the rules on keeping bees in a city garden?", persona="customer",
                 cluster=-1, kind="lookup", expect=Expect(tools=["search_policies"]), answer_facts=["not covered"])
    (trace,) = record(SchemaTeacher(run, cfg), tools, [q])
    assert "do not cover keeping bees city garden" in trace.outcome.answer
    assert check_trace(trace, q, tools, 4) is None


def test_messages_it_was_not_told_about_are_greeted_thanked_or_searched(shop):
    run, cfg, tools, _ = shop
    teacher = SchemaTeacher(run, cfg)
    results = dict(run_agents(teacher, tools, ["hello!", "thanks, that helps", "how are refunds paid?"], max_steps=3))
    assert results[0].outcome.answer.startswith(("Hello", "Hi"))
    assert "welcome" in results[1].outcome.answer.lower() or "glad" in results[1].outcome.answer.lower()
    first = next(m for m in results[2].messages if m["role"] == "assistant")
    assert first["tool_calls"][0] == {"name": "search_policies", "arguments": {"query": "refunds paid"}}


@pytest.mark.parametrize(("question", "arguments", "order"), [
    ("A cook did 2h extra on my rest day; her basic is AED15,250.",
     {"monthly_basic_salary": 15250, "overtime_hours": 2, "period": "rest_day"},
     ["overtime_hours", "period", "monthly_basic_salary"]),
    ("I earn 10,000 and my notice is 60 days; I worked 10 days of it.",  # one value twice: each takes its own place
     {"contract_notice_days": 60, "days_already_served": 10, "monthly_wage": 10000},
     ["monthly_wage", "contract_notice_days", "days_already_served"]),
    ("Convert 42 km to miles.", {"to_unit": "miles", "from_unit": "km", "value": 42},
     ["value", "from_unit", "to_unit"]),
    ("leave after 2 years on 20k?", {"monthly_wage": 20000, "months_of_service": 24},  # said in years, wanted in months
     ["months_of_service", "monthly_wage"]),
    ("how much is it?", {"b": 1, "a": "x", "flag": True}, ["b", "a", "flag"]),  # nothing stated: the order is kept
])
def test_arguments_are_written_in_the_order_the_question_states_them(question, arguments, order):
    ordered = in_mention_order(question, arguments)
    assert list(ordered) == order and ordered == arguments



def test_an_action_writes_its_arguments_in_the_order_the_question_states_them():
    call = Call("overtime_pay", {"monthly_basic_salary": 15250, "overtime_hours": 2.5, "period": "rest_day"})
    assert action_text("2.5 hours on my rest day, basic 15,250", call) == (
        'Action: {"name": "overtime_pay", "arguments": {"overtime_hours": 2.5, "period": "rest_day", '
        '"monthly_basic_salary": 15250}}')


def test_an_action_states_every_optional_named_choice_at_its_default_unless_the_question_fixes_it():
    spec = {"name": "overtime_pay", "parameters": {"type": "object", "required": ["overtime_hours"], "properties": {
        "overtime_hours": {"type": "number"},
        "period": {"type": "string", "enum": ["normal", "night"], "default": "normal"},
        "shift_worker": {"type": "boolean", "default": False},
        "top_k": {"type": "integer", "enum": [1, 2, 3], "default": 3},  # a range, not a choice: left out
        "note": {"type": "string", "default": ""},  # free text, not a choice: left out
    }}}
    plain = action_text("3 hours of overtime?", Call("overtime_pay", {"overtime_hours": 3}), spec)
    assert plain == ('Action: {"name": "overtime_pay", "arguments": {"overtime_hours": 3, "period": "normal", '
                     '"shift_worker": false}}')
    night = action_text("3 hours at night?", Call("overtime_pay", {"overtime_hours": 3, "period": "night"}), spec)
    assert '"period": "night"' in night and '"normal"' not in night
    assert action_text("3 hours?", Call("overtime_pay", {"overtime_hours": 3})) == (
        'Action: {"name": "overtime_pay", "arguments": {"overtime_hours": 3}}')  # no spec: nothing to state


@pytest.mark.parametrize(("message", "kind", "said"), [
    ("Hi", "greeting", "Hi"), ("Good morning.", "greeting", "Good morning"),
    ("Hello, who am I talking to?", "greeting", "Hello"), ("Thank you, that was helpful.", "thanks", "Thank you"),
    ("I really appreciate your help, thank you.", "thanks", "I really appreciate your"),
])
def test_a_replys_thought_quotes_the_users_opening_words_and_names_their_kind_after_them(message, kind, said):
    assert opening_words(message) == said
    thought, answer = reply_step(kind, message, "the shop").split("\n")
    named = {"greeting": ("is a greeting", "says hello"), "thanks": ("is a thank-you", "thanks me")}[kind]
    assert thought.startswith(f'Thought: No tool is needed: "{said}" ')
    assert thought.split(f'"{said}" ')[1].startswith(named)
    assert answer.startswith("Answer: ") and "the shop" in answer
