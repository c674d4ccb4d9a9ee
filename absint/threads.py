"""Thread budgets of the numerical libraries: BLAS (through threadpoolctl) and numba.

Small products (ACAS Xu's 50 x 50 layers) run 10x slower with two BLAS threads than with one when
the other core is busy (measured: a 400 x 50 by 50 x 50 product 1.56 ms vs 0.13 ms), and a benchmark
run with ``--jobs N`` must not start N x cores threads.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import numba
from threadpoolctl import ThreadpoolController, threadpool_limits

from kernels._config import single_threaded


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@contextmanager
def thread_budget(n: int):
    """``with thread_budget(n):`` BLAS and numba use at most ``n`` threads (restored on exit).

    With one thread, the kernels' small-call wrappers (``kernels._config.serial_when_small``) also stop
    switching numba's thread count around each call (``single_threaded``): a switch costs ~3.4 µs (one
    get, two sets), ~2 s of ~30 s on ACAS Xu 4_2 prop_2, whose slope optimisations make ~650k small
    kernel calls (in-process runs of that instance vary by more than that: 25-32 s either way)."""
    n = max(1, int(n))
    previous = numba.get_num_threads()
    with threadpool_limits(limits=n, user_api="blas"):
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        try:
            if n == 1:
                with single_threaded():
                    yield
            else:
                yield
        finally:
            numba.set_num_threads(previous)


_CONTROLLER: list[ThreadpoolController] = []


def blas_single_thread():
    """``with blas_single_thread():`` BLAS runs on the calling thread (for a loop of small products, each of
    which would wake the pool); ~50 µs per use (the library scan of threadpoolctl is done once)."""
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


__all__ = ["blas_single_thread", "cores", "thread_budget"]
