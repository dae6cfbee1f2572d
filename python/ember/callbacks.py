"""em.callbacks: the training callbacks (implemented in ember.train.callbacks)."""
from .train.callbacks import *  # noqa: F401,F403
from .train.callbacks import __all__  # noqa: F401
