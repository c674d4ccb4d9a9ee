"""Linear relaxations of activations, shared by DeepZ (zonotope) and DeepPoly.

``parallel_relaxation(f, l, u)`` gives a slope λ and an offset interval [o_lo, o_hi] with
f(x) - λx ∈ [o_lo, o_hi] for every x ∈ [l, u] (DeepZ, Singh et al. NeurIPS 2018):
ReLU λ = u/(u-l) on crossing neurons; S-shaped f: λ = min(f'(l), f'(u)), then f(x) - λx is
non-decreasing on [l, u], so the offsets are its values at l and u.
"""

from __future__ import annotations

import numpy as np

from .fp import UNIT_ROUNDOFF
from .network import sigmoid

#: relative error of numpy's exp/tanh-based activations (a few ulp), covered in sound mode
ACTIVATION_REL_ERROR = 8 * UNIT_ROUNDOFF
TINY = np.nextafter(0.0, 1.0)


def _down(x):
    return np.nextafter(x, -np.inf)


def _up(x):
    return np.nextafter(x, np.inf)


def relu_parallel(lower: np.ndarray, upper: np.ndarray):
    """DeepZ ReLU: (λ, o_lo, o_hi) with λ=1 (active), 0 (dead), u/(u-l) (crossing); offsets rounded outwards.

    For any λ ∈ [0, 1], ReLU(x) - λx is convex with minimum 0 at x = 0 and maximum
    max(-λl, (1-λ)u) at an endpoint, so the offsets are sound for the *computed* λ.
    """
    lam = np.where(lower >= 0, 1.0, 0.0)
    cross = (lower < 0) & (upper > 0)
    l, u = lower[cross], upper[cross]
    lam[cross] = np.clip(u / (u - l), 0.0, 1.0)
    o_lo = np.zeros_like(lower)
    o_hi = np.zeros_like(lower)
    lc = lam[cross]
    o_hi[cross] = _up(np.maximum(_up(-lc * l), _up((1.0 - lc) * u)))
    return lam, o_lo, o_hi


def sigmoid_derivative(x: np.ndarray) -> np.ndarray:
    """σ'(x) = e^{-|x|} / (1 + e^{-|x|})², free of the cancellation in σ(1-σ) (few-ulp accurate)."""
    e = np.exp(-np.abs(x))
    return e / ((1.0 + e) * (1.0 + e))


def tanh_derivative(x: np.ndarray) -> np.ndarray:
    """tanh'(x) = 4e^{-2|x|} / (1 + e^{-2|x|})², free of the cancellation in 1 - tanh²."""
    e = np.exp(-2.0 * np.abs(x))
    return 4.0 * e / ((1.0 + e) * (1.0 + e))


def s_shaped_parallel(f, df, lower: np.ndarray, upper: np.ndarray):
    """DeepZ for sigmoid/tanh: λ = min(f'(l), f'(u)) (rounded down), offsets [f(l) - λl, f(u) - λu] widened.

    f' is unimodal with its peak at 0, so f' >= λ on [l, u] and f(x) - λx is non-decreasing;
    a slope below the true minimum keeps that property, so rounding λ down stays sound.
    """
    lam = np.maximum(_down(np.minimum(df(lower), df(upper)) * (1 - 16 * UNIT_ROUNDOFF)), 0.0)
    fl, fu = f(lower), f(upper)
    fl = fl - ACTIVATION_REL_ERROR * np.abs(fl) - TINY
    fu = fu + ACTIVATION_REL_ERROR * np.abs(fu) + TINY
    lam_l, lam_u = lam * lower, lam * upper
    o_lo = _down(fl - _up(lam_l) - UNIT_ROUNDOFF * np.abs(lam_l))
    o_hi = _up(fu - _down(lam_u) + UNIT_ROUNDOFF * np.abs(lam_u))
    return lam, o_lo, o_hi


