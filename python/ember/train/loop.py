"""fit / evaluate / predict / train_on_batch: the Keras-style loop over ember's PyTorch-style parts.

``fit`` is exactly the hand-written loop (``zero_grad``, forward, loss, ``backward``, ``step``)
plus batching, metrics, validation and callbacks; nothing in it is hidden from a custom loop,
which can call :func:`train_on_batch` for the same step.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from ..autograd import no_grad
from ..data import ArrayDataset, DataLoader
from ..tensor import Tensor
from . import metrics as _metrics
from .callbacks import CallbackList, History, ProgressBar, step_scheduler

__all__ = ["fit", "evaluate", "predict", "train_on_batch"]


# ---------------------------------------------------------------------------------------------
# Arguments

_LOSS_ALIASES = {
    "cross_entropy": "cross_entropy", "crossentropy": "cross_entropy",
    "categorical_crossentropy": "cross_entropy",
    "sparse_categorical_crossentropy": "cross_entropy",
    "mse": "mse_loss", "mse_loss": "mse_loss", "mean_squared_error": "mse_loss",
    "mae": "l1_loss", "l1": "l1_loss", "l1_loss": "l1_loss", "mean_absolute_error": "l1_loss",
    "bce": "binary_cross_entropy", "binary_cross_entropy": "binary_cross_entropy",
    "binary_crossentropy": "binary_cross_entropy",
    "bce_with_logits": "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits": "binary_cross_entropy_with_logits",
    "nll": "nll_loss", "nll_loss": "nll_loss", "huber": "huber_loss",
    "smooth_l1": "smooth_l1_loss",
}


def _resolve_loss(loss):
    if loss is None:
        return None
    if isinstance(loss, str):
        from .. import functional as F
        name = _LOSS_ALIASES.get(loss.lower(), loss)
        fn = getattr(F, name, None)
        if fn is None:
            raise ValueError(f"unknown loss {loss!r}; pass a loss module or function "
                             f"(nn.CrossEntropyLoss(), F.mse_loss, ...) or one of "
                             f"{sorted(_LOSS_ALIASES)}")
        return fn
    if not callable(loss):
        raise TypeError(f"loss must be callable (a loss module or function) or a name, got "
                        f"{type(loss).__name__}")
    return loss


_DEFAULT_METRICS = ("accuracy",)
_REGRESSION = ("mse", "l1", "huber", "smooth_l1", "mae", "gaussian_nll", "poisson_nll")


def _default_metrics(metrics, loss_fn):
    """The default ("accuracy",) is dropped for a regression loss (MSE, L1, Huber, ...)."""
    if metrics is not _DEFAULT_METRICS:
        return metrics
    name = (getattr(loss_fn, "__name__", "") or type(loss_fn).__name__).lower()
    name = name.replace("loss", "").strip("_")
    return () if name.startswith(_REGRESSION) else metrics


def _takes_logits(loss_fn) -> bool:
    name = getattr(loss_fn, "__name__", "") or type(loss_fn).__name__
    return "with_logits" in name or type(loss_fn).__name__ == "BCEWithLogitsLoss"


def _is_loader(data) -> bool:
    return isinstance(data, DataLoader) or (
        hasattr(data, "__iter__") and hasattr(data, "__len__") and hasattr(data, "batch_size")
        and not isinstance(data, (tuple, list, np.ndarray)))


def _as_pair(data, what):
    if isinstance(data, (tuple, list)) and len(data) in (1, 2):
        return tuple(data)
    raise TypeError(f"{what}: expected (X, y) arrays or a DataLoader, got "
                    f"{type(data).__name__}" + (f" of length {len(data)}"
                                                if isinstance(data, (tuple, list)) else ""))


def _make_loader(data, batch_size, shuffle, seed, what, prefetch=0):
    if data is None:
        return None
    if _is_loader(data):
        return data
    if hasattr(data, "__getitem__") and hasattr(data, "__len__") \
            and not isinstance(data, (tuple, list, np.ndarray, Tensor)):
        return DataLoader(data, batch_size=batch_size, shuffle=shuffle, seed=seed,
                          prefetch=prefetch)
    pair = _as_pair(data, what)
    return DataLoader(ArrayDataset(*pair), batch_size=batch_size, shuffle=shuffle, seed=seed,
                      prefetch=prefetch)


def _split_batch(batch):
    if isinstance(batch, (tuple, list)):
        if len(batch) == 1:
            return batch[0], None
        return batch[0], batch[1]
    return batch, None


def _batch_len(x):
    return len(x[0]) if isinstance(x, (tuple, list)) else len(x)


def _penalty(reg, params):
    """A regularizer is ``reg(parameters) -> scalar Tensor``, called with the list of the
    model's trainable parameters (``nn.utils.L2Penalty(1e-4)``, ``L1Penalty``, or your own)."""
    p = reg(params)
    if not isinstance(p, Tensor):
        raise TypeError(f"regularizer {reg!r} returned {type(p).__name__}, expected a scalar "
                        f"Tensor")
    return p


