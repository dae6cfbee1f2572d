"""Optimizer base: param groups, per-parameter state, zero_grad, step, state_dict.

An optimizer holds ``param_groups``, a list of dicts like PyTorch's: ``{"params": [Parameter, ...],
"lr": 0.01, ...}`` (every hyper-parameter the algorithm takes, filled from ``defaults``), and
``state``, a dict from Parameter to that parameter's state: ``{"step": int, "<buffer>": ndarray}``
with ndarrays of the parameter's dtype and shape. Subclasses implement ``_update_group(group)``,
which calls one fused ``_core`` kernel per parameter that has a gradient.

``state_dict()`` layout (what ``em.save`` stores in safetensors -- ndarrays as tensors, the rest
as JSON; no pickle)::

    {"state": {0: {"step": 3, "exp_avg": ndarray, "exp_avg_sq": ndarray}, 1: {...}, ...},
     "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), ..., "params": [0, 1]}, ...]}

Parameters are numbered by integers in group order, as in PyTorch (group 0's parameters first);
only parameters that have state appear under ``"state"``. The arrays are the optimizer's own
buffers (not copies, as in PyTorch): save them or copy them before stepping again.
``load_state_dict`` copies every array into fresh buffers of each parameter's dtype, checks that
the group count and group sizes match, and restores the hyper-parameters of every group.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ..tensor import Tensor

__all__ = ["Optimizer", "required"]


class _Required:
    def __repr__(self):
        return "<required parameter>"


required = _Required()


class Optimizer:
    """Base class of ember's optimizers (PyTorch's interface)."""

    # Names of the per-parameter ndarray buffers this algorithm keeps (for load_state_dict).
    _buffer_names: tuple = ()

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.state: dict = {}
        self.param_groups: list = []
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors or "
                            f"dicts, got a single Tensor; wrap it in a list")
        params = list(params)
        if len(params) == 0:
            raise ValueError(f"{type(self).__name__}: optimizer got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for group in params:
            self.add_param_group(group)

    # ---- groups ---------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict) -> None:
        """Adds a group (a dict with "params" and optional hyper-parameters) to optimize."""
        if not isinstance(param_group, dict):
            raise TypeError(f"add_param_group: param_group must be a dict, got "
                            f"{type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise ValueError("add_param_group: the group has no 'params' entry")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("add_param_group: params must be an ordered collection (a list), "
                            "not a set: the order must be the same from run to run")
        else:
            params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: can only optimize Tensors, got "
                                f"{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{type(self).__name__}: can't optimize a non-leaf Tensor")
            if p.data.dtype.kind != "f":
                raise TypeError(f"{type(self).__name__}: can only optimize float tensors, got "
                                f"dtype {p.data.dtype}")
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{type(self).__name__}: a parameter appears more than once in a "
                             f"group")
        group["params"] = params
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"{type(self).__name__}: parameter group didn't specify a "
                                 f"value of required optimization parameter {name}")
            group.setdefault(name, default)
        self._validate(group)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError(f"{type(self).__name__}: some parameters appear in more than one "
                             f"parameter group")
        self.param_groups.append(group)

    def _validate(self, group: dict) -> None:
        """Raises ValueError for a bad hyper-parameter (subclasses extend)."""
        _check_nonneg(self, "lr", group.get("lr"))

    # ---- gradients and steps --------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clears every parameter's gradient: drops it (default) or fills it with zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        p.grad.data.fill(0)

    def step(self, closure=None):
        """One update of every parameter that has a gradient (and requires grad).

        closure: optional callable that re-evaluates the model and returns the loss; it runs
        with grad enabled before the update, and its loss is returned."""
        loss = None
        if closure is not None:
            from ..autograd import enable_grad
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._update_group(group)
        return loss

    def _update_group(self, group: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def _grad_of(p):
        """p's gradient ndarray, or None when p is frozen or has no gradient."""
        g = p.grad
        if g is None or not p.requires_grad:
            return None
        g = g.data if isinstance(g, Tensor) else g
        if g.dtype != p.data.dtype or not g.flags.c_contiguous:
            g = np.ascontiguousarray(g, dtype=p.data.dtype)
        return g

    # ---- state dict -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """{"state": {int: {name: ndarray | int}}, "param_groups": [dict]} (see module doc)."""
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            ids = []
            for p in group["params"]:
                if id(p) not in index:
                    index[id(p)] = len(index)
                ids.append(index[id(p)])
            packed["params"] = ids
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                st = self.state.get(p)
                if st is not None:
                    state[index[id(p)]] = dict(st)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restores state and hyper-parameters saved by :meth:`state_dict` (copies arrays)."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or "param_groups" not in state_dict \
                or "state" not in state_dict:
            raise ValueError(f"{name}.load_state_dict: expected a dict with 'state' and "
                             f"'param_groups', got {type(state_dict).__name__}"
                             + (f" with keys {sorted(state_dict)}"
                                if isinstance(state_dict, dict) else ""))
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: loaded state dict has "
                             f"{len(saved_groups)} parameter groups, this optimizer has "
                             f"{len(self.param_groups)}")
        for i, (g, s) in enumerate(zip(self.param_groups, saved_groups)):
            if len(g["params"]) != len(s["params"]):
                raise ValueError(f"{name}.load_state_dict: parameter group {i} has "
                                 f"{len(s['params'])} parameters in the loaded state dict "
                                 f"but {len(g['params'])} in this optimizer")
        id_map = {}
        for g, s in zip(self.param_groups, saved_groups):
            for p, k in zip(g["params"], s["params"]):
                id_map[int(k)] = p
        new_state = {}
        for k, st in state_dict["state"].items():
            p = id_map.get(int(k))
            if p is None:
                raise ValueError(f"{name}.load_state_dict: state for parameter id {k} matches "
                                 f"no parameter of this optimizer")
            new_st = {}
            for key, v in st.items():
                if key == "step":
                    new_st[key] = int(np.asarray(v).item())
                elif v is None:
                    new_st[key] = None
                elif isinstance(v, (np.ndarray, Tensor)) or hasattr(v, "__array__"):
                    a = np.array(v.data if isinstance(v, Tensor) else v, dtype=p.data.dtype,
                                 copy=True, order="C")
                    if a.shape != p.data.shape:
                        raise ValueError(f"{name}.load_state_dict: state '{key}' of parameter "
                                         f"{k} has shape {a.shape}, the parameter has shape "
                                         f"{p.data.shape}")
                    new_st[key] = a
                else:
                    new_st[key] = v
            new_state[p] = new_st
        for g, s in zip(self.param_groups, saved_groups):
            for key, v in s.items():
                if key != "params":
                    g[key] = tuple(v) if isinstance(v, list) else v
            self._validate(g)
        self.state = new_state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)


