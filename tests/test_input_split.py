"""absint.input_split: batched best-first input splitting decides properties that need splitting, both ways."""

from __future__ import annotations

import numpy as np
import pytest

import absint
from absint.domains.deeppoly_batch import AffineReluChain
from absint.input_split import RowSets, SplitOutcome, split_search
from absint.network import Network
from absint.verify import spec_network
from absint.vnnlib import parse_vnnlib
from tests.domains.test_deeppoly_batch import random_chain


def bump_net(seed: int = 1) -> Network:
    """A random 2-16-16-1 ReLU chain whose DeepPoly bound over [0, 1]^2 needs a few splits near its maximum."""
    return random_chain(np.random.default_rng(seed), (2, 16, 16, 1))


def _grid_max(net):
    g = np.linspace(0, 1, 801)
    x = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    return net.forward(x).max()


def _search(net, threshold, lookahead=False, check_time=lambda: None, out=None, optimise=0, background=None):
    """Is y >= threshold reachable on [0, 1]^2? (unsafe row: -y <= -threshold)."""
    A, b = np.array([[-1.0]]), np.array([-threshold])
    chain = AffineReluChain.from_network(spec_network(net, A, b))
    rows = RowSets(A, b, np.array([False]), (slice(0, 1),))

    def check(x):
        y = net.forward(x[None])[0]
        return (x, y) if y[0] >= threshold and (0 <= x).all() and (x <= 1).all() else None

    return split_search(chain, rows, np.zeros(2), np.ones(2), forward=net.forward, check_counterexample=check,
                        attack=lambda lo, hi: None, check_time=check_time, lookahead=lookahead, out=out,
                        optimise=optimise, background=background)


@pytest.mark.parametrize("lookahead, optimise, intermediate_after", [(False, 0, None), (True, 0, None), (False, 10, None),
                                                                     (False, 10, 0)])
def test_decides_both_ways_near_the_true_maximum(monkeypatch, lookahead, optimise, intermediate_after):
    from absint import input_split

    if intermediate_after is not None:  # optimised intermediate bounds from the first box on
        monkeypatch.setattr(input_split, "INTERMEDIATE_AFTER", intermediate_after)
    net = bump_net()
    top = _grid_max(net)
    assert top > 0
    holds = _search(net, top * 1.02 + 1e-3, lookahead, optimise=optimise)
    assert holds.result == "holds" and holds.boxes > 1  # needs splitting: one box does not prove it
    found = _search(net, top * 0.98, lookahead, optimise=optimise)
    assert isinstance(found.result, tuple)
    x, y = found.result
    assert y[0] >= top * 0.98 and np.array_equal(net.forward(x[None])[0], y)


def test_optimised_rows_lie_between_deeppoly_and_the_sampled_minimum():
    """Optimised slopes on open boxes raise DeepPoly's row bounds and stay below every sampled value."""
    from absint.domains.deeppoly_batch import ReluSplits, deeppoly_boxes
    from absint.input_split import _optimised_rows, _tightened_rows

    rng = np.random.default_rng(7)
    net = random_chain(rng, (3, 12, 12, 3))
    chain = AffineReluChain.from_network(net)
    rows = RowSets(np.eye(3), np.zeros(3), np.zeros(3, bool), (slice(0, 3),))
    lo = rng.normal(size=(6, 3))
    hi = lo + rng.random((6, 3)) + 0.2
    res = deeppoly_boxes(chain, lo, hi, splits=ReluSplits({}))
    low = _optimised_rows(chain, res, lo, hi, rows, 20)
    # with optimised intermediate bounds too, on boxes 1, 3, 5
    tight = res.lower.copy()
    tight[1::2] = _tightened_rows(chain, res, lo, hi, rows, 20, np.arange(1, 6, 2), np.ones((3, 1), bool))[0]
    for bound in (low, tight):
        assert np.all(bound >= res.lower) and np.any(bound > res.lower + 1e-6)
    for k in range(len(lo)):
        x = lo[k] + rng.random((4000, 3)) * (hi[k] - lo[k])
        corners = np.where(rng.random((200, 3)) < 0.5, lo[k], hi[k])
        y = net.forward(np.vstack([x, corners]))
        assert np.all(y.min(axis=0) >= low[k] - 1e-9) and np.all(y.min(axis=0) >= tight[k] - 1e-9)


