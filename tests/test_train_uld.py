"""The ULD loss (train/uld.py) against a slow, plainly written full-vocabulary reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from agentdistill.train import uld
from agentdistill.train.uld import (
    IGNORE_INDEX,
    distill_loss,
    fused_linear_distill_loss,
    teacher_topk,
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def sorted_probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.softmax(logits / temperature, dim=-1).sort(dim=-1, descending=True).values


def reference_loss(student, teacher, labels, mask, *, k=None, temperature=1.0, weight=1.0):
    """CE + weight * ULD, written the obvious way: full softmax, full sort, zero-pad, L1 per token.

    With k, ranks past k are summed into one tail bucket on each side before the L1.
    """
    ce = F.cross_entropy(student, labels, ignore_index=IGNORE_INDEX)
    ps, pt = sorted_probs(student, temperature), sorted_probs(teacher, temperature)
    width = max(ps.shape[1], pt.shape[1])
    ps, pt = F.pad(ps, (0, width - ps.shape[1])), F.pad(pt, (0, width - pt.shape[1]))
    k = width if k is None else k
    per_token = (ps[:, :k] - pt[:, :k]).abs().sum(-1) + (ps[:, k:].sum(-1) - pt[:, k:].sum(-1)).abs()
    return ce + weight * per_token[mask].mean()


def random_case(n, vs, vt, seed, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    student = (torch.randn(n, vs, generator=g, dtype=torch.float64) * scale).to(DEVICE)
    teacher = (torch.randn(n, vt, generator=g, dtype=torch.float64) * scale).to(DEVICE)
    labels = torch.randint(0, vs, (n,), generator=g).to(DEVICE)
    labels[::4] = IGNORE_INDEX  # prompt tokens: no CE
    mask = (torch.rand(n, generator=g) > 0.25).to(DEVICE)  # tokens without an aligned teacher position
    mask[0] = True
    return student, teacher, labels, mask


CASES = [  # (student vocab, teacher vocab, k, temperature)
    (40, 70, 8, 1.0),  # teacher vocabulary larger
    (70, 40, 8, 1.0),  # student vocabulary larger
    (97, 97, 16, 2.0),  # same size, temperature
    (64, 300, 64, 0.7),
    (300, 64, 100, 1.0),  # k beyond the teacher's vocabulary: the teacher side is zero-padded
]


@pytest.mark.parametrize("vs,vt,k,temperature", CASES)
def test_chunked_topk_loss_and_gradient_equal_the_reference(vs, vt, k, temperature):
    student, teacher, labels, mask = random_case(23, vs, vt, seed=vs + vt + k)
    student.requires_grad_()
    want = reference_loss(student, teacher, labels, mask, k=k, temperature=temperature, weight=0.7)
    (want_grad,) = torch.autograd.grad(want, student)

    q, tail, _ = teacher_topk(teacher, k, temperature)
    got = distill_loss(student, labels, q, tail, mask, top_k=k, temperature=temperature, weight=0.7, chunk_tokens=5)
    (got_grad,) = torch.autograd.grad(got.loss, student)
    assert got.loss.item() == pytest.approx(want.item(), rel=1e-5)
    assert got.loss.item() == pytest.approx(got.ce.item() + 0.7 * got.distill.item(), rel=1e-6)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("vs,vt,k,temperature", CASES)
def test_fused_linear_path_equals_the_reference_with_weight_and_bias_grads(vs, vt, k, temperature):
    _, teacher, labels, mask = random_case(19, vs, vt, seed=3 * vs + vt)
    g = torch.Generator().manual_seed(k)
    hidden = torch.randn(19, 12, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    weight = torch.randn(vs, 12, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    bias = torch.randn(vs, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    want = reference_loss(hidden @ weight.T + bias, teacher, labels, mask, k=k, temperature=temperature)
    want_grads = torch.autograd.grad(want, (hidden, weight, bias))

    q, tail, _ = teacher_topk(teacher, k, temperature)
    got = fused_linear_distill_loss(
        hidden, weight, labels, q, tail, mask, lm_head_bias=bias, top_k=k, temperature=temperature, chunk_tokens=4
    )
    got_grads = torch.autograd.grad(got.loss, (hidden, weight, bias))
    assert got.loss.item() == pytest.approx(want.item(), rel=1e-5)
    for a, b in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("vs,vt", [(50, 50), (50, 123), (123, 50), (1000, 4000)])
def test_k_covering_both_vocabularies_gives_the_full_uld_value(vs, vt):
    student, teacher, labels, mask = random_case(11, vs, vt, seed=vs * vt)
    full = reference_loss(student, teacher, labels, mask)  # no top-k at all
    q, tail, _ = teacher_topk(teacher, max(vs, vt))
    assert torch.all(tail == 0)
    got = distill_loss(student, labels, q, tail, mask, top_k=max(vs, vt))
    assert got.loss.item() == pytest.approx(full.item(), rel=1e-6)


def test_top_k_value_is_a_lower_bound_that_tightens_as_k_grows():
    student, teacher, labels, _ = random_case(16, 200, 500, seed=7, scale=1.5)
    mask = torch.ones(16, dtype=torch.bool, device=DEVICE)
    full = reference_loss(student, teacher, labels, mask).item()
    values = []
    for k in (4, 16, 64, 500):
        q, tail, _ = teacher_topk(teacher, k)
        values.append(distill_loss(student, labels, q, tail, top_k=k).loss.item())
    assert all(a <= b + 1e-6 for a, b in zip(values, values[1:], strict=False))
    assert values[-1] == pytest.approx(full, rel=1e-6)
    assert values[0] < full - 1e-3  # flat logits: truncation at k=4 really loses something


def test_permuting_either_vocabulary_leaves_loss_unchanged_and_permutes_the_gradient():
    student, teacher, labels, mask = random_case(13, 60, 90, seed=11)
    labels = torch.full_like(labels, IGNORE_INDEX)  # CE is tied to token ids; ULD alone must be invariant
    perm_s = torch.randperm(60, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    perm_t = torch.randperm(90, generator=torch.Generator().manual_seed(2)).to(DEVICE)

    def loss_and_grad(s, t):
        s = s.clone().requires_grad_()
        q, tail, _ = teacher_topk(t, 16)
        out = distill_loss(s, labels, q, tail, mask, top_k=16)
        return out.loss, torch.autograd.grad(out.loss, s)[0]

    base, grad = loss_and_grad(student, teacher)
    permuted, grad_p = loss_and_grad(student[:, perm_s], teacher[:, perm_t])
    assert permuted.item() == pytest.approx(base.item(), rel=1e-6)
    torch.testing.assert_close(grad_p, grad[:, perm_s])


def test_chunk_size_does_not_change_loss_or_gradient():
    student, teacher, labels, mask = random_case(31, 80, 120, seed=5)
    q, tail, _ = teacher_topk(teacher, 10)
    results = []
    for chunk in (1, 7, 31, 1000):
        s = student.clone().requires_grad_()
        out = distill_loss(s, labels, q, tail, mask, top_k=10, chunk_tokens=chunk)
        results.append((out.loss.item(), torch.autograd.grad(out.loss, s)[0]))
    for loss, grad in results[1:]:
        assert loss == pytest.approx(results[0][0], rel=1e-6)
        torch.testing.assert_close(grad, results[0][1])


def test_masks_decide_which_tokens_carry_each_term():
    student, teacher, labels, _ = random_case(8, 30, 40, seed=9)
    q, tail, _ = teacher_topk(teacher, 30)
    none = torch.zeros(8, dtype=torch.bool, device=DEVICE)
    only_ce = distill_loss(student, labels, q, tail, none, top_k=30)
    assert only_ce.distill.item() == 0.0
    assert only_ce.loss.item() == pytest.approx(F.cross_entropy(student, labels).item(), rel=1e-6)

    s = student.clone().requires_grad_()
    mask = torch.zeros(8, dtype=torch.bool, device=DEVICE)
    mask[2] = True
    no_labels = torch.full_like(labels, IGNORE_INDEX)
    out = distill_loss(s, no_labels, q, tail, mask, top_k=30)
    (grad,) = torch.autograd.grad(out.loss, s)
    assert out.ce.item() == 0.0 and out.distill.item() > 0
    assert grad[2].abs().sum() > 0
    assert grad[[0, 1, 3, 4, 5, 6, 7]].abs().sum() == 0  # rows with neither CE nor teacher get no gradient


def test_teacher_topk_is_sorted_and_its_tail_completes_the_mass():
    logits = torch.randn(9, 500, dtype=torch.float64, device=DEVICE) * 2
    probs, tail, ids = teacher_topk(logits, 32, temperature=1.5, chunk_tokens=4, return_ids=True)
    assert probs.shape == (9, 32) and ids.shape == (9, 32)
    assert torch.all(probs[:, :-1] >= probs[:, 1:])
    full = torch.softmax(logits / 1.5, -1)
    torch.testing.assert_close(probs.double(), full.gather(1, ids), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close((probs.sum(-1) + tail).double(), torch.ones(9, dtype=torch.float64, device=DEVICE))
    # a cache with more columns than the loss's k folds the extra ranks into the tail: same value as a k-cache
    student, _, labels, mask = random_case(9, 300, 500, seed=1)
    q8, tail8, _ = teacher_topk(logits, 8)
    a = distill_loss(student, labels, probs, tail, mask, top_k=8, temperature=1.0).loss
    b = distill_loss(student, labels, *teacher_topk(logits, 8, 1.5)[:2], mask, top_k=8).loss
    c = distill_loss(student, labels, q8, tail8, mask, top_k=8).loss
    assert a.item() == pytest.approx(b.item(), rel=1e-5)
    assert a.item() != pytest.approx(c.item(), rel=1e-5)  # temperature 1.5 vs 1.0 caches really differ


@pytest.mark.parametrize("kind", ["kl", "jsd"])
@pytest.mark.parametrize("temperature", [1.0, 1.8])
def test_same_tokenizer_kl_and_jsd_equal_their_bucket_references(kind, temperature):
    student, teacher, labels, mask = random_case(17, 60, 60, seed=21)
    student.requires_grad_()
    q, tail, ids = teacher_topk(teacher, 10, temperature, return_ids=True)
    p = torch.softmax(student / temperature, -1)
    pk = p.gather(1, ids)
    big_p = torch.cat([pk, (1 - pk.sum(-1, keepdim=True))], 1)  # buckets: teacher's top-10 ids + the rest
    big_q = torch.cat([q, tail[:, None]], 1).double()
    if kind == "kl":
        per_token = (big_q * (big_q.log() - big_p.log())).sum(-1)
    else:
        m = (big_p + big_q) / 2
        per_token = 0.5 * (big_p * (big_p / m).log()).sum(-1) + 0.5 * (big_q * (big_q / m).log()).sum(-1)
    want = F.cross_entropy(student, labels) + per_token[mask].mean()
    (want_grad,) = torch.autograd.grad(want, student)
    got = distill_loss(
        student, labels, q, tail, mask, teacher_ids=ids, kind=kind, top_k=10, temperature=temperature, chunk_tokens=6
    )
    (got_grad,) = torch.autograd.grad(got.loss, student)
    assert got.loss.item() == pytest.approx(want.item(), rel=1e-5)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-4, atol=1e-7)


def test_bad_inputs_are_refused_with_the_offending_name():
    student, teacher, labels, mask = random_case(6, 20, 30, seed=2)
    q, tail, _ = teacher_topk(teacher, 5)
    with pytest.raises(ValueError, match="teacher_probs"):
        distill_loss(student, labels, q[:4], tail, mask, top_k=5)
    with pytest.raises(ValueError, match="teacher_ids"):
        distill_loss(student, labels, q, tail, mask, kind="kl", top_k=5)
    _, _, ids = teacher_topk(teacher, 5, return_ids=True)  # a 30-token teacher vocabulary, a 20-token student
    with pytest.raises(ValueError, match="student's vocabulary has 20"):
        distill_loss(student, labels, q, tail, mask, teacher_ids=ids + 10, kind="kl", top_k=5)
    with pytest.raises(ValueError, match="unknown distillation loss"):
        distill_loss(student, labels, q, tail, mask, kind="l2", top_k=5)  # type: ignore[arg-type]


@pytest.mark.skipif(DEVICE != "cuda", reason="the Triton kernels run on CUDA only")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_triton_kernels_equal_the_plain_torch_passes(dtype):
    x = (torch.randn(37, 70_001, device="cuda") * 6).to(dtype)  # a ragged last tile
    coef = torch.randn(37, device="cuda")
    want_lse = torch.logsumexp(x.double() / 1.3, -1)
    torch.testing.assert_close(uld.row_lse(x, 1.3).double(), want_lse, rtol=1e-6, atol=1e-5)
    want = (torch.softmax(x.double() / 1.3, -1) * coef.double()[:, None]).to(dtype)
    got = uld.scaled_softmax(x, want_lse.float(), coef, 1.3)
    torch.testing.assert_close(got, want, rtol=1e-2 if dtype == torch.bfloat16 else 1e-5, atol=1e-7)
    twice = uld.scaled_softmax(x, want_lse.float(), coef, 1.3, out=got.clone(), accumulate=True)
    torch.testing.assert_close(twice.float(), 2 * got.float(), rtol=1e-2, atol=1e-7)


@pytest.mark.skipif(DEVICE != "cuda", reason="bf16 logits and the fast kernels need CUDA")
def test_bf16_fused_path_on_cuda_matches_float64_reference():
    n, vs, vt, d = 300, 5000, 9000, 64
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(n, d, generator=g).cuda().bfloat16().requires_grad_()
    weight = (torch.randn(vs, d, generator=g) * 6 / d**0.5).cuda().bfloat16()
    teacher = (torch.randn(n, vt, generator=g) * 6).cuda()
    labels = torch.randint(0, vs, (n,), generator=g).cuda()
    mask = torch.ones(n, dtype=torch.bool, device="cuda")
    logits64 = (hidden @ weight.T).double().detach().requires_grad_()  # the same bf16-rounded logits
    want = reference_loss(logits64, teacher.double(), labels, mask, k=256)
    (want_grad,) = torch.autograd.grad(want, logits64)
    q, tail, _ = teacher_topk(teacher, 256)
    got = fused_linear_distill_loss(hidden, weight, labels, q.half(), tail.half(), mask, top_k=256)
    (got_grad,) = torch.autograd.grad(got.loss, hidden)
    assert got.loss.item() == pytest.approx(want.item(), rel=2e-3)
    ref_h = (want_grad @ weight.double()).float()
    rel = (got_grad.float() - ref_h).norm() / ref_h.norm()
    assert rel < 2e-2
