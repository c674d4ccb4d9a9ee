"""Batched back-substitution row kernels against the numpy formulas of tests/reference/batch_backsub_reference.py."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.batch_backsub import CHUNK, affine_backsub_terms, concretize_rows, relu_backsub_rows
from tests.reference.batch_backsub_reference import affine_terms, concretize_rows as concretize_ref, relu_rows

SHAPES = [(0, 5, 3), (1, 1, 1), (7, 13, 4), (2 * CHUNK + 5, 9, 6)]  # rows, width, boxes


def _case(p, n, B, seed):
    rng = np.random.default_rng(seed)
    C_u, C_l = rng.normal(size=(p, n)), rng.normal(size=(p, n))
    C_u[rng.random((p, n)) < 0.3] = 0.0
    C_l[rng.random((p, n)) < 0.3] = 0.0
    boxes = rng.integers(0, B, p).astype(np.intp)
    boxes[: p // 2].sort()  # a grouped part and an unordered part
    return rng, C_u, C_l, boxes


def _relaxation(rng, B, n):
    """A ReLU relaxation per box: stable active (1, 0), inactive (0, 0), crossing (0/1 lower, chord upper)."""
    kind = rng.integers(0, 3, (B, n))
    a_u = np.where(kind == 0, 1.0, np.where(kind == 1, 0.0, rng.random((B, n))))
    b_u = np.where(kind == 2, rng.random((B, n)), 0.0)
    a_l = np.where(kind == 0, 1.0, np.where(kind == 1, 0.0, (rng.random((B, n)) < 0.5).astype(float)))
    return a_l, np.zeros((B, n)), a_u, b_u


@pytest.mark.parametrize("sound", [True, False])
@pytest.mark.parametrize("p, n, B", SHAPES)
def test_relu_backsub_rows(p, n, B, sound):
    rng, C_u, C_l, boxes = _case(p, n, B, p * 31 + n)
    a_l, b_l, a_u, b_u = _relaxation(rng, B, n)
    m = rng.random((B, n)) * 3
    cu0, cl0, s0 = rng.normal(size=p), rng.normal(size=p), rng.random(p)
    new_u, new_l, const_u, const_l, slack = C_u.copy(), C_l.copy(), cu0.copy(), cl0.copy(), s0.copy()
    relu_backsub_rows(new_u, new_l, boxes, a_l, b_l, a_u, b_u, m, const_u, const_l, slack, sound, 1e-16, 1e-14)
    ref_u, ref_l, du, dl, ds = relu_rows(C_u, C_l, boxes, a_l, b_l, a_u, b_u, m, 1e-16, 1e-14)
    np.testing.assert_array_equal(new_u, ref_u)  # one product per entry: bit for bit
    np.testing.assert_array_equal(new_l, ref_l)
    np.testing.assert_allclose(const_u, cu0 + du, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(const_l, cl0 + dl, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(slack, s0 + ds if sound else s0, rtol=1e-12, atol=0)


@pytest.mark.parametrize("sound", [True, False])
@pytest.mark.parametrize("p, n, B", SHAPES)
def test_affine_backsub_terms(p, n, B, sound):
    rng, C_u, C_l, boxes = _case(p, n, B, p * 7 + n)
    bias, V = rng.normal(size=n), rng.random((B, n))
    cu, cl, slack = np.ones(p), -np.ones(p), np.full(p, 0.5)
    affine_backsub_terms(C_u, C_l, bias, boxes, V, cu, cl, slack, sound, 1e-13)
    du, dl, ds = affine_terms(C_u, C_l, bias, boxes, V, 1e-13)
    np.testing.assert_allclose(cu, 1 + du, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cl, -1 + dl, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(slack, 0.5 + ds if sound else 0.5, rtol=1e-12, atol=0)


@pytest.mark.parametrize("p, n, B", SHAPES)
def test_concretize_rows(p, n, B):
    rng, C_u, C_l, boxes = _case(p, n, B, p * 3 + n)
    lower = rng.normal(size=(B, n))
    upper = lower + rng.random((B, n))
    const_u, const_l = rng.normal(size=p), rng.normal(size=p)
    lo, up, mag = np.empty(p), np.empty(p), np.empty(p)
    concretize_rows(C_u, C_l, boxes, lower, upper, const_u, const_l, lo, up, mag)
    ref_up, ref_lo, ref_mag = concretize_ref(C_u, C_l, boxes, lower, upper)
    np.testing.assert_allclose(up, const_u + ref_up, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(lo, const_l + ref_lo, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(mag, ref_mag, rtol=1e-12)
