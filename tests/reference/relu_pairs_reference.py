"""Slow numpy references of kernels/relu_pairs.py (whole-array numpy, no fusion)."""

from __future__ import annotations

import numpy as np


def relu_backward_pairs(C, alpha, su, bu, fixed, unstable, beta, sign, mag):
    pos = C >= 0
    d = np.where(unstable, np.where(pos, alpha, su), fixed)
    icpt = np.where(unstable & ~pos, bu, 0.0)
    C_out = C * d - beta * sign
    const = np.sum(C * icpt, axis=1)
    abs_mag = np.sum((np.abs(C) + np.abs(beta)) * mag, axis=1)
    abs_icpt = np.sum(np.abs(C) * icpt, axis=1)
    return C_out, const, abs_mag, abs_icpt


def relu_forward_pairs(z, coef, alpha, su, bu, fixed, unstable, sign):
    pos = coef >= 0
    h = np.where(unstable, np.where(pos, alpha * z, su * z + bu), fixed * z)
    ga = np.where(unstable & pos, coef * z, 0.0)
    gb = -sign * z
    return h, ga, gb


def adam_ascent(x, g, m1, m2, b1, b2, c1, c2, lr, eps, lo, hi, live):
    n1 = b1 * m1 + (1 - b1) * g
    n2 = b2 * m2 + (1 - b2) * g * g
    y = np.clip(x + lr * (n1 / c1) / (np.sqrt(n2 / c2) + eps), lo, hi)
    return np.where(live, y, x), np.where(live, n1, m1), np.where(live, n2, m2)
