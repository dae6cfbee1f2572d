"""nn.Module, nn.Parameter, nn.Sequential: traversal, modes, grads, state_dict, repr."""
from collections import OrderedDict

import numpy as np
import pytest

import ember as em
from ember import nn

rng = np.random.default_rng(0)


def make_model():
    return nn.Sequential(nn.Linear(4, 8), nn.Identity(),
                         nn.Sequential(nn.Linear(8, 6), nn.Flatten()), nn.Linear(6, 3, bias=False))


def make_torch_model(torch):
    tnn = torch.nn
    return tnn.Sequential(tnn.Linear(4, 8), tnn.Identity(),
                          tnn.Sequential(tnn.Linear(8, 6), tnn.Flatten()),
                          tnn.Linear(6, 3, bias=False))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 5)
        self.body = nn.Sequential(nn.Linear(5, 5), nn.Identity())
        self.scale = nn.Parameter(np.ones(5, dtype=np.float32))
        self.register_buffer("steps", np.zeros(1, dtype=np.float32))
        self.not_a_param = em.ones(2)  # a plain tensor attribute is not registered

    def forward(self, x):
        return self.body(self.fc1(x)) * self.scale


# ---- traversal ---------------------------------------------------------------------------------

def test_named_parameters_children_modules():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "fc1.weight", "fc1.bias", "body.0.weight", "body.0.bias"]
    assert all(isinstance(p, nn.Parameter) for p in net.parameters())
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["scale"]
    assert [n for n, _ in net.named_children()] == ["fc1", "body"]
    assert list(net.children()) == [net.fc1, net.body]
    mods = list(net.modules())
    assert mods[0] is net and len(mods) == 5
    assert [n for n, _ in net.named_modules()] == ["", "fc1", "body", "body.0", "body.1"]
    assert [n for n, _ in net.named_buffers()] == ["steps"]
    assert net.num_parameters() == 3 * 5 + 5 + 25 + 5 + 5


def test_named_parameters_match_torch():
    torch = pytest.importorskip("torch")
    assert [n for n, _ in make_model().named_parameters()] == \
        [n for n, _ in make_torch_model(torch).named_parameters()]
    assert [n for n, _ in make_model().named_modules()] == \
        [n for n, _ in make_torch_model(torch).named_modules()]


def test_shared_module_parameters_listed_once():
    lin = nn.Linear(3, 3)
    seq = nn.Sequential(lin, lin)
    assert len(list(seq.parameters())) == 2


def test_setattr_rules():
    net = Net()
    with pytest.raises(TypeError, match="fc1"):
        net.fc1 = em.ones(3)
    with pytest.raises(TypeError, match="scale"):
        net.scale = em.ones(5)
    net.scale = None
    assert "scale" not in [n for n, _ in net.named_parameters()]
    with pytest.raises(AttributeError, match="nope"):
        net.nope

    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match="super"):
        Bad()


# ---- modes and grads ---------------------------------------------------------------------------

def test_train_eval_propagate():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.body.train()
    assert net.body[0].training and not net.fc1.training and not net.training
    net.train()
    assert all(m.training for m in net.modules())


def test_zero_grad():
    net = Net()
    net(rng.standard_normal((2, 3))).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_requires_grad_false_freezes():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    assert not model[0].weight.requires_grad and model[1].weight.requires_grad
    model(rng.standard_normal((5, 3))).sum().backward()
    assert model[0].weight.grad is None and model[0].bias.grad is None
    assert model[1].weight.grad is not None and model[1].bias.grad is not None
    assert model.num_parameters(trainable_only=True) == 4 * 2 + 2
    model.requires_grad_(False)
    out = model(rng.standard_normal((5, 3)))
    assert not out.requires_grad
    model.requires_grad_()
    assert all(p.requires_grad for p in model.parameters())


# ---- state_dict ------------------------------------------------------------------------------

