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

With the user's ``words`` as well, arguments follow them (``agent.arguments_from_user``): a number keeps
the unit it was written with ("2 hours", "a 30-day notice", "AED 44,000"); an argument named for a unit
(``overtime_hours``, ``years_of_service``; a salary or wage is money) takes only numbers of that unit
(or, where the user wrote none, numbers written without one), each once, and of several the one written
beside a word of its name; a tool, and a thought's "next:", is not offered when one of its arguments
without a default has no such number, when the user wrote fewer dates than it has date arguments
without a default, or, for a tool that computes an ``expression``, when every number the user wrote is
in a date or a duration (which the date and unit tools take); an argument with a default is written
only where the user gave it a value ("rest day" names ``"period": "rest_day"``); and a time quantity the
user wrote cannot be left out. On held-out topics the student answered "the pay for 2 hours on a basic
salary of AED 44,000" with ``calculate_gratuity`` and ``"years_of_service": 2``, added ``"period":
"rest_day"`` to plain overtime, and gave a notice calculation the days served as the notice.

With ``citations`` (per row, the citations and laws the conversation has shown: ``citations_shown``) an
answer can cite only those: once a reply writes a law's name after ``(`` or ``; ``, the rest of the citation
must be one it read, and where it read none of that law, a citation of it cannot begin. On held-out topics
the student copied a passage's sentence and then wrote ``Federal Decree-Law 33/2021, Art. 15`` where the
passage said ``Cabinet Resolution 1/2022, Art. 15``, or added ``(Cabinet Decision 106/2022, Art. 14)`` from
a training passage on another topic; both are ungrounded answers (``agent.citations_from_observations``).
Inside an answer the same holds for a law's name in running text, which may also name a law read without an
article: the student answered "The result is in Federal Law 33/2021, Art. 29" having read only Federal
Decree-Law 33/2021.

With ``plans`` (per row, what the previous thought said comes next) a thought after an observation can
only name that as its own "next:": the student planned "next: calculate_gratuity", searched, and after
an unseen topic's passage wrote "next: the answer" and answered without the calculator. The runtime
also plans, for a thought that has no plan to follow, a tool the user's numbers ask for and no call has
used yet (``tools_asked_for``): a student that searched first for "explain the gratuity formula, and
what would I get after 12 years on AED 20,000" had planned "next: the answer" and never computed it.

