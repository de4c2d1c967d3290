"""The generic offline teacher: an expert policy for any pack's tools that needs no language model.

It implements the LLM protocol (``generate``), so the agent runtime drives it as it drives a served
teacher. It routes nothing by the question's wording: the question writer (schema_questions.py) records
which tools and arguments each question needs (``Question.expect``) and the teacher follows that record
(``know``), so a new pack's tools need no routing rules of their own:

    step k < len(expect.tools): "Thought: ...\\nAction: {tool k with the recorded arguments}"
    then:                       "Thought: ...\\nAnswer: <the tools' results, stated>"

A search tool (one whose required string argument is a query, ``query_parameter``) is called with the
question's topic in the user's own words (``search_query``); its answer is the retrieved passages'
sentences ranked against the question, with the passage's citation, or that the documents do not cover
the topic when the search says so. Any other tool's answer states its result. A question without a tool
gets the reply its writer recorded (greeting, thanks or decline). A question the teacher was not told
about (a user's own message) is searched when there is a search tool, and answered with a reply otherwise.

The helpers here (which tool searches, the query, parsing and ranking passages) are the writer's too, so
the facts a question records are what this teacher will find and say.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentdistill.agent.wire import render_action
from agentdistill.config import RunConfig
from agentdistill.evaluate.answer_check import number_mentions
from agentdistill.llm.base import Completion, GenerationRequest
from agentdistill.tools.documents import CITATION_END, NOT_COVERED_OBSERVATION
from agentdistill.tools.registry import is_error

# What names a tool's free-text search argument: the writer leaves it free and the teacher fills it in.
QUERY_NAMES = ("query", "q", "search", "search_query", "keywords", "question", "topic")
PLAN_MARKER = "next:"  # a thought after a tool's result names what comes next, so a student finishes the plan
PLAN_ANSWER = "the answer"
REPLY_KINDS = ("greeting", "thanks", "decline")
NOT_COVERED_FACT = "not covered"

STOP = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between
both but by can cannot could did do does doing down during each either else ever every few for from further get
gets got had has have having he her here hers him his how however i if in into is isn it its itself just let may
me might more most must my no nor not now of off on once only or other our out over own per please same shall
she should so some such than that the their them then there these they this those through thus to too under
until up upon us very was we were what when where whether which while who whom whose why will with within
without would yes yet you your s t d m ll ve re don doesn didn
""".split())  # noqa: SIM905
# Words of a question that ask rather than name the topic: a search for them would only add noise.
FILLER = frozenset("""
hi hello hey thanks thank tell explain know need want wondering wonder say says said document documents text texts
rules rule information info question questions help something anything involve involves involved keep hearing
look find check first next work give mean means meaning happen happens apply applies detail details kind
i'm i've understand hearing someone told read
""".split())  # noqa: SIM905

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*|\d+(?:[.,]\d+)*")
_GREETING = re.compile(r"^\s*(?:hi|hello|hey|good (?:morning|afternoon|evening)|greetings)\b[\s!.,:)]*$", re.I)
_THANKS = re.compile(r"\b(?:thanks|thank you|thx|cheers|appreciate)\b", re.I)
_NOT_COVERED = re.compile(r"\bdo(?:es)? not cover\b|^" + re.escape(NOT_COVERED_OBSERVATION), re.I)


# ----------------------------------------------------------------------------- tools and queries

def query_parameter(spec: dict[str, Any]) -> str | None:
    """The name of a tool's free-text search argument (a required string named like a query), or None."""
    params = spec.get("parameters") or {}
    required = params.get("required") or []
    for name in required:
        if name in QUERY_NAMES and (params.get("properties") or {}).get(name, {}).get("type") == "string":
            return name
    return None