@contextmanager
def _eval_mode(model):
    """eval() for the duration, then every module's own training flag back as it was."""
    modes = [(m, m.training) for m in model.modules()] if hasattr(model, "modules") else []
    if hasattr(model, "eval"):
        model.eval()
    try:
        with no_grad():
            yield
    finally:
        for m, t in modes:
            object.__setattr__(m, "training", t)


# ---------------------------------------------------------------------------------------------
# One step

def train_on_batch(model, x, y, loss, optimizer, regularizers=()) -> float:
    """One optimization step on one batch (zero_grad, forward, loss, backward, step).

    For custom loops (GANs, augmentation, curricula). Does not change the model's train/eval
    mode. Returns the loss as a float (penalties included).
    """
    loss_fn = _resolve_loss(loss)
    _, value = _step(model, x, y, loss_fn, optimizer, regularizers, _trainable(model)
                     if regularizers else None)
    return value


def _trainable(model):
    return [p for p in model.parameters() if p.requires_grad]


def _step(model, x, y, loss_fn, optimizer, regularizers, params):
    optimizer.zero_grad()
    out = model(x)
    lv = loss_fn(out, y) if y is not None else loss_fn(out)
    for r in regularizers:
        lv = lv + _penalty(r, params)
    if not isinstance(lv, Tensor):
        raise TypeError(f"the loss returned {type(lv).__name__}, expected a scalar Tensor")
    if lv.data.size != 1:
        raise ValueError(f"the loss must be a scalar, got shape {lv.shape} (use "
                         f"reduction='mean')")
    lv.backward()
    optimizer.step()
    return out, float(lv.data.reshape(()))


# ---------------------------------------------------------------------------------------------
# fit

