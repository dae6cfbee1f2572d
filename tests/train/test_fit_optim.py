"""fit / callbacks / checkpoints with ember's real optimizers, schedulers and penalties."""
import numpy as np
import pytest

import ember as em
from ember import nn
from trainkit import blobs, cross_entropy, mlp, mse

optim = em.optim
if not hasattr(optim, "Adam") or not hasattr(optim, "lr_scheduler"):
    pytest.skip("needs ember.optim's optimizers and schedulers", allow_module_level=True)


def test_fit_with_adam_reaches_zero_loss():
    em.manual_seed(0)
    X, y = blobs(120, classes=3)
    m = mlp(2, 32, 3)
    h = em.fit(m, (X, y), loss=cross_entropy, optimizer=optim.Adam(m.parameters(), lr=1e-2),
               epochs=40, batch_size=16, verbose=0)
    assert h.history["loss"][-1] < 0.01 and h.history["accuracy"][-1] == 1.0


def test_fit_steps_step_lr_and_plateau():
    X, y = blobs(32, classes=2)
    m = mlp(2, 4, 2)
    opt = optim.SGD(m.parameters(), lr=0.1)
    sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    h = em.fit(m, (X, y), loss=cross_entropy, optimizer=opt, epochs=5, batch_size=8,
               scheduler=sched, verbose=0)
    assert h.history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    opt = optim.SGD(m.parameters(), lr=0.1)
    plateau = optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    # validation labels opposite to training ones: val_loss only rises -> lr halves each time
    h = em.fit(m, (X, y), loss=cross_entropy, optimizer=opt, epochs=4, batch_size=8,
               scheduler=plateau, validation_data=(X, 1 - y), verbose=0)
    lrs = h.history["lr"]
    assert lrs[0] == 0.1 and lrs[-1] < 0.1 and all(b <= a for a, b in zip(lrs, lrs[1:]))


def test_learning_rate_scheduler_callback_with_ember_scheduler():
    X, y = blobs(32, classes=2)
    m = mlp(2, 4, 2)
    opt = optim.SGD(m.parameters(), lr=0.2)
    cb = em.callbacks.LearningRateScheduler(optim.lr_scheduler.ExponentialLR(opt, gamma=0.5))
    h = em.fit(m, (X, y), loss=cross_entropy, optimizer=opt, epochs=3, batch_size=8,
               callbacks=[cb], verbose=0)
    assert h.history["lr"] == pytest.approx([0.2, 0.1, 0.05])


def test_l2_penalty_regularizer():
    if not hasattr(nn.utils, "L2Penalty"):
        pytest.skip("needs nn.utils.L2Penalty")
    X = np.random.default_rng(0).standard_normal((32, 3)).astype(np.float32)
    y = X.sum(axis=1, keepdims=True)
    em.manual_seed(0)
    free = nn.Linear(3, 1)
    em.manual_seed(0)
    reg = nn.Linear(3, 1)
    kw = dict(loss=mse, epochs=50, batch_size=8, verbose=0)
    em.fit(free, (X, y), optimizer=optim.SGD(free.parameters(), lr=0.05), **kw)
    em.fit(reg, (X, y), optimizer=optim.SGD(reg.parameters(), lr=0.05),
           regularizers=[nn.utils.L2Penalty(0.5)], **kw)
    assert np.abs(reg.weight.numpy()).sum() < 0.8 * np.abs(free.weight.numpy()).sum()


def test_checkpoint_resume_is_bitwise(tmp_path):
    """Train 4 epochs straight == train 2, checkpoint, reload everything, train 2 more."""
    X, y = blobs(48, classes=3)

    def make():
        em.manual_seed(0)
        m = mlp(2, 8, 3)
        opt = optim.Adam(m.parameters(), lr=1e-2)
        return m, opt, optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.9)

    kw = dict(loss=cross_entropy, batch_size=8, shuffle=False, verbose=0)
    a, oa, sa = make()
    em.fit(a, (X, y), optimizer=oa, scheduler=sa, epochs=4, **kw)
    b, ob, sb = make()
    em.fit(b, (X, y), optimizer=ob, scheduler=sb, epochs=2, **kw)
    em.io.save_checkpoint(tmp_path / "c.safetensors", b, ob, epoch=2, scheduler=sb)
    c, oc, sc = make()
    ckpt = em.io.load_checkpoint(tmp_path / "c.safetensors", c, oc, sc)
    em.fit(c, (X, y), optimizer=oc, scheduler=sc, epochs=2, initial_epoch=ckpt["epoch"], **kw)
    for k, v in a.state_dict().items():
        assert c.state_dict()[k].tobytes() == v.tobytes(), k
    assert oc.param_groups[0]["lr"] == oa.param_groups[0]["lr"]


def test_frozen_parameters_untouched_by_fit():
    X, y = blobs(32, classes=2)
    m = mlp(2, 8, 2)
    m[0].requires_grad_(False)
    before = m[0].weight.numpy().copy()
    em.fit(m, (X, y), loss=cross_entropy, optimizer=optim.Adam(m.parameters(), lr=1e-2),
           epochs=3, batch_size=8, verbose=0, regularizers=[lambda ps: sum(
               (p * p).sum() for p in ps) * 1e-3])
    assert m[0].weight.numpy().tobytes() == before.tobytes()
