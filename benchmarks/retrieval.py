"""Retrieval quality and speed: dense (MiniLM + Chroma), hybrid (dense + BM25, reciprocal rank fusion) and
variants of the search.

For each chunk size, the corpus is ingested into a fresh run directory (timed), then every question of the
eval set is searched each way; a question is answered at k when one of its top-k chunks cites an expected
article, or, for a question whose answer is a whole page (no citations), comes from its source document
(agentdistill.corpus.recall). Questions that name their ``source`` document also get document-level columns
(``doc@k``: a top-k chunk comes from that document). This is the measurement behind the search defaults.

    python benchmarks/retrieval.py                       # the UAE example corpus and its 100 questions
    python benchmarks/retrieval.py --corpus /work/shared/data/uae_law \\
        --eval benchmarks/data/uae_law_real_questions.jsonl --split dev
    python benchmarks/retrieval.py --search hybrid hybrid,per_section=False hybrid,bm25_weight=1.0

A ``--search`` entry is ``dense`` (no BM25), ``hybrid`` (the defaults) or either followed by
``,attribute=value`` changes to the Searcher (corpus/search.py), one on/off row each.
Prints one table and writes the numbers to benchmarks/results/retrieval.json.
"""

from __future__ import annotations

import argparse
import ast
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
from agentdistill.domains import citation_style  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "uae_labour"


def searcher_for(run: Path, cfg: RunConfig, spec: str) -> Searcher:
    """A searcher of ``run`` set as ``spec`` says: "dense" or "hybrid", then ",attribute=value" changes."""
    mode, *changes = spec.split(",")
    if mode not in ("dense", "hybrid"):
        raise SystemExit(f"--search {spec!r}: start with 'dense' or 'hybrid'")
    searcher = Searcher.open(run, cfg)
    searcher.hybrid = mode == "hybrid"
    for change in changes:
        name, _, value = change.partition("=")
        if not hasattr(searcher, name.strip()):
            raise SystemExit(f"--search {spec!r}: the Searcher has no attribute {name.strip()!r}")
        setattr(searcher, name.strip(), ast.literal_eval(value.strip()))
    return searcher


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, nargs="+", default=[EXAMPLE / "corpus"])
    ap.add_argument("--eval", type=Path, default=EXAMPLE / "retrieval_eval.jsonl")
    ap.add_argument("--split", choices=["dev", "test"], help="only the eval questions of this split")
    ap.add_argument("--packs", nargs="+", default=["uae_labour"], help="domain packs (their citation style)")
    ap.add_argument("--chunk-tokens", type=int, nargs="+", default=[512])
    ap.add_argument("--search", nargs="+", default=["dense", "hybrid"], help="search variants, one row each")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 3, 5])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "retrieval.json")
    args = ap.parse_args()

    cfg = RunConfig()
    cfg.tools.packs = args.packs
    style = citation_style(cfg)
    items = [q for q in load_eval(args.eval, style) if args.split is None or q.split == args.split]
    if not items:
        raise SystemExit(f"{args.eval} has no {args.split} questions")
    with_source = [q for q in items if q.source]
    kmax = max(args.ks)
    rows = []
    for size in args.chunk_tokens:
        cfg.corpus.chunk_tokens = size
        cfg.corpus.chunk_overlap = size // 8
        with tempfile.TemporaryDirectory() as run:
            t0 = time.perf_counter()
            report = ingest(args.corpus, Path(run), cfg, progress=False)
            ingest_s = time.perf_counter() - t0
            for spec in args.search:
                searcher = searcher_for(Path(run), cfg, spec)
                cache: dict = {}
                t0 = time.perf_counter()
                top = [[h.chunk for h in searcher.search(q.question, k=kmax)] for q in items]
                query_ms = 1000 * (time.perf_counter() - t0) / len(items)
                # A question without citations is answered by its source page; doc ranks look at the page alone.
                ranks = [first_hit_rank(chunks, q.answers, cache, style, source=None if q.answers else q.source)
                         for q, chunks in zip(items, top, strict=True)]  # fmt: skip
                doc_ranks = [first_hit_rank(chunks, [], cache, style, source=q.source)
                             for q, chunks in zip(items, top, strict=True) if q.source]  # fmt: skip
                row = {"chunk_tokens": size, "search": spec, "n": len(items), "chunks": report.chunks,
                       "ingest_s": round(ingest_s, 1), "query_ms": round(query_ms, 1)}  # fmt: skip
                for k in args.ks:
                    row[f"recall@{k}"] = sum(r is not None and r <= k for r in ranks) / len(ranks)
                row[f"mrr@{kmax}"] = sum(1 / r for r in ranks if r is not None) / len(ranks)
                for k in args.ks if doc_ranks else []:
                    row[f"doc@{k}"] = sum(r is not None and r <= k for r in doc_ranks) / len(doc_ranks)
                row["missed@5"] = [q.id for q, r in zip(items, ranks, strict=True) if r is None or r > 5]
                rows.append(row)

    title = f"retrieval on {args.eval.name}{f' ({args.split})' if args.split else ''}: {len(items)} questions"
    title += f", {len(with_source)} with a source document, {os.cpu_count()} CPUs"
    table = Table(title=title)
    cols = ["chunk_tokens", "search", "chunks", "ingest_s", "query_ms"]
    cols += [f"recall@{k}" for k in args.ks] + [f"mrr@{kmax}"] + ([f"doc@{k}" for k in args.ks] if with_source else [])
    for c in cols:
        table.add_column(c, justify="left" if c == "search" else "right")
    for r in rows:
        table.add_row(*(f"{r[c]:.3f}" if isinstance(r[c], float) and "@" in c else str(r[c]) for c in cols))
    Console(width=200).print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
