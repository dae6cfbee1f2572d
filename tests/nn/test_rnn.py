"""nn.RNN / nn.LSTM / nn.GRU and the cells against torch, weights copied through state_dict."""
import itertools

import numpy as np
import pytest

import ember as em
from ember import nn

torch = pytest.importorskip("torch")

KINDS = {
    "rnn_tanh": (nn.RNN, torch.nn.RNN, {}),
    "rnn_relu": (nn.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (nn.LSTM, torch.nn.LSTM, {}),
    "gru": (nn.GRU, torch.nn.GRU, {}),
}
TOL = dict(atol=2e-5, rtol=1e-4)


def _pair(kind, *args, **kw):
    ecls, tcls, extra = KINDS[kind]
    torch.manual_seed(0)
    tm = tcls(*args, **extra, **kw)
    em_m = ecls(*args, **extra, **kw)
    em_m.load_state_dict(tm.state_dict())
    return em_m, tm


def _run_both(kind, em_m, tm, x, states, seed=0):
    """Forward both with the same inputs; backward a random projection of every output.

    Returns the pairs of outputs and of input/state gradients that must agree."""
    lstm = kind == "lstm"
    xe = em.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    se = [em.tensor(s, requires_grad=True) for s in states]
    st = [torch.tensor(s, requires_grad=True) for s in states]
    if lstm:
        oe, (he, ce) = em_m(xe, tuple(se) if se else None)
        ot, (ht, ct) = tm(xt, tuple(st) if st else None)
        outs = [(oe, ot), (he, ht), (ce, ct)]
    else:
        oe, he = em_m(xe, se[0] if se else None)
        ot, ht = tm(xt, st[0] if st else None)
        outs = [(oe, ot), (he, ht)]
    rng = np.random.default_rng(seed)
    le, lt = None, 0
    for e, t in outs:
        assert tuple(e.shape) == tuple(t.shape)
        r = rng.standard_normal(e.shape).astype(np.float32)
        term = (e * em.tensor(r)).sum()
        le = term if le is None else le + term
        lt = lt + (t * torch.tensor(r)).sum()
    le.backward()
    lt.backward()
    grads = [(xe.grad, xt.grad)] + [(a.grad, b.grad) for a, b in zip(se, st)]
    return outs, grads


def _check(outs, grads, em_m, tm):
    for e, t in outs:
        np.testing.assert_allclose(e.numpy(), t.detach().numpy(), **TOL)
    for e, t in grads:
        np.testing.assert_allclose(e.numpy(), t.numpy(), **TOL)
    tp = dict(tm.named_parameters())
    names = [n for n, _ in em_m.named_parameters()]
    assert names == list(tp)
    for n, p in em_m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[n].grad.numpy(), err_msg=n, **TOL)


COMBOS = list(itertools.product(KINDS, (1, 2), (False, True), (False, True), (False, True)))


@pytest.mark.parametrize("kind,layers,bidir,batch_first,with_state", COMBOS)
def test_against_torch(kind, layers, bidir, batch_first, with_state):
    S, N, I, H = 5, 3, 4, 6
    em_m, tm = _pair(kind, I, H, num_layers=layers, bidirectional=bidir,
                     batch_first=batch_first)
    rng = np.random.default_rng(layers * 7 + bidir * 3 + batch_first)
    x = rng.standard_normal((N, S, I) if batch_first else (S, N, I)).astype(np.float32)
    D = 2 if bidir else 1
    states = []
    if with_state:
        states = [rng.standard_normal((layers * D, N, H)).astype(np.float32)
                  for _ in range(2 if kind == "lstm" else 1)]
    outs, grads = _run_both(kind, em_m, tm, x, states)
    _check(outs, grads, em_m, tm)


@pytest.mark.parametrize("kind", list(KINDS))
def test_sequence_length_one_and_batch_one(kind):
    em_m, tm = _pair(kind, 3, 4, num_layers=2, bidirectional=True)
    x = np.random.default_rng(0).standard_normal((1, 1, 3)).astype(np.float32)
    outs, grads = _run_both(kind, em_m, tm, x, [])
    _check(outs, grads, em_m, tm)


