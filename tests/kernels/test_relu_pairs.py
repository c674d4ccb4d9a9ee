"""kernels/relu_pairs.py against the numpy references (random rows, empty and one-row inputs)."""

from __future__ import annotations

import numpy as np
import pytest

from kernels import relu_pairs as K
from tests.reference import relu_pairs_reference as R


def _arrays(rng, P, n):
    C = rng.normal(size=(P, n))
    C[rng.random((P, n)) < 0.2] = 0.0
    unstable = rng.random((P, n)) < 0.5
    fixed = (rng.random((P, n)) < 0.5).astype(float) * ~unstable
    sign = np.where(rng.random((P, n)) < 0.2, rng.choice([-1.0, 1.0], size=(P, n)), 0.0) * ~unstable
    return dict(C=C, alpha=rng.random((P, n)), su=rng.random((P, n)), bu=rng.random((P, n)) * 2, fixed=fixed,
                unstable=unstable, beta=rng.random((P, n)) * (sign != 0), sign=sign, mag=rng.random((P, n)) * 3)


@pytest.mark.parametrize("P, n", [(0, 4), (1, 1), (1, 7), (37, 50), (300, 256)])
@pytest.mark.parametrize("sparse", [False, True])
def test_backward_and_forward_match_numpy(P, n, sparse):
    rng = np.random.default_rng(P * 1000 + n)
    a = _arrays(rng, P, n)
    if sparse:  # most columns stable on every row, as on real networks: the branch-free pass alone
        stable = rng.random(n) < 0.7
        a["unstable"][:, stable] = False
        a["sign"][:, stable] = 0.0
        a["beta"][:, stable] = 0.0
    cols = K.live_columns(a["unstable"], a["sign"])
    if sparse:
        assert cols.size <= n - stable.sum()
    want = R.relu_backward_pairs(**a)
    C_out, const = np.full((P, n), np.nan), rng.normal(size=P)
    const0 = const.copy()
    abs_mag, abs_icpt = np.empty(P), np.empty(P)
    K.relu_backward_pairs(a["C"], a["alpha"], a["su"], a["bu"], a["fixed"], a["unstable"], a["beta"], a["sign"],
                          a["mag"], cols, C_out, const, abs_mag, abs_icpt)
    np.testing.assert_array_equal(C_out, want[0])  # elementwise: same operations, same rounding
    np.testing.assert_allclose(const - const0, want[1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(abs_mag, want[2], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(abs_icpt, want[3], rtol=1e-12, atol=1e-12)

    z = rng.normal(size=(P, n))
    h, ga, gb = np.full((P, n), np.nan), np.full((P, n), np.nan), np.full((P, n), np.nan)
    K.relu_forward_pairs(z, a["C"], a["alpha"], a["su"], a["bu"], a["fixed"], a["unstable"], a["sign"], cols,
                         h, ga, gb)
    for got, ref in zip((h, ga, gb), R.relu_forward_pairs(z, a["C"], a["alpha"], a["su"], a["bu"], a["fixed"],
                                                          a["unstable"], a["sign"])):
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("lo, hi", [(0.0, 1.0), (0.0, np.inf)])
def test_adam_step_matches_numpy(lo, hi):
    """Entries outside ``live`` and their moments are left as they were (even out of [lo, hi])."""
    rng = np.random.default_rng(3)
    x, g = rng.random((20, 9)) * 1.5 - 0.25, rng.normal(size=(20, 9))
    m1, m2 = rng.normal(size=(20, 9)) * 0.1, rng.random((20, 9)) * 0.1
    live = rng.random((20, 9)) < 0.5
    live[:, [2, 5]] = False  # columns without a live entry: outside ``cols``
    want = R.adam_ascent(x, g, m1, m2, 0.9, 0.999, 0.19, 0.002, 0.1, 1e-8, lo, hi, live)
    x2, a, v = x.copy(), m1.copy(), m2.copy()
    cols = K.live_columns(live, np.zeros_like(x))
    assert 2 not in cols and 5 not in cols
    K.adam_ascent(x2, g, a, v, 0.9, 0.999, 0.19, 0.002, 0.1, 1e-8, lo, hi, live, cols)
    np.testing.assert_allclose(x2, want[0], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(a, want[1], rtol=1e-14)
    np.testing.assert_allclose(v, want[2], rtol=1e-14)
    assert np.all((x2[live] >= lo) & (x2[live] <= hi))
    np.testing.assert_array_equal(x2[~live], x[~live])
    np.testing.assert_array_equal(a[~live], m1[~live])


def test_live_columns_are_where_a_row_is_unstable_or_split():
    unstable = np.array([[True, False, False, False], [False, False, False, False]])
    sign = np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0]])
    np.testing.assert_array_equal(K.live_columns(unstable, sign), [0, 2])
    assert K.live_columns(unstable[:0], sign[:0]).size == 0


def test_warmup_compiles_the_signatures_the_optimiser_uses():
    """After ``_warmup`` an optimisation (float32 iterates, float64 sound evaluations) compiles nothing new:
    the VNN-COMP prepare step warms every kernel, so a timed run must not pay for JIT compilation."""
    from absint.bab.slopes import optimise_pairs
    from tests.bab.test_slopes import random_setup, sub_problem

    K._warmup()
    names = ("relu_backward_pairs", "relu_forward_pairs", "adam_ascent")
    before = {n: list(getattr(K, n).dispatcher.signatures) for n in names}
    _, chain, lo, hi, fixed = random_setup(1, sizes=(4, 10, 10, 3), n_fixed=2)
    _, pp = sub_problem(chain, lo, hi, fixed, [0, 1, 2])
    optimise_pairs(pp, iterations=5, stop_at=np.inf)
    assert {n: list(getattr(K, n).dispatcher.signatures) for n in names} == before
