"""ReLU branch and bound (absint.bab.search, verify(method="bab")): verdicts agree with exact minima
(phase enumeration + linprog) both ways, empty sub-problems are recognised, the memory budget is
obeyed, and on mnistfc no verdict is ever wrong."""

from __future__ import annotations

import time

import numpy as np
import pytest

import absint
from absint.bab.search import BabOptions, BabOutcome, relu_bab
from absint.domains.deeppoly_batch import AffineReluChain, ReluSplits, deeppoly_boxes
from absint.input_split import RowSets
from absint.network import Affine, Conv2d, Network, Node, ReLU, Reshape
from absint.verify import _stack, falsify, spec_network
from absint.vnnlib import parse_vnnlib
from tests._bench import NO_BENCHMARKS, assert_onnxruntime_confirms, benchmark_instances
from tests.domains.test_deeppoly_batch import random_chain
from tests.reference.relu_lp import exact_minimum


def _prop(lo, hi, unsafe):
    decl = "".join(f"(declare-const X_{i} Real)\n" for i in range(len(lo))) + "(declare-const Y_0 Real)\n"
    bounds = "".join(f"(assert (>= X_{i} {float(a)!r}))\n(assert (<= X_{i} {float(b)!r}))\n" for i, (a, b) in enumerate(zip(lo, hi)))
    return decl + bounds + unsafe


def _net_and_min(seed):
    rng = np.random.default_rng(seed)
    net = random_chain(rng, (3, 5, 5, 1))
    lo = np.round(rng.normal(size=3) - 1.0, 3)
    hi = np.round(lo + 2.0, 3)
    chain = AffineReluChain.from_network(net)
    m, _ = exact_minimum(chain.layers, lo, hi, np.ones(1))
    return net, lo, hi, m


def search_where_it_holds(seed: int, options: BabOptions):
    """``relu_bab`` on enumeration net ``seed`` with unsafe y <= (exact minimum - 0.02): the property holds."""
    net, lo, hi, m = _net_and_min(seed)
    A, b = np.ones((1, 1)), np.array([m - 0.02])
    chain = AffineReluChain.from_network(spec_network(net, A, b))
    return relu_bab(chain, RowSets(A, b, np.zeros(1, bool), (slice(0, 1),)), lo, hi,
                    check_counterexample=lambda x: None, check_time=lambda: None, options=options)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("side", ["holds", "violated"])
def test_agrees_with_enumeration_both_ways(seed, side):
    """Unsafe y <= t: holds when t is below the exact minimum of y over the box, violated above it."""
    net, lo, hi, m = _net_and_min(seed)
    t = m - 0.02 if side == "holds" else m + 0.02
    spec = parse_vnnlib(_prop(lo, hi, f"(assert (<= Y_0 {float(t)!r}))\n"), net)
    v = absint.verify(net, spec, timeout=30, method="bab", samples=4, pgd_steps=0)
    assert v.status == side, (v, m, t)
    if side == "violated":
        x, y = v.counterexample
        assert np.all(x.ravel() >= lo) and np.all(x.ravel() <= hi) and y[0] <= t
    else:
        assert v.stats["bab"]["subproblems"] >= 1


def search_against_enumeration(seed: int, side: str, options: BabOptions) -> BabOutcome:
    """``relu_bab`` on enumeration net ``seed`` with unsafe y <= t, t 0.02 below the exact minimum (holds)
    or above it (violated): it proves what holds, and never what does not."""
    net, lo, hi, m = _net_and_min(seed)
    t = m - 0.02 if side == "holds" else m + 0.02
    A, b = np.ones((1, 1)), np.array([t])
    chain = AffineReluChain.from_network(spec_network(net, A, b))

    def check(x):
        y = net.forward(x[None])[0]
        return (x, y) if y[0] <= t and np.all(x >= lo) and np.all(x <= hi) else None

    out = relu_bab(chain, RowSets(A, b, np.zeros(1, bool), (slice(0, 1),)), lo, hi, check_counterexample=check,
                   check_time=lambda: None, options=options)
    if side == "holds":
        assert out.result == "holds", (out, m, t)
    else:  # the search's own minimisers may miss the counterexample (verify attacks first), never prove it
        assert out.result == "unknown" or check(out.result[0]) is not None, (out, m, t)
    return out


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("side", ["holds", "violated"])
@pytest.mark.parametrize("options", [BabOptions(intermediate_depth=4), BabOptions(refine_intermediate=False),
                                     BabOptions(milp_layers=1, milp_after=0.0, milp_seconds=5.0),
                                     BabOptions(cold_retry=False), BabOptions(empty_iterations=0)],
                         ids=["optimised-shallow", "parent-bounds", "milp-root", "no-cold-retry", "no-empty-proof"])
