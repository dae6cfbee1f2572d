"""Losses: each op is one C++ forward call (which also reduces) and one C++ backward call.

Arguments follow torch.nn.functional (``reduction='mean'|'sum'|'none'``, plus the legacy
``size_average``/``reduce`` pair). Targets that are not Tensors are taken as constants: float
targets are converted to the input's dtype, class targets may be any integer array (or floats
holding whole numbers). Target gradients are computed when the target is a Tensor that requires
grad (mse, l1, both BCEs, and cross_entropy with probability targets). Class and element
weights are constants.
"""
import numpy as np

from .. import _core
from ..tensor import Tensor, as_tensor, make_result

__all__ = ["mse_loss", "l1_loss", "cross_entropy", "nll_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits"]


def _reduction(size_average, reduce, reduction):
    if size_average is None and reduce is None:
        return reduction
    # torch's legacy mapping: reduce=False wins, then size_average picks mean or sum.
    if reduce is not None and not reduce:
        return "none"
    return "mean" if size_average is None or size_average else "sum"


def _input(x):
    return x if isinstance(x, Tensor) else as_tensor(x)


def _target(target, x):
    """target as a Tensor; a non-Tensor float target takes the input's float dtype."""
    if isinstance(target, Tensor):
        return target
    dt = x.data.dtype
    if dt.kind == "f":
        return Tensor(np.asarray(target, dtype=dt))
    return as_tensor(target)


def _const(op, name, w, x, shape=None):
    """A constant weight as an ndarray of the input's dtype, broadcast to `shape` if given."""
    if w is None:
        return None
    a = w.data if isinstance(w, Tensor) else np.asarray(w, dtype=x.data.dtype)
    if shape is not None and a.shape != shape:
        try:
            a = np.broadcast_to(a, shape)
        except ValueError:
            raise ValueError(f"{op}: {name} shape {a.shape} cannot be broadcast to input shape "
                             f"{shape}") from None
    return np.ascontiguousarray(a)


def _pointwise(kind, name, input, target, reduction, weight=None, pos_weight=None):
    x = _input(input)
    t = _target(target, x)
    fwd = getattr(_core, kind + "_forward")
    bwd = getattr(_core, kind + "_backward")
    out = fwd(x.data, t.data, reduction, weight, pos_weight)

    def backward(g):
        return bwd(g, x.data, t.data, reduction, weight, pos_weight, x.requires_grad,
                   t.requires_grad)
    return make_result(out, (x, t), backward, name)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean") -> Tensor:
    """mean / sum / elementwise (x - t)^2. target must have the input's shape."""
    if size_average is not None or reduce is not None:
        reduction = _reduction(size_average, reduce, reduction)
    return _pointwise("mse_loss", "MseLossBackward", input, target, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean") -> Tensor:
    """mean / sum / elementwise |x - t|. target must have the input's shape."""
    if size_average is not None or reduce is not None:
        reduction = _reduction(size_average, reduce, reduction)
    return _pointwise("l1_loss", "L1LossBackward", input, target, reduction)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean") -> Tensor:
    """-w (t log x + (1 - t) log(1 - x)) on probabilities x in [0, 1]; logs clamped at -100."""
    if size_average is not None or reduce is not None:
        reduction = _reduction(size_average, reduce, reduction)
    if weight is not None:
        x = _input(input)
        weight = _const("binary_cross_entropy", "weight", weight, x, x.shape)
        input = x
    return _pointwise("binary_cross_entropy", "BinaryCrossEntropyBackward", input, target,
                      reduction, weight)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None,
                                     reduce=None, reduction="mean",
                                     pos_weight=None) -> Tensor:
    """sigmoid + binary cross entropy in one stable kernel (finite for any finite logits).

    pos_weight multiplies the positive term (broadcast to the input, e.g. one per class over
    the last dim); weight multiplies each element's loss.
    """
    if size_average is not None or reduce is not None:
        reduction = _reduction(size_average, reduce, reduction)
    if weight is not None or pos_weight is not None:
        x = _input(input)
        op = "binary_cross_entropy_with_logits"
        weight = _const(op, "weight", weight, x, x.shape)
        pos_weight = _const(op, "pos_weight", pos_weight, x, x.shape)
        input = x
    return _pointwise("binary_cross_entropy_with_logits", "BinaryCrossEntropyWithLogitsBackward",
                      input, target, reduction, weight, pos_weight)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0) -> Tensor:
    """log_softmax over dim 1 + negative log-likelihood, fused and log-sum-exp stable.

    input: (N, C), (N, C, d1, ...) or unbatched (C,). target: class indices of shape (N,),
    (N, d1, ...) or (), or class probabilities with the input's shape (float).
    weight: per-class weights (C,). ignore_index applies to class indices.
    """
    if size_average is not None or reduce is not None:
        reduction = _reduction(size_average, reduce, reduction)
    x = _input(input)
    if isinstance(target, Tensor):
        tt, ta = target, target.data
    else:
        tt, ta = None, np.asarray(target)
        if ta.dtype.kind == "f" and ta.shape == x.shape and x.data.dtype.kind == "f":
            ta = np.ascontiguousarray(ta, dtype=x.data.dtype)
    w = _const("cross_entropy", "weight", weight, x)
    ii, ls = int(ignore_index), float(label_smoothing)
    out, lse, tgt = _core.cross_entropy_forward(x.data, ta, w, reduction, ii, ls)

    def backward(g):
        return _core.cross_entropy_backward(g, x.data, lse, tgt, w, reduction, ii, ls,
                                            x.requires_grad,
                                            tt is not None and tt.requires_grad)
    return make_result(out, (x, tt), backward, "CrossEntropyBackward")


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean") -> Tensor:
    """-w[t] * input[t] on log-probabilities (N, C, ...) with class-index targets."""
    if size_average is not None or reduce is not None:
        reduction = _reduction(size_average, reduce, reduction)
    x = _input(input)
    ta = target.data if isinstance(target, Tensor) else np.asarray(target)
    w = _const("nll_loss", "weight", weight, x)
    ii = int(ignore_index)
    out, tgt = _core.nll_loss_forward(x.data, ta, w, reduction, ii)

    def backward(g):
        return (_core.nll_loss_backward(g, x.data, tgt, w, reduction, ii),)
    return make_result(out, (x,), backward, "NllLossBackward")
