"""The LP-based branch and bound (absint.bab.lp_branch): its closed trees reach the MILP optimum that
brute-force enumeration of the binaries gives (each completion's LP by scipy's linprog), a stopped one
gives a bound below it, a target caps it, and a persistent LP reused across objectives and binary sets
gives what a fresh one gives."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog

from absint.bab import milp_bounds
from absint.bab.lp_branch import PersistentLp, lp_branch_minimise
from absint.domains.deeppoly_batch import AffineReluChain
from tests.bab.test_milp_bounds import _hidden_affines, _root_layers
from tests.domains.test_deeppoly_batch import random_chain


def _second_layer_model(seed: int):
    """The exact encoding of a random chain's first hidden layer (a model for the second layer's bounds), with
    at least three binaries, and an objective over its outputs."""
    for s in range(seed, seed + 50):
        rng = np.random.default_rng(s)
        chain = AffineReluChain.from_network(random_chain(rng, (3, 7, 5, 1)))
        lo = rng.normal(size=3) - 1.0
        hi = lo + 2.0
        layers = _root_layers(chain, lo, hi)
        model = milp_bounds._Model(chain, layers, lo, hi, _hidden_affines(chain)[1])
        if model.n_binaries >= 3:
            c = np.zeros(model.n_vars)
            c[model.out:model.out + model.live.size] = rng.normal(size=model.live.size)
            return model, c
    raise AssertionError("no random chain with three unstable neurons")


def _enumerated_minimum(model, c: np.ndarray, binaries: np.ndarray) -> float:
    """min c·x with ``binaries`` in {0, 1} (the model's other binaries relaxed): each completion's LP."""
    best = np.inf
    A = model.matrix.toarray()
    finite_lo, finite_hi = np.isfinite(model.row_lo), np.isfinite(model.row_hi)
    eq = finite_lo & finite_hi & (model.row_lo == model.row_hi)
    ub = ~eq
    A_ub = np.vstack([A[ub & finite_hi], -A[ub & finite_lo]])
    b_ub = np.concatenate([model.row_hi[ub & finite_hi], -model.row_lo[ub & finite_lo]])
    for bits in itertools.product((0.0, 1.0), repeat=binaries.size):
        lo, hi = model.col_lo.copy(), model.col_hi.copy()
        lo[binaries] = hi[binaries] = bits
        res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A[eq], b_eq=model.row_lo[eq], bounds=list(zip(lo, hi)))
        if res.status == 0:
            best = min(best, res.fun)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_a_closed_tree_reaches_the_enumerated_minimum(seed):
    model, c = _second_layer_model(10 * seed)
    binaries = np.flatnonzero(model.integrality)
    exact = _enumerated_minimum(model, c, binaries)
    lp = PersistentLp(model.matrix, model.row_lo, model.row_hi, model.col_lo, model.col_hi)
    res = lp_branch_minimise(lp, c, binaries, binaries, time.perf_counter() + 60.0, 10_000)
    assert res.closed and res.lower == pytest.approx(exact, abs=1e-6)
    # a stopped tree: the root LP alone, a bound below the minimum
    stopped = lp_branch_minimise(lp, c, binaries, binaries, time.perf_counter() + 60.0, 1)
    assert stopped.nodes == 1 and stopped.lower <= exact + 1e-7
    assert stopped.closed or stopped.lower < exact - 1e-9


@pytest.mark.parametrize("seed", range(4))
def test_a_target_caps_the_bound(seed):
    """Below the minimum, the target comes back (the tree closes when no node goes below it); above it,
    the minimum."""
    model, c = _second_layer_model(100 + 10 * seed)
    binaries = np.flatnonzero(model.integrality)
    exact = _enumerated_minimum(model, c, binaries)
    lp = PersistentLp(model.matrix, model.row_lo, model.row_hi, model.col_lo, model.col_hi)
    low = lp_branch_minimise(lp, c, binaries, binaries, time.perf_counter() + 60.0, 10_000, target=exact - 0.5)
    assert low.closed and low.lower == exact - 0.5
    high = lp_branch_minimise(lp, c, binaries, binaries, time.perf_counter() + 60.0, 10_000, target=exact + 0.5)
    assert high.closed and high.lower == pytest.approx(exact, abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_a_reused_lp_forgets_the_last_search(seed):
    """One persistent LP searched for one objective with every binary, then for another with only the first
    binary integral (the others relaxed to [0, 1] again), gives the enumerated minima of both."""
    model, c = _second_layer_model(200 + 10 * seed)
    binaries = np.flatnonzero(model.integrality)
    lp = PersistentLp(model.matrix, model.row_lo, model.row_hi, model.col_lo, model.col_hi)
    first = lp_branch_minimise(lp, c, binaries, binaries, time.perf_counter() + 60.0, 10_000)
    assert first.lower == pytest.approx(_enumerated_minimum(model, c, binaries), abs=1e-6)
    second = lp_branch_minimise(lp, -c, binaries[:1], binaries, time.perf_counter() + 60.0, 10_000)
    assert second.closed
    assert second.lower == pytest.approx(_enumerated_minimum(model, -c, binaries[:1]), abs=1e-6)


def test_an_infeasible_model_has_no_point():
    A = sp.csr_array(np.array([[1.0, 1.0]]))
    lp = PersistentLp(A, np.array([3.0]), np.array([np.inf]), np.zeros(2), np.ones(2))
    res = lp_branch_minimise(lp, np.ones(2), np.arange(2), np.arange(2), time.perf_counter() + 10.0, 100)
    assert res.closed and res.lower == np.inf


def test_the_model_hands_an_unclosed_tree_to_the_milp_solver(monkeypatch):
    """``_Model.minimum`` with a node budget too small to close the tree asks HiGHS's MILP solver, and keeps
    the better of the two bounds; with enough nodes it does not ask it."""
    model, c = _second_layer_model(300)
    c_out = np.zeros(model.live.max() + 1)
    c_out[model.live] = c[model.out:model.out + model.live.size]
    calls = []
    real = milp_bounds.highs_minimise

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(milp_bounds, "highs_minimise", counting)
    exact = model.minimum(c_out, 60.0)
    assert len(calls) == 1
    assert model.minimum(c_out, 60.0, branch_nodes=10_000) == pytest.approx(exact, abs=1e-6)
    assert len(calls) == 1
    assert model.minimum(c_out, 60.0, branch_nodes=1) == pytest.approx(exact, abs=1e-6)
    assert len(calls) == 2 or model.n_binaries == 0
