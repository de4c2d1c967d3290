"""The offline rule teacher: an expert policy that needs no language model.

It implements the LLM protocol (``generate``), so the real agent runtime drives it exactly as it
drives a served teacher: each call receives the canonical conversation so far and returns the next
assistant turn in the wire format. The policy is

    plan = route(question)                      # which tools, with which arguments (regexes below),
                                                # those that compute before those that read
    step k < len(plan): "Thought: ...\\nAction: {plan[k]}"
    then:               "Thought: ...\\nAnswer: <composed from the observations>"

``route`` reads only the question's wording, which is the point: a question whose tool cannot be
inferred from its words is one a 135M student cannot learn either, and the rule question writer
(questions.py) drops any question that does not route to the tools it was written for.
The answer is extracted from what the tools returned (the best-matching sentences of a passage, the
figure a calculator printed) and cites only the articles that appear in those observations. Thoughts
are one sentence, picked from several phrasings by a hash of the question so the student learns the
decision, not one string.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentdistill.domains.uae_labour.calculators import service_arguments
from agentdistill.domains.uae_labour.lookup import NOT_COVERED_OBSERVATION
from agentdistill.llm.base import Completion, GenerationRequest
from agentdistill.synth.schema_teacher import (
    PLAN_ANSWER,
    PLAN_MARKER,
    Call,
    Plan,
    action_text,
    pick,
    reading_thought,
    reply_step,
    result_text,
    results_first,
)
from agentdistill.tools.registry import is_error

if TYPE_CHECKING:
    from agentdistill.config import RunConfig

# ----------------------------------------------------------------------------- routing

NUM = r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
_MONEY = re.compile(rf"(?:AED|Dhs?\.?|dirhams?)\s*{NUM}|{NUM}\s*(?:AED|dirhams?)\b", re.I)
_YEARS = re.compile(rf"{NUM}\s*(?:years?|yrs?)\b", re.I)
_MONTHS = re.compile(rf"{NUM}\s*months?\b", re.I)
_HOURS = re.compile(rf"{NUM}\s*(?:extra\s+|overtime\s+)?(?:hours?|hrs?|h)\b", re.I)
_ISO_DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")
_DAYS_OFFSET = re.compile(rf"{NUM}\s*days?\s+(after|from|later|before|earlier|prior to)\b", re.I)
_ARTICLE = re.compile(r"\b(?:Art\.?|Article)\s*(\d{1,3})\b", re.I)
_LAW_ALIASES = re.compile(
    r"\bthe (domestic workers? law|domestic workers? regulation|executive regulation|labou?r law)\b", re.I
)

_GRATUITY = re.compile(r"gratuity|end[- ]of[- ]service (?:benefit|pay|award|money)", re.I)
_UNPAID = re.compile(rf"{NUM}\s*days?\s+of\s+unpaid\s+(?:leave|absence)", re.I)
_LEAVE = re.compile(r"annual leave|paid leave|vacation days|leave days|days of leave|holiday entitlement", re.I)
_OVERTIME = re.compile(r"overtime|extra hours", re.I)
_NIGHT = re.compile(r"\bnight\b|10 ?pm|between 10", re.I)
_REST_DAY = re.compile(r"rest day|day off|weekly rest", re.I)
_SHIFT = re.compile(r"\bshift worker|\bshifts?\b", re.I)
_NOTICE = re.compile(r"\bnotice\b", re.I)
_CONTRACT_NOTICE = re.compile(
    rf"{NUM}[- ]days?(?:'|’)?\s+(?:of\s+)?notice|notice(?: period)?\s+(?:of|is|says)\s+{NUM}\s*days?"
    rf"|contract\s+(?:says|gives|sets|requires|states)\s+{NUM}\s*days", re.I)
_SERVED = re.compile(rf"(?:served|worked)\s+{NUM}\s*days?|{NUM}\s*days?\s+(?:were|was|have been|already)\s+served",
                     re.I)

_UNIT_WORDS = (
    "km|kilometres|kilometers|kilometre|kilometer|miles|mile|mi|m|metres|meters|metre|meter|cm|centimetres|"
    "centimeters|mm|feet|foot|ft|inches|inch|in|yards|yard|kg|kilograms|kilogram|kilos|g|grams|gram|pounds|pound|lb|"
    "lbs|ounces|ounce|oz|tonnes|tonne|litres|liters|litre|liter|l|ml|millilitres|gallons|gallon|celsius|fahrenheit|"
    "kelvin|C|F|hectares|hectare|acres|acre|km/h|kph|mph|m/s|minutes|minute|min|hours|hour|h|seconds|second|s|days|"
    "day|weeks|week"
)
_CONVERT = re.compile(rf"\bconvert\s+{NUM}\s*({_UNIT_WORDS})\s+(?:to|into)\s+({_UNIT_WORDS})\b", re.I)
_HOW_MANY_UNITS = re.compile(
    rf"\bhow many\s+({_UNIT_WORDS})\s+(?:are in|is in|are|is|in|make)\s+{NUM}\s*({_UNIT_WORDS})\b", re.I)

_WORD_OPS = [(re.compile(r"\s+divided by\s+", re.I), " / "),
             (re.compile(r"\s+(?:times|multiplied by)\s+", re.I), " * "),
             (re.compile(r"\s+plus\s+", re.I), " + "), (re.compile(r"\s+minus\s+", re.I), " - ")]
_EXPR = re.compile(
    r"\(*\s*\d[\d,]*(?:\.\d+)?\s*%?\s*\)*(?:\s*(?:[-+*/x×÷^]|% of|divided by|times|multiplied by|plus|minus)\s*"
    r"\(*\s*\d[\d,]*(?:\.\d+)?\s*%?\s*\)*)+", re.I)
_PERCENT_OF = re.compile(rf"{NUM}\s*%\s*of\s*(?:AED\s*)?{NUM}", re.I)
_CALC_VERB = re.compile(r"\b(?:what is|what's|calculate|compute|work out|how much is|evaluate)\b", re.I)

# "What does the law say about X, and ..." / "Look up X, then ...": the search part of a question.
_SEARCH_CLAUSE = re.compile(
    r"(?:what does (?:the |UAE )*(?:labou?r )?law say about|what do the rules say about|what are the rules (?:on|for)"
    r"|what is the rule (?:on|for)|look up the rules? (?:on|for)|look up|check the rules? (?:on|for)"
    r"|find the rules? (?:on|for)|search the law for|can you explain the rules? (?:on|for)"
    r"|explain the rules? (?:on|for)"
    r"|can you explain|can you tell me"
    r"|tell me about|i need information on|i'd like to know about|i want to understand|how does the law treat"
    r"|what should i know about|what must i know about|please summarise|please summarize)\s+(?P<topic>[^?]+?)"
    r"\s*(?:\?|,\s*(?:and|then)\b|\.\s|\.$|;|\s+(?:and|then)\s+(?=(?:how|what|work|calculate|compute|tell)\b)|$)",
    re.I,
)
_GREETING = re.compile(r"^\s*(?:hi|hello|hey|good (?:morning|afternoon|evening)|salam|as-?salaam?u? ?alaikum|greetings"
                       r"|howdy|yo)\b", re.I)
_THANKS = re.compile(r"\b(?:thanks|thank you|thank u|appreciate(?:d)? it|cheers|much appreciated|that helps|"
                     r"that was helpful|great help)\b", re.I)

# Words that mark a question as being about the domain (used only when no explicit pattern matched).
DEFAULT_DOMAIN_TERMS = frozenset([
    "labour", "labor", "law", "employer", "employee", "employment", "worker", "workers", "contract", "salary",
    "wage", "wages", "gratuity", "leave", "overtime", "notice", "probation", "termination", "dismissal",
    "resign", "resignation", "mohre", "permit", "visa", "domestic", "housemaid", "nanny", "maid", "driver",
    "sponsor", "absconding", "wps", "holiday", "holidays", "maternity", "sick", "injury", "compensation",
    "non-compete", "dispute", "complaint", "emiratisation", "recruitment", "hr", "payroll", "article",
    "decree-law", "dues", "settlement"
])
_STOP = frozenset([
    "a", "an", "the", "of", "to", "in", "on", "for", "and", "or", "is", "are", "was", "be", "what", "does",
    "do", "say", "about", "can", "you", "me", "my", "i", "we", "our", "us", "tell", "how", "much", "many",
    "which", "when", "who", "why", "with", "under", "law", "rules", "rule", "please", "explain", "know", "need",
    "should", "must", "this", "that", "it", "as", "at", "by", "from", "if", "into", "any", "there", "their",
    "they", "have", "has", "uae", "labour", "labor"
])


def number(text: str) -> float | int:
    value = float(text.replace(",", ""))
    return int(value) if value.is_integer() else value


def _first(pattern: re.Pattern[str], text: str) -> float | int | None:
    m = pattern.search(text)
    if m is None:
        return None
    return number(next(g for g in m.groups() if g is not None))


def _law_phrase(question: str) -> str | None:
    from agentdistill.domains.uae_labour.citations import LAW_RE

    m = LAW_RE.search(question)
    if m:
        return m.group(0).strip()
    m = _LAW_ALIASES.search(question)
    return m.group(0)[4:] if m else None  # without "the "


def keywords(text: str) -> str:
    """A search query from free text: its content words, in order."""
    words = re.findall(r"[A-Za-z][A-Za-z'-]*|\d+", text)
    return " ".join(w for w in words if w.lower() not in _STOP)


# Words that carry no topic in a question: greetings, hedges, the asking itself.
_FILLER = frozenset([
    "hi", "hello", "hey", "please", "pls", "thanks", "quick", "question", "q", "just", "wondering", "actually",
    "really", "exactly", "want", "would", "like", "could", "u", "so", "deal", "whats", "what's", "right",
    "someone", "read", "i'd", "i'm", "im", "i've", "ive", "am", "now", "here", "there", "work", "works",
    "understand", "mean", "means", "details", "info", "information", "explain", "applies", "apply", "worried",
    "can't", "get", "got", "give", "go", "going", "tell", "me", "anything", "something", "they", "them",
])
_SENTENCES = re.compile(r"(?<=[.?!])\s+")


def search_query(question: str) -> str:
    """The topic of a question in the user's own words: what a search for it should ask.

    The sentence that asks (the last one with a question mark, else the whole message), without
    figures, greetings and the words every question shares; a question sentence too short to name a
    topic ("What are the rules?") takes the sentences before it too.
    """
    sentences = [s for s in _SENTENCES.split(" ".join(question.split())) if s]
    asking = [i for i, s in enumerate(sentences) if "?" in s]
    start = asking[-1] if asking else 0
    end = asking[-1] + 1 if asking else len(sentences)

    def words(part: list[str]) -> list[str]:
        found = re.findall(r"[A-Za-z][A-Za-z'-]*", " ".join(part))
        return [w for w in found if w.lower() not in _STOP and w.lower() not in _FILLER and len(w) > 1]

    picked = words(sentences[start:end])
    while len(picked) < 2 and start > 0:
        start -= 1
        picked = words(sentences[start:end])
    if len(picked) < 2:
        picked = words(sentences)
    return " ".join(picked) or " ".join(question.split())[:80]


# the pay in lieu of notice, as notice_period states it ("Warning allowance if the notice is not worked: AED ...")
_NOTICE_PAY = re.compile(r"not worked: (AED [\d,.]+)")

# What the right answer says when the documents do not hold the topic (evaluate/answer_check.py reads
# this fact), and how the search tool reports it.
NOT_COVERED = "not covered"
NOT_COVERED_ANSWER = ("The documents I can search do not cover {topic}, so I cannot answer this from them. "
                      "Please check with the relevant authority.")


def answer_facts_of_calculation(name: str, observation: str) -> list[str]:
    """The figures a right answer to a calculation states: the ones the tool computed for what was asked.

    The headline of a domain calculator (the gratuity, the days of leave, the overtime pay, the notice
    and its pay) or the result of a general tool ("= 1,234", the converted value, the days, the date).
    """
    obs = observation.strip()
    if name == "calculate_gratuity":
        m = re.search(r"gratuity: (AED [\d,.]+)", obs)
        return [m.group(1)] if m else (["No gratuity"] if obs.startswith("No gratuity") else [])
    if name == "annual_leave":
        m = re.search(r"Annual leave: (\d+) days", obs)
        if m:
            return [f"{m.group(1)} days"]
        if obs.startswith("No annual leave"):
            return ["2 days per month"]
        m = re.search(r"(30 days) with full pay for each year", obs)
        return [m.group(1)] if m else []
    if name == "overtime_pay":
        m = re.search(r"Overtime pay: (AED [\d,.]+)", obs)
        return [m.group(1)] if m else []
    if name == "notice_period":
        facts = [f"{m.group(1)} days"] if (m := re.search(r"Notice period: (\d+) days", obs)) else []
        pay = _NOTICE_PAY.search(obs)
        return facts + ([pay.group(1)] if pay else [])
    if name in ("calculator", "convert_units"):
        m = re.search(r"=\s*(-?[\d,]+(?:\.\d+)?)", obs)
        return [m.group(1)] if m else []
    if name == "date_diff":
        m = re.search(r": (-?\d+) days", obs)
        return [f"{m.group(1)} days"] if m else []
    if name == "add_days":
        m = re.search(r"= (\d{4}-\d{2}-\d{2})", obs)
        return [m.group(1)] if m else []
    m = re.search(r"-?\d[\d,]*(?:\.\d+)?", obs)
    return [m.group(0)] if m else []


def _service(q: str) -> dict[str, float | str]:
    """A length of service as the question states it: a figure and its unit."""
    return service_arguments(_first(_YEARS, q), _first(_MONTHS, q))


def _calculation(q: str) -> Call | None:
    """The domain calculation a question asks for, if its numbers are all there."""
    money = _first(_MONEY, q)
    if _GRATUITY.search(q) and money is not None:
        service = _service(q)
        if service:
            args: dict[str, Any] = {"monthly_basic_salary": money, **service}
            unpaid = _first(_UNPAID, q)
            if unpaid:
                args["unpaid_absence_days"] = unpaid
            return Call("calculate_gratuity", args)
    if _OVERTIME.search(q) and money is not None:
        hours = _first(_HOURS, q)
        if hours is not None:
            args = {"monthly_basic_salary": money, "overtime_hours": hours}
            if _REST_DAY.search(q):
                args["period"] = "rest_day"
            elif _NIGHT.search(q):
                args["period"] = "night"
            if _SHIFT.search(q):
                args["shift_worker"] = True
            return Call("overtime_pay", args)
    if _LEAVE.search(q) and money is None:
        service = _service(q)
        if service:
            return Call("annual_leave", service)
    if _NOTICE.search(q):
        days = _first(_CONTRACT_NOTICE, q)
        if days is not None:
            args = {"contract_notice_days": int(days)}
            if money is not None:
                args["monthly_wage"] = money
            served = _first(_SERVED, q)
            if served is not None:
                args["days_already_served"] = int(served)
            return Call("notice_period", args)
    return None


def _general(q: str) -> Call | None:
    dates = _ISO_DATE.findall(q)
    if len(dates) >= 2:
        return Call("date_diff", {"start_date": dates[0], "end_date": dates[1]})
    if len(dates) == 1:
        m = _DAYS_OFFSET.search(q)
        if m:
            days = int(number(m.group(1)))
            sign = -1 if m.group(2).lower() in ("before", "earlier", "prior to") else 1
            return Call("add_days", {"date": dates[0], "days": sign * days})
    m = _CONVERT.search(q)
    if m:
        return Call("convert_units", {"value": number(m.group(1)), "from_unit": m.group(2), "to_unit": m.group(3)})
    m = _HOW_MANY_UNITS.search(q)
    if m:
        return Call("convert_units", {"value": number(m.group(2)), "from_unit": m.group(3), "to_unit": m.group(1)})
    if _CALC_VERB.search(q):
        m = _PERCENT_OF.search(q)
        if m:
            return Call("calculator", {"expression": f"{m.group(1)}% of {m.group(2)}"})
        m = _EXPR.search(q)
        if m:
            expr = m.group(0).strip()
            for pattern, op in _WORD_OPS:
                expr = pattern.sub(op, expr)
            return Call("calculator", {"expression": " ".join(expr.split())})
    return None


def route(question: str, tool_names: Iterable[str] | None = None,
          domain_terms: Iterable[str] = DEFAULT_DOMAIN_TERMS) -> Plan:
    """The tools a question's wording calls for, with their arguments (see the module docstring)."""
    q = " ".join(question.split())
    available = set(tool_names) if tool_names is not None else None

    def ok(name: str) -> bool:
        return available is None or name in available

    search = _SEARCH_CLAUSE.search(q)
    topic = search.group("topic").strip(" .,;:") if search else ""
    calc = _calculation(q)
    if calc is not None and ok(calc.name):
        calls = [calc]
        if search and ok("search_labour_law"):
            calls.insert(0, Call("search_labour_law", {"query": topic}))
        return Plan(calls=calls, topic=topic)
    art = _ARTICLE.search(q)
    law = _law_phrase(q)
    if art and law and ok("get_article"):  # before arithmetic: "33/2021" in a law's name is not a division
        return Plan(calls=[Call("get_article", {"law": law, "article": int(art.group(1))})],
                    topic=f"{law}, Art. {art.group(1)}")
    general = _general(q)
    if general is not None and ok(general.name):
        return Plan(calls=[general], topic=topic)
    words = {w.lower().strip("'") for w in re.findall(r"[A-Za-z][A-Za-z'-]*", q)}
    about_domain = bool(words & set(domain_terms))
    if _THANKS.search(q) and not search:
        return Plan(reply="thanks")
    if _GREETING.search(q) and not search and len(q.split()) <= 14:
        return Plan(reply="greeting")
    if (search or about_domain) and ok("search_labour_law"):
        query = topic or keywords(q)
        if query:
            return Plan(calls=[Call("search_labour_law", {"query": query})], topic=query)
    return Plan(reply="decline")


