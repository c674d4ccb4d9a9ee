"""kernels.patterns against the bool-array references in tests/reference/patterns_reference.py."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.patterns import (hamming_matrix, hamming_nearest, hamming_nearest_grouped, n_words, pack_positive,
                              popcount64, popcount_rows)
from tests.reference import patterns_reference as ref

WIDTHS = [0, 1, 5, 63, 64, 65, 130, 256]
ROWS = [0, 1, 7]


def _packed(rng, n, d, p=0.5):
    x = np.where(rng.random((n, d)) < p, 1.0, -1.0)
    out = np.zeros((n, n_words(d)), dtype=np.uint64)
    return pack_positive(x, out), x


@pytest.mark.parametrize("d", WIDTHS)
@pytest.mark.parametrize("n", ROWS)
def test_pack_positive_equals_reference(n, d):
    rng = np.random.default_rng(n * 1000 + d)
    x = rng.standard_normal((n, d))
    x[rng.random((n, d)) < 0.1] = 0.0            # exact zeros are inactive
    out = np.full((n, n_words(d)), 7, dtype=np.uint64)
    pack_positive(x, out)
    assert np.array_equal(out, ref.pack(x > 0))
    assert np.array_equal(ref.unpack(out, d), x > 0)


def test_pack_positive_nan_inactive_and_large_batch():
    x = np.array([[np.nan, 1.0, -np.inf, np.inf]])
    out = np.zeros((1, 1), np.uint64)
    assert int(pack_positive(x, out)[0, 0]) == 0b1010
    rng = np.random.default_rng(3)
    big = rng.standard_normal((2000, 100))                 # takes the parallel path
    assert np.array_equal(pack_positive(big, np.zeros((2000, 2), np.uint64)), ref.pack(big > 0))


def test_popcount():
    for v in [0, 1, 3, 2**63, 2**64 - 1, 0xF0F0]:
        assert popcount64(np.uint64(v)) == bin(v).count("1")
    rng = np.random.default_rng(0)
    P, x = _packed(rng, 9, 130)
    assert np.array_equal(popcount_rows(P, np.zeros(9, np.int64)), (x > 0).sum(axis=1))
    assert popcount_rows(np.zeros((0, 2), np.uint64), np.zeros(0, np.int64)).shape == (0,)


@pytest.mark.parametrize("d", WIDTHS)
@pytest.mark.parametrize("nq,nd", [(0, 5), (5, 0), (0, 0), (1, 1), (1, 9), (9, 1), (13, 40)])
def test_hamming_against_reference(nq, nd, d):
    rng = np.random.default_rng(nq * 31 + nd * 7 + d)
    Q, _ = _packed(rng, nq, d)
    D, _ = _packed(rng, nd, d, p=0.3)
    if nq and nd:
        Q[0] = D[nd // 2]                                  # an exact hit: distance 0
    m = hamming_matrix(Q, D, np.zeros((nq, nd), np.int64))
    assert np.array_equal(m, ref.hamming_matrix(Q, D, d))
    dist, idx = hamming_nearest(Q, np.ascontiguousarray(D.T), np.zeros(nq, np.int64), np.zeros(nq, np.int64))
    want_d, want_i = ref.nearest(Q, D, d)
    assert np.array_equal(dist, want_d) and np.array_equal(idx, want_i)


@pytest.mark.parametrize("d", [1, 64, 100, 200])
def test_hamming_nearest_grouped(d):
    rng = np.random.default_rng(d)
    D, _ = _packed(rng, 30, d)
    ptr = np.array([0, 10, 10, 25, 30], np.int64)          # group 1 is empty
    Q, _ = _packed(rng, 12, d)
    group = np.array([0, 1, 2, 3, 0, 1, 2, 3, -1, 4, 2, 0], np.int64)
    DW = np.ascontiguousarray(D.T)
    dist, idx = hamming_nearest_grouped(Q, group, DW, ptr, np.zeros(12, np.int64), np.zeros(12, np.int64))
    want_d, want_i = ref.nearest_grouped(Q, group, D, ptr, d)
    assert np.array_equal(dist, want_d) and np.array_equal(idx, want_i)
    assert dist[1] == -1 and dist[8] == -1 and dist[9] == -1
    e, f = hamming_nearest_grouped(Q[:0], group[:0], DW, ptr, np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert e.shape == f.shape == (0,)


def test_nearest_across_search_blocks_and_ties():
    """More stored patterns than one search block; ties resolve to the first index, as the reference."""
    from kernels.patterns import SEARCH_BLOCK

    rng = np.random.default_rng(11)
    n = 2 * SEARCH_BLOCK + 37
    D, _ = _packed(rng, n, 100)
    D[n - 5] = D[SEARCH_BLOCK + 3]                        # duplicate in a later block
    Q, _ = _packed(rng, 20, 100)
    Q[0] = D[n - 5]
    Q[1] = D[2 * SEARCH_BLOCK + 1] ^ np.array([1, 0], np.uint64)
    dist, idx = hamming_nearest(Q, np.ascontiguousarray(D.T), np.zeros(20, np.int64), np.zeros(20, np.int64))
    want_d, want_i = ref.nearest(Q, D, 100)
    assert np.array_equal(dist, want_d) and np.array_equal(idx, want_i)
    assert idx[0] == SEARCH_BLOCK + 3 and dist[0] == 0
