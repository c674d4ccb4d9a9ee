"""CSR conv of generator rows vs densify + im2col/BLAS on the conv prefix of cifar_conv(w).

G0 = the one-hot input symbols (one row per input pixel, 3*32*32 = 3072 rows); G1 = conv1(G0),
G2 = conv2(G1) (ReLU only rescales columns and appends symbols, so the pattern is that of the
conv chain). For each conv layer prints nnz, density, median ms of csr_conv2d and of
densify + absint.im2col.conv2d_forward, their ratio, and the bytes of the CSR and dense results.
Also times csr_abs_row_sum (serial) against scipy's abs(G).sum(axis=0) and the dense
kernels.reductions.abs_row_sum on the densified rows.

    /work/venv/bin/python perf/bench_csr.py [--width 16] [--repeat 5] [--dense-repeat 5] [--layers 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numba
import numpy as np
import scipy.sparse as sp

from absint.im2col import conv2d_forward
from absint.network import Conv2d
from absint.zoo import cifar_conv
from kernels.csr import _warmup, csr_abs_row_sum, csr_conv2d_matrix
from kernels.reductions import abs_row_sum


def median_ms(fn, repeat: int) -> tuple[float, object]:
    """Median wall time of ``repeat`` calls of fn() in ms, and the last result."""
    times = []
    res = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), res


def csr_bytes(G: sp.csr_matrix) -> int:
    return G.data.nbytes + G.indices.nbytes + G.indptr.nbytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dense-repeat", type=int, default=5, help="repeats of the dense path (slow)")
    ap.add_argument("--layers", type=int, default=2, help="how many conv layers of the prefix to time")
    args = ap.parse_args()

    _warmup()
    net = cifar_conv(args.width)
    convs = [n.layer for n in net.nodes if isinstance(n.layer, Conv2d)][:args.layers]
    shape = tuple(net.input_shape)
    G = sp.identity(int(np.prod(shape)), format="csr", dtype=np.float64) * (2.0 / 255.0)
    G = sp.csr_matrix(G)
    print(f"network {net.name}, input {shape}, {G.shape[0]} one-hot symbols, median of "
          f"{args.repeat} (dense {args.dense_repeat}), numba threads={numba.get_num_threads()}")
    head = (f"{'layer':<34}{'rows':>6}{'n_out':>7}{'nnz_in':>10}{'nnz_out':>11}{'density':>9}"
            f"{'csr ms':>9}{'dense ms':>10}{'dense/csr':>10}{'CSR MB':>8}{'dense MB':>10}")
    print(head)
    print("-" * len(head))
    rows_abs = []
    for k, layer in enumerate(convs):
        out_shape = layer.output_shape(shape)
        args_conv = (layer.weight, shape, out_shape, layer.stride, layer.padding, layer.dilation,
                     layer.groups)

        t_csr, R = median_ms(lambda: csr_conv2d_matrix(G, *args_conv), args.repeat)

        def dense():
            x = G.toarray().reshape((G.shape[0],) + shape)
            return conv2d_forward(x, layer.weight, None, layer.stride, layer.padding,
                                  layer.dilation, layer.groups).reshape(G.shape[0], -1)

        t_dense, D = median_ms(dense, args.dense_repeat)
        err = np.max(np.abs(R.toarray() - D)) if R.nnz else 0.0
        scale = np.max(np.abs(D)) or 1.0
        assert err <= 1e-12 * scale, f"csr and dense disagree: {err}"
        n_out = R.shape[1]
        dens = R.nnz / (R.shape[0] * n_out)
        name = f"conv{k + 1} {layer.describe()}"
        print(f"{name:<34}{R.shape[0]:>6}{n_out:>7}{G.nnz:>10}{R.nnz:>11}{dens:>9.4f}"
              f"{t_csr:>9.2f}{t_dense:>10.1f}{t_dense / t_csr:>10.1f}"
              f"{csr_bytes(R) / 2**20:>8.2f}{D.nbytes / 2**20:>10.1f}")
        del D
        rows_abs.append((f"after conv{k + 1}", R))
        G = R
        shape = out_shape

    print()
    head = f"{'abs_row_sum':<16}{'nnz':>10}{'csr ms':>9}{'scipy ms':>10}{'dense ms':>10}"
    print(head)
    print("-" * len(head))
    for name, R in rows_abs:
        n = R.shape[1]
        ip, ix, dt = R.indptr, R.indices, R.data
        t_ser, a = median_ms(lambda: csr_abs_row_sum(ip, ix, dt, np.zeros(n)), args.repeat)
        t_sci, b = median_ms(lambda: np.asarray(abs(R).sum(axis=0)).ravel(), args.repeat)
        Dn = R.toarray()
        t_den, c = median_ms(lambda: abs_row_sum(Dn, np.zeros(n)), args.repeat)
        assert np.array_equal(a, c), "csr and dense abs_row_sum differ bitwise"
        np.testing.assert_allclose(a, b, rtol=1e-12)
        print(f"{name:<16}{R.nnz:>10}{t_ser:>9.2f}{t_sci:>10.2f}{t_den:>10.1f}")
        del Dn


if __name__ == "__main__":
    main()
