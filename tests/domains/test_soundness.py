"""Soundness of every domain by sampling: concrete values of every node lie inside its bounds.

Written once and parametrised over ``DOMAINS``: random networks of every operator (hypothesis),
benchmark networks with their properties' boxes, the bundled digits networks, and the
``sound_fp=False`` mode (sound up to rounding, and contained in the sound mode's bounds).
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.domains.cases import (DOMAINS, OPS, RANDOM_SETTINGS, benchmark_params, check_benchmark, check_random,
                                 check_zoo, random_cases, zoo_params)
from tests.domains.soundness import assert_contains

#: relative slack of "sound_fp=True bounds ⊇ sound_fp=False bounds": the interval domain computes the
#: same values and only widens; the relational domains may pick relaxations from (slightly) different
#: bounds, which moves the result by a few ulp in either direction
FP_CONTAINMENT_RTOL = {"interval": 0.0, "zonotope": 1e-12, "deeppoly": 1e-12}

domains = pytest.mark.parametrize("domain", DOMAINS)


@domains
@pytest.mark.parametrize("op", OPS)
@RANDOM_SETTINGS
@given(data=st.data())
def test_random_networks_sound(domain, op, data):
    check_random(domain, *data.draw(random_cases(op), label="ops, seed, box"))


@domains
@pytest.mark.parametrize("family, net, prop, n", benchmark_params())
def test_benchmark_sound(domain, family, net, prop, n):
    check_benchmark(domain, family, net, prop, n)


@domains
@pytest.mark.parametrize("name, image, eps, n", zoo_params())
def test_zoo_sound(domain, name, image, eps, n):
    check_zoo(domain, name, image, eps, n)


#: regression for DeepPoly's sound_fp=False bounds of zero-width neurons once inverted by an ulp: test_deeppoly.py
FP_MODE_DOMAINS = list(DOMAINS)


@pytest.mark.parametrize("domain", FP_MODE_DOMAINS)
@RANDOM_SETTINGS
@given(case=random_cases())
@example(case=(("affine",), 0, "point"))  # a one-Affine network over a zero-width box
def test_unsound_fp_mode_is_sound_up_to_rounding_and_inside_sound_mode(domain, case):
    """sound_fp=False bounds still hold up to rounding (tolerance), and sound_fp=True bounds contain them."""
    loose = check_random(domain, *case, n=300, sound_fp=False, rtol=1e-9, tol=1e-12)
    sound = check_random(domain, *case, n=300, sound_fp=True)
    assert_contains(sound.layer_bounds, loose.layer_bounds, rtol=FP_CONTAINMENT_RTOL[domain],
                    what=f"{domain}: sound_fp=True ⊇ sound_fp=False")
