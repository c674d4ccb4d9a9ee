"""absint.threads: thread budgets of BLAS and numba."""

from __future__ import annotations

import numba
import numpy as np

from absint.threads import thread_budget
from kernels import _config
from kernels.batch_backsub import concretize_rows


def _concretize_small():
    C = np.array([[1.0, -2.0, 0.0]])
    boxes = np.zeros(1, np.intp)
    lo, up = np.zeros(1), np.zeros(1)
    concretize_rows(C, C, boxes, np.zeros((1, 3)), np.ones((1, 3)), np.zeros(1), np.zeros(1), lo, up, np.zeros(1))
    return lo[0], up[0]


def test_one_thread_budget_stops_per_call_thread_switches(monkeypatch):
    """Under thread_budget(1) a small kernel call leaves numba's thread count alone (each switch costs
    ~3.4 µs); outside it, the small-call wrapper switches to one thread and back."""
    assert hasattr(concretize_rows, "dispatcher"), "concretize_rows is no longer wrapped by serial_when_small"
    _concretize_small()  # compiled before counting
    calls = []
    real = numba.set_num_threads
    monkeypatch.setattr(_config.numba, "set_num_threads", lambda n: (calls.append(n), real(n))[1])
    with thread_budget(1):
        before = len(calls)
        assert _concretize_small() == (-2.0, 1.0)
        assert len(calls) == before
    with thread_budget(2):  # with two threads a small call runs on one and switches back
        calls.clear()
        _concretize_small()
        assert calls == [1, min(2, numba.config.NUMBA_NUM_THREADS)]
