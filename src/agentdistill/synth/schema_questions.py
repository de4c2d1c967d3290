"""The generic offline question writer: questions for any pack, from its tools' schemas and its documents.

Every question records what answers it, so the offline teacher (schema_teacher.py) follows the record
instead of routing by wording, and the eval scores against it:

- ``expect``: the tools in order and the arguments the question fixes (a search's query stays free);
- ``answer_facts``: for a computing tool the real tool's result for those arguments (its amounts and
  quantities, else its first sentence); for a search the sentence of the source passage that answers it,
  as the search shows it; "not covered" for a topic the documents do not hold; the reply's kind
  (greeting, thanks, decline) for a message that needs no tool;
- ``family``: the phrasing family (``<kind>.<style>``), which the split holds out whole, and ``kind``.

Where the questions come from:

- **lookup**: each passage's topic, its heading (the last heading of its section path that is a phrase
  and not a file name or a bare section number), else the passage's salient terms (the adjacent pair of
  content words, else the word, that the passage repeats and the other passages do not). A document's
  file name is never a topic. The writer runs the real search with the query the teacher will send and
  keeps the question only when the passage the teacher would quote is from the source section, so each
  lookup's facts are in what its search returns. With a similarity floor (``corpus.min_similarity``)
  topics no document holds are asked too, kept when the search says it does not cover them.
- **calculation**: each non-search tool with arguments drawn from its JSON schema: enums, defaults, the
  examples its descriptions quote ("e.g. ..."; examples listed in step across parameters stay paired), a
  date for a YYYY-MM-DD string, numbers near the examples'. Each set of arguments is run through the real
  tool; a call that fails is not a question. The question names what the tool does (its description)
  and writes every argument value, so the call can be copied from it.
- **multi_step**: a passage's topic to look up, then a tool's calculation (the passage that shares most
  words with the tool's description when any does).
- **no_tool**: greetings, thanks and requests outside the documents (topics none of the documents' words
  name), in each phrasing style.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agentdistill.config import RunConfig
from agentdistill.corpus.cluster import cluster_of_chunk
from agentdistill.currencies import CODE, spellings
from agentdistill.records import Chunk, Expect, Question
from agentdistill.synth.questions import Persona, kind_rng, kind_targets, question_id
from agentdistill.synth.schema_teacher import (
    NOT_COVERED_FACT,
    STOP,
    content_words,
    lookup_answer,
    not_covered,
    other_tools_words,
    purpose,
    query_parameter,
    search_query,
)
from agentdistill.tools.registry import is_error

OVERGENERATE = 1.6  # candidates per needed question: dedup drops some
GROUNDED_OVERGENERATE = 3.0  # the split excludes a grounded question whose topic and family fall apart

# ----------------------------------------------------------------------------- phrasing families

LOOKUP_TEMPLATES = {
    "plain": ["What do the documents say about {topic}?", "What is said about {topic}?",
              "What does it say on {topic}?"],
    "rules": ["What are the rules on {topic}?", "What applies to {topic}?", "Which rules cover {topic}?"],
    "explain": ["Can you explain {topic}?", "Could you explain {topic} to me?", "Explain {topic}, please."],
    "terse": ["{topic}?", "{topic} - details?", "info on {topic}"],
    "story": ["I'm a {persona} and I keep hearing about {topic}. What does it involve?",
              "As a {persona}, I need to understand {topic}. What should I know?",
              "Someone told me, a {persona}, to read up on {topic}. What is it about?"],
    "info": ["I need information on {topic}.", "Please give me the details on {topic}.",
             "Where can I read about {topic}?"],
}
CALCULATION_TEMPLATES = {
    "plain": ["{Request}: {args}.", "{Request} for {args}."],
    "question": ["Can you {request} for {args}?", "Could you {request}? {Args}."],
    "terse": ["{tool}: {values}", "{tool} {values}?"],
    "story": ["I'm a {persona} and I need to {request}. I have {args}. What do I get?",
              "As a {persona} I have to {request} today: {args}. What is the result?"],
    "polite": ["Hello, please {request} with {args}.", "Good day. I would like you to {request}: {args}."],
}
MULTI_TEMPLATES = {
    "plain": ["What do the documents say about {topic}, and {request} for {args}?"],
    "steps": ["First look up {topic}, then {request}: {args}."],
    "story": ["I'm a {persona}. Check {topic} for me, and then {request} with {args}."],
    "terse": ["{topic}? also {tool}: {values}"],
}
NO_TOOL_TEMPLATES = {
    "plain": {"greeting": ["Hello.", "Good morning."], "thanks": ["Thank you.", "Thanks for the help."],
              "decline": ["Can you help me with {other}?", "What about {other}?"]},
    "casual": {"greeting": ["hey there!", "hi :)"], "thanks": ["thx, that helps", "cheers, thanks a lot"],
               "decline": ["any idea about {other}?", "quick one: {other}?"]},
    "polite": {"greeting": ["Good afternoon, I hope you are well.", "Hello, nice to meet you."],
               "thanks": ["Thank you very much for your help.", "Many thanks, I appreciate it."],
               "decline": ["Could you please help me with {other}?", "Would you tell me about {other}, please?"]},
    "terse": {"greeting": ["hi", "hello"], "thanks": ["thanks", "thank you!"], "decline": ["{other}?", "{other} pls"]},
}
# Requests no document of a support, legal or product corpus answers (those naming a word of the corpus are
# skipped), and topics asked as lookups that the search must not find.
OTHER_TOPICS = ["the weather tomorrow", "a good pasta recipe", "who won the football match last night",
                "a poem about the sea", "the capital of Australia", "a movie to watch tonight",
                "fixing a bicycle chain", "learning to play the guitar", "a joke about cats",
                "the distance from the Earth to the Moon", "planting tomatoes in spring", "the rules of chess"]
UNCOVERED_TOPICS = ["keeping bees in a city garden", "fishing licences for mountain lakes",
                    "the orbit of Jupiter's moons", "baking sourdough bread at altitude", "tuning a piano",
                    "migratory routes of whales"]

_DATE = re.compile(r"YYYY-MM-DD|ISO date|\bdate\b", re.I)
_EXAMPLES = re.compile(r"(?:e\.g\.|for example|for instance|such as|like)\s*[:,]?\s*(.+)", re.I)
_QUOTED = re.compile(r"\"([^\"]+)\"|'([^']+)'")
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?![\w.])|(?<=[A-Za-z])(\d{2,})\b")
_SECTION_NUMBER = re.compile(r"^[\w.]{1,12}\s*\d+[a-z]?\.?$", re.I)  # "Art. 51", "Section 3", "§ 4"


# ----------------------------------------------------------------------------- topics of passages

def _file_like(text: str, source: str) -> bool:
    """A heading that is the document's file name or looks like one (no spaces, with digits or separators)."""
    stem = Path(source).stem.lower()
    plain = re.sub(r"[-_.\s]+", " ", text.lower()).strip()
    return plain in (stem, re.sub(r"[-_.]+", " ", stem).strip()) or (" " not in text.strip()
                                                                    and bool(re.search(r"[\d_.-]", text)))


