"""Group chunks by topic: K-Means on their embeddings, each cluster named by its top TF-IDF terms.

Clusters drive question generation (questions are written per cluster, so every topic is covered)
and the train/test split (whole clusters go to one side, so no test question shares source chunks
with a training question). k comes from ``corpus.n_clusters`` or from the rule
k = round(sqrt(n / 2)) clamped to [2, 40] (and to n): a common rule of thumb for k-means that grows
slowly with the corpus, so small corpora still get several topics and big ones stay browsable.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from agentdistill.citations import GENERIC, CitationStyle
from agentdistill.records import Chunk

K_MIN, K_MAX = 2, 40
TOP_TERMS = 8


def choose_k(n: int, requested: int | None) -> tuple[int, str]:
    """(k, the rule that gave it, in words for clusters.json)."""
    if n <= 1:
        return max(n, 1), "a single chunk: one cluster"
    if requested is not None:
        k = max(1, min(requested, n))
        return k, f"corpus.n_clusters = {requested}" + (f" (clamped to the {n} chunks)" if k != requested else "")
    k = min(max(round(math.sqrt(n / 2)), K_MIN), K_MAX, n)
    return k, f"k = round(sqrt(n/2)) clamped to [{K_MIN}, {K_MAX}] and to n; n = {n} chunks"


def top_terms(texts: list[str], labels: np.ndarray, k: int, n_terms: int = TOP_TERMS) -> list[list[str]]:
    """Per cluster, the terms with the highest mean TF-IDF weight over its chunks."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    # Words of 3+ letters: numbers and article labels say nothing about the topic.
    vec = TfidfVectorizer(
        stop_words="english",
        token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z\-]{2,}\b",
        max_df=0.5 if len(texts) >= 10 else 1.0,
        sublinear_tf=True,
    )
    try:
        x = vec.fit_transform(texts)
    except ValueError:  # no usable word in any chunk (all numbers / stop words)
        return [[] for _ in range(k)]
    vocab = np.asarray(vec.get_feature_names_out())
    out = []
    for c in range(k):
        rows = np.flatnonzero(labels == c)
        mean = np.asarray(x[rows].mean(axis=0)).ravel() if len(rows) else np.zeros(len(vocab))
        best = np.argsort(-mean, kind="stable")[:n_terms]
        out.append([str(vocab[i]) for i in best if mean[i] > 0])
    return out


def cluster_chunks(
    chunks: list[Chunk], embeddings: np.ndarray, n_clusters: int | None = None, seed: int = 0,
    style: CitationStyle = GENERIC,
) -> dict[str, Any]:
    """The clusters.json object: {"k", "rule", "clusters": [{"id", "size", "top_terms", "chunk_ids"}]}. Top terms
    are read with the chunks' citations (``style``) left out: they name sources, not topics."""
    from sklearn.cluster import KMeans

    k, rule = choose_k(len(chunks), n_clusters)
    if k == 1:
        labels = np.zeros(len(chunks), dtype=int)
    else:
        labels = KMeans(n_clusters=k, random_state=seed, n_init=10).fit_predict(embeddings)
    terms = top_terms([style.strip(f"{c.section_path}\n{c.text}") for c in chunks], labels, k)
    clusters = []
    for c in range(k):
        ids = [chunks[i].id for i in np.flatnonzero(labels == c)]
        if ids:  # k-means leaves a cluster empty only when chunks are identical; ids stay 0..k-1
            clusters.append({"id": len(clusters), "size": len(ids), "top_terms": terms[c], "chunk_ids": ids})
    return {"k": len(clusters), "rule": rule, "clusters": clusters}


def cluster_of_chunk(clusters: list[dict[str, Any]]) -> dict[str, int]:
    """Each chunk id's cluster id, from the "clusters" list of a clusters.json object (``cluster_chunks``)."""
    return {cid: int(cl["id"]) for cl in clusters for cid in cl["chunk_ids"]}
