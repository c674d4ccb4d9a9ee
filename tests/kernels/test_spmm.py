"""kernels/spmm.py and deeppoly_batch.right_product against dense numpy products."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import scipy.sparse as sp

from absint.domains.deeppoly_batch import SparseAffine, layer_product, right_product, transposed_product
from absint.network import Affine
from kernels.spmm import _dense_csr_blocks, _dense_csr_segments, dense_csr


def _csr(rng, n, m, density, dtype, index_dtype):
    W = sp.random(n, m, density=density, format="csr", random_state=rng, dtype=np.float64)
    W.data = rng.normal(size=W.nnz)
    W = sp.csr_array(W.astype(dtype))
    W.indices, W.indptr = W.indices.astype(index_dtype), W.indptr.astype(index_dtype)
    return W


def _rows(rng, P, n, zeros):
    C = rng.normal(size=(P, n))
    C[rng.random((P, n)) < zeros] = 0.0
    return C


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("P, n, m, density, zeros", [(0, 5, 4, 0.5, 0.0), (1, 1, 1, 1.0, 0.0), (3, 7, 9, 0.0, 0.5),
                                                     (37, 40, 60, 0.1, 0.9), (200, 128, 300, 0.05, 0.3)])
def test_dense_csr_equals_dense_product(dtype, index_dtype, P, n, m, density, zeros):
    rng = np.random.default_rng(P + n + m)
    W = _csr(rng, n, m, density, dtype, index_dtype)
    C = _rows(rng, P, n, zeros).astype(dtype)
    out = np.full((P, m), np.nan, dtype)  # every entry is written, also the rows of all-zero C
    dense_csr(C, W.indptr, W.indices, W.data, out)
    want = C.astype(np.float64) @ W.toarray().astype(np.float64)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, want, rtol=tol, atol=tol * max(1.0, np.abs(want).max(initial=0)))


def test_dense_csr_sums_duplicates_and_does_not_depend_on_threads():
    rng = np.random.default_rng(1)
    # an unsorted CSR with a duplicate entry (scipy keeps both until sum_duplicates)
    W = sp.csr_array((np.array([1.0, 2.0, 3.0, 0.5]), np.array([2, 0, 2, 1]), np.array([0, 3, 4])), shape=(2, 3))
    C = np.array([[1.0, 2.0], [0.0, -1.0]])
    out = np.empty((2, 3))
    dense_csr(C, W.indptr, W.indices, W.data, out)
    np.testing.assert_array_equal(out, [[2.0, 1.0, 4.0], [0.0, -0.5, 0.0]])
    W = _csr(rng, 300, 500, 0.05, np.float64, np.int32)
    C = _rows(rng, 400, 300, 0.8)
    outs = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            out = np.empty((400, 500))
            dense_csr.dispatcher(C, W.indptr, W.indices, W.data, out)
            outs.append(out)
        finally:
            numba.set_num_threads(previous)
    np.testing.assert_array_equal(outs[0], outs[1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("P", [1, 7, 64, 65, 130])
@pytest.mark.parametrize("segments", [1, 2, 3, 7])
def test_segment_kernel_is_the_block_kernel_bit_for_bit(dtype, P, segments):
    # (block, output-column segment) tasks sum every output over the same entries in the same order as
    # the block kernel; segments of unequal width, partial blocks, rows of C that are zero on a block
    rng = np.random.default_rng(P * 10 + segments)
    W = _csr(rng, 90, 101, 0.2, dtype, np.int32)
    assert W.has_sorted_indices
    C = _rows(rng, P, 90, 0.4).astype(dtype)
    C[:, rng.random(90) < 0.3] = 0.0
    want = np.full((P, 101), np.nan, dtype)
    _dense_csr_blocks(C, W.indptr, W.indices, W.data, want)
    got = np.full((P, 101), np.nan, dtype)
    _dense_csr_segments(C, W.indptr, W.indices, W.data, got, segments)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got, C.astype(np.float64) @ W.toarray().astype(np.float64),
                               rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-4)


def test_dense_csr_takes_the_segment_kernel_on_few_rows_with_sorted_indices():
    # large enough to run in parallel, fewer rows than two blocks: the dispatcher's segment path
    rng = np.random.default_rng(6)
    W = _csr(rng, 400, 600, 0.2, np.float64, np.int32)
    C = _rows(rng, 40, 400, 0.5)
    previous = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        out = np.full((40, 600), np.nan)
        dense_csr(C, W.indptr, W.indices, W.data, out, True)
    finally:
        numba.set_num_threads(previous)
    want = np.empty_like(out)
    _dense_csr_blocks(C, W.indptr, W.indices, W.data, want)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_allclose(out, C @ W.toarray(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("zeros", [0.0, 0.95])
def test_right_product_sparse_and_dense(zeros):
    rng = np.random.default_rng(2)
    W = _csr(rng, 60, 80, 0.1, np.float64, np.int32)
    C = _rows(rng, 50, 60, zeros)
    np.testing.assert_allclose(right_product(C, W), C @ W.toarray(), rtol=1e-12, atol=1e-12)
    Wd = W.toarray()
    np.testing.assert_array_equal(right_product(C, Wd), C @ Wd)  # a dense W: numpy's product


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_transposed_product_is_the_forward_product(dtype):
    rng = np.random.default_rng(3)
    W = _csr(rng, 70, 90, 0.1, dtype, np.int32)
    X = _rows(rng, 130, 90, 0.2).astype(dtype)  # two full blocks of rows and a partial one
    want = X.astype(np.float64) @ W.toarray().T.astype(np.float64)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for WT in (None, sp.csr_array(W.T)):
        got = transposed_product(X, W, WT)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    Wd = W.toarray()
    np.testing.assert_array_equal(transposed_product(X, Wd), X @ Wd.T)


def test_sparse_affine_keeps_its_transpose():
    rng = np.random.default_rng(4)
    layer = SparseAffine(_csr(rng, 20, 30, 0.2, np.float64, np.int32).toarray(), rng.normal(size=20))
    assert layer.weight_t is layer.weight_t  # built once
    np.testing.assert_array_equal(layer.weight_t.toarray(), layer.weight.toarray().T)


@pytest.mark.parametrize("absolute", [False, True])
def test_layer_product_of_sparse_and_dense_layers(absolute):
    rng = np.random.default_rng(5)
    W = _csr(rng, 40, 50, 0.15, np.float64, np.int32).toarray()
    bias = rng.normal(size=40)
    X = _rows(rng, 70, 50, 0.3)
    want = X @ (np.abs(W) if absolute else W).T
    for layer in (SparseAffine(W, bias), Affine(W, bias)):
        np.testing.assert_allclose(layer_product(X, layer, absolute), want, rtol=1e-12, atol=1e-12)
