"""Slow numpy references for kernels/csr.py (independent of absint and of the kernels)."""

from __future__ import annotations

import numpy as np


def conv2d_rows_reference(X, weight, in_chw, stride, padding, dilation, groups):
    """Each row of dense X (m, C*H*W) convolved: y[o,a,b] = sum_{cl,p,q} w[o,cl,p,q] *
    xpad[g*Cg + cl, a*sh + p*dh, b*sw + q*dw] with xpad zero-padded by (top, left, bottom, right).

    Returns (Y (m, C_out*OH*OW), (C_out, OH, OW)).
    """
    C, H, W = in_chw
    Co, Cg, KH, KW = weight.shape
    sh, sw = stride
    dh, dw = dilation
    top, left, bottom, right = padding
    m = X.shape[0]
    x = np.asarray(X, dtype=np.float64).reshape(m, C, H, W)
    xp = np.zeros((m, C, H + top + bottom, W + left + right))
    xp[:, :, top:top + H, left:left + W] = x
    OH = (H + top + bottom - dh * (KH - 1) - 1) // sh + 1
    OW = (W + left + right - dw * (KW - 1) - 1) // sw + 1
    y = np.zeros((m, Co, OH, OW))
    cog = Co // groups
    for g in range(groups):
        for p in range(KH):
            for q in range(KW):
                # patch[r, cl, a, b] = xpad[r, g*Cg + cl, a*sh + p*dh, b*sw + q*dw]
                patch = xp[:, g * Cg:(g + 1) * Cg,
                           p * dh: p * dh + sh * (OH - 1) + 1: sh,
                           q * dw: q * dw + sw * (OW - 1) + 1: sw]
                wpq = weight[g * cog:(g + 1) * cog, :, p, q]          # (cog, Cg)
                y[:, g * cog:(g + 1) * cog] += np.einsum("oc,rcab->roab", wpq, patch)
    return y.reshape(m, Co * OH * OW), (Co, OH, OW)


def conv_support_reference(n_in, kernel, stride, pad_before, dilation, n_out):
    """Brute force: the sorted list of outputs a covering each input t (a*s - pad + p*d = t)."""
    cover = [[] for _ in range(n_in)]
    for a in range(n_out):
        for p in range(kernel):
            t = a * stride - pad_before + p * dilation
            if 0 <= t < n_in:
                cover[t].append(a)
    return [sorted(set(c)) for c in cover]


def structural_support_reference(X, weight_shape, in_chw, stride, padding, dilation, groups):
    """Boolean pattern (m, n_out): the conv of the 0/1 pattern of X with an all-ones weight > 0."""
    pattern = (np.asarray(X) != 0).astype(np.float64)
    y, _ = conv2d_rows_reference(pattern, np.ones(weight_shape), in_chw, stride, padding,
                                 dilation, groups)
    return y > 0


def abs_col_sum_reference(X):
    """sum_i |X[i, j]| by numpy."""
    return np.abs(np.asarray(X, dtype=np.float64)).sum(axis=0)
