"""``HDF5Store``: generator rows in a chunked HDF5 dataset on disk, streamed block by block.

Every store is one file in a private scratch directory (``Scratch``): a pass reads a block of rows,
applies the layer in RAM and appends the result to the next store's file; the old file is deleted
when its store is closed or collected. RAM use is one block in and one block out, whatever the
number of symbols. Free disk is checked before each write.
"""

from __future__ import annotations

import errno
import itertools
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import h5py
import numpy as np

from .base import NoiseStore, StoreBuilder, StoreFormat, one_hot_rows
from .blocks import Block, as_dense, block_abs_sum
from .errors import DiskSpaceError, StorageError

#: environment variable naming the default scratch directory
SCRATCH_ENV = "ABSINT_SCRATCH"
#: free disk kept in reserve beyond what a write needs
DISK_MARGIN = 64 << 20


class Scratch:
    """A private directory for scratch files, removed (with everything in it) by ``close()``.

    ``Scratch(directory)`` creates ``absint-XXXX`` under ``directory`` (default: $ABSINT_SCRATCH,
    else the system temporary directory). Use as a context manager so that every exit path
    (exception, KeyboardInterrupt) removes the files.
    """

    def __init__(self, directory: str | os.PathLike | None = None):
        parent = os.fspath(directory) if directory is not None else os.environ.get(SCRATCH_ENV) or tempfile.gettempdir()
        if not os.path.isdir(parent):
            raise StorageError(f"scratch directory {parent} does not exist")
        self.parent = parent
        self.path = tempfile.mkdtemp(prefix="absint-", dir=parent)
        self._counter = itertools.count()
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.path, True)
        self.bytes_written = 0

    def new_file(self, stem: str = "G") -> str:
        return os.path.join(self.path, f"{stem}-{next(self._counter)}.h5")

    def check_free(self, needed: int) -> None:
        """Raise DiskSpaceError when writing ``needed`` more bytes would fill the disk."""
        free = shutil.disk_usage(self.path).free
        if needed + DISK_MARGIN > free:
            raise DiskSpaceError(self.path, needed, free)

    def disk_bytes(self) -> int:
        total = 0
        for entry in os.scandir(self.path):
            try:
                total += entry.stat().st_size
            except FileNotFoundError:
                pass
        return total

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> "Scratch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Scratch({self.path!r})"


@dataclass(frozen=True, eq=False)
class HDF5Format(StoreFormat):
    """Stores as chunked HDF5 files in ``scratch``; passes move ``block_bytes`` of rows at a time."""

    scratch: Scratch
    block_bytes: int = 32 << 20
    #: h5py compression filter for the datasets ("lzf" is fast and ships with h5py), or None
    compression: str | None = None
    name: str = field(default="hdf5", init=False)

    def builder(self, n_cols: int) -> "HDF5Builder":
        return HDF5Builder(self, n_cols)

    def __repr__(self) -> str:
        return f"HDF5Format({self.scratch.path!r}, block_bytes={self.block_bytes})"


