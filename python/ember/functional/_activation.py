"""Activations: each op is one C++ forward call and one C++ backward call, side by side.

Backward kernels differentiate from whichever of the input or the output is cheaper (relu,
sigmoid, tanh and softmax from the output), so closures hold arrays that already exist and no
mask or temporary is saved. Their nodes are marked strided: the gradient of a full sum or mean
arrives as a stride-0 broadcast, which the kernels read as one value.
"""
from .. import _core
from ..tensor import Tensor, as_tensor, make_result

__all__ = ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "gelu", "silu", "softmax",
           "log_softmax", "step", "identity"]


def _t(x):
    return x if isinstance(x, Tensor) else as_tensor(x)


def relu(input, inplace=False) -> Tensor:
    """max(x, 0). ``inplace`` is accepted for PyTorch compatibility and ignored."""
    x = _t(input)
    y = _core.relu_forward(x.data)
    return make_result(y, (x,), lambda g: (_core.relu_backward(g, y),), "ReluBackward",
                       strided=True)


def leaky_relu(input, negative_slope=0.01, inplace=False) -> Tensor:
    """x if x > 0 else negative_slope * x."""
    x = _t(input)
    s = float(negative_slope)
    y = _core.leaky_relu_forward(x.data, s)
    return make_result(y, (x,), lambda g: (_core.leaky_relu_backward(g, x.data, s),),
                       "LeakyReluBackward", strided=True)


def elu(input, alpha=1.0, inplace=False) -> Tensor:
    """x if x > 0 else alpha * (exp(x) - 1)."""
    x = _t(input)
    a = float(alpha)
    y = _core.elu_forward(x.data, a)
    return make_result(y, (x,), lambda g: (_core.elu_backward(g, x.data, a),), "EluBackward",
                       strided=True)


def sigmoid(input) -> Tensor:
    """1 / (1 + exp(-x))."""
    x = _t(input)
    y = _core.sigmoid_forward(x.data)
    return make_result(y, (x,), lambda g: (_core.sigmoid_backward(g, y),), "SigmoidBackward",
                       strided=True)


def tanh(input) -> Tensor:
    x = _t(input)
    y = _core.tanh_forward(x.data)
    return make_result(y, (x,), lambda g: (_core.tanh_backward(g, y),), "TanhBackward",
                       strided=True)


def gelu(input, approximate="none") -> Tensor:
    """x * Phi(x) (exact, erf form), or torch's tanh approximation with approximate='tanh'."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    x = _t(input)
    approx = approximate == "tanh"
    y = _core.gelu_forward(x.data, approx)
    return make_result(y, (x,), lambda g: (_core.gelu_backward(g, x.data, approx),),
                       "GeluBackward", strided=True)


def silu(input, inplace=False) -> Tensor:
    """x * sigmoid(x) (a.k.a. swish)."""
    x = _t(input)
    y = _core.silu_forward(x.data)
    return make_result(y, (x,), lambda g: (_core.silu_backward(g, x.data),), "SiluBackward",
                       strided=True)


def _dim(dim, ndim):
    # torch's legacy rule for dim=None (nn.Softmax() without a dim): 0 for 0-, 1- and 3-D
    # inputs, else 1.
    if dim is None:
        return 0 if ndim in (0, 1, 3) else 1
    return int(dim)


def softmax(input, dim=None, dtype=None) -> Tensor:
    """exp(x) / sum(exp(x)) over ``dim``, computed max-shifted (stable for any finite x)."""
    x = _t(input) if dtype is None else as_tensor(input, dtype)
    d = _dim(dim, x.data.ndim)
    y = _core.softmax_forward(x.data, d, False)
    return make_result(y, (x,), lambda g: (_core.softmax_backward(g, y, d, False),),
                       "SoftmaxBackward")


def log_softmax(input, dim=None, dtype=None) -> Tensor:
    """x - logsumexp(x) over ``dim``, computed max-shifted."""
    x = _t(input) if dtype is None else as_tensor(input, dtype)
    d = _dim(dim, x.data.ndim)
    y = _core.softmax_forward(x.data, d, True)
    return make_result(y, (x,), lambda g: (_core.softmax_backward(g, y, d, True),),
                       "LogSoftmaxBackward")


def step(input, value=0.0) -> Tensor:
    """Heaviside step: 1 where x > 0, 0 where x < 0, ``value`` where x == 0 (NaN stays NaN).

    The perceptron's activation. Forward only: its derivative is 0 wherever it exists, so the
    result never requires grad (like a comparison), and a graph through it carries no gradient
    back to its input; train a perceptron with its own update rule, not backward().
    """
    x = _t(input)
    return Tensor(_core.step_forward(x.data, float(value)))


def identity(input) -> Tensor:
    """Returns its input (as a Tensor) unchanged: no copy, no graph node."""
    return _t(input)
