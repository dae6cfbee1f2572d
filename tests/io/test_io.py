import os
import pathlib
import re

import numpy as np
import pytest

import ember as em
from ember import nn
from trainkit import TinySGD, cross_entropy, mlp


def _model(seed=0):
    em.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.Linear(7, 3))


def test_model_round_trip_bitwise(tmp_path):
    m = _model(0)
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    path = tmp_path / "m.safetensors"
    em.save(m.state_dict(), path)
    sd = em.load(path)
    assert list(sd) == list(m.state_dict())  # key order kept
    m2 = _model(1)
    assert not np.array_equal(m2(x).numpy(), m(x).numpy())
    m2.load_state_dict(sd)
    assert m2(x).numpy().tobytes() == m(x).numpy().tobytes()
    for k, v in m.state_dict().items():
        assert sd[k].dtype == v.dtype and sd[k].tobytes() == v.tobytes()


def test_save_module_directly_and_str_path(tmp_path):
    m = _model(0)
    em.save(m, str(tmp_path / "m.safetensors"))
    sd = em.load(str(tmp_path / "m.safetensors"))
    assert set(sd) == {"0.weight", "0.bias", "1.weight", "1.bias"}


def test_flat_file_is_plain_safetensors(tmp_path):
    import safetensors.numpy as stnp
    m = _model(0)
    em.save(m.state_dict(), tmp_path / "m.safetensors")
    other = stnp.load_file(str(tmp_path / "m.safetensors"))
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(other[k], v)
    # and a file written by another tool loads (sorted keys, no ember metadata)
    stnp.save_file({"b": np.ones(2, np.float32), "a": np.zeros((1, 2))},
                   str(tmp_path / "o.safetensors"))
    sd = em.load(tmp_path / "o.safetensors")
    assert list(sd) == ["a", "b"] and sd["a"].dtype == np.float64


def test_torch_reads_ember_weights(tmp_path):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    m = _model(0)
    em.save(m.state_dict(), tmp_path / "m.safetensors")
    t = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Linear(7, 3))
    t.load_state_dict(st_torch.load_file(str(tmp_path / "m.safetensors")))
    x = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32)
    np.testing.assert_allclose(t(torch.from_numpy(x)).detach().numpy(), m(x).numpy(),
                               rtol=1e-5, atol=1e-6)


def test_nested_tree_round_trip(tmp_path):
    obj = {
        "state": {0: {"step": 3, "exp_avg": np.arange(6, dtype=np.float32).reshape(2, 3),
                      "max": np.float32(2.5)},
                  7: {"step": np.int64(9), "buf": em.tensor([1.0, 2.0])}},
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "amsgrad": False, "name": None,
                          "params": [0, 7], "weird/key%": float("nan"),
                          "big": 2 ** 40, "inf": float("-inf")}],
        "empty": {}, "elist": [], "text": "héllo",
        "bools": np.array([True, False]), "f64": np.linspace(0, 1, 3),
    }
    em.save(obj, tmp_path / "t.safetensors")
    back = em.load(tmp_path / "t.safetensors")
    assert set(back["state"]) == {0, 7}  # integer keys survive
    np.testing.assert_array_equal(back["state"][0]["exp_avg"], obj["state"][0]["exp_avg"])
    assert back["state"][0]["exp_avg"].dtype == np.float32
    assert isinstance(back["state"][0]["max"], np.float32) and back["state"][0]["max"] == 2.5
    assert isinstance(back["state"][7]["step"], np.int64) and back["state"][7]["step"] == 9
    assert back["state"][0]["step"] == 3 and isinstance(back["state"][0]["step"], int)
    np.testing.assert_array_equal(back["state"][7]["buf"], [1.0, 2.0])
    g = back["param_groups"][0]
    assert g["betas"] == (0.9, 0.999) and isinstance(g["betas"], tuple)
    assert g["amsgrad"] is False and g["name"] is None and g["params"] == [0, 7]
    assert np.isnan(g["weird/key%"]) and g["inf"] == float("-inf") and g["big"] == 2 ** 40
    assert back["empty"] == {} and back["elist"] == [] and back["text"] == "héllo"
    assert back["bools"].dtype == np.bool_ and back["f64"].dtype == np.float64
    # arrays stored under documented path names
    meta = em.io.metadata(tmp_path / "t.safetensors")
    assert meta["ember.layout"] == "tree"
    import safetensors.numpy as stnp
    names = set(stnp.load_file(str(tmp_path / "t.safetensors")))
    assert "state/0/exp_avg" in names and "state/7/buf" in names


def test_optimizer_state_round_trip_tiny(tmp_path):
    m = _model(0)
    opt = TinySGD(m.parameters(), lr=0.05)
    opt.steps = 12
    em.save(opt.state_dict(), tmp_path / "o.safetensors")
    opt2 = TinySGD(m.parameters(), lr=1.0)
    opt2.load_state_dict(em.load(tmp_path / "o.safetensors"))
    assert opt2.steps == 12 and opt2.param_groups[0]["lr"] == 0.05


def _real_optimizers():
    out = []
    for name in ("Adam", "SGD", "RMSprop", "AdamW", "Adagrad"):
        if hasattr(em.optim, name):
            out.append(name)
    return out


