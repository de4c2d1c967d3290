"""The figures a conversation states: the values an action's number arguments may take
(``agent.figures_from_conversation``).

A small student copies a call's figures from the question, and where the copy fails it writes a figure of its
own: a salary of 55000 for "5.5k", 30 for "thirty-six months", 2 for "2 years and 6 months", and, asked about a
calculator's topic without a figure, a whole call of invented ones. With ``figures_from_conversation`` an
action's number arguments are decoded under a grammar (llm/grammar.py, ``figures``) that allows only the
figures the user and the tools stated: the model still chooses which, but every number it passes is one the
conversation holds, and a tool whose required numbers the conversation does not hold cannot be called.

A figure is read as people write it (evaluate/answer_check.py, ``number_mentions``: "20k", "12,500",
"four and a half", "one hundred and twenty"; "trhee", with two letters swapped, too), with its negative (a
count of days "before" a date), and a length in two units ("2 years and 6 months", "1 week and 3 days") also
in the smaller unit (30, 10) and, where it is a round figure there, in the larger (2.5).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from agentdistill.evaluate.answer_check import NUMBER_WORDS, STOP_WORDS, number_mentions

# a larger unit, the smaller one a length may go on in, and how many of the smaller make one of the larger
_UNIT_PAIRS = (("year", "month", 12), ("week", "day", 7), ("hour", "minute", 60))
_UNIT_SPELLINGS = {"year": ("year", "yr"), "month": ("month", "mo", "mth"), "week": ("week", "wk"),
                   "day": ("day",), "hour": ("hour", "hr", "h"), "minute": ("minute", "min")}
_NUMBER_WORDS = [*NUMBER_WORDS, "hundred", "thousand", "million"]
_DECIMALS = 6  # "2.3k" is 2299.9999999999995 in floating point; a figure is rounded to this many places


def stated_figures(texts: Iterable[str]) -> list[float]:
    """Every figure ``texts`` state, as the numbers an argument may take, sorted."""
    figures: set[float] = set()
    for text in map(_mend_number_words, texts):
        mentions = number_mentions(text)
        figures.update(value for _, value in mentions)
        for (start, value), (next_start, next_value) in zip(mentions, mentions[1:], strict=False):
            figures.update(_two_unit_length(text[start:next_start], value, text[next_start:], next_value))
    figures = {round(f, _DECIMALS) for f in figures}
    return sorted(figures | {-f for f in figures if f})


def _mend_number_words(text: str) -> str:
    """``text`` with a number word whose two neighbouring letters are swapped ("trhee", "twevle", "hunrded")
    written right; a word of its own ("there") stays."""
    def mend(m: re.Match[str]) -> str:
        word = m.group(0)
        if word.lower() in STOP_WORDS:
            return word
        return next((n for n in _NUMBER_WORDS if _swapped(word.lower(), n)), word)

    return re.sub(r"[A-Za-z]{4,}", mend, text)


def _swapped(word: str, right: str) -> bool:
    """Whether ``word`` is ``right`` with two neighbouring letters swapped."""
    if len(word) != len(right) or word == right:
        return False
    diff = [i for i, (a, b) in enumerate(zip(word, right, strict=True)) if a != b]
    if len(diff) != 2 or diff[1] != diff[0] + 1:
        return False
    i, j = diff
    return word[i] == right[j] and word[j] == right[i]


def _two_unit_length(first: str, value: float, second: str, next_value: float) -> list[float]:
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
            return [length] + ([in_larger] if round(in_larger, 2) == in_larger else [])
    return []


def _is_unit(word: str, unit: str) -> bool:
    """Whether ``word`` names ``unit``: any of its spellings, singular or plural, or with two neighbouring letters
    swapped ("yaers", "motnhs")."""
    return any(w == s or _swapped(w, s) for s in _UNIT_SPELLINGS[unit] for w in (word, word.removesuffix("s")))