def test_children_intermediate_bounds_settings_agree_with_enumeration(seed, side, options):
    """With children's intermediate bounds optimised under their splits (``intermediate_depth``), or kept
    from the parent (``refine_intermediate=False``, the setting for conv nets), or restarted at once from
    MILP root bounds (``milp_layers``), or without the cold retry of stuck children (``cold_retry``) or the
    proofs that children are empty (``empty_iterations``), the search still proves what holds, and never
    what does not."""
    search_against_enumeration(seed, side, options)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("side", ["holds", "violated"])
def test_lp_polish_in_every_round_agrees_with_enumeration(monkeypatch, seed, side):
    """With the LP of the worst children in every round (``STALL_ROUNDS`` 0: always stalled) and no Adam
    steps, the search still proves what holds and never what does not, and its rounds do solve LPs."""
    from absint.bab import search as search_module

    monkeypatch.setattr(search_module, "STALL_ROUNDS", 0)
    out = search_against_enumeration(seed, side, BabOptions(lr_alpha=0.0, lr_beta=0.0, iterations=1))
    if side == "holds":
        assert out.rounds <= 1 or out.time_lp > 0  # round 1 had open children: their LPs ran


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("side", ["holds", "violated"])
def test_milps_of_the_worst_sub_problems_in_every_round_agree_with_enumeration(monkeypatch, seed, side):
    """With the exact MILP of the worst queued sub-problems in every round (``STALL_ROUNDS`` 0: always
    stalled) and no Adam steps, LPs or proofs of emptiness, the search proves what holds, through the MILPs,
    and finds every violation at the solver's point, checked by the concrete re-check."""
    from absint.bab import search as search_module

    monkeypatch.setattr(search_module, "STALL_ROUNDS", 0)
    out = search_against_enumeration(seed, side, BabOptions(lr_alpha=0.0, lr_beta=0.0, iterations=1, milp_polish=2,
                                                            empty_iterations=0, lp_polish=0))
    if side == "violated":
        assert isinstance(out.result, tuple), out
    elif out.rounds > 0 or out.subproblems > 1:  # the root's rows alone did not prove it
        assert out.subproblem_milps > 0 and out.milp_closed > 0, out


def test_sub_problem_milps_take_no_more_than_their_share_of_the_search(monkeypatch):
    """With ``MILP_POLISH_SHARE`` 0 a search that stalls in every round makes no sub-problem MILP (the step
    is owed no time), and with half of the search it makes some on the same problems (those the root's
    rows leave open)."""
    from absint.bab import search as search_module

    monkeypatch.setattr(search_module, "STALL_ROUNDS", 0)
    options = BabOptions(milp_polish=2)
    searched = 0
    for seed in range(8):
        monkeypatch.setattr(search_module, "MILP_POLISH_SHARE", 0.0)
        out = search_against_enumeration(seed, "holds", options)
        assert out.subproblem_milps == 0
        if out.subproblems == 1:  # the root's rows proved it: nothing was queued
            continue
        monkeypatch.setattr(search_module, "MILP_POLISH_SHARE", 0.5)
        assert search_against_enumeration(seed, "holds", options).subproblem_milps > 0
        searched += 1
    assert searched > 0


