"""Constrained decoding of actions: once a reply opens an action object, only a registered tool's name
can follow, and inside its arguments only that tool's argument names and values of their types.

A small student that has learned the wire format still slips on the words that matter most: it writes
``Action: {"name": "calculate_overtime_pay"`` for a tool called ``overtime_pay``, or gives
``overtime_pay`` an argument ``"overtime_pay": 25`` copied from the passage it just read. Everything
else about such a step may be right, and a name is a choice among a handful of strings, so the local
backend masks the logits while the text after ``Action: {`` is a prefix of ``"name": "<registered
tool>"``, and, when argument names are given, while the text at a key of the arguments object is a
prefix of ``"<argument of that tool>":``; a number argument's value must stay a number until a ``,``
or ``}`` closes it, and an enum or boolean one must be one of its values. The model still picks, by
its own probabilities, but only among names and values that are valid. Outside those spans (thoughts,
free string values, answers) nothing is constrained, and a reply that leaves the expected shape
(another key first, a different spacing) is left alone: the parser and the runtime's format-error
feedback handle it as before.

With ``numbers`` (the numbers the user wrote, per row) a number argument can only be one of them or
its negation: on a topic it had not seen in training the student wrote ``"overtime_hours": 25``, the
"25 percent" of the passage it had just read, for a question about 24 hours, and ``2500`` for "AED
24,250". That only suits tools whose numbers the user states (a question giving "2 years" where the
tool takes months needs a number the user did not write), so it is an option (``agent.numbers_from_user``).

With ``citations`` (the citations the conversation has shown, per row) an answer can cite only those:
once a reply writes a law's name after ``(`` or ``; ``, the rest of the citation must be one it read,
and where it read none of that law, a citation of it cannot begin. On held-out topics the student
copied a passage's sentence and then wrote ``Federal Decree-Law 33/2021, Art. 15`` where the passage said
``Cabinet Resolution 1/2022, Art. 15``, or added ``(Cabinet Decision 106/2022, Art. 14)`` from a training
passage on another topic; both are ungrounded answers (``agent.citations_from_observations``).

With ``plans`` (per row, what the previous thought said comes next) a thought after an observation can
only name that as its own "next:": the student planned "next: calculate_gratuity", searched, and after
an unseen topic's passage wrote "next: the answer" and answered without the calculator.

The token ids allowed after a given partial name or value are computed once from the token strings
and cached, so the cost per generated token is one decode of a short tail per row.
"""

from __future__ import annotations

import bisect
import json
import re
from functools import cached_property
from typing import Any

from agentdistill.citations import LAW_NAMES

# the action object as the wire format renders it (json.dumps spacing), and the compact variant
_NAME_KEYS = ('"name": "', '"name":"')
_ACTION_OPEN = re.compile(r"Action:[ \t]*\{[ \t]*")
_ARGUMENTS_OPEN = re.compile(r'"name":[ \t]*"(?P<tool>[^"\\]+)"[ \t]*,[ \t]*"arguments":[ \t]*\{')
# enough to hold 'Action: {"name": "' and a long tool name even when sampled one character per token;
# an argument key is read from the same tail, so an action longer than this is left unconstrained
_TAIL_TOKENS = 96
# a number value so far, and one that is complete and closed by "," or "}"
_NUMBERS = {"number": (re.compile(r"\s*-?\d*(\.\d*)?"), re.compile(r"\s*-?\d+(\.\d+)?\s*[,}]")),
            "integer": (re.compile(r"\s*-?\d*"), re.compile(r"\s*-?\d+\s*[,}]"))}
_NUMBER_TOKEN = re.compile(r"[\s\d.\-]*([,}].*)?", re.DOTALL)
# a figure as people write it ("24,250", "1.5", "2024"); the thousands commas are dropped to make it JSON
_WRITTEN_NUMBER = re.compile(r"(?<![\d.])\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\d.])\d+(?:\.\d+)?")
# a citation as the corpus and the tools write one: "Federal Decree-Law 33/2021, Art. 17", "Cabinet
# Decision 106/2022, Arts. 5-6"; a reply's citation opens after "(" or "; " and ends at one of _CITATION_ENDS
_LAW_NAMES = tuple(f"{name} " for name in LAW_NAMES)
_CITATION = re.compile(rf"(?:{'|'.join(map(re.escape, _LAW_NAMES))})\d+/\d{{4}}, Arts?\. \d+(?:-\d+)?")
_CITATION_OPEN = re.compile(r"(?:\(|; )(?P<partial>[^()\n;]*)$")
_CITATION_ENDS = (")", ";", ",", ".", " ")
# the rule teacher's plan: a thought ends "; next: overtime_pay." or "; next: the answer."
PLAN_MARKER = "next:"
_PLAN_WRITTEN = re.compile(rf"{PLAN_MARKER} ([^\n]*?)\.\s*$")
_PLAN_OPEN = re.compile(rf"{PLAN_MARKER}(?P<partial>[^\n.]*)$")