The token ids allowed after a given partial name or value are computed once from the token strings
and cached, so the cost per generated token is one decode of a short tail per row.
"""

from __future__ import annotations

import bisect
import json
import re
from functools import cached_property
from typing import Any, NamedTuple

from agentdistill.agent.wire import answer_ran_on, in_answer, in_thought
from agentdistill.citations import LAW_NAMES, LAW_RE

# the action object as the wire format renders it (json.dumps spacing), and the compact variant
_NAME_KEYS = ('"name": "', '"name":"')
_ACTION_OPEN = re.compile(r"Action:[ \t]*\{[ \t]*")
# right after the marker only the object may follow: a student wrote "Action: 25 percent and 50 percent at
# night (...)" after a search, 7 of its 8 format errors on 133 held-out questions
_ACTION_MARKER = re.compile(r"Action:(?P<partial>[ \t]?)$")
_ACTION_OBJECT = (" {", "{")
_ARGUMENTS_OPEN = re.compile(r'"name":[ \t]*"(?P<tool>[^"\\]+)"[ \t]*,[ \t]*"arguments":[ \t]*\{')
# enough to hold 'Action: {"name": "' and a long tool name even when sampled one character per token;
# an argument key is read from the same tail, so an action longer than this is left unconstrained
_TAIL_TOKENS = 96
# a number value so far, and one that is complete and closed by "," or "}"
_NUMBERS = {"number": (re.compile(r"\s*-?\d*(\.\d*)?"), re.compile(r"\s*-?\d+(\.\d+)?\s*[,}]")),
            "integer": (re.compile(r"\s*-?\d*"), re.compile(r"\s*-?\d+\s*[,}]"))}
_NUMBER_VALUE = re.compile(r'":\s*-?(\d+(?:\.\d+)?)\s*[,}]')  # a number value written, closed
_NUMBER_TOKEN = re.compile(r"[\s\d.\-]*([,}].*)?", re.DOTALL)
# a figure as people write it ("24,250", "1.5", "2024"); the thousands commas are dropped to make it JSON
_WRITTEN_NUMBER = re.compile(r"(?<![\d.])\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\d.])\d+(?:\.\d+)?")
# a figure's unit: a time word after it ("2 hours", "a 30-day notice", "1.5 extra hours", but not "AED 9,000 a
# month"), or a currency beside it; an argument's unit is the time word or money word in its name
TIME_UNITS = ("hour", "day", "week", "month", "year")
_UNIT_AFTER = re.compile(rf"(?:-|\s+)(?:(?!(?:a|an|per|each|every|the)\s)[a-z]+\s+)?({'|'.join(TIME_UNITS)})s?\b",
                         re.IGNORECASE)
_CURRENCY_BEFORE = re.compile(r"(?:\b(?:AED|USD|EUR|GBP|Dhs?)\.?|[$€£])\s*$", re.IGNORECASE)
_CURRENCY_AFTER = re.compile(r"\s*(?:AED|USD|EUR|GBP|dirhams?|dollars?|euros?)\b", re.IGNORECASE)
_DATE = re.compile(r"(?<!\d)\d{4}-\d{1,2}-\d{1,2}(?!\d)")
_WORD = re.compile(r"[A-Za-z]+")
_CONTEXT_WORDS = 4
_MONEY_WORDS = frozenset({"salary", "wage", "pay", "amount", "price", "cost", "fee"})
MONEY = "money"
DATE = "date"  # the year, month and day of "2024-06-01": no quantity an argument named for a unit takes


class WrittenNumber(NamedTuple):
    """A number the user wrote: its JSON literal, and its unit (one of TIME_UNITS, MONEY, DATE or None)."""

    literal: str
    unit: str | None = None
    context: frozenset[str] = frozenset()  # the words beside it, to tell "30 days notice" from "17 days served"


# a citation as the corpus and the tools write one: "Federal Decree-Law 33/2021, Art. 17", "Cabinet
# Decision 106/2022, Arts. 5-6"; a reply's citation opens after "(" or "; " and ends at one of _CITATION_ENDS
_LAW_NAMES = tuple(f"{name} " for name in LAW_NAMES)
_CITATION = re.compile(rf"(?:{'|'.join(map(re.escape, _LAW_NAMES))})\d+/\d{{4}}, Arts?\. \d+(?:-\d+)?")
_CITATION_OPEN = re.compile(r"(?:\(|; )(?P<partial>[^()\n;]*)$")
_CITATION_ENDS = (")", ";", ",", ".", " ")
# how far back a citation may have opened: the longest, "Ministerial Resolution 1234/2022, Arts. 100-101",
# twice over
_CITATION_CHARS = 120
# a law's name in an answer's running text opens a citation once its first word is written ("Federal"),
# so a word that merely begins like one ("Min...") is not held up
_BARE_START = re.compile(r"(?<=\s)[A-Z]")
_LAW_FIRST_WORDS = tuple(dict.fromkeys(name.split()[0] for name in LAW_NAMES))
# the rule teacher's plan: a thought ends "; next: overtime_pay." or "; next: the answer."
PLAN_MARKER = "next:"
PLAN_ANSWER = "the answer"
_PLAN_WRITTEN = re.compile(rf"{PLAN_MARKER} ([^\n]*?)\.\s*$")
_PLAN_OPEN = re.compile(rf"{PLAN_MARKER}(?P<partial>[^\n.]*)$")


def numbers_written(text: str) -> list[WrittenNumber]:
    """The numbers in ``text`` as JSON number literals with their units, in order and without repeats: "AED
    24,250 for 1.5 hours" -> [("24250", "money"), ("1.5", "hour")]. Leading zeros ("2024-06-01" -> "2024",
    "6", "1", each of unit "date") are dropped, as JSON does."""
    out: list[WrittenNumber] = []
    dates = [d.span() for d in _DATE.finditer(text)]
    words = [(w.start(), w.end(), _stem(w.group())) for w in _WORD.finditer(text)]
    for m in _WRITTEN_NUMBER.finditer(text):
        whole, _, fraction = m.group().replace(",", "").partition(".")
        in_date = any(start <= m.start() < end for start, end in dates)
        before = [w for start, end, w in words if end <= m.start()][-_CONTEXT_WORDS:]
        after = [w for start, end, w in words if start >= m.end()][:_CONTEXT_WORDS]
        number = WrittenNumber(str(int(whole)) + (f".{fraction}" if fraction else ""),
                               DATE if in_date else _unit_of(text, m), frozenset(before + after))
        same = next((i for i, n in enumerate(out) if n[:2] == number[:2]), None)
        if same is None:
            out.append(number)
        else:  # written again: one number, read beside the words of both places
            out[same] = out[same]._replace(context=out[same].context | number.context)
    return out


def words_written(text: str) -> frozenset[str]:
    """The words of ``text``, lower case and without a plural s, as ``choice_named`` and the numbers'
    contexts compare them, and its dates whole ("2024-06-01"), which ``names_for`` counts."""
    return frozenset(_stem(w.group()) for w in _WORD.finditer(text)) | frozenset(_DATE.findall(text))


def _is_date_argument(name: str) -> bool:
    return "date" in name.lower().split("_")


# an argument that is arithmetic on the user's numbers, as its name says (the general pack's calculator)
ARITHMETIC_ARGUMENTS = frozenset({"expression", "formula"})


def _stem(word: str) -> str:
    return word.lower().removesuffix("s")


def choice_named(argument: str, value: Any, words: frozenset[str]) -> bool:
    """Whether the user's ``words`` name an enum or boolean ``value`` of ``argument``: every word of
    "rest_day" among them for "rest_day"; for ``True``, every word of the argument's name ("shift_worker")."""
    name = argument if value is True else str(value)
    return all(_stem(w) in words for w in name.split("_") if w)


