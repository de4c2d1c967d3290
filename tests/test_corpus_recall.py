"""Retrieval evaluation's hits: a chunk that cites an expected answer, or one from the question's source
document; eval files with sources and splits."""

import json

import pytest

from agentdistill.corpus.recall import first_hit_rank, from_source, load_eval
from agentdistill.errors import UserError
from agentdistill.records import Chunk


def chunk(cid: str, source: str, path: str) -> Chunk:
    return Chunk(id=cid, doc_id=cid.split("-")[0], source=source, title=path.split(" > ")[0], section_path=path,
                 text="...", n_tokens=1)


HANDBOOK = chunk("hb-0001", "/data/docs/handbook.md", "Handbook > Annual leave")
GUIDE = chunk("gd-0000", "/data/docs/guidance/leave.txt", "Leave")
OTHER_GUIDE = chunk("og-0000", "/data/docs/other/guidance/leave.txt.bak", "Leave (old)")


def test_from_source_matches_a_file_name_or_the_end_of_its_path():
    assert from_source(GUIDE, "guidance/leave.txt")
    assert from_source(GUIDE, "leave.txt")
    assert from_source(GUIDE, "/data/docs/guidance/leave.txt")
    assert not from_source(GUIDE, "idance/leave.txt")  # whole path parts only
    assert not from_source(OTHER_GUIDE, "guidance/leave.txt")
    assert not from_source(HANDBOOK, "guidance/leave.txt")


def test_a_source_document_counts_a_hit_as_well_as_a_citation():
    cache: dict = {}
    ranked = [HANDBOOK, OTHER_GUIDE, GUIDE]
    assert first_hit_rank(ranked, [], cache, source="guidance/leave.txt") == 3
    assert first_hit_rank(ranked, ["Handbook > Annual leave"], cache, source="guidance/leave.txt") == 1
    assert first_hit_rank(ranked, ["Handbook > Annual leave"], cache) == 1
    assert first_hit_rank(ranked, ["Handbook > Sick leave"], cache) is None
    assert first_hit_rank(ranked[:2], [], cache, source="guidance/leave.txt") is None


def test_load_eval_reads_sources_and_splits_and_needs_an_answer_or_a_source(tmp_path):
    path = tmp_path / "eval.jsonl"
    rows = [
        {"id": "a", "question": "q1", "answers": ["Handbook > Annual leave"], "source": "handbook.md", "split": "dev"},
        {"id": "b", "question": "q2", "answers": [], "source": "guidance/leave.txt", "split": "test"},
        {"id": "c", "question": "q3", "answers": ["Handbook > Sick leave"]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    items = load_eval(path)
    assert [(i.id, i.answers, i.source, i.split) for i in items] == [
        ("a", ["Handbook > Annual leave"], "handbook.md", "dev"),
        ("b", [], "guidance/leave.txt", "test"),
        ("c", ["Handbook > Sick leave"], None, None),
    ]
    path.write_text(json.dumps({"id": "d", "question": "q4", "answers": []}) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match="non-empty 'answers' list"):
        load_eval(path)
