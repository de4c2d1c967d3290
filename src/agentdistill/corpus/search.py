"""Search a run's chunks: dense (Chroma, cosine) alone, or fused with BM25 by reciprocal rank fusion.

Dense vectors find paraphrases ("fired" ~ "dismissal") but blur exact terms; BM25 finds exact terms
("Article 12", "USD", "probation") but misses paraphrases. Weighted reciprocal rank fusion (Cormack
et al., 2009) combines the two rankings without calibrating their scores:

    score(d) = 1 / (RRF_K + rank_dense(d)) + BM25_WEIGHT / (RRF_K + rank_bm25(d)),   ranks from 1, RRF_K = 60

Each ranking contributes its top ``CANDIDATES`` chunks. BM25 alone is the weaker ranker here
(recall@5 0.90 against 0.96 dense on the bundled example's questions), so it gets half the weight. On that
set hybrid reached recall@5 0.98 / MRR@5 0.892 against dense 0.96 / 0.887 (equal weights: 0.98 /
0.880), hence ``corpus.hybrid: true`` by default. On the raw law texts the same questions gave dense
0.84 / 0.663 and hybrid 0.83 / 0.621: measure your own corpus with ``agentdistill search --eval``
(benchmarks/retrieval.py prints the full table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agentdistill.config import RunConfig, load_run_config
from agentdistill.corpus.embed import REFERENCE, VARIANTS, Embedder, load_embedder, passage
from agentdistill.corpus.index import ChunkIndex
from agentdistill.corpus.ingest import load_chunks, load_manifest
from agentdistill.errors import UserError
from agentdistill.records import Chunk
from agentdistill.run_layout import RunLayout

RRF_K = 60
BM25_WEIGHT = 0.5
CANDIDATES = 50
PATH_WEIGHT = 1  # times a chunk's section path is written into its BM25 text: >1 weights titles above body text
# One hit per section (its best chunk, with its neighbouring chunks of that section as ``Hit.neighbours``): a long
# article or page split in chunks no longer fills several of the k slots, which raised recall@5 on real documents
# (benchmarks/README.md, retrieval).
PER_SECTION = True


@dataclass
class Hit:
    chunk: Chunk
    score: float  # cosine similarity (dense) or fused reciprocal-rank score (hybrid)
    citation: str  # the chunk's section path, e.g. "Federal Law 5/2020 > Art. 12 > ..."
    # with ``search(..., per_section=True)``: the chunks right before and after it in its section, reading order
    neighbours: list[Chunk] = field(default_factory=list)


def _stemmer():
    from nltk.stem.snowball import SnowballStemmer

    stem = SnowballStemmer("english").stem
    return lambda words: [stem(w) for w in words]


class BM25:
    """Okapi BM25 over the chunks' passages (bm25s), English stop words removed, Snowball-stemmed."""

    def __init__(self, texts: list[str]):
        import bm25s

        self._bm25s = bm25s
        self._stem = _stemmer()
        self.retriever = bm25s.BM25()
        self.retriever.index(self._tokenize(texts, ids=True), show_progress=False)

    def _tokenize(self, texts: list[str], ids: bool):
        return self._bm25s.tokenize(texts, stopwords="en", stemmer=self._stem, return_ids=ids, show_progress=False)

    def scores(self, query: str):
        tokens = self._tokenize([query], ids=False)[0]
        return self.retriever.get_scores(tokens) if tokens else None


