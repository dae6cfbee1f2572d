"""Tensor operators: float64 finite differences, forward and grads against torch, broadcasting,
memory sharing, dtype rules, numpy interop."""
import numpy as np
import pytest

import ember as em
from helpers import compare_torch, gradcheck

rng = np.random.default_rng(0)


def r(*shape):
    return rng.standard_normal(shape)


def pos(*shape):
    return rng.uniform(0.5, 2.0, shape)


# ---- binary operators with broadcasting ----------------------------------------------------

BINARY = [
    ("add", lambda a, b: a + b),
    ("sub", lambda a, b: a - b),
    ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b),
    ("pow", lambda a, b: a ** b),
]
BROADCAST_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((1,), (2, 3)),
                    ((), (2, 3)), ((2, 3), ())]


@pytest.mark.parametrize("name,fn", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.parametrize("sa,sb", BROADCAST_SHAPES, ids=str)
def test_binary_gradcheck(name, fn, sa, sb):
    a = pos(*sa)  # positive: pow and div stay smooth
    b = pos(*sb)
    gradcheck(fn, a, b)


@pytest.mark.parametrize("name,fn", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.parametrize("sa,sb", BROADCAST_SHAPES, ids=str)
def test_binary_vs_torch(name, fn, sa, sb):
    pytest.importorskip("torch")
    compare_torch(fn, fn, pos(*sa), pos(*sb))


@pytest.mark.parametrize("name,fn", BINARY, ids=[b[0] for b in BINARY])
def test_binary_with_python_scalar_both_sides(name, fn):
    pytest.importorskip("torch")
    a = pos(3, 2)
    compare_torch(lambda x: fn(x, 1.5), lambda x: fn(x, 1.5), a)
    compare_torch(lambda x: fn(2.5, x), lambda x: fn(2.5, x), a)


def test_binary_shape_error_names_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        em.ones(2, 3) + em.ones(4)


def test_neg_and_pos():
    pytest.importorskip("torch")
    gradcheck(lambda a: -a, r(3, 2))
    compare_torch(lambda a: -a, lambda a: -a, r(3, 2))
    t = em.tensor([1.0])
    assert (+t) is t


@pytest.mark.parametrize("e", [2, 3, 0.5, -1.5, 1])
def test_pow_scalar_exponent(e):
    pytest.importorskip("torch")
    a = pos(4, 3)
    gradcheck(lambda x: x ** e, a)
    compare_torch(lambda x: x ** e, lambda x: x ** e, a)
    compare_torch(lambda x: x.pow(e), lambda x: x.pow(e), a)


def test_pow_zero_exponent_grad_at_zero_is_zero():
    # d/dx x**0 is 0 everywhere, x = 0 included (torch masks it); 0 * 0**-1 would be nan.
    x = em.tensor([0.0, 2.0], requires_grad=True)
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])
    x = em.tensor([0.0, 2.0], requires_grad=True)
    e = em.tensor([0.0, 0.0], requires_grad=True)
    (x ** e).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])


# ---- matmul -----------------------------------------------------------------------------------

MATMUL_SHAPES = [((3, 4), (4, 5)), ((1, 7), (7, 1)), ((4,), (4, 3)), ((3, 4), (4,)), ((4,), (4,)),
                 ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)), ((2, 3, 4), (2, 4, 5)),
                 ((1, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (3, 4, 2)), ((5,), (2, 5, 3)),
                 ((2, 3, 5), (5,)), ((0, 4), (4, 3)), ((3, 0), (0, 2))]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=str)
def test_matmul_gradcheck(sa, sb):
    if 0 in sa or 0 in sb:
        pytest.skip("nothing to check finitely")
    gradcheck(lambda a, b: a @ b, r(*sa), r(*sb))


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=str)
def test_matmul_vs_torch(sa, sb):
    pytest.importorskip("torch")
    compare_torch(lambda a, b: a @ b, lambda a, b: a @ b, r(*sa), r(*sb))


