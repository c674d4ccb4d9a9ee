"""Reductions over blocks of generator rows."""

import numpy as np
from numba import prange

from ._config import kernel


@kernel(parallel=True)
def abs_row_sum(G, out):
    """out[j] += sum_i |G[i, j]| for a C-contiguous block G (m, n); columns split across threads."""
    m, n = G.shape
    n_chunks = 64 if n >= 4096 else 1
    step = (n + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        j0 = c * step
        j1 = min(n, j0 + step)
        for i in range(m):
            for j in range(j0, j1):
                out[j] += abs(G[i, j])
    return out
