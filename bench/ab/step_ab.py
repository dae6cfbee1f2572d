"""In-process A/B of a training workload step between two builds of ember.

    python bench/ab/step_ab.py OTHER WID [THREADS] [ROUNDS]

OTHER is a directory holding a second, built copy of the package (an `ember/` directory with
its `_core` extension as a real file, e.g. `cp -rL python/ember /tmp/old/ember_old` from an
older checkout's dev build); its directory name is the module name it is imported under, so it
must differ from `ember`. The package uses relative imports only, so both load side by side.
`ember` itself is the one on sys.path (PYTHONPATH=python for the working tree).

Both sides build WID (W1-W7 of bench/workloads.py) with the same data and seed; rounds of 10
steps alternate A B / B A, and the median of the per-round speed ratios (ember / OTHER) is
printed with its quartiles. Machine noise that lasts longer than a round hits both sides; a null
A/B (a copy of the same build) read 0.986 [0.946, 1.021] for W4 on the 2-core VM, so effects
within a few percent need several runs.
"""
from __future__ import annotations

import importlib
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # the repository root, for bench


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    other_dir = os.path.abspath(argv[0].rstrip("/"))
    wid = argv[1]
    threads = int(argv[2]) if len(argv) > 2 else 1
    rounds = int(argv[3]) if len(argv) > 3 else 30
    other = os.path.basename(other_dir)
    if other == "ember":
        raise SystemExit("step_ab: the other build's directory must not be named 'ember'")
    sys.path.insert(0, os.path.dirname(other_dir))
    import bench.workloads as wl

    steps = {}
    for name in ("ember", other):
        em = importlib.import_module(name)
        em.set_num_threads(threads)
        builder, batch, shape, (opt_name, opt_kw), n_batches = wl.SPECS[wid]
        X, y = wl._data(n_batches, batch, shape)
        em.manual_seed(0)
        model = builder(em.nn, em.functional.relu)
        loader = em.data.DataLoader(em.data.ArrayDataset(X, y), batch_size=batch, shuffle=True,
                                    drop_last=True)
        opt = getattr(em.optim, opt_name)(model.parameters(), **opt_kw)
        steps[name] = wl._train_step_em(em, model, opt, em.nn.CrossEntropyLoss(), loader)
    for step in steps.values():
        for _ in range(20):
            step()
    times = {k: [] for k in steps}
    ratios = []
    for i in range(rounds):
        for k in (("ember", other) if i % 2 else (other, "ember")):
            t0 = time.perf_counter()
            for _ in range(10):
                steps[k]()
            times[k].append((time.perf_counter() - t0) / 10)
        ratios.append(times[other][-1] / times["ember"][-1])
    ratios.sort()
    n = len(ratios)
    print(f"{wid} threads={threads}: ember {statistics.median(times['ember']) * 1e6:.0f} us, "
          f"{other} {statistics.median(times[other]) * 1e6:.0f} us per step; speed ember/{other} "
          f"{statistics.median(ratios):.3f} [quartiles {ratios[n // 4]:.3f} "
          f"{ratios[3 * n // 4]:.3f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
