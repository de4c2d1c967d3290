"""Synthetic function-calling traces: questions over invented functions, each showing its own tool list.

A model that is to call *any* function must read the tools its prompt offers, not remember a fixed
set. So every trace here offers a random handful (1 to 5) of invented functions (synth/function_catalogue.py:
blueprints from everyday and technical domains, each in a few named variants) and asks for one of them:

- **call** (about three quarters): the question asks for what one offered function does, as a request
  or as a question about its result, and states its values in a person's phrasing (numbers sometimes
  in words, with thousands separators or rounded, dates and times as people write them while the
  schema wants ISO dates and 24-hour times, units, optional parameters sometimes given, sometimes left
  out); the reply is one ``Action:`` with the stated values in the schema's form, so the call validates
  against the offered schema. Half the free-text values are fresh ones shaped like the catalogue's
  examples (invented names, any date, codes and paths of the same shape): a student that saw only a few
  cities learns to prefer them over the question's words, where it has to copy. A value is converted
  only where the description asks a form (an ISO date, a 24-hour time, a fraction); otherwise it is
  copied whole, as written: a place with its region ("Lima, Peru"), a code with its punctuation
  ("2024/INV/0331"), a time or a season in the person's words ("tomorrow morning", "2023-24");
- **irrelevance**: the question asks what a function that is *not* offered does (often while a
  near miss from the same domain is offered); the reply is an ``Answer:`` saying no offered function
  can do it.

The system prompt is built by the BFCL bench's own ``messages_for`` (evaluate/bfcl_runner.py), so the
prompt trained on and the prompt benched cannot drift apart; each reply is one assistant turn in the
wire format (agent/wire.py) with a one-sentence thought.

Splits hold out whole domains: no function of a dev domain is in a training trace, so the dev split
measures calling functions never seen. The dev traces are also written as BFCL-format files
(``bfcl_dev/``: simple = one function offered, multiple = several, irrelevance) that
``agentdistill bench bfcl`` scores with the BFCL checker, without touching BFCL's own data.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentdistill.errors import UserError
from agentdistill.evaluate.bfcl import BfclEntry
from agentdistill.evaluate.bfcl_runner import messages_for
from agentdistill.jsonl import write_json_atomic
from agentdistill.records import Outcome, Trace
from agentdistill.run_layout import RunLayout
from agentdistill.synth.function_catalogue import CATALOGUE, CITY_REGIONS, Blueprint

TEACHER = "synth-calls"
N_TOOLS_WEIGHTS = {1: 0.35, 2: 0.2, 3: 0.2, 4: 0.15, 5: 0.1}  # BFCL simple and irrelevance offer one function
NEAR_MISS = 0.5  # chance that an offered distractor comes from the asked function's own domain
OPTIONAL_GIVEN = 0.4  # chance that a question states an optional parameter
FRESH_VALUE = 0.5  # chance that a free-text value is invented, not one of the catalogue's examples
ROUND_NUMBER = 0.35  # chance that a whole number is a round one (people ask about 2,000,000, not 1,983,417)
QUESTION_FORM = 0.35  # chance that a question asks about the result ("What is the area of ...?")
QUALIFIED_PLACE = 0.35  # chance that a city comes with its region or country, copied whole ("Denver, Colorado")
_SCHEMA_TYPES = {"int": "integer", "num": "number", "pct": "number", "str": "string", "enum": "string",
                 "bool": "boolean"}
_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
          "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # int num pct str enum bool ints nums strs
    required: bool
    description: str
    phrase: str
    values: tuple[str, ...]  # choices, or (lo, hi) for numbers, or (if true, if false) for a boolean

    @classmethod
    def parse(cls, text: str) -> Param:
        head, description, phrase = text.split("|")
        name, kind, values = head.split(":", 2)
        numeric = kind in ("int", "num", "pct", "ints", "nums")
        # "lo-hi": split at the dash that follows a digit, so a bound may carry a sign
        parts = tuple(re.split(r"(?<=\d)-", values, maxsplit=1)) if numeric else tuple(values.split(";"))
        return cls(name.rstrip("?"), kind, not name.endswith("?"), description, phrase, parts)

    def schema(self) -> dict[str, Any]:
        if self.kind in ("ints", "nums", "strs"):
            items = {"type": _SCHEMA_TYPES[self.kind[:-1]]}
            return {"type": "array", "items": items, "description": self.description}
        out: dict[str, Any] = {"type": _SCHEMA_TYPES[self.kind], "description": self.description}
        if self.kind == "enum":
            out["enum"] = list(self.values)
        return out


@dataclass(frozen=True)
class Function:
    name: str
    domain: str
    asks: tuple[str, ...]  # how a person asks it to do its job, imperative phrases
    blueprint: str
    description: str
    params: tuple[Param, ...]

    def spec(self) -> dict[str, Any]:
        """The OpenAI-style function object (JSON Schema parameters), as Trace.tools holds it."""
        return {"name": self.name, "description": self.description,
                "parameters": {"type": "object", "properties": {p.name: p.schema() for p in self.params},
                               "required": [p.name for p in self.params if p.required]}}


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(w.capitalize() for w in rest)


def variants(domain: str, bp: Blueprint) -> list[Function]:
    """A blueprint's named variants. Real function sets name things every way (``area``, ``geometry.area``,
    ``get_area``, ``geometry.getArea``); a student that saw one style only would read names, not descriptions.
    Odd variants drop one optional parameter, so the same task comes with different signatures."""
    params = tuple(Param.parse(p) for p in bp.params)
    verb_name = bp.name if bp.name.startswith(f"{bp.verb}_") else f"{bp.verb}_{bp.name}"
    names = [bp.name, f"{domain}.{bp.name}", verb_name, f"{domain}.{_camel(verb_name)}"]
    optional = [p for p in params if not p.required]
    out = []
    for i, name in enumerate(dict.fromkeys(names)):
        kept = params
        if i % 2 and optional:
            dropped = optional[i // 2 % len(optional)]
            kept = tuple(p for p in params if p is not dropped)
        out.append(Function(name, domain, bp.asks, bp.name, bp.description, kept))
    return out


def catalogue() -> list[Function]:
    """Every invented function, in catalogue order."""
    functions = [f for domain, bps in CATALOGUE.items() for bp in bps for f in variants(domain, bp)]
    twice = [name for name, n in Counter(f.name for f in functions).items() if n > 1]
    if twice:  # a prompt would offer two tools of one name, and a call could not say which it meant
        raise ValueError(f"function names made twice by the catalogue: {twice}")
    return functions


def dev_domains(seed: int, n: int) -> list[str]:
    """The ``n`` domains held out for dev, drawn with ``seed``."""
    domains = sorted(CATALOGUE)
    if not 0 <= n < len(domains):
        raise UserError(f"--dev-domains {n}: there are {len(domains)} domains; hold out fewer than all.",
                        hint=f"Use 0 to {len(domains) - 1}.")
    return sorted(random.Random(f"{seed}-dev-domains").sample(domains, n))


# ----------------------------------------------------------------------------------------------- values


def _decimals(bound: str) -> int:
    return len(bound.split(".")[1]) if "." in bound else 0


def _number_text(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _say_int(value: int, rng: random.Random, is_year: bool = False) -> str:
    """How a person writes a whole number: sometimes in words, a round large one sometimes scaled ("2.5
    million", "40 thousand"), sometimes with thousands separators (never a year: nobody writes "the 2,017
    season")."""
    if 0 <= value <= 20 and rng.random() < 0.25:
        return _WORDS[value]
    if not is_year and value >= 1_000_000 and value % 100_000 == 0 and rng.random() < 0.5:
        return f"{value / 1_000_000:g} million"
    if not is_year and value >= 10_000 and value % 1_000 == 0 and rng.random() < 0.25:
        return f"{value // 1_000:,} thousand"
    if value >= 1000 and not is_year and rng.random() < 0.3:
        return f"{value:,}"
    return str(value)


def _round_number(value: int, lo: int, hi: int, rng: random.Random) -> int:
    """``value`` kept to one or two significant digits, if that stays within ``lo``-``hi``."""
    if value < 10:
        return value
    step = 10 ** max(0, len(str(value)) - rng.choice((1, 2)))
    rounded = round(value / step) * step
    return rounded if lo <= rounded <= hi else value


_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CLOCK = re.compile(r"^\d{2}:\d{2}$")
_WORDY = re.compile(r"^[A-Za-z][A-Za-z' .-]*$")
_CODE = re.compile(r"^(?=.*(?:\d{3}|[/#~]))[\w./~:#+-]+$")  # an identifier or a path (not a formula, not an address)
_SEASON = re.compile(r"^\d{4}(?:([/-])\d{2})?$")  # a year, or a span of two ("2023-24")
_RUNS = re.compile(r"[A-Za-z]+|\d+|[^A-Za-z\d]+")
_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "ch", "sh", "tr", "st", "gr",
           "th", "kl", "w", "h", "j", "qu"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "io", "y"]
