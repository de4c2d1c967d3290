"""Offline question writer: templates over the corpus structure and sampled numbers, no LLM needed.

Kinds (their shares come from QuestionsConfig.mix):

- lookup: one per (chunk, persona, template) from the chunk's section title ("What does the law say
  about <title>?") -> search_labour_law; and from the articles the chunk cites ("What does Federal
  Decree-Law 33/2021, Art. 43 say?") -> get_article.
- calculation: scenarios with sampled numbers (wages, years of service, hours, notice days) for the
  domain calculators, and general-pack routing (arithmetic, unit conversion, dates).
- multi_step: "What does the law say about <rule>, and <calculation>?" -> search, then the calculator;
  half of them ask about one topic's rule and another topic's figure (``MIXED_TAILS``).
- no_tool: greetings, thanks, and out-of-domain questions to decline.

Every question is phrased in a persona's voice, with several templates per kind and persona, and is
kept only if ``llm.rule.route`` (which reads nothing but the wording) sends it to exactly the tools and
arguments it was written for: that is the guarantee that a small student can infer the tool from the
question. Candidates are over-generated; questions.py dedups and samples the mix.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from agentdistill.citations import extract_citations, format_citation
from agentdistill.config import RunConfig
from agentdistill.llm.rule import route
from agentdistill.records import Chunk, Expect, Question
from agentdistill.synth.questions import Persona, kind_rng, kind_targets, question_id
from agentdistill.tools.matching import arguments_match, optional_defaults

log = logging.getLogger(__name__)
OVERGENERATE = 1.35  # candidates per needed question: dedup and routing checks drop some

# ----------------------------------------------------------------------------- personas


def role(persona: Persona) -> str:
    """Which template voice fits a persona: hr | employer | domestic | employee (the default)."""
    name = persona.name.lower()
    if "hr" in re.split(r"[\W_]+", name) or "human" in name:
        return "hr"
    if "domestic" in name or "housemaid" in name or "nanny" in name:
        return "domestic"
    if "employer" in name or "owner" in name:
        return "employer"
    return "employee"


PREFIXES = {
    "hr": ["", "", "For our HR policy: ", "We are updating our staff handbook. ", "HR question: ",
           "For our payroll team, "],
    "employer": ["", "", "As an employer, ", "I run a small company in Dubai. ", "I own a trading business. ",
                 "Our company has 20 staff. "],
    "employee": ["", "", "I'm an employee in Dubai. ", "Quick question about my job: ",
                 "I work for a private company. ",
                 "My manager said something I want to check. "],
    "domestic": ["", "", "I work as a housemaid. ", "I am a nanny for a family. ", "My sister is a domestic worker. ",
                 "I work as a private driver for a family. "],
}


def _join(prefix: str, sentence: str) -> str:
    """Prefix + sentence, lower-casing the sentence's first word after a comma ("As an employer, what ...")."""
    first = sentence.split(" ", 1)[0]
    if prefix.endswith((", ", ": ")) and first != "I" and not _ACRONYM.match(first):
        return prefix + sentence[0].lower() + sentence[1:]
    return prefix + sentence


# ----------------------------------------------------------------------------- lookup templates

SEARCH_TEMPLATES = [
    "What does the law say about {topic}?", "What are the rules on {topic}?", "Can you explain the rules on {topic}?",
    "Tell me about {topic}.", "I need information on {topic}.", "What should I know about {topic}?",
    "How does the law treat {topic}?", "Look up the rules on {topic}, please.",
]
QUESTION_TITLE_TEMPLATES = ["Can you tell me {topic}?", "Can you explain {topic}?", "I want to understand {topic}."]
ARTICLE_TEMPLATES = [
    "What does {law}, Art. {n} say?", "Show me Article {n} of {law}.", "Can you get {law}, Art. {n} for me?",
    "I'd like to read Article {n} of {law}.", "Please fetch Art. {n} of {law}.",
]
LAW_ALIASES = {"FDL 33/2021": "the labour law", "FDL 9/2022": "the domestic workers law",
               "CR 1/2022": "the executive regulation"}
_ACRONYM = re.compile(r"^[A-Z]{2,}\b")


def title_of(chunk: Chunk) -> str:
    """The chunk's own section title, without the parent path and the trailing "(citations)"."""
    last = chunk.section_path.rsplit(" > ", 1)[-1]
    return re.sub(r"\s*\([^()]*\)\s*$", "", last).strip()


