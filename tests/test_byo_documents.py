"""Your own documents, unchanged code: a folder of real documents the project never bundled, with only the
generic packs (search over the documents, general tools) and the generic offline teacher, goes through
ingest, questions, traces, SFT and eval; its questions come from the documents' content, not file names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from agentdistill.cli import app
from agentdistill.jsonl import read_records
from agentdistill.records import Chunk, Question
from agentdistill.synth.schema_questions import topics

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]  # every stage runs for real on a shared CPU

DATA = Path("/work/shared/data/uae_law")
DOCUMENTS = ["cd106_2022.md"]  # a real law text (29 kB, 20 articles), copied as a user's own folder would be


@pytest.fixture(scope="module")
def byo_run(tmp_path_factory):
    if not all((DATA / name).exists() for name in DOCUMENTS):
        pytest.skip(f"the shared documents are not on this machine ({DATA})")
    root = tmp_path_factory.mktemp("byo")
    docs = root / "docs"
    docs.mkdir()
    for name in DOCUMENTS:
        shutil.copy(DATA / name, docs / name)
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({
        "name": "byo",
        "corpus": {"paths": ["docs"], "chunk_tokens": 256, "chunk_overlap": 32, "n_clusters": 4},
        "tools": {"packs": ["documents", "general"]},
        "teacher": {"kind": "rule"},
        "questions": {"n_questions": 40},
        "agent": {"max_steps": 3},
        "sft": {"max_steps": 2, "batch_size": 1, "save_steps": 2, "max_length": 768},
        "eval": {"max_questions": 3, "max_new_tokens": 64, "bootstrap": 50},
    }))
    run = root / "run"
    runner = CliRunner()
    outputs = {}
    for stage in (["ingest", "--config", str(config)], ["questions"], ["traces"], ["sft", "--model", "student"],
                  ["eval", "--model", "adapters/smollm2-135m", "--name", "sft"]):
        result = runner.invoke(app, [*stage, "--run", str(run)])
        assert result.exit_code == 0, f"{stage[0]}: {result.output[-3000:]}"
        outputs[stage[0]] = result.output
    return run, docs, outputs


def test_questions_come_from_the_content_never_from_a_file_name(byo_run):
    run, docs, _ = byo_run
    questions = read_records(run / "questions.jsonl", Question)
    stems = [p.stem.lower() for p in docs.iterdir()]
    assert questions and not [q.text for q in questions for stem in stems if stem in q.text.lower()]
    chunks = read_records(run / "chunks.jsonl", Chunk)
    by_id, about = {c.id: c for c in chunks}, topics(chunks)
    lookups = [q for q in questions if q.kind == "lookup" and q.source_chunk_ids]
    assert lookups
    for q in lookups:  # asked about the passage's heading, answered by a sentence of its section
        source = by_id[q.source_chunk_ids[0]]
        assert about[source.id].lower() in q.text.lower()
        section = " ".join(" ".join(c.text.split()) for c in chunks if c.section_path == source.section_path)
        assert " ".join(q.answer_facts[0].split()) in section


def test_the_generic_teacher_records_traces_that_train_and_evaluate(byo_run):
    run, _, outputs = byo_run
    stats = json.loads((run / "traces.stats.json").read_text())
    questions = read_records(run / "questions.jsonl", Question)
    assert stats["complete"] and stats["accepted"] >= 0.8 * len(questions)
    assert {"search_documents"} <= set(stats["accepted_by_tool"])
    assert (run / "adapters" / "smollm2-135m" / "adapter_config.json").exists()
    metrics = json.loads((run / "eval" / "sft" / "metrics.json").read_text())
    assert 0 < metrics["n"] <= 3 and "format_valid_rate" in metrics
