"""Shared test tools: float64 finite-difference gradient checks and torch comparisons.

gradcheck(fn, *arrays): builds float64 ember Tensors (requires_grad), reduces fn's output to a
scalar with a fixed random projection, and compares every input's analytic gradient with central
differences. compare_torch(em_fn, torch_fn, *arrays): same inputs through ember and torch; checks
forward and every input gradient.
"""
import numpy as np

import ember as em


def _projection(shape, seed=1234):
    return np.random.default_rng(seed).standard_normal(shape)


def _outputs(out):
    if isinstance(out, (tuple, list)):
        return [o for o in out if isinstance(o, em.Tensor)]
    return [out]


def _scalar(outs, projections):
    total = None
    for o, r in zip(outs, projections):
        term = (o * em.tensor(r, dtype=o.dtype)).sum()
        total = term if total is None else total + term
    return total


def gradcheck(fn, *arrays, eps=1e-6, atol=1e-6, rtol=1e-5, wrt=None):
    """fn takes float64 Tensors. wrt: indices of arrays to check (default: all float arrays)."""
    # order="C": gradcheck perturbs through reshape(-1), which must be a view, not a copy
    arrays = [np.array(a, dtype=np.float64, order="C") if np.asarray(a).dtype.kind == "f"
              else np.asarray(a)
              for a in arrays]
    wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"] if wrt is None else wrt
    ts = [em.tensor(a, dtype=a.dtype, requires_grad=(i in wrt)) for i, a in enumerate(arrays)]
    outs = _outputs(fn(*ts))
    projections = [_projection(o.shape, 1234 + k) for k, o in enumerate(outs)]
    _scalar(outs, projections).backward()
    for i in wrt:
        analytic = ts[i].grad.numpy() if ts[i].grad is not None else np.zeros_like(arrays[i])
        numeric = np.zeros_like(arrays[i])
        flat = arrays[i].reshape(-1)
        for j in range(flat.size):
            old = flat[j]
            vals = []
            for delta in (eps, -eps):
                flat[j] = old + delta
                with em.no_grad():
                    args = [em.tensor(a, dtype=a.dtype) for a in arrays]
                    vals.append(_scalar(_outputs(fn(*args)), projections).item())
            flat[j] = old
            numeric.reshape(-1)[j] = (vals[0] - vals[1]) / (2 * eps)
        np.testing.assert_allclose(analytic, numeric, atol=atol, rtol=rtol,
                                   err_msg=f"gradient of input {i} does not match finite "
                                           f"differences")


def compare_torch(em_fn, torch_fn, *arrays, atol=1e-5, rtol=1e-4, dtype=np.float32, wrt=None):
    """Runs both libraries on the same data; asserts forward outputs and input grads agree."""
    import torch

    arrays = [np.array(a, dtype=dtype, order="C") if np.asarray(a).dtype.kind == "f"
              else np.asarray(a)
              for a in arrays]
    wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"] if wrt is None else wrt
    ets = [em.tensor(a, dtype=a.dtype, requires_grad=(i in wrt)) for i, a in enumerate(arrays)]
    tts = [torch.tensor(a, requires_grad=(i in wrt)) for i, a in enumerate(arrays)]
    eo = _outputs(em_fn(*ets))
    to = torch_fn(*tts)
    to = list(to) if isinstance(to, (tuple, list)) else [to]
    to = [t for t in to if isinstance(t, torch.Tensor)]
    assert len(eo) == len(to)
    for e, t in zip(eo, to):
        np.testing.assert_allclose(e.numpy(), t.detach().numpy(), atol=atol, rtol=rtol,
                                   err_msg="forward differs from torch")
    projections = [_projection(o.shape, 99 + k) for k, o in enumerate(eo)]
    if wrt and any(e.requires_grad for e in eo):
        _scalar(eo, projections).backward()
        sum((t * torch.tensor(r, dtype=t.dtype)).sum() for t, r in zip(to, projections)
            ).backward()
        for i in wrt:
            eg = ets[i].grad.numpy() if ets[i].grad is not None else np.zeros_like(arrays[i])
            tg = tts[i].grad.numpy() if tts[i].grad is not None else np.zeros_like(arrays[i])
            np.testing.assert_allclose(eg, tg, atol=atol, rtol=rtol,
                                       err_msg=f"gradient of input {i} differs from torch")
