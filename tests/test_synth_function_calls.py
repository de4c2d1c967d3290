"""Synthetic function-calling traces (synth/function_calls.py): each reply parses in the wire format, each call
fits its own offered schema, irrelevance replies call nothing, and dev domains never reach training."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentdistill.agent.wire import parse_step, render_assistant
from agentdistill.cli import app
from agentdistill.config import load_config
from agentdistill.evaluate.bfcl import check_entry, read_category
from agentdistill.evaluate.bfcl_runner import as_tool
from agentdistill.jsonl import read_records
from agentdistill.records import Trace
from agentdistill.run_layout import RunLayout
from agentdistill.synth.function_calls import (
    Param,
    catalogue,
    draw_value,
    fresh_text,
    make_traces,
    question_for,
    write_run,
)
from agentdistill.tools.registry import ToolRegistry


@pytest.fixture(scope="module")
def traces() -> tuple[list[Trace], list[str]]:
    made, _, held_out = make_traces(400, 120, seed=3)
    return made, held_out


def test_the_catalogue_is_a_few_hundred_distinct_functions_over_many_domains():
    functions = catalogue()
    assert len(functions) >= 250
    assert len({f.name for f in functions}) == len(functions)
    assert len({f.domain for f in functions}) >= 15
    kinds = {p.kind for f in functions for p in f.params}
    assert {"int", "num", "str", "enum", "bool", "ints", "nums", "strs"} <= kinds
    for f in functions:  # every spec is valid JSON Schema, as the registry checks it
        ToolRegistry([as_tool(f.spec())])


def test_every_reply_parses_and_every_call_validates_against_its_own_offered_tools(traces):
    for t in traces[0]:
        reply = t.messages[-1]
        step = parse_step(render_assistant(reply))
        assert 1 <= len(t.tools) <= 5
        assert len(step.thought.split(". ")) == 1 and step.thought.endswith(".")  # one sentence
        offered = ToolRegistry([as_tool(s) for s in t.tools])
        assert t.messages[0]["content"].count("\n- ") == len(t.tools)  # the prompt lists exactly the offered ones
        if "tool_calls" in reply:
            assert len(step.tool_calls) == 1 and step.tool_calls == reply["tool_calls"]
            call = step.tool_calls[0]
            assert offered.validate(call["name"], call["arguments"]) is None, (t.id, call)
        else:
            assert step.is_answer and not step.tool_calls


def test_irrelevance_traces_offer_nothing_that_fits(traces):
    functions = {f.name: f for f in catalogue()}
    irrelevant = [t for t in traces[0] if "content" in t.messages[-1]]
    assert 0.2 < len(irrelevant) / len(traces[0]) < 0.3
    for t in irrelevant:
        asked = t.messages[-1]["content"]
        offered_asks = {ask for s in t.tools for ask in functions[s["name"]].asks}
        assert not any(ask in asked for ask in offered_asks), t.id
    domain_of_ask = {ask: f.domain for f in functions.values() for ask in f.asks}
    asked_domains = [next(d for a, d in domain_of_ask.items() if a in t.messages[-1]["content"]) for t in irrelevant]
    near_misses = sum(d in {functions[s["name"]].domain for s in t.tools}
                      for t, d in zip(irrelevant, asked_domains, strict=True))
    assert near_misses > len(irrelevant) / 4  # often a function of the asked one's own domain is offered


def test_dev_domains_never_appear_in_train(traces):
    made, held_out = traces
    functions = {f.name: f for f in catalogue()}
    assert held_out
    for t in made:
        domains = {functions[s["name"]].domain for s in t.tools}
        assert (domains <= set(held_out)) if t.split == "dev" else not (domains & set(held_out)), t.id
    assert {t.split for t in made} == {"train", "dev"}


def test_generation_is_deterministic_under_the_seed():
    a, _, _ = make_traces(30, 5, seed=1)
    b, _, _ = make_traces(30, 5, seed=1)
    c, _, _ = make_traces(30, 5, seed=2)
    assert [t.model_dump() for t in a] == [t.model_dump() for t in b]
    assert [t.messages for t in a] != [t.messages for t in c]


def test_numbers_are_written_as_people_write_them():
    p = Param.parse("n:int:0-20|A count.|{v} items")
    rng = random.Random(0)
    texts = {draw_value(p, rng)[1] for _ in range(200)}
    assert {"three", "3"} & texts and any(t.isalpha() for t in texts) and any(t.isdigit() for t in texts)
    big = Param.parse("n:int:1000-9000|A sum.|{v} dollars")
    assert any("," in draw_value(big, rng)[1] for _ in range(50))
    large = Param.parse("n:int:1-5000000|A sum.|{v} dollars")
    values = [draw_value(large, rng)[0] for _ in range(200)]
    assert 40 < sum(str(v).rstrip("0") != str(v) and len(str(v).rstrip("0")) <= 2 for v in values) < 120  # round
    assert all(1 <= v <= 5000000 for v in values)


def test_fractions_are_said_as_percents_and_large_round_numbers_scaled():
    rng = random.Random(2)
    pct = Param.parse("rate:pct:0.010-0.150|Rate as a fraction.|at {v}")
    drawn = [draw_value(pct, rng) for _ in range(200)]
    assert all(0.01 <= value <= 0.15 for value, _ in drawn) and pct.schema()["type"] == "number"
    for value, text in drawn:  # 0.073 is asked as "7.3%" or "7.3 percent"
        assert float(text.rstrip("%").removesuffix(" percent")) == pytest.approx(value * 100), (value, text)
    big = Param.parse("n:int:1000000-9000000|A sum.|{v} dollars")
    texts = [draw_value(big, rng) for _ in range(300)]
    scaled = [(v, t) for v, t in texts if t.endswith("million")]
    assert scaled and all(round(float(t.split()[0]) * 1_000_000) == v for v, t in scaled)


def test_free_text_values_are_often_invented_so_a_student_must_copy_them():
    city = Param.parse("city:str:Lisbon;Quebec City|City.|in {v}")
    rng = random.Random(0)
    drawn = [draw_value(city, rng) for _ in range(300)]
    cities = [value.split(", ")[0] for value, _ in drawn]  # some come with their region
    invented = [value for value in cities if value not in ("Lisbon", "Quebec City")]
    assert 0.35 < len(invented) / len(cities) < 0.65 and len(set(invented)) > 100
    assert all(value == text for value, text in drawn)  # a name is written as it is called
    assert all(value[0].isupper() for value in invented)  # in the example's case
    assert fresh_text("SELECT * FROM items", rng) is None  # nothing is invented where it would not parse


def test_values_no_form_is_asked_for_are_copied_whole_as_written():
    # places with their region, codes and paths with their punctuation, seasons as spans: the call holds what
    # the question says, character for character (BFCL's answers keep "Denver, Colorado" and "2022/AL2562")
    rng = random.Random(2)
    city = Param.parse("city:str:Lisbon;Denver|City.|in {v}")
    places = [draw_value(city, rng) for _ in range(300)]
    with_region = [value for value, said in places if ", " in value]
    assert 0.2 < len(with_region) / len(places) < 0.5 and all(value == said for value, said in places)
    assert {"Lisbon, Portugal", "Denver, CO"} <= set(with_region)
    for example, shape in [("2024/INV/0331", r"\d{4}/[A-Z]{3}/\d{4}"), ("LH778812", r"[A-Z]{2}\d{6}"),
                           ("~/reports/q3_review.pdf", r"~/[a-z]+/[a-z]\d_[a-z]+\.pdf"), ("2023-24", r"\d{4}-\d{2}")]:
        fresh = {fresh_text(example, rng) for _ in range(20)}
        assert all(value == said and re.fullmatch(shape, value) for value, said in fresh), (example, fresh)
        assert len(fresh) > 10
    season = fresh_text("2023-24", rng)[0]
    assert int(season[2:4]) + 1 == int(season[5:]) or season.endswith("-00")  # a span of two years
    assert fresh_text("H2O", rng) is None and fresh_text("10.0.0.1", rng) is None  # formulas, addresses: kept


def test_dates_and_times_are_written_as_people_write_them_and_called_in_the_schemas_form():
    rng = random.Random(1)
    date = Param.parse("date:str:2025-06-01;2025-07-15|Date as YYYY-MM-DD.|on {v}")
    drawn = [draw_value(date, rng) for _ in range(200)]
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) for value, _ in drawn)
    spoken = [text for value, text in drawn if text != value]
    assert len(spoken) > 100 and any(re.search(r"[A-Z][a-z]+ \d", t) for t in spoken)
    assert draw_value(Param.parse("date:str:2025-06-01|Date.|on {v}"), random.Random(4))[0] is not None
    value, text = fresh_text("08:00", random.Random(2)) or ("", "")
    assert re.fullmatch(r"\d{2}:\d{2}", value) and text


def test_questions_also_ask_about_the_result_and_join_their_values_as_a_sentence():
    f = next(f for f in catalogue() if f.name == "circle_area")
    rng = random.Random(0)
    texts = [question_for(f, rng)[0] for _ in range(300)]
    asked = [t for t in texts if t.startswith(("What", "Tell me", "Do you know", "I'd like to know"))]
    assert 0.2 < len(asked) / len(texts) < 0.5
    assert any(t.startswith("What is the area of a circle with a radius of ") for t in asked)
    assert not any(" with in " in t or " with with " in t for t in texts)
    assert not any(t.startswith("What") for t in (question_for(f, rng)[0] for f in catalogue()
                                                    if f.asks[0].startswith("book ") for _ in range(20)))


def test_each_function_is_asked_for_in_several_wordings_that_no_other_function_shares():
    by_blueprint = {f.blueprint: f.asks for f in catalogue()}
    assert all(len(set(asks)) == len(asks) >= 3 for asks in by_blueprint.values())
    owners: dict[str, str] = {}
    for blueprint, asks in by_blueprint.items():
        for ask in asks:
            assert owners.setdefault(ask, blueprint) == blueprint, ask
            assert ask == ask.strip() and ask[0].islower() and not ask.endswith((".", "?", "!")), ask
    f = next(f for f in catalogue() if f.name == "circle_area")
    rng = random.Random(0)
    used = Counter(question_for(f, rng)[2] for _ in range(200))
    assert set(used) == set(f.asks)  # every wording reaches the traces
    irrelevant = [t for t in make_traces(1000, 0, seed=5)[0] if "content" in t.messages[-1]]
    asked = {ask for t in irrelevant for ask in owners if ask in t.messages[1]["content"].lower()}
    assert len(asked) > len(by_blueprint)  # refusals too are worded every way


def test_the_run_holds_traces_for_sft_and_the_dev_split_as_bfcl_files_that_its_own_calls_pass(tmp_path):
    stats = write_run(tmp_path, 40, 30, seed=0)
    assert stats["traces"] == {"train": 40, "dev": 30}
    written = read_records(RunLayout(tmp_path).traces, Trace)
    assert len(written) == 70
    dev = {t.id: t for t in written if t.split == "dev"}
    n = 0
    for category in ("simple", "multiple", "irrelevance"):
        for entry in read_category(RunLayout(tmp_path).bfcl_dev, category):
            reply = dev[entry.id].messages[-1]
            calls = [{c["name"]: c["arguments"]} for c in reply.get("tool_calls", [])]
            assert check_entry(entry, calls).valid, entry.id  # the trace's own reply is right by BFCL's checker
            n += 1
    assert n == 30
    lines = [json.loads(x) for x in (tmp_path / "functions.jsonl").read_text().splitlines()]
    assert {x["split"] for x in lines} == {"train", "dev"}


def test_the_command_writes_a_run_and_refuses_foreign_traces(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["synth-calls", "--run", str(tmp_path / "r"), "--n", "20", "--n-dev", "4"])
    assert result.exit_code == 0, result.output
    assert RunLayout(tmp_path / "r").synth_calls_stats.exists() and RunLayout(tmp_path / "r").traces.exists()
    other = tmp_path / "other"
    other.mkdir()
    RunLayout(other).traces.write_text("")
    result = runner.invoke(app, ["synth-calls", "--run", str(other), "--n", "5"])
    assert result.exit_code != 0 and "not written by synth-calls" in str(result.exception)


def test_the_command_explains_itself_and_the_example_config_loads():
    result = CliRunner().invoke(app, ["synth-calls", "--help"])
    assert result.exit_code == 0 and "--irrelevance" in result.output and "bfcl_dev" in result.output
    cfg = load_config(Path(__file__).resolve().parents[1] / "examples" / "general_caller" / "config.yaml")
    assert cfg.models.student == "smollm2-135m" and cfg.sft.method == "lora"
