"""em.metrics: accuracy, top-k accuracy, confusion matrix, MAE, MSE (see ember.train.metrics)."""
from .train.metrics import *  # noqa: F401,F403
from .train.metrics import __all__, get  # noqa: F401
