"""Every optimizer against torch.optim: same parameters, same random gradients, >= 20 steps."""
import copy

import numpy as np
import pytest

import ember as em
from ember import nn, optim

torch = pytest.importorskip("torch")

SHAPES = [(7,), (3, 5), (1,), (70, 93)]  # the last one is big enough to run threaded
STEPS = 25
RTOL, ATOL = 1e-5, 1e-6

# Largest deviations seen, per optimizer (printed by test_report_deviations, run last).
DEVIATIONS = {}


def _params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _grads(step, dtype, seed=100):
    rng = np.random.default_rng(seed + step)
    # a per-step scale so that AMSGrad's running max and Adagrad's sums see varied magnitudes
    return [(rng.standard_normal(s) * rng.uniform(0.05, 3.0)).astype(dtype) for s in SHAPES]


def _groups(em_params, t_params, group_lrs):
    if group_lrs is None:
        return em_params, t_params
    # split the parameters into len(group_lrs) groups with their own lr
    k = len(group_lrs)
    eg = [{"params": em_params[i::k], "lr": lr} for i, lr in enumerate(group_lrs)]
    tg = [{"params": t_params[i::k], "lr": lr} for i, lr in enumerate(group_lrs)]
    return eg, tg


def _record(name, a, b):
    """Largest |a - b|, largest |a - b| / |b| where |b| >= 0.01, and the largest share of the
    allclose budget (atol + rtol |b|) used."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    d = np.abs(a - b)
    big = np.abs(b) >= 1e-2
    rel = float((d[big] / np.abs(b[big])).max(initial=0))
    budget = float((d / (ATOL + RTOL * np.abs(b))).max(initial=0))
    old = DEVIATIONS.get(name, (0.0, 0.0, 0.0))
    DEVIATIONS[name] = (max(old[0], float(d.max(initial=0))), max(old[1], rel),
                        max(old[2], budget))


def run_against_torch(em_cls, t_cls, kwargs, steps=STEPS, dtype=np.float32, group_lrs=None,
                      rtol=RTOL, atol=ATOL, name=None):
    init = _params(dtype)
    ep = [nn.Parameter(a.copy()) for a in init]
    tp = [torch.nn.Parameter(torch.tensor(a.copy())) for a in init]
    eg, tg = _groups(ep, tp, group_lrs)
    eopt = em_cls(eg, **kwargs)
    topt = t_cls(tg, **kwargs)
    for step in range(steps):
        for e, t, g in zip(ep, tp, _grads(step, dtype)):
            e.grad = em.Tensor(g.copy())
            t.grad = torch.tensor(g.copy())
        eopt.step()
        topt.step()
        for i, (e, t) in enumerate(zip(ep, tp)):
            tv = t.detach().numpy()
            if name:
                _record(name, e.data, tv)
            np.testing.assert_allclose(e.data, tv, rtol=rtol, atol=atol,
                                       err_msg=f"param {i} differs from torch at step {step}")
    # the state buffers agree too
    for e, t in zip(ep, tp):
        est, tst = eopt.state.get(e, {}), topt.state[t]
        for key, val in est.items():
            if key == "step":
                assert val == int(tst["step"])
            else:
                # moment buffers match torch bitwise; RMSprop's momentum buffer sums
                # g / avg terms of both signs, so its tolerance scales with its magnitude
                tv = tst[key].numpy()
                np.testing.assert_allclose(val, tv, rtol=rtol,
                                           atol=max(atol, rtol * float(np.abs(tv).max())),
                                           err_msg=f"state {key} differs from torch")
    return ep, eopt


SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.5),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.8, weight_decay=0.01, nesterov=True),
    dict(lr=0.05, weight_decay=0.1),
    dict(lr=0.05, momentum=0.5, maximize=True),
]
ADAM_CASES = [
    dict(),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, amsgrad=True),
    dict(lr=0.02, betas=(0.5, 0.9), eps=1e-6, amsgrad=True, weight_decay=0.05),
    dict(lr=0.01, betas=(0.3, 0.99)),  # 1 - beta1 >= 0.5: the other branch of lerp
    dict(lr=0.01, maximize=True),
]
ADAMW_CASES = [dict(), dict(lr=0.01, weight_decay=0.1, amsgrad=True),
               dict(lr=0.05, weight_decay=0.5, betas=(0.8, 0.95))]
RMSPROP_CASES = [
    dict(),
    dict(lr=0.01, centered=True),
    dict(lr=0.01, centered=True, momentum=0.9, weight_decay=0.01),
    dict(lr=0.01, momentum=0.5),
    dict(lr=0.005, alpha=0.9, eps=1e-6, weight_decay=0.1),
    dict(lr=0.01, alpha=0.3, centered=True),  # 1 - alpha >= 0.5: the other branch of lerp
]
ADAGRAD_CASES = [
    dict(),
    dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1),
    dict(lr=0.05, eps=1e-6, maximize=True),
]

ALL = ([("SGD", c) for c in SGD_CASES] + [("Adam", c) for c in ADAM_CASES]
       + [("AdamW", c) for c in ADAMW_CASES] + [("RMSprop", c) for c in RMSPROP_CASES]
       + [("Adagrad", c) for c in ADAGRAD_CASES])


@pytest.mark.parametrize("name,kwargs", ALL, ids=[f"{n}-{i}" for i, (n, _) in enumerate(ALL)])
def test_matches_torch(name, kwargs):
    run_against_torch(getattr(optim, name), getattr(torch.optim, name), kwargs, name=name)


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9)),
                                         ("Adam", dict(lr=0.01)), ("AdamW", dict(lr=0.01)),
                                         ("RMSprop", dict(centered=True, momentum=0.5)),
                                         ("Adagrad", dict(lr_decay=0.1))])
def test_param_groups_with_different_lrs(name, kwargs):
    run_against_torch(getattr(optim, name), getattr(torch.optim, name), kwargs,
                      group_lrs=[0.1, 0.003], name=name)


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
                                         ("Adam", dict(lr=0.01, amsgrad=True)),
                                         ("AdamW", dict(lr=0.01)),
                                         ("RMSprop", dict(centered=True, momentum=0.5)),
                                         ("Adagrad", dict(lr_decay=0.1, weight_decay=0.1))])
def test_float64_kernels(name, kwargs):
    ep, _ = run_against_torch(getattr(optim, name), getattr(torch.optim, name), kwargs,
                              dtype=np.float64, rtol=1e-12, atol=1e-13)
    assert all(p.data.dtype == np.float64 for p in ep)


def test_group_hyperparameters_follow_group_dict():
    # changing a group's lr between steps (what schedulers do) is honoured at the next step
    init = _params(np.float32)
    ep = [nn.Parameter(a.copy()) for a in init]
    tp = [torch.nn.Parameter(torch.tensor(a.copy())) for a in init]
    eo, to = optim.Adam(ep, lr=0.01), torch.optim.Adam(tp, lr=0.01)
    for step in range(20):
        for gr in (eo.param_groups[0], to.param_groups[0]):
            gr["lr"] = 0.01 * (0.9 ** step)
        for e, t, g in zip(ep, tp, _grads(step, np.float32)):
            e.grad, t.grad = em.Tensor(g.copy()), torch.tensor(g.copy())
        eo.step()
        to.step()
    for e, t in zip(ep, tp):
        np.testing.assert_allclose(e.data, t.detach().numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("cls", [optim.SGD, optim.Adam, optim.AdamW, optim.RMSprop,
                                 optim.Adagrad])
def test_frozen_and_gradless_params_untouched(cls):
    kw = dict(lr=0.1, momentum=0.9) if cls in (optim.SGD, optim.RMSprop) else dict(lr=0.1)
    a = nn.Parameter(np.ones((3, 4), np.float32))
    frozen = nn.Parameter(np.ones((3, 4), np.float32))
    nograd = nn.Parameter(np.ones((5,), np.float32))
    opt = cls([a, frozen, nograd], **kw)
    frozen.requires_grad_(False)
    frozen.grad = em.Tensor(np.ones((3, 4), np.float32))  # a stale grad on a frozen param
    for _ in range(3):
        a.grad = em.Tensor(np.full((3, 4), 0.5, np.float32))
        opt.step()
    assert not np.array_equal(a.data, np.ones((3, 4)))
    np.testing.assert_array_equal(frozen.data, np.ones((3, 4)))
    np.testing.assert_array_equal(nograd.data, np.ones(5))
    assert frozen not in opt.state and nograd not in opt.state


def test_zero_grad_semantics():
    a = nn.Parameter(np.ones(4, np.float32))
    b = nn.Parameter(np.ones(2, np.float32))
    opt = optim.SGD([a, b], lr=0.1)
    a.grad = em.Tensor(np.full(4, 3.0, np.float32))
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    a.grad = em.Tensor(np.full(4, 3.0, np.float32))
    buf = a.grad.data
    opt.zero_grad(set_to_none=False)
    assert a.grad.data is buf and np.all(buf == 0)
    assert b.grad is None


def test_zero_grad_then_backward_trains():
    # the usual loop: zero_grad / backward / step decreases a quadratic loss
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 5)).astype(np.float32)
    y = x @ rng.standard_normal((5, 1)).astype(np.float32)
    model = nn.Linear(5, 1)
    opt = optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(150):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 1e-2 * losses[0]


def test_step_closure_returns_loss():
    p = nn.Parameter(np.array([2.0], np.float32))
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(4.0)
    assert p.data[0] == pytest.approx(1.0)  # 2 - 0.25 * 4


def _jsonish(obj):
    """What a trip through em.save / em.load may do to a state dict: fresh arrays, lists."""
    if isinstance(obj, dict):
        return {k: _jsonish(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonish(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.copy()
    return obj


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
                                         ("Adam", dict(lr=0.01, amsgrad=True)),
                                         ("AdamW", dict(lr=0.01, weight_decay=0.1)),
                                         ("RMSprop", dict(centered=True, momentum=0.5)),
                                         ("Adagrad", dict(lr_decay=0.1))])
def test_state_dict_round_trip_resumes_identically(name, kwargs):
    cls = getattr(optim, name)
    init = _params(np.float32)
    ref = [nn.Parameter(a.copy()) for a in init]
    ropt = cls([{"params": ref[:2], "lr": 0.02}, {"params": ref[2:]}], **kwargs)
    for step in range(10):
        for p, g in zip(ref, _grads(step, np.float32)):
            p.grad = em.Tensor(g)
        ropt.step()
    sd = _jsonish(ropt.state_dict())
    assert sorted(sd["state"]) == [0, 1, 2, 3]
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2, 3]]
    # a fresh model (same weights) and a fresh optimizer with other hyper-parameters
    res = [nn.Parameter(p.data.copy()) for p in ref]
    ropt2 = cls([{"params": res[:2], "lr": 0.5}, {"params": res[2:]}], **kwargs)
    ropt2.load_state_dict(sd)
    assert ropt2.param_groups[0]["lr"] == 0.02
    for step in range(10, 20):
        for p, q, g in zip(ref, res, _grads(step, np.float32)):
            p.grad = em.Tensor(g.copy())
            q.grad = em.Tensor(g.copy())
        ropt.step()
        ropt2.step()
    for p, q in zip(ref, res):
        np.testing.assert_array_equal(p.data, q.data)
    # the loaded buffers are the optimizer's own (not the dict's arrays)
    for st in sd["state"].values():
        for v in st.values():
            if isinstance(v, np.ndarray):
                assert all(v is not w for s2 in ropt2.state.values() for w in s2.values())


def test_load_state_dict_rejects_mismatch():
    a, b = nn.Parameter(np.ones(3, np.float32)), nn.Parameter(np.ones(4, np.float32))
    opt = optim.Adam([a, b])
    a.grad, b.grad = em.Tensor(np.ones(3, np.float32)), em.Tensor(np.ones(4, np.float32))
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="parameter group 0 has 2 parameters"):
        optim.Adam([a]).load_state_dict(sd)
    with pytest.raises(ValueError, match="parameter groups"):
        optim.Adam([{"params": [a]}, {"params": [b]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match="shape"):
        optim.Adam([b, a]).load_state_dict(sd)
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        optim.Adam([a, b]).load_state_dict({"foo": 1})


def test_add_param_group():
    a, b = nn.Parameter(np.ones(3, np.float32)), nn.Parameter(np.ones(2, np.float32))
    opt = optim.SGD([a], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": [b], "lr": 0.01})
    assert opt.param_groups[1]["lr"] == 0.01 and opt.param_groups[1]["momentum"] == 0.9
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="invalid lr"):
        opt.add_param_group({"params": [nn.Parameter(np.ones(1, np.float32))], "lr": -1})


BAD = [
    (optim.SGD, dict(lr=-0.1), "lr"),
    (optim.SGD, dict(lr=0.1, momentum=-0.5), "momentum"),
    (optim.SGD, dict(lr=0.1, weight_decay=-1), "weight_decay"),
    (optim.SGD, dict(lr=0.1, nesterov=True), "Nesterov"),
    (optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov"),
    (optim.Adam, dict(lr=-1e-3), "lr"),
    (optim.Adam, dict(betas=(1.0, 0.999)), "beta"),
    (optim.Adam, dict(betas=(0.9, -0.1)), "beta"),
    (optim.Adam, dict(betas=(0.9,)), "betas"),
    (optim.Adam, dict(eps=-1e-8), "eps"),
    (optim.Adam, dict(weight_decay=-0.1), "weight_decay"),
    (optim.AdamW, dict(betas=(0.9, 1.5)), "beta"),
    (optim.RMSprop, dict(alpha=-0.1), "alpha"),
    (optim.RMSprop, dict(eps=-1.0), "eps"),
    (optim.RMSprop, dict(momentum=-0.1), "momentum"),
    (optim.Adagrad, dict(lr_decay=-0.1), "lr_decay"),
    (optim.Adagrad, dict(initial_accumulator_value=-1.0), "initial_accumulator_value"),
    (optim.Adagrad, dict(lr=float("nan")), "lr"),
]


@pytest.mark.parametrize("cls,kwargs,word", BAD)
def test_bad_hyperparameters_raise(cls, kwargs, word):
    with pytest.raises(ValueError, match=word):
        cls([nn.Parameter(np.ones(2, np.float32))], **kwargs)


def test_bad_params_raise():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(nn.Parameter(np.ones(2, np.float32)), lr=0.1)
    with pytest.raises(TypeError, match="only optimize Tensors"):
        optim.SGD([np.ones(2)], lr=0.1)


def test_kernel_argument_errors():
    p = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="grad shape"):
        em._core.sgd_step(p, np.ones(5, np.float32), None, 0.1, 0.0, 0.0, 0.0, False, False,
                          False)
    with pytest.raises(TypeError, match="float64"):
        em._core.adam_step(p, np.ones(4, np.float64), np.zeros(4, np.float32),
                           np.zeros(4, np.float32), None, 1, 0.1, 0.9, 0.999, 1e-8, 0.0,
                           False, False, False)
    with pytest.raises(ValueError, match="momentum_buffer"):
        em._core.sgd_step(p, p.copy(), None, 0.1, 0.9, 0.0, 0.0, False, False, False)
    with pytest.raises(ValueError, match="read-only"):
        ro = np.ones(4, np.float32)
        ro.flags.writeable = False
        em._core.adagrad_step(ro, p, np.zeros(4, np.float32), 1, 0.1, 0.0, 0.0, 1e-10, False)
    with pytest.raises(TypeError, match="float32 or float64"):
        em._core.sgd_step(np.ones(4, np.int64), np.ones(4, np.int64), None, 0.1, 0.0, 0.0,
                          0.0, False, False, False)


def test_grad_dtype_mismatch_is_converted():
    p = nn.Parameter(np.ones(3, np.float32))
    p.grad = em.Tensor(np.ones(3, np.float64), dtype=np.float64)
    optim.SGD([p], lr=0.5).step()
    np.testing.assert_array_equal(p.data, np.full(3, 0.5, np.float32))


@pytest.mark.parametrize("cls,kw", [(optim.Adam, dict(lr=0.01, amsgrad=True)),
                                    (optim.RMSprop, dict(centered=True, momentum=0.9)),
                                    (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
                                    (optim.Adagrad, dict())])
def test_same_bits_at_1_and_2_threads(cls, kw):
    before = em.get_num_threads()
    outs = []
    try:
        for nt in (1, 2):
            em.set_num_threads(nt)
            ps = [nn.Parameter(a) for a in _params(np.float32)]
            opt = cls(ps, **kw)
            for step in range(5):
                for p, g in zip(ps, _grads(step, np.float32)):
                    p.grad = em.Tensor(g)
                opt.step()
            outs.append([p.data.copy() for p in ps])
    finally:
        em.set_num_threads(before)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_zz_report_deviations(capsys):
    """Prints the largest deviation from torch seen above (float32, all cases)."""
    assert DEVIATIONS, "the torch comparisons did not run"
    with capsys.disabled():
        print()
        for k, (a, r, u) in sorted(DEVIATIONS.items()):
            print(f"  {k:8s} max |ember - torch| = {a:.3g}   max rel (|torch| >= 0.01) = "
                  f"{r:.3g}   max share of atol+rtol*|torch| = {u:.3g}")
    for _, _, u in DEVIATIONS.values():
        assert u <= 1
