"""Ingest speed per phase and per embedding variant, and the retrieval recall each variant keeps.

For each variant of ``corpus.embed_variant`` (corpus/embed.py), the corpus is ingested by agentdistill's
own ``ingest`` into a fresh run directory; its report gives the seconds of each phase (read, chunk,
embed, index, cluster; the models are loaded and warmed up before, and not counted). Tokens are the
passages' tokens as the embedder sees them (its own tokenizer, truncated at its max_seq_length, [CLS] and
[SEP] included): what the embed phase computes on. Every phase's tokens/s divides that count by the
phase's seconds. ``cos`` is the least (and mean) cosine between a variant's vectors and the reference
(``torch``) vectors of the first 64 passages; ``embed tok/CPU-s`` divides the tokens by the CPU seconds the
process spent in the embedder (all threads), a cost that other work on the machine changes less than the
wall time. On the bundled example corpus the eval's questions are
searched too (agentdistill.corpus.recall): recall@k of dense search (the embedder alone) and hybrid (the
default). The machine is shared: the load average before and after each ingest is printed with it.

    python benchmarks/ingest.py                                    # the UAE example corpus, every variant
    python benchmarks/ingest.py --corpus ../shared/data/uae_law    # real law texts (~500 KB), no recall
    python benchmarks/ingest.py --variants torch onnx-int8 --batch-size 16 64 --threads 1 2 --repeat 3

Prints one table and writes the numbers to benchmarks/results/ingest.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from bench_common import cpu_model  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from agentdistill.config import RunConfig  # noqa: E402
from agentdistill.corpus import embed, ingest, load_chunks  # noqa: E402
from agentdistill.corpus.embed import VARIANTS, Embedder, passage  # noqa: E402
from agentdistill.corpus.index import ChunkIndex  # noqa: E402
from agentdistill.corpus.recall import first_hit_rank, load_eval  # noqa: E402
from agentdistill.corpus.search import Searcher  # noqa: E402
from agentdistill.domains import citation_style  # noqa: E402
from agentdistill.run_layout import RunLayout  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "uae_labour"
PHASES = ("read", "chunk", "embed", "index", "cluster")
SAMPLE = 64  # passages whose vectors are compared with the reference's




def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def one_run(paths: list[Path], cfg: RunConfig, embedder: Embedder, items, ks, reference: np.ndarray | None,
            style=None):
    """Ingest ``paths`` with ``embedder`` into a temp run; the phase seconds, token counts and recall."""
    shared = embed.load_embedder
    embed.load_embedder = lambda *args, **kwargs: embedder  # ingest embeds with this instance (its threads)
    cpu = [0.0]  # the process's CPU seconds (all threads) inside encode: the cost, whatever else runs on the machine

    def encode(texts: list[str], show_progress: bool = False) -> np.ndarray:
        start = time.process_time()
        try:
            return type(embedder).encode(embedder, texts, show_progress)
        finally:
            cpu[0] += time.process_time() - start

    embedder.encode = encode  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as run:
        load_before = os.getloadavg()[0]
        try:
            report = ingest(paths, Path(run), cfg, progress=False)
        finally:
            embed.load_embedder = shared
            del embedder.encode
        load_after = os.getloadavg()[0]
        texts = [passage(c.section_path, c.text) for c in load_chunks(Path(run))]
        ids = embedder.tokenizer(texts, truncation=True, max_length=embedder.max_seq_length)["input_ids"]
        full = embedder.tokenizer(texts, add_special_tokens=False)["input_ids"]
        row = {"chunks": report.chunks, "tokens": sum(map(len, ids)), "tokens_untruncated": sum(map(len, full)),
               "truncated_chunks": sum(len(x) + 2 > embedder.max_seq_length for x in full),
               "load_before": round(load_before, 2), "load_after": round(load_after, 2)}  # fmt: skip
        for phase in PHASES:
            s = report.phase_seconds[phase]
            row[f"{phase}_s"] = round(s, 3)
            row[f"{phase}_tok_s"] = round(row["tokens"] / s) if s > 0 else None
        row["embed_cpu_s"] = round(cpu[0], 3)
        row["embed_tok_cpu_s"] = round(row["tokens"] / cpu[0])
        total = sum(report.phase_seconds[p] for p in PHASES)
        row["total_s"], row["total_tok_s"] = round(total, 3), round(row["tokens"] / total)
        vecs = embedder.encode(texts[:SAMPLE])
        if reference is None:
            reference = vecs
        cos = (vecs * reference[: len(vecs)]).sum(1)
        row["cos_min"], row["cos_mean"] = round(float(cos.min()), 5), round(float(cos.mean()), 5)
        if items:
            chunks = load_chunks(Path(run))
            searcher = Searcher(chunks, ChunkIndex(RunLayout(run).index), embedder, hybrid=cfg.corpus.hybrid)
            for mode in ("dense", "hybrid"):
                cache: dict = {}
                hits = [searcher.search(q.question, k=max(ks), hybrid=mode == "hybrid") for q in items]
                pairs = zip(items, hits, strict=True)
                ranks = [first_hit_rank([h.chunk for h in found], q.answers, cache, style) for q, found in pairs]
                for k in ks:
                    row[f"{mode}_recall@{k}"] = sum(r is not None and r <= k for r in ranks) / len(ranks)
    return row, reference


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, nargs="+", default=[EXAMPLE / "corpus"])
    ap.add_argument("--eval", type=Path, default=None,
                    help="retrieval eval (JSONL); default: the example's, when the corpus is the example's")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--batch-size", type=int, nargs="+", default=[32])
    ap.add_argument("--threads", type=int, nargs="+", default=[0], help="0: the library's default")
    ap.add_argument("--repeat", type=int, default=1, help="ingests per setting; the fastest embed phase is kept")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 3, 5])
    ap.add_argument("--packs", nargs="+", default=["uae_labour"], help="domain packs (their citation style)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ingest.json")
    args = ap.parse_args()

    import torch

    default_threads = torch.get_num_threads()
    example = [p.resolve() for p in args.corpus] == [(EXAMPLE / "corpus").resolve()]
    eval_path = args.eval or (EXAMPLE / "retrieval_eval.jsonl" if example else None)
    cfg = RunConfig()
    cfg.tools.packs = args.packs
    style = citation_style(cfg)
    items = load_eval(eval_path, style) if eval_path else []
    reference = None
    variants = [v for v in VARIANTS if v in args.variants]  # the reference first: the others are compared with it
    if "torch" not in variants:
        variants.insert(0, "torch")
    settings = []
    for variant in variants:
        if variant.startswith("onnx") and importlib.util.find_spec("onnx") is None:
            print(f"skipping {variant}: the onnx package is not installed (pip install onnx)", file=sys.stderr)
            continue
        settings += [(variant, t or default_threads, b) for t in args.threads for b in args.batch_size]
    embedders = {}
    for variant, threads, batch in settings:
        embedders[variant, threads, batch] = Embedder(cfg.models.embedder, batch, variant=variant, threads=threads)
    best: dict[tuple, dict] = {}
    # one ingest first, not counted: the first in a process paid for one-time set-up (34 s of "chunking")
    one_run(args.corpus, cfg, embedders[settings[0]], [], args.ks, None)
    for _ in range(args.repeat):  # the settings take turns, so that a burst of load elsewhere hits one repeat of each
        for setting in settings:
            variant, threads, batch = setting
            torch.set_num_threads(threads)
            cfg.corpus.embed_variant, cfg.corpus.embed_batch_size = variant, batch
            embedder = embedders[setting]
            embedder.encode(["warm-up"] * batch)
            row, ref = one_run(args.corpus, cfg, embedder, items, args.ks, reference, style)
            reference = ref if reference is None else reference
            print(f"{variant} batch {batch} threads {threads}: embed {row['embed_tok_s']} tokens/s, "
                  f"{row['embed_tok_cpu_s']} per CPU-second, load {row['load_before']}-{row['load_after']}",
                  file=sys.stderr)
            if setting not in best or row["embed_s"] < best[setting]["embed_s"]:
                best[setting] = row
    rows = [{"variant": v, "batch": b, "threads": t, **best[v, t, b]} for v, t, b in settings]

    first = rows[0]
    command = "python benchmarks/ingest.py " + shlex.join(sys.argv[1:])
    title = (f"`{command.strip()}`\n{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, load average "
             f"{load()} at the end; {', '.join(map(str, args.corpus))}: {first['chunks']} chunks, {first['tokens']:,} "
             f"embedded tokens ({first['tokens_untruncated']:,} before truncation at max_seq_length; "
             f"{first['truncated_chunks']} chunks truncated)")
    table = Table(title=title)
    cols = ["variant", "batch", "threads", *PHASES, "total", "embed tok/CPU-s", "cos min/mean", "load"]
    cols += [f"{m} R@{k}" for m in ("dense", "hybrid") for k in args.ks] if items else []
    for c in cols:
        table.add_column(c, justify="left" if c == "variant" else "right")
    for r in rows:
        cells = [r["variant"], str(r["batch"]), str(r["threads"])]
        cells += [f"{r[f'{p}_s']:.2f} s, {r[f'{p}_tok_s'] or 0:,}/s" for p in (*PHASES, "total")]
        cells.append(f"{r['embed_tok_cpu_s']:,}")
        cells.append(f"{r['cos_min']:.4f} / {r['cos_mean']:.4f}")
        high = max(r["load_before"], r["load_after"]) > 2.5
        cells.append(f"{r['load_before']}-{r['load_after']}" + (" HIGH" if high else ""))
        cells += [f"{r[f'{m}_recall@{k}']:.2f}" for m in ("dense", "hybrid") for k in args.ks] if items else []
        table.add_row(*cells)
    Console(width=250).print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"command": command, "cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "corpus": [str(p) for p in args.corpus]}
    args.out.write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
