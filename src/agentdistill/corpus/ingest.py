"""The ingest stage: documents -> chunks.jsonl, index/ (Chroma), clusters.json, ingest_report.json.

Incremental and resumable. ``manifest.json`` maps each document's content hash to its chunk ids and
records the settings the chunks were made with (student tokenizer, chunk sizes, embedder). A run
re-chunks and re-embeds only documents whose content (or name) is new, deletes the chunks of
documents that are gone, and rebuilds everything when a setting changed. The manifest is rewritten
after each document reaches the index, so an interrupted ingest resumes at the next document, and
chunks.jsonl is rebuilt from the index itself. The paths given define the corpus: a document not
among them any more is removed from the run.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentdistill.config import RunConfig
from agentdistill.corpus.read import Document, Skipped, read_documents
from agentdistill.errors import UserError
from agentdistill.jsonl import read_records, write_json_atomic, write_records
from agentdistill.records import Chunk

CHUNKS = "chunks.jsonl"
INDEX = "index"
CLUSTERS = "clusters.json"
MANIFEST = "manifest.json"
REPORT = "ingest_report.json"
MANIFEST_VERSION = 1


@dataclass
class IngestReport:
    files: int = 0  # files found under the paths (read or skipped)
    documents: int = 0  # distinct documents in the run after this ingest
    new_documents: int = 0  # chunked and embedded by this run
    removed_documents: int = 0  # files gone from the corpus (an edited file counts as new, not removed)
    duplicates: list[dict[str, str]] = field(default_factory=list)  # {"path", "same_as"}
    skipped: list[Skipped] = field(default_factory=list)
    chunks: int = 0
    embedded_chunks: int = 0
    clusters: int = 0
    cluster_rule: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_chunks(run_dir: Path) -> list[Chunk]:
    """The run's chunks (chunks.jsonl), in document and reading order."""
    path = Path(run_dir) / CHUNKS
    if not path.exists():
        raise UserError(f"{path} does not exist.", hint=f"Run `agentdistill ingest PATH... --run {run_dir}` first.")
    return read_records(path, Chunk)


def load_clusters(run_dir: Path) -> dict[str, Any]:
    """The run's clusters.json: {"k", "rule", "clusters": [{"id", "size", "top_terms", "chunk_ids"}]}."""
    path = Path(run_dir) / CLUSTERS
    if not path.exists():
        raise UserError(f"{path} does not exist.", hint=f"Run `agentdistill ingest PATH... --run {run_dir}` first.")
    return json.loads(path.read_text(encoding="utf-8"))


