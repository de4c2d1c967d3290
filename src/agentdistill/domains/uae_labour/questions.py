"""Offline question writer: templates over the corpus structure and sampled numbers, no LLM needed.

Every question is written in one **phrasing family** (``Question.family``, "<kind>.<style>"): a set
of templates with its own wording and register (plain, chatty, terse, a story with figures that do
not matter, synonyms, article references in the forms people use). Splits hold out whole families,
so a held-out score measures phrasing the student never saw. The surface forms of quantities ("12k",
"12000 dirhams", "four and a half years", "18 months" for 1.5 years, typos) are sampled inside every
family (phrasing.py), so the student learns the quantity behind the form in any family.

Kinds (their shares come from QuestionsConfig.mix):

- lookup: from each chunk's section title (a search), from the articles a chunk cites (get_article),
  and topics of the domain the documents do not cover (a search whose right answer says so).
- calculation: scenarios for the domain calculators and the general tools.
- multi_step: the rule from the documents, then a calculation; half ask about another topic's figure.
- no_tool: greetings, thanks and requests outside the domain (small talk, errands), each family holding
  all three.

The writer knows which tools and arguments each question needs (``expect``) and what a right answer
must contain (``answer_facts``): a calculation's figure is computed by the real tool from the expected
arguments; a lookup's fact is the sentence of its source passage that best answers it; a reply
without a tool records its kind. The offline teacher follows ``expect`` (teacher.py), so no regex has
to recover the tools from the wording. Candidates are over-generated; questions.py dedups and samples.
"""

from __future__ import annotations

import logging
import math
import random
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from agentdistill.config import RunConfig
from agentdistill.corpus.cluster import cluster_of_chunk
from agentdistill.domains.uae_labour.calculators import service_arguments
from agentdistill.domains.uae_labour.citations import extract_citations
from agentdistill.domains.uae_labour.laws import format_citation, resolve_law
from agentdistill.domains.uae_labour.lookup import NOT_COVERED_OBSERVATION
from agentdistill.domains.uae_labour.phrasing import casual, duration_forms, hour_forms, money_forms, number_words
from agentdistill.domains.uae_labour.teacher import (
    NOT_COVERED,
    answer_facts_of_calculation,
    best_sentences,
    passages,
    plan_from_expect,
    search_query,
)
from agentdistill.records import Chunk, Expect, Question
from agentdistill.synth.questions import Persona, kind_rng, kind_targets, question_id
from agentdistill.tools.documents import shown_text

log = logging.getLogger(__name__)
OVERGENERATE = 1.6  # candidates per needed question: dedup drops some
# Questions written from a passage are held out by topic and by phrasing family, each on its own; those
# whose topic and family fall on different sides leave the split (about half), so more are written.
GROUNDED_OVERGENERATE = 3.0
LOOKUPS_PER_CHUNK = 10

CURRENCY_CODES = ["AED", "Dhs"]
CURRENCY_WORDS = ["dirhams", "AED"]

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
# Sentences of a story that carry figures the question does not need (an age, a year, a head count):
# the student must pick the figures the tool takes, not the first number it sees.
STORY_OPENERS = [
    "I'm {age} and joined my company back in {year}.", "My company has about {staff} employees.",
    "I moved to Dubai in {year} and I'm {age} now.", "We are a team of {staff} at a hotel in Abu Dhabi.",
    "My brother is {age} and works for a firm of {staff} people.", "I started in {year} at a shop in Sharjah.",
    "I'm {age}, married with 2 kids, working in Ajman.", "Our office of {staff} staff opened in {year}.",
]


def _join(prefix: str, sentence: str) -> str:
    """Prefix + sentence, lower-casing the sentence's first word after a comma ("As an employer, what ...")."""
    first = sentence.split(" ", 1)[0]
    if prefix.endswith((", ", ": ")) and first != "I" and not _ACRONYM.match(first):
        return prefix + sentence[0].lower() + sentence[1:]
    return prefix + sentence


# The same kind of irrelevant figure inside or after the question instead of before it, so that a family
# holding stories out still leaves the student questions whose figures it must choose among.
ASIDES = [
    "(I'm {age}, if that matters.)", "For context, we have {staff} people on the payroll.",
    "My visa was renewed in {year}, by the way.", "I'm paid on the {day}th of each month.",
    "The company moved to a new office in {year}.", "I live {km} km from work, not that it matters.",
]


# Figures a question does not need, put at any sentence boundary of the other families' calculations: with
# stories only ever opening a question, a student learns to skip the first sentence's figures rather than
# to bind each figure by the words around it ("Basic AED 31,250, 4 hrs at night. (I'm 43.)" -> 43 hours).
# Sentences of their own, so that a held-out story or aside family still holds sentences it never saw; some
# carry the units the tools take (years, days, hours), the near misses a person's message holds.
BYSTANDERS = [
    "My son turns {age} next month.", "There are {staff} of us in the branch.", "I commute {km} km each way.",
    "The company was founded {n} years ago.", "Our office is on floor {floor}.", "I have {kids} kids at school here.",
    "My team works {shift} hours a shift.", "Ramadan starts in {n} days.",
]
BYSTANDER_SHARE = 0.35
FIGURE_FAMILIES = ("story", "aside")  # families whose figures that do not matter are their own wording
_SENTENCE_GAP = re.compile(r"(?<=[.?!])\s+")


def with_bystander(text: str) -> str:
    """``text`` with, in ``BYSTANDER_SHARE`` of cases, a sentence whose figure it does not need at one of its
    sentence boundaries (start, between sentences, end). Drawn from the text itself, not the writer's
    random stream, so that every other question stays as it was."""
    rng = random.Random(zlib.crc32(text.encode("utf-8")))
    if rng.random() >= BYSTANDER_SHARE:
        return text
    sentence = rng.choice(BYSTANDERS).format(age=rng.randint(3, 70), staff=rng.choice([5, 9, 18, 45, 90, 200]),
                                             km=rng.choice([7, 15, 30, 55]), n=rng.choice([3, 6, 14, 20, 35]),
                                             floor=rng.randint(2, 40), kids=rng.randint(1, 4),
                                             shift=rng.choice([6, 8, 9, 10, 12]))
    parts = _SENTENCE_GAP.split(text.strip())
    at = rng.randint(0, len(parts))
    return " ".join([*parts[:at], sentence, *parts[at:]])


def _story(rng: random.Random) -> str:
    return rng.choice(STORY_OPENERS).format(age=rng.randint(22, 61), year=rng.randint(2008, 2024),
                                            staff=rng.choice([8, 12, 35, 60, 120, 250, 400]))


