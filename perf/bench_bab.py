"""ReLU branch and bound throughput and progress on benchmark instances (mnistfc, oval21).

    python perf/bench_bab.py [--family mnistfc] [--filter "256x4.*prop_0_"] [--limit 4] [--seconds 60]
                             [--max-subproblems N] [--threads 2]
                             [--set "iterations=15,lr_alpha=0.1" "branching_candidates=1" ...] [--csv out.csv]

For each instance and setting, ``absint.bab.relu_bab`` runs on the property's first region (no sampling
attack first, so the search itself is measured) in this process, for ``--seconds`` or
``--max-subproblems``, whichever ends first. The table shows the verdict, wall time, sub-problems and
sub-problems per second, the root bound (optimised DeepPoly of the whole region), the global bound at
the end (the worst open sub-problem's; > 0 means proved), depth, the share of time spent bounding vs
branching, and the splits made in each hidden ReLU layer (first/second/...). Settings override
``BabOptions.for_network``'s defaults for the instance's network. Settings are compared in one run
(the machine is shared; compare ratios, not absolute times across runs).
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from dataclasses import fields
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import absint  # noqa: E402
from absint.bab.search import BabOptions, BabOutcome, relu_bab  # noqa: E402
from absint.domains.deeppoly_batch import AffineReluChain  # noqa: E402
from absint.input_split import RowSets  # noqa: E402
from absint.tables import format_table  # noqa: E402
from absint.threads import thread_budget  # noqa: E402
from absint.verify import _stack, spec_network  # noqa: E402
from absint.vnncomp import read_instances  # noqa: E402
from tests._bench import benchmarks_dir  # noqa: E402


class _Stop(Exception):
    pass


def run_case(net, region, options: BabOptions, seconds: float) -> dict:
    A, b, strict, slices = _stack(region.unsafe)
    chain = AffineReluChain.from_network(spec_network(net, A, b), materialise_bytes=options.memory_bytes // 2)
    stop = time.perf_counter() + seconds

    def check_time():
        if time.perf_counter() > stop:
            raise _Stop

    def check(x):
        y = net.forward(x.reshape((1,) + tuple(net.input_shape)))[0]
        return (x, y) if region.is_unsafe(y) and region.contains(x) else None

    out = BabOutcome()
    t0 = time.perf_counter()
    try:
        relu_bab(chain, RowSets(A, b, strict, tuple(slices)), region.lower, region.upper,
                 check_counterexample=check, check_time=check_time, options=options, out=out, deadline=stop)
        status = out.result if isinstance(out.result, str) else "violated"
    except _Stop:
        status = "stopped"
    wall = time.perf_counter() - t0
    return {"status": status, "wall_s": wall, "subproblems": out.subproblems,
            "per_s": out.subproblems / max(wall, 1e-9), "root_bound": out.root_bound,
            "global_bound": out.global_bound, "open": out.queue_size, "depth": out.max_depth,
            "queue_mib": out.queue_bytes_peak / 2**20,
            "bounding": out.time_bounding / max(wall, 1e-9), "branching": out.time_branching / max(wall, 1e-9),
            "splits_by_layer": "/".join(map(str, out.splits_by_layer))}


def _overrides(setting: str) -> dict:
    """"k=v,k=v" as BabOptions keyword arguments, each value converted to its field's type."""
    types = {f.name: type(getattr(BabOptions(), f.name)) for f in fields(BabOptions)}
    out = {}
    for item in filter(None, setting.split(",")):
        key, _, value = item.partition("=")
        if key not in types:
            raise SystemExit(f"unknown BabOptions field {key!r} (one of {', '.join(types)})")
        kind = types[key]
        out[key] = value.lower() in ("1", "true", "yes") if kind is bool else (int(value) if kind in (int, type(None)) else kind(value))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", default="mnistfc")
    p.add_argument("--filter", default=None, help="regular expression matched against 'ONNX VNNLIB' paths")
    p.add_argument("--limit", type=int, default=4)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--max-subproblems", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--set", nargs="+", default=[""], metavar="K=V,...",
                   help="BabOptions overrides, one setting per argument (e.g. iterations=20,lr_alpha=0.01 "
                        "branching_candidates=1); each instance runs every setting")
    p.add_argument("--csv", default=None)
    args = p.parse_args(argv)
    root = benchmarks_dir()
    if root is None:
        print("no benchmarks found (set ABSINT_BENCHMARKS)")
        return 1
    todo = [i for i in read_instances(root / args.family)
            if not args.filter or re.search(args.filter, f"{i.onnx} {i.vnnlib}")][:args.limit]
    rows = []
    for inst in todo:
        net = absint.load_onnx(inst.onnx)
        region = absint.load_vnnlib(inst.vnnlib, net).regions[0]
        for setting in args.set:
            opts = BabOptions.for_network(net, max_subproblems=args.max_subproblems, **_overrides(setting))
            with thread_budget(args.threads):
                r = run_case(net, region, opts, args.seconds)
            name = f"{Path(inst.onnx).stem[:18]} {Path(inst.vnnlib).stem[:28]}"
            rows.append({"instance": name, "setting": setting or "defaults", **r})
            print(f"{name} [{setting or 'defaults'}]: {r['status']} {r['wall_s']:.1f} s, {r['subproblems']} sub-problems",
                  file=sys.stderr, flush=True)
    headers = ["instance", "setting", "status", "wall s", "subproblems", "per s", "root bound", "global bound",
               "open", "depth", "queue MiB", "bounding", "branching", "splits per layer"]
    table = [[r["instance"], r["setting"], r["status"], f"{r['wall_s']:.1f}", r["subproblems"],
              f"{r['per_s']:.1f}", f"{r['root_bound']:.4g}", f"{r['global_bound']:.4g}", r["open"], r["depth"], f"{r['queue_mib']:.0f}",
              f"{r['bounding']:.0%}", f"{r['branching']:.0%}", r["splits_by_layer"]] for r in rows]
    print(format_table(headers, table))
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