def heading_topic(chunk: Chunk) -> str | None:
    """The passage's own heading as a topic: the last part of its section path that is a phrase."""
    path = re.sub(r"\s*\([^()]*\)\s*$", "", chunk.section_path)  # sources the section cites
    for part in reversed([p.strip() for p in path.split(" > ")]):
        words = re.findall(r"[A-Za-z]{3,}", part)
        if (words and len(part.split()) <= 12 and not _SECTION_NUMBER.match(part)
                and not _file_like(part, chunk.source) and any(len(w) >= 4 for w in words)):
            return _topic_case(part)
    return None


def _topic_case(text: str) -> str:
    """"Returns And Refunds" -> "returns and refunds"; acronyms and words with digits keep their case."""
    words = text.strip().rstrip(".:?").split()
    return " ".join(w if (w.isupper() and len(w) > 1) or any(c.isdigit() for c in w) else w.lower() for w in words)


def salient_terms(chunks: list[Chunk]) -> dict[str, str]:
    """Per chunk id, the terms its text repeats and the other passages rarely use: the pair of adjacent
    content words with the highest count x idf (seen twice or more), else the single word."""
    docs = {c.id: [w for w in content_words(c.text) if w.isalpha() and len(w) > 3] for c in chunks}
    df: Counter[str] = Counter()
    for words in docs.values():
        df.update(set(words))
    n = len(docs)

    def idf(w: str) -> float:
        return math.log((n + 1) / (df[w] + 0.5))

    out = {}
    for c in chunks:
        words = docs[c.id]
        stems = {Path(c.source).stem.lower()}
        pairs = Counter(f"{a} {b}" for a, b in zip(words, words[1:], strict=False) if a != b)
        scored = [(k * (idf(p.split()[0]) + idf(p.split()[1])), p) for p, k in pairs.items() if k >= 2]
        if not scored:
            scored = [(k * idf(w), w) for w, k in Counter(words).items() if w not in stems]
        if scored:
            out[c.id] = max(scored)[1]
    return out


