"""Interval domain: soundness by sampling (random networks of every operator, benchmarks, zoo)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.domains.cases import (OPS, RANDOM_SETTINGS, benchmark_params, check_benchmark, check_random, check_zoo,
                                 random_cases, zoo_params)
from tests.domains.soundness import assert_contains

DOMAIN = "interval"


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
    assert_contains(sound.layer_bounds, loose.layer_bounds, rtol=0.0, what="sound_fp=True ⊇ sound_fp=False")
