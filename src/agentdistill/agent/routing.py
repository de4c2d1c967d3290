"""The first step's tools from the training questions nearest a user's message (``agent.route_neighbours``).

A small student decides at its first step which tool answers a message (or that none does), and on phrasing it
never trained on it picks tools that no close training question used ("what's 15% of 48,000?" as annual leave,
"my contract says 120 days notice, is that even allowed?" as a search). The run's sentence embedder generalizes
across phrasings better than that decision does: the ``k`` training questions closest to the message (cosine
similarity) vote, each with its similarity, for the first step its trace took, a tool's name or a reply without
one, and the step grammar then lets the first step call only the tools among the ``CHOICES`` most voted, and
the most voted of each of the message's clauses where it asks several things (a message asking about a rule and
a figure reads, as a whole, like the training questions of one of them). It may always reply instead: the
router narrows the tools and never forces a call (a request outside the domain that reads like a tool's
question, "the weather tomorrow", is no date calculation). The student still decides.

The votes of the clauses that ask are also a plan (``agent.plan_from_clauses``): where the student answers
after a tool's result while such a clause voted for a tool not called yet, the runtime has it call that tool
first (``FirstStepRouter.clause_steps``). Only the clauses of sentences that end in a question mark count: the
sentences of a story around a question vote too, for whatever their words are near.

The same neighbours also say how to reply without a tool (``agent.replies_from_neighbours``): a first step that
replies is one of the replies the nearest training questions' traces gave (``FirstStepRouter.replies``). A small
student tells a greeting from thanks by the phrasings it trained on, and answered "heyyy", "good evening, hope
you're well" and "salaam, just found this app" with "You're welcome"; their nearest training questions are
greetings, and were greeted.

Measured on the example (docs/design.md, "First steps routed by the nearest training questions").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from agentdistill.config import RunConfig
from agentdistill.errors import UserError
from agentdistill.records import Trace

# Two choices: on the example's hand-written questions the top two held the right first step for 60 of 63, and
# the students' wrong first steps mostly fall outside them; the student keeps the decision where two kinds of
# step are close, as a calculation asked in a question about the rule.
CHOICES = 2
REPLY = ""  # the vote of a trace whose first step replies without a tool
# Clauses: sentences, and questions joined by ", and" / ", then" / "and then" ("what does the rule say about X,
# and how much is Y?").
_SENTENCE_END = re.compile(r"(?<=[.?!;])\s+")
_CLAUSE_BREAK = re.compile(_SENTENCE_END.pattern + r"|,\s*(?:and|then|also|plus)\s+|\s+and then\s+", re.IGNORECASE)
_CLAUSE_MIN_WORDS = 4  # shorter pieces ("Hi there.", "Thanks!") say too little to vote on


def first_step(trace: Trace) -> str | None:
    """The tool a trace's first assistant step calls, ``REPLY`` where it replies without one, None where it has
    no assistant step."""
    for m in trace.messages:
        if m.get("role") == "assistant":
            calls = m.get("tool_calls") or []
            return str(calls[0]["name"]) if calls else REPLY
    return None


def first_reply(trace: Trace) -> str | None:
    """What a trace's first assistant step replies where it calls no tool; None where it calls one (or has none)."""
    for m in trace.messages:
        if m.get("role") == "assistant":
            return None if m.get("tool_calls") else str(m.get("content") or "")
    return None


def first_question(trace: Trace) -> str | None:
    """The trace's first user message."""
    return next((str(m["content"]) for m in trace.messages if m.get("role") == "user" and m.get("content")), None)


