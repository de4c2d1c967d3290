"""An agent conversation as the steps a client is shown: thoughts, tool calls, observations, the answer.

Each runtime event (agent.runtime.AgentEvent) becomes one JSON-ready step. An observation that lists
passages the way the corpus search tools print them (``[1] <citation>: <text>``, one per line) also
carries them parsed, and the answer's citations (as the run's citation style reads them, every spelling
of one source as one: agentdistill.citations) are tied to the passage that showed each one, so the chat
page can link a citation to the text it rests on and mark one that no observation showed.
"""

from __future__ import annotations

import re
from typing import Any

from agentdistill.agent.runtime import AgentEvent
from agentdistill.agent.wire import render_action
from agentdistill.citations import GENERIC, CitationStyle

# "[2] Returns > Worked example: refund (Consumer Code 5/2020, Sec. 12): text": a heading may hold a
# colon of its own, so a head that ends in its citations' parenthesis is tried first
_PASSAGE_CITED = re.compile(r"^\[(\d+)\]\s+(.{1,300}?\)):\s+(.*)$")
_PASSAGE = re.compile(r"^\[(\d+)\]\s+(.+?):\s+(.*)$")
_PARENTHESIS = re.compile(r"\(([^()]*)\)")


def passages(observation: str, style: CitationStyle = GENERIC) -> list[dict[str, Any]]:
    """The numbered passages of a search-style observation (empty for others): ``[{n, citation, text, cites}]``,
    ``cites`` being the citations (that ``style`` reads) the passage's head writes out in parentheses, as written."""
    out = []
    for line in observation.splitlines():
        m = _PASSAGE_CITED.match(line.strip()) or _PASSAGE.match(line.strip())
        if m:
            head = m.group(2)
            cites = [part.strip() for inner in _PARENTHESIS.findall(head) for part in inner.split(";")
                     if style.extract(part)]
            out.append({"n": int(m.group(1)), "citation": head, "text": m.group(3), "cites": cites})
    return out


def step_of(event: AgentEvent, index: int, style: CitationStyle = GENERIC) -> dict[str, Any] | None:
    """The step a runtime event shows, numbered ``index``; None for the end event (the answer says it)."""
    m = event.message or {}
    if event.kind == "step" and "tool_calls" in m:
        calls = [{"name": c["name"], "arguments": c.get("arguments", {})} for c in m["tool_calls"]]
        return {"index": index, "type": "action", "thought": m.get("thought", ""), "tool_calls": calls}
    if event.kind == "step":
        return {"index": index, "type": "answer", "thought": m.get("thought", ""), "answer": m.get("content", "")}
    if event.kind == "observation":
        return {"index": index, "type": "observation", "name": m.get("name", ""), "content": m.get("content", ""),
                "passages": passages(m.get("content", ""), style)}
    if event.kind == "format_error":
        return {"index": index, "type": "format_error", "text": event.text, "error": m.get("content", "")}
    return None


def step_text(step: dict[str, Any]) -> str:
    """A step in the wire format, for clients that show ``reasoning_content`` as plain text."""
    if step["type"] == "action":
        return "\n".join([f"Thought: {step['thought']}", *(render_action(c) for c in step["tool_calls"])]) + "\n"
    if step["type"] == "observation":
        return f"Observation: {step['content']}\n"
    if step["type"] == "format_error":
        return f"(reply not understood: {step['text'].strip()})\n"
    return f"Thought: {step['thought']}\n"


def answer_citations(answer: str, steps: list[dict[str, Any]], style: CitationStyle = GENERIC) -> list[dict[str, Any]]:
    """Each citation ``answer`` makes, with the passage that showed it (``{step, n}``) or None."""
    shown: dict[str, dict[str, int]] = {}
    found = [(step["index"], p) for step in steps for p in step.get("passages", [])]
    # a passage's own citation names it before any source its text mentions in passing
    for whole in (False, True):
        for index, p in found:
            keys = style.extract(f"{p['citation']}: {p['text']}") if whole else style.of_section(p["citation"])
            for key in sorted(keys):
                shown.setdefault(key, {"step": index, "n": p["n"]})
    return [{"citation": key, "passage": shown.get(key)} for key in sorted(style.extract(answer))]
