"""The ULD loss like for like: each method against the same step without ULD, and against the device's bandwidth.

uld_loss.py compares our loss with the seed's online formulation, which also pays for the teacher's
softmax and sort; the teacher cache moves that work offline, so the ratios there mix two things. Here
every method is timed doing one forward + backward, and each is set beside its own CE-only step:

  logits in, gradient to the bf16 student logits [N, V]:
    (a)  reference (online)      the seed's code: fp32 softmax and full sort of the student AND the teacher's
                                 full logits [N, 262144] (includes the teacher's softmax and sort)
    (a') reference (teacher pre-sorted)  the same with the teacher's sorted fp32 distribution precomputed
    (b)  plain top-k              plain torch over the same cached top-k as (c): logits.float(), logsumexp,
                                 topk, |p - q| + tail, autograd
    (c)  chunked                  agentdistill.train.uld.distill_loss (chunks of tokens: two Triton dense passes,
                                 torch.topk, scatter) with uld.FUSED_ULD off; "FUSED_ULD on": through
                                 train/uld_kernel.py (uld's default since 2026-12-04), and that kernel alone
    CE rows: plain CE (F.cross_entropy(logits.float())), chunked CE (the CE half of (c): same kernels, no
    ULD), Liger CE (liger_kernel's cross_entropy, gradient in place) when liger-kernel is installed
  hidden states in, gradient to the hidden states (LM head frozen, as under LoRA):
    fused                         uld.fused_linear_distill_loss: logits never built in full
    fused CE (ours)               the same chunked loop without ULD
    Liger FLCE                    liger_kernel's fused linear cross-entropy (CE only)
    plain CE (hidden)             F.cross_entropy((hidden @ W^T).float())

Columns. `ms`: median of --reps timed runs after --warmup, CUDA events; `min-max` their spread. `GB min`:
the fewest bytes the method must move (logits methods: read the bf16 logits, write their bf16 gradient,
read the cache; the online reference also reads the teacher's logits, (a') its fp32 sorted distribution;
hidden methods: hidden, weight, gradient, cache); `GB/s` = GB min / time; `% copy`: that against a
device-to-device copy measured in the same run (bytes read + written); `floor ms` the time of GB min at the
datasheet bandwidth (--bw-spec, 4.8 TB/s for an H200) and, for hidden methods, of the two matrix products
(4 N V d FLOP) at the bf16 matrix rate measured in the same run, whichever is larger; `x floor`. `extra GB`:
the most the step allocates beyond its inputs (torch.cuda.max_memory_allocated, the gradient included);
`ULD extra GB`: that minus the `extra GB` of the CE-only step of the same family (named in `vs`).

    python benchmarks/uld_like_for_like.py                  # GPU: 2,048 and 8,192 tokens x two students
    python benchmarks/uld_like_for_like.py --tokens 64 --student 4096:64 --teacher-vocab 8192   # CPU, quick

Prints one table and writes the numbers to benchmarks/results/uld_like_for_like-<device>.json.
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

from agentdistill.train import uld, uld_kernel  # noqa: E402

try:  # liger-kernel is optional (pure Python + Triton): its rows are skipped without it
    from liger_kernel.transformers.functional import liger_cross_entropy, liger_fused_linear_cross_entropy
except Exception:  # ImportError, or Triton missing on a CPU install
    liger_cross_entropy = liger_fused_linear_cross_entropy = None


# ----------------------------------------------------------------------------------------------------------
# The losses compared. (a) is the seed's; (b) what one would write in plain torch over the cache; the two
# CE-only chunked functions are the CE half of train/uld.py's, the "same step without ULD" for (c) and fused.


def reference_loss(student_logits, teacher_sorted_probs, labels):
    """CE + ULD as the seed computed it: fp32 softmax and full sort of the student; the teacher's side given."""
    s = student_logits.float()
    ce = F.cross_entropy(s, labels)
    ps = torch.softmax(s, -1).sort(-1, descending=True).values
    pt = teacher_sorted_probs
    width = max(ps.shape[1], pt.shape[1])
    return ce + (F.pad(ps, (0, width - ps.shape[1])) - F.pad(pt, (0, width - pt.shape[1]))).abs().sum(-1).mean()


