"""max/avg/adaptive pooling: gradchecks, torch grid (ties, padding, ceil_mode), threads, errors,
and the pooling layers."""
import numpy as np
import pytest

import ember as em
from ember import functional as F
from ember import nn
from helpers import compare_torch, gradcheck

rng = np.random.default_rng(1)


def R(*s):
    return rng.standard_normal(s)


# ---- float64 finite differences (random data: no ties, so max is differentiable) ------------

def test_max_pool_gradcheck():
    gradcheck(lambda x: F.max_pool2d(x, 3, stride=2, padding=1), R(2, 2, 7, 6))
    gradcheck(lambda x: F.max_pool2d(x, (2, 3), stride=(1, 2), dilation=(2, 1), ceil_mode=True),
              R(1, 2, 7, 8))
    gradcheck(lambda x: F.max_pool1d(x, 3, stride=2, padding=1), R(2, 3, 9))


def test_avg_pool_gradcheck():
    gradcheck(lambda x: F.avg_pool2d(x, 3, stride=2, padding=1), R(2, 2, 7, 6))
    gradcheck(lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False,
                                     ceil_mode=True), R(2, 2, 6, 7))
    gradcheck(lambda x: F.avg_pool1d(x, 4, stride=3, padding=2), R(2, 3, 10))


def test_adaptive_avg_pool_gradcheck():
    gradcheck(lambda x: F.adaptive_avg_pool2d(x, (3, 2)), R(2, 2, 7, 5))
    gradcheck(lambda x: F.adaptive_avg_pool2d(x, 1), R(2, 3, 4, 4))


# ---- against torch --------------------------------------------------------------------------

torch = pytest.importorskip("torch")
TF = torch.nn.functional

MAX_GRID = [
    ((2, 3, 8, 8), dict(kernel_size=2)),
    ((2, 3, 9, 7), dict(kernel_size=2)),                                   # odd sizes
    ((1, 2, 9, 7), dict(kernel_size=3, stride=2, padding=1)),
    ((2, 2, 10, 9), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1))),
    ((2, 2, 10, 9), dict(kernel_size=3, stride=2, ceil_mode=True)),
    ((2, 2, 11, 11), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, dilation=2)),
    ((2, 2, 7, 7), dict(kernel_size=2, stride=3)),                          # stride > kernel
    ((1, 1, 5, 5), dict(kernel_size=1)),
]


@pytest.mark.parametrize("xs,kw", MAX_GRID)
def test_max_pool2d_vs_torch(xs, kw):
    compare_torch(lambda x: F.max_pool2d(x, **kw), lambda x: TF.max_pool2d(x, **kw), R(*xs))


def test_max_pool_ties_match_torch():
    # Integer-valued data: many equal maxima in each window; the gradient goes to the same
    # (first in scan order) element as in torch.
    x = rng.integers(0, 3, size=(2, 3, 8, 9)).astype(np.float64)
    for kw in [dict(kernel_size=2), dict(kernel_size=3, stride=1, padding=1),
               dict(kernel_size=3, stride=2, ceil_mode=True)]:
        compare_torch(lambda x: F.max_pool2d(x, **kw), lambda x: TF.max_pool2d(x, **kw), x)
        y, idx = F.max_pool2d(x, return_indices=True, **kw)
        ty, tidx = TF.max_pool2d(torch.tensor(x), return_indices=True, **kw)
        np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    x = np.zeros((1, 1, 4, 4))  # all ties
    compare_torch(lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2), x)


@pytest.mark.parametrize("xs,kw", [
    ((2, 3, 11), dict(kernel_size=2)),
    ((2, 3, 11), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((1, 2, 12), dict(kernel_size=3, dilation=3)),
])
def test_max_pool1d_vs_torch(xs, kw):
    compare_torch(lambda x: F.max_pool1d(x, **kw), lambda x: TF.max_pool1d(x, **kw), R(*xs))
    y, idx = F.max_pool1d(R(*xs), return_indices=True, **kw)
    assert idx.dtype == np.int64 and idx.shape == y.shape


AVG_GRID = [
    ((2, 3, 8, 8), dict(kernel_size=2)),
    ((2, 3, 9, 7), dict(kernel_size=3, stride=2, padding=1)),
    ((2, 3, 9, 7), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ((2, 2, 10, 9), dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 1), ceil_mode=True)),
    ((2, 2, 10, 9), dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 1), ceil_mode=True,
                         count_include_pad=False)),
    ((2, 2, 7, 7), dict(kernel_size=2, stride=3)),
    ((2, 2, 7, 7), dict(kernel_size=3, divisor_override=2)),
]


