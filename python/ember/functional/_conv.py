"""Convolutions: conv1d, conv2d, conv_transpose1d/2d. Forward and backward are one C++ call each
(im2col + GEMM, threaded over sample blocks); output sizes and padding are resolved in C++."""
import numpy as np

from .. import _core
from ..tensor import Tensor, _layer_input, as_tensor, make_result

__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d"]


def _ints(name, op, v):
    """An int or a tuple/list of ints as a list (per-dimension broadcast happens in C++)."""
    if isinstance(v, (tuple, list)):
        out = list(v)
    else:
        out = [v]
    for a in out:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"{op}: {name} must be an int or a tuple of ints, got {v!r}")
    return [int(a) for a in out]


def _padding(op, padding):
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"{op}: padding must be an int, a tuple, 'same' or 'valid', got "
                             f"{padding!r}")
        return [0], padding
    return _ints("padding", op, padding), ""


def _grad_target(p):
    """Where a parameter's gradient goes: a leaf's .grad (accumulated in place by the kernel,
    nothing returned) or a fresh zero buffer returned to autograd. (buffer, returned)."""
    if p is None or not p.requires_grad:
        return None, None
    if p._node is None:
        if p.grad is None:
            p.grad = Tensor(np.zeros_like(p.data))
        return p.grad.data, None
    buf = np.zeros_like(p.data)
    return buf, buf


def _prepare(op, input, weight, bias):
    w = as_tensor(weight)
    b = as_tensor(bias) if bias is not None else None
    return _layer_input(input, w.data.dtype), w, b


class _ConvCall:
    """One convolution's checked arguments: its forward (optionally with the ReLU fused in) and
    the backward from the gradient of its output, shared by conv1d/2d and by the Conv + ReLU +
    MaxPool step of nn.Sequential (functional/_pool.py)."""

    def __init__(self, nd, input, weight, bias, stride, padding, dilation, groups):
        op = "conv1d" if nd == 1 else "conv2d"
        self.nd = nd
        self.x, self.w, self.b = _prepare(op, input, weight, bias)
        self.st = _ints("stride", op, stride)
        self.dl = _ints("dilation", op, dilation)
        self.pad, self.mode = _padding(op, padding)
        self.groups = int(groups)

    def forward(self, relu):
        b = self.b
        return _core.conv_forward(self.x.data, self.w.data, None if b is None else b.data,
                                  self.st, self.pad, self.dl, self.groups, self.mode, self.nd,
                                  relu)

    def backward(self, g):
        """(grad x, grad w, grad b) from the gradient of the convolution's output."""
        dw, gw = _grad_target(self.w)
        db, gb = _grad_target(self.b)
        x = self.x
        gx = _core.conv_backward(np.ascontiguousarray(g), x.data, self.w.data, self.st, self.pad,
                                 self.dl, self.groups, self.mode, self.nd, x.requires_grad, dw,
                                 db)
        return gx, gw, gb

    def inputs(self):
        return self.x, self.w, self.b


def _conv(nd, input, weight, bias, stride, padding, dilation, groups, relu=False):
    """relu=True: relu(conv(...)) as one call and one graph node (the ReLU is applied in the
    convolution's write-out); nn.Sequential uses it for a Conv followed by a ReLU."""
    c = _ConvCall(nd, input, weight, bias, stride, padding, dilation, groups)
    y = c.forward(relu)

    def backward(g):
        return c.backward(_core.relu_backward(g, y) if relu else g)

    name = "Conv1d" if nd == 1 else "Conv2d"
    return make_result(y, c.inputs(), backward, name + ("ReluBackward" if relu else "Backward"))


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """1-D convolution. input (N, C, L), weight (OC, C/groups, K), bias (OC,).
    padding: int, (p,), 'same' or 'valid'."""
    return _conv(1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """2-D convolution. input (N, C, H, W), weight (OC, C/groups, KH, KW), bias (OC,).
    padding: int, (ph, pw), 'same' or 'valid'.

    float32 3x3 convolutions at stride 1 (dilation 1, one group, >= 16 channels in and out)
    run Winograd's F(2x2, 3x3) for the output and both gradients: 2.25x fewer multiplies,
    errors no larger than a direct float32 convolution's. An infinite input may come out as NaN
    instead of +-inf in the outputs it reaches. ``EMBER_CONV_WINOGRAD=0`` turns it off."""
    return _conv(2, input, weight, bias, stride, padding, dilation, groups)


def _conv_transpose(nd, input, weight, bias, stride, padding, output_padding, groups, dilation):
    op = "conv_transpose1d" if nd == 1 else "conv_transpose2d"
    x, w, b = _prepare(op, input, weight, bias)
    st = _ints("stride", op, stride)
    pad = _ints("padding", op, padding)
    opad = _ints("output_padding", op, output_padding)
    dl = _ints("dilation", op, dilation)
    groups = int(groups)
    y = _core.conv_transpose_forward(x.data, w.data, None if b is None else b.data, st, pad, opad,
                                     dl, groups, nd)

    def backward(g):
        dw, gw = _grad_target(w)
        db, gb = _grad_target(b)
        gx = _core.conv_transpose_backward(np.ascontiguousarray(g), x.data, w.data, st, pad,
                                           opad, dl, groups, nd, x.requires_grad, dw, db)
        return gx, gw, gb

    return make_result(y, (x, w, b), backward,
                       "ConvTranspose1dBackward" if nd == 1 else "ConvTranspose2dBackward")


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1) -> Tensor:
    """Transposed 1-D convolution. input (N, C, L), weight (C, OC/groups, K), bias (OC,)."""
    return _conv_transpose(1, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1) -> Tensor:
    """Transposed 2-D convolution (torch's argument order). input (N, C, H, W),
    weight (C, OC/groups, KH, KW), bias (OC,)."""
    return _conv_transpose(2, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)
