"""DeepPoly over a batch of input boxes at once, for chains of Affine and ReLU layers (ACAS Xu, mnistfc).

The relaxations and rounding-error terms are those of ``absint.domains.deeppoly`` (Singh et al. POPL
2019: ReLU upper chord, lower slope 0/1 by area; a back-substitution step through y = Wx + b adds
gamma_{max(in,out)+3} |C|(|W| m + |b|) to the slack, a ReLU step 2u |C| v + gamma_{n+2} |C| |b|), but
every array carries a leading batch axis and back-substitution works on (box, neuron) pairs, so one
BLAS product serves every box: input splitting bounds hundreds of sub-boxes per call. The input
coefficients of each output's lower bound, y_i >= Λ_i x + c_i on the box, are returned too; |Λ_i| x
width ranks the input dimensions for splitting (the "smear" of ReluVal/Neurify, Wang et al. 2018).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fp import UNIT_ROUNDOFF, gamma, inflate, widen
from ..network import NETWORK_INPUT, Affine, Network, ReLU, Reshape
from ..relaxations import relu_deeppoly
from .interval import centre_radius


@dataclass(frozen=True, eq=False)
class AffineReluChain:
    """A network that is a chain of Affine and ReLU layers on the flat input (reshapes dropped)."""

    layers: tuple[Affine | ReLU, ...]
    n_inputs: int

    @classmethod
    def from_network(cls, net: Network) -> "AffineReluChain | None":
        """The chain of ``net``, or None when ``net`` has another layer type or a branch."""
        layers = []
        for k, node in enumerate(net.nodes):
            if node.inputs != ((k - 1) if k else NETWORK_INPUT,):
                return None
            if isinstance(node.layer, Reshape):
                continue
            if not isinstance(node.layer, (Affine, ReLU)):
                return None
            layers.append(node.layer)
        if not layers or not isinstance(layers[0], Affine):
            return None
        return cls(tuple(layers), net.input_size)

    @property
    def n_outputs(self) -> int:
        last = next(l for l in reversed(self.layers) if isinstance(l, Affine))
        return last.weight.shape[0]


@dataclass(frozen=True, eq=False)
class BatchBounds:
    """Output bounds (B, n_out) of every box and, when asked for, the lower bounds' input
    coefficients Λ (B, n_out, n_in): y_i >= Λ_i x + (constant) over box b."""

    lower: np.ndarray
    upper: np.ndarray
    lower_coef: np.ndarray | None = None


def _interval_affine(layer: Affine, lo: np.ndarray, hi: np.ndarray, sound: bool):
    """Per box, W c + b ± (|W| r + slack), slack = gamma_{n+2}(|W|(|c| + r) + |b|) (as ``linear_interval``)."""
    W, b = layer.weight, layer.bias
    absW = np.abs(W)
    c, r = centre_radius(lo, hi)
    mid = c @ W.T + b
    rad = r @ absW.T
    if not sound:
        return mid - rad, mid + rad
    g = gamma(W.shape[1] + 2)
    rad = rad + inflate(g * ((np.abs(c) + r) @ absW.T + np.abs(b)) + g * rad)
    return widen(mid - rad, mid + rad, 0.0)


def _rows_to_refine(chain: AffineReluChain, k: int, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(box, neuron) pairs whose bounds are back-substituted: every output neuron of the last layer;
    the unstable neurons of an Affine read by a ReLU (stable ones have exact relaxations); none for
    the first Affine (its interval bounds on the input box are already tight)."""
    last = k == len(chain.layers) - 1
    if last:
        return np.nonzero(np.ones(lo.shape, bool))
    if k == 0 or not isinstance(chain.layers[k + 1], ReLU):
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    return np.nonzero((lo < 0) & (hi > 0))


def deeppoly_boxes(chain: AffineReluChain, lower: np.ndarray, upper: np.ndarray, sound_fp: bool = True,
                   lower_coef: bool = False) -> BatchBounds:
    """DeepPoly bounds of ``chain`` over each box [lower[b], upper[b]] (arrays (B, n_in)).
    """
    lower = np.ascontiguousarray(lower, np.float64).reshape(len(lower), -1)
    upper = np.ascontiguousarray(upper, np.float64).reshape(len(upper), -1)
    if lower.shape != upper.shape or lower.shape[1] != chain.n_inputs:
        raise ValueError(f"boxes must be (B, {chain.n_inputs}) arrays, got {lower.shape} and {upper.shape}")
    mags = []      # per layer: magnitude max(|l|, |u|) of its input, (B, n_in)
    relax = []     # per layer: None (Affine) or (a_l, b_l, a_u, b_u), each (B, n)
    affine_v = []  # per layer: |W| m + |b| of an Affine (its rounding-term magnitudes, (B, n_out)), else None
    lo, hi = lower, upper
    coef = None
    for k, layer in enumerate(chain.layers):
        mags.append(np.maximum(np.abs(lo), np.abs(hi)))
        if isinstance(layer, ReLU):
            relax.append(relu_deeppoly(lo, hi))
            affine_v.append(None)
            lo, hi = np.maximum(lo, 0.0), np.maximum(hi, 0.0)
            continue
        relax.append(None)
        affine_v.append(mags[-1] @ np.abs(layer.weight).T + np.abs(layer.bias) if sound_fp else None)
        lo, hi = _interval_affine(layer, lo, hi, sound_fp)
        boxes, rows = _rows_to_refine(chain, k, lo, hi)
        if boxes.size:
            want = lower_coef and k == len(chain.layers) - 1
            l, u, C = _backsubstitute(chain, k, boxes, rows, mags, relax, affine_v, lower, upper, sound_fp, want)
            lo[boxes, rows] = np.maximum(lo[boxes, rows], l)
            hi[boxes, rows] = np.minimum(hi[boxes, rows], u)
            crossed = lo > hi  # unsound-mode rounding only (see deeppoly._uncross)
            if crossed.any():
                lo[crossed], hi[crossed] = hi[crossed], lo[crossed]
            if want:
                coef = C.reshape(lo.shape + (chain.n_inputs,))
    return BatchBounds(lo, hi, coef)


def _backsubstitute(chain, k, boxes, rows, mags, relax, affine_v, lower, upper, sound, want_coef):
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
        return lo, up, (C_l if want_coef else None)
    m = np.maximum(np.abs(lo_in), np.abs(hi_in))
    mag_m = np.maximum(np.einsum("pj,pj->p", np.abs(C_u), m), np.einsum("pj,pj->p", np.abs(C_l), m))
    slack += gamma(chain.n_inputs + len(chain.layers) + 4) * (mag_m + np.abs(const_u) + np.abs(const_l))
    lo, up = widen(lo, up, inflate(slack))
    return lo, up, (C_l if want_coef else None)


__all__ = ["AffineReluChain", "BatchBounds", "deeppoly_boxes"]