@pytest.mark.parametrize("xs,kw", AVG_GRID)
def test_avg_pool2d_vs_torch(xs, kw):
    compare_torch(lambda x: F.avg_pool2d(x, **kw), lambda x: TF.avg_pool2d(x, **kw), R(*xs))


@pytest.mark.parametrize("kw", [dict(kernel_size=3), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=4, stride=2, padding=2, ceil_mode=True,
                                     count_include_pad=False)])
def test_avg_pool1d_vs_torch(kw):
    compare_torch(lambda x: F.avg_pool1d(x, **kw), lambda x: TF.avg_pool1d(x, **kw), R(2, 3, 13))


@pytest.mark.parametrize("xs,out", [((2, 3, 8, 8), 1), ((2, 3, 9, 7), (3, 2)),
                                    ((1, 2, 5, 7), (4, 5)), ((2, 2, 4, 4), (7, 9)),
                                    ((2, 2, 6, 5), (None, 2))])
def test_adaptive_avg_pool2d_vs_torch(xs, out):
    compare_torch(lambda x: F.adaptive_avg_pool2d(x, out),
                  lambda x: TF.adaptive_avg_pool2d(x, out), R(*xs))


def test_adaptive_avg_pool1d_vs_torch():
    compare_torch(lambda x: F.adaptive_avg_pool1d(x, 4), lambda x: TF.adaptive_avg_pool1d(x, 4),
                  R(2, 3, 11))


# ---- threads --------------------------------------------------------------------------------

def test_bitwise_same_at_1_and_2_threads():
    x = R(32, 64, 32, 32).astype(np.float32)  # large enough to run in parallel
    prev = em.get_num_threads()
    res = []
    try:
        for nt in (1, 2):
            em.set_num_threads(nt)
            out = []
            for f in (lambda t: F.max_pool2d(t, 2), lambda t: F.max_pool2d(t, 3, 2, 1),
                      lambda t: F.avg_pool2d(t, 3, 2, 1), lambda t: F.adaptive_avg_pool2d(t, 3)):
                t = em.tensor(x, requires_grad=True)
                y = f(t)
                y.backward(np.ones(y.shape, np.float32))
                out += [y.numpy(), t.grad.numpy()]
            res.append(out)
    finally:
        em.set_num_threads(prev)
    for a, b in zip(*res):
        assert np.array_equal(a, b)


# ---- errors ---------------------------------------------------------------------------------

def test_errors():
    x = np.zeros((2, 3, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"max_pool2d: expected a 4-D input.*\(3, 8, 8\)"):
        F.max_pool2d(np.zeros((3, 8, 8), np.float32), 2)
    with pytest.raises(ValueError, match=r"max_pool2d.*padding should be at most half"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match=r"avg_pool2d.*larger than the padded input"):
        F.avg_pool2d(x, 9)
    with pytest.raises(ValueError, match=r"max_pool1d: expected a 3-D input"):
        F.max_pool1d(x, 2)
    with pytest.raises(ValueError, match=r"kernel_size must be >= 1"):
        F.max_pool2d(x, 0)
    with pytest.raises(ValueError, match=r"output_size must be >= 1"):
        F.adaptive_avg_pool2d(x, 0)
    with pytest.raises(TypeError, match=r"max_pool2d.*float32 or float64"):
        F.max_pool2d(em.Tensor(np.zeros((1, 1, 4, 4), np.int64)), 2)


# ---- layers ---------------------------------------------------------------------------------

def test_pool_layers():
    x = R(2, 3, 9, 8).astype(np.float32)
    tx = torch.tensor(x)
    pairs = [(nn.MaxPool2d(2), torch.nn.MaxPool2d(2)),
             (nn.MaxPool2d(3, 2, 1, ceil_mode=True), torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True)),
             (nn.AvgPool2d(3, 2, 1, count_include_pad=False),
              torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False)),
             (nn.AdaptiveAvgPool2d((2, 3)), torch.nn.AdaptiveAvgPool2d((2, 3)))]
    for a, b in pairs:
        np.testing.assert_allclose(a(x).numpy(), b(tx).numpy(), rtol=1e-6, atol=1e-6)
    x1 = R(2, 3, 10).astype(np.float32)
    for a, b in [(nn.MaxPool1d(3, 2), torch.nn.MaxPool1d(3, 2)),
                 (nn.AvgPool1d(2), torch.nn.AvgPool1d(2)),
                 (nn.AdaptiveAvgPool1d(3), torch.nn.AdaptiveAvgPool1d(3))]:
        np.testing.assert_allclose(a(x1).numpy(), b(torch.tensor(x1)).numpy(), rtol=1e-6,
                                   atol=1e-6)
    y, idx = nn.MaxPool2d(2, return_indices=True)(x)
    assert idx.shape == y.shape == (2, 3, 4, 4)
    assert repr(nn.MaxPool2d(2)) == repr(torch.nn.MaxPool2d(2))


