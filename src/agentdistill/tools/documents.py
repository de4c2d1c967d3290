"""A search over the run's own documents, for any domain: ``search_documents(query, top_k)``.

It reads the run directory's ``chunks.jsonl`` and index through ``corpus.search.Searcher``, opened on
first use, so building the tool costs nothing until the agent searches. Each passage is one line led by
its citation (the chunk's section path), ``[i] <citation>: <text>``, trimmed so that the whole
observation fits a small student's context. Under the run's similarity floor (``corpus.min_similarity``)
the search says that the documents do not cover the query: the right answer is then to say so, not to
quote the nearest unrelated passage.

The agent's runtime also hands the search the user's latest message (``asked``, not a model argument):
its ranking is interleaved with the query's (``Searcher.search_interleaved``) so the passage the asker's
own words find is in view even when a small model's query dropped them (``corpus.search_asked``), and
shown first (``corpus.asked_leads``): a small model answers from the first passage.

A pack may offer the same search under its own name and description (``DocumentSearch.tool``): what the
documents are about is what tells a model when to search.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args

from agentdistill.config import RunConfig
from agentdistill.run_layout import RunLayout
from agentdistill.tools.spec import Tool

OBSERVATION_CHARS = 1200  # ~300 tokens: what one observation may take of a small model's context
DEFAULT_TOP_K = 3
# The passages a search may return, as the closed set it is: a model then writes one of them, or leaves the
# default, where a plain integer let a small one write a figure of the question there ("top_k": 45).
TopK = Literal[1, 2, 3, 4, 5]
MAX_TOP_K = max(get_args(TopK))
NOT_COVERED_OBSERVATION = "No passage in the documents is about"
CITATION_END = ": "  # where a passage's citation ends; citations never hold it (see ``citation``)


def trim(text: str, limit: int) -> str:
    """A passage as one line, without its Markdown heading (the citation names the section), cut at a word."""
    text = text.strip()
    if text.startswith("#"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " ..."


def passage_chars(n_passages: int, citation_chars: int) -> int:
    """How many characters of a passage's text a search of ``n_passages`` shows after its citation."""
    return max(OBSERVATION_CHARS // n_passages - citation_chars - 6, 120)


def citation(section_path: str) -> str:
    """The citation a passage is shown with: its section path, with ": " written " - " so the passage's
    text starts at the first ": " of its line."""
    return " ".join(section_path.split()).replace(CITATION_END, " - ")


def passage_line(number: int, section_path: str, text: str, chars: Callable[[int], int]) -> str:
    """One passage of a tool's result, ``[number] <citation>: <text>``, its text cut to ``chars(len(citation))``
    characters: every reader of a result (agent/quotes.py, the teachers) takes the text from the first ": " on."""
    cite = citation(section_path)
    return f"[{number}] {cite}{CITATION_END}{trim(text, chars(len(cite)))}"


def shown_text(section_path: str, text: str, top_k: int = DEFAULT_TOP_K) -> str:
    """A passage's text as a search of ``top_k`` results shows it (a question writer's facts come from here)."""
    return trim(text, passage_chars(top_k, len(citation(section_path))))


class DocumentSearch:
    """The search tool over one run directory's corpus."""

    def __init__(self, run_dir: Path | None, cfg: RunConfig | None = None):
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.cfg = cfg
        self._searcher: Any = None
        self._lock = threading.Lock()  # a call that timed out may still be opening the index

    def _open(self) -> Any:
        with self._lock:
            if self._searcher is None:
                if self.run_dir is None or not RunLayout(self.run_dir).chunks.exists():
                    where = self.run_dir or "no run directory was given"
                    raise RuntimeError(f"the documents are not available ({where}); they must be ingested first "
                                       "(agentdistill ingest PATH --run DIR)")
                from agentdistill.corpus.search import Searcher

                self._searcher = Searcher.open(self.run_dir, self.cfg)
            return self._searcher

    def search_documents(self, query: str, top_k: TopK = DEFAULT_TOP_K, *, asked: str | None = None) -> str:
        """Search the documents for passages about a topic.

        Args:
            query: What to look for, in plain words, e.g. "how long a refund takes".
            top_k: How many passages to return (1 to 5).
        """
        if not query.strip():
            raise ValueError('query is empty; say what to look for, e.g. "opening hours"')
        if not 1 <= top_k <= MAX_TOP_K:
            raise ValueError(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
        searcher = self._open()
        queries = [query]
        if asked and asked.strip() and (self.cfg is None or self.cfg.corpus.search_asked):
            queries += [asked] if " ".join(asked.lower().split()) != " ".join(query.lower().split()) else []
        floor = self.cfg.corpus.min_similarity if self.cfg is not None else 0.0
        if floor > 0:
            # Whether the documents cover it is the query's to say: a question's many words ("my company ...
            # if I quit") clear the floor on topics the documents do not hold. The asker's words only help
            # find and order passages for a query that is covered.
            queries = [q for q in queries if (best := searcher.dense(q, 1)) and best[0][1] >= floor]
            if not queries or queries[0] != query:
                return f"{NOT_COVERED_OBSERVATION} {query!r}: the documents do not cover it."
        if len(queries) == 1:
            hits = searcher.search(queries[0], k=top_k)
        else:
            leads = self.cfg is None or self.cfg.corpus.asked_leads
            hits = searcher.search_interleaved(queries[::-1] if leads else queries, k=top_k, in_order=leads)
        if not hits:
            return f"{NOT_COVERED_OBSERVATION} {query!r}: the documents do not cover it."
        chars = functools.partial(passage_chars, len(hits))
        return "\n".join(passage_line(i, hit.citation, hit.chunk.text, chars) for i, hit in enumerate(hits, start=1))

    def relevance(self, text: str) -> float:
        """The cosine similarity of ``text`` to its closest passage (0 when the documents hold none)."""
        best = self._open().dense(text, 1)
        return best[0][1] if best else 0.0

    def tool(self, name: str | None = None, description: str | None = None, fn: Any = None) -> Tool:
        """The search as a tool named ``name`` (default: the function's own name), reporting its ``relevance``;
        ``fn``: a wrapper of ``search_documents`` with its own name and docstring. The first search opens the
        index and loads the embedder (seconds to a minute on a busy CPU), so it may run longer than other tools
        before it counts as hung."""
        timeout = max(self.cfg.tools.timeout_s, 120.0) if self.cfg is not None else 120.0
        tool = Tool.from_function(fn or self.search_documents, name=name, description=description, timeout_s=timeout)
        tool.relevance = self.relevance
        return tool


def warm_up(registry: Any, name: str = "search_documents") -> None:
    """Open the index before the first timed call (loading the embedder takes seconds)."""
    tool = registry.get(name)
    if tool is not None:
        with contextlib.suppress(Exception):  # the real call reports any problem as an observation
            tool.fn(query="warm up")
