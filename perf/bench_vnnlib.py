"""Speed and memory of the VNN-LIB reader on generated VNN-COMP style image properties.

    python perf/bench_vnnlib.py [--skip-large] [--keep DIR]

Writes (into a temporary folder) a 3x224x224 L-inf property (150528 X, 1000 Y, two bound
asserts per input with 18-digit numbers, one (or ...) over the outputs) and a >= 100 MB
variant (3x448x448 plus a comment line per pixel). Each file is parsed in a fresh
subprocess, which reports time, peak-RSS growth (ru_maxrss minus the RSS after imports)
and, in a second run, the tracemalloc peak. Prints one table row per file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

N_OUT = 1000


def write_property(path: str, shape: tuple[int, ...], eps: float = 2 / 255, comments: bool = False,
                   seed: int = 0, label: int = 7) -> None:
    """An L-inf robustness property around a random image, clipped to [0, 1]."""
    n = int(np.prod(shape))
    x = np.random.default_rng(seed).random(n)
    lo, hi = np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1)
    block = 4096
    with open(path, "w") as f:
        f.write(f"; L-inf property, input shape {shape}, eps {eps!r}, label {label}\n\n")
        for s in range(0, n, block):
            f.write("".join(f"(declare-const X_{i} Real)\n" for i in range(s, min(n, s + block))))
        f.write("".join(f"(declare-const Y_{j} Real)\n" for j in range(N_OUT)))
        f.write("\n; Input constraints:\n")
        for s in range(0, n, block):
            parts = []
            for i in range(s, min(n, s + block)):
                if comments:
                    c, rem = divmod(i, shape[1] * shape[2])
                    parts.append(f"; pixel c={c} h={rem // shape[2]} w={rem % shape[2]} value={x[i]:.18f}\n")
                parts.append(f"(assert (<= X_{i} {hi[i]:.18f}))\n(assert (>= X_{i} {lo[i]:.18f}))\n")
            f.write("".join(parts))
        f.write("\n; Output constraints:\n(assert (or\n")
        f.write("".join(f"    (and (>= Y_{j} Y_{label}))\n" for j in range(N_OUT) if j != label))
        f.write("))\n")


def _measure(path: str, trace: bool) -> dict:
    """Runs in the child process: parse ``path`` once and report numbers as a dict."""
    import resource
    import tracemalloc

    import psutil

    from absint.vnnlib import _Parser

    base_rss = psutil.Process().memory_info().rss
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        parser = _Parser(f, path)
        parser.parse()
        spec = parser.spec(None, None)
    elapsed = time.perf_counter() - t0
    out = {"time_s": elapsed, "tokens": parser.n_tokens, "n_inputs": spec.n_inputs,
           "disjuncts": len(spec.regions[0].unsafe),
           "spec_bytes": sum(a.nbytes for r in spec.regions for a in (r.lower, r.upper))
           + sum(a.nbytes for r in spec.regions for c in r.unsafe for a in c)}
    if trace:
        out["trace_peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    else:
        out["rss_growth"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base_rss
    return out


def _child(path: str, trace: bool) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"import bench_vnnlib as b; print(json.dumps(b._measure({path!r}, {trace!r})))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-large", action="store_true", help="only the 3x224x224 property")
    ap.add_argument("--keep", metavar="DIR", help="write the files here and keep them")
    args = ap.parse_args(argv)
    cases = [("3x224x224", (3, 224, 224), False)]
    if not args.skip_large:
        cases.append(("3x448x448+comments", (3, 448, 448), True))
    with tempfile.TemporaryDirectory(prefix="bench_vnnlib_") as tmp:
        folder = args.keep or tmp
        os.makedirs(folder, exist_ok=True)
        print(f"{'property':<20} {'size MB':>8} {'tokens':>10} {'time s':>7} {'MB/s':>6} {'Mtok/s':>7} "
              f"{'RSS growth MB':>13} {'tracemalloc peak MB':>19} {'Spec arrays MB':>14}")
        for name, shape, comments in cases:
            path = os.path.join(folder, f"linf_{name}.vnnlib")
            t0 = time.perf_counter()
            write_property(path, shape, comments=comments)
            gen = time.perf_counter() - t0
            size = os.path.getsize(path) / 1e6
            r = _child(path, trace=False)
            tr = _child(path, trace=True)
            print(f"{name:<20} {size:8.1f} {r['tokens']:10d} {r['time_s']:7.2f} {size / r['time_s']:6.1f} "
                  f"{r['tokens'] / r['time_s'] / 1e6:7.2f} {r['rss_growth'] / 1e6:13.1f} "
                  f"{tr['trace_peak'] / 1e6:19.1f} {r['spec_bytes'] / 1e6:14.1f}   "
                  f"(generated in {gen:.1f} s; {r['n_inputs']} inputs, "
                  f"{r['disjuncts']} disjuncts)", flush=True)


if __name__ == "__main__":
    main()