def topics(chunks: list[Chunk]) -> dict[str, str]:
    """Per chunk id, the topic a lookup asks about: its heading, else its salient terms."""
    terms = salient_terms(chunks)
    out = {}
    for c in chunks:
        topic = heading_topic(c) or terms.get(c.id)
        if topic:
            out[c.id] = topic
    return out


# ----------------------------------------------------------------------------- arguments from schemas

def _examples(description: str) -> list[str]:
    m = _EXAMPLES.search(description or "")
    if not m:
        return []
    return [a or b for a, b in _QUOTED.findall(m.group(1))] or \
        [w.strip(" .") for w in re.split(r",|\bor\b", m.group(1)) if re.fullmatch(r"\s*-?\d+(?:\.\d+)?\s*\.?", w)]


def _perturb(example: str, rng: random.Random) -> str:
    """The example with its numbers moved: a number inside a word (an id like "A1042") by a few units,
    a free-standing one scaled, so the arguments vary while keeping the example's form."""
    def move(m: re.Match[str]) -> str:
        if m.group(2):  # digits that end a word: an identifier, kept to its width
            value = max(0, int(m.group(2)) + rng.randint(-12, 12))
            return str(value).zfill(len(m.group(2)))
        text = m.group(1)
        value = float(text) * rng.choice([0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0])
        return str(round(value)) if "." not in text else f"{value:.1f}"
    return _NUMBER.sub(move, example)


def _number(schema: dict[str, Any], description: str, rng: random.Random) -> float | int:
    examples = [float(x) for x in _examples(description) if re.fullmatch(r"-?\d+(?:\.\d+)?", x)]
    base = rng.choice(examples) if examples else float(schema.get("default") or rng.choice([3, 5, 8, 12, 20, 45, 120]))
    value = base * rng.choice([0.5, 0.75, 1.0, 1.5, 2.0]) if base else rng.randint(1, 30)
    lo, hi = schema.get("minimum"), schema.get("maximum")
    if lo is not None:
        value = max(value, lo)
    if hi is not None:
        value = min(value, hi)
    value = round(value, 2)
    return int(round(value)) if schema.get("type") == "integer" or float(value).is_integer() else value


def draw_arguments(spec: dict[str, Any], rng: random.Random) -> dict[str, Any] | None:
    """One set of arguments for a tool, drawn from its JSON schema; None when a required one cannot be."""
    params = spec.get("parameters") or {}
    props: dict[str, Any] = params.get("properties") or {}
    required = list(params.get("required") or [])
    described = {name: _examples(s.get("description", "")) for name, s in props.items()}
    free = [n for n in required if props[n].get("type") == "string" and not described[n] and "enum" not in props[n]
            and not _DATE.search(props[n].get("description", ""))]
    if len(free) == 1:  # a single free string takes the examples the tool's own description quotes
        described[free[0]] = _examples(spec.get("description", ""))
    # parameters listing the same number of examples list them in step ("km", "lb" / "mi", "kg")
    sizes = Counter(len(v) for v in described.values() if len(v) > 1)
    step = {size: rng.randrange(size) for size, k in sizes.items() if k > 1}
    args: dict[str, Any] = {}
    for name in required + [n for n in props if n not in required and "enum" in props[n]]:
        schema, examples = props[name], described[name]
        desc = schema.get("description", "")
        kind = schema.get("type")
        if "enum" in schema:
            args[name] = rng.choice(schema["enum"])
        elif kind in ("integer", "number"):
            args[name] = _number(schema, desc, rng)
        elif kind == "boolean":
            args[name] = rng.random() < 0.5
        elif kind == "string" and examples:
            pick = examples[step[len(examples)]] if len(examples) in step else rng.choice(examples)
            args[name] = _perturb(pick, rng) if len(examples) not in step else pick
        elif kind == "string" and _DATE.search(desc):
            args[name] = (dt.date(2024, 1, 1) + dt.timedelta(days=rng.randrange(1000))).isoformat()
        elif name in required:
            return None
    return args


