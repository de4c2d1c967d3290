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

from agentdistill.config import RunConfig
from agentdistill.domains.uae_labour.citations import extract_citations
from agentdistill.domains.uae_labour.laws import KNOWN_LAWS, law_name, resolve_law
from agentdistill.run_layout import RunLayout
from agentdistill.tools.documents import (
    DEFAULT_TOP_K,
    NOT_COVERED_OBSERVATION,
    OBSERVATION_CHARS,
    DocumentSearch,
    TopK,
    passage_line,
)

__all__ = ["NOT_COVERED_OBSERVATION", "LabourLawLookup"]

class LabourLawLookup:
    """``search_labour_law`` (the documents search, tools/documents.py, under the law's name) and
    ``get_article`` over one run directory's corpus."""

    def __init__(self, run_dir: Path | None, cfg: RunConfig | None = None):
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.cfg = cfg
        self.documents = DocumentSearch(run_dir, cfg)
        self._chunks: list[Any] | None = None
        self._lock = threading.Lock()  # a call that timed out may still be opening the index

    def _need_run(self) -> Path:
        if self.run_dir is None or not RunLayout(self.run_dir).chunks.exists():
            where = self.run_dir or "no run directory was given"
            raise RuntimeError(f"the corpus is not available ({where}); the documents must be ingested first "
                               "(agentdistill ingest PATH --run DIR)")
        return self.run_dir

    def _chunks_list(self) -> list[Any]:
        with self._lock:
            if self._chunks is None:
                from agentdistill.jsonl import read_records
                from agentdistill.records import Chunk

                self._chunks = read_records(RunLayout(self._need_run()).chunks, Chunk)
            return self._chunks

    def search_labour_law(self, query: str, top_k: TopK = DEFAULT_TOP_K, *, asked: str | None = None) -> str:
        """Search the UAE labour law for passages about a topic.

        Args:
            query: What to look for, in plain words, e.g. "annual leave during probation".
            top_k: How many passages to return (1 to 5).
        """
        return self.documents.search_documents(query, top_k, asked=asked)

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
        parts = [_article_first(c.text, wanted, keep_rest=c in by_section) for c in found]
        each = OBSERVATION_CHARS // len(found)
        return "\n".join(passage_line(i, c.section_path, text, lambda cite_chars: max(each - cite_chars, 200))
                         for i, (c, text) in enumerate(zip(found, parts, strict=True), start=1))


def _article_first(text: str, wanted: str, keep_rest: bool) -> str:
    """A passage's sentences that cite ``wanted`` first, then (with ``keep_rest``) the rest in text order.

    A passage filed under several articles states each in its own sentences; asked for one, the reader (and a
    student that answers from the first sentences it is shown) should meet that article's own words first,
    and they must survive the observation's length limit. A passage that only mentions the article keeps
    just the sentences that cite it: the rest is about other things.
    """
    heading, _, body = text.partition("\n\n") if text.startswith("#") else ("", "", text)
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z])", " ".join(body.split()))
    citing = [i for i, s in enumerate(sentences) if wanted in extract_citations(s)]
    if not citing:
        return text
    order = citing + ([i for i in range(len(sentences)) if i not in citing] if keep_rest else [])
    body = " ".join(sentences[i] for i in order)
    return f"{heading}\n\n{body}" if heading else body
