"""ReLU steps of optimised DeepPoly on (sub-problem, row) pairs, each row with its own relaxation.

Backward (back-substitution, Singh et al. POPL 2019 with tunable lower slopes, Xu et al. ICLR 2021, and
split multipliers, Wang et al. NeurIPS 2021): a coefficient c on a ReLU output becomes c·d - β·s on its
input, d = α (unstable, c >= 0), the chord slope (unstable, c < 0: the chord's intercept adds c·b_u to
the constant), else the fixed slope 1/0. Forward (the gradient pass): the same relaxation planes applied
to pre-activations z, with ∂/∂α = c·z where α was used and ∂/∂β = -s·z. Adam: one projected ascent step.
Only the columns where some row is unstable or split (``live_columns``: 15-47 % of mnistfc 256x4's
neurons, 15-24 % of oval21 wide's) take the branches; the rest is one branch-free pass (Adam skips it).
"""

import numpy as np
from numba import prange

from ._config import kernel, serial_when_small


@serial_when_small()
@kernel(parallel=True)
def relu_backward_pairs(C, alpha, su, bu, fixed, unstable, beta, sign, mag, cols, C_out, const, abs_mag, abs_icpt):
    """C_out = C·d - β·s; const += Σ_{c<0, unstable} c·b_u; abs_mag = Σ(|c| + |β|)·mag and
    abs_icpt = Σ_{c<0, unstable} |c|·b_u (the caller's rounding terms), per row. ``cols``: the columns
    where some row is unstable or split (``live_columns``); elsewhere d = fixed and β·s = 0, a
    branch-free pass."""
    P, n = C.shape
    for p in prange(P):
        acc = 0.0
        s_mag = 0.0
        s_icpt = 0.0
        for i in range(n):
            c = C[p, i]
            C_out[p, i] = c * fixed[p, i]
            s_mag += abs(c) * mag[p, i]
        for k in range(cols.size):
            i = cols[k]
            c = C[p, i]
            if unstable[p, i]:
                if c >= 0.0:
                    d = alpha[p, i]
                else:
                    d = su[p, i]
                    acc += c * bu[p, i]
                    s_icpt += -c * bu[p, i]
            else:
                d = fixed[p, i]
            b = beta[p, i]
            C_out[p, i] = c * d - b * sign[p, i]
            s_mag += abs(b) * mag[p, i]
        const[p] += acc
        abs_mag[p] = s_mag
        abs_icpt[p] = s_icpt


@serial_when_small()
@kernel(parallel=True)
def relu_forward_pairs(z, coef, alpha, su, bu, fixed, unstable, sign, cols, h, grad_alpha, grad_beta):
    """h = the relaxation plane chosen by the sign of coef, applied to z; grad_alpha = coef·z where the
    slope α was used (else 0); grad_beta = -s·z (0 off ``cols``, where no row is unstable or split)."""
    P, n = z.shape
    for p in prange(P):
        for i in range(n):
            h[p, i] = fixed[p, i] * z[p, i]
            grad_alpha[p, i] = 0.0
            grad_beta[p, i] = 0.0
        for k in range(cols.size):
            i = cols[k]
            zz = z[p, i]
            if unstable[p, i]:
                if coef[p, i] >= 0.0:
                    h[p, i] = alpha[p, i] * zz
                    grad_alpha[p, i] = coef[p, i] * zz
                else:
                    h[p, i] = su[p, i] * zz + bu[p, i]
            grad_beta[p, i] = -sign[p, i] * zz


@serial_when_small()
@kernel(parallel=True)
def adam_ascent(x, g, m1, m2, b1, b2, c1, c2, lr, eps, lo, hi, live, cols):
    """One projected Adam ascent step in place on the entries where ``live`` (the others, whose gradient is
    always 0, and their moments stay as they are), all within the columns ``cols``: m1 = b1 m1 + (1-b1) g,
    m2 = b2 m2 + (1-b2) g², x = clip(x + lr (m1/c1) / (sqrt(m2/c2) + eps), lo, hi); c1 = 1 - b1^t,
    c2 = 1 - b2^t (Kingma and Ba 2015)."""
    P = x.shape[0]
    for p in prange(P):
        for k in range(cols.size):
            i = cols[k]
            if not live[p, i]:
                continue
            gi = g[p, i]
            a = b1 * m1[p, i] + (1.0 - b1) * gi
            v = b2 * m2[p, i] + (1.0 - b2) * gi * gi
            m1[p, i] = a
            m2[p, i] = v
            y = x[p, i] + lr * (a / c1) / (np.sqrt(v / c2) + eps)
            x[p, i] = min(max(y, lo), hi)


def live_columns(unstable: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """The columns (intp) where some row is unstable or split: where the kernels above branch."""
    return np.flatnonzero(unstable.any(axis=0) | (sign != 0).any(axis=0))


def _warmup():
    # float64 (sound evaluations) and float32 (the optimiser's iterates) signatures
    u = np.array([[True, False]])
    for dt in (np.float64, np.float32):
        o = np.ones((1, 2), dt)
        z = np.zeros((1, 2), dt)
        v = np.zeros(1, dt)
        cols = live_columns(u, z)
        relu_backward_pairs(o, o, o, o, o, u, z, z, o, cols, np.empty((1, 2), dt), v.copy(), v.copy(), v.copy())
        relu_forward_pairs(o, o, o, o, o, o, u, z, cols, np.empty((1, 2), dt), np.empty((1, 2), dt),
                           np.empty((1, 2), dt))
        adam_ascent(o.copy(), o, z.copy(), z.copy(), 0.9, 0.999, 0.1, 0.001, 0.1, 1e-8, 0.0, 1.0, u, cols)
