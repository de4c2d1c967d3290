"""Faults on a run directory, with real processes: two writers on one run, a lock left by a killed process,
duplicate records, a checkpoint cut short by a kill, and a misspelled ingest path.

Each test starts `agentdistill` (or a small Python holder) as its own process, as a user would; the
teacher is a local fault-injecting server, so nothing here needs a network or a model unless marked slow.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from fault_server import MODEL, fault_server

from agentdistill.errors import UserError
from agentdistill.jsonl import write_json_atomic, write_records
from agentdistill.records import Expect, Question
from agentdistill.run_lock import holder, is_alive, lock_path, run_lock
from agentdistill.synth.splits import assign_splits

CLI = [sys.executable, "-m", "agentdistill.cli"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
ANSWER = "text:Thought: I can answer that myself.\nAnswer: Hello."
QUESTIONS = ["Hello!", "Thanks, that helps.", "Who painted the Mona Lisa?", "Good morning.", "What is your name?",
             "Bye for now.", "How are you today?", "Nice to meet you."]


def _questions_run(run: Path, server_url: str) -> Path:
    """A run holding finished questions.jsonl, and a config whose teacher is the server at ``server_url``."""
    run.mkdir()
    qs = [Question(id=f"q-{i:03d}", text=t, persona="employee", cluster=i % 4, expect=Expect(tools=[]),
                   kind="no_tool") for i, t in enumerate(QUESTIONS)]
    qs = assign_splits(qs, 0.25, seed=0).questions
    write_records(run / "questions.jsonl", qs)
    write_json_atomic(run / "questions.stats.json", {"complete": True, "n": len(qs)})
    config = run.parent / "config.yaml"
    config.write_text(yaml.safe_dump({
        "tools": {"packs": ["general"]},
        "teacher": {"kind": "openai", "base_url": server_url, "model": MODEL, "concurrency": 1, "max_tokens": 40,
                    "max_retries": 2, "timeout_s": 60},
        "agent": {"max_steps": 2},
    }))
    return config


def _record_counts(run: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for name in ("traces.jsonl", "traces.rejected.jsonl"):
        if (run / name).exists():
            counts.update(json.loads(line)["question_id"] for line in (run / name).read_text().splitlines())
    return counts


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_traces_on_one_run_exits_2_naming_the_first_and_nothing_is_recorded_twice(tmp_path):
    run = tmp_path / "run"
    with fault_server(["hang", ANSWER]) as server:  # the first request hangs: the first process is mid-stage
        config = _questions_run(run, server.url)
        cmd = [*CLI, "traces", "--run", str(run), "--config", str(config)]
        first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        deadline = time.monotonic() + 60
        while server.chat_requests() == 0 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.chat_requests() > 0, first.communicate()

        second = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=60)
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"another agentdistill process (pid {first.pid}) is writing {run}" in second.stderr
        assert server.chat_requests() == 1  # the refused process asked the teacher nothing

        server.stop_event.set()  # the hanging request fails; its retry and the rest get answers
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    counts = _record_counts(run)
    assert set(counts) == {f"q-{i:03d}" for i in range(len(QUESTIONS))} and max(counts.values()) == 1
    stats = json.loads((run / "traces.stats.json").read_text())
    assert stats["complete"] and sum(stats["lines"].values()) == stats["recorded"] == len(QUESTIONS)
    assert holder(lock_path(run, "traces")) is None  # released cleanly: no record left to take over


def test_a_lock_left_by_a_killed_process_is_taken_over_with_a_warning_naming_it(tmp_path):
    run = tmp_path / "run"
    with fault_server([ANSWER]) as server:
        config = _questions_run(run, server.url)
        dead = _dead_pid()
        stale = {"pid": dead, "created": time.time() - 60, "host": os.uname().nodename, "stage": "traces",
                 "command": "agentdistill traces --run x", "started": "2026-01-01T00:00:00+0000"}
        lock_path(run, "traces").parent.mkdir()
        lock_path(run, "traces").write_text(json.dumps(stale))
        done = subprocess.run([*CLI, "traces", "--run", str(run), "--config", str(config)], capture_output=True,
                              text=True, env=ENV, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"took over the lock on {run} that pid {dead}" in " ".join(done.stderr.split())
    assert sum(_record_counts(run).values()) == len(QUESTIONS)


def test_a_sigkilled_holder_leaves_a_lock_the_next_process_takes(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    holder_proc = _hold(run, "eval-a")
    holder_proc.send_signal(signal.SIGKILL)
    holder_proc.wait()
    assert holder(lock_path(run, "eval-a"))["pid"] == holder_proc.pid  # its record survives the kill
    with run_lock(run, "eval-a"):
        assert holder(lock_path(run, "eval-a"))["pid"] == os.getpid()


def _hold(run: Path, stage: str, then: str = "time.sleep(120)") -> subprocess.Popen:
    """A process that takes ``stage``'s lock on ``run``, says so, then runs ``then``."""
    code = textwrap.dedent(f"""
        import sys, time
        from agentdistill.run_lock import run_lock
        with run_lock({str(run)!r}, {stage!r}, create=True):
            print("held", flush=True)
            {then}
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    assert proc.stdout.readline().strip() == "held", proc.communicate()
    return proc


def _refused(run: Path, stage: str) -> str:
    """The message with which this process is refused ``stage``'s lock on ``run``."""
    with pytest.raises(UserError) as refused, run_lock(run, stage):
        pass
    return refused.value.message


def test_stages_of_different_names_run_side_by_side_and_the_same_one_is_refused(tmp_path):
    run = tmp_path / "run"
    other = _hold(run, "eval-a")
    try:
        with run_lock(run, "eval-b"):
            pass
        assert f"another agentdistill process (pid {other.pid}) is writing {run}" in _refused(run, "eval-a")
    finally:
        other.kill()
        other.wait()


def test_the_pipeline_excludes_stages_started_by_hand_but_not_the_ones_it_starts(tmp_path):
    run = tmp_path / "run"
    child = f"from agentdistill.run_lock import run_lock\nwith run_lock({str(run)!r}, 'traces'):\n    print('child ok')"
    pipeline = _hold(run, "run", then=f"import subprocess; subprocess.run([sys.executable, '-c', {child!r}], "
                     "check=True); sys.stdout.flush(); time.sleep(120)")
    try:
        assert pipeline.stdout.readline().strip() == "child ok"  # its own stage ran under its lock
        assert f"another agentdistill process (pid {pipeline.pid}) is writing {run}" in _refused(run, "questions")
    finally:
        pipeline.kill()
        pipeline.wait()
    stage = _hold(run, "traces")
    try:  # and a pipeline cannot start while a stage started by hand runs
        assert f"another agentdistill process (pid {stage.pid}) is writing {run}" in _refused(run, "run")
    finally:
        stage.kill()
        stage.wait()


def test_a_holder_stays_recognised_when_the_system_clock_steps_and_a_reused_pid_does_not(tmp_path):
    run = tmp_path / "run"
    with run_lock(run, "run", create=True):
        me = holder(lock_path(run, "run"))
    # NTP stepping the clock during a long pipeline moves every process's wall-clock start time
    assert is_alive({**me, "created": me["created"] + 30.0})
    if me["start_ticks"] is not None:  # Linux: the start in ticks since boot names the process exactly
        assert not is_alive({**me, "start_ticks": me["start_ticks"] - 1})


def test_one_process_may_take_a_lock_it_holds_again(tmp_path):
    run = tmp_path / "run"
    with run_lock(run, "run", create=True), run_lock(run, "traces"), run_lock(run, "traces"):
        assert holder(lock_path(run, "traces"))["pid"] == os.getpid()
    assert holder(lock_path(run, "traces")) is None and holder(lock_path(run, "run")) is None


def test_a_run_directory_the_lock_cannot_be_written_in_is_one_readable_error(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".locks").write_text("")  # in the way of the lock folder (a read-only folder is not, for root)
    done = subprocess.run([*CLI, "report", "--run", str(run)], capture_output=True, text=True, env=ENV, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"error: cannot write in {run}" in done.stderr


def test_duplicate_trace_records_are_reported_dropped_and_counted_as_lines(tmp_path):
    run = tmp_path / "run"
    with fault_server([ANSWER]) as server:
        config = _questions_run(run, server.url)
        cmd = [*CLI, "traces", "--run", str(run), "--config", str(config)]
        assert subprocess.run(cmd, capture_output=True, env=ENV, timeout=120).returncode == 0
        accepted = (run / "traces.jsonl").read_text().splitlines()
        # what two unlocked writers left: every record twice, and one question also rejected
        rejected = json.loads(accepted[0])
        rejected = {"question_id": rejected["question_id"], "reason": "format", "detail": "", "trace": rejected}
        (run / "traces.jsonl").write_text("\n".join(accepted + accepted) + "\n")
        (run / "traces.rejected.jsonl").write_text(json.dumps(rejected) + "\n")
        done = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"dropped {len(accepted) + 1} duplicate trace records" in " ".join((done.stdout + done.stderr).split())
    assert (run / "traces.jsonl").read_text().splitlines() == accepted  # the first of each kept, in order
    assert _record_counts(run) == Counter({f"q-{i:03d}": 1 for i in range(len(QUESTIONS))})
    stats = json.loads((run / "traces.stats.json").read_text())
    assert stats["lines"] == {"traces.jsonl": len(accepted), "traces.rejected.jsonl": 0}
    assert stats["duplicates_dropped_this_run"] == len(accepted) + 1


# --- checkpoints ------------------------------------------------------------------------------------


def _checkpoint(folder: Path, step: int, files: tuple[str, ...]) -> Path:
    folder.mkdir(parents=True)
    for name in files:
        (folder / name).write_bytes(b"x")
    if "trainer_state.json" in files:
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


COMPLETE = ("adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json")


def test_resume_skips_and_names_incomplete_checkpoints_and_takes_the_last_complete_one(tmp_path, capsys):
    from agentdistill.train.sft import last_complete_checkpoint

    ckpts = tmp_path / "checkpoints" / "sft-m"
    good = _checkpoint(ckpts / "checkpoint-2", 2, COMPLETE)
    _checkpoint(ckpts / "checkpoint-3", 3, ("adapter_model.safetensors",))  # killed before the optimizer
    torn = _checkpoint(ckpts / "checkpoint-4", 4, ("adapter_model.safetensors", "optimizer.pt", "scheduler.pt"))
    (torn / "trainer_state.json").write_text('{"global_step": 4, "log_hi')  # killed while writing it
    assert last_complete_checkpoint(ckpts) == str(good)
    said = " ".join("".join(capsys.readouterr()).split())
    assert "checkpoint-4 is incomplete (trainer_state.json is cut off" in said
    assert "checkpoint-3 is incomplete (no trainer_state.json" in said
    assert sorted(p.name for p in ckpts.iterdir()) == ["checkpoint-2", "incomplete"]  # out of the Trainer's way
    assert sorted(p.name for p in (ckpts / "incomplete").iterdir()) == ["checkpoint-3", "checkpoint-4"]
    _checkpoint(ckpts / "checkpoint-4", 4, ("adapter_model.safetensors",))  # the same step cut short again
    assert last_complete_checkpoint(ckpts) == str(good)
    assert (ckpts / "incomplete" / "checkpoint-4.2").is_dir()
    shutil.rmtree(good)
    assert last_complete_checkpoint(ckpts) is None  # nothing complete: training starts over


@pytest.mark.slow
@pytest.mark.timeout(3600)  # a few seconds a step on an idle CPU, minutes on a crowded one
def test_sft_sigkilled_while_saving_a_checkpoint_resumes_from_the_last_complete_one(tmp_path):
    from test_train_sft import make_run

    run = tmp_path / "run"
    run.mkdir()
    make_run(run)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"sft": {"batch_size": 1, "max_length": 256, "lora_r": 8, "lora_alpha": 16,
                                              "learning_rate": 1e-3, "logging_steps": 1, "save_steps": 1}}))
    cmd = [*CLI, "sft", "--run", str(run), "--config", str(config), "--model", "student"]
    ckpts = run / "checkpoints" / "sft-smollm2-135m"
    log = open(tmp_path / "killed.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([*cmd, "--max-steps", "3"], stdout=log, stderr=subprocess.STDOUT, env=ENV)
    torn = None
    deadline = time.monotonic() + 1500
    while proc.poll() is None and time.monotonic() < deadline:  # kill inside a save: a folder without its state
        saving = [p for p in (ckpts.iterdir() if ckpts.is_dir() else []) if p.name.startswith("checkpoint-")
                  and int(p.name.split("-")[1]) >= 2 and not (p / "trainer_state.json").exists()]
        if saving:
            proc.send_signal(signal.SIGKILL)
            torn = saving[0].name
            break
        time.sleep(0.002)
    proc.kill()  # a no-op after the kill above; otherwise it ran past the deadline or ended without saving
    proc.wait()
    log.close()
    assert torn is not None, (tmp_path / "killed.log").read_text()[-3000:]
    assert not (ckpts / torn / "trainer_state.json").exists()  # the kill landed mid-save

    done = subprocess.run([*cmd, "--max-steps", "3"], capture_output=True, text=True, env=ENV, timeout=1800)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    said = " ".join((done.stdout + done.stderr).split())
    assert f"{torn} is incomplete" in said and "resuming from" in said
    meta = json.loads((run / "adapters" / "smollm2-135m" / "agentdistill.json").read_text())
    assert meta["steps"] == 3


# --- ingest -----------------------------------------------------------------------------------------

LEAVE = "# Annual Leave\n\nA worker who has completed a year of service earns thirty days of paid annual leave.\n"
GRATUITY = "# Gratuity\n\nAfter one year of service a worker is owed twenty-one days of basic wage per year.\n"
HOURS = "# Working Hours\n\nThe normal working hours are eight hours a day or forty-eight hours a week.\n"


@pytest.mark.slow
def test_a_misspelled_ingest_path_is_an_error_that_removes_nothing_and_only_files_gone_are_removed(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text(LEAVE)
    (docs / "gratuity.md").write_text(GRATUITY)
    extra = tmp_path / "hours.md"
    extra.write_text(HOURS)
    run = tmp_path / "run"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"corpus": {"n_clusters": 1}}))

    def ingest(*paths: Path | str, prune: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run([*CLI, "ingest", *map(str, paths), "--run", str(run), "--config", str(config),
                               *(["--prune"] if prune else [])], capture_output=True, text=True, env=ENV, timeout=300)

    assert ingest(docs).returncode == 0
    before = {name: (run / name).read_bytes() for name in ("chunks.jsonl", "manifest.json")}

    typo = ingest(docs / "leave.md", docs / "gratuty.md")
    assert typo.returncode == 2
    said = " ".join(typo.stderr.split())
    assert f"{docs / 'gratuty.md'} does not exist (did you mean {docs / 'gratuity.md'}?)" in said
    assert {name: (run / name).read_bytes() for name in before} == before  # nothing changed

    added = ingest(extra)  # another path adds to the corpus; the folder's documents stay
    assert added.returncode == 0, added.stderr
    sources = {json.loads(line)["source"] for line in (run / "chunks.jsonl").read_text().splitlines()}
    assert sources == {str(docs.resolve() / "leave.md"), str(docs.resolve() / "gratuity.md"), str(extra.resolve())}

    config.write_text(yaml.safe_dump({"corpus": {"n_clusters": 1, "chunk_tokens": 256}}))
    rechunked = ingest(docs)  # every chunk is made again, those of the document from another path too
    assert rechunked.returncode == 0, rechunked.stderr
    assert {json.loads(line)["source"] for line in (run / "chunks.jsonl").read_text().splitlines()} == sources

    (docs / "gratuity.md").unlink()  # really gone from a folder ingested again: removed, and named
    gone = ingest(docs)
    assert gone.returncode == 0, gone.stderr
    assert f"removed {docs.resolve() / 'gratuity.md'}" in " ".join(gone.stdout.split())
    sources = {json.loads(line)["source"] for line in (run / "chunks.jsonl").read_text().splitlines()}
    assert sources == {str(docs.resolve() / "leave.md"), str(extra.resolve())}

    pruned = ingest(docs, prune=True)  # asked for: only the paths given remain
    assert pruned.returncode == 0 and f"removed {extra.resolve()}" in " ".join(pruned.stdout.split())
    sources = {json.loads(line)["source"] for line in (run / "chunks.jsonl").read_text().splitlines()}
    assert sources == {str(docs.resolve() / "leave.md")}
