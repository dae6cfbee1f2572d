"""The README's Python snippets run as written (docs that run)."""
import os
import re

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def _blocks():
    with open(README) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def test_readme_has_snippets():
    assert len(_blocks()) >= 3


def test_readme_snippets_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)          # the snippets write model.safetensors
    ns = {}
    for block in _blocks():              # later blocks reuse earlier names, as a reader would
        exec(compile(block, "README.md", "exec"), ns)
    assert (tmp_path / "model.safetensors").exists()
    out = capsys.readouterr().out
    assert "Total params" in out or "params" in out.lower()