def test_milps_of_the_worst_sub_problems_close_them_or_raise_their_bounds(monkeypatch):
    """``_milp_worst`` on a queue of five sub-problems with two disjuncts each: the MILPs of the two worst
    close a disjunct of each; the one left with none leaves the queue, the other keeps the new bound of its
    worst disjunct's row as its key; the heap order holds and the freed bytes are the closed one's."""
    import heapq

    from absint.bab import search as search_module
    from absint.bab.search import _milp_worst, _Sub

    rng = np.random.default_rng(0)
    chain = AffineReluChain.from_network(random_chain(rng, (2, 3, 2)))
    rows = RowSets(np.eye(2), np.zeros(2), np.zeros(2, bool), (slice(0, 1), slice(1, 2)))
    bounds = {0: (np.full(3, -1.0, np.float32), np.ones(3, np.float32)),
              2: (np.full(2, -1.0, np.float32), np.ones(2, np.float32))}
    queue = []
    for c, (first, second) in enumerate([(-0.5, 1.0), (-0.4, -0.3), (-0.2, -0.1), (-0.1, -0.05), (-0.05, -0.01)]):
        s = _Sub(bounds, {1: np.zeros(3, np.int8)}, np.array([first < 0, second < 0]), np.zeros(0, np.intp), {}, {},
                 (1, 0), 3, np.array([first, second]))
        queue.append((min(v for v in (first, second) if v < 0), c, s))
    heapq.heapify(queue)
    subs = [item[2] for item in sorted(queue)]
    asked, cutoffs = [], []

    def fake_minima(chain_, problems, lo, hi, seconds, threads, check_time, enough, stop):
        asked.extend(row for _, _, row in problems)
        cutoffs.extend(enough)
        return [(np.inf, None), (0.2, np.zeros(2))]  # the first is empty, the second's row passes 0

    monkeypatch.setattr(search_module, "output_minima", fake_minima)
    found, freed = _milp_worst(chain, rows, queue, np.zeros(2), np.ones(2), BabOptions(milp_polish=2), lambda: None,
                               lambda x: None, out := BabOutcome())
    assert found is None and asked == [0, 0]  # the worst open disjunct of each: row 0
    assert cutoffs == [0.0, -np.inf]  # a cutoff only where one disjunct is open
    assert out.subproblem_milps == 2 and out.milp_closed == 1 and freed == subs[0].nbytes
    assert [id(item[2]) for item in queue].count(id(subs[0])) == 0
    keys = {id(item[2]): item[0] for item in queue}
    assert keys[id(subs[1])] == -0.3 and list(subs[1].open) == [False, True] and subs[1].row_bounds[0] == 0.2
    assert sorted(queue)[0][0] == heapq.heappop(queue)[0] == -0.3


def test_stuck_children_are_retried_from_the_cold_start(monkeypatch):
    """With ``cold_retry``, children that no Adam step raised and that do not pass their parent's bound are
    optimised again from DeepPoly's slopes (``optimise_pairs`` without a warm start); without, never. The
    rounds' steps are 0, so no warm start ever moves."""
    from absint.bab import slopes

    real, cold_runs = slopes.optimise_pairs, []

    def counting(pp, alpha=None, beta=None, **kw):
        if alpha is None and pp.sign and any((s != 0).any() for s in pp.sign.values()):
            cold_runs.append(pp.n_pairs)  # a cold start on split sub-problems: only the retry does that
        return real(pp, alpha, beta, **kw)

    monkeypatch.setattr(slopes, "optimise_pairs", counting)
    per_setting = []
    for retry in (True, False):
        cold_runs.clear()
        for seed in range(8):
            out = search_where_it_holds(seed, BabOptions(cold_retry=retry, lr_alpha=0.0, lr_beta=0.0,
                                                         empty_iterations=0, max_subproblems=2000))
            assert out.result == "holds" or not retry  # without β steps nor retry, splits alone may not prove it
        per_setting.append(len(cold_runs))
    assert per_setting[0] > 0 and per_setting[1] == 0, per_setting


