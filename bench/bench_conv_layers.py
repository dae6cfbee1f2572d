"""Per-layer convolution timings, ember vs PyTorch: forward, input gradient and weight gradient
(with the bias gradient) separately, for the conv layers of the workloads (W7's four 3x3 layers,
W9's conv2d, LeNet-5's two, W4's three conv1d), same process, interleaved, same thread count.

    PYTHONPATH=python python bench/bench_conv_layers.py [--threads 1 2] [--repeats 9] [--only c2 W9]

Prints median milliseconds and GFLOP/s (2 * MACs of the forward pass, the same count for each
gradient). The W7 total at the end sums what a W7 training step runs (no input gradient for the
first layer).
"""
import argparse
import statistics
import time

import numpy as np

import ember as em
from ember import _core

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

# name, N, C, OC, spatial size (H, W) or (L,), kernel, padding, stride
LAYERS = [
    ("c1", 64, 3, 32, (32, 32), 3, 1, 1),
    ("c2", 64, 32, 32, (32, 32), 3, 1, 1),
    ("c3", 64, 32, 64, (16, 16), 3, 1, 1),
    ("c4", 64, 64, 64, (16, 16), 3, 1, 1),
    ("W9", 32, 64, 64, (32, 32), 3, 1, 1),
    ("lenet1", 64, 1, 6, (28, 28), 5, 2, 1),
    ("lenet2", 64, 6, 16, (14, 14), 5, 0, 1),
    ("w4_1", 100, 1, 32, (40,), 5, 2, 1),
    ("w4_2", 100, 32, 32, (40,), 3, 1, 2),
    ("w4_3", 100, 32, 32, (20,), 3, 1, 2),
]


def median_ms(fn, repeats):
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def run(threads, repeats, only):
    em.set_num_threads(threads)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    w7 = [0.0, 0.0]
    print(f"threads={threads}  (ms, ember vs torch; GFLOP/s in brackets)")
    for name, N, C, OC, size, k, pad, st in LAYERS:
        if only and name not in only:
            continue
        nd = len(size)
        x = rng.standard_normal((N, C) + size).astype(np.float32)
        w = (rng.standard_normal((OC, C) + (k,) * nd) * 0.1).astype(np.float32)
        b = rng.standard_normal(OC).astype(np.float32)
        args = ([st] * nd, [pad] * nd, [1] * nd, 1, "", nd)
        y = _core.conv_forward(x, w, b, *args)
        gy = rng.standard_normal(y.shape).astype(np.float32)
        dw, db = np.zeros_like(w), np.zeros_like(b)
        tx, tw, tb, tgy = map(torch.from_numpy, (x, w, b, gy))
        conv = torch.nn.functional.conv1d if nd == 1 else torch.nn.functional.conv2d
        tbwd = torch.ops.aten.convolution_backward
        targs = ([st] * nd, [pad] * nd, [1] * nd, False, [0] * nd, 1)
        cases = {
            "fwd": (lambda: _core.conv_forward(x, w, b, *args),
                    lambda: conv(tx, tw, tb, stride=st, padding=pad)),
            "dx": (lambda: _core.conv_backward(gy, x, w, *args, True, None, None),
                   lambda: tbwd(tgy, tx, tw, [OC], *targs, [True, False, False])),
            "dw+db": (lambda: _core.conv_backward(gy, x, w, *args, False, dw, db),
                      lambda: tbwd(tgy, tx, tw, [OC], *targs, [False, True, True])),
        }
        gflop = 2 * N * OC * C * k ** nd * int(np.prod(y.shape[2:])) / 1e9
        cells = []
        for case, (fe, ft) in cases.items():
            te, tt = [], []
            for _ in range(3):  # interleave ember and torch
                te.append(median_ms(fe, repeats))
                tt.append(median_ms(ft, repeats))
            e, t = statistics.median(te), statistics.median(tt)
            cells.append(f"{case} {e:7.2f} vs {t:7.2f} ({gflop / e * 1e3:5.1f} vs "
                         f"{gflop / t * 1e3:5.1f})")
            if name in ("c1", "c2", "c3", "c4") and not (name == "c1" and case == "dx"):
                w7[0] += e
                w7[1] += t
        print(f"{name:7s} " + "  ".join(cells))
    if w7[0]:
        print(f"W7 conv layers, one training step: ember {w7[0]:.1f} ms, torch {w7[1]:.1f} ms")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args(argv)
    if torch is None:
        raise SystemExit("needs torch (pip install torch==2.13.0)")
    for th in args.threads:
        run(th, args.repeats, args.only)


if __name__ == "__main__":
    main()