_CODAS = ["", "", "n", "r", "s", "l", "m", "t", "x", "nd", "rk"]


def _ordinal(day: int) -> str:
    return f"{day}{'th' if 10 <= day % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(day % 10, 'th')}"


def _say_date(year: int, month: int, day: int, rng: random.Random) -> str:
    """A date as people write it; the schema's ISO form is one way among several."""
    name = _MONTHS[month - 1]
    return rng.choice([f"{year}-{month:02d}-{day:02d}", f"{name} {day}, {year}", f"{day} {name} {year}",
                       f"{name[:3]} {_ordinal(day)}, {year}", f"the {_ordinal(day)} of {name} {year}",
                       f"{_ordinal(day)} {name}, {year}"])


def _say_clock(hour: int, minute: int, rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"{hour:02d}:{minute:02d}"
    twelve, half = hour % 12 or 12, "am" if hour < 12 else "pm"
    return f"{twelve}:{minute:02d} {half}" if minute else f"{twelve} {half}"


def _invented_word(rng: random.Random) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(rng.randint(1, 3))) + rng.choice(_CODAS)


def _shaped_like(example: str, rng: random.Random) -> str:
    """Invented words in the places of ``example``'s words, each in its case (Title, lower, UPPER)."""
    words = example.split(" ")
    keep = [rng.random() < 0.4 for _ in words]
    keep[rng.randrange(len(words))] = False  # at least one word is new
    out = []
    for word, kept in zip(words, keep, strict=True):
        if kept or not word.isalpha():
            out.append(word)
            continue
        new = _invented_word(rng)[: max(len(word) + 2, 3)]
        out.append(new.upper() if word.isupper() and len(word) > 1 else new.capitalize() if word[0].isupper() else new)
    return " ".join(out)


