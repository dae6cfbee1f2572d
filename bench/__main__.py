"""Runs the WORKLOADS.md workloads for ember and torch, interleaved in one process.

    python -m bench                          # every workload, at 1 and 2 threads
    python -m bench --only W1 W3 --threads 1 2 --repeats 7
    python -m bench --ops                    # W9 single-op micro-benchmarks too
    python -m bench --extras                 # import time, installed size, build time

Prints a table, writes bench/results/latest.json and regenerates bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from bench import workloads as W  # noqa: E402

TRAIN_IDS = ["W1", "W2", "W3", "W4", "W5", "W6", "W6g", "W7"]


def set_threads(n):
    import ember as em
    import torch
    em.set_num_threads(n)
    torch.set_num_threads(n)


def _calibrate(step, target_s):
    t0 = time.perf_counter()
    step()
    dt = max(time.perf_counter() - t0, 1e-6)
    return max(1, min(2000, int(target_s / dt)))


def time_pair(builders, repeats, target_s=0.4):
    """builders: {lib: zero-arg -> Workload}. Interleaves A B A B ... and returns per-lib stats."""
    wls = {lib: b() for lib, b in builders.items()}
    for wl in wls.values():           # warm-up: allocator, caches, lazy init
        for _ in range(3):
            wl.step()
    steps = {lib: _calibrate(wl.step, target_s) for lib, wl in wls.items()}
    rates = {lib: [] for lib in wls}
    order = list(wls)
    for r in range(repeats):
        for lib in (order if r % 2 == 0 else order[::-1]):
            wl = wls[lib]
            n = steps[lib]
            t0 = time.perf_counter()
            for _ in range(n):
                wl.step()
            dt = time.perf_counter() - t0
            rates[lib].append(n * wl.batch / dt)
    out = {}
    for lib, rs in rates.items():
        med = statistics.median(rs)
        wl = wls[lib]
        out[lib] = {"samples_per_s": med, "min": min(rs), "max": max(rs), "runs": rs,
                    "gflops": (wl.flops / wl.batch * med / 1e9) if wl.flops else None}
    return out


def peak_rss(kind, wid, lib, threads, steps=30):
    """Peak RSS (MiB) of a fresh process running the workload (ember side never imports torch).

    VmHWM, not getrusage: Linux carries ru_maxrss across exec, so a child would report the
    (much larger) peak of this benchmark process."""
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "from bench import workloads as W\n"
        "lib=%r\n"
        "if lib=='torch':\n"
        "    import torch; torch.set_num_threads(%d)\n"
        "else:\n"
        "    import ember as em; em.set_num_threads(%d)\n"
        "wl = W.build_train(%r, lib, sync_weights=False) if %r=='train' else W.build_infer(%d, lib, sync_weights=False)\n"
        "for _ in range(%d): wl.step()\n"
        "print([int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0]"
        " / 1024)\n"
    ) % (ROOT, lib, threads, threads, wid, kind, int(wid) if kind == "infer" else 0, steps)
    try:
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=600)
        return float(res.stdout.strip().splitlines()[-1])
    except Exception:  # noqa: BLE001 -- a failed RSS probe should not sink the whole run
        return None


def gemm_peak(threads, n=2048, reps=5):
    import numpy as np
    import torch

    import ember as em
    set_threads(threads)
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    best = {"ember": 0.0, "torch": 0.0}
    for _ in range(reps):
        t0 = time.perf_counter()
        em._core.matmul(a, b)
        best["ember"] = max(best["ember"], 2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
        t0 = time.perf_counter()
        torch.mm(ta, tb)
        best["torch"] = max(best["torch"], 2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return best


def memory_copy_rate(mib=64, reps=5):
    """GB/s of a plain numpy copy of mib MiB (read + write counted), the best of reps: a probe of
    the machine's memory speed beside the GEMM peak. On the shared VM the two drift apart (in a
    'slow-memory' state memory-bound steps run at half speed while the GEMM peak loses 20-40%
    and a register-only FMA loop nothing), and this column is how a RESULTS.md file says which
    state it was taken in."""
    import numpy as np
    src = np.ones(mib * 2 ** 18, np.float32)
    dst = np.empty_like(src)
    best = 0.0
    for _ in range(reps):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = max(best, 2 * src.nbytes / (time.perf_counter() - t0) / 1e9)
    return best


def extras():
    out = {}
    for mod in ("ember", "torch"):
        ts = []
        for _ in range(5):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", f"import {mod}"], check=True)
            ts.append(time.perf_counter() - t0)
        base = []
        for _ in range(5):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            base.append(time.perf_counter() - t0)
        out[f"import_{mod}_s"] = statistics.median(ts) - statistics.median(base)
        m = __import__(mod)
        d = os.path.dirname(m.__file__)
        size = 0
        for r, _, fs in os.walk(d):
            for f in fs:
                try:
                    size += os.path.getsize(os.path.join(r, f))
                except OSError:
                    pass
        out[f"installed_{mod}_mib"] = size / 2 ** 20
    return out


def build_time():
    """Seconds to build a wheel from a clean clone of HEAD (build requirements fetched too)."""
    import tempfile
    tmp = tempfile.mkdtemp()
    subprocess.run(["git", "clone", "-q", ROOT, os.path.join(tmp, "src")], check=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    os.path.join(tmp, "dist"), os.path.join(tmp, "src")], check=True)
    return time.perf_counter() - t0


def fmt_rate(r):
    return f"{r['samples_per_s']:,.0f} ({r['min']:,.0f}..{r['max']:,.0f})"


def fmt_ratio(row):
    rr, pm = row.get("pair_ratio_range"), row.get("pair_ratio_median")
    if not rr:
        return f"{row['ratio']:.2f}"
    med = f"{pm:.2f}, " if pm is not None else ""
    return f"{row['ratio']:.2f} (pairs {med}{rr[0]:.2f}..{rr[1]:.2f})"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", default=None,
                    help="workload ids (W1..W7, W6g = GRU variant of W6, W8)")
    ap.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--target", type=float, default=0.4, help="seconds per timed repeat")
    ap.add_argument("--ops", action="store_true", help="also run the W9 op micro-benchmarks")
    ap.add_argument("--no-rss", action="store_true", help="skip the peak-RSS subprocesses")
    ap.add_argument("--extras", action="store_true",
                    help="import time, installed size and clean build time")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "latest.json"))
    args = ap.parse_args(argv)

    import numpy
    import torch

    import ember as em
    ids = args.only or TRAIN_IDS + ["W8"]
    meta = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical "
                   f"cores",
        "cpu": _cpu_name(),
        "python": platform.python_version(), "numpy": numpy.__version__,
        "torch": torch.__version__, "ember": em.__version__, "threads": args.threads,
        "repeats": args.repeats,
    }
    rows = []
    peaks = {}
    for th in args.threads:
        peaks[th] = gemm_peak(th)
        peaks[th]["mem_copy_gbs"] = memory_copy_rate()
        print(f"[threads={th}] GEMM peak 2048^3: ember {peaks[th]['ember']:.1f} GFLOP/s, "
              f"torch {peaks[th]['torch']:.1f} GFLOP/s; memory copy "
              f"{peaks[th]['mem_copy_gbs']:.1f} GB/s", flush=True)
        for wid in ids:
            if wid == "W8":
                jobs = [(f"W8-b{b}", "infer", b) for b in (1, 1024)]
            else:
                jobs = [(wid, "train", wid)]
            for name, kind, arg in jobs:
                set_threads(th)
                if kind == "train":
                    builders = {lib: (lambda lib=lib: W.build_train(arg, lib))
                                for lib in ("ember", "torch")}
                else:
                    builders = {lib: (lambda lib=lib: W.build_infer(arg, lib))
                                for lib in ("ember", "torch")}
                try:
                    res = time_pair(builders, args.repeats, args.target)
                except Exception as e:  # noqa: BLE001 -- report and go on with other rows
                    print(f"{name} t={th}: FAILED: {type(e).__name__}: {e}", flush=True)
                    rows.append({"id": name, "threads": th, "error": f"{type(e).__name__}: {e}"})
                    continue
                row = {"id": name, "threads": th, **{lib: res[lib] for lib in res}}
                row["ratio"] = res["ember"]["samples_per_s"] / res["torch"]["samples_per_s"]
                # Repeat r of each library ran back to back: the spread of those per-repeat
                # ratios says how far machine noise moves the ratio (is a 1.02 a tie?).
                pairs = [e / t for e, t in zip(res["ember"]["runs"], res["torch"]["runs"])]
                row["pair_ratio_range"] = [min(pairs), max(pairs)]
                # Their median is the steadier estimate when the machine's speed drifts over
                # the run (a slow stretch then hits one ember and one torch repeat).
                row["pair_ratio_median"] = statistics.median(pairs)
                if res["ember"]["gflops"]:
                    # The VM's speed drifts over a run (the same GEMM reads up to 2x apart
                    # minutes later), so '% peak' is taken against a peak measured right after
                    # the row rather than the one at the start of the thread count.
                    rp = gemm_peak(th, reps=3)
                    row["gemm_peak_after"] = rp
                    row["ember_peak_frac"] = res["ember"]["gflops"] / max(rp["ember"],
                                                                          rp["torch"])
                if not args.no_rss:
                    row["rss_mib"] = {lib: peak_rss(kind, str(arg), lib, th)
                                      for lib in ("ember", "torch")}
                rows.append(row)
                g = (f" | {res['ember']['gflops']:.1f} vs {res['torch']['gflops']:.1f} GFLOP/s"
                     if res["ember"]["gflops"] else "")
                rss = row.get("rss_mib")
                rss_s = (f" | RSS {rss['ember']:.0f} vs {rss['torch']:.0f} MiB"
                         if rss and None not in rss.values() else "")
                print(f"{name:7s} t={th}: ember {fmt_rate(res['ember'])}  torch "
                      f"{fmt_rate(res['torch'])}  ratio {fmt_ratio(row)}{g}{rss_s}", flush=True)
    ops_rows = []
    if args.ops:
        from bench import ops as O
        for th in args.threads:
            set_threads(th)
            ops_rows += O.run_all(th, args.repeats)
    result = {"meta": meta, "gemm_peak": peaks, "rows": rows, "ops": ops_rows}
    if args.extras:
        result["extras"] = extras()
        result["extras"]["build_s"] = build_time()
        print(json.dumps(result["extras"], indent=1))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    write_results_md(result, os.path.join(HERE, "RESULTS.md"))
    print(f"wrote {args.out} and bench/RESULTS.md")


def _cpu_name():
    """The CPU as /proc/cpuinfo names it, with its family/model and the vector ISA the GEMM
    kernels can use: the VM behind this machine name has been a Cascade Lake (AVX-512) in one
    session and a Zen 3 (AVX2 only, 'AMD EPYC' with no model number) in another, and the rates
    of two RESULTS.md files only compare on the same kind."""
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model", "flags") and key not in info:
                    info[key] = val.strip()
                if not line.strip() and info:
                    break  # the first processor's block is enough
    except OSError:
        pass
    name = info.get("model name") or platform.processor()
    flags = set(info.get("flags", "").split())
    isa = [f for f in ("avx2", "fma", "avx512f", "amx_tile") if f in flags]
    if "avx512f" not in flags and flags:
        isa.append("no avx512")
    fam = (f"family {info['cpu family']} model {info['model']}"
           if "cpu family" in info and "model" in info else "")
    extra = ", ".join(x for x in (fam, " ".join(isa)) if x)
    return f"{name} [{extra}]" if extra else name


def write_results_md(result, path):
    m = result["meta"]
    L = ["# Benchmark results", "",
         "Generated by `python -m bench` (do not edit by hand). ember vs PyTorch, same process, "
         "interleaved runs, same thread count. Samples/s: median of the repeats (min..max). "
         "Ratio = ember / torch (> 1: ember faster), of the medians; in brackets the ratios of one "
         "ember repeat to the torch repeat run right beside it: their median (steadier when the "
         "machine's speed drifts during the run), lowest and highest (how far noise moves it).",
         "",
         "GFLOP/s count a training step as 3 x the forward FLOPs (WORKLOADS.md's convention; "
         "W5's 809 MFLOP per step are counted here from its model, as WORKLOADS.md gives none, "
         "its LayerNorms, ReLUs and residual adds not included). "
         "Neither library computes the first layer's input gradient, so the arithmetic really "
         "done is lower (W1: 411 of 514 MFLOP per step, W3: 145 of 160, W7: 9.69 of 9.80 GFLOP) "
         "and '% peak' reads high by that factor for both. " + (
             "'% peak' is of the higher of the two libraries' 2048^3 GEMM rates measured right "
             "after that row (the table below is the start of each thread count; the machine's "
             "speed drifts). " if any("gemm_peak_after" in r for r in result["rows"]) else
             "'% peak' is of the higher of the two peaks in the table below. ") +
         "ember runs W7's 3x3 convolutions after the first with Winograd's F(2x2, 3x3), 2.25x "
         "fewer multiplies than the direct "
         "convolution counted here: its W7 GFLOP/s is an effective rate and can pass the peak.",
         "Both libraries run in one process, so ember's malloc setting (see README, 'What import "
         "ember changes') applies to torch's allocations too.",
         "The memory copy column (a 64 MiB numpy copy, one thread, read + write counted) is a "
         "probe of the machine's state beside the GEMM peak: on a shared VM memory speed can drop "
         "by more than the GEMM peak does, and memory-bound steps (optimizer updates, packing, "
         "inference at batch 1) slow with it.", "",
         f"- date: {m['date']}", f"- machine: {m['cpu']} ({m['machine']})",
         f"- python {m['python']}, numpy {m['numpy']}, torch {m['torch']}, ember {m['ember']}",
         f"- threads: {m['threads']}, repeats: {m['repeats']}", ""]
    L.append("| threads | GEMM 2048^3 ember GFLOP/s | torch GFLOP/s | memory copy GB/s (64 MiB, "
             "numpy) |")
    L.append("|---|---|---|---|")
    for th, p in result["gemm_peak"].items():
        mem = f"{p['mem_copy_gbs']:.1f}" if "mem_copy_gbs" in p else "-"
        L.append(f"| {th} | {p['ember']:.1f} | {p['torch']:.1f} | {mem} |")
    L += ["", "| workload | threads | ember samples/s | torch samples/s | ratio | ember GFLOP/s "
              "(% peak) | torch GFLOP/s | peak RSS ember / torch MiB |",
          "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        if "error" in r:
            L.append(f"| {r['id']} | {r['threads']} | error: {r['error']} | | | | | |")
            continue
        e, t = r["ember"], r["torch"]
        gf = (f"{e['gflops']:.1f} ({100 * r.get('ember_peak_frac', 0):.0f}%)"
              if e.get("gflops") else "-")
        tg = f"{t['gflops']:.1f}" if t.get("gflops") else "-"
        rss = r.get("rss_mib")
        rs = (f"{rss['ember']:.0f} / {rss['torch']:.0f}" if rss and None not in rss.values()
              else "-")
        L.append(f"| {r['id']} | {r['threads']} | {fmt_rate(e)} | {fmt_rate(t)} | "
                 f"{fmt_ratio(r)} | {gf} | {tg} | {rs} |")
    if result.get("ops"):
        L += ["", "## W9 single ops (median ms; ratio = torch time / ember time, > 1: ember "
                  "faster)", "", "| op | threads | ember ms | torch ms | ratio |",
              "|---|---|---|---|---|"]
        for o in result["ops"]:
            L.append(f"| {o['op']} | {o['threads']} | {o['ember_ms']:.3f} | {o['torch_ms']:.3f}"
                     f" | {o['ratio']:.2f} |")
    if result.get("extras"):
        x = result["extras"]
        L += ["", "## Footprint", "",
              f"- `import ember`: {x['import_ember_s'] * 1e3:.0f} ms; `import torch`: "
              f"{x['import_torch_s'] * 1e3:.0f} ms (median of 5, interpreter start subtracted)",
              f"- installed package size: ember {x['installed_ember_mib']:.1f} MiB; torch "
              f"{x['installed_torch_mib']:.0f} MiB (package directory only)",
              f"- clean wheel build of ember (incl. fetching build requirements): "
              f"{x['build_s']:.0f} s"]
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