# ----------------------------------------------------------------------------- answering

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")


def _citation_text(normalized: str) -> str:
    """"FDL 33/2021 Art. 51" -> "Federal Decree-Law 33/2021, Art. 51" (how the corpus writes it)."""
    from agentdistill.domains.uae_labour.laws import format_citation

    lid, _, art = normalized.rpartition(" Art. ")
    return format_citation(lid, art)


def passages(observation: str) -> list[tuple[str, str]]:
    """(header, text) pairs of a lookup observation: one ``[i] header: text`` line per passage.

    Headers are section paths that may hold colons themselves; the text of a chunk starts with its
    markdown heading ("## ..."), or the header ends with its citations "(...)", which is where we cut.
    """
    out = []
    for line in observation.splitlines():
        m = re.match(r"^\[(\d+)\]\s*(.*)$", line.strip())
        if not m:
            continue
        rest = m.group(2)
        cut = rest.find(": #")
        if cut < 0:
            close = re.search(r"\):\s", rest)
            cut = close.start() + 1 if close else rest.find(": ")
        if cut < 0:
            continue
        header, text = rest[:cut], rest[cut + 1 :].strip()
        title = re.sub(r"\s*\([^()]*\)$", "", header.rsplit(" > ", 1)[-1]).strip()
        text = re.sub(r"^#+\s*", "", text)
        if title and text.startswith(title):  # drop the heading the chunk text repeats
            text = text[len(title) :].strip()
        out.append((header, text))
    return out


