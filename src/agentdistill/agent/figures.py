"""The figures a conversation states: the values an action's number arguments may take
(``agent.figures_from_conversation``).

A small student copies a call's figures from the question, and where the copy fails it writes a figure of its
own: a salary of 55000 for "5.5k", 30 for "thirty-six months", 2 for "2 years and 6 months", and, asked about a
calculator's topic without a figure, a whole call of invented ones. With ``figures_from_conversation`` an
action's number arguments are decoded under a grammar (llm/grammar.py, ``figures``) that allows only the
figures the user and the tools stated: the model still chooses which, but every number it passes is one the
conversation holds, and a tool whose required numbers the conversation does not hold cannot be called. Nor,
while the conversation states no figure at all, can a tool that computes on figures alone (``computes_on_figures``:
it takes numbers or dates and requires nothing else): every optional number has a default, so a student sent a
question with nothing to compute ("how fast must they pay my final dues?") to a calculator of notice pay, which
stated its default case, and a date is text to the grammar, so it sent "how many days is the weekly rest day?" to
a count of the days between two dates it made up. The teacher never calls such a tool without a figure to give it.

A figure is read as people write it (evaluate/answer_check.py, ``number_mentions``: "20k", "12,500",
"four and a half", "one hundred and twenty"; "trhee", with two letters swapped, too), with its negative (a
count of days "before" a date), and a length in two units ("2 years and 6 months", "1 week and 3 days") also
in the smaller unit (30, 10) and, where it is a round figure there, in the larger (2.5).

With ``agent.figures_by_unit`` too, each figure keeps the unit it was stated in, read from the word beside it
(a length of time: "4.5 yrs", "2h", "60-day"; money: "EUR 12,000", "5.5k EUR", a currency the run's packs
spell; a time of day: "10 pm"; a percentage; a person's age: "16-year-old", "aged 16"; a calendar year: "since
2019"), and a number argument that names a unit takes only figures of
that unit or figures stated bare (``argument_units``: "overtime_hours" takes "2h" but not "10 pm" or "EUR
38,750"; a salary takes money, not "4.5 yrs"); a choice among units ("years" or "months") takes only a unit
the conversation names, or its default (``named_units``). A small student otherwise puts a figure into
another argument's place: a salary of 4.5 for "4.5 yrs ... 28,750 EUR basic", a contract notice of 39,750
days, the "6" of "6 months" as days of unpaid absence, "4.5 years" as months, the "2019" of "since early 2019" as
days of unpaid absence. No argument names an age or a calendar year: those go only to one that names no unit.

And a call passes a figure in as many of its arguments as the conversation states it (``reused_figures``): a
student filled an optional argument with a figure it had already passed in another ("8,500 basic" as the salary
and as days of unpaid absence, a 60-day notice as 60 days already served), where the teacher, in every call of
its traces, uses each figure once for each time it is stated. Such a call is decoded again with the figure refused
to the arguments that took it once too often (agent/runtime.py).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentdistill.currencies import currency
from agentdistill.evaluate.answer_check import NUMBER_WORDS, STOP_WORDS, number_mentions_in_context

# a larger unit, the smaller one a length may go on in, and how many of the smaller make one of the larger
_UNIT_PAIRS = (("year", "month", 12), ("week", "day", 7), ("hour", "minute", 60))
_UNIT_SPELLINGS = {"year": ("year", "yr"), "month": ("month", "mo", "mth"), "week": ("week", "wk"),
                   "day": ("day",), "hour": ("hour", "hr", "h"), "minute": ("minute", "min")}
MONEY, CLOCK, PERCENT = "money", "clock", "percent"  # the units a figure may have besides a length of time
# ... and two that no argument names, so that such a figure goes only to an argument that names no unit: a person's
# age ("45 years old"), not a length of service, and a calendar year ("since early 2019"), not a count of days; not
# after "of", which also states amounts ("a salary of 2000")
AGE, CALENDAR_YEAR = "age", "calendar year"
_AGE_AFTER = re.compile(r"[\w.,]+[\s-]+(?:years?|yrs?)[\s-]+old\b", re.I)
_AGE_BEFORE = frozenset({"age", "aged"})
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
_YEAR_BEFORE = frozenset({"since", "in", "from", "until", "till", "by", "before", "after", "early", "late", "mid",
                          "year", *_MONTHS, *(m[:3] for m in _MONTHS), "sept"})
_CLOCK_WORDS = ("am", "pm", "a.m", "p.m", "o'clock")
_PERCENT_WORDS = ("%", "percent", "percentage")
# words of an argument's name that make it an amount of money (with a currency in its description, too)
_MONEY_WORDS = frozenset({"salary", "salaries", "wage", "wages", "pay", "price", "cost", "fee", "income"})
_NUMBER_WORDS = [*NUMBER_WORDS, "hundred", "thousand", "million"]
_DECIMALS = 6  # "2.3k" is 2299.9999999999995 in floating point; a figure is rounded to this many places


@dataclass(frozen=True)
class Figure:
    """A figure the conversation states, and the unit it was stated in: a length of time ("year", "month", "week",
    "day", "hour", "minute"), MONEY, CLOCK (a time of day), PERCENT, or None (stated bare, or in a unit of none of
    these kinds)."""

    value: float
    unit: str | None = None


def stated_figures(texts: Iterable[str], currencies: Mapping[str, str] | None = None) -> list[Figure]:
    """Every figure ``texts`` state, with its unit, as the numbers an argument may take, sorted; ``currencies``:
    the run's packs' currency spellings (``domains.currency_aliases``)."""
    return _figures(_read(texts), currencies)


def _read(texts: Iterable[str]) -> list[tuple[str, list[tuple[int, float, str, str]]]]:
    """Each text as figures are read from it (number words mended, "half a year" as "0.5 year") and its number
    mentions (``number_mentions_in_context``)."""
    mended = (_lengths_in_words(_mend_number_words(t)) for t in texts)
    return [(text, number_mentions_in_context(text)) for text in mended]


def _figures(read: list[tuple[str, list[tuple[int, float, str, str]]]],
             currencies: Mapping[str, str] | None) -> list[Figure]:
    """``stated_figures`` of texts already ``_read``."""
    figures: set[Figure] = set()
    for text, mentions in read:
        figures.update(Figure(value, _unit_in_context(text, start, value, before, after, currencies))
                       for start, value, before, after in mentions)
        for (start, value, _, _), (next_start, next_value, _, _) in zip(mentions, mentions[1:], strict=False):
            figures.update(_two_unit_length(text[start:next_start], value, text[next_start:], next_value))
    figures = {Figure(round(f.value, _DECIMALS), f.unit) for f in figures}
    return sorted(figures | {Figure(-f.value, f.unit) for f in figures if f.value}, key=_figure_order)


def _figure_order(figure: Figure) -> tuple[float, str]:
    return figure.value, figure.unit or ""


def stated_counts(texts: Iterable[str], currencies: Mapping[str, str] | None = None) -> Counter[float]:
    """How many times ``texts`` state each of their figures (``stated_figures``): a negative as often as its figure
    ("180 days before" as -180), a figure read from others ("2 years and 6 months" as 30) at least once."""
    read = _read(texts)
    counts = Counter(round(value, _DECIMALS) for _, mentions in read for _, value, _, _ in mentions)
    for value in figure_values(_figures(read, currencies)):
        counts[value] = max(counts[value], counts[-value], 1)
    return counts


def reused_figures(arguments: Mapping[str, Any], properties: Mapping[str, Any],
                   counts: Mapping[float, int]) -> dict[str, set[float]]:
    """The figures a call's number ``arguments`` (as written, in order; a default does not count) pass more often than
    the conversation states them (``counts``: ``stated_counts``), by the arguments that took each once too often. A
    figure and its negative are one statement: both are refused."""
    used: Counter[float] = Counter()
    refused: dict[str, set[float]] = {}
    for key, value in arguments.items():
        schema = properties.get(key) or {}
        if isinstance(value, bool) or not isinstance(value, int | float) or value == schema.get("default"):
            continue
        figure = abs(round(float(value), _DECIMALS))
        used[figure] += 1
        if used[figure] > counts.get(figure, 0) > 0:
            refused.setdefault(key, set()).update({figure, -figure})
    return refused


def figure_values(figures: Iterable[Figure]) -> list[float]:
    """The distinct values of ``figures``, sorted."""
    return sorted({f.value for f in figures})


def without_units(figures: Iterable[Figure]) -> list[Figure]:
    """``figures`` as if stated bare: every argument may take each of them."""
    return [Figure(v) for v in figure_values(figures)]


def named_units(texts: Iterable[str], figures: Iterable[Figure]) -> frozenset[str]:
    """The lengths of time ``texts`` name: beside one of their ``figures`` (``stated_figures(texts)``: "4.5 yrs",
    "2h") or as a word of three letters or more ("how many weeks"; not "HR" in "our HR policy")."""
    words = (w for text in texts for w in re.findall(r"[a-z]{3,}", text.lower()))
    beside = {f.unit for f in figures}
    return frozenset(u for u in {*map(_time_unit, words), *beside} if u in _UNIT_SPELLINGS)


def argument_units(name: str, schema: Mapping[str, Any]) -> frozenset[str]:
    """The units a number argument takes, read from its name, or where the name names none from its description:
    the lengths of time it names ("overtime_hours"; "e.g. 6.5 for '6.5 years' or 30 for '30 months'") and MONEY
    for a salary, a wage, a price (a word of its name) or a currency its description names. Empty: any unit."""
    in_name = re.sub(r"([a-z])([A-Z])", r"\1 \2", name).replace("_", " ").split()
    units = _units_named(in_name, money_words=True)
    return units or _units_named(re.findall(r"[A-Za-z]+|[$€£]", str(schema.get("description") or "")))


def computes_on_figures(spec: Mapping[str, Any]) -> bool:
    """Whether a tool computes on figures alone: it takes a number or a date (``is_date``) and every argument it
    requires is one (a search's query, an article's law are text the user gives otherwise)."""
    parameters = spec.get("parameters") or {}
    figures = {key for key, schema in (parameters.get("properties") or {}).items()
               if schema.get("type") in ("number", "integer") or is_date(key, schema)}
    return bool(figures) and set(parameters.get("required") or []) <= figures


def is_date(name: str, schema: Mapping[str, Any]) -> bool:
    """Whether an argument is a date written as text: a string whose schema's format is a date, or whose name or
    description names one ("start_date"; "The first date, YYYY-MM-DD")."""
    if schema.get("type") != "string":
        return False
    if schema.get("format") in ("date", "date-time"):
        return True
    words = {*name.lower().split("_"), *re.findall(r"[a-z]+", str(schema.get("description") or "").lower())}
    return "date" in words or "yyyy" in words


def takes(figure: Figure, units: frozenset[str]) -> bool:
    """Whether an argument of ``units`` (``argument_units``) may take ``figure``: one stated bare, or in its unit."""
    return figure.unit is None or not units or figure.unit in units


def unit_choice(value: Any) -> str | None:
    """The length of time an enum value names ("years" -> "year"), or None for a value that names none."""
    return _time_unit(value.lower()) if isinstance(value, str) else None


def _units_named(words: Sequence[str], money_words: bool = False) -> frozenset[str]:
    """The lengths of time ``words`` name, and MONEY where one spells a currency (a symbol, a common name or a code;
    or, with ``money_words``, is a word of a salary or a price)."""
    units = {unit for unit in (_time_unit(w.lower()) for w in words) if unit}
    if any((money_words and w.lower() in _MONEY_WORDS) or _currency(w, None) for w in words):
        units.add(MONEY)
    return frozenset(units)


def _unit_in_context(text: str, start: int, value: float, before: str, after: str,
                     currencies: Mapping[str, str] | None) -> str | None:
    """The unit of the figure ``text`` states at ``start``: an AGE ("16-year-old", "aged 16"), a CALENDAR_YEAR (a
    year of 1900 to 2100 stated bare after a word that dates it: "since 2019", "in March 2020"), or the unit
    written beside it."""
    if before.lower() in _AGE_BEFORE or _AGE_AFTER.match(text, start):
        return AGE
    unit = _unit_beside(before, after, currencies)
    if unit is None and value == int(value) and 1900 <= value <= 2100 and before.lower().rstrip(".") in _YEAR_BEFORE:
        return CALENDAR_YEAR
    return unit


def _unit_beside(before: str, after: str, currencies: Mapping[str, str] | None) -> str | None:
    """The unit a figure was stated in, from the words written just before and after it."""
    word = after.lower()
    if unit := _time_unit(word):
        return unit
    if word in _CLOCK_WORDS:
        return CLOCK
    if word in _PERCENT_WORDS:
        return PERCENT
    return MONEY if _currency(after, currencies) or _currency(before, currencies) else None


def _currency(word: str, currencies: Mapping[str, str] | None) -> bool:
    """Whether ``word`` (as written) spells a currency; a unit's abbreviation in capitals ("8 HRS") does not."""
    return bool(word) and _time_unit(word.lower()) is None and currency(word, currencies) is not None


