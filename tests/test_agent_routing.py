"""The first step's choices come from the first steps of the training questions nearest a message, in the run's
real embedder, and the runtime decodes that step under a grammar of those tools (or a reply) only."""

from __future__ import annotations

import pytest
from example_packs import example_config
from test_agent_runtime import Script, act, answer

from agentdistill.agent.routing import (
    CHOICES,
    REPLY,
    FirstStepRouter,
    clauses,
    first_step_router,
    first_step_router_or_none,
)
from agentdistill.agent.runtime import run_agents
from agentdistill.corpus.embed import load_embedder
from agentdistill.errors import UserError
from agentdistill.records import Outcome, Trace
from agentdistill.tools import load_tools


def trace(question: str, first: str, split: str = "train", reply: str = "Hello! How can I help?") -> Trace:
    step = ({"role": "assistant", "thought": "I will compute it.",
             "tool_calls": [{"name": first, "arguments": {}}]} if first != REPLY
            else {"role": "assistant", "content": reply, "thought": "No tool is needed."})
    return Trace(id=f"t-{abs(hash(question))}", question_id="q", tools=[], teacher="rule", split=split,
                 messages=[{"role": "system", "content": "You are an agent."}, {"role": "user", "content": question},
                           step], outcome=Outcome(answer="x", steps=1, status="answered"))


TRAINED = [
    trace("What is 15% of 4,000?", "calculator"),
    trace("Calculate 120 * 3 + 40.", "calculator"),
    trace("whats 250 divided by 8", "calculator"),
    trace("How many days are there between 2024-01-01 and 2024-03-15?", "date_diff"),
    trace("days from 2023-05-02 to 2023-09-30?", "date_diff"),
    trace("Hello there!", REPLY),
    trace("hi, good morning", REPLY),
    trace("Thanks a lot, that helps.", REPLY),
]


@pytest.fixture(scope="module")
def router() -> FirstStepRouter:
    return FirstStepRouter.from_traces(TRAINED, load_embedder("all-minilm-l6-v2").encode, k=3)


def test_a_message_is_routed_to_the_first_steps_of_the_training_questions_nearest_it(router):
    assert router.choices("what's 12 percent of 7,500?")[0] == "calculator"
    assert router.choices("how long is it from 1 March 2025 until 15 July 2025 in days")[0] == "date_diff"
    assert router.choices("good evening, hope you're well")[0] == REPLY
    assert all(len(router.choices(m)) <= CHOICES for m in ["hey", "what is 3 + 4?", "thank you!"])


def test_a_message_of_several_questions_adds_each_clause_s_first_step(router):
    assert clauses("Good morning to you all. What is 15% of 4,000, and how many days are there from 2024-01-01 to "
                   "2024-03-15? Thanks!") == ["Good morning to you all.", "What is 15% of 4,000",
                                             "how many days are there from 2024-01-01 to 2024-03-15?"]
    assert clauses("what is 3 + 4?") == ["what is 3 + 4?"] and clauses("hey") == []
    three = "Hello there, good morning to you. What is 15% of 4,000? How many days between 2024-01-01 and 2024-03-15?"
    assert set(router.choices(three)) == {REPLY, "calculator", "date_diff"}  # more than CHOICES: one per clause


def test_only_training_traces_vote_and_none_make_no_router():
    encode = load_embedder("all-minilm-l6-v2").encode
    held_out = [trace("What is 15% of 4,000?", "calculator", split="dev")]
    assert FirstStepRouter.from_traces(held_out, encode, k=3) is None
    router = FirstStepRouter.from_traces(held_out + [trace("Hello there!", REPLY)], encode, k=3)
    assert router.choices("What is 15% of 4,000?") == (REPLY,)


def test_a_run_without_training_traces_is_told_to_make_them_or_turn_routing_off(tmp_path):
    cfg = example_config()
    assert first_step_router(tmp_path, cfg) is None  # off by default
    cfg.agent.route_neighbours = 5
    with pytest.raises(UserError, match="no training traces") as err:
        first_step_router(tmp_path, cfg)
    assert "agentdistill traces" in err.value.hint and "route_neighbours" in err.value.hint
    cfg.agent.constrain_tool_names = False
    assert first_step_router(tmp_path, cfg) is None  # routing narrows the step grammar's tools: none without it
    cfg.agent.constrain_tool_names = True
    said: list[str] = []  # chat and serve go on unrouted, and say why
    assert first_step_router_or_none(tmp_path, cfg, said.append) is None and "no training traces" in said[0]


