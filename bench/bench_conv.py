"""Convolution and pooling vs PyTorch, same process, interleaved (A B A B), same thread count.

Rows: W9 conv2d (N=32 C=64 32x32 K=64 3x3 pad 1) forward and forward+backward, W9 max_pool2d 2x2
on (32, 64, 32, 32) forward and forward+backward, and the conv-only forward+backward of the W3
(LeNet-5 convs + pools, batch 64) and W4 (Conv1D stack, batch 100) layer stacks
(activations left out: they belong to another op family).

    PYTHONPATH=python python bench/bench_conv.py [--threads 1 2] [--repeats 15] [--quick]
"""
import argparse
import statistics
import time

import numpy as np

import ember as em
from ember import functional as F

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # pragma: no cover
    torch = None


def timeit(fn, warmup, repeats_inner):
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    for _ in range(repeats_inner):
        fn()
    return (time.perf_counter() - t0) / repeats_inner


def make_cases():
    rng = np.random.default_rng(0)
    f32 = np.float32

    def arr(*s):
        return rng.standard_normal(s).astype(f32)

    cases = []

    # ---- W9 conv2d ----
    x, w, b = arr(32, 64, 32, 32), arr(64, 64, 3, 3) * 0.05, arr(64)
    gy = arr(32, 64, 32, 32)

    def em_conv_f():
        with em.no_grad():
            F.conv2d(x, w, b, padding=1)

    def th_conv_f(tx=torch.from_numpy(x), tw=torch.from_numpy(w), tb=torch.from_numpy(b)):
        with torch.no_grad():
            TF.conv2d(tx, tw, tb, padding=1)

    ex = em.Tensor(x, requires_grad=True)
    ew, eb = em.Tensor(w.copy(), requires_grad=True), em.Tensor(b.copy(), requires_grad=True)

    def em_conv_fb():
        ew.grad = eb.grad = None
        F.conv2d(ex, ew, eb, padding=1).backward(gy)

    tx = torch.from_numpy(x).requires_grad_()
    tw, tb = torch.from_numpy(w.copy()).requires_grad_(), torch.from_numpy(b.copy()).requires_grad_()
    tgy = torch.from_numpy(gy)

    def th_conv_fb():
        tx.grad = tw.grad = tb.grad = None
        TF.conv2d(tx, tw, tb, padding=1).backward(tgy)

    flops = 2 * 32 * 64 * 64 * 9 * 32 * 32
    cases.append(("W9 conv2d fwd", em_conv_f, th_conv_f, flops))
    cases.append(("W9 conv2d fwd+bwd", em_conv_fb, th_conv_fb, 3 * flops))

    # ---- W9 max_pool2d ----
    xp = arr(32, 64, 32, 32)
    gp = arr(32, 64, 16, 16)

    def em_pool_f():
        with em.no_grad():
            F.max_pool2d(xp, 2)

    def th_pool_f(t=torch.from_numpy(xp)):
        with torch.no_grad():
            TF.max_pool2d(t, 2)

    exp_ = em.Tensor(xp, requires_grad=True)
    txp = torch.from_numpy(xp).requires_grad_()
    tgp = torch.from_numpy(gp)

    def em_pool_fb():
        F.max_pool2d(exp_, 2).backward(gp)

    def th_pool_fb():
        txp.grad = None
        TF.max_pool2d(txp, 2).backward(tgp)

    cases.append(("W9 maxpool2d fwd", em_pool_f, th_pool_f, None))
    cases.append(("W9 maxpool2d fwd+bwd", em_pool_fb, th_pool_fb, None))

    # ---- W3 LeNet conv stack (batch 64): conv(6,5,p2)-relu-pool-conv(16,5)-relu-pool ----
    x3 = arr(64, 1, 28, 28)
    w1, b1 = arr(6, 1, 5, 5) * 0.2, arr(6)
    w2, b2 = arr(16, 6, 5, 5) * 0.1, arr(16)
    g3 = arr(64, 16, 5, 5)
    ep3 = [em.Tensor(a.copy(), requires_grad=True) for a in (w1, b1, w2, b2)]
    tp3 = [torch.from_numpy(a.copy()).requires_grad_() for a in (w1, b1, w2, b2)]
    tx3, tg3 = torch.from_numpy(x3), torch.from_numpy(g3)

    def em_lenet():
        for p in ep3:
            p.grad = None
        h = F.max_pool2d(F.conv2d(x3, ep3[0], ep3[1], padding=2), 2)
        h = F.max_pool2d(F.conv2d(h, ep3[2], ep3[3]), 2)
        h.backward(g3)

    def th_lenet():
        for p in tp3:
            p.grad = None
        h = TF.max_pool2d(TF.conv2d(tx3, tp3[0], tp3[1], padding=2), 2)
        h = TF.max_pool2d(TF.conv2d(h, tp3[2], tp3[3]), 2)
        h.backward(tg3)

    lenet_flops = 3 * 2 * 64 * (6 * 25 * 28 * 28 + 16 * 150 * 10 * 10)
    cases.append(("W3 LeNet convs fwd+bwd", em_lenet, th_lenet, lenet_flops))

    # ---- W4 Conv1D stack (batch 100, 1x40) ----
    x4 = arr(100, 1, 40)
    ws4 = [arr(32, 1, 5) * 0.3, arr(32), arr(32, 32, 3) * 0.1, arr(32), arr(32, 32, 3) * 0.1,
           arr(32)]
    g4 = arr(100, 32, 10)
    ep4 = [em.Tensor(a.copy(), requires_grad=True) for a in ws4]
    tp4 = [torch.from_numpy(a.copy()).requires_grad_() for a in ws4]
    tx4, tg4 = torch.from_numpy(x4), torch.from_numpy(g4)

    def em_c1d():
        for p in ep4:
            p.grad = None
        h = F.conv1d(x4, ep4[0], ep4[1], padding=2)
        h = F.conv1d(h, ep4[2], ep4[3], padding=1, stride=2)
        h = F.conv1d(h, ep4[4], ep4[5], padding=1, stride=2)
        h.backward(g4)

    def th_c1d():
        for p in tp4:
            p.grad = None
        h = TF.conv1d(tx4, tp4[0], tp4[1], padding=2)
        h = TF.conv1d(h, tp4[2], tp4[3], padding=1, stride=2)
        h = TF.conv1d(h, tp4[4], tp4[5], padding=1, stride=2)
        h.backward(tg4)

    c1d_flops = 3 * 2 * 100 * 32 * (5 * 40 + 96 * 20 + 96 * 10)
    cases.append(("W4 Conv1D convs fwd+bwd", em_c1d, th_c1d, c1d_flops))
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--quick", action="store_true", help="fewer repeats (smoke test)")
    ap.add_argument("--only", default="", help="substring filter on case names")
    args = ap.parse_args()
    if torch is None:
        raise SystemExit("bench_conv needs torch as the reference")
    repeats = 3 if args.quick else args.repeats
    cases = [c for c in make_cases() if args.only in c[0]]
    print(f"ember {em.__version__} vs torch {torch.__version__}; median of {repeats} interleaved "
          f"repeats")
    for nt in args.threads:
        em.set_num_threads(nt)
        torch.set_num_threads(nt)
        print(f"\nthreads = {nt}")
        print(f"{'case':28s} {'ember ms':>9s} {'torch ms':>9s} {'ratio':>6s} {'em GF/s':>8s}"
              f"  ember min..max")
        for name, ef, tf, flops in cases:
            # Inner repetitions so that one sample is at least ~20 ms.
            t = timeit(ef, 2, 1)
            inner = max(1, int(0.02 / max(t, 1e-6)))
            es, ts = [], []
            for _ in range(repeats):
                es.append(timeit(ef, 0, inner))
                ts.append(timeit(tf, 1 if not ts else 0, inner))
            em_med, th_med = statistics.median(es), statistics.median(ts)
            gf = f"{flops / em_med / 1e9:8.1f}" if flops else " " * 8
            print(f"{name:28s} {em_med * 1e3:9.3f} {th_med * 1e3:9.3f} {em_med / th_med:6.2f} "
                  f"{gf}  {min(es) * 1e3:.3f}..{max(es) * 1e3:.3f}")


if __name__ == "__main__":
    main()
