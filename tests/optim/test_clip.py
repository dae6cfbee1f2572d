"""clip_grad_norm_ / clip_grad_value_ against torch.nn.utils, and the L1 / L2 penalties."""
import numpy as np
import pytest

import ember as em
from ember import nn
from helpers import gradcheck

torch = pytest.importorskip("torch")

SHAPES = [(5,), (4, 6), (70, 93), (1,)]


def _pair(seed=0, scale=1.0, dtype=np.float32, with_none=False):
    rng = np.random.default_rng(seed)
    ep, tp = [], []
    for i, s in enumerate(SHAPES):
        w = rng.standard_normal(s).astype(dtype)
        g = (rng.standard_normal(s) * scale).astype(dtype)
        e, t = nn.Parameter(w.copy()), torch.nn.Parameter(torch.tensor(w.copy()))
        if not (with_none and i == 1):
            e.grad, t.grad = em.Tensor(g.copy()), torch.tensor(g.copy())
        ep.append(e)
        tp.append(t)
    return ep, tp


def _grads_equal(ep, tp, rtol=1e-6, atol=1e-7):
    for e, t in zip(ep, tp):
        if t.grad is None:
            assert e.grad is None
        else:
            np.testing.assert_allclose(e.grad.data, t.grad.numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf"), 3.0, 0.5])
@pytest.mark.parametrize("max_norm", [0.3, 1e6])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    ep, tp = _pair(with_none=True)
    en = nn.utils.clip_grad_norm_(ep, max_norm, norm_type)
    tn = torch.nn.utils.clip_grad_norm_(tp, max_norm, norm_type)
    assert isinstance(en, em.Tensor) and en.shape == ()
    assert en.item() == pytest.approx(tn.item(), rel=2e-6)
    _grads_equal(ep, tp)
    if max_norm < 1:  # really clipped: the new norm is max_norm
        assert nn.utils.clip_grad_norm_(ep, 1e9, norm_type).item() == pytest.approx(
            max_norm, rel=1e-5)


def test_clip_grad_norm_float64_and_generator():
    ep, tp = _pair(dtype=np.float64)
    en = nn.utils.clip_grad_norm_((p for p in ep), 0.5)
    tn = torch.nn.utils.clip_grad_norm_((p for p in tp), 0.5)
    assert en.dtype == np.float64
    assert en.item() == pytest.approx(tn.item(), rel=1e-12)
    _grads_equal(ep, tp, rtol=1e-12, atol=1e-14)


def test_clip_grad_norm_nonfinite():
    ep, tp = _pair()
    ep[0].grad.data[1] = np.nan
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(ep, 1.0, error_if_nonfinite=True)
    ep, _ = _pair()
    ep[2].grad.data[3, 4] = np.inf
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(ep, 1.0, float("inf"), error_if_nonfinite=True)
    # without the flag, a NaN norm spreads to every gradient, as in torch
    ep, tp = _pair()
    ep[0].grad.data[1] = np.nan
    tp[0].grad[1] = float("nan")
    assert np.isnan(nn.utils.clip_grad_norm_(ep, 1.0).item())
    torch.nn.utils.clip_grad_norm_(tp, 1.0)
    for e, t in zip(ep, tp):
        np.testing.assert_array_equal(np.isnan(e.grad.data), np.isnan(t.grad.numpy()))


def test_clip_grad_norm_no_grads():
    p = nn.Parameter(np.ones(3, np.float32))
    assert nn.utils.clip_grad_norm_([p], 1.0).item() == 0.0
    assert nn.utils.clip_grad_norm_([], 1.0).item() == 0.0


def test_grad_norm_same_bits_at_1_and_2_threads():
    x = np.random.default_rng(3).standard_normal(300_001).astype(np.float32)
    before = em.get_num_threads()
    try:
        vals = []
        for nt in (1, 2):
            em.set_num_threads(nt)
            vals.append([em._core.grad_norm([x], p) for p in (2.0, 1.0, float("inf"), 3.0)])
    finally:
        em.set_num_threads(before)
    assert vals[0] == vals[1]
    np.testing.assert_allclose(vals[0][0], np.linalg.norm(x.astype(np.float64)), rtol=1e-13)


@pytest.mark.parametrize("clip", [0.5, 0.0, 10.0])
def test_clip_grad_value_matches_torch(clip):
    ep, tp = _pair(scale=2.0, with_none=True)
    ep[0].grad.data[0] = np.nan
    tp[0].grad[0] = float("nan")
    assert nn.utils.clip_grad_value_(ep, clip) is None
    torch.nn.utils.clip_grad_value_(tp, clip)
    for e, t in zip(ep, tp):
        if t.grad is not None:
            np.testing.assert_array_equal(e.grad.data, t.grad.numpy())


def test_clip_grad_value_negative_raises():
    ep, _ = _pair()
    with pytest.raises(ValueError, match="clip_value"):
        nn.utils.clip_grad_value_(ep, -1.0)


# ---- L1 / L2 penalties -------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_penalty_value_and_grad_match_torch(kind):
    rng = np.random.default_rng(1)
    ws = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    ws[0][2] = 0.0  # |x| at its kink: gradient 0, like torch's sign
    ep = [nn.Parameter(w.copy()) for w in ws]
    tp = [torch.nn.Parameter(torch.tensor(w.copy())) for w in ws]
    lam = 3e-3
    fn = getattr(nn.utils, f"{kind}_penalty")
    ev = fn(ep, lam)
    if kind == "l1":
        tv = lam * sum(t.abs().sum() for t in tp)
    else:
        tv = lam * sum((t ** 2).sum() for t in tp)
    assert ev.shape == () and ev.dtype == np.float32
    assert ev.item() == pytest.approx(tv.item(), rel=1e-5)
    (ev * 2.0).backward()
    (tv * 2.0).backward()
    for e, t in zip(ep, tp):
        np.testing.assert_allclose(e.grad.data, t.grad.numpy(), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_penalty_gradcheck(kind):
    fn = getattr(nn.utils, f"{kind}_penalty")
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 4))
    b = rng.standard_normal(5)
    a[np.abs(a) < 0.05] = 0.3  # keep finite differences away from |x|'s kink
    b[np.abs(b) < 0.05] = -0.3
    # non-leaf inputs too (a * 1.5): the penalty returns their gradient through the graph
    gradcheck(lambda x, y: fn([x * 1.5, y], 0.7), a, b)


