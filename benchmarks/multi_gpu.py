"""SFT and SFT + ULD on 1 and N GPUs: tokens/s, scaling, peak memory per GPU, under DDP and FSDP.

The student is a Gemma-3-1B-architecture model (benchmarks/uld_step.py's GEMMA3_1B: 26 layers, hidden 1,152,
262,144-token vocabulary; about 1.0B parameters) with random weights and Gemma 3's tokenizer, trained by the
real stages, ``train_sft`` and ``train_distill`` (TRL SFTTrainer + PEFT, the run's config: LoRA r = 16 on every
linear layer unless --method full), on synthetic traces long enough that every example is cut to --seq tokens,
so a step holds exactly batch x seq tokens on every GPU (default 4 x 4,096 = 16,384). SFT+ULD reads a top-256
teacher cache that the same random model computed (its speed, not its content, matters here).

Each configuration runs in its own launch:

    1 GPU   python benchmarks/multi_gpu.py --worker ...                 (no launcher: the baseline)
    N GPUs  accelerate launch --config_file examples/accelerate/{ddp,fsdp}.yaml --num_processes N ...

`s/step`: median of the timed steps (after --warmup), CUDA-synchronized at each step's start and end;
`tokens/s`: GPUs x batch x seq / s/step; `scaling`: tokens/s over the 1-GPU run's of the same method (ideal N);
`peak GB/GPU`: the largest torch.cuda.max_memory_allocated of any rank over the timed steps. The system
prompt's shared-prefix pass (train/shared_prefix.py) runs in one process only, so it is off here, or the 1-GPU
baseline would do less work per token than the N-GPU runs.

    python benchmarks/multi_gpu.py                       # every visible GPU count of 1 and 2, DDP and FSDP
    python benchmarks/multi_gpu.py --gpus 1 2 4 --method full
    python benchmarks/multi_gpu.py --preset tiny         # CPU smoke test: a 2-layer model, torchrun with gloo

Prints one table (with the command and the machine) and writes benchmarks/results/multi_gpu-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["wage", "gratuity", "contract", "employer", "worker", "leave", "notice", "article", "probation", "overtime",
         "salary", "days", "service", "termination", "annual", "rest", "period", "law", "decree", "transfer"]


def gemma3_config(preset: str) -> dict[str, Any]:
    from uld_step import GEMMA3_1B, TINY

    return dict(GEMMA3_1B if preset == "1b" else TINY)


# --- the run directory every launch trains in (built once, by the driver) -----------------------------------------


def build_model(folder: Path, preset: str) -> None:
    """A random-weight Gemma 3 with the bundled Gemma 3 tokenizer and chat template, as a registry folder."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from agentdistill.models.registry import prepare

    if (folder / "agentdistill.json").is_file():
        return
    gemma = prepare("gemma3-270m")  # the tokenizer (262k) and chat template; its weights are not used
    marker = json.loads((gemma / "agentdistill.json").read_text())
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = {**gemma3_config(preset), "vocab_size": marker["vocab"]}  # the tokenizer's (262,144, as Gemma 3 1B's)
    model = Gemma3ForCausalLM(Gemma3TextConfig(**config)).to(torch.bfloat16)
    model.save_pretrained(folder)
    for f in gemma.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            shutil.copy(f, folder / f.name)
    params = sum(p.numel() for p in model.parameters())
    (folder / "agentdistill.json").write_text(json.dumps({**marker, "name": folder.name, "source": "local",
                                                          "ref": str(folder), "gguf": None, "params": params}))


