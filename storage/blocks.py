"""Blocks of generator rows: a dense (k, n) float64 array or a (k, n) scipy CSR matrix."""

from __future__ import annotations

from typing import Union

import numpy as np
import scipy.sparse as sp

from kernels.reductions import abs_row_sum

Block = Union[np.ndarray, sp.csr_matrix]

#: bytes per stored non-zero of a CSR matrix (float64 value + int64 column index)
CSR_BYTES_PER_NNZ = 16


def block_abs_sum(block: Block, out: np.ndarray) -> np.ndarray:
    """out[j] += Σ_i |block[i, j]| (dense: numba kernel; CSR: a weighted bincount of the columns)."""
    if sp.issparse(block):
        if block.nnz:
            out += np.bincount(block.indices, weights=np.abs(block.data), minlength=out.size)
        return out
    return abs_row_sum(np.ascontiguousarray(block, dtype=np.float64), out)


def block_nbytes(block: Block) -> int:
    """RAM held by a block."""
    if sp.issparse(block):
        return int(block.data.nbytes + block.indices.nbytes + block.indptr.nbytes)
    return int(block.nbytes)


def as_csr(block: Block) -> sp.csr_matrix:
    """A canonical CSR matrix (float64 values, int64 indices, sorted, explicit zeros dropped)."""
    if sp.issparse(block):
        m = block.tocsr()
    else:
        m = sp.csr_matrix(np.asarray(block, dtype=np.float64))
    if m.dtype != np.float64:
        m = m.astype(np.float64)
    m.sum_duplicates()
    m.eliminate_zeros()
    if m.indices.dtype != np.int64:
        m.indices = m.indices.astype(np.int64)
        m.indptr = m.indptr.astype(np.int64)
    return m


def as_dense(block: Block) -> np.ndarray:
    """A C-contiguous float64 array."""
    if sp.issparse(block):
        return block.toarray()
    return np.ascontiguousarray(block, dtype=np.float64)