class FirstStepRouter:
    """The first-step choices of a message: those its ``k`` nearest training questions' traces took most (tool
    names, and ``REPLY`` where replying was among them; the runtime lets a first step reply in any case), and the
    replies of those that replied."""

    def __init__(self, questions: list[str], steps: list[str], encode: Callable[[list[str]], np.ndarray], k: int,
                 replies: list[str | None] | None = None):
        """``encode``: the run's embedder's, whose vectors are unit-normalized (a dot product is their cosine);
        ``replies``: each question's first reply where its first step replied (``first_reply``)."""
        if len(questions) != len(steps) or not questions or (replies is not None and len(replies) != len(steps)):
            raise ValueError("a router needs one first step (and reply, if any) for each of at least one question")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.steps, self.encode, self.k = steps, encode, k
        self.first_replies = replies or [None] * len(steps)
        self.vectors = encode(questions)
        self._votes: dict[str, tuple[list[str], dict[str, str], tuple[str, ...]]] = {}  # message -> its votes

    @classmethod
    def from_traces(cls, traces: Iterable[Trace], encode: Callable[[list[str]], np.ndarray],
                    k: int) -> FirstStepRouter | None:
        """From the training split's traces (None where none has a question and a first step)."""
        rows = [(q, s, first_reply(t)) for t in traces if t.split == "train"
                if (q := first_question(t)) is not None and (s := first_step(t)) is not None]
        if not rows:
            return None
        return cls([q for q, _, _ in rows], [s for _, s, _ in rows], encode, k, [r for _, _, r in rows])

    def choices(self, message: str) -> tuple[str, ...]:
        """The tool names (and ``REPLY``) the first step after ``message`` may take: the message's ``CHOICES`` most
        voted, then the most voted of each of its clauses where it has more than one."""
        whole, by_clause, _ = self._message_votes(message)
        return tuple(dict.fromkeys(whole + list(by_clause.values())))

    def replies(self, message: str) -> tuple[str, ...]:
        """The distinct replies of the message's ``k`` nearest training questions whose first step replied, the
        nearest first; empty where none replied."""
        return self._message_votes(message)[2]

    def clause_steps(self, message: str) -> tuple[str, ...]:
        """The first steps voted for most by the clauses that ask (those of its sentences that end in a question
        mark), one a clause, where ``message`` has more than one such clause: the steps it needs; else none."""
        asking = asking_clauses(message)
        by_clause = self._message_votes(message)[1]
        return tuple(dict.fromkeys(by_clause[c] for c in asking if c in by_clause)) if len(asking) > 1 else ()

    def _message_votes(self, message: str) -> tuple[list[str], dict[str, str], tuple[str, ...]]:
        """The message's ``CHOICES`` most voted first steps, each clause's most voted where it has several, and the
        replies of the message's nearest."""
        if message not in self._votes:
            parts = clauses(message)
            parts = parts if len(parts) > 1 else []
            vectors = self.encode([message, *parts])
            if len(self._votes) > 1024:  # a server's router sees messages without end
                self._votes.clear()
            by_clause = {part: self._voted(self._nearest(v), 1)[0] for part, v in zip(parts, vectors[1:], strict=True)}
            nearest = self._nearest(vectors[0])
            replies = tuple(dict.fromkeys(r for i, _ in nearest if (r := self.first_replies[i])))
            self._votes[message] = (self._voted(nearest, CHOICES), by_clause, replies)
        return self._votes[message]

    def _nearest(self, vector: np.ndarray) -> list[tuple[int, float]]:
        """The ``k`` training questions nearest ``vector`` and their similarity, the nearest first."""
        sims = self.vectors @ vector
        return [(int(i), float(sims[i])) for i in np.argsort(-sims)[: self.k]]

    def _voted(self, nearest: list[tuple[int, float]], n: int) -> list[str]:
        """The ``n`` first steps that ``nearest`` vote for most, each vote weighted by its similarity."""
        votes: Counter[str] = Counter()
        for i, similarity in nearest:
            votes[self.steps[i]] += max(similarity, 0.0)
        return [step for step, _ in votes.most_common(n)]


def clauses(message: str) -> list[str]:
    """The message's sentences and coordinated questions of at least ``_CLAUSE_MIN_WORDS`` words."""
    return [p for p in (p.strip() for p in _CLAUSE_BREAK.split(message)) if len(p.split()) >= _CLAUSE_MIN_WORDS]


def asking_clauses(message: str) -> list[str]:
    """The clauses of the message's sentences that end in a question mark."""
    sentences = _SENTENCE_END.split(message)
    return [c for sentence in sentences if sentence.rstrip().endswith("?") for c in clauses(sentence)]


def first_step_router(run_dir: Path, cfg: RunConfig) -> FirstStepRouter | None:
    """The router of a run where ``agent.route_neighbours`` is set: its train traces, embedded with the run's
    embedder; None where it is off or the step grammar is (routing is a grammar's choice of tools). UserError where
    the run has no train traces."""
    k = cfg.agent.route_neighbours
    if not k or not cfg.agent.constrain_tool_names:
        return None
    from agentdistill.corpus.embed import load_embedder
    from agentdistill.jsonl import read_records
    from agentdistill.run_layout import RunLayout

    path = RunLayout(run_dir).traces
    embedder = load_embedder(cfg.models.embedder, cfg.corpus.embed_batch_size, cfg.corpus.embed_variant,
                             cfg.models.cache_dir)
    router = FirstStepRouter.from_traces(read_records(path, Trace), embedder.encode, k) if path.exists() else None
    if router is None:
        raise UserError(f"agent.route_neighbours is {k}, but {path} holds no training traces to route by.",
                        hint=f"Run `agentdistill traces --run {run_dir}` first, or set agent.route_neighbours to "
                        "null (--set agent.route_neighbours=null).")
    return router


def first_step_router_or_none(run_dir: Path, cfg: RunConfig, warn: Callable[[str], None]) -> FirstStepRouter | None:
    """``first_step_router`` for chat and serve: a run without train traces yet (just ingested, to try the untuned
    student) is served unrouted, with ``warn`` told why, rather than refused."""
    try:
        return first_step_router(run_dir, cfg)
    except UserError as e:
        warn(f"first steps are not routed: {e}")
        return None
