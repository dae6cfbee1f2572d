"""ember.Tensor: a numpy ndarray plus what autograd needs (``grad``, ``requires_grad``, a node).

A Tensor wraps a C-contiguous ndarray without copying: ``Tensor(a).numpy() is a`` when ``a`` is
already float32 and contiguous. ``.data`` is that ndarray, so ``p.data -= lr * p.grad`` updates
a parameter in place. Operators broadcast like numpy and are differentiable.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import _core
from .autograd import Node, is_grad_enabled, no_grad, run_backward
from .autograd import _state as _grad_state

__all__ = ["Tensor", "tensor", "as_tensor", "zeros", "ones", "full", "zeros_like", "ones_like",
           "randn", "rand", "arange", "cat", "stack", "float32", "float64", "int64"]

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)


def _contig(a, dtype=None) -> np.ndarray:
    """a as a C-contiguous ndarray, copied only when needed. Unlike np.ascontiguousarray it keeps
    0-d arrays (and numpy scalars) 0-d: em.tensor(1.0).shape == ()."""
    return np.asarray(a, dtype=dtype, order="C")


def _as_array(x, dtype=None) -> np.ndarray:
    """ndarray for x: float data becomes float32 unless dtype says otherwise; ints stay int64.

    np.asarray(order="C"), not np.ascontiguousarray: the latter turns 0-d data into shape (1,).
    """
    if isinstance(x, Tensor):
        x = x.data
    if dtype is not None:
        return _contig(x, dtype=dtype)
    a = np.asarray(x)
    if a.dtype == np.float32:
        return _contig(a)
    if a.dtype.kind in "fc":
        return _contig(a, dtype=np.float32)
    if a.dtype.kind in "iu":
        return _contig(a, dtype=np.int64)
    if a.dtype == np.bool_:
        return _contig(a)
    if a.dtype == object:
        raise TypeError(f"tensor: cannot make a tensor from {type(x).__name__} data")
    return _contig(a, dtype=np.float32)


def _parse_to(op, args, dtype=None, device=None):
    """The dtype asked for by ``.to(*args, dtype=, device=)`` (None: keep it). Devices other than
    the CPU, and arguments that are neither, raise."""
    for a in list(args) + [device]:
        if a is None:
            continue
        if isinstance(a, Tensor):
            dtype = dtype if dtype is not None else a.data.dtype
            continue
        name = str(a)
        if name == "cpu" or name.startswith("cpu:"):
            continue
        if name.startswith(("cuda", "mps", "xpu", "meta")):
            raise ValueError(f"{op}: ember runs on the CPU only; got device {name!r}")
        if dtype is not None:
            raise TypeError(f"{op}: got more than one dtype ({dtype!r} and {a!r})")
        dtype = a
    if dtype is None:
        return None
    try:
        # torch dtypes read as their numpy names (torch.float64 -> "float64")
        dt = np.dtype(str(dtype).replace("torch.", "") if not isinstance(dtype, (type, np.dtype))
                      else dtype)
    except TypeError:
        raise TypeError(f"{op}: {dtype!r} is not a dtype or a device") from None
    return dt


class Tensor:
    __slots__ = ("data", "grad", "requires_grad", "_node", "_retain_grad", "__weakref__")
    __array_priority__ = 1000

    def __init__(self, data, requires_grad: bool = False, dtype=None, _node: Node | None = None):
        if isinstance(data, np.generic):
            data = np.asarray(data)  # numpy ops on 0-d arrays return scalars: keep their dtype
        if isinstance(data, np.ndarray) and dtype is None and data.dtype.kind in "fiub" \
                and data.flags.c_contiguous and data.dtype != np.float16:
            arr = data if data.dtype != np.int32 else data.astype(np.int64)
        else:
            arr = _as_array(data, dtype)
        self.data = arr
        self.grad = None
        self._node = _node
        self._retain_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ---- basic properties -------------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def is_leaf(self):
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self):
        return int(self.data.size)

    def dim(self):
        return self.data.ndim

    def __len__(self):
        return len(self.data)

    def numpy(self) -> np.ndarray:
        """The underlying ndarray (shared, not copied)."""
        return self.data

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and dtype != self.data.dtype:
            return self.data.astype(dtype)
        return self.data

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # `ndarray + Tensor` -> the Tensor operator (stays in the graph); an in-place update of
        # an ndarray (`p.data -= lr * p.grad`) or any other ufunc works on the raw arrays.
        if method == "__call__" and "out" not in kwargs and len(inputs) == 2:
            names = _UFUNC_METHODS.get(ufunc)
            if names is not None:
                a, b = inputs
                if isinstance(a, Tensor):
                    return getattr(a, names[0])(b)
                return getattr(b, names[1])(a)
        args = [i.data if isinstance(i, Tensor) else i for i in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(o.data if isinstance(o, Tensor) else o for o in kwargs["out"])
        return getattr(ufunc, method)(*args, **kwargs)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: only a one-element tensor converts to a Python scalar, "
                             f"got shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", precision=4, threshold=50,
                               prefix="tensor(")
        extra = ""
        if self.data.dtype != np.float32:
            extra += f", dtype={self.data.dtype}"
        if self._node is not None:
            extra += f", grad_fn=<{self._node.name}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError("The truth value of a tensor with more than one element is "
                             "ambiguous")
        return bool(self.data.item())

    def __hash__(self):
        return id(self)

    # ---- autograd ---------------------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True):
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"requires_grad: only float tensors can require gradients, "
                            f"got dtype {self.data.dtype}")
        if not requires_grad and self._node is not None:
            raise RuntimeError("requires_grad_: you can only change requires_grad of leaf "
                               "tensors; use .detach() for a non-leaf")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self):
        """Keep .grad on this non-leaf tensor after backward (leaves always keep theirs)."""
        if self._node is not None:
            self._retain_grad = True
        return self

    def backward(self, gradient=None, retain_graph: bool = False):
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph "
                               "(was it computed under no_grad, or from inputs without "
                               "requires_grad?)")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward: grad can be implicitly created only for scalar "
                                   f"outputs; got shape {self.shape}, pass gradient=")
            g = np.ones_like(self.data)
        else:
            g = _contig(_as_array(gradient, self.data.dtype))
            if g.shape != self.shape:
                raise ValueError(f"backward: gradient shape {g.shape} does not match tensor "
                                 f"shape {self.shape}")
        run_backward(self, g, retain_graph=retain_graph)

    def detach(self):
        """A new tensor sharing this data, cut out of the graph."""
        return Tensor(self.data)

    def detach_(self):
        self._node = None
        self.requires_grad = False
        return self

    def zero_(self):
        self.data.fill(0)
        return self

    def clone(self):
        src = self
        out = self.data.copy()
        return make_result(out, (src,), lambda g: (g,), "CloneBackward")

    def copy_(self, other):
        np.copyto(self.data, _as_array(other, self.data.dtype))
        return self

    def fill_(self, value):
        self.data.fill(value)
        return self

    def astype(self, dtype):
        dtype = np.dtype(dtype)
        if dtype == self.data.dtype:
            return self
        src = self
        out = self.data.astype(dtype)
        return make_result(out, (src,), lambda g: (g.astype(src.data.dtype),),
                           "ToCopyBackward")

    def to(self, *args, dtype=None, device=None):
        """PyTorch's ``.to``: a dtype (``t.to(np.float64)``, ``t.to("float64")``), a device
        (only ``"cpu"``: ember runs on the CPU, so that is a no-op), or another tensor (its
        dtype). A float dtype change is differentiable, as ``astype``."""
        dt = _parse_to("Tensor.to", args, dtype, device)
        return self if dt is None else self.astype(dt)

    def float(self):
        return self.astype(np.float32)

    def double(self):
        return self.astype(np.float64)

    def long(self):
        return Tensor(self.data.astype(np.int64))

    # ---- arithmetic -------------------------------------------------------------------------
    def _other(self, other):
        if isinstance(other, Tensor):
            return other
        if isinstance(other, numbers.Number):
            if self.data.dtype.kind == "f":
                dtype = self.data.dtype
            elif isinstance(other, numbers.Integral):
                dtype = None
            else:
                dtype = np.float32  # int tensor (op) Python float: the default float, as torch
            return Tensor(np.asarray(other, dtype=dtype))
        return Tensor(_as_array(other, self.data.dtype if self.data.dtype.kind == "f"
                                else None))

    def __add__(self, other):
        return add(self, self._other(other))

    def __radd__(self, other):
        return add(self._other(other), self)

    def __sub__(self, other):
        return sub(self, self._other(other))

    def __rsub__(self, other):
        return sub(self._other(other), self)

    def __mul__(self, other):
        return mul(self, self._other(other))

    def __rmul__(self, other):
        return mul(self._other(other), self)

    def __truediv__(self, other):
        return div(self, self._other(other))

    def __rtruediv__(self, other):
        return div(self._other(other), self)

    def __neg__(self):
        return neg(self)

    def __pos__(self):
        return self

    def __pow__(self, exponent):
        return pow(self, exponent)

    def __rpow__(self, base):
        return pow(self._other(base), self)

    def __matmul__(self, other):
        return matmul(self, self._other(other))

    def __rmatmul__(self, other):
        return matmul(self._other(other), self)

    def _inplace(self, opname, other, fn):
        if is_grad_enabled() and self.requires_grad:
            raise RuntimeError(f"{opname}: a tensor that requires grad cannot be modified in "
                               f"place while grad mode is on; wrap the update in em.no_grad() "
                               f"or update .data")
        fn(self.data, _as_array(other, self.data.dtype), out=self.data)
        return self

    def __iadd__(self, other):
        return self._inplace("__iadd__", other, np.add)

    def __isub__(self, other):
        return self._inplace("__isub__", other, np.subtract)

    def __imul__(self, other):
        return self._inplace("__imul__", other, np.multiply)

    def __itruediv__(self, other):
        return self._inplace("__itruediv__", other, np.divide)

    add_ = __iadd__
    sub_ = __isub__
    mul_ = __imul__

    # comparisons: no gradient, bool tensors
    def __lt__(self, o):
        return Tensor(self.data < _as_array(o))

    def __le__(self, o):
        return Tensor(self.data <= _as_array(o))

    def __gt__(self, o):
        return Tensor(self.data > _as_array(o))

    def __ge__(self, o):
        return Tensor(self.data >= _as_array(o))

    def eq(self, o):
        return Tensor(self.data == _as_array(o))

    def argmax(self, axis=None, keepdims=False):
        return Tensor(np.argmax(self.data, axis=axis, keepdims=keepdims))

    def argmin(self, axis=None, keepdims=False):
        return Tensor(np.argmin(self.data, axis=axis, keepdims=keepdims))

    # ---- reductions and shape ops (defined below as functions) ------------------------------
    def sum(self, axis=None, keepdims=False, dim=None):
        return sum(self, axis if dim is None else dim, keepdims)

    def mean(self, axis=None, keepdims=False, dim=None):
        return mean(self, axis if dim is None else dim, keepdims)

    def max(self, axis=None, keepdims=False, dim=None):
        return amax(self, axis if dim is None else dim, keepdims)

    def min(self, axis=None, keepdims=False, dim=None):
        return amin(self, axis if dim is None else dim, keepdims)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return reshape(self, shape)

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        return flatten(self, start_dim, end_dim)

    def transpose(self, dim0=None, dim1=None):
        return transpose(self, dim0, dim1)

    def permute(self, *dims):
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        return permute(self, dims)

    @property
    def T(self):
        return transpose(self)

    def unsqueeze(self, dim):
        shape = list(self.shape)
        dim = dim if dim >= 0 else dim + len(shape) + 1
        shape.insert(dim, 1)
        return reshape(self, tuple(shape))

    def squeeze(self, dim=None):
        if dim is None:
            shape = tuple(s for s in self.shape if s != 1)
        else:
            shape = list(self.shape)
            if shape[dim] == 1:
                shape.pop(dim)
            shape = tuple(shape)
        return reshape(self, shape)

    def exp(self):
        return exp(self)

    def log(self):
        return log(self)

    def sqrt(self):
        return sqrt(self)

    def abs(self):
        return abs(self)

    def clamp(self, min=None, max=None):
        return clamp(self, min, max)

    clip = clamp

    def pow(self, e):
        return pow(self, e)

    def __getitem__(self, index):
        return getitem(self, index)

    def __setitem__(self, index, value):
        """In-place write ``t[index] = value`` (no gradient flows through it)."""
        if is_grad_enabled() and (self.requires_grad or isinstance(value, Tensor)
                                  and value.requires_grad):
            raise RuntimeError("__setitem__: cannot assign into a tensor in place while grad "
                               "mode is on and a tensor involved requires grad; use "
                               "em.no_grad() or write into .data")
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        self.data[index] = value.data if isinstance(value, Tensor) else value

    # activations, for PyTorch habits (x.relu(), x.sigmoid(), x.softmax(-1))
    def relu(self):
        from . import functional as F
        return F.relu(self)

    def sigmoid(self):
        from . import functional as F
        return F.sigmoid(self)

    def tanh(self):
        from . import functional as F
        return F.tanh(self)

    def softmax(self, dim=-1):
        from . import functional as F
        return F.softmax(self, dim)

    def log_softmax(self, dim=-1):
        from . import functional as F
        return F.log_softmax(self, dim)


_UFUNC_METHODS = {
    np.add: ("__add__", "__radd__"), np.subtract: ("__sub__", "__rsub__"),
    np.multiply: ("__mul__", "__rmul__"), np.true_divide: ("__truediv__", "__rtruediv__"),
    np.power: ("__pow__", "__rpow__"), np.matmul: ("__matmul__", "__rmatmul__"),
}


# ---------------------------------------------------------------------------------------------
# Graph plumbing

def _wrap(data: np.ndarray, node: Node | None = None) -> Tensor:
    """A Tensor around a kernel's fresh output array, skipping __init__'s input checks (the hot
    path: every op's result goes through here)."""
    t = _new_tensor(Tensor)
    t.data = data
    t.grad = None
    t._node = node
    t._retain_grad = False
    t.requires_grad = node is not None
    return t


_new_tensor = object.__new__


def make_result(data: np.ndarray, inputs, backward, name: str, strided=False) -> Tensor:
    """Wraps an op's output; records a graph node when grad mode is on and an input needs grad.
    strided: backward accepts a gradient of any layout (see autograd.Node)."""
    if type(data) is not np.ndarray:
        return make_result(np.asarray(data), inputs, backward, name, strided)
    if _grad_state.enabled:
        for t in inputs:
            if t is not None and t.requires_grad:
                return _wrap(data, Node(tuple(inputs), backward, name, strided))
    return _wrap(data)


def as_tensor(x, dtype=None) -> Tensor:
    """x as a Tensor: Tensors pass through, arrays are wrapped (float data as float32)."""
    if isinstance(x, Tensor):
        if dtype is not None and x.data.dtype != np.dtype(dtype):
            return x.astype(dtype)
        return x
    return Tensor(_as_array(x, dtype))


def _layer_input(x, dtype) -> Tensor:
    """A layer's input as a Tensor. Tensors pass through; float data that is not (numpy arrays,
    lists) takes the layer's dtype: float64 into a float32 layer is cast, into a float64 layer
    it is used as it is, never rounded through as_tensor's float32 default. Other data is left
    for the kernel to accept or reject."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray) and x.dtype.kind == "f":
        return _wrap(np.ascontiguousarray(x, dtype=dtype))  # no copy when it already is
    t = as_tensor(x)
    if t.data.dtype != dtype and t.data.dtype.kind == "f":
        return _wrap(t.data.astype(dtype))
    return t


def unbroadcast(g: np.ndarray, shape) -> np.ndarray:
    """Sums g down to `shape`, undoing numpy broadcasting."""
    if g.shape == tuple(shape):
        return g
    nd = g.ndim - len(shape)
    if nd > 0:
        g = g.sum(axis=tuple(range(nd)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def _check_broadcast(op, a, b):
    sa, sb = a.data.shape, b.data.shape
    if sa == sb:
        return sa  # the common case (a residual add): np.broadcast_shapes costs ~5 us
    try:
        return np.broadcast_shapes(sa, sb)
    except ValueError:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast "
                         f"together") from None


def _operands(op, a, b, true_div=False):
    """The two arrays of a binary op, type-promoted as torch does: an int/bool operand takes the
    float operand's dtype (numpy would make int64 + float32 a float64), two floats give the
    wider, and true division of ints gives the default float32."""
    _check_broadcast(op, a, b)
    ad, bd = a.data, b.data
    fa, fb = ad.dtype.kind == "f", bd.dtype.kind == "f"
    if fa and not fb:
        bd = bd.astype(ad.dtype)
    elif fb and not fa:
        ad = ad.astype(bd.dtype)
    elif true_div and not fa and not fb:
        ad, bd = ad.astype(np.float32), bd.astype(np.float32)
    return ad, bd


# ---------------------------------------------------------------------------------------------
# Elementwise arithmetic (numpy broadcasting)

def add(a: Tensor, b: Tensor) -> Tensor:
    ad, bd = _operands("add", a, b)
    out = ad + bd

    def backward(g):
        return (unbroadcast(g, a.shape) if a.requires_grad else None,
                unbroadcast(g, b.shape) if b.requires_grad else None)
    return make_result(out, (a, b), backward, "AddBackward")


def sub(a: Tensor, b: Tensor) -> Tensor:
    ad, bd = _operands("sub", a, b)
    out = ad - bd

    def backward(g):
        return (unbroadcast(g, a.shape) if a.requires_grad else None,
                unbroadcast(-g, b.shape) if b.requires_grad else None)
    return make_result(out, (a, b), backward, "SubBackward")


def mul(a: Tensor, b: Tensor) -> Tensor:
    ad, bd = _operands("mul", a, b)
    out = ad * bd

    def backward(g):
        return (unbroadcast(g * bd, a.shape) if a.requires_grad else None,
                unbroadcast(g * ad, b.shape) if b.requires_grad else None)
    return make_result(out, (a, b), backward, "MulBackward")


def div(a: Tensor, b: Tensor) -> Tensor:
    ad, bd = _operands("div", a, b, true_div=True)
    out = ad / bd

    def backward(g):
        ga = unbroadcast(g / bd, a.shape) if a.requires_grad else None
        gb = unbroadcast(-g * out / bd, b.shape) if b.requires_grad else None
        return ga, gb
    return make_result(out, (a, b), backward, "DivBackward")


def neg(a: Tensor) -> Tensor:
    return make_result(-a.data, (a,), lambda g: (-g,), "NegBackward")


def pow(a: Tensor, e) -> Tensor:
    if not isinstance(e, (Tensor, numbers.Number)):
        e = a._other(e)  # an ndarray or list exponent
    if isinstance(e, Tensor):
        ad, ed = _operands("pow", a, e)
        out = np.power(ad, ed)

        def backward(g):
            ga = None
            if a.requires_grad:
                # d/da a**e is 0 where e == 0, a == 0 included (0 * 0**-1 would be nan).
                with np.errstate(divide="ignore", invalid="ignore"):
                    da = np.where(ed == 0, 0, ed * np.power(ad, ed - 1))
                ga = unbroadcast((g * da).astype(out.dtype, copy=False), a.shape)
            gb = None
            if e.requires_grad:
                with np.errstate(divide="ignore", invalid="ignore"):
                    la = np.where(ad > 0, np.log(np.where(ad > 0, ad, 1)), 0)
                gb = unbroadcast(g * out * la.astype(out.dtype), e.shape)
            return ga, gb
        return make_result(out, (a, e), backward, "PowBackward")
    e = float(e)
    base = a.data
    if base.dtype.kind != "f" and not e.is_integer():
        base = base.astype(np.float32)  # int ** 0.5 is a float (numpy would truncate 0.5 to 0)
    out = np.power(base, base.dtype.type(e))

    def backward(g):
        if e == 2.0:
            return (g * 2 * a.data,)
        if e == 0.0:
            return (np.zeros_like(a.data),)  # not 0 * 0**-1 = nan at a == 0
        return (g * e * np.power(a.data, a.data.dtype.type(e - 1)),)
    return make_result(out, (a,), backward, "PowBackward")


def _floating(x: np.ndarray) -> np.ndarray:
    """x itself if float, else as float32 (torch: exp/log/sqrt of an int tensor is float32)."""
    return x if x.dtype.kind == "f" else x.astype(np.float32)


def exp(a: Tensor) -> Tensor:
    out = np.exp(_floating(a.data))
    return make_result(out, (a,), lambda g: (g * out,), "ExpBackward")


def log(a: Tensor) -> Tensor:
    out = np.log(_floating(a.data))
    return make_result(out, (a,), lambda g: (g / a.data,), "LogBackward")


def sqrt(a: Tensor) -> Tensor:
    out = np.sqrt(_floating(a.data))
    return make_result(out, (a,), lambda g: (g / (2 * out),), "SqrtBackward")


def abs(a: Tensor) -> Tensor:
    out = np.abs(a.data)
    return make_result(out, (a,), lambda g: (g * np.sign(a.data),), "AbsBackward")


def clamp(a: Tensor, min=None, max=None) -> Tensor:
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    out = np.clip(a.data, min, max).astype(a.data.dtype, copy=False)

    def backward(g):
        mask = np.ones(a.shape, dtype=bool)
        if min is not None:
            mask &= a.data >= min
        if max is not None:
            mask &= a.data <= max
        return (g * mask,)
    return make_result(out, (a,), backward, "ClampBackward")


# ---------------------------------------------------------------------------------------------
# matmul through the C++ GEMM (no numpy BLAS in the hot path)

def _mm(a: np.ndarray, b: np.ndarray, ta=False, tb=False) -> np.ndarray:
    """op(a) @ op(b) for operands of any rank >= 2 with numpy batch broadcasting."""
    if a.ndim <= 3 and b.ndim <= 3 and (a.ndim == 2 or b.ndim == 2 or a.shape[0] == b.shape[0]):
        return _core.matmul(a, b, ta, tb)
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a3 = _contig(np.broadcast_to(a, batch + a.shape[-2:])).reshape(
        (-1,) + a.shape[-2:])
    b3 = _contig(np.broadcast_to(b, batch + b.shape[-2:])).reshape(
        (-1,) + b.shape[-2:])
    c = _core.matmul(a3, b3, ta, tb)
    return c.reshape(batch + c.shape[-2:])


def matmul(a: Tensor, b: Tensor) -> Tensor:
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes "
                         f"{a.shape} and {b.shape}")
    ad = a.data if a.ndim > 1 else a.data.reshape(1, -1)
    bd = b.data if b.ndim > 1 else b.data.reshape(-1, 1)
    if ad.shape[-1] != bd.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied "
                         f"({ad.shape[-1]} != {bd.shape[-2]})")
    if ad.dtype != bd.dtype:
        raise TypeError(f"matmul: dtypes differ: {a.dtype} and {b.dtype}")
    try:
        np.broadcast_shapes(ad.shape[:-2], bd.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of {a.shape} and {b.shape} cannot be "
                         f"broadcast") from None
    out = _mm(ad, bd)
    if a.ndim == 1:
        out = out.reshape(out.shape[:-2] + out.shape[-1:])
    if b.ndim == 1:
        out = out.reshape(out.shape[:-1])

    def backward(g):
        g2 = g.reshape(g.shape[:-1] + (ad.shape[-2], bd.shape[-1])) if a.ndim == 1 \
            else g.reshape(g.shape + (1,)) if b.ndim == 1 else g
        if a.ndim == 1 and b.ndim == 1:
            g2 = g.reshape(1, 1)
        g2 = _contig(g2, dtype=ad.dtype)
        ga = gb = None
        if a.requires_grad:
            ga = unbroadcast(_mm(g2, bd, False, True), ad.shape).reshape(a.shape)
        if b.requires_grad:
            gb = unbroadcast(_mm(ad, g2, True, False), bd.shape).reshape(b.shape)
        return ga, gb
    return make_result(out, (a, b), backward, "MmBackward")


# ---------------------------------------------------------------------------------------------
# Reductions

def _norm_axis(axis, ndim):
    if axis is None:
        return None
    if isinstance(axis, int):
        axis = (axis,)
    out = []
    for ax in axis:
        if not -ndim <= ax < max(ndim, 1):
            raise IndexError(f"axis {ax} is out of range for a tensor of {ndim} dimensions")
        out.append(ax % max(ndim, 1))
    return tuple(out)


def _expand_back(g, shape, axis, keepdims):
    if axis is None:
        return np.broadcast_to(g.reshape((1,) * len(shape)) if g.ndim else g, shape)
    if not keepdims:
        g = np.expand_dims(g, axis)
    return np.broadcast_to(g, shape)


def _full_sum(x: np.ndarray):
    """x.sum() over every element: ember's threaded, fixed-order kernel for float arrays."""
    if x.dtype in _FLOAT_DTYPES and x.flags.c_contiguous:
        return _core.sum_all(x)
    return np.asarray(x.sum())


_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# The backward of sum and mean hands down a read-only broadcast view (np.broadcast_to), not a
# materialized array: ops whose node is marked strided take it as it is (the activations take a
# stride-0 gradient as a single value), and the engine makes it contiguous for every other op.
def sum(a: Tensor, axis=None, keepdims=False) -> Tensor:
    ax = _norm_axis(axis, a.ndim)
    if ax is None and not keepdims:
        out = _full_sum(a.data)
    else:
        out = np.asarray(a.data.sum(axis=ax, keepdims=keepdims))

    def backward(g):
        return (_expand_back(g, a.shape, ax, keepdims),)
    return make_result(out, (a,), backward, "SumBackward", strided=True)


def mean(a: Tensor, axis=None, keepdims=False) -> Tensor:
    ax = _norm_axis(axis, a.ndim)
    n = a.data.size if ax is None else int(np.prod([a.shape[i] for i in ax]))
    if ax is None and not keepdims and a.data.size:
        out = np.asarray(_full_sum(a.data) / n, dtype=a.data.dtype)
    else:
        out = np.asarray(a.data.mean(axis=ax, keepdims=keepdims), dtype=a.data.dtype)

    def backward(g):
        return (_expand_back(g / max(n, 1), a.shape, ax, keepdims),)
    return make_result(out, (a,), backward, "MeanBackward", strided=True)


def _extreme(a: Tensor, axis, keepdims, fn, name):
    ax = _norm_axis(axis, a.ndim)
    if a.data.size == 0 and (ax is None or any(a.shape[i] == 0 for i in ax)):
        raise ValueError(f"{name}: cannot reduce over an empty dimension of a tensor of shape "
                         f"{a.shape} (axis={axis})")
    out = np.asarray(fn(a.data, axis=ax, keepdims=keepdims))

    def backward(g):
        o = out if keepdims or ax is None else np.expand_dims(out, ax)
        mask = (a.data == (o if ax is not None else o.reshape((1,) * a.ndim) if a.ndim else o))
        # Ties share the gradient equally (as torch does for full reductions).
        count = mask.sum(axis=ax, keepdims=True)
        gg = g if keepdims or ax is None else np.expand_dims(g, ax)
        if ax is None:
            gg = np.reshape(gg, (1,) * a.ndim) if a.ndim else gg
        return ((mask * (gg / count)).astype(a.data.dtype),)
    return make_result(out, (a,), backward, name + "Backward")


def amax(a, axis=None, keepdims=False):
    return _extreme(a, axis, keepdims, np.max, "max")


def amin(a, axis=None, keepdims=False):
    return _extreme(a, axis, keepdims, np.min, "min")


# ---------------------------------------------------------------------------------------------
# Shape ops

def reshape(a: Tensor, shape) -> Tensor:
    try:
        out = a.data.reshape(shape)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {a.shape} "
                         f"({a.data.size} elements) into shape {tuple(shape)}") from None
    return make_result(out, (a,), lambda g: (g.reshape(a.shape),), "ReshapeBackward")