def _aside(rng: random.Random) -> str:
    return rng.choice(ASIDES).format(age=rng.randint(22, 61), year=rng.randint(2008, 2024),
                                     staff=rng.choice([6, 15, 40, 75, 150, 300]), day=rng.choice([5, 10, 25, 28]),
                                     km=rng.choice([3, 12, 25, 40]))


_ACRONYM = re.compile(r"^[A-Z]{2,}\b")

# ----------------------------------------------------------------------------- lookup templates

# family -> templates over {topic}; the title-question templates are for titles that are questions
SEARCH_FAMILIES = {
    "plain": ["What does the law say about {topic}?", "What are the rules on {topic}?",
              "Can you explain the rules on {topic}?", "Tell me about {topic}.", "I need information on {topic}.",
              "What should I know about {topic}?", "How does the law treat {topic}?"],
    "casual": ["whats the rule on {topic}?", "{topic} - how does it work here?", "hey, can u tell me about {topic}",
               "so what's the deal with {topic}?", "quick q: {topic}, what does the law say", "{topic}?? explain pls"],
    "first_person": ["Do I have any rights when it comes to {topic}?", "What are my rights regarding {topic}?",
                     "Does the law protect me on {topic}?", "What applies to me about {topic}?",
                     "My employer and I disagree about {topic}. What does the law actually say?"],
    "scenario": ["{story} What does the law say about {topic}?", "{story} I'd like to understand {topic}.",
                 "{story} Now I'm worried about {topic}. What are the rules?",
                 "{story} Can you explain {topic} to me?"],
    "terse": ["{topic} rules", "{topic}?", "law on {topic}", "rules for {topic} in the UAE", "{topic} - explain"],
    "article_mention": ["I read that {law}, Art. {n} deals with this. What are the rules on {topic}?",
                        "Article {n} of {law_alias} is about {topic}, right? What are the rules?",
                        "Someone quoted Art. {n} at me. What does the law say about {topic}?"],
}
# A rule asked as a quantity ("how many days ..."), for passages that state one in that unit: people ask the
# figure a rule sets far more often than "the rules on" it, and a question that says "how many days" must not
# read as a calculator's question because it asks a number. Each family words it its own way.
QUANTITY_TEMPLATES = {
    "plain": ["How many {unit} does the law set for {topic}?", "What is the number of {unit} for {topic}?",
              "How many {unit} apply to {topic}?"],
    "casual": ["how many {unit} for {topic}?", "{topic} - how many {unit} is it?",
               "how many {unit} r we talking, {topic}"],
    "first_person": ["How many {unit} do I get when it comes to {topic}?",
                     "My contract says {n} {unit} for {topic}. Is that allowed?",
                     "On {topic}, mine says {n} {unit} - is that legal?"],
    "scenario": ["{story} How many {unit} does the law give for {topic}?",
                 "{story} They told me {n} {unit} for {topic}. What does the law say?"],
    "terse": ["{topic}: how many {unit}?", "{topic} - number of {unit}", "{unit} for {topic}?"],
}
# the units a passage states a figure in, as a quantity question names them
_STATED_UNIT = re.compile(r"\b(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|fifteen|thirty|sixty|ninety)"
                          r"[ -](days?|weeks?|months?|years?|hours?)\b", re.I)
QUANTITY_SHARE = 0.3
# A figure about the asker that a lookup does not need, shaped like a calculator's argument (a service
# length, a salary): the question asks a rule, so the search is still the tool, whatever number it holds.
PERSONAL_FIGURES = ["I've been with my employer for {dur}.", "My basic salary is {money}.",
                    "I have worked there {dur} now.", "(I earn {money} a month.)", "I'm {dur} into the job."]
PERSONAL_FIGURE_SHARE = 0.25
QUESTION_TITLE_TEMPLATES = {"plain": ["Can you tell me {topic}?", "Can you explain {topic}?"],
                            "casual": ["{topic}?", "hey, {topic}?"],
                            "first_person": ["I want to understand {topic}."],
                            "scenario": ["{story} {Topic}?"], "terse": ["{topic}?"]}
# get_article: the forms people write an article reference in, each family its own forms
ARTICLE_FAMILIES = {
    "article_formal": ["What does {law}, Art. {n} say?", "Show me Article {n} of {law}.",
                       "I'd like to read Article {n} of {law}.", "What does Article {n} of {law_no} provide?",
                       "{law_no}, article {n}: what does it say?"],
    "article_short": ["Art. {n} {law_short}?", "show me art {n} of {law_alias}", "article {n} {law_short} text pls",
                      "what's in Article {n} of {law_alias}?", "get me Art. {n}, {law_short}"],
    "article_casual": ["hey can u pull up article {n} of {law_alias}",
                       "whats in art {n} of {law_alias}?? need the wording",
                       "pls send me article {n} from {law_short}", "i need the text of article {n}, {law_alias}"],
    "article_pasted": ["{law_no} - Article ({n}). What does it say?", "Ref: {law}, Art. {n}. Can I see it?",
                       "My contract cites {law_short} Art. {n}. What is in that article?",
                       "Quote Article {n} ({law_short}) please."],
}
LAW_ALIASES = {"FDL 33/2021": "the labour law", "FDL 9/2022": "the domestic workers law",
               "CR 1/2022": "the executive regulation"}
# "Federal Decree-Law No. 33 of 2021": the long form laws are cited in
_LAW_NO = re.compile(r"^(.*?)\s+(\d+)/(\d{4})$")

