"""Adam (and, with decoupled_weight_decay, AdamW): torch.optim.Adam's math, one fused kernel."""
import numpy as np

from .. import _core
from .optimizer import Optimizer, _check_betas, _check_nonneg

__all__ = ["Adam"]


class Adam(Optimizer):
    r"""Adam with bias correction, optional AMSGrad and L2 (or decoupled) weight decay.

    m = lerp(m, g, 1 - beta1); v = beta2 v + (1 - beta2) g^2; (amsgrad: vmax = max(vmax, v));
    p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
    weight_decay adds weight_decay * p to g, or with decoupled_weight_decay=True (AdamW)
    multiplies p by 1 - lr * weight_decay first.
    """

    _buffer_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False):
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas,
                        eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _validate(self, group):
        super()._validate(group)
        _check_nonneg(self, "eps", group["eps"])
        _check_betas(self, group["betas"])
        _check_nonneg(self, "weight_decay", group["weight_decay"])
        if isinstance(group["betas"], list):
            group["betas"] = tuple(group["betas"])

    def _update_group(self, group):
        lr = float(group["lr"])
        beta1, beta2 = (float(b) for b in group["betas"])
        eps = float(group["eps"])
        wd = float(group["weight_decay"])
        amsgrad = bool(group["amsgrad"])
        maximize = bool(group["maximize"])
        decoupled = bool(group["decoupled_weight_decay"])
        state = self.state
        kernel = _core.adam_step
        grad_of = self._grad_of
        for p in group["params"]:
            g = grad_of(p)
            if g is None:
                continue
            st = state.get(p)
            if st is None:
                st = state[p] = {"step": 0, "exp_avg": np.zeros_like(p.data),
                                 "exp_avg_sq": np.zeros_like(p.data)}
            vmax = None
            if amsgrad:
                vmax = st.get("max_exp_avg_sq")
                if vmax is None:
                    vmax = st["max_exp_avg_sq"] = np.zeros_like(p.data)
            t = st["step"] + 1
            st["step"] = t
            kernel(p.data, g, st["exp_avg"], st["exp_avg_sq"], vmax, t, lr, beta1, beta2, eps,
                   wd, amsgrad, maximize, decoupled)
