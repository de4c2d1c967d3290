"""The ingest stage: documents -> chunks.jsonl, index/ (Chroma), clusters.json, ingest_report.json.

Incremental and resumable. ``manifest.json`` maps each document's content hash to its chunk ids and
records the settings the chunks were made with (student tokenizer, chunk sizes, embedder). A run
re-chunks and re-embeds only documents whose content (or name) is new and rebuilds everything when a
setting changed. The manifest is rewritten after each document reaches the index, so an interrupted
ingest resumes at the next document, and chunks.jsonl is rebuilt from the index itself.

Ingest removes only what it is asked to. Every path given must exist (a pattern must match a file)
before anything changes: a misspelled name is an error, not a document that has gone. A document is
removed when its file is gone from a folder (or pattern) being ingested again, and the report lists it
by name; documents ingested earlier from other paths stay. ``prune`` makes the paths given the whole
corpus: every document not among them is removed (listed too).
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import glob
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentdistill.citations import CitationStyle
from agentdistill.config import RunConfig
from agentdistill.corpus.read import Document, Skipped, read_documents
from agentdistill.errors import UserError
from agentdistill.jsonl import read_records, write_json_atomic, write_records
from agentdistill.records import Chunk
from agentdistill.run_layout import RunLayout

MANIFEST_VERSION = 1
EMBED_SLICE = 256  # chunks embedded and written to the index at a time


@dataclass
class IngestReport:
    files: int = 0  # files found under the paths (read or skipped)
    documents: int = 0  # distinct documents in the run after this ingest
    new_documents: int = 0  # chunked and embedded by this run
    removed_documents: int = 0  # files gone from the corpus (an edited file counts as new, not removed)
    removed: list[str] = field(default_factory=list)  # their paths
    kept_documents: int = 0  # ingested earlier from paths not given now: left as they were
    duplicates: list[dict[str, str]] = field(default_factory=list)  # {"path", "same_as"}
    skipped: list[Skipped] = field(default_factory=list)
    chunks: int = 0
    embedded_chunks: int = 0
    clusters: int = 0
    cluster_rule: str = ""
    seconds: float = 0.0
    # seconds per phase: read, load (tokenizer, embedder), chunk, embed, index (Chroma, chunks.jsonl), cluster
    phase_seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_chunks(run_dir: Path) -> list[Chunk]:
    """The run's chunks (chunks.jsonl), in document and reading order."""
    path = RunLayout(run_dir).chunks
    if not path.exists():
        raise UserError(f"{path} does not exist.", hint=f"Run `agentdistill ingest PATH... --run {run_dir}` first.")
    return read_records(path, Chunk)


def load_clusters(run_dir: Path) -> dict[str, Any]:
    """The run's clusters.json: {"k", "rule", "clusters": [{"id", "size", "top_terms", "chunk_ids"}]}."""
    path = RunLayout(run_dir).clusters
    if not path.exists():
        raise UserError(f"{path} does not exist.", hint=f"Run `agentdistill ingest PATH... --run {run_dir}` first.")
    return json.loads(path.read_text(encoding="utf-8"))


def load_manifest(run_dir: Path) -> dict[str, Any]:
    path = RunLayout(run_dir).ingest_manifest
    if not path.exists():
        return {"version": MANIFEST_VERSION, "settings": None, "documents": {}}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:  # written atomically, so only a hand edit gets here: start over
        return {"version": MANIFEST_VERSION, "settings": None, "documents": {}}


