"""kernels.relu: DeepZ ReLU bitwise equal to absint.relaxations.relu_parallel; column scaling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from absint.relaxations import relu_parallel
from kernels.relu import (deepz_relu, deepz_relu_parallel, deepz_relu_serial, scale_columns, scale_columns_parallel,
                          scale_columns_serial)
from tests import reference as ref


def _run(lower, upper):
    n = lower.shape[0]
    lam, mu, beta = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    assert deepz_relu(lower, upper, lam, mu, beta)[0] is lam
    for fn in (deepz_relu_serial, deepz_relu_parallel):
        other = [np.full(n, np.nan) for _ in range(3)]
        fn(lower, upper, *other)
        for a, b in zip(other, (lam, mu, beta)):
            np.testing.assert_array_equal(a, b)
    return lam, mu, beta


def _check(lower, upper):
    lam, mu, beta = _run(lower, upper)
    r_lam, r_mu, r_beta = ref.deepz_relu(lower, upper)
    np.testing.assert_array_equal(lam, r_lam)
    np.testing.assert_array_equal(mu, r_mu)
    np.testing.assert_array_equal(beta, r_beta)
    # relu_parallel conventions: same λ, μ = (o_lo + o_hi)/2 and β rounded up as the zonotope does
    p_lam, o_lo, o_hi = relu_parallel(lower, upper)
    np.testing.assert_array_equal(lam, p_lam)
    p_mu = o_lo + (o_hi - o_lo) / 2
    p_beta = np.maximum(np.nextafter(np.maximum(o_hi - p_mu, p_mu - o_lo), np.inf), 0.0)
    cross = (lower < 0) & (upper > 0)
    np.testing.assert_array_equal(mu, p_mu)
    np.testing.assert_array_equal(beta[cross], p_beta[cross])
    assert np.all(beta[~cross] == 0.0)
    # soundness on samples: ReLU(x) ∈ λx + μ ± β
    t = np.linspace(0.0, 1.0, 33)[:, None]
    x = lower + t * (upper - lower)
    with np.errstate(invalid="ignore", over="ignore"):
        dev = np.maximum(x, 0.0) - (lam * x + mu)
        slack = 4 * 2.0**-53 * (np.abs(x) + np.abs(lam * x) + np.abs(mu)) + 1e-300  # rounding of this check
        ok = np.isfinite(x) & np.isfinite(dev)
        assert np.all((np.abs(dev) <= np.broadcast_to(beta, x.shape) + slack)[ok])


def test_cases():
    lower = np.array([0.0, 0.5, -2.0, -1.0, -1.0, -3.0, -1e-300, -1e300, -1.0])
    upper = np.array([1.0, 0.5, 0.0, -0.5, 1.0, 1e-3, 1e-300, 1e300, 1e-320])
    _check(lower, upper)
    lam, mu, beta = _run(lower, upper)
    assert lam[0] == 1.0 and lam[2] == 0.0 and lam[3] == 0.0
    assert lam[4] == 0.5 and mu[4] >= 0.25 and beta[4] >= 0.25


@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_one(n):
    _check(-np.ones(n), np.ones(n))


@settings(max_examples=80, deadline=None)
@given(arrays(np.float64, st.integers(0, 20), elements=st.floats(-1e6, 1e6, allow_subnormal=True)),
       arrays(np.float64, 20, elements=st.floats(0, 1e6, allow_subnormal=True)))
def test_random(lower, width):
    upper = lower + width[:lower.shape[0]]
    _check(lower, upper)


@pytest.mark.parametrize("m,n", [(0, 4), (4, 0), (1, 1), (1, 9), (37, 13)])
def test_scale_columns(m, n):
    rng = np.random.default_rng(m * 31 + n)
    G = rng.standard_normal((m, n))
    f = rng.standard_normal(n)
    f[:n // 3] = 0.0
    want = ref.scale_columns(G, f)
    for fn in (scale_columns_serial, scale_columns_parallel):
        H = G.copy()
        fn(H, f)
        np.testing.assert_array_equal(H, want)
    res = scale_columns(G, f)
    assert res is G
    np.testing.assert_array_equal(G, want)