def test_children_proved_empty_close_their_disjuncts():
    """``_drop_empty`` closes every disjunct of the children that ``prove_empty`` shows no input reaches,
    and only theirs: z1 = x active with z2 = x + 0.5 inactive on x in [-1, 1] is empty, z2 = x - 0.5 is not."""
    from types import SimpleNamespace

    from absint.bab.search import _drop_empty

    net = Network((1,), [Node("fc1", Affine(np.array([[1.0], [1.0], [1.0]]), np.array([0.0, 0.5, -0.5])), (-1,)),
                         Node("r1", ReLU(), (0,)), Node("out", Affine(np.array([[1.0, -1.0, 0.5]]), np.zeros(1)), (1,))])
    chain = AffineReluChain.from_network(net)
    phases = {1: np.array([[1, -1, 0], [1, 0, -1], [1, -1, 0]], np.int8)}
    lo, hi = np.full((3, 1), -1.0), np.full((3, 1), 1.0)
    res = deeppoly_boxes(chain, lo, hi, splits=ReluSplits(phases))
    assert not res.infeasible.any()
    still = np.array([[True, True], [True, False], [False, False]])
    n = _drop_empty(chain, SimpleNamespace(phases=phases), res.layers, still, lo, hi, 200, lambda: None)
    assert n == 1 and still.tolist() == [[False, False], [True, False], [False, False]]


def test_root_bound_is_the_worst_disjuncts_when_the_root_proves_all():
    """Two one-row disjuncts that the root proves with different margins: the root bound is the smaller
    margin (a lower bound of the whole problem), never the larger."""
    net, lo, hi, m = _net_and_min(2)
    A, b = np.array([[1.0], [1.0]]), np.array([m - 0.5, m - 5.0])  # exact margins 0.5 and 5.0
    chain = AffineReluChain.from_network(spec_network(net, A, b))
    out = relu_bab(chain, RowSets(A, b, np.zeros(2, bool), (slice(0, 1), slice(1, 2))), lo, hi,
                   check_counterexample=lambda x: None, check_time=lambda: None, options=BabOptions(milp_layers=0))
    assert out.result == "holds" and out.rounds == 0, out
    assert 0 < out.root_bound <= 0.5 + 1e-9, out.root_bound


def test_global_bound_counts_sub_problems_with_every_relu_fixed():
    """Every ReLU is stable on the box, the property does not hold, and no counterexample is accepted: the
    root has nothing to split, the result is unknown, and the global bound stays a lower bound of the
    exact minimum (it is not +inf from the empty queue)."""
    net = Network((2,), [Node("fc", Affine(np.array([[1.0, 0.5], [-0.5, 1.0]]), np.array([5.0, 5.0])), (-1,)),
                         Node("r", ReLU(), (0,)), Node("out", Affine(np.array([[1.0, -1.0]]), np.zeros(1)), (1,))])
    lo, hi = np.zeros(2), np.ones(2)
    exact = min(float(net.forward(np.array(c, float)[None])[0, 0]) for c in [(0, 0), (0, 1), (1, 0), (1, 1)])
    A, b = np.ones((1, 1)), np.array([exact + 0.1])  # unsafe y <= exact + 0.1 is reachable
    chain = AffineReluChain.from_network(spec_network(net, A, b))
    out = relu_bab(chain, RowSets(A, b, np.zeros(1, bool), (slice(0, 1),)), lo, hi,
                   check_counterexample=lambda x: None, check_time=lambda: None, options=BabOptions(milp_layers=0))
    assert out.result == "unknown" and out.exhausted == 1, out
    assert out.global_bound <= -0.1 + 1e-9, out.global_bound


def test_finds_the_counterexample_without_sampling():
    """With sampling and gradient steps off, a counterexample comes from a sub-problem's minimiser x*."""
    found = 0
    for seed in range(8):
        net, lo, hi, m = _net_and_min(seed)
        spec = parse_vnnlib(_prop(lo, hi, f"(assert (<= Y_0 {float(m + 0.05)!r}))\n"), net)
        v = absint.verify(net, spec, timeout=30, method="bab", samples=0, pgd_steps=0)
        assert v.status in ("violated", "unknown")
        found += v.status == "violated"
    assert found >= 6