def test_matmul_errors():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        em.ones(2, 3) @ em.ones(4, 5)
    with pytest.raises(TypeError, match="dtype"):
        em.ones(2, 3) @ em.ones(3, 4, dtype=em.float64)
    with pytest.raises(ValueError):
        em.ones(2, 2, 3) @ em.ones(3, 3, 4)


# ---- reductions -------------------------------------------------------------------------------

REDUCE_AXES = [None, 0, 1, -1, (0, 2), (0, 1, 2)]


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min"])
@pytest.mark.parametrize("axis", REDUCE_AXES, ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduction_gradcheck(op, axis, keepdims):
    a = rng.permutation(24).reshape(2, 3, 4) * 0.1 + r(2, 3, 4) * 0.01  # distinct values
    gradcheck(lambda x: getattr(x, op)(axis=axis, keepdims=keepdims), a)


def _torch_reduce(op, axis, keepdims):
    import torch

    def f(x):
        if axis is None:
            out = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax,
                   "min": torch.amin}[op](x, dim=tuple(range(x.ndim)), keepdim=keepdims)
            return out
        fn = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin}[op]
        return fn(x, dim=axis, keepdim=keepdims)
    return f


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min"])
@pytest.mark.parametrize("axis", REDUCE_AXES, ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduction_vs_torch(op, axis, keepdims):
    pytest.importorskip("torch")
    a = r(2, 3, 4)
    compare_torch(lambda x: getattr(x, op)(axis=axis, keepdims=keepdims),
                  _torch_reduce(op, axis, keepdims), a)


def test_reduction_dim_keyword_and_ties():
    pytest.importorskip("torch")
    import torch
    a = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    # ties split the gradient equally (torch.amax's rule)
    compare_torch(lambda x: x.max(dim=1), lambda x: torch.amax(x, dim=1), a)
    compare_torch(lambda x: x.min(), lambda x: torch.amin(x), a)
    compare_torch(lambda x: x.sum(dim=0, keepdims=True), lambda x: x.sum(0, keepdim=True), a)


def test_reduction_errors():
    with pytest.raises(IndexError):
        em.ones(2, 3).sum(axis=2)
    with pytest.raises(ValueError, match=r"\(0, 3\)"):
        em.ones(0, 3).max()
    with pytest.raises(ValueError, match=r"\(0, 3\)"):
        em.ones(0, 3).min(axis=0)


def test_max_of_a_zero_size_batch_over_features():
    # as torch.amax: reducing over non-empty axes of an empty tensor is fine (0-size batches)
    pytest.importorskip("torch")
    import torch
    compare_torch(lambda x: x.max(axis=1, keepdims=True), lambda x: torch.amax(x, 1, True),
                  r(0, 3))
    x = em.tensor(r(0, 3), requires_grad=True)
    x.min(axis=-1).sum().backward()
    assert x.grad.shape == (0, 3)


def test_mean_keeps_float64():
    assert em.ones(3, dtype=em.float64).mean().dtype == np.float64
    assert em.ones(3).mean().dtype == np.float32


# ---- shape ops --------------------------------------------------------------------------------

def test_reshape_flatten_view_squeeze():
    pytest.importorskip("torch")
    a = r(2, 3, 4)
    for em_fn, t_fn in [
        (lambda x: x.reshape(6, 4), lambda x: x.reshape(6, 4)),
        (lambda x: x.reshape((4, -1)), lambda x: x.reshape((4, -1))),
        (lambda x: x.view(24), lambda x: x.view(24)),
        (lambda x: x.flatten(), lambda x: x.flatten()),
        (lambda x: x.flatten(1), lambda x: x.flatten(1)),
        (lambda x: x.flatten(0, 1), lambda x: x.flatten(0, 1)),
        (lambda x: x.unsqueeze(1), lambda x: x.unsqueeze(1)),
        (lambda x: x.unsqueeze(-1), lambda x: x.unsqueeze(-1)),
        (lambda x: x.reshape(2, 1, 12).squeeze(1), lambda x: x.reshape(2, 1, 12).squeeze(1)),
        (lambda x: x.reshape(1, 24, 1).squeeze(), lambda x: x.reshape(1, 24, 1).squeeze()),
    ]:
        compare_torch(em_fn, t_fn, a)
        gradcheck(em_fn, a)


def test_reshape_error_names_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 2\)"):
        em.ones(2, 3).reshape(4, 2)


