"""nn.Sequential runs a Linear / Conv1d / Conv2d followed by a ReLU as one fused call (the ReLU is
the GEMM's epilogue, or part of the convolution's write-out), and a Conv + ReLU + MaxPool triple
as one graph node. It must give exactly what the modules give one by one, forward and
backward."""
import numpy as np
import pytest

import ember as em
from ember import functional as F
from ember import nn


def _unfused(seq, x):
    for m in seq:
        x = m(x)
    return x


def _run_both(seq, xa, g, dtype):
    """[output, input grad, parameter grads] from seq's own forward and from its modules one by
    one (the reference)."""
    outs = []
    for run in (seq.forward, lambda x: _unfused(seq, x)):
        seq.zero_grad()
        x = em.tensor(xa, dtype=dtype, requires_grad=True)
        y = run(x)
        y.backward(g)
        outs.append([y.numpy(), x.grad.numpy()] + [p.grad.numpy() for p in seq.parameters()
                                                   if p.requires_grad])
    return outs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [1, 7, 64])   # M = 1 and small M run on Eigen, 64 packed
def test_fused_matches_the_two_modules_bitwise(dtype, batch):
    em.manual_seed(0)
    seq = nn.Sequential(nn.Linear(33, 40), nn.ReLU(), nn.Linear(40, 20), nn.ReLU(),
                        nn.Linear(20, 5))
    for p in seq.parameters():
        p.data = p.data.astype(dtype)
    rng = np.random.default_rng(1)
    xa = rng.standard_normal((batch, 33)).astype(dtype)
    xa[0, :3] = np.nan                      # NaN must pass through the fused ReLU as through F.relu
    g = rng.standard_normal((batch, 5)).astype(dtype)
    outs = _run_both(seq, xa, g, dtype)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_fusion_happens_and_respects_overrides():
    seq = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    y = seq(em.tensor(np.ones((2, 4), np.float32), requires_grad=True))
    assert y.grad_fn.name == "LinearReluBackward"

    class Shifted(nn.Linear):
        def forward(self, x):
            return super().forward(x) + 100.0

    class Neg(nn.ReLU):
        def forward(self, x):
            return -F.relu(x)

    em.manual_seed(0)
    s1 = nn.Sequential(Shifted(4, 3), nn.ReLU())
    assert (s1(np.ones((2, 4), np.float32)).numpy() >= 99.0).all()   # the override ran
    s2 = nn.Sequential(nn.Linear(4, 3), Neg())
    assert (s2(np.ones((2, 4), np.float32)).numpy() <= 0).all()


def test_linear_relu_vs_torch():
    torch = pytest.importorskip("torch")
    from helpers import compare_torch
    rng = np.random.default_rng(2)
    compare_torch(lambda x, w, b: F.linear_relu(x, w, b),
                  lambda x, w, b: torch.relu(torch.nn.functional.linear(x, w, b)),
                  rng.standard_normal((16, 12)), rng.standard_normal((9, 12)),
                  rng.standard_normal(9))


def test_linear_relu_under_no_grad():
    x = np.array([[1.0, -2.0]], np.float32)
    w = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    with em.no_grad():
        y = F.linear_relu(x, w, None)
    np.testing.assert_array_equal(y.numpy(), [[1.0, 0.0]])
    assert y.grad_fn is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])   # packed float path / fallback
@pytest.mark.parametrize("oc", [6, 16, 64])   # channel-major and pixel-major write-outs
def test_conv_relu_fused_matches_the_two_modules_bitwise(dtype, oc):
    em.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(3, oc, 3, padding=1), nn.ReLU(), nn.Conv2d(oc, 4, 3), nn.ReLU(),
                        nn.Flatten(), nn.Linear(4 * 9 * 10, 3))
    for p in seq.parameters():
        p.data = p.data.astype(dtype)
    rng = np.random.default_rng(3)
    xa = rng.standard_normal((5, 3, 11, 12)).astype(dtype)
    xa[0, 0, 4, 4] = np.nan
    g = rng.standard_normal((5, 3)).astype(dtype)
    outs = _run_both(seq, xa, g, dtype)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_conv1d_relu_is_fused():
    seq = nn.Sequential(nn.Conv1d(2, 5, 3, padding=1, stride=2), nn.ReLU())
    y = seq(em.tensor(np.random.default_rng(0).standard_normal((3, 2, 9)).astype(np.float32),
                      requires_grad=True))
    assert y.grad_fn.name == "Conv1dReluBackward"
    assert (y.numpy() >= 0).all()


@pytest.mark.parametrize("oc", [6, 16, 32, 64])      # channel-major (6, 64) and pixel-major
@pytest.mark.parametrize("width", [32, 12])           # whole 16-pixel panels / straddling rows
def test_conv_relu_output_is_relu_of_conv(oc, width):
    """The fused write-out applies relu's own rule (NaN stays NaN) in every path."""
    em.manual_seed(0)
    conv = nn.Conv2d(3, oc, 3, padding=1)
    rng = np.random.default_rng(4)
    xa = rng.standard_normal((3, 3, 9, width)).astype(np.float32)
    xa[1, 2, 5, 7] = np.nan                  # NaN in every channel around (5, 7) of sample 1
    x = em.tensor(xa)
    fused = conv._forward_relu(x).numpy()
    np.testing.assert_array_equal(fused, F.relu(conv(x)).numpy())
    assert np.isnan(fused[1, :, 5, 7]).all()