# --------------------------------------------------------------------------- DeepPoly
def relu_deeppoly(lower: np.ndarray, upper: np.ndarray):
    """DeepPoly ReLU (Singh et al. POPL 2019): (a_l, b_l, a_u, b_u) with a_l x + b_l <= ReLU(x) <= a_u x + b_u.

    Crossing neurons: upper slope u/(u-l), intercept max(-a_u l, (1-a_u) u) rounded up (sound for the
    computed slope); lower slope 1 if u > -l else 0 (the area heuristic), intercept 0.
    """
    a_u, _, o_hi = relu_parallel(lower, upper)
    cross = (lower < 0) & (upper > 0)
    a_l = np.where(lower >= 0, 1.0, 0.0)
    a_l[cross] = np.where(upper[cross] > -lower[cross], 1.0, 0.0)
    zeros = np.zeros_like(lower)
    return a_l, zeros, a_u, o_hi


def s_shaped_deeppoly(f, df, lower: np.ndarray, upper: np.ndarray):
    """DeepPoly sigmoid/tanh: chord slope λ on the concave (l > 0, lower) / convex (u <= 0, upper) side,
    else the tangent slope λ' = min(f'(l), f'(u)); intercepts are the min (lower) / max (upper) of
    f(e) - a e over the endpoints, which bound f(x) - ax on [l, u] in every case (concavity or monotonicity).
    """
    lam_t = np.maximum(np.nextafter(np.minimum(df(lower), df(upper)) * (1 - 16 * UNIT_ROUNDOFF), -np.inf), 0.0)
    fl, fu = f(lower), f(upper)
    width = upper - lower
    safe = width > 1e-12 * np.maximum(1.0, np.abs(lower))
    chord = np.where(safe, (fu - fl) / np.where(safe, width, 1.0), lam_t)
    a_l = np.where((lower > 0) & safe, chord, lam_t)
    a_u = np.where((upper <= 0) & safe, chord, lam_t)
    fl_lo = fl - ACTIVATION_REL_ERROR * np.abs(fl) - TINY
    fu_lo = fu - ACTIVATION_REL_ERROR * np.abs(fu) - TINY
    fl_hi = fl + ACTIVATION_REL_ERROR * np.abs(fl) + TINY
    fu_hi = fu + ACTIVATION_REL_ERROR * np.abs(fu) + TINY

    def off_down(fe, a, e):
        p = a * e
        return _down(fe - _up(p) - UNIT_ROUNDOFF * np.abs(p))

    def off_up(fe, a, e):
        p = a * e
        return _up(fe - _down(p) + UNIT_ROUNDOFF * np.abs(p))

    b_l = np.minimum(off_down(fl_lo, a_l, lower), off_down(fu_lo, a_l, upper))
    b_u = np.maximum(off_up(fl_hi, a_u, lower), off_up(fu_hi, a_u, upper))
    return a_l, b_l, a_u, b_u


def maxpool_windows(lower: np.ndarray, upper: np.ndarray, layer, in_shape: tuple[int, ...]):
    """Per MaxPool output: (lo, hi, dominated, source).

    lo/hi = max of the window's lower/upper bounds (exact); ``source`` is the input with the largest
    lower bound, ``dominated`` when that lower bound is >= every other input's upper bound (then the
    output equals that input exactly; otherwise a relaxation is needed).
    """
    from .im2col import windows

    shape = (1,) + tuple(in_shape)
    k = layer.kernel[0] * layer.kernel[1]

    def win(a, pad):
        return windows(np.asarray(a).reshape(shape), layer.kernel, layer.stride, layer.padding, layer.dilation,
                       pad_value=pad)[0].reshape(-1, k)

    wl, wu = win(lower, -np.inf), win(upper, -np.inf)
    wi = win(np.arange(lower.size, dtype=np.float64), -1.0).astype(np.int64)
    rows = np.arange(wl.shape[0])
    best = np.argmax(wl, axis=1)
    others = wu.copy()
    others[rows, best] = -np.inf
    dominated = wl[rows, best] >= others.max(axis=1)
    return wl.max(axis=1), wu.max(axis=1), dominated, wi[rows, best]
