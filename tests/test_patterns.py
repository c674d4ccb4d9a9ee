"""absint.patterns: extraction equals (pre-activation > 0), the database, sound abstract patterns."""

from __future__ import annotations

import numpy as np
import pytest

import absint
import absint.zoo as zoo
from absint.network import NETWORK_INPUT
from absint.patterns import (AbstractPattern, CoverageStatus, PatternDB, abstract_patterns, certain_class,
                             coverage, extract_patterns, pack, relu_nodes)
from tests.reference import patterns_reference as ref


@pytest.fixture(scope="module", params=zoo.BUNDLED_NETWORKS)
def net(request):
    return zoo.load(request.param)


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    return rng.random((300, 1, 8, 8))


def test_extraction_bit_for_bit(net, inputs):
    patterns, outputs = extract_patterns(net, inputs)
    values = net.activations(inputs)
    assert np.array_equal(outputs, values[-1].reshape(len(inputs), -1))
    assert list(patterns) == [net.nodes[k].name for k in relu_nodes(net)]
    for k in relu_nodes(net):
        pre = values[net.nodes[k].inputs[0]].reshape(len(inputs), -1)
        P = patterns[net.nodes[k].name]
        assert P.dtype == np.uint64 and P.shape == (len(inputs), (pre.shape[1] + 63) // 64)
        assert np.array_equal(ref.unpack(P, pre.shape[1]), pre > 0)
        assert np.array_equal(P, pack(values[k]))                       # post-activations: same bits


def test_extraction_in_blocks(net, inputs):
    patterns, outputs = extract_patterns(net, inputs, batch_rows=128)
    assert np.allclose(outputs, net.forward(inputs), rtol=1e-12, atol=1e-12)
    for start in (0, 128, 256):                    # each block equals a forward pass of that block
        chunk = inputs[start:start + 128]
        values = net.activations(chunk)
        for k in relu_nodes(net):
            pre = values[net.nodes[k].inputs[0]].reshape(len(chunk), -1)
            got = patterns[net.nodes[k].name][start:start + 128]
            assert np.array_equal(ref.unpack(got, pre.shape[1]), pre > 0)


def test_extraction_relu_on_network_input():
    net = absint.Network((70,), [absint.network.Node("r", absint.network.ReLU(), (NETWORK_INPUT,))])
    x = np.random.default_rng(1).standard_normal((5, 70))
    patterns, _ = extract_patterns(net, x)
    assert np.array_equal(ref.unpack(patterns["r"], 70), x > 0)
    assert extract_patterns(net, x[:0])[0]["r"].shape == (0, 2)


def test_database_counts_and_scores(net, inputs):
    patterns, outputs = extract_patterns(net, inputs)
    pred = outputs.argmax(axis=1)
    db = PatternDB.fit(patterns, {n: net.nodes[k].size for k in relu_nodes(net) for n in [net.nodes[k].name]},
                       pred, n_classes=10)
    for name, layer in db.layers.items():
        assert layer.counts.sum() == len(inputs)
        assert layer.class_ptr[-1] == len(layer.patterns) and np.all(np.diff(layer.class_ptr) >= 0)
        for c in range(10):   # rows of class c are the distinct patterns of the inputs predicted c
            rows = layer.patterns[layer.class_ptr[c]:layer.class_ptr[c + 1]]
            want = np.unique(patterns[name][pred == c], axis=0) if np.any(pred == c) else rows
            assert np.array_equal(rows, want)
        assert layer.n_unique == len(np.unique(patterns[name], axis=0))
    scores = db.score(patterns, pred)
    assert all(np.all(s == 0) for s in scores.values())                  # every fitted input is known
    rng = np.random.default_rng(2)
    other = rng.random((40, 1, 8, 8)) * 2
    p2, o2 = extract_patterns(net, other)
    pred2 = o2.argmax(axis=1)
    s2 = db.score(p2, pred2)
    bits = 0
    total = np.zeros(40)
    for name, layer in db.layers.items():
        d, _ = ref.nearest_grouped(p2[name], pred2, layer.patterns, layer.class_ptr, layer.n_bits)
        want = np.where(d < 0, 1.0, d / layer.n_bits)
        assert np.allclose(s2[name], want)
        total += want * layer.n_bits
        bits += layer.n_bits
    assert np.allclose(s2["combined"], total / bits)


def test_unknown_class_scores_one():
    P = {"a": np.array([[1], [2]], np.uint64)}
    db = PatternDB.fit(P, {"a": 3}, np.array([0, 0]), n_classes=3)
    s = db.score({"a": np.array([[1], [3]], np.uint64)}, np.array([2, 0]))
    assert s["a"].tolist() == [1.0, 1 / 3]
    assert db.layers["a"].contains(np.array([[2]], np.uint64)).tolist() == [True]


@pytest.mark.parametrize("domain", ["interval", "zonotope", "deeppoly"])
@pytest.mark.parametrize("eps", [0.01, 0.05, 0.2])
def test_abstract_patterns_sound(net, domain, eps):
    """Every concrete pattern sampled in the box agrees with the stable-active / -inactive labels."""
    _, _, x_te, _ = zoo.digits_data()
    box = absint.Box.linf(x_te[3], eps)
    abstract = abstract_patterns(net, box, domain=domain)
    samples = np.concatenate([box.sample(500, rng=4), box.lower[None], box.upper[None]])
    patterns, _ = extract_patterns(net, samples)
    for name, ap in abstract.items():
        assert ap.n_active + ap.n_inactive + ap.n_unstable == ap.n_bits
        assert np.all(ap.consistent(patterns[name])), (name, domain, eps)
        cand = ap.completions(cap=1 << 12)
        if cand is not None:   # each concrete pattern is one of the enumerated completions
            seen = {row.tobytes() for row in cand}
            assert all(row.tobytes() in seen for row in patterns[name])


def test_abstract_pattern_labels_and_completions():
    ap = AbstractPattern.from_bounds("l", np.array([1.0, -2.0, -1.0, 0.0, -1.0]), np.array([2.0, -1.0, 1.0, 3.0, 0.0]))
    assert (ap.n_active, ap.n_inactive, ap.n_unstable) == (1, 2, 2)     # l=0<u is unstable; u=0 is inactive
    cand = ap.completions()
    assert sorted(int(c[0]) for c in cand) == [0b00001, 0b00101, 0b01001, 0b01101]
    assert ap.completions(cap=3) is None
    assert ap.consistent(np.array([[0b01101], [0b00000], [0b10001]], np.uint64)).tolist() == [True, False, False]


def test_coverage_statuses():
    ap = AbstractPattern.from_bounds("l", np.array([1.0, -1.0, -1.0]), np.array([2.0, 1.0, 1.0]))
    cand = ap.completions()
    db_all = PatternDB.fit({"l": cand}, {"l": 3}, np.zeros(len(cand), np.int64), n_classes=2)
    assert coverage(db_all, {"l": ap})["l"].status is CoverageStatus.COVERED
    assert coverage(db_all, {"l": ap}, label=1)["l"].status is CoverageStatus.NOT_COVERED
    db_some = PatternDB.fit({"l": cand[:3]}, {"l": 3}, np.zeros(3, np.int64), n_classes=1)
    c = coverage(db_some, {"l": ap})["l"]
    assert c.status is CoverageStatus.NOT_COVERED and c.n_missing == 1 and c.n_candidates == 4
    assert coverage(db_all, {"l": ap}, cap=2)["l"].status is CoverageStatus.TOO_MANY


def test_certain_class():
    assert certain_class(np.array([0.0, 2.0, -1.0]), np.array([1.0, 3.0, 0.5])) == 1
    assert certain_class(np.array([0.0, 0.9]), np.array([1.0, 3.0])) is None
