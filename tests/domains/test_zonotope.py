"""Zonotope (DeepZ) domain: soundness by sampling, and precision against the interval domain."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from absint.analysis import analyze
from absint.network import Affine, Network, Node
from tests.domains.cases import (OPS, RANDOM_SETTINGS, benchmark_case, benchmark_params, check_benchmark,
                                 check_random, check_zoo, random_cases, zoo_params)
from tests.domains.soundness import assert_contains
from tests.random_nets import random_box, random_network

DOMAIN = "zonotope"


@pytest.mark.parametrize("op", OPS)
@RANDOM_SETTINGS
@given(data=st.data())
def test_random_networks_sound(op, data):
    check_random(DOMAIN, *data.draw(random_cases(op), label="ops, seed, box"))


@pytest.mark.parametrize("family, net, prop, n", benchmark_params())
def test_benchmark_sound(family, net, prop, n):
    check_benchmark(DOMAIN, family, net, prop, n)


@pytest.mark.parametrize("name, image, eps, n", zoo_params())
def test_zoo_sound(name, image, eps, n):
    check_zoo(DOMAIN, name, image, eps, n)


@RANDOM_SETTINGS
@given(random_cases())
def test_unsound_fp_mode_is_sound_up_to_rounding_and_inside_sound_mode(case):
    """sound_fp=False bounds still hold up to rounding (tolerance), and sound_fp=True bounds contain them."""
    loose = check_random(DOMAIN, *case, n=300, sound_fp=False, rtol=1e-9, tol=1e-12)
    sound = check_random(DOMAIN, *case, n=300, sound_fp=True)
    assert_contains(sound.layer_bounds, loose.layer_bounds, rtol=1e-12, what="sound_fp=True ⊇ sound_fp=False")


# ------------------------------------------------------------------------------ precision
@RANDOM_SETTINGS
@given(random_cases())
def test_zonotope_inside_interval_on_random_networks(case):
    ops, seed, mode = case
    net = random_network(ops, seed)
    box = random_box(net.input_shape, mode, seed + 1)
    zono, inter = analyze(net, box, domain="zonotope"), analyze(net, box, domain="interval")
    assert_contains(inter.layer_bounds, zono.layer_bounds, rtol=1e-9, what="interval ⊇ zonotope")


@pytest.mark.parametrize("family, net, prop, n", [p for p in benchmark_params() if p.values[0] != "oval21"][::3])
def test_zonotope_inside_interval_on_benchmarks(family, net, prop, n):
    network, lower, upper, _ = benchmark_case(family, net, prop, n)
    zono = analyze(network, (lower, upper), domain="zonotope")
    inter = analyze(network, (lower, upper), domain="interval")
    assert_contains(inter.layer_bounds, zono.layer_bounds, rtol=1e-9, what="interval ⊇ zonotope")


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("sound_fp", [True, False])
def test_one_affine_layer_is_exact(seed, sound_fp):
    """On y = Wx + b the zonotope is exact: W⁺u + W⁻l + b and W⁺l + W⁻u + b."""
    rng = np.random.default_rng(seed)
    n_in, n_out = int(rng.integers(1, 30)), int(rng.integers(1, 20))
    w, b = rng.normal(size=(n_out, n_in)), rng.normal(size=n_out)
    w[rng.random(w.shape) < 0.2] = 0.0
    net = Network((n_in,), [Node("fc", Affine(w, b), (-1,))])
    lo = rng.normal(size=n_in)
    hi = lo + rng.uniform(0, 2, size=n_in) * (rng.random(n_in) < 0.8)
    res = analyze(net, (lo, hi), domain="zonotope", sound_fp=sound_fp)
    wp, wn = np.maximum(w, 0), np.minimum(w, 0)
    exact_hi, exact_lo = wp @ hi + wn @ lo + b, wp @ lo + wn @ hi + b
    scale = np.abs(w) @ np.maximum(np.abs(lo), np.abs(hi)) + np.abs(b)
    np.testing.assert_allclose(res.upper, exact_hi, rtol=0, atol=1e-12 * scale.max() + 1e-300)
    np.testing.assert_allclose(res.lower, exact_lo, rtol=0, atol=1e-12 * scale.max() + 1e-300)
    if sound_fp:
        assert np.all(res.lower <= exact_lo) and np.all(res.upper >= exact_hi)


def test_acasxu_prop1_zonotope_tighter_than_interval():
    network, lower, upper, _ = benchmark_case("acasxu", "ACASXU_run2a_1_1_batch_2000.onnx", "prop_1.vnnlib", 6000)
    zono = analyze(network, (lower, upper), domain="zonotope")
    inter = analyze(network, (lower, upper), domain="interval")
    assert np.mean(inter.width) >= np.mean(zono.width)
    for k, ((zl, zu), (il, iu)) in enumerate(zip(zono.layer_bounds, inter.layer_bounds)):
        assert np.mean(iu - il) >= np.mean(zu - zl), f"node {k}"
