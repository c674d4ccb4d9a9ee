"""absint.region_attack: Adam descent reaches rare counterexamples, the time share gates the attacks, and
verify's input splitting finds the ACAS Xu counterexample that signed-gradient attacks missed."""

from __future__ import annotations

import time

import numpy as np
import pytest

import absint
from absint import region_attack as RA
from absint.gradients import vjp
from absint.network import Affine, Network, Node, ReLU
from tests._bench import NO_BENCHMARKS, assert_onnxruntime_confirms, benchmarks_dir

CENTRE = np.array([0.3137, -0.7071])


def _l1_distance_net() -> Network:
    """y = |x0 - c0| + |x1 - c1| (Affine/ReLU)."""
    W1 = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    b1 = np.array([-CENTRE[0], CENTRE[0], -CENTRE[1], CENTRE[1]])
    return Network((2,), [Node("fc1", Affine(W1, b1), (-1,)), Node("relu", ReLU(), (0,)),
                          Node("fc2", Affine(np.ones((1, 4)), np.zeros(1)), (1,))])


def _attacker(net, A, b, **kw):
    checked = []

    def check(x):
        checked.append(x.copy())
        y = net.forward(x[None])[0]
        return (x, y) if np.all(A @ y - b <= 0) else None

    lo, hi = -np.ones(2), np.ones(2)
    attack = RA.RegionAttack(lambda x: net.forward(x), lambda x, c: vjp(net, x, c), A, b, [slice(0, len(b))],
                             lo, hi, check, np.random.default_rng(0), **kw)
    attack.started -= RA.FIRST_AFTER  # old enough for a first attack
    return attack, checked


def test_adam_reaches_a_tiny_unsafe_set():
    """The unsafe set |x - c|_1 <= 1e-4 has probability ~5e-9 per random point: the samples alone miss it."""
    net = _l1_distance_net()
    A, b = np.array([[1.0]]), np.array([1e-4])
    attack, checked = _attacker(net, A, b)
    found = attack()
    assert found is not None, "the Adam descent did not reach the unsafe set"
    x, y = found
    assert np.all(np.abs(x) <= 1) and y[0] <= 1e-4 and np.abs(x - CENTRE).sum() <= 1e-4
    np.testing.assert_allclose(net.forward(x[None])[0], y)


def test_no_counterexample_and_samples_double():
    net = _l1_distance_net()
    A, b = np.array([[1.0]]), np.array([-1.0])  # y <= -1: impossible
    attack, checked = _attacker(net, A, b)
    attack.started -= 1e6  # a long search: the share allows every attack
    assert attack() is None and attack() is None
    assert checked == [] and attack.attacks == 2 and attack.samples == 4 * RA.FIRST_SAMPLES


def test_time_share_gates_attacks(monkeypatch):
    net = _l1_distance_net()
    A, b = np.array([[1.0]]), np.array([-1.0])
    attack, _ = _attacker(net, A, b)
    attack.started = time.perf_counter()
    attack()
    assert attack.attacks == 0, "an attack ran before FIRST_AFTER"
    attack.spent = 10.0  # already 10 s of attacks in a search younger than 40 s: no new attack
    calls = []
    monkeypatch.setattr(attack, "_attack", lambda: calls.append(1))
    assert attack() is None and calls == [] and attack.attacks == 0
    attack.started = time.perf_counter() - attack.spent / RA.SHARE - 1.0  # old enough for 10 s of attacks
    attack()
    assert calls == [1]


def _acas(name: str, prop: int):
    root = benchmarks_dir()
    path = None if root is None else root / "acasxu" / f"ACASXU_run2a_{name}_batch_2000.onnx"
    if path is None or not path.exists():
        pytest.skip(NO_BENCHMARKS)
    net = absint.load_onnx(path)
    return path, net, absint.load_vnnlib(root / "acasxu" / f"prop_{prop}.vnnlib", net)


@pytest.mark.parametrize("name, prop, timeout", [("5_3", 2, 60), ("1_9", 7, 10)])
def test_acasxu_rare_counterexamples_found(name, prop, timeout):
    """5_3 prop_2: input splitting alone ran out of its 116 s (and the first attack found nothing); the
    region attacks find a counterexample. 1_9 prop_7: the counterexample has x_2 at its lower bound;
    with uniform points only it took 27 s of search (the attack found it after ~2.7 s of its 10 %
    share), face points find it in the first attack. Both confirmed by net.forward and onnxruntime."""
    path, net, spec = _acas(name, prop)
    v = absint.verify(net, spec, timeout=timeout, seed=0)
    assert v.status == "violated", v.stats
    x, y = v.counterexample
    assert spec.is_counterexample(x.ravel(), net.forward(x.reshape(1, -1))[0])
    assert_onnxruntime_confirms(path, spec, x)


def test_half_the_points_lie_on_the_faces():
    """The second half of an attack's random points has each coordinate at a bound with probability
    FACE_SHARE (half each side); the first half is uniform inside the box."""
    net = _l1_distance_net()
    A, b = np.array([[1.0]]), np.array([-1.0])
    seen = []

    def forward(x):
        seen.append(np.array(x, copy=True))
        return net.forward(x)

    attack = RA.RegionAttack(forward, lambda x, c: vjp(net, x, c), A, b, [slice(0, 1)], -np.ones(2), np.ones(2),
                             lambda x: None, np.random.default_rng(1))
    attack.started -= RA.FIRST_AFTER
    attack()
    x = seen[0]
    assert len(x) == RA.FIRST_SAMPLES
    half = len(x) // 2
    at_bound = np.abs(x) == 1.0
    assert not at_bound[:half].any()
    share = at_bound[half:].mean()
    assert abs(share - RA.FACE_SHARE) < 0.03, share
    assert abs((x[half:] == 1.0).mean() - (x[half:] == -1.0).mean()) < 0.03
