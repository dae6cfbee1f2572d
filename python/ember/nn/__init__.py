"""ember.nn: layers, losses, containers and initializers with PyTorch's names and layouts."""
from . import init, utils  # noqa: F401
from .modules import *  # noqa: F401,F403
from .parameter import Parameter  # noqa: F401