def purpose(spec: dict[str, Any]) -> str:
    """What a tool does, as a verb phrase: its description's first sentence, lower-cased, without a period."""
    text = " ".join(str(spec.get("description") or spec.get("name", "")).split())
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0].rstrip(".!?")
    first = re.sub(r"\s*\([^)]*\)", "", first)
    return first[:1].lower() + first[1:] if first[:2] != first[:2].upper() else first


def content_words(text: str) -> list[str]:
    """The question's words that name something, in order: lower-cased, stop words dropped."""
    return [w.lower() for w in _WORD.findall(text) if w.lower() not in STOP and (len(w) > 2 or w.isdigit())]


def stem(word: str) -> str:
    """A plain suffix stripper, so that "refunds" meets "refund" and "delivered" meets "delivery"."""
    for suffix in ("ies", "ing", "ed", "es", "s", "y"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def search_query(question: str, exclude: Iterable[str] = ()) -> str:
    """The question's topic in the user's words: its content words without the asking ones (and without
    ``exclude``, the words that belong to the plan's other tools), at most ten."""
    words = [w for w in content_words(question) if w not in FILLER]
    topic = [w for w in words if w not in set(exclude)] or words
    return " ".join(list(dict.fromkeys(topic))[:10]) or " ".join(question.split()[:10])


def other_tools_words(specs: dict[str, dict[str, Any]], tools: Iterable[str],
                      arguments: dict[str, dict[str, Any]]) -> set[str]:
    """The words of a question that belong to its non-search tools (their names, what they do, their
    argument names and values): a search for the question's topic leaves them out."""
    words: set[str] = set()
    for name in tools:
        spec = specs.get(name, {})
        if query_parameter(spec):
            continue
        args = arguments.get(name) or {}
        text = " ".join([name.replace("_", " "), purpose(spec), *(k.replace("_", " ") for k in args),
                         *map(str, args.values())])
        words |= set(content_words(text))
    return words


# ----------------------------------------------------------------------------- passages

def passages(observation: str) -> list[tuple[str, str]]:
    """(citation, text) of each ``[i] citation: text`` line of a search result."""
    out = []
    for line in observation.splitlines():
        m = re.match(r"^\[(\d+)\]\s*(.*)$", line.strip())
        if not m or CITATION_END not in m.group(2):
            continue
        cite, text = m.group(2).split(CITATION_END, 1)
        out.append((cite.strip(), text.strip()))
    return out


def _terms(text: str) -> set[str]:
    return {stem(w) for w in content_words(text)}


MAX_SENTENCE_WORDS = 60  # longer is a table or list run together, not a sentence an answer can state


def sentences(text: str) -> list[str]:
    """A passage's whole sentences; one cut off by the observation's length limit ("...") is left out, and so
    is a run of words too long to be a sentence."""
    cut = text.endswith("...")
    out = [s.strip() for s in _SENTENCE.split(text.removesuffix("...").strip()) if s.strip()]
    return [s for s in (out[:-1] if cut else out) if len(s.split()) <= MAX_SENTENCE_WORDS]


def ranked_sentences(observation: str, question: str) -> tuple[int, list[str]]:
    """The passage of a search result that best answers ``question`` (its index, -1 for none) and its
    sentences, best first.

    A passage scores twice the question's words in its section heading plus the most any one of its sentences
    holds, less half a word per rank below the first; a sentence scores its shared words over the square
    root of its length, so short on-topic sentences come first.
    """
    want = _terms(question)
    best: tuple[float, int, list[str]] | None = None
    for p, (cite, text) in enumerate(passages(observation)):
        scored = sorted(((len(want & _terms(s)) / math.sqrt(len(s.split())), -i, s)
                         for i, s in enumerate(sentences(text)) if len(s.split()) >= 4), reverse=True)
        if not scored:
            continue
        heading = cite.rsplit(" > ", 1)[-1]  # the section's own heading: the document's title is shared
        score = (2 * len(want & _terms(heading)) + max(len(want & _terms(s)) for _, _, s in scored) - 0.5 * p)
        if best is None or score > best[0]:
            best = (score, p, [s for _, _, s in scored])
    return (best[1], best[2]) if best else (-1, [])


def lookup_answer(observation: str, question: str, max_sentences: int = 2, max_chars: int = 420) -> tuple[str, str]:
    """(the best sentences in text order, the citation of their passage), or ("", "") without a passage."""
    p, ranked = ranked_sentences(observation, question)
    if p < 0:
        return "", ""
    kept = [ranked[0]]
    for s in ranked[1:max_sentences]:
        if sum(len(k) + 1 for k in kept) + len(s) <= max_chars:
            kept.append(s)
    order = sentences(passages(observation)[p][1])
    text = " ".join(sorted(kept, key=order.index))
    return text, passages(observation)[p][0]


def not_covered(observation: str) -> bool:
    """Whether a search says the documents do not cover the query (a passage that says so is not that)."""
    return not passages(observation) and bool(_NOT_COVERED.search(observation.strip()))


def result_text(observation: str, max_chars: int = 320) -> str:
    """A tool's result as an answer states it: one line, its first sentences up to ``max_chars``."""
    text = " ".join(observation.split())
    if len(text) <= max_chars:
        return text
    kept = ""
    for s in _SENTENCE.split(text):
        if len(kept) + len(s) + 1 > max_chars:
            break
        kept = f"{kept} {s}".strip()
    return kept or text[:max_chars].rsplit(" ", 1)[0]


def results_first(observations: list[tuple[str, str]],
                  reads: Callable[[str], bool]) -> list[tuple[str, str]]:
    """``(tool, observation)`` pairs in the order an answer states them: what a tool computed before what was
    read (``reads`` tells the reading tools), each group in call order. A two-tool question asks for the
    figure, the passage is context; and with ``agent.quote_answers`` an answer is the tools' own sentences,
    so an answer that opens with the result's sentence, as the student learnt, can be decoded verbatim."""
    return sorted(observations, key=lambda pair: reads(pair[0]))


# ----------------------------------------------------------------------------- thoughts and replies

def pick(options: list[str], key: str) -> str:
    """One of ``options``, the same one every time for ``key`` (a question's wording varies the teacher's)."""
    return options[int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) % len(options)]


