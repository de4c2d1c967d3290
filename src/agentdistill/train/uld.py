"""Universal Logit Distillation (Boizard et al. 2024, arXiv:2402.12030): distillation across tokenizers.

A teacher and a student with different vocabularies cannot be compared token by token (their i-th
logits mean different things), so plain KL is undefined. ULD compares the *shapes* of the two
next-token distributions instead. With p = softmax(student / T) and q = softmax(teacher / T), each
sorted in descending order and the shorter one zero-padded to the longer vocabulary,

    ULD(p, q) = sum_i |p_(i) - q_(i)|

which is the closed form of the Wasserstein-1 distance between the two sorted distributions under the
ground cost |i - j| restricted to matching ranks (the paper's Eq. 4). It is averaged over the aligned
response tokens and added to cross-entropy:

    loss = CE(student, labels) + weight * mean_tokens ULD(p, q)

Top-k truncation: only the k largest probabilities of each side are kept and everything below rank k
becomes one tail bucket, p_tail = 1 - sum_{i<k} p_(i) (same for q). The loss becomes

    sum_{i<k} |p_(i) - q_(i)| + |p_tail - q_tail|

which is exact when k covers both vocabularies and otherwise a lower bound of the full sum (triangle
inequality on the tail). The student's gradient flows through its top-k values and through the tail,
which depends on them; the teacher needs only its k sorted probabilities and its tail mass, which is
why an offline cache of them (teacher_cache.py) is exact up to k.

Memory: nothing of size tokens x vocab is kept beyond one chunk of tokens. Both entry points run a
custom autograd.Function that computes, chunk by chunk, the loss *and its gradient* in the forward
pass (the chunk's logits are live then anyway), so the backward pass only scales a stored gradient:

- ``distill_loss(logits, ...)`` takes student logits that already exist ([N, V]); extra memory is one
  chunk plus the gradient of the logits.
- ``fused_linear_distill_loss(hidden, lm_head_weight, ...)`` takes the student's last hidden states and
  never builds the full logits (the recipe of Liger's fused linear cross-entropy): per chunk it forms
  logits = hidden @ W^T, the cross-entropy and ULD terms and d loss / d logits, and immediately folds
  that into d loss / d hidden (and d loss / d W when W is trained), so the peak extra memory is one
  chunk of logits whatever the number of tokens.

Gradient (derived once here, checked against autograd in tests/test_train_uld.py). For one token,
let S be the selected vocabulary entries (the student's top-k for ULD, the teacher's top-k ids for KL
and JSD), g_j = d loss / d p_j for j in S (zero elsewhere; the tail bucket 1 - sum_S p contributes
-d loss / d tail to each g_j), and c = sum_j g_j p_j. The softmax Jacobian gives

    d loss / d z_m = (p_m g_m - p_m c) / T

so the dense part is -c/T times the softmax and the sparse part is a scatter of p_j g_j / T over S.
For ULD, g_j = sign(p_(j) - q_(j)) - sign(p_tail - q_tail); for cross-entropy the familiar
softmax(z) - onehot(label).

Same-tokenizer pairs can use ``kind="kl"`` (forward KL(q || p)) or ``kind="jsd"`` (Jensen-Shannon) on
the teacher's top-k token ids plus the tail bucket, with the same chunking and gradient machinery.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from agentdistill.train import uld_kernel

IGNORE_INDEX = -100
LossKind = Literal["uld", "kl", "jsd"]

_EPS = 1e-12


class LossParts(NamedTuple):
    loss: Tensor  # ce + weight * distill; the only differentiable output
    ce: Tensor  # mean cross-entropy over labelled tokens (detached)
    distill: Tensor  # mean ULD / KL / JSD over tokens that have a teacher row (detached)


# ----------------------------------------------------------------------------------------------------------
# The two dense passes over a chunk of logits. Plain torch everywhere; on CUDA with Triton importable, one
# hand-written kernel each reads the (bf16) logits once and never makes a float32 copy of the chunk (1.8-2.7
# TB/s on an H100, about 10x the plain passes). Set FAST_KERNELS = False to time or debug the plain version.
# Top-k stays torch.topk: a two-stage blocked top-k measured slower on an H100 (benchmarks/README.md).

FAST_KERNELS = True
FUSED_ULD = True  # CE + ULD at temperature 1 through uld_kernel.py (faster on an H200: benchmarks/README.md)

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs have no Triton; the plain torch path is used
    triton = None


def _fast(x: Tensor) -> bool:
    return FAST_KERNELS and triton is not None and x.is_cuda


def _fused(x: Tensor, kind: str, temperature: float) -> bool:
    """Whether CE + ULD of ``x`` goes through uld_kernel.py (the gradient wanted too, and a shape it takes)."""
    return kind == "uld" and temperature == 1.0 and FUSED_ULD and _fast(x) and uld_kernel.available(x)


def auto_chunk_tokens(vocab_size: int, fast: bool = False) -> int:
    """Tokens per chunk: a [chunk, vocab] buffer of about 256 MiB in the input dtype on the fast path, and a
    float32 one of 128 MiB on the plain path (which makes about three float32 temporaries per chunk)."""
    return max(1, (2**27 if fast else 2**25) // vocab_size)


def row_lse(x: Tensor, temperature: float = 1.0) -> Tensor:
    """log sum_v exp(x_v / T) for each row of x [c, V] (any float dtype), in float32."""
    if not _fast(x):
        return torch.logsumexp(x.float() / temperature, dim=-1)
    x = x if x.stride(-1) == 1 else x.contiguous()
    out = torch.empty(x.shape[0], dtype=torch.float32, device=x.device)
    _lse_kernel[(x.shape[0],)](x, out, x.stride(0), x.shape[1], 1.0 / temperature, BLOCK=4096, num_warps=8)
    return out


def scaled_softmax(
    x: Tensor, lse: Tensor, coef: Tensor, temperature: float = 1.0, out: Tensor | None = None, accumulate: bool = False
) -> Tensor:
    """out_r = coef_r * softmax(x_r / T) (or out_r += ...), written in out's dtype (default: x's)."""
    out = torch.empty_like(x) if out is None else out
    if not _fast(x) or out.stride(-1) != 1:
        p = (x.float() / temperature - lse[:, None]).exp_().mul_(coef[:, None])
        return out.add_(p) if accumulate else out.copy_(p)
    x = x if x.stride(-1) == 1 else x.contiguous()
    rows, cols = x.shape
    grid = (rows, triton.cdiv(cols, 4096))
    _softmax_kernel[grid](
        x, lse, coef.float().contiguous(), out, x.stride(0), out.stride(0), cols, 1.0 / temperature,
        ACCUMULATE=accumulate, BLOCK=4096, num_warps=8,
    )  # fmt: skip
    return out


if triton is not None:

    @triton.jit
    def _lse_kernel(x_ptr, out_ptr, stride, n_cols, inv_t, BLOCK: tl.constexpr):
        # One program per row; an online (max, sum) per lane, so the row is read once.
        row = tl.program_id(0)
        base = x_ptr + row.to(tl.int64) * stride
        m = tl.full([BLOCK], float("-inf"), tl.float32)
        s = tl.zeros([BLOCK], tl.float32)
        for start in range(0, n_cols, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            v = tl.load(base + cols, mask=cols < n_cols, other=float("-inf")).to(tl.float32) * inv_t
            m_new = tl.maximum(m, v)
            shift = tl.where(m_new == float("-inf"), 0.0, m_new)  # a lane that has seen only padding
            s = s * tl.exp(m - shift) + tl.exp(v - shift)
            m = m_new
        top = tl.max(m, 0)
        total = tl.sum(s * tl.exp(m - top), 0)
        tl.store(out_ptr + row, top + tl.log(total))

    @triton.jit
    def _softmax_kernel(
        x_ptr, lse_ptr, coef_ptr, out_ptr, x_stride, out_stride, n_cols, inv_t,
        ACCUMULATE: tl.constexpr, BLOCK: tl.constexpr,
    ):  # fmt: skip
        row = tl.program_id(0)
        cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        mask = cols < n_cols
        v = tl.load(x_ptr + row.to(tl.int64) * x_stride + cols, mask=mask, other=0.0).to(tl.float32)
        p = tl.exp(v * inv_t - tl.load(lse_ptr + row)) * tl.load(coef_ptr + row)
        dst = out_ptr + row.to(tl.int64) * out_stride + cols
        if ACCUMULATE:
            p += tl.load(dst, mask=mask, other=0.0).to(tl.float32)
        tl.store(dst, p.to(dst.dtype.element_ty), mask=mask)


@torch.no_grad()
def teacher_topk(
    logits: Tensor, k: int, temperature: float = 1.0, *, chunk_tokens: int | None = None, return_ids: bool = False
) -> tuple[Tensor, Tensor, Tensor | None]:
    """The teacher's side of the loss: top-k of softmax(logits / T), sorted descending, and the tail mass.

    Returns float32 ``probs`` [N, min(k, V)], ``tail`` [N] = 1 - sum(probs) (exactly 0 when k >= V),
    and the token ``ids`` [N, min(k, V)] when ``return_ids`` (needed only by the same-tokenizer losses).
    """
    logits = logits.reshape(-1, logits.shape[-1])
    n, vocab = logits.shape
    kk = min(k, vocab)
    step = chunk_tokens or auto_chunk_tokens(vocab, _fast(logits))
    probs = logits.new_empty((n, kk), dtype=torch.float32)
    tail = logits.new_zeros((n,), dtype=torch.float32)
    ids = logits.new_empty((n, kk), dtype=torch.long) if return_ids else None
    for s in range(0, n, step):
        x = logits[s : s + step]
        lse = row_lse(x, temperature)
        vals, idx = x.topk(kk, dim=-1)
        p = (vals.float() / temperature - lse[:, None]).exp()
        probs[s : s + step] = p
        if kk < vocab:
            tail[s : s + step] = (1.0 - p.sum(-1)).clamp(min=0.0)
        if ids is not None:
            ids[s : s + step] = idx
    return probs, tail, ids


def _fold_teacher(q: Tensor, q_tail: Tensor, q_ids: Tensor | None, k: int) -> tuple[Tensor, Tensor, Tensor | None]:
    """Keep the teacher's first k columns; mass beyond rank k joins the tail bucket."""
    if q.shape[1] <= k:
        return q, q_tail, q_ids
    return q[:, :k], q_tail + q[:, k:].sum(-1), None if q_ids is None else q_ids[:, :k]


