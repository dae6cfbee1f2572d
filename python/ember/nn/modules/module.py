"""nn.Module: holds parameters, buffers and submodules; the math lives in ember.functional."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ...tensor import Tensor, _parse_to
from ..parameter import Parameter

__all__ = ["Module"]


class Module:
    training: bool

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- registration -----------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() is called "
                                 f"(call super().__init__() first in {type(self).__name__})")
        params, mods, bufs = self._parameters, self._modules, self._buffers
        if isinstance(value, (Parameter, Module)):
            # Replacing a parameter or submodule keeps its place (a Sequential's order, a
            # state_dict's key order), as in PyTorch; only the other registries lose the name.
            target = params if isinstance(value, Parameter) else mods
            for d in (params, mods, bufs):
                if d is not target:
                    d.pop(name, None)
            target[name] = value
            self.__dict__[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} "
                                f"(expected nn.Parameter or None; to change values, write "
                                f"into .data)")
            params[name] = None
            self.__dict__[name] = None
        elif name in mods:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module "
                                f"{name!r} (expected nn.Module or None)")
            mods[name] = None
            self.__dict__[name] = None
        elif name in bufs:
            bufs[name] = value if value is None or isinstance(value, Tensor) else Tensor(value)
            self.__dict__[name] = bufs[name]
        else:
            object.__setattr__(self, name, value)

    # Parameters, buffers and submodules live in their registries (the source of truth for
    # traversal and state_dict) and are mirrored into the instance __dict__, so that
    # `self.weight` in a forward is a plain attribute hit instead of a __getattr__ call
    # (~0.5 us per access, several per layer per step). Every write path updates both.
    def __getattr__(self, name):
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            if key in d and name in d[key]:
                return d[key][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for key in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__[key]:
                del self.__dict__[key][name]
                self.__dict__.pop(name, None)
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None):
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, got "
                            f"{type(param).__name__}")
        self._parameters[name] = param
        self.__dict__[name] = param

    def register_buffer(self, name: str, value, persistent: bool = True):
        """A tensor that is state but not a parameter (running stats): saved in state_dict."""
        self._buffers[name] = None if value is None else (
            value if isinstance(value, Tensor) else Tensor(value))
        self.__dict__[name] = self._buffers[name]
        if not persistent:
            self.__dict__.setdefault("_non_persistent", set()).add(name)

    def add_module(self, name: str, module: Module | None):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, got "
                            f"{type(module).__name__}")
        self._modules[name] = module
        self.__dict__[name] = module

    register_module = add_module

    # ---- traversal --------------------------------------------------------------------------
    def named_modules(self, memo=None, prefix="", remove_duplicate: bool = True):
        """(name, module) for this module and every submodule, depth first. A module reached
        twice is listed once unless remove_duplicate=False (state_dict lists it under each
        name, as PyTorch does)."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is None:
                continue
            yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name,
                                       remove_duplicate)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        seen = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for name, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mp}.{name}" if mp else name), p

    def parameters(self, recurse: bool = True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True):
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for name, b in m._buffers.items():
                if b is not None:
                    yield (f"{mp}.{name}" if mp else name), b

    def buffers(self, recurse: bool = True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn):
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ---- modes ------------------------------------------------------------------------------
    def train(self, mode: bool = True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    # ---- dtype ------------------------------------------------------------------------------
    def to(self, *args, dtype=None, device=None):
        """Converts every floating-point parameter and buffer (and any gradient) to a dtype, in
        place, and returns self, as PyTorch's ``Module.to``: ``model.to(np.float64)``,
        ``model.to("float64")``, ``model.to(dtype=torch.float64)``. Parameters keep their
        identity, so an optimizer made before still holds them (but its state, e.g. momentum,
        keeps the old dtype: convert before making the optimizer). Devices: only ``"cpu"``."""
        dt = _parse_to("Module.to", args, dtype, device)
        if dt is None:
            return self
        if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"Module.to: ember layers compute in float32 or float64, got {dt}")
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None and p.data.dtype.kind == "f" and p.data.dtype != dt:
                    p.data = p.data.astype(dt)
                    if p.grad is not None:
                        p.grad = Tensor(p.grad.data.astype(dt))
            for b in m._buffers.values():
                if b is not None and b.data.dtype.kind == "f" and b.data.dtype != dt:
                    b.data = b.data.astype(dt)
        return self

    def float(self):
        """All floating-point parameters and buffers to float32 (in place; returns self)."""
        return self.to(np.float32)

    def double(self):
        """All floating-point parameters and buffers to float64 (in place; returns self)."""
        return self.to(np.float64)

    def requires_grad_(self, requires_grad: bool = True):
        """Freezes (False) or unfreezes (True) every parameter of this module."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True):
        for p in self.parameters():
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.data.fill(0)

    # ---- state ------------------------------------------------------------------------------
    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> OrderedDict:
        """name -> ndarray for every parameter and persistent buffer (PyTorch's key names)."""
        out = OrderedDict()
        for mp, m in self.named_modules(prefix=prefix.rstrip("."), remove_duplicate=False):
            skip = m.__dict__.get("_non_persistent", set())
            for name, p in m._parameters.items():
                if p is not None:
                    out[f"{mp}.{name}" if mp else name] = p if keep_vars else p.data
            for name, b in m._buffers.items():
                if b is not None and name not in skip:
                    out[f"{mp}.{name}" if mp else name] = b if keep_vars else b.data
        return out

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copies values into this module's parameters and buffers, in place.

        Accepts ndarrays, ember Tensors, or anything with ``.numpy()`` / ``__array__`` (such as
        torch tensors). Shapes must match. With ``strict`` (default), missing or unexpected keys
        raise; the error lists every missing, unexpected and mismatched key.
        """
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched = []
        values = {}
        for k, t in own.items():
            if k not in state_dict:
                continue
            v = state_dict[k]
            if isinstance(v, Tensor):
                v = v.data
            elif not isinstance(v, np.ndarray):
                v = v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
            v = np.asarray(v)
            if v.shape != t.data.shape:
                mismatched.append(f"{k}: checkpoint {tuple(v.shape)} vs model "
                                  f"{tuple(t.data.shape)}")
                continue
            values[k] = v
        if mismatched or (strict and (missing or unexpected)):
            lines = [f"load_state_dict: state_dict does not fit {type(self).__name__}"]
            if missing:
                lines.append(f"  missing keys: {missing}")
            if unexpected:
                lines.append(f"  unexpected keys: {unexpected}")
            if mismatched:
                lines.append("  shape mismatches: " + "; ".join(mismatched))
            raise ValueError("\n".join(lines))
        for k, v in values.items():
            t = own[k]
            np.copyto(t.data, v.astype(t.data.dtype, copy=False))
        return _IncompatibleKeys(missing, unexpected)

    # ---- misc -------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        children = list(self._modules.items())
        if not children:
            return f"{type(self).__name__}({extra})"
        lines = [f"{type(self).__name__}("]
        if extra:
            lines.append("  " + extra)
        for name, m in children:
            body = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        lines.append(")")
        return "\n".join(lines)

    def summary(self, input_shape=None, **kwargs):
        """Layers, output shapes, parameter counts (trainable vs frozen); see ember.train."""
        from ...train.summary import summary
        return summary(self, input_shape, **kwargs)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return int(sum(p.data.size for p in self.parameters()
                       if p.requires_grad or not trainable_only))


class _IncompatibleKeys:
    def __init__(self, missing, unexpected):
        self.missing_keys = missing
        self.unexpected_keys = unexpected

    def __iter__(self):
        return iter((self.missing_keys, self.unexpected_keys))

    def __repr__(self):
        return (f"<IncompatibleKeys missing_keys={self.missing_keys} "
                f"unexpected_keys={self.unexpected_keys}>")
