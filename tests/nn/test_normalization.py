"""LayerNorm, BatchNorm1d/2d, Dropout, Embedding, Residual modules vs torch: outputs, grads,
running statistics over several steps, eval mode, state_dict keys and torch state_dict loading."""
import numpy as np
import pytest

import ember as em
from ember import nn

torch = pytest.importorskip("torch")
rng = np.random.default_rng(0)


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def load_from_torch(em_mod, t_mod):
    em_mod.load_state_dict(t_mod.state_dict())


def check_step(em_mod, t_mod, x, atol=2e-5):
    """One forward/backward through both modules; compares output, input grad, param grads."""
    ex = em.tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    ey, ty = em_mod(ex), t_mod(tx)
    np.testing.assert_allclose(ey.numpy(), ty.detach().numpy(), atol=atol, rtol=1e-4)
    g = f32(*ey.shape)
    ey.backward(g)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), atol=atol, rtol=1e-4)
    tparams = dict(t_mod.named_parameters())
    for name, p in em_mod.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), atol=atol,
                                   rtol=1e-4, err_msg=name)


# ---- LayerNorm -------------------------------------------------------------------------------

@pytest.mark.parametrize("ns,xshape,kw", [
    (8, (4, 8), {}), ((3, 4), (2, 5, 3, 4), {}), ((2, 3, 4), (3, 2, 3, 4), {}),
    (6, (5, 6), {"elementwise_affine": False}), (6, (5, 6), {"bias": False}),
    (5, (2, 5), {"eps": 1e-3})])
def test_layernorm_vs_torch(ns, xshape, kw):
    t = torch.nn.LayerNorm(ns, **kw)
    with torch.no_grad():
        for p in t.parameters():
            p.copy_(torch.tensor(f32(*p.shape)))
    e = nn.LayerNorm(ns, **kw)
    assert list(e.state_dict()) == list(t.state_dict())
    load_from_torch(e, t)
    check_step(e, t, f32(*xshape) * 2 + 0.5)


# ---- BatchNorm -------------------------------------------------------------------------------

@pytest.mark.parametrize("cls,xshape,kw", [
    ("BatchNorm1d", (8, 5), {}), ("BatchNorm1d", (4, 3, 6), {}),
    ("BatchNorm2d", (3, 4, 5, 5), {}), ("BatchNorm2d", (2, 3, 4, 4), {"momentum": None}),
    ("BatchNorm1d", (6, 4), {"affine": False}), ("BatchNorm2d", (2, 3, 3, 3), {"momentum": 0.3,
                                                                              "eps": 1e-3}),
    ("BatchNorm1d", (5, 3), {"track_running_stats": False})])
def test_batchnorm_training_steps_then_eval_vs_torch(cls, xshape, kw):
    t = getattr(torch.nn, cls)(xshape[1], **kw)
    if t.weight is not None:
        with torch.no_grad():
            t.weight.copy_(torch.tensor(1 + 0.3 * f32(xshape[1])))
            t.bias.copy_(torch.tensor(f32(xshape[1])))
    e = getattr(nn, cls)(xshape[1], **kw)
    assert list(e.state_dict()) == list(t.state_dict())
    load_from_torch(e, t)
    for step in range(4):
        if e.weight is not None:
            e.zero_grad()
            t.zero_grad()
        check_step(e, t, f32(*xshape) * (step + 1) + step)
    for k, v in t.state_dict().items():
        ev = e.state_dict()[k]
        assert ev.dtype == v.numpy().dtype, k
        np.testing.assert_allclose(ev, v.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
    e.eval()
    t.eval()
    check_step(e, t, f32(*xshape) * 3 + 1)
    # batch of 1 in eval mode (without running stats eval uses batch stats: an error in both)
    x1 = f32(1, *xshape[1:])
    if kw.get("track_running_stats", True) or len(xshape) > 2:
        check_step(e, t, x1)
    else:
        with pytest.raises(ValueError):
            t(torch.tensor(x1))
        with pytest.raises(ValueError, match="more than 1 value per channel"):
            e(x1)


def test_batchnorm_num_batches_tracked_int64_and_batch1_training_error():
    bn = nn.BatchNorm1d(4)
    assert bn.num_batches_tracked.dtype == np.int64 and bn.num_batches_tracked.shape == ()
    bn(f32(3, 4))
    bn(f32(3, 4))
    assert int(bn.num_batches_tracked.item()) == 2
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(f32(1, 4))
    with pytest.raises(ValueError):  # torch raises ValueError too
        torch.nn.BatchNorm1d(4)(torch.zeros(1, 4))
    assert int(bn.num_batches_tracked.item()) == 2
    bn(f32(1, 4, 3))  # (N, C, L) with N = 1 still has 3 values per channel


def test_batchnorm_bad_input_rank():
    with pytest.raises(ValueError, match="expected 2D or 3D input"):
        nn.BatchNorm1d(3)(f32(2, 3, 4, 4))
    with pytest.raises(ValueError, match="expected 4D input"):
        nn.BatchNorm2d(3)(f32(2, 3))
    with pytest.raises(ValueError, match="channels"):
        nn.BatchNorm2d(3)(f32(2, 4, 2, 2))


def test_load_trained_torch_state_dict_gives_torch_outputs():
    t = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
                            torch.nn.LayerNorm(8), torch.nn.Linear(8, 3))
    opt = torch.optim.SGD(t.parameters(), lr=0.1)
    for _ in range(5):
        opt.zero_grad()
        t(torch.tensor(f32(16, 6))).pow(2).mean().backward()
        opt.step()
    t.eval()

    class Relu(nn.Module):
        def forward(self, x):
            return x * (x > 0).numpy().astype(np.float32)

    e = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), Relu(), nn.LayerNorm(8),
                      nn.Linear(8, 3))
    assert list(e.state_dict()) == list(t.state_dict())
    e.load_state_dict(t.state_dict())
    e.eval()
    x = f32(5, 6)
    np.testing.assert_allclose(e(x).numpy(), t(torch.tensor(x)).detach().numpy(), atol=1e-5)


