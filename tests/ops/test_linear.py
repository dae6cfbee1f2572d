"""linear (and matmul's GEMM): finite differences, torch, accumulate rule, threads, bad input."""
import numpy as np
import pytest

import ember as em
from ember import nn
import ember.functional as F
from helpers import compare_torch, gradcheck

rng = np.random.default_rng(0)


def r(*shape):
    return rng.standard_normal(shape)


# (input shape, out_features)
SHAPES = [((1, 4), 3), ((5, 7), 3), ((3, 1), 1), ((2, 3, 5), 4), ((4,), 2), ((0, 6), 5),
          ((2, 0, 3), 2), ((3, 0), 4), ((3, 4), 0)]


@pytest.mark.parametrize("xs,n", SHAPES, ids=str)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_linear_gradcheck(xs, n, bias):
    if 0 in xs:
        pytest.skip("nothing to difference")
    args = [r(*xs), r(n, xs[-1])] + ([r(n)] if bias else [])
    gradcheck(lambda *a: F.linear(*a), *args)


@pytest.mark.parametrize("xs,n", SHAPES + [((300, 513), 257), ((2, 7, 33), 65)], ids=str)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_linear_vs_torch(xs, n, bias):
    torch = pytest.importorskip("torch")
    args = [r(*xs), r(n, xs[-1])] + ([r(n)] if bias else [])
    big = xs[-1] > 100
    compare_torch(lambda *a: F.linear(*a), torch.nn.functional.linear, *args,
                  atol=1e-4 if big else 1e-5)


def test_linear_non_leaf_weight_and_bias():
    torch = pytest.importorskip("torch")
    # weight and bias computed from leaves: their grads flow through the graph, not into .grad
    compare_torch(lambda x, w, b: F.linear(x, w * 2.0, b + 1.0),
                  lambda x, w, b: torch.nn.functional.linear(x, w * 2.0, b + 1.0),
                  r(4, 3), r(5, 3), r(5))
    gradcheck(lambda x, w, b: F.linear(x * x, w.exp(), b * b), r(2, 3), r(4, 3), r(4))


def test_linear_weight_used_twice():
    torch = pytest.importorskip("torch")
    f_em = lambda x, w, b: F.linear(F.linear(x, w, b), w, b)  # noqa: E731
    f_t = lambda x, w, b: torch.nn.functional.linear(  # noqa: E731
        torch.nn.functional.linear(x, w, b), w, b)
    compare_torch(f_em, f_t, r(3, 4), r(4, 4), r(4))


