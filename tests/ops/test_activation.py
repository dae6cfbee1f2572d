"""Activations: float64 gradchecks, forward/grad parity with torch over edge shapes, softmax
over every dim, extreme inputs, bad inputs, the step op, determinism across thread counts."""
import numpy as np
import pytest

import ember as em
import ember.functional as F
from ember import nn
from helpers import compare_torch, gradcheck

rng = np.random.default_rng(0)


def away_from_zero(shape, margin=0.05, seed=0):
    """Random values with |x| >= margin (finite differences must not straddle a kink)."""
    r = np.random.default_rng(seed)
    x = r.standard_normal(shape)
    return np.where(np.abs(x) < margin, np.sign(x + 1e-12) * margin + x, x)


# (name, ember fn, torch fn builder, needs kink-free inputs)
def _ops():
    import torch.nn.functional as tF  # noqa: F401 (only to build the table lazily)
    return [
        ("relu", F.relu, lambda t: t.relu(), True),
        ("leaky_relu", lambda x: F.leaky_relu(x, 0.1), lambda t: tF.leaky_relu(t, 0.1), True),
        ("leaky_relu_default", F.leaky_relu, tF.leaky_relu, True),
        ("elu", lambda x: F.elu(x, 1.3), lambda t: tF.elu(t, 1.3), True),
        ("sigmoid", F.sigmoid, torch_sigmoid, False),
        ("tanh", F.tanh, torch_tanh, False),
        ("gelu", F.gelu, tF.gelu, False),
        ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"),
         lambda t: tF.gelu(t, approximate="tanh"), False),
        ("silu", F.silu, tF.silu, False),
        ("softmax", lambda x: F.softmax(x, -1), lambda t: t.softmax(-1), False),
        ("log_softmax", lambda x: F.log_softmax(x, -1), lambda t: t.log_softmax(-1), False),
    ]


def torch_sigmoid(t):
    return t.sigmoid()


def torch_tanh(t):
    return t.tanh()


GRAD_OPS = {
    "relu": (F.relu, True), "leaky_relu": (lambda x: F.leaky_relu(x, 0.1), True),
    "elu": (lambda x: F.elu(x, 0.7), True), "sigmoid": (F.sigmoid, False),
    "tanh": (F.tanh, False), "gelu": (F.gelu, False),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), False), "silu": (F.silu, False),
    "softmax_last": (lambda x: F.softmax(x, -1), False),
    "softmax_dim0": (lambda x: F.softmax(x, 0), False),
    "softmax_dim1": (lambda x: F.softmax(x, 1), False),
    "log_softmax_last": (lambda x: F.log_softmax(x, -1), False),
    "log_softmax_dim0": (lambda x: F.log_softmax(x, 0), False),
    "log_softmax_dim1": (lambda x: F.log_softmax(x, 1), False),
}


@pytest.mark.parametrize("name", sorted(GRAD_OPS))
def test_gradcheck_float64(name):
    fn, kink = GRAD_OPS[name]
    x = away_from_zero((3, 4, 5), seed=1) * 2
    gradcheck(fn, x)


@pytest.mark.parametrize("shape", [(1, 7), (5,), (3, 1), (0, 4), (2, 3, 129), (1,), ()])
def test_against_torch_edge_shapes(shape):
    pytest.importorskip("torch")
    for name, efn, tfn, kink in _ops():
        if "softmax" in name and len(shape) == 0:
            continue
        x = away_from_zero(shape, seed=2) * 3
        compare_torch(efn, tfn, x)


def test_against_torch_large_block_tail():
    """Sizes around the kernels' 64-element blocks, in float32 and float64."""
    pytest.importorskip("torch")
    for n in (63, 64, 65, 1000):
        x = away_from_zero((n,), seed=n) * 4
        for name, efn, tfn, kink in _ops():
            compare_torch(efn, tfn, x)
            compare_torch(efn, tfn, x, atol=1e-12, rtol=1e-10, dtype=np.float64)


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -2, -3])
@pytest.mark.parametrize("log", [False, True])
def test_softmax_every_dim_3d(dim, log):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((4, 5, 67)) * 3
    ef = (lambda t: F.log_softmax(t, dim)) if log else (lambda t: F.softmax(t, dim))
    tf = (lambda t: torch.log_softmax(t, dim)) if log else (lambda t: torch.softmax(t, dim))
    compare_torch(ef, tf, x)
    gradcheck(ef, x[:2, :3, :4])


def test_softmax_module_default_dim_and_0d():
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    # legacy dim=None rule: dim 0 for 3-D
    np.testing.assert_allclose(nn.Softmax()(x).numpy(),
                               torch.nn.Softmax(dim=0)(torch.tensor(x)).numpy(), rtol=1e-5)
    np.testing.assert_allclose(F.softmax(np.float32(3.0), 0).numpy(), 1.0)
    np.testing.assert_allclose(F.log_softmax(np.float32(3.0), -1).numpy(), 0.0)


