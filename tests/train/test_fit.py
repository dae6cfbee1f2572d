import io
import sys

import numpy as np
import pytest

import ember as em
from ember import nn
from ember.data import ArrayDataset, DataLoader
from trainkit import ReLU, TinySGD, blobs, cross_entropy, mlp, mse


def _linear_problem(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3)).astype(np.float32)
    w = np.array([[1.5], [-2.0], [0.5]], np.float32)
    return X, (X @ w + 0.25).astype(np.float32)


def test_fit_drives_regression_to_zero_loss():
    em.manual_seed(0)
    X, y = _linear_problem()
    model = nn.Linear(3, 1)
    h = em.fit(model, (X, y), loss=mse, optimizer=TinySGD(model.parameters(), lr=0.1),
               epochs=60, batch_size=16, metrics=("mae",), verbose=0)
    assert h.history["loss"][-1] < 1e-6
    assert h.history["loss"][0] > 100 * h.history["loss"][-1]
    assert h.history["mae"][-1] < 1e-3
    np.testing.assert_allclose(model.weight.numpy(), [[1.5, -2.0, 0.5]], atol=1e-3)


def test_fit_classification_and_history():
    em.manual_seed(0)
    X, y = blobs(200, classes=3)
    model = mlp(2, 16, 3)
    h = em.fit(model, (X, y), loss=cross_entropy, optimizer=TinySGD(model.parameters(), 0.2),
               epochs=15, batch_size=20, validation_data=(X[:50], y[:50]), verbose=0)
    assert h.epoch == list(range(15))
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert all(len(v) == 15 for v in h.history.values())
    assert h.history["loss"][-1] < 0.05 and h.history["accuracy"][-1] >= 0.99
    assert h.history["lr"] == [0.2] * 15
    assert h.params["steps"] == 10 and h.params["epochs"] == 15
    # val metrics equal a separate evaluate on the same data with the final weights
    ev = em.evaluate(model, (X[:50], y[:50]), loss=cross_entropy)
    assert ev["loss"] == pytest.approx(h.history["val_loss"][-1], rel=1e-6)
    assert ev["accuracy"] == h.history["val_accuracy"][-1]


def test_train_loss_is_sample_weighted_mean():
    # constant model output: per-batch losses known exactly, last batch smaller
    X = np.zeros((5, 1), np.float32)
    y = np.array([[0], [0], [0], [0], [3]], np.float32)
    model = nn.Linear(1, 1)
    model.weight.data[:] = 0
    model.bias.data[:] = 0
    h = em.fit(model, (X, y), loss=mse, optimizer=TinySGD(model.parameters(), lr=0.0),
               epochs=1, batch_size=2, shuffle=False, metrics=(), verbose=0)
    assert h.history["loss"][0] == pytest.approx(9 / 5)


