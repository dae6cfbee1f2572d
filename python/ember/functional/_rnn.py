"""Recurrent layers: one C++ call runs a whole sequence forward, one runs backward through time.

``rnn_layer`` is one layer in one direction (the modules in ``nn.RNN/LSTM/GRU`` stack them).
Data is time-major, input (S, N, I). The kernel returns every hidden state in one array
``hs`` (S+1, N, H) (see cpp/ops/rnn.h); the output and the final state are views of it, so
nothing is copied. Under ``no_grad`` (or when nothing needs a gradient) the forward runs in
inference mode and keeps no gate activations.
"""
import numpy as np

from .. import _core
from ..autograd import is_grad_enabled
from ..tensor import Tensor, as_tensor, make_result

__all__ = ["rnn_layer", "rnn_tanh_layer", "rnn_relu_layer", "lstm_layer", "gru_layer"]

_MODES = ("RNN_TANH", "RNN_RELU", "LSTM", "GRU")
_NAMES = {"RNN_TANH": "RnnTanh", "RNN_RELU": "RnnRelu", "LSTM": "Lstm", "GRU": "Gru"}


def _grad_target(p):
    """(array the kernel accumulates into, gradient to hand to autograd) for a weight/bias.

    Leaf parameters accumulate straight into ``.grad`` (the kernel's += rule); a non-leaf gets
    a fresh zero buffer that is returned to autograd."""
    if p is None or not p.requires_grad:
        return None, None
    if p._node is None:
        if p.grad is None:
            p.grad = Tensor(np.zeros_like(p.data))
        return p.grad.data, None
    buf = np.zeros_like(p.data)
    return buf, buf


def _select(t: Tensor, index: int, name: str) -> Tensor:
    """t[index] along the first axis, as a view; the backward puts g back into that row."""
    out = t.data[index]

    def backward(g):
        full = np.zeros_like(t.data)
        full[index] = g
        return (full,)
    return make_result(out, (t,), backward, name)


def rnn_layer(mode, input, weight_ih, weight_hh, bias_ih=None, bias_hh=None, h0=None, c0=None,
              reverse=False):
    """One recurrent layer in one direction over a whole time-major sequence.

    mode: 'RNN_TANH', 'RNN_RELU', 'LSTM' (gates i,f,g,o) or 'GRU' (gates r,z,n), as torch.
    input (S, N, I); weight_ih (G*H, I); weight_hh (G*H, H); biases (G*H,); h0, c0 (N, H) or
    None (zeros). reverse: run time from S-1 down to 0 (the backward half of a bidirectional
    layer); the output is still indexed by time.
    Returns (output (S, N, H), h_n (N, H), c_n (N, H) or None).
    """
    if mode not in _MODES:
        raise ValueError(f"rnn_layer: mode must be one of {_MODES}, got {mode!r}")
    w_ih, w_hh = as_tensor(weight_ih), as_tensor(weight_hh)
    x = as_tensor(input)
    if x.data.dtype != w_ih.data.dtype and not isinstance(input, Tensor):
        x = Tensor(x.data.astype(w_ih.data.dtype))
    b_ih = None if bias_ih is None else as_tensor(bias_ih)
    b_hh = None if bias_hh is None else as_tensor(bias_hh)
    h0 = None if h0 is None else as_tensor(h0, w_ih.data.dtype)
    lstm = mode == "LSTM"
    if c0 is not None and not lstm:
        raise ValueError(f"rnn_layer: c0 is only used by LSTM, got mode {mode!r}")
    c0 = None if c0 is None else as_tensor(c0, w_ih.data.dtype)
    inputs = (x, h0, c0, w_ih, w_hh, b_ih, b_hh)
    training = is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs)
    hs, cs, gates, ghn = _core.rnn_forward(
        mode, x.data, None if h0 is None else h0.data, None if c0 is None else c0.data,
        w_ih.data, w_hh.data, None if b_ih is None else b_ih.data,
        None if b_hh is None else b_hh.data, bool(reverse), training)
    S = x.shape[0]
    y = hs[:S] if reverse else hs[1:]
    last = 0 if reverse else S - 1        # index in y of the final state
    if not training:
        cn = None if cs is None else Tensor(cs[0] if reverse else cs[S])
        return Tensor(y), Tensor(y[last]), cn

    # The gradients of h_n and c_n are left here by their nodes (which autograd runs before
    # y's), so that the kernel takes them as they are instead of as a mostly-zero dy.
    box = {}

    def backward(g):
        dhn, dcn = box.pop("dhn", None), box.pop("dcn", None)
        # g is 0-d (zero) when only h_n / c_n reached y: no output gradient at all.
        dy = np.ascontiguousarray(g) if g.ndim else None
        dw_ih, gw_ih = _grad_target(w_ih)
        dw_hh, gw_hh = _grad_target(w_hh)
        db_ih, gb_ih = _grad_target(b_ih)
        db_hh, gb_hh = _grad_target(b_hh)
        need_dh0 = h0 is not None and h0.requires_grad
        dx, dh0, dc0 = _core.rnn_backward(
            mode, dy, dhn, dcn, x.data, hs, cs, gates, ghn, w_ih.data, w_hh.data,
            bool(reverse), x.requires_grad, dw_ih, dw_hh, db_ih, db_hh, need_dh0, h0 is None)
        return (dx, dh0 if h0 is not None and h0.requires_grad else None,
                dc0 if c0 is not None and c0.requires_grad else None, gw_ih, gw_hh, gb_ih, gb_hh)

    name = _NAMES[mode]
    out = make_result(y, inputs, backward, name + "Backward")
    zero = np.zeros((), y.dtype)

    def side_output(key):
        def backward_side(g):
            prev = box.get(key)
            box[key] = np.ascontiguousarray(g) if prev is None else prev + g
            # y's node must run to deliver it, so it gets a (0-d, zero) gradient from here.
            return (zero,)
        return backward_side

    h_n = make_result(y[last], (out,), side_output("dhn"), name + "HnBackward")
    c_n = None
    if lstm:
        c_n = make_result(cs[0] if reverse else cs[S], (out,), side_output("dcn"),
                          "LstmCnBackward")
    return out, h_n, c_n


def rnn_tanh_layer(input, weight_ih, weight_hh, bias_ih=None, bias_hh=None, h0=None,
                   reverse=False):
    out, h_n, _ = rnn_layer("RNN_TANH", input, weight_ih, weight_hh, bias_ih, bias_hh, h0,
                            reverse=reverse)
    return out, h_n


def rnn_relu_layer(input, weight_ih, weight_hh, bias_ih=None, bias_hh=None, h0=None,
                   reverse=False):
    out, h_n, _ = rnn_layer("RNN_RELU", input, weight_ih, weight_hh, bias_ih, bias_hh, h0,
                            reverse=reverse)
    return out, h_n


def lstm_layer(input, weight_ih, weight_hh, bias_ih=None, bias_hh=None, h0=None, c0=None,
               reverse=False):
    return rnn_layer("LSTM", input, weight_ih, weight_hh, bias_ih, bias_hh, h0, c0, reverse)


def gru_layer(input, weight_ih, weight_hh, bias_ih=None, bias_hh=None, h0=None, reverse=False):
    out, h_n, _ = rnn_layer("GRU", input, weight_ih, weight_hh, bias_ih, bias_hh, h0,
                            reverse=reverse)
    return out, h_n
