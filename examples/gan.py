"""A generative adversarial network on a 2-D toy distribution: a ring of 8 Gaussians.

Two small MLPs play against each other, each with its own Adam optimizer:

  generator G:      z ~ N(0, I) in R^8    -> 128 -> 128 -> a point in R^2
  discriminator D:  2 points, as R^(2*2)  -> 128 -> 128 -> one logit, "real" vs "generated"

and are updated alternately on every step:

  D step:  BCEWithLogits(D(real), 1) + BCEWithLogits(D(G(z).detach()), 0)    -- only D learns
  G step:  BCEWithLogits(D(G(z)), 1)   with D frozen (requires_grad_(False)) -- only G learns

(the non-saturating generator loss of Goodfellow et al.). D judges samples in pairs (PacGAN,
Lin et al. 2018, ``--pack 2``): the two samples of a pair from a generator that drops modes land
in the same mode more often than real pairs do (1 in 8), which D can see, so G is pushed to cover
every mode. With
``--pack 1`` (the plain GAN) the same networks typically settle on 5-7 of the 8 modes.

Progress is measured, not eyeballed: the squared maximum mean discrepancy (MMD^2, RBF kernels at
three bandwidths) between 1,000 generated and 1,000 real samples, the number of the 8 modes that
receive at least a quarter of their fair share (1/8) of the generated samples, and the fraction of
generated samples that land near some mode (within 4 std). With matplotlib, a scatter of real vs
generated samples at the start and at the end is saved into examples/out/.

    python examples/gan.py          # full run
    python examples/gan.py --ci     # reduced run; exits non-zero unless MMD^2 fell 10x
"""
import argparse
import os
import sys
import time

import numpy as np

import ember as em
from ember import nn, optim

HERE = os.path.dirname(os.path.abspath(__file__))
N_MODES, RADIUS, STD = 8, 2.0, 0.05
N_EVAL = 1000                      # samples per side in each measurement
MODES = RADIUS * np.stack([np.cos(2 * np.pi * np.arange(N_MODES) / N_MODES),
                           np.sin(2 * np.pi * np.arange(N_MODES) / N_MODES)], 1)


def sample_real(rng, n):
    """n points from the ring: a uniformly chosen mode plus N(0, STD^2) noise."""
    return (MODES[rng.integers(N_MODES, size=n)]
            + STD * rng.standard_normal((n, 2))).astype(np.float32)


def mlp(d_in, width, d_out):
    return nn.Sequential(
        nn.Linear(d_in, width), nn.ReLU(),
        nn.Linear(width, width), nn.ReLU(),
        nn.Linear(width, d_out),
    )


