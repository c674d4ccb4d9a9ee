"""Interval arithmetic kernels: an affine map applied to a box in one pass over the matrix."""

import numpy as np
from numba import prange

from ._config import kernel

#: matrices with fewer entries than this (serial < ~0.3 ms) take the serial kernel (perf/bench_kernels.py)
SERIAL_BELOW = 1 << 18


@kernel
def _affine_row(W, lower, upper, bias, i, out_lower, out_upper):
    """Row i: Σ_j (W⁺l + W⁻u)_j + b_i and Σ_j (W⁺u + W⁻l)_j + b_i, terms added in column order."""
    lo = 0.0
    hi = 0.0
    for j in range(W.shape[1]):
        w = W[i, j]
        if w >= 0.0:
            lo += w * lower[j]
            hi += w * upper[j]
        else:
            lo += w * upper[j]
            hi += w * lower[j]
    out_lower[i] = lo + bias[i]
    out_upper[i] = hi + bias[i]


@kernel(parallel=True)
def interval_affine_parallel(W, lower, upper, bias, out_lower, out_upper):
    """interval_affine with output rows split across threads."""
    for i in prange(W.shape[0]):
        _affine_row(W, lower, upper, bias, i, out_lower, out_upper)


@kernel
def interval_affine_serial(W, lower, upper, bias, out_lower, out_upper):
    """interval_affine on one thread (same results bit for bit)."""
    for i in range(W.shape[0]):
        _affine_row(W, lower, upper, bias, i, out_lower, out_upper)


def interval_affine(W, lower, upper, bias, out_lower, out_upper):
    """out_lower = W⁺l + W⁻u + b, out_upper = W⁺u + W⁻l + b (W⁺ = max(W, 0), W⁻ = min(W, 0)) in one pass over W.

    W (n_out, n_in) C-contiguous, lower/upper (n_in,), bias (n_out,); no W⁺/W⁻ temporaries; output rows in
    parallel when W has at least SERIAL_BELOW entries. Returns (out_lower, out_upper).
    """
    if W.shape[0] * W.shape[1] < SERIAL_BELOW:
        interval_affine_serial(W, lower, upper, bias, out_lower, out_upper)
    else:
        interval_affine_parallel(W, lower, upper, bias, out_lower, out_upper)
    return out_lower, out_upper


def _warmup():
    """Compile both interval_affine kernels on a 2x3 matrix."""
    W = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    for fn in (interval_affine_serial, interval_affine_parallel):
        fn(W, -np.ones(3), np.ones(3), np.zeros(2), np.empty(2), np.empty(2))