def _content_words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z]{3,}", text)} - _STOP


def best_sentences(observation: str, topic: str, max_sentences: int = 2, max_chars: int = 420,
                   must_cite: str | None = None) -> tuple[str, str]:
    """The sentences of one passage that best match ``topic``, and the citation to give with them.

    The passage is the one whose section title and text share most content words with the topic, with
    the search engine's rank as the tie-break (a passage costs half a word per rank below the first).
    Within it a sentence scores overlap / sqrt(length): short, on-topic sentences first, kept in text
    order; with ``must_cite`` (a normalized citation) sentences citing it come first. A sentence cut off
    by the observation's length limit is never used. Returns ("", "") when the observation holds no passage.
    """
    from agentdistill.domains.uae_labour.citations import extract_citations

    found = passages(observation)
    want = _content_words(topic)
    best: tuple[float, int, list[tuple[float, int, str]]] | None = None
    for p, (header, text) in enumerate(found):
        truncated = text.endswith("...")
        sentences = [s.strip() for s in _SENTENCE.split(text.removesuffix("...").strip())]
        if truncated and len(sentences) > 1:
            sentences = sentences[:-1]
        scored = [(len(want & _content_words(s)) / math.sqrt(len(s.split()))
                   + (10.0 if must_cite and must_cite in extract_citations(s) else 0.0), i, s)
                  for i, s in enumerate(sentences) if len(s.split()) >= 5 and not s.startswith("Sources:")]
        if not scored:
            continue
        title = header.rsplit(" > ", 1)[-1]
        score = (2 * len(want & _content_words(title)) + max(len(want & _content_words(s)) for _, _, s in scored)
                 + (10.0 if must_cite and must_cite in extract_citations(text) else 0.0) - 0.5 * p)
        if best is None or score > best[0]:
            best = (score, p, scored)
    if best is None:
        return "", ""
    _, p, scored = best
    # the best sentence is always said; the next ones join it, in text order, only where they fit
    ranked = sorted(scored, reverse=True)[:max_sentences]
    kept = [ranked[0]]
    for item in ranked[1:]:
        if sum(len(x[2]) + 1 for x in kept) + len(item[2]) <= max_chars:
            kept.append(item)
    text = " ".join(s for _, _, s in sorted(kept, key=lambda x: x[1]))
    if extract_citations(text):
        return text, ""
    header, body = found[p]
    cites = sorted(extract_citations(header) or extract_citations(body))
    return text, "; ".join(_citation_text(c) for c in cites[:2])


