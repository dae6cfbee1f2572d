"""linear: y = x @ W^T + b, forward and backward in C++ (one GEMM each way, bias fused)."""
import numpy as np

from .. import _core
from ..autograd import Node
from ..autograd import _state as _grad_state
from ..tensor import Tensor, _layer_input, _wrap, as_tensor

__all__ = ["linear", "linear_relu", "matmul"]


def linear(input, weight, bias=None) -> Tensor:
    """Applies ``input @ weight.T + bias``. input (*, in), weight (out, in), bias (out,)."""
    return linear_relu(input, weight, bias, relu=False)


def linear_relu(input, weight, bias=None, relu=True) -> Tensor:
    """``relu(linear(input, weight, bias))`` as one kernel call and one graph node (the ReLU is
    the GEMM's epilogue); the same values and gradients as the two ops. nn.Sequential uses it
    for a Linear followed by a ReLU."""
    # Kept lean: at batch 1 the Python around the kernel is a large share of the layer's time.
    w = weight if isinstance(weight, Tensor) else as_tensor(weight)
    b = bias if bias is None or isinstance(bias, Tensor) else as_tensor(bias)
    x = _layer_input(input, w.data.dtype)
    y = _core.linear_forward(x.data, w.data, None if b is None else b.data, relu)
    if not _grad_state.enabled or not (
            w.requires_grad or (b is not None and b.requires_grad) or x.requires_grad):
        return _wrap(y)

    def backward(g):
        if relu:
            g = _core.relu_backward(g, y)
        # Weight and bias gradients of leaf parameters go straight into .grad: accumulated
        # (the kernel's += rule) into an existing one, written (=) into a fresh uninitialized
        # one, so no temporary is made and no zero-fill is paid after zero_grad().
        gw = gb = None
        dw = db = None
        new_dw = new_db = False
        if w.requires_grad:
            if w._node is not None or w.grad is None:
                dw = gw = np.empty_like(w.data)
                new_dw = True
            else:
                dw = w.grad.data
        if b is not None and b.requires_grad:
            if b._node is not None or b.grad is None:
                db = gb = np.empty_like(b.data)
                new_db = True
            else:
                db = b.grad.data
        gx = _core.linear_backward(np.ascontiguousarray(g), x.data, w.data, x.requires_grad,
                                   dw, db, new_dw, new_db)
        # A leaf's fresh gradient becomes its .grad only once written (an exception above
        # leaves .grad as it was).
        if new_dw and w._node is None:
            w.grad, gw = Tensor(dw), None
        if new_db and b._node is None:
            b.grad, gb = Tensor(db), None
        return gx, gw, gb

    return _wrap(y, Node((x, w, b), backward,
                         "LinearReluBackward" if relu else "LinearBackward"))


def matmul(a, b) -> Tensor:
    return as_tensor(a) @ as_tensor(b)
