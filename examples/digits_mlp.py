"""Handwritten digits with an MLP: ember's main demo.

scikit-learn's bundled 8x8 digits (1,797 images, no download), a 64-256-10 MLP, Adam, and
``em.fit`` with a validation split, early stopping and a progress bar. Prints the model summary,
the test accuracy and the predicted-vs-actual confusion matrix; saves the weights (safetensors)
and the training curves (PNG, when matplotlib is installed) into examples/out/.

    python examples/digits_mlp.py          # full run, test accuracy >= 97%
    python examples/digits_mlp.py --ci     # shorter run; exits non-zero below --min-acc
"""
import argparse
import os
import sys
import time

import numpy as np

import ember as em
from ember import nn, optim

HERE = os.path.dirname(os.path.abspath(__file__))


def build_model():
    return nn.Sequential(
        nn.Linear(64, 256), nn.ReLU(),
        nn.Linear(256, 10),
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ci", action="store_true",
                    help="reduced run for CI: fewer epochs, quiet, assert --min-acc")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--min-acc", type=float, default=None,
                    help="fail (exit 1) below this test accuracy (default: 0.95 with --ci)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    args = ap.parse_args(argv)
    epochs = args.epochs or (30 if args.ci else 100)
    patience = 8 if args.ci else 15
    min_acc = args.min_acc if args.min_acc is not None else (0.95 if args.ci else None)

    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit('this demo needs scikit-learn for its bundled dataset: pip install "ember[demo]"')

    t0 = time.perf_counter()
    em.manual_seed(args.seed)
    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)   # (1797, 64) pixel intensities in [0, 1]
    y = digits.target.astype(np.int64)            # (1797,) class ids 0..9
    X_train, X_test, y_train, y_test = em.data.train_test_split(
        X, y, test_size=0.2, seed=args.seed, stratify=y)
    # Standardize with the training statistics only (the test set stays unseen).
    mean, std = X_train.mean(axis=0), X_train.std(axis=0) + 1e-2
    X_train, X_test = (X_train - mean) / std, (X_test - mean) / std

    model = build_model()
    if not args.ci:
        model.summary(input_shape=(64,))
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    history = em.fit(
        model, (X_train, y_train),
        loss=nn.CrossEntropyLoss(), optimizer=optimizer,
        epochs=epochs, batch_size=32,
        validation_split=0.1,                      # the last 10% of the training arrays
        metrics=["accuracy"],
        callbacks=[em.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                              restore_best_weights=True)],
        verbose=0 if args.ci else 1,
    )
    train_time = time.perf_counter() - t0

    test = em.evaluate(model, (X_test, y_test), loss=nn.CrossEntropyLoss())
    pred = em.predict(model, X_test)
    print(f"\ntrained {len(history.epoch)} epochs in {train_time:.1f} s "
          f"(best val_loss {min(history.history['val_loss']):.4f})")
    print(f"test loss {test['loss']:.4f}, test accuracy {test['accuracy']:.4f} "
          f"({int(round(test['accuracy'] * len(y_test)))}/{len(y_test)})")
    if not args.ci:
        print("\nconfusion matrix (rows: predicted digit, columns: actual digit)")
        print(em.metrics.confusion_matrix(pred, y_test, num_classes=10))

    # Save the weights and the input scaling, then check the reload is exact.
    os.makedirs(args.out, exist_ok=True)
    weights = os.path.join(args.out, "digits_mlp.safetensors")
    em.save(model.state_dict(), weights)
    em.save({"mean": mean, "std": std}, os.path.join(args.out, "digits_scaler.safetensors"))
    reloaded = build_model()
    reloaded.load_state_dict(em.load(weights))
    assert np.array_equal(em.predict(reloaded, X_test), pred), "reload changed the outputs"
    print(f"saved {weights}")
    try:
        curves = os.path.join(args.out, "digits_mlp_curves.png")
        history.plot(curves, title="digits MLP")
        print(f"saved {curves}")
    except ImportError as e:
        print(f"(no training-curve PNG: {e})")

    print(f"total time {time.perf_counter() - t0:.1f} s")
    if min_acc is not None and test["accuracy"] < min_acc:
        print(f"FAIL: test accuracy {test['accuracy']:.4f} < {min_acc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
