"""Winograd F(2x2, 3x3) convolution (ops/conv_winograd): which shapes take it, accuracy of the
output, input gradient and weight gradient against float64 (ember's float64 path is im2col, an independent algorithm), edge tiles, k-blocks,
padding, fused ReLU, NaN/inf reach, batch and thread invariance, conv_transpose, the switch."""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import ember as em
from ember import _core
from ember import functional as F

rng = np.random.default_rng(11)


def methods(xs, ws, padding=1, stride=1, dilation=1, groups=1, mode=""):
    return _core.conv_methods(list(xs), list(ws), [stride], [padding] if mode == "" else [0],
                              [dilation], groups, mode, 2)


# A build with the packed micro-kernel (AVX2+FMA) must route W9's convolution to Winograd.
PACKED = methods((64, 3, 32, 32), (32, 3, 3, 3))["forward"] == "packed"
needs_winograd = pytest.mark.skipif(not PACKED, reason="portable build: no Winograd path")


def data(xs, ws):
    x = rng.standard_normal(xs)
    w = rng.standard_normal(ws) / np.sqrt(ws[1] * 9)  # outputs of unit scale
    b = rng.standard_normal(ws[0])
    return x, w, b


def conv_both(x, w, b, **kw):
    """float32 result (Winograd where it applies) and float64 reference."""
    y32 = F.conv2d(em.tensor(x, dtype=np.float32), em.tensor(w, dtype=np.float32),
                   None if b is None else em.tensor(b, dtype=np.float32), **kw).numpy()
    y64 = F.conv2d(em.tensor(x, dtype=np.float64), em.tensor(w, dtype=np.float64),
                   None if b is None else em.tensor(b, dtype=np.float64), **kw).numpy()
    return y32, y64


@needs_winograd
def test_which_shapes_take_winograd():
    w9 = methods((32, 64, 32, 32), (64, 64, 3, 3))
    assert w9["forward"] == "winograd" and w9["input_grad"] == "winograd"
    assert w9["weight_grad"] == "winograd"
    # the input gradient of 3 -> 32 is a 32 -> 3 convolution: too few output channels
    assert methods((64, 32, 16, 16), (64, 32, 3, 3))["input_grad"] == "winograd"
    for xs, ws, kw in [((8, 32, 16, 16), (32, 32, 5, 5), dict(padding=2)),
                       ((8, 32, 16, 16), (32, 32, 3, 3), dict(stride=2)),
                       ((8, 32, 16, 16), (32, 32, 3, 3), dict(dilation=2, padding=2)),
                       ((8, 32, 16, 16), (32, 16, 3, 3), dict(groups=2)),
                       ((8, 8, 32, 32), (8, 8, 3, 3), dict()),       # too few channels
                       ((64, 16, 8, 8), (16, 16, 3, 3), dict()),     # narrow rows, 16 channels
                       ((8, 32, 1, 32), (32, 32, 3, 3), dict())]:    # one output row
        assert methods(xs, ws, **kw)["forward"] != "winograd", (xs, ws, kw)
    assert methods((64, 3, 32, 32), (32, 3, 3, 3))["input_grad"] != "winograd"


# (x shape, w shape, padding): odd and even sizes (edge tiles cut by the image), padding 0/1/2
# and 'same', tile rows narrower and wider than one 8-tile vector, several images per block,
# C > 256 (several k-blocks), output channels not a multiple of the kernel's 6 rows.
SHAPES = [
    ((2, 32, 8, 8), (32, 32, 3, 3), 1),
    ((1, 16, 5, 35), (17, 16, 3, 3), 1),
    ((3, 20, 9, 19), (23, 20, 3, 3), 0),
    ((2, 33, 31, 29), (40, 33, 3, 3), 1),
    ((2, 16, 18, 18), (16, 16, 3, 3), 2),
    ((2, 24, 14, 33), (70, 24, 3, 3), "same"),
    ((3, 32, 3, 3), (32, 32, 3, 3), 1),          # one tile row of 2 tiles, cut
    ((5, 64, 4, 4), (64, 64, 3, 3), 1),          # 2 tiles per row, 5 images in a block
    ((1, 300, 6, 6), (32, 300, 3, 3), 1),        # 2 k-blocks of 150 channels
    ((1, 520, 5, 5), (33, 520, 3, 3), 1),        # 3 k-blocks
]


