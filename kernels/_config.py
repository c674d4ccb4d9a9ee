"""One place for the numba flags of every kernel (fastmath stays off: reassociation breaks soundness)."""

from numba import njit

JIT = dict(cache=True, fastmath=False, nogil=True)
JIT_PARALLEL = dict(JIT, parallel=True)


def kernel(fn=None, *, parallel: bool = False):
    """``@kernel`` / ``@kernel(parallel=True)``: numba njit with the project's flags."""
    flags = JIT_PARALLEL if parallel else JIT
    if fn is None:
        return njit(**flags)
    return njit(**flags)(fn)