def test_non_contiguous_numpy_input():
    torch = pytest.importorskip("torch")
    base = rng.standard_normal((6, 8)).astype(np.float32)
    x = base[:, ::2].T  # non-contiguous view
    assert not x.flags.c_contiguous
    for name, efn, tfn, kink in _ops():
        np.testing.assert_allclose(efn(x).numpy(), tfn(torch.tensor(np.ascontiguousarray(x)))
                                   .numpy(), rtol=2e-5, atol=2e-6, err_msg=name)


def test_extreme_inputs_are_finite_and_match_torch():
    torch = pytest.importorskip("torch")
    x = np.array([-1000, -200, -90, -20, -1e-3, 0, 1e-3, 20, 90, 200, 1000], dtype=np.float32)
    for name, efn, tfn, kink in _ops():
        e = efn(x).numpy()
        t = tfn(torch.tensor(x)).numpy()
        assert np.all(np.isfinite(e[np.isfinite(t)])), name
        np.testing.assert_allclose(e, t, rtol=1e-5, atol=1e-6, err_msg=name)
    big = np.array([[1000, -1000, 0], [1000, 1000, 1000]], dtype=np.float32)
    np.testing.assert_allclose(F.softmax(big, -1).numpy(),
                               torch.softmax(torch.tensor(big), -1).numpy(), atol=1e-7)
    np.testing.assert_allclose(F.log_softmax(big, -1).numpy(),
                               torch.log_softmax(torch.tensor(big), -1).numpy(), atol=1e-4)


def test_exp_based_ops_relative_accuracy_over_the_float_range():
    # sigmoid, silu and softmax go through the kernels' exp: every x in [-87, 87] (the range
    # where exp stays a normal float), against float64, to a few float32 ulps *relative*, so
    # the tails (sigmoid(-80) = 1.8e-35) are checked too, not hidden under an atol.
    x = np.concatenate([np.linspace(-87, 87, 200001), [-87.33, 88.0, 88.72]]).astype(np.float32)
    x64 = x.astype(np.float64)
    sig, sig_neg = 1 / (1 + np.exp(-x64)), 1 / (1 + np.exp(x64))

    def rel(a, ref):
        return np.max(np.abs(a.astype(np.float64) - ref) / np.abs(ref))

    assert rel(F.sigmoid(x).numpy(), sig) < 2.5e-7
    keep = np.abs(x) > 1e-3
    assert rel(F.silu(x[keep]).numpy(), (x64 * sig)[keep]) < 2.5e-7
    two = np.stack([x, np.zeros_like(x)], 1)  # softmax([x, 0]) = [sigmoid(x), sigmoid(-x)]
    sm = F.softmax(two, 1).numpy()
    normal = np.abs(x) <= 87  # sigmoid(-88) is below FLT_MIN: flushed to 0
    assert rel(sm[normal, 0], sig[normal]) < 2.5e-7 and rel(sm[normal, 1], sig_neg[normal]) < 2.5e-7
    ls = F.log_softmax(two, 1).numpy()
    np.testing.assert_allclose(ls[:, 0], -np.log1p(np.exp(-x64)), rtol=2e-7, atol=6e-7)
    # past the ends: 0 and 1 exactly, never NaN
    np.testing.assert_array_equal(F.sigmoid(np.array([-200, -89, 89, 200], np.float32)).numpy(),
                                  [0, 0, 1, 1])


def test_nan_propagates():
    x = np.array([np.nan, -1.0, 1.0], dtype=np.float32)
    for fn in (F.relu, F.leaky_relu, F.elu, F.sigmoid, F.tanh, F.gelu, F.silu, F.step):
        assert np.isnan(fn(x).numpy()[0]), fn
    assert np.isnan(F.softmax(x, 0).numpy()).all()


def test_backward_overwrites_and_leaf_grads_accumulate():
    x = em.tensor(away_from_zero((4, 3), seed=5), requires_grad=True)
    F.sigmoid(x).sum().backward()
    g1 = x.grad.numpy().copy()
    F.sigmoid(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * g1, rtol=1e-6)
    # gradient of a shared input through two activations sums both paths
    y = em.tensor(away_from_zero((5,), seed=6), requires_grad=True)
    (F.tanh(y) + F.relu(y)).sum().backward()
    yd = y.numpy()
    np.testing.assert_allclose(y.grad.numpy(), (1 - np.tanh(yd) ** 2) + (yd > 0), rtol=1e-5)


def test_step_forward_only():
    x = np.array([-2.0, -0.0, 0.0, 3.0, np.inf, -np.inf], dtype=np.float32)
    np.testing.assert_array_equal(F.step(x).numpy(), [0, 0, 0, 1, 1, 0])
    np.testing.assert_array_equal(F.step(x, value=0.5).numpy(), [0, 0.5, 0.5, 1, 1, 0])
    t = em.tensor(x, requires_grad=True)
    out = F.step(t)
    assert not out.requires_grad and out.grad_fn is None
    assert nn.Step()(x).dtype == np.float32
    assert F.step(em.tensor(x, dtype=np.float64)).dtype == np.float64


def test_identity():
    t = em.tensor([1.0, -2.0], requires_grad=True)
    assert F.identity(t) is t
    np.testing.assert_array_equal(F.identity([1.0, 2.0]).numpy(), [1, 2])