def teacher_sorted(teacher_logits):
    return torch.softmax(teacher_logits.float(), -1).sort(-1, descending=True).values


def plain_topk_loss(logits, labels, q, q_tail, k):
    """CE + ULD over the cached teacher top-k, in plain torch: the same function as uld.distill_loss (top-k
    of the student plus one tail bucket on each side), autograd for the gradient."""
    x = logits.float()
    lse = torch.logsumexp(x, -1)
    ce = (lse - x.gather(1, labels[:, None]).squeeze(1)).mean()
    p = (x.topk(k, -1).values - lse[:, None]).exp()
    p_tail = (1.0 - p.sum(-1)).clamp(min=0.0)
    rows = (p - q.float()).abs().sum(-1) + (p_tail - q_tail.float()).abs()
    return ce + rows.mean()


def _ce_chunk(x, labels, scale):
    """Sum of CE over a chunk of logits and its gradient coefficient rows (uld's two Triton passes)."""
    valid = labels != uld.IGNORE_INDEX
    lab = labels.clamp(min=0)
    lse = uld.row_lse(x)
    total = ((lse - x.gather(1, lab[:, None]).squeeze(1).float()) * valid).sum()
    return total, lse, lab, scale * valid.float()


class ChunkedCE(torch.autograd.Function):
    """Mean CE over logits [N, V] in chunks, the gradient written in the forward pass (uld.distill_loss minus ULD)."""

    @staticmethod
    def forward(ctx, logits, labels, chunk):  # type: ignore[override]
        scale = 1.0 / max(int((labels != uld.IGNORE_INDEX).sum()), 1)
        grad = torch.empty_like(logits)
        total = logits.new_zeros((), dtype=torch.float32)
        for s in range(0, logits.shape[0], chunk):
            x, g = logits[s : s + chunk], grad[s : s + chunk]
            part, lse, lab, w = _ce_chunk(x, labels[s : s + chunk], scale)
            total += part
            uld.scaled_softmax(x, lse, w, out=g)
            g.scatter_add_(1, lab[:, None], -w[:, None].to(g.dtype))
        ctx.save_for_backward(grad)
        return total * scale

    @staticmethod
    def backward(ctx, g_loss):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return (grad if g_loss.item() == 1.0 else grad * g_loss.to(grad.dtype)), None, None


class FusedLinearCE(torch.autograd.Function):
    """Mean CE of hidden @ weight^T without building the full logits (uld.fused_linear_distill_loss minus ULD);
    gradients to hidden and, when it requires grad, to weight."""

    @staticmethod
    def forward(ctx, hidden, weight, labels, chunk):  # type: ignore[override]
        scale = 1.0 / max(int((labels != uld.IGNORE_INDEX).sum()), 1)
        need_w = ctx.needs_input_grad[1]
        grad_h = torch.empty_like(hidden)
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if need_w else None
        total = hidden.new_zeros((), dtype=torch.float32)
        for s in range(0, hidden.shape[0], chunk):
            h = hidden[s : s + chunk]
            x = h @ weight.t()
            part, lse, lab, w = _ce_chunk(x, labels[s : s + chunk], scale)
            total += part
            g = uld.scaled_softmax(x, lse, w, out=x)  # in place: the chunk's logits become their gradient
            g.scatter_add_(1, lab[:, None], -w[:, None].to(g.dtype))
            grad_h[s : s + chunk] = g @ weight
            if grad_w is not None:
                grad_w += (g.t() @ h).float()
        ctx.save_for_backward(grad_h, None if grad_w is None else grad_w.to(weight.dtype))
        return total * scale

    @staticmethod
    def backward(ctx, g_loss):  # type: ignore[override]
        grad_h, grad_w = ctx.saved_tensors
        if g_loss.item() != 1.0:
            grad_h = grad_h * g_loss.to(grad_h.dtype)
            grad_w = None if grad_w is None else grad_w * g_loss.to(grad_w.dtype)
        return grad_h, grad_w, None, None


