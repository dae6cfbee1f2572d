"""GFLOP/s of ember's gemm (em._core.matmul) vs torch.mm, interleaved, medians of several runs.

    PYTHONPATH=python python tools/bench_gemm.py [--threads 1 2] [--reps 5]
EMBER_GEMM_FORCE=eigen|packed in the environment pins ember's float kernel choice.
"""
import argparse
import time

import torch  # before ember (OpenMP runtime order)
import numpy as np
import ember as em

SHAPES = [  # (M, K, N, trans_a, trans_b, label)
    (2048, 2048, 2048, False, False, "2048^3"),
    (1024, 1024, 1024, False, False, "1024^3"),
    (128, 784, 512, False, True, "fwd x W^T 128,784,512"),
    (128, 512, 512, False, True, "fwd 128,512,512"),
    (256, 256, 256, False, False, "256^3"),
    (1024, 784, 512, False, True, "fwd 1024,784,512"),
    (16, 784, 128, False, True, "fwd 16,784,128"),
    (1, 784, 512, False, True, "fwd 1,784,512"),
    (512, 128, 784, True, False, "dW=dY^T X 512x784,K=128"),
    (128, 512, 784, False, False, "dX=dY W 128,512->784"),
    (512, 1024, 784, True, False, "dW 512x784,K=1024"),
]


def make(M, K, N, ta, tb):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((K, M) if ta else (M, K), dtype=np.float32)
    b = rng.standard_normal((N, K) if tb else (K, N), dtype=np.float32)
    return a, b


def timeit(f, flops, min_time=0.15):
    f()
    n, t = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            f()
        t = time.perf_counter() - t0
        if t > min_time:
            return flops * n / t / 1e9
        n *= 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    for nt in args.threads:
        em.set_num_threads(nt)
        torch.set_num_threads(nt)
        print(f"threads={nt}")
        print(f"{'shape':30s} {'ember':>8s} {'torch':>8s} {'ratio':>6s}")
        for M, K, N, ta, tb, label in SHAPES:
            a, b = make(M, K, N, ta, tb)
            ta_, tb_ = torch.from_numpy(a), torch.from_numpy(b)
            opa = ta_.t() if ta else ta_
            opb = tb_.t() if tb else tb_
            flops = 2.0 * M * N * K
            e, t = [], []
            for _ in range(args.reps):
                e.append(timeit(lambda: em._core.matmul(a, b, ta, tb), flops))
                t.append(timeit(lambda: torch.mm(opa, opb), flops))
            me, mt = float(np.median(e)), float(np.median(t))
            print(f"{label:30s} {me:8.1f} {mt:8.1f} {me / mt:6.2f}", flush=True)


if __name__ == "__main__":
    main()
