"""Grad mode is per thread, on by default in every thread (autograd's fast is_grad_enabled)."""
import threading

import ember as em


def test_grad_mode_default_and_per_thread():
    assert em.is_grad_enabled()
    seen = []
    with em.no_grad():
        assert not em.is_grad_enabled()
        th = threading.Thread(target=lambda: seen.append(em.is_grad_enabled()))
        th.start()
        th.join()
    assert seen == [True]
    assert em.is_grad_enabled()
