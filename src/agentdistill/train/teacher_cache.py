"""The teacher's next-token distributions over the training traces, computed once and stored.

ULD (train/uld.py) needs of the teacher only its k largest probabilities, sorted, and the mass left
below them, so storing exactly that makes the loss exact up to k while training needs no teacher in
memory. For every training trace the teacher (by default the Gemma adapter made by ``agentdistill sft
--model teacher``) reads the trace rendered with its own chat template, and for every assistant token
t of its tokenization we keep

    probs[t] = top-k of softmax(logits_{t-1} / T), descending      (fp16, [k])
    tail[t]  = 1 - sum(probs[t])                                    (fp16)
    ids[t]   = the token ids of probs[t]                            (int32, only for loss kl / jsd)

Layout of ``<run>/teacher_topk/``:
    shard-00000.safetensors, ...  the rows of a run of consecutive traces; the safetensors metadata
                                  holds the header (teacher, its adapter's and tokenizer's sha256, k,
                                  T) and the list [trace id, rows, digest of the teacher's token ids]
    manifest.json                 written last: {"complete": true, header, totals, shards}

Resumable: a shard is written to a temporary name and renamed, so it is whole or absent; a rerun
skips the traces already in a shard (an interrupted run loses at most one shard of work). A shard
written by another teacher, tokenizer, k or temperature stops the run with an error rather than mix
distributions; ``--force`` starts over.

The distill stage re-tokenizes each trace with the teacher's tokenizer and checks the digest, so a
cache that no longer matches its traces (traces regenerated, template changed) is refused, not
silently misaligned.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from agentdistill.config import RunConfig
from agentdistill.errors import UserError
from agentdistill.jsonl import write_json_atomic
from agentdistill.models.convert import sha256_file
from agentdistill.run_layout import RunLayout

console = Console(stderr=True)

FORMAT = "agentdistill.teacher_topk/1"
SHARD_ROWS = 16_384  # assistant tokens per shard: 8 MiB of fp16 at k = 256
ROWS_PER_PASS = 512  # teacher logits materialized at once: [512, vocab] float32 (512 MiB for Gemma 3)
# header fields that must agree between shards of one cache and the current config
MATCHED = ("format", "teacher", "adapter_sha256", "tokenizer_sha256", "k", "temperature", "with_ids")


def teacher_source(run_dir: Path, cfg: RunConfig) -> tuple[str, Path | None]:
    """(base model, adapter dir or None) of the teacher: ``distill.teacher`` when set, else the SFT'd
    ``adapters/<models.teacher>/`` that ``agentdistill sft --model teacher`` writes."""
    from agentdistill.models.registry import split_adapter
    from agentdistill.train.sft import adapter_subdir

    if cfg.distill.teacher:
        name = cfg.distill.teacher
        candidate = Path(run_dir) / name
        if (candidate / "adapter_config.json").is_file():  # run-relative adapters/<name>
            name = str(candidate)
        return split_adapter(name)
    adapter = RunLayout(run_dir).adapter(adapter_subdir(cfg.models.teacher))
    if not (adapter / "adapter_config.json").is_file():
        raise UserError(
            f"no fine-tuned teacher at {adapter}.",
            hint=f"Run `agentdistill sft --run {run_dir} --model teacher` first, or set distill.teacher to a "
            "model (registry name, HF id, folder) to distill from it as it is.",
        )
    return cfg.models.teacher, adapter


def tokenizer_sha256(tokenizer: Any) -> str:
    """Identity of a tokenizer as used here: its vocabulary/merges and its chat template."""
    h = hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode())
    h.update((tokenizer.chat_template or "").encode())
    return h.hexdigest()


def token_digest(ids: list[int]) -> str:
    return hashlib.sha1(json.dumps(ids).encode()).hexdigest()[:16]


@dataclass
class CacheReport:
    cache_dir: Path
    n_traces: int
    n_rows: int
    n_new_traces: int  # traces this call computed (0 when the cache was complete)
    seconds: float
    mean_topk_mass: float  # mean of 1 - tail over all rows: how much of the teacher k keeps


def _header(cfg: RunConfig, base: str, adapter: Path | None, tokenizer: Any, vocab: int) -> dict[str, str]:
    return {
        "format": FORMAT,
        "teacher": base,
        "adapter": str(adapter) if adapter else "",
        "adapter_sha256": sha256_file(adapter / "adapter_model.safetensors") if adapter else "",
        "tokenizer_sha256": tokenizer_sha256(tokenizer),
        "k": str(min(cfg.distill.top_k, vocab)),
        "temperature": repr(float(cfg.distill.temperature)),
        "vocab_size": str(vocab),
        "with_ids": str(cfg.distill.loss != "uld"),
    }


def _shards(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.glob("shard-*.safetensors"))


def _read_shard_meta(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # noqa: BLE001 (safetensors raises several types for a damaged file)
        raise UserError(
            f"{path} is not a readable safetensors shard ({e}).",
            hint=f"Delete {path}; the next `agentdistill teacher-cache` recomputes its traces.",
        ) from e


def _mismatch(meta: dict[str, str], header: dict[str, str]) -> list[str]:
    return [f"{k}: {meta.get(k)!r} in the cache, {header[k]!r} now" for k in MATCHED if meta.get(k) != header[k]]


def teacher_rows(
    model: Any, input_ids: list[int], positions: list[int], k: int, temperature: float, with_ids: bool
) -> tuple[Any, Any, Any]:
    """The teacher's top-k distribution predicting each token at ``positions`` of one sequence.

    Row r is softmax(logits at positions[r] - 1 / T), so the model reads the sequence once per
    ROWS_PER_PASS positions and builds logits only where they are needed (``logits_to_keep``), with
    whatever final soft-capping the model applies. Returns float32 probs [R, k], tail [R], int ids or None.
    """
    import torch

    from agentdistill.train.uld import teacher_topk

    device = next(model.parameters()).device
    ids = torch.tensor([input_ids], device=device)
    probs, tails, top_ids = [], [], []
    with torch.no_grad():
        for s in range(0, len(positions), ROWS_PER_PASS):
            keep = torch.tensor([p - 1 for p in positions[s : s + ROWS_PER_PASS]], device=device)
            logits = model(input_ids=ids, logits_to_keep=keep, use_cache=False).logits[0]
            p, t, i = teacher_topk(logits, k, temperature, return_ids=with_ids)
            probs.append(p)
            tails.append(t)
            top_ids.append(i)
    if not positions:
        return torch.zeros(0, k), torch.zeros(0), torch.zeros(0, k, dtype=torch.long) if with_ids else None
    return torch.cat(probs), torch.cat(tails), torch.cat(top_ids) if with_ids else None


def build_teacher_cache(run_dir: Path, cfg: RunConfig, *, force: bool = False) -> CacheReport:
    """Compute (or complete) ``<run>/teacher_topk/`` for the run's training traces."""
    import torch
    from safetensors.torch import save_file

    from agentdistill.models.registry import load_model, load_tokenizer
    from agentdistill.train.align import tokenize_trace
    from agentdistill.train.data import configured_train_traces

    run_dir = Path(run_dir)
    cache_dir = RunLayout(run_dir).teacher_cache
    if force and cache_dir.exists():
        shutil.rmtree(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    remove_unfinished_shards(cache_dir)

    base, adapter = teacher_source(run_dir, cfg)
    tokenizer = load_tokenizer(base, cfg.models.cache_dir)
    traces, _ = configured_train_traces(run_dir, cfg)
    start = time.perf_counter()
    vocab = len(tokenizer)
    done: dict[str, tuple[int, str]] = {}
    header = None
    for shard in _shards(cache_dir):
        meta = _read_shard_meta(shard)
        if header is None:
            vocab = int(meta.get("vocab_size", vocab))
            header = _header(cfg, base, adapter, tokenizer, vocab)
        problems = _mismatch(meta, header)
        if problems:
            raise UserError(
                f"{shard} was computed for another teacher setup ({'; '.join(problems)}).",
                hint="Run `agentdistill teacher-cache --force` to rebuild the cache for the current config "
                "(or restore the config it was built with).",
            )
        for trace_id, n, digest in json.loads(meta["traces"]):
            done[trace_id] = (n, digest)

    todo = [t for t in traces if t.id not in done]
    if todo:
        console.print(
            f"teacher-cache: {len(todo)} of {len(traces)} traces to run through {base}"
            f"{' + ' + str(adapter) if adapter else ''}"
        )
        model, _ = load_model(base, adapter=adapter, cache_dir=cfg.models.cache_dir)
        vocab = model.config.get_text_config().vocab_size
        header = header or _header(cfg, base, adapter, tokenizer, vocab)
        k, temperature, with_ids = int(header["k"]), float(cfg.distill.temperature), header["with_ids"] == "True"
        buffer: list[tuple[str, int, str, Any, Any, Any]] = []
        n_shard = 1 + max((int(p.stem.split("-")[1]) for p in _shards(cache_dir)), default=-1)  # never overwrite

        def flush() -> None:
            nonlocal n_shard
            if not buffer:
                return
            tensors = {
                "probs": torch.cat([b[3] for b in buffer]).half().contiguous(),
                "tail": torch.cat([b[4] for b in buffer]).half().contiguous(),
            }
            if with_ids:
                tensors["ids"] = torch.cat([b[5] for b in buffer]).int().contiguous()
            meta = {**header, "traces": json.dumps([[b[0], b[1], b[2]] for b in buffer])}
            out = cache_dir / f"shard-{n_shard:05d}.safetensors"
            tmp = cache_dir / f".tmp-{out.name}"
            save_file(tensors, str(tmp), metadata=meta)
            os.replace(tmp, out)
            n_shard += 1
            buffer.clear()

        t_start = time.perf_counter()
        for n, trace in enumerate(todo, start=1):
            tok = tokenize_trace(tokenizer, trace.messages)
            positions = tok.assistant_positions()
            probs, tail, ids = teacher_rows(model, tok.input_ids, positions, k, temperature, with_ids)
            buffer.append(
                (
                    trace.id,
                    len(positions),
                    token_digest(tok.input_ids),
                    probs.cpu(),
                    tail.cpu(),
                    None if ids is None else ids.cpu(),
                )
            )
            done[trace.id] = (len(positions), "")
            if sum(b[1] for b in buffer) >= SHARD_ROWS:
                flush()
            if n % 20 == 0 or n == len(todo):
                rate = (time.perf_counter() - t_start) / n
                console.print(f"  {n}/{len(todo)} traces, {rate:.2f} s/trace")
        flush()

    # the manifest: totals read back from the shards, so it describes what is on disk
    n_rows, mass_sum, shard_names = 0, 0.0, []
    from safetensors import safe_open

    for shard in _shards(cache_dir):
        with safe_open(str(shard), framework="pt") as f:
            tail = f.get_tensor("tail").float()
            header = header or dict(f.metadata())
        n_rows += tail.numel()
        mass_sum += float((1 - tail).sum())
        shard_names.append(shard.name)
    wanted = {t.id for t in traces}
    missing = wanted - set(done)
    manifest = {
        "complete": not missing,
        **{k: v for k, v in (header or {}).items() if k != "traces"},
        "n_traces": len(wanted & set(done)),
        "n_rows": n_rows,
        "mean_topk_mass": mass_sum / max(1, n_rows),
        "shards": shard_names,
    }
    write_json_atomic(RunLayout(run_dir).teacher_cache_manifest, manifest)
    seconds = time.perf_counter() - start
    console.print(
        f"teacher-cache: {manifest['n_traces']} traces, {n_rows} assistant tokens, top-{manifest.get('k')} "
        f"keeps {manifest['mean_topk_mass']:.1%} of the teacher's mass on average -> {cache_dir}"
    )
    return CacheReport(cache_dir, manifest["n_traces"], n_rows, len(todo), seconds, manifest["mean_topk_mass"])


def remove_unfinished_shards(cache_dir: Path) -> None:
    """Delete the shards a killed run did not finish writing: ours (``.tmp-<shard>``), or the temporary file
    safetensors (0.8) writes before its own rename (``.tmp`` and 6 random characters). The folder holds only
    the cache, so every ``.tmp*`` in it is such a leftover."""
    for stale in cache_dir.glob(".tmp*"):
        stale.unlink()


SAFETENSORS_DTYPES = {"F16": "float16", "F32": "float32", "I32": "int32", "I64": "int64"}  # what the cache writes


def _memmap_shard(path: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """A shard's metadata and its tensors as read-only numpy memmaps: no row is read until one is indexed.

    The format is an 8-byte little-endian header length, the JSON header (``__metadata__``; each tensor's
    dtype, shape and data_offsets) and the data, so a tensor is one contiguous, aligned run of bytes that numpy
    can map in place; the header is read once for all of them.
    """
    import numpy as np

    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = np.dtype(SAFETENSORS_DTYPES[entry["dtype"]])
        tensors[name] = (np.zeros(entry["shape"], dtype=dtype) if end == begin  # numpy cannot map zero bytes
                         else np.memmap(path, dtype=dtype, mode="r", offset=8 + n + begin, shape=tuple(entry["shape"])))
    return metadata, tensors


class CachedRows:
    """The rows of one tensor (probs, tail or ids) over all shards, read lazily: ``rows[index]`` reads just the
    rows named by an int tensor or a slice, as a torch tensor shaped ``index.shape + row shape``.

    A training process (one rank of ``accelerate launch``) thus reads from disk only the rows of the examples
    its sampler hands it, instead of each rank holding the whole cache (16 GiB for 16M tokens at k = 256) in RAM.
    """

    def __init__(self, parts: list[Any]):
        import numpy as np
        import torch

        self.parts = parts
        self.starts = np.cumsum([0] + [len(p) for p in parts])  # first global row of each shard, then the total
        self.shape = (int(self.starts[-1]), *parts[0].shape[1:])
        self.dtype = getattr(torch, str(parts[0].dtype))  # numpy's float16 / int32 ... are torch's names too

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> Any:
        import numpy as np
        import torch

        if isinstance(index, slice):
            index = torch.arange(*index.indices(len(self)))
        rows = torch.as_tensor(index).reshape(-1).numpy()
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"teacher cache rows {rows.min()}..{rows.max()} outside 0..{len(self) - 1}")
        shard = np.searchsorted(self.starts, rows, side="right") - 1
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.parts[0].dtype)
        for s in np.unique(shard):
            picked = shard == s
            out[picked] = self.parts[s][rows[picked] - self.starts[s]]  # reads only these rows' pages
        return torch.from_numpy(out).reshape(*torch.as_tensor(index).shape, *self.shape[1:])


