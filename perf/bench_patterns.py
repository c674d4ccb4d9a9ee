"""Nearest-known-pattern queries per second (``absint.patterns.LayerDB``) on 100,000 stored patterns.

    python perf/bench_patterns.py [--stored 100000] [--queries 2000] [--bits 64,256,1024] [--classes 10]
                                  [--threads 1,2] [--repeat 3] [--csv out.csv]

Stored patterns are random with activation probability 0.5, queries either random ("far": no early
exit) or a stored pattern with 2 % of the bits flipped ("near": the partial-sum cut-off helps).
``grouped``: nearest among the stored patterns of the query's class (10 classes: 1/10 of the DB per
query); ``all``: nearest over the whole DB. The numpy row is the same search written with
``np.bitwise_count`` on XOR-ed blocks (ungrouped, far queries). Medians of ``--repeat`` runs after a
warm-up call; numba threads set per row.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numba  # noqa: E402

from absint.patterns import LayerDB, pack  # noqa: E402
from absint.tables import format_table  # noqa: E402
from perf._measure import times_ms  # noqa: E402


def median_s(fn, repeat: int) -> float:
    return float(np.median(times_ms(fn, repeat))) / 1e3


def make_db(stored: int, bits: int, classes: int, rng) -> LayerDB:
    P = pack(rng.random((stored, bits)) - 0.5)
    cls = rng.integers(0, classes, stored)
    order = np.argsort(cls, kind="stable")
    ptr = np.searchsorted(cls[order], np.arange(classes + 1)).astype(np.int64)
    return LayerDB("bench", bits, np.ascontiguousarray(P[order]), np.ones(stored, np.int64), ptr), cls[order]


def numpy_nearest(Q: np.ndarray, D: np.ndarray, block: int = 64) -> np.ndarray:
    out = np.empty(len(Q), np.int64)
    for s in range(0, len(Q), block):
        out[s:s + block] = np.bitwise_count(Q[s:s + block, None, :] ^ D[None]).sum(axis=2).min(axis=1)
    return out


def run(args) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    default_threads = numba.get_num_threads()
    for bits in args.bits:
        db, db_cls = make_db(args.stored, bits, args.classes, rng)
        far = pack(rng.random((args.queries, bits)) - 0.5)
        pick = rng.integers(0, args.stored, args.queries)
        flips = pack(rng.random((args.queries, bits)) - 0.98)          # ~2 % of the bits set
        near = db.patterns[pick] ^ flips
        classes = {"far": rng.integers(0, args.classes, args.queries), "near": db_cls[pick]}
        for threads in args.threads:
            numba.set_num_threads(min(threads, default_threads))
            for kind, Q in (("far", far), ("near", near)):
                for mode in ("all", "grouped"):
                    cls = classes[kind] if mode == "grouped" else None
                    t = median_s(lambda: db.nearest(Q, cls), args.repeat)
                    rows.append({"bits": bits, "stored": args.stored, "threads": threads, "queries": kind,
                                 "search": mode, "impl": "numba", "seconds": t, "qps": args.queries / t})
        numba.set_num_threads(default_threads)
        nq = max(args.queries // 10, 1)
        t = median_s(lambda: numpy_nearest(far[:nq], db.patterns), 1)
        assert np.array_equal(numpy_nearest(far[:5], db.patterns), db.nearest(far[:5])[0])
        rows.append({"bits": bits, "stored": args.stored, "threads": 1, "queries": "far", "search": "all",
                     "impl": "numpy", "seconds": t, "qps": nq / t})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stored", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument("--bits", type=lambda s: [int(v) for v in s.split(",")], default=[64, 256, 1024])
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--threads", type=lambda s: [int(v) for v in s.split(",")], default=[1, 2])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--csv", default=None)
    args = p.parse_args(argv)
    rows = run(args)
    print(f"nearest known pattern, {args.stored} stored patterns, {args.queries} queries, "
          f"{args.classes} classes (numba threads available: {numba.get_num_threads()})")
    print(format_table(["bits", "impl", "threads", "queries", "search", "ms", "queries / s"],
                       [[r["bits"], r["impl"], r["threads"], r["queries"], r["search"], f"{r['seconds'] * 1e3:.1f}",
                         f"{r['qps']:,.0f}"] for r in rows], align="rlrllrr"))
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
