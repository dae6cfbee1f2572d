"""SGD with momentum, dampening, Nesterov momentum and L2 weight decay (torch.optim.SGD's math)."""
import numpy as np

from .. import _core
from .optimizer import Optimizer, _check_nonneg

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent, one fused C++ update per parameter.

    d = g (+ weight_decay * p); with momentum: buf = momentum * buf + (1 - dampening) * d (buf = d
    on the first step), d = d + momentum * buf (nesterov) or buf; p -= lr * d.
    """

    _buffer_names = ("momentum_buffer",)

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _validate(self, group):
        super()._validate(group)
        _check_nonneg(self, "momentum", group["momentum"])
        _check_nonneg(self, "weight_decay", group["weight_decay"])
        _check_nonneg(self, "dampening", group["dampening"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum > 0 and zero dampening, "
                             f"got momentum={group['momentum']}, "
                             f"dampening={group['dampening']}")

    def _update_group(self, group):
        lr = float(group["lr"])
        momentum = float(group["momentum"])
        dampening = float(group["dampening"])
        wd = float(group["weight_decay"])
        nesterov = bool(group["nesterov"])
        maximize = bool(group["maximize"])
        state = self.state
        step = _core.sgd_step
        grad_of = self._grad_of
        for p in group["params"]:
            g = grad_of(p)
            if g is None:
                continue
            buf = None
            first = False
            if momentum != 0:
                st = state.get(p)
                if st is None:
                    st = state[p] = {}
                buf = st.get("momentum_buffer")
                if buf is None:
                    buf = st["momentum_buffer"] = np.empty_like(p.data)
                    first = True
            step(p.data, g, buf, lr, momentum, dampening, wd, nesterov, maximize, first)