def _choices(schema: dict[str, Any]) -> list[Any] | None:
    """An enum or boolean argument's values; None for any other."""
    return schema.get("enum") or ([True, False] if schema.get("type") == "boolean" else None)


def _other_choice_named(argument: str, default: Any, values: list[Any], words: frozenset[str]) -> bool:
    return any(v != default and choice_named(argument, v, words) for v in values)


def _unit_of(text: str, number: re.Match[str]) -> str | None:
    before, after = text[max(0, number.start() - 8):number.start()], text[number.end():number.end() + 40]
    if _CURRENCY_BEFORE.search(before) or _CURRENCY_AFTER.match(after):
        return MONEY
    unit = _UNIT_AFTER.match(after)
    return unit.group(1).lower() if unit else None


def argument_unit(name: str) -> str | None:
    """The unit an argument's name asks for: "overtime_hours" -> "hour", "years_of_service" -> "year",
    "monthly_basic_salary" -> "money", "value" -> None."""
    words = name.lower().split("_")
    unit = next((w.removesuffix("s") for w in words if w.removesuffix("s") in TIME_UNITS), None)
    return unit or (MONEY if _MONEY_WORDS & set(words) else None)


def numbers_for(argument: str, numbers: list[WrittenNumber], units: bool, used: tuple[str, ...] = ()) -> list[str]:
    """The literals of ``numbers`` that argument ``argument`` may take: with ``units``, for an argument
    named for a unit, those written with it and not ``used`` by another argument (of several, those
    written beside a word of the argument's name: "contract_notice_days" takes the 30 of "the contract
    says 30 days notice", not the 17 of "17 days were served") or, if there are none, those written
    without a unit."""
    unit = argument_unit(argument) if units else None
    if unit is None:
        return list(dict.fromkeys(n.literal for n in numbers))
    same = [n for n in numbers if n.unit == unit and n.literal not in used]
    named = [n for n in same if _name_words(argument) & n.context]
    chosen = named if len(same) > 1 and named else same
    return (list(dict.fromkeys(n.literal for n in chosen))
            or [n.literal for n in numbers if n.unit is None and n.literal not in used])


