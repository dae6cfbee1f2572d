"""The workloads of shared/bench/WORKLOADS.md, built twice: once with ember, once with torch.

Each builder returns a `Workload` per library with identical weights (torch's initial state_dict
is loaded into the ember model), identical synthetic data and a `step()` that runs what a user's
loop runs: take the next DataLoader batch, forward, loss, zero_grad, backward, optimizer step.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

# FLOPs per training step (forward = 2 x MACs, step = 3 x forward), from WORKLOADS.md; W5's is
# not given there and is counted the same way from its model (the issue lists W5 among the
# compute-bound steps): batch 256 x 2 x (4 blocks x 2 x 256 x 256 + 256 x 10) MACs x 3.
W5_STEP_FLOPS = 3 * 2 * 256 * (4 * 2 * 256 * 256 + 256 * 10)
STEP_FLOPS = {"W1": 513.5e6, "W3": 159.9e6, "W5": W5_STEP_FLOPS, "W7": 9.80e9}


@dataclass
class Workload:
    name: str
    lib: str
    batch: int
    step: Callable[[], None]
    flops: float | None = None
    extra: dict = field(default_factory=dict)


def _data(n_batches, batch, shape, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_batches * batch,) + tuple(shape)).astype(np.float32)
    y = rng.integers(0, classes, n_batches * batch).astype(np.int64)
    return X, y


def _loop(batches):
    """An endless iterator over a DataLoader's epochs."""
    return itertools.chain.from_iterable(itertools.repeat(batches))


def _train_step_em(em, model, opt, loss_fn, loader):
    it = _loop(loader)

    def step():
        xb, yb = next(it)
        loss = loss_fn(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def _train_step_torch(torch, model, opt, loss_fn, loader):
    it = _loop(loader)

    def step():
        xb, yb = next(it)
        loss = loss_fn(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


# ---- model definitions, written once against a namespace with torch's nn names -------------

def mlp(nn, sizes):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def lenet5(nn):
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10))


def conv1d_net(nn):
    return nn.Sequential(
        nn.Conv1d(1, 32, 5, padding=2), nn.ReLU(),
        nn.Conv1d(32, 32, 3, padding=1, stride=2), nn.ReLU(),
        nn.Conv1d(32, 32, 3, padding=1, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 10, 10))


def small_cnn(nn):
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 256), nn.ReLU(), nn.Linear(256, 10))


def resmlp(nn, F_relu, d=256, blocks=4):
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(d)
            self.fc1 = nn.Linear(d, d)
            self.fc2 = nn.Linear(d, d)

        def forward(self, x):
            return x + self.fc2(F_relu(self.fc1(self.norm(x))))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.Sequential(*[Block() for _ in range(blocks)])
            self.head = nn.Linear(d, 10)

        def forward(self, x):
            return self.head(self.blocks(x))
    return Net()


def lstm_net(nn, cell="LSTM"):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(nn, cell)(64, 128, batch_first=True)
            self.head = nn.Linear(128, 10)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.head(out[:, -1])
    return Net()


# ---- builders --------------------------------------------------------------------------------

SPECS = {
    # id: (model builder(nn, F_relu), batch, input shape, optimizer (name, kwargs), n_batches)
    "W1": (lambda nn, r: mlp(nn, [784, 512, 512, 10]), 128, (784,), ("Adam", {"lr": 1e-3}), 20),
    "W2": (lambda nn, r: mlp(nn, [784, 128, 10]), 16, (784,), ("SGD", {"lr": 0.1}), 100),
    "W3": (lambda nn, r: lenet5(nn), 64, (1, 28, 28), ("SGD", {"lr": 0.01, "momentum": 0.9}), 20),
    "W4": (lambda nn, r: conv1d_net(nn), 100, (1, 40), ("Adam", {"lr": 1e-3}), 20),
    "W5": (lambda nn, r: resmlp(nn, r), 256, (256,), ("AdamW", {"lr": 1e-3}), 10),
    "W6": (lambda nn, r: lstm_net(nn, "LSTM"), 64, (32, 64), ("Adam", {"lr": 1e-3}), 10),
    "W6g": (lambda nn, r: lstm_net(nn, "GRU"), 64, (32, 64), ("Adam", {"lr": 1e-3}), 10),
    "W7": (lambda nn, r: small_cnn(nn), 64, (3, 32, 32), ("SGD", {"lr": 0.01, "momentum": 0.9}),
           4),
}


def build_train(wid: str, lib: str, sync_weights: bool = True) -> Workload:
    """sync_weights=False builds the ember side without importing torch (for RSS runs)."""
    builder, batch, shape, (opt_name, opt_kw), n_batches = SPECS[wid]
    X, y = _data(n_batches, batch, shape)
    if lib == "ember" and not sync_weights:
        import ember as em
        em.manual_seed(0)
        model = builder(em.nn, em.functional.relu)
        loader = em.data.DataLoader(em.data.ArrayDataset(X, y), batch_size=batch,
                                    shuffle=True, drop_last=True)
        opt = getattr(em.optim, opt_name)(model.parameters(), **opt_kw)
        step = _train_step_em(em, model, opt, em.nn.CrossEntropyLoss(), loader)
        return Workload(wid, lib, batch, step, STEP_FLOPS.get(wid))
    import torch
    torch.manual_seed(0)
    tmodel = builder(torch.nn, torch.relu)
    if lib == "torch":
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y)),
            batch_size=batch, shuffle=True, drop_last=True)
        opt = getattr(torch.optim, opt_name)(tmodel.parameters(), **opt_kw)
        step = _train_step_torch(torch, tmodel, opt, torch.nn.CrossEntropyLoss(), loader)
        return Workload(wid, lib, batch, step, STEP_FLOPS.get(wid))
    import ember as em
    model = builder(em.nn, em.functional.relu)
    model.load_state_dict(tmodel.state_dict())
    loader = em.data.DataLoader(em.data.ArrayDataset(X, y), batch_size=batch, shuffle=True,
                                drop_last=True)
    opt = getattr(em.optim, opt_name)(model.parameters(), **opt_kw)
    step = _train_step_em(em, model, opt, em.nn.CrossEntropyLoss(), loader)
    return Workload(wid, lib, batch, step, STEP_FLOPS.get(wid))


def build_infer(batch: int, lib: str, sync_weights: bool = True) -> Workload:
    """W8: W1's MLP forward without grad."""
    X, _ = _data(1, batch, (784,))
    if lib == "ember" and not sync_weights:
        import ember as em
        model = mlp(em.nn, [784, 512, 512, 10]).eval()

        def step():
            with em.no_grad():
                model(X)
        return Workload(f"W8-b{batch}", lib, batch, step)
    import torch
    torch.manual_seed(0)
    tmodel = mlp(torch.nn, [784, 512, 512, 10]).eval()
    if lib == "torch":
        xt = torch.from_numpy(X)

        def step():
            with torch.no_grad():
                tmodel(xt)
        return Workload(f"W8-b{batch}", lib, batch, step)
    import ember as em
    model = mlp(em.nn, [784, 512, 512, 10]).eval()
    model.load_state_dict(tmodel.state_dict())

    def step():
        with em.no_grad():
            model(X)
    return Workload(f"W8-b{batch}", lib, batch, step)
