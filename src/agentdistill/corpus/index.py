"""The persistent vector index: one Chroma collection of chunks at ``<run>/index``.

We pass embeddings ourselves (the collection has no embedding function), so the index holds exactly
the vectors ``embed.Embedder`` made and Chroma never downloads a model. Every Chunk field is stored
(text as the document, the rest as metadata), so the run's chunks can be rebuilt from the index
alone after an interrupted ingest. Distances are cosine: similarity = 1 - distance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agentdistill.records import Chunk

COLLECTION = "chunks"
_META = ("doc_id", "source", "title", "section_path", "n_tokens")


class ChunkIndex:
    def __init__(self, index_dir: Path):
        import chromadb
        from chromadb.config import Settings

        Path(index_dir).mkdir(parents=True, exist_ok=True)
        self.client = chromadb.PersistentClient(path=str(index_dir), settings=Settings(anonymized_telemetry=False))
        self.collection = self._open()

    def _open(self):
        return self.client.get_or_create_collection(
            COLLECTION, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
        )

    def reset(self) -> None:
        """Drop every chunk (the chunking or embedding settings changed)."""
        self.client.delete_collection(COLLECTION)
        self.collection = self._open()

    def count(self) -> int:
        return self.collection.count()

    def ids(self) -> list[str]:
        return self.collection.get(include=[])["ids"]

    def upsert(self, chunks: list[Chunk], embeddings: np.ndarray) -> None:
        step = self.client.get_max_batch_size()
        for i in range(0, len(chunks), step):
            batch = chunks[i : i + step]
            self.collection.upsert(
                ids=[c.id for c in batch],
                embeddings=embeddings[i : i + step],
                documents=[c.text for c in batch],
                metadatas=[{k: getattr(c, k) for k in _META} for c in batch],
            )

    def delete(self, ids: list[str]) -> None:
        step = self.client.get_max_batch_size()
        for i in range(0, len(ids), step):
            self.collection.delete(ids=ids[i : i + step])

    def get(self, ids: list[str]) -> tuple[list[Chunk], np.ndarray]:
        """Chunks and embeddings for ``ids``, in that order. Missing ids raise KeyError."""
        if not ids:
            return [], np.zeros((0, 0), dtype=np.float32)
        got = self.collection.get(ids=ids, include=["documents", "metadatas", "embeddings"])
        pos = {cid: i for i, cid in enumerate(got["ids"])}
        missing = [cid for cid in ids if cid not in pos]
        if missing:
            raise KeyError(f"{len(missing)} chunk ids are not in the index, e.g. {missing[0]}")
        order = [pos[cid] for cid in ids]
        chunks = [
            Chunk(id=got["ids"][i], text=got["documents"][i], **{k: got["metadatas"][i][k] for k in _META})
            for i in order
        ]
        return chunks, np.asarray(got["embeddings"], dtype=np.float32)[order]

    def query(self, embedding: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The ``k`` nearest chunk ids with their cosine similarity, best first."""
        n = min(k, self.count())
        if n <= 0:
            return []
        res = self.collection.query(query_embeddings=[embedding], n_results=n, include=["distances"])
        return [(cid, 1.0 - float(d)) for cid, d in zip(res["ids"][0], res["distances"][0], strict=True)]
