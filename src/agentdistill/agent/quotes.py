"""The sentences an answer may quote: what the tools returned, cut into sentences (``agent.quote_answers``).

A small student reads a passage and then writes, fluently, a sentence the tools never returned: one it
memorised for a training topic near the question's, or a figure of its own where the calculator returned
another. The traces it learned from answer by quoting: the teacher's answer after a tool call is the top
passage's first sentences or the tool's result. With ``quote_answers`` the answer after a tool call is
decoded under a grammar (llm/grammar.py, ``quotes``) whose answer is one to ``MAX_QUOTES`` of these
sentences, verbatim: the model still chooses which, but every sentence it writes is one a tool returned.
An answer with no tool call before it (a greeting, a decline) is not constrained.

A search observation is one passage a line, ``[n] <citation>: <text>`` (tools/documents.py); the
citation is dropped, since the sentences carry their own. A passage cut short ends in `` ...``: its last,
unfinished sentence is not offered, unless it is the passage's only one, as when the passage opens with a
sentence longer than the observation leaves it. Then what was shown of it is offered (without the `` ...``):
the teacher's answer quotes it so (the passage's only words), and a student refused it quoted another passage.

With ``top_passage`` (``agent.quote_top_passage``) a search result offers only its first passage, the one the
search ranked best: the teacher's answers quote that passage in nine traces of ten, and a student offered all
three quoted a sentence it had memorised from a lower one, about a neighbouring topic.

With ``result_first`` (``agent.quote_result_first``) an answer after a tool that computed opens with a sentence of
that tool's result (``result_sentences``: the first result that is neither passages, nor an error, nor a search that
found nothing): every teacher answer after a calculation opens so, and a student that also searched opened with the
passage and never stated the figure it was asked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from agentdistill.tools.documents import CITATION_END, NOT_COVERED_OBSERVATION
from agentdistill.tools.registry import is_error

MAX_SENTENCES = 40  # offered per answer: the grammar stays small; observations past it are seldom quoted
_PASSAGE_HEAD = re.compile(r"^\[\d+\] ")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z])")  # not before a digit: "Art. 29", "No. 33"
_CUT = " ..."


def quotable_sentences(observations: Iterable[str], top_passage: bool = False) -> list[str]:
    """The distinct sentences of ``observations`` (tool results), in order, at most ``MAX_SENTENCES``; with
    ``top_passage``, of a search result's first passage only."""
    out: list[str] = []
    for text in observations:
        passages = 0
        for line in text.splitlines():
            if _PASSAGE_HEAD.match(line) and CITATION_END in line:
                passages += 1
                if top_passage and passages > 1:
                    break
                line = line.split(CITATION_END, 1)[1]
            sentences = [s.strip() for s in _SENTENCE_END.split(line.strip()) if s.strip()]
            if sentences and sentences[-1].endswith(_CUT):  # the passage was cut inside its last sentence
                cut = sentences.pop().removesuffix(_CUT).rstrip()
                if not sentences and cut:  # its only sentence: what the reader was shown of it is all it has
                    sentences.append(cut)
            out.extend(sentences)
    return list(dict.fromkeys(out))[:MAX_SENTENCES]


def result_sentences(observations: Iterable[str]) -> list[str]:
    """The sentences of the first of ``observations`` that a tool computed: not passages (a search, an article), not
    an error, not a search that found nothing; empty where there is none."""
    for text in observations:
        head = text.lstrip()
        searched = _PASSAGE_HEAD.match(head) or head.startswith(NOT_COVERED_OBSERVATION)
        if head and not is_error(head) and not searched:
            return quotable_sentences([text])
    return []


def observations(messages: list[dict[str, Any]], skip: Iterable[str] = ()) -> list[str]:
    """The text of every tool result in ``messages`` but those of the tools named in ``skip``."""
    skipped = set(skip)
    return [str(m.get("content") or "") for m in messages if m.get("role") == "tool" and m.get("name") not in skipped]
