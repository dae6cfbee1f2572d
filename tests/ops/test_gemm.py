"""core gemm (through em._core.matmul and linear): float32 packed kernel and float64 Eigen path
against numpy for all transpose combinations, sizes around the 6 x 16 micro-tile and the
1024 k-block edges, K = 0, accumulate (C += A B), and bitwise 1 vs 2 threads."""
import numpy as np
import pytest

import ember as em

rng = np.random.default_rng(0)


def operands(M, K, N, ta, tb, dtype):
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
    return a, b


def reference(a, b, ta, tb):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64.T if ta else a64) @ (b64.T if tb else b64)


def tol(K, dtype):
    return (2e-6 if dtype == np.float32 else 1e-13) * max(K, 1) ** 0.5 * 8


EDGE = [1, 5, 6, 7, 15, 16, 17]
SIZES = ([(m, k, n) for m in EDGE for k in (1, 7, 17) for n in EDGE if (m + n) % 3 == 0]
         + [(383, 5, 17), (385, 17, 7), (17, 383, 16), (12, 385, 33), (13, 256, 15),
            (150, 257, 40), (145, 511, 31), (16, 784, 128), (1, 784, 512), (11, 40, 9),
            (385, 383, 385), (13, 1024, 15), (150, 1025, 40),
            # AVX-512 tiles of 12 x 32: exact ones; a 7-row second A panel and a 4-column second
            # B panel
            (24, 64, 64), (19, 300, 20),
            # one row block over a row-major B of >= 64K floats (packed by row blocks first),
            # with a 4-column last panel and a k not a multiple of the 16-row blocks
            (17, 700, 100),
            # B over 4 MiB, the k-block-outer path: two k-blocks; two k-blocks and two column blocks
            (20, 1100, 1000), (13, 2049, 2100)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)],
                         ids=["nn", "nt", "tn", "tt"])
@pytest.mark.parametrize("M,K,N", SIZES, ids=str)
def test_matmul_vs_numpy(M, K, N, ta, tb, dtype):
    a, b = operands(M, K, N, ta, tb, dtype)
    c = em._core.matmul(a, b, ta, tb)
    assert c.dtype == dtype and c.shape == (M, N)
    np.testing.assert_allclose(c, reference(a, b, ta, tb), rtol=0, atol=tol(K, dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("M,N", [(1, 3), (20, 33), (300, 17)], ids=str)
def test_matmul_k0_is_zero(M, N, dtype):
    for ta in (False, True):
        for tb in (False, True):
            a, b = operands(M, 0, N, ta, tb, dtype)
            c = em._core.matmul(a, b, ta, tb)
            assert c.shape == (M, N) and not c.any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("B,M,N", [(300, 37, 29), (7, 20, 5), (1000, 64, 70)], ids=str)
def test_accumulate(B, M, N, dtype):
    # linear_backward: grad_weight += dy^T x (gemm trans_a, accumulate); linear_forward with bias
    # is y = bias; y += x W^T (gemm trans_b, accumulate).
    dy = rng.standard_normal((B, N)).astype(dtype)
    x = rng.standard_normal((B, M)).astype(dtype)
    w = rng.standard_normal((N, M)).astype(dtype)
    gw0 = rng.standard_normal((N, M)).astype(dtype)
    gw = gw0.copy()
    dx = em._core.linear_backward(dy, x, w, True, grad_weight=gw)
    np.testing.assert_allclose(gw, gw0 + dy.T.astype(np.float64) @ x, rtol=0,
                               atol=tol(B, dtype) * 4)
    np.testing.assert_allclose(dx, dy.astype(np.float64) @ w, rtol=0, atol=tol(N, dtype) * 4)
    bias = rng.standard_normal(N).astype(dtype)
    y = em._core.linear_forward(x, w, bias)
    np.testing.assert_allclose(y, x.astype(np.float64) @ w.T + bias, rtol=0,
                               atol=tol(M, dtype) * 4)


@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)],
                         ids=["nn", "nt", "tn", "tt"])
@pytest.mark.parametrize("M,K,N", [(397, 611, 301), (16, 784, 700), (1000, 300, 10),
                                   (150, 1100, 1000), (13, 2049, 2100)], ids=str)
def test_threads_bitwise(M, K, N, ta, tb, threads):
    a, b = operands(M, K, N, ta, tb, np.float32)
    em.set_num_threads(1)
    c1 = em._core.matmul(a, b, ta, tb)
    em.set_num_threads(2)
    c2 = em._core.matmul(a, b, ta, tb)
    assert c1.tobytes() == c2.tobytes()
    np.testing.assert_allclose(c1, reference(a, b, ta, tb), rtol=0, atol=tol(K, np.float32))


def test_accumulate_threads_bitwise(threads):
    dy = rng.standard_normal((900, 300)).astype(np.float32)
    x = rng.standard_normal((900, 257)).astype(np.float32)
    gw0 = rng.standard_normal((300, 257)).astype(np.float32)
    w = rng.standard_normal((300, 257)).astype(np.float32)
    out = []
    for nt in (1, 2):
        em.set_num_threads(nt)
        gw = gw0.copy()
        em._core.linear_backward(dy, x, w, False, grad_weight=gw)
        out.append(gw.tobytes())
    assert out[0] == out[1]


def test_noncontiguous_and_batched():
    a = rng.standard_normal((3, 40, 50)).astype(np.float32)
    b = rng.standard_normal((3, 50, 30)).astype(np.float32)
    c = em._core.matmul(a, b)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=0, atol=tol(50, np.float32))


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("M,K,N", [(12, 40, 32), (19, 300, 20), (150, 257, 40), (150, 1025, 40),
                                   (13, 1100, 1000), (7, 33, 5)], ids=str)
def test_bias_relu_epilogue_is_bitwise_the_separate_ops(M, K, N, relu, threads):
    # linear_forward's bias and ReLU are applied by the micro-kernel as it stores each tile of
    # the last k-block (packed float path; one pass after the product elsewhere). They must be
    # the same two float32 ops as adding the bias to the plain product and then taking
    # x < 0 ? 0 : x (NaN passes through): whatever the k-blocks (K > 1024), B's size (the
    # k-block-outer path at 13 x 1100 x 1000), partial tiles and the thread count.
    x = rng.standard_normal((M, K)).astype(np.float32)
    w = rng.standard_normal((N, K)).astype(np.float32)
    b = rng.standard_normal(N).astype(np.float32)
    x[0, 0], x[1, 1] = np.nan, -np.inf
    want = em._core.matmul(x, w, False, True) + b
    if relu:
        want = np.where(want < 0, np.float32(0), want)
    for n in (1, 2):
        em.set_num_threads(n)
        got = em._core.linear_forward(x, w, b, relu)
        np.testing.assert_array_equal(got, want)
        assert np.isnan(got[0]).all() and not (relu and (got < 0).any())
