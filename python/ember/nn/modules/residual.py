from ...tensor import as_tensor
from .module import Module

__all__ = ["Residual"]


class Residual(Module):
    """``x + block(x)``: a skip connection around ``block`` (whose output must match x's shape).

    The gradient reaching x is the incoming gradient (the identity path) plus the block's input
    gradient, so stacks of Residual blocks pass gradient to early layers undiminished.
    """

    def __init__(self, block: Module):
        super().__init__()
        self.block = block

    def forward(self, x):
        x = as_tensor(x)
        out = self.block(x)
        if out.shape != x.shape:
            raise ValueError(f"Residual: block output shape {out.shape} does not match input "
                             f"shape {x.shape}")
        return x + out
