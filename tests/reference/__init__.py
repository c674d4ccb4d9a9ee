"""Slow, obviously-correct numpy references for the kernels in kernels/ (used by tests/kernels/)."""

from __future__ import annotations

import math

import numpy as np


def conv_output_hw(in_hw, kernel_hw, stride, padding, dilation):
    """floor((H + pad_t + pad_b - d (K - 1) - 1) / s) + 1 per spatial axis."""
    return tuple((in_hw[a] + padding[a] + padding[a + 2] - dilation[a] * (kernel_hw[a] - 1) - 1) // stride[a] + 1
                 for a in range(2))


def conv2d_rows(G, weight, in_chw, stride, padding, dilation, groups):
    """Each row of G as (C, H, W), zero-padded, cross-correlated with weight: one einsum per (group, p, q)."""
    k = G.shape[0]
    C, H, W = in_chw
    O, cin_g, KH, KW = weight.shape
    top, left, bottom, right = padding
    OH, OW = conv_output_hw((H, W), (KH, KW), stride, padding, dilation)
    xp = np.zeros((k, C, H + top + bottom, W + left + right))
    xp[:, :, top:top + H, left:left + W] = G.reshape(k, C, H, W)
    out = np.zeros((k, O, OH, OW))
    cout_g = O // groups
    for g in range(groups):
        og = slice(g * cout_g, (g + 1) * cout_g)
        for p in range(KH):
            for q in range(KW):
                r0, c0 = p * dilation[0], q * dilation[1]
                patch = xp[:, g * cin_g:(g + 1) * cin_g,
                           r0:r0 + stride[0] * (OH - 1) + 1:stride[0],
                           c0:c0 + stride[1] * (OW - 1) + 1:stride[1]]
                out[:, og] += np.einsum("kchw,oc->kohw", patch, weight[og, :, p, q])
    return out.reshape(k, O * OH * OW)


def conv2d_rows_scale(G, weight, in_chw, stride, padding, dilation, groups):
    """|W| * |G| convolved: the magnitude that bounds the rounding error of any summation order."""
    return conv2d_rows(np.abs(G), np.abs(weight), in_chw, stride, padding, dilation, groups)


def interval_affine(W, lower, upper, bias):
    """(W⁺l + W⁻u + b, W⁺u + W⁻l + b), each row summed exactly rounded with math.fsum."""
    lo = np.empty(W.shape[0])
    hi = np.empty(W.shape[0])
    for i in range(W.shape[0]):
        wp = np.maximum(W[i], 0.0)
        wn = np.minimum(W[i], 0.0)
        lo[i] = math.fsum(list(wp * lower) + list(wn * upper) + [bias[i]])
        hi[i] = math.fsum(list(wp * upper) + list(wn * lower) + [bias[i]])
    return lo, hi


def deepz_relu(lower, upper):
    """Per neuron, by cases: (λ, μ, β) with ReLU(x) ∈ [λx + μ - β, λx + μ + β] on [l, u], outward-rounded like
    absint.relaxations.relu_parallel (o_hi = ↑max(↑(-λl), ↑((1-λ)u)), μ = o_hi/2, β = ↑max(o_hi - μ, μ))."""
    n = len(lower)
    lam, mu, beta = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        l, u = float(lower[i]), float(upper[i])
        if l >= 0:
            lam[i] = 1.0
        elif l < 0 < u:
            s = min(max(u / (u - l), 0.0), 1.0)
            o = math.nextafter(max(math.nextafter(-s * l, math.inf), math.nextafter((1 - s) * u, math.inf)),
                               math.inf)
            lam[i] = s
            mu[i] = o / 2
            beta[i] = math.nextafter(max(o - o / 2, o / 2), math.inf)
    return lam, mu, beta


def scale_columns(G, factors):
    """G * factors (a new array)."""
    return G * factors[None, :]


def abs_row_sum(G, out):
    """out + sum_i |G[i]| (a new array), columns summed exactly rounded."""
    return np.array([math.fsum([out[j]] + list(np.abs(G[:, j]))) for j in range(G.shape[1])])
