"""The second pack proves the boundary: a customer-support shop whose tools query a real SQLite order
database and search its policy documents, with no teacher or question writer of its own, runs
`agentdistill run` end to end offline (tiny sizes), and its tools agree with its policies."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agentdistill.config import RunConfig, ToolsConfig
from agentdistill.domains import load_pack, offline_pack
from agentdistill.domains.shop.orders import OrderBook, build, orders_csv
from agentdistill.jsonl import read_records
from agentdistill.records import Question, Trace
from agentdistill.tools import load_tools

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "shop" / "config.yaml"
TINY = ["--set", "questions.n_questions=60", "--set", "sft.max_steps=3", "--set", "sft.batch_size=1",
        "--set", "sft.save_steps=3", "--set", "eval.max_questions=8", "--set", "eval.baseline_max_questions=4",
        "--set", "eval.max_new_tokens=96", "--set", "agent.max_steps=3", "--set", "eval.bootstrap=100"]


def test_the_order_database_is_sqlite_built_from_the_committed_csv(tmp_path):
    db = build(orders_csv(), tmp_path / "orders.sqlite")
    with sqlite3.connect(db) as con:
        (n,) = con.execute("SELECT COUNT(*) FROM orders").fetchone()
        (status,) = con.execute("SELECT status FROM orders WHERE order_id = 'A1003'").fetchone()
    assert n == len(orders_csv().read_text().splitlines()) - 1
    assert status == "processing"


def test_the_refund_follows_the_returns_policy(tmp_path):
    book = OrderBook(tmp_path)
    assert book.refund_amount("A1001", "damaged").startswith("Refund for order A1001 (damaged): USD 99.89")
    # opened electronics returned for a change of mind: 10 percent restocking fee, shipping not refunded
    assert "USD 80.91" in book.refund_amount("a1001", "changed_mind")
    assert "cancelling it refunds" in book.refund_amount("A1003", "changed_mind")  # still processing
    with pytest.raises(ValueError, match="no order 'A9999'"):
        book.get_order("A9999")
    assert (tmp_path / "shop_orders.sqlite").exists()


def test_the_pack_has_no_teacher_of_its_own_and_gets_the_generic_one():
    cfg = RunConfig(tools=ToolsConfig(packs=["shop", "general"]))
    assert load_pack("shop").offline_teacher is None
    assert offline_pack(cfg).name == "documents"
    assert {"search_policies", "get_order", "refund_amount", "shipping_cost"} <= set(load_tools(cfg, None).names())


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_agentdistill_run_takes_the_shop_end_to_end_offline(tmp_path):
    run = tmp_path / "shop"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "agentdistill.cli", "run", str(CONFIG), "--run", str(run), *TINY],
                          capture_output=True, text=True, env=env, timeout=3000)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    questions = read_records(run / "questions.jsonl", Question)
    assert {q.kind for q in questions} == {"lookup", "calculation", "multi_step", "no_tool"}
    traces = read_records(run / "traces.jsonl", Trace)
    called = {c["name"] for t in traces for m in t.messages for c in m.get("tool_calls", [])}
    assert {"search_policies", "get_order", "refund_amount", "shipping_cost"} & called
    stats = json.loads((run / "traces.stats.json").read_text())
    assert stats["accepted"] >= 0.9 * len(questions)
    for name in ("smollm2-135m-untuned", "smollm2-135m-sft"):
        metrics = json.loads((run / "eval" / name / "metrics.json").read_text())
        assert 0 < metrics["n"] <= (4 if name.endswith("untuned") else 8)
    assert (run / "shop_orders.sqlite").exists()  # the tools queried the run's own database
    assert "smollm2-135m-sft" in (run / "report.html").read_text()
