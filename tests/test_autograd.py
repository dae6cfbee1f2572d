"""Autograd: accumulation, graph shapes, deep graphs, grad modes, retain_graph, detach."""
import numpy as np
import pytest

import ember as em


def test_grad_accumulates_across_two_backward_calls():
    x = em.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2, 4, 6])
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5, 7, 9])


def test_leaf_grad_is_an_owned_buffer():
    # .grad must not alias the upstream gradient (or another tensor's grad)
    a = em.tensor([1.0, 2.0], requires_grad=True)
    b = em.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())
    a.grad.numpy()[:] = 7
    np.testing.assert_array_equal(b.grad.numpy(), [1, 1])


def test_diamond_graph_shared_subexpression():
    torch = pytest.importorskip("torch")
    xv = np.array([0.5, -1.0, 2.0])
    x = em.tensor(xv, requires_grad=True)
    y = x * 2.0
    z = y.exp() + y * y + y  # y used three times
    w = z * y                 # and again
    w.sum().backward()
    tx = torch.tensor(xv, dtype=torch.float32, requires_grad=True)
    ty = tx * 2.0
    ((ty.exp() + ty * ty + ty) * ty).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5)


def test_same_tensor_twice_in_one_op():
    x = em.tensor([1.0, -2.0], requires_grad=True)
    (x * x + x - x / x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, -3.0], rtol=1e-6)


def test_deep_chain_iterative_backward():
    x = em.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 10_000], rtol=1e-3)
    del y  # freeing a 10,000-deep graph must not blow the C stack either


def test_deep_chain_with_retain_graph_then_free():
    x = em.tensor([2.0], requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y + 0.0
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0])


@pytest.mark.parametrize("ctx", ["no_grad", "set_grad_enabled"])
def test_no_grad_context(ctx):
    x = em.tensor([1.0], requires_grad=True)
    cm = em.no_grad() if ctx == "no_grad" else em.set_grad_enabled(False)
    with cm:
        assert not em.is_grad_enabled()
        y = x * 2
        with em.enable_grad():
            assert em.is_grad_enabled()
            z = x * 2
        assert not em.is_grad_enabled()
    assert em.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad


def test_grad_mode_decorators():
    x = em.tensor([1.0], requires_grad=True)

    @em.no_grad()
    def f(t):
        return t * 2

    @em.set_grad_enabled(False)
    def g(t):
        return t * 2

    @em.enable_grad()
    def h(t):
        return t * 2

    assert not f(x).requires_grad and not g(x).requires_grad
    with em.no_grad():
        assert h(x).requires_grad
    assert em.is_grad_enabled()


def test_no_grad_decorator_without_parentheses():
    @em.no_grad
    def f(t):
        return t * 2

    assert not f(em.tensor([1.0], requires_grad=True)).requires_grad
    assert em.is_grad_enabled()


def test_set_grad_enabled_as_a_function_call():
    # torch.set_grad_enabled(False) switches the mode at once, without a `with`.
    try:
        em.set_grad_enabled(False)
        assert not em.is_grad_enabled()
        assert not (em.tensor([1.0], requires_grad=True) * 2).requires_grad
        em.set_grad_enabled(True)
        assert em.is_grad_enabled()
    finally:
        em.set_grad_enabled(True)


def test_grad_mode_restored_after_exception():
    with pytest.raises(KeyError):
        with em.no_grad():
            raise KeyError
    assert em.is_grad_enabled()


def test_retain_graph_and_second_backward_error():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    g1 = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * g1, rtol=1e-6)
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_detach_shares_data_and_cuts_graph():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None
    assert np.shares_memory(d.numpy(), y.numpy())
    (y * d).sum().backward()  # d is a constant: dy/dx = 3, times d
    np.testing.assert_allclose(x.grad.numpy(), [9.0, 18.0])


def test_retain_grad_on_non_leaf():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.retain_grad()
    z = y * 2
    (z * z).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), 2 * 2 * z.numpy())
    assert z.grad is None  # not retained
    np.testing.assert_allclose(x.grad.numpy(), 2 * y.grad.numpy())


def test_backward_on_non_scalar_needs_gradient():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"gradient="):
        y.backward()
    y.backward(gradient=np.array([1.0, 10.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 20.0])
    with pytest.raises(ValueError, match=r"\(3,\)"):
        (x * 2).backward(gradient=np.ones(3))


def test_backward_without_graph_raises():
    with pytest.raises(RuntimeError):
        em.tensor([1.0]).sum().backward()


def test_requires_grad_on_int_tensor_raises():
    with pytest.raises(TypeError, match="int64"):
        em.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError):
        em.tensor([1, 2]).requires_grad_()


def test_in_place_on_requires_grad_tensor_raises_in_grad_mode():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    for op in ("__iadd__", "__isub__", "__imul__", "__itruediv__"):
        with pytest.raises(RuntimeError, match="in place"):
            getattr(x, op)(1.0)
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0])
    with em.no_grad():
        x -= 1.0
    np.testing.assert_array_equal(x.numpy(), [0.0, 1.0])
    t = em.tensor([1.0])
    t += 1  # no grad needed: fine
    assert t.item() == 2.0


def test_requires_grad_propagation_and_leaves():
    a = em.tensor([1.0], requires_grad=True)
    b = em.tensor([2.0])
    c = a * b
    assert c.requires_grad and not c.is_leaf and c.grad_fn is not None
    d = b * 2
    assert not d.requires_grad and d.is_leaf
    with pytest.raises(RuntimeError):
        c.requires_grad_(False)


def test_gradient_does_not_flow_into_constants():
    a = em.tensor([1.0, 2.0], requires_grad=True)
    b = em.tensor([3.0, 4.0])
    (a * b).sum().backward()
    assert b.grad is None


def test_backward_frees_intermediate_activations():
    import gc
    import weakref
    x = em.tensor(np.ones((4, 4)), requires_grad=True)
    h = x * 2.0
    ref = weakref.ref(h)
    loss = (h * 3.0).exp().sum()
    del h
    loss.backward()
    gc.collect()
    assert ref() is None  # nothing but the graph held it
    assert loss.grad_fn is not None and not loss.is_leaf
    with pytest.raises(RuntimeError, match="retain_graph"):
        loss.backward()
    # with retain_graph the graph (and its activations) stay
    h = x * 2.0
    ref = weakref.ref(h)
    loss = (h * 3.0).sum()
    del h
    loss.backward(retain_graph=True)
    gc.collect()
    assert ref() is not None


def test_leaf_takes_the_gradient_array_of_the_op_just_before_it():
    """run_backward drops its own references to a node's gradients before moving on, so a leaf
    processed next takes the array without a copy (a 16 MiB copy per relu(x).sum().backward())."""
    from ember.tensor import make_result
    x = em.tensor(np.ones(3, np.float32), requires_grad=True)
    made = {}

    def backward(g):
        a = np.full(3, 2.0, np.float32)
        made["id"] = id(a)
        return (a,)

    y = make_result(x.data * 2, (x,), backward, "TwiceBackward")
    y.backward(np.ones(3, np.float32))
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])
    assert id(x.grad.data) == made["id"]
