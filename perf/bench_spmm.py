"""Dense x CSR products of back-substitution: kernels.spmm.dense_csr against scipy's ``C @ W``.

W: the explicit convolutions of oval21's cifar_base_kw and cifar_wide_kw (``AffineReluChain`` with
materialised layers, as branch and bound uses them). C (P, n): random coefficient rows in runs of 50
rows (one box's pairs) that share a zero pattern keeping ``density`` of the columns (dead ReLUs of a
box; 0.05 is about a convolution neuron's receptive field). Prints the median ms of each product and
the ratio, per network, layer, dtype, P and density. W's indices are sorted, so fewer rows than two
blocks take the kernel's (block, column segment) tasks.

    /work/venv/bin/python perf/bench_spmm.py [--rows 32 200 800 3000] [--density 0.05 0.5 1.0] [--repeat 5]
                                              [--dtypes float64 float32] [--nets cifar_base_kw cifar_wide_kw]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numba  # noqa: E402
import numpy as np  # noqa: E402

import absint  # noqa: E402
from absint.domains.deeppoly_batch import AffineReluChain, SparseAffine  # noqa: E402
from absint.tables import format_table  # noqa: E402
from kernels.spmm import _warmup, dense_csr  # noqa: E402
from tests._bench import benchmarks_dir  # noqa: E402

RUN = 50  # rows per box sharing a zero pattern


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def rows(rng, P: int, n: int, density: float, dtype) -> np.ndarray:
    C = rng.standard_normal((P, n)).astype(dtype)
    for s in range(0, P, RUN):
        C[s:s + RUN, rng.random(n) >= density] = 0
    return C


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[32, 200, 800, 3000])
    ap.add_argument("--density", type=float, nargs="+", default=[0.05, 0.5, 1.0])
    ap.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    ap.add_argument("--nets", nargs="+", default=["cifar_base_kw", "cifar_wide_kw"])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    root = benchmarks_dir()
    if root is None:
        print("no benchmarks found (set ABSINT_BENCHMARKS): the products are timed on oval21's convolutions")
        return 1
    _warmup()
    rng = np.random.default_rng(0)
    table = []
    for name in args.nets:
        net = absint.load_onnx(root / "oval21" / "nets" / f"{name}.onnx")
        chain = AffineReluChain.from_network(net, materialise_bytes=2 << 30)
        for k, layer in enumerate(chain.layers):
            if not isinstance(layer, SparseAffine):
                continue
            for dtype in map(np.dtype, args.dtypes):
                W = layer.weight.astype(dtype)
                n, m = W.shape
                for P in args.rows:
                    for density in args.density:
                        C = rows(rng, P, n, density, dtype)
                        out = np.empty((P, m), dtype)
                        dense_csr(C, W.indptr, W.indices, W.data, out, W.has_sorted_indices)
                        scale = max(1.0, float(np.abs(out).max(initial=0)))
                        assert np.allclose(out, C @ W, atol=1e-4 * scale), "kernel and scipy disagree"
                        t_sp = median_ms(lambda: C @ W, args.repeat)
                        t_k = median_ms(lambda: dense_csr(C, W.indptr, W.indices, W.data, out,
                                                          W.has_sorted_indices), args.repeat)
                        table.append([name, f"{k} {n}x{m}", f"{W.nnz}", dtype.name, P, f"{density:g}",
                                      f"{t_sp:.1f}", f"{t_k:.1f}", f"{t_sp / t_k:.1f}x"])
                        print(" ".join(map(str, table[-1])), file=sys.stderr, flush=True)
    print(f"numba threads={numba.get_num_threads()}, median of {args.repeat}")
    print(format_table(["network", "layer W", "nnz", "dtype", "rows P", "density", "scipy ms", "kernel ms",
                        "speed-up"], table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