def fused_linear_ce(hidden, weight, labels, chunk_tokens=None):
    chunk = chunk_tokens or uld.auto_chunk_tokens(weight.shape[0], uld._fast(hidden))
    return FusedLinearCE.apply(hidden, weight, labels, chunk)


def chunked_ce(logits, labels, chunk_tokens=None):
    chunk = chunk_tokens or uld.auto_chunk_tokens(logits.shape[1], uld._fast(logits))
    return ChunkedCE.apply(logits, labels, chunk)


# ----------------------------------------------------------------------------------------------------------
# Timing


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def measure(step, device, reps, warmup, prep=None, device_time=False) -> dict:
    """Median, min and max milliseconds of step() over reps runs after warmup; on CUDA the most it allocates
    beyond what was allocated before it (GB). ``prep()`` runs before each call, outside the timing.
    ``device_time``: each call queued behind a sleep on the GPU, so the host's work is not counted."""
    cuda = device.type == "cuda"
    for _ in range(warmup):
        if prep:
            prep()
        step()
    extra = None
    if cuda:
        torch.cuda.synchronize()
        if prep:
            prep()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize()
        extra = (torch.cuda.max_memory_allocated(device) - base) / 1e9
    times = []
    for _ in range(reps):
        if prep:
            prep()
        times.append(timed_ms(step, cuda, behind_device_sleep=device_time)[1])
    return {
        "ms": statistics.median(times),
        "ms_min": min(times),
        "ms_max": max(times),
        "times": times,
        "extra_gb": extra,
    }


def ceilings(device, reps: int) -> dict:
    """A large device-to-device copy (GB/s, bytes read + written) and a bf16 matrix product (TFLOP/s), measured."""
    if device.type != "cuda":
        return {"copy_gbs": None, "matmul_tflops": None}
    src = torch.randn(2**30, device=device, dtype=torch.bfloat16)  # 2 GiB
    dst = torch.empty_like(src)
    copy = measure(lambda: dst.copy_(src), device, max(reps, 20), 3)
    src = dst = None  # free (the lambda above holds them)
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    mm = measure(lambda: a @ b, device, max(reps, 20), 3)
    a = b = None
    _free()
    return {
        "copy_gbs": 2 * 2**31 / (copy["ms"] / 1e3) / 1e9,
        "copy_ms": copy["ms"],
        "matmul_tflops": 2 * 8192**3 / (mm["ms"] / 1e3) / 1e12,
        "matmul_ms": mm["ms"],
    }


# ----------------------------------------------------------------------------------------------------------


