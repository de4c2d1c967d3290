"""One training step of a Gemma-3-1B-architecture student: SFT (CE) against SFT + ULD from a 262k-vocabulary cache.

The student is transformers' Gemma3ForCausalLM built from the 1B configuration (hidden 1,152, 26 layers,
4 heads, 1 KV head, head_dim 256, MLP 6,912, vocabulary 262,144, sliding window 512 on five of every
six layers, tied embeddings: 999,885,952 parameters) with random weights, in bf16, trained in full with
AdamW (fused, bf16 states). The teacher is a random top-k cache shaped like teacher_cache.py's (fp16 top-k
probabilities, sorted, + tail mass) for every token. A step is forward + backward + optimizer step;
the methods differ only in the loss on the last hidden states:

  sft (HF loss)          model(input_ids, labels=...): transformers' own path, full logits then CE
  sft (Liger FLCE)       liger_kernel's fused linear cross-entropy on the hidden states (when installed)
  sft (fused CE, ours)   the CE half of uld.fused_linear_distill_loss (benchmarks/uld_like_for_like.py)
  sft+uld (fused)        uld.fused_linear_distill_loss: CE + ULD, logits never built in full ("uld_kernel":
                         the same with the experimental kernel of train/uld_kernel.py, uld.FUSED_ULD on)

`ms/step`: median of --steps timed steps after --warmup, CUDA events around the whole step; `peak GB`:
torch.cuda.max_memory_allocated over the timed steps (weights, gradients and optimizer state included);
`ULD overhead`: (sft+uld - sft) / sft for each CE-only row; `MFU`: 6 N tokens / time over the peak rate
(--peak-tflops, default 989 TFLOP/s, the H100/H200 SXM datasheet's dense bf16), N = every parameter (the
tied embedding counted once, as the LM head's matrix product), attention's score and value products
left out; the bf16 matrix rate measured in the same run is printed beside it.

    python benchmarks/uld_step.py                   # GPU: the 1B student, 4 x 4,096 tokens a step
    python benchmarks/uld_step.py --preset tiny     # CPU: a 2-layer, 4,096-vocabulary model, a quick check

Prints one table and writes the numbers to benchmarks/results/uld_step-<device>.json.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import platform
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import timed_ms  # noqa: E402
from uld_like_for_like import fused_linear_ce, liger_fused_linear_cross_entropy  # noqa: E402

from agentdistill.train import uld  # noqa: E402

GEMMA3_1B = dict(  # google/gemma-3-1b-pt config.json (999,885,952 parameters, as keras-hub's preset states)
    vocab_size=262_144, hidden_size=1152, intermediate_size=6912, num_hidden_layers=26, num_attention_heads=4,
    num_key_value_heads=1, head_dim=256, sliding_window=512, max_position_embeddings=32_768,
    query_pre_attn_scalar=256, rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh",
    rope_parameters={
        "full_attention": {"rope_theta": 1_000_000.0, "rope_type": "default"},
        "sliding_attention": {"rope_theta": 10_000.0, "rope_type": "default"},
    },
)  # fmt: skip
TINY = dict(GEMMA3_1B, vocab_size=4096, hidden_size=64, intermediate_size=128, num_hidden_layers=2, head_dim=16,
            num_attention_heads=2, sliding_window=32)  # fmt: skip


def build(preset: dict, device: torch.device, dtype: torch.dtype):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    cfg = Gemma3TextConfig(**preset)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        model = Gemma3ForCausalLM(cfg)
    return model.to(dtype).train()


def random_cache(n: int, k: int, device, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A random teacher top-k cache: k probabilities sorted descending and the tail mass, summing to 1, fp16."""
    logits = torch.randn(n, k, device=device, generator=generator) * 2.0
    tail = torch.rand(n, device=device, generator=generator) * 0.1
    probs = torch.softmax(logits, -1).sort(-1, descending=True).values * (1 - tail)[:, None]
    return probs.half(), tail.half()


