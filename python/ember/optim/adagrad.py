"""Adagrad with learning-rate decay, weight decay and an initial accumulator (torch's math)."""
import numpy as np

from .. import _core
from .optimizer import Optimizer, _check_nonneg

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    r"""sum += g^2; p -= lr / (1 + (t - 1) lr_decay) * g / (sqrt(sum) + eps)."""

    _buffer_names = ("sum",)

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, *, maximize=False):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _validate(self, group):
        super()._validate(group)
        _check_nonneg(self, "lr_decay", group["lr_decay"])
        _check_nonneg(self, "weight_decay", group["weight_decay"])
        _check_nonneg(self, "initial_accumulator_value", group["initial_accumulator_value"])
        _check_nonneg(self, "eps", group["eps"])

    def _update_group(self, group):
        lr = float(group["lr"])
        lr_decay = float(group["lr_decay"])
        wd = float(group["weight_decay"])
        eps = float(group["eps"])
        maximize = bool(group["maximize"])
        state = self.state
        kernel = _core.adagrad_step
        grad_of = self._grad_of
        for p in group["params"]:
            g = grad_of(p)
            if g is None:
                continue
            st = state.get(p)
            if st is None:
                st = state[p] = {"step": 0, "sum": np.full_like(
                    p.data, group["initial_accumulator_value"])}
            t = st["step"] + 1
            st["step"] = t
            kernel(p.data, g, st["sum"], t, lr, lr_decay, wd, eps, maximize)