def _time_unit(word: str) -> str | None:
    """The length of time ``word`` names (any spelling, singular or plural, two letters swapped), or None."""
    return next((unit for unit in _UNIT_SPELLINGS if _is_unit(word, unit)), None)


def _mend_number_words(text: str) -> str:
    """``text`` with a number word whose two neighbouring letters are swapped ("trhee", "twevle", "hunrded")
    written right; a word of its own ("there") stays."""
    def mend(m: re.Match[str]) -> str:
        word = m.group(0)
        if word.lower() in STOP_WORDS:
            return word
        return next((n for n in _NUMBER_WORDS if _swapped(word.lower(), n)), word)

    return re.sub(r"[A-Za-z]{4,}", mend, text)


# a unit as people write it after "a", "an" or "half a" (one-letter spellings such as "h" would read "a h" as an hour)
_UNIT_WORD = "(" + "|".join(f"{s}s?" for spelt in _UNIT_SPELLINGS.values() for s in spelt if len(s) > 1) + r")\b"


def _lengths_in_words(text: str) -> str:
    """``text`` with a length written without a digit or number word as one: "half a year" as "0.5 year", "a year
    and a half" as "1.5 year", "an hour" as "1 hour"."""
    text = re.sub(rf"\bhalf an? {_UNIT_WORD}", r"0.5 \1", text, flags=re.I)
    text = re.sub(rf"\ban? {_UNIT_WORD} and a half\b", r"1.5 \1", text, flags=re.I)
    return re.sub(rf"(?<![\d,.] )\ban? {_UNIT_WORD}", r"1 \1", text, flags=re.I)


