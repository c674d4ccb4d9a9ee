"""One DeepPoly back-substitution step through an elementwise relaxation, fused over a block of rows.

For a_l x + b_l <= y <= a_u x + b_u and coefficient rows C_u (upper) and C_l (lower) on y (Singh et al.
POPL 2019): an upper row takes the upper relaxation where its coefficient is positive and the lower one
where negative, C'_u = C_u⁺ a_u + C_u⁻ a_l, const_u += C_u⁺ b_u + C_u⁻ b_l (lower rows symmetrically).
Also returns max(|C_u|·v, |C_l|·v) and max(|C_u|·m, |C_l|·m) for the caller's rounding-error terms.
"""

import numpy as np
from numba import prange

from ._config import kernel, serial_when_small


@serial_when_small()
@kernel(parallel=True)
def diagonal_backsub(C_u, C_l, a_l, b_l, a_u, b_u, v, m, const_u, const_l, mag_v, mag_m):
    """In place: C_u, C_l <- the rows on x; const_u/const_l += constants; mag_v/mag_m = magnitudes (overwritten)."""
    k, n = C_u.shape
    for r in prange(k):
        cu_const = 0.0
        cl_const = 0.0
        uv = 0.0
        lv = 0.0
        um = 0.0
        lm = 0.0
        for j in range(n):
            cu = C_u[r, j]
            cl = C_l[r, j]
            if cu != 0.0:
                au = abs(cu)
                uv += au * v[j]
                um += au * m[j]
                if cu > 0.0:
                    C_u[r, j] = cu * a_u[j]
                    cu_const += cu * b_u[j]
                else:
                    C_u[r, j] = cu * a_l[j]
                    cu_const += cu * b_l[j]
            if cl != 0.0:
                al = abs(cl)
                lv += al * v[j]
                lm += al * m[j]
                if cl > 0.0:
                    C_l[r, j] = cl * a_l[j]
                    cl_const += cl * b_l[j]
                else:
                    C_l[r, j] = cl * a_u[j]
                    cl_const += cl * b_u[j]
        const_u[r] += cu_const
        const_l[r] += cl_const
        mag_v[r] = max(uv, lv)
        mag_m[r] = max(um, lm)


@serial_when_small()
@kernel(parallel=True)
def linear_backsub_terms(C_u, C_l, bias, v, const_u, const_l, mag_v):
    """For a linear step y = Lx + b: const_u += C_u·b, const_l += C_l·b, mag_v = max(|C_u|·v, |C_l|·v)."""
    k, n = C_u.shape
    for r in prange(k):
        cu_b = 0.0
        cl_b = 0.0
        uv = 0.0
        lv = 0.0
        for j in range(n):
            cu = C_u[r, j]
            cl = C_l[r, j]
            cu_b += cu * bias[j]
            cl_b += cl * bias[j]
            uv += abs(cu) * v[j]
            lv += abs(cl) * v[j]
        const_u[r] += cu_b
        const_l[r] += cl_b
        mag_v[r] = max(uv, lv)


def _warmup_linear():
    C = np.array([[1.0, -2.0, 0.0]])
    o = np.ones(3)
    linear_backsub_terms(C, C, o, o, np.zeros(1), np.zeros(1), np.zeros(1))



@serial_when_small()
@kernel(parallel=True)
def concretize(C_u, C_l, lower, upper, m, out_upper, out_lower, mag_m):
    """Rows over a box: out_upper += C_u⁺·upper + C_u⁻·lower, out_lower += C_l⁺·lower + C_l⁻·upper,
    mag_m = max(|C_u|·m, |C_l|·m)."""
    k, n = C_u.shape
    for r in prange(k):
        up = 0.0
        lo = 0.0
        um = 0.0
        lm = 0.0
        for j in range(n):
            cu = C_u[r, j]
            cl = C_l[r, j]
            if cu > 0.0:
                up += cu * upper[j]
            elif cu < 0.0:
                up += cu * lower[j]
            if cl > 0.0:
                lo += cl * lower[j]
            elif cl < 0.0:
                lo += cl * upper[j]
            um += abs(cu) * m[j]
            lm += abs(cl) * m[j]
        out_upper[r] += up
        out_lower[r] += lo
        mag_m[r] = max(um, lm)

def _warmup():
    C = np.array([[1.0, -2.0, 0.0]])
    z = np.zeros(3)
    o = np.ones(3)
    diagonal_backsub(C.copy(), C.copy(), z, z, o, o, o, o, np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1))
    _warmup_linear()
    concretize(C, C, o, o, o, np.zeros(1), np.zeros(1), np.zeros(1))
