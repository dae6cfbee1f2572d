"""conv1d, conv2d, conv_transpose1d/2d: gradchecks, torch grid, accumulate rule, threads, errors,
and the Conv layers."""
import numpy as np
import pytest

import ember as em
from ember import functional as F
from ember import nn
from helpers import compare_torch, gradcheck

rng = np.random.default_rng(0)


def R(*s):
    return rng.standard_normal(s)


# ---- float64 finite differences ------------------------------------------------------------

@pytest.mark.parametrize("kw", [
    dict(),
    dict(stride=2, padding=1),
    dict(stride=(2, 1), padding=(0, 2), dilation=(2, 1)),
    dict(padding="same", dilation=2),
])
def test_conv2d_gradcheck(kw):
    gradcheck(lambda x, w, b: F.conv2d(x, w, b, **kw), R(2, 2, 5, 4), R(3, 2, 3, 2), R(3))


def test_conv2d_gradcheck_groups():
    gradcheck(lambda x, w, b: F.conv2d(x, w, b, groups=2, padding=1), R(2, 4, 4, 4),
              R(4, 2, 3, 3), R(4))
    gradcheck(lambda x, w: F.conv2d(x, w, groups=3, stride=2), R(1, 3, 5, 5), R(6, 1, 2, 2))


def test_conv1d_gradcheck():
    gradcheck(lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=2, dilation=2), R(3, 2, 9),
              R(4, 2, 3), R(4))


@pytest.mark.parametrize("kw", [dict(stride=2, padding=1, output_padding=1),
                                dict(stride=(1, 2), groups=2, dilation=(2, 1))])
def test_conv_transpose2d_gradcheck(kw):
    gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, **kw), R(2, 4, 3, 4), R(4, 2, 3, 2),
              R(2 * (2 if kw.get("groups") else 1)))


def test_conv_transpose1d_gradcheck():
    gradcheck(lambda x, w, b: F.conv_transpose1d(x, w, b, stride=3, padding=1), R(2, 3, 4),
              R(3, 2, 4), R(2))


# ---- against torch --------------------------------------------------------------------------

torch = pytest.importorskip("torch")
TF = torch.nn.functional

CONV2D_GRID = [
    # (x shape, w shape, kwargs)
    ((2, 3, 8, 8), (4, 3, 3, 3), dict(padding=1)),
    ((2, 3, 9, 7), (4, 3, 2, 2), dict(stride=3)),                     # stride > kernel
    ((1, 3, 7, 9), (5, 3, 3, 5), dict(padding=(2, 3))),               # pad >= k/2, non-square
    ((2, 4, 11, 10), (6, 4, 3, 3), dict(dilation=2, padding=1)),
    ((2, 4, 8, 8), (4, 1, 3, 3), dict(groups=4, padding=1)),          # depthwise
    ((2, 6, 8, 7), (9, 2, 3, 3), dict(groups=3, stride=2)),           # grouped
    ((1, 8, 5, 5), (3, 8, 1, 1), dict()),                             # 1x1 kernel, batch 1
    ((3, 8, 5, 5), (3, 8, 1, 1), dict(stride=2)),                     # strided 1x1
    ((2, 3, 13, 11), (4, 3, 4, 2), dict(padding="same")),              # same, even kernel
    ((2, 3, 9, 9), (4, 3, 3, 3), dict(padding="valid")),
    ((40, 2, 6, 6), (3, 2, 3, 3), dict(padding=1)),                   # many small samples
    ((2, 4, 40, 41), (5, 4, 3, 3), dict(padding=1)),                  # large plane: tiled
    ((1, 16, 48, 48), (16, 16, 3, 3), dict(padding=1)),               # few samples, big work
    # float32 packed path (ops/conv_packed): whole 16-pixel panels with image edges on both sides,
    # panels that straddle output rows, dilated windows, and output channels not a multiple of 6
    ((3, 8, 32, 32), (20, 8, 3, 3), dict(padding=1)),
    ((4, 16, 16, 16), (64, 16, 3, 3), dict(padding=1)),
    ((2, 3, 20, 36), (7, 3, 3, 3), dict(dilation=2, padding=2)),
    ((2, 5, 17, 33), (8, 5, 5, 5), dict(padding=2, stride=(1, 2))),
    # input gradient computed as the flipped convolution (stride 1, Cg >= 16, OCg <= Cg)
    ((3, 24, 12, 12), (16, 24, 3, 3), dict(padding=1)),
    ((2, 32, 10, 11), (32, 16, 3, 5), dict(groups=2, dilation=(2, 1), padding=(1, 2))),
    ((2, 16, 9, 9), (16, 16, 3, 3), dict()),
    # stride 2: 8-output gathers / scatters, panels within and across output rows
    ((2, 4, 9, 40), (8, 4, 3, 3), dict(stride=2, padding=1)),
    ((3, 5, 7, 11), (6, 5, 3, 3), dict(stride=2)),
]


