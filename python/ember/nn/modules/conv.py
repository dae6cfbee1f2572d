"""Convolution layers: Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d (PyTorch's arguments,
defaults, weight layouts and default initialization)."""
import math

import numpy as np

from ... import functional as F
from ...functional._conv import _conv
from ...functional._pool import _conv_relu_max_pool
from .. import init
from ..parameter import Parameter
from .module import Module

__all__ = ["Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d"]


def _tuple(v, n, name, cls):
    if isinstance(v, (tuple, list)):
        if len(v) != n:
            raise ValueError(f"{cls}: {name} must be an int or a tuple of {n} ints, got {v!r}")
        out = tuple(v)
    else:
        out = (v,) * n
    for a in out:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"{cls}: {name} must be an int or a tuple of {n} ints, got {v!r}")
    return tuple(int(a) for a in out)


class _ConvNd(Module):
    _nd = 2
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                 bias, padding_mode, output_padding=0, dtype=np.float32):
        super().__init__()
        cls = type(self).__name__
        n = self._nd
        if groups <= 0:
            raise ValueError(f"{cls}: groups must be a positive integer, got {groups}")
        if in_channels % groups != 0:
            raise ValueError(f"{cls}: in_channels ({in_channels}) must be divisible by groups "
                             f"({groups})")
        if out_channels % groups != 0:
            raise ValueError(f"{cls}: out_channels ({out_channels}) must be divisible by groups "
                             f"({groups})")
        if padding_mode != "zeros":
            raise ValueError(f"{cls}: only padding_mode='zeros' is supported, got "
                             f"{padding_mode!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _tuple(kernel_size, n, "kernel_size", cls)
        self.stride = _tuple(stride, n, "stride", cls)
        if isinstance(padding, str):
            if self._transposed or padding not in ("same", "valid"):
                allowed = "an int or a tuple" + ("" if self._transposed
                                                  else ", 'same' or 'valid'")
                raise ValueError(f"{cls}: padding must be {allowed}, got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{cls}: padding='same' is not supported for strided "
                                 f"convolutions")
            self.padding = padding
        else:
            self.padding = _tuple(padding, n, "padding", cls)
        self.dilation = _tuple(dilation, n, "dilation", cls)
        self.output_padding = _tuple(output_padding, n, "output_padding", cls)
        self.groups = int(groups)
        self.padding_mode = padding_mode
        if self._transposed:
            wshape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            wshape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(np.empty(wshape, dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty((out_channels,), dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        # PyTorch: kaiming_uniform_(a=sqrt(5)) on the weight; bias U(-1/sqrt(fan_in), ..), where
        # fan_in is computed from the weight as stored (dim 1 * receptive field).
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            w = self.weight.data
            fan_in = w.shape[1] * int(np.prod(w.shape[2:]))
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def _check_input(self, x):
        shape = getattr(x, "shape", None)
        if shape is None:
            return
        want = self._nd + 2
        if len(shape) != want:
            layout = "(N, C, L)" if self._nd == 1 else "(N, C, H, W)"
            raise ValueError(f"{type(self).__name__}: expected a {want}-D input {layout}, got a "
                             f"{len(shape)}-D input of shape {tuple(shape)}")

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        zero = (0,) * self._nd
        if self.padding != zero:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._nd:
            s += f", dilation={self.dilation}"
        if self._transposed and self.output_padding != zero:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class _Conv(_ConvNd):
    """Conv1d / Conv2d: the forward convolution, alone or with a following ReLU fused in."""

    def forward(self, x):
        self._check_input(x)
        return _conv(self._nd, x, self.weight, self.bias, self.stride, self.padding,
                     self.dilation, self.groups)

    def _forward_relu(self, x):
        """relu(self(x)) in one fused call (used by nn.Sequential)."""
        self._check_input(x)
        return _conv(self._nd, x, self.weight, self.bias, self.stride, self.padding,
                     self.dilation, self.groups, relu=True)

    def _forward_relu_pool(self, x, pool):
        """pool(relu(self(x))) as one graph node, pool a MaxPool of the same dimensionality
        without return_indices (used by nn.Sequential)."""
        self._check_input(x)
        return _conv_relu_max_pool(self._nd, x, self.weight, self.bias, self.stride,
                                   self.padding, self.dilation, self.groups, pool.kernel_size,
                                   pool.stride, pool.padding, pool.dilation, pool.ceil_mode)


class Conv1d(_Conv):
    """1-D convolution over (N, C, L). weight (out_channels, in_channels/groups, kernel_size)."""
    _nd = 1

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", dtype=np.float32):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, dtype=dtype)


class Conv2d(_Conv):
    """2-D convolution over (N, C, H, W). weight (out_channels, in_channels/groups, kH, kW)."""
    _nd = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", dtype=np.float32):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, dtype=dtype)


class ConvTranspose1d(_ConvNd):
    """Transposed 1-D convolution. weight (in_channels, out_channels/groups, kernel_size)."""
    _nd = 1
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 dtype=np.float32):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, output_padding, dtype=dtype)

    def forward(self, x):
        self._check_input(x)
        return F.conv_transpose1d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.output_padding, self.groups, self.dilation)


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution (decoders, GAN generators).
    weight (in_channels, out_channels/groups, kH, kW)."""
    _nd = 2
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 dtype=np.float32):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, output_padding, dtype=dtype)

    def forward(self, x):
        self._check_input(x)
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.output_padding, self.groups, self.dilation)