def _two_kinks() -> Network:
    """y = relu(x) - relu(x - 1): 0 for x <= 0, x on [0, 1], 1 above."""
    return Network((1,), [Node("fc", Affine(np.array([[1.0], [1.0]]), np.array([0.0, -1.0])), (-1,)),
                          Node("relu", ReLU(), (0,)),
                          Node("out", Affine(np.array([[1.0, -1.0]]), np.zeros(1)), (1,))])


def test_splitting_proves_what_the_relaxation_cannot():
    """min y = 0 on [-1, 2]: the optimised relaxation alone does not prove y > -0.01, splitting does."""
    net = _two_kinks()
    spec = parse_vnnlib(_prop([-1.0], [2.0], "(assert (<= Y_0 -0.01))\n"), net)
    v = absint.verify(net, spec, timeout=30, method="bab", samples=0, pgd_steps=0)
    assert v.status == "holds"
    assert v.stats["bab"]["subproblems"] > 1 and v.stats["bab"]["root_bound"] < -0.01


def test_contradictory_splits_are_empty_subproblems():
    """With z1 = x and z2 = relu(z1) - 0.5: 'z1 <= 0' together with 'z2 >= 0' is empty; each alone is not."""
    net = Network((1,), [Node("fc1", Affine(np.array([[1.0]]), np.zeros(1)), (-1,)), Node("r1", ReLU(), (0,)),
                         Node("fc2", Affine(np.array([[1.0]]), np.array([-0.5])), (1,)), Node("r2", ReLU(), (2,)),
                         Node("out", Affine(np.array([[1.0]]), np.zeros(1)), (3,))])
    chain = AffineReluChain.from_network(net)
    phases = {1: np.array([[-1], [-1], [0]], np.int8), 3: np.array([[1], [0], [1]], np.int8)}
    res = deeppoly_boxes(chain, np.full((3, 1), -1.0), np.full((3, 1), 2.0), splits=ReluSplits(phases))
    assert res.infeasible.tolist() == [True, False, False]


def test_queued_subproblems_are_packed_and_restore_their_warm_start():
    """A queued sub-problem keeps float32 bounds enclosing its float64 ones (signs kept), and its
    children's warm start (slopes of its rows, multipliers of its splits) comes back exactly."""
    from types import SimpleNamespace

    from absint.bab.search import _Sub, _warm_start_of
    from absint.fp import outward_float32

    rng = np.random.default_rng(0)
    lo = np.concatenate([rng.normal(size=200) * 10.0 ** rng.integers(-40, 5, 200), [0.0, -1e-300, 1e-300, -np.inf]])
    hi = lo + np.abs(rng.normal(size=lo.size)) * 10.0 ** rng.integers(-40, 5, lo.size)
    lo32, hi32 = outward_float32(lo, hi)
    assert lo32.dtype == np.float32 and np.all(lo32 <= lo) and np.all(hi32 >= hi)
    assert np.all((lo32 < 0) == (lo < 0)) and np.all((hi32 > 0) == (hi > 0))
    R, n = 5, 12
    phases = {1: np.zeros(n, np.int8), 3: np.zeros(n, np.int8)}
    phases[1][[2, 7]] = [1, -1]
    phases[3][4] = 1
    sub, row = np.array([0, 1, 1, 1, 2]), np.array([3, 0, 2, 4, 1])  # sub-problem 1 has pairs on rows 0, 2, 4
    alpha = {j: rng.random((5, n)) for j in phases}
    beta = {j: rng.random((5, n)) * (phases[j] != 0) for j in phases}
    bound = (None, None, SimpleNamespace(alpha=alpha, beta=beta), sub, row, None)
    rows, a32, b32 = _warm_start_of(bound, list(phases), 1, phases)
    s = _Sub({}, phases, np.ones(1, bool), rows, a32, b32, (1, 0), 1, np.zeros(R))
    assert rows.tolist() == [0, 2, 4] and b32[1].shape == (3, 2) and b32[3].shape == (3, 1)
    for j in phases:
        a, b = s.warm_start(j, R)
        np.testing.assert_array_equal(a[[0, 2, 4]], alpha[j][1:4].astype(np.float32))
        np.testing.assert_array_equal(b[[0, 2, 4]], beta[j][1:4].astype(np.float32))
        assert not a[[1, 3]].any() and not b[[1, 3]].any()


