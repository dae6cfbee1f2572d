"""Losses: float64 gradchecks of input (and target) gradients, torch parity for every
reduction with edge shapes, ignore_index, label smoothing, probability targets, class weights,
extreme logits, bad inputs, and bitwise determinism across thread counts."""
import numpy as np
import pytest

import ember as em
import ember.functional as F
from ember import nn
from helpers import compare_torch, gradcheck

rng = np.random.default_rng(0)
REDUCTIONS = ["mean", "sum", "none"]


def probs(shape, seed=0):
    return np.random.default_rng(seed).uniform(0.05, 0.95, shape)


# ---------------------------------------------------------------------------------------------
# pointwise losses

@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_pointwise_gradcheck(reduction):
    x = rng.standard_normal((3, 5))
    t = x + np.where(rng.random((3, 5)) < 0.5, -1, 1) * rng.uniform(0.1, 1, (3, 5))  # |x-t|>0
    gradcheck(lambda a, b: F.mse_loss(a, b, reduction=reduction), x, t)
    gradcheck(lambda a, b: F.l1_loss(a, b, reduction=reduction), x, t)
    p, q = probs((3, 5), 1), probs((3, 5), 2)
    w = rng.uniform(0.5, 2, (3, 5))
    gradcheck(lambda a, b: F.binary_cross_entropy(a, b, reduction=reduction), p, q)
    gradcheck(lambda a, b: F.binary_cross_entropy(a, b, weight=w, reduction=reduction), p, q)
    gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=reduction),
              x * 3, q)
    pw = rng.uniform(0.5, 3, (5,))
    gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(
        a, b, weight=w, pos_weight=pw, reduction=reduction), x * 3, q)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(1,), (7,), (1, 1), (4, 3), (2, 3, 5), (0, 3), (130,)])
def test_pointwise_vs_torch(reduction, shape):
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    x = rng.standard_normal(shape) * 2
    t = rng.standard_normal(shape)
    kw = dict(reduction=reduction)
    compare_torch(lambda a, b: F.mse_loss(a, b, **kw), lambda a, b: tF.mse_loss(a, b, **kw), x, t)
    compare_torch(lambda a, b: F.l1_loss(a, b, **kw), lambda a, b: tF.l1_loss(a, b, **kw), x, t)
    p, q = probs(shape, 3), probs(shape, 4)
    compare_torch(lambda a, b: F.binary_cross_entropy(a, b, **kw),
                  lambda a, b: tF.binary_cross_entropy(a, b, **kw), p, q)
    compare_torch(lambda a, b: F.binary_cross_entropy_with_logits(a, b, **kw),
                  lambda a, b: tF.binary_cross_entropy_with_logits(a, b, **kw), x, q)
    if len(shape) >= 1 and shape[-1] > 0:
        w = rng.uniform(0.5, 2, shape[-1:])
        pw = rng.uniform(0.5, 3, shape[-1:])
        compare_torch(
            lambda a, b: F.binary_cross_entropy_with_logits(a, b, weight=w, pos_weight=pw, **kw),
            lambda a, b: tF.binary_cross_entropy_with_logits(
                a, b, weight=torch.tensor(w, dtype=a.dtype),
                pos_weight=torch.tensor(pw, dtype=a.dtype), **kw), x, q)
        compare_torch(lambda a, b: F.binary_cross_entropy(a, b, weight=w, **kw),
                      lambda a, b: tF.binary_cross_entropy(
                          a, b, weight=torch.tensor(w, dtype=a.dtype), **kw), p, q)


def test_pointwise_target_not_requiring_grad_and_numpy_targets():
    x = em.tensor(rng.standard_normal((4, 2)), requires_grad=True)
    t64 = rng.standard_normal((4, 2))  # float64 numpy target is taken as a constant
    loss = F.mse_loss(x, t64)
    assert loss.dtype == np.float32 and loss.shape == ()
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (x.numpy() - t64.astype(np.float32)) / 8,
                               rtol=1e-5)
    # non-contiguous numpy inputs
    xs = rng.standard_normal((6, 4)).astype(np.float32)[::2, ::2]
    ts = rng.standard_normal((6, 4)).astype(np.float32)[1::2, 1::2]
    np.testing.assert_allclose(F.l1_loss(xs, ts).item(), np.abs(xs - ts).mean(), rtol=1e-6)