@needs_winograd
@pytest.mark.parametrize("xs,ws,padding", SHAPES)
def test_forward_and_input_grad_match_float64(xs, ws, padding):
    kw = dict(padding=padding)
    m = methods(xs, ws, **(kw if padding != "same" else dict(mode="same")))
    assert m["forward"] == "winograd"
    x, w, b = data(xs, ws)
    y32, y64 = conv_both(x, w, b, **kw)
    assert y32.shape == y64.shape
    np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=2e-5)
    # input gradient: runs as the flipped convolution (Winograd when that one qualifies)
    g = rng.standard_normal(y64.shape)
    grads = []
    for dt in (np.float32, np.float64):
        xt = em.tensor(x, dtype=dt, requires_grad=True)
        F.conv2d(xt, em.tensor(w, dtype=dt), None, **kw).backward(g.astype(dt))
        grads.append(xt.grad.numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=2e-5)


@needs_winograd
@pytest.mark.parametrize("xs,ws,padding", SHAPES)
def test_weight_grad_matches_float64(xs, ws, padding):
    assert methods(xs, ws, **(dict(padding=padding) if padding != "same"
                              else dict(mode="same")))["weight_grad"] == "winograd"
    x, w, b = data(xs, ws)
    grads = []
    for dt in (np.float32, np.float64):
        wt = em.tensor(w, dtype=dt, requires_grad=True)
        bt = em.tensor(b, dtype=dt, requires_grad=True)
        y = F.conv2d(em.tensor(x, dtype=dt), wt, bt, padding=padding)
        g = np.random.default_rng(4).standard_normal(y.shape).astype(dt)
        y.backward(g)
        grads.append((wt.grad.numpy(), bt.grad.numpy()))
    scale = np.abs(grads[1][0]).max()
    np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-5, atol=2e-6 * scale)
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-5, atol=1e-4)


@needs_winograd
def test_weight_grad_accumulates_and_is_thread_invariant():
    x, w, _ = data((6, 32, 12, 20), (24, 32, 3, 3))
    g = rng.standard_normal((6, 24, 12, 20)).astype(np.float32)
    n = em.get_num_threads()
    got = []
    try:
        for threads in (1, 2):
            em.set_num_threads(threads)
            wt = em.tensor(w, dtype=np.float32, requires_grad=True)
            for _ in range(2):  # the second backward adds to .grad
                F.conv2d(em.tensor(x, dtype=np.float32), wt, padding=1).backward(g)
            got.append(wt.grad.numpy().copy())
    finally:
        em.set_num_threads(n)
    np.testing.assert_array_equal(got[0], got[1])
    wt = em.tensor(w, dtype=np.float32, requires_grad=True)
    F.conv2d(em.tensor(x, dtype=np.float32), wt, padding=1).backward(g)
    np.testing.assert_allclose(got[0], 2 * wt.grad.numpy(), rtol=1e-6, atol=1e-6)


@needs_winograd
def test_input_grad_through_winograd_matches_float64():
    xs, ws = (3, 64, 11, 13), (32, 64, 3, 3)   # input gradient: a 32 -> 64 convolution
    assert methods(xs, ws)["input_grad"] == "winograd"
    x, w, _ = data(xs, ws)
    g = rng.standard_normal((3, 32, 11, 13))
    grads = []
    for dt in (np.float32, np.float64):
        xt = em.tensor(x, dtype=dt, requires_grad=True)
        F.conv2d(xt, em.tensor(w, dtype=dt), padding=1).backward(g.astype(dt))
        grads.append(xt.grad.numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=2e-5)


