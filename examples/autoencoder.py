"""An autoencoder on handwritten digits: squeeze 64 pixels through a 2-D code and back.

scikit-learn's bundled 8x8 digits (1,797 images, no download), pixels scaled to [0, 1].

  encoder:  64 -> 128 -> 32 -> 2    (ReLU, ReLU, linear code)
  decoder:   2 -> 32 -> 128 -> 64   (ReLU, ReLU, Sigmoid pixels)

trained with ``em.fit`` on the reconstruction (MSE) loss -- the targets are the inputs, no labels.
The script prints the reconstruction loss before and after training on held-out images, then asks
how much the 2-D code learned about the digits it never saw labels for: the accuracy of a
5-nearest-neighbour classifier in code space (test codes classified by training codes), beside the
same classifier on the first two principal components (the best *linear* 2-D code for
reconstruction). With matplotlib it saves a scatter of the test codes coloured by digit, and a row
of original/reconstructed images, into examples/out/.

    python examples/autoencoder.py          # full run
    python examples/autoencoder.py --ci     # reduced run; exits non-zero if the loss did not fall
"""
import argparse
import os
import sys
import time

import numpy as np

import ember as em
from ember import nn, optim

HERE = os.path.dirname(os.path.abspath(__file__))


def build(code_dim=2):
    encoder = nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(),
        nn.Linear(128, 32), nn.ReLU(),
        nn.Linear(32, code_dim),
    )
    decoder = nn.Sequential(
        nn.Linear(code_dim, 32), nn.ReLU(),
        nn.Linear(32, 128), nn.ReLU(),
        nn.Linear(128, 64), nn.Sigmoid(),
    )
    return encoder, decoder, nn.Sequential(encoder, decoder)


def reconstruction_loss(model, X):
    model.eval()
    with em.no_grad():
        loss = nn.MSELoss()(model(X), X).item()
    model.train()
    return loss


def encode(encoder, X):
    encoder.eval()
    with em.no_grad():
        Z = encoder(X).numpy()
    encoder.train()
    return Z


def knn_accuracy(Z_train, y_train, Z_test, y_test, k=5):
    """k-nearest-neighbour (Euclidean, majority vote) accuracy of the test codes."""
    d2 = ((Z_test[:, None, :] - Z_train[None, :, :]) ** 2).sum(-1)      # (n_test, n_train)
    nearest = np.argpartition(d2, k, axis=1)[:, :k]
    votes = np.zeros((len(Z_test), 10), np.int64)
    np.add.at(votes, (np.arange(len(Z_test))[:, None], y_train[nearest]), 1)
    return float((votes.argmax(1) == y_test).mean())


def pca(X_train, X_test, dim=2):
    """Codes of the train and test images on the top ``dim`` principal axes, and the test
    images reconstructed from their codes."""
    mean = X_train.mean(0)
    _, _, vt = np.linalg.svd(X_train - mean, full_matrices=False)
    basis = vt[:dim]                                                    # (dim, 64)
    P_train, P_test = (X_train - mean) @ basis.T, (X_test - mean) @ basis.T
    return P_train, P_test, mean + P_test @ basis