def test_module_matches_torch_module():
    torch = pytest.importorskip("torch")
    lin = nn.Linear(7, 5)
    tl = torch.nn.Linear(7, 5)
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(lin.weight.numpy()))
        tl.bias.copy_(torch.from_numpy(lin.bias.numpy()))
    x = r(6, 7).astype(np.float32)
    y = lin(x)
    ty = tl(torch.from_numpy(x))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    g = r(6, 5).astype(np.float32)
    y.backward(g)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(lin.weight.grad.numpy(), tl.weight.grad.numpy(), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(lin.bias.grad.numpy(), tl.bias.grad.numpy(), rtol=1e-5,
                               atol=1e-5)


def test_non_contiguous_numpy_input():
    lin = nn.Linear(5, 3)
    base = r(8, 10).astype(np.float32)
    x = base[::2, 1::2]
    assert not x.flags.c_contiguous
    w, b = lin.weight.numpy(), lin.bias.numpy()
    np.testing.assert_allclose(lin(x).numpy(), x @ w.T + b, rtol=1e-5, atol=1e-6)
    x3 = r(5, 2, 4).astype(np.float32).transpose(1, 2, 0)  # (2, 4, 5), strided
    np.testing.assert_allclose(lin(x3).numpy(), x3 @ w.T + b, rtol=1e-5, atol=1e-6)


def test_empty_in_features_gives_bias():
    b = np.array([1.0, -2.0, 3.0])
    y = F.linear(np.zeros((2, 0)), np.zeros((3, 0)), b)
    np.testing.assert_array_equal(y.numpy(), np.tile(b, (2, 1)))


def test_grad_in_a_wider_dtype_reaches_linear():
    # a float64 gradient arriving at a float32 op is cast to the op's dtype (as torch does)
    lin = nn.Linear(3, 2)
    y = lin(r(4, 3))
    (y * em.tensor(np.ones((4, 2)), dtype=em.float64)).sum().backward()
    assert lin.weight.grad.dtype == np.float32
    np.testing.assert_allclose(lin.bias.grad.numpy(), [4.0, 4.0])


# ---- accumulate / overwrite ---------------------------------------------------------------------

def test_kernel_accumulates_param_grads_and_overwrites_input_grad():
    x, w, dy = (a.astype(np.float32) for a in (r(6, 4), r(3, 4), r(6, 3)))
    dw = np.ones((3, 4), dtype=np.float32)
    db = np.full(3, 2.0, dtype=np.float32)
    dx1 = em._core.linear_backward(dy, x, w, True, dw, db)
    np.testing.assert_allclose(dw, 1 + dy.T @ x, rtol=1e-5)
    np.testing.assert_allclose(db, 2 + dy.sum(0), rtol=1e-5)
    dx2 = em._core.linear_backward(dy, x, w, True, dw, db)
    np.testing.assert_allclose(dw, 1 + 2 * (dy.T @ x), rtol=1e-5)
    np.testing.assert_allclose(db, 2 + 2 * dy.sum(0), rtol=1e-5)
    np.testing.assert_allclose(dx1, dy @ w, rtol=1e-5, atol=1e-6)  # overwritten, not +=
    np.testing.assert_array_equal(dx1, dx2)
    assert em._core.linear_backward(dy, x, w, False) is None


def test_module_grads_accumulate_across_two_backwards():
    lin = nn.Linear(4, 3)
    x = em.tensor(r(5, 4), requires_grad=True)
    lin(x).sum().backward()
    gw, gb, gx = (lin.weight.grad.numpy().copy(), lin.bias.grad.numpy().copy(),
                  x.grad.numpy().copy())
    lin(x).sum().backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(), 2 * gw, rtol=1e-6)
    np.testing.assert_allclose(lin.bias.grad.numpy(), 2 * gb, rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), 2 * gx, rtol=1e-6)
    lin.zero_grad()
    assert lin.weight.grad is None
    lin(x).sum().backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(), gw, rtol=1e-6)


def test_zero_size_batch_grads_are_zero():
    lin = nn.Linear(6, 5)
    y = lin(np.zeros((0, 6), dtype=np.float32))
    assert y.shape == (0, 5)
    y.sum().backward()
    np.testing.assert_array_equal(lin.weight.grad.numpy(), np.zeros((5, 6)))
    np.testing.assert_array_equal(lin.bias.grad.numpy(), np.zeros(5))


# ---- threads --------------------------------------------------------------------------------------

def _linear_run(x, w, b):
    xt = em.tensor(x, requires_grad=True)
    wt = em.nn.Parameter(w.copy())
    bt = em.nn.Parameter(b.copy())
    y = F.linear(xt, wt, bt)
    y.backward(np.cos(y.numpy()))
    return y.numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


@pytest.mark.parametrize("xs,n", [((300, 513), 257), ((4, 61, 129), 300), ((7, 1000), 64)],
                         ids=str)
