"""Is the agent's final answer right? An offline checker, by question kind, against ``answer_facts``.

A question's writer lists what a right answer must contain (``Question.answer_facts``); this module
decides, without a model, whether an answer contains it. Each fact is one of:

- a **figure**: one number, optionally with a currency before or after it and up to two words after
  it (``"EUR 12,345.50"``, ``"12345.5"``, ``"30 days"``, ``"8 working hours"``, ``"25%"``, ``"$100"``,
  ``"100 USD"``). Numbers are compared by value (``12,345.50`` == ``12345.5``, within half a cent), as
  whole tokens (``30`` is not found in ``300``, ``130`` or ``30.5``); numbers written as words
  (``thirty``, ``twenty-one``) count. A figure with a unit is found only where the number stands next to
  a spelling of that unit: a currency right before or after it (``$``/``USD``/``dollar``, ``€``/``EUR``/``euro``,
  ``£``/``GBP``/``pound``, any three-capital code such as ``CHF``, and the spellings the run's packs declare,
  ``currencies``: agentdistill.currencies), any other unit among the two words after
  it (``day``/``days``/``30-day``, ``h``/``hrs``/``hours``, ``%``/``percent``/``per cent``; the last
  word of the fact's unit is the one compared, so ``"30 calendar days"`` needs a ``day`` after ``30``).
- a **sentence** (anything else): contained when at least ``SENTENCE_RECALL`` of its content words
  (lower-cased, stop words removed, plural/-ed/-ing endings stripped) are among the answer's, and every
  number it holds is in the answer.
- the fact ``"not covered"`` (the documents do not cover the question), and for a reply without a tool
  its kind: ``"greeting"``, ``"thanks"`` or ``"decline"``.

The verdict by ``Question.kind`` (an answer that is missing or empty is wrong):

- a fact ``"not covered"`` (any kind; other facts beside it are ignored): the answer says the
  documents do not cover the topic (``NOT_COVERED``: "do not cover", "could not find", "no
  information", "not in the documents", ...) and makes no substantive claim: it states no number
  the question did not write, and the sentences that do not say "not covered" hold at most
  ``MAX_ASIDE_WORDS`` content words (an offer to help, a pointer elsewhere).
- ``calculation`` / ``multi_step``: every figure fact is in the answer, and where the facts also hold
  sentences (a passage a multi-step question reads first), at least one of them is. Stating only the
  period when the pay was asked fails.
- ``lookup`` (and any other kind, such as a request for one section by its number): every fact is in
  the answer, and the answer is supported by a passage the agent retrieved: for some observation, at
  least ``SUPPORT_MIN`` of the answer's content words and numbers are in it (words that only restate
  the question are left out of the count). A made-up
  answer, or one written with no tool result, fails.
- ``no_tool``: the reply is of the kind of ``answer_facts[0]`` (``REPLY_KINDS``): a greeting (hello, hi,
  welcome, how can I help), thanks (you're welcome, glad / happy to help) or a decline (sorry, can't
  help, outside, only help with). A greeting answered with a decline is wrong; so is a reply of another
  kind ("Hello! How can I help?" to a thank-you).
- A question without ``answer_facts``: ``correct=None`` (unknown; it leaves the rate's denominator).

The rules name no domain: a domain's citations and laws are words like any other, and its currency's local
spellings come from its pack (``DomainPack.currencies``, handed in as ``currencies``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from agentdistill.currencies import GENERIC, currency
from agentdistill.records import Question

SENTENCE_RECALL = 0.6  # share of a sentence fact's content words the answer must hold
SUPPORT_MIN = 0.5  # share of a lookup answer's content words one retrieved passage must hold
MAX_ASIDE_WORDS = 12  # content words a "not covered" answer may spend outside its not-covered sentences
MONEY_TOLERANCE = 0.005  # half a cent: 12,345.504 rounds to the 12,345.50 a tool wrote
NOT_COVERED_FACT = "not covered"
REPLY_KINDS = ("greeting", "thanks", "decline")


@dataclass(frozen=True)
class AnswerVerdict:
    correct: bool | None  # None: unknown (the question lists no answer_facts)
    reason: str
    by: str = "offline"  # "offline", or the judge that gave it ("judge:<model>")


# -- tokens ------------------------------------------------------------------------------------------

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_TOKEN = re.compile(rf"({_NUM})|([$€£%])|([^\W\d_]+)")

_UNITS_0_19 = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
               "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90}
NUMBER_WORDS = {w: i for i, w in enumerate(_UNITS_0_19)} | _TENS

UNIT_SPELLINGS = {
    "%": "percent", "percent": "percent", "percentage": "percent",
    "d": "day", "h": "hour", "hr": "hour", "hrs": "hour", "min": "minute", "mins": "minute",
    "wk": "week", "wks": "week", "mo": "month", "mos": "month", "y": "year", "yr": "year", "yrs": "year",
}

STOP_WORDS = frozenset("""
a about above after again against all also am an and any are aren as at be because been before being below
between both but by can cannot could couldn did didn do does doesn doing don down during each either else
ever every few for from further get gets got had hadn has hasn have haven having he her here hers herself him
himself his how however i if in into is isn it its itself just let ll may me might more most must mustn my
myself need no nor not now of off on once only or other otherwise ought our ours ourselves out over own per
please re same shall shan she should shouldn so some such than that the their theirs them themselves then
there these they this those through thus to too under until up upon us ve very was wasn we were weren what
when where whether which while who whom whose why will with within without won would wouldn yes yet you
your yours yourself yourselves s t d m o y
""".split())  # noqa: SIM905


@dataclass(frozen=True)
class _Tok:
    kind: str  # "num" | "sym" | "word"
    text: str  # the word lower-cased, the symbol, or the number as written
    value: float | None = None
    raw: str = ""  # as written: a currency code is told from a word by its capitals ("CHF", not "chf")
    start: int = 0  # where it begins in the text read


def _tokens(text: str) -> list[_Tok]:
    """Numbers (by value, words like "twenty-one" included), currency / percent symbols, and words."""
    text = re.sub(r"\bper\s*cent\b", "percent", text, flags=re.I)
    out: list[_Tok] = []
    for m in _TOKEN.finditer(text):
        num, sym, word = m.groups()
        if num:
            out.append(_Tok("num", num, float(num.replace(",", "")), start=m.start()))
        elif sym:
            out.append(_Tok("sym", sym, raw=sym, start=m.start()))
        else:
            w = word.lower()
            if w in NUMBER_WORDS:
                value = NUMBER_WORDS[w]
                if out and out[-1].kind == "num" and out[-1].text in _TENS and 0 < value < 10:
                    out[-1] = _Tok("num", f"{out[-1].text}-{w}", out[-1].value + value,  # type: ignore[operator]
                                   start=out[-1].start)
                    continue
                out.append(_Tok("num", w, float(value), start=m.start()))
            else:
                out.append(_Tok("word", w, raw=word, start=m.start()))
    return out


_SCALES = {"k": 1e3, "thousand": 1e3, "mn": 1e6, "million": 1e6}  # not "m": metres and minutes


def number_mentions(text: str) -> list[tuple[int, float]]:
    """Where ``text`` states a number, and its value: digits ("12,500", "4.5"), words ("twenty-one", "one hundred
    and twenty"), a scale after them ("20k", "1.2 million") and a half after them ("four and a half")."""
    return [(start, value) for start, value, _, _ in number_mentions_in_context(text)]


def number_mentions_in_context(text: str) -> list[tuple[int, float, str, str]]:
    """``number_mentions`` with the word or symbol written just before each mention and just after it, as written
    ("" at either end): what a unit or a currency beside the number is read from ("EUR 12,000", "4.5 yrs")."""
    tokens = _tokens(text)
    out = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.kind != "num" or tok.value is None:
            i += 1
            continue
        first = i
        value, i = tok.value, i + 1
        if i < len(tokens) and tokens[i].text == "hundred":
            value, i = value * 100, i + 1
            j = i + 1 if i < len(tokens) and tokens[i].text == "and" else i  # "one hundred (and) twenty"
            tens = tokens[j] if j < len(tokens) else None
            if tens and tens.kind == "num" and tens.value is not None and tens.value < 100 and tens.text[0].isalpha():
                value, i = value + tens.value, j + 1
        after = [t.text for t in tokens[i : i + 3]]
        if after and after[0] in _SCALES:
            value, i = value * _SCALES[after[0]], i + 1
        elif after == ["and", "a", "half"]:
            value, i = value + 0.5, i + 3
        before_word = tokens[first - 1].raw or tokens[first - 1].text if first else ""
        after_word = tokens[i].raw or tokens[i].text if i < len(tokens) else ""
        out.append((tok.start, value, before_word, after_word))
    return out


def _same_number(a: float, b: float) -> bool:
    return abs(a - b) <= MONEY_TOLERANCE + 1e-9 * abs(b)


def _numbers(tokens: Iterable[_Tok]) -> list[float]:
    return [t.value for t in tokens if t.kind == "num" and t.value is not None]


def _has_number(value: float, numbers: Iterable[float]) -> bool:
    return any(_same_number(n, value) for n in numbers)


def stem(word: str) -> str:
    """A plain suffix stripper: enough that "days"/"day", "leaves"/"leave" and "entitled"/"entitles" meet."""
    for suffix, keep, min_len in (("ies", "y", 5), ("sses", "ss", 5), ("ing", "", 6), ("ed", "", 5), ("s", "", 4)):
        if word.endswith(suffix) and len(word) >= min_len and not (suffix == "s" and word.endswith(("ss", "us", "is"))):
            word = word[: len(word) - len(suffix)] + keep
            break
    return word[:-1] if word.endswith("e") and len(word) >= 4 else word


def content_words(text: str) -> set[str]:
    """Stemmed, lower-cased words that are not stop words (numbers excluded)."""
    return {stem(t.text) for t in _tokens(text) if t.kind == "word" and t.text not in STOP_WORDS and len(t.text) > 1}


def _content_terms(text: str) -> set[str]:
    """Content words plus the numbers, by value: what a passage holds, for support."""
    toks = _tokens(text)
    words = {stem(t.text) for t in toks if t.kind == "word" and t.text not in STOP_WORDS and len(t.text) > 1}
    return words | {f"#{round(n, 2)!r}" for n in _numbers(toks)}


# -- facts -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    value: float
    unit: str | None  # canonical: "USD", "CHF", "day", "hour", "percent", ... (None: a bare number)
    currency: bool


def unit_key(word: str, currencies: Mapping[str, str] | None = None) -> str:
    """The canonical spelling of a unit word or symbol ("$" -> "USD", "hrs" -> "hour", "days" -> "day");
    ``currencies``: the run's packs' currency spellings (``domains.currency_aliases``)."""
    w = word.lower()
    return (currencies or {}).get(w) or GENERIC.get(w) or UNIT_SPELLINGS.get(w) or stem(w)


def _currency(tok: _Tok, currencies: Mapping[str, str] | None) -> str | None:
    """The currency code a token spells, if any. A unit's abbreviation in capitals ("8 HRS") stays the unit, not
    a three-capital code."""
    if tok.kind == "num" or tok.text in UNIT_SPELLINGS:
        return None
    return currency(tok.raw, currencies)


def parse_figure(fact: str, currencies: Mapping[str, str] | None = None) -> Figure | None:
    """The figure a fact states, or None when the fact is a sentence (see the module docstring);
    ``currencies``: the run's packs' currency spellings."""
    toks = _tokens(fact)
    nums = [i for i, t in enumerate(toks) if t.kind == "num"]
    if len(nums) != 1:
        return None
    i = nums[0]
    before, after = toks[:i], toks[i + 1 :]
    value = toks[i].value
    assert value is not None
    code = _currency(before[0], currencies) if before else None
    if len(before) > 1 or (before and code is None):
        return None
    if before:
        return Figure(value, code, True) if not after else None
    if not after:
        return Figure(value, None, False)
    if len(after) == 1 and (code := _currency(after[0], currencies)) is not None:
        return Figure(value, code, True)
    if len(after) > 2:
        return None
    return Figure(value, unit_key(after[-1].text, currencies), False)


def figure_in(figure: Figure, tokens: Sequence[_Tok], currencies: Mapping[str, str] | None = None) -> bool:
    """Whether the answer's tokens hold the figure: its number, beside a spelling of its unit if it has one
    (``currencies``: the run's packs' currency spellings)."""
    for i, t in enumerate(tokens):
        if t.kind != "num" or t.value is None or not _same_number(t.value, figure.value):
            continue
        if figure.unit is None:
            return True
        if figure.currency:
            near = [tokens[j] for j in (i - 1, i + 1) if 0 <= j < len(tokens)]
            if any(_currency(n, currencies) == figure.unit for n in near):
                return True
            continue
        for j in (i + 1, i + 2):
            if j >= len(tokens) or tokens[j].kind == "num":
                break
            if unit_key(tokens[j].text, currencies) == figure.unit:
                return True
    return False


def sentence_in(fact: str, answer: str) -> tuple[bool, str]:
    """(contained, why): most of the fact's content words and all of its numbers are in the answer."""
    words = content_words(fact)
    answer_toks = _tokens(answer)
    have = {stem(t.text) for t in answer_toks if t.kind == "word"}
    missing_numbers = [n for n in _numbers(_tokens(fact)) if not _has_number(n, _numbers(answer_toks))]
    recall = len(words & have) / len(words) if words else 1.0
    if recall < SENTENCE_RECALL:
        return False, f"holds {recall:.0%} of the content words of {_quote(fact)} (needs {SENTENCE_RECALL:.0%})"
    if missing_numbers:
        return False, f"lacks the number {missing_numbers[0]:g} of {_quote(fact)}"
    return True, f"holds {recall:.0%} of {_quote(fact)}"


def fact_in(fact: str, answer: str, currencies: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """(contained, why) for one figure or sentence fact; ``currencies``: the run's packs' currency spellings."""
    figure = parse_figure(fact, currencies)
    if figure is None:
        return sentence_in(fact, answer)
    if figure_in(figure, _tokens(answer), currencies):
        return True, f"states {fact}"
    return False, f"does not state {fact}"


def _quote(text: str, n: int = 60) -> str:
    return repr(text if len(text) <= n else text[: n - 3] + "...")


# -- support ------------------------------------------------------------------------------------------


def support(answer: str, observations: Sequence[str], question: str = "") -> float:
    """The largest share of the answer's content words and numbers that one observation holds; words that
    only restate the question (in it, not in the observation) are not counted."""
    terms = _content_terms(answer)
    asked = _content_terms(question)
    best = 0.0
    for obs in observations:
        seen = _content_terms(obs)
        claims = {t for t in terms if t in seen or t not in asked}
        if claims:
            best = max(best, len(claims & seen) / len(claims))
    return best


# -- replies without a tool ---------------------------------------------------------------------------

_THANKS_RE = re.compile(r"\byou(?:'re| are)? (?:very |most )?welcome\b|\b(?:glad|happy|pleased) (?:I could |to )?"
                        r"(?:help|assist)|\bmy pleasure\b|\bno problem\b|\banytime\b|\bglad (?:it|that)\b")
_GREETING_RE = re.compile(r"\b(?:hello|hi|hey|greetings|welcome|good (?:morning|afternoon|evening|day))\b|"
                          r"\bhow (?:can|may|could) i (?:help|assist)|\bwhat can i do for you\b|"
                          r"\b(?:can|could) help you with\b|\bask me\b|\bnice to meet you\b")
_DECLINE_RE = re.compile(r"\b(?:sorry|apologi[sz]e|unfortunately)\b|\b(?:can ?not|can't|unable to|not able to|"
                         r"won't|will not) (?:help|assist|answer|provide|do that|discuss)|\boutside (?:of )?(?:my|the|"
                         r"what)\b|\bonly (?:help|assist|answer)|\bi can only\b|\bnot (?:something|a question) i\b")


def reply_kinds(reply: str) -> set[str]:
    """The kinds of reply a message is: any of "greeting", "thanks", "decline"."""
    text = re.sub(r"[’`]", "'", reply.lower())
    kinds = set()
    if _THANKS_RE.search(text):
        kinds.add("thanks")
    if _GREETING_RE.search(_THANKS_RE.sub(" ", text)):  # "you're welcome" is thanks, not a greeting
        kinds.add("greeting")
    # "the documents do not cover X" declines too: it says the question is beyond what it can answer
    if _DECLINE_RE.search(text) or NOT_COVERED.search(text):
        kinds.add("decline")
    return kinds


def _check_reply(kind: str, answer: str) -> AnswerVerdict:
    if kind not in REPLY_KINDS:
        return AnswerVerdict(None, f"unknown reply kind {kind!r} (expected one of {', '.join(REPLY_KINDS)})")
    kinds = reply_kinds(answer)
    if kind not in kinds:
        found = ", ".join(sorted(kinds)) or "none of greeting, thanks, decline"
        return AnswerVerdict(False, f"a {kind} was due; the reply reads as {found}")
    if kind != "decline" and "decline" in kinds:
        return AnswerVerdict(False, f"a {kind} was due; the reply declines")
    return AnswerVerdict(True, f"the reply is a {kind}")


# -- "not covered" ------------------------------------------------------------------------------------

NOT_COVERED = re.compile(
    r"\b(?:do|does|did)(?: not|n't) (?:cover|mention|address|say|include|contain|discuss|specify|state|provide)\b|"
    r"\bnot (?:covered|mentioned|addressed|included|specified|discussed|found)\b|"
    r"\b(?:could|can|did)(?: ?not|n't) (?:find|locate|see)\b|\bunable to find\b|\bno (?:relevant )?(?:information|"
    r"passage|mention|provision|details?|rules?|answer)\b|\bnot (?:in|part of|within) the (?:documents?|texts?|"
    r"sources?|passages?|corpus)\b|\bnothing (?:in|about)\b|\b(?:is|are|falls?) outside\b|"
    r"\bnot (?:able|possible) to (?:find|answer)\b")


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?;])\s+|\n+", text) if s.strip()]