def test_validation_split_holds_out_the_last_samples():
    em.manual_seed(1)
    X, y = blobs(100, classes=2)
    model = mlp(2, 8, 2)
    h = em.fit(model, (X, y), loss=cross_entropy, optimizer=TinySGD(model.parameters(), 0.1),
               epochs=2, batch_size=10, validation_split=0.2, verbose=0)
    assert h.params["steps"] == 8  # 80 training samples
    ev = em.evaluate(model, (X[80:], y[80:]), loss=cross_entropy)
    assert ev["loss"] == pytest.approx(h.history["val_loss"][-1], rel=1e-6)
    with pytest.raises(ValueError, match="not both"):
        em.fit(model, (X, y), loss=cross_entropy, optimizer=TinySGD(model.parameters()),
               validation_split=0.2, validation_data=(X, y), verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        em.fit(model, (X, y), loss=cross_entropy, optimizer=TinySGD(model.parameters()),
               validation_split=1.5, verbose=0)


def test_fit_accepts_dataloader_and_is_reproducible():
    X, y = blobs(64, classes=2)

    def run(seed):
        em.manual_seed(0)
        model = mlp(2, 8, 2)
        dl = DataLoader(ArrayDataset(X, y), batch_size=8, shuffle=True, seed=seed)
        em.fit(model, dl, loss=cross_entropy, optimizer=TinySGD(model.parameters(), 0.1),
               epochs=3, verbose=0)
        return model.state_dict()

    a, b, c = run(1), run(1), run(2)
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert any(a[k].tobytes() != c[k].tobytes() for k in a)


def test_fit_shuffle_follows_manual_seed():
    X, y = blobs(64, classes=2)

    def run():
        em.manual_seed(5)
        model = mlp(2, 8, 2)
        em.fit(model, (X, y), loss=cross_entropy, optimizer=TinySGD(model.parameters(), 0.1),
               epochs=2, batch_size=8, verbose=0)
        return model(X).numpy()

    assert run().tobytes() == run().tobytes()


def test_regularizers_are_added_to_the_loss():
    X, y = _linear_problem(16)
    em.manual_seed(0)
    m1 = nn.Linear(3, 1)
    em.manual_seed(0)
    m2 = nn.Linear(3, 1)

    def l2(params):
        assert len(params) == 2  # the trainable parameters
        return 0.5 * sum((p * p).sum() for p in params)

    h1 = em.fit(m1, (X, y), loss=mse, optimizer=TinySGD(m1.parameters(), 0.0), epochs=1,
                batch_size=16, metrics=(), verbose=0)
    h2 = em.fit(m2, (X, y), loss=mse, optimizer=TinySGD(m2.parameters(), 0.0), epochs=1,
                batch_size=16, metrics=(), verbose=0, regularizers=[l2])
    pen = 0.5 * sum(float((p.data ** 2).sum()) for p in m2.parameters())
    assert h2.history["loss"][0] == pytest.approx(h1.history["loss"][0] + pen, rel=1e-5)
    with pytest.raises(TypeError, match="regularizer"):
        em.fit(m2, (X, y), loss=mse, optimizer=TinySGD(m2.parameters()), verbose=0,
               regularizers=[lambda ps: 3.0])


class _HalvingLR:
    def __init__(self, opt):
        self.opt = opt

    def step(self):
        for g in self.opt.param_groups:
            g["lr"] *= 0.5


class _Plateau:
    def __init__(self):
        self.seen = []

    def step(self, metrics):
        self.seen.append(metrics)


def test_scheduler_stepped_per_epoch_and_lr_logged():
    X, y = _linear_problem(16)
    m = nn.Linear(3, 1)
    opt = TinySGD(m.parameters(), 0.08)
    h = em.fit(m, (X, y), loss=mse, optimizer=opt, epochs=3, batch_size=8, metrics=(),
               scheduler=_HalvingLR(opt), verbose=0)
    assert h.history["lr"] == [0.08, 0.04, 0.02]
    assert opt.param_groups[0]["lr"] == 0.01
    p = _Plateau()
    h = em.fit(m, (X, y), loss=mse, optimizer=opt, epochs=2, batch_size=8, metrics=(),
               scheduler=p, validation_data=(X, y), verbose=0)
    assert p.seen == h.history["val_loss"]


def test_train_on_batch_custom_loop():
    em.manual_seed(0)
    X, y = blobs(60, classes=3)
    model = mlp(2, 16, 3)
    opt = TinySGD(model.parameters(), 0.2)
    losses = [em.train_on_batch(model, X, y, cross_entropy, opt) for _ in range(100)]
    assert isinstance(losses[0], float)
    assert losses[-1] < 0.1 * losses[0]


def test_evaluate_and_predict_restore_modes_and_record_no_graph():
    em.manual_seed(0)
    X, y = blobs(50, classes=3)
    model = mlp(2, 8, 3)
    model.train()
    model[1].eval()  # a user's own per-module choice must survive
    seen = []

    class Spy(nn.Module):
        def forward(self, x):
            seen.append((self.training, em.is_grad_enabled()))
            return x

    model.append(Spy())
    out = em.predict(model, X, batch_size=16)
    assert isinstance(out, np.ndarray) and out.shape == (50, 3) and out.dtype == np.float32
    assert len(seen) == 4 and all(s == (False, False) for s in seen)
    assert model.training and model[0].training and not model[1].training
    with em.no_grad():  # (GEMM blocking depends on the batch size: equal to rounding)
        np.testing.assert_allclose(out, model(X).numpy(), rtol=1e-5, atol=1e-6)
    ev = em.evaluate(model, (X, y), loss=cross_entropy, metrics=("accuracy", "top2"),
                     batch_size=7)
    assert set(ev) == {"loss", "accuracy", "top2"}
    ref = cross_entropy(em.tensor(out), y).item()
    assert ev["loss"] == pytest.approx(ref, rel=1e-5)
    assert ev["accuracy"] == em.metrics.accuracy(out, y)
    assert model.training and not model[1].training
    # a DataLoader / Dataset for predict too (first element of each batch is the input)
    out2 = em.predict(model, DataLoader(ArrayDataset(X, y), batch_size=16))
    np.testing.assert_array_equal(out, out2)
    # with no loss, evaluate gives metrics only
    assert set(em.evaluate(model, (X, y))) == {"accuracy"}


def test_predict_tuple_outputs():
    class Two(nn.Module):
        def forward(self, x):
            x = em.as_tensor(x)
            return x * 2, x.sum(axis=1)

    a, b = em.predict(Two(), np.ones((5, 2), np.float32), batch_size=2)
    assert a.shape == (5, 2) and b.shape == (5,)
    np.testing.assert_array_equal(b, 2)


def test_fit_verbose_levels(capsys):
    X, y = _linear_problem(16)
    m = nn.Linear(3, 1)
    em.fit(m, (X, y), loss=mse, optimizer=TinySGD(m.parameters(), 0.01), epochs=2,
           batch_size=8, metrics=(), verbose=0)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    em.fit(m, (X, y), loss=mse, optimizer=TinySGD(m.parameters(), 0.01), epochs=2,
           batch_size=8, metrics=(), verbose=2)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and "loss=" in out
    buf = io.StringIO()
    em.fit(m, (X, y), loss=mse, optimizer=TinySGD(m.parameters(), 0.01), epochs=2,
           batch_size=8, metrics=("mae",), verbose=1,
           callbacks=[em.callbacks.ProgressBar(file=buf)])
    text = buf.getvalue()
    assert "Epoch 2/2" in text and "loss=" in text and "mae=" in text and "2/2" in text


def test_fit_argument_errors():
    X, y = _linear_problem(8)
    m = nn.Linear(3, 1)
    opt = TinySGD(m.parameters())
    with pytest.raises(TypeError, match="DataLoader"):
        em.fit(m, X, loss=mse, optimizer=opt, verbose=0)
    with pytest.raises(ValueError, match="scalar"):
        em.fit(m, (X, y), loss=lambda o, t: o * 1.0, optimizer=opt, metrics=(), verbose=0)
    with pytest.raises(ValueError, match="unknown loss"):
        em.fit(m, (X, y), loss="no_such_loss", optimizer=opt, verbose=0)
    with pytest.raises(TypeError, match="optimizer"):
        em.fit(m, (X, y), loss=mse, optimizer=object(), verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        em.fit(m, (X, y), loss=mse, optimizer=opt, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="unknown metric"):
        em.fit(m, (X, y), loss=mse, optimizer=opt, metrics=("nope",), verbose=0)


def test_loss_by_name_when_available():
    import ember.functional as F
    if not hasattr(F, "mse_loss"):
        pytest.skip("F.mse_loss not on this branch yet")
    X, y = _linear_problem(32)
    m = nn.Linear(3, 1)
    h = em.fit(m, (X, y), loss="mse", optimizer=TinySGD(m.parameters(), 0.1), epochs=30,
               batch_size=8, metrics=(), verbose=0)
    assert h.history["loss"][-1] < 1e-4


def test_summary_table():
    em.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), ReLU(),
                          nn.Sequential(nn.Linear(8, 6), nn.Linear(6, 2, bias=False)))
    model[2][1].requires_grad_(False)
    model.train()
    lines = []
    text = model.summary((4,), print_fn=lines.append)
    assert lines == [text]
    assert "(None, 8)" in text and "(None, 6)" in text and "(None, 2)" in text
    assert "Total params: 106" in text            # 40 + 54 + 12
    assert "Trainable params: 94" in text and "Non-trainable params: 12" in text
    assert "[frozen]" in text and "2.1 (Linear)" in text
    # the wrappers are gone and modes are back
    assert all("forward" not in m.__dict__ for m in model.modules())
    assert all(m.training for m in model.modules())
    no_shapes = em.train.summary(model, print_fn=None)
    assert "Output shape" not in no_shapes and "Total params: 106" in no_shapes


