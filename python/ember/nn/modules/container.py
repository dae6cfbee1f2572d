from collections import OrderedDict

from ...tensor import as_tensor, flatten
from .activation import ReLU
from .conv import Conv1d, Conv2d
from .linear import Linear
from .module import Module

__all__ = ["Sequential", "ModuleList", "Identity", "Flatten", "Unflatten"]


# Layers whose forward can take a following ReLU into the same kernel (their _forward_relu).
_RELU_FUSABLE = (Linear, Conv1d, Conv2d)


def _fuses_with_relu(m, nxt) -> bool:
    """A plain Linear / Conv1d / Conv2d followed by a plain ReLU (subclasses that override
    forward run as written)."""
    if type(nxt).forward is not ReLU.forward:
        return False
    for cls in _RELU_FUSABLE:
        if isinstance(m, cls):
            return type(m).forward is cls.forward
    return False


class Sequential(Module):
    """Chains modules: ``Sequential(a, b, c)(x) == c(b(a(x)))``. Also takes an OrderedDict."""

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

    def forward(self, x):
        mods = list(self._modules.values())
        i, n = 0, len(mods)
        while i < n:
            m = mods[i]
            if i + 1 < n and _fuses_with_relu(m, mods[i + 1]):
                # Linear/Conv then ReLU: one fused kernel and graph node, the same values and
                # gradients as calling the two modules.
                x = m._forward_relu(x)
                i += 2
            else:
                x = m(x)
                i += 1
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
