"""Reverse-mode autodiff: graph nodes, grad mode, and the iterative backward walk.

Every differentiable op (in ``ember.functional`` and the Tensor operators) produces its output
with :func:`make_result`, handing over the inputs and a ``backward(grad) -> tuple`` closure that
sits right beside the forward code. ``backward`` walks the graph in topological order without
recursion, so graphs thousands of nodes deep (long RNN unrolls, deep residual stacks) are fine.
"""
from __future__ import annotations

import sys
import threading

import numpy as np

__all__ = ["no_grad", "enable_grad", "is_grad_enabled", "set_grad_enabled", "Node"]

class _GradState(threading.local):
    # A class default, so reading it never goes through getattr's AttributeError path (which
    # cost ~1 us on every op before any no_grad block had run on the thread).
    enabled = True


_state = _GradState()


def is_grad_enabled() -> bool:
    return _state.enabled


class _GradMode:
    """Context manager and decorator that sets grad mode on entry and restores it on exit."""

    mode = True

    def __enter__(self):
        self.prev = _state.enabled
        _state.enabled = self.mode
        return self

    def __exit__(self, *exc):
        _state.enabled = self.prev
        return False

    def __call__(self, fn):
        import functools

        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            # a fresh context per call: the decorated function may be reentrant or threaded
            with _GradContext(mode):
                return fn(*args, **kwargs)

        return wrapper


class _GradContext(_GradMode):
    def __init__(self, mode):
        self.mode = bool(mode)


class set_grad_enabled(_GradMode):
    """Turns graph recording on or off: at once when called (``em.set_grad_enabled(False)``, as
    in PyTorch), for a block (``with em.set_grad_enabled(False):``, restored on exit), or for a
    function (``@em.set_grad_enabled(False)``)."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self.prev = is_grad_enabled()
        _state.enabled = self.mode

    def __enter__(self):
        # self.prev is the mode from before the call that made this object
        _state.enabled = self.mode
        return self

    def __call__(self, fn):
        _state.enabled = self.prev  # used as a decorator: no global switch
        return super().__call__(fn)


class _FixedMode(_GradMode):
    """A mode fixed by the class; usable as ``with cls():``, ``@cls()`` or ``@cls``."""

    # No __init__: object.__init__ accepts the fn argument because __new__ is overridden, and a
    # Python-level __init__ would add ~0.2 us to every ``with em.no_grad():``.
    def __new__(cls, fn=None):
        self = object.__new__(cls)
        if fn is not None and callable(fn):
            return self(fn)  # @em.no_grad without parentheses
        return self


class no_grad(_FixedMode):
    """``with em.no_grad(): ...`` -- ops inside record no graph (inference, weight updates).
    Also a decorator, with or without parentheses."""

    mode = False


class enable_grad(_FixedMode):
    """Turns graph recording back on inside a ``no_grad`` block (or decorated function)."""

    mode = True


class Node:
    """How a non-leaf tensor was made: its inputs and the closure mapping grad_out -> grad_inputs.

    ``backward(g)`` returns one entry per input: an ndarray shaped like that input, or None when
    the input needs no gradient (or the op accumulated it straight into a leaf's ``.grad``).

    g is C-contiguous unless ``strided`` is set: then it may be any view, e.g. the read-only
    stride-0 broadcast that a full sum's backward hands down, which the elementwise kernels take
    as one value instead of n copies.
    """

    __slots__ = ("inputs", "backward", "name", "strided")

    def __init__(self, inputs, backward, name, strided=False):
        self.inputs = inputs
        self.backward = backward
        self.name = name
        self.strided = strided


def _toposort(root):
    """Tensors reachable from root that need grad, inputs before outputs (iterative DFS)."""
    order = []
    seen = {id(root)}
    stack = [(root, iter(root._node.inputs if root._node is not None else ()))]
    while stack:
        t, it = stack[-1]
        advanced = False
        for inp in it:
            if inp is None or not inp.requires_grad or id(inp) in seen:
                continue
            seen.add(id(inp))
            stack.append((inp, iter(inp._node.inputs if inp._node is not None else ())))
            advanced = True
            break
        if not advanced:
            stack.pop()
            order.append(t)
    return order


def accumulate_grad(t, g, owned=False):
    """Adds g into leaf t's .grad. The first time, .grad takes g itself when the caller owns it
    (no other reference, not a view), else an owned copy."""
    from .tensor import Tensor

    if g.shape != t.data.shape:
        g = np.broadcast_to(g, t.data.shape)
        owned = False
    if t.grad is None:
        if owned and g.dtype == t.data.dtype and g.flags.c_contiguous and g.flags.writeable:
            t.grad = Tensor(g)
        else:
            t.grad = Tensor(np.array(g, dtype=t.data.dtype, copy=True, order="C"))
    else:
        np.add(t.grad.data, g, out=t.grad.data)


def run_backward(root, grad, retain_graph=False):
    order = _toposort(root)
    grads = {id(root): grad}
    for t in reversed(order):
        g = grads.pop(id(t), None)
        if g is None:
            continue
        node = t._node
        if node is None:
            # Steal g when nothing else refers to it (this frame's name + getrefcount's
            # argument) and it owns its memory: saves a copy of every leaf gradient per step.
            # Counted before the call: inside the call expression g is already pushed as an
            # argument, which made the count 3 and the steal never happen.
            owned = g.base is None and sys.getrefcount(g) <= 2
            accumulate_grad(t, g, owned=owned)
            continue
        if t._retain_grad:
            accumulate_grad(t, g)
        if not node.strided and not g.flags.c_contiguous:
            g = np.asarray(g, order="C")
        in_grads = node.backward(g)
        for inp, gi in zip(node.inputs, in_grads):
            if gi is None or inp is None or not inp.requires_grad:
                continue
            if gi.dtype != inp.data.dtype:
                # a wider op downstream (float32 * float64 -> float64) hands back a wider grad;
                # each op's backward gets grads in its own input's dtype, as in PyTorch
                gi = gi.astype(inp.data.dtype)
            k = id(inp)
            prev = grads.get(k)
            # A fresh sum, never in place: gi may alias another op's gradient buffer.
            grads[k] = gi if prev is None else prev + gi
        # Let go of this node's gradients here, so that the grads dict holds the only reference
        # and a leaf below can take its gradient array without a copy (the refcount test above).
        in_grads = gi = prev = None
    if not retain_graph:
        # Drop each closure and the input edges (the activations they hold) so that memory is
        # returned now, not when the output tensor is next reassigned; a second backward through
        # a freed node still raises.
        for t in order:
            if t._node is not None and t._node.backward is not _freed_backward:
                t._node = Node((), _freed_backward, t._node.name)


def _freed_backward(g):
    raise RuntimeError(
        "Trying to backward through the graph a second time: its saved buffers were freed. "
        "Pass retain_graph=True to the first backward() if you need to walk it again."
    )
