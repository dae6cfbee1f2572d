"""Recurrent layers and cells with PyTorch's names, signatures, weights and state_dict keys.

Each layer and direction is one C++ call over the whole sequence (``F.rnn_layer``); a
bidirectional layer is two calls whose outputs are concatenated on the feature axis.
"""
import math

import numpy as np

from ... import functional as F
from ...functional._rnn import _select
from ..._random import default_generator
from ...tensor import Tensor, as_tensor, make_result, stack
from .. import init
from ..parameter import Parameter
from .module import Module

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _dropout(x: Tensor, p: float) -> Tensor:
    """Inverted dropout with ember's generator (between stacked layers, training only)."""
    keep = default_generator().random(x.shape) >= p
    scale = np.zeros((), x.data.dtype) if p >= 1 else np.asarray(1.0 / (1.0 - p), x.data.dtype)
    mask = keep.astype(x.data.dtype) * scale
    out = x.data * mask
    return make_result(out, (x,), lambda g: (g * mask,), "DropoutBackward")


def _join_directions(outs, batch_first: bool) -> Tensor:
    """cat(outs, dim=2) of the time-major (S, N, H) outputs of a bidirectional layer, already
    transposed to (N, S, 2H) when batch_first: one strided copy each way, where a cat followed
    by a transpose would copy twice forward and twice backward."""
    S, N, H = outs[0].shape
    D = len(outs)
    out = np.empty((N, S, D * H) if batch_first else (S, N, D * H), outs[0].data.dtype)
    for d, t in enumerate(outs):
        out[:, :, d * H:(d + 1) * H] = t.data.transpose(1, 0, 2) if batch_first else t.data

    def backward(g):
        grads = []
        for d, t in enumerate(outs):
            gd = g[:, :, d * H:(d + 1) * H]
            grads.append(np.ascontiguousarray(gd.transpose(1, 0, 2) if batch_first else gd)
                         if t.requires_grad else None)
        return tuple(grads)
    return make_result(out, tuple(outs), backward, "CatBackward")


def _check_size(name, what, value, positive=True):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or \
            (value <= 0 if positive else value < 0):
        raise ValueError(f"{name}: {what} must be a {'positive' if positive else 'non-negative'}"
                         f" integer, got {value!r}")
    return int(value)


class RNNBase(Module):
    """Shared machinery of RNN, LSTM and GRU (torch's RNNBase)."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, dtype=np.float32):
        super().__init__()
        name = type(self).__name__
        self.mode = mode
        self.input_size = _check_size(name, "input_size", input_size)
        self.hidden_size = _check_size(name, "hidden_size", hidden_size)
        self.num_layers = _check_size(name, "num_layers", num_layers)
        dropout = float(dropout)
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{name}: dropout must be a number in [0, 1], got {dropout}")
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = dropout
        self.bidirectional = bool(bidirectional)
        D = 2 if self.bidirectional else 1
        G = _GATES[mode] * self.hidden_size
        H = self.hidden_size
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else H * D
            for d in range(D):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                setattr(self, "weight_ih" + sfx, Parameter(np.empty((G, in_size), dtype)))
                setattr(self, "weight_hh" + sfx, Parameter(np.empty((G, H), dtype)))
                if self.bias:
                    setattr(self, "bias_ih" + sfx, Parameter(np.empty((G,), dtype)))
                    setattr(self, "bias_hh" + sfx, Parameter(np.empty((G,), dtype)))
        self.reset_parameters()

    def reset_parameters(self):
        # torch: every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -stdv, stdv)

    def _layer_params(self, layer, d):
        sfx = f"_l{layer}" + ("_reverse" if d else "")
        p = self._parameters
        return (p["weight_ih" + sfx], p["weight_hh" + sfx], p.get("bias_ih" + sfx),
                p.get("bias_hh" + sfx))

    @property
    def _flat_weights(self):
        return list(self.parameters())

    def _check_hidden(self, h, expected, what):
        if tuple(h.shape) != expected:
            raise ValueError(f"{type(self).__name__}: expected {what} of shape {expected}, got "
                             f"{tuple(h.shape)}")

    def forward(self, input, hx=None):
        name = type(self).__name__
        lstm = self.mode == "LSTM"
        dtype = self.weight_ih_l0.data.dtype
        x = input if isinstance(input, Tensor) else as_tensor(input, dtype)
        if x.ndim not in (2, 3):
            raise ValueError(f"{name}: expected input to be 2-D (seq_len, input_size) or 3-D, "
                             f"got shape {tuple(x.shape)}")
        batched = x.ndim == 3
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input.size(-1) must be equal to input_size: expected "
                             f"{self.input_size}, got {x.shape[-1]} (input shape "
                             f"{tuple(x.shape)})")
        if not batched:
            x = x.reshape((x.shape[0], 1, x.shape[1]))
        elif self.batch_first:
            x = x.transpose(0, 1)
        S, N = x.shape[0], x.shape[1]
        D = 2 if self.bidirectional else 1
        L, H = self.num_layers, self.hidden_size
        expected = (L * D, N, H) if batched else (L * D, H)

        h0 = c0 = None
        if hx is not None:
            if lstm:
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise ValueError(f"{name}: hx must be a tuple (h0, c0)")
                h0, c0 = as_tensor(hx[0], dtype), as_tensor(hx[1], dtype)
                self._check_hidden(h0, expected, "h0")
                self._check_hidden(c0, expected, "c0")
            else:
                if isinstance(hx, (tuple, list)):
                    raise ValueError(f"{name}: hx must be a tensor, not a {type(hx).__name__}")
                h0 = as_tensor(hx, dtype)
                self._check_hidden(h0, expected, "h0")
            if not batched:
                h0 = h0.reshape((L * D, 1, H))
                c0 = None if c0 is None else c0.reshape((L * D, 1, H))

        hns, cns = [], []
        out = x
        for layer in range(L):
            outs = []
            for d in range(D):
                k = layer * D + d
                w_ih, w_hh, b_ih, b_hh = self._layer_params(layer, d)
                h0k = None if h0 is None else _select(h0, k, "SelectBackward")
                c0k = None if c0 is None else _select(c0, k, "SelectBackward")
                y, hn, cn = F.rnn_layer(self.mode, out, w_ih, w_hh, b_ih, b_hh, h0k, c0k,
                                        reverse=bool(d))
                outs.append(y)
                hns.append(hn)
                cns.append(cn)
            last = layer == L - 1
            if D == 1:
                out = outs[0]
            else:
                # the last layer's join also does the batch_first transpose
                out = _join_directions(outs, last and batched and self.batch_first)
            if self.dropout > 0 and self.training and not last:
                out = _dropout(out, self.dropout)

        h_n = stack(hns, 0)
        if not batched:
            out = out.reshape((S, out.shape[2]))
            h_n = h_n.reshape((L * D, H))
        elif self.batch_first and D == 1:
            out = out.transpose(0, 1)
        if lstm:
            c_n = stack(cns, 0)
            if not batched:
                c_n = c_n.reshape((L * D, H))
            return out, (h_n, c_n)
        return out, h_n

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu)."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, dtype=np.float32):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got "
                             f"{nonlinearity!r}")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """LSTM with torch's gate order (i, f, g, o); forward returns (output, (h_n, c_n))."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype=np.float32):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, dtype)