@pytest.mark.parametrize("xs,ws,kw", CONV2D_GRID)
def test_conv2d_vs_torch(xs, ws, kw):
    compare_torch(lambda x, w, b: F.conv2d(x, w, b, **kw),
                  lambda x, w, b: TF.conv2d(x, w, b, **kw), R(*xs), R(*ws), R(ws[0]),
                  atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("xs,ws,kw", [
    ((4, 3, 20), (5, 3, 5), dict(padding=2)),
    ((100, 1, 40), (8, 1, 5), dict(padding=2)),
    ((3, 4, 17), (6, 2, 3), dict(stride=2, padding=1, groups=2)),
    ((1, 4, 9), (4, 1, 4), dict(padding="same", dilation=2, groups=4)),
    ((2, 3, 10), (2, 3, 1), dict()),
    ((6, 32, 20), (32, 32, 3), dict(stride=2, padding=1)),       # W4's third layer
    ((30, 8, 40), (16, 8, 3), dict(stride=2, padding=1)),
])
def test_conv1d_vs_torch(xs, ws, kw):
    compare_torch(lambda x, w, b: F.conv1d(x, w, b, **kw),
                  lambda x, w, b: TF.conv1d(x, w, b, **kw), R(*xs), R(*ws), R(ws[0]),
                  atol=2e-4, rtol=1e-4)


def _lane_sum(dy):
    """Per channel of dy (N, C, *plane): core/reduce's LaneSum order in float32. Lane j adds
    elements j, j+16, ... of each sample's plane, samples in order; the 16 lanes then fold
    8 + 4 + 2 + 1."""
    flat = dy.reshape(dy.shape[0], dy.shape[1], -1)
    out = np.empty(dy.shape[1], np.float32)
    for c in range(dy.shape[1]):
        acc = np.zeros(16, np.float32)
        for n in range(dy.shape[0]):
            row = flat[n, c]
            for i in range(0, row.size, 16):
                part = row[i:i + 16]
                acc[:part.size] += part
        for w in (8, 4, 2, 1):
            acc[:w] += acc[w:2 * w]
        out[c] = acc[0]
    return out


# Rows shorter than a vector (10), one and a half (20, 24), exactly two (32) and a long odd one
# (41): the bias gradient is the same 16-lane float32 sum, bit for bit, whatever the tail.
@pytest.mark.parametrize("length", [10, 20, 24, 32, 41])
def test_conv_bias_grad_is_the_lane_sum_bitwise(length):
    x = R(7, 3, length).astype(np.float32)
    w = R(5, 3, 3).astype(np.float32)
    g = (R(7, 5, length) * 10).astype(np.float32)
    g[1, 2, length - 1] = 1e8                      # a large tail value: order matters
    b = em.tensor(np.zeros(5, np.float32), requires_grad=True)
    F.conv1d(em.tensor(x), em.tensor(w), b, padding=1).backward(em.tensor(g))
    np.testing.assert_array_equal(b.grad.numpy().view(np.int32), _lane_sum(g).view(np.int32))


@pytest.mark.parametrize("xs,ws,kw", [
    ((2, 4, 5, 5), (4, 3, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((1, 4, 4, 6), (4, 2, 2, 3), dict(stride=(2, 3), output_padding=(1, 2))),
    ((3, 6, 5, 4), (6, 2, 3, 3), dict(groups=3, padding=1)),
    ((2, 4, 5, 5), (4, 3, 3, 3), dict(dilation=2, stride=2, output_padding=1)),
    ((2, 8, 3, 3), (8, 4, 1, 1), dict()),
])
def test_conv_transpose2d_vs_torch(xs, ws, kw):
    oc = ws[1] * kw.get("groups", 1)
    compare_torch(lambda x, w, b: F.conv_transpose2d(x, w, b, **kw),
                  lambda x, w, b: TF.conv_transpose2d(x, w, b, **kw), R(*xs), R(*ws), R(oc),
                  atol=2e-4, rtol=1e-4)


def test_conv_no_bias_and_input_only_grad():
    x, w = R(2, 3, 6, 6), R(4, 3, 3, 3)
    compare_torch(lambda x, w: F.conv2d(x, w, padding=1), lambda x, w: TF.conv2d(x, w, padding=1),
                  x, w, atol=2e-4, rtol=1e-4, wrt=[0])
    compare_torch(lambda x, w: F.conv2d(x, w, padding=1), lambda x, w: TF.conv2d(x, w, padding=1),
                  x, w, atol=2e-4, rtol=1e-4, wrt=[1])


# ---- accumulate / overwrite rule ------------------------------------------------------------

def test_param_grads_accumulate_input_grad_overwrites():
    x = em.tensor(R(2, 3, 6, 6), requires_grad=True)
    w = em.tensor(R(4, 3, 3, 3), requires_grad=True)
    b = em.tensor(R(4), requires_grad=True)
    F.conv2d(x, w, b, padding=1).sum().backward()
    gx, gw, gb = x.grad.numpy().copy(), w.grad.numpy().copy(), b.grad.numpy().copy()
    F.conv2d(x, w, b, padding=1).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), 2 * gw, rtol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), 2 * gb, rtol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), 2 * gx, rtol=1e-5)  # leaf .grad accumulates too
    # The kernel itself: grad_weight/grad_bias buffers are added into, grad_input is fresh.
    from ember import _core
    dw = np.ones((4, 3, 3, 3), np.float32)
    db = np.ones(4, np.float32)
    g = np.ones((2, 4, 6, 6), np.float32)
    dx = _core.conv_backward(g, x.data, w.data, [1], [1], [1], 1, "", 2, True, dw, db)
    np.testing.assert_allclose(dw, 1 + gw, rtol=1e-5)
    np.testing.assert_allclose(db, 1 + gb, rtol=1e-5)
    np.testing.assert_allclose(dx, gx, rtol=1e-5)


