"""Pooling: max_pool1d/2d, avg_pool1d/2d, adaptive_avg_pool1d/2d. One C++ call each way; the
arg-max indices of max pooling are saved by the forward and used by the backward."""
import numpy as np

from .. import _core
from ..autograd import _state as _grad_state
from ..tensor import Tensor, _wrap, as_tensor, make_result
from ._conv import _ConvCall, _ints

__all__ = ["max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d",
           "adaptive_avg_pool2d"]


def _max_pool_args(nd, kernel_size, stride, padding, dilation, ceil_mode):
    """(kernel, stride, padding, dilation, ceil_mode) as the C++ calls take them."""
    op = f"max_pool{nd}d"
    k = _ints("kernel_size", op, kernel_size)
    s = [] if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) \
        else _ints("stride", op, stride)
    return (k, s, _ints("padding", op, padding), _ints("dilation", op, dilation),
            bool(ceil_mode))


def _max_pool(nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    x = as_tensor(input)
    args = _max_pool_args(nd, kernel_size, stride, padding, dilation, ceil_mode)
    need_idx = return_indices or x.requires_grad
    y, idx = _core.max_pool_forward(x.data, *args, nd, need_idx)
    in_shape = list(x.shape)

    def backward(g):
        return (_core.max_pool_backward(np.ascontiguousarray(g), idx, in_shape, *args, nd),)

    out = make_result(y, (x,), backward, f"MaxPool{nd}DWithIndicesBackward")
    if return_indices:
        return out, Tensor(idx)
    return out


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max pooling over (N, C, L); stride defaults to kernel_size."""
    return _max_pool(1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max pooling over (N, C, H, W); stride defaults to kernel_size. Indices (with
    return_indices) are flat positions h*W + w within each input plane, as in PyTorch."""
    return _max_pool(2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _avg_pool(nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override):
    op = f"avg_pool{nd}d"
    x = as_tensor(input)
    k = _ints("kernel_size", op, kernel_size)
    s = [] if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) \
        else _ints("stride", op, stride)
    p = _ints("padding", op, padding)
    ceil_mode, cip = bool(ceil_mode), bool(count_include_pad)
    div = 0 if divisor_override is None else int(divisor_override)
    if divisor_override is not None and div <= 0:
        raise ValueError(f"{op}: divisor_override must be a positive int, got {divisor_override}")
    y = _core.avg_pool_forward(x.data, k, s, p, ceil_mode, cip, div, nd)
    in_shape = list(x.shape)

    def backward(g):
        return (_core.avg_pool_backward(np.ascontiguousarray(g), in_shape, k, s, p, ceil_mode,
                                        cip, div, nd),)

    return make_result(y, (x,), backward, f"AvgPool{nd}DBackward")


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    return _avg_pool(1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    return _avg_pool(2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def _adaptive(nd, input, output_size):
    op = f"adaptive_avg_pool{nd}d"
    x = as_tensor(input)
    if nd == 2 and isinstance(output_size, (tuple, list)):
        # None keeps that input dimension (PyTorch); filling it in is not a size computation.
        output_size = [x.shape[-2 + i] if o is None else o for i, o in enumerate(output_size)] \
            if x.ndim == 4 else output_size
    o = _ints("output_size", op, output_size)
    y = _core.adaptive_avg_pool_forward(x.data, o, nd)
    in_shape = list(x.shape)

    def backward(g):
        return (_core.adaptive_avg_pool_backward(np.ascontiguousarray(g), in_shape, o, nd),)

    return make_result(y, (x,), backward, f"AdaptiveAvgPool{nd}DBackward")


def adaptive_avg_pool1d(input, output_size):
    return _adaptive(1, input, output_size)


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed output size; output_size 1 is global average pooling."""
    return _adaptive(2, input, output_size)


def _conv_relu_max_pool(nd, input, weight, bias, stride, padding, dilation, groups,
                        kernel_size, pool_stride, pool_padding, pool_dilation, ceil_mode):
    """max_pool(relu(conv(input))) as one graph node, for nn.Sequential's Conv + ReLU + MaxPool
    step. The ReLU is fused into the convolution's write-out, as for Conv + ReLU; the backward
    applies the ReLU's mask inside the pool's scatter (at an arg-max, relu(conv) equals the
    pooled value, so the mask is `pooled > 0`). Bitwise the values and gradients of the three
    layers one by one, without the pass over the full-size gradient, and without keeping the
    convolution's output alive until the backward."""
    c = _ConvCall(nd, input, weight, bias, stride, padding, dilation, groups)
    y = c.forward(relu=True)
    args = _max_pool_args(nd, kernel_size, pool_stride, pool_padding, pool_dilation, ceil_mode)
    record = _grad_state.enabled and any(t is not None and t.requires_grad for t in c.inputs())
    pooled, idx = _core.max_pool_forward(y, *args, nd, record)
    if not record:
        return _wrap(pooled)
    conv_shape = list(y.shape)
    del y

    def backward(g):
        gy = _core.max_pool_backward(np.ascontiguousarray(g), idx, conv_shape, *args, nd,
                                     relu_output=pooled)
        return c.backward(gy)

    name = f"Conv{nd}dReluMaxPool{nd}d"
    return make_result(pooled, c.inputs(), backward, name + "Backward")
