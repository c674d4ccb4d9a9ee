"""``absint verify`` wall time on hard ACAS Xu instances: batched back-substitution with the numba row kernels
(current) vs the former numpy path (``tests/reference/batch_backsub_reference.backsubstitute_numpy``
patched in), each run in a fresh child process, the two paths alternating.

    python perf/verify_acas_hard.py [--timeout 116] [--repeat 1] [--instances 3_3:2 4_2:2 ...]

An instance ``N_M:P`` is ACASXU_run2a_N_M with prop_P. Prints per instance the verdict, the wall time of the
child (median over ``--repeat``; import and JIT-cache loading included) and verify's own time_s and boxes.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests._bench import benchmarks_dir  # noqa: E402

DEFAULT = ["3_3:2", "4_2:2", "5_3:2", "1_9:7", "1_1:3", "1_4:1"]

CHILD = """
import sys
sys.path.insert(0, {root!r})
if {numpy!r}:
    import absint.domains.deeppoly_batch as d
    from tests.reference.batch_backsub_reference import backsubstitute_numpy
    d._backsubstitute = backsubstitute_numpy
from absint.cli import main
sys.exit(main(["verify", {net!r}, {prop!r}, "--timeout", {timeout!r}]))
"""

LINE = re.compile(r"^(\w+) \((\w+)\) in ([0-9.]+) s, (\d+) boxes")


def run(net: Path, prop: Path, timeout: float, numpy: bool) -> tuple[float, str, float, int]:
    code = CHILD.format(root=str(ROOT), numpy=numpy, net=str(net), prop=str(prop), timeout=str(timeout))
    t0 = time.perf_counter()
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout + 120)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - t0, "hung", float("nan"), 0
    wall = time.perf_counter() - t0
    for line in out.stdout.splitlines():
        m = LINE.match(line)
        if m:
            return wall, m.group(2), float(m.group(3)), int(m.group(4))
    return wall, "error: " + (out.stderr.strip().splitlines() or ["?"])[-1][:60], float("nan"), 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=116.0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--instances", nargs="+", default=DEFAULT)
    args = ap.parse_args(argv)
    root = benchmarks_dir()
    if root is None:
        sys.exit("no benchmarks (set ABSINT_BENCHMARKS)")
    print("| instance | path | result | wall s | verify time_s | boxes |\n|---|---|---|---:|---:|---:|")
    for inst in args.instances:
        nm, p = inst.split(":")
        net = root / "acasxu" / f"ACASXU_run2a_{nm}_batch_2000.onnx"
        prop = root / "acasxu" / f"prop_{p}.vnnlib"
        runs = {True: [], False: []}
        for _ in range(args.repeat):
            for numpy in (True, False):
                runs[numpy].append(run(net, prop, args.timeout, numpy))
        for numpy in (True, False):
            rs = runs[numpy]
            med = statistics.median(r[0] for r in rs)
            print(f"| {nm} prop_{p} | {'numpy' if numpy else 'kernels'} | {'/'.join(sorted({r[1] for r in rs}))} | "
                  f"{med:.1f} | {statistics.median(r[2] for r in rs):.1f} | {statistics.median(r[3] for r in rs)} |",
                  flush=True)


if __name__ == "__main__":
    main()