def test_penalty_in_a_hand_loop_matches_torch():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((16, 5)).astype(np.float32)
    y = rng.standard_normal((16, 3)).astype(np.float32)
    em_model = nn.Linear(5, 3)
    t_model = torch.nn.Linear(5, 3)
    with torch.no_grad():
        t_model.weight.copy_(torch.tensor(em_model.weight.data))
        t_model.bias.copy_(torch.tensor(em_model.bias.data))
    loss = ((em_model(x) - y) ** 2).mean() + nn.utils.l2_penalty(em_model.parameters(), 1e-2) \
        + nn.utils.l1_penalty(em_model.parameters(), 1e-3)
    loss.backward()
    tl = ((t_model(torch.tensor(x)) - torch.tensor(y)) ** 2).mean() \
        + 1e-2 * sum((p ** 2).sum() for p in t_model.parameters()) \
        + 1e-3 * sum(p.abs().sum() for p in t_model.parameters())
    tl.backward()
    assert loss.item() == pytest.approx(tl.item(), rel=1e-5)
    np.testing.assert_allclose(em_model.weight.grad.data, t_model.weight.grad.numpy(),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(em_model.bias.grad.data, t_model.bias.grad.numpy(),
                               rtol=1e-5, atol=1e-6)


def test_penalty_callables_and_frozen_params():
    w = nn.Parameter(np.array([1.0, -2.0], np.float32))
    frozen = nn.Parameter(np.array([3.0], np.float32), requires_grad=False)
    reg = [nn.utils.L1Penalty(0.5), nn.utils.L2Penalty(0.25)]
    total = reg[0]([w, frozen]) + reg[1]([w, frozen])
    assert total.item() == pytest.approx(0.5 * 6 + 0.25 * 14)
    total.backward()
    np.testing.assert_allclose(w.grad.data, [0.5 + 0.5 * 1, -0.5 + 0.5 * -2])
    assert frozen.grad is None
    # gradients accumulate into an existing .grad (the += rule)
    nn.utils.l2_penalty([w], 1.0).backward()
    np.testing.assert_allclose(w.grad.data, [1.0 + 2.0, -1.5 - 4.0])
    assert "L2Penalty(lam=0.25)" == repr(reg[1])
    with pytest.raises(ValueError, match="lam"):
        nn.utils.L1Penalty(-1)
    assert nn.utils.l1_penalty([], 1.0).item() == 0.0
