"""Tools that read the run's corpus: search it, or fetch the passages that cite one article.

Both are bound to a run directory (its ``chunks.jsonl`` and Chroma ``index/``), opened on first use so
that loading the tools costs nothing until the agent actually searches. Observations are kept short
(a few hundred characters per passage, each led by its citation) because the student's whole context
is 1-2k tokens; the citation is what the answer must quote.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from agentdistill.citations import extract_citations
from agentdistill.config import RunConfig
from agentdistill.domains.uae_labour.laws import KNOWN_LAWS, law_name, resolve_law

OBSERVATION_CHARS = 1200  # ~300 tokens: what one observation may take of a small model's context
DEFAULT_TOP_K = 3
# How a search reports that nothing in the documents is about the query: the agent's right answer is
# then to say the documents do not cover it, not to quote the nearest unrelated passage.
NOT_COVERED_OBSERVATION = "No passage in the documents is about"


def shown_text(text: str, top_k: int = DEFAULT_TOP_K) -> str:
    """A passage as a search of ``top_k`` results shows it (about OBSERVATION_CHARS / top_k characters)."""
    return _trim(text, max(OBSERVATION_CHARS // top_k - 80, 120))


def _trim(text: str, limit: int) -> str:
    """The passage as one line, without its Markdown heading (the citation already names the section)."""
    text = text.strip()
    if text.startswith("#"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut + " ..."


class LabourLawLookup:
    """``search_labour_law`` and ``get_article`` over one run directory's corpus."""

    def __init__(self, run_dir: Path | None, cfg: RunConfig | None = None):
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.cfg = cfg
        self._searcher: Any = None
        self._chunks: list[Any] | None = None
        self._lock = threading.Lock()  # a call that timed out may still be opening the index

    def _need_run(self) -> Path:
        if self.run_dir is None or not (self.run_dir / "chunks.jsonl").exists():
            where = self.run_dir or "no run directory was given"
            raise RuntimeError(f"the corpus is not available ({where}); the documents must be ingested first "
                               "(agentdistill ingest PATH --run DIR)")
        return self.run_dir

    def _chunks_list(self) -> list[Any]:
        with self._lock:
            if self._chunks is None:
                from agentdistill.jsonl import read_records
                from agentdistill.records import Chunk

                self._chunks = read_records(self._need_run() / "chunks.jsonl", Chunk)
            return self._chunks

    def search_labour_law(self, query: str, top_k: int = DEFAULT_TOP_K) -> str:
        """Search the UAE labour law for passages about a topic.

        Args:
            query: What to look for, in plain words, e.g. "annual leave during probation".
            top_k: How many passages to return (1 to 5).
        """
        if not query.strip():
            raise ValueError("query is empty; say what to look for, e.g. \"overtime pay at night\"")
        if not 1 <= top_k <= 5:
            raise ValueError(f"top_k must be between 1 and 5, got {top_k}")
        with self._lock:
            if self._searcher is None:
                run_dir = self._need_run()
                from agentdistill.corpus.search import Searcher

                self._searcher = Searcher.open(run_dir, self.cfg)
        hits = self._searcher.search(query, k=top_k)
        if not hits:
            return f"No passage matches {query!r}."
        floor = self.cfg.corpus.min_similarity if self.cfg is not None else 0.0
        if floor > 0:
            best = self._searcher.dense(query, 1)
            if not best or best[0][1] < floor:
                return f"{NOT_COVERED_OBSERVATION} {query!r}: the documents do not cover it."
        each = OBSERVATION_CHARS // len(hits)
        lines = []
        for i, h in enumerate(hits, start=1):
            head = f"[{i}] {h.citation}: "
            lines.append(head + _trim(h.chunk.text, max(each - len(head), 120)))
        return "\n".join(lines)

    def get_article(self, law: str, article: int) -> str:
        """Get the passages that explain one article of a UAE labour law.

        Args:
            law: The law, e.g. "Federal Decree-Law 33/2021", "FDL 33/2021", "Cabinet Resolution 1/2022"
                or "domestic workers law".
            article: The article number, e.g. 51.
        """
        lid = resolve_law(law)
        if lid is None:
            valid = "; ".join(f"{name} ({about})" for name, about in KNOWN_LAWS.values())
            raise ValueError(f"unknown law {law!r}. Valid laws: {valid}")
        if article < 1:
            raise ValueError(f"article must be a positive number, got {article}")
        wanted = f"{lid} Art. {article}"
        # A passage filed under the article (its section path) explains it; one that only mentions it
        # in passing is a weaker answer, so it comes after.
        by_section, by_text = [], []
        for chunk in self._chunks_list():
            if wanted in extract_citations(chunk.section_path):
                by_section.append(chunk)
            elif wanted in extract_citations(chunk.text):
                by_text.append(chunk)
        found = (by_section + by_text)[:2]
        if not found:
            cited = sorted({int(c.rsplit(" ", 1)[1]) for ch in self._chunks_list()
                            for c in extract_citations(ch.section_path + "\n" + ch.text) if c.startswith(lid + " ")})
            listing = ", ".join(map(str, cited)) if cited else "none"
            return f"No passage covers {law_name(lid)}, Art. {article}. Articles of this law in the corpus: {listing}."
        parts = [c.text if c in by_section else _sentences_citing(c.text, wanted) for c in found]
        each = OBSERVATION_CHARS // len(found)
        return "\n".join(f"[{i}] {c.section_path}: {_trim(text, max(each - len(c.section_path), 200))}"
                         for i, (c, text) in enumerate(zip(found, parts, strict=True), start=1))


def _sentences_citing(text: str, wanted: str) -> str:
    """The sentences of a passage that cite ``wanted``: the rest of the passage is about other things."""
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z])", " ".join(text.split()))
    picked = [s for s in sentences if wanted in extract_citations(s)]
    return " ".join(picked) if picked else text
