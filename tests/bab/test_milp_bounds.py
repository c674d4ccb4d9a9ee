"""MILP intermediate bounds (absint.bab.milp_bounds): equal to the exact range of each refined neuron (phase
enumeration + linprog) up to the solver's margin, never looser than the given bounds, respected by
sampled and gradient-guided points on a real mnistfc network, and the search that uses them still
agrees with enumeration."""

from __future__ import annotations

import time

import numpy as np
import pytest

import absint
from absint.bab.highs_solve import highs_minimise
from absint.bab.milp_bounds import milp_intermediate
from absint.bab.search import BabOptions, relu_bab
from absint.domains.deeppoly_batch import AffineReluChain, ReluSplits, deeppoly_boxes
from absint.network import Affine, ReLU
from absint.verify import _stack, spec_network
from tests._bench import NO_BENCHMARKS, benchmark_instances
from tests.bab.test_search import _net_and_min, search_where_it_holds
from tests.domains.test_deeppoly_batch import random_chain
from tests.reference.relu_lp import exact_minimum


def _root_layers(chain, lo, hi):
    phases = {j: np.zeros((1, chain.layers[j - 1].weight.shape[0]), np.int8)
              for j, layer in enumerate(chain.layers) if isinstance(layer, ReLU)}
    return deeppoly_boxes(chain, lo[None], hi[None], splits=ReluSplits(phases)).layers


def _hidden_affines(chain):
    return [k for k in range(len(chain.layers) - 1)
            if isinstance(chain.layers[k], Affine) and isinstance(chain.layers[k + 1], ReLU)]


@pytest.mark.parametrize("seed", range(6))
def test_bounds_are_the_exact_range_of_each_refined_neuron(seed):
    """Layers 2 and 3 of a random chain: every unstable neuron's refined bounds contain its exact range over
    the box and are within the margin of it (the encoding is exact), except the side not solved once the
    other proved the neuron stable; stable ones are untouched."""
    rng = np.random.default_rng(seed)
    chain = AffineReluChain.from_network(random_chain(rng, (3, 5, 4, 4, 1)))
    lo = rng.normal(size=3) - 1.0
    hi = lo + 2.0 * rng.random(3) + 1.0
    layers = _root_layers(chain, lo, hi)
    tight, empty = milp_intermediate(chain, layers, lo, hi, n_layers=2, seconds=30.0, threads=2, binaries=None)
    assert not empty
    refined = 0
    for top in _hidden_affines(chain)[1:3]:
        l, u = layers[top][0][0], layers[top][1][0]
        tl, tu = tight[top][0][0], tight[top][1][0]
        assert np.all(tl >= l) and np.all(tu <= u)
        for i in range(l.size):
            if not (l[i] < 0 < u[i]):
                assert tl[i] == l[i] and tu[i] == u[i]
                continue
            e = np.eye(l.size)[i]
            low, _ = exact_minimum(list(chain.layers[:top + 1]), lo, hi, e)
            high = -exact_minimum(list(chain.layers[:top + 1]), lo, hi, -e)[0]
            assert tl[i] <= low + 1e-12 and tu[i] >= high - 1e-12, (top, i, tl[i], low, tu[i], high)
            # a first solve that proves the neuron stable stops there (its side is only >= 0 or <= 0) and
            # skips the other side (neither enters the relaxation of a stable neuron)
            stable = tl[i] >= 0 or tu[i] <= 0
            assert tl[i] >= low - 1e-4 or stable, (top, i, tl[i], low, tu[i], high)
            assert tu[i] <= high + 1e-4 or stable, (top, i, tl[i], low, tu[i], high)
            refined += 1
    assert refined > 0