@pytest.mark.parametrize("name", _real_optimizers() or ["none"])
def test_real_optimizer_state_round_trip_bitwise(tmp_path, name):
    if name == "none":
        pytest.skip("ember.optim has no optimizers on this branch yet")
    kwargs = {"SGD": dict(lr=0.1, momentum=0.9)}.get(name, dict(lr=1e-2))
    X = np.random.default_rng(0).standard_normal((16, 2)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)

    def run(model, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            cross_entropy(model(X), y).backward()
            opt.step()

    em.manual_seed(0)
    a = mlp(2, 8, 2)
    oa = getattr(em.optim, name)(a.parameters(), **kwargs)
    run(a, oa, 5)
    em.save(a.state_dict(), tmp_path / "m.safetensors")
    em.save(oa.state_dict(), tmp_path / "o.safetensors")
    em.manual_seed(1)
    b = mlp(2, 8, 2)
    ob = getattr(em.optim, name)(b.parameters(), **kwargs)
    b.load_state_dict(em.load(tmp_path / "m.safetensors"))
    ob.load_state_dict(em.load(tmp_path / "o.safetensors"))
    run(a, oa, 5)
    run(b, ob, 5)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert va.tobytes() == vb.tobytes(), k


def test_checkpoint_round_trip(tmp_path):
    m = _model(0)
    opt = TinySGD(m.parameters(), lr=0.3)
    opt.steps = 4
    em.io.save_checkpoint(tmp_path / "c.safetensors", m, opt, epoch=5, best=0.25,
                          curve=np.array([1.0, 0.5]))
    m2, opt2 = _model(3), TinySGD(_model(3).parameters(), lr=1)
    ckpt = em.io.load_checkpoint(tmp_path / "c.safetensors", m2, opt2)
    assert ckpt["epoch"] == 5 and ckpt["extra"]["best"] == 0.25
    np.testing.assert_array_equal(ckpt["extra"]["curve"], [1.0, 0.5])
    assert opt2.steps == 4 and opt2.param_groups[0]["lr"] == 0.3
    for k, v in m.state_dict().items():
        assert m2.state_dict()[k].tobytes() == v.tobytes()
    em.save(m.state_dict(), tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="not a checkpoint"):
        em.io.load_checkpoint(tmp_path / "plain.safetensors", m2)


def test_other_architecture_lists_keys(tmp_path):
    em.save(_model(0).state_dict(), tmp_path / "m.safetensors")
    other = nn.Sequential(nn.Linear(5, 8), nn.Linear(8, 3), nn.Linear(3, 2))
    with pytest.raises(ValueError) as e:
        other.load_state_dict(em.load(tmp_path / "m.safetensors"))
    msg = str(e.value)
    assert "missing keys" in msg and "2.weight" in msg
    assert "shape mismatches" in msg and "0.weight" in msg


def test_truncated_files_rejected_with_path(tmp_path):
    m = _model(0)
    good = tmp_path / "m.safetensors"
    em.save(m.state_dict(), good)
    data = good.read_bytes()
    for cut in (0, 3, 8, 20, len(data) // 2, len(data) - 1):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=re.escape(str(bad))):
            em.load(bad)


def test_corrupt_files_rejected(tmp_path):
    m = _model(0)
    good = tmp_path / "m.safetensors"
    em.save(m.state_dict(), good)
    data = bytearray(good.read_bytes())
    flipped = bytearray(data)
    flipped[-3] ^= 0x40  # a flipped bit in the tensor data
    p = tmp_path / "flip.safetensors"
    p.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="checksum"):
        em.load(p)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"hello, I am not a tensor file at all, really not")
    with pytest.raises(ValueError, match="garbage.safetensors"):
        em.load(garbage)
    hdr = tmp_path / "hdr.safetensors"
    hdr.write_bytes((10).to_bytes(8, "little") + b"{not json}" + b"\0" * 8)
    with pytest.raises(ValueError, match="JSON"):
        em.load(hdr)
    with pytest.raises(FileNotFoundError):
        em.load(tmp_path / "missing.safetensors")


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    em.save(_model(0).state_dict(), path)
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="fire"):
        em.save(_model(1).state_dict(), path)
    monkeypatch.undo()
    assert path.read_bytes() == before  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp file left


def test_save_rejects_unstorable(tmp_path):
    with pytest.raises(TypeError, match="cannot store"):
        em.save({"a": object()}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="dtype"):
        em.save({"a": np.array(["x"])}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="keys"):
        em.save({"a": {(1, 2): 3}}, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_user_metadata(tmp_path):
    em.save(_model(0).state_dict(), tmp_path / "m.safetensors", metadata={"note": "hi"})
    assert em.io.metadata(tmp_path / "m.safetensors")["note"] == "hi"
    with pytest.raises(ValueError, match="reserved"):
        em.save({}, tmp_path / "m2.safetensors", metadata={"ember.x": "y"})


def test_no_pickle_anywhere():
    root = pathlib.Path(em.__file__).parent
    pat = re.compile(r"^\s*(import|from)\s+(c?pickle|dill|joblib|shelve)\b|allow_pickle\s*=\s*True"
                     r"|\btorch\.load\(|\bnp\.load\(", re.M)
    hits = [str(p) for p in root.rglob("*.py") if pat.search(p.read_text())]
    assert hits == []