def test_statistics_survive_a_deadline():
    class Stop(Exception):
        pass

    calls = [0]

    def check_time():
        calls[0] += 1
        if calls[0] > 3:
            raise Stop

    out = SplitOutcome("holds")
    net = bump_net(0)  # y >= grid max + 1e-6 is reachable, but only found after ~27 rounds
    with pytest.raises(Stop):
        _search(net, _grid_max(net) + 1e-6, check_time=check_time, out=out)
    assert out.rounds == 3 and out.boxes > 3 and out.max_depth >= 1


def test_background_falsifier_runs_every_round_and_ends_the_search():
    """``background`` is offered every round; the first (x, y) it returns is the search's result."""
    net = bump_net()
    top = _grid_max(net)
    calls = []
    holds = _search(net, top * 1.02 + 1e-3, background=lambda: calls.append(1))
    assert holds.result == "holds" and len(calls) == holds.rounds and holds.rounds > 1
    x = np.array([0.5, 0.5])
    pair = (x, net.forward(x[None])[0])
    calls.clear()
    found = _search(net, top * 1.02 + 1e-3, background=lambda: pair if calls.append(1) or len(calls) == 3 else None)
    assert found.result is pair and len(calls) == 3


def test_verify_uses_batched_splitting_for_chains():
    """absint.verify with DeepPoly on an Affine/ReLU chain reports the splitting statistics."""
    net = bump_net()
    top = _grid_max(net)
    text = ("(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
            "(assert (>= X_0 0))\n(assert (<= X_0 1))\n(assert (>= X_1 0))\n(assert (<= X_1 1))\n"
            f"(assert (>= Y_0 {float(top * 1.02 + 1e-3)!r}))\n")
    v = absint.verify(net, parse_vnnlib(text, net), domain="deeppoly", timeout=30)
    assert v.status == "holds" and v.stats["boxes"] > 1 and v.stats["max_depth"] >= 1


def _conjunction_rows(net, A, b):
    chain = AffineReluChain.from_network(spec_network(net, A, b))
    return chain, RowSets(A, b, np.zeros(len(b), bool), (slice(0, len(b)),))


def test_pair_combinations_are_sound_lower_bounds_of_the_rows_max(monkeypatch):
    """max(row_r, row_s) over sampled points and corners never falls below the pair bound, which is never
    below the best single row's; on some boxes it is higher (else the test proves nothing)."""
    from absint.domains.deeppoly_batch import deeppoly_boxes
    from absint.input_split import _pair_lower

    rng = np.random.default_rng(3)
    net = random_chain(rng, (3, 16, 16, 4))
    A = np.array([[1.0, -1, 0, 0], [0, -1, 1, 0], [0, -1, 0, 1]])  # the unsafe set: y_1 is the largest
    b = np.zeros(3)
    chain, rows = _conjunction_rows(net, A, b)
    lo = rng.normal(size=(30, 3))
    hi = lo + rng.random((30, 3)) * 1.5
    res = deeppoly_boxes(chain, lo, hi, lower_coef=True)
    pairs = _pair_lower(res.lower_coef, res.lower_const, lo, hi, rows)[:, 0]
    from absint import input_split

    monkeypatch.setattr(input_split, "PAIR_CHUNK_BYTES", 1)  # one box at a time: the same values
    np.testing.assert_array_equal(_pair_lower(res.lower_coef, res.lower_const, lo, hi, rows)[:, 0], pairs)
    monkeypatch.setattr(input_split, "PAIR_MAX_INPUTS", 2)  # too many inputs: no pair bound
    assert np.all(_pair_lower(res.lower_coef, res.lower_const, lo, hi, rows) == -np.inf)
    single = res.lower.max(axis=1)
    assert np.all(pairs >= single - 1e-9) and np.any(pairs > single + 1e-3)
    for k in range(len(lo)):
        x = lo[k] + rng.random((3000, 3)) * (hi[k] - lo[k])
        corners = np.where(rng.random((64, 3)) < 0.5, lo[k], hi[k])
        margins = net.forward(np.vstack([x, corners])) @ A.T - b
        assert margins.max(axis=1).min() >= pairs[k]


