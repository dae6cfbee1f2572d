"""examples/deep_residual.py at reduced size: the plain deep stack's early-layer gradients vanish
and it stays near chance; the residual + LayerNorm stack trains."""
import os
import re
import runpy
import sys

import pytest

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "deep_residual.py")


def test_deep_residual_example(capsys, monkeypatch):
    pytest.importorskip("sklearn")
    monkeypatch.setattr(sys, "argv", [EXAMPLE, "--epochs", "1"])
    runpy.run_path(EXAMPLE, run_name="__main__")
    out = capsys.readouterr().out
    acc = {m.group(1): float(m.group(2)) for m in re.finditer(
        r"^\s+(plain|residual)\s+loss .* test acc ([0-9.]+)", out, re.M)}
    ratio = {m.group(1): float(m.group(2)) for m in re.finditer(
        r"^\s+(plain|residual)\s+loss .* grad\(first\)/grad\(last\) ([0-9.e+-]+)", out, re.M)}
    assert acc["residual"] > 0.8 and acc["plain"] < 0.3, out
    assert ratio["plain"] < 1e-6 and ratio["residual"] > 0.1, out
