"""Retrieval quality and speed: dense (MiniLM + Chroma) against hybrid (dense + BM25, reciprocal rank fusion).

For each chunk size, the corpus is ingested into a fresh run directory (timed), then every question
of the eval set is searched both ways; a question is answered at k when one of its top-k chunks cites
an expected article (agentdistill.corpus.recall). This is the measurement behind the default of
``corpus.hybrid``.

    python benchmarks/retrieval.py                       # the UAE example corpus and its 100 questions
    python benchmarks/retrieval.py --corpus docs/ --eval questions.jsonl --chunk-tokens 256 512

Prints one table and writes the numbers to benchmarks/results/retrieval.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from agentdistill.config import RunConfig  # noqa: E402
from agentdistill.corpus import ingest  # noqa: E402
from agentdistill.corpus.recall import first_hit_rank, load_eval  # noqa: E402
from agentdistill.corpus.search import Searcher  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "uae_labour"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, nargs="+", default=[EXAMPLE / "corpus"])
    ap.add_argument("--eval", type=Path, default=EXAMPLE / "retrieval_eval.jsonl")
    ap.add_argument("--chunk-tokens", type=int, nargs="+", default=[512])
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 3, 5])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "retrieval.json")
    args = ap.parse_args()

    items = load_eval(args.eval)
    kmax = max(args.ks)
    rows = []
    for size in args.chunk_tokens:
        cfg = RunConfig()
        cfg.corpus.chunk_tokens = size
        cfg.corpus.chunk_overlap = size // 8
        with tempfile.TemporaryDirectory() as run:
            t0 = time.perf_counter()
            report = ingest(args.corpus, Path(run), cfg, progress=False)
            ingest_s = time.perf_counter() - t0
            searcher = Searcher.open(Path(run), cfg)
            for hybrid in (False, True):
                cache: dict = {}
                searcher._query_vectors.clear()  # both modes pay for embedding their queries
                t0 = time.perf_counter()
                ranks = [first_hit_rank([h.chunk for h in searcher.search(q.question, k=kmax, hybrid=hybrid)],
                                        q.answers, cache) for q in items]  # fmt: skip
                query_ms = 1000 * (time.perf_counter() - t0) / len(items)
                row = {"chunk_tokens": size, "mode": "hybrid" if hybrid else "dense", "chunks": report.chunks,
                       "ingest_s": round(ingest_s, 1), "query_ms": round(query_ms, 1)}  # fmt: skip
                for k in args.ks:
                    row[f"recall@{k}"] = sum(r is not None and r <= k for r in ranks) / len(ranks)
                    row[f"mrr@{k}"] = sum(1 / r for r in ranks if r is not None and r <= k) / len(ranks)
                row["missed@5"] = [q.id for q, r in zip(items, ranks, strict=True) if r is None or r > 5]
                rows.append(row)

    table = Table(title=f"retrieval on {args.eval.name} ({len(items)} questions, {os.cpu_count()} CPUs)")
    cols = ["chunk_tokens", "mode", "chunks", "ingest_s", "query_ms"]
    cols += [f"{m}@{k}" for m in ("recall", "mrr") for k in args.ks]
    for c in cols:
        table.add_column(c, justify="right")
    for r in rows:
        table.add_row(*(f"{r[c]:.3f}" if isinstance(r[c], float) and "@" in c else str(r[c]) for c in cols))
    Console(width=200).print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
