import math

import numpy as np
import pytest

import ember as em
from ember import nn
from ember.callbacks import (Callback, EarlyStopping, LambdaCallback, LearningRateScheduler,
                             ModelCheckpoint, TerminateOnNaN)
from trainkit import TinySGD, blobs, cross_entropy, mlp, mse


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def _rec(name):
        def hook(self, *args):
            self.calls.append((name,) + tuple(a for a in args if isinstance(a, int)))
        return hook

    on_train_begin = _rec("train_begin")
    on_train_end = _rec("train_end")
    on_epoch_begin = _rec("epoch_begin")
    on_epoch_end = _rec("epoch_end")
    on_train_batch_begin = _rec("batch_begin")
    on_train_batch_end = _rec("batch_end")
    on_test_begin = _rec("test_begin")
    on_test_end = _rec("test_end")
    on_test_batch_begin = _rec("test_batch_begin")
    on_test_batch_end = _rec("test_batch_end")


def test_hooks_fire_in_order():
    X, y = blobs(8, classes=2)
    m = mlp(2, 4, 2)
    rec = Recorder()
    em.fit(m, (X, y), loss=cross_entropy, optimizer=TinySGD(m.parameters()), epochs=2,
           batch_size=4, validation_data=(X[:3], y[:3]), callbacks=[rec], verbose=0)
    epoch = lambda e: [("epoch_begin", e), ("batch_begin", 0), ("batch_end", 0),  # noqa: E731
                       ("batch_begin", 1), ("batch_end", 1), ("test_begin",),
                       ("test_batch_begin", 0), ("test_batch_end", 0), ("test_end",),
                       ("epoch_end", e)]
    assert rec.calls == [("train_begin",)] + epoch(0) + epoch(1) + [("train_end",)]
    assert rec.model is m and rec.params["epochs"] == 2 and rec.params["steps"] == 2
    assert rec.optimizer is not None


def test_callbacks_see_logs_and_user_callbacks_run_before_history():
    X, y = blobs(16, classes=2)
    m = mlp(2, 4, 2)
    batch_logs, epoch_logs = [], []

    def on_epoch_end(e, logs):
        epoch_logs.append(dict(logs))
        logs["extra"] = 1.0  # a callback may add a log entry; History records it

    cb = LambdaCallback(on_train_batch_end=lambda b, logs: batch_logs.append(dict(logs)),
                        on_epoch_end=on_epoch_end)
    h = em.fit(m, (X, y), loss=cross_entropy, optimizer=TinySGD(m.parameters()), epochs=2,
               batch_size=8, callbacks=[cb], verbose=0)
    assert len(batch_logs) == 4
    assert {"batch", "size", "loss", "batch_loss", "accuracy"} <= set(batch_logs[0])
    assert batch_logs[1]["loss"] == pytest.approx(
        (batch_logs[0]["batch_loss"] + batch_logs[1]["batch_loss"]) / 2)
    assert epoch_logs[0]["loss"] == pytest.approx(batch_logs[1]["loss"])
    assert h.history["extra"] == [1.0, 1.0]
    with pytest.raises(ValueError, match="unknown hook"):
        LambdaCallback(on_something=print)
    with pytest.raises(TypeError, match="Callback"):
        em.fit(m, (X, y), loss=cross_entropy, optimizer=TinySGD(m.parameters()),
               callbacks=[print], verbose=0)


def _feed(cb, values, monitor="val_loss", model=None):
    """Drives a callback with synthetic epoch logs; returns the epoch it stopped at."""
    model = model or nn.Linear(1, 1)
    model.stop_training = False
    cb.set_model(model)
    cb.on_train_begin({})
    for e, v in enumerate(values):
        cb.on_epoch_end(e, {monitor: v})
        if model.stop_training:
            return e
    return None