def topic_of(title: str) -> tuple[str, bool]:
    """A title as it reads inside a question, and whether it is itself a question ("How many ...")."""
    title = re.sub(r"^Worked examples? (?:of |: ?)", "a worked example of ", title, flags=re.I)
    title = re.sub(r"^(.*?):\s*worked examples?$", r"a worked example of \1", title, flags=re.I)
    is_question = bool(re.match(r"(how|when|what|who|which|why|where)\b", title, re.I))
    if not _ACRONYM.match(title) and title[:1].isupper():
        title = title[0].lower() + title[1:]
    return title.rstrip(".?"), is_question


def _idf_words(chunks: list[Chunk]) -> dict[str, float]:
    df: Counter[str] = Counter()
    for c in chunks:
        df.update(set(re.findall(r"[a-z]{3,}", (c.section_path + " " + c.text).lower())))
    return {w: math.log(len(chunks) / n) for w, n in df.items()}


def persona_affinity(chunks: list[Chunk], personas: list[Persona]) -> list[list[float]]:
    """P(persona | chunk) for every chunk: who would ask about this passage.

    a[p][c] = sum of IDF weights of the words persona p's name and interests share with chunk c. Each
    persona's scores are standardized over the chunks (z-scores), so a persona claims the passages
    most typical *for it* rather than the longest ones, and P(p | c) = softmax_p(1.5 * z[p][c]).
    """
    idf = _idf_words(chunks)
    words = [set(re.findall(r"[a-z]{3,}", (c.section_path + " " + c.text).lower())) for c in chunks]
    z = []
    for p in personas:
        mine = set(re.findall(r"[a-z]{3,}", (p.name.replace("_", " ") + " " + " ".join(p.asks_about)).lower()))
        raw = [sum(idf.get(w, 0.0) for w in mine & ws) for ws in words]
        mean = sum(raw) / len(raw)
        std = math.sqrt(sum((r - mean) ** 2 for r in raw) / len(raw)) or 1.0
        z.append([(r - mean) / std for r in raw])
    out = []
    for c in range(len(chunks)):
        e = [math.exp(1.5 * z[p][c]) for p in range(len(personas))]
        out.append([x / sum(e) for x in e])
    return out


# ----------------------------------------------------------------------------- calculation templates

CALC = {
    "calculate_gratuity": {
        "employee": ["I earn a basic salary of {money} and have worked here for {years} years. What end-of-service "
                     "gratuity am I owed?",
                     "My basic pay is {money} a month and I'm leaving after {years} years. How much gratuity will I "
                     "get?",
                     "How much end-of-service gratuity do I get after {years} years on a basic salary of {money}?"],
        "hr": ["One of our employees is leaving after {years} years with a basic salary of {money}. What gratuity do "
               "we owe?",
               "Please calculate the gratuity for a staff member with {years} years of service and {money} basic "
               "monthly salary.",
               "What is the end-of-service gratuity for {years} years of service at a basic wage of {money}?"],
        "employer": ["My worker earns {money} basic and has been with me {years} years. How much end-of-service "
                     "gratuity must I pay?",
                     "An employee with {years} years of service and a basic salary of {money} is leaving. What "
                     "gratuity do I pay?"],
    },
    "annual_leave": {
        "employee": ["How much annual leave do I get after {months} months of service?",
                     "I have worked {months} months for my company. How many days of annual leave am I entitled to?"],
        "hr": ["How many days of annual leave has an employee earned after {months} months of service?",
               "Calculate the annual leave entitlement for a staff member with {months} months of service."],
        "employer": ["My employee has worked {months} months. How much paid annual leave must I give?",
                     "How many annual leave days does a worker with {months} months of service get?"],
    },
    "overtime_pay": {
        "employee": ["My basic salary is {money}. What is my overtime pay for {hours} hours{period}?",
                     "I worked {hours} extra hours{period} this month on a basic salary of {money}. How much overtime "
                     "should I get?"],
        "hr": ["Calculate the overtime pay for {hours} hours{period} for an employee on a basic salary of {money}.",
               "What overtime do we owe for {hours} hours{period} on a basic wage of {money}?"],
        "employer": ["My worker did {hours} hours of overtime{period}. His basic salary is {money}. What must I pay?",
                     "How much overtime pay do I owe for {hours} hours{period} at a basic salary of {money}?"],
    },
    "notice_period": {
        "employee": ["My contract says {days} days notice. What notice period applies to me?",
                     "My contract says {days} days notice and my monthly wage is {money}. If I leave without working "
                     "it, what do I owe?",
                     "I have a {days}-day notice in my contract, earn {money} a month and have served {served} days of "
                     "it. What is the pay in lieu of notice?"],
        "hr": ["An employment contract has a notice period of {days} days. Is that valid, and what notice applies?",
               "An employee on {money} a month has a contract notice period of {days} days and worked {served} days of "
               "it. What is the notice pay owed?"],
        "employer": ["My contract with a worker says {days} days notice and he earns {money}. What notice pay applies "
                     "if I end it now?",
                     "The contract gives {days} days notice. What notice period does the law allow?"],
    },
}
PERIODS = [("", None), ("", None), (" at night", "night"), (" between 10 pm and 4 am", "night"),
           (" on my weekly rest day", "rest_day"), (" on the weekly rest day", "rest_day")]
