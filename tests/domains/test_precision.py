"""Precision across domains: the relational domains are never looser than intervals, are exact on one
Affine layer, and are strictly tighter on ACAS Xu 1_1 / prop_1.

Containment is checked at every node: [zonotope] ⊆ [interval] and [deeppoly] ⊆ [interval] up to a
relative 1e-9 (both are sound over-approximations, the relational ones intersect with interval bounds).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
from hypothesis import given

from absint.analysis import analyze
from absint.network import Affine, Network, Node
from tests.domains.cases import (DOMAINS, RANDOM_SETTINGS, benchmark_case, benchmark_params, check_benchmark,
                                 random_cases)
from tests.domains.soundness import assert_contains
from tests.random_nets import random_box, random_network

RELATIONAL = ("zonotope", "deeppoly")
relational = pytest.mark.parametrize("domain", RELATIONAL)


# ------------------------------------------------------------------ ⊆ interval at every node
@relational
@RANDOM_SETTINGS
@given(case=random_cases())
def test_inside_interval_on_random_networks(domain, case):
    ops, seed, mode = case
    net = random_network(ops, seed)
    box = random_box(net.input_shape, mode, seed + 1)
    tight, inter = analyze(net, box, domain=domain), analyze(net, box, domain="interval")
    assert_contains(inter.layer_bounds, tight.layer_bounds, rtol=1e-9, what=f"interval ⊇ {domain}")


#: acasxu and mnistfc cases (every third): the oval21 CNNs are covered by the soundness tests
CONTAINMENT_BENCHMARKS = [p for p in benchmark_params() if p.values[0] != "oval21"][::3]


@lru_cache(maxsize=None)
def benchmark_analysis(domain: str, family: str, net: str, prop: str | None, n: int):
    """One analysis per (domain, case) per process, shared by the precision tests."""
    network, lower, upper, _ = benchmark_case(family, net, prop, n)
    return analyze(network, (lower, upper), domain=domain)


@relational
@pytest.mark.parametrize("family, net, prop, n", CONTAINMENT_BENCHMARKS)
def test_inside_interval_on_benchmarks(domain, family, net, prop, n):
    tight = benchmark_analysis(domain, family, net, prop, n)
    inter = benchmark_analysis("interval", family, net, prop, n)
    assert_contains(inter.layer_bounds, tight.layer_bounds, rtol=1e-9, what=f"interval ⊇ {domain}")


def test_assert_contains_detects_a_looser_node():
    """The containment check itself can fail: a bound widened by 1e-6 relative is reported."""
    inner = [(np.array([-1.0, 0.5]), np.array([1.0, 2.0]))]
    outer = [(np.array([-1.0, 0.5]), np.array([1.0 - 1e-6, 2.0]))]
    with pytest.raises(AssertionError, match="node 0 neuron 0"):
        assert_contains(outer, inner, rtol=1e-9, what="check")
    assert_contains(inner, inner, rtol=0.0, what="check")


# ------------------------------------------------------------------------- one Affine layer
def _one_affine(seed: int):
    """A random y = Wx + b (some zero weights) and a box with some zero-width inputs; seeds 0 and 1
    give the one-input / one-output edge cases."""
    rng = np.random.default_rng(seed)
    n_in, n_out = int(rng.integers(1, 30)), int(rng.integers(1, 20))
    if seed == 0:
        n_in = 1
    elif seed == 1:
        n_out = 1
    w, b = rng.normal(size=(n_out, n_in)), rng.normal(size=n_out)
    w[rng.random(w.shape) < 0.2] = 0.0
    net = Network((n_in,), [Node("fc", Affine(w, b), (-1,))])
    lo = rng.normal(size=n_in)
    hi = lo + rng.uniform(0, 2, size=n_in) * (rng.random(n_in) < 0.8)
    return net, w, b, lo, hi


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("sound_fp", [True, False])
def test_one_affine_layer_is_exact(domain, seed, sound_fp):
    """On y = Wx + b every domain gives the exact range W⁺u + W⁻l + b, W⁺l + W⁻u + b (up to rounding);
    in sound mode the bounds contain it."""
    net, w, b, lo, hi = _one_affine(seed)
    res = analyze(net, (lo, hi), domain=domain, sound_fp=sound_fp)
    wp, wn = np.maximum(w, 0), np.minimum(w, 0)
    exact_hi, exact_lo = wp @ hi + wn @ lo + b, wp @ lo + wn @ hi + b
    scale = np.abs(w) @ np.maximum(np.abs(lo), np.abs(hi)) + np.abs(b)
    atol = 1e-12 * scale.max() + 1e-300
    np.testing.assert_allclose(res.upper, exact_hi, rtol=0, atol=atol)
    np.testing.assert_allclose(res.lower, exact_lo, rtol=0, atol=atol)
    assert np.all(res.lower <= res.upper)
    if sound_fp:
        assert np.all(res.lower <= exact_lo) and np.all(res.upper >= exact_hi)


# ------------------------------------------------------------------------------ ACAS Xu 1_1
ACAS_1_1 = ("acasxu", "ACASXU_run2a_1_1_batch_2000.onnx", "prop_1.vnnlib", 6000)


def test_acasxu_prop1_relational_domains_tighter_than_interval():
    """All three domains are sound on 1_1 / prop_1, and the mean output width (and the mean width of
    every node) of zonotope and DeepPoly is below that of intervals, strictly at the output."""
    results = {d: check_benchmark(d, *ACAS_1_1) for d in DOMAINS}
    inter = results["interval"]
    for domain in RELATIONAL:
        tight = results[domain]
        assert np.mean(inter.width) > np.mean(tight.width), domain
        for k, ((tl, tu), (il, iu)) in enumerate(zip(tight.layer_bounds, inter.layer_bounds)):
            assert np.mean(iu - il) >= np.mean(tu - tl), f"{domain} node {k}"