@dataclass
class TeacherCache:
    """A complete teacher_topk/ folder opened for training: the index of every trace in memory, the rows
    (``probs``, ``tail``, ``ids``: CachedRows) memory-mapped and read only where a batch indexes them."""

    header: dict[str, Any]
    index: dict[str, tuple[int, int, str]]  # trace id -> (first row, number of rows, token digest)
    probs: CachedRows  # fp16 [R, k]
    tail: CachedRows  # fp16 [R]
    ids: CachedRows | None  # int32 [R, k] or None

    @classmethod
    def open(cls, run_dir: Path) -> TeacherCache:
        cache_dir = RunLayout(run_dir).teacher_cache
        manifest_path = RunLayout(run_dir).teacher_cache_manifest
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        if not manifest.get("complete"):
            raise UserError(
                f"{cache_dir} is missing or incomplete.",
                hint=f"Run `agentdistill teacher-cache --run {run_dir}` (it resumes) first.",
            )
        index: dict[str, tuple[int, int, str]] = {}
        probs, tails, ids = [], [], []
        row = 0
        for name in manifest["shards"]:
            meta, tensors = _memmap_shard(cache_dir / name)
            probs.append(tensors["probs"])
            tails.append(tensors["tail"])
            if "ids" in tensors:
                ids.append(tensors["ids"])
            for trace_id, n, digest in json.loads(meta["traces"]):
                index[trace_id] = (row, n, digest)
                row += n
        return cls(manifest, index, CachedRows(probs), CachedRows(tails), CachedRows(ids) if ids else None)