def test_weight_used_twice_sums_grads():
    x = R(2, 3, 5, 5)
    w = em.tensor(R(3, 3, 3, 3), requires_grad=True)
    h = F.conv2d(F.conv2d(x, w, padding=1), w, padding=1)
    h.sum().backward()
    tw = torch.tensor(w.numpy(), requires_grad=True)
    tx = torch.tensor(x, dtype=torch.float32)
    TF.conv2d(TF.conv2d(tx, tw, padding=1), tw, padding=1).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-4, atol=1e-3)


# ---- threads --------------------------------------------------------------------------------

@pytest.mark.parametrize("xs,ws,kw", [
    ((16, 8, 20, 20), (16, 8, 3, 3), dict(padding=1)),        # parallel over samples, tiled
    ((64, 6, 14, 14), (16, 6, 5, 5), dict()),                  # blocked samples
    ((2, 16, 40, 40), (16, 16, 3, 3), dict(padding=1)),       # threaded GEMM mode
    ((8, 16, 12, 12), (16, 1, 3, 3), dict(groups=16)),        # depthwise
    ((16, 16, 20, 20), (16, 16, 3, 3), dict(padding=1)),      # input grad as flipped conv
])
def test_bitwise_same_at_1_and_2_threads(xs, ws, kw):
    x, w, b = (R(*xs).astype(np.float32), R(*ws).astype(np.float32),
               R(ws[0]).astype(np.float32))
    g = R(*TF.conv2d(torch.tensor(x), torch.tensor(w), **kw).shape).astype(np.float32)
    prev = em.get_num_threads()
    results = []
    try:
        for nt in (1, 2):
            em.set_num_threads(nt)
            ex, ew, eb = (em.tensor(a, requires_grad=True) for a in (x, w, b))
            y = F.conv2d(ex, ew, eb, **kw)
            y.backward(g)
            yt = F.conv_transpose2d(y.detach(), ew.detach(), None, **kw)
            results.append([y.numpy(), ex.grad.numpy(), ew.grad.numpy(), eb.grad.numpy(),
                            yt.numpy()])
    finally:
        em.set_num_threads(prev)
    for a, b2 in zip(*results):
        assert np.array_equal(a, b2)


