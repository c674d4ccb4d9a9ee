"""Activation-pattern monitor: normalised Hamming distance of the layer's ReLU pattern to the nearest
pattern seen in the fitting data for the predicted class (``absint.patterns.PatternDB``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..patterns import PatternDB, pack
from .base import MONITORS, Activations

__all__ = ["HammingOptions", "HammingMonitor"]


@dataclass(frozen=True)
class HammingOptions:
    n_classes: int | None = None   # default: 1 + the largest predicted class


@MONITORS.register("hamming", HammingOptions, per_layer=True,
                   summary="Hamming distance to the nearest known ReLU pattern of the predicted class")
class HammingMonitor:
    def __init__(self, layer: str, options: HammingOptions = HammingOptions()):
        self.layers = (layer,)
        self.options = options

    def fit(self, activations: Activations, labels, predictions) -> "HammingMonitor":
        f = np.asarray(activations[self.layers[0]])
        name = self.layers[0]
        self.db = PatternDB.fit({name: pack(f)}, {name: f.shape[1]}, np.asarray(predictions, np.int64),
                                self.options.n_classes)
        return self

    def score(self, activations: Activations, predictions) -> np.ndarray:
        name = self.layers[0]
        return self.db.score({name: pack(activations[name])}, np.asarray(predictions, np.int64))[name]