@pytest.mark.parametrize("seed", range(4))
def test_later_layers_get_the_time_left_unless_the_caller_is_done(seed):
    """With ``later``, the hidden layers after the ``n_layers`` refined ones, but the last, are refined too:
    each of their unstable neurons' bounds contains its exact range (phase enumeration + linprog) and is
    never looser than without ``later`` (the earlier layers' and the last one's are the same), and seed 0
    tightens one; when ``proved``, asked after the first refined layer, says the bounds are enough, the
    later layers keep the bounds they had without ``later``; when it never does, it is asked after each
    layer's first pass."""
    rng = np.random.default_rng(40 + seed)
    chain = AffineReluChain.from_network(random_chain(rng, (3, 5, 5, 5, 4, 1)))
    lo = rng.normal(size=3) - 1.0
    hi = lo + 2.0 * rng.random(3) + 1.0
    layers = _root_layers(chain, lo, hi)
    hidden = _hidden_affines(chain)
    first, _ = milp_intermediate(chain, layers, lo, hi, n_layers=1, seconds=60.0, threads=2, binaries=None)
    asked = []

    def answer(value):
        def proved(bounds):
            asked.append(len(bounds))
            return value
        return proved

    done, _ = milp_intermediate(chain, layers, lo, hi, n_layers=1, seconds=60.0, threads=2, binaries=None,
                                later=True, proved=answer(True))
    assert asked == [len(layers)]
    assert all(np.array_equal(a, c) and np.array_equal(b, d) for (a, b), (c, d) in zip(first, done))
    full, _ = milp_intermediate(chain, layers, lo, hi, n_layers=1, seconds=60.0, threads=2, binaries=None,
                                later=True, proved=answer(False))
    # once above, then after the first refined layer, and after each later one's LP and MILP passes
    assert asked == [len(layers)] * (2 + 2 * len(hidden[2:-1]))
    assert np.array_equal(full[hidden[1]][0], first[hidden[1]][0])
    assert np.array_equal(full[hidden[1]][1], first[hidden[1]][1])
    assert all(np.array_equal(a, c) for a, c in zip(first[hidden[-1]], full[hidden[-1]]))  # left to the search
    gained = 0.0
    for top in hidden[2:-1]:
        l, u = first[top][0][0], first[top][1][0]
        tl, tu = full[top][0][0], full[top][1][0]
        assert np.all(tl >= l) and np.all(tu <= u)
        gained += float(np.sum(tl - l) + np.sum(u - tu))
        for i in np.flatnonzero((l < 0) & (u > 0)):
            e = np.eye(l.size)[i]
            low, _ = exact_minimum(list(chain.layers[:top + 1]), lo, hi, e)
            high = -exact_minimum(list(chain.layers[:top + 1]), lo, hi, -e)[0]
            assert tl[i] <= low + 1e-12 and tu[i] >= high - 1e-12, (top, i, tl[i], low, tu[i], high)
    if seed == 0:
        assert gained > 1e-6  # the later layers were refined


def test_the_later_layers_get_their_lp_bounds_before_their_partial_milps(monkeypatch):
    """With ``later``, the first refined layer's solves end by 1 - ``LATER_SHARE`` of the time; each later
    layer but the last then gets its LP bounds (no binary), and then its partial MILPs, by the end."""
    from absint.bab import milp_bounds as mb

    rng = np.random.default_rng(40)
    chain = AffineReluChain.from_network(random_chain(rng, (3, 5, 5, 5, 4, 1)))
    lo = rng.normal(size=3) - 1.0
    hi = lo + 2.0 * rng.random(3) + 1.0
    hidden = _hidden_affines(chain)
    calls, tighten = [], mb._tighten_layer

    def record(chain, layers, lo, hi, top, unstable, pool, stop, binaries, check_time):
        calls.append((top, binaries, stop))
        return tighten(chain, layers, lo, hi, top, unstable, pool, stop, binaries, check_time)

    monkeypatch.setattr(mb, "_tighten_layer", record)
    start = time.perf_counter()
    milp_intermediate(chain, _root_layers(chain, lo, hi), lo, hi, n_layers=1, seconds=100.0, binaries=3, later=True)
    end = time.perf_counter()
    assert [(top, b) for top, b, _ in calls] == [(hidden[1], 3), (hidden[2], 0), (hidden[2], 3)]
    assert start + 100.0 * (1 - mb.LATER_SHARE) <= calls[0][2] <= end + 100.0 * (1 - mb.LATER_SHARE)
    assert all(start + 100.0 <= stop <= end + 100.0 for _, _, stop in calls[1:])


