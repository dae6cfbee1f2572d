"""layer_norm / batch_norm kernels: float64 gradchecks, torch parity, accumulate rule, threads."""
import numpy as np
import pytest

import ember as em
from ember import functional as F
from helpers import compare_torch, gradcheck

rng = np.random.default_rng(0)


def randn(*shape):
    return rng.standard_normal(shape)


# ---- layer norm ------------------------------------------------------------------------------

@pytest.mark.parametrize("xshape,ns", [((3, 5), (5,)), ((2, 3, 4), (3, 4)), ((2, 2, 3), (2, 2, 3)),
                                       ((1, 7), (7,))])
def test_layer_norm_gradcheck(xshape, ns):
    gradcheck(lambda x, w, b: F.layer_norm(x, ns, w, b), randn(*xshape), randn(*ns), randn(*ns))


def test_layer_norm_gradcheck_rows_summed_four_at_a_time():
    # float64 rows of >= 8 vectors (32 values with AVX2, 64 with AVX-512) take the 4-rows-per-loop
    # sums; 6 rows = 4 + 2 alone, 70 values = a vector tail on either
    gradcheck(lambda x, w, b: F.layer_norm(x, 70, w, b), randn(6, 70), randn(70), randn(70))


def test_layer_norm_gradcheck_no_affine_and_weight_only():
    gradcheck(lambda x: F.layer_norm(x, (4,)), randn(3, 4))
    gradcheck(lambda x, w: F.layer_norm(x, (2, 3), w), randn(2, 2, 3), randn(2, 3))
    gradcheck(lambda x, b: F.layer_norm(x, (3,), None, b), randn(4, 3), randn(3))


@pytest.mark.parametrize("xshape,ns", [((8, 16), (16,)), ((2, 5, 3, 4), (3, 4)),
                                       ((4, 2, 3, 5), (2, 3, 5)), ((1, 1), (1,)),
                                       ((70, 33), (33,)),
                                       # rows of >= 8 vectors (float32: 64 values with AVX2, 128
                                       # with AVX-512) have their sums taken 4 rows per loop:
                                       # 7 rows = 4 + 3 alone, 203 = a vector tail
                                       ((7, 203), (203,)), ((2, 9, 128), (128,))])
def test_layer_norm_vs_torch(xshape, ns):
    torch = pytest.importorskip("torch")
    compare_torch(lambda x, w, b: F.layer_norm(x, ns, w, b, eps=1e-5),
                  lambda x, w, b: torch.nn.functional.layer_norm(x, ns, w, b, eps=1e-5),
                  randn(*xshape) * 3 + 1, 1 + 0.5 * randn(*ns), randn(*ns), atol=2e-5)


def test_layer_norm_vs_torch_no_affine():
    torch = pytest.importorskip("torch")
    compare_torch(lambda x: F.layer_norm(x, (3, 4)),
                  lambda x: torch.nn.functional.layer_norm(x, (3, 4)), randn(5, 3, 4))


def test_layer_norm_param_grads_accumulate_input_grad_overwrites():
    x = em.tensor(randn(4, 6), requires_grad=True)
    w = em.tensor(randn(6), requires_grad=True)
    b = em.tensor(randn(6), requires_grad=True)
    y = F.layer_norm(x, 6, w, b)
    g = randn(4, 6).astype(np.float32)
    y.backward(g, retain_graph=True)
    gx, gw, gb = x.grad.numpy().copy(), w.grad.numpy().copy(), b.grad.numpy().copy()
    y.backward(g)
    np.testing.assert_allclose(w.grad.numpy(), 2 * gw, rtol=1e-6)
    np.testing.assert_allclose(b.grad.numpy(), 2 * gb, rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), 2 * gx, rtol=1e-6)
    # the kernel itself overwrites dx (a fresh output each call)
    xd = x.data
    _, mean, rstd = em._core.layer_norm_forward(xd, [6], w.data, b.data, 1e-5)
    dx1 = em._core.layer_norm_backward(g, xd, mean, rstd, w.data, True, None, None)
    dx2 = em._core.layer_norm_backward(g, xd, mean, rstd, w.data, True, None, None)
    np.testing.assert_array_equal(dx1, dx2)


