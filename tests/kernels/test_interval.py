"""kernels.interval.interval_affine against an exactly rounded (math.fsum) reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.interval import interval_affine, interval_affine_parallel, interval_affine_serial
from tests import reference as ref


def _check(W, lower, upper, bias):
    n_out = W.shape[0]
    lo, hi = np.full(n_out, np.nan), np.full(n_out, np.nan)
    res = interval_affine(W, lower, upper, bias, lo, hi)
    assert res[0] is lo and res[1] is hi
    for fn in (interval_affine_serial, interval_affine_parallel):  # same arithmetic: bitwise equal
        lo2, hi2 = np.full(n_out, np.nan), np.full(n_out, np.nan)
        fn(W, lower, upper, bias, lo2, hi2)
        assert np.array_equal(lo2, lo) and np.array_equal(hi2, hi)
    want_lo, want_hi = ref.interval_affine(W, lower, upper, bias)
    # any summation order is within n*u*(|W| max(|l|,|u|) + |b|) of the exact sum
    scale = np.abs(W) @ np.maximum(np.abs(lower), np.abs(upper)) + np.abs(bias)
    atol = (W.shape[1] + 2) * 2.0**-53 * scale.max() if n_out else 0.0
    np.testing.assert_allclose(lo, want_lo, rtol=1e-12, atol=atol)
    np.testing.assert_allclose(hi, want_hi, rtol=1e-12, atol=atol)
    assert np.all(lo <= hi + 2 * atol)


@pytest.mark.parametrize("n_out,n_in", [(0, 3), (3, 0), (1, 1), (1, 7), (5, 5), (50, 50), (17, 300)])
def test_shapes(n_out, n_in):
    rng = np.random.default_rng(n_out * 1000 + n_in)
    W = rng.standard_normal((n_out, n_in))
    W[rng.random(W.shape) < 0.2] = 0.0
    c = rng.standard_normal(n_in)
    r = rng.uniform(0, 1, n_in)
    _check(W, c - r, c + r, rng.standard_normal(n_out))


def test_point_box_is_matrix_vector_product():
    rng = np.random.default_rng(5)
    W = rng.standard_normal((20, 30))
    x = rng.standard_normal(30)
    lo, hi = interval_affine(W, x, x, np.zeros(20), np.empty(20), np.empty(20))
    assert np.array_equal(lo, hi)
    np.testing.assert_allclose(lo, W @ x, rtol=1e-12, atol=1e-13 * (np.abs(W) @ np.abs(x)).max())


def test_sign_split():
    W = np.array([[2.0, -3.0, 0.0]])
    lo, hi = interval_affine(W, np.array([-1.0, 1.0, -5.0]), np.array([2.0, 4.0, 5.0]), np.array([0.5]),
                             np.empty(1), np.empty(1))
    assert lo[0] == 2.0 * -1.0 + -3.0 * 4.0 + 0.5
    assert hi[0] == 2.0 * 2.0 + -3.0 * 1.0 + 0.5


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 12), st.integers(0, 12), st.integers(0, 2**32 - 1))
def test_random(n_out, n_in, seed):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((n_out, n_in)) * rng.choice([1e-3, 1.0, 1e3])
    a, b = rng.standard_normal(n_in), rng.standard_normal(n_in)
    _check(W, np.minimum(a, b), np.maximum(a, b), rng.standard_normal(n_out))