# ---- the 2-wide / stride-2 max pooling fast path (2x2 in 2-D, kernel 2 in 1-D) ---------------

# Every window of 4 values over {NaN, -inf, -0.0, +0.0, 1, 2}: NaN in every position and every
# combination of positions (the last NaN in scan order wins, as in PyTorch), ties (the first
# maximum wins), signed zeros (compared equal: the first is kept, its sign bit is the output).
_VALS = np.array([np.nan, -np.inf, -0.0, 0.0, 1.0, 2.0])
_WINDOWS = np.array(np.meshgrid(*[_VALS] * 4, indexing="ij")).reshape(4, -1).T  # (1296, 4)


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def _tile_windows(n_rows, ow, extra_w, extra_h, dtype, seed):
    """(1, C, 2*n_rows + extra_h, 2*ow + extra_w) with the windows of _WINDOWS, shuffled, in the
    2x2 cells (cycled to fill); the extra rows/columns (outside every window) are random."""
    r = np.random.default_rng(seed)
    n_cells = n_rows * ow
    C = max(1, -(-len(_WINDOWS) // n_cells))
    cells = _WINDOWS[r.permutation(np.resize(np.arange(len(_WINDOWS)), C * n_cells))]
    x = r.standard_normal((1, C, 2 * n_rows + extra_h, 2 * ow + extra_w))
    c = cells.reshape(C, n_rows, ow, 2, 2).transpose(0, 1, 3, 2, 4).reshape(C, 2 * n_rows, 2 * ow)
    x[0, :, :2 * n_rows, :2 * ow] = c
    return x.astype(dtype)


def _check_max_pool_vs_torch(x, nd, **kw):
    """Forward values (bitwise), indices, and the backward (bitwise, grad_output with -0.0 and
    NaN entries) against torch."""
    em_pool, t_pool = (F.max_pool2d, TF.max_pool2d) if nd == 2 else (F.max_pool1d, TF.max_pool1d)
    t = em.tensor(x, dtype=x.dtype, requires_grad=True)
    y, idx = em_pool(t, 2, return_indices=True, **kw)
    tx = torch.tensor(x, requires_grad=True)
    ty, tidx = t_pool(tx, 2, return_indices=True, **kw)
    np.testing.assert_array_equal(_bits(y.numpy()), _bits(ty.detach().numpy()))
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    g = np.random.default_rng(7).standard_normal(y.shape).astype(x.dtype)
    g.reshape(-1)[::3] = -0.0  # scatter-add into zeros makes these +0.0 in torch
    g.reshape(-1)[1::7] = np.nan
    y.backward(g)
    ty.backward(torch.tensor(g))
    np.testing.assert_array_equal(_bits(t.grad.numpy()), _bits(tx.grad.numpy()))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ow,extra_w,extra_h", [
    (1, 0, 0), (3, 1, 1), (4, 0, 1), (7, 1, 0), (8, 0, 0), (9, 1, 1), (13, 0, 0), (16, 1, 0),
    (17, 0, 1), (33, 1, 1)])
