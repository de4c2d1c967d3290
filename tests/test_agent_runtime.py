"""The ReAct loop survives what small models really do, and ends every conversation with the right status.

The model here is a script: a tiny LLM implementation that replays given replies (it exists to inject
faults: malformed JSON, unknown tools, wrong argument types, endless repeats, backend failures). The
tools are the real ones.
"""

from __future__ import annotations

import json

import pytest
from example_packs import example_config

from agentdistill.agent.quotes import quotable_sentences
from agentdistill.agent.runtime import FORMAT_ERROR, run_agent, run_agents
from agentdistill.agent.wire import STOP_SEQUENCES
from agentdistill.llm.base import BackendError, Completion, GenerationRequest
from agentdistill.records import Trace
from agentdistill.tools import load_tools


def act(name: str, **arguments: object) -> str:
    return f"Thought: I will call {name}.\nAction: {json.dumps({'name': name, 'arguments': arguments})}"


def answer(text: str) -> str:
    return f"Thought: I know the answer now.\nAnswer: {text}"


GRATUITY = act("calculate_gratuity", monthly_basic_salary=9000, length_of_service=7)


class Script:
    """Replays, per question, one reply per turn (a list of replies = the n candidates of that turn;
    an exception instance = the backend failing on that turn). The last reply repeats forever."""

    name = "script"

    def __init__(self, replies: dict[str, list[object]], elapsed_s: dict[str, float] | None = None):
        self.replies = replies
        self.elapsed_s = elapsed_s or {}  # per question: the call time its completions report
        self.turn: dict[str, int] = {}
        self.batches: list[list[GenerationRequest]] = []

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        self.batches.append(requests)
        questions = [r.messages[1]["content"] for r in requests]
        replies = [self.replies[q][min(self.turn.get(q, 0), len(self.replies[q]) - 1)] for q in questions]
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply  # like a server: a failed batch consumes nothing
        out = []
        for q, r, reply in zip(questions, requests, replies, strict=True):
            self.turn[q] = self.turn.get(q, 0) + 1
            texts = reply if isinstance(reply, list) else [reply] * r.n
            out.append([Completion(text=r.prefix + t, finish_reason="stop", elapsed_s=self.elapsed_s.get(q))
                        for t in texts])
        return out


@pytest.fixture(scope="module")
def tools():
    return load_tools(example_config(), None)


def check_canonical(result, tools) -> None:
    """Every run yields a trace that the canonical Trace record accepts."""
    Trace(id="t", question_id="q", tools=tools.specs(), messages=result.messages, teacher="script",
          outcome=result.outcome)


