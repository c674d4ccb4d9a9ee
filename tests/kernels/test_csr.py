"""kernels/csr.py against the slow numpy references of tests/reference/csr_reference.py."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels.csr import (_warmup, conv_output_size, conv_support_1d, conv_support_count,
                         conv_support_step, csr_abs_row_sum, csr_abs_row_sum_matrix, csr_conv2d,
                         csr_conv2d_matrix, csr_conv2d_scratch_bytes)
from kernels.reductions import abs_row_sum
from tests.reference.csr_reference import (abs_col_sum_reference, conv2d_rows_reference,
                                           conv_support_reference, structural_support_reference)


def _random_csr(rng, m, n, density, dtype=np.int32):
    """Random CSR (m, n) with non-zero normal values; index arrays of the given dtype."""
    G = sp.random(m, n, density=density, format="csr", random_state=rng,
                  data_rvs=lambda k: rng.standard_normal(k) + 3.0 * np.sign(rng.standard_normal(k)))
    G.indices = G.indices.astype(dtype)
    G.indptr = G.indptr.astype(dtype)
    return G


def _check_conv(G, weight, in_chw, stride, padding, dilation, groups):
    """csr_conv2d_matrix equals the dense reference, and its pattern is the structural support."""
    X = G.toarray()
    Y, out_chw = conv2d_rows_reference(X, weight, in_chw, stride, padding, dilation, groups)
    R = csr_conv2d_matrix(G, weight, in_chw, out_chw, stride, padding, dilation, groups)
    assert R.shape == Y.shape
    # both sides sum the same products in different orders: near-cancelling sums may differ
    # by a few ulps of sum |w x|, so that magnitude (conv of |X| with |W|) joins the atol
    mag, _ = conv2d_rows_reference(np.abs(X), np.abs(weight), in_chw, stride, padding, dilation,
                                   groups)
    err = np.abs(R.toarray() - Y)
    bound = 1e-300 + 1e-12 * (np.abs(Y) + mag)
    bad = np.argwhere(err > bound)
    assert bad.size == 0, f"{len(bad)} entries differ, first {bad[0]}: err {err[tuple(bad[0])]!r}"
    # sorted, unique columns in every row
    for r in range(R.shape[0]):
        cols = R.indices[R.indptr[r]:R.indptr[r + 1]]
        assert np.all(np.diff(cols) > 0)
    # the stored pattern is exactly the structural support (exact zeros may be stored)
    support = structural_support_reference(X, weight.shape, in_chw, stride, padding, dilation, groups)
    stored = np.zeros(Y.shape, dtype=bool)
    stored[np.repeat(np.arange(R.shape[0]), np.diff(R.indptr)), R.indices] = True
    np.testing.assert_array_equal(stored, support)
    return R, Y


CASES = {
    # name: (C, H, W, C_out, KH, KW, stride, padding, dilation, groups)
    "3x3_same": (3, 8, 8, 5, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "stride2": (4, 9, 9, 6, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), 1),
    "asym_pad": (2, 7, 6, 3, 3, 2, (1, 1), (0, 2, 1, 0), (1, 1), 1),
    "dilation2": (3, 10, 9, 4, 3, 3, (1, 1), (2, 2, 2, 2), (2, 2), 1),
    "stride2_dilation3": (2, 13, 11, 2, 3, 3, (2, 2), (1, 0, 2, 3), (3, 3), 1),
    "depthwise": (6, 8, 8, 6, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 6),
    "depthwise_mult2": (3, 7, 7, 6, 3, 3, (2, 1), (1, 1, 0, 1), (1, 2), 3),
    "groups2": (4, 6, 6, 6, 2, 3, (1, 2), (0, 1, 1, 0), (1, 1), 2),
    "1x1": (5, 6, 7, 3, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "1x1_stride2_pad": (2, 5, 5, 4, 1, 1, (2, 2), (1, 1, 1, 1), (1, 1), 1),
    "kernel_covers_input": (2, 3, 3, 2, 3, 3, (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "non_square": (2, 4, 11, 3, 2, 4, (1, 3), (1, 0, 0, 2), (2, 1), 1),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_conv_cases(name, index_dtype):
    C, H, W, Co, KH, KW, stride, padding, dilation, groups = CASES[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    weight = rng.standard_normal((Co, C // groups, KH, KW))
    G = _random_csr(rng, 9, C * H * W, 0.08, index_dtype)
    _check_conv(G, weight, (C, H, W), stride, padding, dilation, groups)


def test_conv_dense_rows_use_scan_path():
    """Rows touching most output positions take the marker-scan ordering path."""
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((4, 1, 3, 3))
    G = _random_csr(rng, 5, 2 * 9 * 9, 0.7)
    _check_conv(G, weight, (2, 9, 9), (1, 1), (1, 1, 1, 1), (1, 1), 2)


def test_conv_sparse_rows_use_sort_path():
    """Few entries on a large plane (touched keys < 1/16 of all): keys are sorted; overlapping
    windows and unsorted input columns make the raw key order non-monotone."""
    rng = np.random.default_rng(6)
    C, H, W = 2, 24, 24
    weight = rng.standard_normal((4, 1, 3, 3))
    cols = [[1 * H * W + 5 * W + 6, 5 * W + 6, 5 * W + 5, 6 * W + 4],   # unsorted, overlapping
            [23 * W + 23, 0, 12 * W + 12],
            [7 * W + 7, 7 * W + 8]]
    flat = np.concatenate(cols)
    indptr = np.r_[0, np.cumsum([len(c) for c in cols])]
    G = sp.csr_matrix((rng.standard_normal(flat.size), flat, indptr), shape=(3, C * H * W))
    assert not G.has_sorted_indices
    _check_conv(G, weight, (C, H, W), (1, 1), (1, 1, 1, 1), (1, 1), 2)
    _check_conv(G, weight, (C, H, W), (1, 1), (2, 2, 2, 2), (2, 2), 2)


def test_conv_one_hot_rows_and_abs_weight():
    """One-hot input symbols: row k of the result is the impulse response of input k; |W| too."""
    rng = np.random.default_rng(2)
    C, H, W = 3, 6, 5
    weight = rng.standard_normal((4, C, 3, 3))
    G = sp.csr_matrix(sp.identity(C * H * W) * 0.25)
    R, Y = _check_conv(G, weight, (C, H, W), (2, 1), (1, 1, 1, 1), (1, 1), 1)
    Ra, Ya = _check_conv(G, np.abs(weight), (C, H, W), (2, 1), (1, 1, 1, 1), (1, 1), 1)
    assert np.all(Ra.data >= 0)
    np.testing.assert_array_equal(Ra.indices, R.indices)


def test_conv_empty_matrix():
    weight = np.ones((2, 1, 3, 3))
    for m in (0, 4):
        G = sp.csr_matrix((m, 1 * 5 * 5))
        R = csr_conv2d_matrix(G, weight, (1, 5, 5), (2, 5, 5), (1, 1), (1, 1, 1, 1), (1, 1), 1)
        assert R.shape == (m, 50) and R.nnz == 0
        np.testing.assert_array_equal(R.indptr, np.zeros(m + 1))


def test_conv_zero_rows_and_one_row():
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((3, 2, 2, 2))
    X = np.zeros((6, 2 * 4 * 4))
    X[1, [0, 17, 31]] = [1.0, -2.0, 0.5]
    X[4, 5] = 3.0
    G = sp.csr_matrix(X)
    R, _ = _check_conv(G, weight, (2, 4, 4), (1, 1), (0, 1, 1, 0), (1, 1), 1)
    assert np.diff(R.indptr)[[0, 2, 3, 5]].tolist() == [0, 0, 0, 0]
    one = sp.csr_matrix(X[1:2])
    _check_conv(one, weight, (2, 4, 4), (1, 1), (0, 1, 1, 0), (1, 1), 1)


def test_conv_raw_arrays_and_dtypes():
    rng = np.random.default_rng(4)
    weight = rng.standard_normal((2, 2, 3, 3))
    G = _random_csr(rng, 4, 2 * 5 * 5, 0.2, np.int64)
    ip, ix, dt = csr_conv2d(G.indptr, G.indices, G.data, weight, (2, 5, 5), (2, 5, 5),
                            (1, 1), (1, 1, 1, 1), (1, 1), 1)
    assert ip.dtype == np.int64 and ix.dtype == np.int32 and dt.dtype == np.float64
    Y, _ = conv2d_rows_reference(G.toarray(), weight, (2, 5, 5), (1, 1), (1, 1, 1, 1), (1, 1), 1)
    np.testing.assert_allclose(sp.csr_matrix((dt, ix, ip), shape=Y.shape).toarray(), Y,
                               rtol=1e-12, atol=1e-300)


def test_conv_duplicate_columns_are_summed():
    """An unsorted CSR row with a repeated column means the sum of its entries (scipy semantics)."""
    weight = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    indptr = np.array([0, 3])
    indices = np.array([12, 3, 12])
    data = np.array([1.0, 2.0, -0.25])
    ip, ix, dt = csr_conv2d(indptr, indices, data, weight, (1, 5, 5), (1, 5, 5),
                            (1, 1), (1, 1, 1, 1), (1, 1), 1)
    x = np.zeros((1, 25))
    np.add.at(x[0], indices, data)
    Y, _ = conv2d_rows_reference(x, weight, (1, 5, 5), (1, 1), (1, 1, 1, 1), (1, 1), 1)
    np.testing.assert_allclose(sp.csr_matrix((dt, ix, ip), shape=(1, 25)).toarray(), Y,
                               rtol=1e-12, atol=1e-300)
    assert np.all(np.diff(ix) > 0)


def test_conv_exact_cancellation_stays_stored():
    """Entries that cancel exactly stay in the pattern as stored zeros."""
    weight = np.ones((1, 1, 1, 2))
    G = sp.csr_matrix(np.array([[1.0, -1.0, 0.0]]))
    R = csr_conv2d_matrix(G, weight, (1, 1, 3), (1, 1, 2), (1, 1), (0, 0, 0, 0), (1, 1), 1)
    assert R.indices.tolist() == [0, 1]
    assert R.data.tolist() == [0.0, -1.0]


def test_conv_deterministic_across_calls():
    rng = np.random.default_rng(5)
    weight = rng.standard_normal((8, 4, 3, 3))
    G = _random_csr(rng, 50, 4 * 12 * 12, 0.05)
    a = csr_conv2d_matrix(G, weight, (4, 12, 12), (8, 6, 6), (2, 2), (1, 1, 1, 1), (1, 1), 1)
    b = csr_conv2d_matrix(G, weight, (4, 12, 12), (8, 6, 6), (2, 2), (1, 1, 1, 1), (1, 1), 1)
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)
    # rows do not depend on which other rows are in the batch
    c = csr_conv2d_matrix(G[17:18], weight, (4, 12, 12), (8, 6, 6), (2, 2), (1, 1, 1, 1), (1, 1), 1)
    np.testing.assert_array_equal(c.data, a[17].data)


@pytest.mark.parametrize("bad", [
    dict(out_chw=(2, 4, 5)),                    # wrong output size
    dict(groups=3),                             # C_in not divisible
    dict(padding=(1, 1, 1)),                    # 3 pads
    dict(stride=(0, 1)),
])
def test_conv_rejects_bad_geometry(bad):
    weight = np.ones((2, 2, 3, 3))
    kw = dict(out_chw=(2, 5, 5), stride=(1, 1), padding=(1, 1, 1, 1), dilation=(1, 1), groups=1)
    kw.update(bad)
    G = sp.csr_matrix(np.ones((1, 50)))
    with pytest.raises(ValueError):
        csr_conv2d_matrix(G, weight, (2, 5, 5), kw["out_chw"], kw["stride"], kw["padding"],
                          kw["dilation"], kw["groups"])


def test_conv_rejects_out_of_range_column():
    with pytest.raises(ValueError):
        csr_conv2d(np.array([0, 1]), np.array([25]), np.array([1.0]), np.ones((1, 1, 1, 1)),
                   (1, 5, 5), (1, 5, 5))


@st.composite
def conv_problems(draw):
    groups = draw(st.integers(1, 3))
    cin_g = draw(st.integers(1, 3))
    cout_g = draw(st.integers(1, 3))
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pads = tuple(draw(st.integers(0, 3)) for _ in range(4))
    H = draw(st.integers(1, 9))
    W = draw(st.integers(1, 9))
    oh = conv_output_size(H, KH, sh, pads[0], pads[2], dh)
    ow = conv_output_size(W, KW, sw, pads[1], pads[3], dw)
    if oh < 1 or ow < 1:
        H += dh * (KH - 1)
        W += dw * (KW - 1)
    m = draw(st.integers(0, 6))
    density = draw(st.sampled_from([0.0, 0.05, 0.3, 1.0]))
    seed = draw(st.integers(0, 2**31))
    return (groups * cin_g, H, W, groups * cout_g, KH, KW, (sh, sw), pads, (dh, dw), groups, m,
            density, seed)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_problems())
def test_conv_hypothesis(problem):
    C, H, W, Co, KH, KW, stride, padding, dilation, groups, m, density, seed = problem
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((Co, C // groups, KH, KW))
    G = _random_csr(rng, m, C * H * W, density)
    _check_conv(G, weight, (C, H, W), stride, padding, dilation, groups)


# ----------------------------------------------------------------------------- abs row sum

@pytest.mark.parametrize("shape,density", [((0, 7), 0.0), ((1, 7), 0.5), ((5, 0), 0.0),
                                           ((30, 40), 0.1), ((4, 9), 1.0), ((6, 5), 0.0)])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_abs_row_sum(shape, density, index_dtype):
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    G = _random_csr(rng, *shape, density, index_dtype)
    out = rng.standard_normal(shape[1]) ** 2          # accumulates into existing values
    expected = out + abs_col_sum_reference(G.toarray())
    csr_abs_row_sum(G.indptr, G.indices, G.data, out)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(csr_abs_row_sum_matrix(G), abs_col_sum_reference(G.toarray()),
                               rtol=1e-12, atol=1e-300)


def test_abs_row_sum_bitwise_equal_to_dense_kernel():
    """Same summation order as kernels.reductions.abs_row_sum, so results agree bit for bit."""
    rng = np.random.default_rng(7)
    G = _random_csr(rng, 200, 300, 0.2)
    G.data *= 10.0 ** rng.integers(-8, 8, G.nnz)
    a = csr_abs_row_sum_matrix(G)
    b = abs_row_sum(np.ascontiguousarray(G.toarray()), np.zeros(300))
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- conv support

@pytest.mark.parametrize("n_in,kernel,stride,pad,dilation", [
    (1, 1, 1, 0, 1), (7, 3, 1, 1, 1), (8, 3, 2, 1, 1), (9, 3, 1, 2, 2), (13, 3, 2, 1, 3),
    (6, 1, 2, 1, 1), (3, 5, 1, 0, 1), (10, 4, 3, 3, 2), (0, 3, 1, 1, 1)])
def test_conv_support_1d_cases(n_in, kernel, stride, pad, dilation):
    _check_support(n_in, kernel, stride, pad, dilation)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 15), st.integers(1, 5), st.integers(1, 4), st.integers(0, 4),
       st.integers(1, 4), st.integers(0, 4))
def test_conv_support_1d_hypothesis(n_in, kernel, stride, pad, dilation, pad_after):
    _check_support(n_in, kernel, stride, pad, dilation, pad_after)


def _check_support(n_in, kernel, stride, pad, dilation, pad_after=None):
    pad_after = pad if pad_after is None else pad_after
    n_out = max(0, conv_output_size(n_in, kernel, stride, pad, pad_after, dilation))
    first, last = conv_support_1d(n_in, kernel, stride, pad, dilation, n_out)
    count = conv_support_count(n_in, kernel, stride, pad, dilation, n_out)
    step = conv_support_step(stride, dilation)
    ref = conv_support_reference(n_in, kernel, stride, pad, dilation, n_out)
    assert first.shape == last.shape == count.shape == (n_in,)
    for t, cover in enumerate(ref):
        if cover:
            assert (first[t], last[t]) == (cover[0], cover[-1])
            assert cover == list(range(first[t], last[t] + 1, step))
        else:
            assert (first[t], last[t]) == (0, -1)
        assert count[t] == len(cover)


def test_conv_support_predicts_one_hot_nnz():
    """nnz of a conv of a one-hot symbol at (c, i, j) = C_out/groups * count_h(i) * count_w(j)."""
    C, H, W, Co, groups = 4, 9, 8, 6, 2
    KH, KW, stride, pads, dil = 3, 2, (2, 1), (1, 0, 2, 1), (2, 3)
    OH = conv_output_size(H, KH, stride[0], pads[0], pads[2], dil[0])
    OW = conv_output_size(W, KW, stride[1], pads[1], pads[3], dil[1])
    G = sp.csr_matrix(sp.identity(C * H * W))
    R = csr_conv2d_matrix(G, np.ones((Co, C // groups, KH, KW)), (C, H, W), (Co, OH, OW), stride,
                          pads, dil, groups)
    ch = conv_support_count(H, KH, stride[0], pads[0], dil[0], OH)
    cw = conv_support_count(W, KW, stride[1], pads[1], dil[1], OW)
    predicted = (Co // groups) * np.broadcast_to(ch[:, None] * cw[None, :], (C, H, W)).ravel()
    np.testing.assert_array_equal(np.diff(R.indptr), predicted)


def test_scratch_bytes():
    assert csr_conv2d_scratch_bytes(0, (4, 8, 8)) == 0
    one = csr_conv2d_scratch_bytes(1, (4, 8, 8), groups=2)
    assert one == 16 * 2 * 64 + 8 * 4 * 64 + 16
    assert csr_conv2d_scratch_bytes(1000, (4, 8, 8)) >= csr_conv2d_scratch_bytes(1, (4, 8, 8))


def test_warmup_runs():
    _warmup()