def _settings(cfg: RunConfig, style: CitationStyle) -> dict[str, Any]:
    """Everything a chunk or its vector depends on; a change invalidates all of them (the citation style
    writes the section paths)."""
    c = cfg.corpus
    return {
        "citations": style.name,
        "version": MANIFEST_VERSION,
        "tokenizer": cfg.models.student,
        "embedder": cfg.models.embedder,
        "embed_variant": c.embed_variant,  # vectors of two variants are never mixed in one index
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


def check_paths(paths: list[Path]) -> None:
    """Refuse paths that name nothing (a file or folder that does not exist, a pattern that matches no
    file), all of them at once, before anything is read or changed."""
    problems = []
    for p in map(Path, paths):
        if glob.has_magic(str(p)):
            if not glob.glob(str(p), recursive=True):
                problems.append(f"{p} matches no file")
        elif not p.exists():
            problems.append(f"{p} does not exist{_did_you_mean(p)}")
    if problems:
        raise UserError(
            "; ".join(problems) + ".",
            hint="Check the spelling. Nothing in the run was changed: a document is removed only when its file "
            "is gone from a folder being ingested again.",
        )


def _did_you_mean(path: Path) -> str:
    parent = path.parent if str(path.parent) else Path(".")
    names = [c.name for c in parent.iterdir()] if parent.is_dir() else []
    close = difflib.get_close_matches(path.name, names, n=1)
    return f" (did you mean {parent / close[0]}?)" if close else ""


def _within(source: str, path: Path) -> bool:
    """Whether the ingested file ``source`` (absolute) lies in ``path``: that file, a file under that
    folder, or one the pattern would match."""
    if not glob.has_magic(str(path)):
        return Path(source).is_relative_to(path.resolve())
    parts = path.parts
    first = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    base = Path(*parts[:first]).resolve() if first else Path.cwd().resolve()
    if not Path(source).is_relative_to(base):
        return False
    return fnmatch.fnmatch(str(Path(source).relative_to(base)), str(Path(*parts[first:])))


def _classify(known: dict[str, Any], read: list[Document], docs: list[Document], paths: list[Path],
              prune: bool) -> dict[str, str]:
    """What happens to each document of an earlier ingest: ``unchanged``; ``replaced`` (its file was read
    again with other content or title, or its content now has another name); ``removed`` (its file is gone
    from a path given now, or ``prune`` and it is not among them); ``kept`` (anything else: untouched)."""
    current = {d.doc_id: d for d in docs}
    read_now = {d.source for d in read}
    out = {}
    for doc_id, m in known.items():
        if doc_id in current and (m["source"], m["title"]) == (current[doc_id].source, current[doc_id].title):
            out[doc_id] = "unchanged"
        elif doc_id in current or m["source"] in read_now:
            out[doc_id] = "replaced"
        elif prune or (not Path(m["source"]).exists() and any(_within(m["source"], p) for p in paths)):
            out[doc_id] = "removed"
        else:
            out[doc_id] = "kept"
    return out


def _read_again(entries: list[dict[str, Any]], style: CitationStyle) -> list[Document]:
    """The documents kept from earlier ingests, read from their files again (a chunk setting changed, so
    every chunk is made anew); refuses, before anything changes, when one cannot be read any more."""
    from agentdistill.corpus.read import Unreadable, read_file

    docs, lost = [], []
    for m in entries:
        try:
            docs.append(read_file(Path(m["source"]), style=style))
        except (Unreadable, OSError) as e:
            lost.append(f"{m['source']} ({e})")
    if lost:
        raise UserError(
            f"a chunk setting changed, so every document is chunked again, but {len(lost)} ingested earlier from "
            f"other paths cannot be read any more: {'; '.join(lost[:5])}.",
            hint="Restore those files, give their paths too, or add --prune to keep only the paths given.",
        )
    return docs


def ingest(paths: list[Path], run_dir: Path, cfg: RunConfig, progress: bool = True,
           prune: bool = False) -> IngestReport:
    """Read, chunk, embed, index and cluster the documents under ``paths`` into ``run_dir``.

    Documents ingested earlier from other paths stay unless ``prune`` (see the module docstring)."""
    from agentdistill.corpus.chunk import check_sizes, chunk_document
    from agentdistill.corpus.cluster import cluster_chunks
    from agentdistill.corpus.embed import load_embedder, passage
    from agentdistill.corpus.index import ChunkIndex
    from agentdistill.domains import citation_style

    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    paths = [Path(p) for p in (paths or cfg.corpus.paths)]
    if not paths:
        raise UserError(
            "no documents to ingest: no PATH given and corpus.paths is empty.",
            hint="agentdistill ingest docs/ --run DIR, or list folders under corpus.paths.",
        )
    check_paths(paths)
    check_sizes(cfg.corpus.chunk_tokens, cfg.corpus.chunk_overlap)
    style = citation_style(cfg)  # a pack's documents may mark and cite their sections their own way
    spent = dict.fromkeys(("read", "load", "chunk", "embed", "index", "cluster"), 0.0)
    with _progress(progress, read=None) as bar:
        read, skipped = read_documents(paths, cfg.corpus.max_document_mb, style,
                                       on_progress=lambda n, total: bar.update("read", n, total))
    report = IngestReport(files=len(read) + sum(1 for s in skipped if Path(s.path).is_file()), skipped=skipped)
    spent["read"] = time.perf_counter() - t0
    docs, report.duplicates = _dedupe(read)
    if not docs:
        reasons = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:5]) or "no files found"
        raise UserError(
            f"nothing to ingest from {', '.join(map(str, paths))} ({len(skipped)} skipped: {reasons}).",
            hint="Point ingest at Markdown, text, PDF or HTML files, or folders that hold them.",
        )

    manifest = load_manifest(run_dir)
    settings = _settings(cfg, style)
    fate = _classify(manifest["documents"], read, docs, paths, prune)
    removed = sorted(manifest["documents"][i]["source"] for i, f in fate.items() if f == "removed")
    rebuild = manifest.get("settings") != settings
    if rebuild:  # every chunk is made again: the documents kept from earlier ingests too, read from their files
        again = _read_again([manifest["documents"][i] for i, f in fate.items() if f == "kept"], style)
        docs, _ = _dedupe(docs + again)

    run_dir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    index = ChunkIndex(RunLayout(run_dir).index)
    if rebuild:
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
        write_json_atomic(RunLayout(run_dir).ingest_manifest, manifest)

    for doc_id in [i for i in known if fate.get(i) in ("replaced", "removed")]:
        index.delete(known[doc_id]["chunk_ids"])
        del known[doc_id]
        save_manifest()
    report.removed = removed
    report.removed_documents = len(removed)
    report.kept_documents = 0 if rebuild else sum(1 for i in known if fate.get(i) == "kept")
    todo = [d for d in docs if d.doc_id not in known]
    report.new_documents = len(todo)
    spent["index"] += time.perf_counter() - t

    if todo:
        t = time.perf_counter()
        encode = _encoder(cfg.models.student, cfg.models.cache_dir)
        embedder = load_embedder(cfg.models.embedder, cfg.corpus.embed_batch_size, cfg.corpus.embed_variant,
                                 cfg.models.cache_dir)
        spent["load"] = time.perf_counter() - t
        # One document at a time, chunked then embedded in slices: memory holds one document's chunks, and the
        # bars move while a long document is chunked (a 50 MB file showed nothing for minutes).
        with _progress(progress, chunk=sum(len(d.text) for d in todo), embed=0, index=0) as bar:
            for doc in todo:
                t = time.perf_counter()
                chunks = chunk_document(doc, encode, cfg.corpus.chunk_tokens, cfg.corpus.chunk_overlap,
                                        on_progress=lambda n: bar.advance("chunk", n), style=style)
                spent["chunk"] += time.perf_counter() - t
                bar.grow("embed", len(chunks))
                bar.grow("index", len(chunks))
                for start in range(0, len(chunks), EMBED_SLICE):
                    part = chunks[start : start + EMBED_SLICE]
                    t = time.perf_counter()
                    vectors = embedder.encode([passage(c.section_path, c.text) for c in part])
                    bar.advance("embed", len(part))
                    spent["embed"] += time.perf_counter() - t
                    t = time.perf_counter()
                    index.upsert(part, vectors)
                    bar.advance("index", len(part))
                    spent["index"] += time.perf_counter() - t
                known[doc.doc_id] = {"source": doc.source, "title": doc.title, "chunk_ids": [c.id for c in chunks]}
                save_manifest()
                report.embedded_chunks += len(chunks)
    else:
        save_manifest()

    ids = [cid for m in sorted(known.values(), key=lambda m: m["source"]) for cid in m["chunk_ids"]]
    if not ids:
        raise UserError("the documents were read but gave no chunks.", hint="Check that they contain text.")
    t = time.perf_counter()
    chunks, vectors = index.get(ids)
    write_records(RunLayout(run_dir).chunks, chunks)
    spent["index"] += time.perf_counter() - t
    t = time.perf_counter()
    with _progress(progress, cluster=None):
        clusters = cluster_chunks(chunks, vectors, cfg.corpus.n_clusters, seed=cfg.seed, style=style)
    write_json_atomic(RunLayout(run_dir).clusters, clusters)
    spent["cluster"] = time.perf_counter() - t
    report.phase_seconds = {phase: round(s, 3) for phase, s in spent.items()}

    report.documents = len(known)
    report.chunks = len(chunks)
    report.clusters = clusters["k"]
    report.cluster_rule = clusters["rule"]
    report.seconds = round(time.perf_counter() - t0, 2)
    write_json_atomic(RunLayout(run_dir).ingest_report, report.to_dict())
    return report


