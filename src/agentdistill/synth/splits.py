"""Train/dev/test splits that cannot leak: whole topics and whole phrasing families, never random rows.

Two questions written from the same chunk are near-paraphrases of one fact, and two questions written in
one phrasing family ("calculation.shorthand_numbers": "20k", "$12,000") share their surface form: a random
row split puts the answer, or the phrasing, of many held-out questions into training, and the held-out
score measures memory. So a question's side is fixed by two things.

- Its phrasing family ("<kind>.<style>"). Per kind, the kind's families are sorted and then shuffled by
  the kind's own seeded stream; test takes the first whole families (test_fraction of them, at least one
  when the kind has two or more), dev the next ones (dev_fraction of them, at least one when the kind has
  three or more), train the rest, and always at least one. A family whose holdout would leave some
  expected tool without a training question is passed over. Families of one style go to one side
  whatever their kind ("lookup.terse" with "calculation.terse"), so a held-out style is one the student
  never saw, not one it saw only on other kinds of question.
- Its topic, when it has source chunks. Questions are linked into components: two questions are in one
  component when they share a source chunk or a group key (their cluster, or the documents of their
  chunks). Components are shuffled (seeded) and whole ones go to test, then to dev: first one component
  for each kind that can be held out there (rarest kind first), then greedily up to the side's share of
  the passages questions were written from, never taking a tool's last training question.

A question goes to a held-out side only when its family and its topic are both held out to that side, or
it has no source chunk and its family is held out there; train keeps only questions whose family and
topic are both train's. The rest (a held-out family on a training topic, a training family on a held-out
topic, test's family on dev's topic) would leak one way or the other: they are excluded and returned
separately, and the questions stage counts them in questions.stats.json as ``excluded_by_split``.

Questions without a family (older files, an LLM writer that names none) skip the family holdout: those with
source chunks follow their topic, the others are split per expected-tool signature, so that every tool is
trained and, where there are enough of them, also in dev and test.

The split depends on the set of questions, not their order: families are sorted and components ordered by
topic before the seeded shuffles, and each tool signature is shuffled by its own stream in question-id
order, and a topic's share is counted in passages, not questions. So adding calculation questions in the
families already written, or writing two-tool questions about other passages, does not move the held-out
topics. A family that appears or vanishes can: a style is held out for every kind written in it.

``check_disjoint`` then proves what the eval relies on: no source chunk and no phrasing family is used by
questions of two splits.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import NamedTuple

from agentdistill.errors import UserError
from agentdistill.records import SPLITS, Question

HELD_OUT = ("test", "dev")  # the held-out sides, in the order they are filled


class SplitResult(NamedTuple):
    questions: list[Question]  # the kept questions, in input order, each with split "train", "dev" or "test"
    excluded: list[Question]  # family and topic held out to different sides (split None), in input order


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]  # path halving keeps the trees flat
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def topic_keys(q: Question, by: str, chunk_doc: dict[str, str]) -> set[str]:
    """What ties a grounded question to its topic: its source chunks and its cluster (or their documents)."""
    keys = {f"chunk:{c}" for c in q.source_chunk_ids}
    if by == "cluster":
        keys.add(f"cluster:{q.cluster}")
    else:
        keys |= {f"doc:{chunk_doc.get(c, c)}" for c in q.source_chunk_ids}
    return keys


def components(questions: list[Question], by: str = "cluster",
               chunk_doc: dict[str, str] | None = None) -> list[list[int]]:
    """Indices of grounded questions (those with source chunks) grouped into leak-free components."""
    chunk_doc = chunk_doc or {}
    grounded = [i for i, q in enumerate(questions) if q.source_chunk_ids]
    uf = _UnionFind(len(questions))
    owner: dict[str, int] = {}
    for i in grounded:
        for key in topic_keys(questions[i], by, chunk_doc):
            if key in owner:
                uf.union(owner[key], i)
            else:
                owner[key] = i
    groups: dict[int, list[int]] = defaultdict(list)
    for i in grounded:
        groups[uf.find(i)].append(i)
    return sorted(groups.values(), key=lambda g: _component_key(questions, g, by, chunk_doc))


def _component_key(questions: list[Question], comp: list[int], by: str, chunk_doc: dict[str, str]) -> str:
    """What orders components: their topic (cluster or document) rather than where their questions sit in
    the list, so the seeded shuffle holds out the same topics when the questions around them change."""
    keys = {k for i in comp for k in topic_keys(questions[i], by, chunk_doc)}
    topics = sorted(k for k in keys if not k.startswith("chunk:"))
    return topics[0] if topics else min(keys)


def _tool_signature(q: Question) -> tuple[str, ...]:
    return tuple(sorted(q.expect.tools)) if q.expect is not None else ("?",)


# A tool the student learns from one phrasing family is called for that family's wording only: a family is
# held out only while each of its tools keeps this many others in training.
MIN_TRAIN_FAMILIES_PER_TOOL = 2


def _family_counts(n: int, test_fraction: float, dev_fraction: float) -> tuple[int, int]:
    """How many of a kind's ``n`` families go to test and to dev: each share of n rounded, at least one
    test family when there are two (the kind is then measured), one dev family too when there are three,
    and always one left to train."""
    if n < 2:
        return 0, 0
    n_test = min(max(int(test_fraction * n + 0.5), int(test_fraction > 0)), n - 1)
    n_dev = int(dev_fraction * n + 0.5)
    if n >= 3 and dev_fraction > 0:
        n_dev = max(n_dev, 1)
    return n_test, min(n_dev, n - 1 - n_test)


def _kind(family: str) -> str:
    return family.split(".", 1)[0]


def _style(family: str) -> str:
    """A family's way of writing, whatever it asks: "lookup.terse" and "calculation.terse" share "terse"."""
    return family.split(".", 1)[-1]


