"""nn.init: each initializer's bounds and moments against its formula; reproducibility."""
import math

import numpy as np
import pytest

import ember as em
from ember import nn
from ember.nn import init

SHAPE = (300, 400)  # fan_in 400, fan_out 300; 120,000 samples
FI, FO = 400, 300
CONV = (64, 16, 5, 5)  # fan_in 16*25 = 400, fan_out 64*25 = 1600


@pytest.fixture(autouse=True)
def seeded():
    em.manual_seed(2024)  # the statistical bounds hold for any seed; fixed so runs repeat


def p(shape=SHAPE, dtype=np.float32):
    return nn.Parameter(np.zeros(shape, dtype=dtype))


def check_uniform(a, lo, hi):
    n = a.size
    assert a.min() >= lo and a.max() <= hi
    width = hi - lo
    assert a.min() < lo + 0.01 * width and a.max() > hi - 0.01 * width  # fills the range
    sd = width / math.sqrt(12)
    assert abs(a.mean() - (lo + hi) / 2) < 5 * sd / math.sqrt(n)
    assert abs(a.std() / sd - 1) < 0.02


def check_normal(a, mean, std):
    n = a.size
    assert abs(a.mean() - mean) < 5 * std / math.sqrt(n)
    assert abs(a.std() / std - 1) < 0.02
    assert abs(np.mean(np.abs(a - mean) < std) - 0.6827) < 0.01  # a normal, not a uniform


def test_uniform_normal_constant():
    t = p()
    assert init.uniform_(t, -2.0, 3.0) is t
    check_uniform(t.numpy(), -2.0, 3.0)
    check_uniform(init.uniform_(p()).numpy(), 0.0, 1.0)
    check_normal(init.normal_(p(), 1.5, 0.3).numpy(), 1.5, 0.3)
    check_normal(init.normal_(p()).numpy(), 0.0, 1.0)
    assert np.all(init.constant_(p(), 0.25).numpy() == 0.25)
    assert np.all(init.ones_(p()).numpy() == 1)
    t = init.ones_(p())
    assert np.all(init.zeros_(t).numpy() == 0)


@pytest.mark.parametrize("gain", [1.0, 5.0 / 3])
def test_xavier(gain):
    bound = gain * math.sqrt(6.0 / (FI + FO))
    check_uniform(init.xavier_uniform_(p(), gain=gain).numpy(), -bound, bound)
    check_normal(init.xavier_normal_(p(), gain=gain).numpy(), 0.0,
                 gain * math.sqrt(2.0 / (FI + FO)))


@pytest.mark.parametrize("a", [0.0, math.sqrt(5), 0.2])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nonlinearity", ["leaky_relu", "relu", "tanh"])
def test_kaiming(a, mode, nonlinearity):
    fan = FI if mode == "fan_in" else FO
    gain = {"relu": math.sqrt(2.0), "tanh": 5.0 / 3,
            "leaky_relu": math.sqrt(2.0 / (1 + a * a))}[nonlinearity]
    std = gain / math.sqrt(fan)
    t = init.kaiming_uniform_(p(), a=a, mode=mode, nonlinearity=nonlinearity)
    check_uniform(t.numpy(), -math.sqrt(3) * std, math.sqrt(3) * std)
    check_normal(init.kaiming_normal_(p(), a=a, mode=mode, nonlinearity=nonlinearity).numpy(),
                 0.0, std)


def test_fans_of_conv_weight():
    std_in = math.sqrt(2.0) / math.sqrt(16 * 25)
    check_normal(init.kaiming_normal_(p(CONV), nonlinearity="relu").numpy(), 0.0, std_in)
    std_out = math.sqrt(2.0) / math.sqrt(64 * 25)
    check_normal(init.kaiming_normal_(p(CONV), mode="fan_out", nonlinearity="relu").numpy(),
                 0.0, std_out)
    bound = math.sqrt(6.0 / (16 * 25 + 64 * 25))
    check_uniform(init.xavier_uniform_(p(CONV)).numpy(), -bound, bound)


def test_calculate_gain_matches_torch():
    torch = pytest.importorskip("torch")
    for nl, param in [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None),
                      ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2),
                      ("selu", None)]:
        assert init.calculate_gain(nl, param) == pytest.approx(
            torch.nn.init.calculate_gain(nl, param))
    with pytest.raises(ValueError):
        init.calculate_gain("bogus")


def test_errors():
    with pytest.raises(ValueError, match=r"\(5,\)"):
        init.xavier_uniform_(p((5,)))
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform_(p(), mode="fan_avg")


def test_orthogonal():
    for shape in [(20, 50), (50, 20)]:
        w = init.orthogonal_(p(shape, np.float64), gain=2.0).numpy()
        small = w @ w.T if shape[0] <= shape[1] else w.T @ w
        np.testing.assert_allclose(small, 4 * np.eye(min(shape)), atol=1e-10)


def test_init_keeps_dtype_and_buffer():
    t = p((30, 40), np.float64)
    buf = t.numpy()
    init.kaiming_uniform_(t)
    assert t.numpy() is buf and t.dtype == np.float64
    init.normal_(t)
    assert t.numpy() is buf


def test_reproducible_under_manual_seed():
    def draw():
        return [init.uniform_(p((7, 9))).numpy().copy(), init.normal_(p((7, 9))).numpy().copy(),
                nn.Linear(5, 4).weight.numpy().copy(), em.randn(3, 3).numpy().copy()]

    em.manual_seed(123)
    a = draw()
    em.manual_seed(123)
    b = draw()
    em.manual_seed(124)
    c = draw()
    for x, y, z in zip(a, b, c):
        np.testing.assert_array_equal(x, y)
        assert not np.array_equal(x, z)


@pytest.mark.parametrize("fan_in,fan_out", [(400, 300), (1, 5), (7, 1)])
def test_linear_default_init_bound(fan_in, fan_out):
    # PyTorch's default: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    lin = nn.Linear(fan_in, fan_out)
    bound = 1 / math.sqrt(fan_in)
    w, b = lin.weight.numpy(), lin.bias.numpy()
    assert w.dtype == np.float32 and w.shape == (fan_out, fan_in)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    if w.size > 1000:
        check_uniform(w.astype(np.float64), -bound, bound)


def test_linear_with_zero_in_features():
    # torch: initializing a zero-element tensor is a no-op; bias bound is 0
    lin = nn.Linear(0, 3)
    assert lin.weight.shape == (3, 0)
    np.testing.assert_array_equal(lin.bias.numpy(), np.zeros(3))
    y = lin(np.zeros((2, 0), dtype=np.float32))
    np.testing.assert_array_equal(y.numpy(), np.zeros((2, 3)))
    assert init.xavier_normal_(p((0, 4))).shape == (0, 4)
    assert init.kaiming_normal_(p((4, 0))).shape == (4, 0)
