"""Small stand-ins for the training tests, so they don't depend on other families' code:
a plain SGD optimizer, a ReLU module and losses built from Tensor operators only."""
import numpy as np

import ember as em
from ember import nn


class TinySGD:
    """p -= lr * grad; with the Optimizer interface fit needs (param_groups, zero_grad, step,
    state_dict / load_state_dict)."""

    def __init__(self, params, lr=0.1):
        self.param_groups = [{"params": list(params), "lr": float(lr)}]
        self.steps = 0

    def zero_grad(self, set_to_none=True):
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None

    def step(self):
        self.steps += 1
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is not None and p.requires_grad:
                    p.data -= g["lr"] * p.grad.data

    def state_dict(self):
        return {"state": {"steps": self.steps},
                "param_groups": [{"lr": g["lr"], "params": list(range(len(g["params"])))}
                                 for g in self.param_groups]}

    def load_state_dict(self, sd):
        self.steps = sd["state"]["steps"]
        for g, s in zip(self.param_groups, sd["param_groups"]):
            g["lr"] = s["lr"]


class ReLU(nn.Module):
    def forward(self, x):
        return em.as_tensor(x).clamp(min=0)


def mse(out, y):
    d = out - em.as_tensor(np.asarray(y, dtype=out.dtype).reshape(out.shape))
    return (d * d).mean()


def cross_entropy(logits, y):
    """Mean softmax cross-entropy with integer targets, from Tensor ops."""
    y = np.asarray(y, dtype=np.int64)
    m = logits.data.max(axis=1, keepdims=True)
    z = logits - m
    logp = z - z.exp().sum(axis=1, keepdims=True).log()
    onehot = np.zeros(logits.shape, dtype=logits.dtype)
    onehot[np.arange(len(y)), y] = 1
    return -(logp * onehot).sum() / len(y)


def blobs(n=200, classes=3, dim=2, seed=0, spread=0.3):
    """Well-separated Gaussian blobs: (X float32 (n, dim), y int64 (n,))."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, dim)) * 3
    y = rng.integers(0, classes, n)
    X = centers[y] + spread * rng.standard_normal((n, dim))
    return X.astype(np.float32), y.astype(np.int64)


def mlp(inp=2, hidden=16, out=3):
    return nn.Sequential(nn.Linear(inp, hidden), ReLU(), nn.Linear(hidden, out))
