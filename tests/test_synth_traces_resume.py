"""`agentdistill traces` killed with SIGKILL at random points against a REAL llama.cpp teacher, then resumed:
every question ends with exactly one complete, valid record (accepted or rejected), none lost or doubled."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from agentdistill.jsonl import write_json_atomic, write_records
from agentdistill.records import Expect, Question, Trace
from agentdistill.synth.filters import Rejection
from agentdistill.synth.splits import assign_splits

pytestmark = [pytest.mark.slow, pytest.mark.llamacpp]

QUESTIONS = [
    ("What is 17 * 23?", ["calculator"]), ("Convert 5 miles to km.", ["convert_units"]),
    ("What is 15% of 2,400?", ["calculator"]), ("How many days are there between 2024-01-01 and 2024-03-01?",
                                                 ["date_diff"]),
    ("What date is 30 days after 2025-02-10?", ["add_days"]), ("Hello!", []), ("Thanks, that helps.", []),
    ("Who painted the Mona Lisa?", []), ("What is 1,250 divided by 5?", ["calculator"]),
    ("Convert 70 kg to pounds.", ["convert_units"]), ("What is 99 + 101?", ["calculator"]),
    ("How many feet are in 10 metres?", ["convert_units"]),
]  # 12 questions: with concurrency 1 the teacher gets blocks of 8, so records land in bursts a kill can split


def _records(run: Path) -> list[tuple[str, dict]]:
    out = []
    for name in ("traces.jsonl", "traces.rejected.jsonl"):
        path = run / name
        if path.exists():
            data = path.read_bytes()
            out += [(name, json.loads(line)) for line in data[: data.rfind(b"\n") + 1].splitlines() if line.strip()]
    return out


def _setup(run: Path, server) -> tuple[Path, list[Question]]:
    run.mkdir()
    qs = [Question(id=f"q-{i:03d}", text=t, persona="employee", cluster=-1, expect=Expect(tools=tools),
                   kind="calculation" if tools else "no_tool") for i, (t, tools) in enumerate(QUESTIONS)]
    qs = assign_splits(qs, 0.25, seed=0).questions
    write_records(run / "questions.jsonl", qs)
    write_json_atomic(run / "questions.stats.json", {"complete": True, "n": len(qs)})
    config = run.parent / "config.yaml"
    config.write_text(yaml.safe_dump({
        "tools": {"packs": ["general"]},
        "teacher": {"kind": "openai", "base_url": server.url, "model": server.model, "concurrency": 1,
                    "max_tokens": 40, "max_retries": 1, "timeout_s": 60},
        "agent": {"max_steps": 2},
    }))
    return config, qs


def test_sigkill_at_random_points_then_resume_gives_exactly_one_record_per_question(llamacpp_server, tmp_path):
    run = tmp_path / "run"
    config, questions = _setup(run, llamacpp_server)
    cmd = [sys.executable, "-m", "agentdistill.cli", "traces", "--run", str(run), "--config", str(config)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    rng = random.Random(20240607)
    kills, torn = 0, 0
    for attempt in range(5):
        before = len(_records(run))
        log = open(tmp_path / f"run{attempt}.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 240
        if attempt == 0:  # a kill at a random moment, wherever the process is (often still starting)
            time.sleep(rng.uniform(1.0, 4.0))
        else:  # a kill while it is recording: right after new records appear, plus a random delay
            while proc.poll() is None and len(_records(run)) == before and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        log.close()
        torn += sum(1 for n in ("traces.jsonl", "traces.rejected.jsonl")
                    if (run / n).exists() and not (run / n).read_bytes().endswith(b"\n") and (run / n).stat().st_size)
        if len(_records(run)) == len(questions) or kills >= 3:
            break
    assert kills >= 2, f"the process finished before it could be killed ({kills} kills)"
    for _ in range(3):  # finish; a transient backend error leaves a question for the next run
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        if json.loads((run / "traces.stats.json").read_text())["complete"]:
            break

    records = _records(run)
    for name in ("traces.jsonl", "traces.rejected.jsonl"):
        if (run / name).exists():
            data = (run / name).read_bytes()
            assert data == b"" or data.endswith(b"\n")  # no half-written line survives
    counts = Counter(r["question_id"] for _, r in records)
    assert set(counts) == {q.id for q in questions}
    assert max(counts.values()) == 1, [q for q, n in counts.items() if n > 1]
    split = {q.id: q.split for q in questions}
    for name, r in records:
        if name == "traces.jsonl":
            t = Trace.model_validate(r)
            assert t.split == split[t.question_id] and t.teacher == llamacpp_server.model
        else:
            rej = Rejection.model_validate(r)
            assert rej.reason and rej.trace is not None
    stats = json.loads((run / "traces.stats.json").read_text())
    assert stats["complete"] and stats["recorded"] == len(questions)
    assert stats["accepted"] + stats["rejected"] == len(questions)
    assert sum(stats["rejections"].values()) == stats["rejected"]
    print(f"kills={kills} torn tails seen={torn} accepted={stats['accepted']} rejections={stats['rejections']}")
