"""The fused CE + ULD kernel (train/uld_kernel.py) against train/uld.py's plain torch path and a float64 reference.

The kernel needs Triton and a GPU: without CUDA the kernel tests skip (CI has no GPU, so there they do not
run; they were run on an H200, see benchmarks/README.md's kernel section). Without CUDA, uld.distill_loss
takes the plain torch path, which tests/test_train_uld.py checks against the float64 reference on every
run; the first test here checks that the fallback is the one chosen.
"""

from __future__ import annotations

import pytest
import torch
from test_train_uld import reference_loss

from agentdistill.train import uld, uld_kernel
from agentdistill.train.uld import IGNORE_INDEX, distill_loss, teacher_topk

cuda = pytest.mark.skipif(
    not torch.cuda.is_available() or uld_kernel.triton is None, reason="the fused kernel runs on CUDA with Triton"
)


def case(n, vocab, vt, k, dtype, seed, sigma=6.0, device="cuda"):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(n, vocab, generator=g) * sigma).to(device=device, dtype=dtype)
    teacher = (torch.randn(n, vt, generator=g) * sigma).to(device)
    labels = torch.randint(0, vocab, (n,), generator=g).to(device)
    labels[::5] = IGNORE_INDEX
    labels[1:4] = x[1:4].float().argmax(-1)  # labels inside the student's top k
    mask = (torch.rand(n, generator=g) > 0.2).to(device)
    q, tail, _ = teacher_topk(teacher, k)
    return x, teacher, labels, mask, q, tail


@pytest.fixture(autouse=True)
def fused_on(monkeypatch):
    monkeypatch.setattr(uld, "FUSED_ULD", True)  # on by default; these tests hold it on whatever the default


def plain_chunk(x, labels, q, tail, mask, k, ce_scale, dist_scale, monkeypatch):
    monkeypatch.setattr(uld, "FUSED_ULD", False)
    out = uld._chunk(x, labels, q, tail, None, mask, "uld", k, 1.0, ce_scale, dist_scale, True)
    monkeypatch.setattr(uld, "FUSED_ULD", True)
    return out


def test_without_cuda_the_plain_path_is_used():
    x, _, labels, mask, q, tail = case(8, 300, 500, 16, torch.float32, 0, device="cpu")
    assert not uld_kernel.available(x)
    assert not uld_kernel.available(x.double())
    out = distill_loss(x.requires_grad_(), labels, q, tail, mask, top_k=16)
    assert torch.isfinite(out.loss)


@cuda
@pytest.mark.parametrize("k", [64, 256, 1024])
def test_kernel_equals_plain_path_float32(k, monkeypatch):
    # float32 random logits have no ties, so the top-k indices, values and gradients must agree exactly
    x, _, labels, mask, q, tail = case(37, 70_001, 9000, k, torch.float32, k)  # a ragged last block
    ce_scale, dist_scale = 1 / 29, 0.7 / 30
    valid = (labels != IGNORE_INDEX).float()
    out = torch.full_like(x, float("nan"))  # every element must be written
    got = uld_kernel.ce_uld_grad(x, labels, q, tail, dist_scale * mask.float(), ce_scale * valid, k, out)
    assert got is not None
    ce_sum, dist_sum, want = plain_chunk(x, labels, q, tail, mask, k, ce_scale, dist_scale, monkeypatch)
    assert not out.isnan().any()
    torch.testing.assert_close(got[0].sum(), ce_sum, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close((got[1] * mask.float()).sum(), dist_sum, rtol=1e-5, atol=1e-6)
    # atol 1e-7 (the largest entries are ~3e-2): a top-k entry is p (coef + a g) in one rounding here, p coef then
    # + a g p in the plain path, which cancel in some (measured 8.5e-8 absolute in one of 2.6 million)
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-7)


