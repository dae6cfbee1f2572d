"""Why gated cells: a vanilla RNN vs an LSTM on "remember the first token" over 50 steps.

Each input is a sequence of 50 random tokens (one-hot, vocabulary 8); the label is the *first*
token, so the model must carry it across 49 steps. We show
  1. the gradient of the loss with respect to each time step's input, at initialization:
     for the tanh RNN it shrinks by orders of magnitude towards the early steps (vanishing
     gradients), for the LSTM it stays usable;
  2. training both with Adam (lr 3e-3, gradient clipping at 1): the LSTM learns the task, the
     RNN stays at chance (1/8).
The LSTM gets the standard positive forget-gate bias (3 here); with torch's default init its
early-step gradients vanish too (about 1e-4 of the last step's) and it needs far longer.

A run (1 thread, 2000 steps of batch 64):
    RNN  at init: |dL/dx_t| at t=0 4.37e-15, t=25 1.05e-09, t=49 6.12e-04  (first/last = 7.1e-12)
    RNN  after 2000 Adam steps (7.4 s): loss 2.077, accuracy 11.8% (chance 12.5%)
    LSTM at init: |dL/dx_t| at t=0 2.05e-04, t=25 5.35e-05, t=49 1.31e-04  (first/last = 1.6e+00)
    LSTM after 2000 Adam steps (22.7 s): loss 0.001, accuracy 100.0% (chance 12.5%)

    PYTHONPATH=python python examples/rnn_gradients.py [--steps 2000] [--lr 3e-3]
"""
import argparse
import time

import numpy as np

import ember as em
from ember import nn

SEQ, VOCAB, HIDDEN, BATCH = 50, 8, 32, 64


def batch(rng, n=BATCH):
    tokens = rng.integers(0, VOCAB, (n, SEQ))
    x = np.eye(VOCAB, dtype=np.float32)[tokens]          # (n, SEQ, VOCAB), batch_first
    return x, tokens[:, 0]


def cross_entropy(logits, y):
    """Mean cross-entropy from tensor ops (log-sum-exp with the row max held constant)."""
    z = logits - em.tensor(logits.numpy().max(axis=1, keepdims=True))
    lse = z.exp().sum(axis=1).log()
    picked = z[np.arange(len(y)), y]
    return (lse - picked).mean()


class Model(nn.Module):
    def __init__(self, kind):
        super().__init__()
        cls = nn.LSTM if kind == "LSTM" else nn.RNN
        self.rnn = cls(VOCAB, HIDDEN, batch_first=True)
        if kind == "LSTM":
            # The usual LSTM trick: a positive forget-gate bias (3: sigmoid 0.95), so the cell
            # starts out remembering (torch's default init leaves it near 0; gates i, f, g, o).
            self.rnn.bias_ih_l0.data[HIDDEN:2 * HIDDEN] = 3.0
            self.rnn.bias_hh_l0.data[HIDDEN:2 * HIDDEN] = 0.0
        self.head = nn.Linear(HIDDEN, VOCAB)

    def forward(self, x):
        out, h = self.rnn(x)
        h_n = h[0] if isinstance(h, tuple) else h
        return self.head(h_n[-1])


def input_gradient_norms(model, rng):
    """|dL/dx_t| per time step t, averaged over a batch."""
    x, y = batch(rng, 256)
    xt = em.tensor(x, requires_grad=True)
    cross_entropy(model(xt), y).backward()
    model.zero_grad()
    return np.linalg.norm(xt.grad.numpy(), axis=2).mean(axis=0)


def train(model, rng, steps, lr):
    opt = em.optim.Adam(model.parameters(), lr=lr)
    for step in range(steps):
        x, y = batch(rng)
        loss = cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    with em.no_grad():
        x, y = batch(rng, 2000)
        acc = (model(x).numpy().argmax(axis=1) == y).mean()
    return float(loss.item()), float(acc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--lr", type=float, default=3e-3)
    em.manual_seed(0)
    em.set_num_threads(1)  # tiny layers: one thread is fastest
    ap.add_argument("--kinds", nargs="+", default=["RNN", "LSTM"])
    a = ap.parse_args()
    for kind in a.kinds:
        rng = np.random.default_rng(1)
        model = Model(kind)
        g = input_gradient_norms(model, rng)
        print(f"{kind:4s} at init: |dL/dx_t| at t=0 {g[0]:.2e}, t=25 {g[25]:.2e}, "
              f"t=49 {g[-1]:.2e}  (first/last = {g[0] / g[-1]:.1e})")
        t0 = time.perf_counter()
        loss, acc = train(model, rng, a.steps, a.lr)
        g = input_gradient_norms(model, rng)
        print(f"{kind:4s} after {a.steps} Adam steps ({time.perf_counter() - t0:.1f} s): "
              f"loss {loss:.3f}, accuracy {acc:.1%} (chance {1 / VOCAB:.1%}); "
              f"|dL/dx_0| / |dL/dx_49| = {g[0] / g[-1]:.1e}")


if __name__ == "__main__":
    main()
