import numpy as np

from ... import functional as F
from ...tensor import Tensor
from .. import init
from ..parameter import Parameter
from .module import Module

__all__ = ["Embedding"]


class Embedding(Module):
    """A lookup table: ids (any integer shape) -> rows of ``weight`` (num_embeddings,
    embedding_dim), initialized N(0, 1) like PyTorch. The backward adds gradient into only the
    looked-up rows; the ``padding_idx`` row is zero-initialized and never receives gradient."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None,
                 _weight=None, _freeze: bool = False, dtype=np.float32):
        super().__init__()
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        if padding_idx is not None:
            padding_idx = int(padding_idx)
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} must be within "
                                 f"num_embeddings ({self.num_embeddings})")
            padding_idx %= self.num_embeddings
        self.padding_idx = padding_idx
        if _weight is None:
            self.weight = Parameter(np.empty((self.num_embeddings, self.embedding_dim),
                                             dtype=dtype), requires_grad=not _freeze)
            self.reset_parameters()
        else:
            w = np.array(_weight.data if isinstance(_weight, Tensor) else
                         (_weight.detach().cpu().numpy() if hasattr(_weight, "detach")
                          else _weight), copy=True)
            if w.dtype.kind != "f":
                w = w.astype(dtype)
            if w.shape != (self.num_embeddings, self.embedding_dim):
                raise ValueError(f"Embedding: _weight shape {w.shape} does not match "
                                 f"({self.num_embeddings}, {self.embedding_dim})")
            self.weight = Parameter(np.ascontiguousarray(w), requires_grad=not _freeze)

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, ids):
        return F.embedding(ids, self.weight, self.padding_idx)

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx=None):
        """An Embedding holding a copy of ``embeddings`` (2-D); frozen unless freeze=False."""
        e = embeddings.data if isinstance(embeddings, Tensor) else embeddings
        if hasattr(e, "detach"):
            e = e.detach().cpu().numpy()
        e = np.asarray(e)
        if e.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D, got shape "
                             f"{e.shape}")
        return cls(e.shape[0], e.shape[1], padding_idx=padding_idx, _weight=e, _freeze=freeze)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        return s
