"""dropout / dropout2d: eval identity, keep fraction and scaling, seeded masks, edge p, grads."""
import numpy as np
import pytest

import ember as em
from ember import functional as F, nn
from helpers import gradcheck


def test_eval_and_p0_are_identity():
    x = em.randn(4, 5)
    np.testing.assert_array_equal(F.dropout(x, 0.5, training=False).numpy(), x.numpy())
    np.testing.assert_array_equal(F.dropout(x, 0.0, training=True).numpy(), x.numpy())
    m = nn.Dropout(0.5).eval()
    np.testing.assert_array_equal(m(x).numpy(), x.numpy())
    m2 = nn.Dropout2d(0.5).eval()
    x4 = em.randn(2, 3, 4, 4)
    np.testing.assert_array_equal(m2(x4).numpy(), x4.numpy())


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_keep_fraction_and_scale(p):
    em.manual_seed(3)
    x = em.ones(200_000)
    y = F.dropout(x, p).numpy()
    kept = y != 0
    # keep fraction ~ Binomial(n, 1-p)/n: std <= 0.0012; 0.01 is > 8 sigma
    assert abs(kept.mean() - (1 - p)) < 0.01
    np.testing.assert_allclose(y[kept], 1 / (1 - p), rtol=1e-6)


def test_train_mode_actually_drops():
    em.manual_seed(0)
    m = nn.Dropout(0.5)
    y = m(em.ones(1000)).numpy()
    assert (y == 0).sum() > 300 and (y == 2).sum() > 300


def test_same_seed_same_mask_different_seed_different():
    x = em.randn(50, 40)
    em.manual_seed(7)
    a = F.dropout(x, 0.3).numpy()
    em.manual_seed(7)
    b = F.dropout(x, 0.3).numpy()
    em.manual_seed(8)
    c = F.dropout(x, 0.3).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_p1_gives_zeros_and_zero_grad():
    x = em.tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    y = F.dropout(x, 1.0)
    np.testing.assert_array_equal(y.numpy(), 0)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 0)


def test_backward_uses_the_forward_mask():
    em.manual_seed(1)
    x = em.tensor(np.random.default_rng(0).uniform(1, 2, (30, 30)), requires_grad=True)
    y = F.dropout(x, 0.4)
    g = np.random.default_rng(1).standard_normal((30, 30)).astype(np.float32)
    y.backward(g)
    mask = y.numpy() != 0
    np.testing.assert_allclose(x.grad.numpy(), g * mask / 0.6, rtol=1e-6)


def test_gradcheck_under_fixed_seed():
    def fn(x):
        em.manual_seed(5)
        return F.dropout(x, 0.3)
    gradcheck(fn, np.random.default_rng(0).standard_normal((4, 6)))

    def fn2(x):
        em.manual_seed(5)
        return F.dropout2d(x, 0.5)
    gradcheck(fn2, np.random.default_rng(0).standard_normal((2, 4, 2, 3)))


def test_dropout2d_drops_whole_channels():
    em.manual_seed(2)
    x = em.ones(64, 32, 5, 5)
    y = F.dropout2d(x, 0.25).numpy()
    per_channel = y.reshape(64, 32, -1)
    dropped = (per_channel == 0).all(-1)
    kept = (per_channel == np.float32(1 / 0.75)).all(-1)
    assert (dropped | kept).all()
    assert abs(dropped.mean() - 0.25) < 0.05
    y3 = F.dropout2d(em.ones(8, 16, 7), 0.5).numpy()
    assert ((y3 == 0).all(-1) | (y3 == 2).all(-1)).all()


def test_bad_p_and_shapes():
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(em.ones(3), 1.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(-0.1)
    with pytest.raises(ValueError, match="3-D .* or 4-D"):
        F.dropout2d(em.ones(3, 4), 0.5)


def test_bitwise_across_threads():
    x = em.randn(300, 500)
    outs = []
    prev = em.get_num_threads()
    try:
        for n in (1, 2):
            em.set_num_threads(n)
            em.manual_seed(11)
            outs.append(F.dropout(x, 0.5).numpy())
    finally:
        em.set_num_threads(prev)
    np.testing.assert_array_equal(outs[0], outs[1])
