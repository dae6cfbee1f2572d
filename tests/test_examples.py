"""Runs every example in its reduced --ci mode (each asserts its own accuracy claim)."""
import os
import pathlib
import subprocess
import sys

import pytest

import ember as em

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _missing():
    """Names the examples need from other families (so a partial checkout skips clearly)."""
    import ember.functional as F
    need = {"nn.ReLU": hasattr(em.nn, "ReLU"), "nn.Tanh": hasattr(em.nn, "Tanh"),
            "nn.CrossEntropyLoss": hasattr(em.nn, "CrossEntropyLoss"),
            "nn.BCEWithLogitsLoss": hasattr(em.nn, "BCEWithLogitsLoss"),
            "F.step": hasattr(F, "step"), "optim.Adam": hasattr(em.optim, "Adam"),
            "optim.SGD": hasattr(em.optim, "SGD")}
    return [k for k, ok in need.items() if not ok]


def _run(name, tmp_path, *extra):
    missing = _missing()
    if missing:
        pytest.skip(f"examples need {missing}, not on this branch")
    pytest.importorskip("sklearn")
    env = dict(os.environ)
    pkg = str(pathlib.Path(em.__file__).resolve().parents[1])
    env["PYTHONPATH"] = pkg + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("MPLBACKEND", "Agg")
    # On a shared, oversubscribed CI box, OpenMP threads that spin-wait at barriers starve one
    # another (measured 10x+ slower there); passive waiting keeps these subprocess runs short.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    cmd = [sys.executable, str(EXAMPLES / name), "--ci", *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env,
                       cwd=str(tmp_path))
    assert r.returncode == 0, f"{name} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def test_perceptron_xor(tmp_path):
    out = _run("perceptron_xor.py", tmp_path)
    assert "XOR" in out


def test_digits_mlp(tmp_path):
    out = _run("digits_mlp.py", tmp_path, "--out", str(tmp_path))
    assert "test accuracy" in out
    assert (tmp_path / "digits_mlp.safetensors").exists()


def test_transfer(tmp_path):
    out = _run("transfer.py", tmp_path, "--out", str(tmp_path))
    assert "frozen body bitwise unchanged: True" in out