def run_shape(n, vs, dim, vt, k, sigma, device, args, ceil) -> list[dict]:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    esize = torch.finfo(dtype).bits // 8
    g = torch.Generator(device=device).manual_seed(0)
    hidden = torch.randn(n, dim, device=device, generator=g).to(dtype)
    weight = (torch.randn(vs, dim, device=device, generator=g) * (sigma / dim**0.5)).to(dtype)
    logits = (hidden @ weight.t()).detach()
    teacher = (torch.randn(n, vt, device=device, generator=g) * sigma).to(dtype)
    labels = torch.randint(0, vs, (n,), device=device, generator=g)
    q, tail, _ = uld.teacher_topk(teacher, k)
    q, tail = q.half(), tail.half()
    cache_bytes = q.numel() * 2 + tail.numel() * 2
    logit_bytes = 2 * n * vs * esize + cache_bytes  # read the logits, write their gradient, read the cache
    hidden_bytes = 2 * n * dim * esize + vs * dim * esize + cache_bytes
    mm_flops = 4 * n * vs * dim  # logits = h W^T, then grad_h = g W
    leaf = logits.clone().requires_grad_()
    h_leaf = hidden.clone().requires_grad_()
    rows: list[dict] = []

    def add(method, family, is_ce, step, bytes_min, flops=None, prep=None):
        row = {"tokens": n, "student_vocab": vs, "hidden": dim, "teacher_vocab": vt, "k": k, "method": method}
        row.update(family=family, ce_only=is_ce, bytes_min=bytes_min, flops=flops)
        try:
            row.update(measure(step, device, args.reps, args.warmup, prep))
            if prep:
                prep()
            row["loss"] = float(step())
        except torch.OutOfMemoryError:
            row.update(oom=True, ms=None, extra_gb=None, loss=None)
        _free()
        rows.append(row)
        print(f"  {method:<34} {row['ms']!s:>24} ms  extra={row['extra_gb']}  loss={row['loss']}", flush=True)

    def grad_of(loss_fn, x):
        def step():
            loss = loss_fn()
            torch.autograd.grad(loss, x)
            return loss.detach()

        return step

    # logits in, gradient to the logits
    if not args.skip_reference:
        add(
            "(a) reference, online (incl. teacher softmax+sort)", "logits", False,
            grad_of(lambda: reference_loss(leaf, teacher_sorted(teacher), labels), leaf),
            logit_bytes - cache_bytes + n * vt * esize,
        )  # fmt: skip
        try:
            t_sorted = teacher_sorted(teacher)
            add(
                "(a') reference, teacher pre-sorted", "logits", False,
                grad_of(lambda: reference_loss(leaf, t_sorted, labels), leaf),
                logit_bytes - cache_bytes + n * vt * 4,
            )  # fmt: skip
            t_sorted = None
        except torch.OutOfMemoryError:
            pass
        _free()
    teacher = None  # free it: no method below reads it
    add("(b) plain top-k (torch, cached top-k)", "logits", False,
        grad_of(lambda: plain_topk_loss(leaf, labels, q, tail, k), leaf), logit_bytes)  # fmt: skip
    add("(c) chunked (uld.distill_loss)", "logits", False,
        grad_of(lambda: uld.distill_loss(leaf, labels, q, tail, top_k=k).loss, leaf), logit_bytes)  # fmt: skip
    if uld_kernel.available(logits):
        uld.FUSED_ULD = True
        add("(c) chunked, fused kernel (FUSED_ULD on)", "logits", False,
            grad_of(lambda: uld.distill_loss(leaf, labels, q, tail, top_k=k).loss, leaf), logit_bytes)  # fmt: skip
        uld.FUSED_ULD = False
        out_k = torch.empty_like(logits)
        coef = torch.full((n,), 1.0 / n, device=device)

        def kernel_alone():
            got = uld_kernel.ce_uld_grad(logits, labels, q, tail, coef, coef, k, out_k)
            return float("nan") if got is None else got[0].mean() + got[1].mean()

        add("(c) the fused kernel alone (one launch)", "logits", False, kernel_alone, logit_bytes)
        out_k = None
    add("plain CE (logits.float())", "logits", True,
        grad_of(lambda: F.cross_entropy(leaf.float(), labels), leaf), logit_bytes - cache_bytes)  # fmt: skip
    add("chunked CE (ours, no ULD)", "logits", True,
        grad_of(lambda: chunked_ce(leaf, labels), leaf), logit_bytes - cache_bytes)  # fmt: skip
    if liger_cross_entropy is not None and device.type == "cuda":
        scratch = logits.clone().requires_grad_()  # Liger writes the gradient into its input: refill before each run

        def liger_prep():
            with torch.no_grad():
                scratch.copy_(logits)

        add("(d) Liger CE (logits, in place)", "logits", True,
            grad_of(lambda: liger_cross_entropy(scratch, labels), scratch), logit_bytes - cache_bytes,
            prep=liger_prep)  # fmt: skip
        scratch = None
    leaf = logits = None
    _free()

    # hidden states in, gradient to the hidden states
    add("fused (uld.fused_linear_distill_loss)", "hidden", False,
        grad_of(lambda: uld.fused_linear_distill_loss(h_leaf, weight, labels, q, tail, top_k=k).loss, h_leaf),
        hidden_bytes, mm_flops)  # fmt: skip
    if uld_kernel.available(h_leaf):
        uld.FUSED_ULD = True
        add("fused, fused kernel (FUSED_ULD on)", "hidden", False,
            grad_of(lambda: uld.fused_linear_distill_loss(h_leaf, weight, labels, q, tail, top_k=k).loss, h_leaf),
            hidden_bytes, mm_flops)  # fmt: skip
        uld.FUSED_ULD = False
    add("fused CE (ours, no ULD)", "hidden", True,
        grad_of(lambda: fused_linear_ce(h_leaf, weight, labels), h_leaf),
        hidden_bytes - cache_bytes, mm_flops)  # fmt: skip
    if liger_fused_linear_cross_entropy is not None and device.type == "cuda":
        add("(d) Liger FLCE (CE only)", "hidden", True,
            grad_of(lambda: liger_fused_linear_cross_entropy(h_leaf, weight, labels), h_leaf),
            hidden_bytes - cache_bytes, mm_flops)  # fmt: skip
    add("plain CE (hidden, logits.float())", "hidden", True,
        grad_of(lambda: F.cross_entropy((h_leaf @ weight.t()).float(), labels), h_leaf),
        hidden_bytes - cache_bytes, mm_flops)  # fmt: skip

    for r in rows:  # derived columns
        ms = r.get("ms")
        r["gbs"] = None if not ms else r["bytes_min"] / (ms / 1e3) / 1e9
        r["pct_copy"] = None if r["gbs"] is None or not ceil["copy_gbs"] else 100 * r["gbs"] / ceil["copy_gbs"]
        floor = r["bytes_min"] / args.bw_spec / 1e9 * 1e3
        if r["flops"] and ceil["matmul_tflops"]:
            floor = max(floor, r["flops"] / (ceil["matmul_tflops"] * 1e12) * 1e3)
        r["floor_ms"] = floor
        r["tflops"] = None if not (ms and r["flops"]) else r["flops"] / (ms / 1e3) / 1e12
        base_name = {
            "(a) reference, online (incl. teacher softmax+sort)": "plain CE (logits.float())",
            "(a') reference, teacher pre-sorted": "plain CE (logits.float())",
            "(b) plain top-k (torch, cached top-k)": "plain CE (logits.float())",
            "(c) chunked (uld.distill_loss)": "chunked CE (ours, no ULD)",
            "(c) chunked, fused kernel (FUSED_ULD on)": "chunked CE (ours, no ULD)",
            "(c) the fused kernel alone (one launch)": "chunked CE (ours, no ULD)",
            "fused (uld.fused_linear_distill_loss)": "fused CE (ours, no ULD)",
            "fused, fused kernel (FUSED_ULD on)": "fused CE (ours, no ULD)",
        }.get(r["method"])
        base = next((b for b in rows if b["method"] == base_name), None)
        r["vs"] = base_name
        ok = base is not None and r.get("extra_gb") is not None and base.get("extra_gb") is not None
        r["uld_extra_gb"] = r["extra_gb"] - base["extra_gb"] if ok else None
        r["uld_extra_ms"] = r["ms"] - base["ms"] if base is not None and r.get("ms") and base.get("ms") else None
    return rows


