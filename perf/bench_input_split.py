"""Input-splitting settings on ACAS Xu instances: verdict, time and boxes of ``absint.verify`` per setting.

    python perf/bench_input_split.py [--timeout 116] [--instances 3_3:2 4_2:2 ...]
                                     [--set "" "REUSE_PARENT_BOUNDS=0" "OPTIMISE_INTERMEDIATE=0" ...]

An instance ``N_M:P`` is ACASXU_run2a_N_M with prop_P. Each ``--set`` argument is one setting: comma-separated
overrides of ``absint.input_split`` module constants (``""``: the defaults). The settings of one instance
run one after the other in this process (numba caches warmed first), so compare them, not runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import absint  # noqa: E402
from absint import input_split  # noqa: E402
from absint.tables import format_table  # noqa: E402
from tests._bench import benchmarks_dir  # noqa: E402

DEFAULT_INSTANCES = ["3_3:2", "4_2:2", "4_7:1", "2_9:1", "5_1:3"]
DEFAULT_SETTINGS = ["", "REUSE_PARENT_BOUNDS=0", "OPTIMISE_INTERMEDIATE=0", "PAIR_COMBINATIONS=0",
                    "OPTIMISE_ITERATIONS=0,REUSE_PARENT_BOUNDS=0,PAIR_COMBINATIONS=0"]


def overrides(setting: str) -> dict:
    """``"A=1,B=0.5"`` -> {"A": 1, "B": 0.5}, each name checked against ``absint.input_split``."""
    out = {}
    for item in filter(None, (s.strip() for s in setting.split(","))):
        name, _, value = item.partition("=")
        if not hasattr(input_split, name):
            raise SystemExit(f"absint.input_split has no setting {name!r}")
        kind = type(getattr(input_split, name))
        out[name] = kind(float(value)) if kind in (int, float, bool) else value
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=116.0)
    ap.add_argument("--instances", nargs="+", default=DEFAULT_INSTANCES)
    ap.add_argument("--set", nargs="+", default=DEFAULT_SETTINGS, dest="settings")
    args = ap.parse_args(argv)
    root = benchmarks_dir()
    if root is None:
        sys.exit("no benchmarks (set ABSINT_BENCHMARKS)")
    import kernels

    kernels.warmup()
    defaults = {name: getattr(input_split, name) for s in args.settings for name in overrides(s)}
    rows = []
    for inst in args.instances:
        nm, p = inst.split(":")
        net = absint.load_onnx(root / "acasxu" / f"ACASXU_run2a_{nm}_batch_2000.onnx")
        spec = absint.load_vnnlib(root / "acasxu" / f"prop_{p}.vnnlib", net)
        for setting in args.settings:
            for name, value in {**defaults, **overrides(setting)}.items():
                setattr(input_split, name, value)
            t0 = time.perf_counter()
            v = absint.verify(net, spec, timeout=args.timeout)
            rows.append([f"{nm} prop_{p}", setting or "defaults", v.status, round(time.perf_counter() - t0, 2),
                         v.stats["boxes"], v.stats["max_depth"]])
            print(" | ".join(map(str, rows[-1])), file=sys.stderr, flush=True)
    for name, value in defaults.items():
        setattr(input_split, name, value)
    print(format_table(["instance", "setting", "verdict", "s", "boxes", "depth"], rows))


if __name__ == "__main__":
    main()