# ---- stride 1 over row-virtual pixels (ops/conv_packed) ----------------------------------------
# Output rows that are not whole 16-pixel panels (OW % 16 != 0) with few padded columns (the
# forward at most OW / 4, the input gradient at most OW / 2) run over pixels oh * Wp + ow,
# ow < Wp, and drop (forward) or zero (input gradient) the columns ow >= OW. The weight gradient,
# which keeps the segment path, is checked on them too. Cases: LeNet's two layers, several
# samples per block, groups, dilation, 1x1, an OW below one panel, a sample's last call ending
# inside a panel.
ROW_VIRTUAL = [
    ((64, 1, 28, 28), (6, 1, 5, 5), dict(padding=2)),
    ((64, 6, 14, 14), (16, 6, 5, 5), dict()),
    ((3, 2, 9, 30), (5, 2, 3, 3), dict(padding=1)),
    ((2, 4, 9, 30), (6, 2, 5, 5), dict(padding=2, groups=2)),
    ((2, 2, 11, 17), (4, 2, 3, 3), dict(padding=2, dilation=2)),
    ((7, 3, 5, 60), (2, 3, 1, 1), dict()),
    ((5, 3, 6, 13), (7, 3, 3, 3), dict(padding=1)),
    ((1, 3, 20, 62), (12, 3, 3, 3), dict(padding=1)),
]


@pytest.mark.parametrize("xs,ws,kw", ROW_VIRTUAL)
def test_row_virtual(xs, ws, kw):
    x, w, b = (R(*xs).astype(np.float32), R(*ws).astype(np.float32),
               R(ws[0]).astype(np.float32))
    # Non-finite inputs stay in their own windows: the dropped columns' windows also read the
    # last image columns, which real windows read only with later kernel columns.
    x[-1, 0, 0, :3] = [np.inf, -np.inf, np.nan]
    x[0, 0, xs[2] // 2, -1] = np.inf
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ty = TF.conv2d(tx, tw, torch.tensor(b), **kw)
    g = R(*ty.shape).astype(np.float32)
    ty.backward(torch.tensor(g))
    prev = em.get_num_threads()
    outs = []
    try:
        for nt in (1, 2):
            em.set_num_threads(nt)
            ex, ew = em.tensor(x, requires_grad=True), em.tensor(w, requires_grad=True)
            y = F.conv2d(ex, ew, em.tensor(b), **kw)
            y.backward(g)
            np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), atol=2e-4, rtol=1e-4)
            np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), atol=2e-4, rtol=1e-4)
            np.testing.assert_allclose(ew.grad.numpy(), tw.grad.numpy(), atol=2e-3, rtol=1e-4)
            # The ReLU fused into the write-out gives F.relu's bits.
            conv = nn.Conv2d(ws[1] * kw.get("groups", 1), ws[0], ws[2:], **kw)
            conv.weight.data, conv.bias.data = w, b
            fused = nn.Sequential(conv, nn.ReLU())(em.tensor(x)).numpy()
            np.testing.assert_array_equal(fused, F.relu(y.detach()).numpy())
            outs.append([y.numpy(), ex.grad.numpy(), ew.grad.numpy()])
    finally:
        em.set_num_threads(prev)
    for a, b2 in zip(*outs):
        np.testing.assert_array_equal(a, b2)


# ---- the direct forward and weight gradient (ops/conv_packed, AVX-512 builds) ----------------
# Stride-1 layers with at most 32 input taps (C * KH * KW) and at most 16 output channels take
# their forward and weight gradient straight from padded image rows (and gradient rows), 16
# pixels per vector with the lanes past OW masked off. Cases: LeNet's first layer, OW below, at
# and just past one vector and past two, every KW from 1 to 7, 1 to 16 output channels (groups
# of 4 or 6 and each remainder), 'same' padding, conv1d, batches that are not a whole number of
# blocks.
DIRECT = [
    ((64, 1, 28, 28), (6, 1, 5, 5), dict(padding=2)),
    ((3, 1, 9, 9), (16, 1, 3, 3), dict(padding=1)),
    ((5, 2, 7, 16), (5, 2, 4, 4), dict()),
    ((2, 1, 6, 17), (3, 1, 1, 7), dict(padding=(0, 3))),
    ((9, 1, 12, 33), (1, 1, 2, 6), dict()),
    ((4, 3, 8, 10), (7, 3, 3, 1), dict(padding="same")),
    ((2, 1, 30, 40), (2, 1, 5, 2), dict(padding=(2, 1))),
]