def numbers_written(text: str) -> list[str]:
    """The numbers in ``text`` as JSON number literals, in order and without repeats: "AED 24,250 for 1.5
    hours" -> ["24250", "1.5"]. Leading zeros ("2024-06-01" -> "2024", "6", "1") are dropped, as JSON does."""
    out: list[str] = []
    for m in _WRITTEN_NUMBER.finditer(text):
        whole, _, fraction = m.group().replace(",", "").partition(".")
        literal = str(int(whole)) + (f".{fraction}" if fraction else "")
        if literal not in out:
            out.append(literal)
    return out


def citations_read(text: str) -> list[str]:
    """The citations in ``text`` as written, in order and without repeats: "... (Federal Decree-Law
    33/2021, Art. 17; Cabinet Resolution 1/2022, Art. 15)" -> both."""
    return list(dict.fromkeys(m.group() for m in _CITATION.finditer(text)))


def open_citation(text: str, citations: list[str]) -> tuple[tuple[str, ...], str, bool] | None:
    """Where ``text`` stands if it ends in a citation: (the citations it may go on to, each with the
    characters that may end it; the citation so far; whether it may only go on to one of them). Only
    once a law's name is written are the tokens allowed; before that, at the opening "(" or "; " and
    while the text is on its way to a law's name, only the tokens towards a law not among them are
    refused (so "(for example" goes on). None when the text is in no citation or has left the ones read."""
    opened = _CITATION_OPEN.search(text[-120:])
    if opened is None:
        return None
    partial = opened["partial"]
    in_name = any(partial.startswith(name) for name in _LAW_NAMES)
    if not in_name and not any(name.startswith(partial) for name in _LAW_NAMES):
        return None  # a parenthesis or "; " that opens no citation: most of them, so nothing more is built
    targets = tuple(sorted(f"{c}{end}" for c in citations for end in _CITATION_ENDS))
    if in_name and not any(t.startswith(partial) and t != partial for t in targets):
        return None
    return targets, partial, in_name


def plan_written(thought: str) -> str | None:
    """What a thought says comes next ("...; next: overtime_pay." -> "overtime_pay"), or None."""
    m = _PLAN_WRITTEN.search(thought)
    return m.group(1) if m else None


def open_plan(text: str, plan: str) -> tuple[tuple[str, ...], str] | None:
    """(the plan as the text may go on to write it, the part written) when ``text`` ends in a "next:"
    that is on its way to ``plan``; None otherwise."""
    opened = _PLAN_OPEN.search(text)
    target = f" {plan}."
    if opened is None or not target.startswith(opened["partial"]):
        return None
    return (target,), opened["partial"]


def open_key(arguments: str) -> tuple[str, list[str], bool] | None:
    """Where ``arguments`` (the text after ``"arguments": {``) stands if it ends at a key of that object:
    (the text of the key so far, from just after the ``{`` or ``,`` that opened it; the keys already
    written; whether no key came before). None inside a value, a nested object, or after the closing brace."""
    at = _scan(arguments)
    if at is None or at[0] != "key":
        return None
    _, partial, keys = at
    return partial, keys, not keys and not partial.strip()


def open_value(arguments: str) -> tuple[str, str] | None:
    """(the key, the text of its value so far) when ``arguments`` ends in a value of the arguments object
    that is not a nested object or list."""
    at = _scan(arguments)
    if at is None or at[0] != "value":
        return None
    _, partial, keys = at
    return keys[-1], partial


def _scan(arguments: str) -> tuple[str, str, list[str]] | None:
    """("key" or "value", the text of that key or value so far, the keys written) at the end of ``arguments``."""
    depth, in_string, escaped = 0, False, False
    state, start, keys = "key", 0, []
    for i, ch in enumerate(arguments):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
                if depth == 0 and state == "key string":
                    keys.append(arguments[start:i].strip().lstrip('"'))
                    state = "colon"
            continue
        if ch == '"':
            in_string = True
            if depth == 0 and state == "key":
                state = "key string"
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            if depth == 0:
                return None
            depth -= 1
        elif depth == 0 and ch == ":" and state == "colon":
            state, start = "value", i + 1
        elif depth == 0 and ch == "," and state == "value":
            state, start = "key", i + 1
    if depth:
        return None
    return ("value" if state == "value" else "key"), arguments[start:], keys