# Topics of work and employment that the example documents do not cover: a search finds nothing relevant
# and the right answer says so. Each is kept only if the search tool really finds no passage for it. A
# request outside work altogether (a car, a flat, a pet) is declined without a search: it is not a question
# the documents could answer (OFF_DOMAIN_TASKS).
UNCOVERED_TOPICS = [
    "income tax on salaries", "school fee allowances", "company car allowances", "stock options for employees",
    "bonus and profit-sharing schemes", "remote work from another country", "the retirement age for expatriates",
    "trade union membership", "pension contributions for expatriates", "relocation allowances",
    "employee share purchase plans", "performance reviews and appraisals", "tuition support for staff",
    "a company phone allowance",
]
# Practical errands outside work that people ask an assistant about: requests to decline, in every family.
OFF_DOMAIN_TASKS = [
    "apply for a golden visa as an investor", "open a company in a free zone", "convert my driving licence",
    "sponsor my parents' residence visa", "file a medical malpractice claim", "rent an apartment",
    "buy property in Dubai", "make a car insurance claim", "apply to a university", "pay a traffic fine",
    "bring my pet into the country", "register my business for VAT", "get a fishing permit",
    "book a driving test", "transfer money abroad cheaply", "get my degree certificate attested",
]
OFF_DOMAIN_TEMPLATES = {
    "plain": ["How do I {task}?", "What are the steps to {task}?"],
    "voiced": ["Off topic, but how do I {task}?", "Quick question: how can I {task}?"],
    "casual": ["how do i {task}", "how to {task}?? pls"],
    "polite": ["Could you kindly explain how to {task}?", "Would you tell me how I can {task}?"],
    "chatty": ["My cousin is visiting next month and asked me something. How does one {task}?",
               "Busy week here. Anyway, what do I need to {task}?"],
    "mixed": ["how to {task}? 🙏", "{task} - help pls 😅"],
}
OFF_DOMAIN_SHARE = 0.35  # of the declines
UNCOVERED_TEMPLATES = {
    "plain": ["What does the law say about {topic}?", "What are the rules on {topic}?", "Tell me about {topic}."],
    "casual": ["whats the rule on {topic}?", "hey, {topic} - how does it work?"],
    "first_person": ["What are my rights regarding {topic}?", "What applies to me about {topic}?"],
    "terse": ["{topic} rules", "law on {topic}"],
}


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

# family -> tool -> templates. {money}: a monthly sum in one of its written forms; {dur}: a duration
# (years for the gratuity, months for annual leave, in any unit); {hours}; {period}: a phrase naming
# night or rest-day work, or nothing; {days}: the contract's notice; {served}: days of it worked.
CALC_FAMILIES: dict[str, dict[str, list[str]]] = {
    "plain": {
        "calculate_gratuity": [
            "I earn a basic salary of {money} and have worked here for {dur}. What end-of-service gratuity am I owed?",
            "What is the end-of-service gratuity for {dur} of service at a basic wage of {money}?",
            "One of our employees is leaving after {dur} with a basic salary of {money}. What gratuity do we owe?",
            "Please calculate the gratuity for a staff member with {dur} of service and {money} basic monthly salary."],
        "annual_leave": ["How much annual leave do I get after {dur} of service?",
                         "How many days of annual leave has an employee earned after {dur} of service?",
                         "My employee has worked {dur}. How much paid annual leave must I give?"],
        "overtime_pay": ["My basic salary is {money}. What is my overtime pay for {hours}{period}?",
                         "Calculate the overtime pay for {hours}{period} for an employee on a basic salary of {money}.",
                         "How much overtime pay do I owe for {hours}{period} at a basic salary of {money}?"],
        "notice_period": ["My contract says {days} days notice. What notice period applies to me?",
                          "An employee on {money} a month has a contract notice period of {days} days and worked "
                          "{served} days of it. What is the notice pay owed?",
                          "My contract says {days} days notice and my monthly wage is {money}. If I leave without "
                          "working it, what do I owe?"],
    },
    "chatty": {
        "calculate_gratuity": [
            "hi, I'm leaving my job after {dur}. my basic is {money}, how much gratuity will I get?",
            "So my basic salary is {money} and I've been with the company {dur}. What would my gratuity come to?",
            "Resigning after {dur} on a basic of {money}. What's my gratuity going to be?",
            "How much will my end-of-service gratuity be? I've worked {dur} and my basic pay is {money}."],
        "annual_leave": ["I've been at my job {dur} now. How many days of annual leave do I get?",
                         "hey, how much annual leave am I owed after working {dur}?",
                         "been working here {dur}, how many annual leave days have I got?"],
        "overtime_pay": ["I did {hours} of overtime{period} and my basic is {money}. How much extra should I be paid?",
                         "my boss made me work {hours} overtime{period}, basic salary {money}. what's that worth?",
                         "So I stayed {hours} extra{period} this week. Basic pay {money}. What overtime do I get?"],
        "notice_period": ["my contract says {days} days notice. is that allowed? what notice applies?",
                          "I want to quit. My contract has {days} days notice and I earn {money} a month. If I "
                          "don't work the notice, what do I owe?",
                          "I've served {served} days of my {days}-day notice and earn {money}. What's the notice "
                          "pay for the rest?"],
    },
    "terse": {
        "calculate_gratuity": ["gratuity for {money} basic, {dur}?", "end of service gratuity calc: basic {money}, "
                               "service {dur}", "{dur} service, {money} basic salary - gratuity?"],
        "annual_leave": ["annual leave after {dur}?", "annual leave days for {dur} service",
                         "{dur} worked - annual leave entitlement?"],
        "overtime_pay": ["overtime pay {hours}{period}, basic {money}?", "overtime: {hours}{period}, salary {money}",
                         "{hours} overtime{period} on {money} basic = ?"],
        "notice_period": ["notice period {days} days in contract - valid?", "notice pay: {days} days notice, {money} "
                          "salary, {served} days served", "{days} day notice, wage {money}, quit now - notice pay?"],
    },
    "story": {
        "calculate_gratuity": ["{story} My basic salary is {money} and I'll have done {dur} by the end of this "
                               "month. How much gratuity should I get?",
                               "{story} One of our drivers is leaving after {dur}; his basic is {money}. What "
                               "end-of-service gratuity is he due?"],
        "annual_leave": ["{story} I have now worked there {dur}. How many days of annual leave am I entitled to?",
                         "{story} A new hire has completed {dur} with us. How much annual leave has she earned?"],
        "overtime_pay": ["{story} Last week I worked {hours} of overtime{period}. My basic salary is {money}. What "
                         "overtime am I owed?",
                         "{story} A cook did {hours} extra{period}; her basic is {money}. What overtime pay is due?"],
        "notice_period": ["{story} My contract says {days} days notice. What notice period applies?",
                          "{story} I earn {money} and my contract says {days} days notice; I worked {served} days of "
                          "it. What notice pay is owed for the rest?"],
    },
    "aside": {
        "calculate_gratuity": ["My basic is {money} and I have {dur} of service. {aside} What gratuity is due?",
                               "What gratuity do I get for {dur} on {money} basic? {aside}",
                               "Leaving soon after {dur}, basic pay {money}. {aside} How much end-of-service pay?"],
        "annual_leave": ["How much annual leave after {dur}? {aside}",
                         "{aside} I've been working {dur}. How many leave days do I get?"],
        "overtime_pay": ["What is the overtime for {hours}{period}? My basic is {money}. {aside}",
                         "Basic {money}, {hours} of overtime{period}. {aside} How much is owed?"],
        "notice_period": ["My contract has {days} days notice. {aside} What notice period is legal?",
                          "I earn {money}, my notice is {days} days and I've worked {served} days of it. {aside} "
                          "What notice pay is left?"],
    },
    "synonyms": {
        "calculate_gratuity": ["What's the EOSB for {dur} of service on a {money} basic?",
                               "How much end of service benefit do I get after {dur} if my basic is {money}?",
                               "Calculate end of service benefits: {dur} worked, basic salary {money}.",
                               "What severance gratuity is due after {dur} on a basic of {money}?"],
        "annual_leave": ["How much vacation do I get after {dur}?", "How many holiday days after {dur} of work?",
                         "paid time off after {dur} - how many days of annual leave?"],
        "overtime_pay": ["How much do I get for {hours} of extra work{period} on a {money} basic?",
                         "what's the OT pay for {hours}{period} if my basic is {money}",
                         "Extra hours pay: {hours}{period}, basic wage {money}?"],
        "notice_period": ["What's the pay in lieu of notice on a {days}-day notice with {money} monthly pay?",
                          "resignation notice in my contract is {days} days. what notice period does the law allow?",
                          "Notice pay if I leave today: contract notice {days} days, salary {money}, {served} days "
                          "already worked?"],
    },
}
# (phrase, period argument): the ways people say night or rest-day work; "" is normal hours
PERIODS = [("", None), ("", None), ("", None), (" at night", "night"), (" between 10 pm and 4 am", "night"),
           (" on the night shift", "night"), (" on my weekly rest day", "rest_day"), (" on my day off", "rest_day"),
           (" on my rest day", "rest_day")]
