"""Activations and losses, ember vs torch: forward + backward, same process, same thread count.

    PYTHONPATH=python python bench/bench_activation_loss.py [--threads 1 2]

Prints per-call times (best of 3 repeats) and torch/ember ratios (> 1: ember is faster). These
machines are shared and noisy: compare ratios from one run, not absolute times across runs.
"""
import argparse
import time

import numpy as np
import torch

import ember as em
import ember.functional as F


def best_us(fn, min_time=0.2):
    fn()
    t, k = time.perf_counter(), 0
    while time.perf_counter() - t < min_time:
        fn()
        k += 1
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(k):
            fn()
        best = min(best, (time.perf_counter() - t) / k)
    return best * 1e6


def fwd_bwd(em_fn, t_fn, x, extra=()):
    e = em.tensor(x, requires_grad=True)
    t = torch.tensor(x, requires_grad=True)
    g = np.ones_like(em_fn(e, *extra).numpy())
    gt = torch.tensor(g)

    def run_em():
        y = em_fn(e, *extra)
        y.backward(g)
        e.grad = None

    def run_torch():
        y = t_fn(t, *[torch.tensor(a) for a in extra])
        y.backward(gt)
        t.grad = None
    return best_us(run_em), best_us(run_torch)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    r = np.random.default_rng(0)
    tF = torch.nn.functional
    acts = [("relu", F.relu, torch.relu), ("sigmoid", F.sigmoid, torch.sigmoid),
            ("tanh", F.tanh, torch.tanh), ("gelu", F.gelu, tF.gelu), ("silu", F.silu, tF.silu),
            ("elu", F.elu, tF.elu), ("softmax(-1)", lambda a: F.softmax(a, -1),
                                     lambda a: torch.softmax(a, -1))]
    print(f"ember {em.__version__}, torch {torch.__version__}")
    for nt in args.threads:
        em.set_num_threads(nt)
        torch.set_num_threads(nt)
        print(f"\n--- {nt} thread(s): fwd+bwd per call, us (torch/ember) ---")
        for shape in [(64, 128), (4096, 1000)]:
            x = r.standard_normal(shape).astype(np.float32)
            for name, ef, tf in acts:
                a, b = fwd_bwd(ef, tf, x)
                print(f"{name:14s} {str(shape):12s} ember {a:9.1f}  torch {b:9.1f}  {b / a:5.2f}x")
        for n, c in [(64, 10), (4096, 1000)]:
            x = r.standard_normal((n, c)).astype(np.float32)
            y = r.integers(0, c, n)
            a, b = fwd_bwd(lambda e, yy: F.cross_entropy(e, yy), tF.cross_entropy, x, (y,))
            print(f"{'cross_entropy':14s} {str((n, c)):12s} ember {a:9.1f}  torch {b:9.1f}  "
                  f"{b / a:5.2f}x")
        for n in (64, 1_000_000):
            x = r.standard_normal((n, 1)).astype(np.float32)
            y = (r.random((n, 1)) < 0.5).astype(np.float32)
            a, b = fwd_bwd(lambda e, yy: F.binary_cross_entropy_with_logits(e, yy),
                           tF.binary_cross_entropy_with_logits, x, (y,))
            print(f"{'bce_logits':14s} {str((n, 1)):12s} ember {a:9.1f}  torch {b:9.1f}  "
                  f"{b / a:5.2f}x")


if __name__ == "__main__":
    main()