# The first word of a first thought names the decision (Searching / Using / No), so a student decides at
# its first token; a tool's thought names the tool at once.
_SEARCH_THOUGHTS = ["Searching the documents for: {topic}", "Searching for what the documents say on: {topic}",
                    "Searching the texts for: {topic}"]
_TOOL_THOUGHTS = ["Using {tool} to {purpose}.", "Using {tool}, which can {purpose}.",
                  "Using {tool} with the values given, to {purpose}."]
_HAVE_PASSAGES = ["I have the passages", "The search found the texts", "I have read the passages"]
_SECOND_STEP = ["Another step: {tool} gives the next result.", "Another tool is next: {tool}.",
                "Another step: now {tool} with the values given."]
_DONE = ["Done: I have what I need to answer.", "Done: the result answers the question.",
         "Done: that gives the answer."]
# A plan that reads the documents and then computes says so in its first words ("Two steps, then
# <tool>: Searching ..."), where a student decides, on the question alone. Said only at the end
# ("...; next: <tool>."), after the query it had copied, the second tool was left out by students for
# most two-tool questions: they wrote the "next: the answer" of every single search. Students mostly
# still open with the search's words, so this alone does not settle the second tool.
TWO_STEPS = "Two steps, then {tool}:"


def reading_thought(thought: str, upcoming: str) -> str:
    """The first thought of a plan that reads the documents, ending with what comes next (a tool or the
    answer), and opening with the two steps when a tool comes next."""
    planned = f"{thought.rstrip('.')}; {PLAN_MARKER} {upcoming}."
    return planned if upcoming == PLAN_ANSWER else f"{TWO_STEPS.format(tool=upcoming)} {planned}"


