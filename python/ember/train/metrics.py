"""Metrics (``em.metrics``): accuracy, top-k accuracy, confusion matrix, MAE, MSE.

Functions take ``(y_pred, y_true)`` -- prediction first, like ember's (and PyTorch's) losses --
as ndarrays, Tensors or lists, and return Python floats. ``y_pred`` may be

- scores/logits/probabilities of shape ``(N, C)`` (or ``(N, ..., C)``): the predicted class is
  the argmax over the last axis;
- one score per sample, shape ``(N,)`` or ``(N, 1)``: a binary prediction, positive when the
  score is above ``threshold`` (0.5 for probabilities; use 0.0 for logits);
- integer class ids.

``y_true`` holds class ids (or a one-hot / probability table shaped like ``y_pred``).

For ``fit``/``evaluate`` the same metrics exist as stateful objects (``Accuracy()`` ...) that
accumulate over batches, so an epoch's accuracy is exact, not an average of batch averages.
"""
from __future__ import annotations

import re

import numpy as np

__all__ = ["accuracy", "top_k_accuracy", "confusion_matrix", "ConfusionMatrix", "mae", "mse",
           "Metric", "Accuracy", "TopKAccuracy", "MeanAbsoluteError", "MeanSquaredError",
           "MeanMetric", "get"]


def _arr(x) -> np.ndarray:
    from ..tensor import Tensor

    if isinstance(x, Tensor):
        return x.data
    if hasattr(x, "detach") and hasattr(x, "numpy"):  # a torch tensor
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _classes(y_pred, y_true, threshold=0.5):
    """Predicted and true class ids with matching shapes."""
    p, t = _arr(y_pred), _arr(y_true)
    if p.dtype.kind in "iub":
        pc = p.astype(np.int64)
    elif p.ndim >= 2 and p.shape[-1] > 1:
        pc = p.argmax(axis=-1)
    else:
        pc = (p > threshold).astype(np.int64)
        if p.ndim >= 2 and p.shape[-1] == 1:
            pc = pc[..., 0]
    if t.ndim == pc.ndim + 1 and t.shape[-1] > 1 and t.shape[:-1] == pc.shape:
        tc = t.argmax(axis=-1)  # one-hot or soft labels
    else:
        if t.ndim == pc.ndim + 1 and t.shape[-1] == 1:
            t = t[..., 0]
        tc = np.rint(t).astype(np.int64) if t.dtype.kind == "f" else t.astype(np.int64)
    if pc.shape != tc.shape:
        raise ValueError(f"metrics: predictions of shape {p.shape} do not match targets of "
                         f"shape {_arr(y_true).shape}")
    return pc, tc


def accuracy(y_pred, y_true, threshold: float = 0.5) -> float:
    """Fraction of samples whose predicted class equals the true class."""
    pc, tc = _classes(y_pred, y_true, threshold)
    return float((pc == tc).mean()) if pc.size else float("nan")


def _topk_hits(y_pred, y_true, k):
    p, t = _arr(y_pred), _arr(y_true)
    if p.ndim < 2:
        raise ValueError(f"top_k_accuracy: needs class scores of shape (N, C), got {p.shape}")
    t = t.astype(np.int64).reshape(p.shape[:-1])
    c = p.shape[-1]
    if k >= c:
        return np.ones(t.shape, dtype=bool)
    score_true = np.take_along_axis(p, t[..., None], axis=-1)
    # Rank of the true class = how many classes score strictly higher (ties count as hits).
    higher = (p > score_true).sum(axis=-1)
    return higher < k


def top_k_accuracy(y_pred, y_true, k: int = 5) -> float:
    """Fraction of samples whose true class is among the k highest scores."""
    if int(k) < 1:
        raise ValueError(f"top_k_accuracy: k must be >= 1, got {k}")
    hits = _topk_hits(y_pred, y_true, int(k))
    return float(hits.mean()) if hits.size else float("nan")


