"""Batched DeepPoly (``deeppoly_boxes``) with the numba back-substitution kernels vs the former numpy path.

    python perf/bench_batch_backsub.py [--repeat 7] [--threads N] [--cases acas mnist bab]

Cases: ``acas`` 256 random sub-boxes of ACASXU_run2a_3_3's prop_2 box; ``mnist`` 64 random sub-boxes of
mnist-net_256x4's prop_0_0.03 region; ``bab`` 64 copies of that region with random ReLU phases fixed (the
sub-problems of ReLU branch and bound). The property rows are the last layer, as in ``absint verify``. Runs
of the two paths alternate (noise on a shared machine hits both alike); medians in ms, and the largest
difference of the bounds between the paths.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import absint  # noqa: E402
from absint.domains import deeppoly_batch  # noqa: E402
from absint.domains.deeppoly_batch import AffineReluChain, ReluSplits, deeppoly_boxes  # noqa: E402
from absint.network import ReLU  # noqa: E402
from absint.threads import thread_budget  # noqa: E402
from absint.verify import _stack, spec_network  # noqa: E402
from tests._bench import benchmarks_dir  # noqa: E402
from tests.reference.batch_backsub_reference import backsubstitute_numpy  # noqa: E402


def _problem(onnx: str, vnnlib: str):
    root = benchmarks_dir()
    if root is None:
        return None
    net = absint.load_onnx(root / onnx)
    region = absint.load_vnnlib(root / vnnlib, net).regions[0]
    A, b, _, _ = _stack(region.unsafe)
    chain = AffineReluChain.from_network(spec_network(net, A, b))
    return chain, region.lower.ravel().astype(np.float64), region.upper.ravel().astype(np.float64)


def _sub_boxes(rng, lo0, hi0, n, max_exp):
    """n random boxes inside [lo0, hi0]: widths (hi0 - lo0) 2^-e, e uniform in 1..max_exp per dimension."""
    width = (hi0 - lo0) * 2.0 ** -rng.integers(1, max_exp + 1, size=(n, lo0.size))
    lo = lo0 + rng.random((n, lo0.size)) * (hi0 - lo0 - width)
    return lo, lo + width


def cases(names):
    rng = np.random.default_rng(0)
    out = []
    if "acas" in names:
        p = _problem("acasxu/ACASXU_run2a_3_3_batch_2000.onnx", "acasxu/prop_2.vnnlib")
        if p:
            chain, lo0, hi0 = p
            out.append(("acas 3_3 prop_2, 256 boxes", chain, *_sub_boxes(rng, lo0, hi0, 256, 6), None))
    if any(n in names for n in ("mnist", "bab")):
        p = _problem("mnistfc/mnist-net_256x4.onnx", "mnistfc/prop_0_0.03.vnnlib")
        if p:
            chain, lo0, hi0 = p
            if "mnist" in names:
                out.append(("mnist 256x4 eps 0.03, 64 boxes", chain, *_sub_boxes(rng, lo0, hi0, 64, 2), None))
            if "bab" in names:
                B = 64
                lo, hi = np.repeat(lo0[None], B, 0), np.repeat(hi0[None], B, 0)
                phases = {}
                for j, layer in enumerate(chain.layers):
                    if isinstance(layer, ReLU):
                        n = chain.layers[j - 1].weight.shape[0]
                        phases[j] = np.where(rng.random((B, n)) < 0.03, rng.choice([-1, 1], size=(B, n)), 0)
                out.append(("mnist 256x4 bab, 64 sub-problems", chain, lo, hi, ReluSplits(phases)))
    return out


def _run(chain, lo, hi, splits, impl):
    deeppoly_batch._backsubstitute = impl
    t0 = time.perf_counter()
    res = deeppoly_boxes(chain, lo, hi, sound_fp=True, lower_coef=splits is None, splits=splits)
    return time.perf_counter() - t0, res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="BLAS and numba threads (absint.threads.thread_budget; 0: the libraries' defaults)")
    ap.add_argument("--cases", nargs="+", default=["acas", "mnist", "bab"])
    args = ap.parse_args(argv)
    import kernels
    kernels.warmup()
    with thread_budget(args.threads) if args.threads else contextlib.nullcontext():
        rows = _measure(args)
    print(f"| case | numpy ms | kernels ms | speed-up | max |Δ bound| |\n|---|---:|---:|---:|---:|")
    for name, before, after, ratio, diff in rows:
        print(f"| {name} | {before:.1f} | {after:.1f} | {ratio:.2f}x | {diff:.2e} |")


def _measure(args):
    new = deeppoly_batch._backsubstitute
    rows = []
    for name, chain, lo, hi, splits in cases(args.cases):
        times = {"numpy": [], "kernels": []}
        res = {}
        for impl_name, impl in (("numpy", backsubstitute_numpy), ("kernels", new)):  # warm-up
            res[impl_name] = _run(chain, lo, hi, splits, impl)[1]
        for _ in range(args.repeat):
            for impl_name, impl in (("numpy", backsubstitute_numpy), ("kernels", new)):
                times[impl_name].append(_run(chain, lo, hi, splits, impl)[0])
        deeppoly_batch._backsubstitute = new
        diff = max(np.abs(res["numpy"].lower - res["kernels"].lower).max(),
                   np.abs(res["numpy"].upper - res["kernels"].upper).max())
        before, after = (statistics.median(times[k]) * 1e3 for k in ("numpy", "kernels"))
        rows.append((name, before, after, before / after, diff))
    return rows


if __name__ == "__main__":
    main()
