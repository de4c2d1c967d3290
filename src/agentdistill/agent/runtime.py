"""The ReAct loop. The teacher records traces with it and the student is evaluated and served with it,
so the conversation a student is trained on is exactly the conversation it later runs.

One step:  generate (until end-of-turn or "Observation:") -> parse (agent.wire.parse_step) ->
           Answer: stop | Action: run the tool, append its observation, go on.

Every conversation ends with one status:
  answered      the model gave an Answer
  max_steps     ``max_steps`` model turns without an Answer
  loop          the model repeated an action (same tool, same arguments) it had already taken
  parse_error   ``max_parse_errors`` consecutive replies that do not parse; the first ones are fed back
                as an observation ("Error: expected ...") so the model can correct itself
  backend_error the model backend failed on the request (after its own retries)

Self-consistent action generation (Kang et al. 2025): with ``self_consistency = N > 1`` each step
samples N candidates, drops those that do not parse or whose call does not validate against the
tool schemas, and keeps the most frequent action (tool name + arguments; every Answer counts as one
action "answer"), ties going to the earliest candidate.

``run_agents`` advances many conversations in lockstep: each round sends one batch with the next
step of every unfinished conversation, so a local model pads them into one forward pass and an
HTTP backend sends them concurrently; each result is yielded as soon as its conversation ends.

The stored conversation is canonical (docs/design.md): system, user, then assistant steps and tool
results. A reply that does not parse has no canonical form, so it appears as the observation that
answers it (a tool message named ``format_error`` quoting the problem); the raw text of every turn
is kept in ``AgentResult.raw_steps``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentdistill.agent.figures import named_units, reused_figures, stated_counts, stated_figures, without_units
from agentdistill.agent.prompt import system_prompt
from agentdistill.agent.quotes import observations, quotable_sentences, result_sentences
from agentdistill.agent.routing import FirstStepRouter
from agentdistill.agent.wire import STOP_SEQUENCES, Step, WireFormatError, parse_step
from agentdistill.config import AgentConfig
from agentdistill.llm.base import LLM, BackendError, Completion, GenerationRequest
from agentdistill.llm.grammar import MAX_QUOTES, step_grammar
from agentdistill.records import Outcome
from agentdistill.tools.registry import ToolRegistry

FORMAT_ERROR = "format_error"  # the tool name on observations that answer an unparseable reply
FORMAT_HINT = 'Write Thought: <one sentence>, then Action: {"name": "<tool>", "arguments": {...}} or Answer: <answer>.'
SELF_CONSISTENCY_TEMPERATURE = 0.7
_MAX_BUILT = 256  # step grammars kept: one per conversation step where quotes or figures make them differ


@dataclass
class AgentResult:
    messages: list[dict[str, Any]]
    outcome: Outcome
    # the time this conversation's own steps took: its model calls (for a batched local model, the batch it
    # was in) and its tool calls; how many other conversations ran in lockstep beside it does not add to it
    latency_s: float
    raw_steps: list[str] = field(default_factory=list)  # the chosen model text of every turn, as generated
    parse_errors: int = 0  # turns whose text did not parse
    error: str | None = None  # what the backend said, for status "backend_error"


@dataclass
class AgentEvent:
    """What the runtime just did, for live display (``agentdistill chat``) or logging.

    kind: "step" (a parsed assistant step, ``message``), "observation" (a tool result, ``message``),
    "format_error" (``text`` is the reply that did not parse, ``message`` the error fed back), or
    "end" (``text`` is the status).
    """

    kind: str
    index: int
    message: dict[str, Any] | None = None
    text: str = ""


EventHook = Callable[[AgentEvent], None]


def action_key(step: Step) -> str:
    """What self-consistency votes on and the loop guard compares: the tool calls, or "answer"."""
    if step.is_answer:
        return "answer"
    return json.dumps([{"name": c["name"], "arguments": c.get("arguments", {})} for c in step.tool_calls],
                      sort_keys=True, ensure_ascii=False)


def choose_step(texts: list[str], tools: ToolRegistry) -> tuple[int, Step | None, str | None]:
    """Pick one of N candidate replies: (index, parsed step, None), or (0, None, error) if none parses."""
    parsed: list[tuple[int, Step]] = []
    first_error: str | None = None
    for i, text in enumerate(texts):
        try:
            parsed.append((i, parse_step(text)))
        except WireFormatError as e:
            first_error = first_error or str(e)
    if not parsed:
        return 0, None, first_error or "an empty reply"
    if len(parsed) == 1:
        return parsed[0][0], parsed[0][1], None
    valid = [(i, s) for i, s in parsed
             if s.is_answer or all(tools.validate(c["name"], c.get("arguments", {})) is None for c in s.tool_calls)]
    pool = valid or parsed  # if every call is invalid, still act: the observation will say why
    votes = Counter(action_key(s) for _, s in pool)
    best = max(votes.values())
    return next((i, s, None) for i, s in pool if votes[action_key(s)] == best)  # earliest of the most voted


@dataclass
class _Conversation:
    index: int
    messages: list[dict[str, Any]]
    steps: int = 0
    parse_errors: int = 0
    consecutive_parse_errors: int = 0
    seen_actions: set[str] = field(default_factory=set)
    raw_steps: list[str] = field(default_factory=list)
    busy_s: float = 0.0  # becomes AgentResult.latency_s
    result: AgentResult | None = None
    must_call: tuple[str, ...] = ()  # the tools the next step must call: it answered unaided what they cover
    # by tool and argument, the figures the next step may not pass: its call passed them more often than stated
    refused: dict[str, dict[str, set[float]]] = field(default_factory=dict)
    must_answer: bool = False  # the next step must answer: it repeated an action the conversation had taken


class _Loop:
    """The state shared by one ``run_agents`` call; one method per thing that can happen to a conversation."""

    def __init__(self, tools: ToolRegistry, max_steps: int, max_parse_errors: int, on_event: EventHook | None):
        self.tools = tools
        self.max_steps = max_steps
        self.max_parse_errors = max_parse_errors
        self.on_event = on_event

    def emit(self, kind: str, c: _Conversation, message: dict[str, Any] | None = None, text: str = "") -> None:
        if self.on_event is not None:
            self.on_event(AgentEvent(kind, c.index, message, text))

    def finish(self, c: _Conversation, status: str, answer: str | None = None, error: str | None = None) -> None:
        c.result = AgentResult(messages=c.messages, outcome=Outcome(answer=answer, steps=c.steps, status=status),
                               latency_s=c.busy_s, raw_steps=c.raw_steps,
                               parse_errors=c.parse_errors, error=error)
        self.emit("end", c, text=status if error is None else f"{status}: {error}")

    def advance(self, c: _Conversation, texts: list[str], choice: tuple[int, Step | None, str | None]) -> None:
        """One step of ``c``: ``texts`` are its candidate replies, ``choice`` what ``choose_step`` made of them."""
        c.steps += 1
        chosen, step, error = choice
        c.raw_steps.append(texts[chosen] if texts else "")
        if step is None:
            self.bad_reply(c, texts[0] if texts else "", error or "")
            return
        c.consecutive_parse_errors = 0
        message = step.to_message()
        c.messages.append(message)
        self.emit("step", c, message)
        if step.is_answer:
            self.finish(c, "answered", step.answer)
            return
        if _repeats(c, step):  # the same call again will give the same observation: it is stuck
            self.finish(c, "loop")
            return
        c.seen_actions.add(action_key(step))
        asked = next((m.get("content") for m in reversed(c.messages) if m.get("role") == "user"), None)
        for call in step.tool_calls:
            start_s = time.perf_counter()
            result = self.tools.call(call["name"], call.get("arguments", {}), asked=asked)
            c.busy_s += time.perf_counter() - start_s
            observation = {"role": "tool", "name": call["name"], "content": result.content}
            c.messages.append(observation)
            self.emit("observation", c, observation)
        if c.steps >= self.max_steps:
            self.finish(c, "max_steps")

    def bad_reply(self, c: _Conversation, text: str, error: str) -> None:
        c.parse_errors += 1
        c.consecutive_parse_errors += 1
        feedback = {"role": "tool", "name": FORMAT_ERROR,
                    "content": f"Error: your reply is not in the required format: {error}. {FORMAT_HINT}"}
        self.emit("format_error", c, feedback, text)
        if c.consecutive_parse_errors >= self.max_parse_errors:
            self.finish(c, "parse_error")
            return
        c.messages.append(feedback)
        if c.steps >= self.max_steps:
            self.finish(c, "max_steps")


def _generate(llm: LLM, requests: list[GenerationRequest]) -> list[list[Completion] | BackendError]:
    """One batch, where one failed request fails alone: through the backend's ``generate_each`` when it
    has one (per-request errors), else by retrying a failed batch one request at a time."""
    each = getattr(llm, "generate_each", None)
    if callable(each):
        return list(each(requests))
    try:
        return list(llm.generate(requests))
    except BackendError as batch_error:
        if len(requests) == 1:
            return [batch_error]
    out: list[list[Completion] | BackendError] = []
    for r in requests:
        try:
            out.append(llm.generate([r])[0])
        except BackendError as e:
            out.append(e)
    return out


def agent_options(cfg: AgentConfig, currencies: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``run_agents`` keyword arguments that the ``agent`` config section sets; ``currencies``: the run's packs'
    currency spellings (``domains.currency_aliases``), by which a figure is read as money."""
    return {"max_steps": cfg.max_steps, "self_consistency": cfg.self_consistency,
            "first_thought_prefix": cfg.first_thought_prefix, "constrain_tool_names": cfg.constrain_tool_names,
            "constrain_arguments": cfg.constrain_arguments, "quote_answers": cfg.quote_answers,
            "quote_top_passage": cfg.quote_top_passage, "quote_result_first": cfg.quote_result_first,
            "figures_from_conversation": cfg.figures_from_conversation, "figures_by_unit": cfg.figures_by_unit,
            "act_above_relevance": cfg.act_above_relevance, "plan_from_clauses": cfg.plan_from_clauses,
            "replies_from_neighbours": cfg.replies_from_neighbours, "answer_on_repeat": cfg.answer_on_repeat,
            "currencies": dict(currencies or {})}


