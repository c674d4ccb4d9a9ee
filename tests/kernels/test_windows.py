"""kernels.windows (DeepPoly steps on channel-last receptive-field windows) against slow numpy references."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.windows import (col2im_hwc_add, window_concretize, window_diagonal_backsub, window_linear_terms,
                             window_on_map, window_to_dense)

H, W, C = 5, 6, 3
CASES = [(0, 2, 2), (1, 1, 1), (7, 3, 4), (6, 7, 8)]  # (rows, h, w): empty, one row, inside and overhanging


def _case(R, h, w, seed):
    rng = np.random.default_rng(seed)
    win = rng.normal(size=(R, h, w, C))
    win[rng.random(win.shape) < 0.3] = 0.0
    oy = rng.integers(-h + 1, H, size=R)
    ox = rng.integers(-w + 1, W, size=R)
    return rng, win, oy, ox


def _cells(R, h, w, oy, ox):
    """(r, y, x, c, map index) of every window cell that lies on the (H, W, C) map."""
    for r in range(R):
        for y in range(h):
            for x in range(w):
                if 0 <= oy[r] + y < H and 0 <= ox[r] + x < W:
                    for c in range(C):
                        yield r, y, x, c, ((oy[r] + y) * W + ox[r] + x) * C + c


def _inside_only(win, oy, ox):
    out = np.zeros_like(win)
    for r, y, x, c, _ in _cells(*win.shape[:3], oy, ox):
        out[r, y, x, c] = win[r, y, x, c]
    return out


@pytest.mark.parametrize("R, h, w", CASES)
def test_diagonal_backsub(R, h, w):
    rng, win, oy, ox = _case(R, h, w, R * 13 + h)
    n = H * W * C
    a_l, a_u, b_l, b_u = rng.random(n), rng.random(n) + 0.5, -rng.random(n), rng.random(n)
    v, bmag = rng.random(n), rng.random(n)
    n_upper = R // 2
    const0 = rng.normal(size=R)
    got, const, mag_v, mag_b = win.copy(), const0.copy(), np.full(R, np.nan), np.full(R, np.nan)
    window_diagonal_backsub(got, n_upper, oy, ox, H, W, a_l, b_l, a_u, b_u, v, bmag, const, mag_v, mag_b)
    ref, ref_const, ref_v, ref_b = np.zeros_like(win), const0.copy(), np.zeros(R), np.zeros(R)
    for r, y, x, c, j in _cells(R, h, w, oy, ox):
        cf = win[r, y, x, c]
        upper_end = (cf > 0) == (r < n_upper)
        ref[r, y, x, c] = cf * (a_u[j] if upper_end else a_l[j])
        ref_const[r] += cf * (b_u[j] if upper_end else b_l[j])
        ref_v[r] += abs(cf) * v[j]
        ref_b[r] += abs(cf) * bmag[j]
    np.testing.assert_allclose(got, ref, rtol=1e-15)
    np.testing.assert_allclose(const, ref_const, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mag_v, ref_v, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(mag_b, ref_b, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("R, h, w", CASES)
def test_linear_terms(R, h, w):
    rng, win, oy, ox = _case(R, h, w, R * 7 + w)
    bias, v = rng.normal(size=C), rng.random(H * W * C)
    const, mag = np.ones(R), np.full(R, np.nan)
    got = win.copy()
    window_linear_terms(got, oy, ox, H, W, bias, v, const, mag)
    inside = _inside_only(win, oy, ox)
    np.testing.assert_array_equal(got, inside)  # cells off the map are zeroed
    ref_const, ref_mag = np.ones(R), np.zeros(R)
    for r, y, x, c, j in _cells(R, h, w, oy, ox):
        ref_const[r] += win[r, y, x, c] * bias[c]
        ref_mag[r] += abs(win[r, y, x, c]) * v[j]
    np.testing.assert_allclose(const, ref_const, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mag, ref_mag, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("R, h, w", CASES)
def test_concretize(R, h, w):
    rng, win, oy, ox = _case(R, h, w, R * 5 + h * w)
    lo = rng.normal(size=H * W * C)
    hi = lo + rng.random(lo.size)
    m = np.maximum(np.abs(lo), np.abs(hi))
    n_upper = (R + 1) // 2
    out, mag = np.full(R, 2.0), np.full(R, np.nan)
    window_concretize(win, n_upper, oy, ox, H, W, lo, hi, m, out, mag)
    ref, ref_mag = np.full(R, 2.0), np.zeros(R)
    for r, y, x, c, j in _cells(R, h, w, oy, ox):
        cf = win[r, y, x, c]
        ref[r] += cf * (hi[j] if (cf > 0) == (r < n_upper) else lo[j])
        ref_mag[r] += abs(cf) * m[j]
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mag, ref_mag, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("R, h, w", CASES)
def test_to_dense(R, h, w):
    _, win, oy, ox = _case(R, h, w, R + h + w)
    out = np.full((R, C * H * W), np.nan)
    window_to_dense(win, oy, ox, H, W, out)
    ref = np.zeros((R, C, H, W))
    for r, y, x, c, _ in _cells(R, h, w, oy, ox):
        ref[r, c, oy[r] + y, ox[r] + x] = win[r, y, x, c]
    np.testing.assert_array_equal(out, ref.reshape(R, C * H * W))


@pytest.mark.parametrize("R, h, w", CASES)
def test_on_map(R, h, w):
    _, win, oy, ox = _case(R, h, w, 3 * R + h + w)
    out = np.full((R, H, W, C), np.nan)
    window_on_map(win, oy, ox, out)
    ref = np.zeros((R, H, W, C))
    for r, y, x, c, _ in _cells(R, h, w, oy, ox):
        ref[r, oy[r] + y, ox[r] + x, c] = win[r, y, x, c]
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("R", [0, 1, 3])
@pytest.mark.parametrize("stride, dilation, c0", [((1, 1), (1, 1), 0), ((2, 1), (1, 2), 2)])
@pytest.mark.parametrize("cut", [(0, 0, 0, 0), (1, 2, 1, 0), (2, 0, 0, 3)])  # (top, left, bottom, right)
def test_col2im_hwc_add(R, stride, dilation, c0, cut):
    rng = np.random.default_rng(R)
    OH, OW, KH, KW, Cg = 3, 4, 2, 3, 2
    (sh, sw), (dh, dw) = stride, dilation
    NH, NW = (OH - 1) * sh + dh * (KH - 1) + 1, (OW - 1) * sw + dw * (KW - 1) + 1
    top, left, bottom, right = cut
    cols = rng.normal(size=(R, OH * OW, KH * KW * Cg))
    start = rng.normal(size=(R, NH - top - bottom, NW - left - right, c0 + Cg + 1))
    out = start.copy()
    col2im_hwc_add(cols, OW, KH, KW, sh, sw, dh, dw, c0, top, left, out)
    full = np.zeros((R, NH, NW, c0 + Cg + 1))
    for r in range(R):
        for a in range(OH):
            for b in range(OW):
                for p in range(KH):
                    for q in range(KW):
                        for c in range(Cg):
                            full[r, a * sh + p * dh, b * sw + q * dw, c0 + c] += cols[r, a * OW + b, (p * KW + q) * Cg + c]
    ref = start + full[:, top:NH - bottom, left:NW - right]
    np.testing.assert_allclose(out, ref, rtol=1e-14, atol=1e-14)
