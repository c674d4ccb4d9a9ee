"""The ``NoiseStore`` interface: a generator matrix G (n_symbols, n_neurons) of a zonotope.

Row i of G is the effect of noise symbol ε_i ∈ [-1, 1] on every neuron. Every backend computes
the same mathematics; a block of rows is the unit of work: ``apply`` streams blocks of rows
through a linear operator into a ``StoreBuilder`` of the output's format, so a store may hold its
rows dense in RAM, sparse (CSR), or on disk, and the output of a layer may use another format
than its input. Each store keeps Σ_i |G_i| (per-neuron radius), recomputed on every pass that
writes rows, so the bounds never need an extra pass over the data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Protocol, Union

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from .blocks import Block, block_abs_sum, block_nbytes

RowMap = Callable[[np.ndarray], np.ndarray]

#: rows per block when a store streams itself (dense, CSR); HDF5 picks its own from its chunking
DEFAULT_BLOCK_ROWS = 4096


class RowOperator(Protocol):
    """A linear map applied to each row of a block (what ``absint.linear.LinearOp`` provides).

    ``apply`` maps a dense block (k, n_in) -> (k, n_out); ``apply_sparse`` maps a CSR block and
    returns CSR or dense, whichever is natural (a dense matrix makes every row dense).
    """

    n_in: int
    n_out: int

    def apply(self, rows: np.ndarray) -> np.ndarray: ...

    def apply_sparse(self, rows: sp.csr_matrix) -> Union[sp.csr_matrix, np.ndarray]: ...


class StoreBuilder(ABC):
    """Receives the rows of a new store block by block, in order, then ``finish()`` returns it.

    A builder takes ownership of the blocks it receives (a dense store keeps them as they are):
    pass copies of arrays you keep using.
    """

    def __init__(self, n_cols: int):
        self.n_cols = int(n_cols)
        self.n_rows = 0
        self.abs_sum = np.zeros(self.n_cols)

    def append(self, block: Block) -> None:
        if block.shape[1] != self.n_cols:
            raise ValueError(f"block has {block.shape[1]} columns, the store has {self.n_cols}")
        if block.shape[0] == 0:
            return
        block_abs_sum(block, self.abs_sum)
        self._append(block)
        self.n_rows += block.shape[0]

    @abstractmethod
    def _append(self, block: Block) -> None: ...

    @abstractmethod
    def finish(self) -> "NoiseStore": ...

    def abort(self) -> None:
        """Drop what was appended (files included); called when the pass fails."""


class StoreFormat(ABC):
    """How to build stores of one backend (its name, and where its bytes go)."""

    name: str = ""
    #: RAM one pass may use per block (input rows, output rows, the operator's temporaries)
    block_bytes: int = 64 << 20

    @abstractmethod
    def builder(self, n_cols: int) -> StoreBuilder: ...

    def block_rows(self, n_cols: int) -> int:
        """Rows per block when a pass produces rows of ``n_cols`` columns in this format."""
        return max(1, min(DEFAULT_BLOCK_ROWS, self.block_bytes // (8 * max(1, n_cols))))

    def from_diagonal(self, columns: NDArray[np.int64], values: NDArray[np.float64], n_cols: int) -> "NoiseStore":
        """One row per symbol k: values[k] at column columns[k] (the input box's symbols)."""
        builder = self.builder(n_cols)
        step = max(1, self.block_rows(n_cols))
        for start in range(0, len(columns), step):
            builder.append(one_hot_rows(columns[start:start + step], values[start:start + step], n_cols))
        return builder.finish()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def one_hot_rows(columns: NDArray[np.int64], values: NDArray[np.float64], n_cols: int) -> sp.csr_matrix:
    """A CSR block with one entry per row: row k has values[k] at columns[k]."""
    k = len(columns)
    return sp.csr_matrix((np.asarray(values, np.float64), np.asarray(columns, np.int64), np.arange(k + 1)),
                         shape=(k, n_cols))


class NoiseStore(ABC):
    """Generator rows of a zonotope; see the module docstring."""

    #: Σ_i |G_i| per neuron, kept up to date by every pass that writes rows
    _abs_sum: NDArray[np.float64] | None = None

    @property
    @abstractmethod
    def shape(self) -> tuple[int, int]:
        """(n_symbols, n_neurons)."""

    @property
    @abstractmethod
    def nbytes(self) -> int:
        """Bytes this store holds in RAM."""

    @property
    def disk_bytes(self) -> int:
        """Bytes this store holds on disk."""
        return 0

    @property
    @abstractmethod
    def format(self) -> StoreFormat:
        """The format that builds stores like this one."""

    @abstractmethod
    def iter_blocks(self, max_rows: int | None = None) -> Iterator[tuple[slice, Block]]:
        """Consecutive blocks of at most ``max_rows`` rows (dense arrays or CSR), with their row slices."""

    @abstractmethod
    def scale_columns(self, factors: NDArray[np.float64]) -> None:
        """In place: G[:, j] *= factors[j]."""

    @abstractmethod
    def append_symbols(self, columns: NDArray[np.int64], values: NDArray[np.float64]) -> None:
        """Append one row per new symbol k: values[k] at column columns[k], zero elsewhere."""

    @abstractmethod
    def pad_symbols(self, n_symbols: int) -> None:
        """Append zero rows up to ``n_symbols`` rows (symbols created on another branch)."""

    # ----------------------------------------------------------------- streamed passes
    def apply(self, op: RowOperator, out: StoreFormat | None = None) -> "NoiseStore":
        """A new store (format ``out``, default this store's) with rows G_i Lᵀ: one pass of blocks."""
        fmt = out or self.format
        builder = fmt.builder(op.n_out)
        try:
            rows = self._pass_rows(op.n_in, op.n_out, fmt, getattr(op, "work_bytes_per_row", 0))
            for _, block in self.iter_blocks(rows):
                builder.append(fresh(op.apply_sparse(block) if sp.issparse(block) else op.apply(block), block))
            return builder.finish()
        except BaseException:
            builder.abort()
            raise

    def map_rows(self, fn: RowMap, n_out: int, out: StoreFormat | None = None) -> "NoiseStore":
        """A new store whose rows are ``fn`` of these rows, block by block (dense blocks)."""
        fmt = out or self.format
        builder = fmt.builder(n_out)
        try:
            for _, block in self.iter_blocks(self._pass_rows(self.shape[1], n_out, fmt)):
                dense = block.toarray() if sp.issparse(block) else block
                builder.append(fresh(fn(dense), dense))
            return builder.finish()
        except BaseException:
            builder.abort()
            raise

    def convert(self, fmt: StoreFormat) -> "NoiseStore":
        """The same rows in another format (self when it already is)."""
        if type(fmt) is type(self.format) and fmt == self.format:
            return self
        builder = fmt.builder(self.shape[1])
        try:
            for _, block in self.iter_blocks(self._pass_rows(self.shape[1], self.shape[1], fmt)):
                builder.append(block.copy())
            return builder.finish()
        except BaseException:
            builder.abort()
            raise

    def add(self, other: "NoiseStore", out: StoreFormat | None = None) -> "NoiseStore":
        """A new store G + H of two stores over the same symbols and neurons, block by block."""
        if self.shape != other.shape:
            raise ValueError(f"cannot add generator matrices of shapes {self.shape} and {other.shape}")
        fmt = out or self.format
        builder = fmt.builder(self.shape[1])
        rows = self._pass_rows(self.shape[1], self.shape[1], fmt)
        try:
            for sl, a in self.iter_blocks(rows):
                builder.append(_add_blocks(a, other.read_rows(sl)))
            return builder.finish()
        except BaseException:
            builder.abort()
            raise

    def row_abs_sums(self) -> NDArray[np.float64]:
        """Σ_j |G[i, j]| per symbol i (the size of each symbol's whole effect)."""
        out = np.zeros(self.shape[0])
        for rows, block in self.iter_blocks():
            out[rows] = np.asarray(abs(block).sum(axis=1)).ravel()
        return out

    def select_rows(self, keep: NDArray[np.bool_], out: StoreFormat | None = None) -> tuple["NoiseStore", NDArray]:
        """A new store with the rows where ``keep``, and Σ_i |G_i| over the dropped rows (per neuron)."""
        fmt = out or self.format
        builder = fmt.builder(self.shape[1])
        dropped = np.zeros(self.shape[1])
        try:
            for rows, block in self.iter_blocks(self._pass_rows(self.shape[1], self.shape[1], fmt)):
                mask = keep[rows]
                block_abs_sum(block[~mask], dropped)
                builder.append(fresh(block[mask], block))
            return builder.finish(), dropped
        except BaseException:
            builder.abort()
            raise

    def read_rows(self, rows: slice) -> Block:
        """Rows ``rows`` as one block (may cross the store's own block boundaries)."""
        parts = []
        for sl, block in self.iter_blocks():
            lo, hi = max(sl.start, rows.start), min(sl.stop, rows.stop)
            if lo < hi:
                parts.append(block[lo - sl.start:hi - sl.start])
        if not parts:
            return np.zeros((0, self.shape[1]))
        if len(parts) == 1:
            return parts[0]
        if all(sp.issparse(p) for p in parts):
            return sp.vstack(parts, format="csr")
        return np.concatenate([p.toarray() if sp.issparse(p) else p for p in parts])

    def _pass_rows(self, n_in: int, n_out: int, fmt: StoreFormat, work_per_row: int = 0) -> int:
        """Rows per block of a pass: input block, output block and the operator's work fit the block bytes."""
        limit = min(self.format.block_bytes, fmt.block_bytes)
        return max(1, min(DEFAULT_BLOCK_ROWS, limit // (8 * (n_in + n_out) + work_per_row)))

    def to_dense(self) -> NDArray[np.float64]:
        """G as a dense array (for tests and small problems)."""
        out = np.zeros(self.shape)
        for rows, block in self.iter_blocks():
            out[rows] = block.toarray() if sp.issparse(block) else block
        return out

    def abs_row_sum(self) -> NDArray[np.float64]:
        """Σ_i |G[i, :]|: each neuron's radius (kept by the passes that wrote the rows)."""
        if self._abs_sum is None:
            out = np.zeros(self.shape[1])
            for _, block in self.iter_blocks():
                block_abs_sum(block, out)
            self._abs_sum = out
        return self._abs_sum

    @property
    def n_symbols(self) -> int:
        return self.shape[0]

    def close(self) -> None:
        """Release what the store holds (files, buffers)."""

    def __enter__(self) -> "NoiseStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def fresh(result: Block, source: Block) -> Block:
    """``result`` or a copy of it when it shares memory with ``source`` (identity operators return
    their input; the new store must not alias the old one, whose rows may be scaled in place)."""
    if sp.issparse(result):
        if sp.issparse(source) and (result is source or np.may_share_memory(result.data, source.data)):
            return result.copy()
        return result
    if not sp.issparse(source) and np.may_share_memory(result, source):
        return result.copy()
    return result


def _add_blocks(a: Block, b: Block) -> Block:
    if sp.issparse(a) and sp.issparse(b):
        return (a + b).tocsr()
    a = a.toarray() if sp.issparse(a) else a
    b = b.toarray() if sp.issparse(b) else b
    return a + b


__all__ = ["NoiseStore", "StoreBuilder", "StoreFormat", "RowOperator", "Block", "one_hot_rows",
           "block_nbytes", "DEFAULT_BLOCK_ROWS"]
