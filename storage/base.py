"""The ``NoiseStore`` interface: a generator matrix G (n_symbols, n_neurons) of a zonotope.

Row i of G is the effect of noise symbol ε_i ∈ [-1, 1] on every neuron. Every backend computes
the same mathematics; a block of rows is the unit of work, so a backend may hold rows in RAM,
sparse, or on disk.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator

import numpy as np
from numpy.typing import NDArray

Block = np.ndarray
RowMap = Callable[[Block], Block]


class NoiseStore(ABC):
    """Generator rows of a zonotope; see the module docstring."""

    @property
    @abstractmethod
    def shape(self) -> tuple[int, int]:
        """(n_symbols, n_neurons)."""

    @property
    @abstractmethod
    def nbytes(self) -> int:
        """Bytes this store holds in RAM."""

    @abstractmethod
    def iter_blocks(self, max_rows: int) -> Iterator[tuple[slice, Block]]:
        """Consecutive blocks of at most ``max_rows`` rows, with their row slices."""

    @abstractmethod
    def map_rows(self, fn: RowMap, n_out: int) -> "NoiseStore":
        """A new store whose rows are ``fn`` of these rows (fn maps (k, n) -> (k, n_out))."""

    @abstractmethod
    def scale_columns(self, factors: NDArray[np.float64]) -> None:
        """In place: G[:, j] *= factors[j]."""

    @abstractmethod
    def append_symbols(self, columns: NDArray[np.int64], values: NDArray[np.float64]) -> None:
        """Append one row per new symbol k: values[k] at column columns[k], zero elsewhere."""

    @abstractmethod
    def pad_symbols(self, n_symbols: int) -> None:
        """Append zero rows up to ``n_symbols`` rows (symbols created on another branch)."""

    @abstractmethod
    def add(self, other: "NoiseStore") -> "NoiseStore":
        """A new store G + H of two stores over the same symbols and neurons."""

    @abstractmethod
    def to_dense(self) -> NDArray[np.float64]:
        """G as a dense array (for tests and small problems)."""

    def abs_row_sum(self) -> NDArray[np.float64]:
        """sum_i |G[i, :]|: each neuron's radius, accumulated block by block."""
        from kernels.reductions import abs_row_sum

        out = np.zeros(self.shape[1])
        for _, block in self.iter_blocks(4096):
            abs_row_sum(np.ascontiguousarray(block), out)
        return out

    @property
    def n_symbols(self) -> int:
        return self.shape[0]

    def close(self) -> None:
        """Release what the store holds (files, buffers)."""

    def __enter__(self) -> "NoiseStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
