"""Training under several processes, on a CPU: `torchrun --nproc_per_node 2` (gloo) of `agentdistill sft` and
`agentdistill distill`, the CPU stand-in for `accelerate launch` on 2 GPUs (examples/accelerate/).

accelerate's own launcher starts several CPU processes only through mpirun, so the tests use torchrun, which
sets the same environment (RANK, WORLD_SIZE, ...) that the Trainer's accelerate state reads. The student is a
2-layer Llama with SmolLM2's tokenizer and random weights (fast, and its large initial weights make each
batch's loss differ clearly, so a batch trained out of order would show). What is checked: the launch
finishes, rank 0 alone writes the adapter and the TensorBoard log, a checkpoint written by both ranks resumes,
and the loss of every step equals that of one process training on the same global batch.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_train_sft import _trace, tiny_cfg

from agentdistill.config import RunConfig, save_resolved
from agentdistill.jsonl import write_records

STEPS = 4
GLOBAL_BATCH = 4
LOSS_TOL = 5e-4  # float32: the runs differ by summation order only (seen: 3e-6); a per-rank mean was off by 5e-3


# --- the teacher cache: each rank reads only the rows its batches index ---------------------------------------


def test_cached_rows_are_read_lazily_and_equal_the_stored_ones(tmp_path):
    import numpy as np
    import torch
    from safetensors.torch import save_file

    from agentdistill.run_layout import RunLayout
    from agentdistill.train.teacher_cache import TeacherCache

    cache_dir = RunLayout(tmp_path).teacher_cache
    cache_dir.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    shards = [[("a", 5, "d1"), ("b", 3, "d2")], [("c", 4, "d3")]]
    stored: dict[str, list] = {"probs": [], "tail": [], "ids": []}
    for n, traces in enumerate(shards):
        rows = sum(t[1] for t in traces)
        tensors = {"probs": torch.rand(rows, 8, generator=g).half(), "tail": torch.rand(rows, generator=g).half(),
                   "ids": torch.randint(0, 100, (rows, 8), generator=g).int()}
        save_file(tensors, str(cache_dir / f"shard-{n:05d}.safetensors"), metadata={"traces": json.dumps(traces)})
        for key, value in tensors.items():
            stored[key].append(value)
    names = [f"shard-{n:05d}.safetensors" for n in range(len(shards))]
    RunLayout(tmp_path).teacher_cache_manifest.write_text(json.dumps({"complete": True, "shards": names}))

    cache = TeacherCache.open(tmp_path)
    assert cache.index == {"a": (0, 5, "d1"), "b": (5, 3, "d2"), "c": (8, 4, "d3")}
    assert cache.probs.shape == (12, 8) and cache.probs.dtype == torch.float16 and cache.ids.dtype == torch.int32
    assert all(isinstance(p, np.memmap) for p in cache.probs.parts)  # mapped, not loaded
    want = {key: torch.cat(parts) for key, parts in stored.items()}
    rows = torch.tensor([[0, 7, 8, 11], [3, 3, 10, 0]])  # a collated batch's rows, across both shards
    for key in ("probs", "tail", "ids"):
        assert torch.equal(getattr(cache, key)[rows], want[key][rows]), key
    assert torch.equal(cache.probs[2:10], want["probs"][2:10])
    with pytest.raises(IndexError):
        cache.tail[torch.tensor([12])]


# --- sft and distill under torchrun ----------------------------------------------------------------------------


def _traces(n: int) -> list:
    """``n`` distinct answered traces of different lengths (a batch of copies would hide a reordering)."""
    out = []
    for i in range(n):
        a, b = 7 + 13 * i, 3 + i * i
        call = {"name": "calculator", "arguments": {"expression": f"{a} * {b}"}}
        question = f"What is {a} times {b}?" + " Please show the working." * (i % 4)
        out.append(_trace(i, question, call, str(a * b), f"{a} * {b} = {a * b}." + " Done." * (i % 3)))
    return out


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Two 2-layer Llamas with SmolLM2's tokenizer and template: the student, and a teacher with larger weights,
    whose peakier distributions keep the ULD term well away from zero."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from agentdistill.models.registry import prepare

    smol = prepare("smollm2-135m")
    marker = json.loads((smol / "agentdistill.json").read_text())
    out = {}
    for role, seed, init in (("student", 0, 0.2), ("teacher", 1, 1.0)):
        folder = tmp_path_factory.mktemp("models") / f"tiny-{role}"
        folder.mkdir()
        torch.manual_seed(seed)
        config = LlamaConfig(vocab_size=marker["vocab"], hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                             initializer_range=init, tie_word_embeddings=True)
        LlamaForCausalLM(config).save_pretrained(folder)
        for f in smol.iterdir():
            if f.name.startswith(("tokenizer", "special_tokens", "chat_template", "vocab", "merges")):
                shutil.copy(f, folder / f.name)
        (folder / "agentdistill.json").write_text(json.dumps({**marker, "name": f"tiny-{role}", "source": "local",
                                                              "ref": str(folder), "gguf": None}))
        out[role] = folder
    return out


def _run_dir(root: Path, models: dict[str, Path], batch_size: int) -> tuple[Path, RunConfig]:
    """A run of 16 traces whose SFT trains ``batch_size`` examples per process and step, in float32."""
    root.mkdir(parents=True)
    write_records(root / "traces.jsonl", _traces(16))
    cfg = tiny_cfg()
    cfg.models.student = str(models["student"])
    cfg.sft.batch_size = batch_size
    cfg.sft.bf16 = False  # float32: the two runs may then differ only by summation order
    cfg.sft.lora_dropout = 0.0  # no random masks: one process and two draw different ones
    cfg.sft.save_steps = 2
    cfg.sft.learning_rate = 3e-3
    cfg.distill.teacher = str(models["teacher"])
    cfg.distill.top_k = 16
    save_resolved(cfg, root)
    return root, cfg


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(nproc: int, args: list[str], *, script: Path | None = None) -> subprocess.CompletedProcess:
    """``agentdistill ARGS`` in ``nproc`` processes (torchrun, gloo), or in this interpreter's plain process."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": str(2 // nproc)}
    if nproc == 1 and script is None:
        cmd = [sys.executable, "-m", "agentdistill.cli", *args]
    else:  # after "--" torchrun's parser no longer takes agentdistill's --run for an abbreviation of its --run-path
        module = [] if script else ["-m"]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr",
               "127.0.0.1", "--master_port", str(_free_port()), *module, "--", str(script or "agentdistill.cli"), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def _check(proc: subprocess.CompletedProcess) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    return out