def test_early_stopping_patience_and_min_delta():
    assert _feed(EarlyStopping(patience=2), [1.0, 0.9, 0.95, 0.91, 0.5]) == 3
    assert _feed(EarlyStopping(patience=0), [1.0, 0.9, 0.95]) == 2
    assert _feed(EarlyStopping(patience=2), [1.0, 0.9, 0.8, 0.7, 0.6]) is None
    # improvements smaller than min_delta do not count
    assert _feed(EarlyStopping(patience=1, min_delta=0.05), [1.0, 0.97, 0.5]) == 1
    # accuracy-like monitors maximize in auto mode
    es = EarlyStopping(monitor="val_accuracy", patience=1)
    assert es.mode == "max"
    assert _feed(es, [0.5, 0.6, 0.55], monitor="val_accuracy") == 2
    assert _feed(EarlyStopping(patience=1, mode="max"), [1, 2, 3, 2]) == 3
    # baseline: must beat it
    assert _feed(EarlyStopping(patience=2, baseline=0.5), [0.9, 0.8, 0.7]) == 1
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="up")


def test_early_stopping_restores_best_weights_in_fit():
    # Validation labels are the opposite of training labels: the better the fit, the worse
    # val_loss, so the best epoch is the first one.
    em.manual_seed(0)
    X, y = blobs(64, classes=2, spread=0.2)
    m = mlp(2, 8, 2)
    snapshots = []
    rec = LambdaCallback(on_epoch_end=lambda e, logs: snapshots.append(
        {k: v.copy() for k, v in m.state_dict().items()}))
    es = EarlyStopping(patience=2, restore_best_weights=True)
    h = em.fit(m, (X, y), loss=cross_entropy, optimizer=TinySGD(m.parameters(), 0.2),
               epochs=20, batch_size=16, validation_data=(X, 1 - y), callbacks=[rec, es],
               verbose=0)
    vl = h.history["val_loss"]
    best = int(np.argmin(vl))
    assert len(vl) == best + 3 < 20  # stopped after 2 epochs without improvement
    assert es.best_epoch == best and es.stopped_epoch == best + 2
    final = m.state_dict()
    assert all(final[k].tobytes() == snapshots[best][k].tobytes() for k in final)
    assert any(final[k].tobytes() != snapshots[-1][k].tobytes() for k in final)
    # without restore_best_weights the last weights stay
    em.manual_seed(0)
    m2 = mlp(2, 8, 2)
    em.fit(m2, (X, y), loss=cross_entropy, optimizer=TinySGD(m2.parameters(), 0.2),
           epochs=20, batch_size=16, validation_data=(X, 1 - y),
           callbacks=[EarlyStopping(patience=2)], verbose=0)
    assert all(m2.state_dict()[k].tobytes() == snapshots[-1][k].tobytes() for k in final)


def test_early_stopping_warns_on_missing_monitor():
    with pytest.warns(UserWarning, match="val_loss"):
        assert _feed(EarlyStopping(), [1.0, 2.0], monitor="loss") is None


def test_model_checkpoint_writes_only_on_improvement(tmp_path):
    m = nn.Linear(2, 1)
    cb = ModelCheckpoint(tmp_path / "m-{epoch:02d}-{val_loss:.2f}.safetensors",
                         save_best_only=True)
    _feed(cb, [1.0, 0.8, 0.9, 0.7, 0.7], model=m)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["m-01-1.00.safetensors", "m-02-0.80.safetensors",
                     "m-04-0.70.safetensors"]
    sd = em.load(tmp_path / "m-04-0.70.safetensors")
    assert all(sd[k].tobytes() == v.tobytes() for k, v in m.state_dict().items())
    every = ModelCheckpoint(tmp_path / "e{epoch}.safetensors")
    _feed(every, [1.0, 2.0], model=m)
    assert (tmp_path / "e1.safetensors").exists() and (tmp_path / "e2.safetensors").exists()
    mx = ModelCheckpoint(tmp_path / "acc.safetensors", monitor="val_accuracy",
                         save_best_only=True)
    _feed(mx, [0.5, 0.4, 0.6], monitor="val_accuracy", model=m)
    assert len(mx.saved) == 2
    bad = ModelCheckpoint(tmp_path / "{val_acc}.safetensors")
    with pytest.raises(ValueError, match="cannot fill"):
        _feed(bad, [1.0], model=m)


