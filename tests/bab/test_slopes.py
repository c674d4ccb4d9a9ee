"""Optimised DeepPoly (absint.bab.slopes): analytic gradients, soundness against exact minima (phase
enumeration + linprog) and sampling, never looser than DeepPoly."""

from __future__ import annotations

import numpy as np
import pytest

import absint
from absint.bab.slopes import (LR_ALPHA, LR_BETA, PairProblem, optimise_intermediate, optimise_pairs,
                               optimise_pairs_with_cold_retry, pair_bounds, prove_empty)
from absint.domains.deeppoly_batch import AffineReluChain, ReluSplits, deeppoly_boxes
from absint.network import Affine, Network, Node, ReLU
from absint.verify import _stack, spec_network
from tests._bench import NO_BENCHMARKS, benchmark_instances
from tests.domains.test_deeppoly_batch import random_chain
from tests.reference.relu_lp import exact_minimum


def _relus(chain):
    return [j for j, l in enumerate(chain.layers) if isinstance(l, ReLU)]


def phases_of(chain, fixed: dict) -> dict:
    """One sub-problem's phase arrays (1, n) per ReLU from ``fixed`` {(j, i): ±1}."""
    phases = {j: np.zeros((1, chain.layers[j - 1].weight.shape[0]), np.int8) for j in _relus(chain)}
    for (j, i), s in fixed.items():
        phases[j][0, i] = s
    return phases


def sub_problem(chain, lo, hi, fixed: dict, rows):
    """One sub-problem (ReLU phases ``fixed`` {(j, i): ±1}) with a pair per output row in ``rows``."""
    phases = phases_of(chain, fixed)
    res = deeppoly_boxes(chain, lo[None], hi[None], splits=ReluSplits(phases))
    rows = np.asarray(rows)
    pp = PairProblem.gather(chain, res.layers, phases, lo[None], hi[None], np.zeros(len(rows), int), rows)
    return res, pp


def random_setup(seed, sizes=(3, 5, 4, 2), n_fixed=2):
    rng = np.random.default_rng(seed)
    chain = AffineReluChain.from_network(random_chain(rng, sizes))
    lo = rng.normal(size=sizes[0]) - 1.0
    hi = lo + 2.0 * rng.random(sizes[0]) + 0.5
    neurons = [(j, i) for j in _relus(chain) for i in range(chain.layers[j - 1].weight.shape[0])]
    pick = rng.choice(len(neurons), size=n_fixed, replace=False)
    fixed = {neurons[k]: int(rng.choice([-1, 1])) for k in pick}
    return rng, chain, lo, hi, fixed


def random_params(rng, pp, beta_scale=1.0):
    alpha = {j: rng.random(a.shape) for j, a in pp.default_alpha().items()}
    beta = {j: beta_scale * rng.random(s.shape) * (s != 0) for j, s in pp.sign.items()}
    return alpha, beta


@pytest.mark.parametrize("seed", range(4))
def test_gradients_match_finite_differences(seed):
    rng, chain, lo, hi, fixed = random_setup(seed, sizes=(4, 8, 8, 3), n_fixed=3)
    _, pp = sub_problem(chain, lo, hi, fixed, [0, 1, 2])
    alpha, beta = random_params(rng, pp)
    ev = pair_bounds(pp, alpha, beta, sound=False, grad=True)
    h = 1e-7
    checked = 0
    for kind, params, grads in (("alpha", alpha, ev.grad_alpha), ("beta", beta, ev.grad_beta)):
        for j in params:
            for p in range(pp.n_pairs):
                for i in range(params[j].shape[1]):
                    if kind == "beta" and pp.sign[j][p, i] == 0:
                        continue
                    plus = {k: v.copy() for k, v in params.items()}
                    plus[j][p, i] += h
                    minus = {k: v.copy() for k, v in params.items()}
                    minus[j][p, i] -= h
                    args = (plus, beta) if kind == "alpha" else (alpha, plus)
                    margs = (minus, beta) if kind == "alpha" else (alpha, minus)
                    fd = (pair_bounds(pp, *args, sound=False).lower[p] - pair_bounds(pp, *margs, sound=False).lower[p]) / (2 * h)
                    assert fd == pytest.approx(grads[j][p, i], abs=1e-5), (kind, j, p, i)
                    checked += 1
    assert checked > 20