# the general tools: a plain family and a casual one (each tool in both, so either can be held out)
GENERAL_FAMILIES = {
    "general_plain": {
        "calculator": ["What is {a} * {b}?", "Calculate {a} + {b} + {c}.", "What is {p}% of {a}?",
                       "How much is {p}% of AED {a}?", "Work out ({a} + {b}) / {n}.", "What is {a} divided by {n}?",
                       "Compute {a} - {b}.", "What is {a} times {n}?"],
        "convert_units": ["Convert {v} {u1} to {u2}.", "How many {u2} are in {v} {u1}?",
                          "Please convert {v} {u1} into {u2}."],
        "date_diff": ["How many days are there between {d1} and {d2}?", "I started on {d1} and my contract ended on "
                      "{d2}. How long is that?", "What is the time between {d1} and {d2}?"],
        "add_days": ["What date is {n} days after {d1}?", "What date is {n} days before {d1}?",
                     "If I start on {d1}, what date is {n} days after that?"],
    },
    "general_casual": {
        "calculator": ["whats {a} x {n}", "{p}% of {a}?", "can u add {a} and {b}", "{a} minus {b} = ?",
                       "split {a} between {n} people, how much each?", "quick maths: {a} / {n}"],
        "convert_units": ["{v} {u1} in {u2}?", "how much is {v} {u1} in {u2}", "convert {v}{u1} to {u2} pls"],
        "date_diff": ["days from {d1} to {d2}?", "how long from {d1} until {d2}", "{d1} to {d2} - how many days"],
        "add_days": ["{n} days after {d1} is which date?", "date {n} days before {d1}?",
                     "if my notice starts {d1}, whats the date {n} days later"],
    },
}
UNIT_PAIRS = [("km", "miles"), ("miles", "km"), ("kg", "pounds"), ("pounds", "kg"), ("litres", "gallons"),
              ("celsius", "fahrenheit"), ("fahrenheit", "celsius"), ("feet", "metres"), ("cm", "inches"),
              ("hours", "minutes"), ("metres", "feet")]
# tool -> (the article it implements, search topics for two-tool questions)
MULTI = {
    "calculate_gratuity": ("FDL 33/2021 Art. 51", ["end-of-service gratuity", "the gratuity formula",
                                                   "gratuity for foreign workers"]),
    "annual_leave": ("FDL 33/2021 Art. 29", ["annual leave entitlement", "paid annual leave", "annual leave"]),
    "overtime_pay": ("FDL 33/2021 Art. 19", ["overtime pay rates", "overtime pay", "overtime limits and pay"]),
    "notice_period": ("FDL 33/2021 Art. 43", ["notice periods", "the notice period and pay in lieu",
                                              "notice when leaving a job"]),
}
# The calculation half of a two-tool question names what it asks for, so that after a search on one
# topic the second tool follows the figures asked about, not the topic searched.
MULTI_TAILS = {
    "calculate_gratuity": ["how much gratuity is due after {dur} on a basic salary of {money}?",
                           "how much end-of-service gratuity is owed for {dur} at {money} basic?"],
    "annual_leave": ["how many days of annual leave do I get after {dur}?",
                     "how much annual leave is due after {dur} of service?"],
    "overtime_pay": ["what is the overtime pay for {hours}{period} on a basic salary of {money}?",
                     "how much overtime pay is due for {hours}{period} at a basic wage of {money}?"],
    "notice_period": ["what notice pay applies if my contract says {days} days notice and I earn {money}?",
                      "what is the notice pay if the contract says {days} days notice, the wage is {money} and "
                      "{served} days were served?"],
}
MULTI_FAMILIES = {
    "plain": ["What does the law say about {topic}, and {tail}", "Look up the rules on {topic}, then {tail}",
              "Can you explain {topic}, and {tail}"],
    "chatty": ["hey, how does {topic} work here? and {tail}", "I'm confused about {topic}. Can you explain it, "
               "and {tail}", "first tell me the rules on {topic}, then {tail}"],
    "story": ["{story} What are the rules on {topic}? And {tail}", "{story} Please explain {topic} and tell me "
              "{tail}"],
    "terse": ["{topic}: rules? also {tail}", "rules on {topic} + {tail}", "{topic} - what's the law. and {tail}"],
}

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