def flatten(a: Tensor, start_dim=0, end_dim=-1) -> Tensor:
    if a.ndim == 0:
        return reshape(a, (1,))
    s = start_dim % a.ndim
    e = end_dim % a.ndim
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = a.shape[:s] + (int(np.prod(a.shape[s:e + 1])),) + a.shape[e + 1:]
    return reshape(a, shape)


def permute(a: Tensor, dims) -> Tensor:
    dims = tuple(d % a.ndim for d in dims)
    if sorted(dims) != list(range(a.ndim)):
        raise ValueError(f"permute: dims {dims} are not a permutation of {a.ndim} dimensions")
    out = _contig(a.data.transpose(dims))
    inv = tuple(np.argsort(dims))
    return make_result(out, (a,), lambda g: (_contig(g.transpose(inv)),),
                       "PermuteBackward")


def transpose(a: Tensor, dim0=None, dim1=None) -> Tensor:
    if dim0 is None and dim1 is None:
        dims = tuple(reversed(range(a.ndim)))
    else:
        dims = list(range(a.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return permute(a, dims)


def getitem(a: Tensor, index) -> Tensor:
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    out = _contig(a.data[index])

    basic = _is_basic_index(index)

    def backward(g):
        ga = np.zeros_like(a.data)
        if basic:
            ga[index] = g  # a view: no element is hit twice (np.add.at is ~50x slower)
        else:
            np.add.at(ga, index, g)  # fancy indices may repeat: accumulate
        return (ga,)
    return make_result(out, (a,), backward, "IndexBackward")


def _is_basic_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, slice)
               or (isinstance(i, numbers.Integral) and not isinstance(i, (bool, np.bool_)))
               for i in items)


