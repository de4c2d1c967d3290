"""Speed and memory of one SFT step, through `agentdistill sft`'s own trainer, for each method.

Methods (sft.method): ``lora`` (adapters on a frozen base), ``qlora`` (the same on a 4-bit NF4 base via
bitsandbytes; CUDA only) and ``full`` (every weight trained, float32 masters). Every other setting is the
UAE example's sft section (examples/uae_labour/config.yaml: LoRA rank, the top-12-layer subset, batch 4,
max length 1536, bf16 where the device computes it), so the CPU rows are the demo's training steps.

Inputs are built here, so the script runs from a bare checkout and on a machine the weights cannot reach:
- the model: the configuration and tokenizer of ``--config-dir`` (default: the bundled SmolLM2-135M) with
  random weights; a step's time and memory do not depend on the weights' values;
- the traces: lookups shaped like the rule teacher's (the example's real system prompt and tool specs, a
  question, a get_article call, an observation cut from the bundled corpus, an answer), their lengths
  spread uniformly over 0.6-1.4x ``--tokens`` (the demo's traces average ~1.1k tokens).

Each method runs in its own process, so that each peak memory is its own: on CUDA
``torch.cuda.max_memory_allocated`` (model, optimizer state, activations), on CPU the process's peak RSS.
``s/step`` is the median time between consecutive optimizer steps after the first ``--warmup``.

    python benchmarks/sft_step.py                       # CPU: lora, full; CUDA: lora, qlora, full
    python benchmarks/sft_step.py --methods lora --steps 12 --config-dir path/to/model

Prints one table and writes the numbers to benchmarks/results/sft_step-<device>-b<batch>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "uae_labour"
LAW = "Federal Decree-Law 33/2021"


def random_model(config_dir: Path, out: Path) -> Path:
    """A model folder with ``config_dir``'s configuration and tokenizer and random float32 weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(config_dir)
    AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained(out)
    AutoTokenizer.from_pretrained(config_dir).save_pretrained(out)
    return out


