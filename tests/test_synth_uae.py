"""The UAE example end to end with the offline rule teacher: ingest -> questions -> traces.

Checks what the distillation data must satisfy: at least 600 accepted traces covering every tool and
persona, 10-20% no-tool questions, an eval split that shares no source chunk with train, a resumed
run that adds nothing, and the exports.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentdistill.cli import app
from agentdistill.config import load_config
from agentdistill.corpus import ingest
from agentdistill.jsonl import read_records
from agentdistill.records import Question, Trace
from agentdistill.synth.questions import load_personas
from agentdistill.tools import load_tools

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "uae_labour"


@pytest.fixture(scope="module")
def uae_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("uae") / "run"
    cfg = load_config(EXAMPLE / "config.yaml")
    ingest(cfg.corpus.paths, run, cfg, progress=False)
    runner = CliRunner()
    q = runner.invoke(app, ["questions", "--run", str(run), "--config", str(EXAMPLE / "config.yaml")])
    assert q.exit_code == 0, q.output
    t = runner.invoke(app, ["traces", "--run", str(run)])
    assert t.exit_code == 0, t.output
    return run, cfg, q.output, t.output


def test_at_least_600_accepted_traces_cover_every_tool_and_persona(uae_run):
    run, cfg, _, output = uae_run
    stats = json.loads((run / "traces.stats.json").read_text())
    assert stats["complete"] and stats["questions"] == cfg.questions.n_questions
    assert stats["accepted"] >= 600
    assert set(stats["accepted_by_tool"]) >= set(load_tools(cfg, run).names())
    assert set(stats["accepted_by_persona"]) == {p.name for p in load_personas(cfg.questions.personas, cfg)}
    assert 0.10 <= stats["no_tool_share"] <= 0.20
    assert f"{stats['accepted']} accepted" in output and "no-tool share" in output  # the CLI prints the numbers
    print(f"accepted={stats['accepted']} rejections={stats['rejections']} no_tool={stats['no_tool_share']} "
          f"seconds={stats['seconds_this_run']}")


def test_the_eval_split_shares_no_source_chunk_with_train(uae_run):
    run, _, _, _ = uae_run
    questions = read_records(run / "questions.jsonl", Question)
    traces = read_records(run / "traces.jsonl", Trace)
    train = {c for q in questions if q.split == "train" for c in q.source_chunk_ids}
    test = {c for q in questions if q.split == "test" for c in q.source_chunk_ids}
    assert test and train and not train & test
    split = {q.id: q.split for q in questions}
    assert all(t.split == split[t.question_id] for t in traces)
    assert {t.split for t in traces} == {"train", "dev", "test"}
    for held_out in ("dev", "test"):  # nor a phrasing family: held-out scores measure unseen phrasing
        families = {q.family for q in questions if q.split == held_out}
        assert families and not families & {q.family for q in questions if q.split == "train"}


def test_every_kind_is_held_out_and_held_out_two_tool_calculators_are_trained_after_other_topics(uae_run):
    run, _, _, _ = uae_run
    questions = read_records(run / "questions.jsonl", Question)
    assert {q.kind for q in questions if q.split == "test"} == {"lookup", "calculation", "multi_step", "no_tool"}
    assert {q.kind for q in questions if q.split == "dev"} == {"lookup", "calculation", "multi_step", "no_tool"}
    two_tool = [q for q in questions if q.kind == "multi_step"]
    trained_second = {(q.cluster, q.expect.tools[1]) for q in two_tool if q.split == "train"}
    for q in two_tool:
        if q.split == "test":  # the held-out topic is new, but its calculator follows a search in training
            assert any(tool == q.expect.tools[1] and cluster != q.cluster for cluster, tool in trained_second)


def test_traces_are_grounded_and_questions_unique(uae_run):
    from agentdistill.domains.uae_labour.citations import extract_citations

    run, _, _, _ = uae_run
    questions = read_records(run / "questions.jsonl", Question)
    assert len({q.text for q in questions}) == len(questions)
    for t in read_records(run / "traces.jsonl", Trace):
        seen = set().union(*[extract_citations(m["content"]) for m in t.messages if m["role"] == "tool"])
        assert extract_citations(t.outcome.answer) <= seen


def test_the_teachers_queries_are_the_users_words_and_its_answers_hold_their_facts(uae_run):
    from agentdistill.evaluate.answer_check import check_answer

    run, _, _, _ = uae_run
    questions = {q.id: q for q in read_records(run / "questions.jsonl", Question)}
    traces = read_records(run / "traces.jsonl", Trace)
    for t in traces:
        q = questions[t.question_id]
        words = {w.lower() for w in re.findall(r"[A-Za-z][A-Za-z'-]*", q.text)}
        hint = ((q.expect.hints or {}).get("search_labour_law") or {}).get("query")
        for m in t.messages:
            for call in m.get("tool_calls", []) if m["role"] == "assistant" else []:
                if call["name"] == "search_labour_law":  # no word of a thought template: the writer's hint (the
                    query = call["arguments"]["query"]  # topic in the documents' words), else the user's words
                    assert query == hint if hint else set(query.lower().split()) <= words, call
        observations = [m["content"] for m in t.messages if m["role"] == "tool"]
        assert check_answer(questions[t.question_id], t.outcome.answer, observations).correct is not False
    stats = json.loads((run / "traces.stats.json").read_text())
    wrong = stats["rejections"].get("wrong_answer", 0)
    assert wrong <= 0.02 * stats["recorded"]  # the offline teacher's own answers are right for >= 98%


def test_rules_are_also_asked_as_quantities_and_beside_the_askers_own_figures_and_still_searched(uae_run):
    from agentdistill.records import Chunk

    run, _, _, _ = uae_run
    questions = read_records(run / "questions.jsonl", Question)
    text_of = {c.id: c.text.lower() for c in read_records(run / "chunks.jsonl", Chunk)}
    searches = [q for q in questions if q.kind == "lookup" and q.expect.tools == ["search_labour_law"]]
    quantity = [(q, m.group(1)) for q in searches
                if (m := re.search(r"(?:how many|number of) (days|weeks|months|years|hours)\b", q.text, re.I))]
    assert len(quantity) > 0.05 * len(searches)
    for q, unit in quantity:  # asked in a unit its own passage states a figure in
        assert any(unit.lower().rstrip("s") in text_of[c] for c in q.source_chunk_ids), q.text
    personal = [q for q in searches if re.search(r"(?:salary is|earn|with my employer for|worked there|into the job)",
                                                q.text, re.I)]
    assert len(personal) > 0.05 * len(searches)  # a figure shaped like a calculator's argument, and still a search


def test_calculations_of_every_family_carry_figures_they_do_not_need_anywhere_in_the_question(uae_run):
    from agentdistill.domains.uae_labour.questions import BYSTANDERS, FIGURE_FAMILIES

    run, _, _, _ = uae_run
    openings = [b.split("{", 1)[0] for b in BYSTANDERS]
    calculations = [q for q in read_records(run / "questions.jsonl", Question)
                    if q.kind in ("calculation", "multi_step") and q.family.split(".")[1] not in FIGURE_FAMILIES]
    carrying = [q for q in calculations if any(o.lower() in q.text.lower() for o in openings)]
    assert 0.2 * len(calculations) < len(carrying) < 0.5 * len(calculations)
    assert len({q.family for q in carrying}) >= 4
    where = {"first" if q.text.lower().startswith(tuple(o.lower() for o in openings)) else "later" for q in carrying}
    assert where == {"first", "later"}  # not always where a story stands


def test_a_bystander_sentence_goes_between_sentences_and_leaves_them_as_they_were():
    from agentdistill.domains.uae_labour.questions import BYSTANDER_SHARE, BYSTANDERS, with_bystander

    texts = [f"My basic is {n},000 AED. I worked {n % 9 + 1} hours on my rest day. What am I owed?" for n in range(200)]
    changed = [(t, with_bystander(t)) for t in texts if with_bystander(t) != t]
    assert abs(len(changed) / len(texts) - BYSTANDER_SHARE) < 0.1
    assert all(with_bystander(t) == w for t, w in changed)  # drawn from the text: the same every time
    for before, after in changed:
        added = [s for s in re.split(r"(?<=[.?!])\s+", after) if s not in before]
        shapes = [r"\d+".join(map(re.escape, re.split(r"\{\w+\}", b))) for b in BYSTANDERS]
        assert len(added) == 1 and any(re.fullmatch(shape, added[0]) for shape in shapes), after
        assert after.replace(added[0], "").split() == before.split()


def test_errands_outside_the_domain_are_declined_and_uncovered_work_topics_are_searched(uae_run):
    from agentdistill.domains.uae_labour.questions import OFF_DOMAIN_TASKS, UNCOVERED_TOPICS
    from agentdistill.domains.uae_labour.teacher import NOT_COVERED

    run, _, _, _ = uae_run
    questions = read_records(run / "questions.jsonl", Question)
    errands = [q for q in questions if any(task in q.text.lower() for task in OFF_DOMAIN_TASKS)]
    assert errands and all(q.kind == "no_tool" and q.answer_facts == ["decline"] for q in errands)
    assert len({q.family for q in errands}) >= 3
    uncovered = [q for q in questions if q.answer_facts == [NOT_COVERED]]
    assert uncovered and all(q.expect.tools == ["search_labour_law"] for q in uncovered)
    typed_plainly = [q for q in uncovered if q.family not in ("lookup.casual", "lookup.terse")]  # no typos
    assert all(any(topic.lower() in q.text.lower() for topic in UNCOVERED_TOPICS) for q in typed_plainly)


def test_a_second_run_resumes_with_nothing_to_do_and_exports_the_train_split(uae_run):
    run, _, _, _ = uae_run
    before = (run / "traces.jsonl").read_bytes(), (run / "traces.rejected.jsonl").read_bytes()
    again = CliRunner().invoke(app, ["traces", "--run", str(run)])
    assert again.exit_code == 0, again.output
    assert ((run / "traces.jsonl").read_bytes(), (run / "traces.rejected.jsonl").read_bytes()) == before
    n_train = sum(1 for t in read_records(run / "traces.jsonl", Trace) if t.split == "train")
    for name in ("train.trl.jsonl", "train.sharegpt.jsonl"):
        assert len((run / "export" / name).read_text().splitlines()) == n_train


def test_the_hand_written_dev_questions_get_their_facts_from_the_example_documents(uae_run):
    from agentdistill.domains.uae_labour.questions import questions_from_spec
    from agentdistill.records import Chunk

    run, cfg, _, _ = uae_run
    rows = [json.loads(line) for line in (EXAMPLE / "natural_dev.spec.jsonl").open(encoding="utf-8")]
    chunks = read_records(run / "chunks.jsonl", Chunk)
    tools = load_tools(cfg, run)
    questions = questions_from_spec(rows, chunks, tools)
    assert len(questions) == len(rows) and all(q.answer_facts and q.split == "dev" for q in questions)
    assert {q.family for q in questions} == {f"{k}.natural" for k in ("lookup", "calculation", "multi_step", "no_tool")}
    committed = read_records(EXAMPLE / "natural_dev.jsonl", Question)
    assert [q.answer_facts for q in committed] == [q.answer_facts for q in questions]  # the file is up to date
    with pytest.raises(ValueError, match="row 1 .*no section"):
        questions_from_spec([{**rows[0], "source": "A section nobody wrote"}], chunks, tools)
