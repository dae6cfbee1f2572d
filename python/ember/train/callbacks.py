"""Callbacks for ``fit`` with Keras's hook names (``em.callbacks``).

A callback gets ``self.model``, ``self.optimizer`` and ``self.params`` (epochs, steps,
verbose, metrics) before training starts, then these hooks, in this order:

    on_train_begin(logs)
      on_epoch_begin(epoch, logs)
        on_train_batch_begin(batch, logs) / on_train_batch_end(batch, logs)   per batch
        on_test_begin(logs) / on_test_batch_begin / on_test_batch_end / on_test_end   validation
      on_epoch_end(epoch, logs)        logs: loss, metrics, val_loss, val_metrics, lr
    on_train_end(logs)

To stop training, set ``self.model.stop_training = True`` (Keras's convention): ``fit`` checks
it after every batch and every epoch.
"""
from __future__ import annotations

import math
import os
import time

import numpy as np

__all__ = ["Callback", "CallbackList", "History", "ProgressBar", "EarlyStopping",
           "ModelCheckpoint", "TerminateOnNaN", "LearningRateScheduler", "LambdaCallback"]


class Callback:
    """Base class: override the hooks you need."""

    def __init__(self):
        self.model = None
        self.optimizer = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_optimizer(self, optimizer):
        self.optimizer = optimizer

    def set_params(self, params):
        self.params = dict(params)

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass


_HOOKS = [n for n in vars(Callback) if n.startswith("on_")]


class CallbackList:
    """Calls a hook on every callback in order. Hooks nobody overrides cost nothing."""

    def __init__(self, callbacks=(), model=None, optimizer=None, params=None):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks: expected Callback instances, got "
                                f"{type(cb).__name__}")
            cb.set_model(model)
            cb.set_optimizer(optimizer)
            cb.set_params(params or {})
        # Per hook, only the callbacks that override it (per-batch hooks are hot): a method
        # overridden in the class, or set on the instance (LambdaCallback).
        self._active = {h: [getattr(cb, h) for cb in self.callbacks
                            if h in cb.__dict__
                            or getattr(type(cb), h) is not getattr(Callback, h)]
                        for h in _HOOKS}
        for h, fns in self._active.items():
            setattr(self, h, self._caller(fns))

    @staticmethod
    def _caller(fns):
        if not fns:
            return _noop
        if len(fns) == 1:
            return fns[0]

        def call(*args):
            for f in fns:
                f(*args)
        return call

    def wants(self, hook) -> bool:
        return bool(self._active.get(hook))


def _noop(*args):
    pass


