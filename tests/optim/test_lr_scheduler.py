"""Every scheduler's learning-rate sequence against torch.optim.lr_scheduler over 40 epochs."""
import numpy as np
import pytest

import ember as em
from ember import nn, optim
from ember.optim import lr_scheduler as S

torch = pytest.importorskip("torch")
TS = torch.optim.lr_scheduler

EPOCHS = 40


def _pair(lrs=(0.1, 0.02), opt="SGD", **kw):
    ep = [{"params": [nn.Parameter(np.ones(2, np.float32))], "lr": lr} for lr in lrs]
    tp = [{"params": [torch.nn.Parameter(torch.ones(2))], "lr": lr} for lr in lrs]
    return getattr(optim, opt)(ep, **kw), getattr(torch.optim, opt)(tp, **kw)


CASES = [
    ("StepLR", dict(step_size=7, gamma=0.5)),
    ("StepLR", dict(step_size=1, gamma=0.9)),
    ("MultiStepLR", dict(milestones=[5, 12, 12, 30], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.93)),
    ("CosineAnnealingLR", dict(T_max=10)),
    ("CosineAnnealingLR", dict(T_max=15, eta_min=1e-3)),
    ("LinearLR", dict()),
    ("LinearLR", dict(start_factor=0.1, end_factor=0.8, total_iters=12)),
]


@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_sequence_matches_torch(name, kw):
    eo, to = _pair()
    es, ts = getattr(S, name)(eo, **kw), getattr(TS, name)(to, **kw)
    assert es.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12, abs=0)
    for epoch in range(EPOCHS):
        eo.step()
        to.step()
        es.step()
        ts.step()
        assert es.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12, abs=1e-15), \
            f"epoch {epoch}"
        assert [g["lr"] for g in eo.param_groups] == es.get_last_lr()


@pytest.mark.parametrize("name,kw", CASES[:1] + CASES[2:5] + CASES[7:],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_state_dict_round_trip(name, kw):
    eo, _ = _pair()
    es = getattr(S, name)(eo, **kw)
    for _ in range(9):
        eo.step()
        es.step()
    sd = es.state_dict()
    assert "optimizer" not in sd
    # a resumed run: optimizer state (with initial_lr) and scheduler state restored
    eo2, _ = _pair()
    eo2.load_state_dict(eo.state_dict())
    es2 = getattr(S, name)(eo2, **kw)
    es2.load_state_dict(sd)
    eo2.load_state_dict(eo.state_dict())
    for _ in range(20):
        es.step()
        es2.step()
        assert es.get_last_lr() == es2.get_last_lr()


def _plateau_metric(i):
    # improves, plateaus, improves a little (below threshold), jumps back
    seq = [10, 9, 8, 8, 8, 8, 8, 7.9999, 8, 8, 8, 6, 6, 6, 6, 6, 6, 5, 5.5, 5.5, 5.5, 5.5,
           5.5, 5.5, 5.5, 5.5, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4]
    return seq[i % len(seq)]


PLATEAU = [
    dict(),
    dict(patience=2),
    dict(patience=1, factor=0.5, cooldown=2),
    dict(patience=0, factor=0.5, min_lr=0.004),
    dict(patience=1, factor=0.5, min_lr=[0.05, 0.001]),
    dict(patience=2, threshold=0.5, threshold_mode="abs"),
    dict(mode="max", patience=2, factor=0.7),
    dict(mode="max", patience=1, threshold_mode="abs", threshold=0.1, cooldown=1),
]


@pytest.mark.parametrize("kw", PLATEAU)
def test_reduce_on_plateau_matches_torch(kw):
    eo, to = _pair()
    es, ts = S.ReduceLROnPlateau(eo, **kw), TS.ReduceLROnPlateau(to, **kw)
    sign = -1 if kw.get("mode") == "max" else 1
    changed = False
    for epoch in range(45):
        m = sign * _plateau_metric(epoch)
        es.step(m)
        ts.step(m)
        assert es.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12), f"epoch {epoch}"
        assert es.num_bad_epochs == ts.num_bad_epochs and es.best == ts.best
        changed |= es.get_last_lr()[0] != 0.1
    assert changed  # the scripted metric really drives a reduction


def test_reduce_on_plateau_state_dict():
    eo, _ = _pair()
    es = S.ReduceLROnPlateau(eo, patience=1)
    for i in range(8):
        es.step(_plateau_metric(i))
    eo2, _ = _pair()
    es2 = S.ReduceLROnPlateau(eo2, patience=1)
    es2.load_state_dict(es.state_dict())
    eo2.load_state_dict(eo.state_dict())
    for i in range(8, 30):
        es.step(_plateau_metric(i))
        es2.step(_plateau_metric(i))
        assert es.get_last_lr() == es2.get_last_lr()


def test_scheduler_drives_adam_like_torch():
    # the scheduled lr reaches the fused kernel: Adam + CosineAnnealingLR vs torch, 30 epochs
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3)).astype(np.float32)
    ep, tp = nn.Parameter(w.copy()), torch.nn.Parameter(torch.tensor(w.copy()))
    eo, to = optim.Adam([ep], lr=0.05), torch.optim.Adam([tp], lr=0.05)
    es, ts = S.CosineAnnealingLR(eo, T_max=8), TS.CosineAnnealingLR(to, T_max=8)
    for _ in range(30):
        g = rng.standard_normal((4, 3)).astype(np.float32)
        ep.grad = em.Tensor(g.copy())
        tp.grad = torch.tensor(g.copy())
        eo.step()
        to.step()
        es.step()
        ts.step()
    np.testing.assert_allclose(ep.data, tp.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_closed_form_with_epoch_argument():
    eo, to = _pair()
    es, ts = S.StepLR(eo, step_size=3, gamma=0.5), TS.StepLR(to, step_size=3, gamma=0.5)
    with pytest.warns(UserWarning):
        ts.step(7)
    es.step(7)
    assert es.get_last_lr() == pytest.approx(ts.get_last_lr())


def test_bad_arguments_raise():
    eo, _ = _pair()
    with pytest.raises(ValueError, match="start_factor"):
        S.LinearLR(eo, start_factor=0)
    with pytest.raises(ValueError, match="end_factor"):
        S.LinearLR(eo, end_factor=1.5)
    with pytest.raises(ValueError, match="step_size"):
        S.StepLR(eo, step_size=0)
    with pytest.raises(ValueError, match="T_max"):
        S.CosineAnnealingLR(eo, T_max=0)
    with pytest.raises(ValueError, match="factor"):
        S.ReduceLROnPlateau(eo, factor=1.0)
    with pytest.raises(ValueError, match="mode"):
        S.ReduceLROnPlateau(eo, mode="up")
    with pytest.raises(ValueError, match="min_lrs"):
        S.ReduceLROnPlateau(eo, min_lr=[0.1])
    with pytest.raises(TypeError, match="not an ember Optimizer"):
        S.StepLR(object(), step_size=2)
    eo3, _ = _pair()
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(eo3, step_size=2, last_epoch=5)
