"""k-nearest-neighbour distance on normalised features (Sun et al., ICML 2022).

Features are scaled to unit L2 norm, z = f / ||f||; score(x) = ||z(x) - z_(k)||, the distance
to the k-th nearest normalised fitting feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import MONITORS, Activations

__all__ = ["KNNOptions", "KNearest", "normalise_rows"]

#: query rows per distance block (bounds the (block, n_fit) distance matrix)
BLOCK_ROWS = 1024


def normalise_rows(f: np.ndarray) -> np.ndarray:
    """f / ||f||_2 per row; all-zero rows stay zero."""
    norm = np.linalg.norm(f, axis=1, keepdims=True)
    return f / np.where(norm > 0, norm, 1.0)


@dataclass(frozen=True)
class KNNOptions:
    k: int = 5


@MONITORS.register("knn", KNNOptions, per_layer=True, summary="distance to the k-th nearest normalised feature")
class KNearest:
    def __init__(self, layer: str, options: KNNOptions = KNNOptions()):
        if options.k < 1:
            raise ValueError(f"k must be at least 1, got {options.k}")
        self.layers = (layer,)
        self.options = options

    def fit(self, activations: Activations, labels, predictions) -> "KNearest":
        self._bank = normalise_rows(np.asarray(activations[self.layers[0]], np.float64))
        if len(self._bank) < self.options.k:
            raise ValueError(f"knn needs at least k = {self.options.k} fitting rows, got {len(self._bank)}")
        self._sq = (self._bank * self._bank).sum(axis=1)
        return self

    def score(self, activations: Activations, predictions) -> np.ndarray:
        z = normalise_rows(np.asarray(activations[self.layers[0]], np.float64))
        k = self.options.k
        out = np.empty(len(z))
        for start in range(0, len(z), BLOCK_ROWS):
            q = z[start:start + BLOCK_ROWS]
            d2 = (q * q).sum(axis=1)[:, None] - 2 * q @ self._bank.T + self._sq[None]
            out[start:start + len(q)] = np.partition(d2, k - 1, axis=1)[:, k - 1]
        return np.sqrt(np.maximum(out, 0.0))