def fit(model, train_data, *, loss, optimizer, epochs: int = 1, batch_size: int = 32,
        validation_data=None, validation_split: float | None = None, metrics=_DEFAULT_METRICS,
        callbacks=(), scheduler=None, shuffle: bool = True, verbose: int = 1,
        regularizers=(), seed=None, initial_epoch: int = 0,
        validation_batch_size: int | None = None, prefetch: int = 0) -> History:
    """Trains ``model`` and returns a :class:`History` of per-epoch logs.

    Args:
        train_data: ``(X, y)`` arrays (batched and, with ``shuffle``, reshuffled every epoch)
            or a DataLoader / Dataset.
        loss: a loss module or function ``loss(output, target) -> scalar Tensor``, or a name
            (``"cross_entropy"``, ``"mse"``, ...).
        optimizer: an ember optimizer (anything with ``zero_grad()``, ``step()`` and
            ``param_groups``).
        validation_data: ``(X, y)`` or a DataLoader, evaluated after every epoch; its results
            are logged as ``val_loss``, ``val_accuracy``, ...
        validation_split: instead of ``validation_data``, hold out this fraction of the
            ``(X, y)`` arrays -- the *last* samples, before shuffling (as Keras does).
        metrics: names (``"accuracy"``, ``"top5"``, ``"mae"``, ``"mse"``), Metric objects or
            ``fn(y_pred, y_true)`` callables. The default, accuracy, is left out when the loss
            is a regression loss (MSE, L1, Huber, smooth L1).
        callbacks: Callback instances (EarlyStopping, ModelCheckpoint, ...).
        scheduler: an epoch-level learning-rate scheduler, stepped after every epoch
            (``ReduceLROnPlateau`` gets ``val_loss``, or ``loss`` without validation).
        verbose: 0 silent, 1 progress bar, 2 one line per epoch.
        regularizers: callables ``reg(parameters) -> scalar Tensor`` added to the loss, called
            with the model's trainable parameters: ``[nn.utils.L2Penalty(1e-4)]``.
        seed: seeds the shuffling (default: ember's generator, see ``em.manual_seed``).
        initial_epoch: epoch to start counting from (resuming).
        prefetch: batches to prepare ahead on a background thread (arrays input only).

    Logs per epoch: ``loss`` (sample-weighted mean over the epoch's batches, penalties
    included), each metric, ``val_*`` when validating, and ``lr`` (the rate used that epoch).
    """
    loss_fn = _resolve_loss(loss)
    if loss_fn is None:
        raise ValueError("fit: a loss is required")
    if not hasattr(optimizer, "step") or not hasattr(optimizer, "zero_grad"):
        raise TypeError(f"fit: optimizer must have step() and zero_grad(), got "
                        f"{type(optimizer).__name__}")
    epochs = int(epochs)
    if epochs < 0 or initial_epoch < 0:
        raise ValueError(f"fit: epochs and initial_epoch must be >= 0, got {epochs}, "
                         f"{initial_epoch}")
    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise ValueError(f"fit: batch_size must be a positive integer, got {batch_size!r}")
    if validation_split is not None:
        if validation_data is not None:
            raise ValueError("fit: give validation_data or validation_split, not both")
        if _is_loader(train_data):
            raise ValueError("fit: validation_split needs (X, y) arrays, not a DataLoader; "
                             "use em.data.random_split and pass validation_data")
        if not 0.0 < float(validation_split) < 1.0:
            raise ValueError(f"fit: validation_split must lie in (0, 1), got "
                             f"{validation_split}")
        pair = _as_pair(train_data, "fit")
        n = len(pair[0])
        cut = int(n * (1.0 - float(validation_split)))
        if cut < 1 or cut >= n:
            raise ValueError(f"fit: validation_split={validation_split} leaves an empty "
                             f"split for {n} samples")
        train_data = tuple(a[:cut] for a in pair)
        validation_data = tuple(a[cut:] for a in pair)

    train_loader = _make_loader(train_data, batch_size, shuffle, seed, "fit", prefetch)
    val_loader = _make_loader(validation_data, validation_batch_size or max(batch_size, 256),
                              False, None, "fit(validation_data)")
    logits = _takes_logits(loss_fn)
    metrics = _default_metrics(metrics, loss_fn)
    train_metrics = [_metrics.get(m, logits) for m in (metrics or ())]
    metric_names = [m.name for m in train_metrics]
    if len(set(metric_names)) != len(metric_names):
        raise ValueError(f"fit: duplicate metric names {metric_names}")

    history = History()
    user = list(callbacks or ())
    has_bar = any(isinstance(c, ProgressBar) for c in user)
    cb_list = ([ProgressBar(verbose)] if verbose and not has_bar else []) + user + [history]
    steps = len(train_loader) if hasattr(train_loader, "__len__") else None
    params = {"epochs": initial_epoch + epochs, "steps": steps, "verbose": verbose,
              "metrics": metric_names, "batch_size": getattr(train_loader, "batch_size", None),
              "do_validation": val_loader is not None}
    cbs = CallbackList(cb_list, model=model, optimizer=optimizer, params=params)
    history.params = params
    batch_hooks = cbs.wants("on_train_batch_begin") or cbs.wants("on_train_batch_end")

    regularizers = list(regularizers or ())
    reg_params = _trainable(model) if regularizers else None
    model.stop_training = False
    try:
        cbs.on_train_begin({})
        for epoch in range(initial_epoch, initial_epoch + epochs):
            model.train()
            cbs.on_epoch_begin(epoch, {})
            lr = _current_lr(optimizer)
            for m in train_metrics:
                m.reset()
            total, seen = 0.0, 0
            for step, batch in enumerate(train_loader):
                x, y = _split_batch(batch)
                n = _batch_len(x)
                if batch_hooks:
                    cbs.on_train_batch_begin(step, {"batch": step, "size": n})
                out, value = _step(model, x, y, loss_fn, optimizer, regularizers, reg_params)
                total += value * n
                seen += n
                if y is not None and train_metrics:
                    o = out.data if isinstance(out, Tensor) else out
                    for m in train_metrics:
                        m.update(o, y)
                if batch_hooks:
                    blogs = {"batch": step, "size": n, "loss": total / seen,
                             "batch_loss": value}
                    for m in train_metrics:
                        blogs[m.name] = m.result()
                    cbs.on_train_batch_end(step, blogs)
                if model.stop_training:
                    break
            logs = {"loss": total / seen if seen else float("nan")}
            for m in train_metrics:
                logs[m.name] = m.result()
            if val_loader is not None:
                vlogs = _run_eval(model, val_loader, loss_fn, [_metrics.get(m, logits)
                                                               for m in (metrics or ())],
                                  cbs)
                logs.update({"val_" + k: v for k, v in vlogs.items()})
            if lr is not None:
                logs["lr"] = lr
            if scheduler is not None:
                step_scheduler(scheduler, logs, "val_loss" if val_loader is not None
                               else "loss")
            cbs.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
        cbs.on_train_end({})
    finally:
        for c in cb_list:
            if isinstance(c, ProgressBar) and c._bar is not None:
                c._bar.close()
                c._bar = None
    return history


