"""Module.to / float / double and Tensor.to: dtype conversion as PyTorch users write it."""
import numpy as np
import pytest

import ember as em
from ember import nn



@pytest.mark.parametrize("spec", [np.float64, "float64", "double", np.dtype(np.float64)])
def test_double_then_float_round_trip(spec):
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    before = {k: v.copy() for k, v in net.state_dict().items()}
    params = list(net.parameters())
    assert net.to(spec) is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]   # same objects
    for k, v in net.state_dict().items():
        want = np.float64 if before[k].dtype.kind == "f" else before[k].dtype
        assert v.dtype == want, k                 # num_batches_tracked stays an integer
        np.testing.assert_array_equal(v, before[k])
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6))
    y = net.eval()(em.tensor(x, dtype=np.float64))   # eval: running stats stay put
    assert y.dtype == np.float64
    y.sum().backward()
    assert all(p.grad.dtype == np.float64 for p in net.parameters())
    net.float()                                   # grads are converted too
    assert all(p.dtype == np.float32 and p.grad.dtype == np.float32 for p in net.parameters())
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_to_matches_torch_semantics():
    torch = pytest.importorskip("torch")
    lin = nn.Linear(3, 2)
    assert lin.to(torch.float64).weight.dtype == np.float64
    assert lin.to(dtype=torch.float32).weight.dtype == np.float32
    assert lin.to("cpu") is lin and lin.weight.dtype == np.float32
    assert lin.to(torch.device("cpu"), torch.float64).bias.dtype == np.float64
    assert lin.double().float().weight.dtype == np.float32
    ref = em.tensor(np.zeros(2), dtype=np.float64)
    assert lin.to(ref).weight.dtype == np.float64


def test_to_bad_arguments():
    lin = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="Module.to: ember runs on the CPU only; got device "
                                         "'cuda'"):
        lin.to("cuda")
    with pytest.raises(TypeError, match="float32 or float64, got int64"):
        lin.to(np.int64)
    with pytest.raises(TypeError, match="float32 or float64, got float16"):
        lin.to(np.float16)
    with pytest.raises(TypeError, match="'banana' is not a dtype or a device"):
        lin.to("banana")
    with pytest.raises(TypeError, match="more than one dtype"):
        lin.to(np.float32, np.float64)
    assert lin.weight.dtype == np.float32        # nothing half-converted


def test_tensor_to():
    t = em.tensor([1.0, 2.0], requires_grad=True)
    assert t.to("cpu") is t
    d = t.to("float64")
    assert d.dtype == np.float64
    d.sum().backward()                           # differentiable, as astype
    assert t.grad.dtype == np.float32
    np.testing.assert_array_equal(t.grad.numpy(), [1.0, 1.0])
    with pytest.raises(ValueError, match="Tensor.to: ember runs on the CPU only"):
        t.to("cuda:0")


@pytest.mark.parametrize("make", [lambda: nn.Linear(5, 3), lambda: nn.Conv1d(2, 3, 3),
                                  lambda: nn.Conv2d(2, 3, 3)])
def test_float64_numpy_input_to_a_float64_layer_keeps_its_precision(make):
    layer = make().double()
    shape = {nn.Linear: (4, 5), nn.Conv1d: (2, 2, 7), nn.Conv2d: (2, 2, 5, 5)}[type(layer)]
    x = np.random.default_rng(0).standard_normal(shape) * (1 + 1e-12)   # not float32-exact
    got = layer(x)
    want = layer(em.tensor(x, dtype=np.float64))
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    np.testing.assert_array_equal(layer(np.asfortranarray(x)).numpy(), want.numpy())
    # float32 layers still take float64 numpy data as float32
    assert layer.float()(x).dtype == np.float32