def mae(y_pred, y_true) -> float:
    """Mean absolute error over all elements."""
    p, t = _arr(y_pred), _arr(y_true)
    return float(np.abs(p - t.reshape(p.shape) if t.size == p.size else p - t).mean())


def mse(y_pred, y_true) -> float:
    """Mean squared error over all elements."""
    p, t = _arr(y_pred), _arr(y_true)
    d = p - (t.reshape(p.shape) if t.size == p.size else t)
    return float((d * d).mean())


class ConfusionMatrix:
    """The course's predicted-vs-actual table: ``matrix[i, j]`` counts the samples *predicted*
    as class i whose *actual* class is j (rows: predicted, columns: actual; ``.T`` gives
    scikit-learn's actual-by-predicted layout). ``print(cm)`` shows the labeled table."""

    def __init__(self, matrix, labels=None):
        self.matrix = np.asarray(matrix, dtype=np.int64)
        n = self.matrix.shape[0]
        self.labels = list(labels) if labels is not None else list(range(n))

    @property
    def T(self):
        return self.matrix.T

    def __array__(self, dtype=None, copy=None):
        return self.matrix if dtype is None else self.matrix.astype(dtype)

    @property
    def accuracy(self) -> float:
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else float("nan")

    def precision(self) -> np.ndarray:
        """Per class: correct / predicted as that class (row sums)."""
        rows = self.matrix.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(self.matrix) / rows

    def recall(self) -> np.ndarray:
        """Per class: correct / actually that class (column sums)."""
        cols = self.matrix.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(self.matrix) / cols

    def __str__(self):
        labels = [str(x) for x in self.labels]
        corner = "pred \\ actual"
        w = max([len(str(self.matrix.max() if self.matrix.size else 0))]
                + [len(s) for s in labels] + [5])
        first = max(len(corner), max((len(s) for s in labels), default=0))
        lines = [corner.ljust(first) + " | " + " ".join(s.rjust(w) for s in labels)
                 + " | " + "total".rjust(w)]
        lines.append("-" * len(lines[0]))
        for i, s in enumerate(labels):
            row = self.matrix[i]
            lines.append(s.ljust(first) + " | " + " ".join(str(v).rjust(w) for v in row)
                         + " | " + str(row.sum()).rjust(w))
        lines.append("-" * len(lines[0]))
        lines.append("total".ljust(first) + " | "
                     + " ".join(str(v).rjust(w) for v in self.matrix.sum(axis=0))
                     + " | " + str(self.matrix.sum()).rjust(w))
        lines.append(f"accuracy {self.accuracy:.4f}")
        return "\n".join(lines)

    def __repr__(self):
        return f"ConfusionMatrix(rows=predicted, cols=actual,\n{self.matrix!r})"


def confusion_matrix(y_pred, y_true, num_classes: int | None = None, labels=None,
                     threshold: float = 0.5) -> ConfusionMatrix:
    """Counts of (predicted, actual) class pairs as a :class:`ConfusionMatrix`.

    ``num_classes`` defaults to the largest class id seen + 1 (2 for binary predictions);
    ``labels``: names shown in the printed table.
    """
    pc, tc = _classes(y_pred, y_true, threshold)
    pc, tc = pc.reshape(-1), tc.reshape(-1)
    if pc.size and (pc.min() < 0 or tc.min() < 0):
        raise ValueError("confusion_matrix: class ids must be >= 0")
    seen = int(max(pc.max(initial=-1), tc.max(initial=-1))) + 1
    n = int(num_classes) if num_classes is not None else (
        len(labels) if labels is not None else max(seen, 2 if pc.size else 0))
    if seen > n:
        raise ValueError(f"confusion_matrix: class id {seen - 1} is out of range for "
                         f"num_classes={n}")
    if labels is not None and len(labels) != n:
        raise ValueError(f"confusion_matrix: {len(labels)} labels for {n} classes")
    m = np.bincount(pc * n + tc, minlength=n * n).reshape(n, n)
    return ConfusionMatrix(m, labels)