def test_bce_with_logits_extreme_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.array([-200, -200, 200, 200, -100, 100, 0, 88, -88], dtype=np.float32)
    t = np.array([0, 1, 0, 1, 1, 0, 0.5, 0.3, 0.7], dtype=np.float32)
    for red in REDUCTIONS:
        xt = torch.tensor(x, requires_grad=True)
        tl = torch.nn.functional.binary_cross_entropy_with_logits(xt, torch.tensor(t),
                                                                  reduction=red)
        e = em.tensor(x, requires_grad=True)
        el = F.binary_cross_entropy_with_logits(e, t, reduction=red)
        assert np.all(np.isfinite(el.numpy()))
        np.testing.assert_allclose(el.numpy(), tl.detach().numpy(), rtol=1e-6)
        el.sum().backward()
        tl.sum().backward()
        assert np.all(np.isfinite(e.grad.numpy()))
        np.testing.assert_allclose(e.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-7)
    pw = np.full(9, 3.0, np.float32)
    a = F.binary_cross_entropy_with_logits(x, t, pos_weight=pw, reduction="none").numpy()
    b = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(x), torch.tensor(t), pos_weight=torch.tensor(pw), reduction="none").numpy()
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_bce_clamps_log_like_torch():
    torch = pytest.importorskip("torch")
    p = np.array([0.0, 1.0, 0.0, 1.0, 1e-30], dtype=np.float32)
    q = np.array([1.0, 0.0, 0.0, 1.0, 1.0], dtype=np.float32)
    e = F.binary_cross_entropy(p, q, reduction="none").numpy()
    t = torch.nn.functional.binary_cross_entropy(torch.tensor(p), torch.tensor(q),
                                                 reduction="none").numpy()
    np.testing.assert_allclose(e, t, rtol=1e-6)
    assert e[0] == 100.0


# ---------------------------------------------------------------------------------------------
# cross_entropy / nll_loss

def _ce_cases():
    # (input shape, class-target shape)
    return [((4, 5), (4,)), ((1, 3), (1,)), ((7, 1), (7,)), ((0, 4), (0,)), ((3, 4, 5), (3, 5)),
            ((2, 3, 2, 3), (2, 2, 3)), ((5,), ())]


