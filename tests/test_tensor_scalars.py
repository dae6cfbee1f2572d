"""0-d tensors (what a reduced loss is): the skeleton turned them into shape (1,) or float32."""
import numpy as np

import ember as em


def test_scalar_data_stays_0d():
    assert em.tensor(np.float32(2.0)).shape == ()
    assert em.tensor(3.0).shape == ()
    assert em.as_tensor(np.float32(1.0)).shape == ()


def test_0d_float64_arithmetic_keeps_dtype():
    a = em.tensor(np.float64(1.5), dtype=np.float64)
    b = em.tensor(np.float64(2.0), dtype=np.float64)
    assert (a * b).dtype == np.float64 and (a * b).shape == ()
    assert (a + b).sum().dtype == np.float64


def test_sum_and_mean_of_0d_backward_keep_shape():
    for red in ("sum", "mean"):
        s = em.tensor(np.float32(2.0), requires_grad=True)
        getattr(s * s, red)().backward()
        assert s.grad.shape == ()
        np.testing.assert_allclose(s.grad.numpy(), 4.0)
