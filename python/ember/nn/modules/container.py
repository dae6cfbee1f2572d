from collections import OrderedDict

from ... import _core
from ... import functional as F
from ...autograd import _state as _grad_state
from ...tensor import Tensor, _layer_input, _wrap, as_tensor, flatten
from .activation import ReLU
from .conv import Conv1d, Conv2d
from .linear import Linear
from .module import Module
from .pooling import MaxPool1d, MaxPool2d

__all__ = ["Sequential", "ModuleList", "Identity", "Flatten", "Unflatten"]


# Layers whose forward can take a following ReLU into the same kernel (their _forward_relu).
_RELU_FUSABLE = (Linear, Conv1d, Conv2d)

# Plan step kinds.
_CALL, _FUSED_RELU, _LINEAR_RUN, _CONV_RELU_POOL = 0, 1, 2, 3


def _plain(m, cls) -> bool:
    """m is a cls whose forward is cls's own (not overridden by a subclass or the instance)."""
    return isinstance(m, cls) and type(m).forward is cls.forward and "forward" not in m.__dict__


def _fuses_with_relu(m, nxt) -> bool:
    """A plain Linear / Conv1d / Conv2d followed by a plain ReLU (subclasses that override
    forward run as written)."""
    if not _plain(nxt, ReLU):
        return False
    return any(_plain(m, cls) for cls in _RELU_FUSABLE)


def _fuses_with_relu_pool(m, r, p) -> bool:
    """A plain Conv1d/Conv2d, a plain ReLU, then a plain MaxPool of the same dimensionality."""
    if not _plain(r, ReLU):
        return False
    return (_plain(m, Conv2d) and _plain(p, MaxPool2d)) or (_plain(m, Conv1d)
                                                            and _plain(p, MaxPool1d))


def _make_plan(mods):
    """The steps of Sequential.forward: each module alone, a Linear/Conv + ReLU pair as one fused
    call, a Conv + ReLU + MaxPool triple as one graph node, and a run of >= 2 consecutive plain
    Linear (+ReLU) layers as one linear-chain step (taken when no graph is recorded; otherwise
    the run goes layer by layer)."""
    steps, i, n = [], 0, len(mods)
    while i < n:
        run = []
        j = i
        while j < n and _plain(mods[j], Linear):
            relu = j + 1 < n and _plain(mods[j + 1], ReLU)
            run.append((mods[j], relu))
            j += 2 if relu else 1
        if len(run) >= 2:
            steps.append((_LINEAR_RUN, tuple(run)))
            i = j
        elif i + 2 < n and _fuses_with_relu_pool(mods[i], mods[i + 1], mods[i + 2]):
            steps.append((_CONV_RELU_POOL, (mods[i], mods[i + 2])))
            i += 3
        elif i + 1 < n and _fuses_with_relu(mods[i], mods[i + 1]):
            steps.append((_FUSED_RELU, mods[i]))
            i += 2
        else:
            steps.append((_CALL, mods[i]))
            i += 1
    return tuple(steps)


def _linear_run(run, x):
    """Inference through consecutive Linear(+ReLU) layers in one C++ call when no graph is being
    recorded (grad mode off, or neither x nor any parameter of the run requires grad); the same
    values as layer-by-layer calls. Otherwise the layers run one fused call each."""
    record = _grad_state.enabled and (
        (isinstance(x, Tensor) and x.requires_grad)
        or any(m.weight.requires_grad or (m.bias is not None and m.bias.requires_grad)
               for m, _ in run))
    if record:
        for m, relu in run:
            x = F.linear_relu(x, m.weight, m.bias, relu)
        return x
    xd = _layer_input(x, run[0][0].weight.data.dtype).data
    return _wrap(_core.linear_chain_forward(
        xd, [(m.weight.data, None if m.bias is None else m.bias.data, relu) for m, relu in run]))


class Sequential(Module):
    """Chains modules: ``Sequential(a, b, c)(x) == c(b(a(x)))``. Also takes an OrderedDict.

    Forward runs a Linear/Conv1d/Conv2d followed by a ReLU as one fused call (with a following
    MaxPool of the same dimensionality as one graph node, the ReLU's backward done inside the
    pool's), and, when no
    graph is recorded (``no_grad``, frozen layers), two or more consecutive Linear(+ReLU)
    layers as one C++ call: fewer Python round trips where batch-1 inference is dominated by
    them. Values and gradients are those of calling the modules one by one.
    """

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], (OrderedDict, dict)):
            for name, m in args[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(args):
                if not isinstance(m, Module):
                    raise TypeError(f"Sequential: argument {i} is {type(m).__name__}, not a "
                                    f"Module")
                self.add_module(str(i), m)

    def _steps(self):
        # The plan depends only on which modules are in here (and their classes); rebuilt when
        # that changes. Instance-level forward overrides are seen at plan time.
        mods = tuple(self._modules.values())
        cached = self.__dict__.get("_plan")
        if cached is not None and cached[0] == mods:
            return cached[1]
        steps = _make_plan(mods)
        self.__dict__["_plan"] = (mods, steps)
        return steps

    def forward(self, x):
        for kind, m in self._steps():
            if kind == _CALL:
                x = m(x)
            elif kind == _FUSED_RELU:
                x = m._forward_relu(x)
            elif kind == _CONV_RELU_POOL:
                conv, pool = m
                # return_indices is read per call (a pool returning a tuple is not fused)
                x = pool(conv._forward_relu(x)) if pool.return_indices else \
                    conv._forward_relu_pool(x, pool)
            else:
                x = _linear_run(m, x)
        return x

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        return mods[idx]

    def __setitem__(self, idx, module):
        if not isinstance(module, Module):
            raise TypeError(f"Sequential: can only assign a Module, got {type(module).__name__}")
        keys = list(self._modules)
        setattr(self, keys[idx], module)   # keeps the position (IndexError when out of range)

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self


class ModuleList(Module):
    def __init__(self, modules=None):
        super().__init__()
        for m in modules or ():
            self.append(m)

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        mods = list(self._modules.values())
        return ModuleList(mods[idx]) if isinstance(idx, slice) else mods[idx]


class Identity(Module):
    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return as_tensor(x)


class Flatten(Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return flatten(as_tensor(x), self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x):
        x = as_tensor(x)
        d = self.dim % x.ndim
        return x.reshape(x.shape[:d] + self.unflattened_size + x.shape[d + 1:])

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