@pytest.mark.parametrize("kind", list(KINDS))
def test_unbatched_input(kind):
    em_m, tm = _pair(kind, 3, 4, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    states = [rng.standard_normal((4, 4)).astype(np.float32)
              for _ in range(2 if kind == "lstm" else 1)]
    outs, grads = _run_both(kind, em_m, tm, x, states)
    assert outs[0][0].shape == (5, 8)
    _check(outs, grads, em_m, tm)


@pytest.mark.parametrize("kind", list(KINDS))
def test_no_bias(kind):
    em_m, tm = _pair(kind, 3, 4, bias=False)
    assert list(em_m.state_dict()) == ["weight_ih_l0", "weight_hh_l0"]
    x = np.random.default_rng(2).standard_normal((4, 2, 3)).astype(np.float32)
    outs, grads = _run_both(kind, em_m, tm, x, [])
    _check(outs, grads, em_m, tm)


def test_parameter_names_shapes_and_init():
    m = nn.LSTM(10, 20, num_layers=2, bidirectional=True)
    t = torch.nn.LSTM(10, 20, num_layers=2, bidirectional=True)
    assert list(m.state_dict()) == list(t.state_dict())
    for k, v in t.state_dict().items():
        assert m.state_dict()[k].shape == tuple(v.shape)
        assert m.state_dict()[k].dtype == np.float32
    bound = 1 / np.sqrt(20)
    allp = np.concatenate([p.data.ravel() for p in m.parameters()])
    assert np.abs(allp).max() <= bound and np.abs(allp).max() > 0.9 * bound
    em.manual_seed(3)
    a = nn.GRU(4, 5).weight_hh_l0.numpy().copy()
    em.manual_seed(3)
    np.testing.assert_array_equal(a, nn.GRU(4, 5).weight_hh_l0.numpy())
    assert "bidirectional=True" in repr(m) and "num_layers=2" in repr(m)


def test_dropout_between_layers():
    em_m, tm = _pair("lstm", 4, 5, num_layers=3, dropout=0.5)
    x = np.random.default_rng(0).standard_normal((6, 2, 4)).astype(np.float32)
    em_m.train()
    em.manual_seed(1)
    a = em_m(x)[0].numpy().copy()
    em.manual_seed(1)
    b = em_m(x)[0].numpy()
    np.testing.assert_array_equal(a, b)  # reproducible from ember's generator
    em.manual_seed(2)
    assert not np.allclose(a, em_m(x)[0].numpy())
    em_m.eval()
    tm.eval()
    np.testing.assert_allclose(em_m(x)[0].numpy(), tm(torch.tensor(x))[0].detach().numpy(),
                               **TOL)
    # training-mode gradients flow through the dropout mask
    em_m.train()
    out, _ = em_m(em.tensor(x, requires_grad=True))
    out.sum().backward()
    assert all(p.grad is not None for p in em_m.parameters())


CELLS = {
    "rnn_tanh": (nn.RNNCell, torch.nn.RNNCell, {}),
    "rnn_relu": (nn.RNNCell, torch.nn.RNNCell, {"nonlinearity": "relu"}),
    "lstm": (nn.LSTMCell, torch.nn.LSTMCell, {}),
    "gru": (nn.GRUCell, torch.nn.GRUCell, {}),
}


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_state", [True, False])
@pytest.mark.parametrize("kind", list(CELLS))
def test_cells_against_torch(kind, with_state, batched):
    ecls, tcls, extra = CELLS[kind]
    torch.manual_seed(0)
    tc = tcls(3, 4, **extra)
    ec = ecls(3, 4, **extra)
    ec.load_state_dict(tc.state_dict())
    assert list(ec.state_dict()) == list(tc.state_dict())
    rng = np.random.default_rng(4)
    shp = (2,) if batched else ()
    x = rng.standard_normal(shp + (3,)).astype(np.float32)
    nst = 2 if kind == "lstm" else 1
    states = [rng.standard_normal(shp + (4,)).astype(np.float32) for _ in range(nst)]
    xe, xt = em.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    se = [em.tensor(s, requires_grad=True) for s in states]
    st = [torch.tensor(s, requires_grad=True) for s in states]
    if kind == "lstm":
        oe = ec(xe, tuple(se) if with_state else None)
        ot = tc(xt, tuple(st) if with_state else None)
    else:
        oe = [ec(xe, se[0] if with_state else None)]
        ot = [tc(xt, st[0] if with_state else None)]
    le, lt = None, 0
    for k, (e, t) in enumerate(zip(oe, ot)):
        np.testing.assert_allclose(e.numpy(), t.detach().numpy(), **TOL)
        r = np.random.default_rng(k).standard_normal(e.shape).astype(np.float32)
        le = (e * em.tensor(r)).sum() if le is None else le + (e * em.tensor(r)).sum()
        lt = lt + (t * torch.tensor(r)).sum()
    le.backward()
    lt.backward()
    np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), **TOL)
    if with_state:
        for a, b in zip(se, st):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), **TOL)
    tp = dict(tc.named_parameters())
    for n, p in ec.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[n].grad.numpy(), err_msg=n, **TOL)