class GRU(RNNBase):
    """GRU with torch's gate order (r, z, n) and n = tanh(W_in x + b_in + r*(W_hn h + b_hn))."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype=np.float32):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, dtype)


class RNNCellBase(Module):
    """One time step; runs the sequence kernel with a sequence of length 1."""

    def __init__(self, mode, input_size, hidden_size, bias=True, dtype=np.float32):
        super().__init__()
        name = type(self).__name__
        self.mode = mode
        self.input_size = _check_size(name, "input_size", input_size)
        self.hidden_size = _check_size(name, "hidden_size", hidden_size)
        self.bias = bool(bias)
        G = _GATES[mode] * self.hidden_size
        self.weight_ih = Parameter(np.empty((G, self.input_size), dtype))
        self.weight_hh = Parameter(np.empty((G, self.hidden_size), dtype))
        if self.bias:
            self.bias_ih = Parameter(np.empty((G,), dtype))
            self.bias_hh = Parameter(np.empty((G,), dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -stdv, stdv)

    def _step(self, input, hx, cx=None):
        name = type(self).__name__
        dtype = self.weight_ih.data.dtype
        x = input if isinstance(input, Tensor) else as_tensor(input, dtype)
        if x.ndim not in (1, 2):
            raise ValueError(f"{name}: expected input to be 1-D or 2-D, got shape "
                             f"{tuple(x.shape)}")
        batched = x.ndim == 2
        N = x.shape[0] if batched else 1
        H = self.hidden_size
        want = (N, H) if batched else (H,)
        states = []
        for s, what in ((hx, "hx"), (cx, "cx")):
            if s is not None:
                s = as_tensor(s, dtype)
                if tuple(s.shape) != want:
                    raise ValueError(f"{name}: expected {what} of shape {want}, got "
                                     f"{tuple(s.shape)} (input shape {tuple(x.shape)})")
                s = s.reshape((N, H))
            states.append(s)
        x3 = x.reshape((1, N, x.shape[-1]))
        _, h, c = F.rnn_layer(self.mode, x3, self.weight_ih, self.weight_hh, self.bias_ih,
                              self.bias_hh, states[0], states[1])
        if not batched:
            h = h.reshape((H,))
            c = None if c is None else c.reshape((H,))
        return h, c

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        return s


class RNNCell(RNNCellBase):
    """h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu)."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh",
                 dtype=np.float32):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got "
                             f"{nonlinearity!r}")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, bias, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        return self._step(input, hx)[0]


class LSTMCell(RNNCellBase):
    """One LSTM step; forward(input, (h, c)) returns (h', c')."""

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float32):
        super().__init__("LSTM", input_size, hidden_size, bias, dtype)

    def forward(self, input, hx=None):
        if hx is None:
            return self._step(input, None, None)
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise ValueError("LSTMCell: hx must be a tuple (h, c)")
        return self._step(input, hx[0], hx[1])


class GRUCell(RNNCellBase):
    """One GRU step; forward(input, h) returns h'."""

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float32):
        super().__init__("GRU", input_size, hidden_size, bias, dtype)

    def forward(self, input, hx=None):
        return self._step(input, hx)[0]