GENERAL = {
    "calculator": ["What is {a} * {b}?", "Calculate {a} + {b} + {c}.", "What is {p}% of {a}?",
                   "How much is {p}% of AED {a}?", "Work out ({a} + {b}) / {n}.", "What is {a} divided by {n}?",
                   "Compute {a} - {b}.", "What is {a} times {n}?"],
    "convert_units": ["Convert {v} {u1} to {u2}.", "How many {u2} are in {v} {u1}?",
                      "Please convert {v} {u1} into {u2}."],
    "date_diff": ["How many days are there between {d1} and {d2}?", "I started on {d1} and my contract ended on {d2}. "
                  "How long is that?", "What is the time between {d1} and {d2}?"],
    "add_days": ["What date is {n} days after {d1}?", "What date is {n} days before {d1}?",
                 "If I start on {d1}, what date is {n} days after that?"],
}
UNIT_PAIRS = [("km", "miles"), ("miles", "km"), ("kg", "pounds"), ("pounds", "kg"), ("litres", "gallons"),
              ("celsius", "fahrenheit"), ("fahrenheit", "celsius"), ("feet", "metres"), ("cm", "inches"),
              ("hours", "minutes"), ("metres", "feet")]
# tool -> (the article it implements, search topics, calculation clauses that follow the search)
MULTI = {
    "calculate_gratuity": ("FDL 33/2021 Art. 51",
                           ["end-of-service gratuity", "the gratuity formula", "gratuity for foreign workers"],
                           ["how much gratuity is due after {years} years on a basic salary of {money}?",
                            "what would I get after {years} years on a basic salary of {money}?",
                            "how much gratuity is owed for {years} years at {money} basic?"]),
    "annual_leave": ("FDL 33/2021 Art. 29", ["annual leave entitlement", "paid annual leave", "annual leave"],
                     ["how many days do I get after {months} months of service?",
                      "how much leave is due after {months} months of service?"]),
    "overtime_pay": ("FDL 33/2021 Art. 19", ["overtime pay rates", "overtime pay", "overtime limits and pay"],
                     ["what is the pay for {hours} hours{period} on a basic salary of {money}?",
                      "how much is due for {hours} hours{period} at a basic wage of {money}?"]),
    "notice_period": ("FDL 33/2021 Art. 43", ["notice periods", "the notice period and pay in lieu",
                                              "notice when leaving a job"],
                      ["what applies if my contract says {days} days notice and I earn {money}?",
                       "what is owed if the contract says {days} days notice, the wage is {money} and {served} days "
                       "were served?"]),
}
# A second question on another topic than the rule looked up ("the rules on annual leave, then the
# gratuity for ..."): it names what it asks for, since "what would I get" after a leave topic would not.
# Such pairs are why the calculator a student picks second follows the numbers asked about, not the
# topic searched: with each calculator tied to its own topic, the held-out topic's two-tool questions
# (gratuity) were answered from the search alone (0 of 35).
MIXED_TAILS = {
    "calculate_gratuity": ["how much gratuity is due after {years} years on a basic salary of {money}?",
                           "how much end-of-service gratuity is owed for {years} years at {money} basic?"],
    "annual_leave": ["how many days of annual leave do I get after {months} months of service?",
                     "how much annual leave is due after {months} months of service?"],
    "overtime_pay": ["what is the overtime pay for {hours} hours{period} on a basic salary of {money}?",
                     "how much overtime pay is due for {hours} hours{period} at a basic wage of {money}?"],
    "notice_period": ["what notice pay applies if my contract says {days} days notice and I earn {money}?",
                      "what is the notice pay if the contract says {days} days notice, the wage is {money} and "
                      "{served} days were served?"],
}
MIXED_SHARE = 0.5  # of two-tool questions
MULTI_TEMPLATES = ["What does the law say about {topic}, and {tail}", "Look up the rules on {topic}, then {tail}",
                   "Can you explain {topic}, and {tail}"]