def test_action_then_answer_is_answered_with_a_canonical_trace(tools):
    llm = Script({"q": [GRATUITY, answer("AED 49,500 (Federal Decree-Law 33/2021, Art. 51)")]})
    result = run_agent(llm, tools, "q")
    assert result.outcome.status == "answered"
    assert result.outcome.answer == "AED 49,500 (Federal Decree-Law 33/2021, Art. 51)"
    assert result.outcome.steps == 2
    roles = [m["role"] for m in result.messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assert "calculate_gratuity(monthly_basic_salary: number" in result.messages[0]["content"]
    assert result.messages[2]["tool_calls"] == [
        {"name": "calculate_gratuity", "arguments": {"monthly_basic_salary": 9000, "length_of_service": 7}}]
    assert result.messages[3]["name"] == "calculate_gratuity"
    assert "AED 49,500.00" in result.messages[3]["content"]  # the real tool ran
    assert result.parse_errors == 0 and result.raw_steps[0] == GRATUITY
    check_canonical(result, tools)
    assert llm.batches[0][0].stop == STOP_SEQUENCES


def test_malformed_json_is_fed_back_and_the_model_can_recover(tools):
    broken = 'Thought: compute it\nAction: {"name": "calculate_gratuity", "arguments": {"monthly_basic_salary": 9000'
    llm = Script({"q": [broken, GRATUITY, answer("AED 49,500")]})
    result = run_agent(llm, tools, "q")
    assert result.outcome.status == "answered"
    assert result.parse_errors == 1
    feedback = result.messages[2]
    assert feedback["role"] == "tool" and feedback["name"] == FORMAT_ERROR
    assert feedback["content"].startswith("Error: your reply is not in the required format")
    assert "closing '}'" in feedback["content"]
    # the model saw the error as an observation before its next try
    assert llm.batches[1][0].messages[-1] == feedback
    check_canonical(result, tools)


def test_consecutive_unparseable_replies_end_with_parse_error(tools):
    llm = Script({"q": ["I think the answer is 42", "{not even close"]})
    result = run_agent(llm, tools, "q", max_parse_errors=2)
    assert result.outcome.status == "parse_error"
    assert result.outcome.answer is None
    assert result.outcome.steps == 2 and result.parse_errors == 2
    assert result.raw_steps == ["I think the answer is 42", "{not even close"]
    check_canonical(result, tools)


def test_unknown_tool_becomes_an_observation_not_a_crash(tools):
    llm = Script({"q": [act("gratuity_calc", salary=9000), GRATUITY, answer("AED 49,500")]})
    result = run_agent(llm, tools, "q")
    assert result.outcome.status == "answered"
    obs = result.messages[3]
    assert obs["role"] == "tool" and obs["name"] == "gratuity_calc"
    assert obs["content"].startswith("Error: unknown tool 'gratuity_calc'")
    assert "calculate_gratuity" in obs["content"]
    check_canonical(result, tools)


def test_wrong_argument_types_are_explained_to_the_model(tools):
    bad = act("calculate_gratuity", monthly_basic_salary="9000 AED", length_of_service=7)
    llm = Script({"q": [bad, GRATUITY, answer("AED 49,500")]})
    result = run_agent(llm, tools, "q")
    assert result.outcome.status == "answered"
    assert "'monthly_basic_salary' must be of type number" in result.messages[3]["content"]
    check_canonical(result, tools)


def test_an_endless_repeat_is_stopped_by_the_loop_guard(tools):
    llm = Script({"q": [act("annual_leave", length_of_service=8)]})  # forever the same call
    result = run_agent(llm, tools, "q", max_steps=6)
    assert result.outcome.status == "loop"
    assert result.outcome.steps == 2  # stopped at the first repeat, not at max_steps
    tool_results = [m for m in result.messages if m["role"] == "tool"]
    assert len(tool_results) == 1  # the repeated call was not run again
    assert result.messages[-1]["role"] == "assistant"
    check_canonical(result, tools)


def test_with_answer_on_repeat_a_repeated_action_is_decoded_again_as_an_answer(tools):
    search = act("annual_leave", length_of_service=8)
    llm = Script({"q": [search, search, answer("Annual leave: 16 days.")]})
    result = run_agent(llm, tools, "q", constrain_tool_names=True, answer_on_repeat=True)
    assert result.outcome.status == "answered" and result.outcome.answer == "Annual leave: 16 days."
    assert len([m for m in result.messages if m["role"] == "tool"]) == 1  # the repeat was not run
    again = llm.batches[2][0].grammar  # the step decoded again: an answer, no action
    assert again.split("\n")[0].endswith('"\\n" answer') and "Action:" not in again
    stubborn = Script({"q": [search]})  # a backend that ignores the grammar repeats again: the loop guard ends it
    assert run_agent(stubborn, tools, "q", constrain_tool_names=True, answer_on_repeat=True).outcome.status == "loop"
    assert run_agent(Script({"q": [search]}), tools, "q", constrain_tool_names=True).outcome.status == "loop"  # off


def test_distinct_actions_without_an_answer_end_at_max_steps(tools):
    llm = Script({"q": [act("calculator", expression=f"{i} + 1") for i in range(10)]})
    result = run_agent(llm, tools, "q", max_steps=3)
    assert result.outcome.status == "max_steps"
    assert result.outcome.steps == 3 and result.outcome.answer is None
    assert [m["content"] for m in result.messages if m["role"] == "tool"] == ["0 + 1 = 1", "1 + 1 = 2", "2 + 1 = 3"]
    check_canonical(result, tools)


def test_a_backend_failure_ends_only_its_own_conversation(tools):
    llm = Script({"ok": [GRATUITY, answer("AED 49,500")],
                  "bad": [BackendError("HTTP 500 after 5 attempts")]})
    results = dict(run_agents(llm, tools, ["ok", "bad"]))
    assert results[1].outcome.status == "backend_error"
    assert "HTTP 500" in results[1].error
    assert results[0].outcome.status == "answered" and results[0].outcome.steps == 2
    check_canonical(results[1], tools)


def test_self_consistency_drops_unparseable_and_invalid_candidates_then_votes(tools):
    valid = act("annual_leave", length_of_service=8)
    invalid = act("annual_leave", months="eight")
    llm = Script({"q": [["garbage", invalid, invalid, invalid, valid], answer("16 days")]})
    result = run_agent(llm, tools, "q", self_consistency=5)
    assert llm.batches[0][0].n == 5 and llm.batches[0][0].temperature == pytest.approx(0.7)
    assert result.messages[2]["tool_calls"] == [{"name": "annual_leave", "arguments": {"length_of_service": 8}}]
    assert result.outcome.status == "answered"


def test_self_consistency_takes_the_majority_action(tools):
    a = act("calculator", expression="1 + 1")
    b = act("calculator", expression="2 + 2")
    llm = Script({"q": [[a, b, b.replace("I will call", "Let me use")], answer("4")]})
    result = run_agent(llm, tools, "q", self_consistency=3)
    assert result.messages[2]["tool_calls"][0]["arguments"] == {"expression": "2 + 2"}  # 2 votes to 1


def test_lockstep_batches_all_active_conversations_and_yields_each_as_it_ends(tools):
    llm = Script({
        "one": [answer("hello")],
        "two": [act("calculator", expression="1 + 1"), answer("2")],
        "three": [act("calculator", expression="1 + 1"), act("calculator", expression="2 + 2"), answer("4")],
    })
    order = [i for i, _ in run_agents(llm, tools, ["three", "two", "one"])]
    assert order == [2, 1, 0]  # shortest conversation first
    assert [len(b) for b in llm.batches] == [3, 2, 1]  # one generate call per round, for every active one


def test_latency_counts_a_conversations_own_steps_not_the_others_in_lockstep(tools):
    llm = Script({"quick": [answer("hello")],
                  "slow": [act("calculator", expression="1 + 1"), act("calculator", expression="2 + 2"), answer("4")]},
                 elapsed_s={"quick": 0.5, "slow": 2.0})
    latency = {i: r.latency_s for i, r in run_agents(llm, tools, ["quick", "slow"])}
    assert latency[0] == pytest.approx(0.5)  # it ended in the first round; the slow one's rounds are not its time
    assert 6.0 <= latency[1] < 6.5  # three steps of 2 s, plus two real calculator calls

    untimed = Script({"q": [act("calculator", expression="1 + 1"), answer("2")]})  # no elapsed_s: the round's wall time
    assert 0 < run_agent(untimed, tools, "q").latency_s < 1.0


def test_first_thought_prefix_is_sent_on_the_first_turn_only(tools):
    llm = Script({"q": [" I need the gratuity rules.\nAction: " + GRATUITY.split("Action: ")[1], answer("done")]})
    result = run_agent(llm, tools, "q", first_thought_prefix="Thought:")
    assert [b[0].prefix for b in llm.batches] == ["Thought:", ""]
    assert result.messages[2]["thought"] == "I need the gratuity rules."
    assert result.outcome.status == "answered"


def test_quote_answers_sends_a_grammar_whose_answer_quotes_the_tool_results_once_there_are_some(tools):
    llm = Script({"q": [GRATUITY, answer("End-of-service gratuity: AED 49,500.00")]})
    run_agent(llm, tools, "q", constrain_tool_names=True, quote_answers=True)
    first, second = (batch[0].grammar for batch in llm.batches)
    assert "quote ::=" not in first  # no tool result yet: the answer is free (a greeting, a decline)
    observation = next(s for s in quotable_sentences([llm.batches[1][0].messages[-1]["content"]]))
    assert "quote ::=" in second and observation.replace('"', '\\"') in second
    free = Script({"q": [GRATUITY, answer("AED 49,500")]})
    run_agent(free, tools, "q", constrain_tool_names=True)
    assert "quote ::=" not in free.batches[1][0].grammar  # off by default


def test_quote_top_passage_offers_a_search_results_first_passage_only():
    from agentdistill.tools import ToolRegistry

    def find(query: str) -> str:
        """Find passages.

        Args:
            query: What to look for.
        """
        return ("[1] Leave > Mourning leave (Art. 32): A worker whose parent dies gets three days.\n"
                "[2] Leave > Annual leave (Art. 29): A worker earns 30 days a year.")

    question = "my dad died, how many days off?"
    grammars = {}
    for top_passage in (False, True):
        llm = Script({question: [act("find", query="parent dies"), answer("A worker earns 30 days a year.")]})
        run_agent(llm, ToolRegistry([find]), question, constrain_tool_names=True, quote_answers=True,
                  quote_top_passage=top_passage)
        grammars[top_passage] = llm.batches[1][0].grammar
    assert "three days" in grammars[False] and "30 days a year" in grammars[False]
    assert "three days" in grammars[True] and "30 days a year" not in grammars[True]


def test_quote_result_first_opens_the_answer_with_the_result_computed_since_the_question():
    from agentdistill.agent.runtime import _Grammars
    from agentdistill.tools import ToolRegistry

    def find(query: str) -> str:
        """Find passages.

        Args:
            query: What to look for.
        """
        return "[1] Hours > Overtime (Art. 19): Overtime is paid at the hourly wage plus 25%. It is at most 2 hours."

    def pay(hours: float) -> str:
        """Overtime pay.

        Args:
            hours: Hours worked overtime.
        """
        return f"Overtime pay: AED {hours * 25:.2f}. Paid with the wage."

    tools = ToolRegistry([find, pay])
    question = "what are the overtime rules, and what would I get for 6 hours?"
    grammars = {}
    for first in (False, True):
        llm = Script({question: [act("pay", hours=6), act("find", query="overtime rules"), answer("x")]})
        run_agent(llm, tools, question, constrain_tool_names=True, quote_answers=True, quote_result_first=first)
        grammars[first] = llm.batches[2][0].grammar
    assert "lead ::=" not in grammars[False]
    lead = next(line for line in grammars[True].splitlines() if line.startswith("lead ::="))
    assert lead == 'lead ::= "Overtime pay: AED 150.00." | "Paid with the wage."'
    assert "Overtime is paid at the hourly wage plus 25%." in grammars[True]  # still quotable after the lead
    # a later question's answer does not open with an earlier question's result
    later = [*llm.batches[2][0].messages, {"role": "assistant", "content": "x"},
             {"role": "user", "content": "and where do I complain?"}]
    assert "lead ::=" not in _Grammars(tools, True, quotes=True, result_first=True).after("", later)


def test_a_call_that_passes_a_figure_more_often_than_stated_is_decoded_again_and_then_stands(tools):
    question = "I'm on 8,500 basic, about 6 years. what's my EOSB?"
    twice = act("calculate_gratuity", monthly_basic_salary=8500, length_of_service=6, unpaid_absence_days=8500)
    once = act("calculate_gratuity", monthly_basic_salary=8500, length_of_service=6)
    options = {"constrain_tool_names": True, "constrain_arguments": True, "figures_from_conversation": True}
    llm = Script({question: [twice, once, answer("AED 38,250")]})
    result = run_agent(llm, tools, question, **options)
    calls = [m["tool_calls"][0]["arguments"] for m in result.messages if m.get("tool_calls")]
    assert calls == [{"monthly_basic_salary": 8500, "length_of_service": 6}] and result.outcome.steps == 2
    assert llm.batches[0][0].grammar != llm.batches[1][0].grammar  # the second decode refused 8500 as days
    stubborn = Script({question: [twice, twice, answer("x")]})  # a step decoded again stands, whatever it is
    assert [m["tool_calls"][0]["arguments"] for m in run_agent(stubborn, tools, question, **options).messages
            if m.get("tool_calls")] == [json.loads(twice.split("Action: ")[1])["arguments"]]
    free = Script({question: [twice, answer("x")]})  # the rule off: the call stands
    run_agent(free, tools, question, constrain_tool_names=True, constrain_arguments=True)
    assert len(free.batches) == 2


def test_events_report_each_step_as_it_happens(tools):
    events = []
    llm = Script({"q": ["no format", GRATUITY, answer("AED 49,500")]})
    run_agent(llm, tools, "q", on_event=events.append)
    assert [e.kind for e in events] == ["format_error", "step", "observation", "step", "end"]
    assert events[0].text == "no format"
    assert events[2].message["name"] == "calculate_gratuity"
    assert events[-1].text == "answered"


def test_a_tool_that_takes_asked_receives_the_question_the_model_was_asked():
    from agentdistill.tools import ToolRegistry

    asked_of = []

    def find(query: str, *, asked: str | None = None) -> str:
        """Find passages.

        Args:
            query: What to look for.
        """
        asked_of.append((query, asked))
        return "found"

    llm = Script({"how many days off do new fathers get?": [act("find", query="paternity"), answer("five days")]})
    result = run_agent(llm, ToolRegistry([find]), "how many days off do new fathers get?")
    assert result.outcome.status == "answered"
    assert asked_of == [("paternity", "how many days off do new fathers get?")]


def test_an_unaided_answer_to_a_question_the_tools_data_covers_is_decoded_again_calling_one_of_those_tools():
    from agentdistill.tools import ToolRegistry
    from agentdistill.tools.spec import Tool

    def find(query: str) -> str:
        """Find passages.

        Args:
            query: What to look for.
        """
        return "Maternity leave is 60 days."

    def add(a: float, b: float) -> float:
        """Add two numbers."""
        return a + b

    pregnant, hello, sum_ = "can they fire me for being pregnant?", "hello!", "what is 60 days plus 5 days?"
    search = Tool.from_function(find)
    search.relevance = {pregnant: 0.6, hello: 0.1, sum_: 0.5}.__getitem__
    tools = ToolRegistry([search, add])
    llm = Script({pregnant: [answer("I cannot help with that."), act("find", query="pregnancy dismissal"),
                             answer("no")],
                  hello: [answer("Hello! How can I help?")],
                  sum_: [act("add", a=60, b=5), answer("65 days")]})
    done = dict(run_agents(llm, tools, [pregnant, hello, sum_], constrain_tool_names=True, act_above_relevance=0.4))
    assert [done[i].outcome.answer for i in range(3)] == ["no", "Hello! How can I help?", "65 days"]
    assert [m["tool_calls"][0]["name"] for m in done[0].messages if m.get("tool_calls")] == ["find"]
    grammars = [[r.grammar for r in batch if r.messages[1]["content"] == pregnant] for batch in llm.batches]
    first, again = grammars[0][0], grammars[1][0]
    assert "| answer" in first.split("\n")[0]  # the student chooses first
    assert "answer" not in again.split("\n")[0] and '"add' not in again  # then a search, nothing else
    assert len(llm.batches[1]) == 2  # the greeting, far from the data, stood: only the unaided answer went again
    unruled = Script({pregnant: [answer("I cannot help with that.")]})
    assert run_agent(unruled, tools, pregnant, constrain_tool_names=True).outcome.answer == "I cannot help with that."
