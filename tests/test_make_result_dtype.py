"""0-d float64 arithmetic keeps float64 (numpy hands back scalars, not arrays)."""
import numpy as np

import ember as em


def test_scalar_float64_sum_stays_float64():
    a = em.tensor(np.ones(3), dtype=np.float64).sum()
    b = em.tensor(np.ones(2), dtype=np.float64).sum()
    for r in (a + b, a * b, a - b, a / b, -a):
        assert r.dtype == np.float64