def run_agents(llm: LLM, tools: ToolRegistry, questions: list[str], *, max_steps: int = 6,
               self_consistency: int = 1, first_thought_prefix: str | None = None, temperature: float | None = None,
               max_tokens: int = 256, max_parse_errors: int = 2, system: str | None = None,
               constrain_tool_names: bool = False, constrain_arguments: bool = False, quote_answers: bool = False,
               quote_top_passage: bool = False, quote_result_first: bool = False,
               figures_from_conversation: bool = False, figures_by_unit: bool = False,
               act_above_relevance: float | None = None, currencies: Mapping[str, str] | None = None,
               router: FirstStepRouter | None = None, plan_from_clauses: bool = False,
               replies_from_neighbours: bool = False, answer_on_repeat: bool = False,
               on_event: EventHook | None = None) -> Iterator[tuple[int, AgentResult]]:
    """Run one agent conversation per question, in lockstep; yield (question index, result) as each ends.

    ``temperature`` defaults to 0 (greedy) for one candidate and 0.7 for self-consistency.
    ``first_thought_prefix`` starts each conversation's first assistant turn where the backend can
    prefill (local models; HTTP servers with ``prefill=True``).
    ``system`` replaces the generated system prompt (e.g. to add a domain intro).
    ``constrain_tool_names`` decodes every step under the step grammar of the tools (llm.grammar: a thought
    line, then an action naming a registered tool, or an answer), and with ``constrain_arguments`` an action's
    arguments follow its tool's JSON schema; a backend that cannot constrain decoding ignores it. With
    ``quote_answers`` too, an answer after a tool call quotes the tools' results (agent/quotes.py), with
    ``quote_top_passage`` only a search result's first passage of them, with ``quote_result_first`` opening with
    a sentence of a computed result where there is one, and with
    ``figures_from_conversation`` an action's number arguments are figures the conversation stated (agent/figures.py),
    with ``figures_by_unit`` each into an argument of the unit it was stated in (``currencies``: the run's packs'
    currency spellings, for money). With ``act_above_relevance``, a first step after a user message that answers
    it unaided, where a tool's data is at least that relevant to it (``ToolRegistry.relevant``), is decoded
    again under a grammar that calls one of those tools: a small student otherwise declines or greets a
    question its documents answer. With a ``router`` (agent/routing.py), the first step after a user message
    may call only the tools the router chooses for it, or answer; with ``plan_from_clauses`` too, a step that
    answers after a tool's result while a clause of the message that asks voted for a tool not called yet is
    decoded again calling one of those; with ``replies_from_neighbours`` too, a first step that replies without a
    tool gives one of the replies of the router's nearest training questions that replied (where any did). With
    ``answer_on_repeat`` (and the grammar), a step that repeats an action the conversation has taken is decoded
    again as an answer; without it, or where that decode repeats it too, the conversation ends as a loop.
    """
    if max_steps < 1 or self_consistency < 1 or max_parse_errors < 1:
        raise ValueError("max_steps, self_consistency and max_parse_errors must be at least 1")
    system = system if system is not None else system_prompt(tools)
    temp = temperature if temperature is not None else (0.0 if self_consistency == 1 else SELF_CONSISTENCY_TEMPERATURE)
    loop = _Loop(tools, max_steps, max_parse_errors, on_event)
    figures = constrain_arguments and figures_from_conversation
    grammars = (_Grammars(tools, constrain_arguments, quote_answers, figures, figures and figures_by_unit, currencies,
                          top_passage=quote_top_passage, result_first=quote_result_first)
                if constrain_tool_names else None)
    planner = router if plan_from_clauses else None
    replier = router if replies_from_neighbours else None
    active = [_Conversation(i, [{"role": "system", "content": system}, {"role": "user", "content": q}])
              for i, q in enumerate(questions)]
    while active:
        prefixes = [first_thought_prefix if (first_thought_prefix and c.steps == 0) else "" for c in active]
        requests = [GenerationRequest(messages=list(c.messages), stop=list(STOP_SEQUENCES), max_tokens=max_tokens,
                                      temperature=temp, n=self_consistency, prefix=p,
                                      grammar=grammars.after(p, c.messages, c.must_call, *_routed(router, replier, c),
                                                             c.refused, c.must_answer)
                                      if grammars else None)
                    for c, p in zip(active, prefixes, strict=True)]
        start_s = time.perf_counter()
        outputs = _generate(llm, requests)
        round_s = time.perf_counter() - start_s
        still: list[_Conversation] = []
        for c, out in zip(active, outputs, strict=True):
            if isinstance(out, BackendError):
                c.busy_s += round_s
                loop.finish(c, "backend_error", error=str(out))
            else:
                timed = [comp.elapsed_s for comp in out if comp.elapsed_s is not None]
                c.busy_s += max(timed) if timed else round_s
                texts = [comp.text for comp in out]
                choice = choose_step(texts, tools)
                again = bool(c.must_call or c.refused or c.must_answer)  # a step decoded again stands
                c.must_call = _must_call(tools, c, choice[1], act_above_relevance, planner) if grammars else ()
                c.refused = grammars.reused(choice[1], c.messages) if grammars and not (again or c.must_call) else {}
                c.must_answer = bool(answer_on_repeat and grammars and not again and _repeats(c, choice[1]))
                if not c.must_call and not c.refused and not c.must_answer:
                    loop.advance(c, texts, choice)
            if c.result is not None:
                yield c.index, c.result
            else:
                still.append(c)
        active = still


