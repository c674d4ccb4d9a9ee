"""Class-conditional Gaussians with a shared covariance on one layer (Lee et al., NeurIPS 2018).

Fit: class means mu_c and the pooled covariance S of f - mu_{y}; regularised by shrinkage
S' = (1 - a) S + a (tr S / d) I. Score: min_c (f - mu_c)^T S'^{-1} (f - mu_c).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, solve_triangular

from .base import MONITORS, Activations

__all__ = ["MahalanobisOptions", "Mahalanobis"]


@dataclass(frozen=True)
class MahalanobisOptions:
    shrinkage: float = 0.01     # a in S' = (1 - a) S + a (tr S / d) I


@MONITORS.register("mahalanobis", MahalanobisOptions, per_layer=True,
                   summary="min over classes of the Mahalanobis distance, shared covariance")
class Mahalanobis:
    def __init__(self, layer: str, options: MahalanobisOptions = MahalanobisOptions()):
        if not 0.0 < options.shrinkage <= 1.0:
            raise ValueError(f"shrinkage must be in (0, 1], got {options.shrinkage}")
        self.layers = (layer,)
        self.options = options

    def fit(self, activations: Activations, labels, predictions) -> "Mahalanobis":
        f = np.asarray(activations[self.layers[0]], np.float64)
        labels = np.asarray(labels, np.int64)
        classes = np.unique(labels)
        means = np.stack([f[labels == c].mean(axis=0) for c in classes])
        centred = f - means[np.searchsorted(classes, labels)]
        cov = centred.T @ centred / max(len(f), 1)
        d = cov.shape[0]
        a = self.options.shrinkage
        scale = np.trace(cov) / d if d and np.trace(cov) > 0 else 1.0
        cov = (1 - a) * cov + a * scale * np.eye(d)
        self._chol = cho_factor(cov, lower=True)[0]
        self._classes = classes
        self._means_w = self._whiten(means)
        return self

    def _whiten(self, f: np.ndarray) -> np.ndarray:
        """L^{-1} f^T with S' = L L^T, so squared norms are Mahalanobis distances."""
        return solve_triangular(self._chol, f.T, lower=True, check_finite=False).T

    def score(self, activations: Activations, predictions) -> np.ndarray:
        y = self._whiten(np.asarray(activations[self.layers[0]], np.float64))
        m = self._means_w
        d2 = (y * y).sum(axis=1)[:, None] - 2 * y @ m.T + (m * m).sum(axis=1)[None]
        return np.maximum(d2.min(axis=1), 0.0)