# ----------------------------------------------------------------------------- thoughts and replies

# A first thought's first word names the decision ("Searching", "Article", "Computing", "Plain arithmetic",
# ..., "No" for every reply without a tool): a student decoding greedily decides at that first token, on
# the question alone. Openings shared across tools ("I will", "Let me") put the decision later, after the
# student has copied the topic, where it is made worse. The tests keep each first word to one kind of
# decision. get_article's word is "Article", the cue such questions carry; the domain calculators share
# "Computing" and name their topic next, so the first word decides search or compute and the topic then
# picks the calculator. A tool's thoughts name the tool at once, in a frame of its own: frames shared
# across tools let a student take the right first word and then another tool's frame and name.
_THOUGHTS = {
    # the query closes the thought, in the user's words, so the action copies it from there
    "search_labour_law": ["Searching the documents for: {topic}.", "Searching the law for: {topic}.",
                          "Searching for the rules on: {topic}."],
    "get_article": ["Article named: {topic} will show what it says.",
                    "Article lookup: the question names {topic}, so I will get its text.",
                    "Article text is what is asked, so I will get {topic}."],
    "calculate_gratuity": ["Computing gratuity with calculate_gratuity from the basic salary and the years of service.",
                           "Computing gratuity with calculate_gratuity, which applies the 21-day and 30-day rule.",
                           "Computing gratuity with calculate_gratuity for these numbers."],
    "annual_leave": ["Computing annual leave with annual_leave from the length of service.",
                     "Computing annual leave with annual_leave, which knows the entitlement by months of service.",
                     "Computing annual leave with annual_leave for this length of service."],
    "overtime_pay": ["Computing overtime with overtime_pay from the basic salary and the hours.",
                     "Computing overtime with overtime_pay, which applies the legal rates.",
                     "Computing overtime with overtime_pay for these hours."],
    "notice_period": ["Computing notice with notice_period against the legal limits.",
                      "Computing notice with notice_period, which also gives any pay in lieu.",
                      "Computing notice with notice_period for this contract."],
    "calculator": ["Plain arithmetic with the calculator.", "Plain arithmetic with the calculator, one expression.",
                   "Plain arithmetic with the calculator for these numbers."],
    "convert_units": ["Conversion with convert_units between the units.",
                      "Conversion with convert_units, which knows the factors.",
                      "Conversion with convert_units for this amount."],
    "date_diff": ["Counting days with date_diff between the two dates.",
                  "Counting days with date_diff, from one date to the other.",
                  "Counting days with date_diff for these dates."],
    "add_days": ["Adding days with add_days to the date.", "Adding days with add_days, which gives the resulting date.",
                 "Adding days with add_days for this date."],
}
# a tool without thoughts of its own (one a subclass's plan adds) opens with its name, its own decision word
_OTHER_TOOL_THOUGHT = "{tool} is the next step."
# A step that reads the law ends its thought with what comes next ("; next: overtime_pay." or "; next:
# the answer."), and the step after its observation repeats it: the decision after a search is then a
# copy of the student's own plan, learnt from every lookup as well as from the two-tool traces, instead
# of the habit of answering after any search. Calculator steps keep plain thoughts.
_READS_LAW = ("search_labour_law", "get_article")
# closed phrases that end where the plan begins: an open one ("The search found ...") lets a student go
# on with the passage it just read and never reach its action
_HAVE_RULES = ["I have the rules", "The law texts are in", "I have read the rules"]
# After a calculation's observation the first word decides again: "Done" answers, "Another" calls a second
# calculator. Answer thoughts that open like a plan ("The result answers the question, so I will use ...")
# lead a student to call the tool again.
_SECOND_STEP = ["Another calculation: now I will calculate the figure with {tool}.",
                "Another step: with the rule found, {tool} will give the exact amount.",
                "Another tool is next: I compute the numbers with {tool}."]
