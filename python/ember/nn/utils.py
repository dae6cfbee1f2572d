"""nn.utils: gradient clipping and the L1 / L2 weight penalties.

clip_grad_norm_ / clip_grad_value_ work in place on ``p.grad`` with one fused C++ reduction and
one in-place scaling (torch.nn.utils' semantics). l1_penalty / l2_penalty return a differentiable
scalar Tensor to add to a loss::

    loss = loss_fn(model(x), y) + nn.utils.l2_penalty(model.parameters(), 1e-4)

and L1Penalty(lam) / L2Penalty(lam) are the same as callables ``params -> Tensor``, the form
``fit(..., regularizers=[nn.utils.L2Penalty(1e-4)])`` takes.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _core
from ..tensor import Tensor, make_result

__all__ = ["clip_grad_norm_", "clip_grad_value_", "l1_penalty", "l2_penalty", "L1Penalty",
           "L2Penalty"]


def _params(parameters):
    if isinstance(parameters, Tensor):
        return [parameters]
    return list(parameters)


def _grads(parameters):
    out = []
    for p in _params(parameters):
        g = p.grad
        if g is None:
            continue
        out.append(g.data if isinstance(g, Tensor) else g)
    return out


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scales the gradients of ``parameters`` in place so that their joint ``norm_type``-norm
    (as if all were concatenated) is at most ``max_norm``; returns that norm before clipping as
    a 0-d Tensor. Gradients are multiplied by ``max_norm / (norm + 1e-6)`` when it is below 1.
    norm_type may be ``float('inf')``. Parameters without a gradient are ignored."""
    max_norm = float(max_norm)
    norm_type = float(norm_type)
    if math.isnan(norm_type):
        raise ValueError("clip_grad_norm_: norm_type must not be NaN")
    grads = _grads(parameters)
    if not grads:
        return Tensor(np.asarray(0.0, dtype=np.float32))
    dtype = grads[0].dtype
    total = _core.grad_norm(grads, norm_type, True)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the "
                           f"gradients is non-finite ({total}), so it cannot be clipped. Pass "
                           f"error_if_nonfinite=False to clip anyway")
    # torch computes the coefficient on the norm rounded to the gradients' dtype
    t = dtype.type(total)
    coef = dtype.type(max_norm) / (t + dtype.type(1e-6))
    if not coef >= 1:  # (NaN too: torch multiplies by the NaN coefficient)
        _core.scale_(grads, float(coef))
    return Tensor(np.asarray(t, dtype=dtype))


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamps every gradient of ``parameters`` to [-clip_value, clip_value] in place."""
    clip_value = float(clip_value)
    if clip_value < 0:
        raise ValueError(f"clip_grad_value_: clip_value must be >= 0, got {clip_value}")
    grads = _grads(parameters)
    if grads:
        _core.clamp_(grads, -clip_value, clip_value)


def _penalty(parameters, lam, kind: int, name: str) -> Tensor:
    lam = float(lam)
    params = _params(parameters)
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"{name}: parameters must be Tensors, got {type(p).__name__}")
    if not params:
        return Tensor(np.asarray(0.0, dtype=np.float32))
    dtype = params[0].data.dtype
    arrays = [p.data for p in params]
    total = _core.grad_norm(arrays, float(kind), False)  # sum |x| or sum x^2, in double
    out = np.asarray(lam * total, dtype=dtype)

    def backward(g):
        # d/dθ lam*Σ|θ| = lam*sign(θ); d/dθ lam*Σθ² = 2*lam*θ. Leaf gradients accumulate straight
        # into .grad (no temporary per parameter); non-leaf inputs get a fresh array.
        coef = float(g) * lam * (1.0 if kind == 1 else 2.0)
        res = []
        for p in params:
            if not p.requires_grad:
                res.append(None)
                continue
            if p._node is None:
                if p.grad is None:
                    p.grad = Tensor(np.zeros_like(p.data))
                _core.penalty_backward(p.grad.data, p.data, coef, kind)
                res.append(None)
            else:
                gp = np.zeros_like(p.data)
                _core.penalty_backward(gp, p.data, coef, kind)
                res.append(gp)
        return tuple(res)

    return make_result(out, tuple(params), backward,
                       "L1PenaltyBackward" if kind == 1 else "L2PenaltyBackward")


def l1_penalty(parameters, lam: float) -> Tensor:
    """lam * Σ|θ| over all parameters: a differentiable 0-d Tensor (gradient lam * sign(θ))."""
    return _penalty(parameters, lam, 1, "l1_penalty")


def l2_penalty(parameters, lam: float) -> Tensor:
    """lam * Σθ² over all parameters: a differentiable 0-d Tensor (gradient 2 lam θ)."""
    return _penalty(parameters, lam, 2, "l2_penalty")


class L1Penalty:
    """Callable ``params -> lam * Σ|θ|`` (for fit's ``regularizers``)."""

    def __init__(self, lam: float):
        lam = float(lam)
        if not lam >= 0:
            raise ValueError(f"L1Penalty: lam must be >= 0, got {lam}")
        self.lam = lam

    def __call__(self, parameters) -> Tensor:
        return l1_penalty(parameters, self.lam)

    def __repr__(self):
        return f"L1Penalty(lam={self.lam})"


class L2Penalty:
    """Callable ``params -> lam * Σθ²`` (for fit's ``regularizers``)."""

    def __init__(self, lam: float):
        lam = float(lam)
        if not lam >= 0:
            raise ValueError(f"L2Penalty: lam must be >= 0, got {lam}")
        self.lam = lam

    def __call__(self, parameters) -> Tensor:
        return l2_penalty(parameters, self.lam)

    def __repr__(self):
        return f"L2Penalty(lam={self.lam})"