def test_transpose_permute():
    pytest.importorskip("torch")
    a = r(2, 3, 4)
    for em_fn, t_fn in [
        (lambda x: x.transpose(0, 2), lambda x: x.transpose(0, 2)),
        (lambda x: x.transpose(-1, -2), lambda x: x.transpose(-1, -2)),
        (lambda x: x.permute(2, 0, 1), lambda x: x.permute(2, 0, 1)),
        (lambda x: x.permute((1, 2, 0)), lambda x: x.permute((1, 2, 0))),
        (lambda x: x.reshape(6, 4).T, lambda x: x.reshape(6, 4).T),
    ]:
        compare_torch(em_fn, t_fn, a)
        gradcheck(em_fn, a)
    # results are C-contiguous (kernels need that)
    assert em.tensor(a).permute(2, 0, 1).numpy().flags.c_contiguous
    with pytest.raises(ValueError):
        em.tensor(a).permute(0, 0, 1)


# ---- unary elementwise ------------------------------------------------------------------------

UNARY = [
    ("exp", lambda x: x.exp(), r),
    ("log", lambda x: x.log(), pos),
    ("sqrt", lambda x: x.sqrt(), pos),
    ("abs", lambda x: x.abs(), r),
    ("clamp_both", lambda x: x.clamp(-0.5, 0.5), r),
    ("clamp_min", lambda x: x.clamp(min=0.1), r),
    ("clamp_max", lambda x: x.clamp(max=-0.2), r),
]


@pytest.mark.parametrize("name,fn,gen", UNARY, ids=[u[0] for u in UNARY])
def test_unary(name, fn, gen):
    pytest.importorskip("torch")
    a = gen(3, 5)
    if name.startswith("clamp") or name == "abs":
        # keep finite differences away from the kinks
        a = np.where(np.abs(np.abs(a) - 0.5) < 0.02, a + 0.1, a)
        a = np.where(np.abs(a - 0.1) < 0.02, a + 0.1, a)
        a = np.where(np.abs(a + 0.2) < 0.02, a + 0.1, a)
        a = np.where(np.abs(a) < 0.02, a + 0.1, a)
    gradcheck(fn, a)
    compare_torch(fn, fn, a)


def test_clamp_grad_at_boundaries_like_torch():
    pytest.importorskip("torch")
    a = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    compare_torch(lambda x: x.clamp(-0.5, 0.5), lambda x: x.clamp(-0.5, 0.5), a)
    compare_torch(lambda x: x.abs(), lambda x: x.abs(), a)


def test_clamp_needs_a_bound():
    with pytest.raises(ValueError):
        em.ones(2).clamp()


# ---- indexing ---------------------------------------------------------------------------------

INDICES = [
    ("int", 1),
    ("neg_int", -1),
    ("slice", slice(1, 3)),
    ("step_slice", (slice(None), slice(None, None, 2))),
    ("int_slice", (0, slice(1, None))),
    ("fancy", [0, 2]),
    ("fancy_repeated", [1, 1, 0, 1]),
    ("fancy_2d_repeated", ([0, 0, 2], [1, 1, 3])),
    ("mixed", (slice(None), [3, 0, 3])),
    ("ellipsis", (Ellipsis, 1)),
    ("newaxis", (None, slice(0, 2))),
]


