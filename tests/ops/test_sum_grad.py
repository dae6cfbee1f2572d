"""The full sum (Tensor.sum() / mean() with no axis) and the gradient it hands down.

sum and mean with no axis run core/reduce's threaded fixed-order kernel; their backward passes a
read-only stride-0 broadcast, which the activation kernels read as one value (Fill<T>) instead of
n copies, and which the autograd engine makes contiguous for every other op.
"""
import numpy as np
import pytest

import ember as em
import ember.functional as F
from ember import _core

SIZES = [1, 2, 15, 16, 17, 1023, 1024, 1025, 3 * 1024 + 7, 1 << 20]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sum_all_counts_every_element_once(n, dtype):
    # Small integers: every partial sum is exact in float32, so any dropped, repeated or
    # misplaced element (tails, chunk edges, thread splits) changes the result.
    x = np.random.default_rng(n).integers(-8, 9, n).astype(dtype)
    x[-1] = 3  # the very last element is never zero
    got = _core.sum_all(x)
    assert got.shape == () and got.dtype == dtype
    assert float(got) == float(np.sum(x.astype(np.int64)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sum_all_accuracy(dtype):
    # A naive running float32 sum of 1M values is off by ~1e-4 relative; numpy's pairwise sum
    # by ~1e-7. Ours (float chunk sums of 64-long lane chains, added in double) must be in
    # numpy's class.
    x = np.random.default_rng(9).standard_normal(1 << 20).astype(dtype) + 0.25
    exact = np.sum(x.astype(np.longdouble))
    err = abs(float(_core.sum_all(x)) - float(exact))
    np_err = abs(float(np.sum(x)) - float(exact))
    eps = float(np.finfo(dtype).eps)
    assert err <= max(2 * np_err, 4 * eps * abs(float(exact)))


def test_sum_all_empty_and_bad_input():
    assert float(_core.sum_all(np.zeros(0, np.float32))) == 0.0
    with pytest.raises(TypeError, match="sum"):
        _core.sum_all(np.arange(4))
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.sum_all(np.ones((4, 4), np.float32)[:, ::2])


def test_sum_all_bitwise_identical_at_1_and_2_threads():
    x = np.random.default_rng(3).standard_normal(3 << 20).astype(np.float32)
    old = em.get_num_threads()
    try:
        em.set_num_threads(1)
        a = _core.sum_all(x)
        em.set_num_threads(2)
        assert em._core.measured_team_size() == 2
        b = _core.sum_all(x)
    finally:
        em.set_num_threads(old)
    assert a.tobytes() == b.tobytes()


def test_tensor_sum_mean_match_torch_and_fall_back():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).standard_normal((37, 129)).astype(np.float32)
    t = torch.tensor(x)
    np.testing.assert_allclose(em.tensor(x).sum().numpy(), t.sum().numpy(), rtol=1e-6)
    np.testing.assert_allclose(em.tensor(x).mean().numpy(), t.mean().numpy(), rtol=1e-6)
    assert em.tensor(x).sum().dtype == np.float32
    assert em.tensor(x, dtype=np.float64).mean().dtype == np.float64
    # Integer and non-contiguous data go through numpy.
    assert int(em.tensor(np.arange(10)).sum().numpy()) == 45
    assert em.tensor(x.T).sum().shape == ()
    np.testing.assert_allclose(em.tensor(x.T).sum().numpy(), t.sum().numpy(), rtol=1e-5)


BACKWARDS = {
    "relu": lambda g, x: _core.relu_backward(g, _core.relu_forward(x)),
    "leaky_relu": lambda g, x: _core.leaky_relu_backward(g, x, 0.1),
    "elu": lambda g, x: _core.elu_backward(g, x, 0.7),
    "sigmoid": lambda g, x: _core.sigmoid_backward(g, _core.sigmoid_forward(x)),
    "tanh": lambda g, x: _core.tanh_backward(g, _core.tanh_forward(x)),
    "gelu": lambda g, x: _core.gelu_backward(g, x, False),
    "gelu_tanh": lambda g, x: _core.gelu_backward(g, x, True),
    "silu": lambda g, x: _core.silu_backward(g, x),
}


@pytest.mark.parametrize("name", sorted(BACKWARDS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2,), (63,), (3, 65), (5, 7, 11)])
@pytest.mark.parametrize("c", [1.0, -0.37, 2.5e-3, np.inf])
def test_broadcast_scalar_grad_equals_materialized(name, dtype, shape, c):
    x = np.random.default_rng(2).standard_normal(shape).astype(dtype)
    x.flat[0] = 0.0
    fn = BACKWARDS[name]
    g = np.broadcast_to(np.asarray(c, dtype), shape)
    assert not g.flags.c_contiguous or g.size == 1
    got, want = fn(g, x), fn(np.full(shape, c, dtype), x)
    np.testing.assert_array_equal(got, want)
    assert got.flags.c_contiguous and got.flags.writeable