def test_layer_norm_non_leaf_params():
    torch = pytest.importorskip("torch")
    compare_torch(lambda x, w, b: F.layer_norm(x, 5, w * 2, b + 1),
                  lambda x, w, b: torch.nn.functional.layer_norm(x, (5,), w * 2, b + 1),
                  randn(3, 5), randn(5), randn(5))


def test_layer_norm_float32_large_offset_is_stable():
    x = (1e4 + rng.standard_normal((4, 256))).astype(np.float32)
    y = F.layer_norm(x, 256).numpy()
    ref = (x - x.astype(np.float64).mean(1, keepdims=True)) / x.astype(np.float64).std(
        1, keepdims=True)
    np.testing.assert_allclose(y, ref, atol=2e-3)


def test_layer_norm_errors():
    with pytest.raises(ValueError, match="does not end with normalized_shape"):
        F.layer_norm(np.zeros((2, 3), np.float32), (4,))
    with pytest.raises(ValueError, match="weight shape"):
        F.layer_norm(np.zeros((2, 3), np.float32), (3,), np.ones(4, np.float32))
    with pytest.raises(TypeError, match="float64"):
        F.layer_norm(em.tensor(np.zeros((2, 3)), dtype=np.float64), (3,),
                     em.ones(3))


def _thread_runs(fn):
    prev = em.get_num_threads()
    outs = []
    try:
        for n in (1, 2, 3):  # 3 > cores on small machines: still the same bits
            em.set_num_threads(n)
            outs.append(fn())
    finally:
        em.set_num_threads(prev)
    return outs


def test_layer_norm_bitwise_across_threads():
    x0, g = randn(1000, 96).astype(np.float32), randn(1000, 96).astype(np.float32)
    w0, b0 = randn(96).astype(np.float32), randn(96).astype(np.float32)

    def run():
        x = em.tensor(x0, requires_grad=True)
        w, b = em.tensor(w0, requires_grad=True), em.tensor(b0, requires_grad=True)
        y = F.layer_norm(x, 96, w, b)
        y.backward(g)
        return [y.numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy()]

    a, *others = _thread_runs(run)
    for b in others:
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)


# ---- batch norm ------------------------------------------------------------------------------

@pytest.mark.parametrize("xshape", [(5, 3), (3, 2, 4), (2, 3, 2, 3), (1, 2, 3)])
def test_batch_norm_train_gradcheck(xshape):
    C = xshape[1]
    gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
              randn(*xshape), randn(C), randn(C))


def test_batch_norm_eval_gradcheck_and_no_affine():
    rm, rv = randn(3), 0.5 + rng.random(3)
    gradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False),
              randn(4, 3, 2), randn(3), randn(3))
    gradcheck(lambda x: F.batch_norm(x, None, None, training=True), randn(4, 3, 2))


@pytest.mark.parametrize("xshape", [(8, 4), (1, 4, 5), (4, 3, 7), (2, 3, 5, 4), (1, 2, 1, 3)])
def test_batch_norm_train_vs_torch_with_running_stats(xshape):
    torch = pytest.importorskip("torch")
    C = xshape[1]
    rm0, rv0 = randn(C).astype(np.float32), (0.5 + rng.random(C)).astype(np.float32)
    erm, erv = rm0.copy(), rv0.copy()
    trm, trv = torch.tensor(rm0), torch.tensor(rv0)
    compare_torch(lambda x, w, b: F.batch_norm(x, erm, erv, w, b, True, 0.2, 1e-3),
                  lambda x, w, b: torch.nn.functional.batch_norm(x, trm, trv, w, b, True, 0.2,
                                                                 1e-3),
                  randn(*xshape) * 2 + 1, randn(C), randn(C), atol=2e-5)
    np.testing.assert_allclose(erm, trm.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(erv, trv.numpy(), rtol=1e-5, atol=1e-6)


def test_batch_norm_eval_vs_torch():
    torch = pytest.importorskip("torch")
    rm, rv = randn(3).astype(np.float32), (0.5 + rng.random(3)).astype(np.float32)
    compare_torch(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, False),
                  lambda x, w, b: torch.nn.functional.batch_norm(
                      x, torch.tensor(rm), torch.tensor(rv), w, b, False),
                  randn(1, 3, 2, 2), randn(3), randn(3))