def _shaped_code(example: str, rng: random.Random) -> str:
    """An identifier or a path of ``example``'s shape: its punctuation and file extension kept, other digits
    and letters new (short capital runs stay capitals: "LH778812" -> "QK305961", "~/reports/q3.pdf" ->
    "~/bralit/k8.pdf")."""
    runs = _RUNS.findall(example)
    out = []
    for i, run in enumerate(runs):
        if run.isdigit():
            out.append("".join(rng.choice("0123456789") for _ in run))
        elif not run.isalpha() or (i > 0 and runs[i - 1] == "." and i == len(runs) - 1):
            out.append(run)  # punctuation, or the extension
        elif run.isupper() and len(run) <= 4:
            out.append("".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in run))
        else:
            word = (_invented_word(rng) * 3)[: max(len(run), 1)]
            out.append(word.upper() if run.isupper() else word.capitalize() if run[0].isupper() else word)
    return "".join(out)


def _with_region(city: str, rng: random.Random) -> str:
    """A city as people often write it, with its region or country ("Lima, Peru"); an invented city gets one of
    the known regions."""
    return f"{city}, {CITY_REGIONS.get(city) or rng.choice(sorted(set(CITY_REGIONS.values())))}"


def _say_text(value: str, rng: random.Random) -> str:
    """How a question writes a listed value: ISO dates and clock times as people write them."""
    if _ISO_DATE.match(value):
        year, month, day = (int(x) for x in value.split("-"))
        return _say_date(year, month, day, rng)
    if _CLOCK.match(value):
        hour, minute = (int(x) for x in value.split(":"))
        return _say_clock(hour, minute, rng)
    return value


def fresh_text(example: str, rng: random.Random) -> tuple[str, str] | None:
    """A value the catalogue never lists, of ``example``'s kind, and how a question writes it; None where
    the example has no kind that can be invented safely (a query, an address)."""
    if _ISO_DATE.match(example):
        value = f"{rng.randint(2000, 2035)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        return value, _say_text(value, rng)
    if _CLOCK.match(example):
        value = f"{rng.randint(0, 23):02d}:{rng.choice(range(0, 60, 5)):02d}"
        return value, _say_text(value, rng)
    if _WORDY.match(example):
        value = _shaped_like(example, rng)
        return value, value
    season = _SEASON.match(example)
    if season:
        year = rng.randint(1995, 2030)
        value = f"{year}{season.group(1)}{(year + 1) % 100:02d}" if season.group(1) else str(year)
        return value, value
    if _CODE.match(example):
        value = _shaped_code(example, rng)
        return value, value
    return None


