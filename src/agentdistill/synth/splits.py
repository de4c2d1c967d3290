"""Train/test splits that cannot leak: made by cluster (or document), never by random row.

Two questions written from the same chunk are near-paraphrases of one fact, so a random row split puts
the answer to many test questions in the training set. We therefore link questions into components:
two questions are in one component when they share a source chunk or a group key (their cluster, or
the documents of their chunks), and a whole component goes to one side. A question with no source
chunk (a calculation scenario, a greeting) carries no corpus text that could leak; those are split by
their expected-tool signature so that every tool is seen in training and, where there are enough of
them, also tested.

The split depends on the set of questions, not their order: components are ordered by topic before the
seeded shuffle, and each tool signature is shuffled by its own stream in question-id order. So adding
calculation questions does not move the held-out topics.

After assignment ``check_disjoint`` proves the property the eval relies on: no test question shares a
source chunk with a training question.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable

from agentdistill.errors import UserError
from agentdistill.records import Question


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


def _group_keys(q: Question, by: str, chunk_doc: dict[str, str]) -> set[str]:
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
        for key in _group_keys(questions[i], by, chunk_doc):
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
    keys = {k for i in comp for k in _group_keys(questions[i], by, chunk_doc)}
    topics = sorted(k for k in keys if not k.startswith("chunk:"))
    return topics[0] if topics else min(keys)


def _tool_signature(q: Question) -> tuple[str, ...]:
    return tuple(sorted(q.expect.tools)) if q.expect is not None else ("?",)


def assign_splits(
    questions: list[Question],
    test_fraction: float,
    by: str = "cluster",
    chunk_doc: dict[str, str] | None = None,
    seed: int = 0,
) -> list[Question]:
    """Return copies of ``questions`` with ``split`` set to "train" or "test".

    Grounded components are shuffled (seeded) and moved to test while the test side stays within its
    share, skipping a component whose move would leave some expected tool without any training
    question: first one component for each kind of question (rarest kind first), so every kind is
    tested where the share allows, then greedily. Ungrounded questions are split per tool signature at
    the same fraction.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise UserError(
            f"split.test_fraction must be in [0, 1), got {test_fraction}.",
            hint="Use e.g. 0.2 to hold out a fifth of the questions for evaluation.",
        )
    rng = random.Random(seed)
    split = ["train"] * len(questions)

    comps = components(questions, by, chunk_doc)
    rng.shuffle(comps)
    n_grounded = sum(len(c) for c in comps)
    target = round(test_fraction * n_grounded)
    train_tools: dict[str, int] = defaultdict(int)
    for comp in comps:
        for i in comp:
            for t in _tool_signature(questions[i]):
                train_tools[t] += 1
    # The ungrounded split below keeps one question of every tool signature in train: those tools are
    # trained whatever happens to the grounded components.
    for t in {t for q in questions if not q.source_chunk_ids for t in _tool_signature(q)}:
        train_tools[t] += 1
    n_test = 0

    def move_to_test(comp: list[int]) -> bool:
        nonlocal n_test
        if n_test + len(comp) > target + max(1, target // 10):  # 10% slack: components are lumpy
            return False
        comp_tools: dict[str, int] = defaultdict(int)
        for i in comp:
            for t in _tool_signature(questions[i]):
                comp_tools[t] += 1
        if any(train_tools[t] - k <= 0 for t, k in comp_tools.items()):
            return False
        for t, k in comp_tools.items():
            train_tools[t] -= k
        for i in comp:
            split[i] = "test"
        n_test += len(comp)
        return True

    # Components are whole topics, and one kind of question may come from a few topics only (the UAE
    # example writes its two-tool questions from 3 of 7 clusters): a greedy fill alone can hold out none
    # of them and never measure that kind. So first each kind, rarest first, gets one component.
    kinds_of = [{questions[i].kind or "?" for i in comp} for comp in comps]
    kinds = sorted({k for ks in kinds_of for k in ks}, key=lambda k: (sum(k in ks for ks in kinds_of), k))
    for kind in kinds if target else []:
        holding = [comp for comp, ks in zip(comps, kinds_of, strict=True) if kind in ks]
        if all(split[comp[0]] == "train" for comp in holding):
            for comp in holding:
                if move_to_test(comp):
                    break
    for comp in comps:
        if n_test >= target:
            break
        if split[comp[0]] == "train":
            move_to_test(comp)

    by_signature: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, q in enumerate(questions):
        if not q.source_chunk_ids:
            by_signature[_tool_signature(q)].append(i)
    for sig in sorted(by_signature):
        # each signature's own stream over its questions in id order: which greetings are tested does not
        # depend on how many calculations came before them
        idx = sorted(by_signature[sig], key=lambda i: questions[i].id)
        random.Random(f"{seed}:{'+'.join(sig)}").shuffle(idx)
        k = min(int(test_fraction * len(idx) + 0.5), len(idx) - 1)  # at least one is always trained on
        for i in idx[:k]:
            split[i] = "test"

    out = [q.model_copy(update={"split": s}) for q, s in zip(questions, split, strict=True)]
    check_disjoint(out)
    return out


def check_disjoint(questions: Iterable[Question]) -> None:
    """Raise UserError if a test question shares a source chunk with a training question."""
    chunks: dict[str, set[str]] = {"train": set(), "test": set()}
    for q in questions:
        if q.split is None:
            raise UserError(f"question {q.id} has no split.", hint="Run `agentdistill questions` again.")
        chunks[q.split].update(q.source_chunk_ids)
    shared = chunks["train"] & chunks["test"]
    if shared:
        raise UserError(
            f"{len(shared)} source chunks are used by both train and test questions (e.g. {sorted(shared)[:3]}): "
            "the evaluation would measure memorization.",
            hint="questions.jsonl was edited by hand or written by another version; run `agentdistill questions` "
            "again in a fresh run directory.",
        )


def split_counts(questions: Iterable[Question]) -> dict[str, int]:
    counts = {"train": 0, "test": 0}
    for q in questions:
        if q.split is not None:
            counts[q.split] += 1
    return counts
