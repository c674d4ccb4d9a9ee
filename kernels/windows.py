"""DeepPoly back-substitution steps on receptive-field windows of coefficient rows (channel-last layout).

A block of rows is ``win`` (R, h, w, C): row r holds coefficients on the cells (oy[r] + y, ox[r] + x, c) of
a (H, W, C) feature map; per-map vectors are flat in the same (y, x, c) order. Cells outside the map carry
no coefficient: every kernel reads them as zero (the in-place ones also write zero there). Rows
0 .. n_upper-1 are upper-bound rows, the others lower-bound rows.
"""

import numpy as np
from numba import prange

from ._config import kernel, serial_when_small


@kernel
def _span(o, n, size):
    """Half-open range of window indices t with 0 <= o + t < size, clipped to [0, n)."""
    lo = 0 if o >= 0 else min(n, -o)
    hi = max(lo, min(n, size - o))
    return lo, hi


@kernel
def _zero_outside(win, r, y0, y1, x0, x1):
    h, w = win.shape[1], win.shape[2]
    for y in range(h):
        if y < y0 or y >= y1:
            win[r, y, :, :] = 0.0
        else:
            win[r, y, :x0, :] = 0.0
            win[r, y, x1:, :] = 0.0


@serial_when_small()
@kernel(parallel=True)
def window_diagonal_backsub(win, n_upper, oy, ox, H, W, a_l, b_l, a_u, b_u, v, bmag, const, mag_v, mag_b):
    """In place through a_l x + b_l <= y <= a_u x + b_u: an upper row takes (a_u, b_u) where its coefficient
    is positive and (a_l, b_l) where negative (a lower row the other way round), const[r] += the b terms;
    mag_v[r] = sum |c| v, mag_b[r] = sum |c| bmag over the row's (old) coefficients c."""
    R, h, w, C = win.shape
    for r in prange(R):
        upper = r < n_upper
        y0, y1 = _span(oy[r], h, H)
        x0, x1 = _span(ox[r], w, W)
        _zero_outside(win, r, y0, y1, x0, x1)
        acc = 0.0
        mv = 0.0
        mb = 0.0
        for y in range(y0, y1):
            for x in range(x0, x1):
                base = ((oy[r] + y) * W + ox[r] + x) * C
                for c in range(C):
                    cf = win[r, y, x, c]
                    if cf == 0.0:
                        continue
                    j = base + c
                    a = abs(cf)
                    mv += a * v[j]
                    mb += a * bmag[j]
                    if (cf > 0.0) == upper:
                        win[r, y, x, c] = cf * a_u[j]
                        acc += cf * b_u[j]
                    else:
                        win[r, y, x, c] = cf * a_l[j]
                        acc += cf * b_l[j]
        const[r] += acc
        mag_v[r] = mv
        mag_b[r] = mb


@serial_when_small()
@kernel(parallel=True)
def window_linear_terms(win, oy, ox, H, W, bias, v, const, mag_v):
    """For a step y = L x + b whose output carries the windows: const[r] += sum c * bias[channel],
    mag_v[r] = sum |c| v over the row's cells (cells outside the map are zeroed in place)."""
    R, h, w, C = win.shape
    for r in prange(R):
        y0, y1 = _span(oy[r], h, H)
        x0, x1 = _span(ox[r], w, W)
        _zero_outside(win, r, y0, y1, x0, x1)
        acc = 0.0
        mv = 0.0
        for y in range(y0, y1):
            for x in range(x0, x1):
                base = ((oy[r] + y) * W + ox[r] + x) * C
                for c in range(C):
                    cf = win[r, y, x, c]
                    acc += cf * bias[c]
                    mv += abs(cf) * v[base + c]
        const[r] += acc
        mag_v[r] = mv