def draw_value(p: Param, rng: random.Random) -> tuple[Any, str]:
    """A value for ``p`` and how a question writes it."""
    if p.kind == "pct":  # the schema's fraction, said as a percent
        lo, hi = p.values
        d = max(_decimals(lo), _decimals(hi))
        value = round(rng.uniform(float(lo), float(hi)), d)
        said = _number_text(value * 100, max(0, d - 2))
        return value, rng.choice([f"{said}%", f"{said} percent"])
    if p.kind in ("int", "num"):
        lo, hi = p.values
        d = _decimals(lo) + _decimals(hi)
        if p.kind == "int" or d == 0 or rng.random() < 0.25:  # whole numbers are common even where decimals are allowed
            low, high = int(float(lo)), int(float(hi))
            value = rng.randint(low, high)
            if rng.random() < ROUND_NUMBER:
                value = _round_number(value, low, high, rng)
            return value, _say_int(value, rng, is_year=bool(re.search(r"year|season", p.name)))
        text = _number_text(rng.uniform(float(lo), float(hi)), max(_decimals(lo), _decimals(hi)))
        return (float(text) if "." in text else int(text)), text
    if p.kind == "enum":
        value = rng.choice(p.values)
        return value, value
    if p.kind == "str":
        value = rng.choice(p.values)
        fresh = fresh_text(value, rng) if rng.random() < FRESH_VALUE else None
        value, said = fresh or (value, _say_text(value, rng))
        if set(p.values) <= set(CITY_REGIONS) and rng.random() < QUALIFIED_PLACE:
            value = said = _with_region(value, rng)
        return value, said
    if p.kind == "bool":
        value = rng.random() < 0.5
        return value, p.values[0] if value else p.values[1]
    n = rng.randint(2, min(5, len(p.values))) if p.kind == "strs" else rng.randint(2, 5)
    if p.kind == "strs":
        items: list[Any] = rng.sample(list(p.values), n)
        texts = list(items)
    else:
        lo, hi = (int(float(b)) for b in p.values)
        items = [rng.randint(lo, hi) for _ in range(n)]
        texts = [str(v) for v in items]
    if rng.random() < 0.3:
        return items, "[" + ", ".join(texts) + "]"
    return items, ", ".join(texts[:-1]) + " and " + texts[-1]


# -------------------------------------------------------------------------------------------- questions

_FRAMES = [
    "{Ask}: {clauses}.",
    "Can you {ask}? {Clauses}.",
    "Please {ask}, {clauses}.",
    "I need to {ask} - {clauses}.",
    "{Ask} {clauses}.",
    "Help me {ask}; {clauses}.",
    "Quick one: {ask}, {clauses}?",
    "I'd like you to {ask} {clauses}.",
    "Hi! Could you {ask} for me? {Clauses}.",
    "{Clauses}: {ask}, please.",
    "{Ask}{with_clauses}.",
]
_BARE_FRAMES = ["{Ask}.", "Can you {ask}?", "Please {ask}.", "I need to {ask}.", "Could you {ask} for me?"]
# Questions about the result, for asks of the form "<verb> the <result>": "What is the area of a circle ...?"
_RESULT_ASK = re.compile(r"^(?:find|get|calculate|compute|work out|look up|estimate|fetch|check) (the .+)$")
_QUESTION_FRAMES = ["What is {result}{with_clauses}?", "What's {result}{with_clauses}?",
                    "{Clauses}. What is {result}?", "Tell me {result}{with_clauses}.",
                    "I'd like to know {result}: {clauses}.", "Do you know {result}{with_clauses}?"]
_BARE_QUESTION_FRAMES = ["What is {result}?", "What's {result}?", "Tell me {result}."]


def _with(clauses: str) -> str:
    """``clauses`` joined to a noun phrase: "with" before a value or a measure ("with a radius of 5", "with 35
    panels"), nothing before a phrase that joins by itself ("in Lima", "named Road Trip")."""
    first = clauses.split(" ", 1)[0]
    takes_with = first in ("a", "an", "the") or first in _WORDS or first[:1].isdigit() or first.startswith("[")
    return (" with " if takes_with else " ") + clauses


