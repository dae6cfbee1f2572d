"""RMSprop (optionally centered, with momentum and L2 weight decay): torch.optim.RMSprop's math."""
import numpy as np

from .. import _core
from .optimizer import Optimizer, _check_nonneg

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""sq = alpha sq + (1 - alpha) g^2; centered: gavg = lerp(gavg, g, 1 - alpha),
    avg = sqrt(sq - gavg^2) + eps, else sqrt(sq) + eps; momentum > 0: buf = momentum buf + g / avg,
    p -= lr buf; else p -= lr g / avg."""

    _buffer_names = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, *, maximize=False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _validate(self, group):
        super()._validate(group)
        _check_nonneg(self, "eps", group["eps"])
        _check_nonneg(self, "momentum", group["momentum"])
        _check_nonneg(self, "weight_decay", group["weight_decay"])
        _check_nonneg(self, "alpha", group["alpha"])

    def _update_group(self, group):
        lr = float(group["lr"])
        alpha = float(group["alpha"])
        eps = float(group["eps"])
        wd = float(group["weight_decay"])
        momentum = float(group["momentum"])
        centered = bool(group["centered"])
        maximize = bool(group["maximize"])
        state = self.state
        kernel = _core.rmsprop_step
        grad_of = self._grad_of
        for p in group["params"]:
            g = grad_of(p)
            if g is None:
                continue
            st = state.get(p)
            if st is None:
                st = state[p] = {"step": 0, "square_avg": np.zeros_like(p.data)}
            buf = gavg = None
            if momentum > 0:
                buf = st.get("momentum_buffer")
                if buf is None:
                    buf = st["momentum_buffer"] = np.zeros_like(p.data)
            if centered:
                gavg = st.get("grad_avg")
                if gavg is None:
                    gavg = st["grad_avg"] = np.zeros_like(p.data)
            st["step"] += 1
            kernel(p.data, g, st["square_avg"], gavg, buf, lr, alpha, eps, wd, momentum,
                   centered, maximize)
