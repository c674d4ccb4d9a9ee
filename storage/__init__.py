"""Noise-symbol storage backends (no imports from absint/).

``DenseFormat``, ``CSRFormat`` and ``HDF5Format(scratch)`` build stores; ``FORMATS`` maps the
names users pass (``storage="csr"``) to the format classes.
"""

from .base import NoiseStore, RowOperator, StoreBuilder, StoreFormat, one_hot_rows
from .csr import CSRFormat, CSRStore
from .dense import DenseFormat, DenseStore
from .errors import DiskSpaceError, StorageError
from .hdf5 import HDF5Format, HDF5Store, Scratch

#: storage names accepted by absint.analyze and the CLI ("auto" is the planner's, in absint/)
FORMATS: dict[str, type[StoreFormat]] = {"dense": DenseFormat, "csr": CSRFormat, "hdf5": HDF5Format}

__all__ = ["NoiseStore", "RowOperator", "StoreBuilder", "StoreFormat", "one_hot_rows", "DenseFormat", "DenseStore",
           "CSRFormat", "CSRStore", "HDF5Format", "HDF5Store", "Scratch", "DiskSpaceError", "StorageError", "FORMATS"]