# A reply's thought quotes the user's opening words and names what they are right after them ("Hi" is a
# greeting): the kind is then decided next to the words that show it. Thoughts that opened alike for every
# kind ("No tool is needed: the user is ...") left it to a habit, and students thanked people who said "Hi".
REPLY_THOUGHTS = {
    "greeting": ['No tool is needed: "{said}" is a greeting.',
                 'No tool is needed: "{said}" says hello, so I can reply.'],
    "thanks": ['No tool is needed: "{said}" is a thank-you.',
               'No tool is needed: "{said}" thanks me, so I can reply.'],
    "decline": ["No tool covers this: it is outside {domain}, so I should politely decline.",
                "No tool covers this topic and it is not about {domain}; I will decline.",
                "No tool can answer this: the question is not about {domain}."],
}
_REPLIES = {
    "greeting": ["Hello! I can help with questions about {domain}. What would you like to know?",
                 "Hi! Ask me anything about {domain}.", "Hello! How can I help you with {domain} today?"],
    "thanks": ["You're welcome! Let me know if you have another question about {domain}.",
               "Glad to help. Ask again if anything else about {domain} comes up.",
               "You're welcome. I'm here if you need anything else on {domain}."],
    "decline": ["I'm sorry, I can only help with {domain}, so I can't answer that.",
                "Sorry, that is outside what I can help with: I answer questions about {domain}."],
}


def opening_words(message: str, max_words: int = 4) -> str:
    """A message's words up to its first punctuation mark, at most ``max_words``: what a reply's thought quotes."""
    first = re.split(r"[.,!?;:\n\"]", message.strip(), maxsplit=1)[0]
    return " ".join(first.split()[:max_words]) or message.strip()[:20].replace('"', "")


def reply_step(kind: str, question: str, domain: str, replies: dict[str, list[str]] | None = None) -> str:
    """The wire text of a reply without a tool: ``kind``'s thought (``REPLY_THOUGHTS``), then one of ``replies``
    (a pack's own wording of each kind; the generic ``_REPLIES`` by default)."""
    thought = pick(REPLY_THOUGHTS[kind], question).format(said=opening_words(question), domain=domain)
    answer = pick((replies or _REPLIES)[kind], question + "#").format(domain=domain)
    return f"Thought: {thought}\nAnswer: {answer}"


NOT_COVERED_ANSWER = "The documents I can search do not cover {topic}, so I cannot answer this from them."


@dataclass
class Call:
    name: str
    arguments: dict[str, Any]


# A value said in another unit than the argument's: years for months, weeks for days, a percent for a fraction.
_SAID_AS = (1.0, 12.0, 7.0, 0.01)


