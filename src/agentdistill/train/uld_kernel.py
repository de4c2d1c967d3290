"""CE + ULD over one chunk of student logits in one Triton kernel: loss values and the gradient of the logits.

Experimental, off by default (uld.FUSED_ULD = False): on an H200 it is exact in float32 but SLOWER than
uld.py's plain path (two Triton passes + torch.topk + scatter): the kernel alone took 13.8 ms at 2,048 x
151,936 where the whole plain path took 6.2 ms; about 2% of the copy bandwidth (docs/results.md,
2026-12-04). Not profiled; the likely cause: one program walks a whole row four times, with a histogram, a
scan and a 2,048-element sort between barriers, and few programs fit on an SM, so it waits on latency.
Kept as the starting point for issue 30's item 4 (split each row over several programs; take the top-k
candidates from pass 1).

The math is train/uld.py's (its docstring derives the gradient); this is the same function for the common
case (kind "uld", temperature 1, a gradient wanted) written so that each row's logits are read a few times
from memory and its gradient written once, with no float32 copy, no torch.topk and no scatter:

  pass 1  max and log-sum-exp of the row (online)
  pass 2  histogram of (max - logit) in NB bins of 1/64 nat (the last bin takes everything 32 nats down):
          the first bin B where the running count reaches k bounds the row's top-k from below
  pass 3  the logits in bins <= B (the candidates, at most CAP) are compacted to a scratch row, then
          sorted in registers (value and index packed into one int64): the first k are the student's
          top-k, exactly; ULD, its per-rank signs and c = sum_j g_j p_j follow as in uld._uld_rows
  pass 4  grad_m = p_m (ce_w - a c) written for the whole row; then, at the k top indices and the label,
          the same value plus the sparse terms (a g_j p_j, and -ce_w at the label)

A row whose candidates overflow CAP (more than CAP logits within one bin width of the k-th largest: many
exact ties, or a nearly flat row) is flagged; ``ce_uld_grad`` then returns None and the caller uses the
plain path (uld._chunk) for the whole chunk. Ties at the k-th value may pick different indices than
torch.topk: the loss is the same, and either gradient is a valid subgradient of |p_(j) - q_(j)|.

CPU and CUDA without Triton: uld._chunk's plain torch path computes the same function (tests check both
against a float64 reference); this module is used only where ``available(x)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs
    triton = None

NB = 2048  # histogram bins
RANGE = 32.0  # nats below the row's max that the bins cover (exp(-32) ~ 1e-14 of the top probability)
BLOCK = 8192  # logits per loop step of a program (the fastest of 2048-8192 x 8-32 warps on an H200)
NUM_WARPS = 16
MAX_CAP = 8192  # the most candidates sorted in registers


def available(x: Tensor) -> bool:
    """Triton importable, a CUDA tensor, and a dtype the kernel computes in float32 (float64 keeps the plain path)."""
    return triton is not None and x.is_cuda and x.dtype in (torch.bfloat16, torch.float16, torch.float32)


def _cap(k: int) -> int:
    return max(2048, triton.next_power_of_2(2 * k))


def ce_uld_grad(
    x: Tensor, labels: Tensor, q: Tensor, q_tail: Tensor, a: Tensor, ce_w: Tensor, k: int, out: Tensor
) -> tuple[Tensor, Tensor] | None:
    """For logits ``x`` [c, V] (temperature 1), labels [c] (-100: no CE), teacher ``q`` [c, kq] sorted
    descending and ``q_tail`` [c]: write d loss / d x into ``out`` [c, V] (x's shape, unit column stride),
    where loss = sum_r ce_w[r] CE_r + a[r] ULD_r, and return (CE_r with 0 where no label, ULD_r), float32.
    None when a row's candidates overflowed (then ``out`` holds garbage and the caller must recompute)."""
    rows, vocab = x.shape
    ks, kq = min(k, vocab), q.shape[1]
    cap = _cap(max(ks, kq))
    if cap > MAX_CAP or kq == 0 or out.stride(-1) != 1:
        return None
    x = x if x.stride(-1) == 1 else x.contiguous()
    dev = x.device
    ce = torch.empty(rows, dtype=torch.float32, device=dev)
    uld_rows = torch.empty_like(ce)
    flag = torch.empty(rows, dtype=torch.int32, device=dev)
    cand_v = torch.empty(rows, cap, dtype=torch.float32, device=dev)
    cand_i = torch.empty(rows, cap, dtype=torch.int32, device=dev)
    q = q.float().contiguous()
    _ce_uld_kernel[(rows,)](
        x, x.stride(0), out, out.stride(0), labels.contiguous(), q, q.stride(0), q_tail.float().contiguous(),
        a.float().contiguous(), ce_w.float().contiguous(), ce, uld_rows, flag, cand_v, cand_i,
        vocab, NB / RANGE, K=ks, KQ=kq, CAP=cap, NB=NB, BLOCK=BLOCK, HAS_TAIL=ks < vocab, num_warps=NUM_WARPS,
    )  # fmt: skip
    if bool(flag.any()):
        return None
    return ce, uld_rows


if triton is not None:

    @triton.jit
    def _sortable(bits):
        # float32 bits -> int32 with the same order as the floats (negative floats: flip the magnitude bits);
        # the map is its own inverse
        return bits ^ ((bits >> 31) & 0x7FFFFFFF)

    @triton.jit
    def _ce_uld_kernel(
        x_ptr, x_stride, g_ptr, g_stride, lab_ptr, q_ptr, q_stride, qt_ptr, a_ptr, cw_ptr,
        ce_ptr, uld_ptr, flag_ptr, cv_ptr, ci_ptr, n_cols, bin_scale,
        K: tl.constexpr, KQ: tl.constexpr, CAP: tl.constexpr, NB: tl.constexpr, BLOCK: tl.constexpr,
        HAS_TAIL: tl.constexpr,
    ):  # fmt: skip
        row = tl.program_id(0).to(tl.int64)
        xrow = x_ptr + row * x_stride
        grow = g_ptr + row * g_stride
        offs = tl.arange(0, BLOCK)
        neg = float("-inf")

        # pass 1: max and log-sum-exp, an online (max, sum) per lane
        m = tl.full([BLOCK], neg, tl.float32)
        s = tl.zeros([BLOCK], tl.float32)
        for start in range(0, n_cols, BLOCK):
            cols = start + offs
            v = tl.load(xrow + cols, mask=cols < n_cols, other=neg).to(tl.float32)
            m_new = tl.maximum(m, v)
            shift = tl.where(m_new == neg, 0.0, m_new)
            s = s * tl.exp(m - shift) + tl.exp(v - shift)
            m = m_new
        top = tl.max(m, 0)
        lse = top + tl.log(tl.sum(s * tl.exp(m - top), 0))

        # pass 2: histogram of the distance below the max; padding (-inf) lands in the last bin
        hist = tl.zeros([NB], tl.int32)
        for start in range(0, n_cols, BLOCK):
            cols = start + offs
            v = tl.load(xrow + cols, mask=cols < n_cols, other=neg).to(tl.float32)
            hist += tl.histogram(tl.minimum((top - v) * bin_scale, NB - 1.0).to(tl.int32), NB)
        bins = tl.arange(0, NB)
        edge = tl.min(tl.where(tl.cumsum(hist, 0) >= K, bins, NB - 1), 0)  # the bin holding the k-th largest
        n_cand = tl.sum(tl.where(bins <= edge, hist, 0), 0)
        tl.store(flag_ptr + row, (n_cand > CAP).to(tl.int32))

        # pass 3: compact the candidates (bins <= edge) to this row's scratch, then sort them in registers
        cbase = row * CAP
        count = tl.sum(tl.zeros([BLOCK], tl.int32), 0)
        for start in range(0, n_cols, BLOCK):
            cols = start + offs
            v = tl.load(xrow + cols, mask=cols < n_cols, other=neg).to(tl.float32)
            sel = (tl.minimum((top - v) * bin_scale, NB - 1.0).to(tl.int32) <= edge) & (cols < n_cols)
            pos = count + tl.cumsum(sel.to(tl.int32), 0) - 1
            ok = sel & (pos < CAP)
            tl.store(cv_ptr + cbase + pos, v, mask=ok)
            tl.store(ci_ptr + cbase + pos, cols, mask=ok)
            count += tl.sum(sel.to(tl.int32), 0)
        tl.debug_barrier()
        r = tl.arange(0, CAP)
        cv = tl.load(cv_ptr + cbase + r, mask=r < n_cand, other=neg)
        ci = tl.load(ci_ptr + cbase + r, mask=r < n_cand, other=0)
        key = _sortable(cv.to(tl.int32, bitcast=True)).to(tl.int64)
        # the low half holds ~index, so that among equal values the lower index comes first (as torch.topk's)
        packed = tl.sort((key << 32) | ((~ci).to(tl.int64) & 0xFFFFFFFF), descending=True)
        vals = _sortable((packed >> 32).to(tl.int32)).to(tl.float32, bitcast=True)
        idx = ~((packed & 0xFFFFFFFF).to(tl.int32))

        # ULD on the top k (uld._uld_rows), CE, and the gradient's per-row coefficients
        in_k = r < K
        p = tl.where(in_k, tl.exp(vals - lse), 0.0)
        diff = p - tl.load(q_ptr + row * q_stride + r, mask=r < KQ, other=0.0)  # both sides zero-padded
        q_tail = tl.load(qt_ptr + row)
        if HAS_TAIL:
            tail_diff = tl.maximum(1.0 - tl.sum(p, 0), 0.0) - q_tail
            uld_row = tl.sum(tl.abs(diff), 0) + tl.abs(tail_diff)
            g = tl.where(diff > 0, 1.0, tl.where(diff < 0, -1.0, 0.0))
            g = g - tl.where(tail_diff > 0, 1.0, tl.where(tail_diff < 0, -1.0, 0.0))
        else:
            uld_row = tl.sum(tl.abs(diff), 0) + tl.abs(q_tail)
            g = tl.where(diff > 0, 1.0, tl.where(diff < 0, -1.0, 0.0))
        gp = tl.where(in_k, g * p, 0.0)
        a = tl.load(a_ptr + row)
        cw = tl.load(cw_ptr + row)
        coef = cw - a * tl.sum(gp, 0)
        lab = tl.load(lab_ptr + row)
        valid = lab >= 0
        lab = tl.maximum(lab, 0)
        x_lab = tl.load(xrow + lab).to(tl.float32)
        tl.store(ce_ptr + row, tl.where(valid, lse - x_lab, 0.0))
        tl.store(uld_ptr + row, uld_row)

        # pass 4: the dense part p_m * coef everywhere, then the k top entries and the label
        for start in range(0, n_cols, BLOCK):
            cols = start + offs
            v = tl.load(xrow + cols, mask=cols < n_cols, other=0.0).to(tl.float32)
            tl.store(grow + cols, (tl.exp(v - lse) * coef).to(g_ptr.dtype.element_ty), mask=cols < n_cols)
        tl.debug_barrier()  # the sparse stores below overwrite dense ones made by other threads
        lab_in = in_k & (idx == lab) & valid
        top_g = p * coef + a * gp - tl.where(lab_in, cw, 0.0)
        tl.store(grow + idx, top_g.to(g_ptr.dtype.element_ty), mask=in_k)
        lab_hits = tl.sum(lab_in.to(tl.int32), 0)  # 1 when the label is one of the top k (written just above)
        lab_g = tl.exp(x_lab - lse) * coef - cw
        tl.store(grow + lab, lab_g.to(g_ptr.dtype.element_ty), mask=valid & (lab_hits == 0))
