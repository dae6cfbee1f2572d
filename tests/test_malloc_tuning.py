"""`import ember` keeps freed blocks up to 32 MiB in glibc's heap (module.cpp: a training step
re-allocates the same sizes every iteration, and fresh mmap'ed memory pays page faults each time).
The user's own malloc settings, or EMBER_MALLOC_TUNING=0, switch it off."""
import os
import pathlib
import subprocess
import sys

import pytest

import ember as em

PKG = str(pathlib.Path(em.__file__).resolve().parents[1])
PROBE = """
import numpy as np
from ember import _core
before = _core.mmapped_bytes()
a = np.ones(4 << 20, np.float32)   # 16 MiB: above glibc's default mmap threshold
grew = _core.mmapped_bytes() - before
print("tuned:", _core.malloc_tuned(), "grew:", grew, "known:", before >= 0)
"""


def _run(**set_env):
    env = {k: v for k, v in os.environ.items()
           if k not in ("EMBER_MALLOC_TUNING", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                        "GLIBC_TUNABLES")}
    env["PYTHONPATH"] = PKG + os.pathsep + env.get("PYTHONPATH", "")
    env.update(set_env)
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    words = r.stdout.split()
    return words[1] == "True", int(words[3]), words[5] == "True"


glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")


@glibc
def test_large_blocks_stay_in_the_heap():
    tuned, grew, known = _run()
    assert tuned
    if known:
        assert grew == 0          # the 16 MiB array came from the heap, not a fresh mapping


@glibc
def test_opt_out_and_user_settings_win():
    tuned, grew, known = _run(EMBER_MALLOC_TUNING="0")
    assert not tuned
    if known:
        assert grew >= 16 << 20   # glibc's default: a fresh mapping
    tuned, _, _ = _run(MALLOC_MMAP_THRESHOLD_="1048576")
    assert not tuned