# Layers with 9 to 16 output channels, more than 32 taps and rows of at most 32 pixels run the
# forward and the weight gradient with the output channels along the lanes: LeNet's second
# layer, two k-blocks (300 taps), odd output heights, row chunks of 12 / 8 / 4 pixels, 'same'
# padding, one output row, kernel heights that are not a whole number of register passes.
DIRECT_OC = [
    ((64, 6, 14, 14), (16, 6, 5, 5), dict()),
    ((3, 12, 9, 30), (9, 12, 5, 5), dict(padding=2)),
    ((2, 4, 7, 5), (13, 4, 3, 3), dict()),
    ((5, 3, 6, 12), (16, 3, 4, 4), dict(padding="same")),
    ((2, 8, 1, 21), (10, 8, 1, 5), dict()),
    ((2, 2, 10, 12), (12, 2, 6, 7), dict(padding=1)),
]


@pytest.mark.parametrize("xs,ws,kw", DIRECT + DIRECT_OC)
def test_direct_weight_grad(xs, ws, kw):
    pad = kw.get("padding", 0)
    from ember import _core
    m = _core.conv_methods(list(xs), list(ws), [1], [0] if pad == "same" else
                           list(pad) if isinstance(pad, tuple) else [pad], [1], 1,
                           "same" if pad == "same" else "", 2)
    if m["weight_grad"] != "direct":
        pytest.skip(f"this build runs {m['weight_grad']} here (the direct path needs AVX-512)")
    x, w, b = R(*xs).astype(np.float32), R(*ws).astype(np.float32), R(ws[0]).astype(np.float32)
    # Non-finite inputs reach exactly the weights whose windows read them: an inf inside, a NaN
    # on the last column (real windows reach it only with the last kernel column).
    x[-1, 0, xs[2] // 2, 1] = np.inf
    x[0, -1, 0, -1] = np.nan
    tx, tw = torch.tensor(x), torch.tensor(w, requires_grad=True)
    ty = TF.conv2d(tx, tw, torch.tensor(b), **kw)
    g = R(*ty.shape).astype(np.float32)
    ty.backward(torch.tensor(g))
    prev = em.get_num_threads()
    got = []
    try:
        for nt in (1, 2):
            em.set_num_threads(nt)
            ew = em.tensor(w, requires_grad=True)
            F.conv2d(em.tensor(x), ew, em.tensor(b), **kw).backward(g)
            got.append(ew.grad.numpy())
    finally:
        em.set_num_threads(prev)
    np.testing.assert_array_equal(got[0], got[1])
    np.testing.assert_allclose(got[0], tw.grad.numpy(), atol=2e-3, rtol=1e-4)
    # against float64 on finite data (the float64 path is the reference im2col GEMM)
    x64 = np.nan_to_num(x.astype(np.float64), nan=0.5, posinf=2.0)
    grads = []
    for dt in (np.float32, np.float64):
        ew = em.tensor(w.astype(dt), requires_grad=True)
        F.conv2d(em.tensor(x64.astype(dt)), ew, None, **kw).backward(g.astype(dt))
        grads.append(ew.grad.numpy())
    scale = np.abs(grads[1]).max()
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=1e-6 * scale)