class History(Callback):
    """Records every epoch's logs: ``history.history["val_loss"][i]``, ``history.epoch``.

    ``fit`` returns it. ``history.plot("curves.png")`` draws the loss and metric curves.
    """

    def __init__(self):
        super().__init__()
        self.history: dict = {}
        self.epoch: list = []

    def on_train_begin(self, logs=None):
        # Keras keeps appending when fit is called again with the same History.
        pass

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def __repr__(self):
        last = {k: (round(v[-1], 4) if isinstance(v[-1], float) else v[-1])
                for k, v in self.history.items() if v}
        return f"<History {len(self.epoch)} epochs, last: {last}>"

    def plot(self, path=None, metrics=None, title=None):
        """Draws training curves (one panel for losses, one per metric; validation dashed).

        Writes a PNG to ``path`` when given, and returns the matplotlib Figure. Needs
        matplotlib: ``pip install "ember[plot]"``.
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError('History.plot needs matplotlib, which is not installed: '
                              'pip install "ember[plot]"  (or: pip install matplotlib)') from None
        keys = [k for k in self.history if not k.startswith("val_") and k != "lr"]
        if metrics is not None:
            keys = [k for k in keys if k == "loss" or k in metrics]
        if not keys:
            raise ValueError("History.plot: nothing recorded yet (train first)")
        fig = Figure(figsize=(5 * len(keys), 3.6), dpi=100)
        FigureCanvasAgg(fig)  # attaches an Agg canvas: no pyplot, no global backend change
        epochs = [e + 1 for e in self.epoch]
        for i, k in enumerate(keys):
            ax = fig.add_subplot(1, len(keys), i + 1)
            ax.plot(epochs, self.history[k], label=f"train {k}", color="C0")
            vk = "val_" + k
            if vk in self.history:
                ax.plot(epochs[-len(self.history[vk]):], self.history[vk], "--",
                        label=f"validation {k}", color="C1")
            ax.set_xlabel("epoch")
            ax.set_title(k)
            ax.grid(alpha=0.3)
            ax.legend()
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        if path is not None:
            d = os.path.dirname(os.path.abspath(os.fspath(path)))
            os.makedirs(d, exist_ok=True)
            fig.savefig(os.fspath(path), format="png")
        return fig


def _fmt(logs, keys=None):
    parts = []
    for k, v in logs.items():
        if keys is not None and k not in keys:
            continue
        if isinstance(v, float):
            parts.append(f"{k}={v:.4g}" if k == "lr" else f"{k}={v:.4f}")
        else:
            parts.append(f"{k}={v}")
    return " ".join(parts)


class ProgressBar(Callback):
    """A tqdm bar per epoch with the running loss and metrics; validation results at the end.

    ``verbose=1``: a live bar; ``verbose=2``: one line per epoch; ``verbose=0``: silent.
    ``fit`` adds one automatically when its ``verbose`` > 0 and none was given.
    """

    def __init__(self, verbose: int = 1, file=None, refresh: float = 0.1):
        super().__init__()
        self.verbose = int(verbose)
        self.file = file
        self.refresh = float(refresh)
        self._bar = None

    def on_train_begin(self, logs=None):
        self._epochs = self.params.get("epochs")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._t0 = time.perf_counter()
        self._last = 0.0
        if self.verbose == 1:
            from tqdm.auto import tqdm
            self._bar = tqdm(total=self.params.get("steps"), file=self.file, leave=True,
                             desc=f"Epoch {epoch + 1}/{self._epochs}", unit="batch",
                             dynamic_ncols=True, mininterval=self.refresh)

    def on_train_batch_end(self, batch, logs=None):
        if self._bar is None:
            return
        self._bar.update(1)
        now = time.perf_counter()
        if now - self._last >= self.refresh and logs:
            self._last = now
            self._bar.set_postfix_str(_fmt(logs, ("loss",) + tuple(
                self.params.get("metrics", ()))), refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        text = _fmt({k: v for k, v in (logs or {}).items()})
        secs = time.perf_counter() - self._t0
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)
            self._bar.close()
            self._bar = None
        elif self.verbose == 2:
            msg = f"Epoch {epoch + 1}/{self._epochs} - {secs:.2f}s - {text}"
            if self.file is not None:
                print(msg, file=self.file, flush=True)
            else:
                print(msg, flush=True)

    def on_train_end(self, logs=None):
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _resolve_mode(mode, monitor, who):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        m = monitor.lower()
        mode = "max" if ("acc" in m or m.endswith("auc") or "precision" in m
                         or "recall" in m or m.startswith("fmeasure") or "f1" in m) else "min"
    return mode


def _state_copy(model):
    return {k: np.array(v, copy=True) for k, v in model.state_dict().items()}


class EarlyStopping(Callback):
    """Stops training once ``monitor`` has not improved for ``patience`` epochs in a row
    (Keras's rule: with ``patience=2`` and the best at epoch 1, training stops after epoch 3).

    ``min_delta``: smallest change that counts as an improvement. ``mode``: ``"min"``,
    ``"max"`` or ``"auto"`` (max for accuracy-like names). ``baseline``: the value to beat.
    ``restore_best_weights``: at the end of training (stopped early or not) the model gets the
    weights of its best epoch back. ``start_from_epoch``: epochs to wait before watching.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline=None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0):
        super().__init__()
        if patience < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience}")
        self.monitor = monitor
        self.min_delta = abs(float(min_delta))
        self.patience = int(patience)
        self.verbose = int(verbose)
        self.mode = _resolve_mode(mode, monitor, "EarlyStopping")
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = int(start_from_epoch)

    def _better(self, current, reference):
        if self.mode == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = None
        self.best_epoch = None
        self.best_weights = None
        self.best = (math.inf if self.mode == "min" else -math.inf) if self.baseline is None \
            else float(self.baseline)

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            import warnings
            warnings.warn(f"EarlyStopping: monitor {self.monitor!r} is not in the logs "
                          f"(available: {sorted(logs or {})}); not stopping", stacklevel=2)
            return
        if epoch < self.start_from_epoch or math.isnan(current):
            return
        if self._better(current, self.best):
            self.best = current
            self.best_epoch = epoch
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = _state_copy(self.model)
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.verbose:
                print(f"EarlyStopping: {self.monitor} has not improved for {self.wait} "
                      f"epochs (best {self.best:.4f} at epoch {self.best_epoch + 1 if self.best_epoch is not None else '-'}); "
                      f"stopping after epoch {epoch + 1}")

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
            if self.verbose:
                print(f"EarlyStopping: restored the weights of epoch {self.best_epoch + 1} "
                      f"({self.monitor}={self.best:.4f})")


