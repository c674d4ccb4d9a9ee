"""Combining monitors and layers: per-monitor score normalisation on a validation split, then a rule.

Normalisation: z = (s - m) / sd with the mean m and standard deviation sd of the monitor's
validation scores. Rules: max_j z_j, mean_j z_j, or logistic regression with non-negative weights on
(z_1, ..., z_m) fitted to predict the network's errors on the validation split (the fused score is
the log-odds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .base import Activations, Monitor
from .logistic import LogisticModel, fit_logistic

__all__ = ["FusionRule", "MaxRule", "MeanRule", "LogisticRule", "FUSION_RULES", "Fusion", "ZScore"]


@dataclass(frozen=True)
class ZScore:
    """(s - mean) / sd of scores seen on the validation split (sd 1 when they are constant)."""

    mean: float
    sd: float

    @classmethod
    def fit(cls, s: np.ndarray) -> "ZScore":
        s = np.asarray(s, np.float64)
        s = s[np.isfinite(s)]
        sd = float(s.std()) if len(s) else 0.0
        return cls(float(s.mean()) if len(s) else 0.0, sd if sd > 0 else 1.0)

    def __call__(self, s: np.ndarray) -> np.ndarray:
        return (np.asarray(s, np.float64) - self.mean) / self.sd


class FusionRule:
    """Fit on normalised validation scores z (n, m) and error targets y (n,); combine z -> (n,)."""

    def fit(self, z: np.ndarray, y: np.ndarray) -> "FusionRule":
        return self

    def combine(self, z: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class MaxRule(FusionRule):
    """max_j z_j: reject when any monitor is alarmed."""

    def combine(self, z):
        return z.max(axis=1)


class MeanRule(FusionRule):
    """mean_j z_j: average evidence."""

    def combine(self, z):
        return z.mean(axis=1)


@dataclass
class LogisticRule(FusionRule):
    """Log-odds of an error, w^T z + b (``logistic.fit_logistic``, L2 weight ``l2``), with w >= 0: a monitor
    may only add suspicion (monitors whose weight comes out negative are dropped and the rest refitted,
    so the fused score stays monotone in every kept monitor and transfers to OoD inputs it never saw).
    With fewer than ``min_per_class`` errors or correct predictions it falls back to the mean."""

    l2: float = 1.0
    min_per_class: int = 2
    model: LogisticModel | None = None
    kept: np.ndarray | None = None

    def fit(self, z, y):
        y = np.asarray(y, bool)
        self.model, self.kept = None, None
        if min(y.sum(), (~y).sum()) < self.min_per_class:
            return self
        kept = np.arange(z.shape[1])
        while kept.size:
            model = fit_logistic(z[:, kept], y, l2=self.l2)
            if np.all(model.weights >= 0):
                self.model, self.kept = model, kept
                break
            kept = np.delete(kept, np.argmin(model.weights))
        return self

    def combine(self, z):
        return z.mean(axis=1) if self.model is None else self.model.decision(z[:, self.kept])


#: fusion rules by name (CLI ``--fusion``)
FUSION_RULES: dict[str, type[FusionRule]] = {"max": MaxRule, "mean": MeanRule, "logistic": LogisticRule}


class Fusion:
    """A monitor made of fitted monitors: ``fit`` on the validation split normalises each member's
    scores and fits the rule (targets: the network's errors, predictions != labels)."""

    name = "fusion"

    def __init__(self, members: Sequence[Monitor], rule: FusionRule, label: str = ""):
        if not members:
            raise ValueError("a fusion needs at least one monitor")
        self.members = list(members)
        self.rule = rule
        self.label = label
        self.layers = tuple(dict.fromkeys(layer for m in self.members for layer in m.layers))
        self.normalisers: list[ZScore] = []

    def _z(self, activations: Activations, predictions) -> np.ndarray:
        cols = [norm(m.score(activations, predictions)) for m, norm in zip(self.members, self.normalisers)]
        return np.stack(cols, axis=1)

    def fit(self, activations: Activations, labels, predictions) -> "Fusion":
        raw = [m.score(activations, predictions) for m in self.members]
        self.normalisers = [ZScore.fit(s) for s in raw]
        z = np.stack([norm(s) for norm, s in zip(self.normalisers, raw)], axis=1)
        self.rule.fit(z, np.asarray(predictions) != np.asarray(labels))
        return self

    def score(self, activations: Activations, predictions) -> np.ndarray:
        if len(self.normalisers) != len(self.members):
            raise RuntimeError("fit the fusion on a validation split before scoring")
        return self.rule.combine(self._z(activations, predictions))
