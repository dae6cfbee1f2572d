"""W6 (LSTM train step) and a GRU variant: ember vs PyTorch, interleaved, same thread count.

    PYTHONPATH=python python bench/bench_rnn.py [--threads 1 2] [--repeats 7] [--steps 5]

Model: seq 32, input 64, hidden 128, 1 layer, batch_first, batch 64, Linear(128, 10) on the last
hidden state. One step = forward + loss + backward (+ Adam update when ember.optim has Adam;
torch then runs Adam too). Loss: cross-entropy when ember has it, else mean squared error on
the logits (both libraries run the same loss). Prints median ms/step, min..max, samples/s and
the ember/torch time ratio (< 1: ember is faster). Also the process CPU time per step and its
ratio: on a shared, oversubscribed machine the wall clock includes time spent descheduled, and
at 1 thread CPU time is the steadier measure (at 2 threads it includes OpenMP spin-waiting).
"""
import argparse
import os
import resource
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
import ember as em  # noqa: E402
from ember import nn  # noqa: E402

import torch  # noqa: E402

SEQ, IN, HID, BATCH, CLASSES = 32, 64, 128, 64, 10


def build(kind):
    torch.manual_seed(0)
    tcls = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[kind]
    ecls = {"LSTM": nn.LSTM, "GRU": nn.GRU}[kind]
    t_rnn, t_fc = tcls(IN, HID, batch_first=True), torch.nn.Linear(HID, CLASSES)
    e_rnn, e_fc = ecls(IN, HID, batch_first=True), nn.Linear(HID, CLASSES)
    e_rnn.load_state_dict(t_rnn.state_dict())
    e_fc.load_state_dict(t_fc.state_dict())
    return (t_rnn, t_fc), (e_rnn, e_fc)


def make_steps(kind, x, y):
    (t_rnn, t_fc), (e_rnn, e_fc) = build(kind)
    t_params = list(t_rnn.parameters()) + list(t_fc.parameters())
    e_params = list(e_rnn.parameters()) + list(e_fc.parameters())
    has_adam = hasattr(em.optim, "Adam")
    has_ce = hasattr(em.nn, "CrossEntropyLoss")
    t_opt = torch.optim.Adam(t_params, lr=1e-3) if has_adam else None
    e_opt = em.optim.Adam(e_params, lr=1e-3) if has_adam else None
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    onehot = np.eye(CLASSES, dtype=np.float32)[y]
    ot = torch.from_numpy(onehot)
    e_loss = em.nn.CrossEntropyLoss() if has_ce else None

    def t_step():
        if t_opt:
            t_opt.zero_grad()
        else:
            for p in t_params:
                p.grad = None
        out, h = t_rnn(xt)
        h_n = h[0] if kind == "LSTM" else h
        logits = t_fc(h_n[-1])
        loss = torch.nn.functional.cross_entropy(logits, yt) if has_ce else \
            ((logits - ot) ** 2).mean()
        loss.backward()
        if t_opt:
            t_opt.step()
        return loss.item()

    def e_step():
        if e_opt:
            e_opt.zero_grad()
        else:
            for p in e_params:
                p.grad = None
        out, h = e_rnn(x)
        h_n = h[0] if kind == "LSTM" else h
        logits = e_fc(h_n[-1])
        loss = e_loss(logits, y) if has_ce else ((logits - onehot) ** 2).mean()
        loss.backward()
        if e_opt:
            e_opt.step()
        return loss.item()

    return e_step, t_step, ("Adam" if has_adam else "no optimizer") + ", " + (
        "cross-entropy" if has_ce else "MSE loss")


def bench(kind, threads, repeats, steps):
    em.set_num_threads(threads)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, SEQ, IN)).astype(np.float32)
    y = rng.integers(0, CLASSES, BATCH)
    e_step, t_step, what = make_steps(kind, x, y)
    le, lt = e_step(), t_step()  # warm-up (and a sanity check: same weights, same first loss)
    assert abs(le - lt) < 1e-3 * max(1.0, abs(lt)), (le, lt)
    for _ in range(2):
        e_step()
        t_step()
    te, tt, ce, ct = [], [], [], []
    for _ in range(repeats):
        for fn, acc, cpu in ((e_step, te, ce), (t_step, tt, ct)):
            c0, t0 = time.process_time(), time.perf_counter()
            for _ in range(steps):
                fn()
            acc.append((time.perf_counter() - t0) / steps)
            cpu.append((time.process_time() - c0) / steps)
    me, mt = statistics.median(te), statistics.median(tt)
    mce, mct = statistics.median(ce), statistics.median(ct)
    print(f"{kind:4s} train step, {threads} thread(s) [{what}]: "
          f"ember {me * 1e3:7.2f} ms ({min(te) * 1e3:.2f}..{max(te) * 1e3:.2f}, "
          f"{BATCH / me:7.0f} samples/s)  torch {mt * 1e3:7.2f} ms "
          f"({min(tt) * 1e3:.2f}..{max(tt) * 1e3:.2f}, {BATCH / mt:7.0f} samples/s)  "
          f"ember/torch {me / mt:.2f}  | CPU time/step ember {mce * 1e3:.2f} ms, torch "
          f"{mct * 1e3:.2f} ms, ratio {mce / mct:.2f}", flush=True)
    return me / mt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--kinds", nargs="+", default=["LSTM", "GRU"])
    a = ap.parse_args()
    print(f"torch {torch.__version__}, seq {SEQ}, input {IN}, hidden {HID}, batch {BATCH}, "
          f"batch_first, Linear({HID}, {CLASSES}) on the last hidden state")
    for kind in a.kinds:
        for n in a.threads:
            bench(kind, n, a.repeats, a.steps)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS (both libraries in one process): {rss:.0f} MiB")


if __name__ == "__main__":
    main()
