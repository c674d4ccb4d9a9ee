"""Axis-aligned input regions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ShapeError


@dataclass(frozen=True, eq=False)
class Box:
    """The input region {x : lower <= x <= upper}, arrays of the network's input shape (or flat)."""

    lower: np.ndarray
    upper: np.ndarray

    def __post_init__(self):
        lo = np.array(self.lower, dtype=np.float64, copy=True)
        hi = np.array(self.upper, dtype=np.float64, copy=True)
        if lo.shape != hi.shape:
            raise ShapeError(f"Box lower {lo.shape} and upper {hi.shape} differ in shape")
        if np.isnan(lo).any() or np.isnan(hi).any():
            raise ValueError("Box bounds contain NaN")
        bad = np.flatnonzero(lo.ravel() > hi.ravel())
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"empty Box: lower[{i}] = {lo.ravel()[i]!r} > upper[{i}] = {hi.ravel()[i]!r}")
        lo.setflags(write=False)
        hi.setflags(write=False)
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)

    @classmethod
    def linf(cls, x, eps: float, clip: tuple[float, float] | None = (0.0, 1.0)) -> "Box":
        """L-infinity ball {x' : |x' - x| <= eps}, intersected with [clip[0], clip[1]] if given."""
        x = np.asarray(x, dtype=np.float64)
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        lo, hi = x - eps, x + eps
        if clip is not None:
            lo, hi = np.clip(lo, *clip), np.clip(hi, *clip)
        return cls(lo, hi)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.lower.shape

    @property
    def size(self) -> int:
        return self.lower.size

    @property
    def center(self) -> np.ndarray:
        return (self.lower + self.upper) / 2

    @property
    def radius(self) -> np.ndarray:
        return (self.upper - self.lower) / 2

    def contains(self, x, tol: float = 0.0) -> np.ndarray:
        """Whether each point of a batch (batch, *shape) or (batch, size) lies in the box."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.size)
        lo, hi = self.lower.ravel(), self.upper.ravel()
        return np.all((x >= lo - tol) & (x <= hi + tol), axis=1)

    def sample(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """n points drawn uniformly from the box, shape (n, *shape)."""
        rng = np.random.default_rng(rng)
        u = rng.random((n,) + self.shape)
        return self.lower + u * (self.upper - self.lower)