def _mention(question: str, value: Any, numbers: list[tuple[int, float]], taken: set[int]) -> int | None:
    """Where ``question`` first states ``value`` at a place no other argument took, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return next((at for at, said in numbers if at not in taken
                     and any(math.isclose(said * factor, value, rel_tol=1e-9) for factor in _SAID_AS)), None)
    if isinstance(value, str) and value.strip():
        text = value.lower().strip()
        first = re.split(r"[_\s]+", text)[0]
        for form in (text, text.replace("_", " "), *([first] if len(first) >= 3 else [])):
            found = re.search(rf"(?<!\w){re.escape(form)}(?!\w)", question, re.I)
            if found and found.start() not in taken:
                return found.start()
    return None


def in_mention_order(question: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """``arguments`` in the order ``question`` states their values; those it does not state keep their order, last.

    A student copies a call's values from the question. Written in the order it reads them, the copy runs left
    to right; written in the schema's order, it searches back and forth and takes the first number it sees
    for the first argument ("2h extra on my rest day; her basic is 15,250" -> a salary of 2).
    """
    numbers = number_mentions(question)
    taken: set[int] = set()
    placed = []
    for i, (name, value) in enumerate(arguments.items()):
        at = _mention(question, value, numbers, taken)
        if at is not None:
            taken.add(at)
        placed.append((at if at is not None else math.inf, i, name))
    return {name: arguments[name] for _, _, name in sorted(placed)}


def with_choices_stated(arguments: dict[str, Any], spec: dict[str, Any] | None) -> dict[str, Any]:
    """``arguments`` with every optional named choice of the tool (a string enum, a boolean) they leave out, at
    its default.

    Left out, an optional choice is decided at the token that closes the call, after the other values and far
    from the words that decide it, and a small student leaves it out ("15h at night" paid at the day rate) or
    adds it where nothing asks for it. Written in every call, it is one of the schema's few values, picked like
    any other argument. A numeric enum is a range (how many results), not a choice of the question's.
    """
    params = (spec or {}).get("parameters") or {}
    required = set(params.get("required") or [])
    stated = dict(arguments)
    for name, schema in (params.get("properties") or {}).items():
        named_choice = schema.get("type") == "boolean" or (schema.get("type") == "string" and "enum" in schema)
        if name not in stated and name not in required and named_choice and "default" in schema:
            stated[name] = schema["default"]
    return stated


def action_text(question: str, call: Call, spec: dict[str, Any] | None = None) -> str:
    """The wire text of ``call``'s action, its tool's named choices stated (``with_choices_stated``, given its
    ``spec``) and its arguments in the order ``question`` states them."""
    arguments = with_choices_stated(call.arguments, spec)
    return render_action({"name": call.name, "arguments": in_mention_order(question, arguments)})


@dataclass
class Plan:
    """What the teacher will do: ``calls`` in order, then answer; or answer at once (``reply``)."""

    calls: list[Call] = field(default_factory=list)
    reply: str | None = None  # greeting | thanks | decline, for a question that needs no tool
    topic: str = ""  # what a search looks for, in the user's words

    @property
    def tools(self) -> list[str]:
        return [c.name for c in self.calls]


def reply_kind(question: str) -> str:
    if _GREETING.match(question):
        return "greeting"
    if _THANKS.search(question) and len(content_words(question)) <= 6:
        return "thanks"
    return "decline"


def pack_topic(cfg: RunConfig | None) -> str:
    """What the run's packs say they are about ("the documents" when none says)."""
    if cfg is not None:
        from agentdistill.domains import load_packs

        topics = [p.topic for p in load_packs(cfg) if p.topic]
        if topics:
            return topics[0]
    return "the documents"