def cat(tensors, dim=0) -> Tensor:
    ts = [as_tensor(t) for t in tensors]
    if not ts:
        raise ValueError("cat: expected a non-empty list of tensors")
    try:
        out = np.concatenate([t.data for t in ts], axis=dim)
    except ValueError as e:
        raise ValueError(f"cat: shapes {[t.shape for t in ts]} do not match along the "
                         f"non-concatenated dimensions ({e})") from None
    ax = dim % out.ndim
    bounds = np.cumsum([t.shape[ax] for t in ts])[:-1]

    def backward(g):
        parts = np.split(g, bounds, axis=ax)
        return tuple(_contig(p) if t.requires_grad else None
                     for p, t in zip(parts, ts))
    return make_result(out, tuple(ts), backward, "CatBackward")


def stack(tensors, dim=0) -> Tensor:
    ts = [as_tensor(t) for t in tensors]
    if not ts:
        raise ValueError("stack: expected a non-empty list of tensors")
    shapes = {t.shape for t in ts}
    if len(shapes) != 1:
        raise ValueError(f"stack: all tensors must have the same shape, got "
                         f"{[t.shape for t in ts]}")
    out = np.stack([t.data for t in ts], axis=dim)
    ax = dim % out.ndim

    def backward(g):
        return tuple(_contig(np.take(g, i, axis=ax)) if t.requires_grad else None
                     for i, t in enumerate(ts))
    return make_result(out, tuple(ts), backward, "StackBackward")


