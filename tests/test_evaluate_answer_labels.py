"""The offline answer checker against answers labelled by hand (examples/uae_labour/answer_labels.jsonl).

60 answers, each read by a person and labelled right or wrong for the question as written: 40 of an
SFT student (most wrong, in many ways) and 20 of the offline teacher. The checker must agree with the
people on at least 88% of them, and its known blind spots stay visible: a paraphrase that keeps the
words and changes the meaning ("the worker must hand the family..." for "the employer must..."), or
a right figure followed by a false claim, reads as right to a word-overlap checker. eval.judge exists
for those.
"""

from __future__ import annotations

import json
from pathlib import Path

from agentdistill.config import RunConfig, ToolsConfig
from agentdistill.domains import currency_aliases
from agentdistill.evaluate.answer_check import check_answer
from agentdistill.records import Question

LABELS = Path(__file__).resolve().parents[1] / "examples" / "uae_labour" / "answer_labels.jsonl"
# The currency spellings the example's eval hands the checker (its packs': "Dhs", "dirhams", ...).
CURRENCIES = currency_aliases(RunConfig(tools=ToolsConfig(packs=["uae_labour", "general"])))


def test_the_checker_agrees_with_hand_labels():
    rows = [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(rows) == 60 and {r["label"] for r in rows} == {True, False}
    verdicts = [check_answer(Question.model_validate(r["question"]), r["answer"], r["observations"], CURRENCIES).correct
                for r in rows]
    agree = sum(v == r["label"] for v, r in zip(verdicts, rows, strict=True)) / len(rows)
    false_right = sum(v is True and not r["label"] for v, r in zip(verdicts, rows, strict=True))
    print(f"agreement {agree:.3f}, answers wrongly passed {false_right}")
    assert agree >= 0.88
    assert false_right <= 6  # passing wrong answers inflates every score: kept rare
