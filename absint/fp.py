"""Rigorous bounds on float64 rounding errors of the linear algebra the domains do.

Higham, "Accuracy and Stability of Numerical Algorithms", Thm 3.1 / 3.5: a dot product of
length n computed in any order (with or without FMA) satisfies
|fl(xᵀy) - xᵀy| <= gamma_n |x|ᵀ|y|, gamma_n = n u / (1 - n u), u = 2^-53.
"""

from __future__ import annotations

import numpy as np

UNIT_ROUNDOFF = 2.0 ** -53
#: smallest positive subnormal: products that underflow lose up to this much each
ETA = np.nextafter(0.0, 1.0)


def gamma(n: int) -> float:
    """gamma_n = n u / (1 - n u), the relative error bound of an n-term dot product."""
    nu = n * UNIT_ROUNDOFF
    if nu >= 1:
        raise ValueError(f"dot products of length {n} have no float64 error bound")
    return nu / (1.0 - nu)


def addition_error(*totals: np.ndarray) -> np.ndarray:
    """A bound on the rounding error of the one addition that produced each of ``totals`` (elementwise max
    over them): |fl(a + b) - (a + b)| <= u |a + b| <= 2u |fl(a + b)|. A running constant gets it after each
    step's term is added: gamma_n of the final sum bounds the terms' errors by the final total only, which
    cancellation can make smaller than the partial sums."""
    out = np.abs(totals[0])
    for t in totals[1:]:
        out = np.maximum(out, np.abs(t))
    return 2.0 * UNIT_ROUNDOFF * out


def inflate(x: np.ndarray, terms: int = 4) -> np.ndarray:
    """Round a non-negative error bound up, covering the rounding of its own ``terms`` operations."""
    return x * (1.0 + gamma(terms + 1)) + ETA * terms


def widen(lower: np.ndarray, upper: np.ndarray, slack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[lower - slack, upper + slack], rounded outwards."""
    return (np.nextafter(lower - slack, -np.inf), np.nextafter(upper + slack, np.inf))


def outward_float32(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 bounds enclosing float64 [lo, hi] (a rounded-to-nearest end moved one float32 step out)."""
    lo32, hi32 = lo.astype(np.float32), hi.astype(np.float32)
    lo32 = np.where(lo32 > lo, np.nextafter(lo32, np.float32(-np.inf)), lo32)
    hi32 = np.where(hi32 < hi, np.nextafter(hi32, np.float32(np.inf)), hi32)
    return lo32, hi32
