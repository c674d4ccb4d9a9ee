"""Box abstractions of a layer per class (Henzinger, Lukina, Schilling, "Outside the box", ECAI 2020).

Fit: the correctly classified fitting inputs of class c are clustered by k-means; each cluster
gets the bounding box of its features, enlarged about its centre by the factor (1 + tau).
Score: the distance of f to the nearest box of the predicted class,
min_b mean_j max(0, lo_bj - f_j, f_j - hi_bj) / s_j (s_j: feature spread); 0 inside a box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import MONITORS, Activations
from .kmeans import kmeans

__all__ = ["BoxOptions", "BoxMonitor"]

#: query rows per block when measuring distances to the boxes
BLOCK_ROWS = 512


@dataclass(frozen=True)
class BoxOptions:
    clusters: int = 4          # k-means clusters (boxes) per class
    enlargement: float = 0.1   # tau: each box's half-widths are multiplied by (1 + tau)
    seed: int = 0


@MONITORS.register("box", BoxOptions, per_layer=True,
                   summary="distance outside the nearest k-means box of the predicted class")
class BoxMonitor:
    def __init__(self, layer: str, options: BoxOptions = BoxOptions()):
        if options.clusters < 1 or options.enlargement < 0:
            raise ValueError(f"box monitor needs clusters >= 1 and enlargement >= 0, got {options}")
        self.layers = (layer,)
        self.options = options

    def fit(self, activations: Activations, labels, predictions) -> "BoxMonitor":
        f = np.asarray(activations[self.layers[0]], np.float64)
        labels, predictions = np.asarray(labels), np.asarray(predictions)
        keep = labels == predictions
        f, labels = f[keep], labels[keep]
        rng = np.random.default_rng(self.options.seed)
        lo, hi, owner = [], [], []
        for c in np.unique(labels):
            fc = f[labels == c]
            _, assign = kmeans(fc, self.options.clusters, rng)
            for j in range(assign.max() + 1):
                member = fc[assign == j]
                a, b = member.min(axis=0), member.max(axis=0)
                grow = (b - a) / 2 * self.options.enlargement     # tau = 0 keeps the exact bounding box
                lo.append(a - grow)
                hi.append(b + grow)
                owner.append(c)
        if not lo:
            raise ValueError("box monitor: no correctly classified fitting input to build a box from")
        self.lower, self.upper = np.array(lo), np.array(hi)
        self.owner = np.array(owner, np.int64)
        spread = f.std(axis=0) if len(f) else np.ones(f.shape[1])
        fallback = spread[spread > 0].mean() if np.any(spread > 0) else 1.0
        self.scale = np.where(spread > 0, spread, fallback)
        return self

    def _distance(self, f: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        lo, hi = self.lower[boxes], self.upper[boxes]                       # (B, d)
        out = np.empty(len(f))
        for start in range(0, len(f), BLOCK_ROWS):
            q = f[start:start + BLOCK_ROWS, None, :]
            excess = np.maximum(np.maximum(lo[None] - q, q - hi[None]), 0.0) / self.scale
            out[start:start + len(q)] = excess.mean(axis=2).min(axis=1)
        return out

    def score(self, activations: Activations, predictions) -> np.ndarray:
        f = np.asarray(activations[self.layers[0]], np.float64)
        predictions = np.asarray(predictions)
        out = np.empty(len(f))
        for c in np.unique(predictions):
            rows = predictions == c
            boxes = np.flatnonzero(self.owner == c)
            if boxes.size == 0:                      # no box for this class: nearest box of any class
                boxes = np.arange(len(self.owner))
            out[rows] = self._distance(f[rows], boxes)
        return out

    def outside(self, activations: Activations, predictions) -> np.ndarray:
        """The monitor's verdict of the paper: True where f lies in no box of the predicted class."""
        return self.score(activations, predictions) > 0