@pytest.mark.parametrize("xs,ts", _ce_cases())
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_vs_torch(xs, ts, reduction):
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    C = xs[1] if len(xs) > 1 else xs[0]
    x = rng.standard_normal(xs) * 3
    t = rng.integers(0, C, ts)
    w = rng.uniform(0.5, 2, (C,))
    for kw in [dict(), dict(label_smoothing=0.2)]:
        kw["reduction"] = reduction
        compare_torch(lambda a: F.cross_entropy(a, t, **kw),
                      lambda a: tF.cross_entropy(a, torch.tensor(t), **kw), x)
        compare_torch(lambda a: F.cross_entropy(a, t, weight=w, **kw),
                      lambda a: tF.cross_entropy(a, torch.tensor(t),
                                                 weight=torch.tensor(w, dtype=a.dtype), **kw), x)
    kw = dict(reduction=reduction)
    compare_torch(lambda a: F.nll_loss(a, t, **kw),
                  lambda a: tF.nll_loss(a, torch.tensor(t), **kw), x)
    compare_torch(lambda a: F.nll_loss(a, t, weight=w, **kw),
                  lambda a: tF.nll_loss(a, torch.tensor(t),
                                        weight=torch.tensor(w, dtype=a.dtype), **kw), x)
    # probability targets (gradient wrt the targets too)
    pt = rng.dirichlet(np.ones(C), size=int(np.prod(ts)) if ts else 1)
    pt = np.moveaxis(pt.reshape(tuple(ts) + (C,)), -1, 1 if len(xs) > 1 else 0) \
        if len(xs) > 1 else pt.reshape(xs)
    pt = np.ascontiguousarray(pt)
    for kw in [dict(), dict(label_smoothing=0.1)]:
        kw["reduction"] = reduction
        compare_torch(lambda a, b: F.cross_entropy(a, b, **kw),
                      lambda a, b: tF.cross_entropy(a, b, **kw), x, pt)
        compare_torch(lambda a, b: F.cross_entropy(a, b, weight=w, **kw),
                      lambda a, b: tF.cross_entropy(a, b, weight=torch.tensor(w, dtype=a.dtype),
                                                    **kw), x, pt)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_gradcheck(reduction):
    x = rng.standard_normal((4, 3, 2))
    t = np.array([[0, 2], [1, -100], [2, 2], [-100, 0]])
    w = np.array([0.5, 2.0, 1.5])
    gradcheck(lambda a: F.cross_entropy(a, t, reduction=reduction), x)
    gradcheck(lambda a: F.cross_entropy(a, t, weight=w, label_smoothing=0.3,
                                        reduction=reduction), x)
    gradcheck(lambda a: F.nll_loss(a, t, weight=w, reduction=reduction), x)
    pt = np.ascontiguousarray(rng.dirichlet(np.ones(3), size=8).reshape(4, 2, 3)
                              .transpose(0, 2, 1))
    gradcheck(lambda a, b: F.cross_entropy(a, b, weight=w, label_smoothing=0.2,
                                           reduction=reduction), x, pt)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ignore_index(reduction):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((6, 4))
    t = np.array([0, 3, -100, 1, 5, 5])
    for ii in (-100, 5):
        tt = np.where(t == 5, ii, t) if ii == -100 else np.where(t == -100, 2, t)
        for kw in [dict(ignore_index=ii), dict(ignore_index=ii, label_smoothing=0.1),
                   dict(ignore_index=ii, weight=np.arange(1.0, 5.0))]:
            tkw = dict(kw, reduction=reduction)
            if "weight" in tkw:
                tkw["weight"] = torch.tensor(tkw["weight"], dtype=torch.float32)
            compare_torch(lambda a: F.cross_entropy(a, tt, reduction=reduction, **kw),
                          lambda a: torch.nn.functional.cross_entropy(a, torch.tensor(tt), **tkw),
                          x)
            if "label_smoothing" not in kw:
                compare_torch(lambda a: F.nll_loss(a, tt, reduction=reduction, **kw),
                              lambda a: torch.nn.functional.nll_loss(a, torch.tensor(tt), **tkw),
                              x)


def test_all_ignored_mean_is_nan_like_torch():
    x = em.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    loss = F.cross_entropy(x, [-100, -100])
    assert np.isnan(loss.item())
    assert F.cross_entropy(x, [-100, -100], reduction="sum").item() == 0.0


def test_cross_entropy_extreme_logits_match_torch():
    torch = pytest.importorskip("torch")
    x = np.array([[1000, -1000, 0], [-1000, -1000, -1000], [1000, 1000, -1000],
                  [-1000, 1000, 999]], dtype=np.float32)
    t = np.array([1, 0, 2, 2])
    for kw in [dict(reduction="none"), dict(reduction="mean"),
               dict(reduction="sum", label_smoothing=0.1)]:
        e = em.tensor(x, requires_grad=True)
        el = F.cross_entropy(e, t, **kw)
        xt = torch.tensor(x, requires_grad=True)
        tl = torch.nn.functional.cross_entropy(xt, torch.tensor(t), **kw)
        assert np.all(np.isfinite(el.numpy()))
        np.testing.assert_allclose(el.numpy(), tl.detach().numpy(), rtol=1e-6)
        el.sum().backward()
        tl.sum().backward()
        np.testing.assert_allclose(e.grad.numpy(), xt.grad.numpy(), atol=1e-6)