# The reading after a calculation: the same decision word as a second calculation, then the search as a first
# search reads it. (A calculation thought that announced the reading, "...; next: the rules on <topic>.", was
# never written by students at the demo's budget, and they still answered after the calculation.)
_READING_NEXT = ["Another step: the rules on {topic}", "Another step: what the law says on {topic}",
                 "Another tool is next: the documents on {topic}"]
_ANSWER_THOUGHTS = ["Done: I have what I need to answer.", "Done: the result answers the question.",
                    "Done: that gives the answer."]
_ANSWER_THOUGHTS_CITED = ["Done: I have what I need to answer.", "Done: now I can answer and cite the source.",
                          "Done: the result answers the question, with its article."]
# the pack's own wording of each reply without a tool (the thoughts are the generic teacher's, REPLY_THOUGHTS)
_REPLIES = {
    "greeting": ["Hello! I can help with questions about {domain}, such as leave, gratuity, overtime and notice "
                 "periods. What would you like to know?",
                 "Hi! Ask me anything about {domain}, for example your leave, gratuity or notice period.",
                 "Hello! How can I help you with {domain} today?"],
    "thanks": ["You're welcome! Let me know if you have another question about {domain}.",
               "Glad to help. Feel free to ask if anything else about {domain} comes up.",
               "You're welcome. I'm here if you need anything else on {domain}."],
    "decline": ["I'm sorry, I can only help with {domain} and related calculations, so I can't answer that.",
                "Sorry, that is outside what I can help with: I answer questions about {domain}.",
                "I can't help with that, I'm afraid. I can answer questions about {domain}, such as leave, pay "
                "and end-of-service rules."],
}


