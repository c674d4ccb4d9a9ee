"""Verification properties: input boxes, each with an unsafe output set (a union of polyhedra).

A ``Spec`` describes the UNSAFE set of a VNN-LIB property: an input ``x`` together with its
output ``y`` is a counterexample iff for some region, ``x`` lies in the region's box and
``y`` satisfies at least one of the region's output conjunctions ``A y <= b``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .box import Box
from .errors import ShapeError


def _batch(y, n: int, what: str) -> tuple[np.ndarray, bool]:
    """(batch, n) float64 view of ``y`` and whether ``y`` was a single point."""
    y = np.asarray(y, dtype=np.float64)
    single = y.ndim <= 1
    if (y.size if single else int(np.prod(y.shape[1:]))) != n:
        raise ShapeError(f"{what} expects points of size {n}, got an array of shape {y.shape}")
    return y.reshape(-1, n), single


class LinearConstraints(NamedTuple):
    """A conjunction of k linear rows over the outputs: ``A y <= b`` (``A y < b`` where ``strict``)."""

    A: np.ndarray       # (k, n_out) float64
    b: np.ndarray       # (k,) float64
    strict: np.ndarray  # (k,) bool

    @property
    def n_rows(self) -> int:
        return int(self.b.shape[0])

    @property
    def n_outputs(self) -> int:
        return int(self.A.shape[1])

    def satisfied(self, y, tol: float = 0.0):
        """Per point of the batch ``y`` (batch, n_out): whether every row holds (relaxed by ``tol``).

        A single point (n_out,) gives a single bool. No rows (k = 0) hold everywhere."""
        y2, single = _batch(y, self.n_outputs, "LinearConstraints.satisfied")
        lhs = y2 @ self.A.T                         # (batch, k)
        rhs = self.b + tol
        ok = np.where(self.strict, lhs < rhs, lhs <= rhs).all(axis=1)
        return bool(ok[0]) if single else ok

    def __repr__(self) -> str:
        return f"LinearConstraints(rows={self.n_rows}, n_outputs={self.n_outputs})"


class Region(NamedTuple):
    """One input box and its unsafe outputs: a DISJUNCTION of ``LinearConstraints`` conjunctions."""

    lower: np.ndarray                          # float64, shape of the network input
    upper: np.ndarray
    unsafe: tuple[LinearConstraints, ...]

    @property
    def box(self) -> Box:
        return Box(self.lower, self.upper)

    def contains(self, x, tol: float = 0.0):
        """Per point of the batch ``x``: whether it lies in the box (a single point gives a bool)."""
        x2, single = _batch(x, self.lower.size, "Region.contains")
        lo, hi = self.lower.ravel(), self.upper.ravel()
        ok = np.all((x2 >= lo - tol) & (x2 <= hi + tol), axis=1)
        return bool(ok[0]) if single else ok

    def is_unsafe(self, y, tol: float = 0.0):
        """Per output point of the batch ``y`` (batch, n_out): whether some disjunct holds."""
        n_out = self.unsafe[0].n_outputs if self.unsafe else np.asarray(y).shape[-1]
        y2, single = _batch(y, n_out, "Region.is_unsafe")
        hit = np.zeros(y2.shape[0], dtype=bool)
        for conj in self.unsafe:
            hit |= conj.satisfied(y2, tol)
        return bool(hit[0]) if single else hit

    def __repr__(self) -> str:
        return (f"Region(inputs={self.lower.size}, width_max={float(np.max(self.upper - self.lower)):.6g}, "
                f"disjuncts={len(self.unsafe)})")


@dataclass(frozen=True, eq=False)
class Spec:
    """A VNN-LIB property: the union over ``regions`` of (input box x unsafe output set).

    ``regions`` is empty when the property is unsatisfiable on its own (e.g. empty boxes):
    such a property trivially holds."""

    regions: list[Region]
    n_inputs: int
    n_outputs: int
    input_shape: tuple[int, ...]
    source: str | None = None

    def is_unsafe(self, y, region: int | None = None, tol: float = 0.0):
        """Whether outputs ``y`` are unsafe for ``region`` (may be omitted when there is one region)."""
        if region is None:
            if len(self.regions) != 1:
                raise ValueError(f"the property has {len(self.regions)} regions: pass region=<index>, "
                                 f"or use is_counterexample(x, y)")
            region = 0
        return self.regions[region].is_unsafe(y, tol)

    def is_counterexample(self, x, y, tol: float = 0.0):
        """Per pair of the batches ``x`` and ``y``: x in some region's box with y unsafe there."""
        x2, single = _batch(x, self.n_inputs, "Spec.is_counterexample")
        y2, _ = _batch(y, self.n_outputs, "Spec.is_counterexample")
        if x2.shape[0] != y2.shape[0]:
            raise ShapeError(f"{x2.shape[0]} inputs but {y2.shape[0]} outputs")
        hit = np.zeros(x2.shape[0], dtype=bool)
        for reg in self.regions:
            hit |= reg.contains(x2, tol) & reg.is_unsafe(y2, tol)
        return bool(hit[0]) if single else hit

    def __repr__(self) -> str:
        return (f"Spec(source={self.source!r}, n_inputs={self.n_inputs}, n_outputs={self.n_outputs}, "
                f"regions={len(self.regions)}, disjuncts={sum(len(r.unsafe) for r in self.regions)})")
