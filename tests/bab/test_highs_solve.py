"""The HiGHS wrapper (absint.bab.highs_solve): LP optima equal scipy's linprog, MILP optima equal brute-force
enumeration, infeasible models are reported as such, and a MILP stopped before any feasible point still
reports a dual bound between its LP relaxation's and its optimum (scipy.optimize.milp reports none)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog

from absint.bab import milp_bounds
from absint.bab.highs_solve import PersistentLp, highs_minimise
from absint.domains.deeppoly_batch import AffineReluChain
from tests.bab.test_milp_bounds import _root_layers
from tests.domains.test_deeppoly_batch import random_chain


@pytest.mark.parametrize("seed", range(5))
def test_lp_optimum_equals_linprog(seed):
    rng = np.random.default_rng(seed)
    n, m = 6, 4
    A = rng.normal(size=(m, n))
    x0 = rng.random(n)
    row_hi = A @ x0 + rng.random(m)  # x0 is feasible
    c = rng.normal(size=n)
    res = highs_minimise(c, sp.csr_array(A), np.full(m, -np.inf), row_hi, np.zeros(n), np.ones(n), np.zeros(n), {})
    ref = linprog(c, A_ub=A, b_ub=row_hi, bounds=[(0, 1)] * n)
    assert res.optimal and not res.infeasible
    assert res.dual_bound == pytest.approx(ref.fun, abs=1e-7)
    assert res.x is not None and np.all(A @ res.x <= row_hi + 1e-7)


@pytest.mark.parametrize("seed", range(3))
def test_a_persistent_lp_gives_each_objective_its_own_optimum(seed):
    """``PersistentLp`` solves a sequence of objectives over one set of constraints from each other's bases:
    every optimum equals linprog's on that objective alone, in any order; an unknown option is reported."""
    rng = np.random.default_rng(20 + seed)
    n, m = 12, 8
    A = rng.normal(size=(m, n))
    row_hi = A @ rng.random(n) + rng.random(m)
    lp = PersistentLp(sp.csr_array(A), np.full(m, -np.inf), row_hi, np.zeros(n), np.ones(n), {"presolve": "off"})
    for c in rng.normal(size=(10, n)):
        res = lp.minimise(c, 10.0)
        ref = linprog(c, A_ub=A, b_ub=row_hi, bounds=[(0, 1)] * n)
        assert res.optimal and not res.infeasible
        assert res.dual_bound == pytest.approx(ref.fun, abs=1e-7)
        assert res.x is not None and c @ res.x == pytest.approx(ref.fun, abs=1e-7)
    with pytest.raises(ValueError, match="no_such_option"):
        PersistentLp(sp.csr_array(A), np.full(m, -np.inf), row_hi, np.zeros(n), np.ones(n), {"no_such_option": 1})


@pytest.mark.parametrize("seed", range(5))
def test_milp_optimum_equals_enumeration(seed):
    rng = np.random.default_rng(10 + seed)
    n = 6
    A = rng.normal(size=(3, n))
    row_hi = A @ rng.integers(0, 2, n) + 0.5
    c = rng.normal(size=n)
    res = highs_minimise(c, sp.csr_array(A), np.full(3, -np.inf), row_hi, np.zeros(n), np.ones(n), np.ones(n),
                         {"presolve": "off"})
    best = min(c @ np.array(x) for x in itertools.product((0, 1), repeat=n) if np.all(A @ np.array(x) <= row_hi))
    assert res.optimal and res.dual_bound == pytest.approx(best, abs=1e-6)
    assert res.x is not None and c @ res.x == pytest.approx(best, abs=1e-6)


def test_infeasible_models_and_unknown_options_are_reported():
    A = sp.csr_array(np.array([[1.0, 1.0]]))
    res = highs_minimise(np.ones(2), A, np.array([3.0]), np.array([np.inf]), np.zeros(2), np.ones(2), np.ones(2), {})
    assert res.infeasible and res.x is None
    with pytest.raises(ValueError, match="no_such_option"):
        highs_minimise(np.ones(2), A, np.array([0.0]), np.array([1.0]), np.zeros(2), np.ones(2), np.zeros(2),
                       {"no_such_option": 1})


@pytest.mark.parametrize("seed", range(3))
def test_a_stopped_milp_without_a_point_still_gives_its_dual_bound(seed):
    """The exact ReLU encoding of a random network's output, stopped after its root node with the primal
    heuristics off: no feasible point, yet a dual bound at least the LP relaxation's and at most the optimum
    (the full solve's)."""
    rng = np.random.default_rng(seed)
    chain = AffineReluChain.from_network(random_chain(rng, (6, 16, 16, 1)))
    lo, hi = -np.ones(6), np.ones(6)
    model = milp_bounds._Model(chain, _root_layers(chain, lo, hi), lo, hi, len(chain.layers) - 1)
    c = np.zeros(model.n_vars)
    c[model.out:model.out + model.live.size] = np.asarray(chain.layers[-1].weight, np.float64)[0][model.live]
    args = (c, model.matrix, model.row_lo, model.row_hi, model.col_lo, model.col_hi)
    lp = highs_minimise(*args, np.zeros(model.n_vars), {})
    full = highs_minimise(*args, model.integrality, {**milp_bounds.HIGHS_OPTIONS, "time_limit": 60.0})
    stopped = highs_minimise(*args, model.integrality, {**milp_bounds.HIGHS_OPTIONS, "mip_max_nodes": 1})
    assert lp.optimal and full.optimal
    if stopped.optimal:
        pytest.skip("the root node solved it")
    assert np.isfinite(stopped.dual_bound)
    assert lp.dual_bound - 1e-7 <= stopped.dual_bound <= full.dual_bound + 1e-7