def synthetic_traces(n: int, tokens: int, tokenizer: Any, seed: int = 0) -> list[Any]:
    """``n`` lookup traces of the example's shape, about ``tokens`` tokens on average (0.6-1.4x)."""
    from agentdistill.agent.prompt import system_prompt
    from agentdistill.config import load_config
    from agentdistill.models.templates import tokenize_for_training
    from agentdistill.records import Outcome, Trace
    from agentdistill.tools import load_tools

    registry = load_tools(load_config(EXAMPLE / "config.yaml"), None)
    system = system_prompt(registry)
    corpus = " ".join(p.read_text() for p in sorted((EXAMPLE / "corpus").glob("*.md")))
    chars_per_token = len(corpus) / len(tokenizer(corpus)["input_ids"])
    rng = random.Random(seed)
    traces = []
    for i in range(n):
        article = rng.randint(1, 74)
        answer = f"Article {article} sets out the rule in question ({LAW}, Art. {article})."
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": system},
            {"role": "user", "content": f"Please fetch Art. {article} of {LAW}."},
            {"role": "assistant", "thought": f"Let me retrieve the text of {LAW}, Art. {article}; next: the answer.",
             "tool_calls": [{"name": "get_article", "arguments": {"law": LAW, "article": article}}]},
            {"role": "tool", "name": "get_article", "content": ""},
            {"role": "assistant", "thought": "I have read the rules; next: the answer.", "content": answer},
        ]
        base = len(tokenize_for_training(tokenizer, messages, 1 << 30)["input_ids"])
        target = int(tokens * rng.uniform(0.6, 1.4))
        start = rng.randrange(len(corpus) // 2)
        messages[3]["content"] = corpus[start:start + max(40, int((target - base) * chars_per_token))]
        traces.append(Trace(id=f"t{i}", question_id=f"q{i}", tools=registry.specs(), messages=messages,
                            teacher="synthetic", outcome=Outcome(answer=answer, steps=2, status="answered"),
                            split="train"))
    return traces


def run_one(method: str, model_dir: Path, run_dir: Path, steps: int, batch: int) -> dict[str, Any]:
    """Train ``steps`` steps with ``method`` on ``run_dir``'s traces; time and memory of the steps."""
    import torch
    from transformers import TrainerCallback

    from agentdistill.config import load_config
    from agentdistill.train.sft import train_sft

    class StepTimes(TrainerCallback):
        def __init__(self) -> None:
            self.ends: list[float] = []

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.ends.append(time.perf_counter())

    cfg = load_config(EXAMPLE / "config.yaml")
    cfg.sft.method = method
    cfg.sft.batch_size = batch
    cfg.sft.report_to = []
    cfg.sft.time_budget_min = None
    cfg.sft.max_examples = None
    cfg.sft.save_steps = 10**9  # no checkpoint inside the timed steps
    cfg.models.cache_dir = run_dir / "cache"
    timer = StepTimes()
    result = train_sft(run_dir, cfg, str(model_dir), max_steps=steps, force=True, callbacks=[timer])
    meta = json.loads((result.adapter_dir / "agentdistill.json").read_text())
    cuda = torch.cuda.is_available()
    peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    step_s = [round(b - a, 4) for a, b in zip(timer.ends, timer.ends[1:], strict=False)]
    return {"method": method, "steps": result.steps, "step_s": step_s,
            "mean_tokens": meta["data"]["mean_tokens"], "loss": result.train_loss, "bf16": meta["sft"].get("bf16"),
            "peak_bytes": peak, "peak_kind": "cuda max_memory_allocated" if cuda else "process max RSS"}


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", help="comma-separated sft methods (default: lora,full; lora,qlora,full on CUDA)")
    ap.add_argument("--config-dir", type=Path, help="model folder whose config and tokenizer are used "
                    "(default: the bundled SmolLM2-135M, prepared on first use)")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps per method (default: 12 CPU, 60 CUDA)")
    ap.add_argument("--warmup", type=int, default=2, help="steps left out of the median")
    ap.add_argument("--batch", type=int, default=4, help="traces per step (the example's sft.batch_size)")
    ap.add_argument("--tokens", type=int, default=1100, help="mean trace length in tokens")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one method in this process
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    cuda = torch.cuda.is_available()
    steps = args.steps or (60 if cuda else 12)
    if args.one:
        row = run_one(args.one, args.work / "model", args.work / f"run-{args.one}", steps, args.batch)
        (args.work / f"{args.one}.json").write_text(json.dumps(row))
        return

    from transformers import AutoTokenizer

    from agentdistill.jsonl import write_records
    from agentdistill.models.registry import prepare

    methods = (args.methods or ("lora,qlora,full" if cuda else "lora,full")).split(",")
    config_dir = args.config_dir or prepare("smollm2-135m", None)
    with tempfile.TemporaryDirectory(prefix="sft_step-") as tmp:
        work = Path(tmp)
        model_dir = random_model(config_dir, work / "model")
        traces = synthetic_traces(args.batch * (steps + 1), args.tokens, AutoTokenizer.from_pretrained(model_dir))
        rows = []
        for method in methods:
            run_dir = work / f"run-{method}"
            run_dir.mkdir()
            write_records(run_dir / "traces.jsonl", traces)
            one = ["--one", method, "--work", str(work), "--steps", str(steps), "--batch", str(args.batch)]
            proc = subprocess.run([sys.executable, __file__, *one], check=False)
            result = work / f"{method}.json"
            if proc.returncode or not result.exists():
                rows.append({"method": method, "error": f"exit {proc.returncode}"})
                continue
            row = json.loads(result.read_text())
            timed = row["step_s"][args.warmup:] or row["step_s"]
            row["s_per_step"] = statistics.median(timed)
            row["tokens_per_s"] = args.batch * row["mean_tokens"] / row["s_per_step"]
            rows.append(row)

    device = device_name()
    print(f"\nSFT steps on {device}: batch {args.batch}, traces of {args.tokens} tokens on average, {steps} steps, "
          f"median after {args.warmup}")
    print("| method | s/step | tokens/s | peak GB | loss |\n|---|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['method']} | failed ({r['error']}) | | | |")
            continue
        print(f"| {r['method']} | {r['s_per_step']:.3f} | {r['tokens_per_s']:,.0f} | {r['peak_bytes'] / 1e9:.2f} | "
              f"{r['loss']:.3f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in device.lower()).strip("-")
    path = args.out / f"sft_step-{slug}-b{args.batch}.json"
    path.write_text(json.dumps({"device": device, "torch": torch.__version__, "batch": args.batch,
                                "tokens": args.tokens, "steps": steps, "warmup": args.warmup, "rows": rows}, indent=2))
    print(f"wrote {path}")
    sys.exit(1 if any("error" in r for r in rows) else 0)


if __name__ == "__main__":
    main()
