"""Retrieval evaluation: recall@k and MRR of a run's search on questions with known answer citations.

An eval file is JSON Lines of ``{"id", "question", "answers": [citation, ...]}``. A retrieved chunk
is a hit when its section path or text cites one of the answers, as the run's citation style compares them
(``CitationStyle.answer_keys``, ``passage_keys`` and ``matches``; see ``agentdistill.citations``): with the
generic style "Handbook > Annual leave" matches a chunk of that section or of one inside it; a pack's style
may compare a law's articles, wherever a chunk names them. A record may also name its ``source`` document
(a file name, or a path ending in it) and a ``split`` ("dev" or "test"); a question whose answer is a whole
page has no citations, only its source, and then a chunk of that document is the hit.

    recall@k = share of questions with a hit among the top k
    MRR@k    = mean over questions of 1 / (rank of the first hit), 0 when none is in the top k
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentdistill.citations import GENERIC, CitationStyle, answer_is_cited
from agentdistill.corpus.search import Searcher
from agentdistill.errors import UserError
from agentdistill.jsonl import iter_json
from agentdistill.records import Chunk


@dataclass
class EvalItem:
    id: str
    question: str
    answers: list[str]
    source: str | None = None  # the document that answers it: a file name or the end of its path
    split: str | None = None


def load_eval(path: Path, style: CitationStyle = GENERIC) -> list[EvalItem]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist.", hint='Write one {"id", "question", "answers": [...]} per line.')
    items = []
    for n, obj in enumerate(iter_json(path), start=1):
        answers, source = obj.get("answers", []), obj.get("source")
        if not isinstance(obj.get("question"), str) or not isinstance(answers, list) or not (answers or source):
            raise UserError(
                f"{path}: record {n} needs a 'question' string and a non-empty 'answers' list (or a 'source').",
                hint=f'e.g. {{"id": "q1", "question": "...", "answers": ["{style.example}"]}}',
            )
        unparsed = [a for a in answers if not style.answer_keys(str(a))]
        if unparsed:
            raise UserError(
                f"{path}: record {n} has an answer that cites nothing: {unparsed[0]!r}.",
                hint=f'Write answers as citations, e.g. "{style.example}".',
            )
        items.append(EvalItem(id=str(obj.get("id", n)), question=obj["question"], answers=[str(a) for a in answers],
                              source=str(source) if source else None, split=obj.get("split")))
    if not items:
        raise UserError(f"{path} has no questions.")
    return items


def from_source(chunk: Chunk, source: str) -> bool:
    """Is ``chunk`` from the document ``source`` names ("guidance/leave.txt" names /data/guidance/leave.txt)?"""
    path, name = Path(chunk.source).as_posix(), Path(source).as_posix().lstrip("./")
    return path == name or path.endswith(f"/{name}")


def first_hit_rank(chunks: list[Chunk], answers: list[str], cache: dict[str, set[Hashable]],
                   style: CitationStyle = GENERIC, source: str | None = None) -> int | None:
    """1-based rank of the first chunk that cites an answer or, when ``source`` is given, comes from that
    document; None when none does."""
    for rank, chunk in enumerate(chunks, start=1):
        if source is not None and from_source(chunk, source):
            return rank
        if chunk.id not in cache:
            cache[chunk.id] = style.passage_keys(chunk)
        if any(answer_is_cited(style, a, cache[chunk.id]) for a in answers):
            return rank
    return None


def evaluate(searcher: Searcher, items: list[EvalItem], k: int = 5, style: CitationStyle = GENERIC) -> dict[str, Any]:
    """{"k", "n", "dense": {"recall", "mrr"}, "hybrid": {...}, "questions": [per-question ranks and top hits]}."""
    cache: dict[str, set[Hashable]] = {}
    rows = []
    for item in items:
        row: dict[str, Any] = {"id": item.id, "question": item.question, "answers": item.answers}
        for mode in ("dense", "hybrid"):
            hits = searcher.search(item.question, k=k, hybrid=mode == "hybrid")
            row[f"{mode}_rank"] = first_hit_rank([h.chunk for h in hits], item.answers, cache, style,
                                                 source=None if item.answers else item.source)
            row[f"{mode}_top"] = [h.citation for h in hits]
        rows.append(row)
    out: dict[str, Any] = {"k": k, "n": len(rows)}
    for mode in ("dense", "hybrid"):
        ranks = [r[f"{mode}_rank"] for r in rows]
        out[mode] = {
            "recall": sum(r is not None for r in ranks) / len(ranks),
            "mrr": sum(1.0 / r for r in ranks if r is not None) / len(ranks),
        }
    out["default"] = "hybrid" if searcher.hybrid else "dense"
    out["questions"] = rows
    return out
