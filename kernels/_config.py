"""One place for the numba flags of every kernel (fastmath stays off: reassociation breaks soundness)."""

import functools

import numba
from numba import njit

JIT = dict(cache=True, fastmath=False, nogil=True)
JIT_PARALLEL = dict(JIT, parallel=True)


def kernel(fn=None, *, parallel: bool = False):
    """``@kernel`` / ``@kernel(parallel=True)``: numba njit with the project's flags."""
    flags = JIT_PARALLEL if parallel else JIT
    if fn is None:
        return njit(**flags)
    return njit(**flags)(fn)


#: below this much work (array elements touched) a parallel kernel runs on the calling thread only:
#: waking the other threads costs ~10 µs idle and up to ~10 ms when the other core is busy
SERIAL_BELOW = 1 << 16


def serial_when_small(work=lambda *args: args[0].size, threshold: int = SERIAL_BELOW):
    """Wrap a parallel kernel: calls with ``work(*args) < threshold`` run with one numba thread."""
    def wrap(dispatcher):
        @functools.wraps(dispatcher)
        def call(*args):
            if work(*args) >= threshold:
                return dispatcher(*args)
            previous = numba.get_num_threads()
            numba.set_num_threads(1)
            try:
                return dispatcher(*args)
            finally:
                numba.set_num_threads(previous)
        call.dispatcher = dispatcher
        return call
    return wrap