# ----------------------------------------------------------------------------- no-tool messages

GREETINGS = [
    "Hi", "Hello!", "Good morning.", "Hey there, are you online?", "Salam!", "Hello, who am I talking to?",
    "Good evening, I hope you're well.", "Hi, can you help me?", "Hello again!", "Hey!", "Good afternoon.",
    "Hi there, how are you today?", "Hello, is anyone there?", "Greetings!", "Hi, I have a question for you.",
    "Hello, nice to meet you.", "Good morning, I need some help.", "Hey, what can you do?", "Hi, my name is Maria.",
    "Hello, I am new here.", "As-salaam alaikum.", "Good evening!", "Hi, are you a bot?", "Hello, can we talk?",
    "Hey, good to see you again.", "Hi! Quick hello before my shift.", "Hello from Sharjah!", "Good morning, friend.",
    "Hi, hope your day is going well.", "Hello, can you hear me?", "Howdy!", "Hey, anyone home?",
    "Hello, what are you able to help with?", "Hi, I just found this chat.", "Good morning, how does this work?",
]
THANKS = [
    "Thank you so much!", "Thanks, that helps a lot.", "Great, thanks for explaining.", "Thank you, that was helpful.",
    "Thanks!", "Much appreciated.", "Cheers, that answers it.", "Thank you for your help today.",
    "Thanks, I understand now.", "Thank you, I will tell my sister.", "Perfect, thanks a lot.",
    "Thanks for the quick reply.",
    "Okay, thank you.", "Thank you very much for the gratuity figure.", "Thanks, now I know what to ask my boss.",
    "Appreciate it, have a nice day.", "Thank you, that was clear.", "Thanks again for the help with my leave.",
    "Great help, thank you.", "Thanks, I will check my contract.", "Thank u!", "Thanks, that is all for today.",
    "Thank you, you saved me a lot of time.", "Many thanks for the explanation.", "Thanks, that makes sense now.",
    "Thank you, I will share this with our HR team.", "Thanks, very useful.", "Thank you for being patient with me.",
    "Thanks for checking that article for me.", "Thank you, goodbye.", "That helps, thanks.",
    "Thank you, I appreciate it.", "Thanks, I feel better now.", "Thank you for the overtime numbers.",
]
OFF_TOPIC = [
    "What is the capital of Australia?", "Who painted the Mona Lisa?",
    "Can you recommend a good restaurant in Abu Dhabi?", "What will the weather be like in Dubai tomorrow?",
    "How do I make biryani?", "Who won the last football World Cup?",
    "Write me a poem about the sea.", "What is the best phone to buy this year?", "How tall is the Burj Khalifa?",
    "What is a good name for a cat?", "Tell me a joke.", "How do I fix a flat tyre?",
    "Which is the tallest mountain in the world?", "How far away is the moon?", "Can you book me a flight to London?",
    "How do I reset my Wi-Fi router?", "What is photosynthesis?", "Who is the best footballer ever?",
    "Recommend a good book to read.", "How can I lose weight quickly?", "Is it going to rain this weekend?",
    "What is the best way to learn Arabic?", "How do I cook rice without it sticking?", "What is the meaning of life?",
    "Which planet is the largest?", "Can you help me write a birthday message for my mother?",
    "What is the best beach in Fujairah?", "How do I take a screenshot on my phone?", "Who invented the telephone?",
    "What should I watch on TV tonight?", "How do black holes form?", "What is the fastest animal?",
    "Which team won the cricket match yesterday?", "How do plants grow?", "Sing me a song.",
    "What is the best perfume for men?", "How do I grow tomatoes on a balcony?", "Who wrote Romeo and Juliet?",
    "What is the boiling point of water on a mountain?", "Could you make up a bedtime story for my kids?",
    "Which is better, tea or coffee?", "What are the opening times of the Louvre Abu Dhabi?",
    "How do I clean a leather sofa?", "What is bitcoin?", "Plan a weekend trip to Oman for me.",
]