def test_splits_by_layer_count_every_split(monkeypatch):
    """A finished search bounded the root and two children per split: sub-problems = 1 + 2 * splits,
    counted per hidden ReLU layer (forced into the second one here)."""
    import absint.bab.search as search

    net, lo, hi, m = _net_and_min(4)
    A, b = np.ones((1, 1)), np.array([m - 0.002])
    chain = AffineReluChain.from_network(spec_network(net, A, b))
    choose, second = search.choose_splits, search._relu_indices(chain)[1]
    first_layer = []

    def second_layer_when_free(pp, opt, sub, *args):
        choices, out = choose(pp, opt, sub, *args), {}
        for b, c in choices.items():
            free = (pp.unstable[second] & (pp.sign[second] == 0))[sub == b].any(axis=0)
            out[b] = (second, int(np.argmax(free))) if free.any() else c
            first_layer.extend([b] if out[b][0] != second else [])
        return out

    out = relu_bab(chain, RowSets(A, b, np.zeros(1, bool), (slice(0, 1),)), lo, hi,
                   check_counterexample=lambda x: None, check_time=lambda: None, options=BabOptions(batch=8))
    assert out.result == "holds" and out.rounds >= 2
    assert out.subproblems == 1 + 2 * sum(out.splits_by_layer) and len(out.splits_by_layer) == 2
    assert out.stats()["splits_by_layer"] == out.splits_by_layer
    monkeypatch.setattr(search, "choose_splits", second_layer_when_free)
    forced = relu_bab(chain, RowSets(A, b, np.zeros(1, bool), (slice(0, 1),)), lo, hi,
                      check_counterexample=lambda x: None, check_time=lambda: None, options=BabOptions(batch=8))
    assert forced.splits_by_layer[1] >= 1 and forced.splits_by_layer[0] == len(first_layer)


def _small_conv_net(rng):
    conv = Conv2d(rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3), stride=(2, 2))
    return Network((2, 6, 6), [Node("c1", conv, (-1,)),
                               Node("r1", ReLU(), (0,)),
                               Node("flat", Reshape((12,)), (1,)),
                               Node("fc", Affine(rng.normal(size=(2, 12)), rng.normal(size=2)), (2,))])


def test_options_for_network_on_convolutions_use_more_candidates_and_fewer_extras():
    from absint.bab.search import CONV_CANDIDATES

    rng = np.random.default_rng(0)
    conv, dense = _small_conv_net(rng), random_chain(rng, (4, 6, 2))
    assert CONV_CANDIDATES != BabOptions().branching_candidates
    assert BabOptions.for_network(conv).branching_candidates == CONV_CANDIDATES
    assert BabOptions.for_network(dense).branching_candidates == BabOptions().branching_candidates == 3
    assert not BabOptions.for_network(conv).refine_intermediate and BabOptions.for_network(dense).refine_intermediate
    assert not BabOptions.for_network(conv).cold_retry and BabOptions.for_network(dense).cold_retry
    assert BabOptions.for_network(conv).empty_iterations == 0 and BabOptions.for_network(dense).empty_iterations > 0
    assert BabOptions.for_network(conv).lp_polish == 0 and BabOptions.for_network(dense).lp_polish > 0
    assert BabOptions.for_network(conv).milp_polish == 0 and BabOptions.for_network(dense).milp_polish > 0
    assert BabOptions.for_network(conv, branching_candidates=2, batch=7, refine_intermediate=True, cold_retry=True,
                                  empty_iterations=BabOptions().empty_iterations,
                                  lp_polish=BabOptions().lp_polish) == \
        BabOptions(branching_candidates=2, batch=7)


