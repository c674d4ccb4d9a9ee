"""Measured tables for the dense numba kernels (medians of repeated runs, after JIT warmup).

    python perf/bench_kernels.py [--only reductions,interval,relu,conv] [--k 1,64,512] [--repeat 5]
                                 [--max-macs 5e8]

reductions  abs_row_sum serial vs parallel kernel over m x n blocks (evidence for reductions.SERIAL_BELOW).
interval    kernels.interval.interval_affine vs the numpy formula W⁺l + W⁻u + b (ACAS Xu, mnistfc, 1024²).
relu        kernels.relu.deepz_relu vs absint.relaxations.relu_parallel; scale_columns vs numpy.
conv        kernels.conv.conv2d_rows vs absint.im2col.conv2d_forward (the ConvOp im2col + BLAS path) on
            the conv layers of cifar_conv(4), cifar_conv(16), the oval21 networks and digits_cnn, for blocks
            of k rows, dense random rows and one-hot rows (the new symbols of a ReLU).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import kernels  # noqa: E402
from kernels.conv import conv2d_rows, conv2d_rows_parallel, conv2d_rows_serial  # noqa: E402
from kernels.interval import interval_affine, interval_affine_parallel, interval_affine_serial  # noqa: E402
from kernels.reductions import abs_row_sum_parallel, abs_row_sum_serial  # noqa: E402
from kernels.relu import deepz_relu, scale_columns  # noqa: E402
from perf._measure import times_ms  # noqa: E402


def median_ms(fn, repeat: int) -> float:
    """Median wall time of ``repeat`` calls of fn(), in milliseconds."""
    return float(np.median(np.array(times_ms(fn, repeat))))


def _row(cells, widths):
    return "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))


def _table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print(_row(header, widths))
    print(_row(["-" * w for w in widths], widths))
    for r in rows:
        print(_row(r, widths))
    print(flush=True)


# --------------------------------------------------------------------------- reductions
def bench_reductions(repeat):
    rows = []
    rng = np.random.default_rng(2)
    shapes = [(5, 50), (50, 50), (300, 50), (2000, 50), (5000, 50), (200, 256), (1000, 256), (64, 1024),
              (256, 1024), (16, 4096), (64, 4096), (256, 4096), (512, 8192)]
    r = max(repeat, 21)
    for m, n in shapes:
        G = rng.standard_normal((m, n))
        out = np.zeros(n)
        t_s = 1e3 * np.array(times_ms(lambda: abs_row_sum_serial(G, out), r))
        t_p = 1e3 * np.array(times_ms(lambda: abs_row_sum_parallel(G, out), r))
        t_n = 1e3 * median_ms(lambda: np.abs(G).sum(axis=0), r)
        rows.append((f"{m}x{n}", m * n, f"{np.median(t_s):.1f}", f"{np.median(t_p):.1f}", f"{t_n:.1f}",
                     f"{t_s.min():.1f}", f"{t_p.min():.1f}"))
    print(f"abs_row_sum: serial vs column-parallel kernel vs numpy |G|.sum(0); median (and min) of {r} runs, "
          "microseconds;\na parallel median far above its min means stalls waiting for a busy core")
    _table(("block", "m*n", "serial us", "parallel us", "numpy us", "serial min", "parallel min"), rows)


# --------------------------------------------------------------------------- interval
def bench_interval(repeat):
    rows = []
    rng = np.random.default_rng(1)
    for label, (n_out, n_in) in [("acasxu", (50, 50)), ("acasxu in", (50, 5)), ("mnistfc", (256, 784)),
                                 ("mnistfc hidden", (256, 256)), ("1024^2", (1024, 1024))]:
        W = rng.standard_normal((n_out, n_in))
        c = rng.standard_normal(n_in)
        l, u = c - 0.1, c + 0.1
        b = rng.standard_normal(n_out)
        lo, hi = np.empty(n_out), np.empty(n_out)

        def numpy_formula():
            wp, wn = np.maximum(W, 0.0), np.minimum(W, 0.0)
            return wp @ l + wn @ u + b, wp @ u + wn @ l + b

        def numpy_centre_radius():
            mid, rad = (l + u) / 2, (u - l) / 2
            m, r = W @ mid + b, np.abs(W) @ rad
            return m - r, m + r

        t_n = median_ms(numpy_formula, repeat)
        t_c = median_ms(numpy_centre_radius, repeat)
        t_s = median_ms(lambda: interval_affine_serial(W, l, u, b, lo, hi), repeat)
        t_p = median_ms(lambda: interval_affine_parallel(W, l, u, b, lo, hi), repeat)
        t_k = median_ms(lambda: interval_affine(W, l, u, b, lo, hi), repeat)
        rows.append((label, f"{n_out}x{n_in}", f"{t_n:.4f}", f"{t_c:.4f}", f"{t_s:.4f}", f"{t_p:.4f}",
                     f"{t_k:.4f}", f"{t_n / t_k:.2f}"))
    print(f"interval affine: numpy W+l+W-u (with temporaries) and numpy centre-radius vs the kernels; "
          f"median of {repeat}, ms")
    _table(("net", "W", "numpy W+/W-", "numpy c±|W|r", "serial", "parallel", "interval_affine",
            "numpy W+/W- / kernel"), rows)


# --------------------------------------------------------------------------- relu
def bench_relu(repeat):
    from absint.relaxations import relu_parallel

    rows = []
    rng = np.random.default_rng(3)
    for n in (50, 4096, 65536):
        c = rng.standard_normal(n)
        l, u = c - 0.5, c + 0.5
        lam, mu, beta = np.empty(n), np.empty(n), np.empty(n)

        def numpy_path():
            lam_, o_lo, o_hi = relu_parallel(l, u)
            m = o_lo + (o_hi - o_lo) / 2
            return lam_, m, np.maximum(np.nextafter(np.maximum(o_hi - m, m - o_lo), np.inf), 0.0)

        t_n = median_ms(numpy_path, repeat)
        t_k = median_ms(lambda: deepz_relu(l, u, lam, mu, beta), repeat)
        rows.append(("deepz_relu", f"n={n}", f"{t_n:.4f}", f"{t_k:.4f}", f"{t_n / t_k:.2f}"))
    for m, n in ((50, 50), (1000, 4096), (4096, 8192)):
        G = rng.standard_normal((m, n))
        f = rng.uniform(0.999, 1.001, n)
        t_n = median_ms(lambda: np.multiply(G, f, out=G), repeat)
        t_k = median_ms(lambda: scale_columns(G, f), repeat)
        rows.append(("scale_columns", f"{m}x{n}", f"{t_n:.4f}", f"{t_k:.4f}", f"{t_n / t_k:.2f}"))
    print(f"ReLU: numpy (relu_parallel + zonotope mu/beta; in-place G *= f) vs the kernels; median of {repeat}")
    _table(("kernel", "size", "numpy ms", "kernel ms", "numpy/kernel"), rows)


# --------------------------------------------------------------------------- conv
def conv_layers():
    """(label, Conv2d layer, input (C, H, W)) of the benchmark networks, duplicates removed."""
    import absint
    from absint.network import NETWORK_INPUT, Conv2d
    from absint.zoo import cifar_conv, load

    nets = [("cifar_w4", cifar_conv(4)), ("cifar_w16", cifar_conv(16)), ("digits_cnn", load("digits_cnn"))]
    oval = REPO.parent / "shared" / "benchmarks" / "oval21" / "nets"
    for p in sorted(oval.glob("*.onnx")):
        nets.append((p.stem, absint.load_onnx(p)))
    seen, out = set(), []
    for label, net in nets:
        for node in net.nodes:
            if not isinstance(node.layer, Conv2d):
                continue
            i = node.inputs[0]
            in_shape = tuple(net.input_shape if i == NETWORK_INPUT else net.nodes[i].shape)
            c = node.layer
            key = (in_shape, c.weight.shape, c.stride, c.padding, c.dilation, c.groups)
            if key not in seen:
                seen.add(key)
                out.append((f"{label}/{node.name}", c, in_shape))
    return out


def bench_conv(ks, repeat, max_macs):
    from absint.im2col import conv2d_forward

    rows = []
    rng = np.random.default_rng(0)
    for label, c, in_shape in conv_layers():
        weight = np.ascontiguousarray(c.weight)
        O, cin_g, KH, KW = weight.shape
        n_in = int(np.prod(in_shape))
        probe = conv2d_forward(np.zeros((1,) + in_shape), weight, None, c.stride, c.padding, c.dilation, c.groups)
        n_out = probe.size
        macs_per_row = n_out * cin_g * KH * KW
        shape = (f"{in_shape[0]}x{in_shape[1]}x{in_shape[2]}->{O}x{probe.shape[2]}x{probe.shape[3]} "
                 f"k{KH}s{c.stride[0]}")
        for k in ks:
            for kind in ("dense", "onehot"):
                if kind == "dense":
                    if k * macs_per_row > max_macs:
                        rows.append((label, shape, k, kind, "skip", "", "", "", ""))
                        continue
                    G = rng.standard_normal((k, n_in))
                else:
                    G = np.zeros((k, n_in))
                    G[np.arange(k), rng.choice(n_in, size=k, replace=k > n_in)] = 1.0
                out = np.empty((k, n_out))
                x4 = G.reshape((k,) + in_shape)
                args = (weight, in_shape, c.stride, c.padding, c.dilation, c.groups, out)

                def im2col():
                    conv2d_forward(x4, weight, None, c.stride, c.padding, c.dilation, c.groups).reshape(k, -1)

                t_i = median_ms(im2col, repeat)
                t_s = median_ms(lambda: conv2d_rows_serial(G, *args), repeat)
                t_p = median_ms(lambda: conv2d_rows_parallel(G, *args), repeat)
                t_d = median_ms(lambda: conv2d_rows(G, *args), repeat)
                rows.append((label, shape, k, kind, f"{t_i:.3f}", f"{t_s:.3f}", f"{t_p:.3f}", f"{t_d:.3f}",
                             f"{t_i / t_d:.2f}"))
    print("conv2d on k generator rows: im2col+BLAS (absint.im2col.conv2d_forward) vs direct numba "
          f"(kernels.conv: serial, parallel, conv2d_rows = auto); median of {repeat}, ms;\n"
          "ratio = im2col / conv2d_rows (> 1: direct is faster)")
    _table(("layer", "shape", "k", "rows", "im2col", "serial", "parallel", "conv2d_rows", "ratio"), rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="reductions,interval,relu,conv")
    ap.add_argument("--k", default="1,64,512", help="block sizes (rows) for conv")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--max-macs", type=float, default=5e8,
                    help="skip dense conv cases with more multiply-adds than this (keeps the run short)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    print(f"kernels.warmup(): {kernels.warmup():.2f} s (numba compile or cache load)\n", flush=True)
    only = set(args.only.split(","))
    ks = [int(k) for k in args.k.split(",")]
    if "reductions" in only:
        bench_reductions(args.repeat)
    if "interval" in only:
        bench_interval(args.repeat)
    if "relu" in only:
        bench_relu(args.repeat)
    if "conv" in only:
        bench_conv(ks, args.repeat, args.max_macs)
    print(f"total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
