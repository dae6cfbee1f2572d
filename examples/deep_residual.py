"""Why deep networks need residual connections and normalization: the vanishing-gradient story.

Two 20-layer MLPs of the same width on scikit-learn's handwritten digits (8x8, 10 classes):

  plain:     x -> Linear -> [Linear -> Sigmoid] x depth -> Linear -> logits
  residual:  x -> Linear -> [x + Linear(Tanh(LayerNorm(x)))] x depth -> LayerNorm -> Linear

Both use PyTorch's default initialization and the same optimizer. In the plain stack every sigmoid
multiplies the backward signal by at most 1/4 (and the default init shrinks activations), so the
gradient reaching the first layers is orders of magnitude smaller than at the last: the early
layers barely learn and the loss hardly moves. In the residual stack each block adds to an
identity path, so the gradient reaches every layer at a similar size; LayerNorm keeps the
activations in range as the sum grows. The script prints per-layer gradient norms at
initialization, the training curves, and the final test accuracies.

    python examples/deep_residual.py            # full run (10 epochs)
    python examples/deep_residual.py --ci       # reduced run for CI
"""
import argparse
import time

import numpy as np

import ember as em
from ember import nn, optim


def load_digits_split(seed=0):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X = (X - X.mean(0)) / (X.std(0) + 1e-6)
    idx = np.random.default_rng(seed).permutation(len(X))
    n_test = len(X) // 5
    te, tr = idx[:n_test], idx[n_test:]
    return X[tr], y[tr].astype(np.int64), X[te], y[te].astype(np.int64)


def plain_mlp(d_in, width, depth, n_out):
    """(model, its depth hidden Linear layers, first to last)"""
    hidden = [nn.Linear(width, width) for _ in range(depth)]
    layers = [nn.Linear(d_in, width)]
    for lin in hidden:
        layers += [lin, nn.Sigmoid()]
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers), hidden


def residual_mlp(d_in, width, depth, n_out):
    hidden = [nn.Linear(width, width) for _ in range(depth)]
    layers = [nn.Linear(d_in, width)]
    for lin in hidden:
        layers.append(nn.Residual(nn.Sequential(nn.LayerNorm(width), nn.Tanh(), lin)))
    layers += [nn.LayerNorm(width), nn.Linear(width, n_out)]
    return nn.Sequential(*layers), hidden


def grad_norms(model, hidden, loss_fn, X, y):
    """Norm of the loss gradient w.r.t. each hidden layer's weight, on one batch."""
    model.zero_grad()
    loss_fn(model(X), y).backward()
    norms = [float(np.linalg.norm(lin.weight.grad.numpy())) for lin in hidden]
    model.zero_grad()
    return norms


def accuracy(model, X, y):
    model.eval()
    with em.no_grad():
        pred = model(X).numpy().argmax(1)
    model.train()
    return float((pred == y).mean())


def train(model, loss_fn, Xtr, ytr, Xte, yte, epochs, lr, batch, seed, label):
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    rng = np.random.default_rng(seed)
    history = []
    for epoch in range(1, epochs + 1):
        perm = rng.permutation(len(Xtr))
        total, n = 0.0, 0
        for i in range(0, len(Xtr), batch):
            b = perm[i:i + batch]
            loss = loss_fn(model(Xtr[b]), ytr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
            n += len(b)
        history.append(total / n)
        if epoch == 1 or epoch == epochs or epoch % max(1, epochs // 5) == 0:
            print(f"  {label:8s} epoch {epoch:3d}  train loss {total / n:.4f}  "
                  f"test acc {accuracy(model, Xte, yte):.3f}")
    return history


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--ci", action="store_true", help="reduced run (few epochs)")
    args = ap.parse_args()
    if args.ci:
        args.epochs = 3

    Xtr, ytr, Xte, yte = load_digits_split()
    loss_fn = nn.CrossEntropyLoss()
    results = {}
    for label, build in (("plain", plain_mlp), ("residual", residual_mlp)):
        em.manual_seed(0)
        model, hidden = build(Xtr.shape[1], args.width, args.depth, 10)
        norms = grad_norms(model, hidden, loss_fn, Xtr[:256], ytr[:256])
        print(f"\n{label}: {args.depth} hidden layers, {model.num_parameters()} parameters")
        print("  gradient norm of each hidden layer's weight at init (L01 = first):")
        for i in range(0, len(norms), 5):
            print("   " + "  ".join(f"L{j + 1:02d} {norms[j]:.1e}"
                                    for j in range(i, min(i + 5, len(norms)))))
        print(f"  first/last layer gradient ratio: {norms[0] / norms[-1]:.1e}")
        t0 = time.perf_counter()
        hist = train(model, loss_fn, Xtr, ytr, Xte, yte, args.epochs, args.lr, args.batch, 0,
                     label)
        results[label] = (hist, accuracy(model, Xte, yte), norms[0] / norms[-1],
                          time.perf_counter() - t0)

    print("\nsummary (same depth, width, optimizer, epochs):")
    for label, (hist, acc, ratio, secs) in results.items():
        print(f"  {label:8s} loss {hist[0]:.3f} -> {hist[-1]:.3f}   test acc {acc:.3f}   "
              f"grad(first)/grad(last) {ratio:.1e}   {secs:.1f} s")
    if results["residual"][1] <= results["plain"][1]:
        raise SystemExit("unexpected: the residual network did not beat the plain one")


if __name__ == "__main__":
    main()
