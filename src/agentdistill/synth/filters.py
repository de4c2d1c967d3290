"""Which teacher traces are good enough to train on.

A student imitates everything in its data, mistakes included, so a trace is kept only if:

1. ``status``: the runtime ended it with an answer (not max_steps, loop, parse_error, backend_error);
2. ``parse``: every assistant step is a well-formed Thought/Action or Thought/Answer step;
3. ``invalid_call``: every call names a known tool and its arguments validate against the tool's JSON
   schema; ``tool_error``: no observation is an error (a trace that recovers from its own bad call
   teaches the bad call first);
4. ``too_many_steps`` / ``no_answer``: it ends with an Answer within max_steps;
5. ``missing_tool`` / ``unexpected_tool``: it used every tool the question expects, and none when the
   question expects none; ``wrong_arguments``: calls match the arguments the question fixes, as the eval scores them
   (``agentdistill.tools.matching``);
6. ``ungrounded``: every citation in the answer appears in an observation the teacher read, as the run's
   citation style reads them (``style.extract(answer) ⊆ ⋃ style.extract(observation)``), so the student
   never learns to cite from memory.

The first failing check names the rejection reason; reasons are counted in traces.stats.json.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentdistill.citations import GENERIC, CitationStyle
from agentdistill.records import Question, Record, Trace
from agentdistill.tools.matching import arguments_match, optional_defaults
from agentdistill.tools.registry import is_error

FORMAT_ERROR = "format_error"  # agent.runtime.FORMAT_ERROR: the observation that answers an unparseable reply


class Rejection(Record):
    """One line of traces.rejected.jsonl: a question answered, judged, and not kept."""

    question_id: str
    reason: str
    detail: str = ""
    trace: Trace | None = None


def check_trace(trace: Trace, question: Question, tools: Any, max_steps: int,
                style: CitationStyle = GENERIC, currencies: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """None if the trace is kept, else (reason, detail). ``tools`` is a ToolRegistry (validate, names);
    ``style``: how the run's documents are cited (``domains.citation_style``); ``currencies``: how its packs write
    their currencies (``domains.currency_aliases``)."""
    if trace.outcome.status != "answered":
        return f"status_{trace.outcome.status}", trace.outcome.answer or ""
    steps = [m for m in trace.messages if m["role"] == "assistant"]
    if not steps or "content" not in steps[-1] or trace.messages[-1] is not steps[-1]:
        return "no_answer", "the trace does not end with an Answer step"
    if len(steps) > max_steps:
        return "too_many_steps", f"{len(steps)} steps > max_steps {max_steps}"
    for m in steps:
        if not m["thought"].strip():
            return "parse", "an assistant step has an empty thought"
    for m in trace.messages:  # the runtime answers a reply that did not parse with a format_error observation
        if m["role"] == "tool" and m["name"] == FORMAT_ERROR:
            return "parse", m["content"][:200]
    called: list[dict[str, Any]] = [c for m in steps for c in m.get("tool_calls", [])]
    for c in called:
        problem = tools.validate(c["name"], c.get("arguments", {}))
        if problem is not None:
            return "invalid_call", problem
    observations = [m["content"] for m in trace.messages if m["role"] == "tool"]
    for obs in observations:
        if is_error(obs):
            return "tool_error", obs[:200]
    expected = question.expect.tools if question.expect is not None else None
    used = {c["name"] for c in called}
    if expected is not None:
        if not expected and used:
            return "unexpected_tool", f"expected no tool, called {sorted(used)}"
        missing = [t for t in expected if t not in used]
        if missing:
            return "missing_tool", f"expected {expected}, called {sorted(used)}"
        defaults = optional_defaults(tools.specs())
        for name, args in (question.expect.arguments or {}).items():
            if not arguments_match({name: args}, called, defaults):
                calls = [c.get("arguments", {}) for c in called if c["name"] == name]
                return "wrong_arguments", f"{name}: expected {args}, got {calls}"
    answer = steps[-1]["content"]
    cited = style.extract(answer)
    seen: set[str] = set()
    for obs in observations:
        seen |= style.extract(obs)
    ungrounded = cited - seen
    if ungrounded:
        return "ungrounded", f"cites {sorted(ungrounded)} not in any observation"
    # a trace that routes right and then answers something else would teach the student to do the same
    from agentdistill.evaluate.answer_check import check_answer

    verdict = check_answer(question, answer, observations, currencies)
    if verdict.correct is False:
        return "wrong_answer", verdict.reason
    return None
