"""embedding: a row gather forward and a scatter-add backward (C++).

The backward adds the output gradient into only the looked-up rows of ``weight.grad`` (rows equal
to padding_idx get nothing); no dense (num_embeddings, dim) temporary is made for a leaf weight.
"""
import numpy as np

from .. import _core
from ..tensor import Tensor, as_tensor, make_result
from ._norm import _grad_buffer

__all__ = ["embedding"]


def embedding(input, weight, padding_idx=None) -> Tensor:
    """weight[input]: input holds integer ids of any shape; output is input.shape + (dim,).

    Ids outside [0, num_embeddings) raise IndexError. padding_idx (may be negative, counted from
    the end) marks a row that receives no gradient.
    """
    w = as_tensor(weight)
    ids = input.data if isinstance(input, Tensor) else np.asarray(input)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"embedding: input must hold integer ids, got dtype {ids.dtype}")
    if w.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got "
                         f"shape {w.shape}")
    V = w.shape[0]
    pad = -1
    if padding_idx is not None:
        pad = int(padding_idx)
        if not -V <= pad < V:
            raise ValueError(f"embedding: padding_idx {padding_idx} must be within "
                             f"num_embeddings ({V})")
        pad %= V
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    out = _core.embedding_forward(w.data, ids)

    def backward(g):
        dw, gw = _grad_buffer(w)
        if dw is not None:
            _core.embedding_backward(dw, np.ascontiguousarray(g, dtype=w.data.dtype), ids, pad)
        return (gw,)

    return make_result(out, (w,), backward, "EmbeddingBackward")