def mmd2(X, Y, bandwidths=(0.1, 0.5, 2.0)):
    """Unbiased squared MMD between samples X and Y under a sum of RBF kernels
    k(a, b) = exp(-|a - b|^2 / (2 s^2)); zero in expectation iff the distributions agree."""
    def sq_dists(A, B):
        return (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2 * A @ B.T

    X, Y = X.astype(np.float64), Y.astype(np.float64)
    dxx, dyy, dxy = sq_dists(X, X), sq_dists(Y, Y), sq_dists(X, Y)
    m, n = len(X), len(Y)
    total = 0.0
    for s in bandwidths:
        kxx, kyy, kxy = (np.exp(-d / (2 * s * s)) for d in (dxx, dyy, dxy))
        total += ((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                  + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean())
    return float(total)


def mode_stats(X):
    """(modes covered, fraction of samples near a mode). A sample is near a mode within 4 STD;
    a mode is covered when it holds at least a quarter of its fair share (1/8) of all samples."""
    d = np.sqrt(((X[:, None, :] - MODES[None]) ** 2).sum(-1))           # (n, 8)
    near = d.min(1) < 4 * STD
    counts = np.bincount(d.argmin(1)[near], minlength=N_MODES)
    covered = int((counts >= 0.25 * len(X) / N_MODES).sum())
    return covered, float(near.mean())


def generate(G, n, z_dim):
    G.eval()
    with em.no_grad():
        out = G(em.randn(n, z_dim)).numpy()
    G.train()
    return out


def save_scatter(path, real, snapshots):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(snapshots), figsize=(5 * len(snapshots), 5))
    for ax, (title, fake) in zip(np.atleast_1d(axes), snapshots):
        ax.scatter(real[:, 0], real[:, 1], s=4, c="tab:blue", alpha=0.4, label="real")
        ax.scatter(fake[:, 0], fake[:, 1], s=4, c="tab:red", alpha=0.4, label="generated")
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
        ax.set_aspect("equal")
        ax.set_title(title)
        ax.legend(loc="upper right", markerscale=3)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ci", action="store_true",
                    help="reduced run for CI: fewer steps; fail unless MMD^2 fell by --min-factor "
                         "and at least 6 of the 8 modes are covered")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--z-dim", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--pack", type=int, default=2,
                    help="samples D judges jointly (PacGAN); 1 is the plain GAN")
    ap.add_argument("--min-factor", type=float, default=10.0,
                    help="with --ci, fail unless MMD^2 at the end is this many times lower")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    args = ap.parse_args(argv)
    steps = args.steps or (1500 if args.ci else 3000)

    t0 = time.perf_counter()
    em.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    G, D = mlp(args.z_dim, args.width, 2), mlp(2 * args.pack, args.width, 1)
    # beta1 = 0.5 is the usual GAN choice: less momentum, so neither player overshoots the other.
    opt_G = optim.Adam(G.parameters(), lr=args.lr, betas=(0.5, 0.999))
    opt_D = optim.Adam(D.parameters(), lr=args.lr, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    if args.batch % args.pack:
        ap.error(f"--batch {args.batch} is not a multiple of --pack {args.pack}")
    n_packs = args.batch // args.pack
    ones = np.ones((n_packs, 1), np.float32)
    zeros = np.zeros((n_packs, 1), np.float32)

    def judge(points):
        """D's logits for the batch, ``pack`` samples at a time: (batch, 2) -> (batch/pack, 1)."""
        return D(points.reshape(n_packs, 2 * args.pack))

    eval_real = sample_real(np.random.default_rng(12345), N_EVAL)    # fixed reference sample
    eval_time = [0.0]

    def report(step):
        t = time.perf_counter()
        fake = generate(G, N_EVAL, args.z_dim)
        covered, near = mode_stats(fake)
        mmd = mmd2(fake, eval_real)
        print(f"  step {step:5d}  MMD^2 {mmd:.4f}  modes covered {covered}/{N_MODES}  "
              f"near a mode {near:.2f}")
        eval_time[0] += time.perf_counter() - t
        return mmd, covered, near, fake

    print(f"GAN on a ring of {N_MODES} Gaussians (radius {RADIUS}, std {STD}): "
          f"G {G.num_parameters()} / D {D.num_parameters()} parameters, "
          f"batch {args.batch}, {steps} steps")
    # Two real samples against each other: the MMD^2 a perfect generator would score.
    mmd_floor = mmd2(sample_real(np.random.default_rng(999), N_EVAL), eval_real)
    start = report(0)
    d_loss = g_loss = float("nan")
    t_train = time.perf_counter()
    for step in range(1, steps + 1):
        # D step: real -> 1, generated -> 0. detach() cuts the graph at G's output, so this
        # backward pass never reaches (or pays for) the generator.
        real = sample_real(rng, args.batch)
        fake = G(em.randn(args.batch, args.z_dim))
        loss_D = bce(judge(real), ones) + bce(judge(fake.detach()), zeros)
        opt_D.zero_grad()
        loss_D.backward()
        opt_D.step()

        # G step: make D call fresh samples real. D is frozen, so the backward pass flows
        # through D's layers into G without computing gradients for D's weights.
        D.requires_grad_(False)
        loss_G = bce(judge(G(em.randn(args.batch, args.z_dim))), ones)
        opt_G.zero_grad()
        loss_G.backward()
        opt_G.step()
        D.requires_grad_(True)

        d_loss, g_loss = loss_D.item(), loss_G.item()
        if step % max(1, steps // 5) == 0 and step != steps:
            print(f"             D loss {d_loss:.3f}  G loss {g_loss:.3f}")
            report(step)
    train_time = time.perf_counter() - t_train - eval_time[0]
    print(f"             D loss {d_loss:.3f}  G loss {g_loss:.3f}")
    end = report(steps)

    print(f"\ntrained {steps} steps in {train_time:.1f} s, not counting the measurements "
          f"({1e3 * train_time / steps:.1f} ms per D+G step)")
    print(f"MMD^2 generated vs real: start {start[0]:.4f} -> end {end[0]:.4f} "
          f"({start[0] / max(end[0], 1e-12):.0f}x lower; real vs real: {mmd_floor:.4f})")
    print(f"modes covered: start {start[1]}/{N_MODES} -> end {end[1]}/{N_MODES};  "
          f"samples near a mode: start {start[2]:.2f} -> end {end[2]:.2f}")

    try:
        path = os.path.join(args.out, "gan_ring.png")
        save_scatter(path, eval_real, [("step 0", start[3]), (f"step {steps}", end[3])])
        print(f"saved {path}")
    except ImportError as e:
        print(f"(no PNG: matplotlib is not installed: {e})")

    print(f"total time {time.perf_counter() - t0:.1f} s")
    if args.ci:
        failures = []
        if not end[0] * args.min_factor < start[0]:
            failures.append(f"MMD^2 fell only {start[0]:.4f} -> {end[0]:.4f} "
                            f"(need {args.min_factor:g}x)")
        if end[1] < N_MODES - 2:
            failures.append(f"only {end[1]}/{N_MODES} modes covered")
        if failures:
            print("FAIL: " + "; ".join(failures), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