@pytest.mark.parametrize("pairs", [True, False])
def test_pair_combination_proves_a_box_no_single_row_proves(monkeypatch, pairs):
    """y = (x, -x) on [-1, 1]: the unsafe conjunction x <= -0.5 and -x <= -0.5 is empty; neither row alone
    is positive on the box, their mean (0.5) is, so the root box decides it."""
    from absint import input_split
    from absint.network import Affine, Node

    monkeypatch.setattr(input_split, "PAIR_COMBINATIONS", pairs)
    net = Network((1,), [Node("fc", Affine(np.array([[1.0], [-1.0]]), np.zeros(2)), (-1,))])
    A, b = np.eye(2), np.array([-0.5, -0.5])
    chain, rows = _conjunction_rows(net, A, b)
    out = split_search(chain, rows, -np.ones(1), np.ones(1), forward=net.forward,
                       check_counterexample=lambda x: None, attack=lambda lo, hi: None, check_time=lambda: None)
    assert out.result == "holds"
    assert (out.boxes == 1) == pairs


def test_optimise_gate_stops_at_depths_where_optimising_does_not_close_boxes():
    from absint.input_split import OptimiseGate

    gate = OptimiseGate()
    depth = np.full(OptimiseGate.EXPLORE, 3)
    assert gate.select(depth, np.ones(len(depth), bool)).all()  # unexplored: tried
    gate.record(depth, np.zeros(len(depth), bool))
    assert not gate.select(np.array([3]), np.array([True])).any()  # never closed a box there
    assert gate.select(np.array([4, 4]), np.array([True, False])).tolist() == [True, False]  # only open boxes
    gate.record(depth[:4], np.ones(4, bool))  # 4 of 36 closed: above MIN_CLOSE_RATE
    assert gate.select(np.array([3]), np.array([True])).all()
    assert gate.select(np.array([10_000]), np.array([True])).all()  # depths beyond the table share its last slot


def test_children_start_from_their_parents_layer_bounds():
    """A parent's packed layer bounds, as the prior of its two halves: the halves' bounds lie within the
    parent's, are tighter than their own without the prior somewhere, and contain sampled values."""
    from absint.domains.deeppoly_batch import ReluSplits, deeppoly_boxes
    from absint.input_split import _packed_layers, _parents_layers
    from absint.network import Affine

    rng = np.random.default_rng(5)
    net = random_chain(rng, (3, 20, 20, 20, 2))
    chain = AffineReluChain.from_network(net)
    affine = [k for k, layer in enumerate(chain.layers) if isinstance(layer, Affine)]
    lo, hi = -np.ones((1, 3)), np.ones((1, 3))
    parent = deeppoly_boxes(chain, lo, hi, lower_coef=True, splits=ReluSplits({}))
    halves_lo, halves_hi = np.repeat(lo, 2, axis=0), np.repeat(hi, 2, axis=0)
    halves_hi[0, 1] = halves_lo[1, 1] = 0.0
    packed = _packed_layers(parent, affine, [0])[0]
    prior = _parents_layers([packed, packed], chain, affine)
    own = deeppoly_boxes(chain, halves_lo, halves_hi, lower_coef=True, splits=ReluSplits({}))
    got = deeppoly_boxes(chain, halves_lo, halves_hi, lower_coef=True, splits=ReluSplits({}, prior))
    tighter = False
    for k in affine:
        (pl, ph), (ol, oh), (gl, gh) = parent.layers[k], own.layers[k], got.layers[k]
        assert np.all(gl >= pl[0] - 1e-6) and np.all(gh <= ph[0] + 1e-6)
        tighter |= bool(np.any(gl > ol + 1e-6) or np.any(gh < oh - 1e-6))
    assert tighter
    for b in range(2):
        x = halves_lo[b] + rng.random((4000, 3)) * (halves_hi[b] - halves_lo[b])
        y = net.forward(x)
        assert np.all(y >= got.lower[b]) and np.all(y <= got.upper[b])


def test_parent_bounds_stay_within_their_byte_budget(monkeypatch):
    """With no bytes for parents' layer bounds the search still decides (children use their own bounds)
    and queues no bounds; with the default budget it queues them."""
    from absint import input_split

    queued = []
    push = input_split.heapq.heappush

    def record(queue, item):
        queued.append(item[7] is not None)
        push(queue, item)

    monkeypatch.setattr(input_split.heapq, "heappush", record)
    net = bump_net()
    top = _grid_max(net)
    assert _search(net, top * 1.02 + 1e-3, optimise=10).result == "holds" and all(queued)
    queued.clear()
    monkeypatch.setattr(input_split, "PARENT_BOUNDS_BYTES", 0)
    assert _search(net, top * 1.02 + 1e-3, optimise=10).result == "holds"
    assert len(queued) > 1 and not any(queued[1:])  # the root's are kept: one row