def _uld_rows(x: Tensor, lse_t: Tensor, t: float, q: Tensor, q_tail: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per-token ULD, the student's top-k indices, and p_j * dloss/dp_j on them."""
    vocab = x.shape[1]
    ks = min(k, vocab)
    vals, idx = x.topk(ks, dim=-1)  # sorted descending: the student's ranks (T > 0 keeps the order)
    p = (vals.float() / t - lse_t[:, None]).exp()
    width = max(ks, q.shape[1])  # the shorter side is zero-padded: its vocabulary has no more entries
    diff = F.pad(p, (0, width - ks)) - F.pad(q, (0, width - q.shape[1]))
    g = diff[:, :ks].sign()
    rows = diff.abs().sum(-1)
    if ks < vocab:  # the student has a tail bucket; it is 1 - sum(top-k), so it feeds back into every g_j
        tail_diff = (1.0 - p.sum(-1)).clamp(min=0.0) - q_tail
        rows = rows + tail_diff.abs()
        g = g - tail_diff.sign()[:, None]
    else:  # the student's whole vocabulary is in p: the teacher's tail faces zeros
        rows = rows + q_tail.abs()
    return rows, idx, g * p


def _kl_rows(
    x: Tensor, lse_t: Tensor, t: float, q: Tensor, q_tail: Tensor, ids: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Forward KL(q || p) over the teacher's top-k ids plus the tail bucket."""
    logp = x.gather(1, ids).float() / t - lse_t[:, None]
    p = logp.exp()
    p_tail = (1.0 - p.sum(-1)).clamp(min=_EPS)
    rows = (torch.xlogy(q, q) - q * logp).sum(-1) + torch.xlogy(q_tail, q_tail) - q_tail * p_tail.log()
    # dKL/dp_j = -q_j / p_j + q_tail / p_tail; multiplied by p_j without dividing by a tiny p_j
    gp = -q + p * (q_tail / p_tail)[:, None]
    return rows, ids, gp


def _jsd_rows(
    x: Tensor, lse_t: Tensor, t: float, q: Tensor, q_tail: Tensor, ids: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Jensen-Shannon divergence over the teacher's top-k ids plus the tail bucket (dJSD/dp_b = log(p_b/m_b)/2)."""
    logp = x.gather(1, ids).float() / t - lse_t[:, None]
    p = logp.exp()
    p_tail = (1.0 - p.sum(-1)).clamp(min=_EPS)
    m, m_tail = (p + q) / 2, (p_tail + q_tail) / 2

    def half_kl(a: Tensor, b: Tensor) -> Tensor:
        return 0.5 * (torch.xlogy(a, a) - torch.xlogy(a, b))

    rows = (half_kl(p, m) + half_kl(q, m)).sum(-1) + half_kl(p_tail, m_tail) + half_kl(q_tail, m_tail)
    g = torch.where(p > 0, 0.5 * (logp - m.clamp(min=_EPS).log()), torch.zeros_like(p))
    g_tail = 0.5 * (p_tail.log() - m_tail.log())
    return rows, ids, p * (g - g_tail[:, None])


def _chunk(
    x: Tensor,
    labels: Tensor,
    q: Tensor,
    q_tail: Tensor,
    q_ids: Tensor | None,
    has_teacher: Tensor,
    kind: LossKind,
    k: int,
    temperature: float,
    ce_scale: float,
    dist_scale: float,
    want_grad: bool,
    out: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Sums of the CE and distillation terms over one chunk of logits ``x`` [c, V] (any float dtype, not
    modified), and d(loss)/d(x), written into ``out`` (default: a new tensor of x's dtype). ``ce_scale`` and
    ``dist_scale`` are 1/n_ce and weight/n_distill, so the gradient is that of the final mean loss.
    """
    t = temperature
    valid = labels != IGNORE_INDEX
    if want_grad and _fused(x, kind, t):
        out = torch.empty_like(x) if out is None else out
        w = has_teacher.float()
        done = uld_kernel.ce_uld_grad(x, labels, q, q_tail, dist_scale * w, ce_scale * valid.float(), k, out)
        if done is not None:  # None: shapes the kernel does not take (decided without a sync); the plain path
            return done[0].sum(), (done[1] * w).sum(), out
    lab = labels.clamp(min=0)
    lse = row_lse(x)
    ce_sum = ((lse - x.gather(1, lab[:, None]).squeeze(1).float()) * valid).sum()
    lse_t = lse if t == 1.0 else row_lse(x, t)
    if kind == "uld":
        rows, idx, gp = _uld_rows(x, lse_t, t, q, q_tail, k)
    elif kind == "kl":
        rows, idx, gp = _kl_rows(x, lse_t, t, q, q_tail, q_ids)
    else:
        rows, idx, gp = _jsd_rows(x, lse_t, t, q, q_tail, q_ids)
    w = has_teacher.float()
    dist_sum = (rows * w).sum()
    if not want_grad:
        return ce_sum, dist_sum, None
    a = dist_scale * w / t  # per-row scale of the distillation gradient
    c = gp.sum(-1)
    ce_w = ce_scale * valid.float()
    if t == 1.0:  # one softmax serves both terms: grad = p * (ce_w - a c) + sparse parts
        grad = scaled_softmax(x, lse, ce_w - a * c, 1.0, out=out)
    else:
        grad = scaled_softmax(x, lse, ce_w, 1.0, out=out)
        scaled_softmax(x, lse_t, -a * c, t, out=grad, accumulate=True)
    grad.scatter_add_(1, idx, (gp * a[:, None]).to(grad.dtype))
    grad.scatter_add_(1, lab[:, None], -ce_w[:, None].to(grad.dtype))
    return ce_sum, dist_sum, grad


class _Opts(NamedTuple):
    kind: LossKind
    k: int
    temperature: float
    weight: float
    chunk: int


def _counts(labels: Tensor, has_teacher: Tensor) -> tuple[int, int]:
    return int((labels != IGNORE_INDEX).sum()), int(has_teacher.sum())


class _DistillFromLogits(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, labels, q, q_tail, q_ids, has_teacher, opts: _Opts):  # type: ignore[override]
        n_ce, n_dist = _counts(labels, has_teacher)
        ce_scale, dist_scale = 1.0 / max(n_ce, 1), opts.weight / max(n_dist, 1)
        want = ctx.needs_input_grad[0]
        grad = torch.empty_like(logits) if want else None
        ce_tot = logits.new_zeros((), dtype=torch.float32)
        dist_tot = logits.new_zeros((), dtype=torch.float32)
        for s in range(0, logits.shape[0], opts.chunk):
            e = s + opts.chunk
            ce_s, dist_s, _ = _chunk(
                logits[s:e], labels[s:e], q[s:e].float(), q_tail[s:e].float(), None if q_ids is None else q_ids[s:e],
                has_teacher[s:e], opts.kind, opts.k, opts.temperature, ce_scale, dist_scale, want,
                out=None if grad is None else grad[s:e],
            )  # fmt: skip
            ce_tot += ce_s
            dist_tot += dist_s
        ctx.save_for_backward(grad)
        ce, dist = ce_tot * ce_scale, dist_tot / max(n_dist, 1)
        ctx.mark_non_differentiable(ce, dist)
        return ce + opts.weight * dist, ce, dist

    @staticmethod
    def backward(ctx, g_loss, _g_ce, _g_dist):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        if g_loss.item() != 1.0:  # a pass over the [N, V] gradient is worth skipping for the usual loss.backward()
            grad = grad * g_loss.to(grad.dtype)
        return grad, None, None, None, None, None, None


class _FusedLinearDistill(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, labels, q, q_tail, q_ids, has_teacher, opts: _Opts):  # type: ignore[override]
        n_ce, n_dist = _counts(labels, has_teacher)
        ce_scale, dist_scale = 1.0 / max(n_ce, 1), opts.weight / max(n_dist, 1)
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_b = bias is not None and ctx.needs_input_grad[2]
        want = need_h or need_w or need_b
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if need_w else None
        grad_b = torch.zeros_like(bias, dtype=torch.float32) if need_b else None
        ce_tot = hidden.new_zeros((), dtype=torch.float32)
        dist_tot = hidden.new_zeros((), dtype=torch.float32)
        for s in range(0, hidden.shape[0], opts.chunk):
            e = s + opts.chunk
            h = hidden[s:e]
            logits = F.linear(h, weight, bias)
            ce_s, dist_s, g = _chunk(
                logits, labels[s:e], q[s:e].float(), q_tail[s:e].float(), None if q_ids is None else q_ids[s:e],
                has_teacher[s:e], opts.kind, opts.k, opts.temperature, ce_scale, dist_scale, want,
            )  # fmt: skip
            ce_tot += ce_s
            dist_tot += dist_s
            if g is None:
                continue
            if grad_h is not None:
                grad_h[s:e] = g @ weight.to(g.dtype)
            if grad_w is not None:
                grad_w += (g.t() @ h.to(g.dtype)).float()
            if grad_b is not None:
                grad_b += g.float().sum(0)
        grad_w = None if grad_w is None else grad_w.to(weight.dtype)
        grad_b = None if grad_b is None else grad_b.to(bias.dtype)
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        ce, dist = ce_tot * ce_scale, dist_tot / max(n_dist, 1)
        ctx.mark_non_differentiable(ce, dist)
        return ce + opts.weight * dist, ce, dist

    @staticmethod
    def backward(ctx, g_loss, _g_ce, _g_dist):  # type: ignore[override]
        grads = [None if g is None else g * g_loss.to(g.dtype) for g in ctx.saved_tensors]
        return (*grads, None, None, None, None, None, None)


def _prepare(
    n: int,
    vocab: int,
    labels: Tensor,
    teacher_probs: Tensor,
    teacher_tail: Tensor,
    teacher_mask: Tensor | None,
    teacher_ids: Tensor | None,
    kind: str,
    top_k: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor]:
    """Flatten the row-aligned inputs to [N, ...], check them, and fold teacher columns past top_k."""
    if kind not in ("uld", "kl", "jsd"):
        raise ValueError(f"unknown distillation loss {kind!r}: expected 'uld', 'kl' or 'jsd'")
    if kind != "uld" and teacher_ids is None:
        raise ValueError(f"kind={kind!r} compares token by token and needs teacher_ids (same tokenizer only)")
    labels = labels.reshape(-1)
    q = teacher_probs.reshape(-1, teacher_probs.shape[-1])
    q_tail = teacher_tail.reshape(-1)
    ids = None if teacher_ids is None else teacher_ids.reshape(-1, teacher_ids.shape[-1]).long()
    mask = torch.ones_like(labels, dtype=torch.bool) if teacher_mask is None else teacher_mask.reshape(-1).bool()
    sizes = {"labels": labels.shape[0], "teacher_probs": q.shape[0], "teacher_tail": q_tail.shape[0]}
    sizes["teacher_mask"] = mask.shape[0]
    bad = {name: rows for name, rows in sizes.items() if rows != n}
    if bad:
        raise ValueError(f"row mismatch: the student has {n} rows but {bad}")
    if ids is not None and ids.numel() and int(ids.max()) >= vocab:
        raise ValueError(f"teacher_ids reach token {int(ids.max())} but the student's vocabulary has {vocab} entries")
    q, q_tail, ids = _fold_teacher(q, q_tail, ids, top_k)
    return labels, q, q_tail, ids, mask


def distill_loss(
    student_logits: Tensor,
    labels: Tensor,
    teacher_probs: Tensor,
    teacher_tail: Tensor,
    teacher_mask: Tensor | None = None,
    *,
    teacher_ids: Tensor | None = None,
    kind: LossKind = "uld",
    top_k: int = 256,
    temperature: float = 1.0,
    weight: float = 1.0,
    chunk_tokens: int | None = None,
) -> LossParts:
    """CE + weight * distillation from student logits, row-aligned with the teacher.

    Shapes (leading dims are flattened): ``student_logits`` [N, V]; ``labels`` [N] with -100 where no
    CE applies (labels are already shifted: row i's logits predict labels[i]); ``teacher_probs``
    [N, >= min(top_k, V_teacher)] sorted descending (columns past ``top_k`` are folded into the tail);
    ``teacher_tail`` [N]; ``teacher_mask`` [N] marks rows that have a teacher distribution.
    """
    vocab = student_logits.shape[-1]
    logits = student_logits.reshape(-1, vocab)
    labels, q, q_tail, ids, mask = _prepare(
        logits.shape[0], vocab, labels, teacher_probs, teacher_tail, teacher_mask, teacher_ids, kind, top_k
    )
    # the fused kernel keeps nothing of the chunk's size beyond the gradient, so it takes every row at once
    whole = _fused(logits, kind, temperature) and uld_kernel.takes(logits.shape[0], vocab, top_k, q.shape[1])
    chunk = chunk_tokens or (max(1, logits.shape[0]) if whole else auto_chunk_tokens(vocab, _fast(logits)))
    opts = _Opts(kind, top_k, float(temperature), float(weight), chunk)
    return LossParts(*_DistillFromLogits.apply(logits, labels, q, q_tail, ids, mask, opts))


def fused_linear_distill_loss(
    hidden: Tensor,
    lm_head_weight: Tensor,
    labels: Tensor,
    teacher_probs: Tensor,
    teacher_tail: Tensor,
    teacher_mask: Tensor | None = None,
    *,
    lm_head_bias: Tensor | None = None,
    teacher_ids: Tensor | None = None,
    kind: LossKind = "uld",
    top_k: int = 256,
    temperature: float = 1.0,
    weight: float = 1.0,
    chunk_tokens: int | None = None,
) -> LossParts:
    """Same loss as ``distill_loss`` with logits = hidden @ lm_head_weight^T (+ bias), never built in full.

    ``hidden`` [N, d] (leading dims flattened), ``lm_head_weight`` [V, d]. Gradients reach ``hidden``
    and, when they require it, the weight and bias (a frozen LM head under LoRA costs nothing extra).
    """
    vocab, dim = lm_head_weight.shape
    h = hidden.reshape(-1, dim)
    labels, q, q_tail, ids, mask = _prepare(
        h.shape[0], vocab, labels, teacher_probs, teacher_tail, teacher_mask, teacher_ids, kind, top_k
    )
    chunk = chunk_tokens or auto_chunk_tokens(vocab, _fast(h))
    opts = _Opts(kind, top_k, float(temperature), float(weight), chunk)
    return LossParts(*_FusedLinearDistill.apply(h, lm_head_weight, lm_head_bias, labels, q, q_tail, ids, mask, opts))