def test_model_checkpoint_in_fit_keeps_the_best_epoch(tmp_path):
    em.manual_seed(0)
    X, y = blobs(64, classes=2, spread=0.2)
    m = mlp(2, 8, 2)
    snapshots = []
    rec = LambdaCallback(on_epoch_end=lambda e, logs: snapshots.append(
        {k: v.copy() for k, v in m.state_dict().items()}))
    path = tmp_path / "best.safetensors"
    ck = ModelCheckpoint(path, save_best_only=True, include_optimizer=True)
    h = em.fit(m, (X, y), loss=cross_entropy, optimizer=TinySGD(m.parameters(), 0.2),
               epochs=6, batch_size=16, validation_data=(X, 1 - y), callbacks=[rec, ck],
               verbose=0)
    vl = h.history["val_loss"]
    improvements = sum(1 for i, v in enumerate(vl) if v < min(vl[:i], default=math.inf))
    assert len(ck.saved) == improvements
    best = int(np.argmin(vl))
    m2 = mlp(2, 8, 2)
    ckpt = em.io.load_checkpoint(path, m2)
    assert ckpt["epoch"] == best + 1 and "optimizer" in ckpt
    assert all(m2.state_dict()[k].tobytes() == snapshots[best][k].tobytes()
               for k in snapshots[best])


def test_terminate_on_nan_stops_at_the_bad_batch(capsys):
    X, y = blobs(40, classes=2)
    m = mlp(2, 4, 2)
    n = [0]

    def loss(out, t):
        n[0] += 1
        value = cross_entropy(out, t)
        return value * float("nan") if n[0] == 3 else value

    cb = TerminateOnNaN()
    h = em.fit(m, (X, y), loss=loss, optimizer=TinySGD(m.parameters(), 0.0), epochs=5,
               batch_size=4, callbacks=[cb], verbose=0)
    assert n[0] == 3 and cb.terminated_at == 2
    assert len(h.epoch) == 1 and math.isnan(h.history["loss"][0])
    assert "TerminateOnNaN" in capsys.readouterr().out


def test_learning_rate_scheduler_function_and_object():
    X, y = blobs(16, classes=2)
    m = mlp(2, 4, 2)
    opt = TinySGD(m.parameters(), 1.0)
    h = em.fit(m, (X, y), loss=cross_entropy, optimizer=opt, epochs=4, batch_size=8,
               callbacks=[LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))],
               verbose=0)
    assert h.history["lr"] == pytest.approx([0.1, 0.05, 0.1 / 3, 0.025])
    h = em.fit(m, (X, y), loss=cross_entropy, optimizer=opt, epochs=2, batch_size=8,
               callbacks=[LearningRateScheduler(lambda epoch: 0.5)], verbose=0)
    assert h.history["lr"] == [0.5, 0.5]

    class Halve:
        def step(self):
            for g in opt.param_groups:
                g["lr"] /= 2

    opt.param_groups[0]["lr"] = 0.8
    h = em.fit(m, (X, y), loss=cross_entropy, optimizer=opt, epochs=3, batch_size=8,
               callbacks=[LearningRateScheduler(Halve())], verbose=0)
    assert h.history["lr"] == [0.8, 0.4, 0.2] and opt.param_groups[0]["lr"] == 0.1
    with pytest.raises(ValueError, match="invalid learning rate"):
        em.fit(m, (X, y), loss=cross_entropy, optimizer=opt, epochs=1, verbose=0,
               callbacks=[LearningRateScheduler(lambda e, lr: -1.0)])


def test_stop_training_from_a_batch_hook():
    X, y = _reg = (np.ones((20, 1), np.float32), np.ones((20, 1), np.float32))
    m = nn.Linear(1, 1)
    count = [0]

    def stop(b, logs):
        count[0] += 1
        if b == 1:
            m.stop_training = True

    h = em.fit(m, (X, y), loss=mse, optimizer=TinySGD(m.parameters(), 0.0), epochs=3,
               batch_size=5, metrics=(), callbacks=[LambdaCallback(on_train_batch_end=stop)],
               verbose=0)
    assert count[0] == 2 and len(h.epoch) == 1
