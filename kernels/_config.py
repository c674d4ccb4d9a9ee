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


_SERIAL_DEPTH = [0]


class single_threaded:
    """``with single_threaded():`` every numba kernel runs on the calling thread (small analyses:
    one switch per analysis instead of one per kernel call)."""

    def __enter__(self):
        if _SERIAL_DEPTH[0] == 0:
            self._previous = numba.get_num_threads()
            numba.set_num_threads(1)
        _SERIAL_DEPTH[0] += 1
        return self

    def __exit__(self, *exc):
        _SERIAL_DEPTH[0] -= 1
        if _SERIAL_DEPTH[0] == 0:
            numba.set_num_threads(self._previous)


def serial_when_small(work=lambda *args: args[0].size, threshold: int = SERIAL_BELOW):
    """Wrap a parallel kernel: calls with ``work(*args) < threshold`` run with one numba thread."""
    def wrap(dispatcher):
        @functools.wraps(dispatcher)
        def call(*args):
            if _SERIAL_DEPTH[0] or work(*args) >= threshold:
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