def test_linear_bitwise_identical_at_1_and_2_threads(threads, xs, n):
    x = r(*xs).astype(np.float32)
    w = r(n, xs[-1]).astype(np.float32)
    b = r(n).astype(np.float32)
    em.set_num_threads(1)
    assert em._core.measured_team_size() == 1
    one = _linear_run(x, w, b)
    em.set_num_threads(2)
    two = _linear_run(x, w, b)
    for a, c in zip(one, two):
        assert a.dtype == c.dtype and np.array_equal(a, c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("overwrite", [False, True], ids=["accumulate", "overwrite"])
def test_backward_kernel_two_threads_matches_one(threads, dtype, overwrite):
    """At two threads the input and weight gradients run one per thread: the same bits as one
    thread, and the weight gradient still accumulates (or overwrites) as asked."""
    x, w, dy = (a.astype(dtype) for a in (r(256, 200), r(130, 200), r(256, 130)))
    dw0, db0 = r(130, 200).astype(dtype), r(130).astype(dtype)
    out = []
    for nt in (1, 2):
        em.set_num_threads(nt)
        dw, db = dw0.copy(), db0.copy()
        dx = em._core.linear_backward(dy, x, w, True, dw, db, overwrite, overwrite)
        out.append((dx, dw, db))
    for a, c in zip(*out):
        assert a.tobytes() == c.tobytes()
    dx, dw, db = out[1]
    base = 0 if overwrite else 1
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(dx, dy.astype(np.float64) @ w, rtol=tol, atol=tol)
    np.testing.assert_allclose(dw, base * dw0 + dy.T.astype(np.float64) @ x, rtol=tol, atol=tol)
    np.testing.assert_allclose(db, base * db0 + dy.sum(0, dtype=np.float64), rtol=tol,
                               atol=tol)


@pytest.mark.parametrize("sa,sb", [((300, 513), (513, 257)), ((3, 100, 200), (200, 300)),
                                   ((1000, 70), (70, 5))], ids=str)
def test_matmul_bitwise_identical_at_1_and_2_threads(threads, sa, sb):
    a = r(*sa).astype(np.float32)
    b = r(*sb).astype(np.float32)

    def run():
        at = em.tensor(a, requires_grad=True)
        bt = em.tensor(b, requires_grad=True)
        c = at @ bt
        c.backward(np.sin(c.numpy()))
        return c.numpy(), at.grad.numpy(), bt.grad.numpy()

    em.set_num_threads(1)
    one = run()
    em.set_num_threads(2)
    two = run()
    for x, y in zip(one, two):
        assert np.array_equal(x, y)
    np.testing.assert_allclose(one[0], a @ b, rtol=1e-4, atol=1e-3)


def test_set_num_threads_changes_team_size(threads):
    em.set_num_threads(1)
    assert em.get_num_threads() == 1
    assert em._core.measured_team_size() == 1
    em.set_num_threads(2)
    assert em.get_num_threads() == 2
    assert em._core.measured_team_size() == 2
    with pytest.raises(ValueError):
        em.set_num_threads(0)
    assert em.get_num_threads() == 2


# ---- bad input ------------------------------------------------------------------------------------

def test_shape_mismatch_names_both_shapes():
    lin = nn.Linear(4, 3)
    with pytest.raises(ValueError, match=r"linear.*\(2, 5\).*\(3, 4\)"):
        lin(np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"bias shape \(4,\)"):
        F.linear(em.ones(2, 4), em.ones(3, 4), em.ones(4))
    with pytest.raises(ValueError, match="weight must be 2-D"):
        F.linear(em.ones(2, 4), em.ones(4))
    with pytest.raises(ValueError, match="scalar"):
        F.linear(em.tensor(1.0), em.ones(3, 1))


def test_wrong_dtype_raises_typeerror():
    lin = nn.Linear(4, 3)
    with pytest.raises(TypeError, match=r"linear.*input.*int64"):
        lin(np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(TypeError, match=r"linear.*float16"):
        em._core.linear_forward(np.zeros((2, 4), np.float16), lin.weight.numpy())
    with pytest.raises(TypeError, match=r"linear.*weight.*float16"):
        em._core.linear_forward(np.zeros((2, 4), np.float32), np.zeros((3, 4), np.float16))
    with pytest.raises(TypeError, match=r"linear.*weight.*float64"):
        F.linear(em.ones(2, 4), em.ones(3, 4, dtype=em.float64))
    with pytest.raises(TypeError, match=r"linear.*bias"):
        F.linear(em.ones(2, 4), em.ones(3, 4), em.ones(3, dtype=em.float64))
    with pytest.raises(TypeError, match=r"linear"):
        F.linear(em.ones(2, 4, dtype=em.float64), lin.weight)


def test_float_numpy_input_runs_in_float32():
    # numpy float data (float64, float16) becomes float32, the library's default dtype
    lin = nn.Linear(4, 3)
    assert lin(r(2, 4)).dtype == np.float32
    assert lin(r(2, 4).astype(np.float16)).dtype == np.float32


def test_kernel_rejects_bad_grad_buffers():
    x, w, dy = (np.ones(s, dtype=np.float32) for s in ((2, 4), (3, 4), (2, 3)))
    with pytest.raises(ValueError, match="grad_output"):
        em._core.linear_backward(np.ones((2, 2), np.float32), x, w, True)
    with pytest.raises(ValueError, match="grad_weight"):
        em._core.linear_backward(dy, x, w, True, np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="grad_bias"):
        em._core.linear_backward(dy, x, w, True, None, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="contiguous"):
        em._core.linear_forward(np.ones((4, 2), np.float32).T, w)


# ---- the GEMM under matmul and linear ---------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_gemm_shapes_and_transposes_vs_numpy(dtype, ta, tb):
    # block edges of the threaded split: sizes around 64 and 16 * 64, M > N and N > M
    for m, k, n in [(1, 1, 1), (1, 300, 1), (63, 5, 65), (65, 17, 63), (1, 7, 1100),
                    (1100, 3, 1), (130, 0, 7), (129, 64, 257)]:
        a = r(*((k, m) if ta else (m, k))).astype(dtype)
        b = r(*((n, k) if tb else (k, n))).astype(dtype)
        c = em._core.matmul(a, b, ta, tb)
        ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
        tol = 1e-4 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(c, ref, rtol=tol, atol=tol * max(k, 1),
                                   err_msg=f"{m}x{k}x{n}")


def test_batched_matmul_broadcast_operand():
    a = r(3, 5, 4).astype(np.float32)
    b = r(4, 6).astype(np.float32)
    np.testing.assert_allclose(em._core.matmul(a, b), a @ b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(em._core.matmul(b.T.copy(), a, False, True),
                               b.T @ a.transpose(0, 2, 1), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="batch"):
        em._core.matmul(r(3, 2, 2).astype(np.float32), r(2, 2, 2).astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("M", [0, 1, 5, 64, 300])   # Eigen (small M) and packed paths; K = M
def test_backward_overwrite_never_reads_the_gradient_buffers(dtype, M):
    """overwrite_grad_weight/bias: a fresh np.empty buffer is written, not read (NaN garbage in
    it must not leak out); without the flags the same call accumulates into it."""
    rng = np.random.default_rng(M)
    K, N = 37, 29
    x = rng.standard_normal((M, K)).astype(dtype)
    w = rng.standard_normal((N, K)).astype(dtype)
    dy = rng.standard_normal((M, N)).astype(dtype)
    dw = np.full((N, K), np.nan, dtype)
    db = np.full(N, np.nan, dtype)
    em._core.linear_backward(dy, x, w, False, dw, db, True, True)
    np.testing.assert_allclose(dw, dy.T.astype(np.float64) @ x, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(db, dy.sum(0), rtol=1e-4, atol=1e-4)
    # accumulate (the default): bitwise the old rule, 0 + ... for a zeroed buffer
    dw2, db2 = np.zeros((N, K), dtype), np.zeros(N, dtype)
    em._core.linear_backward(dy, x, w, False, dw2, db2)
    np.testing.assert_array_equal(dw2, dw)
    np.testing.assert_array_equal(db2, db)
    em._core.linear_backward(dy, x, w, False, dw2, db2)
    np.testing.assert_allclose(dw2, 2 * dw, rtol=1e-6)
    # one flag at a time
    dw3, db3 = np.full((N, K), np.nan, dtype), np.ones(N, dtype)
    em._core.linear_backward(dy, x, w, False, dw3, db3, True, False)
    np.testing.assert_array_equal(dw3, dw)
    np.testing.assert_allclose(db3, 1 + db, rtol=1e-5)


def test_first_backward_writes_fresh_grads_and_later_ones_accumulate():
    em.manual_seed(0)
    lin = em.nn.Linear(6, 4)
    x = em.tensor(np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32))
    lin(x).sum().backward()
    g1w, g1b = lin.weight.grad.numpy().copy(), lin.bias.grad.numpy().copy()
    np.testing.assert_allclose(g1w, np.ones((4, 3), np.float32) @ x.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(g1b, np.full(4, 3.0, np.float32))
    lin(x).sum().backward()                       # accumulates
    np.testing.assert_allclose(lin.weight.grad.numpy(), 2 * g1w, rtol=1e-6)
    lin.zero_grad()
    assert lin.weight.grad is None
    lin(x).sum().backward()                       # fresh again, no trace of the old values
    np.testing.assert_array_equal(lin.weight.grad.numpy(), g1w)
    # A failing backward leaves .grad untouched (no uninitialized buffer behind).
    lin.zero_grad()
    y = lin(x)
    with pytest.raises(ValueError):
        y.backward(np.ones((3, 5), np.float32))
    assert lin.weight.grad is None and lin.bias.grad is None