# ---- hyper-parameter checks (clear ValueErrors naming the optimizer and the value) -------------
def _is_real(x) -> bool:
    return isinstance(x, (int, float, np.floating, np.integer)) and not isinstance(x, bool)


def _check_nonneg(opt, name, value):
    if not _is_real(value) or math.isnan(value) or value < 0:
        raise ValueError(f"{type(opt).__name__}: invalid {name} {value!r}: must be a number "
                         f">= 0")


def _check_unit(opt, name, value, closed_right=False):
    ok = _is_real(value) and (0.0 <= value <= 1.0 if closed_right else 0.0 <= value < 1.0)
    if not ok:
        rng = "[0, 1]" if closed_right else "[0, 1)"
        raise ValueError(f"{type(opt).__name__}: invalid {name} {value!r}: must be in {rng}")


def _check_betas(opt, betas):
    if not isinstance(betas, Iterable) or len(tuple(betas)) != 2:
        raise ValueError(f"{type(opt).__name__}: betas must be a pair (beta1, beta2), got "
                         f"{betas!r}")
    b1, b2 = tuple(betas)
    for i, b in enumerate((b1, b2)):
        if not _is_real(b) or not 0.0 <= b < 1.0:
            raise ValueError(f"{type(opt).__name__}: invalid beta parameter at index {i}: "
                             f"{b!r}: must be in [0, 1)")
