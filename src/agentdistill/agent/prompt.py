"""The system prompt: which tools exist and how to call them, in as few tokens as possible.

The student is a 135M model with a 1-2k token budget per conversation, so each tool gets one line
(signature and first sentence of its description) and the wire format is shown once, with one
example built from the first tool. The full JSON-Schema specs still travel with every trace
(``Trace.tools``) for converters and for larger models; chat templates of small models ignore them.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agentdistill.tools.registry import ToolRegistry
from agentdistill.tools.spec import Tool

DEFAULT_INTRO = "You are a helpful assistant with tools."


def _example_value(schema: dict[str, Any]) -> Any:
    """A plausible argument value: the first 'e.g.' in the parameter's description, else a typed placeholder."""
    m = re.search(r'e\.g\.\s*("([^"]+)"|[\d.]+)', schema.get("description", ""))
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if m:
        if m.group(2) is not None:
            return m.group(2)
        number = m.group(1).rstrip(".")
        return int(float(number)) if kind == "integer" else float(number) if "." in number else int(number)
    return {"string": "...", "integer": 1, "number": 1, "boolean": True, "array": []}.get(kind, "...")


def example_call(t: Tool) -> dict[str, Any]:
    params = t.parameters.get("properties", {})
    return {"name": t.name, "arguments": {p: _example_value(params[p]) for p in t.parameters.get("required", [])}}


def system_prompt(tools: ToolRegistry, intro: str | None = None) -> str:
    """The system message of every conversation: intro, one line per tool, the reply format, one example."""
    lines = [intro or DEFAULT_INTRO, "", "Tools:"]
    lines += [f"- {t.signature()}: {t.summary}" for t in tools]
    lines += [
        "",
        "To use a tool, reply:",
        "Thought: <one sentence>",
        'Action: {"name": "<tool>", "arguments": {...}}',
        'You then get "Observation: <result>". To finish, reply:',
        "Thought: <one sentence>",
        "Answer: <answer, citing the sources used>",
        "Answer directly when no tool fits.",
    ]
    first = next(iter(tools), None)
    if first is not None:
        lines += ["Example:", f"Thought: I will use {first.name}.",
                  f"Action: {json.dumps(example_call(first), ensure_ascii=False)}"]
    return "\n".join(lines)