@pytest.mark.parametrize("seed", range(3))
def test_bound_is_the_linearised_network_at_its_minimiser(seed):
    """bound = ẑ_L[r] - Σ β s ẑ along the forward pass of the chosen relaxation planes from x*."""
    rng, chain, lo, hi, fixed = random_setup(seed, sizes=(4, 8, 8, 3), n_fixed=3)
    _, pp = sub_problem(chain, lo, hi, fixed, [0, 1, 2])
    alpha, beta = random_params(rng, pp)
    ev = pair_bounds(pp, alpha, beta, sound=False)
    h, penalty = ev.x_star, np.zeros(pp.n_pairs)
    for j, layer in enumerate(chain.layers):
        if isinstance(layer, Affine):
            h = h @ layer.weight.T + layer.bias
            continue
        z, pos, unst = h, ev.coef[j] >= 0, pp.unstable[j]
        penalty += np.sum(beta[j] * pp.sign[j] * z, axis=1)
        h = np.where(unst, np.where(pos, alpha[j] * z, pp.su[j] * z + pp.bu[j]), pp.fixed[j] * z)
    np.testing.assert_allclose(ev.lower, h[np.arange(pp.n_pairs), pp.rows] - penalty, atol=1e-10)


@pytest.mark.parametrize("seed", range(12))
def test_never_tighter_than_the_exact_minimum(seed):
    """Random and optimised (α, β) on a sub-problem never bound above min over the sub-problem's inputs
    (phase enumeration + linprog), and optimisation is never looser than DeepPoly's slopes."""
    rng, chain, lo, hi, fixed = random_setup(seed)
    res, pp = sub_problem(chain, lo, hi, fixed, [0, 1])
    exact = [exact_minimum(chain.layers, lo, hi, np.eye(2)[r], fixed)[0] for r in (0, 1)]
    for _ in range(5):
        alpha, beta = random_params(rng, pp, beta_scale=3.0)
        got = pair_bounds(pp, alpha, beta).lower
        assert np.all(got <= np.array(exact) + 1e-9), (got, exact)
    opt = optimise_pairs(pp, iterations=30)
    assert np.all(opt.lower <= np.array(exact) + 1e-9)
    if not res.infeasible[0]:
        start = pair_bounds(pp, pp.default_alpha(), pp.zero_beta()).lower
        assert np.all(opt.lower >= start - 1e-9 * np.maximum(1.0, np.abs(start)))


@pytest.mark.parametrize("seed", range(6))
def test_warm_started_optimisation_keeps_its_start_and_reports_its_parameters(seed):
    """From any warm start (α, β), the float32 iterates never leave a pair below its start's sound bound,
    and the returned bound is the sound float64 bound at the returned parameters."""
    rng, chain, lo, hi, fixed = random_setup(seed, sizes=(4, 10, 10, 3), n_fixed=3)
    _, pp = sub_problem(chain, lo, hi, fixed, [0, 1, 2])
    alpha, beta = random_params(rng, pp, beta_scale=2.0)
    start = pair_bounds(pp, alpha, beta).lower
    for lr in (1e-9, 0.01, 0.5):  # tiny: iterates equal the start in float32; large: worse than it
        opt = optimise_pairs(pp, alpha, beta, iterations=6, lr_alpha=lr, lr_beta=lr)
        assert np.all(opt.lower >= start), (opt.lower, start)
        again = pair_bounds(pp, opt.alpha, opt.beta).lower
        np.testing.assert_array_equal(opt.lower, again)
        assert all(a.dtype == np.float64 for a in opt.alpha.values())


@pytest.mark.parametrize("seed", range(4))
def test_pairs_leaving_the_iterates_do_not_change_the_others(seed):
    """Pairs that pass ``stop_at`` leave the batch of iterates; every other pair follows the same path as
    when optimised alone, and a pair that passed ends above ``stop_at`` and at least where it alone stops."""
    rng, chain, lo, hi, fixed = random_setup(seed, sizes=(4, 12, 12, 8), n_fixed=3)
    _, pp = sub_problem(chain, lo, hi, fixed, np.arange(8))
    alpha, beta = random_params(rng, pp)
    kw = dict(iterations=25, lr_alpha=0.05, lr_beta=0.1, dtype=np.float64)
    # half of the pairs pass stop_at during the ascent, half never do
    stop_at = float(np.median(optimise_pairs(pp, alpha, beta, stop_at=np.inf, **kw).lower))
    kw["stop_at"] = stop_at
    batch = optimise_pairs(pp, alpha, beta, **kw)
    alone = np.array([optimise_pairs(pp.take(np.array([p])), {j: a[[p]] for j, a in alpha.items()},
                                     {j: b[[p]] for j, b in beta.items()}, **kw).lower[0] for p in range(pp.n_pairs)])
    passed = alone > stop_at
    assert 0 < passed.sum() < pp.n_pairs, (alone, stop_at)
    np.testing.assert_allclose(batch.lower[~passed], alone[~passed], rtol=1e-9, atol=1e-12)
    assert np.all(batch.lower[passed] >= alone[passed] - 1e-9)
    np.testing.assert_array_equal(batch.lower, pair_bounds(pp, batch.alpha, batch.beta).lower)