OFF_TOPIC_PREFIXES = ["Quick question: ", "Off topic, but ", "Random question: ", "Just curious, "]
VOICED_GREETINGS = {
    "hr": ["Hello, I work in HR and have a few questions.", "Hi, I'm the HR manager of a logistics firm.",
           "Good morning, HR team here.", "Hello, I handle payroll for our company."],
    "employer": ["Hi, I own a small business.", "Hello, I'm an employer in Abu Dhabi.", "Good morning, I run a cafe.",
                 "Hi, I manage a construction company."],
    "employee": ["Hi, I'm an employee here in Dubai.", "Hello, I just started a new job.", "Hi, I work in retail.",
                 "Good evening, I work at a hotel."],
    "domestic": ["Hello, I am a housemaid.", "Hi, I am a nanny.", "Hello, I work for a family as a cook.",
                 "Hi, I am a driver for a family."],
}
VOICED_THANKS = {
    "hr": ["Thanks, I'll update our policy.", "Thank you, that settles it for our HR team.",
           "Thanks, that's what I needed for payroll.", "Thank you, very precise."],
    "employer": ["Thanks, that saves me a costly mistake.", "Thank you, I'll pay it correctly.",
                 "Thanks, now I know my obligations.", "Thank you, that's clear for my business."],
    "employee": ["Thanks, I'll talk to my boss.", "Thank you, I feel more confident now.",
                 "Thanks, now I know my rights.", "Thank you, that's a relief."],
    "domestic": ["Thank you, madam.", "Thank you, this helps me a lot.", "Thanks, I will tell my family.",
                 "Thank you very much, friend."],
}


# ----------------------------------------------------------------------------- the writer

@dataclass
class _Candidate:
    text: str
    kind: str
    persona: Persona
    tools: list[str]
    arguments: dict[str, dict[str, Any]] | None
    cluster: int = -1
    source: tuple[str, ...] = ()


def _money(rng: random.Random) -> tuple[str, int]:
    value = rng.randrange(2500, 45001, 250)
    return f"AED {value:,}", value


def _years(rng: random.Random) -> float | int:
    return rng.choice([0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 5, 6, 6.5, 7, 8, 9, 10, 12, 15, 18, 20, 25, 30])


def _date(rng: random.Random) -> str:
    return f"{rng.randint(2018, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _fmt(x: float | int) -> str:
    return f"{x:,}" if isinstance(x, int) or float(x).is_integer() else str(x)


def calculation(tool: str, voice: str, rng: random.Random, template: str | None = None) -> tuple[str, dict[str, Any]]:
    """A domain calculation question in ``voice`` with sampled numbers, and the arguments it fixes."""
    voice = voice if voice in CALC[tool] else "employee"
    template = template or rng.choice(CALC[tool][voice])
    money, salary = _money(rng)
    if tool == "calculate_gratuity":
        years = _years(rng)
        return template.format(money=money, years=_fmt(years)), {"monthly_basic_salary": salary,
                                                                 "years_of_service": years}
    if tool == "annual_leave":
        months = rng.randint(3, 72)
        return template.format(months=months), {"months_of_service": months}
    if tool == "overtime_pay":
        hours = rng.choice([1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 24, 1.5, 2.5, 7.5])
        phrase, period = rng.choice(PERIODS)
        args: dict[str, Any] = {"monthly_basic_salary": salary, "overtime_hours": hours}
        if period:
            args["period"] = period
        return template.format(money=money, hours=_fmt(hours), period=phrase), args
    days = rng.choice([14, 20, 30, 30, 45, 60, 60, 90, 100, 120])
    served = rng.randint(0, min(days, 90) - 1)
    args = {"contract_notice_days": days}
    if "{money}" in template:
        args["monthly_wage"] = salary
    if "{served}" in template:
        args["days_already_served"] = served
    return template.format(days=days, money=money, served=served), args


