"""Branching scores and the choice of the neuron to split (BaBSR-style scores, filtered smart branching)."""

from __future__ import annotations

import numpy as np

from absint.bab.branching import _child_bounds, _per_subproblem, choose_splits, relaxation_scores
from absint.bab.slopes import optimise_pairs
from tests.bab.test_slopes import random_setup, sub_problem


def _setup(seed):
    rng, chain, lo, hi, fixed = random_setup(seed, sizes=(4, 10, 10, 3), n_fixed=2)
    res, pp = sub_problem(chain, lo, hi, fixed, [0, 1, 2])
    return chain, lo, hi, fixed, res, pp, optimise_pairs(pp, iterations=10)


def test_scores_only_on_free_unstable_neurons():
    for seed in range(4):
        _, _, _, fixed, _, pp, opt = _setup(seed)
        scores = relaxation_scores(pp, opt.at_best.coef, opt.alpha, np.ones(pp.n_pairs, bool))
        for j, s in scores.items():
            assert np.all(s >= 0)
            assert np.all(s[~pp.unstable[j]] == 0)
            for (jj, i), _ in fixed.items():
                if jj == j:
                    assert np.all(s[:, i] == 0)
            # a negative coefficient on an unstable neuron pays the chord's intercept: a positive score
            neg = pp.unstable[j] & (opt.at_best.coef[j] < 0) & (pp.bu[j] > 0)
            assert np.all(s[neg] > 0)


def test_choice_is_a_free_unstable_neuron_and_fsb_picks_the_best_children_mean():
    checked = 0
    for seed in range(6):
        _, _, _, fixed, res, pp, opt = _setup(seed)
        if res.infeasible[0]:
            continue
        sub, row = np.zeros(pp.n_pairs, int), pp.rows
        open_rows = np.ones((1, 3), bool)
        plain = choose_splits(pp, opt, sub, row, open_rows, np.array([0]))
        if not plain:
            assert not any(u.any() for u in pp.unstable.values())
            continue
        j, i = plain[0]
        assert pp.unstable[j][0, i] and (j, i) not in fixed
        fsb = choose_splits(pp, opt, sub, row, open_rows, np.array([0]), candidates=4)
        # brute force over the 4 best-scored candidates
        scores, owner = _per_subproblem(pp, opt.at_best.coef, opt.alpha, sub, np.ones(pp.n_pairs, bool), 1)
        top = [c for c in np.argsort(-scores[0])[:4] if np.isfinite(scores[0, c])]
        worst = []
        for c in top:
            child = _child_bounds(pp, opt, np.arange(pp.n_pairs), np.full(pp.n_pairs, c), owner)
            worst.append(child.mean(axis=1).min())  # both children's mean, at the worst pair
        best = top[int(np.argmax(worst))]
        assert fsb[0] == (int(owner[best, 0]), int(owner[best, 1])) or np.isclose(
            max(worst), worst[[tuple(owner[c]) for c in top].index(fsb[0])])
        assert max(worst) >= worst[0] - 1e-12  # never worse than the plain score order's first candidate
        checked += 1
    assert checked >= 3