def test_broadcast_grad_wrong_shape_or_partial_broadcast():
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    y = _core.relu_forward(x)
    with pytest.raises(ValueError, match="relu_backward.*grad_output shape"):
        _core.relu_backward(np.broadcast_to(np.float32(1), (4, 5)), y)
    # A row broadcast (stride 0 on one axis only) is not a scalar: it is copied and still right.
    row = np.random.default_rng(1).standard_normal(6).astype(np.float32)
    np.testing.assert_array_equal(_core.relu_backward(np.broadcast_to(row, (4, 6)), y),
                                  _core.relu_backward(np.tile(row, (4, 1)), y))
    # dtype mismatch: converted, as before
    np.testing.assert_array_equal(_core.relu_backward(np.broadcast_to(1.0, (4, 6)), y),
                                  (y > 0).astype(np.float32))


@pytest.mark.parametrize("reduce", ["sum", "mean"])
@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "gelu", "elu"])
def test_activation_then_full_reduction_grad_matches_torch(name, reduce):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(5).standard_normal((33, 70)).astype(np.float32)
    a = em.tensor(x, requires_grad=True)
    getattr(getattr(F, name)(a), reduce)().backward()
    t = torch.tensor(x, requires_grad=True)
    getattr(getattr(torch.nn.functional, name)(t), reduce)().backward()
    # tanh/gelu round differently from torch's by an ulp or two
    np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert a.grad.data.flags.c_contiguous and a.grad.data.flags.writeable


def test_broadcast_grad_reaches_non_strided_ops_and_leaves():
    """Ops not marked strided get a contiguous gradient; leaves get an owned, writable one."""
    x = em.tensor(np.arange(6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    x.sum().backward()
    assert x.grad.data.flags.writeable and x.grad.data.flags.c_contiguous
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((2, 3)))
    x.grad.data[0, 0] = 5.0          # its own memory: writing it changes nothing else
    (x * 2).mean().backward()        # accumulates into the existing grad: + 2/6 each
    want = np.full((2, 3), 1 + 1 / 3)
    want[0, 0] = 5 + 1 / 3
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-6)

    seen = []

    def fn(g):
        seen.append((g.flags.c_contiguous, g.shape))
        return (g * 3,)
    w = em.tensor(np.ones((4, 5), np.float32), requires_grad=True)
    from ember.tensor import make_result
    out = make_result(w.data * 1, (w,), fn, "Probe")
    out.sum().backward()
    assert seen == [(True, (4, 5))]
    np.testing.assert_array_equal(w.grad.numpy(), np.full((4, 5), 3.0))

    # A linear layer after a full sum: its backward gets a materialized gradient.
    lin = em.nn.Linear(5, 3)
    inp = em.tensor(np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32))
    lin(inp).sum().backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(),
                               np.ones((3, 4), np.float32) @ inp.numpy(), rtol=1e-5)