def plan_from_expect(question: str, tools: list[str], arguments: dict[str, dict[str, Any]], facts: list[str],
                     tool_names: Iterable[str] | None = None, hints: dict[str, dict[str, Any]] | None = None) -> Plan:
    """The expert's plan for a question whose writer recorded the tools and arguments it needs.

    A search takes the query the writer suggested (``hints``: the topic in plain words, where the question
    may have typos or slang), else the question's topic in the user's words (``search_query``); a tool whose
    arguments the writer left free (the calculator's expression) takes what ``route`` reads from
    the wording. A question needing no tool gets the reply its facts name.
    """
    if not tools:
        kind = facts[0] if facts and facts[0] in _REPLIES else route(question, tool_names).reply or "decline"
        return Plan(reply=kind)
    query = str(((hints or {}).get("search_labour_law") or {}).get("query") or search_query(question))
    calls = []
    for name in tools:
        args = dict(arguments.get(name) or {})
        if name == "search_labour_law":
            args.setdefault("query", query)
        elif not args:
            routed = next((c for c in route(question, [name]).calls if c.name == name), None)
            args = routed.arguments if routed else {}
        calls.append(Call(name, args))
    topic = query if "search_labour_law" in tools else ""
    if "get_article" in tools:
        a = arguments.get("get_article") or {}
        topic = f"{a.get('law', '')}, Art. {a.get('article', '')}"
    return Plan(calls=calls, topic=topic)