@pytest.mark.parametrize("seed", range(6))
def test_cold_retry_keeps_the_better_of_the_warm_and_the_cold_start(seed):
    """``optimise_pairs_with_cold_retry``: pairs that no warm iterate raised and that end at or below their
    floor also get a run from DeepPoly's slopes with the root's steps and keep the better one, with
    parameters that reproduce that sound bound, never above the exact minimum; the others keep the warm run."""
    rng, chain, lo, hi, fixed = random_setup(seed, sizes=(3, 5, 4, 3), n_fixed=2)
    _, pp = sub_problem(chain, lo, hi, fixed, [0, 1, 2])
    alpha, beta = random_params(rng, pp, beta_scale=2.0)
    kw = dict(dtype=np.float64)
    cold = optimise_pairs(pp, iterations=12, lr_alpha=LR_ALPHA, lr_beta=LR_BETA, **kw)
    exact = np.array([exact_minimum(chain.layers, lo, hi, np.eye(3)[r], fixed)[0] for r in range(3)])
    floor = np.array([np.inf, np.inf, -np.inf])  # the first two pairs may retry
    for steps in ((0.0, 0.0), (0.01, 0.2)):  # a stuck warm start (no step moves it) and a moving one
        warm = optimise_pairs(pp, alpha, beta, iterations=12, lr_alpha=steps[0], lr_beta=steps[1], **kw)
        none = optimise_pairs_with_cold_retry(pp, alpha, beta, np.full(3, -np.inf), 12, *steps, **kw)
        np.testing.assert_array_equal(none.lower, warm.lower)
        got = optimise_pairs_with_cold_retry(pp, alpha, beta, floor, 12, *steps, **kw)
        retry = (floor >= warm.lower) & ~warm.improved
        if steps == (0.0, 0.0):
            assert not warm.improved.any() and retry.tolist() == [True, True, False]
        want = np.where(retry, np.maximum(warm.lower, cold.lower), warm.lower)
        np.testing.assert_allclose(got.lower, want, rtol=1e-12, atol=1e-15)  # the retry runs on fewer pairs
        again = pair_bounds(pp, got.alpha, got.beta)
        np.testing.assert_array_equal(got.lower, again.lower)
        np.testing.assert_array_equal(got.at_best.lower, got.lower)
        np.testing.assert_array_equal(got.at_best.x_star, again.x_star)
        assert np.all(got.lower <= exact + 1e-9), (got.lower, exact)


def test_prove_empty_only_where_no_input_meets_the_splits():
    """``prove_empty`` never calls a sub-problem empty that has an input (phase enumeration + linprog), and
    proves most of the empty ones that DeepPoly's per-neuron bounds leave open: with six of nine ReLUs
    split at random, the splits often contradict each other."""
    open_empty = proved = 0
    for seed in range(40):
        _, chain, lo, hi, fixed = random_setup(seed, n_fixed=6)
        phases = phases_of(chain, fixed)
        res = deeppoly_boxes(chain, lo[None], hi[None], splits=ReluSplits(phases))
        empty = np.isinf(exact_minimum(chain.layers, lo, hi, np.eye(2)[0], fixed)[0])
        got = prove_empty(chain, res.layers, phases, lo[None], hi[None], iterations=200)
        assert got.shape == (1,) and (empty or not got[0]), (seed, fixed)
        if empty and not res.infeasible[0]:
            open_empty += 1
            proved += int(got[0])
    assert open_empty >= 5 and proved >= 0.8 * open_empty, (open_empty, proved)


