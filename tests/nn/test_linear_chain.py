"""Inference through a run of Linear(+ReLU) layers as one C++ call (_core.linear_chain_forward),
which nn.Sequential takes when no graph is recorded. It must give exactly what the layers give
one by one, and step aside whenever a graph is needed."""
import numpy as np
import pytest

import ember as em
from ember import _core, nn
from ember.nn.modules import container


def _layers(dims, dtype, seed=0, bias=(True,), relu=None):
    rng = np.random.default_rng(seed)
    out = []
    for i, (k, n) in enumerate(zip(dims[:-1], dims[1:])):
        w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(dtype)
        b = rng.standard_normal(n).astype(dtype) if bias[i % len(bias)] else None
        r = (i < len(dims) - 2) if relu is None else relu[i]
        out.append((w, b, r))
    return out


def _one_by_one(x, layers):
    for w, b, r in layers:
        x = _core.linear_forward(x, w, b, r)
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xshape", [(1, 33), (7, 33), (64, 33), (2, 3, 33), (0, 33)])
@pytest.mark.parametrize("dims,bias,relu", [
    ((33, 40, 5), (True,), None),
    ((33, 40, 20, 17, 5), (True, False), (True, False, True, False)),
    ((33, 16, 16, 16), (False,), (True, True, True)),
])
def test_chain_equals_layer_by_layer_bitwise(dtype, xshape, dims, bias, relu):
    layers = _layers(dims, dtype, bias=bias, relu=relu)
    x = np.random.default_rng(1).standard_normal(xshape).astype(dtype)
    if x.size:
        x.reshape(-1)[:3] = [np.nan, -np.inf, 0.0]
    got = _core.linear_chain_forward(x, layers)
    want = _one_by_one(x, layers)
    assert got.shape == xshape[:-1] + (dims[-1],) and got.dtype == dtype
    np.testing.assert_array_equal(got, want)


def test_chain_bad_input():
    layers = _layers((8, 6, 4), np.float32)
    x = np.ones((2, 8), np.float32)
    with pytest.raises(ValueError, match=r"linear: input shape \(2, 6\) does not match weight "
                                         r"shape \(4, 5\)"):
        _core.linear_chain_forward(x, [layers[0], (np.ones((4, 5), np.float32), None, False)])
    with pytest.raises(ValueError, match=r"linear: input shape \(2, 7\)"):
        _core.linear_chain_forward(np.ones((2, 7), np.float32), layers)
    with pytest.raises(TypeError, match="weight.*float64.*float32"):
        _core.linear_chain_forward(x, [(layers[0][0].astype(np.float64), None, True)])
    with pytest.raises(ValueError, match="bias shape"):
        _core.linear_chain_forward(x, [(layers[0][0], np.ones(5, np.float32), True)])
    with pytest.raises(ValueError, match="no layers"):
        _core.linear_chain_forward(x, [])
    with pytest.raises(ValueError, match=r"\(weight, bias, relu\)"):
        _core.linear_chain_forward(x, [(layers[0][0], None)])


def _mlp(dtype=np.float32):
    em.manual_seed(0)
    seq = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                        nn.Linear(32, 6), nn.Tanh(), nn.Linear(6, 4), nn.Linear(4, 3))
    for p in seq.parameters():
        p.data = p.data.astype(dtype)
    return seq


def _count_chain_calls(monkeypatch):
    calls = []
    real = _core.linear_chain_forward

    def spy(x, layers):
        calls.append(len(layers))
        return real(x, layers)
    monkeypatch.setattr(container._core, "linear_chain_forward", spy)
    return calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sequential_uses_chain_under_no_grad(monkeypatch, dtype):
    seq = _mlp(dtype)
    kinds = [k for k, _ in seq._steps()]
    assert kinds == [container._LINEAR_RUN, container._CALL, container._LINEAR_RUN]
    calls = _count_chain_calls(monkeypatch)
    x = np.random.default_rng(2).standard_normal((5, 20)).astype(dtype)
    with em.no_grad():
        y = seq(x)
    assert calls == [3, 2]
    want = em.tensor(x, dtype=dtype)
    for m in seq:
        want = m(want)
    np.testing.assert_array_equal(y.numpy(), want.numpy())
    assert not y.requires_grad and y.grad_fn is None
    # non-contiguous numpy input is copied, as layer by layer (and float64 data stays float64
    # in a float64 model on both paths)
    xt = np.asfortranarray(x)
    with em.no_grad():
        np.testing.assert_array_equal(seq(xt).numpy(), y.numpy())
    np.testing.assert_array_equal(seq(xt).numpy(), y.numpy())   # grad mode: layer by layer
    # numpy float64 data into a float32 model is cast, as layer-by-layer does
    if dtype == np.float32:
        with em.no_grad():
            np.testing.assert_array_equal(seq(x.astype(np.float64)).numpy(), y.numpy())


