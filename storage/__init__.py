"""Noise-symbol storage backends (no imports from absint/)."""

from .base import NoiseStore
from .dense import DenseStore

__all__ = ["NoiseStore", "DenseStore"]
