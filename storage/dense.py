"""``DenseStore``: the generator matrix as float64 arrays in RAM, a list of row segments.

Rows are kept as consecutive segments (C-contiguous (k, n) arrays) so that appending new symbols
(a ReLU's) never copies the existing rows, and a layer maps each segment to a segment of its
output: a pass costs one output allocation and no concatenation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .base import NoiseStore, StoreBuilder, StoreFormat, fresh
from .blocks import Block, as_dense, block_abs_sum

#: segments below this many rows are merged when a pass produces more than MAX_SEGMENTS of them
MAX_SEGMENTS = 8


@dataclass(frozen=True)
class DenseFormat(StoreFormat):
    """Stores as float64 arrays (n_symbols, n_neurons): fastest, symbols x neurons x 8 bytes."""

    name = "dense"

    def builder(self, n_cols: int) -> "DenseBuilder":
        return DenseBuilder(n_cols)

    def from_diagonal(self, columns: np.ndarray, values: np.ndarray, n_cols: int) -> "DenseStore":
        rows = np.zeros((len(columns), n_cols))
        rows[np.arange(len(columns)), columns] = values
        abs_sum = np.zeros(n_cols)
        np.add.at(abs_sum, np.asarray(columns, np.int64), np.abs(values))
        return DenseStore(rows, n_cols=n_cols, abs_sum=abs_sum)


class DenseBuilder(StoreBuilder):
    def __init__(self, n_cols: int):
        super().__init__(n_cols)
        self._blocks: list[np.ndarray] = []

    def _append(self, block: Block) -> None:
        self._blocks.append(as_dense(block))

    def finish(self) -> "DenseStore":
        blocks, self._blocks = self._blocks, []
        return DenseStore(blocks, n_cols=self.n_cols, abs_sum=self.abs_sum)


def _merge_small(segments: list[np.ndarray]) -> list[np.ndarray]:
    """Keep at most MAX_SEGMENTS segments by concatenating the smallest neighbours."""
    while len(segments) > MAX_SEGMENTS:
        k = min(range(len(segments) - 1), key=lambda i: len(segments[i]) + len(segments[i + 1]))
        segments[k:k + 2] = [np.concatenate(segments[k:k + 2])]
    return segments


class DenseStore(NoiseStore):
    """G held as float64 row segments (together (n_symbols, n_neurons))."""

    def __init__(self, data, n_cols: int | None = None, abs_sum: np.ndarray | None = None):
        segments = [data] if isinstance(data, np.ndarray) else list(data)
        segments = [np.ascontiguousarray(s, dtype=np.float64) for s in segments]
        for s in segments:
            if s.ndim != 2:
                raise ValueError(f"a generator matrix is 2-d, got shape {s.shape}")
        if n_cols is None:
            if not segments:
                raise ValueError("an empty DenseStore needs n_cols")
            n_cols = segments[0].shape[1]
        if any(s.shape[1] != n_cols for s in segments):
            raise ValueError(f"segments of a DenseStore must all have {n_cols} columns")
        self._segments = _merge_small([s for s in segments if s.shape[0]])
        self._n_cols = int(n_cols)
        self._abs_sum = abs_sum

    @classmethod
    def from_diagonal(cls, columns: np.ndarray, values: np.ndarray, n_neurons: int) -> "DenseStore":
        return DenseFormat().from_diagonal(columns, values, n_neurons)

    @property
    def format(self) -> DenseFormat:
        return DenseFormat()

    @property
    def shape(self) -> tuple[int, int]:
        return sum(s.shape[0] for s in self._segments), self._n_cols

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self._segments)

    @property
    def data(self) -> np.ndarray:
        """All rows as one array (concatenates the segments once)."""
        if len(self._segments) != 1:
            self._segments = [np.concatenate(self._segments) if self._segments else np.zeros((0, self._n_cols))]
        return self._segments[0]

    def iter_blocks(self, max_rows: int | None = None) -> Iterator[tuple[slice, Block]]:
        start = 0
        for seg in self._segments:
            k = seg.shape[0]
            step = k if max_rows is None else max(1, max_rows)
            for s in range(0, k, step):
                rows = slice(start + s, start + min(k, s + step))
                yield rows, seg[s:s + step]
            start += k

    def apply(self, op, out=None) -> NoiseStore:
        if out is None or isinstance(out, DenseFormat):
            # one BLAS call per segment: the fastest path when the output fits in RAM
            segments = [fresh(op.apply(seg), seg) for seg in self._segments]
            abs_sum = np.zeros(op.n_out)
            for seg in segments:
                block_abs_sum(seg, abs_sum)
            return DenseStore(segments, n_cols=op.n_out, abs_sum=abs_sum)
        return super().apply(op, out)

    def scale_columns(self, factors: np.ndarray) -> None:
        abs_sum = np.zeros(self._n_cols)
        for seg in self._segments:
            seg *= factors
            block_abs_sum(seg, abs_sum)
        self._abs_sum = abs_sum

    def append_symbols(self, columns: np.ndarray, values: np.ndarray) -> None:
        if len(columns) == 0:
            return
        rows = np.zeros((len(columns), self._n_cols))
        rows[np.arange(len(columns)), columns] = values
        self._segments = _merge_small(self._segments + [rows])
        if self._abs_sum is not None:
            np.add.at(self._abs_sum, np.asarray(columns, np.int64), np.abs(values))

    def pad_symbols(self, n_symbols: int) -> None:
        extra = n_symbols - self.shape[0]
        if extra > 0:
            self._segments = _merge_small(self._segments + [np.zeros((extra, self._n_cols))])

    def to_dense(self) -> np.ndarray:
        return self.data