def test_prove_empty_on_contradicting_first_layer_splits():
    """z1 = x active and z2 = x + c inactive on x in [-1, 1]: empty for c = 0.5 (x >= 0 and x <= -0.5), which
    neither neuron's bounds show alone; not for c = -0.5 (0 <= x <= 0.5)."""
    for c, expected in ((0.5, True), (-0.5, False)):
        net = Network((1,), [Node("fc1", Affine(np.array([[1.0], [1.0]]), np.array([0.0, c])), (-1,)),
                             Node("r1", ReLU(), (0,)),
                             Node("fc2", Affine(np.array([[1.0, -1.0], [0.5, 1.0]]), np.array([0.1, -0.2])), (1,)),
                             Node("r2", ReLU(), (2,)), Node("out", Affine(np.array([[1.0, 1.0]]), np.zeros(1)), (3,))])
        chain = AffineReluChain.from_network(net)
        phases = {1: np.array([[1, -1]], np.int8), 3: np.zeros((1, 2), np.int8)}
        lo, hi = np.array([[-1.0]]), np.array([[1.0]])
        res = deeppoly_boxes(chain, lo, hi, splits=ReluSplits(phases))
        assert not res.infeasible[0]
        assert prove_empty(chain, res.layers, phases, lo, hi).tolist() == [expected]


def test_float32_iterates_track_the_float64_bound():
    """The iterate precision changes the unrounded bound by float32 rounding only; sound bounds are float64."""
    rng, chain, lo, hi, fixed = random_setup(3, sizes=(5, 16, 16, 4), n_fixed=2)
    _, pp = sub_problem(chain, lo, hi, fixed, [0, 1, 2, 3])
    alpha, beta = random_params(rng, pp)
    p32 = pp.astype(np.float32)
    assert p32.lower.dtype == np.float32 and p32.unstable[1].dtype == bool
    b64 = pair_bounds(pp, alpha, beta, sound=False, grad=True)
    b32 = pair_bounds(p32, alpha, beta, sound=False, grad=True)
    scale = 1.0 + np.abs(b64.lower)
    assert np.all(np.abs(b32.lower - b64.lower) <= 1e-4 * scale)
    for j in b64.grad_alpha:
        assert np.allclose(b32.grad_alpha[j], b64.grad_alpha[j], rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="float64"):
        pair_bounds(p32, alpha, beta, sound=True)


def test_optimisation_tightens_on_average():
    """Over random sub-problems, optimised bounds close part of the gap DeepPoly leaves to the exact minimum."""
    gained, gaps = 0.0, 0.0
    for seed in range(12):
        _, chain, lo, hi, fixed = random_setup(seed, n_fixed=1)
        res, pp = sub_problem(chain, lo, hi, fixed, [0, 1])
        if res.infeasible[0]:
            continue
        exact = np.array([exact_minimum(chain.layers, lo, hi, np.eye(2)[r], fixed)[0] for r in (0, 1)])
        start = pair_bounds(pp, pp.default_alpha(), pp.zero_beta()).lower
        opt = optimise_pairs(pp, iterations=40)
        gained += float(np.sum(opt.lower - start))
        gaps += float(np.sum(exact - start))
    assert gaps > 0 and gained > 0.2 * gaps, (gained, gaps)


def test_default_slopes_reproduce_deeppoly():
    """With DeepPoly's slopes and no multipliers, the pair bound is DeepPoly's back-substituted bound
    (``deeppoly_boxes`` keeps the larger of it and the interval bound)."""
    rng = np.random.default_rng(5)
    chain = AffineReluChain.from_network(random_chain(rng, (6, 20, 20, 20, 4)))
    lo = rng.normal(size=6) - 0.5
    hi = lo + 1.0
    res, pp = sub_problem(chain, lo, hi, {}, [0, 1, 2, 3])
    got = pair_bounds(pp, pp.default_alpha(), pp.zero_beta()).lower
    dp = res.lower[0]
    assert np.all(got <= dp + 1e-12 * np.maximum(1, np.abs(dp)))
    assert np.allclose(got, dp, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not benchmark_instances("mnistfc"), reason=NO_BENCHMARKS)
