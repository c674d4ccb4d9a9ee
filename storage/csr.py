"""``CSRStore``: the generator matrix as a scipy.sparse CSR matrix in RAM.

Through the convolutional prefix of an image network a symbol only reaches its receptive field,
so rows hold few non-zeros; layers are applied row block by row block through the operator's
sparse path (``RowOperator.apply_sparse``: CSR-conv scatter kernel, sparse x dense product).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .base import NoiseStore, StoreBuilder, StoreFormat, one_hot_rows
from .blocks import CSR_BYTES_PER_NNZ, Block, as_csr, block_abs_sum, block_nbytes


@dataclass(frozen=True)
class CSRFormat(StoreFormat):
    """Stores as CSR matrices: about 16 bytes per non-zero (value + column index)."""

    name = "csr"

    def builder(self, n_cols: int) -> "CSRBuilder":
        return CSRBuilder(n_cols)


class CSRBuilder(StoreBuilder):
    def __init__(self, n_cols: int):
        super().__init__(n_cols)
        self._blocks: list[sp.csr_matrix] = []

    def _append(self, block: Block) -> None:
        self._blocks.append(as_csr(block))

    def finish(self) -> "CSRStore":
        if not self._blocks:
            matrix = sp.csr_matrix((0, self.n_cols))
        elif len(self._blocks) == 1:
            matrix = self._blocks[0]
        else:
            matrix = as_csr(sp.vstack(self._blocks, format="csr"))
        self._blocks = []
        return CSRStore(matrix, abs_sum=self.abs_sum)


class CSRStore(NoiseStore):
    """G held as a CSR matrix (n_symbols, n_neurons) with float64 values and sorted indices."""

    def __init__(self, matrix, abs_sum: np.ndarray | None = None):
        self.matrix = as_csr(matrix)
        self._abs_sum = abs_sum

    @property
    def format(self) -> CSRFormat:
        return CSRFormat()

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    @property
    def nnz(self) -> int:
        return int(self.matrix.nnz)

    @property
    def nbytes(self) -> int:
        return block_nbytes(self.matrix)

    def iter_blocks(self, max_rows: int | None = None) -> Iterator[tuple[slice, Block]]:
        m = self.matrix.shape[0]
        if max_rows is None or max_rows >= m:
            if m:
                yield slice(0, m), self.matrix
            return
        for start in range(0, m, max(1, max_rows)):
            rows = slice(start, min(m, start + max_rows))
            yield rows, self.matrix[rows]

    def read_rows(self, rows: slice) -> Block:
        return self.matrix[rows]

    def scale_columns(self, factors: np.ndarray) -> None:
        m = self.matrix
        m.data *= np.asarray(factors, np.float64)[m.indices]
        m.eliminate_zeros()
        self._abs_sum = block_abs_sum(m, np.zeros(m.shape[1]))

    def append_symbols(self, columns: np.ndarray, values: np.ndarray) -> None:
        if len(columns) == 0:
            return
        rows = one_hot_rows(columns, values, self.matrix.shape[1])
        self.matrix = as_csr(sp.vstack([self.matrix, rows], format="csr"))
        if self._abs_sum is not None:
            block_abs_sum(rows, self._abs_sum)

    def pad_symbols(self, n_symbols: int) -> None:
        extra = n_symbols - self.matrix.shape[0]
        if extra > 0:
            m = self.matrix
            indptr = np.concatenate([m.indptr, np.full(extra, m.indptr[-1], dtype=m.indptr.dtype)])
            self.matrix = sp.csr_matrix((m.data, m.indices, indptr), shape=(n_symbols, m.shape[1]))

    def to_dense(self) -> np.ndarray:
        return self.matrix.toarray()