@pytest.mark.parametrize("seed", range(3))
def test_fewer_binaries_give_bounds_between_the_lp_and_the_exact_range(seed):
    """Third-layer neurons of a random chain with 0 (the triangle LP), 1, 2, 4 and all binaries (``binaries``):
    every bound contains the exact range, and more binaries never make its triangle taller (up to the margin); with
    ``iterations`` the later layers are re-optimised between the MILP layers and the bounds stay sound."""
    rng = np.random.default_rng(10 + seed)
    chain = AffineReluChain.from_network(random_chain(rng, (3, 5, 5, 4, 1)))
    lo = rng.normal(size=3) - 1.0
    hi = lo + 2.0 * rng.random(3) + 1.0
    layers = _root_layers(chain, lo, hi)
    top = _hidden_affines(chain)[2]
    unstable = np.flatnonzero((layers[top][0][0] < 0) & (layers[top][1][0] > 0))
    if not unstable.size:
        pytest.skip("no unstable third-layer neuron for this seed")
    exact = np.array([[exact_minimum(list(chain.layers[:top + 1]), lo, hi, s * np.eye(layers[top][0].shape[1])[i])[0]
                       for i in unstable] for s in (1.0, -1.0)])
    widths = []
    for k in (0, 1, 2, 4, None):
        tight, _ = milp_intermediate(chain, layers, lo, hi, n_layers=2, seconds=60.0, threads=2, binaries=k)
        tl, tu = tight[top][0][0][unstable], tight[top][1][0][unstable]
        assert np.all(tl <= exact[0] + 1e-12) and np.all(tu >= -exact[1] - 1e-12), k
        # triangle heights: a side left unsolved once the other proved the neuron stable does not count
        widths.append(np.maximum(-tl, 0) * np.maximum(tu, 0) / np.maximum(tu - tl, 1e-300))
    assert all(np.all(b <= a + 1e-6) for a, b in zip(widths, widths[1:]))
    assert widths[-1].sum() < widths[0].sum() - 1e-6  # the exact encoding beats the triangle somewhere
    tight, _ = milp_intermediate(chain, layers, lo, hi, n_layers=2, seconds=60.0, threads=2, binaries=1, iterations=10)
    tl, tu = tight[top][0][0][unstable], tight[top][1][0][unstable]
    assert np.all(tl <= exact[0] + 1e-12) and np.all(tu >= -exact[1] - 1e-12)


def test_the_binaries_kept_are_the_neurons_the_objective_depends_on():
    """z = 0.001 relu(x1 + x2) + 3 relu(x1) - 3 relu(x1) on [-1, 1]^2 is >= 0, but the triangle LP lets it
    reach -1.5; with two binaries they go to the two heavy neurons (not the light first one), which makes
    the bound exact."""
    from absint.bab.milp_bounds import _Model
    from absint.network import Network, Node

    W1 = np.array([[1.0, 1.0], [1.0, 0.0], [1.0, 0.0]])  # three first-layer neurons, all unstable on [-1, 1]^2
    W2 = np.array([[0.001, 3.0, -3.0], [1.0, 1.0, 1.0]])
    parts = [Affine(W1, np.zeros(3)), ReLU(), Affine(W2, np.zeros(2)), ReLU(), Affine(np.ones((1, 2)), np.zeros(1))]
    net = Network((2,), [Node(f"n{k}", layer, (k - 1,)) for k, layer in enumerate(parts)])
    chain = AffineReluChain.from_network(net)
    lo, hi = -np.ones(2), np.ones(2)
    layers = _root_layers(chain, lo, hi)
    model = _Model(chain, layers, lo, hi, top=2)
    assert model.n_binaries == 3
    first = model.first_binary[0]
    assert list(np.flatnonzero(model.integral_for(W2[0], 2))) == [first + 1, first + 2]
    lp, _ = milp_intermediate(chain, layers, lo, hi, n_layers=1, seconds=10.0, binaries=0)
    two, _ = milp_intermediate(chain, layers, lo, hi, n_layers=1, seconds=10.0, binaries=2)
    assert lp[2][0][0][0] < -1.0
    assert two[2][0][0][0] == pytest.approx(0.0, abs=1e-5)


def _heavy_and_light_net():
    """Second layer: neuron 2 feeds the output with weight 5, neuron 0 with 0.01, neuron 1 not at all; all
    three unstable on [-1, 1]^2 (their first-layer inputs are unstable too)."""
    from absint.network import Network, Node

    W1 = np.array([[1.0, 0.5], [1.0, -0.5], [0.5, 1.0]])
    W2 = np.array([[1.0, -1.0, 0.5], [0.5, 1.0, -1.0], [-1.0, 0.5, 1.0]])
    parts = [Affine(W1, np.zeros(3)), ReLU(), Affine(W2, np.full(3, -0.2)), ReLU(),
             Affine(np.array([[0.01, 0.0, 5.0]]), np.zeros(1))]
    return AffineReluChain.from_network(Network((2,), [Node(f"n{k}", layer, (k - 1,)) for k, layer in enumerate(parts)]))


def test_importance_follows_the_weights_to_the_outputs():
    """The score is the triangle height times |W| back-propagated from the outputs: the neuron with weight
    5 ranks first, the one with no path to the outputs scores 0, and a dead later ReLU blocks its path."""
    from absint.bab.milp_bounds import _importance

    chain = _heavy_and_light_net()
    lo, hi = -np.ones(2), np.ones(2)
    layers = _root_layers(chain, lo, hi)
    l, u = layers[2][0][0], layers[2][1][0]
    assert np.all((l < 0) & (u > 0))
    score = _importance(chain, layers, 2, np.arange(3))
    height = -l * u / (u - l)
    assert score == pytest.approx(np.array([0.01, 0.0, 5.0]) * height)
    first = _importance(chain, layers, 0, np.flatnonzero((layers[0][0][0] < 0) & (layers[0][1][0] > 0)))
    assert np.all(first > 0)
    dead = [(a.copy(), c.copy()) for a, c in layers]
    dead[2][1][0][:] = -1.0  # every second-layer ReLU dead: nothing reaches the outputs from layer 1
    assert np.all(_importance(chain, dead, 0, np.arange(3)) == 0.0)