@cuda
def test_top_k_all_in_one_block(monkeypatch):
    # the row's whole top k sits in one of the kernel's blocks, and in another row it straddles two blocks (so
    # the chosen groups come from one block, or from two); +40 puts the rest > 32 nats down (a peaked row);
    # float32, so the indices and the gradient must agree exactly
    x, _, labels, mask, q, tail = case(8, 40_000, 9000, 256, torch.float32, 5)
    x[2, 9000:9300] += 40.0
    x[5, uld_kernel.BLOCK_V - 150 : uld_kernel.BLOCK_V + 150] += 40.0
    out = torch.full_like(x, float("nan"))
    valid = (labels != IGNORE_INDEX).float()
    got = uld_kernel.ce_uld_grad(x, labels, q, tail, 0.3 * mask.float(), valid / 6, 256, out)
    assert got is not None
    # 300 raised logits fill a few groups: the logits above the K-th group maximum (300 + about 256) outgrow the
    # sort, and both rows are selected by bisection over their listed groups
    assert uld_kernel.slow_rows() == (2, 0)
    ce_sum, dist_sum, want = plain_chunk(x, labels, q, tail, mask, 256, 1 / 6, 0.3, monkeypatch)
    torch.testing.assert_close(got[0].sum(), ce_sum, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close((got[1] * mask.float()).sum(), dist_sum, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-8)


@cuda
def test_bf16_qwen_vocabulary_matches_plain_path(monkeypatch):
    # bf16 logits at a Qwen-sized vocabulary (19 blocks): the same loss as the plain path; gradients agree up to
    # which of two tied bf16 logits takes a rank, and the kernel rounds each sparse entry once (plain: twice)
    x, _, labels, mask, q, tail = case(64, 151_936, 9000, 256, torch.bfloat16, 6)
    leaf = x.clone().requires_grad_()
    got = distill_loss(leaf, labels, q.half(), tail.half(), mask, top_k=256)
    (got_grad,) = torch.autograd.grad(got.loss, leaf)
    monkeypatch.setattr(uld, "FUSED_ULD", False)
    leaf2 = x.clone().requires_grad_()
    want = distill_loss(leaf2, labels, q.half(), tail.half(), mask, top_k=256)
    (want_grad,) = torch.autograd.grad(want.loss, leaf2)
    assert got.ce.item() == pytest.approx(want.ce.item(), rel=1e-5)
    assert got.distill.item() == pytest.approx(want.distill.item(), rel=1e-4)
    assert ((got_grad.float() - want_grad.float()).norm() / want_grad.float().norm()).item() < 2e-2


@cuda
def test_whole_vocabulary_in_the_top_k(monkeypatch):
    # k >= vocab: no student tail; the teacher's tail faces zeros
    x, _, labels, mask, q, tail = case(20, 1000, 3000, 1024, torch.float32, 1, sigma=2.0)
    out = torch.empty_like(x)
    valid = (labels != IGNORE_INDEX).float()
    got = uld_kernel.ce_uld_grad(x, labels, q, tail, 0.5 * mask.float(), valid / 16, 1024, out)
    assert got is not None
    ce_sum, dist_sum, want = plain_chunk(x, labels, q, tail, mask, 1024, 1 / 16, 0.5, monkeypatch)
    torch.testing.assert_close((got[1] * mask.float()).sum(), dist_sum, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-8)


@cuda
def test_bf16_distill_loss_matches_float64_reference(monkeypatch):
    x, teacher, labels, mask, q, tail = case(300, 50_000, 9000, 256, torch.bfloat16, 2)
    want_leaf = x.double().requires_grad_()
    want = reference_loss(want_leaf, teacher.double(), labels, mask, k=256)
    (want_grad,) = torch.autograd.grad(want, want_leaf)
    leaf = x.clone().requires_grad_()
    got = distill_loss(leaf, labels, q.half(), tail.half(), mask, top_k=256)
    (got_grad,) = torch.autograd.grad(got.loss, leaf)
    assert got.loss.item() == pytest.approx(want.item(), rel=1e-3)
    # 2e-2 as in test_train_uld.py's bf16 check: bf16 logits tie, and a tie may take either rank (measured 1.8e-2)
    assert ((got_grad.double() - want_grad).norm() / want_grad.norm()).item() < 2e-2
    monkeypatch.setattr(uld, "FUSED_ULD", False)
    plain = distill_loss(x.clone().requires_grad_(), labels, q.half(), tail.half(), mask, top_k=256)
    assert got.distill.item() == pytest.approx(plain.distill.item(), rel=1e-4)


def _losses_and_grads(x, labels, q, tail, mask, k, monkeypatch):
    """distill_loss's loss and gradient with the kernel, then with the plain path."""
    out = []
    for fused in (True, False):
        monkeypatch.setattr(uld, "FUSED_ULD", fused)
        leaf = x.clone().requires_grad_()
        got = distill_loss(leaf, labels, q, tail, mask, top_k=k)
        out += [got.loss.item(), torch.autograd.grad(got.loss, leaf)[0]]
    return out


def flat(x):  # every logit ties with the K-th: far more candidates than the kernel's buffers hold
    x[:] = 1.5


def peaked(x):  # a few logits far above a rest that ties at -500
    x[:] = -500.0
    x[7] = 300.0
    x[100:110] = 250.0


@cuda
@pytest.mark.parametrize("shape_row", [flat, peaked])
def test_rows_whose_group_maxima_tie_take_the_exact_slow_selection(shape_row, monkeypatch):
    # the K-th group maximum is shared by more groups than their list holds: the row is searched whole, exactly,
    # in the same launch (no fallback to the plain path, no sync)
    x, _, labels, mask, q, tail = case(16, 20_000, 3000, 64, torch.float32, 3)
    shape_row(x[5])
    out = torch.empty_like(x)
    valid = (labels != IGNORE_INDEX).float()
    assert uld_kernel.ce_uld_grad(x, labels, q, tail, mask.float(), valid, 64, out) is not None
    assert uld_kernel.slow_rows() == (0, 1)
    got_loss, got_grad, want_loss, want_grad = _losses_and_grads(x, labels, q, tail, mask, 64, monkeypatch)
    assert got_loss == pytest.approx(want_loss, rel=1e-6)
    others = torch.arange(16, device=x.device) != 5
    torch.testing.assert_close(got_grad[others], want_grad[others], rtol=1e-4, atol=1e-8)
    # any K of the tied logits are a top K: the same gradient values, maybe at other places
    torch.testing.assert_close(got_grad[5].sort().values, want_grad[5].sort().values, rtol=1e-4, atol=1e-8)


@cuda
@pytest.mark.parametrize("step_bits", [1, 3, 4])
def test_the_search_step_does_not_change_the_result(step_bits, monkeypatch):
    # the K-th group maximum decided 1, 3 or 4 bits a pass: the same numbers as 2 bits, bit for bit
    x, _, labels, mask, q, tail = case(37, 70_001, 9000, 256, torch.bfloat16, 8)
    valid = (labels != IGNORE_INDEX).float()
    outs = []
    for bits in (2, step_bits):
        monkeypatch.setattr(uld_kernel, "STEP_BITS", bits)
        outs.append(torch.full_like(x, float("nan")))
        got = uld_kernel.ce_uld_grad(x, labels, q, tail, 0.2 * mask.float(), valid / 7, 256, outs[-1])
        assert got is not None
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
