"""Norm-family ops vs PyTorch: layer_norm, batch_norm, dropout, embedding (forward and
forward+backward), float32, same machine, same run, same thread count, interleaved A B A B.

    PYTHONPATH=python python bench/bench_norm.py [--threads 1 2] [--repeats 7]

Prints the median time (min..max) of each library and the ratio torch/ember (> 1: ember faster).
"""
import argparse
import statistics
import time

import numpy as np
import torch

import ember as em
from ember import functional as F


def timed(fn, n):
    out = []
    for _ in range(n):
        s = time.perf_counter()
        fn()
        out.append(time.perf_counter() - s)
    return out


def cases():
    rng = np.random.default_rng(0)

    def ln(shape):
        D = shape[-1]
        x0, g = rng.standard_normal(shape, dtype=np.float32), rng.standard_normal(
            shape, dtype=np.float32)
        ex, tx = em.tensor(x0, requires_grad=True), torch.tensor(x0, requires_grad=True)
        ew, eb = em.ones(D, requires_grad=True), em.zeros(D, requires_grad=True)
        tw, tb = torch.ones(D, requires_grad=True), torch.zeros(D, requires_grad=True)
        tg = torch.tensor(g)
        return (lambda: F.layer_norm(ex, D, ew, eb),
                lambda: torch.nn.functional.layer_norm(tx, (D,), tw, tb), ex, tx, g, tg)

    def bn(shape):
        C = shape[1]
        x0, g = rng.standard_normal(shape, dtype=np.float32), rng.standard_normal(
            shape, dtype=np.float32)
        ex, tx = em.tensor(x0, requires_grad=True), torch.tensor(x0, requires_grad=True)
        ew, eb = em.ones(C, requires_grad=True), em.zeros(C, requires_grad=True)
        tw, tb = torch.ones(C, requires_grad=True), torch.zeros(C, requires_grad=True)
        erm, erv = np.zeros(C, np.float32), np.ones(C, np.float32)
        trm, trv = torch.zeros(C), torch.ones(C)
        return (lambda: F.batch_norm(ex, erm, erv, ew, eb, True),
                lambda: torch.nn.functional.batch_norm(tx, trm, trv, tw, tb, True),
                ex, tx, g, torch.tensor(g))

    def drop(shape):
        x0 = rng.standard_normal(shape, dtype=np.float32)
        ex, tx = em.tensor(x0, requires_grad=True), torch.tensor(x0, requires_grad=True)
        return (lambda: F.dropout(ex, 0.5), lambda: torch.nn.functional.dropout(tx, 0.5),
                ex, tx, x0, torch.tensor(x0))

    def emb(V, D, ids_shape):
        w0 = rng.standard_normal((V, D), dtype=np.float32)
        ids = rng.integers(0, V, ids_shape)
        g = rng.standard_normal(ids_shape + (D,), dtype=np.float32)
        ew, tw = em.tensor(w0, requires_grad=True), torch.tensor(w0, requires_grad=True)
        tids = torch.tensor(ids)
        return (lambda: F.embedding(ids, ew), lambda: torch.nn.functional.embedding(tids, tw),
                ew, tw, g, torch.tensor(g))

    yield "layer_norm (256, 1024)", ln((256, 1024))
    yield "layer_norm (4096, 768)", ln((4096, 768))
    yield "batch_norm2d (32, 64, 32, 32)", bn((32, 64, 32, 32))
    yield "batch_norm1d (4096, 512)", bn((4096, 512))
    yield "dropout p=0.5 (4096, 1024)", drop((4096, 1024))
    yield "embedding 50000x256, ids (64, 128)", emb(50000, 256, (64, 128))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, ember {em.__version__}, numpy {np.__version__}")
    for nt in args.threads:
        em.set_num_threads(nt)
        torch.set_num_threads(nt)
        print(f"\n== {nt} thread(s): median ms (min..max), ratio torch/ember")
        for name, (ef, tf, ex, tx, g, tg) in cases():
            def e_fb():
                ex.grad = None
                ef().backward(g)

            def t_fb():
                tx.grad = None
                tf().backward(tg)

            for label, e_fn, t_fn in (("fwd", ef, tf), ("fwd+bwd", e_fb, t_fb)):
                e_fn(), t_fn()  # warm-up
                et, tt = [], []
                for _ in range(args.repeats):  # interleaved
                    et += timed(e_fn, 1)
                    tt += timed(t_fn, 1)
                em_, tm = statistics.median(et) * 1e3, statistics.median(tt) * 1e3
                print(f"{name:36s} {label:8s} ember {em_:8.2f} ({min(et)*1e3:.2f}..{max(et)*1e3:.2f})"
                      f"  torch {tm:8.2f} ({min(tt)*1e3:.2f}..{max(tt)*1e3:.2f})  {tm / em_:5.2f}x")


if __name__ == "__main__":
    main()
