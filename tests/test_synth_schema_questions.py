"""The generic question writer: questions for any pack from its tools' schemas and its documents' content,
each recording the tools and arguments that answer it, facts from the real tools, and a phrasing family."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import pytest

from agentdistill.config import CorpusConfig, QuestionsConfig, RunConfig, ToolsConfig
from agentdistill.corpus import ingest
from agentdistill.records import Chunk
from agentdistill.synth.questions import load_corpus, load_personas
from agentdistill.synth.schema_questions import (
    draw_arguments,
    heading_topic,
    result_facts,
    schema_questions,
    topics,
)
from agentdistill.tools import load_tools

SHOP = Path(__file__).resolve().parents[1] / "examples" / "shop"


def shop_config(**sections) -> RunConfig:
    return RunConfig(corpus=CorpusConfig(paths=[SHOP / "corpus"], chunk_tokens=256, chunk_overlap=32, n_clusters=6,
                                         min_similarity=0.25),
                     tools=ToolsConfig(packs=["shop", "general"]), **sections)


@pytest.fixture(scope="module")
def shop_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("shop")
    cfg = shop_config(questions=QuestionsConfig(n_questions=120))
    ingest([SHOP / "corpus"], run, cfg, progress=False)
    chunks, clusters = load_corpus(run)
    tools = load_tools(cfg, run)
    questions, counts = schema_questions(chunks, clusters, load_personas(None, cfg), tools, cfg)
    return run, cfg, chunks, tools, questions, counts


def chunk(section_path: str, source: str = "docs/893a9bec.md", text: str = "Some text.") -> Chunk:
    return Chunk(id="c1", doc_id="d1", source=source, title=section_path.split(" > ")[0], section_path=section_path,
                 text=text, n_tokens=10)


def test_a_heading_is_a_topic_and_a_file_name_or_a_section_number_is_not():
    assert heading_topic(chunk("Returns and refunds > Restocking Fee for Opened Electronics")) == \
        "restocking fee for opened electronics"
    assert heading_topic(chunk("Federal Decree-Law 33/2021 > Art. 51 > End of service gratuity (Art. 51)")) == \
        "end of service gratuity"
    assert heading_topic(chunk("893a9bec", source="pages/893a9bec.html")) is None
    assert heading_topic(chunk("annual_leave_2024", source="x/annual_leave_2024.txt")) is None
    assert heading_topic(chunk("Employment Guide > Art. 7", source="x/guide.md")) == "employment guide"
    assert heading_topic(chunk("Guide > Art. 7", source="x/guide.md")) is None


def test_a_passage_without_a_heading_is_asked_about_by_its_salient_terms():
    text = ("The parking permit is issued by the city office. A parking permit costs 40 euros a year. "
            "Renew the parking permit online before it expires.")
    other = "Opening hours of the city office are nine to five. The city office is closed on Sundays."
    chunks = [chunk("893a9bec", source="p/893a9bec.html", text=text),
              Chunk(id="c2", doc_id="d2", source="p/d8b91e9a.html", title="d8b91e9a", section_path="d8b91e9a",
                    text=other, n_tokens=10)]
    found = topics(chunks)
    assert found["c1"] == "parking permit"
    assert "893a9bec" not in found["c1"] and "d8b91e9a" not in found["c2"]


def test_arguments_come_from_the_schema_and_the_tools_accept_them():
    cfg = shop_config()
    tools = load_tools(cfg, None)
    specs = {s["name"]: s for s in tools.specs()}
    rng = random.Random(0)
    drawn = {name: [draw_arguments(specs[name], rng) for _ in range(30)] for name in
             ("refund_amount", "shipping_cost", "convert_units", "date_diff", "calculator", "get_order")}
    assert {a["reason"] for a in drawn["refund_amount"]} == {"damaged", "wrong_item", "changed_mind", "late_delivery"}
    assert all(re.fullmatch(r"A\d{4}", a["order_id"]) for a in drawn["get_order"])
    assert len({a["order_id"] for a in drawn["get_order"]}) > 5  # ids near the docstring's examples
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", a["start_date"]) for a in drawn["date_diff"])
    # examples listed in step across parameters stay paired: "km"/"mi", "lb"/"kg", "F"/"C"
    assert {(a["from_unit"], a["to_unit"]) for a in drawn["convert_units"]} <= {("km", "mi"), ("lb", "kg"), ("F", "C")}
    assert len({a["expression"] for a in drawn["calculator"]}) > 10
    ok = [tools.call(name, args).ok for name, sets in drawn.items() if name != "get_order" for args in sets]
    assert sum(ok) / len(ok) > 0.95


def test_a_results_facts_are_its_new_figures():
    result = "Refund for order A1004 (damaged): USD 189.96, the items (USD 179.97) and the shipping in full."
    assert result_facts(result, {"order_id": "A1004", "reason": "damaged"}) == ["USD 189.96"]
    assert result_facts("2024-02-06 + 90 days = 2024-05-06 (Monday)", {"date": "2024-02-06", "days": 90}) == \
        ["2024-02-06 + 90 days = 2024-05-06 (Monday)"]


def test_an_amount_is_in_a_currency_the_answer_checker_reads_as_one():
    result = "Allowance: Dhs 1,200.50 for 3 days of leave."
    assert result_facts(result, {}, {"dhs": "AED"}) == ["Dhs 1,200.50", "3 days"]  # the run's packs declare "Dhs"
    assert result_facts(result, {}) == ["3 days"]  # elsewhere it is a word
    assert result_facts("Fee: CHF 20.00 per parcel.", {}) == ["CHF 20.00"]  # a code in capitals is money anywhere


def test_every_kind_family_and_tool_is_written(shop_run):
    _, _, _, tools, questions, _ = shop_run
    assert set(Counter(q.kind for q in questions)) == {"lookup", "calculation", "multi_step", "no_tool"}
    for kind in ("lookup", "calculation", "multi_step", "no_tool"):
        assert len({q.family for q in questions if q.kind == kind}) >= 3  # the split holds out whole families
    used = {t for q in questions for t in q.expect.tools}
    assert used == set(tools.names())
    assert {q.answer_facts[0] for q in questions if q.kind == "no_tool"} == {"greeting", "thanks", "decline"}


def test_calculations_record_arguments_the_question_writes_and_facts_the_real_tool_gives(shop_run):
    _, _, _, tools, questions, _ = shop_run
    calcs = [q for q in questions if q.kind in ("calculation", "multi_step")]
    for q in calcs:
        (name, args), = q.expect.arguments.items()
        assert name == q.expect.tools[-1]
        result = tools.call(name, args)
        facts = q.answer_facts if q.kind == "calculation" else q.answer_facts[1:]
        assert result.ok and facts and all(fact in result.content for fact in facts)
        for value in args.values():
            assert str(value) in q.text  # the call can be copied from the question


def test_lookups_are_about_the_content_and_their_facts_are_sentences_of_their_source(shop_run):
    _, _, chunks, _, questions, _ = shop_run
    by_id = {c.id: c for c in chunks}
    lookups = [q for q in questions if q.kind == "lookup" and q.source_chunk_ids]
    assert len(lookups) > 40
    for q in lookups:
        source = by_id[q.source_chunk_ids[0]]
        assert " ".join(q.answer_facts[0].split()) in " ".join(source.text.split())
        assert q.expect.arguments is None  # the query is the asker's words: any query that finds it is right
    assert not [q.text for q in questions if ".md" in q.text]  # (test_byo_documents checks file names too)


def test_topics_the_documents_do_not_hold_are_asked_and_marked_not_covered(shop_run):
    _, _, _, _, questions, _ = shop_run
    uncovered = [q for q in questions if q.answer_facts == ["not covered"]]
    assert uncovered and all(q.kind == "lookup" and not q.source_chunk_ids for q in uncovered)
