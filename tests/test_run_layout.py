"""run_layout owns the run directory's names: the stage-done checks read the right files, and no other
module spells one of its names."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from agentdistill import run_layout
from agentdistill.run_layout import RunLayout

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "agentdistill"

# The same spelling for something that is not the run's: the model cache's marker in a cached model's folder.
NOT_THE_RUNS = {("models/cache.py", run_layout.ADAPTER_META)}


def test_ingest_is_done_with_chunks_clusters_and_index(tmp_path):
    layout = RunLayout(tmp_path)
    layout.chunks.write_text("")
    layout.clusters.write_text("{}")
    assert not layout.ingest_done()  # no index yet: ingest was killed before it
    layout.index.mkdir()
    assert layout.ingest_done()


@pytest.mark.parametrize("stage", ["questions", "traces"])
def test_a_stage_with_stats_is_done_when_they_say_complete(tmp_path, stage):
    layout = RunLayout(tmp_path)
    stats = layout.questions_stats if stage == "questions" else layout.traces_stats
    done = layout.questions_done if stage == "questions" else layout.traces_done
    assert not done()  # no file
    stats.write_text(json.dumps({"complete": False, "n": 3}))
    assert not done()
    stats.write_text(json.dumps({"complete": True, "n": 3}))
    assert done()


@pytest.mark.parametrize("text", ['{"complete": tr', "[true]", "", "\xff\xfe"])
def test_corrupt_stats_mean_not_done(tmp_path, text):
    layout = RunLayout(tmp_path)
    layout.teacher_cache.mkdir()
    for path in (layout.questions_stats, layout.traces_stats, layout.teacher_cache_manifest):
        path.write_bytes(text.encode("latin-1"))
    assert not layout.questions_done() and not layout.traces_done() and not layout.teacher_cache_done()


def test_adapter_eval_export_and_teacher_cache_done(tmp_path):
    layout = RunLayout(tmp_path)
    assert not layout.adapter_done("org/model") and not layout.uld_adapter_done("m")
    layout.adapter("org/model").mkdir(parents=True)  # a folder without an adapter is not a finished one
    assert not layout.adapter_done("org/model")
    (layout.adapter("org/model") / "adapter_config.json").write_text("{}")
    layout.uld_adapter("m").mkdir(parents=True)
    (layout.uld_adapter("m") / "adapter_config.json").write_text("{}")
    assert layout.adapter_done("org/model") and layout.uld_adapter_done("m")
    assert layout.adapter("org/model") == tmp_path / "adapters" / "org" / "model"
    assert layout.adapter("/abs/model") == tmp_path / "adapters" / "abs" / "model"  # never outside the run

    assert not layout.eval_done("m-sft")
    layout.eval_dir("m-sft").mkdir(parents=True)
    (layout.eval_dir("m-sft") / run_layout.RESULTS).write_text("")
    assert not layout.eval_done("m-sft")  # results without metrics: the eval was interrupted
    (layout.eval_dir("m-sft") / run_layout.METRICS).write_text("{}")
    assert layout.eval_done("m-sft")

    assert not layout.gguf_done("m", "q4_k_m")
    layout.export_gguf.mkdir(parents=True)
    layout.gguf("m", "q4_k_m").write_bytes(b"GGUF")
    assert layout.gguf_done("m", "q4_k_m")

    layout.teacher_cache.mkdir()
    layout.teacher_cache_manifest.write_text(json.dumps({"complete": True}))
    assert layout.teacher_cache_done()


def test_relative_layout_names_paths_as_a_command_does():
    relative = RunLayout(Path())
    assert relative.adapter("m").as_posix() == "adapters/m"
    assert relative.gguf("m", "q8_0").as_posix() == "export/gguf/m-q8_0.gguf"
    assert relative.lock("sft-Qwen/Qwen2.5").as_posix() == ".locks/sft-Qwen--Qwen2.5.lock"


def owned_literals(path: Path, root: Path = PACKAGE) -> list[str]:
    """``file:line: 'name'`` for each string constant in ``path`` equal to a run-dir name run_layout owns
    (docstrings and f-string text are constants too, but a whole docstring never equals a name)."""
    rel = path.relative_to(root).as_posix()
    hits: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in run_layout.OWNED_NAMES
                and (rel, node.value) not in NOT_THE_RUNS):
            hits.append((node.lineno, f"{rel}:{node.lineno}: {node.value!r}"))
    return [hit for _, hit in sorted(hits)]


def test_no_module_but_run_layout_spells_a_run_dir_name():
    hits = [hit for path in sorted(PACKAGE.rglob("*.py")) if path.name != "run_layout.py"
            for hit in owned_literals(path)]
    assert hits == [], "use agentdistill.run_layout for these names:\n" + "\n".join(hits)


def test_the_scan_finds_a_spelled_name(tmp_path):  # else the test above could pass by finding nothing ever
    module = tmp_path / "stage.py"
    module.write_text('from pathlib import Path\n\n\ndef f(run):\n    return Path(run) / "traces.jsonl"\n')
    assert owned_literals(module, root=tmp_path) == ["stage.py:5: 'traces.jsonl'"]