def test_verify_gives_branch_and_bound_the_options_for_its_network(monkeypatch):
    """verify(method="bab") searches a conv net with ``CONV_CANDIDATES`` candidates."""
    import importlib

    from absint.bab.search import CONV_CANDIDATES

    verify_module = importlib.import_module("absint.verify")  # the package's ``verify`` is the function
    seen = []

    def recording(*args, options, **kwargs):
        seen.append(options)
        return relu_bab(*args, options=options, **kwargs)

    monkeypatch.setattr(verify_module, "relu_bab", recording)
    net = _small_conv_net(np.random.default_rng(1))
    x = np.zeros(net.input_size)
    y = net.forward(x.reshape((1,) + net.input_shape))[0]
    hi_class = int(np.argmax(y))
    decl = "".join(f"(declare-const X_{i} Real)\n" for i in range(x.size)) \
        + "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
    box = "".join(f"(assert (>= X_{i} -0.3))\n(assert (<= X_{i} 0.3))\n" for i in range(x.size))
    spec = parse_vnnlib(decl + box + f"(assert (>= Y_{1 - hi_class} Y_{hi_class}))\n", net)
    absint.verify(net, spec, timeout=30, method="bab", samples=0, pgd_steps=0)
    assert seen and all(o.branching_candidates == CONV_CANDIDATES != BabOptions().branching_candidates
                        for o in seen), seen


def test_queue_over_the_memory_budget_is_unknown():
    rng = np.random.default_rng(3)
    net = random_chain(rng, (20, 40, 40, 40, 2))
    A, b = np.array([[1.0, -1.0]]), np.array([-50.0])   # y0 - y1 >= -50 ... unsafe when y0 - y1 <= -50
    chain = AffineReluChain.from_network(spec_network(net, A, b))
    rows = RowSets(A, b, np.zeros(1, bool), (slice(0, 1),))
    out = relu_bab(chain, rows, -np.ones(20) * 3, np.ones(20) * 3, check_counterexample=lambda x: None,
                   check_time=lambda: None, options=BabOptions(memory_bytes=1))
    assert out.result == "unknown" and "memory" in out.reason
    assert out.queue_bytes_peak > 1 and out.stats()["queue_bytes_peak"] == out.queue_bytes_peak


def test_deadline_keeps_statistics():
    rng = np.random.default_rng(4)
    net = random_chain(rng, (30, 60, 60, 60, 2))
    A, b = np.array([[1.0, -1.0]]), np.array([-1.0])
    chain = AffineReluChain.from_network(spec_network(net, A, b))
    rows = RowSets(A, b, np.zeros(1, bool), (slice(0, 1),))
    out = BabOutcome()

    class Stop(Exception):
        pass

    def check_time():  # the deadline comes in the search's third round (not by the clock: the machine is shared)
        if out.rounds >= 2:
            raise Stop

    with pytest.raises(Stop):
        relu_bab(chain, rows, -np.ones(30) * 4, np.ones(30) * 4, check_counterexample=lambda x: None,
                 check_time=check_time, out=out)
    assert out.subproblems > 1 and out.time_bounding > 0 and out.rounds == 2


def test_blas_runs_on_one_thread_during_the_search_and_is_restored():
    # idle BLAS threads spin after each product and slow the numba kernels' threads (relu_bab's docstring)
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    rng = np.random.default_rng(5)
    net = random_chain(rng, (6, 12, 12, 2))
    A, b = np.array([[1.0, -1.0]]), np.array([-100.0])
    chain = AffineReluChain.from_network(spec_network(net, A, b))
    rows = RowSets(A, b, np.zeros(1, bool), (slice(0, 1),))
    seen = []
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        relu_bab(chain, rows, -np.ones(6), np.ones(6), check_counterexample=lambda x: None,
                 check_time=lambda: seen.append(blas_threads()))
        assert blas_threads() == before
    assert seen and all(t == [1] * len(before) for t in seen)


def _mnist_cases():
    inst = benchmark_instances("mnistfc")
    if not inst:
        return [pytest.param(None, marks=pytest.mark.skip(reason=NO_BENCHMARKS))]
    picked = [i for i in inst if "256x2" in i[1].name][::3] + [i for i in inst if "256x4" in i[1].name][1:2]
    return [pytest.param(i, id=f"{i[1].stem[10:]}-{i[2].stem}") for i in picked]