def test_class_targets_accept_int32_and_whole_floats():
    x = rng.standard_normal((3, 4)).astype(np.float32)
    ref = F.cross_entropy(x, np.array([1, 0, 3])).item()
    assert F.cross_entropy(x, np.array([1, 0, 3], dtype=np.int32)).item() == ref
    assert F.cross_entropy(x, np.array([1.0, 0.0, 3.0])).item() == ref
    assert F.cross_entropy(x, em.tensor([1, 0, 3])).item() == ref
    assert F.cross_entropy(x, [1, 0, 3]).item() == ref


def test_class_loss_bad_inputs():
    x = np.zeros((3, 4), np.float32)
    for fn in (F.cross_entropy, F.nll_loss):
        name = fn.__name__
        with pytest.raises(IndexError, match=f"{name}: target 4 at flat index 1 is out of "
                                             f"bounds for 4 classes"):
            fn(x, [0, 4, 1])
        with pytest.raises(IndexError, match=f"{name}: target -1 .* for 4 classes"):
            fn(x, [0, -1, 1])
        with pytest.raises(ValueError, match=f"{name}: target holds NaN at flat index 2"):
            fn(x, np.array([0.0, 1.0, np.nan]))
        with pytest.raises(ValueError, match=f"{name}: target holds 0.5"):
            fn(x, np.array([0.0, 0.5, 1.0]))
        with pytest.raises(ValueError, match=rf"{name}: target shape \(2,\) does not match "
                                             rf"input shape \(3, 4\)"):
            fn(x, [0, 1])
        with pytest.raises(TypeError, match=f"{name}: argument 'input' must be float32 or "
                                            f"float64, got int64"):
            fn(np.zeros((3, 4), np.int64), [0, 1, 2])
        with pytest.raises(ValueError, match=f"{name}: weight shape"):
            fn(x, [0, 1, 2], weight=np.ones(3))
        with pytest.raises(ValueError, match=f"{name}: reduction must be"):
            fn(x, [0, 1, 2], reduction="avg")
        with pytest.raises(ValueError, match=f"{name}: input must have at least 1 dimension"):
            fn(np.float32(1.0), [0])
    with pytest.raises(TypeError, match="cross_entropy: target must hold integer"):
        F.cross_entropy(x, np.array(["a", "b", "c"]))
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(x, [0, 1, 2], label_smoothing=1.5)
    with pytest.raises(TypeError, match="cross_entropy: argument 'target' has dtype float64"):
        F.cross_entropy(em.tensor(x), em.tensor(np.zeros((3, 4)), dtype=np.float64))


def test_pointwise_bad_inputs():
    x = np.zeros((3, 1), np.float32)
    for fn in (F.mse_loss, F.l1_loss, F.binary_cross_entropy, F.binary_cross_entropy_with_logits):
        name = fn.__name__
        with pytest.raises(ValueError, match=rf"{name}: target shape \(3,\) does not match "
                                             rf"input shape \(3, 1\)"):
            fn(x, np.zeros(3, np.float32))
        with pytest.raises(TypeError, match=f"{name}: argument 'input' must be float32"):
            fn(np.zeros(3, np.int64), np.zeros(3))
        with pytest.raises(TypeError, match=f"{name}: argument 'target' has dtype float64"):
            fn(em.tensor(x), em.tensor(x, dtype=np.float64))
        with pytest.raises(ValueError, match="reduction"):
            fn(x, x, reduction="bogus")
    with pytest.raises(ValueError, match="binary_cross_entropy: all elements of input should be "
                                         "between 0 and 1, got 1.5"):
        F.binary_cross_entropy(np.array([0.5, 1.5], np.float32), np.array([0, 1], np.float32))
    with pytest.raises(ValueError, match="input should be between 0 and 1, got nan"):
        F.binary_cross_entropy(np.array([np.nan], np.float32), np.array([0], np.float32))
    with pytest.raises(ValueError, match="target should be between 0 and 1"):
        F.binary_cross_entropy(np.array([0.5], np.float32), np.array([2], np.float32))
    with pytest.raises(ValueError, match="pos_weight shape \\(2,\\) cannot be broadcast"):
        F.binary_cross_entropy_with_logits(np.zeros((3, 3), np.float32),
                                           np.zeros((3, 3), np.float32), pos_weight=np.ones(2))


