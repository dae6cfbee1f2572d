"""A bidirectional GRU on MNIST-1D, with gradient clipping; optionally side by side with torch.

MNIST-1D (Greydanus & Steinbach): 5,000 one-dimensional signals of 40 samples, 10 classes,
4,000 for training and 1,000 for testing. Each signal is read as a sequence of 40 steps of one
feature. The model and hyper-parameters are the authors' (``GRUBase`` in notebooks/models.py
and ``train_model``/``get_model_args`` in notebooks/train.py of github.com/greydanus/mnist1d;
the pip package ships only the data code):

    GRU(input_size=1, hidden_size=6, batch_first=True, bidirectional=True)   # h0 = zeros
    every time step's output, flattened (40 * 2 * 6 = 480) -> Linear(480, 10)
    Adam(lr=1e-2, weight_decay=0), batch 100 taken in order (no shuffling), 6,000 steps
    (= 150 epochs of 40 batches), cross-entropy.

They report about 91% test accuracy for it (89-90% in their notebook). We add gradient-norm
clipping (``nn.utils.clip_grad_norm_``, max norm 1) before each Adam step.

The data are generated offline with ``mnist1d.data.make_dataset(get_dataset_args())`` (about
3 s; ``get_dataset`` would try to download) and cached in examples/out/mnist1d.npz, by
examples/_mnist1d_data.py (shared with examples/mnist1d.py, the authors' CNN on the same data).

With ``--compare-torch`` the same model (same initial weights, copied through state_dict), the
same data, batches, optimizer, clipping, number of steps and thread count are trained with torch
as well, and both accuracies and training times are printed side by side.

A run (1 thread each, 2-core machine shared with other jobs, load average about 6):
                      test acc train time  ms/step last loss
    ember                89.4%      21.9s     3.64    0.0142
    torch 2.13.0+cpu     90.4%     124.9s    20.82    0.0033
    ember / torch training time: 0.18
Both runs start from the same weights and see the same batches: at step 1,000 both have loss
0.170 and 88.5% test accuracy; later, float rounding differences grow apart (the test accuracy
of either moves between 88.5% and 91.4% from one 1,000-step checkpoint to the next).

    python examples/mnist1d_gru.py                     # 6,000 steps
    python examples/mnist1d_gru.py --compare-torch     # ... and the same run with torch
    python examples/mnist1d_gru.py --ci                # 800 steps; exits non-zero below 75%
"""
import argparse
import os
import sys
import time

import numpy as np

import ember as em
from ember import nn
from _mnist1d_data import accuracy_ember, batches, finish, load_data, train_ember   # examples/_mnist1d_data.py, shared with mnist1d.py

HERE = os.path.dirname(os.path.abspath(__file__))
HIDDEN, STEPS_PER_SEQ = 6, 40


class GRUClassifier(nn.Module):
    """The authors' GRUBase: bidirectional GRU, all outputs flattened into one linear layer."""

    def __init__(self, hidden_size=HIDDEN, time_steps=STEPS_PER_SEQ):
        super().__init__()
        self.gru = nn.GRU(1, hidden_size, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(2 * hidden_size * time_steps, 10)

    def forward(self, x):                           # x (N, 40)
        out, _ = self.gru(x.reshape((x.shape[0], x.shape[1], 1)))   # (N, 40, 12)
        return self.linear(out.reshape((out.shape[0], -1)))         # (N, 10)


def train_torch(state, data, a):
    """The same model, data, batches, optimizer, clipping and steps, in torch."""
    import torch

    class GRUBase(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(1, HIDDEN, batch_first=True, bidirectional=True)
            self.linear = torch.nn.Linear(2 * HIDDEN * STEPS_PER_SEQ, 10)

        def forward(self, x):
            out, _ = self.gru(x.view(*x.shape[:2], 1))
            return self.linear(out.reshape(out.shape[0], -1))

    torch.set_num_threads(a.threads)
    model = GRUBase()
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, weight_decay=0.0)
    loss_fn = torch.nn.CrossEntropyLoss()
    X, Y = torch.from_numpy(data["x"]), torch.from_numpy(data["y"])
    Xt, Yt = torch.from_numpy(data["x_test"]), data["y_test"]

    def acc():
        with torch.no_grad():
            return float((model(Xt).argmax(1).numpy() == Yt).mean())

    t0, t_eval = time.perf_counter(), 0.0
    for step, sl in enumerate(batches(len(X), a.batch_size, a.steps), 1):
        loss = loss_fn(model(X[sl]), Y[sl])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        if a.verbose and step % a.print_every == 0:
            te = time.perf_counter()
            print(f"  torch step {step:5d}  loss {loss.item():.3f}  test acc {acc():.1%}  "
                  f"({te - t0 - t_eval:.1f} s)")
            t_eval += time.perf_counter() - te
    return time.perf_counter() - t0 - t_eval, float(loss.item()), acc(), torch.__version__


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ci", action="store_true",
                    help="reduced run for CI: 800 steps, quiet, assert --min-acc")
    ap.add_argument("--steps", type=int, default=None, help="Adam steps (default 6000; CI 800)")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--clip", type=float, default=1.0, help="max gradient norm")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads for ember and torch alike (the layers are tiny: 1 is fastest)")
    ap.add_argument("--min-acc", type=float, default=None,
                    help="fail (exit 1) below this test accuracy (default: 0.75 with --ci)")
    ap.add_argument("--compare-torch", action="store_true",
                    help="also train the same model with torch, when it is importable")
    ap.add_argument("--print-every", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    a = ap.parse_args(argv)
    a.steps = a.steps or (800 if a.ci else 6000)
    a.verbose = not a.ci
    min_acc = a.min_acc if a.min_acc is not None else (0.75 if a.ci else None)

    data = load_data(a.out)
    em.manual_seed(a.seed)
    em.set_num_threads(a.threads)
    model = GRUClassifier()
    init_state = {k: np.array(v) for k, v in model.state_dict().items()}
    epochs = a.steps * a.batch_size / len(data["x"])
    print(f"MNIST-1D: {len(data['x'])} train / {len(data['x_test'])} test signals of 40 steps; "
          f"bidirectional GRU(1, {HIDDEN}) + Linear(480, 10), "
          f"{sum(p.data.size for p in model.parameters())} parameters")
    print(f"Adam lr {a.lr}, batch {a.batch_size}, {a.steps} steps ({epochs:g} epochs), "
          f"clip {a.clip}, {a.threads} thread(s)")

    t_em, loss_em = train_ember(model, data, a, clip=a.clip)
    acc_em = accuracy_ember(model, data)
    torch_run = (lambda: train_torch(init_state, data, a)) if a.compare_torch else None
    return finish(a.steps, acc_em, t_em, loss_em, torch_run, min_acc)


if __name__ == "__main__":
    sys.exit(main())