# ---- Dropout, Embedding, Residual ------------------------------------------------------------

def test_dropout_modules_train_eval_and_seed():
    d = nn.Dropout(0.5)
    x = em.ones(10, 10)
    em.manual_seed(0)
    a = d(x).numpy()
    em.manual_seed(0)
    np.testing.assert_array_equal(d(x).numpy(), a)
    assert set(np.unique(a)) <= {0.0, 2.0}
    d.eval()
    np.testing.assert_array_equal(d(x).numpy(), x.numpy())
    assert d.state_dict() == {}
    d2 = nn.Dropout2d(0.5)
    y = d2(em.ones(4, 6, 3, 3)).numpy().reshape(4, 6, 9)
    assert ((y == 0).all(-1) | (y == 2).all(-1)).all()


def test_embedding_module_vs_torch_and_padding():
    t = torch.nn.Embedding(9, 4, padding_idx=2)
    e = nn.Embedding(9, 4, padding_idx=2)
    np.testing.assert_array_equal(e.weight.numpy()[2], 0)
    assert list(e.state_dict()) == list(t.state_dict())
    e.load_state_dict(t.state_dict())
    ids = rng.integers(0, 9, (3, 4))
    ey, ty = e(ids), t(torch.tensor(ids))
    np.testing.assert_array_equal(ey.numpy(), ty.detach().numpy())
    g = f32(3, 4, 4)
    ey.backward(g)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(e.weight.grad.numpy(), t.weight.grad.numpy(), atol=1e-6)
    np.testing.assert_array_equal(e.weight.grad.numpy()[2], 0)


def test_embedding_from_pretrained():
    w = f32(5, 3)
    e = nn.Embedding.from_pretrained(w)
    assert not e.weight.requires_grad
    w[0, 0] = 100  # a copy was taken
    assert e.weight.numpy()[0, 0] != 100
    y = e([1, 4])
    np.testing.assert_array_equal(y.numpy(), e.weight.numpy()[[1, 4]])
    assert not y.requires_grad
    e2 = nn.Embedding.from_pretrained(torch.tensor(f32(5, 3)), freeze=False, padding_idx=0)
    assert e2.weight.requires_grad and e2.padding_idx == 0
    e2([0, 1]).sum().backward()
    np.testing.assert_array_equal(e2.weight.grad.numpy()[0], 0)
    np.testing.assert_array_equal(e2.weight.grad.numpy()[1], 1)
    with pytest.raises(IndexError, match="index 5 .*5 rows"):
        e([5])


def test_residual_gradient_is_identity_plus_block():
    lin = nn.Linear(4, 4)
    r = nn.Residual(lin)
    assert list(r.state_dict()) == ["block.weight", "block.bias"]
    x = em.tensor(f32(3, 4), requires_grad=True)
    y = r(x)
    W = lin.weight.numpy()
    np.testing.assert_allclose(y.numpy(), x.numpy() + x.numpy() @ W.T + lin.bias.numpy(),
                               atol=1e-6)
    g = f32(3, 4)
    y.backward(g)
    np.testing.assert_allclose(x.grad.numpy(), g + g @ W, atol=1e-6)
    tx = torch.tensor(x.numpy(), requires_grad=True)
    tw, tb = torch.tensor(W, requires_grad=True), torch.tensor(lin.bias.numpy(),
                                                               requires_grad=True)
    (tx + torch.nn.functional.linear(tx, tw, tb)).backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), atol=1e-6)
    np.testing.assert_allclose(lin.weight.grad.numpy(), tw.grad.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="does not match input shape"):
        nn.Residual(nn.Linear(4, 2))(f32(3, 4))


def test_residual_layernorm_stack_bitwise_across_threads():
    em.manual_seed(0)
    model = nn.Sequential(*[nn.Residual(nn.Sequential(nn.LayerNorm(64), nn.Linear(64, 64)))
                            for _ in range(3)], nn.BatchNorm1d(64))
    x0 = f32(256, 64)
    outs = []
    prev = em.get_num_threads()
    try:
        for n in (1, 2):
            em.set_num_threads(n)
            model.zero_grad()
            y = model(x0)
            y.backward(np.ones(y.shape, np.float32) * 0.1 + x0)
            outs.append([y.numpy().copy()] + [p.grad.numpy().copy() for p in model.parameters()])
    finally:
        em.set_num_threads(prev)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