def test_state_dict_keys_match_torch():
    torch = pytest.importorskip("torch")
    ours = make_model().state_dict()
    theirs = make_torch_model(torch).state_dict()
    assert list(ours.keys()) == list(theirs.keys())
    for k in ours:
        assert ours[k].shape == tuple(theirs[k].shape)


def test_state_dict_shares_memory_and_includes_buffers():
    net = Net()
    sd = net.state_dict()
    assert sd["fc1.weight"] is net.fc1.weight.data
    assert "steps" in sd and "not_a_param" not in sd
    net.register_buffer("tmp", np.zeros(1), persistent=False)
    assert "tmp" not in net.state_dict()


def test_load_torch_state_dict_gives_torch_outputs():
    torch = pytest.importorskip("torch")
    tm = make_torch_model(torch)
    model = make_model()
    params_before = [id(p) for p in model.parameters()]
    result = model.load_state_dict(tm.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert [id(p) for p in model.parameters()] == params_before  # copied in place
    x = rng.standard_normal((7, 4)).astype(np.float32)
    np.testing.assert_allclose(model(x).numpy(), tm(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_load_state_dict_roundtrip_and_copy_semantics():
    a, b = make_model(), make_model()
    sd = a.state_dict()
    b.load_state_dict(OrderedDict((k, v.copy()) for k, v in sd.items()))
    x = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    b.load_state_dict(a.state_dict())
    assert not np.shares_memory(a[0].weight.numpy(), b[0].weight.numpy())


def test_load_state_dict_strict_errors_list_keys():
    model = make_model()
    sd = dict(model.state_dict())
    del sd["0.bias"]
    sd["extra.weight"] = np.zeros(3, dtype=np.float32)
    with pytest.raises(ValueError) as e:
        model.load_state_dict(sd)
    msg = str(e.value)
    assert "missing" in msg and "'0.bias'" in msg
    assert "unexpected" in msg and "'extra.weight'" in msg
    before = model[0].weight.numpy().copy()
    sd2 = dict(sd)
    sd2["0.weight"] = np.ones((8, 4), dtype=np.float32) * 5
    res = model.load_state_dict(sd2, strict=False)
    assert res.missing_keys == ["0.bias"] and res.unexpected_keys == ["extra.weight"]
    assert not np.array_equal(before, model[0].weight.numpy())
    np.testing.assert_array_equal(model[0].weight.numpy(), 5)


def test_load_state_dict_shape_mismatch_names_key_and_shapes():
    model = make_model()
    sd = dict(model.state_dict())
    sd["2.0.weight"] = np.zeros((6, 9), dtype=np.float32)
    before = model[0].weight.numpy().copy()
    for strict in (True, False):
        with pytest.raises(ValueError, match=r"2\.0\.weight.*\(6, 9\).*\(6, 8\)"):
            model.load_state_dict(sd, strict=strict)
    np.testing.assert_array_equal(before, model[0].weight.numpy())  # nothing half-loaded


def test_state_dict_of_shared_module_matches_torch():
    # torch lists a module used twice under both names; a torch checkpoint of a tied model
    # must load into the same ember model
    torch = pytest.importorskip("torch")
    tl = torch.nn.Linear(3, 3)
    tm = torch.nn.Sequential(tl, tl)
    lin = nn.Linear(3, 3)
    model = nn.Sequential(lin, lin)
    assert list(model.state_dict().keys()) == list(tm.state_dict().keys())
    model.load_state_dict(tm.state_dict())
    x = rng.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(model(x).numpy(), tm(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


# ---- repr -------------------------------------------------------------------------------------

def test_repr_like_torch():
    torch = pytest.importorskip("torch")
    assert repr(make_model()) == repr(make_torch_model(torch))
    assert repr(nn.Linear(2, 3)) == "Linear(in_features=2, out_features=3, bias=True)"


# ---- Parameter ----------------------------------------------------------------------------------

def test_parameter():
    a = np.ones((2, 3), dtype=np.float32)
    p = nn.Parameter(a)
    assert isinstance(p, em.Tensor) and p.requires_grad and p.is_leaf
    assert p.numpy() is a  # wraps without a copy
    assert nn.Parameter([1.0, 2.0]).dtype == np.float32
    assert nn.Parameter(np.ones(2)).dtype == np.float64  # explicit float64 arrays stay float64
    assert not nn.Parameter(a, requires_grad=False).requires_grad
    t = em.ones(2)
    assert nn.Parameter(t).numpy() is t.numpy()
    assert repr(p).startswith("Parameter containing:\ntensor(")
    with pytest.raises(TypeError):
        nn.Parameter(np.array([1, 2]))
    with pytest.raises(TypeError):
        nn.Module().register_parameter("w", em.ones(2))


# ---- Sequential / containers ------------------------------------------------------------------

def test_sequential_indexing_and_slicing():
    torch = pytest.importorskip("torch")
    model = make_model()
    tm = make_torch_model(torch)
    assert len(model) == 4
    assert model[0] is list(model)[0]
    assert model[-1] is model[3]
    sub = model[1:3]
    assert isinstance(sub, nn.Sequential) and len(sub) == 2
    assert [n for n, _ in sub.named_children()] == [n for n, _ in tm[1:3].named_children()]
    assert sub[0] is model[1]
    assert repr(model[::2]) == repr(tm[::2])
    with pytest.raises(IndexError):
        model[4]
    with pytest.raises(TypeError):
        nn.Sequential(nn.Linear(2, 2), "relu")


def test_sequential_from_ordered_dict_and_forward():
    seq = nn.Sequential(OrderedDict(fc=nn.Linear(3, 2), out=nn.Identity()))
    assert [n for n, _ in seq.named_parameters()] == ["fc.weight", "fc.bias"]
    x = rng.standard_normal((4, 3)).astype(np.float32)
    w, b = seq.fc.weight.numpy(), seq.fc.bias.numpy()
    np.testing.assert_allclose(seq(x).numpy(), x @ w.T + b, rtol=1e-5, atol=1e-6)
    seq.append(nn.Linear(2, 1))
    assert seq(x).shape == (4, 1)


def test_module_list():
    ml = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 3)])
    ml.append(nn.Identity())
    assert len(ml) == 3 and len(list(ml.parameters())) == 4
    assert [n for n, _ in ml.named_parameters()][:2] == ["0.weight", "0.bias"]
    assert isinstance(ml[1:], nn.ModuleList) and len(ml[1:]) == 2


def test_flatten_module():
    x = rng.standard_normal((2, 3, 4))
    assert nn.Flatten()(x).shape == (2, 12)
    assert nn.Flatten(0, -1)(x).shape == (24,)
    assert nn.Unflatten(1, (3, 4))(np.zeros((2, 12))).shape == (2, 3, 4)


def test_deepcopy_gives_an_independent_model():
    import copy
    model = make_model()
    model(rng.standard_normal((2, 4))).sum().backward()
    clone = copy.deepcopy(model)
    assert isinstance(clone[0].weight, nn.Parameter) and clone[0].weight.requires_grad
    assert not np.shares_memory(clone[0].weight.numpy(), model[0].weight.numpy())
    x = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(clone(x).numpy(), model(x).numpy())
    clone[0].weight.data += 1
    assert not np.array_equal(clone(x).numpy(), model(x).numpy())


def test_reassigning_a_parameter_or_submodule_keeps_its_place():
    from ember.nn import Parameter
    lin = nn.Linear(2, 3)
    lin.weight = Parameter(np.zeros((3, 2), np.float32))
    assert list(lin.state_dict()) == ["weight", "bias"]
    seq = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    seq[0] = nn.Linear(2, 2)
    setattr(seq, "1", nn.Tanh())
    assert [type(m).__name__ for m in seq] == ["Linear", "Tanh", "Linear"]
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
