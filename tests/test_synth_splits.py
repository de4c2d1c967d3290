"""Splits by whole topics and whole phrasing families: no source chunk and no family is used by questions of
two of train/dev/test, every expected tool is trained, and what cannot be placed without a leak is
excluded and counted, never dropped silently."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentdistill.errors import UserError
from agentdistill.records import Expect, Question
from agentdistill.synth.splits import SplitResult, assign_splits, check_disjoint, components, split_counts

TOOLS = [[], ["search_labour_law"], ["get_article"], ["calculator"], ["search_labour_law", "annual_leave"]]


def assert_no_leak(out: list[Question]) -> None:
    """No source chunk, no family (and, for questions with chunks, no cluster) on two sides."""
    for key in (lambda q: q.source_chunk_ids, lambda q: [q.family] if q.family else [],
                lambda q: [q.cluster] if q.source_chunk_ids else []):
        sides: dict[object, set[str]] = defaultdict(set)
        for q in out:
            for k in key(q):
                sides[k].add(q.split)
        assert all(len(s) == 1 for s in sides.values()), {k: s for k, s in sides.items() if len(s) > 1}


def assert_tools_trained(questions: list[Question], out: list[Question]) -> None:
    for tool in {t for q in questions for t in (q.expect.tools if q.expect else [])}:
        assert any(tool in q.expect.tools for q in out if q.split == "train"), tool


@st.composite
def question_sets(draw):
    n_chunks = draw(st.integers(3, 30))
    n_clusters = draw(st.integers(1, 6))
    chunk_cluster = [draw(st.integers(0, n_clusters - 1)) for _ in range(n_chunks)]
    chunk_doc = {f"c{i}": f"d{i % 4}" for i in range(n_chunks)}
    with_families = draw(st.booleans())
    out = []
    for i in range(draw(st.integers(2, 60))):
        tools = draw(st.sampled_from(TOOLS))
        kind = draw(st.sampled_from(["lookup", "calculation", "multi_step", "no_tool"]))
        family = f"{kind}.f{draw(st.integers(0, 4))}" if with_families and draw(st.integers(0, 9)) else ""
        if draw(st.booleans()) and tools:
            first = draw(st.integers(0, n_chunks - 1))
            # a window: chunks of the same cluster, as the question writers produce them
            same = [c for c in range(n_chunks) if chunk_cluster[c] == chunk_cluster[first]]
            chunks = sorted({first, *draw(st.lists(st.sampled_from(same), max_size=2))})
            cluster = chunk_cluster[first]
        else:
            chunks, cluster = [], -1
        out.append(Question(id=f"q{i}", text=f"question {i}", persona=draw(st.sampled_from(["a", "b"])),
                            cluster=cluster, source_chunk_ids=[f"c{c}" for c in chunks], expect=Expect(tools=tools),
                            kind=kind, family=family))
    return out, chunk_doc


@settings(max_examples=200, deadline=None)
@given(question_sets(), st.floats(0.0, 0.6), st.floats(0.0, 0.3), st.sampled_from(["cluster", "document"]),
       st.integers(0, 5))
def test_no_source_chunk_and_no_family_is_in_two_splits(data, test_fraction, dev_fraction, by, seed):
    questions, chunk_doc = data
    out, excluded = assign_splits(questions, test_fraction, by=by, chunk_doc=chunk_doc, seed=seed,
                                  dev_fraction=dev_fraction)
    # every question is kept or excluded, once, in input order
    assert sorted(q.id for q in out + excluded) == sorted(q.id for q in questions)
    assert [q.id for q in out] == [q.id for q in questions if q.id in {k.id for k in out}]
    assert all(q.split is None for q in excluded)
    # only a question whose family and topic are held out to different sides is excluded: it has both
    assert all(q.family and q.source_chunk_ids for q in excluded)
    train = {c for q in out if q.split == "train" for c in q.source_chunk_ids}
    held = {c for q in out if q.split != "train" for c in q.source_chunk_ids}
    assert not train & held
    if by == "cluster":
        assert_no_leak(out)
    else:
        assert_no_leak([q.model_copy(update={"cluster": -1, "source_chunk_ids": []}) for q in out])
    assert_tools_trained(questions, out)


# --- a realistic set: kinds written in several phrasing families, lookups from clusters of chunks --------

LOOKUP_FAMILIES = ["lookup.informal", "lookup.article_ref", "lookup.formal", "lookup.scenario", "lookup.short"]
MULTI_FAMILIES = ["multi_step.scenario", "multi_step.direct", "multi_step.words"]
CALC_FAMILIES = ["calculation.shorthand_numbers", "calculation.words", "calculation.plain", "calculation.currency"]
NO_TOOL_FAMILIES = ["no_tool.greeting.casual", "no_tool.greeting.formal", "no_tool.thanks", "no_tool.decline"]
CALCULATORS = ["calculate_gratuity", "annual_leave", "calculator"]


def realistic() -> list[Question]:
    qs = []
    for cluster in range(8):
        for j, family in enumerate(LOOKUP_FAMILIES * 3):
            tools = ["get_article"] if family == "lookup.article_ref" else ["search_labour_law"]
            qs.append(Question(id=f"l{cluster}-{j}", text="t", persona="p", cluster=cluster, kind="lookup",
                               family=family, source_chunk_ids=[f"c{cluster}-{j % 4}"], expect=Expect(tools=tools)))
    for cluster in (1, 2, 5):  # two-tool questions come from a few topics only
        for j, family in enumerate(MULTI_FAMILIES * 3):
            tools = ["search_labour_law", CALCULATORS[j % 2]]
            qs.append(Question(id=f"m{cluster}-{j}", text="t", persona="p", cluster=cluster, kind="multi_step",
                               family=family, source_chunk_ids=[f"c{cluster}-{j % 4}"], expect=Expect(tools=tools)))
    for j, family in enumerate(CALC_FAMILIES * 10):
        qs.append(Question(id=f"k{j}", text="t", persona="p", cluster=-1, kind="calculation", family=family,
                           expect=Expect(tools=[CALCULATORS[j % 3]])))
    for j, family in enumerate(NO_TOOL_FAMILIES * 5):
        qs.append(Question(id=f"n{j}", text="t", persona="p", cluster=-1, kind="no_tool", family=family,
                           expect=Expect(tools=[])))
    return qs


@pytest.mark.parametrize("seed", range(8))
def test_dev_and_test_hold_out_whole_families_and_topics_of_every_kind(seed):
    questions = realistic()
    out, excluded = assign_splits(questions, 0.2, seed=seed, dev_fraction=0.1)
    assert_no_leak(out)
    check_disjoint(out)
    assert_tools_trained(questions, out)
    counts = split_counts(out)
    assert counts["test"] and counts["dev"] and counts["train"] > counts["test"] + counts["dev"], counts
    assert counts["train"] + counts["dev"] + counts["test"] + len(excluded) == len(questions)
    for kind in ("lookup", "multi_step", "calculation", "no_tool"):
        families = {q.family: q.split for q in out if q.kind == kind}
        assert "train" in families.values(), kind  # every kind keeps a training family
        assert {q.split for q in out if q.kind == kind} >= {"train", "test"}, (kind, families)
    # the kinds with three or more families hold out one to dev too (multi_step's dev family may lack a dev topic)
    for kind in ("lookup", "calculation", "no_tool"):
        assert "dev" in {q.split for q in out if q.kind == kind}, kind


def test_a_question_is_excluded_only_when_its_family_and_topic_disagree():
    questions = realistic()
    out, excluded = assign_splits(questions, 0.2, seed=0)
    family_side = {q.family: q.split for q in out}
    topic_side = {q.cluster: q.split for q in out if q.source_chunk_ids}
    assert excluded  # lookups of a held-out family on a training topic, and the reverse
    for q in excluded:
        assert q.source_chunk_ids and q.split is None
        # the family or the topic may have no kept question left; where both have, they disagree
        if q.family in family_side and q.cluster in topic_side:
            assert family_side[q.family] != topic_side[q.cluster], q.id
    for q in out:
        if q.source_chunk_ids:
            assert family_side[q.family] == topic_side[q.cluster] == q.split
    # the excluded are exactly what the kept leave out, and none is ungrounded
    assert len(out) + len(excluded) == len(questions)
    assert not [q for q in excluded if q.kind in ("calculation", "no_tool")]


def test_the_split_depends_on_the_questions_not_their_order():
    questions = realistic()
    first = assign_splits(questions, 0.2, seed=4)
    shuffled = questions[:]
    random.Random(0).shuffle(shuffled)
    again = assign_splits(shuffled, 0.2, seed=4)
    assert {q.id: q.split for q in first.questions} == {q.id: q.split for q in again.questions}
    assert {q.id for q in first.excluded} == {q.id for q in again.excluded}
    assert isinstance(first, SplitResult)


def test_a_kind_with_one_family_is_all_trained_and_with_two_one_is_tested():
    one = [Question(id=f"a{i}", text="t", persona="p", cluster=-1, kind="calculation", family="calculation.plain",
                    expect=Expect(tools=["calculator"])) for i in range(10)]
    two = [Question(id=f"b{i}", text="t", persona="p", cluster=-1, kind="no_tool",
                    family=f"no_tool.{'thanks' if i % 2 else 'greeting'}", expect=Expect(tools=[])) for i in range(10)]
    out, excluded = assign_splits(one + two, 0.2, seed=0)
    assert not excluded
    assert {q.split for q in out if q.kind == "calculation"} == {"train"}  # its family cannot be held out
    assert sorted(split_counts(q for q in out if q.kind == "no_tool").items()) == [("dev", 0), ("test", 5),
                                                                                  ("train", 5)]


def test_a_family_holding_a_tools_only_questions_stays_in_train():
    # the gratuity calculator is asked for in one family only: holding it out would never train the tool
    qs = [Question(id=f"q{i}", text="t", persona="p", cluster=-1, kind="calculation", family=f"calculation.f{i % 5}",
                   expect=Expect(tools=["calculate_gratuity"] if i % 5 == 0 else ["calculator"])) for i in range(50)]
    for seed in range(10):
        out, _ = assign_splits(qs, 0.2, seed=seed, dev_fraction=0.2)
        assert {q.split for q in out if q.family == "calculation.f0"} == {"train"}, seed
        assert {q.split for q in out} == {"train", "dev", "test"}


def test_every_tool_keeps_two_training_families():
    # the calculator is asked for in three families: one may be held out, never two, however large the shares
    qs = [Question(id=f"q{i}", text="t", persona="p", cluster=-1, kind="calculation", family=f"calculation.f{i % 6}",
                   expect=Expect(tools=["calculator"] if i % 6 < 3 else ["convert_units"])) for i in range(60)]
    for seed in range(10):
        out, _ = assign_splits(qs, 0.4, seed=seed, dev_fraction=0.4)
        for tool in ("calculator", "convert_units"):
            train_families = {q.family for q in out if q.split == "train" and q.expect.tools == [tool]}
            assert len(train_families) == 2, (seed, tool, train_families)


# --- questions without a family (older files, an LLM writer that names none): topics alone ------------

def test_old_style_questions_without_a_family_still_split_three_ways():
    questions = [Question(id=f"q{i}", text="t", persona="p", cluster=i % 20, source_chunk_ids=[f"c{i % 20}"],
                          expect=Expect(tools=["search_labour_law"])) for i in range(200)]
    questions += [Question(id=f"n{i}", text="t", persona="p", cluster=-1, expect=Expect(tools=[])) for i in range(50)]
    out, excluded = assign_splits(questions, 0.2, seed=1, dev_fraction=0.1)
    assert not excluded
    n = split_counts(out)
    assert 0.15 * 250 <= n["test"] <= 0.25 * 250 and 0.05 * 250 <= n["dev"] <= 0.15 * 250, n
    ungrounded = split_counts(q for q in out if not q.source_chunk_ids)
    assert ungrounded == {"train": 35, "dev": 5, "test": 10}  # exactly the shares
    assert_no_leak(out)


def test_without_a_dev_share_the_held_out_topics_are_those_of_a_two_way_split():
    questions = [Question(id=f"q{i}", text="t", persona="p", cluster=i % 10, source_chunk_ids=[f"c{i}"],
                          expect=Expect(tools=["s"])) for i in range(100)]
    for seed in range(5):
        with_dev = assign_splits(questions, 0.2, seed=seed, dev_fraction=0.1).questions
        without = assign_splits(questions, 0.2, seed=seed, dev_fraction=0.0).questions
        assert {q.cluster for q in with_dev if q.split == "test"} == {q.cluster for q in without if q.split == "test"}
        assert {q.split for q in without} == {"train", "test"}


def test_questions_sharing_a_chunk_across_clusters_stay_together():
    a = Question(id="a", text="t", persona="p", cluster=0, source_chunk_ids=["x"], expect=Expect(tools=["s"]))
    b = Question(id="b", text="t", persona="p", cluster=1, source_chunk_ids=["x", "y"], expect=Expect(tools=["s"]))
    c = Question(id="c", text="t", persona="p", cluster=1, source_chunk_ids=["z"], expect=Expect(tools=["s"]))
    assert components([a, b, c]) == [[0, 1, 2]]  # a-b share x, b-c share cluster 1


def test_every_kind_is_tested_when_it_comes_from_one_cluster_only():
    # The UAE example's shape: the two-tool questions of a calculator come from one topic, and a plain
    # greedy fill of the 20% share takes lookup topics only, so two-tool questions are never tested.
    # Holding that topic out still trains its calculator: ungrounded questions keep one in train.
    tools = {"lookup": ["search_labour_law"], "multi_step": ["search_labour_law", "gratuity"]}
    questions = []
    for cluster in range(6):
        kinds = ["lookup"] * 20 + (["multi_step"] * 8 if cluster == 1 else [])
        questions += [Question(id=f"q{cluster}-{i}", text="t", persona="p", cluster=cluster, kind=kind,
                               source_chunk_ids=[f"c{cluster}"], expect=Expect(tools=tools[kind]))
                      for i, kind in enumerate(kinds)]
    questions += [Question(id=f"g{i}", text="t", persona="p", cluster=-1, kind="calculation",
                           expect=Expect(tools=["gratuity"])) for i in range(20)]
    for seed in range(10):
        out, _ = assign_splits(questions, 0.2, seed=seed)
        assert {q.kind for q in out if q.split == "test"} == {"lookup", "multi_step", "calculation"}, seed
        assert any("gratuity" in q.expect.tools for q in out if q.split == "train")


def test_more_calculations_move_no_topic_and_no_greeting():
    grounded = [Question(id=f"g{i}", text="t", persona="p", cluster=i % 6, source_chunk_ids=[f"c{i}"],
                         expect=Expect(tools=["s"])) for i in range(60)]
    greetings = [Question(id=f"n{i}", text="t", persona="p", cluster=-1, expect=Expect(tools=[])) for i in range(20)]
    sums = [Question(id=f"k{i}", text="t", persona="p", cluster=-1, expect=Expect(tools=["calc"])) for i in range(30)]
    first = {q.id: q.split for q in assign_splits(grounded + greetings + sums[:10], 0.2, seed=3).questions}
    again = {q.id: q.split for q in assign_splits(sums[::-1] + greetings[::-1] + grounded[::-1], 0.2, seed=3).questions}
    same = [i for i in first if not i.startswith("k")]
    assert [first[i] for i in same] == [again[i] for i in same]  # 20 more sums moved no topic, no greeting
    assert {first[i] for i in same} == {"train", "dev", "test"}


def test_more_questions_about_some_passages_move_no_topic():
    # two-tool questions search passages drawn at random: how many land on each topic must not decide
    # which topics are held out, or two versions of the data are measured on different topics
    lookups = [Question(id=f"g{i}", text="t", persona="p", cluster=i % 8, source_chunk_ids=[f"c{i}"],
                        expect=Expect(tools=["s"])) for i in range(80)]
    searched = [Question(id=f"m{i}-{j}", text="t", persona="p", cluster=i % 8, source_chunk_ids=[f"c{i}"],
                         expect=Expect(tools=["s", "calc"])) for i in range(80) for j in range(i % 8)]
    first = {q.id: q.split for q in assign_splits(lookups, 0.2, seed=5, dev_fraction=0.15).questions}
    again = {q.id: q.split for q in assign_splits(lookups + searched, 0.2, seed=5, dev_fraction=0.15).questions}
    assert [first[q.id] for q in lookups] == [again[q.id] for q in lookups]
    assert {first[q.id] for q in lookups} == {"train", "dev", "test"}


# --- the check the eval relies on, and bad shares --------------------------------------------------------

def test_a_shared_chunk_is_refused_with_a_hint():
    qs = [Question(id="a", text="t", persona="p", cluster=0, source_chunk_ids=["x"], split="train"),
          Question(id="b", text="t", persona="p", cluster=1, source_chunk_ids=["x"], split="test")]
    with pytest.raises(UserError, match="source chunks are used by questions of both train and test") as e:
        check_disjoint(qs)
    assert e.value.hint


def test_a_shared_family_is_refused():
    qs = [Question(id="a", text="t", persona="p", cluster=-1, family="calculation.words", split="dev"),
          Question(id="b", text="t", persona="p", cluster=-1, family="calculation.words", split="test"),
          Question(id="c", text="t", persona="p", cluster=-1, family="calculation.plain", split="train")]
    with pytest.raises(UserError, match="phrasing families are used by questions of both dev and test"):
        check_disjoint(qs)
    check_disjoint([qs[0], qs[2]])


@pytest.mark.parametrize(("test_fraction", "dev_fraction", "match"), [
    (1.5, 0.1, "test_fraction"), (0.2, -0.1, "dev_fraction"), (0.6, 0.4, "must be below 1")])
def test_a_bad_share_is_a_user_error(test_fraction, dev_fraction, match):
    with pytest.raises(UserError, match=match):
        assign_splits([], test_fraction, dev_fraction=dev_fraction)


def test_a_kinds_held_out_families_are_shared_among_its_tools():
    # lookups: six search families and four article ones; held out by kind alone, a seed could send two
    # search families to test and two to dev, leaving searches two wordings to train on
    qs = [Question(id=f"q{i}", text="t", persona="p", cluster=-1, kind="lookup",
                   family=f"lookup.{'s' if i % 10 < 6 else 'a'}{i % 10}",
                   expect=Expect(tools=["search_labour_law"] if i % 10 < 6 else ["get_article"])) for i in range(100)]
    for seed in range(10):
        out, _ = assign_splits(qs, 0.2, seed=seed, dev_fraction=0.15)
        for held in ("test", "dev"):
            families = {q.family for q in out if q.split == held}
            assert sum(f.startswith("lookup.s") for f in families) <= 1, (seed, held, families)
            assert sum(f.startswith("lookup.a") for f in families) <= 1, (seed, held, families)
        assert len({q.family for q in out if q.split == "train" and q.family.startswith("lookup.s")}) >= 4


def test_a_style_held_out_is_held_out_for_every_kind_written_in_it():
    # searches and calculations both come terse and plain: were terse calculations held out while terse
    # searches were trained, the student would learn that terse wording means a search
    styles = ["terse", "plain", "chatty", "story", "formal", "casual"]
    qs = []
    for i in range(240):
        kind, tool = [("lookup", "search_labour_law"), ("calculation", "calculator"), ("no_tool", None)][i % 3]
        style = styles[(i // 3) % len(styles)] if kind != "no_tool" else styles[(i // 3) % 3]
        qs.append(Question(id=f"q{i}", text="t", persona="p", cluster=-1, kind=kind, family=f"{kind}.{style}",
                           expect=Expect(tools=[tool] if tool else [])))
    for seed in range(10):
        out, _ = assign_splits(qs, 0.2, seed=seed, dev_fraction=0.15)
        side_of = {q.family: q.split for q in out}
        held = {f.split(".", 1)[1] for f, s in side_of.items() if s != "train"}
        assert held, seed
        for style in held:
            assert len({s for f, s in side_of.items() if f.endswith(f".{style}")}) == 1, (seed, style, side_of)
        assert {s for f, s in side_of.items() if f.startswith("calculation.")} >= {"train", "test"}, seed
