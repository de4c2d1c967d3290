"""The ReAct wire format the student learns, and a parser for what small models really emit.

An assistant turn is rendered as::

    Thought: <one or two sentences>
    Action: {"name": "<tool>", "arguments": {...}}

or, to finish::

    Thought: <...>
    Answer: <final answer>

and a tool result turn as ``Observation: <text>``. Thoughts are single-line: ``render_assistant``
folds their whitespace, so ``parse_step(render_assistant(m))`` gives back ``m`` with its thought's
whitespace folded (the round-trip property the tests check).

The parser is lenient where small models are predictably sloppy (missing "Thought:", code fences
around the JSON, trailing commas, Python-style quotes, text after the JSON, ``Action: tool`` followed
by ``Action Input: {...}``) and precise otherwise: a ``WireFormatError`` says what was expected and
at which character, so the runtime can feed the error back as an observation.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

THOUGHT = "Thought:"
ACTION = "Action:"
ACTION_INPUT = "Action Input:"
ANSWER = "Answer:"
OBSERVATION = "Observation:"

# A model that keeps going after its action often invents the observation itself; cut it there.
STOP_SEQUENCES = ["\nObservation:", "Observation:"]

_STEP_WORDS = r"thought|action input|action|final answer|answer"  # longer alternatives before their prefixes
_MARKER = re.compile(rf"^[ \t>*#]*({_STEP_WORDS})[ \t*]*:", re.I | re.M)
_ANSWER_KINDS = ("answer", "final answer")
# Where an answer stops: a line that opens another step, or the system prompt's "Example:" heading that
# introduces one. A small model that goes on after its answer imitates the prompt: 8 of one run's 127
# held-out answers ran on into "Answer: ...", "Example:" + "Thought: ..." or "Action: {...}" lines.
_ANSWER_END = re.compile(rf"\n\s*[>*#]*[ \t]*(?:(?:observation|{_STEP_WORDS})[ \t*]*:"
                         r"|example[ \t*]*:[ \t]*(?=\n|$))", re.I)
# A line that is only a code fence. Such lines are blanked (same length, so positions still index the
# model's text); fences inside an answer or a JSON string are content and are kept.
_FENCE_LINE = re.compile(r"^[ \t]*```[\w+-]*[ \t]*$", re.M)
_INLINE_FENCE = re.compile(r"```[\w+-]*\s*")  # `Action: ```json {...}``` ` on one line
_TRAILING_FENCE = re.compile(r"(?:^|\n)[ \t]*```[ \t]*\Z")


class WireFormatError(ValueError):
    """Model output that is not a Thought/Action or Thought/Answer step."""

    def __init__(self, expected: str, position: int, text: str):
        snippet = text[position : position + 40].replace("\n", "\\n")
        super().__init__(f"expected {expected} at character {position} (found {snippet!r})")
        self.expected = expected
        self.position = position


@dataclass
class Step:
    thought: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    answer: str | None = None

    @property
    def is_answer(self) -> bool:
        return self.answer is not None

    def to_message(self) -> dict[str, Any]:
        """The canonical assistant message (docs/design.md) for this step."""
        if self.answer is not None:
            return {"role": "assistant", "thought": self.thought, "content": self.answer}
        return {"role": "assistant", "thought": self.thought, "tool_calls": self.tool_calls}


def fold_whitespace(text: str) -> str:
    return " ".join(text.split())


def _last_marker(text: str) -> str | None:
    """The kind of ``text``'s last step marker, lower-cased ("thought", "answer", ...); None without one."""
    last = next(reversed(list(_MARKER.finditer(text))), None)
    return last.group(1).lower() if last is not None else None


def in_thought(text: str) -> bool:
    """Whether ``text`` ends inside a thought: its last marker is "Thought:", no action or answer after it."""
    return _last_marker(text) == "thought"


def answer_ran_on(text: str) -> bool:
    """Whether ``text`` has an answer with text of its own and, after it, a line that opens another step
    (``_ANSWER_END``): the answer is over and anything more imitates the prompt."""
    opened = next((m for m in _MARKER.finditer(text) if m.group(1).lower() in _ANSWER_KINDS), None)
    if opened is None:
        return False
    ended = _ANSWER_END.search(text, opened.end())
    return ended is not None and bool(text[opened.end():ended.start()].strip())


def in_answer(text: str) -> bool:
    """Whether ``text`` ends inside an answer: its last marker is "Answer:" (or "Final Answer:")."""
    return _last_marker(text) in _ANSWER_KINDS


def render_action(call: dict[str, Any]) -> str:
    payload = {"name": call["name"], "arguments": call.get("arguments", {})}
    return f"{ACTION} {json.dumps(payload, ensure_ascii=False)}"


def render_assistant(message: dict[str, Any]) -> str:
    """Render a canonical assistant message as wire text (without any end-of-turn token)."""
    lines = [f"{THOUGHT} {fold_whitespace(message.get('thought', ''))}"]
    if "tool_calls" in message:
        lines.extend(render_action(c) for c in message["tool_calls"])
    else:
        lines.append(f"{ANSWER} {message['content'].strip()}")
    return "\n".join(lines)


def render_observation(content: str) -> str:
    return f"{OBSERVATION} {content.strip()}"


