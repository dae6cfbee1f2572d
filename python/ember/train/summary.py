"""model.summary(): a table of layers, output shapes and parameter counts (trainable vs frozen).

Output shapes come from one dummy forward pass (zeros, batch of 1, eval mode, no_grad) during
which every submodule's ``forward`` is wrapped on the instance to record what it returns; the
wrappers are removed afterwards and the modules' train/eval modes restored. No hooks API needed.
"""
from __future__ import annotations

import numpy as np

from ..autograd import no_grad
from ..tensor import Tensor

__all__ = ["summary"]


def _shape_str(out):
    if isinstance(out, Tensor) or isinstance(out, np.ndarray):
        return "(None, " + ", ".join(str(s) for s in out.shape[1:]) + ")" if out.ndim > 1 \
            else f"(None,)" if out.ndim == 1 else "()"
    if isinstance(out, (tuple, list)):
        return "[" + ", ".join(_shape_str(o) for o in out) + "]"
    if out is None:
        return "-"
    return type(out).__name__


def _trace_shapes(model, input_shape, dtype):
    """Runs one forward on zeros of shape (1, *input_shape); returns {id(module): shape str}."""
    shapes = {}
    wrapped = []
    for _, m in model.named_modules():
        if "forward" in m.__dict__:
            continue  # already replaced on the instance by the user: leave it alone

        def make(mod, fwd):
            def forward(*args, **kwargs):
                out = fwd(*args, **kwargs)
                key = id(mod)
                shapes[key] = "multiple" if key in shapes and shapes[key] != _shape_str(out) \
                    else _shape_str(out)
                return out
            return forward

        object.__setattr__(m, "forward", make(m, m.forward))
        wrapped.append(m)
    modes = [(m, m.training) for m in model.modules()]
    shapes_in = input_shape if isinstance(input_shape, list) else [input_shape]
    inputs = [np.zeros((1,) + tuple(int(s) for s in shp), dtype=dtype) for shp in shapes_in]
    try:
        model.eval()
        with no_grad():
            model(*inputs)
    finally:
        for m in wrapped:
            object.__delattr__(m, "forward")
        for m, t in modes:
            object.__setattr__(m, "training", t)
    return shapes


def summary(model, input_shape=None, *, dtype=np.float32, print_fn=print) -> str:
    """Prints and returns a table of ``model``'s layers.

    ``input_shape``: one sample's shape without the batch dimension (``(1, 28, 28)``), or a
    list of them for a model with several inputs; when given, a dummy forward pass fills the
    "Output shape" column (``None`` stands for the batch dimension). Params per row are the
    module's own (not its children's), so the column adds up to the total. Frozen parameters
    (``requires_grad=False``) are counted as non-trainable.
    """
    shapes = _trace_shapes(model, input_shape, dtype) if input_shape is not None else {}
    rows = []
    for name, m in model.named_modules():
        if m is model and list(model.children()):
            continue  # the container itself: its rows are its children
        depth = name.count(".") + (1 if name else 0) if m is not model else 0
        own = sum(p.data.size for p in m.parameters(recurse=False))
        frozen = sum(p.data.size for p in m.parameters(recurse=False) if not p.requires_grad)
        label = ("  " * max(depth - 1, 0)) + (name or type(m).__name__) + \
            f" ({type(m).__name__})"
        if frozen and frozen == own:
            label += " [frozen]"
        elif frozen:
            label += " [partly frozen]"
        rows.append((label, shapes.get(id(m), "?" if input_shape is not None else ""),
                     f"{own:,}"))
    total = sum(p.data.size for p in model.parameters())
    trainable = sum(p.data.size for p in model.parameters() if p.requires_grad)
    headers = ("Layer (type)", "Output shape", "Param #")
    show_shape = input_shape is not None
    cols = [0, 1, 2] if show_shape else [0, 2]
    widths = {i: max([len(headers[i])] + [len(r[i]) for r in rows]) for i in cols}

    def line(cells):
        out = []
        for i in cols:
            out.append(cells[i].rjust(widths[i]) if i == 2 else cells[i].ljust(widths[i]))
        return "  ".join(out).rstrip()

    width = sum(widths.values()) + 2 * (len(cols) - 1)
    title = f'Model: "{type(model).__name__}"'
    lines = [title, "=" * width, line(headers), "=" * width]
    lines += [line(r) for r in rows]
    lines += ["=" * width,
              f"Total params: {total:,}",
              f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}"]
    n_buf = sum(b.data.size for b in model.buffers())
    if n_buf:
        lines.append(f"Buffers (not counted above): {n_buf:,}")
    lines.append("=" * width)
    text = "\n".join(lines)
    if print_fn is not None:
        print_fn(text)
    return text