def _current_lr(optimizer):
    groups = getattr(optimizer, "param_groups", None)
    if groups:
        lr = groups[0].get("lr") if isinstance(groups[0], dict) else None
        try:
            return float(lr) if lr is not None else None
        except (TypeError, ValueError):
            return None
    return None


# ---------------------------------------------------------------------------------------------
# evaluate / predict

def _run_eval(model, loader, loss_fn, metric_objs, cbs=None):
    for m in metric_objs:
        m.reset()
    total, seen = 0.0, 0
    test_hooks = cbs is not None and (cbs.wants("on_test_batch_begin")
                                      or cbs.wants("on_test_batch_end"))
    if cbs is not None:
        cbs.on_test_begin({})
    with _eval_mode(model):
        for step, batch in enumerate(loader):
            x, y = _split_batch(batch)
            n = _batch_len(x)
            if test_hooks:
                cbs.on_test_batch_begin(step, {"batch": step, "size": n})
            out = model(x)
            if loss_fn is not None and y is not None:
                total += float(loss_fn(out, y).data.reshape(())) * n
            seen += n
            if y is not None:
                o = out.data if isinstance(out, Tensor) else out
                for m in metric_objs:
                    m.update(o, y)
            if test_hooks:
                cbs.on_test_batch_end(step, {"batch": step, "size": n})
    logs = {}
    if loss_fn is not None:
        logs["loss"] = total / seen if seen else float("nan")
    for m in metric_objs:
        logs[m.name] = m.result()
    if cbs is not None:
        cbs.on_test_end(dict(logs))
    return logs


def evaluate(model, data, loss=None, metrics=_DEFAULT_METRICS, batch_size: int = 256,
             callbacks=()) -> dict:
    """Loss and metrics of ``model`` on ``data`` (``(X, y)`` or a DataLoader), in eval mode
    without recording a graph; every module's train/eval mode is restored afterwards.

    Returns ``{"loss": ..., "accuracy": ...}`` (``loss`` only when a loss is given).
    """
    loss_fn = _resolve_loss(loss)
    loader = _make_loader(data, batch_size, False, None, "evaluate")
    logits = _takes_logits(loss_fn) if loss_fn is not None else False
    if loss_fn is not None:
        metrics = _default_metrics(metrics, loss_fn)
    objs = [_metrics.get(m, logits) for m in (metrics or ())]
    cbs = CallbackList(list(callbacks or ()), model=model) if callbacks else None
    return _run_eval(model, loader, loss_fn, objs, cbs)


def predict(model, X, batch_size: int = 256) -> np.ndarray:
    """``model``'s outputs for ``X`` as one ndarray, computed batch by batch in eval mode under
    ``no_grad`` (modes restored afterwards). ``X``: an array, or a DataLoader/Dataset whose
    batches' first element is the input. A model returning a tuple gives a tuple of arrays."""
    if _is_loader(X):
        loader = X
    elif hasattr(X, "__getitem__") and hasattr(X, "__len__") \
            and not isinstance(X, (tuple, list, np.ndarray, Tensor)):
        loader = DataLoader(X, batch_size=batch_size)
    else:
        loader = DataLoader(ArrayDataset(X), batch_size=batch_size)
    n = len(loader.dataset) if hasattr(loader, "dataset") else None
    outs = None
    pos = 0
    chunks = []
    with _eval_mode(model):
        for batch in loader:
            x, _ = _split_batch(batch)
            out = model(x)
            parts = out if isinstance(out, (tuple, list)) else (out,)
            arrs = [p.data if isinstance(p, Tensor) else np.asarray(p) for p in parts]
            if n is not None:
                if outs is None:
                    outs = [np.empty((n,) + a.shape[1:], dtype=a.dtype) for a in arrs]
                b = len(arrs[0])
                for o, a in zip(outs, arrs):
                    o[pos:pos + b] = a
                pos += b
            else:
                chunks.append(arrs)
    if n is None:
        if not chunks:
            raise ValueError("predict: no data")
        outs = [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]
    elif outs is None:
        raise ValueError("predict: no data (empty input)")
    elif pos != n:
        outs = [o[:pos] for o in outs]  # a loader that drops its last batch
    return tuple(outs) if isinstance(out, (tuple, list)) else outs[0]
