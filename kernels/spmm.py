"""Product of dense coefficient rows with a CSR matrix W (n, m) given as ``indptr, indices, data`` (scipy
layout): out = C W, C (P, n).

Rows of C run in parallel in blocks of ``BLOCK``: a block is transposed into a thread-local (n, BLOCK)
buffer, so each stored entry w = W[k, i] updates a contiguous BLOCK-vector of the (m, BLOCK) output
buffer (SIMD) and W is read once per block, not once per row; rows k that are zero on the whole block
are skipped (back-substitution rows: dead ReLUs of a box, neurons outside a convolution's receptive
field). A stored entry costs about as much for 16 rows as for 64 (its index and weight loads and the
loop's set-up dominate short vectors), so blocks of 64 rows did oval21's convolutions 1.2-4.4x faster
than blocks of 16, most on dense rows (perf/bench_spmm.py, perf/README.md). scipy's dense-times-sparse
product transposes all P rows at once and loses the cache beyond a few hundred rows. Every entry is
summed in a fixed order, so results do not depend on the thread count; the sums are plain float sums
(a caller that needs rounding bounds uses gamma_n, Higham, valid in any order).
"""

import numpy as np
from numba import prange

from ._config import kernel, serial_when_small

__all__ = ["dense_csr", "BLOCK"]

#: rows of C sharing one pass over W
BLOCK = 64


def _work(C, indptr, indices, data, out):
    return C.size


@serial_when_small(_work)
@kernel(parallel=True)
def dense_csr(C, indptr, indices, data, out):
    """out (P, m) = C (P, n) · W (n, m), W in CSR."""
    P, n = C.shape
    m = out.shape[1]
    n_blocks = (P + BLOCK - 1) // BLOCK
    for blk in prange(n_blocks):
        p0 = blk * BLOCK
        nb = min(BLOCK, P - p0)
        cT = np.zeros((n, BLOCK), C.dtype)
        oT = np.zeros((m, BLOCK), C.dtype)
        live = np.zeros(n, np.bool_)
        for q in range(nb):
            for k in range(n):
                v = C[p0 + q, k]
                if v != 0:
                    cT[k, q] = v
                    live[k] = True
        for k in range(n):
            if not live[k]:
                continue
            c_row = cT[k]
            for t in range(indptr[k], indptr[k + 1]):
                o_row = oT[indices[t]]
                w = data[t]
                for q in range(BLOCK):
                    o_row[q] += w * c_row[q]
        for q in range(nb):
            for i in range(m):
                out[p0 + q, i] = oT[i, q]


def _warmup():
    indptr = np.array([0, 1, 2], np.int32)
    indices = np.array([0, 1], np.int32)
    for dt in (np.float64, np.float32):
        C = np.ones((3, 2), dt)
        dense_csr(C, indptr, indices, np.ones(2, dt), np.empty((3, 2), dt))
