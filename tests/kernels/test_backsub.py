"""DeepPoly back-substitution kernels against plain numpy formulas."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.backsub import concretize, diagonal_backsub, linear_backsub_terms


def _rows(rng, k, n):
    C = rng.normal(size=(k, n))
    C[rng.random((k, n)) < 0.3] = 0.0
    return C


@pytest.mark.parametrize("k, n", [(0, 5), (1, 1), (7, 13)])
def test_diagonal_backsub(k, n):
    rng = np.random.default_rng(k * 31 + n)
    C_u, C_l = _rows(rng, k, n), _rows(rng, k, n)
    a_l, a_u = rng.random(n), rng.random(n) + 0.5
    b_l, b_u = -rng.random(n), rng.random(n)
    v, m = rng.random(n), rng.random(n)
    cu0, cl0 = rng.normal(size=k), rng.normal(size=k)
    new_u, new_l, const_u, const_l = C_u.copy(), C_l.copy(), cu0.copy(), cl0.copy()
    mag_v, mag_m = np.empty(k), np.empty(k)
    diagonal_backsub(new_u, new_l, a_l, b_l, a_u, b_u, v, m, const_u, const_l, mag_v, mag_m)
    pu, nu, pl, nl = np.maximum(C_u, 0), np.minimum(C_u, 0), np.maximum(C_l, 0), np.minimum(C_l, 0)
    np.testing.assert_allclose(new_u, pu * a_u + nu * a_l, rtol=1e-15)
    np.testing.assert_allclose(new_l, pl * a_l + nl * a_u, rtol=1e-15)
    np.testing.assert_allclose(const_u, cu0 + pu @ b_u + nu @ b_l, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(const_l, cl0 + pl @ b_l + nl @ b_u, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mag_v, np.maximum(np.abs(C_u) @ v, np.abs(C_l) @ v), rtol=1e-12)
    np.testing.assert_allclose(mag_m, np.maximum(np.abs(C_u) @ m, np.abs(C_l) @ m), rtol=1e-12)


@pytest.mark.parametrize("k, n", [(0, 4), (1, 1), (9, 17)])
def test_linear_terms_and_concretize(k, n):
    rng = np.random.default_rng(k * 7 + n)
    C_u, C_l = _rows(rng, k, n), _rows(rng, k, n)
    bias, v = rng.normal(size=n), rng.random(n)
    cu, cl, mag = np.ones(k), -np.ones(k), np.empty(k)
    linear_backsub_terms(C_u, C_l, bias, v, cu, cl, mag)
    np.testing.assert_allclose(cu, 1 + C_u @ bias, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cl, -1 + C_l @ bias, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mag, np.maximum(np.abs(C_u) @ v, np.abs(C_l) @ v), rtol=1e-12)
    lo = rng.normal(size=n)
    hi = lo + rng.random(n)
    m = np.maximum(np.abs(lo), np.abs(hi))
    up, low, mag_m = np.zeros(k), np.zeros(k), np.empty(k)
    concretize(C_u, C_l, lo, hi, m, up, low, mag_m)
    np.testing.assert_allclose(up, np.maximum(C_u, 0) @ hi + np.minimum(C_u, 0) @ lo, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(low, np.maximum(C_l, 0) @ lo + np.minimum(C_l, 0) @ hi, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mag_m, np.maximum(np.abs(C_u) @ m, np.abs(C_l) @ m), rtol=1e-12)
