"""nn.init: in-place initializers (PyTorch names and formulas), drawing from em.manual_seed."""
import math

import numpy as np

from .._random import default_generator

__all__ = ["calculate_gain", "uniform_", "normal_", "zeros_", "ones_", "constant_",
           "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
           "orthogonal_"]


def _arr(t):
    return t.data if hasattr(t, "data") and isinstance(t.data, np.ndarray) else t


def calculate_gain(nonlinearity: str, param=None) -> float:
    nl = nonlinearity.lower()
    if nl in ("linear", "identity", "sigmoid") or nl.startswith("conv"):
        return 1.0
    if nl == "tanh":
        return 5.0 / 3
    if nl == "relu":
        return math.sqrt(2.0)
    if nl == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nl == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _fans(a):
    if a.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor of at least 2 dimensions, got shape "
                         f"{a.shape}")
    receptive = int(np.prod(a.shape[2:])) if a.ndim > 2 else 1
    return a.shape[1] * receptive, a.shape[0] * receptive


def uniform_(t, a: float = 0.0, b: float = 1.0):
    x = _arr(t)
    x[...] = default_generator().uniform(a, b, x.shape)
    return t


def normal_(t, mean: float = 0.0, std: float = 1.0):
    x = _arr(t)
    x[...] = default_generator().normal(mean, std, x.shape)
    return t


def constant_(t, val: float):
    _arr(t).fill(val)
    return t


def zeros_(t):
    return constant_(t, 0.0)


def ones_(t):
    return constant_(t, 1.0)


def xavier_uniform_(t, gain: float = 1.0):
    if _arr(t).size == 0:
        return t  # nothing to fill (torch: a no-op); fans may be 0
    fi, fo = _fans(_arr(t))
    bound = gain * math.sqrt(6.0 / (fi + fo))
    return uniform_(t, -bound, bound)


def xavier_normal_(t, gain: float = 1.0):
    if _arr(t).size == 0:
        return t  # nothing to fill (torch: a no-op); fans may be 0
    fi, fo = _fans(_arr(t))
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fi + fo)))


def _kaiming_std(t, a, mode, nonlinearity):
    fi, fo = _fans(_arr(t))
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fi if mode == "fan_in" else fo
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(t, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    if _arr(t).size == 0:
        return t  # nothing to fill (torch: a no-op); fans may be 0
    bound = math.sqrt(3.0) * _kaiming_std(t, a, mode, nonlinearity)
    return uniform_(t, -bound, bound)


def kaiming_normal_(t, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    if _arr(t).size == 0:
        return t  # nothing to fill (torch: a no-op); fans may be 0
    return normal_(t, 0.0, _kaiming_std(t, a, mode, nonlinearity))


def orthogonal_(t, gain: float = 1.0):
    x = _arr(t)
    rows = x.shape[0]
    cols = x.size // rows
    flat = default_generator().standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    x[...] = (gain * q).reshape(x.shape)
    return t