@serial_when_small()
@kernel(parallel=True)
def window_concretize(win, n_upper, oy, ox, H, W, lower, upper, m, out, mag_m):
    """Rows over a box: out[r] += sum c⁺ upper + c⁻ lower (an upper row; a lower row swaps the ends),
    mag_m[r] = sum |c| m."""
    R, h, w, C = win.shape
    for r in prange(R):
        up = r < n_upper
        y0, y1 = _span(oy[r], h, H)
        x0, x1 = _span(ox[r], w, W)
        acc = 0.0
        mm = 0.0
        for y in range(y0, y1):
            for x in range(x0, x1):
                base = ((oy[r] + y) * W + ox[r] + x) * C
                for c in range(C):
                    cf = win[r, y, x, c]
                    j = base + c
                    if (cf > 0.0) == up:
                        acc += cf * upper[j]
                    else:
                        acc += cf * lower[j]
                    mm += abs(cf) * m[j]
        out[r] += acc
        mag_m[r] = mm


@serial_when_small()
@kernel(parallel=True)
def window_to_dense(win, oy, ox, H, W, out):
    """Scatter windows into dense rows over the (C, H, W) map (channel-first, as the network's tensors):
    out[r, c*H*W + (oy+y)*W + ox+x] = win[r, y, x, c] on the map, zero elsewhere."""
    R, h, w, C = win.shape
    for r in prange(R):
        out[r, :] = 0.0
        y0, y1 = _span(oy[r], h, H)
        x0, x1 = _span(ox[r], w, W)
        for c in range(C):
            for y in range(y0, y1):
                row = c * H * W + (oy[r] + y) * W + ox[r]
                for x in range(x0, x1):
                    out[r, row + x] = win[r, y, x, c]


@serial_when_small()
@kernel(parallel=True)
def window_on_map(win, oy, ox, out):
    """Place windows on the whole (H, W, C) map: out[r, oy+y, ox+x, c] = win[r, y, x, c] on the map, zero
    elsewhere (out is (R, H, W, C))."""
    R, h, w, C = win.shape
    H, W = out.shape[1], out.shape[2]
    for r in prange(R):
        out[r] = 0.0
        y0, y1 = _span(oy[r], h, H)
        x0, x1 = _span(ox[r], w, W)
        for y in range(y0, y1):
            for x in range(x0, x1):
                for c in range(C):
                    out[r, oy[r] + y, ox[r] + x, c] = win[r, y, x, c]


@serial_when_small()
@kernel(parallel=True)
def col2im_hwc_add(cols, OW, KH, KW, sh, sw, dh, dw, c0, y0, x0, out):
    """out[r, a*sh + p*dh - y0, b*sw + q*dw - x0, c0 + c] += cols[r, a*OW + b, (p*KW + q)*Cg + c] where that
    cell lies in out (R, NH, NW, C): the scatter step of a channel-last BLAS convolution adjoint, with the
    first y0 rows and x0 columns of the full result (and any beyond out's size) cut off."""
    R, S, F = cols.shape
    NH, NW = out.shape[1], out.shape[2]
    Cg = F // (KH * KW)
    for r in prange(R):
        for s in range(S):
            a = s // OW
            b = s - a * OW
            for p in range(KH):
                i = a * sh + p * dh - y0
                if i < 0 or i >= NH:
                    continue
                for q in range(KW):
                    j = b * sw + q * dw - x0
                    if j < 0 or j >= NW:
                        continue
                    f = (p * KW + q) * Cg
                    for c in range(Cg):
                        out[r, i, j, c0 + c] += cols[r, s, f + c]


def _warmup():
    win = np.ones((2, 2, 2, 3))
    oy = np.array([-1, 0])
    ox = np.array([0, 1])
    z = np.zeros(12)
    o = np.ones(12)
    c, m1, m2 = np.zeros(2), np.zeros(2), np.zeros(2)
    window_diagonal_backsub(win, 1, oy, ox, 2, 2, z, z, o, o, o, o, c, m1, m2)
    window_linear_terms(win, oy, ox, 2, 2, np.ones(3), o, c, m1)
    window_concretize(win, 1, oy, ox, 2, 2, z, o, o, c, m1)
    window_to_dense(win, oy, ox, 2, 2, np.empty((2, 12)))
    window_on_map(win, oy, ox, np.empty((2, 2, 2, 3)))
    col2im_hwc_add(np.ones((2, 4, 12)), 2, 2, 2, 1, 1, 1, 1, 0, 1, 0, np.zeros((2, 2, 3, 3)))
