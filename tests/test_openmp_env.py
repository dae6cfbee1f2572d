"""`import ember` shortens libgomp's spin (GOMP_SPINCOUNT) for its own process only: the variable
must not stay in os.environ, where child processes inherit it and it overrides their
OMP_WAIT_POLICY (an example run with OMP_WAIT_POLICY=PASSIVE from the test suite still spun, and
ran 4-10x slower on a loaded machine)."""
import os
import pathlib
import subprocess
import sys

import ember as em

PKG = str(pathlib.Path(em.__file__).resolve().parents[1])
PROBE = "import os, ember; print('left:', os.environ.get('GOMP_SPINCOUNT'))"


def _run(**set_env):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env["PYTHONPATH"] = PKG + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_DISPLAY_ENV"] = "verbose"            # libgomp prints what it read when it loads
    env.update(set_env)
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout + r.stderr


def test_spincount_applied_but_not_left_in_environ():
    out = _run()
    assert "GOMP_SPINCOUNT = '20000'" in out, out      # libgomp did read ember's setting
    assert "left: None" in out, out                    # ... and children will not inherit it


def test_user_settings_win_and_stay():
    out = _run(GOMP_SPINCOUNT="1234")
    assert "GOMP_SPINCOUNT = '1234'" in out and "left: 1234" in out, out
    out = _run(OMP_WAIT_POLICY="PASSIVE")
    assert "GOMP_SPINCOUNT = '20000'" not in out and "left: None" in out, out