def test_sequential_records_a_graph_when_grad_is_needed(monkeypatch):
    seq = _mlp()
    calls = _count_chain_calls(monkeypatch)
    x = em.tensor(np.random.default_rng(3).standard_normal((4, 20)).astype(np.float32))
    y = seq(x)                       # parameters require grad: layer by layer, a graph
    assert calls == [] and y.requires_grad
    y.sum().backward()
    assert all(p.grad is not None for p in seq.parameters())

    # Frozen model, input without grad: nothing to record, so the chain runs even in grad mode.
    seq.requires_grad_(False)
    y2 = seq(x)
    assert calls == [3, 2] and not y2.requires_grad
    np.testing.assert_array_equal(y2.numpy(), y.numpy())

    # ...but an input that requires grad needs the graph again.
    xg = em.tensor(x.numpy(), requires_grad=True)
    seq(xg).sum().backward()
    assert calls == [3, 2] and xg.grad is not None and xg.grad.shape == (4, 20)


def test_plan_follows_changes_and_overrides():
    seq = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))
    assert [k for k, _ in seq._steps()] == [container._LINEAR_RUN]
    x = np.random.default_rng(4).standard_normal((3, 8)).astype(np.float32)

    class Shifted(nn.Linear):
        def forward(self, x):
            return super().forward(x) + 100.0

    seq.append(Shifted(8, 2))        # a subclass that overrides forward ends the run
    assert [k for k, _ in seq._steps()] == [container._LINEAR_RUN, container._CALL]
    with em.no_grad():
        assert (seq(x).numpy() >= 90).all()

    seq2 = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
    with em.no_grad():
        before = seq2(x).numpy()
    seq2[1].forward = lambda t: t * 0.0   # an instance override, made before the next call
    seq2.__dict__.pop("_plan", None)      # (the plan is per module set; see _steps)
    with em.no_grad():
        assert np.all(seq2(x).numpy() == 0) and np.any(before != 0)

    # Replacing a module (in place: the order stays) rebuilds the plan.
    seq3 = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))
    with em.no_grad():
        seq3(x)
    seq3[0] = nn.Tanh()
    assert [type(m).__name__ for m in seq3] == ["Tanh", "ReLU", "Linear"]
    assert [k for k, _ in seq3._steps()] == [container._CALL, container._CALL, container._CALL]
    with em.no_grad():
        want = seq3[2](em.tensor(np.maximum(np.tanh(x), 0)))
        np.testing.assert_allclose(seq3(x).numpy(), want.numpy(), rtol=1e-6)
    setattr(seq3, "2", nn.Linear(8, 3))
    assert [type(m).__name__ for m in seq3] == ["Tanh", "ReLU", "Linear"]
    assert seq3(x).shape == (3, 3)
    with pytest.raises(TypeError, match="Module"):
        seq3[0] = 3


def test_weight_updates_are_seen_by_the_chain():
    seq = nn.Sequential(nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 2))
    x = np.ones((1, 5), np.float32)
    with em.no_grad():
        a = seq(x).numpy()
        seq[2].bias.data += 1.0          # in place
        b = seq(x).numpy()
        seq[2].weight.data = np.zeros((2, 5), np.float32)   # rebound
        c = seq(x).numpy()
    np.testing.assert_allclose(b, a + 1.0, rtol=1e-6)
    np.testing.assert_array_equal(c, seq[2].bias.numpy()[None, :])