def tools_asked_for(tool_arguments: dict[str, dict[str, dict[str, Any]]], numbers: list[WrittenNumber]) -> list[str]:
    """The tools whose arguments the user wrote numbers for, each in the unit its argument is named for: every
    argument without a default, or, for a tool whose arguments all have defaults, two of different units
    ("60 days notice and I earn AED 44,750" asks for ``notice_period``; "sick leave: 90 days a year" does not).

    On the UAE example's ~1,000 generated questions this named the second tool of every two-step question
    and one tool for one lookup ("death from a work injury: 24 months' basic wage" -> ``annual_leave``).
    """
    def given(argument: str) -> bool:
        unit = argument_unit(argument)
        return unit is not None and any(n.unit == unit for n in numbers)

    asked = []
    for tool, schemas in tool_arguments.items():
        required = [a for a, schema in schemas.items() if "default" not in schema]
        if required and all(given(a) for a in required) or (
                not required and len({argument_unit(a) for a in schemas if given(a)}) >= 2):
            asked.append(tool)
    return asked


def _name_words(argument: str) -> frozenset[str]:
    return frozenset(_stem(w) for w in argument.split("_")) - {argument_unit(argument), "of", "the", "a", "per"}


class CitationsShown(NamedTuple):
    """What a conversation has shown that a reply may cite: its citations of articles (``citations_read``)
    and the laws it named in full (``laws_read``), which only an answer's running text may name bare."""

    articles: tuple[str, ...] = ()
    laws: tuple[str, ...] = ()


def citations_shown(text: str) -> CitationsShown:
    """The articles cited and the laws named in ``text``."""
    return CitationsShown(tuple(citations_read(text)), tuple(laws_read(text)))


def citations_read(text: str) -> list[str]:
    """The citations in ``text`` as written, in order and without repeats: "... (Federal Decree-Law
    33/2021, Art. 17; Cabinet Resolution 1/2022, Art. 15)" -> both."""
    return list(dict.fromkeys(m.group() for m in _CITATION.finditer(text)))


def laws_read(text: str) -> list[str]:
    """The laws ``text`` names, spelt out, as written and without repeats: "... (Federal Decree-Law 33/2021,
    Art. 17), as amended by Federal Decree-Law No. 9 of 2024" -> both."""
    named = (text[m.start("kind"):m.end()] for m in LAW_RE.finditer(text))
    return list(dict.fromkeys(law for law in named if law.startswith(_LAW_NAMES)))


def open_citation(text: str, shown: CitationsShown) -> tuple[tuple[str, ...], str, bool] | None:
    """Where ``text`` stands if it ends in a citation: (the citations it may go on to, each with the
    characters that may end it; the citation so far; whether it may only go on to one of them). Only
    once a law's name is written are the tokens allowed; before that, at the opening "(" or "; " and
    while the text is on its way to a law's name, only the tokens towards a law not among them are
    refused (so "(for example" goes on). In an answer a law's name in running text opens a citation too,
    once the name's first word is written ("Federal"), and it may also name a law ``shown`` without an
    article (``shown.laws``: a passage's "as amended by Federal Decree-Law No. 9 of 2024"). None when
    the text is in no citation or has left the ones read."""
    tail = text[-_CITATION_CHARS:]
    opened = _CITATION_OPEN.search(tail)
    if opened is not None and (cited := _citation_at(opened["partial"], shown.articles)):
        return cited
    if not in_answer(text):
        return None
    for start in _BARE_START.finditer(tail):
        partial = tail[start.start():]
        if partial.startswith(_LAW_FIRST_WORDS) and (cited := _citation_at(partial, (*shown.articles, *shown.laws))):
            return cited
    return None