CASUAL_NO_TOOL = {
    "greeting": ["hiii", "yo", "hey there", "helo?", "hi hi", "morning!", "hey bot", "hello hello", "hey u there",
                 "salam alaikum bro", "gm", "hii, anyone?"],
    "thanks": ["thx", "ty!!", "ok cool thanks", "thanks a ton", "tnx", "ok thank u", "great thx", "thanks bro",
               "cheers mate", "ok got it thanks", "thank youuu", "nice one, thanks"],
    "decline": ["whats the weather like tmrw", "tell me a joke lol", "best shawarma in dubai?",
                "who won the match last nite", "recommend a movie pls", "how do i fix my wifi",
                "can u write my essay", "whats 2 + 2 in binary lol", "top 5 malls in abu dhabi?",
                "how to get more followers on instagram", "is it gonna rain", "whats the best phone rn"],
}
POLITE_NO_TOOL = {
    "greeting": ["Good morning, I hope you are doing well today.", "Hello, I hope I'm not disturbing you.",
                 "Good evening. I may have a question for you shortly.", "Hello there, it's nice to be able to chat.",
                 "Greetings, and thank you for being available.", "Good afternoon, I hope your day is going well.",
                 "Good morning to you, I trust all is well.", "Hello, I hope you are having a pleasant day.",
                 "Good evening, it is a pleasure to reach you.", "Hello, I'd be grateful for a moment of your time.",
                 "Good day to you.", "Hello and good morning."],
    "thanks": ["Thank you ever so much for taking the time to explain.", "I really appreciate your help, thank you.",
               "That was very kind of you, many thanks.", "Thank you for your patience and the clear explanation.",
               "I am grateful for your help, thank you.", "Thank you kindly, that answers everything.",
               "Many thanks, you have been most helpful.", "Thank you so much, I really do appreciate it.",
               "I'm very grateful for the explanation, thank you.", "Thank you, that was exactly what I needed.",
               "Thank you for your time and your help.", "Much obliged, thank you."],
    "decline": ["Could you kindly recommend a good dentist in Al Ain?",
                "Would you be able to help me plan my holiday in Thailand?",
                "I was wondering if you could translate this letter into French for me.",
                "Could you please tell me how to invest in gold?", "Would you mind suggesting a recipe for dinner?",
                "May I ask which football team you support?", "Would you kindly help me choose a gift for my wife?",
                "Could you please explain how to apply for a credit card?", "I wonder if you could suggest a good "
                "gym nearby?", "Might you know the prayer times in Dubai today?", "Could you help me write a cover "
                "letter for a bank job?", "Would you recommend a good hotel in Ras Al Khaimah?"],
}

# several sentences around the greeting, the thanks or the request, with small talk the reply ignores
CHATTY_NO_TOOL = {
    "greeting": ["Hi! Long day at work, just wanted to say hello before I ask anything.",
                 "Hello, my friend told me about this chat. Nice to meet you!",
                 "Hey, it's me again. Hope the week is treating you well.",
                 "Good morning! Coffee in hand, ready for a busy day. Hello!",
                 "Hi there. First time using this, so just saying hi.",
                 "Hello! I'm on my lunch break and thought I'd drop in.",
                 "Hey, hope you're doing ok. Just checking in."],
    "thanks": ["That sorted out the argument with my manager. Really appreciate it!",
               "Ok, that makes sense now. I'll pass it on to my colleague. Thanks a lot.",
               "Brilliant, I was worried about that for weeks. Thank you!",
               "Right, got it. You've been a big help today, thanks.",
               "Perfect. That's everything I needed, thank you and have a good evening.",
               "Great, my wife will be relieved. Thanks so much.",
               "Ok noted. Thanks for walking me through it."],
    "decline": ["My sink has been leaking since Monday. Do you know a good plumber?",
                "I'm bored at home this weekend. Any good series to watch?",
                "My son has a science test tomorrow. Can you explain how volcanoes work?",
                "We're moving flats next month. Which moving company is the cheapest?",
                "My phone keeps freezing, it's really annoying. How do I fix it?",
                "I want to surprise my mum. What cake should I bake for her birthday?",
                "It's so hot today. What's the temperature going to be tomorrow?"],
}
# words from other languages, emoji and one-word messages, as people type in a chat window
MIXED_NO_TOOL = {
    "greeting": ["marhaba", "ahlan!", "salam 👋", "hola", "bonjour", "namaste", "hi 👋", "kaifa haluk?",
                 "assalamu alaikum", "hello 🙂"],
    "thanks": ["shukran", "shukran jazeelan!", "merci", "gracias", "dhanyavaad", "thanks 🙏", "👍 thank you",
               "jazakallah khair", "thank you ❤️", "danke"],
    "decline": ["taxi book karo pls", "order me a pizza 🍕", "play some music 🎵", "translate 'hello' to Hindi",
                "what's the cricket score? 🏏", "send a birthday wish to my friend 🎂", "recommend a perfume 🌸",
                "cuánto cuesta un vuelo a Madrid?", "quelle heure est-il à Paris ?", "find me a gym nearby 💪"],
}


def _plain_pool(reply: str, persona: Persona) -> list[str]:
    return {"greeting": GREETINGS, "thanks": THANKS, "decline": OFF_TOPIC}[reply]


def _voiced_pool(reply: str, persona: Persona) -> list[str]:
    if reply == "decline":
        return [p + q[0].lower() + q[1:] for p in OFF_TOPIC_PREFIXES for q in OFF_TOPIC[:12]]
    return {"greeting": VOICED_GREETINGS, "thanks": VOICED_THANKS}[reply][role(persona)]


# family -> (kind of reply, persona) -> the messages of that family; every family holds all three
# kinds, so holding a family out never leaves a kind of reply untrained
NO_TOOL_FAMILIES = {
    "plain": _plain_pool,
    "voiced": _voiced_pool,
    "casual": lambda reply, persona: CASUAL_NO_TOOL[reply],
    "polite": lambda reply, persona: POLITE_NO_TOOL[reply],
    "chatty": lambda reply, persona: CHATTY_NO_TOOL[reply],
    "mixed": lambda reply, persona: MIXED_NO_TOOL[reply],
}

# Words people use for the documents' terms: a topic is sometimes asked in them, in every family.
TOPIC_SYNONYMS = [("annual leave", "vacation"), ("end-of-service gratuity", "end of service benefits"),
                  ("gratuity", "EOSB"), ("weekly rest day", "day off"), ("rest day", "day off"),
                  ("dismissal", "being fired"), ("termination", "ending the contract"), ("resignation", "quitting"),
                  ("overtime", "extra hours"), ("public holidays", "bank holidays"), ("wages", "salary"),
                  ("remuneration", "pay"), ("domestic worker", "housemaid")]
SYNONYM_SHARE = 0.35

# ----------------------------------------------------------------------------- the writer


@dataclass
class _Candidate:
    text: str
    kind: str
    family: str
    persona: Persona
    tools: list[str]
    arguments: dict[str, dict[str, Any]] | None
    cluster: int = -1
    source: tuple[str, ...] = ()
    facts: list[str] = field(default_factory=list)
    hints: dict[str, dict[str, Any]] | None = None


def _search_hint(topic: str) -> dict[str, dict[str, Any]]:
    """The search the offline teacher makes for a topic: its plain words, before synonyms and typos."""
    return {"search_labour_law": {"query": search_query(topic)}}


def _money(rng: random.Random) -> tuple[str, int]:
    value = rng.randrange(2500, 45001, 250)
    return rng.choice(money_forms(value, CURRENCY_CODES, CURRENCY_WORDS)), value