def synthetic_traces(n: int, words: int, seed: int = 0) -> list[Any]:
    """``n`` traces of a tool call, an observation and a long answer of ``words`` words in all (~1.3 Gemma tokens
    a word), so that the tokens kept under max_length are mostly the answer's, trained ones, as in a real trace."""
    from agentdistill.records import Outcome, Trace

    rng = random.Random(seed)

    def text(k: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(k))

    out = []
    for i in range(n):
        call = {"name": "search_law", "arguments": {"query": text(4)}}
        answer = text(3 * words // 4)
        messages = [
            {"role": "system", "content": "You answer labour-law questions. Tools: search_law(query)."},
            {"role": "user", "content": f"Question {i}: {text(20)}?"},
            {"role": "assistant", "thought": "I should search the law.", "tool_calls": [call]},
            {"role": "tool", "name": "search_law", "content": text(words // 4)},
            {"role": "assistant", "thought": "The law answers it.", "content": answer},
        ]
        out.append(Trace(id=f"t{i}", question_id=f"q{i}", tools=[], messages=messages, teacher="synthetic",
                         outcome=Outcome(answer=answer, steps=2, status="answered"), split="train"))
    return out


def build_run(run: Path, model: Path, args: argparse.Namespace) -> None:
    """traces.jsonl (every example longer than --seq), the run config, and for ULD the teacher cache."""
    from agentdistill.config import RunConfig, save_resolved
    from agentdistill.jsonl import write_records
    from agentdistill.models.registry import load_tokenizer
    from agentdistill.train.data import tokenize_traces

    run.mkdir(parents=True, exist_ok=True)
    n = args.batch * max(args.gpus) * (args.warmup + args.steps) + args.batch * max(args.gpus)
    traces = synthetic_traces(n, words=args.seq)
    _, stats = tokenize_traces(traces, load_tokenizer(str(model)), args.seq)
    if stats.n_truncated != stats.n_examples:  # a shorter example would make a step's token count vary
        raise SystemExit(f"only {stats.n_truncated} of {stats.n_examples} traces reach {args.seq} tokens")
    old = (run / "traces.jsonl").read_text() if (run / "traces.jsonl").is_file() else None
    write_records(run / "traces.jsonl", traces)
    if (run / "traces.jsonl").read_text() != old:  # a cache of other traces would be refused by distill
        shutil.rmtree(run / "teacher_topk", ignore_errors=True)
    cfg = RunConfig()
    cfg.models.student = cfg.models.teacher = str(model)
    s = cfg.sft
    s.method, s.batch_size, s.grad_accum, s.max_length = args.method, args.batch, 1, args.seq
    s.save_steps, s.logging_steps, s.report_to = 1_000_000, 1_000_000, ["none"]  # time training, not writing
    s.share_prefix = False
    cfg.distill.teacher = str(model)
    cfg.distill.top_k = args.k
    save_resolved(cfg, run)
    if "uld" in args.modes and not (run / "teacher_topk" / "manifest.json").is_file():
        subprocess.run([sys.executable, "-m", "agentdistill.cli", "teacher-cache", "--run", str(run)], check=True)


# --- one configuration, in each launched process --------------------------------------------------------------


def worker(args: argparse.Namespace) -> None:
    """Train ``warmup + steps`` steps of ``args.mode`` and (rank 0) write the timings and peak memory as JSON."""
    import torch
    from accelerate.utils import gather_object
    from transformers import TrainerCallback

    from agentdistill.config import load_run_config
    from agentdistill.train.distill import train_distill
    from agentdistill.train.sft import train_sft

    cuda = torch.cuda.is_available()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.t0 = 0.0
            self.peak_gb: float | None = None

        def on_step_begin(self, args_: Any, state: Any, control: Any, **kwargs: Any) -> None:
            sync()
            if state.global_step == args.warmup and cuda:  # peak memory of the timed steps only
                torch.cuda.reset_peak_memory_stats()
            self.t0 = time.perf_counter()

        def on_step_end(self, args_: Any, state: Any, control: Any, **kwargs: Any) -> None:
            sync()
            if state.global_step > args.warmup:
                self.times.append(time.perf_counter() - self.t0)
            if cuda:
                self.peak_gb = torch.cuda.max_memory_allocated() / 1e9

    timer = StepTimer()
    cfg = load_run_config(args.run)
    train = train_sft if args.mode == "sft" else train_distill
    train(args.run, cfg, max_steps=args.warmup + args.steps, force=True, callbacks=[timer])
    ranks = gather_object([{"rank": int(os.environ.get("RANK", 0)), "times": timer.times, "peak_gb": timer.peak_gb}])
    if int(os.environ.get("RANK", 0)) == 0:
        args.out.write_text(json.dumps(ranks) + "\n")


# --- the driver: one launch per configuration, then the table ---------------------------------------------------


def launch(args: argparse.Namespace, mode: str, strategy: str, gpus: int, out: Path) -> list[str]:
    """The command of one configuration: a plain process for 1 GPU, accelerate launch (GPUs) or torchrun (CPU)."""
    me = [str(Path(__file__).resolve()), "--worker", "--mode", mode, "--run", str(args.run), "--out", str(out),
          "--warmup", str(args.warmup), "--steps", str(args.steps)]
    if gpus == 1:
        return [sys.executable, *me]
    if args.cpu:  # accelerate starts several CPU processes only through mpirun; "--" keeps our options ours
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(gpus), "--", *me]
    return ["accelerate", "launch", "--config_file", str(ROOT / "examples" / "accelerate" / f"{strategy}.yaml"),
            "--num_processes", str(gpus), *me]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=["1b", "tiny"], default=None, help="default: 1b on CUDA, tiny on CPU")
    ap.add_argument("--gpus", type=int, nargs="+", default=None, help="process counts (default: 1 and 2, as visible)")
    ap.add_argument("--strategies", nargs="+", default=["ddp", "fsdp"], choices=["ddp", "fsdp"])
    ap.add_argument("--modes", nargs="+", default=["sft", "uld"], choices=["sft", "uld"])
    ap.add_argument("--method", choices=["lora", "full"], default="lora", help="sft.method of the student")
    ap.add_argument("--batch", type=int, default=None, help="sequences per GPU and step (default: GPU 4, CPU 2)")
    ap.add_argument("--seq", type=int, default=None, help="tokens per sequence (default: GPU 4096, CPU 256)")
    ap.add_argument("--k", type=int, default=256, help="teacher top-k in the cache")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default: GPU 10, CPU 3)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/agentdistill-multi-gpu"), help="model and run folder")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=["sft", "uld"], help=argparse.SUPPRESS)
    ap.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return

    import torch

    cuda = torch.cuda.is_available()
    args.cpu = not cuda
    visible = torch.cuda.device_count() if cuda else os.cpu_count() or 1
    args.preset = args.preset or ("1b" if cuda else "tiny")
    args.batch, args.seq = args.batch or (4 if cuda else 2), args.seq or (4096 if cuda else 256)
    args.steps = args.steps or (10 if cuda else 3)
    wanted = args.gpus or [1, 2]
    args.gpus = [g for g in wanted if g <= visible]
    strategies = ["ddp"] if args.cpu else args.strategies  # FSDP's CPU path is not what runs on GPUs
    device = f"{visible} x {torch.cuda.get_device_name(0)}" if cuda else f"CPU ({cpu_model()}, {visible} cores)"
    model = args.work / f"gemma3-{args.preset}-random"
    args.run = args.work / f"run-{args.preset}-{args.method}-{args.batch}x{args.seq}"
    build_model(model, args.preset)
    build_run(args.run, model, args)

    rows = []
    for mode in args.modes:
        for strategy in strategies:
            for gpus in args.gpus:
                if gpus == 1 and strategy != strategies[0]:  # one 1-GPU baseline per mode, shared by both
                    continue
                out = args.work / f"result-{mode}-{strategy}-{gpus}.json"
                out.unlink(missing_ok=True)
                cmd = launch(args, mode, strategy, gpus, out)
                print("$", shlex.join(cmd), flush=True)
                proc = subprocess.run(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"})
                row = {"mode": mode, "strategy": "single" if gpus == 1 else strategy, "gpus": gpus}
                if proc.returncode or not out.is_file():
                    rows.append({**row, "error": f"exit {proc.returncode}"})
                    continue
                ranks = json.loads(out.read_text())
                s_step = statistics.median(ranks[0]["times"])
                peaks = [r["peak_gb"] for r in ranks if r["peak_gb"] is not None]
                tokens = gpus * args.batch * args.seq
                rows.append({**row, "s_per_step": s_step, "tokens_per_s": tokens / s_step,
                             "peak_gb": max(peaks) if peaks else None, "times": ranks[0]["times"]})
    for r in rows:
        base = next((b for b in rows if b["mode"] == r["mode"] and b["gpus"] == 1 and "tokens_per_s" in b), None)
        r["scaling"] = r["tokens_per_s"] / base["tokens_per_s"] if base and "tokens_per_s" in r else None

    import transformers

    command = shlex.join([Path(sys.executable).name, "benchmarks/multi_gpu.py", *sys.argv[1:]])
    missing = [g for g in wanted if g > visible]

    def f(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    lines = [f"Device: {device}; torch {torch.__version__}; transformers {transformers.__version__}; "
             f"Gemma 3 {args.preset} architecture, random weights, sft.method {args.method}, {args.batch} x {args.seq}"
             f" = {args.batch * args.seq:,} tokens per GPU and step; medians of {args.steps} steps after "
             f"{args.warmup}. Command: `{command}`."
             + (f" Not run: {', '.join(map(str, missing))} GPUs ({visible} visible)." if missing else ""), "",
             "| method | strategy | GPUs | s/step | tokens/s | scaling | peak GB/GPU |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        method = "SFT" if r["mode"] == "sft" else "SFT+ULD"
        if "error" in r:
            lines.append(f"| {method} | {r['strategy']} | {r['gpus']} | failed ({r['error']}) | | | |")
            continue
        lines.append(f"| {method} | {r['strategy']} | {r['gpus']} | {r['s_per_step']:.3f} | {r['tokens_per_s']:,.0f} | "
                     f"{f(r['scaling'], '.2f')}x | {f(r['peak_gb'], '.1f')} |")
    print("\n" + "\n".join(lines))
    args.out.mkdir(parents=True, exist_ok=True)
    tag = "cuda" if cuda else "cpu"
    (args.out / f"multi_gpu-{tag}.json").write_text(json.dumps({
        "device": device, "command": command, "preset": args.preset, "method": args.method, "batch": args.batch,
        "seq": args.seq, "warmup": args.warmup, "steps": args.steps, "platform": platform.platform(), "rows": rows,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