_CALL_THOUGHTS = ["I will call {name} to {ask}.", "The user wants to {ask}; {name} does that.",
                  "{name} can {ask}, so I will call it with the given values."]
_NONE_THOUGHTS = ["None of the offered functions can {ask}.", "No offered function is able to {ask}.",
                  "The available functions cannot {ask}."]
_NONE_ANSWERS = ["None of the available functions can {ask}, so I cannot do this with them.",
                 "Sorry, no offered function can {ask}.",
                 "I cannot help with that here: none of the given functions can {ask}."]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def question_for(f: Function, rng: random.Random) -> tuple[str, dict[str, Any], str]:
    """A person's request for ``f``, the arguments it states (required ones always, optional ones sometimes)
    and which of ``f``'s asks it words the job with."""
    ask = rng.choice(f.asks)
    given = [p for p in f.params if p.required or rng.random() < OPTIONAL_GIVEN]
    if rng.random() < 0.3:
        rng.shuffle(given)
    arguments: dict[str, Any] = {}
    clauses = []
    for p in given:
        value, text = draw_value(p, rng)
        arguments[p.name] = value
        clauses.append(text if p.kind == "bool" else p.phrase.format(v=text))
    result = _RESULT_ASK.match(ask)
    as_question = result is not None and rng.random() < QUESTION_FORM
    if not clauses:
        frames = _BARE_QUESTION_FRAMES if as_question else _BARE_FRAMES
        return _cap(rng.choice(frames).format(ask=ask, result=result and result.group(1))), arguments, ask
    joined = ", ".join(clauses[:-1]) + (" and " if len(clauses) > 1 else "") + clauses[-1]
    frame = rng.choice(_QUESTION_FRAMES if as_question else _FRAMES)
    text = frame.format(ask=ask, Ask=_cap(ask), result=result and result.group(1), clauses=joined,
                        Clauses=_cap(joined), with_clauses=_with(joined))
    return text, arguments, ask


# ------------------------------------------------------------------------------------------------ traces


def _offered(target: Function, pool: list[Function], n: int, rng: random.Random,
             include_target: bool) -> list[Function]:
    """``n`` functions of distinct blueprints, the target among them or not, near misses from its domain often."""
    chosen = [target] if include_target else []
    used = {target.blueprint}
    same = [f for f in pool if f.domain == target.domain and f.blueprint not in used]
    other = [f for f in pool if f.domain != target.domain]
    while len(chosen) < n:
        source = same if same and rng.random() < NEAR_MISS else other
        candidates = [f for f in source if f.blueprint not in used]
        if not candidates:
            candidates = [f for f in pool if f.blueprint not in used]
            if not candidates:
                break
        f = rng.choice(candidates)
        used.add(f.blueprint)
        chosen.append(f)
    rng.shuffle(chosen)
    return chosen


def _system_prompt(offered: list[Function]) -> str:
    entry = BfclEntry(id="", category="simple", messages=[], functions=[f.spec() for f in offered], ground_truth=None)
    return messages_for(entry)[0]["content"]


def make_trace(i: int, split: str, pool: list[Function], irrelevant: bool, rng: random.Random) -> Trace:
    """One trace of ``split`` over functions of ``pool``."""
    target = rng.choice(pool)
    n = rng.choices(list(N_TOOLS_WEIGHTS), weights=list(N_TOOLS_WEIGHTS.values()))[0]
    offered = _offered(target, pool, n, rng, include_target=not irrelevant)
    question, arguments, ask = question_for(target, rng)
    # the thought restates the request's own words, so the step from a paraphrase to the function is shown
    if irrelevant:
        reply = {"role": "assistant", "thought": rng.choice(_NONE_THOUGHTS).format(ask=ask),
                 "content": rng.choice(_NONE_ANSWERS).format(ask=ask)}
        outcome = Outcome(answer=reply["content"], steps=1, status="answered")
    else:
        reply = {"role": "assistant", "thought": rng.choice(_CALL_THOUGHTS).format(name=target.name, ask=ask),
                 "tool_calls": [{"name": target.name, "arguments": arguments}]}
        outcome = Outcome(answer=None, steps=1, status="answered")
    trace_id = f"calls-{split}-{i:05d}"
    messages = [{"role": "system", "content": _system_prompt(offered)}, {"role": "user", "content": question},
                reply]
    return Trace(id=trace_id, question_id=trace_id, tools=[f.spec() for f in offered], messages=messages,
                 teacher=TEACHER, outcome=outcome, split=split)  # type: ignore[arg-type]