class ModelCheckpoint(Callback):
    """Saves the model's state_dict (safetensors) at the end of epochs.

    ``path`` may hold format fields filled from the epoch's logs, e.g.
    ``"ckpt/model-{epoch:02d}-{val_loss:.3f}.safetensors"`` (``epoch`` counts from 1).
    ``save_best_only``: write only when ``monitor`` improves on the best so far.
    ``include_optimizer``: write a full checkpoint (model, optimizer, epoch) through
    ``em.io.save_checkpoint`` instead of the bare state_dict.
    """

    def __init__(self, path, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, mode: str = "auto", min_delta: float = 0.0,
                 include_optimizer: bool = False):
        super().__init__()
        self.path = os.fspath(path)
        self.monitor = monitor
        self.verbose = int(verbose)
        self.save_best_only = bool(save_best_only)
        self.mode = _resolve_mode(mode, monitor, "ModelCheckpoint")
        self.min_delta = abs(float(min_delta))
        self.include_optimizer = bool(include_optimizer)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.saved = []  # paths written, in order

    def _write(self, epoch, logs):
        from ..io import save, save_checkpoint
        try:
            path = self.path.format(epoch=epoch + 1, **(logs or {}))
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"ModelCheckpoint: cannot fill the path {self.path!r} from the "
                             f"logs (available: epoch, {', '.join(sorted(logs or {}))}): "
                             f"{e!r}") from None
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        if self.include_optimizer:
            save_checkpoint(path, self.model, self.optimizer, epoch=epoch + 1)
        else:
            save(self.model.state_dict(), path)
        self.saved.append(path)
        return path

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if not self.save_best_only:
            self._write(epoch, logs)
            return
        current = logs.get(self.monitor)
        if current is None:
            import warnings
            warnings.warn(f"ModelCheckpoint: monitor {self.monitor!r} is not in the logs "
                          f"(available: {sorted(logs)}); not saving", stacklevel=2)
            return
        if math.isnan(current):
            return
        improved = current < self.best - self.min_delta if self.mode == "min" \
            else current > self.best + self.min_delta
        if improved:
            prev = self.best
            self.best = current
            path = self._write(epoch, logs)
            if self.verbose:
                print(f"ModelCheckpoint: {self.monitor} improved from {prev:.4f} to "
                      f"{current:.4f}; saved {path}")


class TerminateOnNaN(Callback):
    """Stops training as soon as a batch's loss is NaN or infinite."""

    def __init__(self):
        super().__init__()
        self.terminated_at = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("batch_loss", (logs or {}).get("loss"))
        if loss is not None and not math.isfinite(loss):
            self.terminated_at = batch
            print(f"TerminateOnNaN: batch {batch} has loss {loss}; terminating training")
            self.model.stop_training = True


def _set_lr(optimizer, lr):
    for g in optimizer.param_groups:
        g["lr"] = float(lr)


def _get_lr(optimizer):
    return float(optimizer.param_groups[0]["lr"])


class LearningRateScheduler(Callback):
    """Sets the learning rate at the start of every epoch.

    ``schedule`` is either a function ``schedule(epoch, lr) -> new_lr`` (Keras; ``epoch``
    counts from 0; a one-argument ``schedule(epoch)`` works too), or an ember/PyTorch-style
    scheduler object (``optim.lr_scheduler.StepLR(...)``), which is stepped once at the end of
    every epoch (``ReduceLROnPlateau`` is stepped with the ``monitor`` value).
    """

    def __init__(self, schedule, verbose: int = 0, monitor: str = "val_loss"):
        super().__init__()
        self.schedule = schedule
        self.verbose = int(verbose)
        self.monitor = monitor
        self._is_object = hasattr(schedule, "step")
        if not self._is_object and not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be a function or a "
                            f"scheduler object, got {type(schedule).__name__}")

    def on_epoch_begin(self, epoch, logs=None):
        if self._is_object:
            return
        lr = _get_lr(self.optimizer)
        try:
            new = self.schedule(epoch, lr)
        except TypeError:
            new = self.schedule(epoch)
        new = float(new)
        if not math.isfinite(new) or new < 0:
            raise ValueError(f"LearningRateScheduler: schedule returned an invalid learning "
                             f"rate {new!r} for epoch {epoch}")
        _set_lr(self.optimizer, new)
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {new:.6g}")

    def on_epoch_end(self, epoch, logs=None):
        if self._is_object:
            step_scheduler(self.schedule, logs, self.monitor)


def step_scheduler(scheduler, logs, monitor="val_loss"):
    """Steps an epoch-level scheduler; ReduceLROnPlateau-like ones get the monitored value."""
    if _wants_metric(scheduler):
        logs = logs or {}
        value = logs.get(monitor, logs.get("loss"))
        if value is None:
            raise ValueError(f"{type(scheduler).__name__} needs {monitor!r} (or 'loss') in "
                             f"the epoch logs")
        scheduler.step(value)
    else:
        scheduler.step()


def _wants_metric(scheduler) -> bool:
    if type(scheduler).__name__ == "ReduceLROnPlateau":
        return True
    import inspect
    try:
        params = [p for p in inspect.signature(scheduler.step).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return False
    return bool(params) and params[0].name in ("metrics", "metric", "value") \
        and params[0].default is inspect.Parameter.empty


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``."""

    def __init__(self, **hooks):
        super().__init__()
        for name, fn in hooks.items():
            if name not in _HOOKS:
                raise ValueError(f"LambdaCallback: unknown hook {name!r}; hooks: {_HOOKS}")
            setattr(self, name, fn)
