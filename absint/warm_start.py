"""Preloaded by the benchmark runner's forkserver (``vnncomp._mp_context``): compiles one trivial serial
numba function, which imports numba's compiler and fills its type registries once, so the instance
processes forked from the server do not each pay that at their first kernel call.

Measured on ACAS Xu 2_6 prop_3 (one box): the first ``verify`` of a fresh process took 0.25-0.37 s
without it and 0.05 s with it (0.009 s when every kernel is loaded). Only serial code runs here:
with numba's OpenMP threading layer, even loading the cached parallel kernels in the server made every
forked worker abort ("fork() called from a process already using GNU OpenMP, this is unsafe").
"""

import numba
import numpy as np


@numba.njit(cache=False)
def _increment(x):
    return x + 1.0


_increment(np.zeros(1))
