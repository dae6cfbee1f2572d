"""Datasets: the protocol, ArrayDataset (in-memory arrays), Subset, random_split, train_test_split.

A dataset is anything with ``__len__`` and ``__getitem__(i)``. The DataLoader asks for a whole
batch at once through ``get_batch(indices)`` when a dataset has it (ArrayDataset and Subset do:
one numpy gather per array, no per-sample Python objects); any other dataset is read sample by
sample and the samples are stacked.
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["Dataset", "ArrayDataset", "TensorDataset", "Subset", "random_split",
           "train_test_split"]


def _to_array(a, name: str) -> np.ndarray:
    """One array of an ArrayDataset: floats as float32 (ember's compute dtype), ints as int64."""
    from ..tensor import Tensor

    if isinstance(a, Tensor):
        a = a.data
    a = np.asarray(a)
    if a.ndim == 0:
        raise ValueError(f"{name}: arrays need a first (sample) dimension, got a scalar")
    if a.dtype == object:
        raise TypeError(f"{name}: cannot hold an object array; give numeric arrays")
    if a.dtype.kind == "f" and a.dtype != np.float32:
        a = a.astype(np.float32)
    elif a.dtype.kind in "iu" and a.dtype != np.int64:
        a = a.astype(np.int64)
    return np.ascontiguousarray(a)


class Dataset:
    """Base class (and protocol) for datasets: ``__len__`` and ``__getitem__(i)``.

    Subclasses may add ``get_batch(indices) -> tuple of arrays`` to hand the DataLoader a whole
    batch at once; the default reads samples one by one and stacks them.
    """

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def get_batch(self, indices):
        if isinstance(indices, slice):
            indices = range(*indices.indices(len(self)))
        return _stack_samples([self[int(i)] for i in indices])


def _stack_samples(samples):
    if not samples:
        raise ValueError("get_batch: empty batch")
    first = samples[0]
    if isinstance(first, (tuple, list)):
        return tuple(np.stack([np.asarray(s[k]) for s in samples]) for k in range(len(first)))
    return (np.stack([np.asarray(s) for s in samples]),)


def get_batch(dataset, indices) -> tuple:
    """A batch of ``dataset`` as a tuple of arrays, by the fastest route the dataset offers."""
    gb = getattr(dataset, "get_batch", None)
    if gb is not None:
        out = gb(indices)
        return out if isinstance(out, tuple) else tuple(out) if isinstance(out, list) \
            else (out,)
    return _stack_samples([dataset[int(i)] for i in indices])


class ArrayDataset(Dataset):
    """Samples are rows of the given arrays: ``ArrayDataset(X, y)[i] == (X[i], y[i])``.

    Float arrays are stored as float32 and integer arrays as int64 (converted once, here);
    arrays already in those dtypes are kept without copying. All arrays must have the same
    first dimension.
    """

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("ArrayDataset: give at least one array")
        self.arrays = tuple(_to_array(a, "ArrayDataset") for a in arrays)
        n = len(self.arrays[0])
        lens = [len(a) for a in self.arrays]
        if any(m != n for m in lens):
            raise ValueError(f"ArrayDataset: all arrays need the same number of samples (first "
                             f"dimension), got {lens}")

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, index):
        return tuple(a[index] for a in self.arrays)

    def get_batch(self, indices):
        if isinstance(indices, slice):
            return tuple(a[indices] for a in self.arrays)  # views: no copy
        idx = np.asarray(indices, dtype=np.int64)
        return tuple(np.take(a, idx, axis=0) for a in self.arrays)

    def __repr__(self):
        shapes = ", ".join(f"{a.shape} {a.dtype}" for a in self.arrays)
        return f"ArrayDataset({len(self)} samples: {shapes})"


TensorDataset = ArrayDataset  # PyTorch's name for the same thing


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices`` (in that order)."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]

    def get_batch(self, indices):
        if isinstance(indices, slice):
            return get_batch(self.dataset, self.indices[indices])
        return get_batch(self.dataset, self.indices[np.asarray(indices, dtype=np.int64)])


def _rng(seed):
    if seed is None:
        from .._random import default_generator
        return default_generator()
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(int(seed))