def _citation_at(partial: str, citations: tuple[str, ...]) -> tuple[tuple[str, ...], str, bool] | None:
    """open_citation for a citation that starts at ``partial``'s first character."""
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


def open_plan(text: str, plans: list[str]) -> tuple[tuple[str, ...], str] | None:
    """(the plans as the text may go on to write them, the part written) when ``text`` ends in a "next:"
    that is on its way to one of ``plans``; None otherwise."""
    opened = _PLAN_OPEN.search(text)
    targets = tuple(f" {plan}." for plan in plans)
    if opened is None or not any(t.startswith(opened["partial"]) for t in targets):
        return None
    return targets, opened["partial"]


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
        self._names_for: dict[tuple[tuple[WrittenNumber, ...], frozenset[str]], tuple[str, ...]] = {}

    def names_for(self, numbers: list[WrittenNumber] | None, words: frozenset[str] | None) -> tuple[str, ...]:
        """The name targets of the tools the user's ``numbers`` and ``words`` can serve (``_servable``)."""
        if words is None or numbers is None:
            return self.targets
        key = (tuple(numbers), words)  # called at every generated token: the dates are counted once per question
        names = self._names_for.get(key)
        if names is None:
            dates = sum(1 for w in words if _DATE.fullmatch(w))
            refused = {f'"{tool}"' for tool, schemas in self.tool_arguments.items()
                       if not self._servable(schemas, numbers, dates)}
            names = tuple(t for t in self.targets if not any(t.endswith(r) for r in refused))
            self._names_for[key] = names
        return names

    @staticmethod
    def _servable(schemas: dict[str, dict[str, Any]], numbers: list[WrittenNumber], dates: int) -> bool:
        """Whether the user's numbers can serve a tool: every argument without a default that is named for a
        unit has a number (``numbers_for``), and a tool whose arguments all have defaults and are all named
        for units has a number written in the unit of one of them (else it served as the catch-all of a
        refused tool: "67 months" of annual leave went to ``notice_period``, whose three arguments are all
        optional, and so did "What is 15% of 16,600?", as 16,600 days of notice on a wage of 15); and the user
        wrote as many ``dates`` as the tool has date arguments without a default ("What date is 30 days after
        2019-09-26?" went to ``date_diff`` with the one date as both its start and its end); and a tool that
        does arithmetic on an expression has a number to compute with that is neither in a date nor a
        duration, which the date and unit tools take ("What date is 7 days before 2023-09-17?" went to the
        calculator on 4 of 40 held-out calculations); and a whole-number argument without a
        default that names no unit (an article's number) has a number the user wrote without one, neither a
        date nor a quantity ("What is the time between 2019-02-25 and 2026-10-23?" went to ``get_article`` on
        4 of 40 held-out calculations, its thought having named a tool the dates cannot serve)."""
        if any(schema.get("type") == "integer" and "default" not in schema and argument_unit(a) is None
               for a, schema in schemas.items()) and not any(n.unit is None for n in numbers):
            return False
        if sum(1 for a, schema in schemas.items() if _is_date_argument(a) and "default" not in schema) > dates:
            return False
        if any(a in ARITHMETIC_ARGUMENTS and "default" not in schema for a, schema in schemas.items()) and not any(
                n.unit not in (DATE, *TIME_UNITS) for n in numbers):
            return False
        fits = {a: bool(numbers_for(a, numbers, True)) for a in schemas if argument_unit(a)}
        if any("default" not in schemas[a] and not fit for a, fit in fits.items()):
            return False
        # a required duration needs a duration the user wrote: money is often written without "AED", but no
        # duration among ~1,000 generated questions lacked its unit, and without this rule "What is 15% of
        # 16,600?" went to annual_leave with 16,600 months of service
        durations = any(n.unit in TIME_UNITS for n in numbers)
        if not durations and any("default" not in schemas[a] and argument_unit(a) in TIME_UNITS for a in fits):
            return False
        all_optional_units = schemas and all("default" in s for s in schemas.values()) and len(fits) == len(schemas)
        return not all_optional_units or any(n.unit == argument_unit(a) for a in fits for n in numbers)

    def partial_name(self, generated_text: str) -> str | None:
        """The text after the last open action object while it is still a strict prefix of a target
        (``'"name": "ove'``); None when no action is open, the name is complete, or the reply left the shape."""
        span = self.open_span(generated_text)
        return span[1] if span is not None and span[0] == self.targets else None

    def open_span(self, generated_text: str, numbers: list[WrittenNumber] | None = None,
                  words: frozenset[str] | None = None, due_plan: str | None = None
                  ) -> tuple[tuple[str, ...], str] | None:
        """(the strings the text may go on to, the part of one written so far) when ``generated_text``
        ends inside an action's name or, for a tool with known arguments, at one of its argument keys or
        in a number, enum or boolean value (a number's "strings" are ``("<number>",)`` or ``("<integer>",)``,
        or with ``numbers`` those of them that suit the argument, each closed by ``,`` or ``}``).

        With the user's ``words`` as well: names as ``names_for`` offers them and numbers as ``numbers_for``
        allows; an argument with a default only where the user wrote a number or named a choice
        (``choice_named``) it can take, and then a choice only the default or a named one; and after a
        number the object cannot close while an argument without a default, one named for a time unit the
        user wrote a number in that no argument took, or a choice the user named, is left, nor go on when
        no argument can follow. Right after "Action:" the strings are the object's opening brace.

        With ``due_plan``, the plan due at this step: a thought that writes it again ("I have the rules; next:
        annual_leave.") names it as the action, as the rule teacher's always do (a student wrote that
        plan and searched again, a loop)."""
        if (marker := _ACTION_MARKER.search(generated_text)) is not None:
            return _ACTION_OBJECT, marker["partial"]
        last = next(reversed(list(_ACTION_OPEN.finditer(generated_text))), None)
        if last is None:
            return None
        action = generated_text[last.end():]
        units = words is not None
        names = self.names_for(numbers, words)
        if due_plan is not None and plan_written(generated_text[: last.start()]) == due_plan:
            names = tuple(t for t in names if t.endswith(f'"{due_plan}"')) or names
        if any(t.startswith(action) and t != action for t in names):
            return names, action
        opened = _ARGUMENTS_OPEN.match(action)
        if opened is None or opened.group("tool") not in self.tool_arguments:
            return None
        arguments, schemas = action[opened.end():], self.tool_arguments[opened.group("tool")]
        used = tuple(_NUMBER_VALUE.findall(arguments))
        at_key = open_key(arguments)
        if at_key is not None:
            partial, written, first = at_key
            unused = [a for a in schemas if a not in written]
            if words is not None:  # where the user gave none a value, still this tool's keys, but no unnamed choice
                offered = [a for a in unused if self._offered(a, schemas[a], numbers or [], used, words)]
                unused = offered or [a for a in unused
                                     if schemas[a].get("type") in _NUMBERS or "default" not in schemas[a]]
            targets = tuple(sorted({f'{space}"{a}":' for a in unused for space in ("", " ")}
                                   | ({"}"} if first else set())))
        else:
            at_value = open_value(arguments)
            if at_value is None:
                return None
            key, partial = at_value
            schema = schemas.get(key) or {}
            kind = schema.get("type")
            values = _choices(schema)
            if values:
                if words is not None and "default" in schema:
                    values = [v for v in values if v == schema["default"] or choice_named(key, v, words)]
                targets = tuple(sorted({f"{space}{json.dumps(v)}" for v in values for space in ("", " ")}))
            elif kind in _NUMBERS:
                fits = [n for n in numbers_for(key, numbers or [], units, used) if kind == "number" or "." not in n]
                if not fits:  # no number of the user's suits it: any number
                    return ((f"<{kind}>",), partial) if _NUMBERS[kind][0].fullmatch(partial) else None
                ends = {n: ",}" for n in fits}
                if words is not None:  # go on while a quantity the user wrote is left, close when none can follow
                    keys = _scan(arguments)[2]
                    required_left = any("default" not in schemas[a] for a in schemas if a not in keys)
                    for n in fits:
                        more = any(self._offered(a, schemas[a], numbers or [], (*used, n), words)
                                   for a in schemas if a not in keys)
                        left = required_left or self._unfinished(schemas, keys, (*used, n), numbers or [], words)
                        ends[n] = "," if left else ",}" if more else "}"
                targets = tuple(sorted({f"{space}{sign}{n}{end}" for n in fits for sign in ("", "-")
                                        for space in ("", " ") for end in ends[n]}))
            else:
                return None
        if targets and any(t.startswith(partial) and t != partial for t in targets):
            return targets, partial
        return None

    @staticmethod
    def _offered(argument: str, schema: dict[str, Any], numbers: list[WrittenNumber], used: tuple[str, ...],
                 words: frozenset[str]) -> bool:
        """Whether an argument's key may be written: one with a default only where the user gave it a value."""
        if "default" not in schema:
            return True
        values = _choices(schema)
        if values:
            return _other_choice_named(argument, schema["default"], values, words)
        if schema.get("type") in _NUMBERS:
            return bool(numbers_for(argument, numbers, True, used))
        return True

    @staticmethod
    def _unfinished(schemas: dict[str, dict[str, Any]], written: list[str], used: tuple[str, ...],
                    numbers: list[WrittenNumber], words: frozenset[str]) -> bool:
        """Whether an argument not ``written`` is named for a time unit the user wrote a number in that no
        argument has ``used`` ("17 days served" left out of a notice calculation), or has a choice other
        than its default that the user named ("on my weekly rest day" left out of an overtime one)."""
        for a in schemas:
            if a in written:
                continue
            unit, schema = argument_unit(a), schemas[a]
            if unit in TIME_UNITS and any(n.unit == unit and n.literal not in used for n in numbers):
                return True
            enum = schema.get("enum")
            if "default" in schema and enum and _other_choice_named(a, schema["default"], enum, words):
                return True
        return False

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

    def processor(self, prompt_len: int, prefixes: list[str],
                  numbers: list[list[WrittenNumber] | None] | None = None,
                  citations: list[CitationsShown | None] | None = None,
                  plans: list[str | None] | None = None,
                  words: list[frozenset[str] | None] | None = None,
                  due: list[bool] | None = None, end_ids: list[int] | None = None) -> _ActionProcessor:
        """A logits processor for a generate() call whose generated tokens start at ``prompt_len``;
        ``prefixes[row]`` is the text prefilled before row ``row``'s generated tokens, ``numbers[row]``
        the numbers its number arguments may take, ``words[row]`` the user's words its arguments follow
        (``open_span``), ``citations[row]`` the citations it may write, ``plans[row]`` what its "next:"
        must name (None: any) and ``due[row]`` whether that plan is due now (``open_span``); ``end_ids``, the
        end-of-turn tokens, are refused while a thought has no action or answer after it and are all that
        may follow an answer that ran on into another step (``answer_ran_on``)."""
        rows = [None] * len(prefixes)
        return _ActionProcessor(self, prompt_len, prefixes, numbers or rows, citations or rows, plans or rows,
                                words or rows, due or [False] * len(prefixes), end_ids or [])

    def apply(self, generated: Any, scores: Any, prefixes: list[str],
              numbers: list[list[WrittenNumber] | None] | None = None,
              citations: list[CitationsShown | None] | None = None, plans: list[str | None] | None = None,
              words: list[frozenset[str] | None] | None = None, due: list[bool] | None = None,
              end_ids: list[int] | None = None) -> Any:
        """Mask ``scores`` of every row whose text (prefix + ``generated`` tokens) ends inside a constrained span."""
        ends = [i for i in end_ids or [] if i < scores.shape[-1]]
        tails = generated[:, -_TAIL_TOKENS:].tolist()
        for row, tail in enumerate(tails):
            text = prefixes[row][-200:] + self.tokenizer.decode(tail, skip_special_tokens=True)
            if ends and answer_ran_on(text):  # the answer is over: only the end of the turn may follow
                _keep_only(scores, row, ends)
                continue
            # the wire format wants an action or an answer after a thought: 3 of one run's 127 held-out
            # replies ended after "Done: <the result>." or a thought that stated figures, format errors
            if ends and in_thought(text):
                scores[row, ends] = float("-inf")
            row_numbers, row_words = numbers[row] if numbers else None, words[row] if words else None
            due_plan = plans[row] if plans and due and due[row] else None
            span = self.open_span(text, row_numbers, row_words, due_plan)
            if span is not None:
                ids = [i for i in self.allowed(span[1], span[0]) if i < scores.shape[-1]]
            elif citations and citations[row] is not None and (cited := open_citation(text, citations[row])):
                targets, partial, only = cited
                if not only:  # on the way to a law's name: refuse the way to a law none of them is of
                    refused = self.towards(partial, _LAW_NAMES) - self.towards(partial, targets)
                    scores[row, [i for i in refused if i < scores.shape[-1]]] = float("-inf")
                    continue
                ids = [i for i in self.towards(partial, targets) if i < scores.shape[-1]]
            elif (may_plan := self._plans_for(plans[row] if plans else None, row_numbers, row_words)) \
                    and (planned := open_plan(text, may_plan)):
                ids = [i for i in self.towards(planned[1], planned[0]) if i < scores.shape[-1]]
            else:
                continue
            if ids:  # no way on: leave the row alone
                _keep_only(scores, row, ids)
        return scores

    def _plans_for(self, plan: str | None, numbers: list[WrittenNumber] | None,
                   words: frozenset[str] | None) -> list[str] | None:
        """What a row's "next:" may name: the plan its last thought made; with the user's ``words``, only a
        tool that ``names_for`` offers (or the answer), where it leaves some out; None: anything."""
        offered = self.names_for(numbers, words)
        if offered == self.targets:
            return [plan] if plan is not None else None
        tools = [t.split('"')[-2] for t in offered if t.startswith(_NAME_KEYS[0])]
        return [plan] if plan in (*tools, PLAN_ANSWER) else [*tools, PLAN_ANSWER]


def _keep_only(scores: Any, row: int, ids: list[int]) -> None:
    """Refuse every token of ``scores[row]`` but ``ids``."""
    import torch

    mask = torch.full_like(scores[row], float("-inf"))
    mask[ids] = 0.0
    scores[row] = scores[row] + mask


class _ActionProcessor:
    """What generate() calls at every step (the LogitsProcessor signature)."""

    def __init__(self, constraint: ActionConstraint, prompt_len: int, prefixes: list[str],
                 numbers: list[list[WrittenNumber] | None], citations: list[CitationsShown | None],
                 plans: list[str | None], words: list[frozenset[str] | None], due: list[bool],
                 end_ids: list[int]):
        self.constraint = constraint
        self.prompt_len = prompt_len
        self.prefixes = prefixes
        self.numbers = numbers
        self.citations = citations
        self.plans = plans
        self.words = words
        self.due = due
        self.end_ids = end_ids

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        return self.constraint.apply(input_ids[:, self.prompt_len:], scores, self.prefixes, self.numbers,
                                     self.citations, self.plans, self.words, self.due,
                                     self.end_ids)