def _swapped(word: str, right: str) -> bool:
    """Whether ``word`` is ``right`` with two neighbouring letters swapped."""
    if len(word) != len(right) or word == right:
        return False
    diff = [i for i, (a, b) in enumerate(zip(word, right, strict=True)) if a != b]
    if len(diff) != 2 or diff[1] != diff[0] + 1:
        return False
    i, j = diff
    return word[i] == right[j] and word[j] == right[i]


def _two_unit_length(first: str, value: float, second: str, next_value: float) -> list[Figure]:
    """The length that "2 years and 6 months" states (``first`` is "2 years and ", ``second`` from "6 months" on):
    in the smaller unit, and in the larger where that is a figure to two decimals; empty for anything else."""
    words = re.findall(r"[a-z]+", first.lower())
    if words and words[-1] == "and":
        words.pop()
    after = re.match(r"\s*[\w.,-]+\s+([a-z]+)", second.lower())
    if not words or not after:
        return []
    for larger, smaller, ratio in _UNIT_PAIRS:
        if _is_unit(words[-1], larger) and _is_unit(after.group(1), smaller):
            length = value * ratio + next_value
            in_larger = length / ratio
            return [Figure(length, smaller)] + ([Figure(in_larger, larger)] if round(in_larger, 2) == in_larger else [])
    return []


def _is_unit(word: str, unit: str) -> bool:
    """Whether ``word`` names ``unit``: any of its spellings, singular or plural, or with two neighbouring letters
    swapped ("yaers", "motnhs")."""
    return any(w == s or _swapped(w, s) for s in _UNIT_SPELLINGS[unit] for w in (word, word.removesuffix("s")))