def test_a_deadline_drops_the_least_important_neurons_first(monkeypatch):
    """With time for one solve only, the neuron solved is the one the outputs depend on most (the last of
    the layer, not the first), and the others keep their bounds."""
    from absint.bab import milp_bounds

    chain = _heavy_and_light_net()
    lo, hi = -np.ones(2), np.ones(2)
    layers = _root_layers(chain, lo, hi)
    solved = []
    real = milp_bounds._Model.minimum
    W2 = chain.layers[2].weight

    def recording(self, c_out, seconds, binaries=None, enough=None):
        solved.append(next(i for i in range(3) if np.allclose(np.abs(c_out), np.abs(W2[i]))))
        return real(self, c_out, seconds, binaries, enough)

    def clock():  # every reading before the first solve is 0; every later one is past the deadline
        return 100.0 if solved else 0.0

    monkeypatch.setattr(milp_bounds._Model, "minimum", recording)
    monkeypatch.setattr(milp_bounds.time, "perf_counter", clock)
    tight, _ = milp_intermediate(chain, layers, lo, hi, n_layers=1, seconds=10.0, threads=1)
    monkeypatch.undo()
    assert solved == [2]
    for side in (0, 1):
        assert tight[2][side][0][:2].tolist() == layers[2][side][0][:2].tolist()


@pytest.mark.parametrize("seed", range(3))
def test_the_time_the_last_layer_leaves_goes_back_to_the_neurons_the_first_dropped(monkeypatch, seed):
    """Second-layer solves cost one unit of a fake clock, third-layer ones none: the second layer's share
    (three quarters of the time) drops some of its neurons, the third layer is done at once, and the time it leaves goes
    to the dropped neurons in a second pass, in their order, never to a neuron whose solves were finished;
    every bound still contains the neuron's exact range."""
    from absint.bab import milp_bounds

    rng = np.random.default_rng(seed)
    chain = AffineReluChain.from_network(random_chain(rng, (3, 6, 8, 6, 1)))
    lo = rng.normal(size=3) - 2.0
    hi = lo + 4.0
    layers = _root_layers(chain, lo, hi)
    second, third = _hidden_affines(chain)[1:3]
    unstable = np.flatnonzero((layers[second][0][0] < 0) & (layers[second][1][0] > 0))
    assert unstable.size >= 4  # the test needs neurons to drop
    W = {second: np.asarray(chain.layers[second].weight), third: np.asarray(chain.layers[third].weight)}
    real = milp_bounds._Model.minimum
    now = [0.0]
    solves = []  # (layer, neuron, clock after the solve)

    def costly(self, c_out, seconds, binaries=None, enough=None):
        top = second if len(self.first_binary) == 1 else third  # the hidden layers it encodes
        value = real(self, c_out, seconds, binaries, enough)
        i = next(i for i in range(W[top].shape[0]) if np.allclose(np.abs(c_out), np.abs(W[top][i])))
        now[0] += 1.0 if top == second else 0.0
        solves.append((top, i, now[0]))
        return value

    monkeypatch.setattr(milp_bounds._Model, "minimum", costly)
    monkeypatch.setattr(milp_bounds.time, "perf_counter", lambda: now[0])
    seconds = float(unstable.size)  # 3/4 of it cannot finish the second layer (at least one solve per neuron)
    tight, empty = milp_intermediate(chain, layers, lo, hi, n_layers=2, seconds=seconds, threads=1)
    monkeypatch.undo()
    assert not empty
    layer_of = [top for top, _, _ in solves]
    assert third in layer_of  # the third layer had its turn between the passes
    first_pass = [(i, t) for top, i, t in solves[:layer_of.index(third)]]
    second_pass = [i for top, i, t in solves[layer_of.index(third):] if top == second]
    assert second_pass, "no second pass"
    assert sum(1 for top in layer_of if top == second) > seconds / 2
    # a neuron solved in both passes is the one the first pass's deadline cut (its last)
    assert set(second_pass) & {i for i, _ in first_pass} <= {first_pass[-1][0]}
    order = [i for i in unstable[np.argsort(-milp_bounds._importance(chain, layers, second, unstable), kind="stable")]
             if i in second_pass]
    assert list(dict.fromkeys(second_pass)) == order
    for top in (second, third):
        assert np.all(tight[top][0] >= layers[top][0]) and np.all(tight[top][1] <= layers[top][1])
    tl, tu = tight[second][0][0], tight[second][1][0]
    for i in unstable:  # the exact range (phase enumeration) of each neuron the passes shared
        e = np.eye(tl.size)[i]
        low = exact_minimum(list(chain.layers[:second + 1]), lo, hi, e)[0]
        high = -exact_minimum(list(chain.layers[:second + 1]), lo, hi, -e)[0]
        assert tl[i] <= low + 1e-12 and tu[i] >= high - 1e-12, i
    x = np.vstack([lo + rng.random((2000, 3)) * (hi - lo), np.where(rng.random((200, 3)) < 0.5, lo, hi)])
    for k, layer in enumerate(chain.layers[:third + 1]):  # sampled points of the third layer stay inside
        x = x @ np.asarray(layer.weight).T + layer.bias if isinstance(layer, Affine) else np.maximum(x, 0.0)
        if k == third:
            assert np.all(x >= tight[k][0][0] - 1e-9) and np.all(x <= tight[k][1][0] + 1e-9)