def _family_sides(questions: list[Question], test_fraction: float, dev_fraction: float,
                  seed: int) -> dict[str, str]:
    """Each phrasing family's side. Each kind's families are sorted and shuffled by the kind's own stream;
    then for test and then dev, kind by kind (those with the fewest families first), the kind's next families
    are held out until the kind's share (``_family_counts``) is filled. A family is passed over when it holds
    some expected tool's last training questions (topics are all still train's here; their split protects
    tools again), would leave a tool fewer than ``MIN_TRAIN_FAMILIES_PER_TOOL`` training families, or would
    give a held-out side more than its share of one tool's families within a kind. The last keeps a kind
    whose tools have families of their own (searches and article requests are both lookups) from losing
    most of one tool's wording: held out by kind alone, four of the six search families once went to dev
    and test and none of the four article ones.

    Families of different kinds written the same way ("lookup.terse", "calculation.terse") go to one side
    together, and a family is passed over when one of them cannot follow it (its kind has no share left
    there, or a tool needs it), unless its kind would otherwise have no family on that side. Held out alone,
    a style trained only on the other kinds' questions tells the student the kind: terse calculations held
    out beside trained terse searches read as searches. Together, a held-out style is one the student never
    saw, which is what a held-out score is meant to measure."""
    families_of: dict[str, set[str]] = defaultdict(set)
    tools_of: dict[str, Counter[str]] = defaultdict(Counter)
    train_tools: Counter[str] = Counter()
    for q in questions:
        train_tools.update(_tool_signature(q))
        if q.family:
            families_of[_kind(q.family)].add(q.family)
            tools_of[q.family].update(_tool_signature(q))
    side = {f: "train" for fams in families_of.values() for f in fams}
    same_style: dict[str, list[str]] = defaultdict(list)
    for f in sorted(side):
        same_style[_style(f)].append(f)
    train_families = Counter(t for f in side for t in tools_of[f])  # per tool: the training families using it
    orders: dict[str, list[str]] = {}
    quotas: dict[str, dict[str, int]] = {}
    for kind in sorted(families_of):
        orders[kind] = sorted(families_of[kind])
        random.Random(f"{seed}:families:{kind}").shuffle(orders[kind])
        quotas[kind] = dict(zip(HELD_OUT, _family_counts(len(orders[kind]), test_fraction, dev_fraction),
                                strict=True))
    kind_families = {kind: Counter(t for f in order for t in tools_of[f]) for kind, order in orders.items()}
    for held, fraction in zip(HELD_OUT, (test_fraction, dev_fraction), strict=True):
        held_families: Counter[tuple[str, str]] = Counter()  # per (kind, tool): families held out to this side
        share = {(kind, t): max(1, int(fraction * n + 0.5))  # per (kind, tool): at most this many held out here
                 for kind, counts in kind_families.items() for t, n in counts.items()}
        # First a style only where every kind written in it has room on this side; then, for a kind that
        # would otherwise not be measured there, one of its styles even past another kind's share. The kinds
        # with the fewest families choose first: they have the fewest ways to be held out.
        for strict in (True, False):
            for kind in sorted(orders, key=lambda k: (len(orders[k]), k)):
                if not strict and (quotas[kind][held] == 0 or held in {side[f] for f in orders[kind]}):
                    continue
                for f in orders[kind]:
                    if quotas[kind][held] <= 0:
                        break
                    group = [g for g in same_style[_style(f)] if side[g] == "train"]
                    if f not in group or (strict and any(quotas[_kind(g)][held] <= 0 for g in group)):
                        continue
                    if not _can_hold_out(group, tools_of, train_tools, train_families, held_families, share):
                        continue
                    for g in group:
                        train_tools.subtract(tools_of[g])
                        train_families.subtract(tools_of[g].keys())
                        held_families.update((_kind(g), t) for t in tools_of[g])
                        quotas[_kind(g)][held] -= 1
                        side[g] = held
                    if not strict:
                        break
    return side