def computing_first(calls: list[Call]) -> list[Call]:
    """The calls of a plan with the computing ones before the readings, each group in its own order.

    A question that asks for a rule and a figure is answered by the figure (the rule is context, and the
    answer states the result first). Read first, the plan's second tool was the step students left out:
    after any search they had learnt to answer, so the figure was never computed. Computed first, the
    first step is the one every calculation opens with, decided by the figures in the question, and a
    student that stops after it has still answered what was asked.
    """
    return sorted(calls, key=lambda call: call.name in _READS_LAW)


class RuleTeacher:
    """An LLM-protocol expert policy over the real tools (see the module docstring).

    ``RuleTeacher(run_dir, cfg)`` is how ``llm.make_llm("rule", ...)`` builds it: the plan is limited to
    the tools of ``cfg.tools.packs``. ``tool_names`` overrides that (None and no cfg: every known tool);
    ``domain`` names the domain in greetings and refusals; ``domain_terms`` are the words that make a
    free-form question a lookup.
    """

    name = "rule"

    def __init__(self, run_dir: Path | None = None, cfg: RunConfig | None = None, *,
                 tool_names: Iterable[str] | None = None, domain: str = "UAE labour law",
                 domain_terms: Iterable[str] = DEFAULT_DOMAIN_TERMS):
        from agentdistill.config import RunConfig, ToolsConfig
        from agentdistill.tools import load_tools

        # cheap: lookups open the corpus on first call; without a config, every tool this teacher knows
        registry = load_tools(cfg or RunConfig(tools=ToolsConfig(packs=["uae_labour", "general"])), run_dir)
        if tool_names is None and cfg is not None:
            tool_names = registry.names()
        self.tool_names = set(tool_names) if tool_names is not None else None
        self.specs = {s["name"]: s for s in registry.specs()}
        self.domain = domain
        self.domain_terms = frozenset(domain_terms)

    def know(self, questions: Iterable[Any]) -> None:
        """Plan these questions from what their writer recorded (``Question.expect`` and, for a reply
        without a tool, its kind in ``answer_facts``) instead of from their wording."""
        self._known = {" ".join(q.text.split()): q for q in questions if q.expect is not None}

    def plan(self, question: str) -> Plan:
        known = getattr(self, "_known", {}).get(" ".join(question.split()))
        if known is not None:
            plan = plan_from_expect(question, known.expect.tools, known.expect.arguments or {},
                                    known.answer_facts, self.tool_names, known.expect.hints)
        else:
            plan = route(question, self.tool_names, self.domain_terms)
        plan.calls = computing_first(plan.calls)
        return plan

    def next_step(self, messages: list[dict[str, Any]]) -> str:
        """The wire text of the next assistant turn for a canonical conversation."""
        user_at = max(i for i, m in enumerate(messages) if m["role"] == "user")
        question = messages[user_at]["content"]
        after = messages[user_at + 1 :]
        done = [m for m in after if m["role"] == "assistant"]
        observations = [(m["name"], m["content"]) for m in after if m["role"] == "tool"]
        plan = self.plan(question)
        key = question
        if plan.reply is not None:
            return reply_step(plan.reply, question, self.domain, _REPLIES)
        k = len(done)
        read_law = bool(observations) and observations[-1][0] in _READS_LAW
        if k < len(plan.calls) and not any(name == "format_error" for name, _ in observations):
            call = plan.calls[k]
            upcoming = plan.calls[k + 1].name if k + 1 < len(plan.calls) else PLAN_ANSWER
            if k == 0:
                thought = pick(_THOUGHTS.get(call.name, [_OTHER_TOOL_THOUGHT]), key)
                if call.name in _READS_LAW:
                    thought = reading_thought(thought, upcoming)
            elif read_law:
                thought = f"{pick(_HAVE_RULES, key)}; {PLAN_MARKER} {call.name}."
            elif call.name in _READS_LAW:
                thought = f"{pick(_READING_NEXT, key)}; {PLAN_MARKER} {upcoming}."
            else:
                thought = pick(_SECOND_STEP, key)
            thought = thought.format(topic=plan.topic or "this", tool=call.name)
            return f"Thought: {thought}\n{action_text(question, call, self.specs.get(call.name))}"
        answer = self.compose_answer(plan, question, observations)
        if read_law:
            thought = f"{pick(_HAVE_RULES, key)}; {PLAN_MARKER} {PLAN_ANSWER}."
        else:
            from agentdistill.domains.uae_labour.citations import extract_citations

            thought = pick(_ANSWER_THOUGHTS_CITED if extract_citations(answer) else _ANSWER_THOUGHTS, key)
        return f"Thought: {thought}\nAnswer: {answer}"

    def compose_answer(self, plan: Plan, question: str, observations: list[tuple[str, str]]) -> str:
        parts = []
        for name, obs in results_first(observations, reads=lambda name: name in _READS_LAW):
            if is_error(obs):
                parts.append(f"I could not get that information: {obs.strip()[7:200]}")
            elif name in _READS_LAW:
                if obs.startswith(NOT_COVERED_OBSERVATION):
                    parts.append(NOT_COVERED_ANSWER.format(topic=plan.topic or "this topic"))
                    continue
                if not passages(obs):
                    parts.append(obs.strip())
                    continue
                text, cite = best_sentences(obs, question, max_sentences=1 if len(plan.calls) > 1 else 2,
                                            must_cite=self._wanted_article(plan) if name == "get_article" else None)
                parts.append(f"{text} ({cite})." if cite and text else text)
            else:
                parts.append(result_text(obs))
        answer = " ".join(p.strip() for p in parts if p.strip())
        return answer or "I could not find this in the documents."

    @staticmethod
    def _wanted_article(plan: Plan) -> str | None:
        from agentdistill.domains.uae_labour.laws import resolve_law

        call = next((c for c in plan.calls if c.name == "get_article"), None)
        lid = resolve_law(str(call.arguments.get("law", ""))) if call else None
        return f"{lid} Art. {call.arguments.get('article')}" if call and lid else None

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        out = []
        for r in requests:
            text = self.next_step(r.messages)
            if r.prefix:
                # a prefilled turn starts with the prefix (Kang et al.'s first-thought prefix); our own
                # one-sentence thought follows it, as a model continuing the prefix would write it
                rest = text.removeprefix("Thought:").lstrip()
                text = f"{r.prefix.rstrip()} {rest}"
            out.append([Completion(text=text, finish_reason="stop") for _ in range(max(1, r.n))])
        return out
