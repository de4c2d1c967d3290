"""CE + ULD over one chunk of student logits in four Triton passes: loss values and the gradient of the logits.

The math is train/uld.py's (its docstring derives the gradient); this is the same function for the common
case (kind "uld", temperature 1, a gradient wanted) written so that the logits are streamed from memory twice
and the gradient written once, with no float32 copy, no torch.topk, no scatter and no sync with the host:

  1 stats   grid (blocks of BLOCK_V logits, rows): each program streams its block once, TILE logits at a
            time, keeping a running max and sum of exp per group of GROUP logits (no reduction across the
            program's warps until the end), and writes every group's maximum to a small buffer (1/GROUP of
            the logits).
  2 select  grid (rows): the row's log-sum-exp from the blocks' partials, then its exact top K. The K largest
            group maxima are K distinct logits, so the row's K-th largest logit is at least the K-th largest
            group maximum t, and every logit >= t lies in a group whose maximum is >= t. t is found exactly
            by a search over the group maxima's order-preserving integer keys (held in registers; STEP_BITS
            bits of the key a pass); the groups whose maximum reaches it (K, and any ties) are gathered, and
            their logits >= t (a few percent more than K for random logits) sorted in registers (value and
            index in one int64): the first K are the top K. ULD, its signs, c = sum_j g_j p_j, CE, the row's
            gradient coefficient (ce_w - a c) and the K + 1 sparse gradient entries follow.
  3 dense   grid (blocks, rows): grad = exp(x - lse) * coef, a pure stream (read x, write grad).
  4 sparse  grid (rows): the K top entries and the label overwritten with their full gradient.

Bytes: two reads of the logits and one write of the gradient (the floor is one read and one write), the group
maxima (1/GROUP of the logits, written once and read once) and the chosen groups' logits (about K x GROUP a
row, mostly from L2).

A row whose candidates do not fit (ties: more than GCAP groups share the K-th group maximum, or more than CAP
logits reach it, as when the top K crowd into a few groups) is selected exactly the slow way in the same
program: the same search for the K-th largest key, counting over the listed groups' logits (or over the whole
row), then the logits above it and enough of those equal to it, lowest index first. So every row gets its
exact top K and the host never waits on a flag. Ties at the K-th value may pick other indices than
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

BLOCK_V = 16384  # logits per program in pass 1
TILE = 2048  # logits in registers at a time in pass 1 (and in the select's gathers)
GROUP = 64  # logits per group (fewer when the vocabulary holds fewer than 4 K groups of 64)
NUM_WARPS = 4  # pass 1
SELECT_WARPS = 4  # pass 2
STEP_BITS = 1  # the select's search for the K-th group maximum decides this many bits of its key per pass
GRAD_BLOCK = 8192  # logits per program in pass 3
GRAD_WARPS = 16
MAX_CAP = 4096  # the most candidates sorted in registers
MAX_GROUPS = 8192  # group maxima of a row held in registers by the select (groups grow for larger vocabularies)
# low bits of a float32 key that are zero for the input dtype (a bf16 logit in float32 has 16 zero low bits), so
# the search over keys decides 32 - SHIFT bits
_KEY_SHIFT = {torch.bfloat16: 16, torch.float16: 13, torch.float32: 0}
_LAST: list = []  # the last call's compiled kernels (registers and spills: benchmarks/uld_like_for_like.py)
_STOP_AFTER = 4  # benchmarks/uld_like_for_like.py --kernel-sweep times passes 1..n by stopping early (returns None)


def available(x: Tensor) -> bool:
    """Triton importable, a CUDA tensor, and a dtype the kernel computes in float32 (float64 keeps the plain path)."""
    return triton is not None and x.is_cuda and x.dtype in (torch.bfloat16, torch.float16, torch.float32)


def takes(rows: int, vocab: int, k: int, kq: int) -> bool:
    """Whether ce_uld_grad computes a chunk of this shape (top ``k`` of ``vocab``, ``kq`` teacher entries): the
    candidates of a row must fit the sort in registers."""
    return rows > 0 and kq > 0 and _sizes(vocab, min(k, vocab))[2] <= MAX_CAP


def _sizes(vocab: int, ks: int) -> tuple[int, int, int]:
    """(group, group capacity, candidate capacity): groups of a power of two logits, at least 4 K of them where
    the vocabulary allows and at most MAX_GROUPS; room for K and half again, in groups and in candidates."""
    group = 1 << (max(1, min(GROUP, vocab // (4 * ks))).bit_length() - 1)
    group = max(group, triton.next_power_of_2(triton.cdiv(vocab, MAX_GROUPS)))
    room = triton.next_power_of_2(ks + ks // 2)
    return group, max(64, room), max(512, room)


def ce_uld_grad(
    x: Tensor, labels: Tensor, q: Tensor, q_tail: Tensor, a: Tensor, ce_w: Tensor, k: int, out: Tensor
) -> tuple[Tensor, Tensor] | None:
    """For logits ``x`` [c, V] (temperature 1), labels [c] (-100: no CE), teacher ``q`` [c, kq] sorted
    descending and ``q_tail`` [c]: write d loss / d x into ``out`` [c, V] (x's shape, unit column stride),
    where loss = sum_r ce_w[r] CE_r + a[r] ULD_r, and return (CE_r with 0 where no label, ULD_r), float32.
    None, decided from the shapes alone, where the kernel does not apply (the caller takes the plain path)."""
    rows, vocab = x.shape
    ks, kq = min(k, vocab), q.shape[1]
    if not takes(rows, vocab, k, kq) or out.stride(-1) != 1 or out.shape != x.shape:
        return None
    group, gcap, cap = _sizes(vocab, ks)
    x = x if x.stride(-1) == 1 else x.contiguous()
    dev = x.device
    n_blocks = triton.cdiv(vocab, BLOCK_V)
    n_groups = triton.cdiv(vocab, group)
    # one float32 workspace, carved: (max, sum of exp) per block, then lse, coef, ce, uld per row, the sparse
    # entries' values, the candidates' values; one int32 workspace: the chosen groups, the candidates' indices,
    # the sparse entries' indices, the per-row flag of a slow selection
    fw = torch.empty(rows * (2 * n_blocks + 4 + ks + 1 + cap), dtype=torch.float32, device=dev)
    iw = torch.empty(rows * (gcap + cap + ks + 1 + 1), dtype=torch.int32, device=dev)
    part_m, part_s, stats, sparse_v, top_v = fw.split(
        [rows * n_blocks, rows * n_blocks, 4 * rows, rows * (ks + 1), rows * cap])
    gsel, top_i, sparse_i, slow_flag = iw.split([rows * gcap, rows * cap, rows * (ks + 1), rows])
    gmax = torch.empty(rows, n_groups, dtype=x.dtype, device=dev)
    # the teacher's values as stored (the select reads them as float32): no cast launches
    q = q if q.stride(-1) == 1 else q.contiguous()
    select_args = (
        x, x.stride(0), labels.contiguous(), q, q.stride(0), q_tail.contiguous(), a.contiguous(), ce_w.contiguous(),
        part_m, part_s, gmax, gsel, top_v, top_i, stats, sparse_i, sparse_v, slow_flag, vocab, n_blocks, n_groups,
        rows,
    )  # fmt: skip
    select_consts = dict(K=ks, KQ=kq, GS=group, GT=TILE // group, NGP=triton.next_power_of_2(n_groups), GCAP=gcap,
                         CAP=cap, SP=triton.next_power_of_2(n_blocks), SHIFT=_KEY_SHIFT[x.dtype], STEP_BITS=STEP_BITS,
                         HAS_TAIL=ks < vocab, num_warps=SELECT_WARPS)  # fmt: skip
    kernels = [_stats_kernel[(n_blocks, rows)](
        x, x.stride(0), part_m, part_s, gmax, vocab, n_blocks, n_groups, GS=group, GT=TILE // group,
        NT=BLOCK_V // TILE, num_warps=NUM_WARPS)]  # fmt: skip
    if _STOP_AFTER == 1:
        return None
    kernels.append(_select_kernel[(rows,)](*select_args, **select_consts))
    if _STOP_AFTER == 2:
        return None
    kernels.append(_dense_kernel[(triton.cdiv(vocab, GRAD_BLOCK), rows)](
        x, x.stride(0), out, out.stride(0), stats, rows, vocab, BLOCK=GRAD_BLOCK, num_warps=GRAD_WARPS))
    if _STOP_AFTER == 3:
        return None
    kernels.append(_sparse_kernel[(rows,)](
        out, out.stride(0), sparse_i, sparse_v, KS=ks + 1, KP=triton.next_power_of_2(ks + 1), num_warps=4))
    _LAST[:] = [kernels, slow_flag]
    return stats[2 * rows : 3 * rows], stats[3 * rows :]


def slow_rows() -> tuple[int, int]:
    """Rows of the last call selected by the slow search over their listed groups' logits, and over the whole row
    (syncs with the device; diagnostics only)."""
    if not _LAST:
        return 0, 0
    return int((_LAST[1] == 1).sum()), int((_LAST[1] == 2).sum())


if triton is not None:

    @triton.jit
    def _sortable(bits):
        # float32 bits -> int32 with the same order as the floats (negative floats: flip the magnitude bits);
        # the map is its own inverse
        return bits ^ ((bits >> 31) & 0x7FFFFFFF)

    @triton.jit
    def _kth_largest(keys, K, BITS: tl.constexpr, STEP_BITS: tl.constexpr):
        # the K-th largest of integer keys in [-2^(BITS-1), 2^(BITS-1)): the largest t with at least K keys >= t.
        # Each step splits [lo, hi) into 2^STEP_BITS parts and counts the keys above each cut in one pass (the
        # counts' reductions across the program overlap), keeping count(keys >= lo) >= K > count(keys >= hi)
        lo = tl.full([], -(2 ** (BITS - 1)), tl.int64)
        width = tl.full([], 2**BITS, tl.int64)
        for _ in range((BITS + STEP_BITS - 1) // STEP_BITS):
            width = (width + (2**STEP_BITS - 1)) >> STEP_BITS  # the parts' width (the last part may be short)
            new_lo = lo
            for c in tl.static_range(1, 2**STEP_BITS):
                cut = lo + c * width
                new_lo = tl.where(tl.sum((keys >= cut).to(tl.int32), 0) >= K, cut, new_lo)
            lo = new_lo
        return lo

    @triton.jit
    def _append(tv_row, ti_row, v, cols, sel, base, cap):
        # the selected logits of a [GT, GS] tile (value, column) written in row order from place ``base`` on,
        # those that fit below ``cap``; returns how many were selected (more than fit, when they overflow)
        per_group = tl.sum(sel.to(tl.int32), 1)
        pos = base + tl.cumsum(per_group, 0)[:, None] - per_group[:, None] + tl.cumsum(sel.to(tl.int32), 1) - 1
        keep = sel & (pos < cap)
        tl.store(tv_row + pos, v, mask=keep)
        tl.store(ti_row + pos, cols, mask=keep)
        return tl.sum(per_group, 0)

    @triton.jit
    def _group_tile(xrow, gs_row, t, n, listed, n_cols, GS: tl.constexpr, GT: tl.constexpr):
        # groups t..t+GT of the listed ones (listed) or of the row's (not listed): their logits [GT, GS] (-inf for
        # padding), columns and mask
        gi = t + tl.arange(0, GT)
        grp = tl.where(listed, tl.load(gs_row + gi, mask=(gi < n) & listed, other=-1), gi)
        cols = grp[:, None] * GS + tl.arange(0, GS)[None, :]
        ok = (grp[:, None] >= 0) & (gi[:, None] < n) & (cols < n_cols)
        v = tl.load(xrow + cols, mask=ok, other=float("-inf")).to(tl.float32)
        return v, cols, ok

    @triton.jit
    def _exact_candidates(xrow, gs_row, tv_row, ti_row, n, listed, n_cols, K, GS: tl.constexpr, GT: tl.constexpr,
                          SHIFT: tl.constexpr):  # fmt: skip
        # the slow exact selection, over the n listed groups (their logits >= the K-th group maximum did not fit
        # the sort) or over all the row's groups (the groups did not fit their list): the K-th largest key by the
        # search of _kth_largest, a bit a step, each step counting over the groups' logits (from L2, or from
        # memory for a whole row); then the keys above it and the first of those equal to it, K in all
        lo = tl.full([], -(2 ** (31 - SHIFT)), tl.int64)
        hi = tl.full([], 2 ** (31 - SHIFT), tl.int64)
        for _ in range(32 - SHIFT):
            mid = (lo + hi) >> 1
            count = tl.zeros([], tl.int32)
            for t in range(0, n, GT):
                v, cols, ok = _group_tile(xrow, gs_row, t, n, listed, n_cols, GS, GT)
                key = _sortable(v.to(tl.int32, bitcast=True)) >> SHIFT
                count += tl.sum(tl.sum(((key >= mid) & ok).to(tl.int32), 1), 0)
            big = count >= K
            lo = tl.where(big, mid, lo)
            hi = tl.where(big, hi, mid)
        taken = tl.zeros([], tl.int32)
        for equal in range(2):  # first the keys above the K-th, then those equal to it
            for t in range(0, n, GT):
                v, cols, ok = _group_tile(xrow, gs_row, t, n, listed, n_cols, GS, GT)
                key = _sortable(v.to(tl.int32, bitcast=True)) >> SHIFT
                sel = tl.where(equal == 1, key == lo, key > lo) & ok
                taken = tl.minimum(taken + _append(tv_row, ti_row, v, cols, sel, taken, K), K)
        return taken

    @triton.jit
    def _select_row(
        row, x_ptr, x_stride, lab_ptr, q_ptr, q_stride, qt_ptr, a_ptr, cw_ptr, m_ptr, s_ptr, g_ptr, gs_ptr, tv_ptr,
        ti_ptr, st_ptr, si_ptr, sv_ptr, fb_ptr, n_cols, n_blocks, n_groups, rows,
        K: tl.constexpr, KQ: tl.constexpr, GS: tl.constexpr, GT: tl.constexpr, NGP: tl.constexpr,
        GCAP: tl.constexpr, CAP: tl.constexpr, SP: tl.constexpr, SHIFT: tl.constexpr, STEP_BITS: tl.constexpr,
        HAS_TAIL: tl.constexpr,
    ):  # fmt: skip
        neg = float("-inf")
        xrow = x_ptr + row * x_stride
        b = tl.arange(0, SP)
        mb = tl.load(m_ptr + row * n_blocks + b, mask=b < n_blocks, other=neg, cache_modifier=".cg")
        sb = tl.load(s_ptr + row * n_blocks + b, mask=b < n_blocks, other=0.0, cache_modifier=".cg")
        top = tl.max(mb, 0)
        lse = top + tl.log(tl.sum(sb * tl.exp(mb - top), 0))

        # tk: the K-th largest group maximum (its integer key, exactly). The K largest group maxima are K distinct
        # logits, so the row's K-th largest logit is >= tk, and every logit >= tk lies in a group whose maximum is
        # >= tk: those groups (K and any ties) hold the candidates, the logits >= tk (a few percent more than K for
        # random logits), which are sorted below
        g_row = g_ptr + row * n_groups
        gs_row = gs_ptr + row * GCAP
        tv_row = tv_ptr + row * CAP
        ti_row = ti_ptr + row * CAP
        j = tl.arange(0, NGP)
        g = tl.load(g_row + j, mask=j < n_groups, other=neg, cache_modifier=".cg").to(tl.float32)
        gk = _sortable(g.to(tl.int32, bitcast=True)) >> SHIFT
        tk = _kth_largest(gk, K, 32 - SHIFT, STEP_BITS)
        sel = (gk >= tk) & (j < n_groups)
        n_g = tl.sum(sel.to(tl.int32), 0)
        pos = tl.cumsum(sel.to(tl.int32), 0) - 1
        tl.store(gs_row + pos, j, mask=sel & (pos < GCAP))
        tl.debug_barrier()
        listed = n_g <= GCAP
        n_c = tl.zeros([], tl.int32)
        if listed:
            for t in range(0, n_g, GT):
                v, cols, ok = _group_tile(xrow, gs_row, t, n_g, listed, n_cols, GS, GT)
                sel2 = ((_sortable(v.to(tl.int32, bitcast=True)) >> SHIFT) >= tk) & ok
                n_c += _append(tv_row, ti_row, v, cols, sel2, n_c, CAP)
        slow = (n_g > GCAP) | (n_c > CAP)
        if slow:
            tl.debug_barrier()
            n_c = _exact_candidates(xrow, gs_row, tv_row, ti_row, tl.where(listed, n_g, n_groups), listed, n_cols, K,
                                    GS, GT, SHIFT)  # fmt: skip
        tl.store(fb_ptr + row, tl.where(slow, tl.where(listed, 1, 2), 0))
        tl.debug_barrier()
        r = tl.arange(0, CAP)
        tv = tl.load(tv_row + r, mask=r < n_c, other=neg)
        ti = tl.load(ti_row + r, mask=r < n_c, other=0)
        key = _sortable(tv.to(tl.int32, bitcast=True)).to(tl.int64)
        # the low half holds ~index, so that among equal values the lower index comes first (as torch.topk's)
        packed = tl.sort((key << 32) | ((~ti).to(tl.int64) & 0xFFFFFFFF), descending=True)
        vals = _sortable((packed >> 32).to(tl.int32)).to(tl.float32, bitcast=True)
        idx = ~((packed & 0xFFFFFFFF).to(tl.int32))

        # ULD on the top K (uld._uld_rows), CE, and the gradient's per-row coefficients
        in_k = r < K
        p = tl.where(in_k, tl.exp(vals - lse), 0.0)
        q_row = tl.load(q_ptr + row * q_stride + r, mask=r < KQ, other=0.0).to(tl.float32)
        diff = p - q_row  # both sides zero-padded
        q_tail = tl.load(qt_ptr + row).to(tl.float32)
        if HAS_TAIL:
            tail_diff = tl.maximum(1.0 - tl.sum(p, 0), 0.0) - q_tail
            uld_row = tl.sum(tl.abs(diff), 0) + tl.abs(tail_diff)
            g = tl.where(diff > 0, 1.0, tl.where(diff < 0, -1.0, 0.0))
            g = g - tl.where(tail_diff > 0, 1.0, tl.where(tail_diff < 0, -1.0, 0.0))
        else:
            uld_row = tl.sum(tl.abs(diff), 0) + tl.abs(q_tail)
            g = tl.where(diff > 0, 1.0, tl.where(diff < 0, -1.0, 0.0))
        gp = tl.where(in_k, g * p, 0.0)
        a = tl.load(a_ptr + row).to(tl.float32)
        cw = tl.load(cw_ptr + row).to(tl.float32)
        coef = cw - a * tl.sum(gp, 0)
        lab = tl.load(lab_ptr + row)
        valid = lab >= 0
        lab = tl.maximum(lab, 0)
        x_lab = tl.load(xrow + lab).to(tl.float32)
        tl.store(st_ptr + row, lse)
        tl.store(st_ptr + rows + row, coef)
        tl.store(st_ptr + 2 * rows + row, tl.where(valid, lse - x_lab, 0.0))
        tl.store(st_ptr + 3 * rows + row, uld_row)

        # the sparse entries that pass 3 writes over pass 2's dense ones: the K top, then the label (-1: none)
        lab_in = in_k & (idx == lab) & valid
        top_g = p * coef + a * gp - tl.where(lab_in, cw, 0.0)
        tl.store(si_ptr + row * (K + 1) + r, idx, mask=in_k)
        tl.store(sv_ptr + row * (K + 1) + r, top_g, mask=in_k)
        lab_hits = tl.sum(lab_in.to(tl.int32), 0)  # 1 when the label is one of the top K (written just above)
        tl.store(si_ptr + row * (K + 1) + K, tl.where(valid & (lab_hits == 0), lab, -1))
        tl.store(sv_ptr + row * (K + 1) + K, tl.exp(x_lab - lse) * coef - cw)

    @triton.jit
    def _stats_kernel(x_ptr, x_stride, m_ptr, s_ptr, g_ptr, n_cols, n_blocks, n_groups, GS: tl.constexpr,
                      GT: tl.constexpr, NT: tl.constexpr):  # fmt: skip
        # a running max and sum of exp per group slot, so that no tile waits on a reduction across the program's
        # warps (a group's GS logits sit in one warp); the slots are combined once, at the end
        blk = tl.program_id(0)
        row = tl.program_id(1).to(tl.int64)
        xrow = x_ptr + row * x_stride
        offs = tl.arange(0, GT)[:, None] * GS + tl.arange(0, GS)[None, :]  # [GT, GS]
        mg = tl.full([GT], float("-inf"), tl.float32)
        sg = tl.zeros([GT], tl.float32)
        for t in range(NT):  # a tile past the vocabulary's end is all padding and adds nothing
            t0 = blk * (NT * GT * GS) + t * (GT * GS)
            cols = t0 + offs
            v = tl.load(xrow + cols, mask=cols < n_cols, other=float("-inf"), eviction_policy="evict_first")
            gm = tl.max(v, 1)
            gi = t0 // GS + tl.arange(0, GT)
            tl.store(g_ptr + row * n_groups + gi, gm, mask=gi < n_groups)
            m_new = tl.maximum(mg, gm.to(tl.float32))
            base = tl.where(m_new == float("-inf"), 0.0, m_new)  # a slot that saw only padding stays at 0
            sg = sg * tl.exp(mg - base) + tl.sum(tl.exp(v.to(tl.float32) - base[:, None]), 1)
            mg = m_new
        m = tl.max(mg, 0)  # finite: the block's first tile holds a logit
        tl.store(m_ptr + row * n_blocks + blk, m)
        tl.store(s_ptr + row * n_blocks + blk, tl.sum(sg * tl.exp(mg - m), 0))

    @triton.jit
    def _select_kernel(
        x_ptr, x_stride, lab_ptr, q_ptr, q_stride, qt_ptr, a_ptr, cw_ptr, m_ptr, s_ptr, g_ptr, gs_ptr, tv_ptr,
        ti_ptr, st_ptr, si_ptr, sv_ptr, fb_ptr, n_cols, n_blocks, n_groups, rows,
        K: tl.constexpr, KQ: tl.constexpr, GS: tl.constexpr, GT: tl.constexpr, NGP: tl.constexpr,
        GCAP: tl.constexpr, CAP: tl.constexpr, SP: tl.constexpr, SHIFT: tl.constexpr, STEP_BITS: tl.constexpr,
        HAS_TAIL: tl.constexpr,
    ):  # fmt: skip
        _select_row(
            tl.program_id(0).to(tl.int64), x_ptr, x_stride, lab_ptr, q_ptr, q_stride, qt_ptr, a_ptr, cw_ptr,
            m_ptr, s_ptr, g_ptr, gs_ptr, tv_ptr, ti_ptr, st_ptr, si_ptr, sv_ptr, fb_ptr, n_cols, n_blocks, n_groups,
            rows, K=K, KQ=KQ, GS=GS, GT=GT, NGP=NGP, GCAP=GCAP, CAP=CAP, SP=SP, SHIFT=SHIFT, STEP_BITS=STEP_BITS,
            HAS_TAIL=HAS_TAIL,
        )  # fmt: skip

    @triton.jit
    def _dense_kernel(x_ptr, x_stride, g_ptr, g_stride, st_ptr, rows, n_cols, BLOCK: tl.constexpr):
        row = tl.program_id(1).to(tl.int64)
        cols = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = cols < n_cols
        v = tl.load(x_ptr + row * x_stride + cols, mask=mask, other=0.0).to(tl.float32)
        grad = tl.exp(v - tl.load(st_ptr + row)) * tl.load(st_ptr + rows + row)
        tl.store(g_ptr + row * g_stride + cols, grad.to(g_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _sparse_kernel(g_ptr, g_stride, si_ptr, sv_ptr, KS: tl.constexpr, KP: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        j = tl.arange(0, KP)
        idx = tl.load(si_ptr + row * KS + j, mask=j < KS, other=-1)
        val = tl.load(sv_ptr + row * KS + j, mask=j < KS, other=0.0)
        tl.store(g_ptr + row * g_stride + idx, val.to(g_ptr.dtype.element_ty), mask=idx >= 0)