def test_max_pool2d_2x2_nan_ties_signed_zeros(ow, extra_w, extra_h, dtype):
    x = _tile_windows(5, ow, extra_w, extra_h, dtype, seed=ow)
    _check_max_pool_vs_torch(x, 2)
    _check_max_pool_vs_torch(x, 2, stride=2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ow,extra_w", [(1, 1), (5, 0), (8, 1), (12, 0), (19, 1), (64, 0)])
def test_max_pool1d_2_nan_ties_signed_zeros(ow, extra_w, dtype):
    # 1-D windows are the pairs (c0, c1) of the 2x2 windows: every NaN / tie / zero combination.
    x = _tile_windows(2, ow, extra_w, 0, dtype, seed=ow)[0]  # (C, H, W) read as (N, C, L)
    _check_max_pool_vs_torch(x, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_2x2_bitwise_1_vs_2_threads(dtype):
    # Large enough to run in parallel (1152 planes); NaNs and ties included; 2-D and 1-D, with
    # and without indices.
    x = _tile_windows(16, 16, 1, 1, dtype, seed=3)
    x = np.concatenate([x] * 192, axis=0)  # (192, 6, 33, 33)
    x1 = x.reshape(x.shape[0], x.shape[1], -1)[:, :, :1088]
    prev = em.get_num_threads()
    res = []
    try:
        for nt in (1, 2):
            em.set_num_threads(nt)
            out = []
            for a, pool in ((x, F.max_pool2d), (x1, F.max_pool1d)):
                t = em.tensor(a, dtype=dtype, requires_grad=True)
                y, idx = pool(t, 2, return_indices=True)
                y.backward(np.ones(y.shape, dtype))
                with em.no_grad():
                    y2 = pool(em.tensor(a, dtype=dtype), 2)
                out += [_bits(y.numpy()), idx.numpy(), _bits(t.grad.numpy()), _bits(y2.numpy())]
            res.append(out)
    finally:
        em.set_num_threads(prev)
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shp", [(2, 3, 10, 34), (2, 3, 6, 7), (2, 3, 34), (2, 3, 7)])
def test_max_pool_backward_any_indices(shp, dtype):
    # Indices that are not the forward's (outside their window, repeated) are scattered-added,
    # as torch's max_pool2d_with_indices_backward does; out-of-range ones raise. Bad indices
    # at the start and the end of a plane (wide and narrow rows, vector and scalar code).
    nd = len(shp) - 2
    r = np.random.default_rng(5)
    plane = int(np.prod(shp[2:]))
    k = [2] * nd
    good = F.max_pool2d if nd == 2 else F.max_pool1d
    _, idx = good(r.standard_normal(shp), 2, return_indices=True)
    idx = idx.numpy().copy()
    g = r.standard_normal(idx.shape).astype(dtype)
    for bad_plane in [(0, 0), (1, 2)]:
        q = idx[bad_plane].reshape(-1)
        q[-1] = 0                     # outside its window
        q[-2] = q[0]                  # a repeat, outside its window
        if q.size > 6:
            q[3] = plane - 1
            q[4] = q[5]
    dx = em._core.max_pool_backward(g, idx, list(shp), k, k, [0] * nd, [1] * nd, False, nd)
    ref = np.zeros((shp[0] * shp[1], plane), dtype)
    np.add.at(ref, (np.arange(ref.shape[0])[:, None], idx.reshape(ref.shape[0], -1)),
              g.reshape(ref.shape[0], -1))
    np.testing.assert_array_equal(dx.reshape(ref.shape), ref)
    q = idx[1, 1].reshape(-1)
    q[1] = plane
    with pytest.raises(IndexError, match=rf"index {plane} is out of range for an input plane of "
                                         rf"{plane} elements"):
        em._core.max_pool_backward(g, idx, list(shp), k, k, [0] * nd, [1] * nd, False, nd)
    q[1] = -1
    q[-1] = plane + 5  # the first bad one is reported
    with pytest.raises(IndexError, match=r"index -1 is out of range"):
        em._core.max_pool_backward(g, idx, list(shp), k, k, [0] * nd, [1] * nd, False, nd)
    # an index whose low 32 bits are in its window
    _, idx = good(r.standard_normal(shp), 2, return_indices=True)
    idx = idx.numpy().copy()
    idx[1, 1].reshape(-1)[0] += 2**32
    with pytest.raises(IndexError, match=rf"index {idx[1, 1].reshape(-1)[0]} is out of range"):
        em._core.max_pool_backward(g, idx, list(shp), k, k, [0] * nd, [1] * nd, False, nd)


def test_max_pool_backward_out_of_range_general_kernel():
    # The kernel, not the binding, bound-checks indices: also outside the kernel-2 fast path.
    x = R(2, 3, 9, 8)
    _, idx = F.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
    idx = idx.numpy().copy()
    g = np.ones(idx.shape)
    args = ([3, 3], [2, 2], [1, 1], [1, 1], False, 2)
    dx = em._core.max_pool_backward(g, idx, [2, 3, 9, 8], *args)
    ref = np.zeros((6, 72))
    np.add.at(ref, (np.arange(6)[:, None], idx.reshape(6, -1)), g.reshape(6, -1))
    np.testing.assert_array_equal(dx.reshape(6, 72), ref)
    idx[1, 2, 3, 1] = 72
    with pytest.raises(IndexError, match=r"index 72 is out of range for an input plane of 72"):
        em._core.max_pool_backward(g, idx, [2, 3, 9, 8], *args)


# ---- max pooling backward with the ReLU of its input applied (relu_output) -------------------
# nn.Sequential's Conv + ReLU + MaxPool step pools relu(conv) and, in the backward, applies the
# ReLU's mask inside the pool's scatter (relu_output = the pooled values). That must be bitwise
# relu_backward(max_pool_backward(g), relu(x)), for every NaN / tie / signed-zero window.

def _relu_pool_backward_pair(x, nd, k, s, p, d, ceil_mode=False):
    """(fused, reference) input gradients of max_pool(relu(x)) for a gradient with -0.0, NaN."""
    rx = F.relu(em.tensor(x, dtype=x.dtype)).numpy()
    pooled, idx = em._core.max_pool_forward(rx, k, s, p, d, ceil_mode, nd, True)
    g = np.random.default_rng(11).standard_normal(pooled.shape).astype(x.dtype)
    g.reshape(-1)[::3] = -0.0
    g.reshape(-1)[1::7] = np.nan
    g.reshape(-1)[2::11] = np.inf
    args = (list(x.shape), k, s, p, d, ceil_mode, nd)
    fused = em._core.max_pool_backward(g, idx, *args, relu_output=pooled)
    ref = em._core.relu_backward(em._core.max_pool_backward(g, idx, *args), rx)
    return fused, ref


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ow,extra_w,extra_h", [
    (1, 0, 0), (2, 1, 0), (3, 1, 1), (5, 0, 0), (7, 1, 0), (8, 0, 0), (9, 1, 1), (14, 0, 0),
    (16, 1, 0), (17, 0, 1), (33, 1, 1)])
