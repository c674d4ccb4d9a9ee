"""In-distribution data for the monitor benchmark, split into fit / validation / test, plus OoD sets.

* ``digits``: scikit-learn's 8x8 digits as the zoo networks saw them (``absint.zoo.digits_data``):
  the monitors are fitted on the networks' own training split (1347 images); the held-out split
  (450) is divided, stratified by label, into validation and test halves. OoD sets are made from
  the test images (``ood.make_ood``).
* ``csv``: a label-first CSV of images (e.g. the 100 MNIST test rows in the shared benchmarks,
  pixels 0..255). The networks' training data is not available, so the rows themselves are split
  (stratified) into fit / validation / test: with few rows the figures are indicative only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .ood import DEFAULT_OOD, make_ood

__all__ = ["Split", "MonitorCase", "stratified_split", "digits_case", "csv_case", "CASES"]


@dataclass(frozen=True, eq=False)
class Split:
    x: np.ndarray   # (n, *input_shape)
    y: np.ndarray   # (n,) int labels

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True, eq=False)
class MonitorCase:
    name: str
    fit: Split
    val: Split
    test: Split
    ood: dict[str, np.ndarray] = field(default_factory=dict)
    note: str = ""


def stratified_split(y: np.ndarray, fractions, seed: int = 0) -> list[np.ndarray]:
    """Index arrays, one per fraction, each class divided in those proportions (seeded permutation)."""
    y = np.asarray(y)
    fr = np.asarray(fractions, np.float64) / np.sum(fractions)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fr]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        cuts = np.round(np.cumsum(fr)[:-1] * len(idx)).astype(int)
        for k, chunk in enumerate(np.split(idx, cuts)):
            parts[k].append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


def _ood_from(test_x: np.ndarray, shape, names, seed: int) -> dict[str, np.ndarray]:
    """OoD sets from the test images viewed as (n, H, W) (flat inputs are taken as square images)."""
    n = len(test_x)
    side = int(round(np.sqrt(test_x[0].size))) if n else 0
    if side * side != (test_x[0].size if n else 0):
        raise ValueError(f"cannot view inputs of shape {shape} as square images for the OoD sets")
    images = test_x.reshape(n, side, side)
    return {k: v.reshape((n,) + tuple(shape)) for k, v in make_ood(names, images, seed).items()}


def digits_case(input_shape=(1, 8, 8), ood=DEFAULT_OOD, seed: int = 0) -> MonitorCase:
    """The zoo's digits data: fit = training split, validation / test = stratified halves of the held-out split."""
    try:
        from ..zoo import digits_data
        x_tr, y_tr, x_ho, y_ho = digits_data()
    except ImportError as exc:
        raise ImportError(f"the digits case needs scikit-learn (pip install absint[dev]): {exc}") from None
    shape = tuple(input_shape)
    val_idx, test_idx = stratified_split(y_ho, (1, 1), seed)
    test = Split(x_ho[test_idx].reshape((-1,) + shape), y_ho[test_idx])
    return MonitorCase("digits", Split(x_tr.reshape((-1,) + shape), y_tr),
                       Split(x_ho[val_idx].reshape((-1,) + shape), y_ho[val_idx]), test,
                       _ood_from(test.x, shape, ood, seed),
                       note=f"fit: zoo training split ({len(y_tr)}), val/test: held-out halves "
                            f"({len(val_idx)}/{len(test_idx)}); OoD from the test images")


def csv_case(path, input_shape, ood=DEFAULT_OOD, seed: int = 0, scale: float = 255.0,
             fractions=(0.5, 0.25, 0.25)) -> MonitorCase:
    """Label-first CSV rows (pixels / ``scale``), split stratified into fit / validation / test."""
    data = np.loadtxt(Path(path), delimiter=",", ndmin=2)
    y = data[:, 0].astype(np.int64)
    x = data[:, 1:] / scale
    shape = tuple(input_shape)
    if x.shape[1] != int(np.prod(shape)):
        raise ValueError(f"{path}: rows have {x.shape[1]} values, the network takes {shape}")
    x = x.reshape((-1,) + shape)
    fit_idx, val_idx, test_idx = stratified_split(y, fractions, seed)
    test = Split(x[test_idx], y[test_idx])
    return MonitorCase(Path(path).stem, Split(x[fit_idx], y[fit_idx]), Split(x[val_idx], y[val_idx]), test,
                       _ood_from(test.x, shape, ood, seed),
                       note=f"{len(y)} rows split {len(fit_idx)}/{len(val_idx)}/{len(test_idx)} (fit/val/test): "
                            "the monitors are fitted on test-set rows, not on the network's training data")


def _digits_builder(input_shape, ood, seed, path=None) -> MonitorCase:
    if path is not None:
        raise ValueError("the digits case takes no data file")
    return digits_case(input_shape, ood, seed)


def _csv_builder(input_shape, ood, seed, path=None) -> MonitorCase:
    if path is None:
        raise ValueError("the csv case needs a data file")
    return csv_case(path, input_shape, ood, seed)


#: case builders by name (CLI ``--data``): builder(input_shape, ood, seed, path=None)
CASES: dict[str, Callable[..., MonitorCase]] = {"digits": _digits_builder, "csv": _csv_builder}