def test_cell_unrolled_matches_layer_float64_gradients():
    # A GRUCell stepped in Python and nn.GRU over the sequence: same weights, same gradients.
    cell = nn.GRUCell(3, 4, dtype=np.float64)
    layer = nn.GRU(3, 4, dtype=np.float64)
    layer.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    h = None
    for t in range(6):
        h = cell(em.tensor(x[t], dtype=np.float64), h)
    out, hn = layer(em.tensor(x, dtype=np.float64))
    np.testing.assert_allclose(h.numpy(), hn.numpy()[0], atol=1e-12)
    h.sum().backward()
    hn.sum().backward()
    for (n, p), (n2, q) in zip(cell.named_parameters(), layer.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), atol=1e-12, err_msg=n)


def test_bad_input_size_and_hidden_shapes():
    m = nn.LSTM(4, 5, num_layers=2)
    with pytest.raises(ValueError, match=r"input_size: expected 4, got 3 \(input shape "
                                         r"\(6, 2, 3\)\)"):
        m(np.zeros((6, 2, 3), np.float32))
    h = np.zeros((2, 2, 5), np.float32)
    with pytest.raises(ValueError, match=r"h0 of shape \(2, 2, 5\), got \(1, 2, 5\)"):
        m(np.zeros((6, 2, 4), np.float32), (h[:1], h))
    with pytest.raises(ValueError, match=r"c0 of shape \(2, 2, 5\), got \(2, 2, 4\)"):
        m(np.zeros((6, 2, 4), np.float32), (h, h[..., :4]))
    with pytest.raises(ValueError, match=r"tuple \(h0, c0\)"):
        m(np.zeros((6, 2, 4), np.float32), h)
    g = nn.GRU(4, 5, batch_first=True)
    with pytest.raises(ValueError, match=r"h0 of shape \(1, 3, 5\), got \(1, 6, 5\)"):
        g(np.zeros((3, 6, 4), np.float32), np.zeros((1, 6, 5), np.float32))
    with pytest.raises(ValueError, match="2-D .* or 3-D"):
        g(np.zeros((3,), np.float32))
    with pytest.raises(ValueError, match=r"hx of shape \(2, 4\), got \(3, 4\)"):
        nn.GRUCell(3, 4)(np.zeros((2, 3), np.float32), np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="input_size"):
        nn.RNNCell(3, 4)(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="hidden_size"):
        nn.GRU(3, 0)
    with pytest.raises(ValueError, match="dropout"):
        nn.GRU(3, 4, dropout=1.5)


def test_inference_under_no_grad_builds_no_graph():
    m = nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    out, (h, c) = m(x)
    with em.no_grad():
        out2, (h2, c2) = m(x)
    assert out.requires_grad and not out2.requires_grad and out2.grad_fn is None
    np.testing.assert_array_equal(out.numpy(), out2.numpy())
    np.testing.assert_array_equal(c.numpy(), c2.numpy())