# ----------------------------------------------------------------------------------------------------------
# --kernel-sweep: train/uld_kernel.py's passes against the plain path, the floor and a copy of the same bytes


def kernel_sweep(n, vs, dim, vt, k, sigma, device, args) -> list[dict]:
    """Check the fused kernel against the plain path on these logits, then time both, each pass (by stopping
    after it: the times are cumulative), a copy of the logits (the floor's bytes) and the kernel's settings."""
    g = torch.Generator(device=device).manual_seed(0)
    hidden = torch.randn(n, dim, device=device, generator=g).to(torch.bfloat16)
    weight = (torch.randn(vs, dim, device=device, generator=g) * (sigma / dim**0.5)).to(torch.bfloat16)
    logits = (hidden @ weight.t()).detach()
    q, tail, _ = uld.teacher_topk(torch.randn(n, vt, device=device, generator=g) * sigma, k)
    q, tail = q.half(), tail.half()
    labels = torch.randint(0, vs, (n,), device=device, generator=g)
    floor_bytes = 2 * n * vs * 2 + q.numel() * 2 + tail.numel() * 2
    out = torch.empty_like(logits)
    coef = torch.full((n,), 1.0 / n, device=device)
    rows: list[dict] = []

    # correctness on these logits: the kernel against uld._chunk's plain path, the same rows and coefficients
    m = min(n, 512)
    x, lab, qq, tt, w = logits[:m], labels[:m], q[:m].float(), tail[:m].float(), coef[:m]
    uld.FUSED_ULD = False
    ce_sum, dist_sum, want = uld._chunk(x, lab, qq, tt, None, torch.ones_like(w, dtype=torch.bool), "uld", k, 1.0,
                                        1.0 / n, 1.0 / n, True)  # fmt: skip
    got = uld_kernel.ce_uld_grad(x, lab, qq, tt, w, w, k, out[:m])
    check = {"rows": m, "not_taken": got is None, "slow_rows (listed, whole)": uld_kernel.slow_rows()}
    if got is not None:
        gw, gg = out[:m].float(), want.float()
        check.update(
            ce_rel=abs(float(got[0].sum()) - float(ce_sum)) / abs(float(ce_sum)),
            uld_rel=abs(float(got[1].sum()) - float(dist_sum)) / abs(float(dist_sum)),
            grad_rel_norm=float((gw - gg).norm() / gg.norm()),
            grad_entries_differing=int((gw != gg).sum()),
        )
    print(f"  check against the plain path: {check}", flush=True)

    def add(method, step, note="", device_time=False):
        row = {"tokens": n, "student_vocab": vs, "k": k, "method": method, "note": note, "bytes_min": floor_bytes}
        row.update(measure(step, device, args.reps, args.warmup, device_time=device_time))
        rows.append(row)
        print(f"  {method:<52} {row['ms']:.3f} ms", flush=True)

    def grad_of(loss_fn, leaf):
        return lambda: torch.autograd.grad(loss_fn(), leaf)

    def kernel_alone():
        return uld_kernel.ce_uld_grad(logits, labels, q, tail, coef, coef, k, out)

    def kernel_notes():
        return "(name, registers, spills): " + str([
            (k.name, getattr(k, "n_regs", None), getattr(k, "n_spills", None))
            for k in {k.name: k for k in uld_kernel._LAST[0]}.values()])  # fmt: skip

    leaf = logits.clone().requires_grad_()
    add("copy of the logits (read + write: the floor's bytes)", lambda: out.copy_(logits))
    add("copy of the logits, device time", lambda: out.copy_(logits), device_time=True)
    logits_step = grad_of(lambda: uld.distill_loss(leaf, labels, q, tail, top_k=k).loss, leaf)
    add("(c) plain path (uld.distill_loss)", logits_step)
    uld.FUSED_ULD = True
    add("(c) uld.distill_loss, FUSED_ULD on", logits_step)
    try:  # where the step's time goes beyond the kernel's passes
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            logits_step()
            torch.cuda.synchronize()
        args.out.mkdir(parents=True, exist_ok=True)
        table_text = prof.key_averages().table(sort_by="device_time_total", row_limit=15)
        (args.out / f"profile-fused-{n}x{vs}.txt").write_text(table_text)
    except Exception as exc:  # the profiler is a diagnostic only
        print(f"  profiler failed: {exc!r}")
    uld.FUSED_ULD = False
    add("the fused kernel alone", kernel_alone, kernel_notes())
    add("the fused kernel alone, device time", kernel_alone, kernel_notes(), device_time=True)
    for stop, what in ((1, "stats only"), (2, "stats and select"), (3, "stats, select, dense")):
        uld_kernel._STOP_AFTER = stop
        add(f"  kernel, {what} (cumulative), device time", kernel_alone, device_time=True)
    uld_kernel._STOP_AFTER = 4
    add("chunked CE (ours, no ULD)", grad_of(lambda: chunked_ce(leaf, labels), leaf))
    h_leaf = hidden.clone().requires_grad_()
    hidden_step = grad_of(lambda: uld.fused_linear_distill_loss(h_leaf, weight, labels, q, tail, top_k=k).loss, h_leaf)
    add("fused (hidden), plain path", hidden_step)
    uld.FUSED_ULD = True
    add("fused (hidden), FUSED_ULD on", hidden_step)
    uld.FUSED_ULD = False
    add("fused CE (hidden, ours, no ULD)", grad_of(lambda: fused_linear_ce(h_leaf, weight, labels), h_leaf))

    names = ("BLOCK_V", "TILE", "NUM_WARPS", "GROUP", "SELECT_WARPS", "STEP_BITS", "GRAD_BLOCK", "GRAD_WARPS")
    default = {name: getattr(uld_kernel, name) for name in names}
    for change in [
        {"STEP_BITS": 2, "SELECT_WARPS": 8, "GROUP": 32}, {"STEP_BITS": 2}, {"SELECT_WARPS": 2}, {"SELECT_WARPS": 8},
        {"GROUP": 32}, {"GROUP": 128}, {"TILE": 4096},
    ]:  # fmt: skip
        for name, value in change.items():
            setattr(uld_kernel, name, value)
        add("kernel alone, " + ", ".join(f"{a} {b}" for a, b in change.items()) + ", device time", kernel_alone,
            device_time=True)  # fmt: skip
        rows[-1]["note"] = kernel_notes()
        print(f"    {rows[-1]['note']}", flush=True)
        for name, value in default.items():
            setattr(uld_kernel, name, value)

    copy_ms = rows[0]["ms"]
    for r in rows:
        r["gbs"] = floor_bytes / (r["ms"] / 1e3) / 1e9
        r["pct_copy"] = 100 * copy_ms / r["ms"]
        r["pct_floor"] = 100 * (floor_bytes / args.bw_spec / 1e9 * 1e3) / r["ms"]
        r["check"] = check
    return rows