@pytest.mark.parametrize("name,idx", INDICES, ids=[i[0] for i in INDICES])
def test_getitem(name, idx):
    pytest.importorskip("torch")
    a = r(3, 4)
    gradcheck(lambda x: x[idx], a)
    compare_torch(lambda x: x[idx], lambda x: x[idx], a)


def test_getitem_tensor_and_bool_index():
    pytest.importorskip("torch")
    import torch
    a = r(4, 3)
    idx = np.array([3, 0, 3, 3])
    compare_torch(lambda x: x[em.tensor(idx)], lambda x: x[torch.tensor(idx)], a)
    mask = a[:, 0] > 0
    compare_torch(lambda x: x[mask], lambda x: x[torch.tensor(mask)], a)


def test_getitem_out_of_range_raises_indexerror():
    with pytest.raises(IndexError):
        em.ones(2, 3)[5]
    with pytest.raises(IndexError):
        em.ones(2, 3)[[0, 7]]


# ---- cat / stack ------------------------------------------------------------------------------

@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat(dim):
    pytest.importorskip("torch")
    import torch
    shapes = {0: [(2, 3), (1, 3), (4, 3)], 1: [(2, 1), (2, 3), (2, 2)], -1: [(2, 2), (2, 1)]}
    arrays = [r(*s) for s in shapes[dim]]
    gradcheck(lambda *xs: em.cat(xs, dim), *arrays)
    compare_torch(lambda *xs: em.cat(xs, dim), lambda *xs: torch.cat(xs, dim), *arrays)


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_stack(dim):
    pytest.importorskip("torch")
    import torch
    arrays = [r(2, 3) for _ in range(3)]
    gradcheck(lambda *xs: em.stack(xs, dim), *arrays)
    compare_torch(lambda *xs: em.stack(xs, dim), lambda *xs: torch.stack(xs, dim), *arrays)


def test_cat_stack_mixed_requires_grad_and_errors():
    a = em.tensor(r(2, 2), requires_grad=True)
    b = np.ones((1, 2), dtype=np.float32)  # plain numpy joins the graph as a constant
    out = em.cat([a, b])
    out.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"\(2, 2\).*\(1, 3\)"):
        em.cat([em.ones(2, 2), em.ones(1, 3)])
    with pytest.raises(ValueError, match=r"\(2, 2\).*\(2, 3\)"):
        em.stack([em.ones(2, 2), em.ones(2, 3)])
    with pytest.raises(ValueError):
        em.cat([])


# ---- memory, numpy interop, dtypes -----------------------------------------------------------

def test_numpy_shares_memory_without_copy():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = em.Tensor(a)
    assert t.numpy() is a
    t.numpy()[0, 0] = 42
    assert a[0, 0] == 42
    # as_tensor too; em.tensor copies
    assert em.as_tensor(a).numpy() is a
    c = em.tensor(a)
    assert not np.shares_memory(c.numpy(), a)


def test_data_update_in_place():
    p = em.nn.Parameter(np.ones((2, 3), dtype=np.float32))
    buf = p.data
    (p * 3.0).sum().backward()
    p.data -= 0.5 * p.grad
    assert p.data is buf
    np.testing.assert_array_equal(buf, np.full((2, 3), -0.5, dtype=np.float32))
    assert p.requires_grad and p.is_leaf


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "matmul", "pow"])
def test_ndarray_op_tensor_stays_in_graph(op):
    t = em.tensor(pos(3, 3), requires_grad=True)
    a = pos(3, 3)  # float64 ndarray on the left
    out = {"add": lambda: a + t, "sub": lambda: a - t, "mul": lambda: a * t,
           "div": lambda: a / t, "matmul": lambda: a @ t, "pow": lambda: a ** t}[op]()
    assert isinstance(out, em.Tensor)
    assert out.requires_grad and out.dtype == np.float32
    out.sum().backward()
    assert t.grad is not None and np.all(np.isfinite(t.grad.numpy()))
    assert np.abs(t.grad.numpy()).sum() > 0


