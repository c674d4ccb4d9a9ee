"""Which ReLU to split next in a sub-problem: the one whose relaxation costs its bound the most.

BaBSR-style estimate (Bunel et al., JMLR 2020): with g_i the back-substituted coefficient on a free
unstable ReLU output in a pair's bound, a negative g_i takes the chord's intercept, which costs
|g_i| · u(-l)/(u-l) and vanishes in both children; a positive g_i takes the slope α z, whose gap to the
ReLU is at most max((1-α)u, -αl), counted with weight ``LOWER_WEIGHT`` (the optimised α often closes
it). Scores are summed over the sub-problem's open pairs; the largest wins, or, with filtered smart
branching (FSB, De Palma et al. 2021), the best of the top few by a cheap bound of both children: the
mean of the two children's bounds, at the sub-problem's worst open pair. The mean (the sum) rather
than the worse child also rewards a split that nearly closes one child: on oval21 it left 60-s global
bounds of -0.0065 (cifar_base_kw img4631) and -0.0153 (wide img6762) where the worse child left
-0.0095 and -0.0176, with mnistfc 256x4 prop_0_0.03 still holding in 8.2 s (perf/README.md).
"""

from __future__ import annotations

import numpy as np

#: weight of the lower relaxation's gap relative to the upper one's intercept
LOWER_WEIGHT = 0.2


def relaxation_scores(pp, coef: dict, alpha: dict, pair_mask: np.ndarray) -> dict:
    """Per ReLU j, (P, n_j) scores of each pair's free unstable neurons (0 elsewhere and for masked pairs)."""
    out = {}
    for j, g in coef.items():
        unst = pp.unstable[j] & (pp.sign[j] == 0) & pair_mask[:, None]
        a = alpha[j]
        lower_gap = np.maximum((1.0 - a) * pp.pre_upper[j], -a * pp.pre_lower[j])
        s = np.where(g < 0, -g * pp.bu[j], LOWER_WEIGHT * g * lower_gap)
        out[j] = np.where(unst, s, 0.0)
    return out


def _per_subproblem(pp, coef: dict, alpha: dict, sub: np.ndarray, pair_mask: np.ndarray, B: int):
    """Scores summed over each sub-problem's open pairs, (B, N) over all ReLUs' neurons side by side
    (-inf where a neuron is not a free unstable one), and each column's (ReLU index, neuron)."""
    scores = relaxation_scores(pp, coef, alpha, pair_mask)
    blocks, owner = [], []
    for j, s in scores.items():
        per_sub = np.zeros((B, s.shape[1]))
        np.add.at(per_sub, sub, s)
        unst = np.zeros((B, s.shape[1]), bool)
        np.logical_or.at(unst, sub, pp.unstable[j] & (pp.sign[j] == 0))
        blocks.append(np.where(unst, per_sub, -np.inf))  # a free unstable neuron beats "nothing to split"
        owner.append(np.stack([np.full(s.shape[1], j), np.arange(s.shape[1])], axis=1))
    return np.concatenate(blocks, axis=1), np.concatenate(owner)


def _child_bounds(pp, opt, pairs: np.ndarray, neuron: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Lower bounds (len(pairs), 2) of each pair with its candidate neuron fixed active (column 0) or
    inactive (column 1), at the pair's current slopes and multipliers (no re-optimisation, the same
    intermediate bounds), in the optimiser's iterate precision: FSB's cheap look-ahead (De Palma et al. 2021)."""
    from .slopes import pair_bounds

    base = opt.work if opt.work is not None else pp
    out = np.empty((len(pairs), 2))
    for side, phase in enumerate((1.0, 0.0)):
        q = base.take(pairs)
        for j in q.unstable:
            here = owner[neuron, 0] == j
            rows, cols = np.flatnonzero(here), owner[neuron[here], 1]
            q.unstable[j][rows, cols] = False
            q.fixed[j][rows, cols] = phase
        alpha = {j: a[pairs] for j, a in opt.alpha.items()}
        beta = {j: b[pairs] for j, b in opt.beta.items()}
        out[:, side] = pair_bounds(q, alpha, beta, sound=False).lower
    return out


def choose_splits(pp, opt, sub: np.ndarray, row: np.ndarray, open_rows: np.ndarray, live: np.ndarray,
                  candidates: int = 1) -> dict:
    """For each live sub-problem b, the (ReLU index j, neuron i) to split, or no entry when it has no
    free unstable ReLU left. ``open_rows`` (B, R): rows of b's still-open disjuncts. With
    ``candidates`` > 1, the best-scored few are tried on both sides (``_child_bounds``) and the one whose
    children's mean bound is best (at the worst of b's open pairs) wins (filtered smart branching)."""
    mask = open_rows[sub, row]
    B = open_rows.shape[0]
    scores, owner = _per_subproblem(pp, opt.at_best.coef, opt.alpha, sub, mask, B)
    k = max(1, min(int(candidates), scores.shape[1]))
    top = np.argsort(-scores, axis=1)[:, :k]                     # (B, k) columns, best first
    top_valid = np.isfinite(np.take_along_axis(scores, top, axis=1))
    pick = np.zeros(B, np.intp)
    if k > 1:
        pairs = np.flatnonzero(mask)
        value = np.full((B, k), -np.inf)
        for c in range(k):
            neuron = top[sub[pairs], c]
            ok = top_valid[sub[pairs], c]
            if not ok.any():
                continue
            child = _child_bounds(pp, opt, pairs[ok], neuron[ok], owner).mean(axis=1)
            worst = np.full(B, np.inf)
            np.minimum.at(worst, sub[pairs[ok]], child)
            value[:, c] = np.where(top_valid[:, c], worst, -np.inf)
        # ties (e.g. every candidate's children still far below 0 by the same amount) go to the score order
        pick = np.argmax(value - 1e-9 * np.arange(k)[None, :], axis=1)
    chosen = top[np.arange(B), pick]
    valid = top_valid[np.arange(B), pick]
    return {int(b): (int(owner[chosen[b], 0]), int(owner[chosen[b], 1])) for b in live if valid[b]}


__all__ = ["choose_splits", "relaxation_scores", "LOWER_WEIGHT"]