def result_facts(result: str, arguments: dict[str, Any], currencies: Mapping[str, str] | None = None) -> list[str]:
    """What a right answer to a computing tool's result must state: its first amount with a currency and its
    first quantity with a unit word (a result leads with what was asked; the figures after it explain
    it), else, when it writes neither, its first sentence. A currency is one the answer checker reads as one
    (agentdistill.currencies; ``currencies``: the run's packs' spellings)."""
    unit = rf"(?:{spellings(currencies)}|{CODE})"
    money = re.findall(rf"{unit}\s?\d[\d,]*(?:\.\d+)?|\d[\d,]*(?:\.\d+)?\s?{unit}", result)
    units = re.findall(r"\b\d[\d,]*(?:\.\d+)?\s(?:days?|hours?|weeks?|months?|years?|percent|items?)\b", result)
    given = {float(n.replace(",", "")) for v in arguments.values() for n in re.findall(r"\d[\d,]*(?:\.\d+)?", str(v))}

    def new(figure: str) -> bool:  # a figure that only repeats an argument ("90 days" added) is not the answer
        return float(re.findall(r"\d[\d,]*(?:\.\d+)?", figure)[0].replace(",", "")) not in given

    facts = [" ".join(found[0].split()) for found in ([f for f in money if new(f)], [f for f in units if new(f)])
             if found]
    if facts:
        return facts
    first = re.split(r"(?<=[.!?])\s+", " ".join(result.split()), maxsplit=1)[0]
    return [first[:240]]


# ----------------------------------------------------------------------------- question text

def _label(name: str) -> str:
    return name.replace("_", " ")


def _arg_phrases(spec: dict[str, Any], args: dict[str, Any]) -> tuple[str, str]:
    """(the arguments as a phrase, the bare values): "order id A1042 and reason damaged", "A1042 damaged"."""
    values = [str(v) for v in args.values()]
    if len(args) == 1:
        return values[0], values[0]
    parts = [f"{_label(k)} {v}" for k, v in args.items()]
    phrase = ", ".join(parts[:-1]) + " and " + parts[-1]
    return phrase, " ".join(values)


def _fill(template: str, **kw: str) -> str:
    def cap(s: str) -> str:
        return s[:1].upper() + s[1:]
    if "persona" in kw:
        kw["persona"] = kw["persona"].replace("_", " ")  # a persona's name in a file may be an identifier
    extra = {k.capitalize(): cap(v) for k, v in kw.items()}
    return " ".join(template.format(**kw, **extra).split())


# ----------------------------------------------------------------------------- the writer

