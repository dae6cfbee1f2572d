"""Recurrent kernels (one layer, one direction): F.rnn_layer and _core.rnn_forward/backward."""
import numpy as np
import pytest

import ember as em
from ember import _core
from ember import functional as F
from helpers import gradcheck

MODES = ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"]
GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _arrays(mode, S=3, N=2, I=3, H=2, seed=0, dtype=np.float64, scale=0.6):
    rng = np.random.default_rng(seed)
    G = GATES[mode] * H
    x = rng.standard_normal((S, N, I))
    h0 = rng.standard_normal((N, H)) * 0.5
    c0 = rng.standard_normal((N, H)) * 0.5
    w_ih = rng.uniform(-scale, scale, (G, I))
    w_hh = rng.uniform(-scale, scale, (G, H))
    b_ih = rng.uniform(-scale, scale, (G,))
    b_hh = rng.uniform(-scale, scale, (G,))
    return [a.astype(dtype) for a in (x, h0, c0, w_ih, w_hh, b_ih, b_hh)]


def _layer(mode, reverse):
    lstm = mode == "LSTM"

    def fn(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        return F.rnn_layer(mode, x, w_ih, w_hh, b_ih, b_hh, h0, c0 if lstm else None,
                           reverse=reverse)
    return fn


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_through_time(mode, reverse):
    arrays = _arrays(mode, seed=1 + MODES.index(mode))
    if mode == "RNN_RELU":
        arrays[0] = arrays[0] + 0.3  # keep pre-activations away from the kink at 0
    wrt = [0, 1, 3, 4, 5, 6] + ([2] if mode == "LSTM" else [])
    gradcheck(_layer(mode, reverse), *arrays, wrt=wrt, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_no_bias_no_initial_state(mode):
    x, _, _, w_ih, w_hh, _, _ = _arrays(mode, S=4, seed=7)

    def fn(x, w_ih, w_hh):
        return F.rnn_layer(mode, x, w_ih, w_hh, reverse=True)
    gradcheck(fn, x, w_ih, w_hh)


# N = 3 runs the small-M (Eigen) GEMMs; N >= 12 the packed kernel with the recurrent weights
# packed once per call (core/gemm PackedB): partial 16-column panels (H = 40), and H = 264 for
# reductions over more than one k-block (K = H forward, K = gates * H backward).
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dims", [(5, 3, 4, 6), (6, 20, 8, 40), (3, 13, 5, 264)])
def test_against_torch_one_direction(mode, dims):
    torch = pytest.importorskip("torch")
    S, N, I, H = dims
    cls = {"RNN_TANH": torch.nn.RNN, "RNN_RELU": torch.nn.RNN, "LSTM": torch.nn.LSTM,
           "GRU": torch.nn.GRU}[mode]
    kw = {"nonlinearity": "relu"} if mode == "RNN_RELU" else {}
    torch.manual_seed(0)
    tm = cls(I, H, bidirectional=True, **kw)
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    rng = np.random.default_rng(3)
    x = rng.standard_normal((S, N, I)).astype(np.float32)
    h0 = rng.standard_normal((2, N, H)).astype(np.float32)
    c0 = rng.standard_normal((2, N, H)).astype(np.float32)
    xt, ht, ct = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    if mode == "LSTM":
        yt, (hnt, cnt) = tm(xt, (ht, ct))
    else:
        yt, hnt = tm(xt, ht)
    gy = rng.standard_normal(yt.shape).astype(np.float32)
    gh = rng.standard_normal(hnt.shape).astype(np.float32)
    loss = (yt * torch.tensor(gy)).sum() + (hnt * torch.tensor(gh)).sum()
    if mode == "LSTM":
        gc = rng.standard_normal(cnt.shape).astype(np.float32)
        loss = loss + (cnt * torch.tensor(gc)).sum()
    loss.backward()
    tgrads = {k: v.grad.numpy() for k, v in tm.named_parameters()}
    for d, sfx in enumerate(["", "_reverse"]):
        xe = em.tensor(x, requires_grad=True)
        he = em.tensor(h0[d], requires_grad=True)
        ce = em.tensor(c0[d], requires_grad=True) if mode == "LSTM" else None
        ps = [em.tensor(sd[f"{n}_l0{sfx}"], requires_grad=True)
              for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        y, hn, cn = F.rnn_layer(mode, xe, *ps, he, ce, reverse=bool(d))
        np.testing.assert_allclose(y.numpy(), yt.detach().numpy()[..., d * H:(d + 1) * H],
                                   atol=1e-5)
        np.testing.assert_allclose(hn.numpy(), hnt.detach().numpy()[d], atol=1e-5)
        le = (y * em.tensor(gy[..., d * H:(d + 1) * H])).sum() + (hn * em.tensor(gh[d])).sum()
        if mode == "LSTM":
            np.testing.assert_allclose(cn.numpy(), cnt.detach().numpy()[d], atol=1e-5)
            le = le + (cn * em.tensor(gc[d])).sum()
        le.backward()
        np.testing.assert_allclose(he.grad.numpy(), ht.grad.numpy()[d], atol=1e-5)
        if mode == "LSTM":
            np.testing.assert_allclose(ce.grad.numpy(), ct.grad.numpy()[d], atol=1e-5)
        for p, n in zip(ps, ("weight_ih", "weight_hh", "bias_ih", "bias_hh")):
            np.testing.assert_allclose(p.grad.numpy(), tgrads[f"{n}_l0{sfx}"], atol=1e-5,
                                       err_msg=n + sfx)
        if d == 0:
            gx = xe.grad.numpy()
        else:
            gx = gx + xe.grad.numpy()
    np.testing.assert_allclose(gx, xt.grad.numpy(), atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_param_grads_accumulate_input_grads_overwrite(mode):
    x, h0, c0, w_ih, w_hh, b_ih, b_hh = _arrays(mode, dtype=np.float32, seed=5)
    lstm = mode == "LSTM"
    hs, cs, gates, ghn = _core.rnn_forward(mode, x, h0, c0 if lstm else None, w_ih, w_hh, b_ih,
                                           b_hh, False, True)
    dy = np.ones(hs[1:].shape, np.float32)
    dcn = np.ones(h0.shape, np.float32) if lstm else None
    grads = [np.zeros_like(a) for a in (w_ih, w_hh, b_ih, b_hh)]
    first = _core.rnn_backward(mode, dy, None, dcn, x, hs, cs, gates, ghn, w_ih, w_hh, False, True,
                               *grads)
    once = [g.copy() for g in grads]
    second = _core.rnn_backward(mode, dy, None, dcn, x, hs, cs, gates, ghn, w_ih, w_hh, False, True,
                                *grads)
    for g, o in zip(grads, once):
        assert np.abs(o).max() > 0
        np.testing.assert_allclose(g, 2 * o, rtol=1e-6)
    for a, b in zip(first, second):  # dx, dh0 (and dc0) are fresh results each time
        if a is not None:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mode", MODES)
def test_no_grad_inference_matches_training(mode):
    x, h0, c0, w_ih, w_hh, b_ih, b_hh = _arrays(mode, dtype=np.float32, seed=9)
    lstm = mode == "LSTM"
    ps = [em.tensor(a, requires_grad=True) for a in (w_ih, w_hh, b_ih, b_hh)]
    y, hn, cn = F.rnn_layer(mode, x, *ps, h0, c0 if lstm else None, reverse=True)
    assert y.requires_grad and hn.requires_grad
    with em.no_grad():
        y2, hn2, cn2 = F.rnn_layer(mode, x, *ps, h0, c0 if lstm else None, reverse=True)
    assert not y2.requires_grad and y2.grad_fn is None
    np.testing.assert_array_equal(y.numpy(), y2.numpy())
    np.testing.assert_array_equal(hn.numpy(), hn2.numpy())
    if lstm:
        np.testing.assert_array_equal(cn.numpy(), cn2.numpy())
    else:
        assert cn is None and cn2 is None


@pytest.mark.parametrize("mode", MODES)
def test_bitwise_same_at_1_and_2_threads(mode):
    # Big enough that the gate passes, GEMMs and bias sums all take their threaded paths.
    x, h0, c0, w_ih, w_hh, b_ih, b_hh = _arrays(mode, S=6, N=64, I=40, H=72, dtype=np.float32,
                                                seed=11, scale=0.15)
    lstm = mode == "LSTM"
    rng = np.random.default_rng(0)
    dy = rng.standard_normal((6, 64, 72)).astype(np.float32)
    dcn = rng.standard_normal((64, 72)).astype(np.float32) if lstm else None
    before = em.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            em.set_num_threads(n)
            res = []
            for reverse in (False, True):
                hs, cs, gates, ghn = _core.rnn_forward(mode, x, h0, c0 if lstm else None, w_ih,
                                                       w_hh, b_ih, b_hh, reverse, True)
                grads = [np.zeros_like(a) for a in (w_ih, w_hh, b_ih, b_hh)]
                out = _core.rnn_backward(mode, dy, None, dcn, x, hs, cs, gates, ghn, w_ih, w_hh,
                                         reverse, True, *grads)
                res += [hs, cs, *out, *grads]
            results.append(res)
    finally:
        em.set_num_threads(before)
    for a, b in zip(*results):
        if a is None:
            assert b is None
        else:
            np.testing.assert_array_equal(a, b)


def test_bad_input_size_names_shapes():
    x, h0, c0, w_ih, w_hh, b_ih, b_hh = _arrays("LSTM", I=3, dtype=np.float32)
    bad = np.zeros((3, 2, 5), np.float32)
    with pytest.raises(ValueError, match=r"input_size.*expected 3, got 5.*\(3, 2, 5\)"):
        F.rnn_layer("LSTM", bad, w_ih, w_hh, b_ih, b_hh)


def test_bad_h0_and_c0_shape():
    x, h0, c0, w_ih, w_hh, b_ih, b_hh = _arrays("LSTM", dtype=np.float32)
    with pytest.raises(ValueError, match=r"h0.*\(2, 2\).*got \(3, 2\)"):
        F.rnn_layer("LSTM", x, w_ih, w_hh, b_ih, b_hh, np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"c0.*\(2, 2\).*got \(2, 3\)"):
        F.rnn_layer("LSTM", x, w_ih, w_hh, b_ih, b_hh, h0, np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="c0 is only used by LSTM"):
        F.rnn_layer("GRU", x, w_ih[:6], w_hh[:6], None, None, h0, c0)


def test_bad_weights_mode_dtype_and_length():
    x, h0, c0, w_ih, w_hh, b_ih, b_hh = _arrays("GRU", dtype=np.float32)
    with pytest.raises(ValueError, match=r"weight_hh shape \(6, 3\).*expected \(6, 2\)"):
        F.rnn_layer("GRU", x, w_ih, np.zeros((6, 3), np.float32))
    with pytest.raises(ValueError, match=r"weight_ih must be 2-D \(4\*hidden_size"):
        F.rnn_layer("LSTM", x, w_ih, w_hh)  # 6 rows is not a multiple of 4 gates
    with pytest.raises(ValueError, match=r"bias shape \(5,\)"):
        F.rnn_layer("GRU", x, w_ih, w_hh, np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="mode must be one of"):
        F.rnn_layer("LSTMX", x, w_ih, w_hh)
    with pytest.raises(ValueError, match="3-D"):
        F.rnn_layer("GRU", x[0], w_ih, w_hh)
    with pytest.raises(ValueError, match="sequence length >= 1"):
        F.rnn_layer("GRU", x[:0], w_ih, w_hh)
    with pytest.raises(TypeError, match="weight_hh"):
        F.rnn_layer("GRU", x, w_ih, em.tensor(w_hh, dtype=np.float64))
    with pytest.raises(TypeError, match="float32 or float64"):
        _core.rnn_forward("GRU", x.astype(np.int32), None, None, w_ih, w_hh, None, None)


def test_backward_rejects_missing_saved_state():
    x, h0, c0, w_ih, w_hh, b_ih, b_hh = _arrays("LSTM", dtype=np.float32)
    hs, cs, gates, ghn = _core.rnn_forward("LSTM", x, h0, c0, w_ih, w_hh, b_ih, b_hh, False,
                                           False)
    assert gates is None
    with pytest.raises(ValueError, match="saved forward state is missing"):
        _core.rnn_backward("LSTM", None, None, None, x, hs, cs, gates, ghn, w_ih, w_hh, False, True)
    with pytest.raises(ValueError, match=r"'hs' has shape"):
        _core.rnn_backward("LSTM", None, None, None, x, hs[1:], cs, gates, ghn, w_ih, w_hh, False,
                           True)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_final_states_only(mode, reverse):
    # Only h_n (and c_n) reach the loss: the kernel gets no output gradient, just dh_n / dc_n.
    arrays = _arrays(mode, S=4, seed=21)
    if mode == "RNN_RELU":
        arrays[0] = arrays[0] + 0.3
    lstm = mode == "LSTM"

    def fn(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        _, hn, cn = F.rnn_layer(mode, x, w_ih, w_hh, b_ih, b_hh, h0, c0 if lstm else None,
                                reverse=reverse)
        return (hn, cn) if lstm else hn
    gradcheck(fn, *arrays, wrt=[0, 1, 3, 4, 5, 6] + ([2] if lstm else []))


def test_last_hidden_only_without_initial_state_matches_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tm = torch.nn.LSTM(4, 5)
    sd = {k: em.tensor(v.detach().numpy(), requires_grad=True)
          for k, v in tm.state_dict().items()}
    x = np.random.default_rng(0).standard_normal((6, 3, 4)).astype(np.float32)
    _, hn, _ = F.lstm_layer(x, sd["weight_ih_l0"], sd["weight_hh_l0"], sd["bias_ih_l0"],
                            sd["bias_hh_l0"])
    (hn * hn).sum().backward()
    _, (ht, _) = tm(torch.tensor(x))
    (ht * ht).sum().backward()
    for k, p in tm.named_parameters():
        np.testing.assert_allclose(sd[k].grad.numpy(), p.grad.numpy(), atol=1e-5, err_msg=k)
