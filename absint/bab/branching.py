"""Which ReLU to split next in a sub-problem: the one whose relaxation costs its bound the most.

BaBSR-style estimate (Bunel et al., JMLR 2020): with g_i the back-substituted coefficient on a free
unstable ReLU output in a pair's bound, a negative g_i takes the chord's intercept, which costs
|g_i| · u(-l)/(u-l) and vanishes in both children; a positive g_i takes the slope α z, whose gap to the
ReLU is at most max((1-α)u, -αl), counted with weight ``LOWER_WEIGHT`` (the optimised α often closes
it). Scores are summed over the sub-problem's open pairs; the largest wins.
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


def choose_splits(pp, opt, sub: np.ndarray, row: np.ndarray, open_rows: np.ndarray, live: np.ndarray) -> dict:
    """For each live sub-problem b, the (ReLU index j, neuron i) to split, or no entry when it has no
    free unstable ReLU left. ``open_rows`` (B, R): rows of b's still-open disjuncts."""
    mask = open_rows[sub, row]
    scores = relaxation_scores(pp, opt.at_best.coef, opt.alpha, mask)
    B = open_rows.shape[0]
    best_score = np.full(B, -np.inf)
    best_choice = np.full((B, 2), -1)
    for j, s in scores.items():
        per_sub = np.zeros((B, s.shape[1]))
        np.add.at(per_sub, sub, s)
        unst = np.zeros((B, s.shape[1]), bool)
        np.logical_or.at(unst, sub, pp.unstable[j] & (pp.sign[j] == 0))
        # a free unstable neuron always beats "nothing to split", even at score 0
        per_sub = np.where(unst, per_sub, -np.inf)
        i = np.argmax(per_sub, axis=1)
        v = per_sub[np.arange(B), i]
        better = v > best_score
        best_score[better] = v[better]
        best_choice[better] = np.stack([np.full(B, j), i], axis=1)[better]
    return {int(b): (int(best_choice[b, 0]), int(best_choice[b, 1])) for b in live
            if np.isfinite(best_score[b])}


__all__ = ["choose_splits", "relaxation_scores", "LOWER_WEIGHT"]
