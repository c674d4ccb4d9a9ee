"""Output-layer baselines: maximum softmax probability and energy.

MSP (Hendrycks & Gimpel, ICLR 2017): s(x) = 1 - max_c softmax(z)_c.
Energy (Liu et al., NeurIPS 2020): s(x) = E(x) = -T log sum_c exp(z_c / T).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import MONITORS, Activations

__all__ = ["MSPOptions", "MaxSoftmax", "EnergyOptions", "Energy", "logsumexp"]


def logsumexp(z: np.ndarray) -> np.ndarray:
    """log sum_c exp(z_c) per row, shifted by the row maximum (no overflow)."""
    m = z.max(axis=1, keepdims=True) if z.shape[1] else np.zeros((len(z), 1))
    return (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]


@dataclass(frozen=True)
class MSPOptions:
    pass


@MONITORS.register("msp", MSPOptions, per_layer=False, summary="1 - max softmax probability (output)")
class MaxSoftmax:
    """1 - max_c softmax(z)_c of the logits z; nothing to fit."""

    def __init__(self, layer: str, options: MSPOptions = MSPOptions()):
        self.layers = (layer,)
        self.options = options

    def fit(self, activations: Activations, labels, predictions) -> "MaxSoftmax":
        return self

    def score(self, activations: Activations, predictions) -> np.ndarray:
        z = np.asarray(activations[self.layers[0]], np.float64)
        return 1.0 - np.exp(z.max(axis=1) - logsumexp(z))


@dataclass(frozen=True)
class EnergyOptions:
    temperature: float = 1.0


@MONITORS.register("energy", EnergyOptions, per_layer=False, summary="energy -T logsumexp(z/T) (output)")
class Energy:
    """Free energy -T log sum_c exp(z_c / T) of the logits; nothing to fit."""

    def __init__(self, layer: str, options: EnergyOptions = EnergyOptions()):
        if not options.temperature > 0:
            raise ValueError(f"temperature must be positive, got {options.temperature}")
        self.layers = (layer,)
        self.options = options

    def fit(self, activations: Activations, labels, predictions) -> "Energy":
        return self

    def score(self, activations: Activations, predictions) -> np.ndarray:
        t = self.options.temperature
        return -t * logsumexp(np.asarray(activations[self.layers[0]], np.float64) / t)
