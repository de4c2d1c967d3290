"""`agentdistill questions`: windows, the mix, validation of teacher replies, dedup, and the rule writer."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from example_packs import example_config

from agentdistill.config import QuestionsConfig, RunConfig, SplitConfig, TeacherConfig, ToolsConfig
from agentdistill.errors import UserError
from agentdistill.jsonl import iter_json, read_records, write_json_atomic, write_records
from agentdistill.llm.base import Completion
from agentdistill.records import Chunk, Expect, Question
from agentdistill.synth.questions import (
    InvalidOutput,
    dedup,
    kind_targets,
    llm_questions,
    load_personas,
    make_questions,
    parse_generated,
    windows,
)

TOOLS = {"search_labour_law", "get_article", "calculator", "annual_leave"}


def test_windows_cover_every_chunk_with_the_given_stride():
    ids = [f"c{i}" for i in range(7)]
    ws = windows(ids, 3, 2)
    assert ws == [["c0", "c1", "c2"], ["c2", "c3", "c4"], ["c4", "c5", "c6"]]
    assert windows(ids[:2], 3, 2) == [["c0", "c1"]]
    assert {c for w in windows(ids, 3, 3) for c in w} == set(ids)  # the tail gets its own window
    with pytest.raises(UserError):
        windows(ids, 0, 1)


@pytest.mark.parametrize("n", [1, 7, 60, 800])
def test_kind_targets_follow_the_mix_and_sum_to_n(n):
    mix = {"lookup": 0.45, "calculation": 0.25, "multi_step": 0.15, "no_tool": 0.15}
    t = kind_targets(n, mix)
    assert sum(t.values()) == n
    assert all(abs(t[k] - n * w) < 1 for k, w in mix.items())
    with pytest.raises(UserError, match="mix"):
        kind_targets(10, {"lookups": 1.0})


def test_teacher_replies_are_validated():
    ok = 'Sure! {"questions": [{"question": "How much leave after 8 months?", "tools": ["annual_leave"]}]} thanks'
    assert parse_generated(ok, "calculation", TOOLS) == [("How much leave after 8 months?", ["annual_leave"], [],
                                                          "llm")]
    mixed = json.dumps({"questions": [{"question": "Hi there", "tools": [], "answer_facts": ["greeting"],
                                       "style": "Casual!"},
                                      {"question": "Use it", "tools": ["x"]},
                                      {"question": "What is 2 + 2 please?", "tools": ["calculator"],
                                       "answer_facts": [" 4 "], "style": "terse"}]})
    assert parse_generated(mixed, "calculation", TOOLS) == [("What is 2 + 2 please?", ["calculator"], ["4"], "terse")]
    assert parse_generated(mixed, "no_tool", TOOLS) == [("Hi there", [], ["greeting"], "casual")]
    for bad, kind in [("no json here", "lookup"), ('{"questions": [', "lookup"), ('{"questions": []}', "lookup"),
                      ('{"questions": [{"question": "Look it up and compute", "tools": ["calculator"]}]}',
                       "multi_step")]:
        with pytest.raises(InvalidOutput):
            parse_generated(bad, kind, TOOLS)


class GarbageTeacher:
    """Fault injection: a teacher whose every reply is unusable (what a too-small model produces)."""

    name = "garbage"

    def __init__(self):
        self.requests = 0

    def generate(self, requests):
        self.requests += len(requests)
        return [[Completion(text="I am sorry, here are some questions: 1. what", finish_reason="length")]
                for _ in requests]


def _tiny_corpus(run, n_chunks=6):
    chunks = [Chunk(id=f"c{i}", doc_id=f"d{i % 2}", source="x.md", title="Leave",
                    section_path=f"Leave > Topic {i} (Federal Decree-Law 33/2021, Art. {29 + i})",
                    text=f"Workers earn {2 + i} days of leave per month of service (Federal Decree-Law 33/2021, "
                         f"Art. {29 + i}).", n_tokens=20) for i in range(n_chunks)]
    write_records(run / "chunks.jsonl", chunks)
    write_json_atomic(run / "clusters.json", {"k": 2, "rule": "test", "clusters": [
        {"id": 0, "size": 3, "top_terms": ["leave"], "chunk_ids": ["c0", "c1", "c2"]},
        {"id": 1, "size": 3, "top_terms": ["days"], "chunk_ids": ["c3", "c4", "c5"]}]})
    return chunks


def test_invalid_replies_are_retried_then_dropped_counted_and_not_asked_again(tmp_path):
    _tiny_corpus(tmp_path)
    cfg = RunConfig(questions=QuestionsConfig(n_questions=6, per_window=2, max_invalid_retries=2),
                    tools=ToolsConfig(packs=["general"]))
    specs = [{"name": "calculator", "description": "Evaluate arithmetic."}]
    teacher = GarbageTeacher()
    questions, counts = llm_questions(tmp_path, cfg, teacher, specs)
    journal = list(iter_json(tmp_path / "questions.raw.jsonl"))
    assert questions == []
    assert counts["dropped_prompts"] == len(journal) > 0
    assert teacher.requests == 3 * len(journal)  # first try + 2 retries each
    assert counts["invalid_replies"] == teacher.requests
    assert all(r["status"] == "dropped" and r["reason"] for r in journal)
    again = GarbageTeacher()
    llm_questions(tmp_path, cfg, again, specs)  # resumed: every prompt already has its outcome
    assert again.requests == 0


def test_near_duplicates_go_but_different_numbers_stay():
    from agentdistill.corpus.embed import Embedder

    def q(i, text):
        return Question(id=f"q{i}", text=text, persona="p", cluster=0)

    questions = [q(0, "How much gratuity after 5 years on AED 8,000?"),
                 q(1, "How much gratuity after 5 years on AED 8,000 ?"),
                 q(2, "How much gratuity after 7 years on AED 8,000?"), q(3, "What are the rules on sick leave?"),
                 q(4, "what are the rules on sick leave?"), q(5, "What are the rules about sick leave?")]
    kept, removed = dedup(questions, Embedder("all-minilm-l6-v2").encode, threshold=0.95)
    assert [k.id for k in kept] == ["q0", "q2", "q3"]
    assert removed == 3


def test_personas_file_errors_name_the_problem(tmp_path):
    bad = tmp_path / "personas.yaml"
    bad.write_text("- name: employee\n")
    with pytest.raises(UserError, match="asks_about") as e:
        load_personas(bad)
    assert e.value.hint
    with pytest.raises(UserError, match="does not exist"):
        load_personas(tmp_path / "missing.yaml")
    good = tmp_path / "good.yaml"
    good.write_text("personas:\n  - {name: hr, asks_about: [leave, pay], style: brief}\n")
    [p] = load_personas(good)
    assert p.asks_about == ["leave", "pay"] and p.style == "brief"


def test_the_rule_writer_fills_the_mix_with_split_questions_that_record_their_family_and_facts(tmp_path):
    chunks = _tiny_corpus(tmp_path)
    cfg = example_config(questions=QuestionsConfig(n_questions=40), teacher=TeacherConfig(kind="rule"))
    report = make_questions(tmp_path, cfg)
    qs = read_records(tmp_path / "questions.jsonl", Question)
    stats = json.loads((tmp_path / "questions.stats.json").read_text())
    assert stats["complete"] and stats["n"] == len(qs) == 40
    assert report.by_kind == kind_targets(40, cfg.questions.mix)
    assert len({q.id for q in qs}) == len({q.text for q in qs}) == 40
    for q in qs:
        assert q.family.split(".", 1)[0] == q.kind  # a family belongs to one kind
        assert q.answer_facts  # the writer says what a right answer contains
        assert (q.kind == "no_tool") == (q.expect.tools == [])
        assert set(q.source_chunk_ids) <= {c.id for c in chunks}
        if q.kind == "lookup" and q.expect.tools == ["search_labour_law"] and q.source_chunk_ids:
            # the teacher's query is the topic in the documents' words, whatever typos the question has
            source = " ".join(c.section_path + " " + c.text for c in chunks if c.id in q.source_chunk_ids).lower()
            assert all(w.lower() in source for w in q.expect.hints["search_labour_law"]["query"].split()), q
    assert {q.persona for q in qs} == {"HR manager", "employer", "employee", "domestic worker"}  # defaults
    assert Counter(q.split for q in qs)["test"] > 0
    for held_out in ("dev", "test"):
        for field in ("source_chunk_ids", "family"):
            def values(split, field=field):
                return {v for q in qs if q.split == split
                        for v in (q.source_chunk_ids if field == "source_chunk_ids" else [q.family])}
            assert not values("train") & values(held_out), (field, held_out)
    assert isinstance(qs[0].expect, Expect)


def test_more_calculations_leave_the_lookups_and_their_split_as_they_were(tmp_path):
    # each kind draws from its own random stream and the split orders topics, not list positions:
    # a change to one kind must not move which topics are held out
    def lookups(run, n, mix):
        _tiny_corpus(run)
        write_json_atomic(run / "clusters.json", {"k": 6, "rule": "test", "clusters": [
            {"id": i, "size": 1, "top_terms": ["leave"], "chunk_ids": [f"c{i}"]} for i in range(6)]})
        cfg = example_config(questions=QuestionsConfig(n_questions=n, mix=mix), teacher=TeacherConfig(kind="rule"))
        make_questions(run, cfg)
        qs = read_records(run / "questions.jsonl", Question)
        return {(q.text, q.split) for q in qs if q.kind == "lookup"}, Counter(q.kind for q in qs)

    # no two-tool questions: their calculators would tie the split to which calculators the other
    # calculations cover (a topic is kept in train while it holds a tool's only training questions). The
    # lookups and greetings stay as many (30 and 12), so every kind writes the same families: a style is held
    # out for every kind at once, so a family that appears or vanishes may move the styles held out.
    base, kinds = lookups(tmp_path / "a", 60, {"lookup": 0.5, "calculation": 0.3, "multi_step": 0.0, "no_tool": 0.2})
    more, more_kinds = lookups(tmp_path / "b", 80, {"lookup": 0.375, "calculation": 0.475, "multi_step": 0.0,
                                                    "no_tool": 0.15})
    assert more_kinds["calculation"] > kinds["calculation"] and more_kinds["no_tool"] == kinds["no_tool"]
    # (the tiny corpus's lookups hold out test, not always dev too: each tool keeps two training families)
    assert base == more and {split for _, split in base} >= {"train", "test"}


def test_another_split_seed_holds_out_other_topics(tmp_path):
    # The split is made over all candidates before the mix is sampled (what it leaves out must not cut
    # the run short), so another seed also keeps other questions: only the topics are compared.
    def held_out(run, split_seed):
        _tiny_corpus(run)
        write_json_atomic(run / "clusters.json", {"k": 6, "rule": "test", "clusters": [
            {"id": i, "size": 1, "top_terms": ["leave"], "chunk_ids": [f"c{i}"]} for i in range(6)]})
        cfg = example_config(questions=QuestionsConfig(n_questions=60), teacher=TeacherConfig(kind="rule"),
                        split=SplitConfig(seed=split_seed))
        make_questions(run, cfg)
        qs = read_records(run / "questions.jsonl", Question)
        return {q.text for q in qs}, {q.cluster for q in qs if q.split == "test" and q.source_chunk_ids}

    texts, topics = held_out(tmp_path / "a", None)
    assert held_out(tmp_path / "b", 0) == (texts, topics)  # None is the run's seed, 0
    # (on six chunks a seed may hold out no family whose questions have a source: any of three others)
    others = [held_out(tmp_path / f"c{seed}", seed)[1] for seed in (1, 2, 3)]
    assert topics and any(other and other != topics for other in others)


def test_seed_questions_train_beside_the_written_ones_and_never_on_a_held_out_topic(tmp_path):
    def run(run_dir, seeds):
        _tiny_corpus(run_dir)
        write_json_atomic(run_dir / "clusters.json", {"k": 6, "rule": "test", "clusters": [
            {"id": i, "size": 1, "top_terms": ["leave"], "chunk_ids": [f"c{i}"]} for i in range(6)]})
        cfg = example_config(questions=QuestionsConfig(n_questions=40, seed_questions=seeds),
                             teacher=TeacherConfig(kind="rule"))
        make_questions(run_dir, cfg)
        return (read_records(run_dir / "questions.jsonl", Question),
                json.loads((run_dir / "questions.stats.json").read_text())["counts"])

    rows = [{"text": f"my boss says I only get a few days off, what does the law say for topic {i}?",
             "kind": "lookup", "tools": ["search_labour_law"], "source": f"Topic {i} (", "query": f"topic {i} leave"}
            for i in range(6)]
    rows += [{"text": "salaam alaikum!", "kind": "no_tool", "reply": "greeting"},
             {"text": "salaam alaikum!", "kind": "no_tool", "reply": "greeting"},
             {"text": "what about sabbaticals?", "kind": "lookup", "tools": ["search_labour_law"],
              "source": "Sabbaticals", "query": "sabbatical"}]  # no section has that title
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    written, _ = run(tmp_path / "a", None)
    test_question = next(q for q in written if q.split == "test")  # a row in its words must not train
    rows.append({"text": test_question.text, "kind": "no_tool", "reply": "greeting"})
    seeds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    qs, counts = run(tmp_path / "b", seeds)

    seeded = [q for q in qs if q.family.endswith(".seed")]
    assert [q for q in qs if not q.family.endswith(".seed")] == written  # no written question moves
    assert all(q.split == "train" for q in seeded) and "salaam alaikum!" in {q.text for q in seeded}
    held_out = {q.cluster for q in written if q.split != "train" and q.source_chunk_ids}
    lookups = [q for q in seeded if q.kind == "lookup"]
    assert held_out and lookups and not {q.cluster for q in lookups} & held_out
    assert all(q.answer_facts and q.cluster == int(q.source_chunk_ids[0][1:]) for q in lookups)
    assert counts["seed_held_out_topic"] == 6 - len(lookups) > 0
    assert counts["seed_unusable"] == 1 and counts["seed_trained"] == len(seeded)
    assert counts["seed_duplicate"] == 2 and len({q.id for q in qs}) == len(qs)


def test_seed_questions_need_a_pack_that_reads_them(tmp_path):
    _tiny_corpus(tmp_path)
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"text": "hi", "kind": "no_tool", "reply": "greeting"}) + "\n")
    cfg = RunConfig(questions=QuestionsConfig(n_questions=10, seed_questions=seeds),
                    teacher=TeacherConfig(kind="rule"), tools=ToolsConfig(packs=["documents"]))
    with pytest.raises(UserError, match="seed_questions"):
        make_questions(tmp_path, cfg)


def test_stages_run_out_of_order_say_what_to_run_first(tmp_path):
    from agentdistill.synth.traces import load_questions

    with pytest.raises(UserError, match="chunks.jsonl") as e:
        make_questions(tmp_path, RunConfig())
    assert "agentdistill ingest" in e.value.hint
    with pytest.raises(UserError, match="no finished questions.jsonl") as e:
        load_questions(tmp_path)
    assert "agentdistill questions" in e.value.hint
