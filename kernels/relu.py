"""DeepZ ReLU relaxation (Singh et al. NeurIPS 2018) per neuron, and column scaling of generator blocks."""

import numpy as np
from numba import prange

from ._config import kernel

#: fewer neurons than this (serial < ~0.3 ms): deepz_relu runs on one thread
RELU_SERIAL_BELOW = 1 << 16
#: blocks with fewer entries than this (serial < ~0.5 ms): scale_columns runs on one thread
SCALE_SERIAL_BELOW = 1 << 20


@kernel
def _up(x):
    return np.nextafter(x, np.inf)


@kernel
def _max(a, b):
    """np.maximum on scalars: NaN if either is NaN."""
    if a != a or b != b:
        return a + b
    return a if a >= b else b


@kernel
def _deepz_one(lower, upper, i, lam, mu, beta):
    """Neuron i: l >= 0 -> (1, 0, 0); crossing -> λ = clip(u/(u-l), 0, 1), o = ↑max(↑(-λl), ↑((1-λ)u)),
    μ = o/2, β = ↑max(o - μ, μ); otherwise (dead or NaN) -> (0, 0, 0)."""
    l = lower[i]
    u = upper[i]
    if l >= 0.0:
        lam[i] = 1.0
        mu[i] = 0.0
        beta[i] = 0.0
    elif l < 0.0 and u > 0.0:
        s = u / (u - l)
        if s > 1.0:
            s = 1.0
        if s < 0.0:
            s = 0.0
        o = _up(_max(_up(-s * l), _up((1.0 - s) * u)))
        m = o / 2.0
        lam[i] = s
        mu[i] = m
        beta[i] = _max(_up(_max(o - m, m)), 0.0)
    else:
        lam[i] = 0.0
        mu[i] = 0.0
        beta[i] = 0.0


@kernel(parallel=True)
def deepz_relu_parallel(lower, upper, lam, mu, beta):
    """deepz_relu with neurons split across threads."""
    for i in prange(lower.shape[0]):
        _deepz_one(lower, upper, i, lam, mu, beta)


@kernel
def deepz_relu_serial(lower, upper, lam, mu, beta):
    """deepz_relu on one thread."""
    for i in range(lower.shape[0]):
        _deepz_one(lower, upper, i, lam, mu, beta)


def deepz_relu(lower, upper, lam, mu, beta):
    """DeepZ ReLU per neuron into lam, mu, beta: ReLU(x) ∈ λx + μ ± β on [l, u]; returns (lam, mu, beta).

    l >= 0: (1, 0, 0); u <= 0: (0, 0, 0); crossing: λ = u/(u-l), μ = β ≈ -λl/2, rounded as
    absint.relaxations.relu_parallel (λ, o_lo = 0, o_hi) followed by the zonotope's μ = o_lo + (o_hi - o_lo)/2,
    β = ↑max(o_hi - μ, μ - o_lo); bitwise equal to that, except that stable neurons get β = 0 exactly.
    """
    if lower.shape[0] < RELU_SERIAL_BELOW:
        deepz_relu_serial(lower, upper, lam, mu, beta)
    else:
        deepz_relu_parallel(lower, upper, lam, mu, beta)
    return lam, mu, beta


@kernel(parallel=True)
def scale_columns_parallel(G, factors):
    """scale_columns with chunks of 16 rows split across threads (each chunk reads a local copy of factors)."""
    m, n = G.shape
    for c in prange((m + 15) // 16):
        f = factors.copy()
        for i in range(c * 16, min(m, c * 16 + 16)):
            row = G[i]
            for j in range(n):
                row[j] *= f[j]


@kernel
def scale_columns_serial(G, factors):
    """scale_columns on one thread."""
    m, n = G.shape
    for i in range(m):
        for j in range(n):
            G[i, j] *= factors[j]


def scale_columns(G, factors):
    """In place G[:, j] *= factors[j] for a C-contiguous block G (m, n); rows in parallel for large blocks.

    Returns G.
    """
    if G.shape[0] * G.shape[1] < SCALE_SERIAL_BELOW:
        scale_columns_serial(G, factors)
    else:
        scale_columns_parallel(G, factors)
    return G


def _warmup():
    """Compile the ReLU and scaling kernels on three neurons (active, dead, crossing)."""
    lo = np.array([0.5, -2.0, -1.0])
    hi = np.array([1.0, -1.0, 3.0])
    lam, mu, beta = np.empty(3), np.empty(3), np.empty(3)
    for fn in (deepz_relu_serial, deepz_relu_parallel):
        fn(lo, hi, lam, mu, beta)
    for fn in (scale_columns_serial, scale_columns_parallel):
        fn(np.ones((2, 3)), lam)
