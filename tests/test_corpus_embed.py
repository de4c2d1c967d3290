"""The embedding variants (corpus/embed.py): the fast ones agree with the reference embedder, an index is
searched with the variant it was built with and re-embedded when the variant changes, and
corpus.embed_variant validates."""

import importlib.util
import json

import numpy as np
import pytest

from agentdistill.config import RunConfig, load_config
from agentdistill.corpus import ingest
from agentdistill.corpus.embed import Embedder, check_variant
from agentdistill.corpus.search import Searcher
from agentdistill.errors import UserError

PASSAGES = [
    "How many days of annual leave does a worker get?",
    "Federal Decree-Law 33/2021 > Art. 29 > Annual leave\nA worker who has completed a year of service earns thirty "
    "calendar days of paid annual leave. Between six months and a year, two days for every month.",
    "End-of-Service Gratuity > Gratuity for full-time workers\nAfter one year of continuous service a full-time "
    "worker is owed twenty-one days of basic wage for each of the first five years, and thirty days for each "
    "further year. " * 6,  # longer than the embedder's 256 tokens: truncated the same way by every variant
    "Overtime between ten at night and four in the morning is paid with a premium of at least fifty percent.",
]
needs_onnx = pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="the onnx package exports the model")


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return Embedder("all-minilm-l6-v2").encode(PASSAGES)


def cosines(variant: str, reference: np.ndarray, cache) -> np.ndarray:
    vecs = Embedder("all-minilm-l6-v2", batch_size=2, variant=variant, cache_dir=cache).encode(PASSAGES)
    assert vecs.shape == reference.shape and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    return (vecs * reference).sum(1)


@needs_onnx
def test_onnx_export_gives_the_reference_vectors_and_is_built_once(reference, tmp_path):
    assert cosines("onnx", reference, tmp_path).min() > 0.9999  # the same float32 graph, run by onnxruntime
    (marker,) = (tmp_path / "models").glob("all-minilm-l6-v2-onnx-*/agentdistill.json")
    assert json.loads(marker.read_text())["variant"] == "onnx"
    folder = marker.parent
    built = (folder / "model.onnx").stat().st_mtime_ns
    cosines("onnx", reference, tmp_path)
    assert (folder / "model.onnx").stat().st_mtime_ns == built  # found in the cache, not exported again


def test_the_default_fast_variant_agrees_with_the_reference(reference, tmp_path):
    variant = RunConfig().corpus.embed_variant
    assert variant == "torch-int8"
    # int8 activations cost some agreement: least cosine 0.988 on the example's first 64 passages, where recall@5
    # stayed within 0.01 (benchmarks/ingest.py); onnx-int8 keeps 0.994 but ran at half the speed
    assert cosines(variant, reference, tmp_path).min() >= 0.97


def test_an_index_is_searched_with_its_variant_and_re_embedded_when_it_changes(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i, text in enumerate(PASSAGES[1:]):
        (docs / f"d{i}.md").write_text(f"# Doc {i}\n\n{text}\n", encoding="utf-8")
    run = tmp_path / "run"
    cfg = RunConfig()
    cfg.corpus.embed_variant = "torch"
    first = ingest([docs], run, cfg, progress=False)
    assert set(first.phase_seconds) >= {"read", "chunk", "embed", "index", "cluster"}
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["settings"]["embed_variant"] == "torch"

    other = RunConfig()
    other.corpus.embed_variant = "torch-int8"
    # Until the corpus is ingested again, its queries are embedded as its passages were, whatever the config says.
    assert Searcher.open(run, other).embedder.variant == "torch"
    again = ingest([docs], run, other, progress=False)
    assert again.embedded_chunks == again.chunks == first.chunks  # every vector made anew, none mixed
    assert Searcher.open(run, other).embedder.variant == "torch-int8"

    manifest = json.loads((run / "manifest.json").read_text())
    manifest["settings"]["embed_variant"] = "fp4"  # an index from a version with another variant
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError) as info:
        Searcher.open(run, other)
    assert "fp4" in str(info.value) and "agentdistill ingest" in info.value.hint


def test_embed_variant_is_validated(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("corpus:\n  embed_variant: fp16\n", encoding="utf-8")
    with pytest.raises(UserError) as info:
        load_config(path)
    assert "corpus.embed_variant" in str(info.value) and "'onnx-int8'" in str(info.value)
    path.write_text("corpus:\n  embed_variant: torch-int8\n", encoding="utf-8")
    assert load_config(path).corpus.embed_variant == "torch-int8"
    with pytest.raises(UserError):
        check_variant("int4")
