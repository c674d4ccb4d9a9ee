"""kernels.reductions.abs_row_sum: both paths, against an exactly rounded reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import reductions
from kernels.reductions import abs_row_sum, abs_row_sum_parallel, abs_row_sum_serial
from tests import reference as ref

SHAPES = [(0, 5), (5, 0), (0, 0), (1, 1), (1, 300), (300, 50), (7, 1000), (40, 4097)]


def _tol(G, out0):
    return (G.shape[0] + 1) * 2.0**-53 * (np.abs(G).sum(axis=0) + np.abs(out0))


@pytest.mark.parametrize("fn", [abs_row_sum, abs_row_sum_serial, abs_row_sum_parallel],
                         ids=["wrapper", "serial", "parallel"])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{m}x{n}" for m, n in SHAPES])
def test_against_reference(fn, shape):
    rng = np.random.default_rng(shape[0] * 7 + shape[1])
    G = rng.standard_normal(shape)
    out0 = rng.uniform(0, 1, shape[1])
    out = out0.copy()
    res = fn(G, out)
    assert res is out
    want = ref.abs_row_sum(G, out0)
    assert np.all(np.abs(out - want) <= _tol(G, out0))


@pytest.mark.parametrize("shape", [(3, 5), (300, 300), (2000, 50), (10, 5000)])
def test_serial_parallel_and_blocks_bitwise_equal(shape):
    """Each column is summed in row order on both paths, so blocking and threads change nothing."""
    rng = np.random.default_rng(9)
    G = rng.standard_normal(shape) * rng.choice([1e-8, 1.0, 1e8], size=shape)
    a = abs_row_sum_serial(G, np.zeros(shape[1]))
    b = abs_row_sum_parallel(G, np.zeros(shape[1]))
    c = np.zeros(shape[1])
    for start in range(0, shape[0], 7):
        abs_row_sum(np.ascontiguousarray(G[start:start + 7]), c)
    assert np.array_equal(a, b)
    assert np.array_equal(a, c)


def test_wrapper_picks_both_paths(monkeypatch):
    calls = []
    monkeypatch.setattr(reductions, "abs_row_sum_serial", lambda G, out: calls.append("s") or out)
    monkeypatch.setattr(reductions, "abs_row_sum_parallel", lambda G, out: calls.append("p") or out)
    small = np.zeros((1, 1))
    big = np.zeros((1, reductions.SERIAL_BELOW))
    reductions.abs_row_sum(small, np.zeros(1))
    reductions.abs_row_sum(big, np.zeros(big.shape[1]))
    assert calls == ["s", "p"]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 30), st.integers(0, 600), st.integers(0, 2**32 - 1))
def test_random(m, n, seed):
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((m, n))
    out = np.zeros(n)
    abs_row_sum(G, out)
    assert np.all(np.abs(out - ref.abs_row_sum(G, np.zeros(n))) <= _tol(G, np.zeros(n)))