class Searcher:
    def __init__(self, chunks: list[Chunk], index: ChunkIndex, embedder: Embedder, hybrid: bool = True):
        self.chunks = chunks
        self.by_id = {c.id: c for c in chunks}
        self.position = {c.id: i for i, c in enumerate(chunks)}  # chunks.jsonl is in document and reading order
        self.index = index
        self.embedder = embedder
        self.hybrid = hybrid
        self.bm25_weight = BM25_WEIGHT
        self.rrf_k = RRF_K
        self.path_weight = PATH_WEIGHT
        self.per_section = PER_SECTION
        self._bm25: BM25 | None = None
        self._query_vectors: dict[str, np.ndarray] = {}

    @classmethod
    def open(cls, run_dir: Path, cfg: RunConfig | None = None) -> Searcher:
        """The searcher of an ingested run (its chunks, index, and the embedder it was built with)."""
        run_dir = Path(run_dir)
        cfg = cfg or load_run_config(run_dir)
        chunks = load_chunks(run_dir)
        index = ChunkIndex(RunLayout(run_dir).index)
        if index.count() != len(chunks):
            raise UserError(
                f"{run_dir}: the index holds {index.count()} chunks but chunks.jsonl {len(chunks)}.",
                hint=f"An ingest was interrupted; run `agentdistill ingest ... --run {run_dir}` again.",
            )
        settings = load_manifest(run_dir).get("settings") or {}
        # Queries are embedded as the index's passages were: with its embedder and variant (corpus/embed.py), which
        # may differ from the config's until the next ingest re-embeds; indexes made before variants hold "torch".
        variant = settings.get("embed_variant", REFERENCE)
        if variant not in VARIANTS:
            raise UserError(
                f"{run_dir}: the index was embedded with the variant {variant!r}, which this version cannot run.",
                hint=f"Re-embed it: `agentdistill ingest ... --run {run_dir}` with corpus.embed_variant one of "
                f"{', '.join(VARIANTS)}.",
            )
        embedder = load_embedder(settings.get("embedder", cfg.models.embedder), cfg.corpus.embed_batch_size,
                                 variant, cfg.models.cache_dir)
        return cls(chunks, index, embedder, hybrid=cfg.corpus.hybrid)

    def dense(self, query: str, n: int = CANDIDATES) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity), best first."""
        if query not in self._query_vectors:  # an eval asks each question twice (dense, hybrid)
            if len(self._query_vectors) > 1024:
                self._query_vectors.clear()
            self._query_vectors[query] = self.embedder.encode([query])[0]
        return self.index.query(self._query_vectors[query], n)

    def lexical(self, query: str, n: int = CANDIDATES) -> list[tuple[str, float]]:
        """(chunk id, BM25 score), best first; chunks sharing no term with the query are left out."""
        if self._bm25 is None:
            self._bm25 = BM25([passage("\n".join([c.section_path] * self.path_weight), c.text) for c in self.chunks])
        scores = self._bm25.scores(query)
        if scores is None:
            return []
        best = np.argsort(-scores, kind="stable")[:n]
        return [(self.chunks[i].id, float(scores[i])) for i in best if scores[i] > 0]

    def neighbours(self, chunk: Chunk) -> list[Chunk]:
        """The chunks right before and after ``chunk`` in its section (same document and section path)."""
        i = self.position[chunk.id]
        near = [self.chunks[j] for j in (i - 1, i + 1) if 0 <= j < len(self.chunks)]
        return [c for c in near if c.doc_id == chunk.doc_id and c.section_path == chunk.section_path]

    def _fuse(self, rankings: list[tuple[float, list[tuple[str, float]]]]) -> dict[str, float]:
        fused: dict[str, float] = {}
        for weight, ranking in rankings:
            for rank, (cid, _) in enumerate(ranking, start=1):
                fused[cid] = fused.get(cid, 0.0) + weight / (self.rrf_k + rank)
        return fused

    def ranking(self, query: str, n: int = CANDIDATES, hybrid: bool | None = None) -> list[tuple[str, float]]:
        """The ``n`` best chunk ids for ``query`` with their scores, best first."""
        if not query.strip():
            raise UserError("the search query is empty.", hint='agentdistill search "annual leave days" --run DIR')
        hybrid = self.hybrid if hybrid is None else hybrid
        dense = self.dense(query, n)
        if not hybrid:
            return dense
        return sorted(self._fuse([(1.0, dense), (self.bm25_weight, self.lexical(query, n))]).items(),
                      key=lambda kv: -kv[1])  # stable: dense order breaks ties

    def search(self, query: str, k: int = 5, hybrid: bool | None = None, per_section: bool | None = None) -> list[Hit]:
        """The ``k`` best chunks for ``query``, best first."""
        return self.hits(self.ranking(query, max(CANDIDATES, k), hybrid), k, per_section)

    def search_interleaved(self, queries: list[str], k: int = 5, per_section: bool | None = None,
                           in_order: bool = False) -> list[Hit]:
        """The ``k`` best chunks for several queries at once (the tool's query and the asker's own words).

        A chunk's place is its best place in any query's ranking, ties going to the chunk the other queries
        rank higher: so the top of each query comes first. Summed reciprocal ranks (``_fuse``) would put
        first a chunk that every query ranks in the middle, and in a corpus of a few hundred chunks every
        ranking holds almost every chunk. With ``in_order``, ties go to the earlier query's chunk instead:
        the first query's top leads.
        """
        n = max(CANDIDATES, k)
        rankings = [self.ranking(q, n) for q in queries]
        best: dict[str, tuple[int, int]] = {}  # chunk id -> (its best rank, the first query ranking it there)
        for which, ranking in enumerate(rankings):
            for rank, (cid, _) in enumerate(ranking, start=1):
                best[cid] = min(best.get(cid, (rank, which)), (rank, which))
        together = self._fuse([(1.0, r) for r in rankings])
        order = sorted(best, key=lambda cid: (best[cid][0], best[cid][1] if in_order else 0, -together[cid]))
        return self.hits([(cid, together[cid]) for cid in order], k, per_section)

    def hits(self, scored: list[tuple[str, float]], k: int, per_section: bool | None = None) -> list[Hit]:
        """The first ``k`` of ``scored`` as hits, one per section where ``per_section``."""
        per_section = self.per_section if per_section is None else per_section
        hits: list[Hit] = []
        seen: set[tuple[str, str]] = set()
        for cid, s in scored:
            chunk = self.by_id[cid]
            if per_section:
                if (chunk.doc_id, chunk.section_path) in seen:
                    continue
                seen.add((chunk.doc_id, chunk.section_path))
            hits.append(Hit(chunk=chunk, score=s, citation=chunk.section_path,
                            neighbours=self.neighbours(chunk) if per_section else []))
            if len(hits) == k:
                break
        return hits
