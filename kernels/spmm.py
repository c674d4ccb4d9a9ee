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
(a caller that needs rounding bounds uses gamma_n, Higham, valid in any order). A product with fewer
blocks than threads (small rounds of branch and bound) also splits the output columns into segments,
one task per (block, segment), so that every thread works.
"""

import numba
import numpy as np
from numba import prange

from ._config import kernel, serial_when_small

__all__ = ["dense_csr", "BLOCK"]

#: rows of C sharing one pass over W
BLOCK = 64


#: columns of C transposed together in the segment kernel's first pass
_COLUMNS = 256


def _n_blocks(P: int) -> int:
    return -(-P // BLOCK)


def _work(C, indptr, indices, data, out, sorted_indices=False):
    """Multiply-adds of the product (every block runs BLOCK lanes)."""
    return data.size * BLOCK * _n_blocks(C.shape[0])


@serial_when_small(_work, threshold=1 << 20)
def dense_csr(C, indptr, indices, data, out, sorted_indices=False):
    """out (P, m) = C (P, n) · W (n, m), W in CSR: blocks of rows in parallel, or, when W's rows have
    sorted indices and there are fewer blocks than threads, (block, segment of output columns) tasks,
    so that every thread works (small batches: 1.6-2.1x on oval21's second convolution, 64 rows)."""
    threads = numba.get_num_threads()
    if threads == 1 or not sorted_indices or _n_blocks(C.shape[0]) >= threads:
        _dense_csr_blocks(C, indptr, indices, data, out)
    else:
        _dense_csr_segments(C, indptr, indices, data, out, threads)


@kernel(parallel=True)
def _dense_csr_blocks(C, indptr, indices, data, out):
    """out = C W, one thread per block of BLOCK rows of C."""
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


@kernel(parallel=True)
def _dense_csr_segments(C, indptr, indices, data, out, S):
    """out = C W, one task per (block of rows, one of S equal segments of the output columns): the
    blocks are transposed first (in parallel over runs of C's columns), then each task scatters the
    entries of W whose column lies in its segment (found by binary search: W's rows must have sorted
    indices). Each output sums the same entries in the same order as ``_dense_csr_blocks``."""
    P, n = C.shape
    m = out.shape[1]
    n_blocks = (P + BLOCK - 1) // BLOCK
    cT = np.zeros((n_blocks, n, BLOCK), C.dtype)
    live = np.zeros((n_blocks, n), np.bool_)
    for run in prange((n + _COLUMNS - 1) // _COLUMNS):
        k0 = run * _COLUMNS
        k1 = min(n, k0 + _COLUMNS)
        for p in range(P):
            blk = p // BLOCK
            q = p % BLOCK
            for k in range(k0, k1):
                v = C[p, k]
                if v != 0:
                    cT[blk, k, q] = v
                    live[blk, k] = True
    for task in prange(n_blocks * S):
        blk = task // S
        i0 = (m * (task % S)) // S
        i1 = (m * (task % S + 1)) // S
        p0 = blk * BLOCK
        nb = min(BLOCK, P - p0)
        oT = np.zeros((i1 - i0, BLOCK), C.dtype)
        for k in range(n):
            if not live[blk, k]:
                continue
            row = indices[indptr[k]:indptr[k + 1]]
            c_row = cT[blk, k]
            for t in range(indptr[k] + np.searchsorted(row, i0), indptr[k] + np.searchsorted(row, i1)):
                o_row = oT[indices[t] - i0]
                w = data[t]
                for q in range(BLOCK):
                    o_row[q] += w * c_row[q]
        for q in range(nb):
            for i in range(i0, i1):
                out[p0 + q, i] = oT[i - i0, q]


def _warmup():
    indptr = np.array([0, 1, 2], np.int32)
    indices = np.array([0, 1], np.int32)
    for dt in (np.float64, np.float32):
        C = np.ones((3, 2), dt)
        _dense_csr_blocks(C, indptr, indices, np.ones(2, dt), np.empty((3, 2), dt))
        _dense_csr_segments(C, indptr, indices, np.ones(2, dt), np.empty((3, 2), dt), 2)