def test_a_solve_that_proves_a_neuron_stable_skips_its_other_side(monkeypatch):
    """z = relu(x1) + relu(-x1) - 0.5 relu(x1 + 2) + 1.1 = |x1| - x1/2 + 0.1 >= 0.1 on [-1, 1]^2, but DeepPoly
    leaves it unstable with its lower bound nearer 0 than its upper: the lower-bound solve comes first, proves
    it active, and the upper-bound solve is skipped; the other neuron of the layer gets both."""
    from absint.bab import milp_bounds
    from absint.network import Network, Node

    W1 = np.array([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    W2 = np.array([[1.0, 1.0, -0.5, 0.0], [0.0, 0.0, 0.0, 1.0]])
    parts = [Affine(W1, np.array([0.0, 0.0, 2.0, 0.0])), ReLU(), Affine(W2, np.array([1.1, -0.5])), ReLU(),
             Affine(np.ones((1, 2)), np.zeros(1))]
    chain = AffineReluChain.from_network(Network((2,), [Node(f"n{k}", layer, (k - 1,)) for k, layer in enumerate(parts)]))
    lo, hi = -np.ones(2), np.ones(2)
    layers = _root_layers(chain, lo, hi)
    l, u = layers[2][0][0], layers[2][1][0]
    assert l[0] < 0 < u[0] and -l[0] < u[0] and l[1] < 0 < u[1]
    sides = []
    real = milp_bounds._Model.minimum

    def recording(self, c_out, seconds, binaries=None, enough=None):
        j = np.flatnonzero(c_out)[0]  # neuron 0 reads the first ReLU output, neuron 1 only the last
        sides.append((int(j == 3), float(np.sign(c_out[j]))))
        return real(self, c_out, seconds, binaries, enough)

    monkeypatch.setattr(milp_bounds._Model, "minimum", recording)
    tight, _ = milp_intermediate(chain, layers, lo, hi, n_layers=1, seconds=10.0, threads=1)
    monkeypatch.undo()
    assert sides[0] == (0, 1.0) and sides.count((0, -1.0)) == 0  # neuron 0: its lower bound only
    assert sorted(sides[1:]) == [(1, -1.0), (1, 1.0)]
    assert 0 <= tight[2][0][0][0] <= 0.1 + 1e-5 and tight[2][1][0][0] == u[0]


@pytest.mark.filterwarnings("ignore:Unrecognized options detected")  # HiGHS options scipy does not know
@pytest.mark.parametrize("seed", range(4))
def test_a_solve_told_what_is_enough_stops_at_it_and_stays_a_lower_bound(seed):
    """``_Model.minimum`` with ``enough`` below the exact minimum returns a bound in [enough, minimum] (the
    HiGHS cutoff may end it early); with ``enough`` above it, the minimum itself (within the margin). An LP
    (no binary kept) ignores ``enough``: HiGHS's dual simplex stopped by the cutoff reports no bound."""
    from absint.bab.milp_bounds import _Model

    rng = np.random.default_rng(seed)
    chain = AffineReluChain.from_network(random_chain(rng, (3, 5, 4, 1)))
    lo = rng.normal(size=3) - 1.0
    hi = lo + 2.0 * rng.random(3) + 1.0
    layers = _root_layers(chain, lo, hi)
    top = _hidden_affines(chain)[1]
    model = _Model(chain, layers, lo, hi, top)
    W = chain.layers[top].weight
    for i in range(W.shape[0]):
        c = np.asarray(W[i], np.float64)
        exact = exact_minimum(list(chain.layers[:top]), lo, hi, c)[0]
        free = model.minimum(c, 10.0)
        assert free <= exact + 1e-12 and free == pytest.approx(exact, abs=1e-4)
        below = model.minimum(c, 10.0, enough=exact - 0.5)
        assert exact - 0.5 <= below <= exact + 1e-12
        above = model.minimum(c, 10.0, enough=exact + 0.5)
        assert above <= exact + 1e-12 and above == pytest.approx(exact, abs=1e-4)
        lp = model.minimum(c, 10.0, binaries=0)  # on the thread's persistent LP, from the last solve's basis
        assert np.isfinite(lp) and lp <= exact + 1e-12
        c_full = np.zeros(model.n_vars)
        c_full[model.out:model.out + model.live.size] = c[model.live]
        fresh = highs_minimise(c_full, model.matrix, model.row_lo, model.row_hi, model.col_lo, model.col_hi,
                               np.zeros(model.n_vars), {"presolve": "off"})
        assert lp <= fresh.dual_bound and lp == pytest.approx(fresh.dual_bound, abs=1e-4)
        assert model.minimum(c, 10.0, binaries=0, enough=lp - 0.5) == lp
        assert model.minimum(c, 10.0, binaries=0, enough=lp + 0.5) == lp


@pytest.mark.skipif(not benchmark_instances("mnistfc"), reason=NO_BENCHMARKS)
def test_mnistfc_points_stay_within_the_refined_bounds():
    """mnistfc 256x2 with a real property: random points, box corners and points that descend / ascend a
    refined neuron by projected gradient steps stay inside its MILP bounds; some neurons get tighter."""
    _, onnx, vnnlib, _ = next(i for i in benchmark_instances("mnistfc") if "256x2" in i[1].name and "0.05" in i[2].name)
    net = absint.load_onnx(onnx)
    region = absint.load_vnnlib(vnnlib, net).regions[0]
    A, b, _, _ = _stack(region.unsafe)
    chain = AffineReluChain.from_network(spec_network(net, A, b))
    lo, hi = region.lower.ravel().astype(float), region.upper.ravel().astype(float)
    layers = _root_layers(chain, lo, hi)
    top = _hidden_affines(chain)[1]
    tight, _ = milp_intermediate(chain, layers, lo, hi, n_layers=1, seconds=20.0, threads=2)
    tl, tu = tight[top][0][0], tight[top][1][0]
    assert np.any(tu - tl < layers[top][1][0] - layers[top][0][0] - 1e-3)
    W0, b0 = chain.layers[0].weight, chain.layers[0].bias
    W1, b1 = chain.layers[top].weight, chain.layers[top].bias

    def z2(x):
        return np.maximum(x @ W0.T + b0, 0.0) @ W1.T + b1

    rng = np.random.default_rng(0)
    x = np.vstack([lo + rng.random((300, lo.size)) * (hi - lo), np.where(rng.random((300, lo.size)) < 0.5, lo, hi)])
    values = [z2(x)]
    unstable = np.flatnonzero((layers[top][0][0] < 0) & (layers[top][1][0] > 0))[:16]
    for i in unstable:
        for sign in (1.0, -1.0):  # push z2_i down (sign 1) or up
            p = lo + rng.random((8, lo.size)) * (hi - lo)
            for step in np.linspace(0.2, 0.01, 30):
                active = (p @ W0.T + b0) > 0
                grad = (active * W1[i]) @ W0
                p = np.clip(p - sign * step * (hi - lo) * np.sign(grad), lo, hi)
            values.append(z2(p))
    v = np.vstack(values)
    assert np.all(v >= tl - 1e-9) and np.all(v <= tu + 1e-9)


@pytest.mark.parametrize("status, dual", [("stopped", 4.0), ("optimal", 4.0), ("pruned", None), ("stopped", None)])
def test_a_cut_off_solve_reports_no_more_than_its_target(monkeypatch, status, dual):
    """With the cutoff, HiGHS prunes every node at or above the target, and the dual bound it then reports
    ignores them: on mnistfc 256x4 prop_6_0.05 it reported 0.53 where the minimum was 0.13 (a point of the
    encoding reaches it). Whatever the solver says, a cut-off solve returns at most its target (after the
    margin): the target when every node was pruned (HiGHS: infeasible), min(bound, target) when it reports
    one, -inf when it gives none and did not prune everything."""
    from absint.bab import milp_bounds
    from absint.bab.highs_solve import HighsResult

    rng = np.random.default_rng(0)
    chain = AffineReluChain.from_network(random_chain(rng, (3, 5, 4, 1)))
    lo, hi = -np.ones(3), np.ones(3)
    model = milp_bounds._Model(chain, _root_layers(chain, lo, hi), lo, hi, _hidden_affines(chain)[1])
    result = HighsResult(status == "pruned", status == "optimal", -np.inf if dual is None else dual, None)
    monkeypatch.setattr(milp_bounds, "highs_minimise", lambda *a, **k: result)
    c = np.asarray(chain.layers[_hidden_affines(chain)[1]].weight[0], np.float64)
    value = model.minimum(c, 1.0, enough=0.5)
    if status == "stopped" and dual is None:
        assert value == -np.inf
    else:
        assert 0.5 <= value <= 0.5 + 1e-4, value
    assert model.minimum(c, 1.0) == (-np.inf if dual is None else pytest.approx(4.0, abs=1e-4))


def test_no_time_left_changes_nothing_and_the_deadline_propagates():
    rng = np.random.default_rng(3)
    chain = AffineReluChain.from_network(random_chain(rng, (3, 6, 6, 1)))
    lo, hi = -np.ones(3), np.ones(3)
    layers = _root_layers(chain, lo, hi)
    same, empty = milp_intermediate(chain, layers, lo, hi, n_layers=1, seconds=0.0)
    assert not empty and all(np.array_equal(a, c) and np.array_equal(b, d) for (a, b), (c, d) in zip(layers, same))

    class Stop(Exception):
        pass

    def stop():
        raise Stop

    if np.any((layers[2][0] < 0) & (layers[2][1] > 0)):
        with pytest.raises(Stop):
            milp_intermediate(chain, layers, lo, hi, n_layers=1, seconds=10.0, check_time=stop)


def test_searches_open_at_the_root_restart_once_from_milp_bounds():
    """Among the enumeration nets, those the root does not prove restart once (statistics kept across the
    restart), and their verdicts stay right."""
    restarted = 0
    for seed in range(8):
        out = search_where_it_holds(seed, BabOptions(milp_layers=1, milp_after=0.0, milp_seconds=5.0))
        assert out.result == "holds" and out.restarts <= 1
        assert out.stats()["restarts"] == out.restarts and (out.time_milp > 0) == (out.restarts == 1)
        restarted += out.restarts
    assert restarted > 0


def test_options_for_network_use_milp_bounds_on_fully_connected_nets_only():
    from absint.bab.search import DEEP_MILP_SHARE, FC_MILP_LAYERS, MILP_SHARE
    from tests.bab.test_search import _small_conv_net

    rng = np.random.default_rng(0)
    assert FC_MILP_LAYERS >= 1 and BabOptions().milp_layers == 0
    assert BabOptions.for_network(random_chain(rng, (4, 6, 6, 2))).milp_layers == FC_MILP_LAYERS
    assert BabOptions.for_network(_small_conv_net(rng)).milp_layers == 0
    assert BabOptions.for_network(random_chain(rng, (4, 6, 6, 2))).milp_later and not BabOptions().milp_later
    assert not BabOptions.for_network(_small_conv_net(rng)).milp_later
    assert BabOptions.for_network(random_chain(rng, (4, 6, 2)), milp_layers=0).milp_layers == 0
    # hidden layers between the refined ones and the last get their own MILP time: a larger share
    deep = (4,) + (6,) * (FC_MILP_LAYERS + 3) + (2,)
    assert BabOptions.for_network(random_chain(rng, deep)).milp_share == DEEP_MILP_SHARE > MILP_SHARE
    assert BabOptions.for_network(random_chain(rng, deep[1:])).milp_share == MILP_SHARE == BabOptions().milp_share
    assert BabOptions.for_network(random_chain(rng, deep), milp_share=0.5).milp_share == 0.5
    assert BabOptions.for_network(_small_conv_net(rng)).milp_share == MILP_SHARE


def test_verify_gives_the_milp_bounds_a_share_of_its_time(monkeypatch):
    import importlib

    from tests.bab.test_search import _prop

    verify_module = importlib.import_module("absint.verify")
    seen, deadlines = [], []

    def recording(*args, options, **kwargs):
        seen.append(options)
        deadlines.append(kwargs["deadline"])
        return relu_bab(*args, options=options, **kwargs)

    monkeypatch.setattr(verify_module, "relu_bab", recording)
    net, lo, hi, m = _net_and_min(0)
    spec = absint.vnnlib.parse_vnnlib(_prop(lo, hi, f"(assert (<= Y_0 {float(m - 0.02)!r}))\n"), net)
    started = time.perf_counter()
    absint.verify(net, spec, timeout=30, method="bab", samples=0, pgd_steps=0)
    assert seen and all(0 < o.milp_seconds <= o.milp_share * (30 - o.milp_after) and o.milp_layers >= 1 for o in seen)
    assert all(started < d <= time.perf_counter() + 30 for d in deadlines)  # the verification's own deadline


def test_output_minima_are_the_exact_minimum_of_each_sub_problem():
    """Random ReLU splits of a random chain: the bound of an output over the sub-problem is its exact minimum
    under the same phases (enumeration) up to the margin, +inf exactly when enumeration finds no input; with
    the cutoff 0 it is never above the minimum and >= 0 when the minimum is positive; the solver's point is
    in the box. Some sub-problems are empty only through an inactive split, which the encoding must keep."""
    from absint.bab.milp_bounds import output_minima

    solved = empties = 0
    for seed in range(5):
        rng = np.random.default_rng(seed)
        chain = AffineReluChain.from_network(random_chain(rng, (3, 4, 4, 2)))
        lo = rng.normal(size=3) - 1.0
        hi = lo + 2.0 * rng.random(3) + 1.0
        neurons = [(j, i) for j, layer in enumerate(chain.layers) if isinstance(layer, ReLU)
                   for i in range(chain.layers[j - 1].weight.shape[0])]
        for _ in range(12):
            picked = rng.choice(len(neurons), rng.integers(1, 4), replace=False)
            fixed = {neurons[k]: int(rng.choice([-1, 1])) for k in picked}
            phases = {j: np.zeros((1, chain.layers[j - 1].weight.shape[0]), np.int8) for j, _ in neurons}
            for (j, i), s in fixed.items():
                phases[j][0, i] = s
            res = deeppoly_boxes(chain, lo[None], hi[None], splits=ReluSplits(phases))
            row = int(rng.integers(2))
            exact, _ = exact_minimum(list(chain.layers), lo, hi, np.eye(2)[row], fixed)
            if res.infeasible[0]:
                assert exact == np.inf
                continue
            problem = (res.layers, {j: p[0] for j, p in phases.items()}, row)
            [(value, x)] = output_minima(chain, [problem], lo, hi, 10.0, enough=-np.inf)
            [(cut, _)] = output_minima(chain, [problem], lo, hi, 10.0, enough=0.0)
            if exact == np.inf:
                assert value == np.inf and cut >= 0.0, (value, cut)
                empties += 1
                continue
            assert exact - 1e-4 <= value <= exact + 1e-12, (value, exact)
            assert x is not None and np.all(x >= lo - 1e-7) and np.all(x <= hi + 1e-7)
            assert cut <= exact + 1e-12 and (cut >= 0.0 or exact <= 1e-4), (cut, exact)
            solved += 1
    assert solved > 0 and empties > 0, (solved, empties)


@pytest.mark.parametrize("seed", range(3))
def test_the_root_refines_the_later_layers_only_while_its_rows_are_open(seed, monkeypatch):
    """``_milp_root`` with ``milp_later``: on a property DeepPoly proves with room to spare (unsafe y <= the
    least sampled output - 1000) only the ``milp_layers`` layers get MILPs; on a violated one (y <= the
    least sampled output + 0.1, which a sampled point reaches), which no bound can prove, the later hidden
    layers but the last get theirs too."""
    from absint.bab import milp_bounds
    from absint.bab.search import BabOutcome, _milp_root
    from absint.input_split import RowSets

    rng = np.random.default_rng(70 + seed)
    net = random_chain(rng, (3, 6, 6, 6, 6, 1))
    lo = rng.normal(size=3) - 1.0
    hi = lo + 2.0
    m = float(net.forward(lo + (hi - lo) * rng.random((2000, 3))).min())
    tops = []
    real = milp_bounds._tighten_layer

    def recording(chain, layers, lo, hi, top, unstable, *args):
        tops.append(top)
        return real(chain, layers, lo, hi, top, unstable, *args)

    monkeypatch.setattr(milp_bounds, "_tighten_layer", recording)
    seen = {}
    for name, t in (("slack", m - 1000.0), ("violated", m + 0.1)):
        A, b = np.ones((1, 1)), np.array([t])
        chain = AffineReluChain.from_network(spec_network(net, A, b))
        layers = _root_layers(chain, lo, hi)
        tops.clear()
        prior = _milp_root(chain, RowSets(A, b, np.zeros(1, bool), (slice(0, 1),)), lo, hi, layers,
                           BabOptions(milp_layers=1, milp_later=True, milp_seconds=30.0), lambda: None, BabOutcome())
        assert prior is not None
        seen[name] = set(tops)
    hidden = _hidden_affines(AffineReluChain.from_network(spec_network(net, np.ones((1, 1)), np.zeros(1))))
    assert seen["slack"] == {hidden[1]}
    assert seen["violated"] == set(hidden[1:-1])
