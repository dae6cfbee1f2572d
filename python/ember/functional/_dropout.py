"""dropout and dropout2d: inverted dropout with masks from ember's generator.

The mask is one uniform draw per element (dropout) or per (sample, channel) (dropout2d) from
``ember._random.default_generator()``, so ``em.manual_seed`` reproduces it. The draws are kept,
in the input's dtype, as the mask itself: one C++ pass computes ``x * (u >= p) / (1 - p)`` and the
backward is the same pass over the output gradient, so no separate 0/1 or scaled mask array is
ever built (numpy would need one pass for the comparison and another for the multiply).
"""
import numpy as np

from .. import _core
from .._random import default_generator
from ..tensor import Tensor, as_tensor, make_result

__all__ = ["dropout", "dropout2d"]


def _check_p(op, p):
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, but got {p}")
    return p


def _dropout(x: Tensor, p: float, mask_shape, name: str) -> Tensor:
    if p == 1.0:
        out = np.zeros_like(x.data)
        return make_result(out, (x,), lambda g: (np.zeros_like(x.data),), name)
    dt = x.data.dtype
    u = default_generator().random(mask_shape, dtype=dt)
    scale = 1.0 / (1.0 - p)
    out = _core.dropout_apply(x.data, u, p, scale)
    return make_result(out, (x,),
                       lambda g: (_core.dropout_apply(np.ascontiguousarray(g, dtype=dt), u, p,
                                                      scale),), name)


def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zeroes each element with probability p and scales the rest by 1/(1-p) (training only)."""
    p = _check_p("dropout", p)
    x = as_tensor(input)
    if not training or p == 0.0 or x.data.size == 0:
        return x
    if x.data.dtype.kind != "f":
        raise TypeError(f"dropout: input must be float32 or float64, got {x.data.dtype}")
    return _dropout(x, p, x.shape, "DropoutBackward")


def dropout2d(input, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zeroes whole channels: input (N, C, H, W) or (N, C, L); each (n, c) plane is dropped with
    probability p and the kept ones are scaled by 1/(1-p) (training only)."""
    p = _check_p("dropout2d", p)
    x = as_tensor(input)
    if x.ndim not in (3, 4):
        raise ValueError(f"dropout2d: expected a 3-D (N, C, L) or 4-D (N, C, H, W) input, got "
                         f"shape {x.shape}")
    if not training or p == 0.0 or x.data.size == 0:
        return x
    if x.data.dtype.kind != "f":
        raise TypeError(f"dropout2d: input must be float32 or float64, got {x.data.dtype}")
    return _dropout(x, p, x.shape[:2], "FeatureDropoutBackward")