# ---- Conv + ReLU + MaxPool: one graph node, the ReLU's backward inside the pool's ------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool", [
    dict(kernel_size=2),                                            # the 2x2 fast path
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)])      # overlapping windows
@pytest.mark.parametrize("width", [10, 13, 28])                      # narrow and wide rows
def test_conv_relu_pool_fused_matches_the_three_modules_bitwise(dtype, pool, width):
    em.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(**pool),
                        nn.Conv2d(6, 5, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    for p in seq.parameters():
        p.data = p.data.astype(dtype)
    assert [k for k, _ in seq._steps()] == [3, 3, 0]
    rng = np.random.default_rng(5)
    xa = rng.standard_normal((4, 3, 12, width)).astype(dtype)
    xa[0, 0, 4, 4] = np.nan                   # NaN windows: pooled NaN, masked gradient
    xa[1] = -np.abs(xa[1])                    # mostly all-negative windows: zero gradient
    n_out = seq(xa).shape[1]
    g = rng.standard_normal((4, n_out)).astype(dtype)
    g[2, ::3] = -0.0
    outs = _run_both(seq, xa, g, dtype)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv1d_relu_pool_fused_matches_the_three_modules_bitwise(dtype):
    em.manual_seed(0)
    seq = nn.Sequential(nn.Conv1d(2, 7, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2))
    for p in seq.parameters():
        p.data = p.data.astype(dtype)
    rng = np.random.default_rng(6)
    xa = rng.standard_normal((3, 2, 41)).astype(dtype)
    xa[0, 1, 7] = np.nan
    g = rng.standard_normal((3, 7, 20)).astype(dtype)
    y = seq(em.tensor(xa, dtype=dtype, requires_grad=True))
    assert y.grad_fn.name == "Conv1dReluMaxPool1dBackward"
    outs = _run_both(seq, xa, g, dtype)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_conv_relu_pool_fusion_only_where_it_applies():
    em.manual_seed(0)
    x = np.random.default_rng(7).standard_normal((2, 1, 8, 8)).astype(np.float32)
    seq = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2))
    y = seq(em.tensor(x, requires_grad=True))
    assert y.grad_fn.name == "Conv2dReluMaxPool2dBackward"
    # no graph: the same values, nothing recorded
    with em.no_grad():
        y0 = seq(x)
    assert y0.grad_fn is None
    np.testing.assert_array_equal(y0.numpy(), y.detach().numpy())
    # a pool asked for indices returns (values, indices) as the layers do, read at call time
    seq[2].return_indices = True
    out, idx = seq(em.tensor(x, requires_grad=True))
    np.testing.assert_array_equal(out.numpy(), y.detach().numpy())
    assert idx.shape == out.shape
    # mismatched dimensionality or a different activation: not fused
    assert [k for k, _ in nn.Sequential(nn.Conv1d(1, 3, 3), nn.ReLU(),
                                        nn.MaxPool2d(2))._steps()] == [1, 0]
    assert [k for k, _ in nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(),
                                        nn.MaxPool2d(2))._steps()] == [0, 0, 0]


def test_conv_relu_pool_frozen_conv_and_input_without_grad():
    # Only the input needs a gradient (frozen conv), then only the conv's parameters.
    em.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    rng = np.random.default_rng(8)
    xa = rng.standard_normal((3, 2, 9, 9)).astype(np.float32)
    g = rng.standard_normal((3, 4, 4, 4)).astype(np.float32)
    for p in seq.parameters():
        p.requires_grad = False
    outs = _run_both(seq, xa, g, np.float32)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
    for p in seq.parameters():
        p.requires_grad = True
    res = []
    for run in (seq.forward, lambda x: _unfused(seq, x)):
        seq.zero_grad()
        run(em.tensor(xa)).backward(g)
        res.append([p.grad.numpy() for p in seq.parameters()])
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


def test_conv_relu_pool_vs_torch():
    torch = pytest.importorskip("torch")
    em.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
    tseq = torch.nn.Sequential(torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(),
                               torch.nn.MaxPool2d(2), torch.nn.Conv2d(6, 16, 5),
                               torch.nn.ReLU(), torch.nn.MaxPool2d(2)).double()
    for p, tp in zip(seq.parameters(), tseq.parameters()):
        p.data = tp.detach().numpy().copy()
    xa = np.random.default_rng(9).standard_normal((4, 1, 28, 28))
    g = np.random.default_rng(10).standard_normal((4, 16, 5, 5))
    x = em.tensor(xa, dtype=np.float64, requires_grad=True)
    y = seq(x)
    y.backward(g)
    tx = torch.tensor(xa, requires_grad=True)
    ty = tseq(tx)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for p, tp in zip(seq.parameters(), tseq.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-10, atol=1e-10)