def test_history_plot(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    X, y = blobs(40, classes=2)
    m = mlp(2, 4, 2)
    h = em.fit(m, (X, y), loss=cross_entropy, optimizer=TinySGD(m.parameters(), 0.1),
               epochs=3, batch_size=10, validation_split=0.25, verbose=0)
    path = tmp_path / "sub" / "curves.png"
    fig = h.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes) == 2  # loss, accuracy
    for mod in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(ImportError, match=r'pip install "ember\[plot\]"'):
        h.plot(tmp_path / "x.png")
    with pytest.raises(ValueError, match="nothing recorded"):
        monkeypatch.undo()
        em.callbacks.History().plot()


def test_default_accuracy_dropped_for_regression_losses():
    X, y = _linear_problem(16)
    m = nn.Linear(3, 1)

    def mse_loss(o, t):
        return mse(o, t)

    h = em.fit(m, (X, y), loss=mse_loss, optimizer=TinySGD(m.parameters(), 0.01), epochs=1,
               batch_size=8, verbose=0)
    assert set(h.history) == {"loss", "lr"}
    assert set(em.evaluate(m, (X, y), loss=mse_loss)) == {"loss"}
    h = em.fit(m, (X, y), loss=mse_loss, optimizer=TinySGD(m.parameters(), 0.01), epochs=1,
               batch_size=8, verbose=0, metrics=["mae"])
    assert "mae" in h.history
    # a classification loss keeps it
    Xc, yc = blobs(16, classes=2)
    mc = mlp(2, 4, 2)
    h = em.fit(mc, (Xc, yc), loss=cross_entropy, optimizer=TinySGD(mc.parameters(), 0.01),
               epochs=1, batch_size=8, verbose=0)
    assert "accuracy" in h.history
