"""MNIST-1D data for the examples (mnist1d_gru.py, mnist1d.py): generated offline, cached as .npz.

``mnist1d.data.make_dataset(get_dataset_args())`` builds the authors' default dataset (5,000
signals of 40 samples, 4,000 train / 1,000 test, seed 42) in about 3 s; ``get_dataset`` would
try to download it instead.
"""
import contextlib
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


@contextlib.contextmanager
def _without_examples_dir():
    """examples/mnist1d.py would shadow the mnist1d package: a script's own directory comes first
    on sys.path. Hide this directory (and a stale import of the script as ``mnist1d``) while
    importing the package."""
    here = os.path.realpath(HERE)
    saved_path = sys.path[:]
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.getcwd()) != here]
    shadow = sys.modules.get("mnist1d")
    if shadow is not None and not hasattr(shadow, "__path__"):   # a module, not the package
        del sys.modules["mnist1d"]
    try:
        yield
    finally:
        sys.path[:] = saved_path


def load_data(out_dir):
    """MNIST-1D as float32 signals / int64 labels: {"x", "y", "x_test", "y_test"}, generated once
    and cached in ``out_dir``/mnist1d.npz."""
    path = os.path.join(out_dir, "mnist1d.npz")
    if os.path.exists(path):
        with np.load(path) as z:
            return {k: z[k] for k in ("x", "y", "x_test", "y_test")}
    try:
        with _without_examples_dir():
            import mnist1d.data
    except ImportError:
        sys.exit('this example needs the mnist1d package: pip install "ember[examples]"')
    t0 = time.perf_counter()
    ds = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
    data = {"x": ds["x"].astype(np.float32), "y": ds["y"].astype(np.int64),
            "x_test": ds["x_test"].astype(np.float32), "y_test": ds["y_test"].astype(np.int64)}
    os.makedirs(out_dir, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp.npz"   # written whole, then renamed: concurrent runs are safe
    np.savez(tmp, **data)
    os.replace(tmp, path)
    print(f"generated MNIST-1D in {time.perf_counter() - t0:.1f} s, cached in {path}")
    return data


def batches(n_train, batch_size, steps):
    """The authors' batch order: consecutive slices of the training set, wrapping around."""
    for step in range(steps):
        bix = (step * batch_size) % n_train
        yield slice(bix, bix + batch_size)


def finish(steps, acc_em, t_em, loss_em, torch_run=None, min_acc=None) -> int:
    """Prints ember's result (and torch's, when torch_run is given and torch imports) as a table;
    returns the exit code: 1 when ember's test accuracy is below min_acc."""
    rows = [("ember", acc_em, t_em, loss_em)]
    if torch_run is not None:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("--compare-torch: torch is not importable; skipping the torch run")
        else:
            t_to, loss_to, acc_to, version = torch_run()
            rows.append((f"torch {version}", acc_to, t_to, loss_to))
    print(f"\n{'':17s} {'test acc':>8s} {'train time':>10s} {'ms/step':>8s} {'last loss':>9s}")
    for name, acc, t, loss in rows:
        print(f"{name:17s} {acc:8.1%} {t:9.1f}s {1e3 * t / steps:8.2f} {loss:9.4f}")
    if len(rows) == 2:
        print(f"ember / torch training time: {rows[0][2] / rows[1][2]:.2f}")
    if min_acc is not None and acc_em < min_acc:
        print(f"FAIL: ember test accuracy {acc_em:.1%} < {min_acc:.0%}")
        return 1
    return 0


def train_ember(model, data, a, clip=None):
    """Adam over the fixed batch order for a.steps steps (optionally clipping the gradient norm);
    returns (training seconds without the progress evaluations, last loss)."""
    import ember as em  # noqa: F401  (the examples put the package on the path first)
    from ember import nn, optim

    opt = optim.Adam(model.parameters(), lr=a.lr, weight_decay=0.0)
    loss_fn = nn.CrossEntropyLoss()
    X, Y = data["x"], data["y"]
    t0, t_eval = time.perf_counter(), 0.0           # progress evaluations are not timed
    for step, sl in enumerate(batches(len(X), a.batch_size, a.steps), 1):
        loss = loss_fn(model(X[sl]), Y[sl])
        opt.zero_grad()
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        if a.verbose and step % a.print_every == 0:
            te = time.perf_counter()
            print(f"  ember step {step:5d}  loss {loss.item():.3f}  "
                  f"test acc {accuracy_ember(model, data):.1%}  ({te - t0 - t_eval:.1f} s)")
            t_eval += time.perf_counter() - te
    return time.perf_counter() - t0 - t_eval, float(loss.item())


def accuracy_ember(model, data):
    import ember as em

    model.eval()
    with em.no_grad():
        pred = model(data["x_test"]).numpy().argmax(axis=1)
    model.train()
    return float((pred == data["y_test"]).mean())