def test_direct_weight_grad_conv1d_and_accumulation():
    from ember import _core
    assert _core.conv_methods([8, 1, 50], [4, 1, 5], [1], [2], [1], 1, "", 1)["weight_grad"] in (
        "direct", "packed", "im2col")
    x, w = R(8, 1, 50).astype(np.float32), R(4, 1, 5).astype(np.float32)
    g = R(8, 4, 50).astype(np.float32)
    ew = em.tensor(w, requires_grad=True)
    for _ in range(2):  # the second backward adds into .grad
        F.conv1d(em.tensor(x), ew, padding=2).backward(g)
    tw = torch.tensor(w, requires_grad=True)
    TF.conv1d(torch.tensor(x), tw, padding=2).backward(torch.tensor(g))
    np.testing.assert_allclose(ew.grad.numpy(), 2 * tw.grad.numpy(), atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("xs,ws,kw", DIRECT + DIRECT_OC)
def test_direct_forward(xs, ws, kw):
    # The direct forward does the packed GEMM's arithmetic in its order: its output channels
    # must be bitwise those of the packed path, which a 17th output channel sends the layer to.
    pad = kw.get("padding", 0)
    from ember import _core
    args = ([1], [0] if pad == "same" else list(pad) if isinstance(pad, tuple) else [pad], [1],
            1, "same" if pad == "same" else "", 2)
    m = _core.conv_methods(list(xs), list(ws), *args)
    if m["forward"] != "direct":
        pytest.skip(f"this build runs {m['forward']} here (the direct path needs AVX-512)")
    big = (ws[0] + 17 - min(ws[0], 16),) + tuple(ws[1:])
    assert _core.conv_methods(list(xs), list(big), *args)["forward"] == "packed"
    x = R(*xs).astype(np.float32)
    x[-1, 0, xs[2] // 2, 1] = np.inf
    x[0, -1, 0, -1] = np.nan
    wb, bb = R(*big).astype(np.float32), R(big[0]).astype(np.float32)
    w, b = wb[:ws[0]], bb[:ws[0]]
    packed = F.conv2d(em.tensor(x), wb, bb, **kw).numpy()[:, :ws[0]]
    prev = em.get_num_threads()
    try:
        for nt in (1, 2):
            em.set_num_threads(nt)
            for bias in (b, None):
                y = F.conv2d(em.tensor(x), w, bias, **kw).numpy()
                ref = packed if bias is not None else \
                    F.conv2d(em.tensor(x), wb, None, **kw).numpy()[:, :ws[0]]
                np.testing.assert_array_equal(y, ref)
            with em.no_grad():   # the ReLU fused into the write-out (nn.Sequential's Conv + ReLU)
                seq = nn.Sequential(nn.Conv2d(ws[1], ws[0], ws[2:], **kw), nn.ReLU())
                seq[0].weight.data, seq[0].bias.data = w, b
                np.testing.assert_array_equal(seq(x).numpy(), F.relu(em.tensor(packed)).numpy())
    finally:
        em.set_num_threads(prev)
    ty = TF.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), **kw).numpy()
    np.testing.assert_allclose(packed, ty, atol=1e-4, rtol=1e-4)


def test_row_virtual_transpose():
    # conv_transpose2d's forward is the input-gradient kernel (here with the bias added).
    x, w, b = R(3, 4, 7, 13).astype(np.float32), R(4, 5, 3, 3).astype(np.float32), R(5)
    compare_torch(lambda x, w, b: F.conv_transpose2d(x, w, b, padding=1),
                  lambda x, w, b: TF.conv_transpose2d(x, w, b, padding=1), x, w, b,
                  atol=2e-4, rtol=1e-4)


# ---- errors ---------------------------------------------------------------------------------