@pytest.mark.parametrize("instance", _mnist_cases())
def test_mnistfc_never_wrong(instance):
    """A 'violated' is confirmed by onnxruntime; a 'holds' survives a stronger independent attack."""
    _, onnx_path, vnnlib_path, _ = instance
    net = absint.load_onnx(onnx_path)
    spec = absint.load_vnnlib(vnnlib_path, net)
    v = absint.verify(net, spec, timeout=15, seed=3)
    assert v.status in ("holds", "violated", "timeout", "unknown")
    if v.status == "violated":
        x, y = v.counterexample
        assert spec.is_counterexample(x.ravel(), y)
        assert_onnxruntime_confirms(onnx_path, spec, x)
    if v.status == "holds":
        for region in spec.regions:
            assert falsify(net, region, samples=2000, pgd_steps=60, rng=11) is None


def test_verify_honours_its_timeout_in_branch_and_bound():
    """A property branch and bound cannot finish in 1 s (a wide random net, a threshold near its minimum):
    the verdict comes back as timeout (or decided), within the timeout plus one Adam iteration's slack."""
    rng = np.random.default_rng(11)
    net = random_chain(rng, (40, 80, 80, 80, 1))
    lo, hi = -np.ones(40), np.ones(40)
    spec = parse_vnnlib(_prop(lo, hi, "(assert (<= Y_0 -3.0))\n"), net)
    t0 = time.perf_counter()
    v = absint.verify(net, spec, timeout=1.0, method="bab", samples=8, pgd_steps=2)
    elapsed = time.perf_counter() - t0
    assert v.status in ("timeout", "holds", "violated")
    assert elapsed < 1.0 * 1.1 + 0.5, elapsed


def test_the_search_caps_its_milps_by_its_deadline(monkeypatch):
    """``check_time`` cannot interrupt a running MILP, so ``relu_bab`` caps the solves by its ``deadline``: the
    sub-problem MILPs get no ``stop`` after it (each solve's limit is ``stop`` - now), and the root's MILP
    bounds no more seconds than are left, though ``milp_seconds`` and ``milp_polish_seconds`` allow more."""
    import time

    from absint.bab import search as search_module

    monkeypatch.setattr(search_module, "STALL_ROUNDS", 0)
    stops, seconds = [], []
    real_minima, real_intermediate = search_module.output_minima, search_module.milp_intermediate

    def minima(*args):
        stops.append(args[-1])
        return real_minima(*args)

    def intermediate(chain, layers, lo, hi, n_layers, s, **kwargs):
        seconds.append(s)
        return real_intermediate(chain, layers, lo, hi, n_layers, s, **kwargs)

    monkeypatch.setattr(search_module, "output_minima", minima)
    monkeypatch.setattr(search_module, "milp_intermediate", intermediate)
    polish = BabOptions(lr_alpha=0.0, lr_beta=0.0, iterations=1, milp_polish=2, milp_polish_seconds=1000.0,
                        empty_iterations=0, lp_polish=0)
    root = BabOptions(milp_layers=1, milp_after=0.0, milp_seconds=1000.0)
    polished = rooted = 0
    for seed in range(8):
        net, lo, hi, m = _net_and_min(seed)
        A, b = np.ones((1, 1)), np.array([m - 0.02])
        chain = AffineReluChain.from_network(spec_network(net, A, b))
        for options in (polish, root):
            stops.clear()
            seconds.clear()
            deadline = time.perf_counter() + 60.0
            relu_bab(chain, RowSets(A, b, np.zeros(1, bool), (slice(0, 1),)), lo, hi,
                     check_counterexample=lambda x: None, check_time=lambda: None, options=options, deadline=deadline)
            assert all(s <= deadline for s in stops), (stops, deadline)
            assert all(s <= 60.0 for s in seconds), seconds
            polished += bool(stops)
            rooted += bool(seconds)
    assert polished > 0 and rooted > 0, (polished, rooted)
