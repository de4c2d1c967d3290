"""CE + ULD over one chunk of student logits in four Triton launches: loss values and the gradient of the logits.

The math is train/uld.py's (its docstring derives the gradient); this is the same function for the common
case (kind "uld", temperature 1, a gradient wanted) written so that each row's logits are read twice and its
gradient written once, by many programs per row, with no float32 copy, no torch.topk and no scatter:

  1 partials  grid (blocks of BLOCK_V logits, rows). Each program walks its block four times, a tile of
              TILE logits at a time (from memory once, then from L2; a whole block held in registers cost so
              many registers that one program of 8 warps ran per SM, and the pass waited on latency): its max;
              its sum of exp (for the row's log-sum-exp) and the candidates for the row's top-k. The block is
              cut into groups of GROUP logits; the k-th largest group maximum is a lower bound of the block's
              k-th largest logit (the k largest group maxima are k distinct logits), so every logit >= that
              bound is a candidate: about k (1 + 1/32) of them for random logits and GROUP 8. The bound is
              found by a two-level histogram of the group maxima (64 bins of 2 nats below the block max, then
              64 sub-bins of the edge bin). Candidates (value, index) are appended to the row's list at offsets
              taken with an atomic add per tile.
  2 select    grid (rows). log-sum-exp from the partials; the same two-level histogram over the row's
              candidates (distance below the row max) bounds the row's k-th largest logit; the candidates
              above it (k plus a few) are sorted in registers (value and index in one int64): the first k are
              the student's top-k, exactly. ULD, its signs, c = sum_j g_j p_j, CE, the row's gradient
              coefficient (ce_w - a c) and the k + 1 sparse gradient entries (top k, label) follow.
  3 dense     grid (blocks, rows): grad = exp(x - lse) * coef, a pure stream (read x, write grad).
  4 sparse    grid (rows): the k top entries and the label overwritten with their full gradient.

Bytes: two reads of the logits from memory and one write of the gradient (the floor is one read and one
write), three more reads of each block from L2, and about 8 bytes a candidate (~0.05 GB at 2,048 x
151,936). The histograms use Triton's tl.histogram, whose cost grows with the bin count (a ballot per bit
and a popcount per bin and lane), hence two levels of 64 bins rather than one of 4,096.

A row whose candidates overflow their space (many exact ties near the k-th value, or rows far from random:
more than ~1.5 k candidates per block on average, or > CAP within one fine bin of the k-th value) is flagged;
``ce_uld_grad`` then returns None and the caller uses the plain path (uld._chunk) for the whole chunk. Ties
at the k-th value may pick different indices than torch.topk: the loss is the same, and either gradient is
a valid subgradient of |p_(j) - q_(j)|.

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

NB1 = 64  # coarse bins below the max
NB2 = 64  # fine bins inside the coarse bin that holds the k-th value
RANGE = 128.0  # nats below the max that the coarse bins cover (a peaked row's k-th logit can lie > 32 nats down)
BLOCK_V = 32768  # logits per program in pass 1
TILE = 2048  # logits in registers at a time in pass 1
GROUP = 8  # logits per group in pass 1 (fewer when k is large: at least 4 k groups a block)
NUM_WARPS = 4  # pass 1
SELECT_WARPS = 4  # pass 2
GRAD_BLOCK = 8192  # logits per program in pass 3
GRAD_WARPS = 16
MAX_CANDIDATES = 16384  # the most candidates of one row that pass 2 holds in registers
MAX_CAP = 4096  # the most candidates sorted in registers
_LAST: list = []  # the last call's compiled kernels (registers and spills: benchmarks/uld_like_for_like.py)
_STOP_AFTER = 4  # benchmarks/uld_like_for_like.py --kernel-sweep times passes 1..n by stopping early (returns None)


def available(x: Tensor) -> bool:
    """Triton importable, a CUDA tensor, and a dtype the kernel computes in float32 (float64 keeps the plain path)."""
    return triton is not None and x.is_cuda and x.dtype in (torch.bfloat16, torch.float16, torch.float32)


def ce_uld_grad(
    x: Tensor, labels: Tensor, q: Tensor, q_tail: Tensor, a: Tensor, ce_w: Tensor, k: int, out: Tensor
) -> tuple[Tensor, Tensor] | None:
    """For logits ``x`` [c, V] (temperature 1), labels [c] (-100: no CE), teacher ``q`` [c, kq] sorted
    descending and ``q_tail`` [c]: write d loss / d x into ``out`` [c, V] (x's shape, unit column stride),
    where loss = sum_r ce_w[r] CE_r + a[r] ULD_r, and return (CE_r with 0 where no label, ULD_r), float32.
    None when a row's candidates overflowed (then ``out`` holds garbage and the caller must recompute)."""
    rows, vocab = x.shape
    ks, kq = min(k, vocab), q.shape[1]
    if kq == 0 or out.stride(-1) != 1 or out.shape != x.shape or rows == 0:
        return None
    n_blocks = triton.cdiv(vocab, BLOCK_V)
    group = 1 << (max(1, min(GROUP, BLOCK_V // (4 * ks))).bit_length() - 1)  # a power of two
    # candidates a row may hold: ~1.15 k a full block for random logits, so 1.5 k; a short last block of fewer
    # than ~2 k groups keeps all its logits
    full, rest = divmod(vocab, BLOCK_V)
    last = rest if rest < 2 * ks * group else ks + ks // 2
    per_row = triton.next_power_of_2(max(full * (ks + ks // 2) + last, 2 * ks))
    cap = max(512, triton.next_power_of_2(2 * ks))
    if per_row > MAX_CANDIDATES or cap > MAX_CAP:
        return None
    x = x if x.stride(-1) == 1 else x.contiguous()
    dev = x.device
    f32 = dict(dtype=torch.float32, device=dev)
    part = torch.empty(2, rows, n_blocks, **f32)  # max, sum of exp
    count = torch.zeros(rows, dtype=torch.int32, device=dev)
    cand_v = torch.empty(rows, per_row, **f32)
    cand_i = torch.empty(rows, per_row, dtype=torch.int32, device=dev)
    top_v = torch.empty(rows, cap, **f32)
    top_i = torch.empty(rows, cap, dtype=torch.int32, device=dev)
    stats = torch.empty(4, rows, **f32)  # lse, coef, ce, uld
    flag = torch.empty(rows, dtype=torch.int32, device=dev)
    sparse_i = torch.empty(rows, ks + 1, dtype=torch.int32, device=dev)
    sparse_v = torch.empty(rows, ks + 1, **f32)
    q = q.float().contiguous()
    scale = NB1 / RANGE
    k1 = _partials_kernel[(n_blocks, rows)](
        x, x.stride(0), part[0], part[1], count, cand_v, cand_i, vocab, n_blocks, per_row, scale,
        K=ks, GT=TILE // group, GS=group, NT=BLOCK_V // TILE, NB1=NB1, NB2=NB2, num_warps=NUM_WARPS,
    )  # fmt: skip
    if _STOP_AFTER == 1:
        return None
    k2 = _select_kernel[(rows,)](
        x, x.stride(0), labels.contiguous(), q, q.stride(0), q_tail.float().contiguous(), a.float().contiguous(),
        ce_w.float().contiguous(), part[0], part[1], count, cand_v, cand_i, top_v, top_i,
        stats[0], stats[1], stats[2], stats[3], flag, sparse_i, sparse_v, n_blocks, per_row, scale,
        K=ks, KQ=kq, PER_ROW=per_row, CAP=cap, SP=triton.next_power_of_2(n_blocks), NB1=NB1, NB2=NB2,
        HAS_TAIL=ks < vocab, num_warps=SELECT_WARPS,
    )  # fmt: skip
    if _STOP_AFTER == 2:
        return None
    k3 = _dense_kernel[(triton.cdiv(vocab, GRAD_BLOCK), rows)](
        x, x.stride(0), out, out.stride(0), stats[0], stats[1], vocab, BLOCK=GRAD_BLOCK, num_warps=GRAD_WARPS
    )
    if _STOP_AFTER == 3:
        return None
    k4 = _sparse_kernel[(rows,)](
        out, out.stride(0), sparse_i, sparse_v, KS=ks + 1, KP=triton.next_power_of_2(ks + 1), num_warps=4
    )
    _LAST[:] = [k1, k2, k3, k4]
    if bool(flag.any()):
        return None
    return stats[2], stats[3]


if triton is not None:

    @triton.jit
    def _sortable(bits):
        # float32 bits -> int32 with the same order as the floats (negative floats: flip the magnitude bits);
        # the map is its own inverse
        return bits ^ ((bits >> 31) & 0x7FFFFFFF)

    @triton.jit
    def _kth_bins(d, K, scale, NB1: tl.constexpr, NB2: tl.constexpr):
        # d >= 0: distances below a max (+inf for padding). Two-level bins: b1 = floor(d * scale) (capped),
        # b2 = the fine bin inside b1 (0 above the edge bin, NB2 - 1 below it). Returns (b1, b2, e1, e2) such
        # that {b1 <= e1 and b2 <= e2} is the smallest such prefix of d holding >= K entries (all, when fewer).
        f = tl.minimum(d * scale, NB1 - 1.0)
        b1 = f.to(tl.int32)
        e1 = tl.min(tl.where(tl.cumsum(tl.histogram(b1, NB1), 0) >= K, tl.arange(0, NB1), NB1 - 1), 0)
        fine = tl.minimum((f - e1) * NB2, NB2 - 1.0).to(tl.int32)
        b2 = tl.where(b1 < e1, 0, tl.where(b1 == e1, fine, NB2 - 1))
        e2 = tl.min(tl.where(tl.cumsum(tl.histogram(b2, NB2), 0) >= K, tl.arange(0, NB2), NB2 - 1), 0)
        return b1, b2, e1, e2

    @triton.jit
    def _partials_kernel(
        x_ptr, x_stride, m_ptr, s_ptr, cnt_ptr, cv_ptr, ci_ptr, n_cols, n_blocks, per_row, scale,
        K: tl.constexpr, GT: tl.constexpr, GS: tl.constexpr, NT: tl.constexpr, NB1: tl.constexpr,
        NB2: tl.constexpr,
    ):  # fmt: skip
        # The block is NT tiles of GT groups of GS logits, walked four times: from memory once, then from L2
        # (a few tiles in registers at a time keep the registers, and so the programs per SM, at a useful level)
        blk = tl.program_id(0)
        row = tl.program_id(1).to(tl.int64)
        neg = float("-inf")
        xrow = x_ptr + row * x_stride
        offs = blk * (NT * GT * GS) + tl.arange(0, GT)[:, None] * GS + tl.arange(0, GS)[None, :]  # [GT, GS]
        mv = tl.full([GT, GS], neg, tl.float32)
        for t in range(NT):  # 1: the block's max
            cols = offs + t * (GT * GS)
            v = tl.load(xrow + cols, mask=cols < n_cols, other=neg, eviction_policy="evict_last")
            mv = tl.maximum(mv, v.to(tl.float32))
        m = tl.max(tl.max(mv, 1), 0)
        sv = tl.zeros([GT, GS], tl.float32)
        h1 = tl.zeros([NB1], tl.int32)
        for t in range(NT):  # 2: sum of exp; coarse histogram of the group maxima below m
            cols = offs + t * (GT * GS)
            v = tl.load(xrow + cols, mask=cols < n_cols, other=neg, eviction_policy="evict_last").to(tl.float32)
            sv += tl.exp(v - m)
            h1 += tl.histogram(tl.minimum((m - tl.max(v, 1)) * scale, NB1 - 1.0).to(tl.int32), NB1)
        s = tl.sum(tl.sum(sv, 1), 0)
        e1 = tl.min(tl.where(tl.cumsum(h1, 0) >= K, tl.arange(0, NB1), NB1 - 1), 0)
        h2 = tl.zeros([NB2], tl.int32)
        for t in range(NT):  # 3: fine histogram inside the coarse bin e1 (0: above it, NB2 - 1: below it)
            cols = offs + t * (GT * GS)
            v = tl.load(xrow + cols, mask=cols < n_cols, other=neg, eviction_policy="evict_last").to(tl.float32)
            f = tl.minimum((m - tl.max(v, 1)) * scale, NB1 - 1.0)
            b1 = f.to(tl.int32)
            fine = tl.minimum((f - e1) * NB2, NB2 - 1.0).to(tl.int32)
            h2 += tl.histogram(tl.where(b1 < e1, 0, tl.where(b1 == e1, fine, NB2 - 1)), NB2)
        e2 = tl.min(tl.where(tl.cumsum(h2, 0) >= K, tl.arange(0, NB2), NB2 - 1), 0)
        # >= K group maxima lie within (e1 + (e2 + 1) / NB2) / scale nats of m, so the block's K-th largest logit
        # does too: tau bounds it from below (1e-3 nats of slack for rounding; -inf when the bins ran out)
        tau = tl.where(e1 == NB1 - 1, neg, m - (e1 + (e2 + 1.0) / NB2) / scale - 1e-3)
        for t in range(NT):  # 4: append the logits >= tau to the row's candidates
            cols = offs + t * (GT * GS)
            ok = cols < n_cols
            v = tl.load(xrow + cols, mask=ok, other=neg, eviction_policy="evict_first").to(tl.float32)
            sel = (v >= tau) & ok
            per_group = tl.sum(sel.to(tl.int32), 1)
            n = tl.sum(per_group, 0)
            if n > 0:
                base = tl.atomic_add(cnt_ptr + row, n)  # this tile's place in the row's list
                pos = base + tl.cumsum(per_group, 0)[:, None] - per_group[:, None] + tl.cumsum(sel.to(tl.int32), 1) - 1
                keep = sel & (pos < per_row)
                tl.store(cv_ptr + row * per_row + pos, v, mask=keep)
                tl.store(ci_ptr + row * per_row + pos, cols, mask=keep)
        tl.store(m_ptr + row * n_blocks + blk, m)
        tl.store(s_ptr + row * n_blocks + blk, s)

    @triton.jit
    def _select_kernel(
        x_ptr, x_stride, lab_ptr, q_ptr, q_stride, qt_ptr, a_ptr, cw_ptr, m_ptr, s_ptr, cnt_ptr, cv_ptr, ci_ptr,
        tv_ptr, ti_ptr, lse_ptr, coef_ptr, ce_ptr, uld_ptr, flag_ptr, si_ptr, sv_ptr, n_blocks, per_row, scale,
        K: tl.constexpr, KQ: tl.constexpr, PER_ROW: tl.constexpr, CAP: tl.constexpr, SP: tl.constexpr,
        NB1: tl.constexpr, NB2: tl.constexpr, HAS_TAIL: tl.constexpr,
    ):  # fmt: skip
        row = tl.program_id(0).to(tl.int64)
        neg = float("-inf")
        b = tl.arange(0, SP)
        mb = tl.load(m_ptr + row * n_blocks + b, mask=b < n_blocks, other=neg)
        sb = tl.load(s_ptr + row * n_blocks + b, mask=b < n_blocks, other=0.0)
        top = tl.max(mb, 0)
        lse = top + tl.log(tl.sum(sb * tl.exp(mb - top), 0))

        # the row's k-th largest logit, bounded from below by the two-level histogram of its candidates
        total = tl.load(cnt_ptr + row)
        c = tl.arange(0, PER_ROW)
        cv = tl.load(cv_ptr + row * per_row + c, mask=c < total, other=neg)
        ci = tl.load(ci_ptr + row * per_row + c, mask=c < total, other=0)
        b1, b2, e1, e2 = _kth_bins(top - cv, K, scale, NB1, NB2)
        sel = (b1 <= e1) & (b2 <= e2) & (c < total)
        n_sel = tl.sum(sel.to(tl.int32), 0)
        tl.store(flag_ptr + row, ((total > per_row) | (n_sel > CAP)).to(tl.int32))
        pos = tl.cumsum(sel.to(tl.int32), 0) - 1
        tl.store(tv_ptr + row * CAP + pos, cv, mask=sel & (pos < CAP))
        tl.store(ti_ptr + row * CAP + pos, ci, mask=sel & (pos < CAP))
        tl.debug_barrier()
        r = tl.arange(0, CAP)
        tv = tl.load(tv_ptr + row * CAP + r, mask=r < n_sel, other=neg)
        ti = tl.load(ti_ptr + row * CAP + r, mask=r < n_sel, other=0)
        key = _sortable(tv.to(tl.int32, bitcast=True)).to(tl.int64)
        # the low half holds ~index, so that among equal values the lower index comes first (as torch.topk's)
        packed = tl.sort((key << 32) | ((~ti).to(tl.int64) & 0xFFFFFFFF), descending=True)
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
        x_lab = tl.load(x_ptr + row * x_stride + lab).to(tl.float32)
        tl.store(ce_ptr + row, tl.where(valid, lse - x_lab, 0.0))
        tl.store(uld_ptr + row, uld_row)
        tl.store(lse_ptr + row, lse)
        tl.store(coef_ptr + row, coef)

        # the sparse entries that pass 4 writes over pass 3's dense ones: the k top, then the label (-1: none)
        lab_in = in_k & (idx == lab) & valid
        top_g = p * coef + a * gp - tl.where(lab_in, cw, 0.0)
        tl.store(si_ptr + row * (K + 1) + r, idx, mask=in_k)
        tl.store(sv_ptr + row * (K + 1) + r, top_g, mask=in_k)
        lab_hits = tl.sum(lab_in.to(tl.int32), 0)  # 1 when the label is one of the top k (written just above)
        tl.store(si_ptr + row * (K + 1) + K, tl.where(valid & (lab_hits == 0), lab, -1))
        tl.store(sv_ptr + row * (K + 1) + K, tl.exp(x_lab - lse) * coef - cw)

    @triton.jit
    def _dense_kernel(x_ptr, x_stride, g_ptr, g_stride, lse_ptr, coef_ptr, n_cols, BLOCK: tl.constexpr):
        row = tl.program_id(1).to(tl.int64)
        cols = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = cols < n_cols
        v = tl.load(x_ptr + row * x_stride + cols, mask=mask, other=0.0).to(tl.float32)
        grad = tl.exp(v - tl.load(lse_ptr + row)) * tl.load(coef_ptr + row)
        tl.store(g_ptr + row * g_stride + cols, grad.to(g_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _sparse_kernel(g_ptr, g_stride, si_ptr, sv_ptr, KS: tl.constexpr, KP: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        j = tl.arange(0, KP)
        idx = tl.load(si_ptr + row * KS + j, mask=j < KS, other=-1)
        val = tl.load(sv_ptr + row * KS + j, mask=j < KS, other=0.0)
        tl.store(g_ptr + row * g_stride + idx, val.to(g_ptr.dtype.element_ty), mask=idx >= 0)
