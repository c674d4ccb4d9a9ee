"""Adjoint of a 2-d convolution on blocks of coefficient rows, skipping zeros (DeepPoly back-substitution).

x[r, c, i, j] = sum over (o, a, b, p, q) with i = a*sh - top + p*dh, j = b*sw - left + q*dw of
weight[o, c - g*cin_g, p, q] * Y[r, o, a, b]  (c in the group g of o). Each non-zero Y[r, o, a, b]
is scattered through the kernel window, so a row costs nnz(row) * cin_g * KH * KW multiply-adds:
rows that start one-hot and stay sparse through the first layers are cheap.
"""

import numpy as np
from numba import prange

from ._config import kernel, serial_when_small
from .conv import _out_range


@kernel
def _scatter_row(Y, weight, r, groups, C, H, W, OH, OW, sh, sw, top, left, dh, dw, out):
    O = weight.shape[0]
    cin_g = weight.shape[1]
    KH = weight.shape[2]
    KW = weight.shape[3]
    cout_g = O // groups
    row = Y[r]
    dst = out[r]
    for o in range(O):
        c0 = (o // cout_g) * cin_g
        base = o * OH * OW
        for a in range(OH):
            p0, p1 = _out_range(KH, H, dh, a * sh - top)  # taps p landing on a row of the input
            if p0 == p1:
                continue
            for b in range(OW):
                v = row[base + a * OW + b]
                if v == 0.0:
                    continue
                q0, q1 = _out_range(KW, W, dw, b * sw - left)
                j0 = b * sw - left
                for c in range(cin_g):
                    plane = (c0 + c) * H * W
                    for p in range(p0, p1):
                        at = plane + (a * sh - top + p * dh) * W + j0
                        for q in range(q0, q1):
                            dst[at + q * dw] += v * weight[o, c, p, q]


@serial_when_small(lambda Y, w, *rest: max(1, int(Y.size)) * w.shape[1] * w.shape[2] * w.shape[3] // 4)
@kernel(parallel=True)
def conv2d_transpose_rows(Y, weight, in_chw, out_hw, stride, padding, dilation, groups, out):
    """out (k, C*H*W) = rows of Y (k, O*OH*OW) through the adjoint of the convolution; out is zeroed first."""
    C, H, W = in_chw
    OH, OW = out_hw
    out[:, :] = 0.0
    for r in prange(Y.shape[0]):
        _scatter_row(Y, weight, r, groups, C, H, W, OH, OW, stride[0], stride[1], padding[0], padding[1],
                     dilation[0], dilation[1], out)
    return out


@kernel(parallel=True)
def col2im_add(cols, OW, KH, KW, sh, sw, dh, dw, out):
    """out[r, c, a*sh + p*dh, b*sw + q*dw] += cols[r, a*OW + b, (c*KH + p)*KW + q]: the scatter step of a
    BLAS convolution adjoint (cols = per output position, the products with every tap), rows in
    parallel; out is (k, C, H + pads, W + pads)."""
    k, S, F = cols.shape
    C = F // (KH * KW)
    for r in prange(k):
        for s in range(S):
            a = s // OW
            b = s - a * OW
            for c in range(C):
                for p in range(KH):
                    i = a * sh + p * dh
                    f = (c * KH + p) * KW
                    for q in range(KW):
                        out[r, c, i, b * sw + q * dw] += cols[r, s, f + q]


def _warmup():
    Y = np.zeros((2, 2 * 3 * 3))
    Y[0, 4] = 1.0
    w = np.ones((2, 1, 2, 2))
    out = np.empty((2, 1 * 4 * 4))
    conv2d_transpose_rows(Y, w, (1, 4, 4), (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1, out)
    padded = np.zeros((1, 2, 5, 5))
    col2im_add(np.ones((1, 9, 4)), 3, 2, 2, 1, 1, 1, 1, padded[:, :1])
    col2im_add(np.ones((1, 9, 8)), 3, 2, 2, 1, 1, 1, 1, padded)
