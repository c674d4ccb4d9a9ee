"""Each monitor type against its formula on small synthetic layers; the registry; k-means."""

from __future__ import annotations

import numpy as np
import pytest

from absint.monitors import (MONITORS, BoxMonitor, BoxOptions, Energy, HammingMonitor, KNearest, KNNOptions,
                             Mahalanobis, MahalanobisOptions, MaxSoftmax, collect_activations)
from absint.monitors.kmeans import kmeans
from absint.patterns import pack
from tests.reference import patterns_reference as ref


@pytest.fixture(scope="module")
def layer():
    """Three well separated classes in 6 dimensions, ReLU-like (non-negative, some exact zeros)."""
    rng = np.random.default_rng(0)
    centres = rng.uniform(0, 3, (3, 6))
    y = np.repeat(np.arange(3), 60)
    f = np.maximum(centres[y] + 0.3 * rng.standard_normal((180, 6)), 0.0)
    return f, y


def test_registry_lists_every_type_and_errors():
    assert set(MONITORS) == {"msp", "energy", "mahalanobis", "knn", "box", "hamming"}
    for name in MONITORS:
        t = MONITORS.get(name)
        m = t.build("L")
        assert m.layers == ("L",) and type(m).name == name
    with pytest.raises(ValueError, match="unknown monitor 'nope'.*available"):
        MONITORS.get("nope")
    with pytest.raises(ValueError, match="twice"):
        MONITORS.register("msp", object, False, "")(type("X", (), {}))


def test_output_baselines():
    z = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0], [1000.0, 0.0, 0.0]])
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    acts = {"out": z}
    assert np.allclose(MaxSoftmax("out").score(acts, None), 1 - p.max(1))
    e = Energy("out").score(acts, None)
    assert np.allclose(e[:2], -np.log(np.exp(z[:2]).sum(1))) and e[2] == pytest.approx(-1000.0)
    with pytest.raises(ValueError):
        Energy("out", type(Energy("o").options)(temperature=0.0))


def test_mahalanobis_formula(layer):
    f, y = layer
    a = 0.05
    m = Mahalanobis("L", MahalanobisOptions(shrinkage=a)).fit({"L": f}, y, y)
    mu = np.stack([f[y == c].mean(0) for c in range(3)])
    cen = f - mu[y]
    S = cen.T @ cen / len(f)
    S = (1 - a) * S + a * np.trace(S) / 6 * np.eye(6)
    q = np.random.default_rng(1).uniform(0, 3, (7, 6))
    want = np.array([min((x - mu[c]) @ np.linalg.solve(S, x - mu[c]) for c in range(3)) for x in q])
    assert np.allclose(m.score({"L": q}, None), want)


def test_mahalanobis_dead_neurons_regularised():
    f = np.zeros((20, 4))
    f[:, 0] = np.arange(20.0)
    m = Mahalanobis("L").fit({"L": f}, np.zeros(20, int), None)
    s = m.score({"L": np.array([[10.0, 1.0, 1.0, 1.0], [10.0, 0.0, 0.0, 0.0]])}, None)
    assert np.isfinite(s).all() and s[0] > 10 and s[1] < 0.1   # a neuron that never fired: far


def test_knn_formula(layer):
    f, y = layer
    m = KNearest("L", KNNOptions(k=3)).fit({"L": f}, y, y)
    q = np.vstack([np.random.default_rng(2).uniform(0, 3, (5, 6)), np.zeros((1, 6))])
    zf = f / np.linalg.norm(f, axis=1, keepdims=True)
    zq = q / np.where(np.linalg.norm(q, axis=1, keepdims=True) > 0, np.linalg.norm(q, axis=1, keepdims=True), 1)
    d = np.linalg.norm(zq[:, None] - zf[None], axis=2)
    assert np.allclose(m.score({"L": q}, None), np.sort(d, axis=1)[:, 2])
    with pytest.raises(ValueError):
        KNearest("L", KNNOptions(k=500)).fit({"L": f}, y, y)


def test_box_monitor(layer):
    f, y = layer
    m = BoxMonitor("L", BoxOptions(clusters=2, enlargement=0.0)).fit({"L": f}, y, y)
    assert np.all(m.score({"L": f}, y) == 0.0)             # every fitted point lies in a box of its class
    assert not m.outside({"L": f}, y).any()
    far = f[:5] + 100.0
    assert np.all(m.score({"L": far}, y[:5]) > 10) and m.outside({"L": far}, y[:5]).all()
    wrong = (y + 1) % 3                                     # points scored against another class's boxes
    assert np.mean(m.score({"L": f}, wrong) > 0) > 0.9
    # enlargement: a point just outside the tight box is inside the enlarged one
    lo, hi = m.lower[0], m.upper[0]
    probe = (hi + 0.05 * (hi - lo))[None]
    big = BoxMonitor("L", BoxOptions(clusters=2, enlargement=0.5)).fit({"L": f}, y, y)
    c = m.owner[0]
    assert m.score({"L": probe}, np.array([c]))[0] > 0
    assert big.score({"L": probe}, np.array([c]))[0] <= m.score({"L": probe}, np.array([c]))[0]
    # only correctly classified points are boxed; an unseen class falls back to all boxes
    assert np.isfinite(m.score({"L": f[:3]}, np.array([7, 7, 7]))).all()
    with pytest.raises(ValueError, match="no correctly classified"):
        BoxMonitor("L").fit({"L": f}, y, (y + 1) % 3)


def test_hamming_monitor(layer):
    f, y = layer
    m = HammingMonitor("L").fit({"L": f}, y, y)
    assert np.all(m.score({"L": f}, y) == 0)
    q = np.random.default_rng(3).uniform(-1, 1, (9, 6))
    qy = np.arange(9) % 3
    db = m.db.layers["L"]
    d, _ = ref.nearest_grouped(pack(q), qy, db.patterns, db.class_ptr, 6)
    assert np.allclose(m.score({"L": q}, qy), d / 6)


def test_kmeans_recovers_blobs_and_is_seeded():
    rng = np.random.default_rng(4)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = np.repeat(centres, 50, axis=0) + rng.standard_normal((150, 2)) * 0.5
    c, a = kmeans(x, 3, rng=0)
    assert len(c) == 3 and np.allclose(np.sort(np.linalg.norm(c, axis=1)), np.sort(np.linalg.norm(centres, axis=1)),
                                       atol=0.3)
    for j in range(3):        # each blob in one cluster
        assert len(set(a[j * 50:(j + 1) * 50])) == 1
    c2, a2 = kmeans(x, 3, rng=0)
    assert np.array_equal(c, c2) and np.array_equal(a, a2)
    c1, a1 = kmeans(np.ones((5, 2)), 4, rng=0)           # fewer distinct points than clusters
    assert len(c1) == 1 and np.all(a1 == 0)
    assert kmeans(np.zeros((0, 3)), 2)[0].shape == (0, 3)


def test_collect_activations():
    import absint.zoo as zoo

    net = zoo.load("digits_mlp")
    x = np.random.default_rng(5).random((10, 1, 8, 8))
    acts = collect_activations(net, x, batch_rows=3)
    assert list(acts) == ["relu1", "relu2", "fc3"]
    assert np.allclose(acts["fc3"], net.forward(x)) and acts["relu1"].shape == (10, 64)
    with pytest.raises(ValueError, match="no node named"):
        collect_activations(net, x, ["nope"])