def _check_not_covered(question: Question, answer: str) -> AnswerVerdict:
    said = [s for s in _sentences(answer) if NOT_COVERED.search(re.sub(r"[’`]", "'", s.lower()))]
    if not said:
        return AnswerVerdict(False, "the topic is not covered, but the answer does not say so")
    asked = _numbers(_tokens(question.text))
    claimed = [n for n in _numbers(_tokens(answer)) if not _has_number(n, asked)]
    if claimed:
        return AnswerVerdict(False, f"says the topic is not covered but states the figure {claimed[0]:g}")
    aside = sum(len(content_words(s)) for s in _sentences(answer) if s not in said)
    if aside > MAX_ASIDE_WORDS:
        return AnswerVerdict(False, f"says the topic is not covered but goes on for {aside} content words")
    return AnswerVerdict(True, "says the documents do not cover it")


# -- the verdict --------------------------------------------------------------------------------------


def check_answer(question: Question, answer: str | None, observations: Sequence[str],
                 currencies: Mapping[str, str] | None = None) -> AnswerVerdict:
    """The offline verdict on ``answer`` to ``question``, given the tool results the agent saw
    (``observations``: their texts, failed calls left out) and the run's packs' currency spellings
    (``currencies``: ``domains.currency_aliases(cfg)``). Rules: the module docstring."""
    facts = [f.strip() for f in question.answer_facts if f.strip()]
    if not facts:
        return AnswerVerdict(None, "the question lists no answer_facts")
    if not answer or not answer.strip():
        return AnswerVerdict(False, "no answer")
    if any(f.lower() == NOT_COVERED_FACT for f in facts):
        return _check_not_covered(question, answer)
    kind = question.kind
    if kind == "no_tool":
        return _check_reply(facts[0].lower(), answer)

    results = [(f, *fact_in(f, answer, currencies), parse_figure(f, currencies) is not None) for f in facts]
    if kind in ("calculation", "multi_step"):
        missing = [why for _, ok, why, figure in results if figure and not ok]
        if missing:
            return AnswerVerdict(False, f"the answer {missing[0]}")
        sentences = [(ok, why) for _, ok, why, figure in results if not figure]
        if sentences and not any(ok for ok, _ in sentences):
            return AnswerVerdict(False, f"the answer {sentences[0][1]}")
        return AnswerVerdict(True, f"the answer {'; '.join(why for _, ok, why, _ in results if ok)}")

    missing = [why for _, ok, why, _ in results if not ok]
    if missing:
        return AnswerVerdict(False, f"the answer {missing[0]}")
    s = support(answer, observations, question.text)
    if s < SUPPORT_MIN:
        where = "no passage was retrieved" if not observations else f"the best retrieved passage holds {s:.0%}"
        return AnswerVerdict(False, f"the answer is not supported: {where} (needs {SUPPORT_MIN:.0%})")
    return AnswerVerdict(True, f"the answer {'; '.join(why for _, _, why, _ in results)}; "
                               f"{s:.0%} supported by a retrieved passage")