def test_the_first_step_calls_only_routed_tools_or_replies_and_later_steps_call_any(router):
    tools = load_tools(example_config(), None)
    share, hello = "what's 12 percent of 7,500?", "good evening, hope you're well"
    llm = Script({share: [act("calculator", expression="12% of 7500"), answer("900")],
                  hello: [answer("Good evening! How can I help?")]})
    done = dict(run_agents(llm, tools, [share, hello], constrain_tool_names=True, router=router))
    assert done[0].outcome.answer == "900" and done[1].outcome.answer == "Good evening! How can I help?"
    first = {r.messages[1]["content"]: r.grammar for r in llm.batches[0]}
    calls = lambda grammar: {t["name"] for t in tools.specs() if f'\\"{t["name"]}\\"' in grammar}  # noqa: E731
    assert calls(first[share]) <= set(router.choices(share)) and "calculator" in calls(first[share])
    assert "| answer" in first[share].split("\n")[0]  # it may always reply: the router never forces a call
    assert calls(first[hello]) == set() and first[hello].split("\n")[0].endswith("answer")  # only replies voted
    later = llm.batches[1][0].grammar  # after the calculator's result: every tool, and the answer
    assert calls(later) == {t["name"] for t in tools.specs()} and "| answer" in later.split("\n")[0]


def test_a_reply_is_one_the_nearest_training_questions_got_where_replies_come_from_neighbours():
    welcome = "You're welcome. Ask again any time."
    trained = [*TRAINED, trace("Thank you so much!", REPLY, reply=welcome), trace("thx, bye", REPLY, reply=welcome)]
    router = FirstStepRouter.from_traces(trained, load_embedder("all-minilm-l6-v2").encode, k=2)
    hey, thanks = "heyyy 👋 good morning", "thank you so much, bye"
    assert router.replies(hey) == ("Hello! How can I help?",) and router.replies(thanks)[0] == welcome
    assert router.replies("whats 17 divided by 4") == ()  # no neighbour replied: any reply
    tools = load_tools(example_config(), None)
    for on in (False, True):
        llm = Script({hey: [answer("Hello! How can I help?")], thanks: [answer(welcome)]})
        done = dict(run_agents(llm, tools, [hey, thanks], constrain_tool_names=True, router=router,
                               replies_from_neighbours=on))
        assert done[0].outcome.answer == "Hello! How can I help?" and done[1].outcome.answer == welcome
        first = {r.messages[1]["content"]: r.grammar for r in llm.batches[0]}
        if on:
            assert 'quote ::= "Hello! How can I help?"\n' in first[hey] + "\n" and welcome not in first[hey]
        else:
            assert "quote ::=" not in first[hey]


def test_an_answer_after_one_tool_calls_first_the_tool_another_clause_voted_for(router):
    tools = load_tools(example_config(), None)
    both = "What is 15% of 4,000, and how many days are there from 2024-01-01 to 2024-03-15?"
    one = "what's 12 percent of 7,500?"
    assert router.clause_steps(both) == ("calculator", "date_diff") and router.clause_steps(one) == ()
    story = "I have worked there from 2024-01-01 to 2024-03-15. What is 15% of 4,000?"  # one clause asks
    assert len(router.choices(story)) > 1 and router.clause_steps(story) == ()
    script = {both: [act("calculator", expression="15% of 4000"), answer("600"),
                     act("date_diff", start_date="2024-01-01", end_date="2024-03-15"), answer("600 and 74 days")],
              one: [act("calculator", expression="12% of 7500"), answer("900")]}
    llm = Script(script)
    done = dict(run_agents(llm, tools, [both, one], constrain_tool_names=True, router=router, plan_from_clauses=True))
    assert done[0].outcome.answer == "600 and 74 days" and done[0].outcome.steps == 3
    assert [m["name"] for m in done[0].messages if m["role"] == "tool"] == ["calculator", "date_diff"]
    again = llm.batches[2][0]  # the answer after the calculator's result, decoded again: date_diff or nothing
    assert again.messages[1]["content"] == both and '\\"date_diff\\"' in again.grammar
    assert '\\"calculator\\"' not in again.grammar and "| answer" not in again.grammar.split("\n")[0]
    assert done[1].outcome.answer == "900" and done[1].outcome.steps == 2  # one clause: the answer stands
    unplanned = dict(run_agents(Script(script), tools, [both], constrain_tool_names=True, router=router))
    assert unplanned[0].outcome.answer == "600" and unplanned[0].outcome.steps == 2  # off by default