def _logged_losses(log_dir: Path, tag: str = "train/loss") -> dict[int, float]:
    """step -> ``tag``'s value from every TensorBoard event file in ``log_dir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    losses = {}
    for events in sorted(log_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        if tag in acc.Tags()["scalars"]:
            losses.update({e.step: e.value for e in acc.Scalars(tag)})
    return losses


KILL_AFTER_CHECKPOINT = """
import os, sys
from transformers import Trainer
real_save = Trainer._save_checkpoint

def save_then_die(self, *args, **kwargs):  # every rank dies right after the checkpoint of step {step}
    real_save(self, *args, **kwargs)
    if self.state.global_step == {step}:
        self.accelerator.wait_for_everyone()
        os._exit(3)

Trainer._save_checkpoint = save_then_die
from agentdistill.cli import main
sys.argv = ["agentdistill", *sys.argv[1:]]
main()
"""


def _assert_same_losses(one: dict[int, float], two: dict[int, float]) -> None:
    assert sorted(one) == sorted(two) == list(range(1, STEPS + 1)), (one, two)
    diffs = {s: abs(one[s] - two[s]) for s in one}
    print("step: 1 process / 2 processes:", {s: (round(one[s], 5), round(two[s], 5)) for s in one},
          f"max |diff| {max(diffs.values()):.2e}")
    assert max(diffs.values()) < LOSS_TOL, diffs
    # the check can tell: the steps' losses differ from each other by far more than the tolerance
    assert max(one.values()) - min(one.values()) > 20 * LOSS_TOL, one


@pytest.mark.slow
def test_sft_on_two_processes_trains_like_one_and_resumes_from_their_checkpoint(tmp_path, tiny_models):
    args = ["sft", "--max-steps", str(STEPS)]
    adapter, logs, ckpts = Path("adapters/tiny-student"), Path("logs/sft-tiny-student"), Path(
        "checkpoints/sft-tiny-student")

    from agentdistill.train.sft import train_sft

    one, cfg = _run_dir(tmp_path / "one", tiny_models, batch_size=GLOBAL_BATCH)
    train_sft(one, cfg, max_steps=STEPS)  # the one-process reference, in this process (a launch costs ~20 s)
    reference = _logged_losses(one / logs)

    two, _ = _run_dir(tmp_path / "two", tiny_models, batch_size=GLOBAL_BATCH // 2)
    killer = tmp_path / "kill_after_checkpoint.py"
    killer.write_text(KILL_AFTER_CHECKPOINT.format(step=2))
    killed = _launch(2, [*args, "--run", str(two)], script=killer)
    assert killed.returncode != 0 and not (two / adapter).exists(), (killed.stdout + killed.stderr)[-4000:]
    checkpoint = two / ckpts / "checkpoint-2"
    names = {p.name for p in checkpoint.iterdir()}
    assert {"trainer_state.json", "adapter_model.safetensors", "rng_state_0.pth", "rng_state_1.pth"} <= names, names
    first = {e["step"]: e["loss"] for e in json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
             if "loss" in e}

    out = _check(_launch(2, [*args, "--run", str(two)]))
    assert f"resuming from {checkpoint}" in out.replace("\n", "")
    assert out.count("adapter saved to") == 1, out[-4000:]  # rank 0 alone reports (and writes) it
    for f in ("adapter_model.safetensors", "adapter_config.json", "agentdistill.json", "chat_template.jinja"):
        assert (two / adapter / f).is_file(), f
    assert sorted(p.name for p in (two / "adapters").iterdir()) == ["tiny-student"]  # no .partial / .old left
    meta = json.loads((two / adapter / "agentdistill.json").read_text())
    assert meta["steps"] == STEPS and not (two / ckpts).exists()
    # one TensorBoard file per launch (rank 0's), not one per rank
    assert len(list((two / logs).glob("events.out.tfevents.*"))) == 2
    _assert_same_losses(reference, {**first, **_logged_losses(two / logs)})


@pytest.mark.slow
def test_distill_on_two_processes_trains_like_one(tmp_path, tiny_models):
    from agentdistill.train.distill import train_distill
    from agentdistill.train.teacher_cache import build_teacher_cache

    one, cfg = _run_dir(tmp_path / "one", tiny_models, batch_size=GLOBAL_BATCH)
    two, _ = _run_dir(tmp_path / "two", tiny_models, batch_size=GLOBAL_BATCH // 2)
    build_teacher_cache(one, cfg)
    shutil.copytree(one / "teacher_topk", two / "teacher_topk")  # the same traces: the same cache
    result = train_distill(one, cfg, max_steps=STEPS)  # the one-process reference, in this process
    out = _check(_launch(2, ["distill", "--max-steps", str(STEPS), "--run", str(two)]))
    assert out.count("adapter saved to") == 1, out[-4000:]
    adapter = Path("adapters/tiny-student-uld")
    assert (two / adapter / "adapter_model.safetensors").is_file()
    logs = Path("logs/distill-tiny-student")
    assert len(list((two / logs).glob("events.out.tfevents.*"))) == 1
    reference = _logged_losses(one / logs)
    _assert_same_losses(reference, _logged_losses(two / logs))
    # the ULD term is a real part of the loss compared (the teacher's distributions are far from the student's)
    uld = _logged_losses(one / logs, "train/uld")
    print("ULD term per step:", {s: round(v, 4) for s, v in uld.items()})
    assert result.steps == STEPS and min(uld.values()) > 0.05, uld
