"""ember.train: fit / evaluate / predict / train_on_batch, callbacks, metrics, History, summary."""
from . import callbacks, metrics  # noqa: F401
from .callbacks import History  # noqa: F401
from .loop import evaluate, fit, predict, train_on_batch  # noqa: F401
from .summary import summary  # noqa: F401

__all__ = ["fit", "evaluate", "predict", "train_on_batch", "summary", "History", "callbacks",
           "metrics"]