class SchemaTeacher:
    """An LLM-protocol expert policy over any tools (see the module docstring).

    ``SchemaTeacher(run_dir, cfg)`` reads the tools of ``cfg.tools.packs``; ``specs`` gives them directly.
    ``domain`` names what the agent helps with, in greetings and refusals.
    """

    name = "rule"

    def __init__(self, run_dir: Path | None = None, cfg: RunConfig | None = None, *,
                 specs: Iterable[dict[str, Any]] | None = None, domain: str | None = None):
        if specs is None:
            from agentdistill.tools import load_tools

            specs = load_tools(cfg, run_dir).specs() if cfg is not None else []
        self.specs = {s["name"]: s for s in specs}
        self.domain = domain or pack_topic(cfg)
        self._known: dict[str, Any] = {}

    @property
    def search_tools(self) -> list[str]:
        return [n for n, s in self.specs.items() if query_parameter(s)]

    def know(self, questions: Iterable[Any]) -> None:
        """Plan these questions from what their writer recorded (``Question.expect``, and for a reply
        without a tool its kind in ``answer_facts``)."""
        self._known.update({" ".join(q.text.split()): q for q in questions if q.expect is not None})

    def plan(self, question: str) -> Plan:
        known = self._known.get(" ".join(question.split()))
        if known is None:
            search = self.search_tools
            if search and reply_kind(question) == "decline" and search_query(question).strip():
                return self._plan(question, [search[0]], {})
            return Plan(reply=reply_kind(question))
        if not known.expect.tools:
            facts = known.answer_facts
            return Plan(reply=facts[0] if facts and facts[0] in REPLY_KINDS else reply_kind(question))
        return self._plan(question, known.expect.tools, known.expect.arguments or {})

    def _plan(self, question: str, tools: list[str], arguments: dict[str, dict[str, Any]]) -> Plan:
        topic = search_query(question, other_tools_words(self.specs, tools, arguments))
        calls = []
        for name in tools:
            args = dict(arguments.get(name) or {})
            q = query_parameter(self.specs.get(name, {}))
            if q is not None:
                args.setdefault(q, topic)
            calls.append(Call(name, args))
        return Plan(calls=calls, topic=topic if any(query_parameter(self.specs.get(t, {})) for t in tools) else "")

    def _is_search(self, name: str) -> bool:
        return query_parameter(self.specs.get(name, {})) is not None

    def next_step(self, messages: list[dict[str, Any]]) -> str:
        """The wire text of the next assistant turn for a canonical conversation."""
        user_at = max(i for i, m in enumerate(messages) if m["role"] == "user")
        question = messages[user_at]["content"]
        after = messages[user_at + 1 :]
        k = sum(1 for m in after if m["role"] == "assistant")
        observations = [(m["name"], m["content"]) for m in after if m["role"] == "tool"]
        plan = self.plan(question)
        if plan.reply is not None:
            return reply_step(plan.reply, question, self.domain)
        searched = bool(observations) and self._is_search(observations[-1][0])
        failed = any(is_error(content) for _, content in observations)
        if k < len(plan.calls) and not failed:
            call = plan.calls[k]
            upcoming = plan.calls[k + 1].name if k + 1 < len(plan.calls) else PLAN_ANSWER
            if k == 0 and self._is_search(call.name):
                thought = reading_thought(pick(_SEARCH_THOUGHTS, question).format(topic=plan.topic), upcoming)
            elif k == 0:
                thought = pick(_TOOL_THOUGHTS, question).format(tool=call.name,
                                                                 purpose=purpose(self.specs.get(call.name, {})))
            elif searched:
                thought = f"{pick(_HAVE_PASSAGES, question)}; {PLAN_MARKER} {call.name}."
            else:
                thought = pick(_SECOND_STEP, question).format(tool=call.name)
            return f"Thought: {thought}\n{action_text(question, call, self.specs.get(call.name))}"
        answer = self.compose_answer(plan, question, observations)
        thought = (f"{pick(_HAVE_PASSAGES, question)}; {PLAN_MARKER} {PLAN_ANSWER}." if searched
                   else pick(_DONE, question))
        return f"Thought: {thought}\nAnswer: {answer}"

    def compose_answer(self, plan: Plan, question: str, observations: list[tuple[str, str]]) -> str:
        parts = []
        for name, obs in results_first(observations, reads=self._is_search):
            if is_error(obs):
                parts.append(f"I could not get that information: {obs.strip()[7:200]}")
            elif self._is_search(name):
                if not_covered(obs):
                    parts.append(NOT_COVERED_ANSWER.format(topic=plan.topic or "this topic"))
                    continue
                text, cite = lookup_answer(obs, question, max_sentences=1 if len(plan.calls) > 1 else 2)
                parts.append(f"{text} ({cite})" if text and cite else text or result_text(obs))
            else:
                parts.append(result_text(obs))
        answer = " ".join(p.strip() for p in parts if p.strip())
        return answer or "I could not find this in the documents."

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        out = []
        for r in requests:
            text = self.next_step(r.messages)
            if r.prefix:  # a prefilled turn starts with the prefix; the thought follows it
                text = f"{r.prefix.rstrip()} {text.removeprefix('Thought:').lstrip()}"
            out.append([Completion(text=text, finish_reason="stop") for _ in range(max(1, r.n))])
        return out
