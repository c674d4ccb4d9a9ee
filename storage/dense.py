"""``DenseStore``: the generator matrix as one C-contiguous numpy array in RAM."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from kernels.reductions import abs_row_sum

from .base import Block, NoiseStore, RowMap


class DenseStore(NoiseStore):
    """G held as a float64 array (n_symbols, n_neurons)."""

    def __init__(self, data: np.ndarray):
        self.data = np.ascontiguousarray(data, dtype=np.float64)
        if self.data.ndim != 2:
            raise ValueError(f"a generator matrix is 2-d, got shape {self.data.shape}")

    @classmethod
    def from_diagonal(cls, columns: np.ndarray, values: np.ndarray, n_neurons: int) -> "DenseStore":
        store = cls(np.zeros((0, n_neurons)))
        store.append_symbols(columns, values)
        return store

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape

    @property
    def nbytes(self) -> int:
        return self.data.nbytes

    def iter_blocks(self, max_rows: int) -> Iterator[tuple[slice, Block]]:
        m = self.data.shape[0]
        for start in range(0, m, max(1, max_rows)):
            rows = slice(start, min(m, start + max_rows))
            yield rows, self.data[rows]

    def map_rows(self, fn: RowMap, n_out: int) -> "DenseStore":
        if self.data.shape[0] == 0:
            return DenseStore(np.zeros((0, n_out)))
        return DenseStore(fn(self.data))

    def scale_columns(self, factors: np.ndarray) -> None:
        self.data *= factors

    def append_symbols(self, columns: np.ndarray, values: np.ndarray) -> None:
        rows = np.zeros((len(columns), self.data.shape[1]))
        rows[np.arange(len(columns)), columns] = values
        self.data = np.concatenate([self.data, rows]) if self.data.size else rows

    def pad_symbols(self, n_symbols: int) -> None:
        extra = n_symbols - self.data.shape[0]
        if extra > 0:
            self.data = np.concatenate([self.data, np.zeros((extra, self.data.shape[1]))])

    def add(self, other: NoiseStore) -> "DenseStore":
        return DenseStore(self.data + other.to_dense())

    def to_dense(self) -> np.ndarray:
        return self.data

    def abs_row_sum(self) -> np.ndarray:
        return abs_row_sum(self.data, np.zeros(self.data.shape[1]))
