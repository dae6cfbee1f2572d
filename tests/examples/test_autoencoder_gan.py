"""examples/autoencoder.py and examples/gan.py in their reduced --ci modes, each in a subprocess.

Each example asserts its own claim and exits non-zero on failure (the autoencoder's reconstruction
loss halves at least and its 2-D code separates digits; the GAN's MMD^2 to the real ring falls 10x
and it covers at least 6 of the 8 modes); here we also read the printed numbers back."""
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

import ember as em

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _run(name, tmp_path):
    env = dict(os.environ)
    pkg = str(pathlib.Path(em.__file__).resolve().parents[1])
    env["PYTHONPATH"] = pkg + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("MPLBACKEND", "Agg")
    # OpenMP threads spinning at barriers starve one another on an oversubscribed CI box.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    cmd = [sys.executable, str(EXAMPLES / name), "--ci", "--out", str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env,
                       cwd=str(tmp_path))
    assert r.returncode == 0, f"{name} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def _has_matplotlib():
    return importlib.util.find_spec("matplotlib") is not None


def test_autoencoder(tmp_path):
    pytest.importorskip("sklearn")
    out = _run("autoencoder.py", tmp_path)
    m = re.search(r"test reconstruction MSE: start ([0-9.]+) -> end ([0-9.]+)", out)
    assert m, out
    start, end = float(m.group(1)), float(m.group(2))
    assert end < 0.5 * start, out
    acc = float(re.search(r"code space: autoencoder ([0-9.]+)", out).group(1))
    assert acc > 0.5, out
    if _has_matplotlib():
        assert (tmp_path / "autoencoder_codes.png").stat().st_size > 0, out
    else:
        assert "no PNG" in out


def test_gan(tmp_path):
    out = _run("gan.py", tmp_path)
    m = re.search(r"MMD\^2 generated vs real: start ([0-9.]+) -> end ([0-9.]+)", out)
    assert m, out
    start, end = float(m.group(1)), float(m.group(2))
    assert end * 10 < start, out
    covered = int(re.search(r"modes covered: start \d+/8 -> end (\d+)/8", out).group(1))
    assert covered >= 6, out
    if _has_matplotlib():
        assert (tmp_path / "gan_ring.png").stat().st_size > 0, out
    else:
        assert "no PNG" in out