def test_float64_stays_float64():
    x = rng.standard_normal((3, 4))
    for name, efn, tfn, kink in [(n, f, None, None) for n, (f, _) in GRAD_OPS.items()]:
        assert efn(em.tensor(x, dtype=np.float64)).dtype == np.float64, name


def test_bad_inputs():
    with pytest.raises(TypeError, match="relu.*int64"):
        F.relu(np.arange(4))
    with pytest.raises(TypeError, match="sigmoid: argument 'input' must be float32 or float64, "
                                        "got bool"):
        F.sigmoid(np.ones(3, dtype=bool))
    with pytest.raises(IndexError, match="softmax: dim 3 is out of range.*\\(2, 3\\)"):
        F.softmax(np.ones((2, 3), np.float32), 3)
    with pytest.raises(IndexError, match="log_softmax: dim -3"):
        F.log_softmax(np.ones((2, 3), np.float32), -3)
    with pytest.raises(ValueError, match="gelu: approximate"):
        F.gelu(np.ones(3, np.float32), approximate="fast")
    with pytest.raises(ValueError, match="relu_backward: grad_output shape \\(4,\\) does not "
                                         "match shape \\(3,\\)"):
        em._core.relu_backward(np.ones(4, np.float32), np.ones(3, np.float32))
    t = em.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError, match="gradient shape"):
        F.tanh(t).backward(np.ones((3, 2), np.float32))


def test_module_reprs():
    assert repr(nn.ReLU()) == "ReLU()"
    assert repr(nn.LeakyReLU()) == "LeakyReLU(negative_slope=0.01)"
    assert repr(nn.ELU(alpha=0.5)) == "ELU(alpha=0.5)"
    assert repr(nn.Sigmoid()) == "Sigmoid()"
    assert repr(nn.Tanh()) == "Tanh()"
    assert repr(nn.GELU()) == "GELU(approximate='none')"
    assert repr(nn.GELU("tanh")) == "GELU(approximate='tanh')"
    assert repr(nn.SiLU()) == "SiLU()"
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"
    assert repr(nn.LogSoftmax(dim=-1)) == "LogSoftmax(dim=-1)"
    assert repr(nn.Step()) == "Step()"
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Identity())
    assert "(1): ReLU()" in repr(seq)


def test_modules_match_functional():
    x = away_from_zero((3, 5), seed=9).astype(np.float32)
    pairs = [(nn.ReLU(), F.relu), (nn.LeakyReLU(0.2), lambda t: F.leaky_relu(t, 0.2)),
             (nn.ELU(), F.elu), (nn.Sigmoid(), F.sigmoid), (nn.Tanh(), F.tanh),
             (nn.GELU("tanh"), lambda t: F.gelu(t, "tanh")), (nn.SiLU(), F.silu),
             (nn.Softmax(1), lambda t: F.softmax(t, 1)),
             (nn.LogSoftmax(0), lambda t: F.log_softmax(t, 0)), (nn.Step(), F.step)]
    for m, f in pairs:
        np.testing.assert_array_equal(m(x).numpy(), f(x).numpy(), err_msg=repr(m))


def test_tensor_methods():
    x = away_from_zero((2, 3), seed=3).astype(np.float32)
    t = em.tensor(x)
    np.testing.assert_array_equal(t.relu().numpy(), F.relu(x).numpy())
    np.testing.assert_array_equal(t.softmax(0).numpy(), F.softmax(x, 0).numpy())


def _run_all(x):
    outs = []
    for name, (fn, kink) in sorted(GRAD_OPS.items()):
        t = em.tensor(x, requires_grad=True)
        y = fn(t)
        y.backward(np.cos(x))
        outs += [y.numpy().copy(), t.grad.numpy().copy()]
    return outs


def test_bitwise_identical_at_1_and_2_threads():
    old = em.get_num_threads()
    # 1M elements: (1000, 1000) so every kernel (elementwise and each softmax dim) splits.
    x = np.random.default_rng(7).standard_normal((1000, 1000)).astype(np.float32) * 3
    x[0, 0] = 0.5  # arbitrary odd offsets are covered by the block tails below
    try:
        em.set_num_threads(1)
        a = _run_all(x) + _run_all(x[:, :999].copy())
        em.set_num_threads(2)
        assert em._core.measured_team_size() == 2
        b = _run_all(x) + _run_all(x[:, :999].copy())
    finally:
        em.set_num_threads(old)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def test_kink_values_match_torch():
    """At exactly 0 each kinked op takes torch's side (relu: 0, leaky: slope, elu: alpha)."""
    torch = pytest.importorskip("torch")
    x = np.array([0.0, -0.0, 1.0, -1.0], dtype=np.float32)
    for ef, tf in [(F.relu, torch.relu), (lambda a: F.leaky_relu(a, 0.2),
                                          lambda a: torch.nn.functional.leaky_relu(a, 0.2)),
                   (lambda a: F.elu(a, 0.5), lambda a: torch.nn.functional.elu(a, 0.5))]:
        compare_torch(ef, tf, x)