_PHASES = {"read": "reading (files)", "chunk": "chunking (characters)", "embed": "embedding (chunks)",
           "index": "indexing (chunks)", "cluster": "clustering (k-means)"}


class _progress:
    """Rich progress bars on stderr, one per phase of ingest given as ``phase=total`` (None: not known, the bar
    pulses), or nothing when disabled."""

    def __init__(self, enabled: bool, **totals: int | None):
        self.enabled, self.totals = enabled, totals

    def __enter__(self) -> _progress:
        from rich.console import Console

        console = Console(stderr=True)
        # a bar is for a person watching: in a log or a pipe it would only leave blank lines before what follows
        self.enabled = self.enabled and console.is_terminal
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=console, transient=True)
            self.bar.start()
            self.tasks = {phase: self.bar.add_task(_PHASES[phase], total=n) for phase, n in self.totals.items()}
        return self

    def advance(self, phase: str, n: int) -> None:
        if self.enabled:
            self.bar.advance(self.tasks[phase], n)

    def grow(self, phase: str, n: int) -> None:
        if self.enabled:
            self.bar.update(self.tasks[phase], total=(self.bar.tasks[self.tasks[phase]].total or 0) + n)

    def update(self, phase: str, done: int, total: int) -> None:
        if self.enabled:
            self.bar.update(self.tasks[phase], completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.stop()