class ActionConstraint:
    """The token masks that keep action names to ``tool_names`` and, for the tools in ``tool_arguments``
    (tool -> the JSON schema of each argument, the ``properties`` of its parameters), argument names to
    theirs, number arguments to numbers and enum or boolean ones to their values; cached for one
    tokenizer and tool set. ``processor(prompt_len, prefixes)`` gives the logits processor for one
    generate() call."""

    def __init__(self, tokenizer: Any, tool_names: list[str],
                 tool_arguments: dict[str, dict[str, dict[str, Any]]] | None = None):
        if not tool_names:
            raise ValueError("a tool-name constraint needs at least one tool name")
        self.tokenizer = tokenizer
        self.targets = tuple(sorted({f'{key}{name}"' for key in _NAME_KEYS for name in tool_names}))
        self.tool_arguments = dict(tool_arguments or {})
        self._vocab = [(i, s) for i, s in enumerate(tokenizer.batch_decode([[i] for i in range(len(tokenizer))])) if s]
        self._allowed: dict[tuple[tuple[str, ...], str], list[int]] = {}

    def partial_name(self, generated_text: str) -> str | None:
        """The text after the last open action object while it is still a strict prefix of a target
        (``'"name": "ove'``); None when no action is open, the name is complete, or the reply left the shape."""
        span = self.open_span(generated_text)
        return span[1] if span is not None and span[0] == self.targets else None

    def open_span(self, generated_text: str, numbers: list[str] | None = None) -> tuple[tuple[str, ...], str] | None:
        """(the strings the text may go on to, the part of one written so far) when ``generated_text``
        ends inside an action's name or, for a tool with known arguments, at one of its argument keys or
        in a number, enum or boolean value (a number's "strings" are ``("<number>",)`` or ``("<integer>",)``,
        or with ``numbers`` those of them that suit the argument, each closed by ``,`` or ``}``)."""
        last = next(reversed(list(_ACTION_OPEN.finditer(generated_text))), None)
        if last is None:
            return None
        action = generated_text[last.end():]
        if any(t.startswith(action) and t != action for t in self.targets):
            return self.targets, action
        opened = _ARGUMENTS_OPEN.match(action)
        if opened is None or opened.group("tool") not in self.tool_arguments:
            return None
        arguments, schemas = action[opened.end():], self.tool_arguments[opened.group("tool")]
        at_key = open_key(arguments)
        if at_key is not None:
            partial, written, first = at_key
            unused = [a for a in schemas if a not in written]
            targets = tuple(sorted({f'{space}"{a}":' for a in unused for space in ("", " ")}
                                   | ({"}"} if first else set())))
        else:
            at_value = open_value(arguments)
            if at_value is None:
                return None
            key, partial = at_value
            schema = schemas.get(key) or {}
            kind = schema.get("type")
            values = schema.get("enum") or ([True, False] if kind == "boolean" else None)
            if values:
                targets = tuple(sorted({f"{space}{json.dumps(v)}" for v in values for space in ("", " ")}))
            elif kind in _NUMBERS:
                fits = [n for n in numbers or () if kind == "number" or "." not in n]
                if not fits:  # no number of the user's suits it: any number
                    return ((f"<{kind}>",), partial) if _NUMBERS[kind][0].fullmatch(partial) else None
                targets = tuple(sorted({f"{space}{sign}{n}{end}" for n in fits for sign in ("", "-")
                                        for space in ("", " ") for end in ",}"}))
            else:
                return None
        if targets and any(t.startswith(partial) and t != partial for t in targets):
            return targets, partial
        return None

    def allowed(self, partial: str, targets: tuple[str, ...] | None = None) -> list[int]:
        """Token ids whose text keeps ``partial`` on the way to a target (default: a tool name), or
        completes one (a token may run past its end, e.g. '",'); for the target ``<number>`` or
        ``<integer>``, on the way to a number or closing it."""
        targets = targets or self.targets
        number = _NUMBERS.get(targets[0][1:-1]) if targets[0].startswith("<") else None
        if number is not None:
            partial = re.sub(r"\d+", "1", partial)  # the allowed tokens depend on the shape, not the digits
        key = (targets, partial)
        ids = self._allowed.get(key)
        if ids is None:
            if number is not None:
                so_far, done = number
                ids = [token_id for token_id, s in self._number_tokens
                       if so_far.fullmatch(partial + s) or done.match(partial + s)]
            else:
                ids = sorted(self.towards(partial, targets))
            self._allowed[key] = ids
        return ids

    @cached_property
    def _number_tokens(self) -> list[tuple[int, str]]:
        """Tokens that can go on writing a number: digits, a sign, a point, or what ends it."""
        return [(i, s) for i, s in self._vocab if _NUMBER_TOKEN.fullmatch(s)]

    def towards(self, partial: str, targets: tuple[str, ...]) -> set[int]:
        """Token ids whose text takes ``partial`` on towards one of ``targets`` or completes one (it may run
        past the end), found by looking up the rest of each target's prefixes rather than scanning the
        vocabulary (``allowed`` caches what it finds for names and keys; citations differ from conversation
        to conversation)."""
        ids: set[int] = set()
        texts = self._token_texts
        for rest in {t[len(partial):] for t in targets if t.startswith(partial) and t != partial}:
            for k in range(1, len(rest)):
                ids.update(self._ids_of_text.get(rest[:k], ()))
            at = bisect.bisect_left(texts, rest)
            while at < len(texts) and texts[at].startswith(rest):
                ids.update(self._ids_of_text[texts[at]])
                at += 1
        return ids

    @cached_property
    def _ids_of_text(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for token_id, s in self._vocab:
            out.setdefault(s, []).append(token_id)
        return out

    @cached_property
    def _token_texts(self) -> list[str]:
        return sorted(self._ids_of_text)

    def processor(self, prompt_len: int, prefixes: list[str], numbers: list[list[str] | None] | None = None,
                  citations: list[list[str] | None] | None = None,
                  plans: list[str | None] | None = None) -> _ActionProcessor:
        """A logits processor for a generate() call whose generated tokens start at ``prompt_len``;
        ``prefixes[row]`` is the text prefilled before row ``row``'s generated tokens, ``numbers[row]``
        the numbers its number arguments may take, ``citations[row]`` the citations it may write and
        ``plans[row]`` what its "next:" must name (None: any)."""
        return _ActionProcessor(self, prompt_len, prefixes, numbers or [None] * len(prefixes),
                                citations or [None] * len(prefixes), plans or [None] * len(prefixes))

    def apply(self, generated: Any, scores: Any, prefixes: list[str],
              numbers: list[list[str] | None] | None = None,
              citations: list[list[str] | None] | None = None, plans: list[str | None] | None = None) -> Any:
        """Mask ``scores`` of every row whose text (prefix + ``generated`` tokens) ends inside a constrained span."""
        import torch

        tails = generated[:, -_TAIL_TOKENS:].tolist()
        for row, tail in enumerate(tails):
            text = prefixes[row][-200:] + self.tokenizer.decode(tail, skip_special_tokens=True)
            span = self.open_span(text, numbers[row] if numbers else None)
            if span is not None:
                ids = [i for i in self.allowed(span[1], span[0]) if i < scores.shape[-1]]
            elif citations and citations[row] is not None and (cited := open_citation(text, citations[row])):
                targets, partial, only = cited
                if not only:  # on the way to a law's name: refuse the way to a law none of them is of
                    refused = self.towards(partial, _LAW_NAMES) - self.towards(partial, targets)
                    scores[row, [i for i in refused if i < scores.shape[-1]]] = float("-inf")
                    continue
                ids = [i for i in self.towards(partial, targets) if i < scores.shape[-1]]
            elif plans and plans[row] is not None and (planned := open_plan(text, plans[row])):
                ids = [i for i in self.towards(planned[1], planned[0]) if i < scores.shape[-1]]
            else:
                continue
            if ids:  # no way on: leave the row alone
                mask = torch.full_like(scores[row], float("-inf"))
                mask[ids] = 0.0
                scores[row] = scores[row] + mask
        return scores


class _ActionProcessor:
    """What generate() calls at every step (the LogitsProcessor signature)."""

    def __init__(self, constraint: ActionConstraint, prompt_len: int, prefixes: list[str],
                 numbers: list[list[str] | None], citations: list[list[str] | None], plans: list[str | None]):
        self.constraint = constraint
        self.prompt_len = prompt_len
        self.prefixes = prefixes
        self.numbers = numbers
        self.citations = citations
        self.plans = plans

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        return self.constraint.apply(input_ids[:, self.prompt_len:], scores, self.prefixes, self.numbers,
                                     self.citations, self.plans)