class _Writer:
    def __init__(self, chunks: list[Chunk], clusters: dict[str, Any], personas: list[Persona], tools: Any,
                 cfg: RunConfig):
        self.chunks = chunks
        self.tools = tools
        self.cfg = cfg
        from agentdistill.domains import currency_aliases

        self.currencies = currency_aliases(cfg)  # how the run's packs write their currencies, for result_facts
        self.personas = personas or [Persona("user", ["the documents"])]
        self.cluster_of = cluster_of_chunk(clusters.get("clusters", []))
        self.specs = tools.specs()
        self.search = next((s for s in self.specs if query_parameter(s)), None)
        self.computing = [s for s in self.specs if not query_parameter(s)]
        self.topics = topics(chunks)
        self.by_id = {c.id: c for c in chunks}
        self.counts: Counter[str] = Counter()
        self._searched: dict[str, str | None] = {}
        vocabulary = {w for c in chunks for w in content_words(c.text)}
        self.other = [t for t in OTHER_TOPICS if not set(content_words(t)) & vocabulary]

    def _search(self, query: str) -> str | None:
        if query not in self._searched:
            assert self.search is not None
            result = self.tools.call(self.search["name"], {query_parameter(self.search): query})
            self._searched[query] = result.content if result.ok else None
        return self._searched[query]

    def _question(self, text: str, kind: str, family: str, persona: Persona, tools: list[str],
                  arguments: dict[str, dict[str, Any]] | None, facts: list[str],
                  chunk: Chunk | None = None) -> Question:
        return Question(id=question_id(text), text=text, persona=persona.name,
                        cluster=self.cluster_of.get(chunk.id, -1) if chunk else -1,
                        source_chunk_ids=[chunk.id] if chunk else [], kind=kind, family=f"{kind}.{family}",
                        expect=Expect(tools=tools, arguments=arguments or None), answer_facts=facts)

    def lookup_fact(self, text: str, chunk: Chunk, exclude: set[str] | None = None) -> str | None:
        """The sentence the teacher will quote for ``text``, when it comes from ``chunk``'s section
        (``exclude``: the words of the question's other tools, which the teacher's query leaves out)."""
        obs = self._search(search_query(text, exclude or ()))
        if obs is None or not_covered(obs):
            self.counts["lookup_not_found"] += 1
            return None
        from agentdistill.tools.documents import citation

        answer, cite = lookup_answer(obs, text, max_sentences=1)
        if not answer or cite != citation(chunk.section_path):
            self.counts["lookup_other_passage"] += 1
            return None
        return answer

    def lookups(self, target: int, rng: random.Random) -> list[Question]:
        if self.search is None or not self.topics:
            self.counts["no_search_tool_or_topic"] += 1 if target else 0
            return []
        order = rng.sample(sorted(self.topics), len(self.topics))
        families = sorted(LOOKUP_TEMPLATES)
        out: list[Question] = []
        for i in range(target * 2):
            if len(out) >= target:
                break
            chunk = self.by_id[order[i % len(order)]]
            family = families[(i + rng.randrange(len(families))) % len(families)]
            persona = self.personas[i % len(self.personas)]
            text = _fill(rng.choice(LOOKUP_TEMPLATES[family]), topic=self.topics[chunk.id], persona=persona.name)
            fact = self.lookup_fact(text, chunk)
            if fact is not None:
                out.append(self._question(text, "lookup", family, persona, [self.search["name"]], None, [fact], chunk))
        if self.cfg.corpus.min_similarity > 0:
            for j, topic in enumerate(UNCOVERED_TOPICS):
                family = families[j % len(families)]
                persona = self.personas[j % len(self.personas)]
                text = _fill(rng.choice(LOOKUP_TEMPLATES[family]), topic=topic, persona=persona.name)
                obs = self._search(search_query(text))
                if obs is not None and not_covered(obs):
                    out.append(self._question(text, "lookup", family, persona, [self.search["name"]], None,
                                              [NOT_COVERED_FACT]))
                else:
                    self.counts["uncovered_but_found"] += 1
        return out

    def _calls(self, spec: dict[str, Any], rng: random.Random, n: int) -> list[tuple[dict[str, Any], str]]:
        """Up to ``n`` distinct argument sets for a tool that the real tool answers, with its results."""
        out: list[tuple[dict[str, Any], str]] = []
        seen: set[str] = set()
        for _ in range(n * 4):
            if len(out) >= n:
                break
            args = draw_arguments(spec, rng)
            if args is None:
                self.counts[f"no_arguments_{spec['name']}"] += 1
                return out
            key = repr(sorted(args.items()))
            if key in seen:
                continue
            seen.add(key)
            result = self.tools.call(spec["name"], args)
            if not result.ok or is_error(result.content):
                self.counts["tool_errors"] += 1
                continue
            out.append((args, result.content))
        return out

    def calculations(self, target: int, rng: random.Random) -> list[Question]:
        if not self.computing:
            return []
        out: list[Question] = []
        families = sorted(CALCULATION_TEMPLATES)
        each = math.ceil(target / len(self.computing))
        for spec in self.computing:
            for i, (args, result) in enumerate(self._calls(spec, rng, each)):
                family = families[(i + rng.randrange(len(families))) % len(families)]
                persona = self.personas[i % len(self.personas)]
                phrase, values = _arg_phrases(spec, args)
                text = _fill(rng.choice(CALCULATION_TEMPLATES[family]), request=purpose(spec), args=phrase,
                             values=values, tool=_label(spec["name"]), persona=persona.name)
                out.append(self._question(text, "calculation", family, persona, [spec["name"]],
                                          {spec["name"]: args}, result_facts(result, args, self.currencies)))
        return out

    def multi_steps(self, target: int, rng: random.Random) -> list[Question]:
        if self.search is None or not self.computing or not self.topics:
            return []
        out: list[Question] = []
        families = sorted(MULTI_TEMPLATES)
        each = math.ceil(target / len(self.computing))
        for spec in self.computing:
            about = set(content_words(str(spec.get("description", "")))) - STOP
            related = sorted(self.topics, key=lambda cid: (-len(about & set(content_words(self.by_id[cid].text))), cid))
            best = len(about & set(content_words(self.by_id[related[0]].text))) if related else 0
            pool = [cid for cid in related if len(about & set(content_words(self.by_id[cid].text))) == best] \
                if best else related
            pool = rng.sample(pool, len(pool))
            for i, (args, result) in enumerate(self._calls(spec, rng, each)):
                chunk = self.by_id[pool[i % len(pool)]]
                family = families[(i + rng.randrange(len(families))) % len(families)]
                persona = self.personas[i % len(self.personas)]
                phrase, values = _arg_phrases(spec, args)
                text = _fill(rng.choice(MULTI_TEMPLATES[family]), topic=self.topics[chunk.id], request=purpose(spec),
                             args=phrase, values=values, tool=_label(spec["name"]), persona=persona.name)
                fact = self.lookup_fact(text, chunk, other_tools_words({spec["name"]: spec}, [spec["name"]],
                                                                       {spec["name"]: args}))
                if fact is None:
                    continue
                out.append(self._question(text, "multi_step", family, persona, [self.search["name"], spec["name"]],
                                          {spec["name"]: args},
                                          [fact, *result_facts(result, args, self.currencies)], chunk))
        return out

    def no_tools(self, target: int, rng: random.Random) -> list[Question]:
        out = []
        texts: set[str] = set()
        for i in range(target * 3):
            if len(out) >= target:
                break
            family = sorted(NO_TOOL_TEMPLATES)[i % len(NO_TOOL_TEMPLATES)]
            reply = ("greeting", "thanks", "decline", "decline")[(i // len(NO_TOOL_TEMPLATES)) % 4]
            if reply == "decline" and not self.other:
                continue
            text = _fill(rng.choice(NO_TOOL_TEMPLATES[family][reply]),
                         other=rng.choice(self.other) if self.other else "")
            if text.lower() in texts:
                continue
            texts.add(text.lower())
            out.append(self._question(text, "no_tool", family, self.personas[i % len(self.personas)], [], None,
                                      [reply]))
        return out


def schema_questions(chunks: list[Chunk], clusters: dict[str, Any], personas: list[Persona], tools: Any,
                     cfg: RunConfig) -> tuple[list[Question], dict[str, int]]:
    """Candidate questions for any pack (see the module docstring) and the counts of what was dropped."""
    writer = _Writer(chunks, clusters, personas, tools, cfg)
    targets = {k: math.ceil(v * (GROUNDED_OVERGENERATE if k in ("lookup", "multi_step") else OVERGENERATE))
               for k, v in kind_targets(cfg.questions.n_questions, cfg.questions.mix).items()}
    seed = cfg.seed
    out = (writer.lookups(targets["lookup"], kind_rng(seed, "lookup"))
           + writer.calculations(targets["calculation"], kind_rng(seed, "calculation"))
           + writer.multi_steps(targets["multi_step"], kind_rng(seed, "multi_step"))
           + writer.no_tools(targets["no_tool"], kind_rng(seed, "no_tool")))
    return out, {k: v for k, v in writer.counts.items() if v}