def _routed(router: FirstStepRouter | None, replier: FirstStepRouter | None,
            c: _Conversation) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """For ``c``'s step where it is the first after a user message and not one decoded again to call a tool
    (``must_call`` decides those): the ``router``'s choices for that message, and the ``replier``'s replies (those of
    its nearest training questions); else none (any step, any reply)."""
    if c.must_call or c.messages[-1].get("role") != "user":
        return (), ()
    message = str(c.messages[-1].get("content") or "")
    return (router.choices(message) if router else (), replier.replies(message) if replier else ())


def _repeats(c: _Conversation, step: Step | None) -> bool:
    """Whether ``step`` is an action ``c`` has already taken (the loop guard's test)."""
    return step is not None and not step.is_answer and action_key(step) in c.seen_actions


def _must_call(tools: ToolRegistry, c: _Conversation, step: Step | None, act_above: float | None,
               planner: FirstStepRouter | None) -> tuple[str, ...]:
    """The tools one of which ``c``'s step must call instead of ``step``, where it answers and was not already
    decoded again; else none, and the step stands. Answering the user's latest message unaided: those whose data
    is at least ``act_above`` relevant to it. Answering after a tool's result, with a ``planner`` (the router,
    where ``plan_from_clauses``): those the asking clauses of the user's latest message voted for
    (``FirstStepRouter.clause_steps``) that the conversation has not called since it."""
    if c.must_call or step is None or not step.is_answer:
        return ()
    last = c.messages[-1].get("role")
    if last == "user":
        return () if act_above is None else tuple(tools.relevant(str(c.messages[-1].get("content") or ""), act_above))
    if last != "tool" or planner is None:
        return ()
    asked = _latest_question(c.messages)
    called = {call["name"] for m in c.messages[asked:] for call in m.get("tool_calls") or []}
    message = str(c.messages[asked].get("content") or "")
    return tuple(name for name in planner.clause_steps(message) if name in tools and name not in called)


