"""Reverse-mode autodiff: graph nodes, grad mode, and the iterative backward walk.

Every differentiable op (in ``ember.functional`` and the Tensor operators) produces its output
with :func:`make_result`, handing over the inputs and a ``backward(grad) -> tuple`` closure that
sits right beside the forward code. ``backward`` walks the graph in topological order without
recursion, so graphs thousands of nodes deep (long RNN unrolls, deep residual stacks) are fine.
"""
from __future__ import annotations

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


class set_grad_enabled:
    """Context manager (and decorator) that turns graph recording on or off."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self.prev = None

    def __enter__(self):
        self.prev = is_grad_enabled()
        _state.enabled = self.mode
        return self

    def __exit__(self, *exc):
        _state.enabled = self.prev
        return False

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__(self.mode):
                return fn(*args, **kwargs)

        return wrapper


class no_grad(set_grad_enabled):
    """``with em.no_grad(): ...`` -- ops inside record no graph (inference, weight updates)."""

    def __init__(self):
        super().__init__(False)


class enable_grad(set_grad_enabled):
    def __init__(self):
        super().__init__(True)


class Node:
    """How a non-leaf tensor was made: its inputs and the closure mapping grad_out -> grad_inputs.

    ``backward(g)`` returns one entry per input: an ndarray shaped like that input, or None when
    the input needs no gradient (or the op accumulated it straight into a leaf's ``.grad``).
    """

    __slots__ = ("inputs", "backward", "name")

    def __init__(self, inputs, backward, name):
        self.inputs = inputs
        self.backward = backward
        self.name = name


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


def accumulate_grad(t, g):
    """Adds g into leaf t's .grad, allocating it (as an owned copy) the first time."""
    from .tensor import Tensor

    if g.shape != t.data.shape:
        g = np.broadcast_to(g, t.data.shape)
    if t.grad is None:
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
            accumulate_grad(t, g)
            continue
        if t._retain_grad:
            accumulate_grad(t, g)
        in_grads = node.backward(g)
        for inp, gi in zip(node.inputs, in_grads):
            if gi is None or inp is None or not inp.requires_grad:
                continue
            k = id(inp)
            prev = grads.get(k)
            # A fresh sum, never in place: gi may alias another op's gradient buffer.
            grads[k] = gi if prev is None else prev + gi
    if not retain_graph:
        # Drop each closure (and the activations it saved) so memory is returned now.
        for t in order:
            if t._node is not None and t._node.backward is not _freed_backward:
                t._node = Node(t._node.inputs, _freed_backward, t._node.name)


def _freed_backward(g):
    raise RuntimeError(
        "Trying to backward through the graph a second time: its saved buffers were freed. "
        "Pass retain_graph=True to the first backward() if you need to walk it again."
    )
