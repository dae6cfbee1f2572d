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
