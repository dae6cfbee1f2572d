"""W9: single ops, forward and forward+backward, and optimizer steps; ember vs torch (interleaved,
same threads).

Also runnable alone: `python -m bench.ops --threads 1 2`.
"""
from __future__ import annotations

import statistics
import time

import numpy as np


def _loops(fn, min_s):
    """How many calls of fn make one timed repeat of about min_s seconds."""
    fn()
    t0 = time.perf_counter()
    fn()
    return max(1, int(min_s / max(time.perf_counter() - t0, 1e-7)))


def _time_pair(fa, fb, repeats, min_s=0.05):
    """Per-call seconds of fa and of fb, their repeats interleaved (A B A B ...) so that machine
    noise hits both alike."""
    na, nb = _loops(fa, min_s), _loops(fb, min_s)
    ta, tb = [], []
    for _ in range(repeats):
        for fn, n, out in ((fa, na, ta), (fb, nb, tb)):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            out.append((time.perf_counter() - t0) / n)
    return ta, tb


def _cases():
    import torch
    import torch.nn.functional as TF

    import ember as em
    import ember.functional as F
    rng = np.random.default_rng(0)

    def arr(*s):
        return rng.standard_normal(s).astype(np.float32)

    cases = []

    def add(name, em_fwd, t_fwd, inputs):
        """inputs: list of ndarrays; the first len(grad_idx) float inputs get gradients."""
        def em_f():
            with em.no_grad():
                em_fwd(*[em.Tensor(a) for a in inputs])

        def t_f():
            with torch.no_grad():
                t_fwd(*[torch.from_numpy(a) for a in inputs])

        ets = [em.Tensor(a, requires_grad=a.dtype == np.float32) for a in inputs]
        tts = [torch.from_numpy(a.copy()).requires_grad_(a.dtype == np.float32) for a in inputs]

        def em_fb():
            for t in ets:
                t.grad = None
            em_fwd(*ets).sum().backward()

        def t_fb():
            for t in tts:
                t.grad = None
            t_fwd(*tts).sum().backward()
        cases.append((name + " fwd", em_f, t_f))
        cases.append((name + " fwd+bwd", em_fb, t_fb))

    x = arr(32, 64, 32, 32)
    add("conv2d 32x64x32x32 k64 3x3 p1", lambda x, w, b: F.conv2d(x, w, b, padding=1),
        lambda x, w, b: TF.conv2d(x, w, b, padding=1), [x, arr(64, 64, 3, 3) * 0.05, arr(64)])
    add("maxpool2d 2x2 (32,64,32,32)", lambda x: F.max_pool2d(x, 2),
        lambda x: TF.max_pool2d(x, 2), [x])
    add("linear 1024->1024 b256", lambda x, w, b: F.linear(x, w, b),
        lambda x, w, b: TF.linear(x, w, b), [arr(256, 1024), arr(1024, 1024) * 0.03, arr(1024)])
    add("layer_norm (256,1024)", lambda x, g, b: F.layer_norm(x, (1024,), g, b),
        lambda x, g, b: TF.layer_norm(x, (1024,), g, b), [arr(256, 1024), arr(1024), arr(1024)])
    tgt = rng.integers(0, 1000, 1024).astype(np.int64)
    add("cross_entropy (1024,1000)", lambda x, t: F.cross_entropy(x, t),
        lambda x, t: TF.cross_entropy(x, t), [arr(1024, 1000), tgt])
    big = arr(4 * 1024 * 1024)
    for name in ("relu", "gelu", "tanh", "sigmoid"):
        tfn = getattr(torch, name) if name in ("tanh", "sigmoid") else getattr(TF, name)
        add(f"{name} 4M", lambda x, n=name: getattr(F, n)(x), tfn, [big])
    cases += _optimizer_cases(em, torch, arr)
    return cases


def _optimizer_cases(em, torch, arr):
    """One optimizer.step() over W1's parameters (784-512-512-10: 669,706 floats in six
    tensors) with fixed gradients, each library with its default implementation (torch's is the
    per-parameter loop on CPU tensors, ember's one fused kernel per parameter)."""
    shapes = [(512, 784), (512,), (512, 512), (512,), (10, 512), (10,)]
    params = [arr(*s) * 0.05 for s in shapes]
    grads = [arr(*s) * 1e-3 for s in shapes]
    cases = []
    for label, name, kw in (("Adam", "Adam", dict(lr=1e-3)),
                            ("AdamW", "AdamW", dict(lr=1e-3)),
                            ("SGD momentum", "SGD", dict(lr=0.01, momentum=0.9))):
        eps = [em.nn.Parameter(p.copy()) for p in params]
        tps = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in params]
        for e, t, g in zip(eps, tps, grads):
            e.grad = em.Tensor(g.copy())
            t.grad = torch.from_numpy(g.copy())
        eopt = getattr(em.optim, name)(eps, **kw)
        topt = getattr(torch.optim, name)(tps, **kw)
        cases.append((f"{label} step, W1's params (670k)", eopt.step, topt.step))
    return cases


def run_all(threads, repeats=5):
    rows = []
    for name, em_fn, t_fn in _cases():
        try:
            ta, tb = _time_pair(em_fn, t_fn, repeats)
            e, t = statistics.median(ta), statistics.median(tb)
        except Exception as ex:  # noqa: BLE001 -- an op not built yet is reported, not fatal
            print(f"{name:40s} t={threads}: skipped ({type(ex).__name__}: {ex})", flush=True)
            continue
        rows.append({"op": name, "threads": threads, "ember_ms": e * 1e3, "torch_ms": t * 1e3,
                     "ratio": t / e})
        print(f"{name:40s} t={threads}: ember {e * 1e3:8.3f} ms  torch {t * 1e3:8.3f} ms  "
              f"ratio {t / e:5.2f}", flush=True)
    return rows


if __name__ == "__main__":
    import argparse

    import torch

    import ember as em
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    for th in a.threads:
        em.set_num_threads(th)
        torch.set_num_threads(th)
        run_all(th, a.repeats)
