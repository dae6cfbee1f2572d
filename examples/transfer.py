"""Transfer learning in miniature: reuse a trained body, train only a new head.

1. Train an MLP on the digits 0-4 (scikit-learn's bundled 8x8 digits).
2. Save it (safetensors), reload it into a fresh model.
3. Freeze the body (``requires_grad_(False)``), put a new head on it for the digits 5-9 and
   train; the optimizer gets every parameter and skips the frozen ones.
4. Show that the frozen weights did not move by a single bit, and what the head reached.

    python examples/transfer.py
    python examples/transfer.py --ci      # shorter; exits non-zero if a check fails
"""
import argparse
import os
import sys
import time

import numpy as np

import ember as em
from ember import nn, optim

HERE = os.path.dirname(os.path.abspath(__file__))


class Net(nn.Module):
    def __init__(self, classes=5):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 256), nn.ReLU())
        self.head = nn.Linear(256, classes)

    def forward(self, x):
        return self.head(self.body(x))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ci", action="store_true", help="shorter run; assert --min-acc")
    ap.add_argument("--min-acc", type=float, default=None,
                    help="fail below this head accuracy on 5-9 (default 0.9 with --ci)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    args = ap.parse_args(argv)
    epochs = 15 if args.ci else 30
    min_acc = args.min_acc if args.min_acc is not None else (0.9 if args.ci else None)
    verbose = 0 if args.ci else 2

    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit('this demo needs scikit-learn for its bundled dataset: pip install "ember[demo]"')
    t0 = time.perf_counter()
    em.manual_seed(args.seed)
    d = load_digits()
    X = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-2)
    low, high = y < 5, y >= 5
    Xa_tr, Xa_te, ya_tr, ya_te = em.data.train_test_split(X[low], y[low], test_size=0.2,
                                                          seed=args.seed, stratify=y[low])
    Xb_tr, Xb_te, yb_tr, yb_te = em.data.train_test_split(X[high], y[high] - 5, test_size=0.2,
                                                          seed=args.seed, stratify=y[high])

    # 1. the source task: digits 0-4
    print("== training on digits 0-4")
    src = Net(5)
    em.fit(src, (Xa_tr, ya_tr), loss=nn.CrossEntropyLoss(),
           optimizer=optim.Adam(src.parameters(), lr=1e-3), epochs=epochs, batch_size=32,
           verbose=verbose)
    acc_a = em.evaluate(src, (Xa_te, ya_te))["accuracy"]
    print(f"digits 0-4 test accuracy: {acc_a:.4f}")

    # 2. save, and reload into a fresh model
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "digits_0to4.safetensors")
    em.save(src.state_dict(), path)
    model = Net(5)
    model.load_state_dict(em.load(path))

    # 3. freeze the body, new head for 5-9
    model.body.requires_grad_(False)
    model.head = nn.Linear(256, 5)
    frozen_before = {k: v.copy() for k, v in model.body.state_dict().items()}
    model.summary(input_shape=(64,), print_fn=None if args.ci else print)
    print("== training a new head on digits 5-9 (body frozen)")
    opt = optim.Adam(model.parameters(), lr=1e-2)   # all parameters: frozen ones are skipped
    em.fit(model, (Xb_tr, yb_tr), loss=nn.CrossEntropyLoss(), optimizer=opt, epochs=epochs,
           batch_size=32, verbose=verbose)
    acc_b = em.evaluate(model, (Xb_te, yb_te))["accuracy"]

    # 4. the frozen weights did not move
    after = model.body.state_dict()
    unchanged = all(after[k].tobytes() == frozen_before[k].tobytes() for k in frozen_before)
    same_as_file = all(after[k].tobytes() == em.load(path)["body." + k].tobytes()
                       for k in after)
    print(f"digits 5-9 test accuracy with the frozen 0-4 body: {acc_b:.4f}")
    print(f"frozen body bitwise unchanged: {unchanged} (and equal to the saved file: "
          f"{same_as_file})")
    print(f"total time {time.perf_counter() - t0:.1f} s")

    ok = unchanged and same_as_file
    if min_acc is not None and acc_b < min_acc:
        print(f"FAIL: head accuracy {acc_b:.4f} < {min_acc}", file=sys.stderr)
        ok = False
    if not unchanged or not same_as_file:
        print("FAIL: frozen weights changed", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
