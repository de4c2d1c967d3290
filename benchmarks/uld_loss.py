"""Speed and memory of the ULD loss: the seed's full-vocabulary formulation against ours.

Methods, each timed for forward + backward:
  reference  the seed's formulation: float32 softmax and full sort over both vocabularies
             (student logits [N, Vs] and teacher logits [N, Vt] both in memory), CE + ULD, grad to the logits
  chunked    agentdistill.train.uld.distill_loss: the same student logits, the teacher as a top-k cache
             (fp16 [N, k] + tail), chunks of tokens, gradient written during the forward pass
  plain CE   F.cross_entropy((hidden @ W^T).float(), labels), grad to the hidden states: the bar for `fused`
  fused      agentdistill.train.uld.fused_linear_distill_loss: hidden states + lm_head weight, CE + ULD,
             the full student logits never exist
"no Triton" rows repeat `fused` with uld.FAST_KERNELS off (plain torch dense passes, smaller chunks),
to show what the two Triton kernels buy.

Inputs are random but shaped like a language model's: logits ~ N(0, sigma^2) with sigma = 6 by
default (mean next-token entropy about 2.2-2.6 nats, top-256 mass about 98-99%); flatter logits put
more mass past rank k, and the top-k loss then drifts further from the full-vocabulary value (the
`top-k mass` columns of the JSON say how much mass each side keeps). The "ULD rel. err" column
compares each method's ULD term with the exact full-vocabulary value computed in float64.

Memory (CUDA only): `extra` is the most one forward + backward allocates beyond what was allocated
before it (torch.cuda.max_memory_allocated), the gradient included; `peak` adds the bytes of the
method's own inputs (the reference needs the teacher's full logits, ours the fp16 top-k cache; fused
needs the hidden states and lm_head weight instead of the student logits).

    python benchmarks/uld_loss.py                        # GPU: the full grid; CPU: a reduced grid
    python benchmarks/uld_loss.py --tokens 2048 --student 49152:576 --k 256 --out /tmp/res

Prints one table and writes the numbers to benchmarks/results/uld_loss-<device>.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing
from bench_common import timed_ms  # noqa: E402

from agentdistill.train import uld  # noqa: E402


def reference_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """CE + ULD as the seed computed it: full float32 softmax and sort of both distributions."""
    s = student_logits.float()
    ce = F.cross_entropy(s, labels)
    ps = torch.softmax(s, -1).sort(-1, descending=True).values
    pt = torch.softmax(teacher_logits.float(), -1).sort(-1, descending=True).values
    width = max(ps.shape[1], pt.shape[1])
    ps = F.pad(ps, (0, width - ps.shape[1]))
    pt = F.pad(pt, (0, width - pt.shape[1]))
    return ce + (ps - pt).abs().sum(-1).mean()


@torch.no_grad()
def exact_uld(student_logits: torch.Tensor, teacher_logits: torch.Tensor, rows: int = 128) -> float:
    """The full-vocabulary ULD term in float64, chunked over tokens so that it fits where the reference does not."""
    total = 0.0
    for s in range(0, student_logits.shape[0], rows):
        ps = torch.softmax(student_logits[s : s + rows].double(), -1).sort(-1, descending=True).values
        pt = torch.softmax(teacher_logits[s : s + rows].double(), -1).sort(-1, descending=True).values
        ps = F.pad(ps, (0, pt.shape[1] - ps.shape[1])) if ps.shape[1] < pt.shape[1] else ps
        pt = F.pad(pt, (0, ps.shape[1] - pt.shape[1])) if pt.shape[1] < ps.shape[1] else pt
        total += float((ps - pt).abs().sum())
    return total / student_logits.shape[0]


@torch.no_grad()
def describe(logits: torch.Tensor, ks: list[int], rows: int = 256) -> dict[str, float]:
    """Mean entropy (nats) and mean top-k mass of a batch of logits: how peaked the test distributions are."""
    x = logits[:rows].float()
    p = torch.softmax(x, -1)
    out = {"entropy_nats": float(-(p * torch.log_softmax(x, -1)).sum(-1).mean())}
    top = p.sort(-1, descending=True).values
    for k in ks:
        out[f"top{k}_mass"] = float(top[:, :k].sum(-1).mean())
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def nbytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def measure(step, inputs: int, device: torch.device, reps: int, warmup: int) -> dict[str, float | None]:
    """Median milliseconds of ``step()`` (forward + backward) and, on CUDA, its memory in GB: ``extra`` is
    the most it allocates beyond what was already allocated, ``peak`` adds the bytes of its own inputs."""
    for _ in range(warmup):
        step()
    _sync(device)
    peak = extra = None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize()
        extra = (torch.cuda.max_memory_allocated(device) - base) / 1e9
        peak = extra + inputs / 1e9
    times = []
    for _ in range(reps):
        times.append(timed_ms(step, device.type == "cuda")[1])
    return {"ms": statistics.median(times), "peak_gb": peak, "extra_gb": extra}


def run_config(
    n: int, vs: int, dim: int, vt: int, ks: list[int], sigma: float, device: torch.device, args
) -> list[dict]:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    g = torch.Generator(device=device).manual_seed(0)
    hidden = torch.randn(n, dim, device=device, generator=g).to(dtype)
    weight = (torch.randn(vs, dim, device=device, generator=g) * (sigma / dim**0.5)).to(dtype)
    student_logits = (hidden @ weight.t()).detach()
    teacher_logits = (torch.randn(n, vt, device=device, generator=g) * sigma).to(dtype)
    labels = torch.randint(0, vs, (n,), device=device, generator=g)
    exact = exact_uld(student_logits, teacher_logits)
    shape = {"student": describe(student_logits, ks), "teacher": describe(teacher_logits, ks)}
    caches = {}
    for k in ks:
        q, tail, _ = uld.teacher_topk(teacher_logits, k)
        caches[k] = (q.half(), tail.half())
    results = []

    def record(method: str, k: int | None, stats: dict, uld_value: float | None) -> None:
        rel = None if uld_value is None else (uld_value - exact) / exact
        row = {"tokens": n, "student_vocab": vs, "hidden": dim, "teacher_vocab": vt, "method": method, "k": k}
        row.update(stats)
        row["uld_rel_err"] = rel
        results.append(row)
        print(f"  {method:<14} k={k!s:<5} {stats['ms']!s:>10} ms  peak={stats['peak_gb']}  rel={rel}", flush=True)

    def attempt(method: str, k: int | None, step, inputs: int, uld_of=None) -> None:
        """Time ``step``; its ULD value comes from ``uld_of()`` or from the LossParts that step returns."""
        try:
            stats = measure(step, inputs, device, args.reps, args.warmup)
            out = uld_of() if uld_of is not None else step()
            record(method, k, stats, float(out.distill) if isinstance(out, uld.LossParts) else out)
        except torch.OutOfMemoryError:
            record(method, k, {"ms": None, "peak_gb": None, "extra_gb": None, "oom": True}, None)
        _free(device)

    # Tensors live in a dict so that each can be dropped (and its memory freed) once no method needs it.
    data = {"teacher": teacher_logits, "student": student_logits, "s_leaf": student_logits.clone().requires_grad_()}
    del teacher_logits, student_logits

    def ref_step():
        loss = reference_loss(data["s_leaf"], data["teacher"], labels)
        torch.autograd.grad(loss, data["s_leaf"])

    @torch.no_grad()
    def ref_uld():
        s, t = data["student"], data["teacher"]
        return float(reference_loss(s, t, labels) - F.cross_entropy(s.float(), labels))

    if not args.skip_reference:
        attempt("reference", None, ref_step, nbytes(data["s_leaf"], data["teacher"], labels), ref_uld)
    data.pop("teacher")
    _free(device)

    for k in ks:
        q, tail = caches[k]

        def chunked_step(q=q, tail=tail, k=k):
            out = uld.distill_loss(data["s_leaf"], labels, q, tail, top_k=k)
            torch.autograd.grad(out.loss, data["s_leaf"])
            return out

        attempt("chunked", k, chunked_step, nbytes(data["s_leaf"], q, tail, labels))
    data.clear()
    _free(device)

    h_leaf = hidden.clone().requires_grad_()

    def ce_step():
        loss = F.cross_entropy((h_leaf @ weight.t()).float(), labels)
        torch.autograd.grad(loss, h_leaf)

    attempt("plain CE", None, ce_step, nbytes(h_leaf, weight, labels))

    def fused_step(k):
        q, tail = caches[k]

        def step():
            out = uld.fused_linear_distill_loss(h_leaf, weight, labels, q, tail, top_k=k)
            torch.autograd.grad(out.loss, h_leaf)
            return out

        return step, nbytes(h_leaf, weight, q, tail, labels)

    for k in ks:
        attempt("fused", k, *fused_step(k))
    if device.type == "cuda" and args.plain:
        uld.FAST_KERNELS = False
        k = 256 if 256 in ks else ks[0]
        attempt("fused (no Triton)", k, *fused_step(k))
        uld.FAST_KERNELS = True
    for row in results:
        row["distribution"] = shape
        row["exact_uld"] = exact
    return results


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.1f}x"


def table(results: list[dict], device_name: str) -> str:
    head = (
        "| tokens | student vocab | method | k | ms | peak GB | extra GB | ULD rel. err | "
        "faster than ref | less memory than ref | time / plain CE |\n"
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [f"Device: {device_name}", "", head]
    for r in results:
        same = [x for x in results if x["tokens"] == r["tokens"] and x["student_vocab"] == r["student_vocab"]]
        ref = next((x for x in same if x["method"] == "reference"), None)
        ce = next((x for x in same if x["method"] == "plain CE"), None)

        def fmt(v, spec):
            return "-" if v is None else format(v, spec)

        if r.get("oom"):
            ms, peak, extra = "OOM", "OOM", "-"
        else:
            ms, peak, extra = fmt(r["ms"], ".2f"), fmt(r["peak_gb"], ".2f"), fmt(r["extra_gb"], ".2f")
        ref_ok = ref is not None and not ref.get("oom") and r["method"] in ("chunked", "fused", "fused (no Triton)")
        faster = _ratio(ref["ms"], r["ms"]) if ref_ok and not r.get("oom") else "-"
        leaner = _ratio(ref["peak_gb"], r["peak_gb"]) if ref_ok and not r.get("oom") else "-"
        vs_ce = "-"
        if r["method"].startswith("fused") and ce is not None and not ce.get("oom") and not r.get("oom"):
            vs_ce = f"{r['ms'] / ce['ms']:.2f}x"
        rel = "-" if r["uld_rel_err"] is None else f"{100 * r['uld_rel_err']:+.4f}%"
        lines.append(
            f"| {r['tokens']:,} | {r['student_vocab']:,} | {r['method']} | {r['k'] or '-'} | {ms} | {peak} | "
            f"{extra} | {rel} | {faster} | {leaner} | {vs_ce} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, nargs="+", help="tokens per step (default: GPU 2048 8192, CPU 256)")
    ap.add_argument(
        "--student",
        nargs="+",
        default=["49152:576", "151936:896"],
        help="student VOCAB:HIDDEN pairs (SmolLM2-135M, Qwen2.5-0.5B shapes)",
    )
    ap.add_argument("--teacher-vocab", type=int, default=262_144, help="Gemma 3's vocabulary")
    ap.add_argument("--k", type=int, nargs="+", default=[64, 256, 1024])
    ap.add_argument("--sigma", type=float, default=6.0, help="std of the random logits (peakedness)")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--no-plain", dest="plain", action="store_false", help="skip the rows without Triton kernels")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    tokens = args.tokens or ([2048, 8192] if cuda else [256])
    args.reps = args.reps or (10 if cuda else 2)
    name = torch.cuda.get_device_name(device) if cuda else f"CPU ({platform.processor() or platform.machine()})"
    print(f"{name}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads", flush=True)
    results = []
    for vs, dim in (tuple(map(int, p.split(":"))) for p in args.student):
        for n in tokens:
            print(f"tokens={n} student_vocab={vs} hidden={dim} teacher_vocab={args.teacher_vocab}", flush=True)
            results += run_config(n, vs, dim, args.teacher_vocab, args.k, args.sigma, device, args)
    text = table(results, name)
    print("\n" + text)
    args.out.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    path = args.out / f"uld_loss-{slug}.json"
    meta = {"device": name, "torch": torch.__version__, "sigma": args.sigma, "reps": args.reps}
    path.write_text(json.dumps({"meta": meta, "results": results, "table": text}, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