def _years(rng: random.Random) -> float | int:
    return rng.choice([0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 6.5, 7, 8, 9, 10, 11, 12, 15, 18, 20, 25])


def _date(rng: random.Random) -> str:
    return f"{rng.randint(2018, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _days(n: int, rng: random.Random) -> str:
    words = number_words(n)
    return words if words and rng.random() < 0.2 else str(n)


def calculation(tool: str, template: str, rng: random.Random) -> tuple[str, dict[str, Any]]:
    """A domain calculation question from ``template`` with sampled quantities, and the arguments it fixes."""
    money, salary = _money(rng)
    story, aside = _story(rng), _aside(rng)
    if tool in ("calculate_gratuity", "annual_leave"):
        # the service in the units the question states it, as the calculators take it
        value, unit = (_years(rng), "years") if tool == "calculate_gratuity" else (rng.randint(3, 72), "months")
        dur, parts = rng.choice(duration_forms(value, unit))
        args = {"monthly_basic_salary": salary} if tool == "calculate_gratuity" else {}
        args |= service_arguments(parts.get("years"), parts.get("months"))
        return template.format(money=money, dur=dur, story=story, aside=aside), args
    if tool == "overtime_pay":
        hours = rng.choice([1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 24, 1.5, 2.5, 7.5])
        phrase, period = rng.choice(PERIODS)
        args: dict[str, Any] = {"monthly_basic_salary": salary, "overtime_hours": hours}
        if period:
            args["period"] = period
        return template.format(money=money, hours=rng.choice(hour_forms(hours)), period=phrase, story=story,
                               aside=aside), args
    days = rng.choice([14, 20, 30, 30, 45, 60, 60, 90, 100, 120])
    served = rng.randint(0, min(days, 90) - 1)
    args = {"contract_notice_days": days}
    if "{money}" in template:
        args["monthly_wage"] = salary
    if "{served}" in template:
        args["days_already_served"] = served
    return template.format(days=_days(days, rng), money=money, served=served, story=story, aside=aside), args


def general(tool: str, template: str, rng: random.Random) -> tuple[str, dict[str, Any] | None]:
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


def _synonyms(topic: str, rng: random.Random) -> str:
    if rng.random() >= SYNONYM_SHARE:
        return topic
    for word, other in TOPIC_SYNONYMS:
        if word in topic.lower():
            return re.sub(re.escape(word), other, topic, count=1, flags=re.I)
    return topic


def _voice(text: str, family: str, persona: Persona, rng: random.Random) -> str:
    """A plain question gets the persona's prefix; casual and terse ones are typed casually."""
    if family == "plain":
        return _join(rng.choice(PREFIXES[role(persona)]), text)
    if family in ("casual", "terse", "chatty", "general_casual"):  # typed quickly, as people type
        return casual(text, rng, typos=family != "general_casual")
    return text


def _law_forms(lid: str, art: str) -> dict[str, str]:
    """How a law is written in a question: its citation name, the long "No. N of YYYY" form, its short id,
    and a common name where it has one ("the labour law")."""
    law = format_citation(lid, art).split(",")[0]
    m = _LAW_NO.match(law)
    law_no = f"{m.group(1)} No. {int(m.group(2))} of {m.group(3)}" if m else law
    return {"law": law, "law_no": law_no, "law_short": lid, "law_alias": LAW_ALIASES.get(lid, law)}


def _law_as_written(template: str, forms: dict[str, str]) -> str:
    for slot in ("law_no", "law_short", "law_alias", "law"):
        if "{" + slot + "}" in template:
            return forms[slot].removeprefix("the ")
    return forms["law"]


def _plural(unit: str) -> str:
    return unit if unit.endswith("s") else unit + "s"


def _with_personal_figure(question: str, rng: random.Random) -> str:
    """``question`` with a sentence about the asker's service or pay before or after it."""
    dur, _ = rng.choice(duration_forms(rng.choice([3, 5, 8, 9, 14, 18, 26, 40, 60]), "months"))
    money, _ = _money(rng)
    figure = rng.choice(PERSONAL_FIGURES).format(dur=dur, money=money)
    return f"{figure} {question}" if rng.random() < 0.5 else f"{question} {figure}"


def _lookups(chunks: list[Chunk], affinity: list[list[float]], personas: list[Persona], names: set[str],
             cluster_of: dict[str, int], rng: random.Random) -> tuple[list[_Candidate], list[_Candidate]]:
    """(searches, article requests) over every chunk, in every family."""
    searches: list[_Candidate] = []
    articles: list[_Candidate] = []
    for chunk, weights in zip(chunks, affinity, strict=True):
        topic, is_q = topic_of(title_of(chunk))
        cites = sorted(extract_citations(chunk.section_path))
        units = sorted({_plural(u.lower()) for u in _STATED_UNIT.findall(chunk.text)})
        if "search_labour_law" in names:
            for _ in range(LOOKUPS_PER_CHUNK):
                persona = rng.choices(personas, weights)[0]
                families = sorted(QUESTION_TITLE_TEMPLATES if is_q else SEARCH_FAMILIES)
                if not cites:
                    families = [f for f in families if f != "article_mention"]
                family = rng.choice(families)
                template = rng.choice((QUESTION_TITLE_TEMPLATES if is_q else SEARCH_FAMILIES)[family])
                unit = ""
                if units and family in QUANTITY_TEMPLATES and not is_q and rng.random() < QUANTITY_SHARE:
                    template, unit = rng.choice(QUANTITY_TEMPLATES[family]), rng.choice(units)
                lid, _, art = (rng.choice(cites) if cites else " Art. 0").rpartition(" Art. ")
                forms = _law_forms(lid, art) if lid else {}
                shown = _synonyms(topic, rng) if family != "plain" else topic
                n = rng.choice([3, 5, 7, 9, 10, 14, 20, 30, 45, 60, 90]) if unit else int(art) if lid else 0
                text = template.format(topic=shown, Topic=shown[:1].upper() + shown[1:], story=_story(rng), n=n,
                                       unit=unit, **forms)
                if family not in ("terse", "scenario") and rng.random() < PERSONAL_FIGURE_SHARE:
                    text = _with_personal_figure(text, rng)
                searches.append(_Candidate(_voice(text, family, persona, rng), "lookup", f"lookup.{family}", persona,
                                           ["search_labour_law"], None, cluster_of.get(chunk.id, -1), (chunk.id,),
                                           hints=_search_hint(topic)))
        if "get_article" in names:
            for cite in cites:
                lid, _, art = cite.rpartition(" Art. ")
                persona = rng.choices(personas, weights)[0]
                family = rng.choice(sorted(ARTICLE_FAMILIES))
                template = rng.choice(ARTICLE_FAMILIES[family])
                forms = _law_forms(lid, art)
                if "{law_alias}" in template and lid not in LAW_ALIASES:
                    template = template.replace("{law_alias}", "{law}")
                text = template.format(n=int(art), **forms)
                args = {"law": _law_as_written(template, forms), "article": int(art)}
                articles.append(_Candidate(text, "lookup", f"lookup.{family}", persona, ["get_article"],
                                           {"get_article": args}, cluster_of.get(chunk.id, -1), (chunk.id,)))
    return searches, articles