def test_max_pool_backward_relu_output_2x2(ow, extra_w, extra_h, dtype):
    x = _tile_windows(5, ow, extra_w, extra_h, dtype, seed=ow)
    fused, ref = _relu_pool_backward_pair(x, 2, [2, 2], [2, 2], [0, 0], [1, 1])
    np.testing.assert_array_equal(_bits(fused), _bits(ref))
    # the data has windows that are all <= 0 and NaN windows: the mask is not all ones
    assert (ref == 0).sum() > (ref != 0).sum()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ow,extra_w", [(1, 1), (5, 0), (8, 1), (19, 1)])
def test_max_pool1d_backward_relu_output(ow, extra_w, dtype):
    x = _tile_windows(2, ow, extra_w, 0, dtype, seed=ow)[0]
    fused, ref = _relu_pool_backward_pair(x, 1, [2], [2], [0], [1])
    np.testing.assert_array_equal(_bits(fused), _bits(ref))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_backward_relu_output_general_kernel(dtype):
    # Overlapping windows (3x3, stride 2, padding 1, ceil_mode): an element that is the arg-max
    # of several windows gets their masked gradients summed.
    x = _tile_windows(5, 6, 1, 1, dtype, seed=4)
    fused, ref = _relu_pool_backward_pair(x, 2, [3, 3], [2, 2], [1, 1], [1, 1], ceil_mode=True)
    np.testing.assert_array_equal(_bits(fused), _bits(ref))


def test_max_pool_backward_relu_output_threads():
    x = _tile_windows(16, 16, 1, 1, np.float32, seed=3)
    x = np.concatenate([x] * 192, axis=0)  # (192, 6, 33, 33): runs in parallel
    prev = em.get_num_threads()
    try:
        res = []
        for nt in (1, 2):
            em.set_num_threads(nt)
            res.append(_relu_pool_backward_pair(x, 2, [2, 2], [2, 2], [0, 0], [1, 1]))
    finally:
        em.set_num_threads(prev)
    np.testing.assert_array_equal(_bits(res[0][0]), _bits(res[0][1]))
    np.testing.assert_array_equal(_bits(res[0][0]), _bits(res[1][0]))


def test_max_pool_backward_relu_output_errors():
    x = np.ones((1, 2, 4, 4), np.float32)
    y, idx = em._core.max_pool_forward(x, [2, 2], [2, 2], [0, 0], [1, 1], False, 2, True)
    args = ([1, 2, 4, 4], [2, 2], [2, 2], [0, 0], [1, 1], False, 2)
    with pytest.raises(ValueError, match=r"max_pool2d_backward: relu_output shape \(2, 2, 2\) "
                                         r"does not match output shape \(1, 2, 2, 2\)"):
        em._core.max_pool_backward(y, idx, *args, relu_output=y[0])
    with pytest.raises(TypeError, match="max_pool2d_backward"):
        em._core.max_pool_backward(y, idx, *args, relu_output=y.astype(np.float64))