@needs_winograd
@pytest.mark.parametrize("padding", [0, 1, 2])
def test_conv_transpose_stride1_matches_float64(padding):
    # conv_transpose2d at stride 1 is the flipped convolution: Winograd runs its forward, and
    # its weight gradient is the convolution's (the roles of input and gradient swapped)
    x = rng.standard_normal((2, 32, 9, 20))  # widths >= 16 on both sides: Winograd
    w = rng.standard_normal((32, 24, 3, 3)) / np.sqrt(32 * 9)
    b = rng.standard_normal(24)
    out, dws = [], []
    for dt in (np.float32, np.float64):
        wt = em.tensor(w, dtype=dt, requires_grad=True)
        y = F.conv_transpose2d(em.tensor(x, dtype=dt), wt, em.tensor(b, dtype=dt),
                               padding=padding)
        y.backward(np.random.default_rng(6).standard_normal(y.shape).astype(dt))
        out.append(y.numpy())
        dws.append(wt.grad.numpy())
    np.testing.assert_allclose(out[0], out[1], rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(dws[0], dws[1], rtol=1e-5, atol=2e-6 * np.abs(dws[1]).max())


@needs_winograd
def test_fused_relu_is_relu_of_the_output():
    x, w, b = data((2, 32, 10, 12), (32, 32, 3, 3))
    args = [em.tensor(a, dtype=np.float32).numpy() for a in (x, w, b)]
    common = ([1], [1], [1], 1, "", 2)
    y = _core.conv_forward(*args, *common)
    yr = _core.conv_forward(*args, *common, relu=True)
    assert (y < 0).any() and (y > 0).any()
    np.testing.assert_array_equal(yr, np.where(y < 0, np.float32(0), y))


@needs_winograd
def test_batch_and_thread_invariance():
    x, w, b = data((7, 32, 14, 18), (48, 32, 3, 3))
    xt, wt, bt = (em.tensor(a, dtype=np.float32) for a in (x, w, b))
    n = em.get_num_threads()
    try:
        em.set_num_threads(1)
        y1 = F.conv2d(xt, wt, bt, padding=1).numpy()
        em.set_num_threads(2)
        y2 = F.conv2d(xt, wt, bt, padding=1).numpy()
    finally:
        em.set_num_threads(n)
    np.testing.assert_array_equal(y1, y2)
    # sample 3 alone falls in other blocks than within the batch: the same bits
    y3 = F.conv2d(em.tensor(x[3:4], dtype=np.float32), wt, bt, padding=1).numpy()
    np.testing.assert_array_equal(y3[0], y1[3])


@needs_winograd
def test_nan_and_inf_reach_exactly_the_windows_they_lie_in():
    x, w, b = data((2, 32, 9, 12), (32, 32, 3, 3))
    x[0, 5, 0, 0] = np.nan     # corner of a tile
    x[0, 7, 4, 6] = np.nan     # inside
    x[1, 2, 8, 11] = np.inf    # last row and column
    x[1, 9, 3, 5] = -np.inf
    y32, y64 = conv_both(x, w, b, padding=1)
    # the same outputs are non-finite as in the direct float64 convolution; an infinite input
    # may come out NaN rather than +-inf (infinities of both signs meet in the transforms)
    np.testing.assert_array_equal(np.isfinite(y32), np.isfinite(y64))
    np.testing.assert_array_equal(np.isnan(y32) & ~np.isnan(y64), np.isinf(y64) & np.isnan(y32))
    fin = np.isfinite(y64)
    assert 0.8 * fin.size < fin.sum() < fin.size
    np.testing.assert_allclose(y32[fin], y64[fin], rtol=1e-5, atol=2e-5)


@needs_winograd
def test_matches_torch_conv2d_layer():
    torch = pytest.importorskip("torch")
    x, w, b = data((4, 32, 16, 16), (32, 32, 3, 3))
    xe = em.tensor(x, dtype=np.float32, requires_grad=True)
    we = em.tensor(w, dtype=np.float32, requires_grad=True)
    ye = F.conv2d(xe, we, em.tensor(b, dtype=np.float32), padding=1)
    xt = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float32, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, torch.tensor(b, dtype=torch.float32), padding=1)
    g = rng.standard_normal(yt.shape).astype(np.float32)
    ye.backward(g)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(ye.numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(we.grad.numpy(), wt.grad.numpy(), rtol=1e-4, atol=1e-4)


_SWITCH_PROBE = """
import sys, numpy as np, ember as em
from ember import _core, functional as F
print(_core.conv_methods([2, 32, 12, 12], [32, 32, 3, 3], [1], [1], [1], 1, "", 2)["forward"])
rng = np.random.default_rng(3)
x = rng.standard_normal((2, 32, 12, 12)).astype(np.float32)
w = (rng.standard_normal((32, 32, 3, 3)) / 17).astype(np.float32)
np.save(sys.argv[1], F.conv2d(em.tensor(x), em.tensor(w), padding=1).numpy())
"""


@needs_winograd
def test_environment_switch_turns_it_off(tmp_path):
    pkg = str(pathlib.Path(em.__file__).resolve().parents[1])
    got = {}
    for setting in ("1", "0"):
        env = dict(os.environ, PYTHONPATH=pkg + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   EMBER_CONV_WINOGRAD=setting)
        env.pop("EMBER_CONV_IMPL", None)
        path = tmp_path / f"{setting}.npy"
        r = subprocess.run([sys.executable, "-c", _SWITCH_PROBE, str(path)], env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        got[setting] = (r.stdout.strip(), np.load(path))
    assert got["1"][0] == "winograd" and got["0"][0] != "winograd"
    np.testing.assert_allclose(got["1"][1], got["0"][1], rtol=1e-5, atol=2e-5)