def test_sampled_points_respect_optimised_bounds_on_mnistfc():
    """mnistfc 256x2 with a real property: random points, box corners near the image and the relaxation
    minimisers x* (gradient-guided) never go below the bound of the sub-problem they fall in."""
    _, onnx, vnnlib, _ = next(i for i in benchmark_instances("mnistfc") if "256x2" in i[1].name and "0.05" in i[2].name)
    net = absint.load_onnx(onnx)
    region = absint.load_vnnlib(vnnlib, net).regions[0]
    A, b, _, _ = _stack(region.unsafe)
    chain = AffineReluChain.from_network(spec_network(net, A, b))
    lo, hi = region.lower.ravel(), region.upper.ravel()
    res, pp = sub_problem(chain, lo, hi, {}, np.arange(A.shape[0]))
    rng = np.random.default_rng(0)
    opt = optimise_pairs(pp, iterations=20)
    bounds = [opt.lower, pair_bounds(pp, *random_params(rng, pp)).lower]
    x = np.vstack([lo + rng.random((500, lo.size)) * (hi - lo),
                   np.where(rng.random((500, lo.size)) < 0.5, lo, hi), opt.at_best.x_star])
    margins = net.forward(x.reshape((-1,) + net.input_shape)) @ A.T - b
    for bound in bounds:
        assert np.all(margins >= bound[None, :] - 1e-9)
    start = pair_bounds(pp, pp.default_alpha(), pp.zero_beta()).lower
    assert np.all(opt.lower >= start - 1e-9) and np.any(opt.lower > start + 1e-3)


@pytest.mark.parametrize("seed", range(3))
def test_intermediate_bounds_after_a_split_layer(seed):
    """``optimise_intermediate(after=...)`` leaves a sub-problem's layers up to after[b] as given, only
    tightens the later ones, matches the unrestricted call where after[b] = -1, and its bounds hold for
    sampled points (uniform and box corners) that obey the sub-problem's splits."""
    rng = np.random.default_rng(seed)
    chain = AffineReluChain.from_network(random_chain(rng, (4, 10, 10, 10, 2)))
    relus = _relus(chain)  # chain: Affine 0, ReLU 1, Affine 2, ReLU 3, Affine 4, ReLU 5, Affine 6
    lo = rng.normal(size=4) - 1.0
    hi = lo + 2.0
    x0, z0 = lo + rng.random(4) * (hi - lo), []  # splits on the phases of a point of the box: feasible
    for layer in chain.layers:
        x0 = x0 @ layer.weight.T + layer.bias if isinstance(layer, Affine) else np.maximum(x0, 0.0)
        z0.append(x0)
    phases = {j: np.zeros((2, chain.layers[j - 1].weight.shape[0]), np.int8) for j in relus}
    i1, i3 = rng.integers(10, size=2)
    phases[1][:, i1] = 1 if z0[0][i1] >= 0 else -1
    phases[3][1, i3] = 1 if z0[2][i3] >= 0 else -1
    L, H = np.repeat(lo[None], 2, axis=0), np.repeat(hi[None], 2, axis=0)
    res = deeppoly_boxes(chain, L, H, splits=ReluSplits(phases))
    whole, _ = optimise_intermediate(chain, res.layers, phases, L, H, iterations=10)
    after = np.array([-1, 2])
    part, _ = optimise_intermediate(chain, res.layers, phases, L, H, iterations=10, after=after)
    for k, ((l0, h0), (l1, h1), (lw, hw)) in enumerate(zip(res.layers, part, whole)):
        np.testing.assert_allclose(l1[0], lw[0], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(h1[0], hw[0], rtol=1e-9, atol=1e-12)
        assert np.all(l1 >= l0) and np.all(h1 <= h0)
        if k <= after[1]:
            np.testing.assert_array_equal(l1[1], l0[1])
            np.testing.assert_array_equal(h1[1], h0[1])
    assert any(np.any(l1[1] > l0[1]) or np.any(h1[1] < h0[1]) for (l0, h0), (l1, h1) in zip(res.layers, part))
    x = np.vstack([lo + rng.random((20000, 4)) * (hi - lo), np.where(rng.random((256, 4)) < 0.5, lo, hi)])
    values, z = [], x
    for layer in chain.layers:
        z = z @ layer.weight.T + layer.bias if isinstance(layer, Affine) else np.maximum(z, 0.0)
        values.append(z)
    ok = np.ones(len(x), bool)
    for j in relus:
        s = phases[j][1]
        ok &= np.all((values[j - 1] * s >= 0) | (s == 0), axis=1)
    assert ok.sum() > 100
    for k, (l1, h1) in enumerate(part):
        v = values[k][ok]
        assert np.all(v >= l1[1] - 1e-9) and np.all(v <= h1[1] + 1e-9)