def sweep_table(rows: list[dict], head: str) -> str:
    lines = [
        head,
        "",
        "| tokens | vocab | method | ms | min-max | GB/s | % of copy speed | % of floor speed |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['tokens']:,} | {r['student_vocab']:,} | {r['method'].strip()} | {r['ms']:.3f} | "
            f"{r['ms_min']:.3f}-{r['ms_max']:.3f} | {r['gbs']:,.0f} | {r['pct_copy']:.1f}% | {r['pct_floor']:.1f}% |"
        )
    return "\n".join(lines)


def table(rows: list[dict], head: str) -> str:
    def f(v, spec):
        return "-" if v is None else format(v, spec)

    lines = [
        head,
        "",
        "| tokens | vocab | method | ms (median) | min-max | GB min | GB/s | % copy | TFLOP/s | floor ms | x floor "
        "| extra GB | ULD extra GB | ULD extra ms | vs (same step without ULD) | loss |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        if r.get("oom"):
            lines.append(f"| {r['tokens']:,} | {r['student_vocab']:,} | {r['method']} | OOM |" + " - |" * 12)
            continue
        lines.append(
            f"| {r['tokens']:,} | {r['student_vocab']:,} | {r['method']} | {r['ms']:.2f} | "
            f"{r['ms_min']:.2f}-{r['ms_max']:.2f} | {r['bytes_min'] / 1e9:.3f} | {f(r['gbs'], ',.0f')} | "
            f"{f(r['pct_copy'], '.1f')} | {f(r['tflops'], '.0f')} | {r['floor_ms']:.3f} | "
            f"{r['ms'] / r['floor_ms']:.1f} | {f(r['extra_gb'], '.3f')} | {f(r['uld_extra_gb'], '+.3f')} | "
            f"{f(r['uld_extra_ms'], '+.2f')} | {r['vs'] or '-'} | {r['loss']:.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, nargs="+", help="tokens per step (default: GPU 2048 8192, CPU 128)")
    ap.add_argument("--student", nargs="+", default=["49152:576", "151936:896"], help="student VOCAB:HIDDEN pairs")
    ap.add_argument("--teacher-vocab", type=int, default=262_144, help="Gemma 3's vocabulary")
    ap.add_argument("--k", type=int, default=256)
    ap.add_argument("--sigma", type=float, default=6.0, help="std of the random logits (peakedness)")
    ap.add_argument("--reps", type=int, default=None, help="timed runs (default: GPU 10, CPU 3)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--bw-spec", type=float, default=4800.0, help="datasheet memory bandwidth, GB/s (H200: 4,800)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--kernel-sweep", action="store_true", help="only train/uld_kernel.py, checked and timed")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    tokens = args.tokens or ([2048, 8192] if cuda else [128])
    args.reps = args.reps or (10 if cuda else 3)
    name = torch.cuda.get_device_name(device) if cuda else f"CPU ({platform.processor() or platform.machine()})"
    liger = "not installed"
    if liger_cross_entropy is not None:
        from importlib.metadata import version

        liger = version("liger-kernel")
    print(f"{name}, torch {torch.__version__}, liger-kernel {liger}", flush=True)
    if args.kernel_sweep:
        return sweep_main(args, device, tokens, name)
    uld.FUSED_ULD = False  # "(c) chunked" and "fused" are the plain path; the "FUSED_ULD on" rows turn the kernel on
    ceil = ceilings(device, args.reps)
    print(f"ceilings measured: {ceil}", flush=True)
    rows = []
    for vs, dim in (tuple(map(int, p.split(":"))) for p in args.student):
        for n in tokens:
            print(
                f"tokens={n} student_vocab={vs} hidden={dim} teacher_vocab={args.teacher_vocab} k={args.k}", flush=True
            )
            rows += run_shape(n, vs, dim, args.teacher_vocab, args.k, args.sigma, device, args, ceil)
    head = (
        f"Device: {name}; torch {torch.__version__}; liger-kernel {liger}; k = {args.k}; teacher vocab "
        f"{args.teacher_vocab:,}; medians of {args.reps} runs after {args.warmup} warm-ups. Measured ceilings: "
        f"copy {ceil['copy_gbs'] or 0:,.0f} GB/s, bf16 matmul {ceil['matmul_tflops'] or 0:,.0f} TFLOP/s; floor at "
        f"{args.bw_spec:,.0f} GB/s. Command: python benchmarks/uld_like_for_like.py {' '.join(sys.argv[1:])}".rstrip()
    )
    text = table(rows, head)
    print("\n" + text)
    args.out.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    path = args.out / f"uld_like_for_like-{slug}.json"
    meta = {"device": name, "torch": torch.__version__, "liger_kernel": liger, "ceilings": ceil, "argv": sys.argv[1:]}
    path.write_text(json.dumps({"meta": meta, "results": rows, "table": text}, indent=2) + "\n")
    print(f"\nwrote {path}")


def sweep_main(args, device, tokens, name) -> None:
    rows = []
    for vs, dim in (tuple(map(int, p.split(":"))) for p in args.student):
        for n in tokens:
            print(f"tokens={n} student_vocab={vs} hidden={dim} k={args.k}", flush=True)
            rows += kernel_sweep(n, vs, dim, args.teacher_vocab, args.k, args.sigma, device, args)
    head = (
        f"Device: {name}; torch {torch.__version__}; k = {args.k}; medians of {args.reps} runs after {args.warmup} "
        f"warm-ups; floor at {args.bw_spec:,.0f} GB/s. Command: python benchmarks/uld_like_for_like.py "
        f"{' '.join(sys.argv[1:])}"
    )
    text = sweep_table(rows, head)
    print("\n" + text)
    args.out.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    path = args.out / f"uld_kernel_sweep-{slug}.json"
    path.write_text(json.dumps({"device": name, "argv": sys.argv[1:], "results": rows, "table": text}, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