def _can_hold_out(group: list[str], tools_of: dict[str, Counter[str]], train_tools: Counter[str],
                  train_families: Counter[str], held_families: Counter[tuple[str, str]],
                  share: dict[tuple[str, str], int]) -> bool:
    """Whether the families of ``group`` can leave training together: every tool keeps training questions
    and ``MIN_TRAIN_FAMILIES_PER_TOOL`` families, and no kind gets more than its share of a tool's families
    held out on one side."""
    questions_leaving: Counter[str] = Counter()  # per tool
    for f in group:
        questions_leaving.update(tools_of[f])
    families_leaving = Counter(t for f in group for t in tools_of[f])  # per tool
    held_leaving = Counter((_kind(f), t) for f in group for t in tools_of[f])  # per (kind, tool)
    keeps_questions = all(train_tools[t] > n for t, n in questions_leaving.items())
    keeps_families = all(train_families[t] - n >= MIN_TRAIN_FAMILIES_PER_TOOL for t, n in families_leaving.items())
    within_share = all(held_families[kt] + n <= share[kt] for kt, n in held_leaving.items())
    return keeps_questions and keeps_families and within_share


def assign_splits(
    questions: list[Question],
    test_fraction: float,
    by: str = "cluster",
    chunk_doc: dict[str, str] | None = None,
    seed: int = 0,
    dev_fraction: float = 0.1,
) -> SplitResult:
    """Split ``questions`` into train, dev and test by whole phrasing families and whole topics.

    Returns ``SplitResult(questions, excluded)``: copies of the kept questions with ``split`` set, and
    copies (``split`` None) of those whose family and topic were held out to different sides (see the
    module docstring). Every expected tool keeps training questions, every kind with families keeps a
    training family, and each kind is held out where its families and topics allow.
    """
    for name, value in (("test_fraction", test_fraction), ("dev_fraction", dev_fraction)):
        if not 0.0 <= value < 1.0:
            raise UserError(
                f"split.{name} must be in [0, 1), got {value}.",
                hint="Use e.g. test_fraction 0.2 and dev_fraction 0.1.",
            )
    if test_fraction + dev_fraction >= 1.0:
        raise UserError(
            f"split.test_fraction + split.dev_fraction must be below 1, got {test_fraction} + {dev_fraction}.",
            hint="Use e.g. test_fraction 0.2 and dev_fraction 0.1: the rest is trained on.",
        )
    family_side = _family_sides(questions, test_fraction, dev_fraction, seed)

    def fam(i: int) -> str | None:  # None: the question names no family, so its family holds nothing out
        return family_side.get(questions[i].family) if questions[i].family else None

    # --- topics: whole components to test, then dev
    rng = random.Random(seed)
    comps = components(questions, by, chunk_doc)
    rng.shuffle(comps)
    topic = {i: "train" for comp in comps for i in comp}
    # A topic's size is the passages it holds, not the questions drawn from them: then a change to how
    # some kind of question is written (which passages two-tool questions happen to search) does not move
    # the held-out topics, and two versions of the data are measured on the same ones.
    passages = [len({c for i in comp for c in questions[i].source_chunk_ids}) for comp in comps]
    n_passages = sum(passages)
    # A question can stay in train only while its family is train's (or it has none); the ungrounded
    # family-less ones are split per tool signature below, which keeps one of each in train.
    train_tools: Counter[str] = Counter()
    for i, q in enumerate(questions):
        if fam(i) == "train" or (fam(i) is None and q.source_chunk_ids):
            train_tools.update(_tool_signature(q))
    train_tools.update({t for i, q in enumerate(questions)
                        if fam(i) is None and not q.source_chunk_ids for t in _tool_signature(q)})

    for held, fraction in zip(HELD_OUT, (test_fraction, dev_fraction), strict=True):
        target = round(fraction * n_passages)
        n_held = 0

        def hold_out(j: int, held: str = held, target: int = target) -> bool:
            nonlocal n_held
            comp = comps[j]
            if n_held + passages[j] > target + max(1, target // 10):  # 10% slack: components are lumpy
                return False
            leaving = Counter(t for i in comp if fam(i) in (None, "train") for t in _tool_signature(questions[i]))
            if any(train_tools[t] <= k for t, k in leaving.items()):
                return False
            train_tools.subtract(leaving)
            for i in comp:
                topic[i] = held
            n_held += passages[j]
            return True

        # Components are whole topics, and one kind of question may come from a few topics only (the bundled
        # example writes its two-tool questions from 3 of 7 clusters): a greedy fill alone can hold out
        # none of them and never measure that kind. So first each kind, rarest first, gets one component;
        # a component holds a kind out only through questions whose family is held out to the same side.
        kinds_of = [{questions[i].kind or "?" for i in comp if fam(i) in (None, held)} for comp in comps]
        kinds = sorted({k for ks in kinds_of for k in ks}, key=lambda k: (sum(k in ks for ks in kinds_of), k))
        for kind in kinds if target else []:
            holding = [j for j, ks in enumerate(kinds_of) if kind in ks]
            if all(topic[comps[j][0]] != held for j in holding):
                for j in holding:
                    if topic[comps[j][0]] == "train" and hold_out(j):
                        break
        for j, comp in enumerate(comps):
            if n_held >= target:
                break
            if topic[comp[0]] == "train":
                hold_out(j)

    # --- each question's side: its family's and its topic's when they agree
    split: list[str | None] = [None] * len(questions)
    by_signature: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, q in enumerate(questions):
        if q.source_chunk_ids:
            split[i] = topic[i] if fam(i) in (None, topic[i]) else None
        elif fam(i) is not None:
            split[i] = fam(i)
        else:
            by_signature[_tool_signature(q)].append(i)
    for sig in sorted(by_signature):
        # each signature's own stream over its questions in id order: which greetings are held out does
        # not depend on how many calculations came before them
        idx = sorted(by_signature[sig], key=lambda i: questions[i].id)
        random.Random(f"{seed}:{'+'.join(sig)}").shuffle(idx)
        n_test = min(int(test_fraction * len(idx) + 0.5), len(idx) - 1)  # one is always trained on
        n_dev = min(int(dev_fraction * len(idx) + 0.5), len(idx) - 1 - n_test)
        for j, i in enumerate(idx):
            split[i] = "test" if j < n_test else "dev" if j < n_test + n_dev else "train"

    kept = [q.model_copy(update={"split": s}) for q, s in zip(questions, split, strict=True) if s is not None]
    excluded = [q.model_copy(update={"split": None}) for q, s in zip(questions, split, strict=True) if s is None]
    check_disjoint(kept)
    return SplitResult(kept, excluded)


def _sides(splits: set[str]) -> str:
    names = sorted(splits, key=SPLITS.index)
    return f"both {names[0]} and {names[1]}" if len(names) == 2 else f"all of {', '.join(names[:-1])} and {names[-1]}"


def check_disjoint(questions: Iterable[Question]) -> None:
    """Raise UserError if a source chunk or a phrasing family is used by questions of two splits."""
    used: dict[str, dict[str, set[str]]] = {"source chunks": defaultdict(set), "phrasing families": defaultdict(set)}
    for q in questions:
        if q.split is None:
            raise UserError(f"question {q.id} has no split.", hint="Run `agentdistill questions` again.")
        for c in q.source_chunk_ids:
            used["source chunks"][c].add(q.split)
        if q.family:
            used["phrasing families"][q.family].add(q.split)
    for what, splits_of in used.items():
        shared = sorted(key for key, splits in splits_of.items() if len(splits) > 1)
        if shared:
            raise UserError(
                f"{len(shared)} {what} are used by questions of {_sides(splits_of[shared[0]])} "
                f"(e.g. {shared[:3]}): the held-out score would measure memorization.",
                hint="questions.jsonl was edited by hand or written by another version; run `agentdistill "
                "questions` again in a fresh run directory.",
            )


def split_counts(questions: Iterable[Question]) -> dict[str, int]:
    counts = dict.fromkeys(SPLITS, 0)
    for q in questions:
        if q.split is not None:
            counts[q.split] += 1
    return counts
