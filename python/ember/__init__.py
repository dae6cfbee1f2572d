"""ember: a fast CPU deep-learning library with a PyTorch-familiar API.

    import ember as em
    from ember import nn, optim
"""
import os as _os

# OpenMP threads that finish a loop spin (GNU default: ~300k iterations) before they sleep. On a
# small shared machine that spinning steals the core another thread needs, and small ops became
# 10x slower under load. A short spin keeps back-to-back kernels fast and yields soon after.
# Read by libgomp when _core loads; a user's own OMP_WAIT_POLICY / GOMP_SPINCOUNT wins.
_set_spincount = "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ
if _set_spincount:
    _os.environ["GOMP_SPINCOUNT"] = "20000"

from . import _core  # noqa: E402

# libgomp has read it by now; take it back out so that child processes do not inherit it (it
# overrides their OMP_WAIT_POLICY: a subprocess started with OMP_WAIT_POLICY=PASSIVE would
# still spin).
if _set_spincount:
    _os.environ.pop("GOMP_SPINCOUNT", None)
del _set_spincount
from ._random import manual_seed
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .tensor import (Tensor, arange, as_tensor, cat, float32, float64, full, int64, ones,
                     ones_like, rand, randn, stack, tensor, zeros, zeros_like)
from . import functional  # noqa: E402
from . import functional as F  # noqa: E402,F401
from . import nn, optim, data  # noqa: E402,F401

__version__ = "0.1.0"


def set_num_threads(n: int) -> None:
    """Sets how many threads ember's kernels use (the OpenMP team size). Default: all cores,
    or OMP_NUM_THREADS when set."""
    n = int(n)
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    return _core.get_num_threads()


def _lazy(name):
    import importlib
    return importlib.import_module(f".{name}", __name__)


def __getattr__(name):
    # The training loop, callbacks and save/load load on first use (keeps `import ember` fast).
    if name in ("fit", "evaluate", "predict", "train_on_batch"):
        return getattr(_lazy("train"), name)
    if name in ("train", "callbacks", "metrics", "io"):
        return _lazy(name)
    if name in ("save", "load"):
        return getattr(_lazy("io"), name)
    raise AttributeError(f"module 'ember' has no attribute {name!r}")
