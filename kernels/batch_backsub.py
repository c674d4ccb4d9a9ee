"""Batched DeepPoly back-substitution steps over (box, neuron) rows, each row reading its own box's data.

Row r of C_u (upper) and C_l (lower) belongs to box ``boxes[r]``; the per-box arrays (B, n) are read
through that index, never gathered into (rows, n) copies. The steps (Singh et al. POPL 2019) and their
rounding-error magnitudes are those of ``absint.domains.deeppoly_batch``:

* ReLU a_l x + b_l <= y <= a_u x + b_u: C'_u = C_u⁺ a_u + C_u⁻ a_l, const_u += C_u⁺·b_u + C_u⁻·b_l (lower
  rows symmetrically); slack += c_v max(|C_u|·v, |C_l|·v) + c_b max(|C_u|·bb, |C_l|·bb) with
  v = max(|a_l|, |a_u|) m, bb = max(|b_l|, |b_u|).
* Affine y = Wx + b (the product C W stays with BLAS): const += C·b, slack += coef max(|C_u|·V, |C_l|·V).
* Input box [l, u]: upper = const_u + C_u⁺·u + C_u⁻·l, lower = const_l + C_l⁺·l + C_l⁻·u, and
  max(|C_u|·m, |C_l|·m) with m = max(|l|, |u|).
"""

import numpy as np
from numba import prange

from ._config import kernel, serial_when_small


#: rows per parallel chunk (each chunk has its own scratch rows)
CHUNK = 64


def _rows_work(C_u, *args):
    return 2 * C_u.size


# Selects feeding a sequential sum (fastmath off) compile to branches, which mispredict on coefficient
# signs; so each row first writes its selected intercepts (or box ends) to scratch rows in a loop without
# sums (vectorised blends), then sums products with the scratch.

@serial_when_small(_rows_work)
@kernel(parallel=True)
def relu_backsub_rows(C_u, C_l, boxes, a_l, b_l, a_u, b_u, m_in, const_u, const_l, slack, sound, c_v, c_b):
    """In place through a ReLU with per-box relaxations (B, n): C_u, C_l <- rows on the ReLU's input,
    const_u/const_l += intercept terms, and when ``sound`` slack += the rounding-term magnitudes."""
    p, n = C_u.shape
    for c in prange((p + CHUNK - 1) // CHUNK):
        tu = np.empty(n)
        tl = np.empty(n)
        v = np.empty(n)
        bb = np.empty(n)
        last = -1
        for r in range(c * CHUNK, min(p, (c + 1) * CHUNK)):
            b = boxes[r]
            if sound and b != last:  # rows come grouped by box: per-box magnitudes once per group
                for j in range(n):
                    v[j] = max(abs(a_l[b, j]), abs(a_u[b, j])) * m_in[b, j]
                    bb[j] = max(abs(b_l[b, j]), abs(b_u[b, j]))
                last = b
            for j in range(n):
                bl = b_l[b, j]
                bu = b_u[b, j]
                tu[j] = bu if C_u[r, j] > 0.0 else bl
                tl[j] = bl if C_l[r, j] > 0.0 else bu
            su = 0.0
            sl = 0.0
            for j in range(n):
                su += C_u[r, j] * tu[j]
                sl += C_l[r, j] * tl[j]
            const_u[r] += su
            const_l[r] += sl
            if sound:
                uv = 0.0
                lv = 0.0
                ub = 0.0
                lb = 0.0
                for j in range(n):
                    au = abs(C_u[r, j])
                    al = abs(C_l[r, j])
                    uv += au * v[j]
                    lv += al * v[j]
                    ub += au * bb[j]
                    lb += al * bb[j]
                slack[r] += c_v * max(uv, lv)
                slack[r] += c_b * max(ub, lb)
            for j in range(n):
                cu = C_u[r, j]
                cl = C_l[r, j]
                al = a_l[b, j]
                au = a_u[b, j]
                C_u[r, j] = cu * (au if cu > 0.0 else al)
                C_l[r, j] = cl * (al if cl > 0.0 else au)


@serial_when_small(_rows_work)
@kernel(parallel=True)
def affine_backsub_terms(C_u, C_l, bias, boxes, V, const_u, const_l, slack, sound, coef):
    """Constants and rounding term of a step through y = Wx + b: const_u += C_u·b, const_l += C_l·b, and
    when ``sound`` slack += coef max(|C_u|·V[box], |C_l|·V[box]) (V (B, n) the per-box magnitudes)."""
    p, n = C_u.shape
    for r in prange(p):
        b = boxes[r]
        su = 0.0
        sl = 0.0
        uv = 0.0
        lv = 0.0
        for j in range(n):
            cu = C_u[r, j]
            cl = C_l[r, j]
            su += cu * bias[j]
            sl += cl * bias[j]
            if sound:
                uv += abs(cu) * V[b, j]
                lv += abs(cl) * V[b, j]
        const_u[r] += su
        const_l[r] += sl
        if sound:
            slack[r] += coef * max(uv, lv)


@serial_when_small(_rows_work)
@kernel(parallel=True)
def concretize_rows(C_u, C_l, boxes, lower, upper, const_u, const_l, out_lower, out_upper, mag_m):
    """Rows over their boxes (B, n_in): out_upper = const_u + C_u⁺·u + C_u⁻·l, out_lower = const_l +
    C_l⁺·l + C_l⁻·u, mag_m = max(|C_u|·m, |C_l|·m) with m = max(|l|, |u|) (all overwritten)."""
    p, n = C_u.shape
    for c in prange((p + CHUNK - 1) // CHUNK):
        xu = np.empty(n)
        xl = np.empty(n)
        m = np.empty(n)
        last = -1
        for r in range(c * CHUNK, min(p, (c + 1) * CHUNK)):
            b = boxes[r]
            if b != last:
                for j in range(n):
                    m[j] = max(abs(lower[b, j]), abs(upper[b, j]))
                last = b
            for j in range(n):
                lo = lower[b, j]
                hi = upper[b, j]
                xu[j] = hi if C_u[r, j] > 0.0 else lo
                xl[j] = lo if C_l[r, j] > 0.0 else hi
            up = 0.0
            low = 0.0
            um = 0.0
            lm = 0.0
            for j in range(n):
                cu = C_u[r, j]
                cl = C_l[r, j]
                up += cu * xu[j]
                low += cl * xl[j]
                um += abs(cu) * m[j]
                lm += abs(cl) * m[j]
            out_upper[r] = const_u[r] + up
            out_lower[r] = const_l[r] + low
            mag_m[r] = max(um, lm)


def _warmup():
    C = np.array([[1.0, -2.0, 0.0]])
    boxes = np.zeros(1, np.intp)
    z, o = np.zeros((1, 3)), np.ones((1, 3))
    zero = np.zeros(1)
    for sound in (True, False):
        relu_backsub_rows(C.copy(), C.copy(), boxes, z, z, o, o, o, zero.copy(), zero.copy(), zero.copy(),
                          sound, 1.0, 1.0)
        affine_backsub_terms(C, C, np.ones(3), boxes, o, zero.copy(), zero.copy(), zero.copy(), sound, 1.0)
    concretize_rows(C, C, boxes, z, o, zero, zero, np.zeros(1), np.zeros(1), np.zeros(1))