def test_numpy_scalar_op_tensor():
    t = em.tensor([1.0, 2.0], requires_grad=True)
    out = np.float64(2.0) * t + np.float32(1.0)
    assert isinstance(out, em.Tensor) and out.dtype == np.float32
    out.sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), [2.0, 2.0])


def test_non_contiguous_numpy_inputs():
    pytest.importorskip("torch")
    base = r(6, 8)
    a = base[::2, 1::2]  # strided view
    b = base.T[:4, :3]   # transposed view
    assert not a.flags.c_contiguous and not b.flags.c_contiguous
    compare_torch(lambda x, y: x @ y + x.sum(), lambda x, y: x @ y + x.sum(), a, b)
    t = em.as_tensor(a.astype(np.float32))
    assert t.numpy().flags.c_contiguous
    np.testing.assert_array_equal(t.numpy(), a.astype(np.float32))
    np.testing.assert_allclose((em.ones(3, 4) * b.T).numpy(), b.T, rtol=1e-6)


def test_zero_size_batch():
    pytest.importorskip("torch")
    a, b = r(0, 4), r(4, 3)
    compare_torch(lambda x, y: ((x @ y) * 2 + 1).sum(0), lambda x, y: ((x @ y) * 2 + 1).sum(0),
                  a, b)
    t = em.tensor(a, requires_grad=True)
    out = (t.exp() * t).mean(axis=1)
    assert out.shape == (0,)
    out.sum().backward()
    assert t.grad.shape == (0, 4)
    assert em.cat([em.ones(0, 3), em.ones(2, 3)]).shape == (2, 3)
    assert em.tensor(a)[1:].shape == (0, 4)


def test_dtype_rules():
    x64 = r(2, 3)
    assert em.tensor(x64).dtype == np.float32
    assert em.as_tensor(x64).dtype == np.float32
    assert em.tensor([1.0, 2.0]).dtype == np.float32
    assert em.tensor(x64, dtype=em.float64).dtype == np.float64
    assert em.tensor([1, 2]).dtype == np.int64
    assert em.tensor(np.array([1, 2], dtype=np.int32)).dtype == np.int64
    assert em.ones(2, 2).dtype == np.float32
    # float64 survives through ops (gradient checks run in it)
    t = em.tensor(x64, dtype=em.float64, requires_grad=True)
    out = ((t * 2.0 + 1) ** 2).exp().log().sum()
    assert out.dtype == np.float64
    out.backward()
    assert t.grad.dtype == np.float64
    # a Python float does not promote float32
    assert (em.ones(2) * 0.1).dtype == np.float32
    with pytest.raises(TypeError):
        em.tensor(["a", None])


def test_item_and_scalar_conversions():
    t = em.tensor([[3.5]])
    assert t.item() == 3.5 and float(t) == 3.5
    with pytest.raises(ValueError, match=r"\(2,\)"):
        em.ones(2).item()


def test_comparisons_return_bool_without_graph():
    t = em.tensor([1.0, 2.0], requires_grad=True)
    m = t > 1.5
    assert m.dtype == np.bool_ and not m.requires_grad
    np.testing.assert_array_equal(m.numpy(), [False, True])


def test_zero_dim_tensors_stay_zero_dim():
    # np.ascontiguousarray turns 0-d into shape (1,); torch.tensor(1.0).shape == ()
    assert em.tensor(1.0).shape == ()
    assert em.tensor(np.float32(2.0)).shape == ()
    assert em.tensor(1.0, dtype=em.float64).shape == ()
    assert em.tensor([1.0, 2.0])[0].shape == ()
    t = em.tensor(1.0)
    t += 1  # in place on a 0-d tensor
    assert t.shape == () and t.item() == 2.0
    x = em.tensor(3.0, requires_grad=True)
    (-x).backward(gradient=2.0)
    assert x.grad.shape == () and x.grad.item() == -2.0
    x = em.tensor([1.0, 2.0], requires_grad=True)
    s = x.sum()
    s.retain_grad()
    (s * s).backward()
    assert s.grad.shape == ()
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 6.0])
    # numpy returns scalars for 0-d results: the dtype must survive (float64 gradchecks)
    d = em.tensor(2.0, dtype=em.float64)
    assert (d * d).dtype == np.float64 and (-d).dtype == np.float64 and (d * d).shape == ()