# ---------------------------------------------------------------------------------------------
# Stateful metrics for fit / evaluate

class Metric:
    """Accumulates a metric over batches: ``update(y_pred, y_true)``, ``result()``, ``reset()``."""

    name = "metric"

    def __init__(self):
        self.reset()

    def reset(self):
        self._total = 0.0
        self._count = 0

    def update(self, y_pred, y_true):
        raise NotImplementedError

    def result(self) -> float:
        return self._total / self._count if self._count else float("nan")


class Accuracy(Metric):
    name = "accuracy"

    def __init__(self, threshold: float = 0.5, name: str = "accuracy"):
        self.threshold = threshold
        self.name = name
        super().__init__()

    def update(self, y_pred, y_true):
        pc, tc = _classes(y_pred, y_true, self.threshold)
        self._total += int((pc == tc).sum())
        self._count += pc.size


class TopKAccuracy(Metric):
    def __init__(self, k: int = 5, name: str | None = None):
        self.k = int(k)
        if self.k < 1:
            raise ValueError(f"TopKAccuracy: k must be >= 1, got {k}")
        self.name = name or f"top{self.k}_accuracy"
        super().__init__()

    def update(self, y_pred, y_true):
        hits = _topk_hits(y_pred, y_true, self.k)
        self._total += int(hits.sum())
        self._count += hits.size


class MeanAbsoluteError(Metric):
    name = "mae"

    def update(self, y_pred, y_true):
        p = _arr(y_pred)
        t = _arr(y_true)
        t = t.reshape(p.shape) if t.size == p.size else t
        d = np.abs(p - t)
        self._total += float(d.sum(dtype=np.float64))
        self._count += d.size


class MeanSquaredError(Metric):
    name = "mse"

    def update(self, y_pred, y_true):
        p = _arr(y_pred)
        t = _arr(y_true)
        t = t.reshape(p.shape) if t.size == p.size else t
        d = p - t
        self._total += float((d * d).sum(dtype=np.float64))
        self._count += d.size


class MeanMetric(Metric):
    """Wraps any ``fn(y_pred, y_true) -> float``, averaged over samples (batch-size weighted)."""

    def __init__(self, fn, name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "metric")
        super().__init__()

    def update(self, y_pred, y_true):
        n = len(_arr(y_true))
        self._total += float(self.fn(y_pred, y_true)) * n
        self._count += n


_TOPK = re.compile(r"^top_?(\d+)(_accuracy)?$")


def get(metric, logits: bool = False) -> Metric:
    """A fresh stateful Metric for a name, a Metric instance, or a callable.

    Names: ``"accuracy"``/``"acc"``, ``"top5"``/``"top_5_accuracy"``/``"top_k_accuracy"``
    (k=5), ``"mae"``, ``"mse"``. ``logits=True`` makes binary accuracy threshold at 0 instead
    of 0.5 (``fit`` sets it when the loss takes logits, e.g. BCEWithLogitsLoss).
    """
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str):
        key = metric.lower()
        if key in ("accuracy", "acc"):
            return Accuracy(0.0 if logits else 0.5, name=metric)
        if key == "top_k_accuracy":
            return TopKAccuracy(5, name=metric)
        m = _TOPK.match(key)
        if m:
            return TopKAccuracy(int(m.group(1)), name=metric)
        if key in ("mae", "mean_absolute_error"):
            m2 = MeanAbsoluteError()
            m2.name = metric
            return m2
        if key in ("mse", "mean_squared_error"):
            m2 = MeanSquaredError()
            m2.name = metric
            return m2
        raise ValueError(f"unknown metric {metric!r}; known: accuracy, top_k_accuracy, topK, "
                         f"mae, mse, or pass a callable fn(y_pred, y_true)")
    if callable(metric):
        return MeanMetric(metric)
    raise TypeError(f"a metric must be a name, a Metric or a callable, got "
                    f"{type(metric).__name__}")