def render_message(message: dict[str, Any]) -> str:
    """The text a chat template shows for any canonical message."""
    if message["role"] == "assistant":
        return render_assistant(message)
    if message["role"] == "tool":
        return render_observation(message["content"])
    return message["content"]


def parse_step(text: str) -> Step:
    """Parse one assistant turn. Raises WireFormatError with the position of the first problem."""
    cleaned = _FENCE_LINE.sub(lambda m: " " * len(m.group()), text)
    markers = [(m.group(1).lower(), m.start(), m.end()) for m in _MARKER.finditer(cleaned)]
    final = next((m for m in markers if m[0] in ("action", *_ANSWER_KINDS)), None)
    if final is None:
        raise WireFormatError("'Action:' or 'Answer:'", len(text.rstrip()), text)
    kind, start, end = final
    thought = cleaned[:start]
    thought_marker = next((m for m in markers if m[0] == "thought" and m[1] < start), None)
    if thought_marker is not None:
        thought = cleaned[thought_marker[2] : start]
    thought = fold_whitespace(thought)
    if kind in _ANSWER_KINDS:
        answer = _ANSWER_END.split(text[end:], maxsplit=1)[0].strip()
        if len(_FENCE_LINE.findall(text[:start])) % 2:  # the step was wrapped in a fence: drop its closing line
            answer = _TRAILING_FENCE.sub("", answer).strip()
        if not answer:
            raise WireFormatError("answer text after 'Answer:'", end, cleaned)
        return Step(thought=thought, answer=answer)
    calls = []
    pos = end
    while True:
        call, pos = _parse_action_body(cleaned, pos)
        calls.append(call)
        nxt = re.compile(r"\s*Action:", re.I).match(cleaned, pos)
        if not nxt:
            break
        pos = nxt.end()
    return Step(thought=thought, tool_calls=calls)


_NAME = re.compile(r"[ \t]*([A-Za-z_][\w.\-]*)[ \t]*(?:\n|$)")
_INPUT = re.compile(r"\s*Action Input\s*:\s*", re.I)


def _parse_action_body(text: str, pos: int) -> tuple[dict[str, Any], int]:
    """Parse what follows 'Action:' starting at ``pos``; return the call and the end position."""
    ws = re.compile(r"\s*").match(text, pos)
    start = ws.end() if ws else pos
    fence = _INLINE_FENCE.match(text, start)
    if fence and text.startswith("{", fence.end()):
        start = fence.end()
    if start < len(text) and text[start] == "{":
        obj, end = _parse_json_object(text, start)
        name = obj.get("name") if isinstance(obj, dict) else None
        if not isinstance(name, str) or not name:
            raise WireFormatError('a "name" string in the action object', start, text)
        args = obj.get("arguments", obj.get("parameters", {}))
        if isinstance(args, str):  # some models double-encode the arguments
            try:
                args = json.loads(args)
            except json.JSONDecodeError as e:
                raise WireFormatError('"arguments" as a JSON object', start, text) from e
        if not isinstance(args, dict):
            raise WireFormatError('"arguments" as a JSON object', start, text)
        return {"name": name, "arguments": args}, end
    m = _NAME.match(text, start)
    if m:
        name = m.group(1)
        after = m.end()
        inp = _INPUT.match(text, after)
        if inp is None:
            raise WireFormatError("'Action Input: {...}' after the tool name", after, text)
        body = inp.end()
        fence = _INLINE_FENCE.match(text, body)
        if fence and text.startswith("{", fence.end()):
            body = fence.end()
        if body < len(text) and text[body] == "{":
            args, end = _parse_json_object(text, body)
            if not isinstance(args, dict):
                raise WireFormatError("a JSON object after 'Action Input:'", inp.end(), text)
            return {"name": name, "arguments": args}, end
        raise WireFormatError("a JSON object after 'Action Input:'", body, text)
    raise WireFormatError('a JSON object {"name": ..., "arguments": {...}} after \'Action:\'', start, text)


def _object_end(text: str, start: int) -> int:
    """Index just past the brace that closes the object opened at ``start``."""
    depth = 0
    quote: str | None = None
    i = start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise WireFormatError("a closing '}' for the JSON object", len(text), text)


def _drop_trailing_commas(src: str) -> str:
    out = []
    quote: str | None = None
    i = 0
    while i < len(src):
        ch = src[i]
        if quote:
            out.append(ch)
            if ch == "\\" and i + 1 < len(src):
                out.append(src[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            out.append(ch)
        elif ch == ",":
            j = i + 1
            while j < len(src) and src[j].isspace():
                j += 1
            # a trailing comma becomes a space, so JSON error positions still index the model's text
            out.append(ch if j >= len(src) or src[j] not in "}]" else " ")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _parse_json_object(text: str, start: int) -> tuple[Any, int]:
    end = _object_end(text, start)
    src = _drop_trailing_commas(text[start:end])
    try:
        return json.loads(src), end
    except RecursionError as e:
        raise WireFormatError("JSON nested less deeply", start, text) from e
    except json.JSONDecodeError as e:
        try:  # Python-literal dicts ({'a': 1, 'b': True}) are a common small-model slip
            # the JSON round trip makes tuples lists and keys strings, and refuses sets and bytes
            return json.loads(json.dumps(ast.literal_eval(src))), end
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise WireFormatError(f"valid JSON ({e.msg})", start + e.pos, text) from e
