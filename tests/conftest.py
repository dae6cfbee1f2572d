import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import pytest  # noqa: E402


@pytest.fixture
def threads():
    """Restores ember's thread count after a test that changes it."""
    import ember as em
    old = em.get_num_threads()
    yield
    em.set_num_threads(old)