def load_manifest(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        return {"version": MANIFEST_VERSION, "settings": None, "documents": {}}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:  # written atomically, so only a hand edit gets here: start over
        return {"version": MANIFEST_VERSION, "settings": None, "documents": {}}


def _settings(cfg: RunConfig) -> dict[str, Any]:
    """Everything a chunk or its vector depends on; a change invalidates all of them."""
    c = cfg.corpus
    return {
        "version": MANIFEST_VERSION,
        "tokenizer": cfg.models.student,
        "embedder": cfg.models.embedder,
        "chunk_tokens": c.chunk_tokens,
        "chunk_overlap": c.chunk_overlap,
    }


def _dedupe(docs: list[Document]) -> tuple[list[Document], list[dict[str, str]]]:
    seen: dict[str, Document] = {}
    dups = []
    for d in docs:
        if d.doc_id in seen:
            dups.append({"path": d.source, "same_as": seen[d.doc_id].source})
        else:
            seen[d.doc_id] = d
    return list(seen.values()), dups


@functools.lru_cache(maxsize=2)
def _encoder(student: str, cache_dir: Path | None):
    """Token counter of the student, the model whose prompt the chunks must fit (never a download)."""
    from agentdistill.models.registry import load_tokenizer

    tok = load_tokenizer(student, cache_dir=cache_dir)
    return lambda text: tok.encode(text, add_special_tokens=False)


def ingest(paths: list[Path], run_dir: Path, cfg: RunConfig, progress: bool = True) -> IngestReport:
    """Read, chunk, embed, index and cluster the documents under ``paths`` into ``run_dir``."""
    from agentdistill.corpus.chunk import check_sizes, chunk_document
    from agentdistill.corpus.cluster import cluster_chunks
    from agentdistill.corpus.embed import load_embedder, passage
    from agentdistill.corpus.index import ChunkIndex

    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    paths = [Path(p) for p in (paths or cfg.corpus.paths)]
    if not paths:
        raise UserError(
            "no documents to ingest: no PATH given and corpus.paths is empty.",
            hint="agentdistill ingest docs/ --run DIR, or list folders under corpus.paths.",
        )
    check_sizes(cfg.corpus.chunk_tokens, cfg.corpus.chunk_overlap)
    read, skipped = read_documents(paths)
    report = IngestReport(files=len(read) + sum(1 for s in skipped if Path(s.path).is_file()), skipped=skipped)
    docs, report.duplicates = _dedupe(read)
    if not docs:
        reasons = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:5]) or "no files found"
        raise UserError(
            f"nothing to ingest from {', '.join(map(str, paths))} ({len(skipped)} skipped: {reasons}).",
            hint="Point ingest at Markdown, text, PDF or HTML files, or folders that hold them.",
        )

    run_dir.mkdir(parents=True, exist_ok=True)
    index = ChunkIndex(run_dir / INDEX)
    manifest = load_manifest(run_dir)
    settings = _settings(cfg)
    if manifest.get("settings") != settings:
        index.reset()
        manifest = {"version": MANIFEST_VERSION, "settings": settings, "documents": {}}
    known: dict[str, Any] = manifest["documents"]
    # Reconcile with what the index really holds: a document whose chunks are missing is redone,
    # and chunks no document owns (an upsert interrupted before its manifest write) are dropped.
    present = set(index.ids())
    for doc_id in [i for i, m in known.items() if not set(m["chunk_ids"]) <= present]:
        del known[doc_id]
    index.delete(sorted(present - {cid for m in known.values() for cid in m["chunk_ids"]}))

    def save_manifest() -> None:
        write_json_atomic(run_dir / MANIFEST, manifest)

    # A document is unchanged when its content hash, file and title are; anything else is redone.
    current = {d.doc_id: d for d in docs}
    stale = [
        i
        for i, m in known.items()
        if i not in current or (m["source"], m["title"]) != (current[i].source, current[i].title)
    ]
    sources = {d.source for d in docs}
    report.removed_documents = sum(1 for i in stale if known[i]["source"] not in sources)  # not merely edited
    for doc_id in stale:
        index.delete(known[doc_id]["chunk_ids"])
        del known[doc_id]
        save_manifest()
    todo = [d for d in docs if d.doc_id not in known]
    report.new_documents = len(todo)

    if todo:
        encode = _encoder(cfg.models.student, cfg.models.cache_dir)
        per_doc = [chunk_document(d, encode, cfg.corpus.chunk_tokens, cfg.corpus.chunk_overlap) for d in todo]
        embedder = load_embedder(cfg.models.embedder, cfg.corpus.embed_batch_size)
        total = sum(map(len, per_doc))
        with _progress(progress, total) as advance:
            for doc, chunks in zip(todo, per_doc, strict=True):
                if chunks:
                    vectors = embedder.encode([passage(c.section_path, c.text) for c in chunks])
                    index.upsert(chunks, vectors)
                known[doc.doc_id] = {"source": doc.source, "title": doc.title, "chunk_ids": [c.id for c in chunks]}
                save_manifest()
                report.embedded_chunks += len(chunks)
                advance(len(chunks))
    else:
        save_manifest()

    ordered = sorted(docs, key=lambda d: d.source)
    ids = [cid for d in ordered for cid in known[d.doc_id]["chunk_ids"]]
    if not ids:
        raise UserError("the documents were read but gave no chunks.", hint="Check that they contain text.")
    chunks, vectors = index.get(ids)
    write_records(run_dir / CHUNKS, chunks)
    clusters = cluster_chunks(chunks, vectors, cfg.corpus.n_clusters, seed=cfg.seed)
    write_json_atomic(run_dir / CLUSTERS, clusters)

    report.documents = len(docs)
    report.chunks = len(chunks)
    report.clusters = clusters["k"]
    report.cluster_rule = clusters["rule"]
    report.seconds = round(time.perf_counter() - t0, 2)
    write_json_atomic(run_dir / REPORT, report.to_dict())
    return report


class _progress:
    """A rich progress bar over chunks embedded (stderr), or nothing when disabled."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total = enabled, total

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.bar = Progress(
            "embedding",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.bar.start()
        task = self.bar.add_task("embed", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.stop()