# ---------------------------------------------------------------------------------------------
# Creation

def tensor(data, dtype=None, requires_grad=False) -> Tensor:
    """A new tensor holding a copy of data (float data becomes float32 unless dtype is given)."""
    arr = _as_array(data, dtype)
    if isinstance(data, (np.ndarray, Tensor)) and np.shares_memory(arr, np.asarray(
            data.data if isinstance(data, Tensor) else data)):
        arr = arr.copy()
    return Tensor(arr, requires_grad=requires_grad)


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def zeros(*shape, dtype=np.float32, requires_grad=False):
    return Tensor(np.zeros(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def ones(*shape, dtype=np.float32, requires_grad=False):
    return Tensor(np.ones(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def full(shape, value, dtype=np.float32, requires_grad=False):
    return Tensor(np.full(shape, value, dtype=dtype), requires_grad=requires_grad)


def _like(t):
    return t.data if isinstance(t, Tensor) else _as_array(t)  # a Tensor keeps its dtype


def zeros_like(t, requires_grad=False):
    return Tensor(np.zeros_like(_like(t)), requires_grad=requires_grad)


def ones_like(t, requires_grad=False):
    return Tensor(np.ones_like(_like(t)), requires_grad=requires_grad)


def randn(*shape, dtype=np.float32, requires_grad=False):
    from ._random import default_generator
    return Tensor(default_generator().standard_normal(_shape(shape)).astype(dtype),
                  requires_grad=requires_grad)


def rand(*shape, dtype=np.float32, requires_grad=False):
    from ._random import default_generator
    return Tensor(default_generator().random(_shape(shape)).astype(dtype),
                  requires_grad=requires_grad)


def arange(*args, dtype=None):
    return Tensor(np.arange(*args, dtype=dtype))


_ = no_grad  # re-exported by ember/__init__
