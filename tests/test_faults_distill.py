"""SIGKILL of the distillation stages, with real processes: `teacher-cache` killed while it computes, then
run again, completes the cache; `distill` killed while it saves a checkpoint resumes from the last complete
one and trains all its steps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

CLI = [sys.executable, "-m", "agentdistill.cli"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}

pytestmark = pytest.mark.slow


def _kill_when(proc: subprocess.Popen, ready, deadline_s: float) -> str | None:
    """SIGKILL ``proc`` as soon as ``ready()`` names something; returns that, or None if it never did."""
    deadline = time.monotonic() + deadline_s
    while proc.poll() is None and time.monotonic() < deadline:
        what = ready()
        if what:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return what
        time.sleep(0.002)
    proc.kill()
    proc.wait()
    return None


@pytest.mark.timeout(3600)
def test_teacher_cache_and_distill_killed_mid_work_resume_and_finish(tmp_path):
    from test_train_uld_distill import make_run

    run, _ = make_run(tmp_path / "run")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "models": {"teacher": "gemma3-270m"},
        "tools": {"packs": ["uae_labour", "general"]},
        "distill": {"teacher": "gemma3-270m", "top_k": 16},
        "sft": {"batch_size": 1, "max_length": 128, "lora_r": 8, "lora_alpha": 16, "learning_rate": 1e-3,
                "logging_steps": 1, "save_steps": 1, "report_to": []},
    }))
    cache = run / "teacher_topk"

    # teacher-cache: killed once it has made the cache folder, while it loads the teacher and computes. Waiting
    # for a shard file instead races the manifest: three traces fill one shard, written a moment before it.
    assert not cache.exists()
    log = tmp_path / "cache-killed.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([*CLI, "teacher-cache", "--run", str(run), "--config", str(config)], stdout=out,
                                stderr=subprocess.STDOUT, env=ENV)
        killed = _kill_when(proc, lambda: "cache" if cache.is_dir() else None, 1500)
    assert killed, log.read_text()[-3000:]
    manifest = cache / "manifest.json"
    assert not (manifest.exists() and json.loads(manifest.read_text()).get("complete"))
    done = subprocess.run([*CLI, "teacher-cache", "--run", str(run), "--config", str(config)],
                          capture_output=True, text=True, env=ENV, timeout=1800)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    made = json.loads(manifest.read_text())
    assert made["complete"] and made["n_traces"] == 3
    assert not list(cache.glob("*.tmp*"))  # nothing half-written left beside the shards

    # distill: killed inside a checkpoint save (a checkpoint folder without its trainer state yet)
    cmd = [*CLI, "distill", "--run", str(run), "--config", str(config), "--max-steps", "3"]
    ckpts = run / "checkpoints"

    def saving() -> str | None:
        for p in ckpts.glob("distill-*/checkpoint-*") if ckpts.is_dir() else []:
            if int(p.name.split("-")[1]) >= 2 and not (p / "trainer_state.json").exists():
                return p.name
        return None

    log = tmp_path / "distill-killed.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=ENV)
        torn = _kill_when(proc, saving, 1500)
    assert torn is not None, log.read_text()[-3000:]
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=1800)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    said = " ".join((done.stdout + done.stderr).split())
    assert f"{torn} is incomplete" in said and "resuming from" in said
    adapter = run / "adapters" / "smollm2-135m-uld"
    assert (adapter / "adapter_config.json").exists()
    assert json.loads((adapter / "agentdistill.json").read_text())["steps"] == 3
