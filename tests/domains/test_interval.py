"""Interval-specific tests: monotone activations map the endpoints, [f(l), f(u)] (sound mode: outward
by a few ulp for libm rounding), on a network whose only node is the activation."""

from __future__ import annotations

import numpy as np
import pytest

from absint.analysis import analyze
from absint.network import NETWORK_INPUT, Network, Node, ReLU, Sigmoid, Tanh, sigmoid

ACTIVATIONS = {"relu": (ReLU, lambda x: np.maximum(x, 0.0)), "sigmoid": (Sigmoid, sigmoid), "tanh": (Tanh, np.tanh)}


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("n", [1, 17])
@pytest.mark.parametrize("sound_fp", [False, True])
def test_activation_maps_endpoints(name, n, sound_fp):
    layer, f = ACTIVATIONS[name]
    rng = np.random.default_rng(n)
    lo = rng.normal(size=n) * 4
    hi = lo + rng.uniform(0, 3, size=n) * (rng.random(n) < 0.8)
    lo[0], hi[0] = -40.0, 40.0  # saturated sigmoid/tanh ends
    net = Network((n,), [Node(name, layer(), (NETWORK_INPUT,))])
    res = analyze(net, (lo, hi), domain="interval", sound_fp=sound_fp)
    exp_lo, exp_hi = f(lo), f(hi)
    if sound_fp and name != "relu":
        assert np.all(res.lower <= exp_lo) and np.all(res.upper >= exp_hi)
        # widened by a few ulp of the larger endpoint (see test_saturated_sigmoid_lower_bound_positive)
        atol = 1e-14 * np.maximum(np.abs(exp_lo), np.abs(exp_hi))
        assert np.all(exp_lo - res.lower <= atol) and np.all(res.upper - exp_hi <= atol)
    else:
        np.testing.assert_array_equal(res.lower, exp_lo)
        np.testing.assert_array_equal(res.upper, exp_hi)


def test_saturated_sigmoid_lower_bound_positive():
    """σ(-40) ≈ 4.2e-18 > 0; a few-ulp outward rounding keeps the sound lower bound positive (the
    zonotope and DeepPoly transformers do), but the interval lower bound is about -8.8e-16."""
    net = Network((1,), [Node("sigmoid", Sigmoid(), (NETWORK_INPUT,))])
    res = analyze(net, (np.array([-40.0]), np.array([40.0])), domain="interval")
    assert res.lower[0] > 0.0 and res.lower[0] >= sigmoid(np.array([-40.0]))[0] * (1 - 1e-14)
