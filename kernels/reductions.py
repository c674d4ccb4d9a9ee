"""Reductions over blocks of generator rows."""

import numpy as np
from numba import prange

from ._config import kernel

#: blocks with fewer entries (m * n) take the serial kernel: below 1M entries the serial kernel needs
#: < ~0.3 ms (perf/bench_kernels.py), where thread start-up and core contention cost more than they save
SERIAL_BELOW = 1 << 20
#: columns per parallel task (a multiple of the 8-double cache line)
COLUMN_CHUNK = 256


@kernel
def abs_row_sum_serial(G, out):
    """out[j] += sum_i |G[i, j]| for a C-contiguous block G (m, n) on one thread, rows added in order."""
    m, n = G.shape
    for i in range(m):
        for j in range(n):
            out[j] += abs(G[i, j])
    return out


@kernel(parallel=True)
def abs_row_sum_parallel(G, out):
    """out[j] += sum_i |G[i, j]|; chunks of COLUMN_CHUNK columns split across threads, each still in row order.

    Each chunk accumulates in a fresh local copy of its slice of out (LLVM then knows it does not alias G
    and vectorises; written back at the end), the same additions in the same order as the serial kernel.
    """
    m, n = G.shape
    n_chunks = (n + COLUMN_CHUNK - 1) // COLUMN_CHUNK
    for c in prange(n_chunks):
        j0 = c * COLUMN_CHUNK
        j1 = min(n, j0 + COLUMN_CHUNK)
        acc = out[j0:j1].copy()
        for i in range(m):
            row = G[i, j0:j1]
            for j in range(j1 - j0):
                acc[j] += abs(row[j])
        out[j0:j1] = acc
    return out


def abs_row_sum(G, out):
    """out[j] += sum_i |G[i, j]| (returns out); serial below SERIAL_BELOW entries, else column-parallel.

    Both paths add each column's terms in row order, so the result is bitwise the same either way
    and the same however a store splits its rows into blocks.
    """
    if G.shape[0] * G.shape[1] < SERIAL_BELOW:
        return abs_row_sum_serial(G, out)
    return abs_row_sum_parallel(G, out)


def _warmup():
    """Compile both abs_row_sum kernels on a 2x3 block."""
    G = np.array([[1.0, -2.0, 3.0], [-4.0, 5.0, -6.0]])
    abs_row_sum_serial(G, np.zeros(3))
    abs_row_sum_parallel(G, np.zeros(3))
