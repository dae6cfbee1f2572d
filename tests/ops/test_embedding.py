"""embedding: gather forward, scatter-add backward into looked-up rows only, padding, errors."""
import numpy as np
import pytest

import ember as em
from ember import functional as F
from helpers import gradcheck

rng = np.random.default_rng(0)


def test_gradcheck_weight():
    ids = np.array([[1, 3, 1], [0, 4, 3]])
    gradcheck(lambda w: F.embedding(ids, w), rng.standard_normal((5, 3)))
    gradcheck(lambda w: F.embedding(np.array(4), w), rng.standard_normal((5, 2)))  # 0-d ids


@pytest.mark.parametrize("pad", [None, 2, -1])
def test_vs_torch(pad):
    torch = pytest.importorskip("torch")
    w0 = rng.standard_normal((7, 4)).astype(np.float32)
    ids = rng.integers(0, 7, (3, 5))
    g = rng.standard_normal((3, 5, 4)).astype(np.float32)
    w = em.tensor(w0, requires_grad=True)
    y = F.embedding(ids, w, padding_idx=pad)
    y.backward(g)
    tw = torch.tensor(w0, requires_grad=True)
    ty = torch.nn.functional.embedding(torch.tensor(ids), tw, padding_idx=pad)
    ty.backward(torch.tensor(g))
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_only_looked_up_rows_get_gradient_and_padding_none():
    w = em.tensor(rng.standard_normal((10, 3)), requires_grad=True)
    ids = np.array([2, 5, 5, 0, 7])
    F.embedding(ids, w, padding_idx=0).backward(np.ones((5, 3), np.float32))
    g = w.grad.numpy()
    np.testing.assert_array_equal(g[[1, 3, 4, 6, 8, 9]], 0)
    np.testing.assert_array_equal(g[0], 0)  # padding row
    np.testing.assert_array_equal(g[5], 2)  # repeated id sums
    np.testing.assert_array_equal(g[[2, 7]], 1)


def test_grad_accumulates():
    w = em.tensor(rng.standard_normal((4, 2)), requires_grad=True)
    y = F.embedding([1, 2], w)
    y.backward(np.ones((2, 2), np.float32), retain_graph=True)
    y.backward(np.ones((2, 2), np.float32))
    np.testing.assert_array_equal(w.grad.numpy()[[1, 2]], 2)


def test_index_errors_name_index_and_size():
    w = em.randn(6, 2)
    with pytest.raises(IndexError, match=r"index 6 .*6 rows"):
        F.embedding([0, 6], w)
    with pytest.raises(IndexError, match=r"index -1 .*6 rows"):
        F.embedding(np.array([-1]), w)
    with pytest.raises(TypeError, match="integer"):
        F.embedding(np.array([0.5]), w)


def test_bitwise_across_threads():
    ids = rng.integers(0, 50, 20000)
    w0 = rng.standard_normal((50, 64)).astype(np.float32)
    g = rng.standard_normal((20000, 64)).astype(np.float32)
    outs = []
    prev = em.get_num_threads()
    try:
        for n in (1, 2):
            em.set_num_threads(n)
            w = em.tensor(w0, requires_grad=True)
            y = F.embedding(ids, w)
            y.backward(g)
            outs.append((y.numpy(), w.grad.numpy()))
    finally:
        em.set_num_threads(prev)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_non_leaf_weight_gets_dense_gradient():
    torch = pytest.importorskip("torch")
    w0 = rng.standard_normal((6, 3)).astype(np.float32)
    ids = np.array([[1, 1], [5, 0]])
    g = rng.standard_normal((2, 2, 3)).astype(np.float32)
    w = em.tensor(w0, requires_grad=True)
    F.embedding(ids, w * 2, padding_idx=0).backward(g)
    tw = torch.tensor(w0, requires_grad=True)
    torch.nn.functional.embedding(torch.tensor(ids), tw * 2, padding_idx=0).backward(
        torch.tensor(g))
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-6)