class _Grammars:
    """The step grammar of a run's tools after each prefix; None after a prefix the grammar cannot continue (one
    that does not start the thought line): that turn is decoded free. With ``quotes``, a conversation that has
    tool results gets a grammar whose answer quotes them (with ``top_passage``, of a search result its first
    passage only; with ``result_first``, opening with a sentence of the first result computed since the user's
    latest message); with ``figures``, one whose number arguments are the figures it stated, and with ``units``
    each into an argument of its unit; with ``must_call``, one that must call one of those tools; with ``routed``
    (never given with ``must_call``), one that calls one of its tools or answers; with ``replies``, one whose answer
    is one of them; with ``refused``, one whose calls do not pass those figures to those arguments
    (``reused``); with ``must_answer``, one that answers. A grammar is built once for each prefix, quotes, lead,
    figures, units, choices, replies, refusals and ``must_answer``."""

    def __init__(self, tools: ToolRegistry, arguments: bool, quotes: bool = False, figures: bool = False,
                 units: bool = False, currencies: Mapping[str, str] | None = None, top_passage: bool = False,
                 result_first: bool = False):
        self.specs, self.arguments, self.quotes, self.figures = tools.specs(), arguments, quotes, figures
        self.top_passage, self.result_first = top_passage, result_first
        self.properties = {spec["name"]: (spec.get("parameters") or {}).get("properties") or {} for spec in self.specs}
        self.units, self.currencies = units, currencies
        self.built: dict[tuple[Any, ...], str | None] = {}

    def after(self, prefix: str, messages: list[dict[str, Any]], must_call: tuple[str, ...] = (),
              routed: tuple[str, ...] = (), replies: tuple[str, ...] = (),
              refused: Mapping[str, Mapping[str, set[float]]] | None = None, must_answer: bool = False) -> str | None:
        results = _results(messages) if self.quotes or self.figures else []
        sentences = tuple(quotable_sentences(results, self.top_passage)) if self.quotes else ()
        lead = ()
        if self.quotes and self.result_first:
            computed = result_sentences(_results(messages[_latest_question(messages):]))
            lead = tuple(s for s in computed if s in sentences)
        said = _said(messages) if self.figures else []
        figures = units = None
        if self.figures:
            stated = stated_figures(said + results, self.currencies)
            figures = tuple(stated if self.units else without_units(stated))
            units = named_units(said + results, stated) if self.units else None
        if replies:  # a reply to the user's message, not an answer from tool results
            sentences, lead = replies, ()
        refusals = tuple(sorted((tool, arg, tuple(sorted(values))) for tool, by_arg in (refused or {}).items()
                                for arg, values in by_arg.items()))
        key = (prefix, sentences, lead, figures, units, must_call, routed, bool(replies), refusals, must_answer)
        if key not in self.built:
            if len(self.built) >= _MAX_BUILT:
                self.built.pop(next(iter(self.built)))
            try:
                chosen = must_call or routed
                specs = [] if must_answer else [s for s in self.specs if s["name"] in chosen] if chosen else self.specs
                self.built[key] = step_grammar(specs, prefix, self.arguments, quotes=sentences, figures=figures,
                                               units=units, answer=not must_call, lead=lead,
                                               max_quotes=1 if replies else MAX_QUOTES, refused=refused)
            except ValueError:
                self.built[key] = None
        return self.built[key]

    def reused(self, step: Step | None, messages: list[dict[str, Any]]) -> dict[str, dict[str, set[float]]]:
        """With ``figures``, the figures ``step``'s calls pass more often than the conversation states them, by tool
        and argument (``figures.reused_figures``); else none."""
        if not self.figures or step is None or step.is_answer:
            return {}
        counts = stated_counts(_said(messages) + _results(messages), self.currencies)
        out = {}
        for call in step.tool_calls:
            refused = reused_figures(call.get("arguments") or {}, self.properties.get(call["name"], {}), counts)
            if refused:
                out[call["name"]] = refused
        return out


def _latest_question(messages: list[dict[str, Any]]) -> int:
    """The index of the user's latest message (0 where there is none)."""
    return max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=0)


def _said(messages: list[dict[str, Any]]) -> list[str]:
    """What the user's messages say."""
    return [str(m.get("content") or "") for m in messages if m.get("role") == "user"]


def _results(messages: list[dict[str, Any]]) -> list[str]:
    """What the tools returned, format-error feedback left out."""
    return observations(messages, skip=[FORMAT_ERROR])


def run_agent(llm: LLM, tools: ToolRegistry, question: str, *, max_steps: int = 6, self_consistency: int = 1,
              first_thought_prefix: str | None = None, **options: Any) -> AgentResult:
    """One conversation; ``options`` are the other keyword arguments of ``run_agents``."""
    results = run_agents(llm, tools, [question], max_steps=max_steps, self_consistency=self_consistency,
                         first_thought_prefix=first_thought_prefix, **options)
    return next(results)[1]