def general(tool: str, rng: random.Random) -> tuple[str, dict[str, Any] | None]:
    template = rng.choice(GENERAL[tool])
    a, b, c = rng.randrange(100, 20000, 50), rng.randrange(10, 5000, 5), rng.randrange(10, 900)
    n, p = rng.choice([2, 3, 4, 5, 6, 7, 12, 30, 52]), rng.choice([5, 10, 12.5, 15, 18, 20, 25, 30, 60])
    if tool == "calculator":
        return template.format(a=f"{a:,}", b=f"{b:,}", c=c, n=n, p=p), None
    if tool == "convert_units":
        u1, u2 = rng.choice(UNIT_PAIRS)
        v = rng.choice([1, 2, 5, 10, 12, 20, 25, 37, 42, 50, 75, 100, 250, 3.5])
        return template.format(v=v, u1=u1, u2=u2), {"value": v, "from_unit": u1, "to_unit": u2}
    d1, d2 = sorted([_date(rng), _date(rng)])
    if tool == "date_diff":
        return template.format(d1=d1, d2=d2), {"start_date": d1, "end_date": d2}
    days = rng.choice([7, 14, 30, 45, 60, 90, 100, 180])
    sign = -1 if "before" in template else 1
    return template.format(d1=d1, n=days), {"date": d1, "days": sign * days}


def _routes_as_written(c: _Candidate, tool_names: set[str], defaults: dict[str, dict[str, Any]]) -> bool:
    plan = route(c.text, tool_names)
    if plan.tools != c.tools:
        return False
    calls = [{"name": call.name, "arguments": call.arguments} for call in plan.calls]
    return arguments_match(c.arguments or {}, calls, defaults)