def test_errors():
    x = np.zeros((2, 3, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"conv2d.*\(2, 4, 8, 8\).*\(5, 3, 3, 3\)"):
        F.conv2d(np.zeros((2, 4, 8, 8), np.float32), np.zeros((5, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"conv2d.*kernel size.*larger than the padded input"):
        F.conv2d(np.zeros((1, 3, 4, 4), np.float32), np.zeros((2, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"conv2d.*not divisible by groups=2"):
        F.conv2d(np.zeros((1, 3, 4, 4), np.float32), np.zeros((2, 1, 3, 3), np.float32),
                 groups=2)
    with pytest.raises(ValueError, match=r"conv2d: expected a 4-D input.*\(3, 8, 8\)"):
        F.conv2d(np.zeros((3, 8, 8), np.float32), np.zeros((2, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"Conv2d: expected a 4-D input.*\(3, 8, 8\)"):
        nn.Conv2d(3, 2, 3)(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"conv1d: expected a 3-D input"):
        F.conv1d(x, np.zeros((2, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"conv2d: bias shape \(3,\)"):
        F.conv2d(x, np.zeros((2, 3, 3, 3), np.float32), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"strided"):
        F.conv2d(x, np.zeros((2, 3, 3, 3), np.float32), stride=2, padding="same")
    with pytest.raises(ValueError, match=r"padding must be"):
        F.conv2d(x, np.zeros((2, 3, 3, 3), np.float32), padding="full")
    with pytest.raises(ValueError, match=r"stride must be >= 1"):
        F.conv2d(x, np.zeros((2, 3, 3, 3), np.float32), stride=0)
    with pytest.raises(ValueError, match=r"conv_transpose2d.*output_padding"):
        F.conv_transpose2d(x, np.zeros((3, 2, 3, 3), np.float32), stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"conv_transpose2d.*input shape"):
        F.conv_transpose2d(x, np.zeros((4, 2, 3, 3), np.float32))
    with pytest.raises(TypeError, match=r"conv2d.*float32 or float64.*int64"):
        F.conv2d(em.Tensor(np.zeros((1, 3, 4, 4), np.int64)), np.zeros((2, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)


# ---- layers ---------------------------------------------------------------------------------

def test_conv_layers_match_torch_via_state_dict():
    for em_l, th_l, xs in [
        (nn.Conv2d(3, 6, (3, 5), stride=(1, 2), padding=(1, 2), groups=3),
         torch.nn.Conv2d(3, 6, (3, 5), stride=(1, 2), padding=(1, 2), groups=3), (2, 3, 9, 11)),
        (nn.Conv1d(4, 8, 3, padding="same", dilation=2, bias=False),
         torch.nn.Conv1d(4, 8, 3, padding="same", dilation=2, bias=False), (3, 4, 12)),
        (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
         torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
         (2, 4, 5, 5)),
        (nn.ConvTranspose1d(3, 2, 4, stride=2), torch.nn.ConvTranspose1d(3, 2, 4, stride=2),
         (2, 3, 6)),
    ]:
        for name, p in em_l.named_parameters():
            assert p.shape == tuple(getattr(th_l, name).shape), name
        with torch.no_grad():
            for name, p in em_l.named_parameters():
                getattr(th_l, name).copy_(torch.tensor(p.numpy()))
        x = R(*xs).astype(np.float32)
        np.testing.assert_allclose(em_l(x).numpy(), th_l(torch.tensor(x)).detach().numpy(),
                                   atol=1e-5, rtol=1e-4)
        assert repr(em_l) == repr(th_l)


def test_conv_default_init_bounds():
    em.manual_seed(0)
    m = nn.Conv2d(8, 4, 3)
    bound = 1 / np.sqrt(8 * 9)
    assert np.abs(m.weight.numpy()).max() <= bound + 1e-7
    assert np.abs(m.bias.numpy()).max() <= bound + 1e-7
    assert m.weight.numpy().std() > bound / 3
    m = nn.ConvTranspose2d(4, 6, 3, groups=2)
    assert m.weight.shape == (4, 3, 3, 3)
    assert np.abs(m.bias.numpy()).max() <= 1 / np.sqrt(3 * 9) + 1e-7


# ---- the im2col fallback (double, portable builds) must agree with the packed float path ------

_IMPL_PROBE = """
import sys, numpy as np, ember as em
from ember import functional as F
rng = np.random.default_rng(5)
out = {}
for i, (xs, ws, kw) in enumerate([((3, 8, 12, 12), (16, 8, 3, 3), dict(padding=1)),
                                  ((2, 6, 11, 9), (4, 3, 3, 3), dict(stride=2, groups=2))]):
    x = em.tensor(rng.standard_normal(xs).astype(np.float32), requires_grad=True)
    w = em.tensor(rng.standard_normal(ws).astype(np.float32), requires_grad=True)
    y = F.conv2d(x, w, **kw)
    y.backward(np.ones(y.shape, np.float32))
    out[f"y{i}"], out[f"gx{i}"], out[f"gw{i}"] = y.numpy(), x.grad.numpy(), w.grad.numpy()
np.savez(sys.argv[1], **out)
"""


def test_im2col_fallback_matches_packed_path(tmp_path):
    import os
    import pathlib
    import subprocess
    import sys
    pkg = str(pathlib.Path(em.__file__).resolve().parents[1])
    res = {}
    for impl in ("packed", "im2col"):
        env = dict(os.environ, PYTHONPATH=pkg + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.pop("EMBER_CONV_IMPL", None)
        if impl == "im2col":
            env["EMBER_CONV_IMPL"] = "im2col"
        path = tmp_path / f"{impl}.npz"
        r = subprocess.run([sys.executable, "-c", _IMPL_PROBE, str(path)], env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        res[impl] = dict(np.load(path))
    for k, v in res["packed"].items():
        np.testing.assert_allclose(v, res["im2col"][k], rtol=1e-4, atol=1e-4, err_msg=k)
