"""ember's global random state: one numpy Generator, reseeded by ``em.manual_seed``.

Weight init, dropout masks and DataLoader shuffling (when no seed is given) draw from it, so a
``manual_seed`` call makes a whole run reproducible.
"""
import numpy as np

_rng = np.random.default_rng()


def manual_seed(seed: int):
    """Reseeds ember's generator (init, dropout, shuffling)."""
    global _rng
    _rng = np.random.default_rng(int(seed))
    return _rng


def default_generator() -> np.random.Generator:
    return _rng