def test_legacy_size_average_reduce():
    x, t = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    assert F.mse_loss(x, t, reduce=False).shape == (5,)
    np.testing.assert_allclose(F.mse_loss(x, t, size_average=False).item(),
                               ((x - t) ** 2).sum(), rtol=1e-6)
    assert nn.MSELoss(reduce=False).reduction == "none"


def test_loss_modules():
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((4, 3)).astype(np.float32)
    y = np.array([0, 2, 1, 2])
    p, q = probs((4, 3), 5).astype(np.float32), probs((4, 3), 6).astype(np.float32)
    w = np.array([1.0, 2.0, 0.5], np.float32)
    T = torch.tensor
    cases = [
        (nn.MSELoss(), torch.nn.MSELoss(), x, q),
        (nn.L1Loss(reduction="sum"), torch.nn.L1Loss(reduction="sum"), x, q),
        (nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss(), x, y),
        (nn.CrossEntropyLoss(weight=w, ignore_index=1, label_smoothing=0.1),
         torch.nn.CrossEntropyLoss(weight=T(w), ignore_index=1, label_smoothing=0.1), x, y),
        (nn.NLLLoss(weight=w, reduction="none"), torch.nn.NLLLoss(weight=T(w), reduction="none"),
         x, y),
        (nn.BCELoss(weight=w), torch.nn.BCELoss(weight=T(w)), p, q),
        (nn.BCEWithLogitsLoss(pos_weight=w), torch.nn.BCEWithLogitsLoss(pos_weight=T(w)), x, q),
    ]
    for em_m, t_m, a, b in cases:
        np.testing.assert_allclose(em_m(a, b).numpy(), t_m(T(a), T(b)).numpy(), rtol=1e-5,
                                   atol=1e-6, err_msg=repr(em_m))
    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss()"
    assert "weight" in nn.CrossEntropyLoss(weight=w).state_dict()
    assert "pos_weight" in nn.BCEWithLogitsLoss(pos_weight=w).state_dict()


def test_readme_example_runs():
    em.manual_seed(0)
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    for step in range(2000):
        loss = F.binary_cross_entropy_with_logits(model(X), y)
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data -= 0.5 * p.grad.numpy()
    pred = F.sigmoid(model(X)).numpy().round(2).ravel()
    assert loss.item() < 0.05
    np.testing.assert_array_equal(pred.round(), [0, 1, 1, 0])


def _run_losses(x, t, pt, xb, tb):
    outs = []
    for fn in [lambda a: F.cross_entropy(a, t), lambda a: F.cross_entropy(a, t, reduction="sum",
                                                                          label_smoothing=0.1),
               lambda a: F.cross_entropy(a, pt), lambda a: F.nll_loss(a, t)]:
        e = em.tensor(x, requires_grad=True)
        loss = fn(e)
        loss.backward()
        outs += [loss.numpy().copy(), e.grad.numpy().copy()]
    for fn in [F.mse_loss, F.l1_loss, F.binary_cross_entropy_with_logits]:
        e = em.tensor(xb, requires_grad=True)
        loss = fn(e, tb)
        loss.backward()
        outs += [loss.numpy().copy(), e.grad.numpy().copy()]
    return outs


def test_bitwise_identical_at_1_and_2_threads():
    old = em.get_num_threads()
    r = np.random.default_rng(11)
    x = (r.standard_normal((4096, 1000)) * 3).astype(np.float32)
    t = r.integers(0, 1000, 4096)
    pt = r.dirichlet(np.ones(1000), 4096).astype(np.float32)
    xb = r.standard_normal(1_000_003).astype(np.float32)
    tb = r.uniform(0, 1, 1_000_003).astype(np.float32)
    try:
        em.set_num_threads(1)
        a = _run_losses(x, t, pt, xb, tb)
        em.set_num_threads(2)
        assert em._core.measured_team_size() == 2
        b = _run_losses(x, t, pt, xb, tb)
    finally:
        em.set_num_threads(old)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)