def test_float32_grad_through_a_float64_op():
    # float32 * float64 promotes; the float32 input still gets a float32 gradient
    a = em.tensor([1.0, 2.0], requires_grad=True)
    b = em.tensor([3.0, 4.0], dtype=em.float64, requires_grad=True)
    out = (a.exp() * b).sum()
    assert out.dtype == np.float64
    out.backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    np.testing.assert_allclose(a.grad.numpy(), np.exp([1.0, 2.0]) * [3, 4], rtol=1e-6)


def test_int_float_promotion_like_torch():
    torch = pytest.importorskip("torch")
    i, ti = em.arange(4), torch.arange(4)
    f, tf = em.ones(4), torch.ones(4)
    d, td = em.ones(4, dtype=em.float64), torch.ones(4, dtype=torch.float64)
    cases = [(i * 0.5, ti * 0.5), (i / 2, ti / 2), (i / (i + 1), ti / (ti + 1)), (i + f, ti + tf),
             (f - i, tf - ti), (i * d, ti * td), (f * d, tf * td), (i + 1, ti + 1),
             (i ** 0.5, ti ** 0.5), (i ** 2, ti ** 2), ((i > 1).sum() / 4, (ti > 1).sum() / 4),
             (2.5 - i, 2.5 - ti), (f ** i, tf ** ti)]
    for k, (e, t) in enumerate(cases):
        assert str(e.dtype) == str(t.dtype).replace("torch.", ""), k
        np.testing.assert_allclose(e.numpy(), t.numpy(), rtol=1e-6, err_msg=str(k))
    # a float32 gradient through an op with an int operand stays float32
    w = em.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    (w * i / (i + 1)).sum().backward()
    assert w.grad.dtype == np.float32
    np.testing.assert_allclose(w.grad.numpy(), np.arange(4) / np.arange(1, 5), rtol=1e-6)


def test_pow_with_array_exponent():
    torch = pytest.importorskip("torch")
    e = np.array([1.0, 2.0, 0.5])
    compare_torch(lambda x: x ** e, lambda x: x ** torch.tensor(e, dtype=torch.float32),
                  pos(2, 3))


def test_setitem():
    t = em.zeros(3, 4)
    t[0] = 5.0
    t[1:, em.tensor([0, 3])] = em.tensor([1.0, 2.0])
    t[em.tensor(2), -2] = 7
    expected = np.zeros((3, 4), dtype=np.float32)
    expected[0] = 5
    expected[1:, [0, 3]] = [1, 2]
    expected[2, -2] = 7
    np.testing.assert_array_equal(t.numpy(), expected)
    p = em.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        p[0] = 2.0
    with pytest.raises(RuntimeError):
        t[0, :3] = p
    with em.no_grad():
        p[0] = 2.0
    np.testing.assert_array_equal(p.numpy(), [2, 1, 1])
    with pytest.raises(IndexError):
        t[5] = 1.0


def test_like_constructors_keep_dtype_and_int_math_is_float32():
    d = em.ones(2, dtype=em.float64)
    assert em.zeros_like(d).dtype == np.float64 and em.ones_like(d).dtype == np.float64
    assert em.zeros_like(np.ones(2)).dtype == np.float32  # numpy float data -> float32
    i = em.arange(1, 4)
    for out in (i.exp(), i.log(), i.sqrt()):
        assert out.dtype == np.float32
    np.testing.assert_allclose(i.sqrt().numpy(), np.sqrt([1, 2, 3]), rtol=1e-6)