def test_batch_norm_param_grads_accumulate():
    x = em.tensor(randn(6, 3, 2), requires_grad=True)
    w, b = em.tensor(randn(3), requires_grad=True), em.tensor(randn(3), requires_grad=True)
    y = F.batch_norm(x, None, None, w, b, True)
    g = randn(6, 3, 2).astype(np.float32)
    y.backward(g, retain_graph=True)
    gw, gb = w.grad.numpy().copy(), b.grad.numpy().copy()
    y.backward(g)
    np.testing.assert_allclose(w.grad.numpy(), 2 * gw, rtol=1e-6)
    np.testing.assert_allclose(b.grad.numpy(), 2 * gb, rtol=1e-6)


def test_batch_norm_errors():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(np.ones((1, 4), np.float32), None, None, training=True)
    with pytest.raises(ValueError, match="required when training=False"):
        F.batch_norm(np.ones((2, 4), np.float32), None, None, training=False)
    with pytest.raises(ValueError, match="weight shape"):
        F.batch_norm(np.ones((2, 4), np.float32), None, None, np.ones(3, np.float32),
                     training=True)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        F.batch_norm(np.ones(4, np.float32), None, None, training=True)


def test_batch_norm_bitwise_across_threads():
    x0, g = randn(64, 8, 200).astype(np.float32), randn(64, 8, 200).astype(np.float32)
    w0, b0 = randn(8).astype(np.float32), randn(8).astype(np.float32)

    def run():
        x = em.tensor(x0, requires_grad=True)
        w, b = em.tensor(w0, requires_grad=True), em.tensor(b0, requires_grad=True)
        rm, rv = np.zeros(8, np.float32), np.ones(8, np.float32)
        y = F.batch_norm(x, rm, rv, w, b, True)
        y.backward(g)
        return [y.numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy(), rm, rv]

    a, *others = _thread_runs(run)
    for b in others:
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)


def test_batch_norm_non_leaf_params_and_frozen_weight():
    torch = pytest.importorskip("torch")
    compare_torch(lambda x, w, b: F.batch_norm(x, None, None, w * 2, b + 1, True),
                  lambda x, w, b: torch.nn.functional.batch_norm(x, None, None, w * 2, b + 1,
                                                                 True),
                  randn(4, 3, 5), randn(3), randn(3))
    x = em.tensor(randn(4, 3), requires_grad=True)
    w = em.tensor(randn(3))  # frozen: no grad allocated
    F.batch_norm(x, None, None, w, None, True).sum().backward()
    assert w.grad is None and x.grad is not None


def test_float64_modules_gradcheck():
    from ember import nn
    ln = nn.LayerNorm((2, 3), dtype=np.float64)
    ln.weight.data[:] = randn(2, 3)
    gradcheck(lambda x: ln(x), randn(2, 2, 3))
    bn = nn.BatchNorm2d(2, dtype=np.float64)
    gradcheck(lambda x: bn(x), randn(3, 2, 2, 2))


def test_batch_norm_running_stats_must_be_arrays():
    with pytest.raises(TypeError, match="running_mean must be an ndarray"):
        F.batch_norm(np.ones((2, 3), np.float32), [0.0, 0.0, 0.0], np.ones(3, np.float32),
                     training=True)
    with pytest.raises(TypeError, match="float64 but the input is float32"):
        F.batch_norm(np.ones((2, 3), np.float32), np.zeros(3), np.ones(3), training=True)