def matmul_tflops(device) -> float | None:
    if device.type != "cuda":
        return None
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(20):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        a @ b
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e))
    return 2 * 8192**3 / (statistics.median(times) / 1e3) / 1e12


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=["1b", "tiny"], default=None, help="default: 1b on CUDA, tiny on CPU")
    ap.add_argument("--batch", type=int, default=None, help="sequences per step (default: GPU 4, CPU 2)")
    ap.add_argument("--seq", type=int, default=None, help="tokens per sequence (default: GPU 4096, CPU 128)")
    ap.add_argument("--k", type=int, default=256, help="teacher top-k in the cache")
    ap.add_argument("--weight", type=float, default=1.0, help="lambda of the ULD term")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default: GPU 10, CPU 3)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak for MFU (H100/H200 SXM)")
    ap.add_argument("--methods", nargs="+", default=["hf", "liger", "fused_ce", "uld"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    preset_name = args.preset or ("1b" if cuda else "tiny")
    preset = GEMMA3_1B if preset_name == "1b" else TINY
    batch, seq = args.batch or (4 if cuda else 2), args.seq or (4096 if cuda else 128)
    steps = args.steps or (10 if cuda else 3)
    dtype = torch.bfloat16
    tokens = batch * seq
    name = torch.cuda.get_device_name(device) if cuda else f"CPU ({platform.processor() or platform.machine()})"
    import transformers

    print(f"{name}, torch {torch.__version__}, transformers {transformers.__version__}", flush=True)
    measured = matmul_tflops(device)
    model = build(preset, device, dtype)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"preset {preset_name}: {n_params:,} parameters; {batch} x {seq} = {tokens:,} tokens a step", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=cuda)
    g = torch.Generator(device=device).manual_seed(1)
    vocab = preset["vocab_size"]
    input_ids = torch.randint(0, vocab, (batch, seq), device=device, generator=g)
    labels = torch.randint(0, vocab, (batch, seq), device=device, generator=g)  # row t predicts labels[:, t]
    q, tail = random_cache(tokens, args.k, device, g)
    flat_labels = labels.reshape(-1)

    def hidden_states():
        return model.model(input_ids=input_ids).last_hidden_state.reshape(tokens, -1)

    def loss_of(method: str):
        if method == "hf":  # transformers shifts labels itself: give it labels one position later
            shifted = torch.cat([torch.full_like(labels[:, :1], -100), labels[:, :-1]], 1)
            return model(input_ids=input_ids, labels=shifted).loss
        h, w = hidden_states(), model.lm_head.weight
        if method == "liger":
            return liger_fused_linear_cross_entropy(h, w, flat_labels)
        if method == "fused_ce":
            return fused_linear_ce(h, w, flat_labels)
        uld.FUSED_ULD = method == "uld_kernel"  # the experimental fused kernel of train/uld_kernel.py
        return uld.fused_linear_distill_loss(h, w, flat_labels, q, tail, top_k=args.k, weight=args.weight).loss

    def step(method: str) -> float:
        loss = loss_of(method)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    methods = [m for m in args.methods if not (m == "liger" and (liger_fused_linear_cross_entropy is None or not cuda))]
    rows = []
    for method in methods:
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        try:
            for _ in range(args.warmup):
                step(method)
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats(device)
            times, losses = [], []
            for _ in range(steps):
                loss, ms = timed_ms(functools.partial(step, method), cuda)
                losses.append(loss)
                times.append(ms)
            ms = statistics.median(times)
            peak = torch.cuda.max_memory_allocated(device) / 1e9 if cuda else None
            row = {"method": method, "ms": ms, "ms_min": min(times), "ms_max": max(times), "times": times}
            row.update(peak_gb=peak, loss_first=losses[0], loss_last=losses[-1])
        except torch.OutOfMemoryError:
            row = {"method": method, "oom": True}
        row["tokens_per_s"] = tokens / (row["ms"] / 1e3) if row.get("ms") else None
        row["mfu"] = 6 * n_params * tokens / (row["ms"] / 1e3) / (args.peak_tflops * 1e12) if row.get("ms") else None
        rows.append(row)
        print(
            f"  {method:<10} {row.get('ms')} ms  peak={row.get('peak_gb')} GB  loss={row.get('loss_last')}", flush=True
        )

    labels_of = {"hf": "sft (HF loss)", "liger": "sft (Liger FLCE)", "fused_ce": "sft (fused CE, ours)",
                 "uld": "sft+uld (fused)", "uld_kernel": "sft+uld (fused, FUSED_ULD on)"}  # fmt: skip
    u = next((r for r in rows if r["method"] == "uld" and r.get("ms")), None)

    def f(v, spec):
        return "-" if v is None else format(v, spec)

    lines = [
        f"Device: {name}; torch {torch.__version__}; transformers {transformers.__version__}; Gemma 3 1B architecture "
        f"({n_params:,} parameters, random weights, bf16, AdamW), {batch} x {seq} = {tokens:,} tokens a step, "
        f"teacher top-{args.k} cache, lambda {args.weight}; medians of {steps} steps after {args.warmup}; MFU against "
        f"{args.peak_tflops:g} TFLOP/s (bf16 matmul measured in this run: {f(measured, ',.0f')} TFLOP/s). "
        f"Command: python benchmarks/uld_step.py {' '.join(sys.argv[1:])}".rstrip(),
        "",
        "| method | ms/step (median) | min-max | tokens/s | peak GB | MFU | ULD overhead (sft+uld vs this) | "
        "ULD extra peak GB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r.get("oom"):
            lines.append(f"| {labels_of[r['method']]} | OOM | - | - | - | - | - | - |")
            continue
        over = extra = None
        if u is not None and r["method"] not in ("uld", "uld_kernel"):
            over = 100 * (u["ms"] - r["ms"]) / r["ms"]
            extra = None if r["peak_gb"] is None else u["peak_gb"] - r["peak_gb"]
        lines.append(
            f"| {labels_of[r['method']]} | {r['ms']:.1f} | {r['ms_min']:.1f}-{r['ms_max']:.1f} | "
            f"{r['tokens_per_s']:,.0f} | {f(r['peak_gb'], '.2f')} | {100 * r['mfu']:.1f}% | "
            f"{f(over, '+.1f')}{'%' if over is not None else ''} | {f(extra, '+.2f')} |"
        )
    text = "\n".join(lines)
    print("\n" + text)
    args.out.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    path = args.out / f"uld_step-{slug}.json"
    meta = {"device": name, "torch": torch.__version__, "transformers": transformers.__version__, "preset": preset_name,
            "params": n_params, "batch": batch, "seq": seq, "k": args.k, "matmul_tflops": measured,
            "peak_tflops": args.peak_tflops, "argv": sys.argv[1:]}  # fmt: skip
    path.write_text(json.dumps({"meta": meta, "results": rows, "table": text}, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
