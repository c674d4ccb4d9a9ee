"""Detection and selective-prediction metrics in numpy; positives are the inputs to reject.

ROC and precision-recall curves step through the distinct score values (tied scores enter
together), as scikit-learn does: AUROC is the trapezoidal area under (FPR, TPR), which equals the
Mann-Whitney probability P(s+ > s-) + P(s+ = s-) / 2; AP = sum_k (R_k - R_{k-1}) P_k (no
interpolation). Risk/coverage (Geifman, Uziel, El-Yaniv, ICLR 2019): accept the lowest scores;
risk = errors among accepted / accepted, AURC = sum_k (C_k - C_{k-1}) risk_k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["roc_curve", "auroc", "fpr_at_tpr", "average_precision", "risk_coverage", "aurc",
           "acceptance_threshold", "SafetyFigures", "safety_figures"]


def _check(y, s) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(bool).ravel()
    s = np.asarray(s, np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} differ in length")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return y, s


def _cumulative(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True and false positives when rejecting every score >= each distinct threshold (descending)."""
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1] if len(s) else np.zeros(0, np.int64)
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    return tps.astype(np.float64), fps.astype(np.float64), s[last]


def roc_curve(y, s) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), starting at (0, 0) with threshold +inf."""
    y, s = _check(y, s)
    tps, fps, thr = _cumulative(y, s)
    P, N = y.sum(), (~y).sum()
    if P == 0 or N == 0:
        raise ValueError("ROC needs both positives and negatives")
    return np.r_[0.0, fps / N], np.r_[0.0, tps / P], np.r_[np.inf, thr]


def auroc(y, s) -> float:
    """Area under the ROC curve (trapezoids; ties count one half)."""
    fpr, tpr, _ = roc_curve(y, s)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def fpr_at_tpr(y, s, tpr_level: float = 0.95) -> float:
    """Smallest false-positive rate of a threshold that rejects at least ``tpr_level`` of the positives."""
    fpr, tpr, _ = roc_curve(y, s)
    return float(fpr[np.argmax(tpr >= tpr_level - 1e-12)])


def average_precision(y, s) -> float:
    """AP = sum_k (R_k - R_{k-1}) P_k over distinct thresholds (scikit-learn's average_precision_score)."""
    y, s = _check(y, s)
    tps, fps, _ = _cumulative(y, s)
    if y.sum() == 0:
        raise ValueError("average precision needs at least one positive")
    precision = tps / (tps + fps)
    recall = tps / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def risk_coverage(hazard, s) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, risk) when accepting every score <= each distinct threshold (ascending)."""
    hazard, s = _check(hazard, s)
    tps, fps, _ = _cumulative(hazard, -s)       # accept the lowest scores first
    accepted = tps + fps
    return accepted / max(len(s), 1), tps / accepted


def aurc(hazard, s) -> float:
    """Area under the risk/coverage step curve."""
    coverage, risk = risk_coverage(hazard, s)
    return float(np.sum(np.diff(np.r_[0.0, coverage]) * risk))


def acceptance_threshold(scores_ok, rate: float = 0.95) -> float:
    """The smallest t with at least ``rate`` of ``scores_ok`` (e.g. correct validation predictions) <= t."""
    s = np.sort(np.asarray(scores_ok, np.float64))
    if len(s) == 0:
        raise ValueError("no scores to choose a threshold from")
    return float(s[max(int(np.ceil(rate * len(s) - 1e-9)) - 1, 0)])


@dataclass(frozen=True)
class SafetyFigures:
    """Accept x iff score(x) <= threshold. Hazards: the network's errors (and every OoD input)."""

    threshold: float
    safety_gain: float         # hazards rejected / hazards
    residual_hazard: float     # hazards accepted / accepted
    availability_cost: float   # correct predictions rejected / correct predictions
    coverage: float            # accepted / all
    baseline_hazard: float     # hazards / all (no monitor)


def safety_figures(hazard, s, threshold: float) -> SafetyFigures:
    hazard, s = _check(hazard, s)
    accept = s <= threshold
    n_h, n_ok = hazard.sum(), (~hazard).sum()
    nan = float("nan")
    return SafetyFigures(
        threshold=float(threshold),
        safety_gain=float((hazard & ~accept).sum() / n_h) if n_h else nan,
        residual_hazard=float((hazard & accept).sum() / accept.sum()) if accept.any() else nan,
        availability_cost=float((~hazard & ~accept).sum() / n_ok) if n_ok else nan,
        coverage=float(accept.mean()) if len(s) else nan,
        baseline_hazard=float(hazard.mean()) if len(s) else nan)