def save_plots(out, Z, y, X, X_rec):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 6))
    sc = ax.scatter(Z[:, 0], Z[:, 1], c=y, cmap="tab10", s=10, vmin=-0.5, vmax=9.5)
    for d in range(10):                        # label each digit at its cluster's median
        cx, cy = np.median(Z[y == d], axis=0)
        ax.text(cx, cy, str(d), fontsize=14, weight="bold", ha="center", va="center",
                bbox=dict(boxstyle="round,pad=0.2", fc="white", alpha=0.7))
    fig.colorbar(sc, ax=ax, ticks=range(10), label="digit")
    ax.set_title("autoencoder: 2-D codes of held-out digits")
    ax.set_xlabel("code[0]")
    ax.set_ylabel("code[1]")
    codes_png = os.path.join(out, "autoencoder_codes.png")
    fig.savefig(codes_png, dpi=120, bbox_inches="tight")
    plt.close(fig)

    n = 10
    fig, axes = plt.subplots(2, n, figsize=(n, 2.2))
    for i in range(n):
        for row, img in ((0, X[i]), (1, X_rec[i])):
            axes[row, i].imshow(img.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            axes[row, i].axis("off")
    axes[0, 0].set_title("input", fontsize=8, loc="left")
    axes[1, 0].set_title("reconstruction", fontsize=8, loc="left")
    rec_png = os.path.join(out, "autoencoder_reconstructions.png")
    fig.savefig(rec_png, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return codes_png, rec_png


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ci", action="store_true",
                    help="reduced run for CI: fewer epochs, assert the loss fell")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    args = ap.parse_args(argv)
    epochs = args.epochs or (40 if args.ci else 200)

    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit('this demo needs scikit-learn for its bundled dataset: pip install "ember[demo]"')

    t0 = time.perf_counter()
    em.manual_seed(args.seed)
    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)   # (1797, 64) pixel intensities in [0, 1]
    y = digits.target.astype(np.int64)
    X_train, X_test, y_train, y_test = em.data.train_test_split(
        X, y, test_size=0.2, seed=args.seed, stratify=y)

    encoder, decoder, model = build()
    loss_start = reconstruction_loss(model, X_test)
    # Predicting the mean image is the baseline any code must beat.
    loss_mean = float(((X_test - X_train.mean(0)) ** 2).mean())
    print(f"autoencoder 64 -> 2 -> 64, {model.num_parameters()} parameters, "
          f"{len(X_train)} training / {len(X_test)} test images")
    print(f"test reconstruction MSE at start {loss_start:.4f}  "
          f"(predicting the mean image: {loss_mean:.4f})")

    opt = optim.Adam(model.parameters(), lr=args.lr)
    history = em.fit(model, (X_train, X_train), loss=nn.MSELoss(), optimizer=opt,
                     epochs=epochs, batch_size=args.batch, verbose=0)
    train_time = time.perf_counter() - t0
    losses = history.history["loss"]
    for e in sorted({0, len(losses) // 4, len(losses) // 2, 3 * len(losses) // 4,
                     len(losses) - 1}):
        print(f"  epoch {e + 1:4d}  train MSE {losses[e]:.4f}")

    loss_end = reconstruction_loss(model, X_test)
    Z_train, Z_test = encode(encoder, X_train), encode(encoder, X_test)
    acc_ae = knn_accuracy(Z_train, y_train, Z_test, y_test)
    P_train, P_test, X_pca = pca(X_train, X_test)
    acc_pca = knn_accuracy(P_train, y_train, P_test, y_test)
    rec_pca = float(((X_pca - X_test) ** 2).mean())
    print(f"\ntrained {len(losses)} epochs in {train_time:.1f} s")
    print(f"test reconstruction MSE: start {loss_start:.4f} -> end {loss_end:.4f} "
          f"({loss_start / loss_end:.1f}x lower; 2-D PCA reconstruction: {rec_pca:.4f})")
    print(f"5-NN digit accuracy in the 2-D code space: autoencoder {acc_ae:.3f}, "
          f"PCA {acc_pca:.3f} (chance 0.100)")

    try:
        with em.no_grad():
            model.eval()
            X_rec = model(X_test[:10]).numpy()
        for path in save_plots(args.out, Z_test, y_test, X_test, X_rec):
            print(f"saved {path}")
    except ImportError as e:
        print(f"(no PNG: matplotlib is not installed: {e})")

    print(f"total time {time.perf_counter() - t0:.1f} s")
    if args.ci:
        failures = []
        if not loss_end < 0.5 * loss_start:
            failures.append(f"reconstruction MSE fell only {loss_start:.4f} -> {loss_end:.4f}")
        if not loss_end < loss_mean:
            failures.append(f"reconstruction MSE {loss_end:.4f} is no better than the mean "
                            f"image ({loss_mean:.4f})")
        if not acc_ae > 0.5:
            failures.append(f"5-NN accuracy in code space {acc_ae:.3f} <= 0.5")
        if failures:
            print("FAIL: " + "; ".join(failures), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
