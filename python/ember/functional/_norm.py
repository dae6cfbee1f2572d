"""layer_norm and batch_norm: one fused C++ forward and one fused C++ backward each.

The forward saves the per-row (layer norm) or per-channel (batch norm) mean and 1/std; the
backward recomputes x_hat from them and produces the input gradient and the gamma/beta gradients
in one kernel call. Gamma/beta gradients of leaf parameters accumulate straight into ``.grad``.
"""
import numbers

import numpy as np

from .. import _core
from ..tensor import Tensor, as_tensor, make_result

__all__ = ["layer_norm", "batch_norm"]


def _grad_buffer(t):
    """(buffer the kernel accumulates into, gradient to hand back to autograd) for t.

    A leaf gets its ``.grad`` (allocated as zeros on first use) and autograd gets None; a non-leaf
    gets a fresh zero buffer that is returned as its gradient. None when t needs no gradient.
    """
    if t is None or not t.requires_grad:
        return None, None
    if t._node is None:
        if t.grad is None:
            t.grad = Tensor(np.zeros_like(t.data))
        return t.grad.data, None
    buf = np.zeros_like(t.data)
    return buf, buf


def _match(x: Tensor, ref: Tensor, raw) -> Tensor:
    # Plain float data passed as input follows the parameters' dtype (like F.linear).
    if ref is not None and not isinstance(raw, Tensor) and x.data.dtype.kind == "f" \
            and x.data.dtype != ref.data.dtype:
        return Tensor(x.data.astype(ref.data.dtype))
    return x


def layer_norm(input, normalized_shape, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalizes over the trailing ``normalized_shape`` dims: (x - mean) / sqrt(var + eps) *
    weight + bias, with the biased variance (PyTorch's F.layer_norm)."""
    if isinstance(normalized_shape, numbers.Integral):
        normalized_shape = (int(normalized_shape),)
    normalized_shape = tuple(int(s) for s in normalized_shape)
    w = as_tensor(weight) if weight is not None else None
    b = as_tensor(bias) if bias is not None else None
    x = _match(as_tensor(input), w if w is not None else b, input)
    y, mean, rstd = _core.layer_norm_forward(x.data, list(normalized_shape),
                                             None if w is None else w.data,
                                             None if b is None else b.data, float(eps))

    def backward(g):
        dw, gw = _grad_buffer(w)
        db, gb = _grad_buffer(b)
        gx = _core.layer_norm_backward(np.ascontiguousarray(g), x.data, mean, rstd,
                                       None if w is None else w.data, x.requires_grad, dw, db)
        return gx, gw, gb

    return make_result(y, (x, w, b), backward, "NativeLayerNormBackward")


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalization over (N, C, *) input (PyTorch's F.batch_norm).

    training=True: normalizes with the batch's per-channel statistics and, when running_mean and
    running_var are given, updates them in place (``r = (1 - momentum) * r + momentum * stat``,
    unbiased variance). training=False: normalizes with the running statistics.
    """
    w = as_tensor(weight) if weight is not None else None
    b = as_tensor(bias) if bias is not None else None
    x = _match(as_tensor(input), w if w is not None else b, input)
    rm = running_mean.data if isinstance(running_mean, Tensor) else running_mean
    rv = running_var.data if isinstance(running_var, Tensor) else running_var
    for name, r in (("running_mean", rm), ("running_var", rv)):
        # updated in place: a list (or other non-array) would only update a temporary copy
        if r is not None and not isinstance(r, np.ndarray):
            raise TypeError(f"batch_norm: {name} must be an ndarray or Tensor (it is updated in "
                            f"place), got {type(r).__name__}")
    training = bool(training)
    y, mean, rstd = _core.batch_norm_forward(
        x.data, None if w is None else w.data, None if b is None else b.data, rm, rv, training,
        0.0 if momentum is None else float(momentum), float(eps))

    def backward(g):
        dw, gw = _grad_buffer(w)
        db, gb = _grad_buffer(b)
        gx = _core.batch_norm_backward(np.ascontiguousarray(g), x.data, mean, rstd,
                                       None if w is None else w.data, training,
                                       x.requires_grad, dw, db)
        return gx, gw, gb

    return make_result(y, (x, w, b), backward, "NativeBatchNormBackward")
