"""The MNIST-1D benchmark with the authors' CNN; optionally side by side with torch.

MNIST-1D (Greydanus & Steinbach): 5,000 one-dimensional signals of 40 samples, 10 classes,
4,000 for training and 1,000 for testing. The model is the authors' ``ConvBase`` (notebooks/
models.py of github.com/greydanus/mnist1d; the pip package ships only the data code), exactly:

    x (N, 40) -> (N, 1, 40)
    Conv1d(1, 25, kernel_size=5, stride=2, padding=1)  -> ReLU   # (N, 25, 19)
    Conv1d(25, 25, kernel_size=3, stride=2, padding=1) -> ReLU   # (N, 25, 10)
    Conv1d(25, 25, kernel_size=3, stride=2, padding=1) -> ReLU   # (N, 25, 5)
    flatten (125) -> Linear(125, 10)                             # 5,210 parameters

(kernel 5 for the first layer, 3 for the other two: that is what makes their ``linear_in=125``).
Training as in their ``train_model`` (notebooks/train.py): Adam(lr=1e-2, weight_decay=0),
cross-entropy, batch 100 taken in order (consecutive slices, no shuffling, wrapping around),
6,000 steps (= 150 epochs of 40 batches; their newest train.py defaults to 8,000), no gradient
clipping, no learning-rate schedule, default PyTorch-style initialisation. They report about 94%
test accuracy for it.

The data are generated offline with ``mnist1d.data.make_dataset(get_dataset_args())`` (about
3 s; ``get_dataset`` would try to download) and cached in examples/out/mnist1d.npz, by
examples/_mnist1d_data.py (shared with examples/mnist1d_gru.py, the GRU on the same data).

With ``--compare-torch`` the same model (same initial weights, copied through state_dict), the
same data, batches, optimizer, number of steps and thread count are trained with torch as well,
and both accuracies and training times (evaluation excluded) are printed side by side.

Runs (full 6,000 steps, 1 thread each, 2-core machine shared with other jobs, load average
about 2; training time excludes the progress evaluations):
    seed                 0               1               2               42
    ember         94.1%  8.1 s    94.9%  8.0 s    93.8%  8.6 s    93.3%  8.7 s     1.34-1.46 ms/step
    torch 2.13.0  93.9% 16.7 s    93.7% 16.7 s    92.6% 18.8 s    93.9% 17.4 s     2.78-3.14 ms/step
    ember / torch training time 0.45-0.50 (0.50 at 2 threads, where both are slower on this
    machine; ember's result at 2 threads is bitwise the same as at 1).
Both runs start from the same weights and see the same batches: after 10 steps (seed 0) their losses agree
to all printed digits, after 100 to 1e-7; float rounding differences then grow apart (at step
300: loss 0.327 vs 0.351), so the final accuracies differ by about a point either way.

    python examples/mnist1d.py                     # 6,000 steps
    python examples/mnist1d.py --compare-torch     # ... and the same run with torch
    python examples/mnist1d.py --ci                # 1,500 steps; exits non-zero below 80%

--ci reached 89.7-91.4% test accuracy over seeds 0-4 and 42 (chance is 10%).
"""
import argparse
import os
import sys
import time

import numpy as np

import ember as em
from ember import nn
from _mnist1d_data import accuracy_ember, batches, finish, load_data, train_ember   # examples/_mnist1d_data.py, shared with the GRU

HERE = os.path.dirname(os.path.abspath(__file__))
CHANNELS, LINEAR_IN = 25, 125
CI_STEPS, CI_MIN_ACC = 1500, 0.80


class ConvBase(nn.Module):
    """The authors' ConvBase: three strided Conv1d + ReLU, flattened into one linear layer."""

    def __init__(self, channels=CHANNELS, linear_in=LINEAR_IN, output_size=10):
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.linear = nn.Linear(linear_in, output_size)

    def forward(self, x):                                # x (N, 40)
        h = x.reshape((x.shape[0], 1, x.shape[-1]))      # (N, 1, 40)
        h = self.conv1(h).relu()                         # (N, 25, 19)
        h = self.conv2(h).relu()                         # (N, 25, 10)
        h = self.conv3(h).relu()                         # (N, 25, 5)
        return self.linear(h.reshape((h.shape[0], -1)))  # (N, 10)


def train_torch(state, data, a):
    """The same model, data, batches, optimizer and steps, in torch."""
    import torch

    class TorchConvBase(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv1d(1, CHANNELS, 5, stride=2, padding=1)
            self.conv2 = torch.nn.Conv1d(CHANNELS, CHANNELS, 3, stride=2, padding=1)
            self.conv3 = torch.nn.Conv1d(CHANNELS, CHANNELS, 3, stride=2, padding=1)
            self.linear = torch.nn.Linear(LINEAR_IN, 10)

        def forward(self, x):
            h = x.view(-1, 1, x.shape[-1])
            h = self.conv1(h).relu()
            h = self.conv2(h).relu()
            h = self.conv3(h).relu()
            return self.linear(h.view(h.shape[0], -1))

    torch.set_num_threads(a.threads)
    model = TorchConvBase()
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
                    help=f"reduced run for CI: {CI_STEPS} steps, quiet, assert --min-acc")
    ap.add_argument("--steps", type=int, default=None,
                    help=f"Adam steps (default 6000; CI {CI_STEPS})")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--threads", type=int, default=1,
                    help="threads for ember and torch alike (the layers are tiny: 1 is fastest)")
    ap.add_argument("--min-acc", type=float, default=None,
                    help=f"fail (exit 1) below this test accuracy "
                         f"(default: {CI_MIN_ACC} with --ci)")
    ap.add_argument("--compare-torch", action="store_true",
                    help="also train the same model with torch, when it is importable")
    ap.add_argument("--print-every", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    a = ap.parse_args(argv)
    a.steps = a.steps or (CI_STEPS if a.ci else 6000)
    a.verbose = not a.ci
    min_acc = a.min_acc if a.min_acc is not None else (CI_MIN_ACC if a.ci else None)

    data = load_data(a.out)
    em.manual_seed(a.seed)
    em.set_num_threads(a.threads)
    model = ConvBase()
    init_state = {k: np.array(v) for k, v in model.state_dict().items()}
    epochs = a.steps * a.batch_size / len(data["x"])
    print(f"MNIST-1D: {len(data['x'])} train / {len(data['x_test'])} test signals of 40 samples; "
          f"ConvBase: 3 x Conv1d({CHANNELS} channels, stride 2) + ReLU, Linear({LINEAR_IN}, 10), "
          f"{sum(p.data.size for p in model.parameters())} parameters")
    print(f"Adam lr {a.lr}, batch {a.batch_size}, {a.steps} steps ({epochs:g} epochs), "
          f"seed {a.seed}, {a.threads} thread(s)")

    t_em, loss_em = train_ember(model, data, a, clip=None)
    acc_em = accuracy_ember(model, data)
    torch_run = (lambda: train_torch(init_state, data, a)) if a.compare_torch else None
    return finish(a.steps, acc_em, t_em, loss_em, torch_run, min_acc)


if __name__ == "__main__":
    sys.exit(main())