def make_traces(n_train: int, n_dev: int, seed: int = 0, n_dev_domains: int = 3,
                irrelevance: float = 0.25) -> tuple[list[Trace], list[Function], list[str]]:
    """``n_train`` train and ``n_dev`` dev traces (dev over held-out domains), the catalogue and the dev domains.

    A fixed share ``irrelevance`` of each split is irrelevance questions (rounded), placed at seeded random rows.
    """
    if not 0 <= irrelevance <= 1:
        raise UserError(f"--irrelevance {irrelevance}: a share must be from 0 to 1.")
    functions = catalogue()
    held_out = dev_domains(seed, n_dev_domains)
    if n_dev and not held_out:
        raise UserError("dev traces need held-out domains.", hint="Use --dev-domains 1 or more, or --n-dev 0.")
    traces: list[Trace] = []
    for split, n in (("train", n_train), ("dev", n_dev)):
        pool = [f for f in functions if (f.domain in held_out) == (split == "dev")]
        rng = random.Random(f"{seed}-{split}")
        irrelevant = set(rng.sample(range(n), round(n * irrelevance)))
        traces += [make_trace(i, split, pool, i in irrelevant, rng) for i in range(n)]
    return traces, functions, held_out


def bfcl_entry(trace: Trace) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """A dev trace as a BFCL entry: (category, entry, possible answer or None). Optional parameters the
    question leaves out are allowed to be left out (``""``), as in BFCL's answers."""
    reply = trace.messages[-1]
    entry = {"id": trace.id, "question": [[{"role": "user", "content": trace.messages[1]["content"]}]],
             "function": trace.tools}
    if "tool_calls" not in reply:
        return "irrelevance", entry, None
    call = reply["tool_calls"][0]
    spec = next(t for t in trace.tools if t["name"] == call["name"])
    allowed = {p: [call["arguments"][p]] if p in call["arguments"] else [""] for p in spec["parameters"]["properties"]}
    return ("simple" if len(trace.tools) == 1 else "multiple"), entry, {"id": trace.id,
                                                                         "ground_truth": [{call["name"]: allowed}]}


def write_run(run_dir: Path, n_train: int, n_dev: int, seed: int = 0, n_dev_domains: int = 3,
              irrelevance: float = 0.25) -> dict[str, Any]:
    """Write traces.jsonl, functions.jsonl, bfcl_dev/ and the stats into ``run_dir``; return the stats."""
    from agentdistill.jsonl import write_text_atomic

    traces, functions, held_out = make_traces(n_train, n_dev, seed, n_dev_domains, irrelevance)
    layout = RunLayout(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(layout.traces, "".join(t.model_dump_json() + "\n" for t in traces))
    write_text_atomic(layout.functions, "".join(
        json.dumps({"domain": f.domain, "split": "dev" if f.domain in held_out else "train", **f.spec()}) + "\n"
        for f in functions))
    files: dict[str, list[str]] = {}
    answers: dict[str, list[str]] = {}
    for t in traces:
        if t.split != "dev":
            continue
        category, entry, answer = bfcl_entry(t)
        files.setdefault(category, []).append(json.dumps(entry) + "\n")
        if answer is not None:
            answers.setdefault(category, []).append(json.dumps(answer) + "\n")
    for category in ("simple", "multiple", "irrelevance"):  # every category, empty or not, so --categories works
        write_text_atomic(layout.bfcl_dev / f"BFCL_v3_{category}.json", "".join(files.get(category, [])))
        if category != "irrelevance":
            write_text_atomic(layout.bfcl_dev / "possible_answer" / f"BFCL_v3_{category}.json",
                              "".join(answers.get(category, [])))
    stats = {
        "seed": seed, "functions": len(functions), "domains": len(CATALOGUE), "dev_domains": held_out,
        "train_functions": sum(f.domain not in held_out for f in functions),
        "traces": dict(Counter(t.split for t in traces)),
        "irrelevance": dict(Counter(t.split for t in traces if "content" in t.messages[-1])),
        "tools_offered": dict(sorted(Counter(len(t.tools) for t in traces).items())),
        "bfcl_dev": {c: len(v) for c, v in files.items()},
        "complete": True,
    }
    write_json_atomic(layout.synth_calls_stats, stats)
    return stats
