"""The LP of a ReLU sub-problem (absint.bab.relaxation_lp): its duals, evaluated soundly by
``pair_bounds``, reproduce its optimum (LP duality, beta-CROWN's Thm. 3.1), which no (α, β) beats and
which never exceeds the exact minimum (phase enumeration + linprog); emptiness LPs certify empty
sub-problems."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from absint.bab.relaxation_lp import sub_problem_lp
from absint.bab.slopes import optimise_pairs, pair_bounds
from absint.domains.deeppoly_batch import ReluSplits, deeppoly_boxes
from tests.bab.test_slopes import phases_of, random_setup, sub_problem
from tests.reference.relu_lp import exact_minimum


def _params(pp, lp):
    alpha = {j: np.where(np.isnan(a), pp.area_alpha[j][0], a)[None] for j, a in lp.alpha.items()}
    return alpha, {j: b[None] for j, b in lp.beta.items()}


def test_lp_duals_reproduce_its_optimum_which_bounds_every_alpha_beta():
    """Random sub-problems (three ReLUs split): the LP's (α, β), evaluated soundly, give its optimum; 100 Adam
    steps never pass it; it never passes the exact minimum; an infeasible one is empty by enumeration."""
    checked = 0
    for seed in range(24):
        _, chain, lo, hi, fixed = random_setup(seed, sizes=(3, 6, 5, 3), n_fixed=3)
        res, pp = sub_problem(chain, lo, hi, fixed, [0, 1, 2])
        if res.infeasible[0]:  # DeepPoly's bounds already show it empty
            continue
        phases = {j: a[0] for j, a in phases_of(chain, fixed).items()}
        layers = [(l[0], u[0]) for l, u in res.layers]
        adam = optimise_pairs(pp, iterations=100, stop_at=np.inf).lower
        for r in range(3):
            lp = sub_problem_lp(chain, layers, phases, lo, hi, r)
            exact = exact_minimum(chain.layers, lo, hi, np.eye(3)[r], fixed)[0]
            if np.isinf(lp.value):  # the relaxation with the splits is empty, so is the sub-problem
                assert np.isinf(exact)
                continue
            one = pp.take(np.array([r]))
            sound = pair_bounds(one, *_params(one, lp)).lower[0]
            assert sound == pytest.approx(lp.value, abs=1e-6 * max(1.0, abs(lp.value))), (seed, r)
            assert sound <= exact + 1e-9
            assert adam[r] <= lp.value + 1e-6, (adam[r], lp.value)
            checked += 1
    assert checked >= 30, checked


def test_emptiness_lp_certifies_empty_sub_problems():
    """Sub-problems with six of nine ReLUs split at random: where the splits' LP is infeasible its
    multipliers prove the sub-problem empty (positive sound bound with a zero objective), and the
    sub-problem is empty by enumeration; where it is feasible, m >= 0."""
    certified = 0
    for seed in range(30):
        _, chain, lo, hi, fixed = random_setup(seed, n_fixed=6)
        ph = phases_of(chain, fixed)
        res = deeppoly_boxes(chain, lo[None], hi[None], splits=ReluSplits(ph))
        if res.infeasible[0]:
            continue
        layers = [(l[0], u[0]) for l, u in res.layers]
        lp = sub_problem_lp(chain, layers, {j: a[0] for j, a in ph.items()}, lo, hi, None)
        empty = np.isinf(exact_minimum(chain.layers, lo, hi, np.eye(2)[0], fixed)[0])
        if lp.value > 0:  # max m < 0: no point of the relaxation meets every split
            _, pp = sub_problem(chain, lo, hi, fixed, [0])
            zero = replace(pp, row_sign=np.zeros(1))
            assert pair_bounds(zero, *_params(zero, lp)).lower[0] > 0
            assert empty
            certified += 1
        else:
            assert lp.value <= 1e-9 or empty
    assert certified >= 3, certified