def rule_questions(chunks: list[Chunk], clusters: dict[str, Any], personas: list[Persona], tools: Any,
                   cfg: RunConfig) -> tuple[list[Question], dict[str, int]]:
    """Candidate questions of every kind (over-generated) and counts of what was dropped and why.

    Each kind draws from its own random stream (``kind_rng``), so rewriting how one kind is written
    leaves the others, and the topics the split holds out, as they were.
    """
    names = set(tools.names())
    targets = {k: math.ceil(v * OVERGENERATE) for k, v in kind_targets(cfg.questions.n_questions,
                                                                       cfg.questions.mix).items()}
    cluster_of = {cid: int(cl["id"]) for cl in clusters["clusters"] for cid in cl["chunk_ids"]}
    affinity = persona_affinity(chunks, personas)
    cands: list[_Candidate] = []

    # lookups: search by section title, get_article by cited article
    rng = kind_rng(cfg.seed, "lookup")
    lookups: list[_Candidate] = []
    if "search_labour_law" in names:
        for chunk, weights in zip(chunks, affinity, strict=True):
            topic, is_q = topic_of(title_of(chunk))
            for _ in range(4):
                persona = rng.choices(personas, weights)[0]
                template = rng.choice(QUESTION_TITLE_TEMPLATES if is_q else SEARCH_TEMPLATES)
                text = _join(rng.choice(PREFIXES[role(persona)]), template.format(topic=topic))
                lookups.append(_Candidate(text, "lookup", persona, ["search_labour_law"], None,
                                          cluster_of.get(chunk.id, -1), (chunk.id,)))
    if "get_article" in names:
        for chunk, weights in zip(chunks, affinity, strict=True):
            for cite in sorted(extract_citations(chunk.section_path)):
                lid, _, art = cite.rpartition(" Art. ")
                persona = rng.choices(personas, weights)[0]
                law = format_citation(lid, art).split(",")[0]
                if lid in LAW_ALIASES and rng.random() < 0.3:
                    law = LAW_ALIASES[lid]
                template = rng.choice(ARTICLE_TEMPLATES[1:] if law.startswith("the ") else ARTICLE_TEMPLATES)
                text = _join(rng.choice(PREFIXES[role(persona)]), template.format(law=law, n=int(art)))
                law_arg = law.removeprefix("the ")
                lookups.append(_Candidate(text, "lookup", persona, ["get_article"],
                                          {"get_article": {"law": law_arg, "article": int(art)}},
                                          cluster_of.get(chunk.id, -1), (chunk.id,)))
    # two lookups in three are searches: most real questions name a topic, not an article number
    searches = [c for c in lookups if c.tools == ["search_labour_law"]]
    articles = [c for c in lookups if c.tools == ["get_article"]]
    rng.shuffle(searches)
    rng.shuffle(articles)
    n_articles = min(len(articles), targets["lookup"] // 3) if searches else len(articles)
    cands += articles[:n_articles] + searches[: targets["lookup"] - n_articles]

    # calculations: domain calculators for workers under the labour law, general tools for everyone
    rng = kind_rng(cfg.seed, "calculation")
    domain_tools = [t for t in CALC if t in names]
    general_tools = [t for t in GENERAL if t in names]
    for i in range(targets["calculation"]):
        persona = personas[i % len(personas)]
        voice = role(persona)
        use_domain = domain_tools and voice != "domestic" and rng.random() < 0.6
        if use_domain:
            tool = rng.choice(domain_tools)
            text, args = calculation(tool, voice, rng)
        elif general_tools:
            tool = rng.choice(general_tools)
            text, args = general(tool, rng)
            text = _join(rng.choice(PREFIXES[voice][:2] + [""]), text)
        else:
            continue
        cands.append(_Candidate(text, "calculation", persona, [tool], {tool: args} if args else None))

    # multi-step: the rule from the corpus, then the numbers from the calculator
    rng = kind_rng(cfg.seed, "multi_step")
    if "search_labour_law" in names:
        for i in range(targets["multi_step"] if domain_tools else 0):
            tool = domain_tools[i % len(domain_tools)]
            persona = rng.choice([p for p in personas if role(p) != "domestic"] or personas)
            others = [t for t in domain_tools if t != tool and t in MULTI]
            mixed = bool(others) and tool in MIXED_TAILS and rng.random() < MIXED_SHARE
            article, topics, _ = MULTI[rng.choice(others) if mixed else tool]
            tails = MIXED_TAILS[tool] if mixed else MULTI[tool][2]
            topic = rng.choice(topics)
            tail, args = calculation(tool, role(persona), rng, template=rng.choice(tails))
            text = rng.choice(MULTI_TEMPLATES).format(topic=topic, tail=tail)
            source = _source_for(chunks, article, topic)
            cluster = cluster_of.get(source[0], -1) if source else -1
            cands.append(_Candidate(text, "multi_step", persona, ["search_labour_law", tool], {tool: args},
                                    cluster, source))

    # no tool: a third greetings, a third thanks, a third questions to decline
    rng = kind_rng(cfg.seed, "no_tool")
    pools = [GREETINGS, THANKS, OFF_TOPIC]
    for i in range(targets["no_tool"]):
        pool = pools[i % 3]
        persona = personas[i % len(personas)]
        text = pool[(i // 3) % len(pool)]
        if i // 3 >= len(pool):  # a second round: the same kind of message in a persona's voice
            voiced = {0: VOICED_GREETINGS, 1: VOICED_THANKS}.get(i % 3)
            text = (rng.choice(voiced[role(persona)]) if voiced
                    else rng.choice(OFF_TOPIC_PREFIXES) + text[0].lower() + text[1:])
        cands.append(_Candidate(text, "no_tool", persona, [], None))

    counts: Counter[str] = Counter()
    out = []
    defaults = optional_defaults(tools.specs())
    for c in cands:
        if not _routes_as_written(c, names, defaults):
            counts[f"unroutable_{c.kind}"] += 1
            log.debug("unroutable %s question: %s", c.kind, c.text)
            continue
        out.append(Question(id=question_id(c.text), text=c.text, persona=c.persona.name, cluster=c.cluster,
                            source_chunk_ids=list(c.source), expect=Expect(tools=c.tools, arguments=c.arguments),
                            kind=c.kind))
    return out, dict(counts)


def _source_for(chunks: list[Chunk], article: str, topic: str) -> tuple[str, ...]:
    """The chunk a multi-step question's rule comes from: it cites the article and best matches the topic."""
    words = set(re.findall(r"[a-z]{4,}", topic.lower()))
    citing = [c for c in chunks if article in extract_citations(c.section_path)]
    if not citing:
        return ()
    best = max(citing, key=lambda c: len(words & set(re.findall(r"[a-z]{4,}", title_of(c).lower()))))
    return (best.id,)
