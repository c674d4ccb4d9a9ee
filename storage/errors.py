"""Errors raised by storage backends (re-exported by ``absint.errors``)."""

from __future__ import annotations


class StorageError(Exception):
    """A storage backend cannot hold or write its rows."""


class DiskSpaceError(StorageError, OSError):
    """Not enough free disk in the scratch directory for the rows about to be written."""

    def __init__(self, directory: str, needed: int, free: int):
        self.directory, self.needed, self.free = directory, int(needed), int(free)
        super().__init__(f"scratch directory {directory} has {_fmt(free)} free, writing needs {_fmt(needed)} more; "
                         f"point ABSINT_SCRATCH (or scratch_dir=) at a larger disk, or raise the memory budget")


def _fmt(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n} B"