def _uncovered(personas: list[Persona], rng: random.Random) -> list[_Candidate]:
    out = []
    for topic in UNCOVERED_TOPICS:
        for family in sorted(UNCOVERED_TEMPLATES):
            persona = rng.choice(personas)
            text = rng.choice(UNCOVERED_TEMPLATES[family]).format(topic=topic)
            out.append(_Candidate(_voice(text, family, persona, rng), "lookup", f"lookup.{family}", persona,
                                  ["search_labour_law"], None, facts=[NOT_COVERED], hints=_search_hint(topic)))
    return out


# The share of calculation questions for the domain's calculators rather than the general tools: each of
# them takes two to four figures out of a sentence, where a general tool takes one expression, so they
# need the larger share of a small set of questions.
DOMAIN_CALCULATION_SHARE = 0.8


def _calculations(n: int, personas: list[Persona], names: set[str], rng: random.Random) -> list[_Candidate]:
    domain_tools = [t for t in CALC_FAMILIES["plain"] if t in names]
    general_tools = [t for t in GENERAL_FAMILIES["general_plain"] if t in names]
    # the calculators implement the private-sector law, which does not govern domestic workers
    private_sector = [p for p in personas if role(p) != "domestic"]
    out = []
    for i in range(n):
        persona = personas[i % len(personas)]
        if domain_tools and private_sector and rng.random() < DOMAIN_CALCULATION_SHARE:
            persona = private_sector[i % len(private_sector)]
            family = rng.choice(sorted(CALC_FAMILIES))
            tool = rng.choice(domain_tools)
            text, args = calculation(tool, rng.choice(CALC_FAMILIES[family][tool]), rng)
            if family not in FIGURE_FAMILIES:
                text = with_bystander(text)
        elif general_tools:
            family = rng.choice(sorted(GENERAL_FAMILIES))
            tool = rng.choice(general_tools)
            text, args = general(tool, rng.choice(GENERAL_FAMILIES[family][tool]), rng)
        else:
            continue
        out.append(_Candidate(_voice(text, family, persona, rng), "calculation", f"calculation.{family}", persona,
                              [tool], {tool: args} if args else None))
    return out


def _multi_steps(n: int, chunks: list[Chunk], personas: list[Persona], names: set[str], cluster_of: dict[str, int],
                 rng: random.Random) -> list[_Candidate]:
    """A rule to look up, then a figure to compute. A third look up the calculator's own topic; the rest
    any topic of the documents, so that two-tool questions come from every topic (and the split can hold
    some out by topic) and the second tool follows the figures asked about, not the topic searched."""
    domain_tools = [t for t in MULTI if t in names]
    if "search_labour_law" not in names or not domain_tools:
        return []
    titled = [c for c in chunks if not topic_of(title_of(c))[1]]  # titles that read as topics
    out = []
    for i in range(n):
        tool = domain_tools[i % len(domain_tools)]
        persona = rng.choice([p for p in personas if role(p) != "domestic"] or personas)
        if rng.random() < 1 / 3 or not titled:
            article, topics = MULTI[tool]
            topic = rng.choice(topics)
            source = _source_for(chunks, article, topic)
        else:
            chunk = rng.choice(titled)
            topic, source = topic_of(title_of(chunk))[0], (chunk.id,)
        family = rng.choice(sorted(MULTI_FAMILIES))
        tail, args = calculation(tool, rng.choice(MULTI_TAILS[tool]), rng)
        text = rng.choice(MULTI_FAMILIES[family]).format(topic=_synonyms(topic, rng), tail=tail, story=_story(rng))
        if family not in FIGURE_FAMILIES:
            text = with_bystander(text)
        cluster = cluster_of.get(source[0], -1) if source else -1
        out.append(_Candidate(_voice(text, family, persona, rng), "multi_step", f"multi_step.{family}", persona,
                              ["search_labour_law", tool], {tool: args}, cluster, source, hints=_search_hint(topic)))
    return out


