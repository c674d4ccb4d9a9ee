"""Slow numpy references for kernels/batch_backsub.py and the numpy back-substitution of batched DeepPoly
as it was before the kernels (``backsubstitute_numpy``: same signature as
``absint.domains.deeppoly_batch._backsubstitute``; perf/bench_batch_backsub.py times it against the kernels)."""

from __future__ import annotations

import numpy as np

from absint.fp import UNIT_ROUNDOFF, gamma, inflate, widen
from absint.network import Affine


def relu_rows(C_u, C_l, boxes, a_l, b_l, a_u, b_u, m_in, c_v, c_b):
    """(C_u', C_l', dconst_u, dconst_l, dslack) of one ReLU step, relaxations gathered by ``boxes``."""
    a_l, b_l, a_u, b_u, m = (x[boxes] for x in (a_l, b_l, a_u, b_u, m_in))
    v = np.maximum(np.abs(a_l), np.abs(a_u)) * m
    bb = np.maximum(np.abs(b_l), np.abs(b_u))
    abs_u, abs_l = np.abs(C_u), np.abs(C_l)
    dslack = c_v * np.maximum((abs_u * v).sum(1), (abs_l * v).sum(1))
    dslack = dslack + c_b * np.maximum((abs_u * bb).sum(1), (abs_l * bb).sum(1))
    pos_u, pos_l = C_u > 0, C_l > 0
    du = (C_u * np.where(pos_u, b_u, b_l)).sum(1)
    dl = (C_l * np.where(pos_l, b_l, b_u)).sum(1)
    return C_u * np.where(pos_u, a_u, a_l), C_l * np.where(pos_l, a_l, a_u), du, dl, dslack


def affine_terms(C_u, C_l, bias, boxes, V, coef):
    """(C_u·b, C_l·b, coef·max(|C_u|·V[box], |C_l|·V[box])) of one Affine step."""
    v = V[boxes]
    return C_u @ bias, C_l @ bias, coef * np.maximum((np.abs(C_u) * v).sum(1), (np.abs(C_l) * v).sum(1))


def concretize_rows(C_u, C_l, boxes, lower, upper):
    """(max_x C_u x, min_x C_l x, max(|C_u|·m, |C_l|·m)) over box ``boxes[r]`` per row, m = max(|l|, |u|)."""
    lo, hi = lower[boxes], upper[boxes]
    m = np.maximum(np.abs(lo), np.abs(hi))
    up = (C_u * np.where(C_u > 0, hi, lo)).sum(1)
    low = (C_l * np.where(C_l > 0, lo, hi)).sum(1)
    return up, low, np.maximum((np.abs(C_u) * m).sum(1), (np.abs(C_l) * m).sum(1))


def backsubstitute_numpy(chain, k, boxes, rows, mags, relax, affine_v, lower, upper, sound, want_coef):
    """Concrete bounds of the (box, neuron) pairs of layer k by back-substitution to the input box."""
    p = boxes.size
    n_k = chain.layers[k].weight.shape[0]
    C_u = np.zeros((p, n_k))
    C_u[np.arange(p), rows] = 1.0
    C_l = C_u.copy()
    const_u, const_l, slack = np.zeros(p), np.zeros(p), np.zeros(p)
    for j in range(k, -1, -1):
        layer = chain.layers[j]
        m_in = mags[j]
        if isinstance(layer, Affine):
            W, b = layer.weight, layer.bias
            const_u += C_u @ b
            const_l += C_l @ b
            if sound:
                v = affine_v[j][boxes]
                slack += gamma(max(W.shape) + 3) * np.maximum(np.einsum("pj,pj->p", np.abs(C_u), v),
                                                              np.einsum("pj,pj->p", np.abs(C_l), v))
            C_u, C_l = C_u @ W, C_l @ W
        else:
            a_l, b_l, a_u, b_u = (x[boxes] for x in relax[j])
            if sound:
                v = np.maximum(np.abs(a_l), np.abs(a_u)) * m_in[boxes]
                bb = np.maximum(np.abs(b_l), np.abs(b_u))
                abs_u, abs_l = np.abs(C_u), np.abs(C_l)
                slack += 2 * UNIT_ROUNDOFF * np.maximum(np.einsum("pj,pj->p", abs_u, v), np.einsum("pj,pj->p", abs_l, v))
                slack += gamma(C_u.shape[1] + 2) * np.maximum(np.einsum("pj,pj->p", abs_u, bb),
                                                              np.einsum("pj,pj->p", abs_l, bb))
            pos_u, pos_l = C_u > 0, C_l > 0
            const_u += np.einsum("pj,pj->p", C_u, np.where(pos_u, b_u, b_l))
            const_l += np.einsum("pj,pj->p", C_l, np.where(pos_l, b_l, b_u))
            C_u = C_u * np.where(pos_u, a_u, a_l)
            C_l = C_l * np.where(pos_l, a_l, a_u)
    lo_in, hi_in = lower[boxes], upper[boxes]
    up = const_u + np.einsum("pj,pj->p", C_u, np.where(C_u > 0, hi_in, lo_in))
    lo = const_l + np.einsum("pj,pj->p", C_l, np.where(C_l > 0, lo_in, hi_in))
    if not sound:
        return lo, up, ((C_l, const_l) if want_coef else None)
    m = np.maximum(np.abs(lo_in), np.abs(hi_in))
    mag_m = np.maximum(np.einsum("pj,pj->p", np.abs(C_u), m), np.einsum("pj,pj->p", np.abs(C_l), m))
    slack += gamma(chain.n_inputs + len(chain.layers) + 4) * (mag_m + np.abs(const_u) + np.abs(const_l))
    lo, up = widen(lo, up, inflate(slack))
    return lo, up, ((C_l, widen(const_l, const_l, inflate(slack))[0]) if want_coef else None)