def _open_dataset(fmt: HDF5Format, n_cols: int) -> tuple[str, h5py.File, h5py.Dataset]:
    path = fmt.scratch.new_file()
    f = h5py.File(path, "w")
    chunk_rows = max(1, min(fmt.block_rows(n_cols), (4 << 20) // (8 * max(1, n_cols))))
    ds = f.create_dataset("G", shape=(0, n_cols), maxshape=(None, n_cols), dtype="f8",
                          chunks=(chunk_rows, max(1, n_cols)) if n_cols else None, compression=fmt.compression)
    return path, f, ds


def _close_and_remove(f: h5py.File, path: str) -> None:
    try:
        f.close()
    finally:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def _write_rows(fmt: HDF5Format, ds: h5py.Dataset, start: int, block: np.ndarray) -> None:
    """ds[start:start+k] = block, growing the dataset; disk full is a DiskSpaceError."""
    fmt.scratch.check_free(block.nbytes)
    try:
        if ds.shape[0] < start + block.shape[0]:
            ds.resize(start + block.shape[0], axis=0)
        ds[start:start + block.shape[0]] = block
    except OSError as exc:  # h5py reports ENOSPC as a generic OSError
        if getattr(exc, "errno", None) == errno.ENOSPC or "space" in str(exc).lower():
            raise DiskSpaceError(fmt.scratch.path, block.nbytes, shutil.disk_usage(fmt.scratch.path).free) from exc
        raise
    fmt.scratch.bytes_written += block.nbytes


class HDF5Builder(StoreBuilder):
    def __init__(self, fmt: HDF5Format, n_cols: int):
        super().__init__(n_cols)
        self.fmt = fmt
        self.path, self._file, self._ds = _open_dataset(fmt, n_cols)
        self._finalizer = weakref.finalize(self, _close_and_remove, self._file, self.path)

    def _append(self, block: Block) -> None:
        _write_rows(self.fmt, self._ds, self.n_rows, as_dense(block))

    def finish(self) -> "HDF5Store":
        self._finalizer.detach()
        self._file.flush()
        return HDF5Store(self.fmt, self.path, self._file, abs_sum=self.abs_sum)

    def abort(self) -> None:
        self._finalizer()


class HDF5Store(NoiseStore):
    """G in the dataset "G" of an HDF5 file owned by this store (deleted by ``close``)."""

    def __init__(self, fmt: HDF5Format, path: str, file: h5py.File, abs_sum: np.ndarray | None = None):
        self._format = fmt
        self.path = path
        self._file = file
        self._ds = file["G"]
        self._abs_sum = abs_sum
        self._finalizer = weakref.finalize(self, _close_and_remove, file, path)

    @property
    def format(self) -> HDF5Format:
        return self._format

    @property
    def shape(self) -> tuple[int, int]:
        self._check_open()
        return tuple(int(d) for d in self._ds.shape)

    @property
    def nbytes(self) -> int:
        """RAM held: the abs-row-sum vector only (blocks live only during a pass)."""
        return 0 if self._abs_sum is None else int(self._abs_sum.nbytes)

    @property
    def disk_bytes(self) -> int:
        return os.path.getsize(self.path) if self._finalizer.alive else 0

    def _check_open(self) -> None:
        if not self._finalizer.alive:
            raise StorageError(f"HDF5 store {self.path} is closed")

    def iter_blocks(self, max_rows: int | None = None) -> Iterator[tuple[slice, Block]]:
        self._check_open()
        m, n = self.shape
        step = max(1, min(max_rows or m, self._format.block_rows(n)))
        for start in range(0, m, step):
            rows = slice(start, min(m, start + step))
            yield rows, self._ds[rows]

    def read_rows(self, rows: slice) -> Block:
        self._check_open()
        return self._ds[rows]

    def scale_columns(self, factors: np.ndarray) -> None:
        """In place, block by block (read, scale, write back), recomputing Σ|G_i| on the way."""
        abs_sum = np.zeros(self.shape[1])
        for rows, block in self.iter_blocks():
            block *= factors
            block_abs_sum(block, abs_sum)
            _write_rows(self._format, self._ds, rows.start, block)
        self._abs_sum = abs_sum

    def append_symbols(self, columns: np.ndarray, values: np.ndarray) -> None:
        n = self.shape[1]
        step = self._format.block_rows(n)
        for start in range(0, len(columns), step):
            rows = one_hot_rows(columns[start:start + step], values[start:start + step], n).toarray()
            _write_rows(self._format, self._ds, self.shape[0], rows)
            if self._abs_sum is not None:
                block_abs_sum(rows, self._abs_sum)

    def pad_symbols(self, n_symbols: int) -> None:
        if n_symbols > self.shape[0]:
            self._ds.resize(n_symbols, axis=0)  # unwritten chunks read as the fill value 0

    def close(self) -> None:
        self._finalizer()