def _no_tools(n: int, personas: list[Persona], rng: random.Random) -> list[_Candidate]:
    """Greetings, thanks and requests to decline, a third each, in every family."""
    out = []
    families = sorted(NO_TOOL_FAMILIES)
    for i in range(n):
        reply = ("greeting", "thanks", "decline")[i % 3]
        family = families[(i // 3) % len(families)]
        persona = personas[i % len(personas)]
        pool = NO_TOOL_FAMILIES[family](reply, persona)
        text = pool[(i // (3 * len(families))) % len(pool)]
        if reply == "decline" and rng.random() < OFF_DOMAIN_SHARE:
            text = rng.choice(OFF_DOMAIN_TEMPLATES[family]).format(task=rng.choice(OFF_DOMAIN_TASKS))
        if family == "casual":
            text = casual(text, rng)
        out.append(_Candidate(text, "no_tool", f"no_tool.{family}", persona, [], None, facts=[reply]))
    return out


def rule_questions(chunks: list[Chunk], clusters: dict[str, Any], personas: list[Persona], tools: Any,
                   cfg: RunConfig) -> tuple[list[Question], dict[str, int]]:
    """Candidate questions of every kind (over-generated) and counts of what was dropped and why.

    Each kind draws from its own random stream (``kind_rng``), so rewriting how one kind is written
    leaves the others, and the topics the split holds out, as they were.
    """
    names = set(tools.names())
    targets = {k: math.ceil(v * (GROUNDED_OVERGENERATE if k in ("lookup", "multi_step") else OVERGENERATE))
               for k, v in kind_targets(cfg.questions.n_questions, cfg.questions.mix).items()}
    cluster_of = cluster_of_chunk(clusters["clusters"])
    affinity = persona_affinity(chunks, personas)
    counts: Counter[str] = Counter()

    rng = kind_rng(cfg.seed, "lookup")
    searches, articles = _lookups(chunks, affinity, personas, names, cluster_of, rng)
    uncovered = _uncovered(personas, rng) if "search_labour_law" in names else []
    rng.shuffle(searches)
    rng.shuffle(articles)
    rng.shuffle(uncovered)
    # most real questions name a topic, not an article number: a quarter are article requests, and
    # about one in twelve asks about something the documents do not cover
    n_articles = min(len(articles), targets["lookup"] // 4) if searches else len(articles)
    n_uncovered = min(len(uncovered), targets["lookup"] // 12)
    lookups = articles[:n_articles] + uncovered[:n_uncovered]
    lookups += searches[: targets["lookup"] - len(lookups)]

    cands = lookups
    cands += _calculations(targets["calculation"], personas, names, kind_rng(cfg.seed, "calculation"))
    cands += _multi_steps(targets["multi_step"], chunks, personas, names, cluster_of, kind_rng(cfg.seed, "multi_step"))
    cands += _no_tools(targets["no_tool"], personas, kind_rng(cfg.seed, "no_tool"))

    by_id = {c.id: c for c in chunks}
    out = []
    for c in cands:
        if c.facts == [NOT_COVERED] and not _finds_nothing(c, tools):
            counts["uncovered_but_found"] += 1  # a topic the writer thought uncovered that the search finds
            continue
        if not c.facts:
            c.facts = answer_facts(c, tools, by_id)
        if not c.facts:
            counts[f"no_facts_{c.kind}"] += 1
            log.debug("no answer facts for %s question: %s", c.kind, c.text)
            continue
        out.append(Question(id=question_id(c.text), text=c.text, persona=c.persona.name, cluster=c.cluster,
                            source_chunk_ids=list(c.source),
                            expect=Expect(tools=c.tools, arguments=c.arguments, hints=c.hints),
                            kind=c.kind, family=c.family, answer_facts=c.facts))
    return out, dict(counts)


def _finds_nothing(c: _Candidate, tools: Any) -> bool:
    (call,) = plan_from_expect(c.text, c.tools, c.arguments or {}, [], hints=c.hints).calls
    return tools.call(call.name, call.arguments, asked=c.text).content.startswith(NOT_COVERED_OBSERVATION)


def answer_facts(c: _Candidate, tools: Any, chunks: dict[str, Chunk]) -> list[str]:
    """What a right answer to ``c`` contains, from the real tools called as the offline teacher will call
    them (``plan_from_expect``: the search with the question's topic and, as the agent's runtime passes it,
    the question itself; the calculator's expression read from the wording), so the facts and the
    teacher's observations come from the same calls."""
    facts: list[str] = []
    for call in plan_from_expect(c.text, c.tools, c.arguments or {}, [], hints=c.hints).calls:
        if call.name == "search_labour_law":
            if c.kind == "multi_step":
                continue  # the figure is what is asked; the rule is context
            obs = tools.call(call.name, call.arguments, asked=c.text).content
            facts += _passage_fact(obs, c.text, [chunks[s] for s in c.source if s in chunks])
        elif call.name == "get_article":
            obs = tools.call(call.name, call.arguments).content
            wanted = f"{resolve_law(str(call.arguments['law']))} Art. {call.arguments['article']}"
            sentence, _ = best_sentences(obs, c.text, max_sentences=1, must_cite=wanted)
            facts += [sentence] if sentence else []
        else:
            result = tools.call(call.name, call.arguments)
            if not result.ok:  # e.g. an expression the teacher cannot read from the wording
                return []
            facts += answer_facts_of_calculation(call.name, result.content)
    return facts


def _passage_fact(observation: str, question: str, sources: list[Chunk]) -> list[str]:
    """The sentence of the question's source passage, as the search showed it, that best answers it."""
    shown = [(h, t) for h, t in passages(observation) if any(h == s.section_path for s in sources)]
    if not shown:  # the search missed the source: the fact comes from the passage as the tool would show it
        shown = [(s.section_path, shown_text(s.section_path, s.text)) for s in sources]
    for header, text in shown:
        sentence, _ = best_sentences(f"[1] {header}: {text}", question, max_sentences=1)
        if sentence:
            return [sentence]
    return []


def _source_for(chunks: list[Chunk], article: str, topic: str) -> tuple[str, ...]:
    """The chunk a multi-step question's rule comes from: it cites the article and best matches the topic."""
    words = set(re.findall(r"[a-z]{4,}", topic.lower()))
    citing = [c for c in chunks if article in extract_citations(c.section_path)]
    if not citing:
        return ()
    best = max(citing, key=lambda c: len(words & set(re.findall(r"[a-z]{4,}", title_of(c).lower()))))
    return (best.id,)


# ----------------------------------------------------------------------------- hand-written questions

def questions_from_spec(rows: list[dict[str, Any]], chunks: list[Chunk], tools: Any,
                        family: str = "natural") -> list[Question]:
    """Questions written by hand (``rows``: text, kind, tools, arguments, and for a search the source section
    title and the teacher's query, or ``uncovered``; for a reply, its kind), their ``answer_facts`` found as
    the writer finds them: from the real tools called as the offline teacher calls them. A row whose facts
    cannot be found (a source title that names no section, a call that fails) is an error naming it: a fixed
    question set must not shrink silently when the documents change."""
    by_id = {c.id: c for c in chunks}
    nobody = Persona(name="anyone", asks_about=[], style="")
    out = []
    for i, row in enumerate(rows, 1):
        kind, text = row["kind"], row["text"]
        source = tuple(c.id for c in chunks if row.get("source") and row["source"] in c.section_path)
        if row.get("source") and not source:
            raise ValueError(f"row {i} ({text!r}): no section of the documents has {row['source']!r} in its title")
        hints = {"search_labour_law": {"query": row["query"]}} if row.get("query") else None
        facts = [row["reply"]] if kind == "no_tool" else [NOT_COVERED] if row.get("uncovered") else []
        c = _Candidate(text, kind, f"{kind}.{family}", nobody, list(row.get("tools", [])), row.get("arguments"),
                       source=source, facts=facts, hints=hints)
        if c.facts == [NOT_COVERED] and not _finds_nothing(c, tools):
            raise ValueError(f"row {i} ({text!r}): marked uncovered, but the search finds a passage for it")
        if not c.facts:
            c.facts = answer_facts(c, tools, by_id)
        if not c.facts:
            raise ValueError(f"row {i} ({text!r}): the tools gave no answer facts; check its arguments and source")
        out.append(Question(id=question_id(text), text=text, persona=nobody.name, cluster=-1,
                            source_chunk_ids=list(source), split="dev",
                            expect=Expect(tools=c.tools, arguments=c.arguments, hints=hints),
                            kind=kind, family=c.family, answer_facts=c.facts))
    return out