def random_split(dataset, lengths, seed=None):
    """Splits ``dataset`` into non-overlapping random Subsets of the given lengths.

    ``lengths`` are counts summing to ``len(dataset)`` or fractions summing to 1 (then any
    remainder samples go round-robin to the first splits, as in PyTorch). ``seed=None`` draws
    from ember's generator (``em.manual_seed``).
    """
    n = len(dataset)
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: lengths is empty")
    if all(isinstance(x, numbers.Integral) for x in lengths):
        counts = [int(x) for x in lengths]
        if any(c < 0 for c in counts):
            raise ValueError(f"random_split: lengths must be >= 0, got {counts}")
        if sum(counts) != n:
            raise ValueError(f"random_split: lengths {counts} sum to {sum(counts)}, but the "
                             f"dataset has {n} samples")
    else:
        fracs = [float(x) for x in lengths]
        if any(f < 0 or f > 1 for f in fracs) or abs(sum(fracs) - 1) > 1e-6:
            raise ValueError(f"random_split: fractions must lie in [0, 1] and sum to 1, got "
                             f"{lengths}")
        counts = [int(np.floor(n * f)) for f in fracs]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
    perm = _rng(seed).permutation(n)
    out, start = [], 0
    for c in counts:
        out.append(Subset(dataset, perm[start:start + c]))
        start += c
    return out


def _n_test(test_size, n):
    if isinstance(test_size, numbers.Integral):
        k = int(test_size)
        if not 0 < k < n:
            raise ValueError(f"train_test_split: test_size={k} must be between 1 and "
                             f"{n - 1} for {n} samples")
        return k
    f = float(test_size)
    if not 0.0 < f < 1.0:
        raise ValueError(f"train_test_split: a fractional test_size must lie in (0, 1), got {f}")
    k = int(np.ceil(f * n))
    if not 0 < k < n:
        raise ValueError(f"train_test_split: test_size={f} leaves an empty split for {n} "
                         f"samples")
    return k


def train_test_split(*arrays, test_size=0.25, seed=None, stratify=None, shuffle=True):
    """Splits arrays into train and test parts: ``X_tr, X_te, y_tr, y_te = train_test_split(X, y)``.

    Same output order as scikit-learn. ``test_size`` is a fraction (rounded up) or a count.
    ``stratify``: class labels (usually ``y``); each class then keeps its proportion in both
    parts (largest-remainder allocation). ``seed=None`` draws from ember's generator.
    """
    if not arrays:
        raise ValueError("train_test_split: give at least one array")
    from ..tensor import Tensor
    arrs = [np.asarray(a.data if isinstance(a, Tensor) else a) for a in arrays]
    n = len(arrs[0])
    if any(len(a) != n for a in arrs):
        raise ValueError(f"train_test_split: arrays have different lengths "
                         f"{[len(a) for a in arrs]}")
    k = _n_test(test_size, n)
    rng = _rng(seed)
    if stratify is None:
        perm = rng.permutation(n) if shuffle else np.arange(n)
        test_idx, train_idx = perm[n - k:], perm[:n - k]
    else:
        if not shuffle:
            raise ValueError("train_test_split: stratify needs shuffle=True")
        labels = np.asarray(stratify)
        if len(labels) != n:
            raise ValueError(f"train_test_split: stratify has {len(labels)} labels for {n} "
                             f"samples")
        classes, inv = np.unique(labels, return_inverse=True, axis=0 if labels.ndim > 1
                                 else None)
        inv = inv.reshape(-1)
        counts = np.bincount(inv, minlength=len(classes))
        if counts.min() < 2:
            raise ValueError("train_test_split: with stratify every class needs at least 2 "
                             f"samples; class {classes[np.argmin(counts)]!r} has "
                             f"{counts.min()}")
        exact = counts * (k / n)
        take = np.floor(exact).astype(np.int64)
        rest = k - int(take.sum())
        if rest > 0:
            order = np.argsort(-(exact - take), kind="stable")
            take[order[:rest]] += 1
        test_parts, train_parts = [], []
        for c in range(len(classes)):
            idx = rng.permutation(np.flatnonzero(inv == c))
            test_parts.append(idx[:take[c]])
            train_parts.append(idx[take[c]:])
        test_idx = rng.permutation(np.concatenate(test_parts))
        train_idx = rng.permutation(np.concatenate(train_parts))
    out = []
    for a in arrs:
        out.append(a[train_idx])
        out.append(a[test_idx])
    return out
