"""Interval domain: a box [lower, upper] per neuron, exact interval arithmetic per layer.

Linear layers: y ∈ L c + b ± |L| r with centre c and radius r of the input box (equivalent to
L⁺l + L⁻u + b); monotone layers (ReLU, Sigmoid, Tanh, MaxPool) map the endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fp import gamma, inflate, widen
from ..linear import LINEAR_OPS, LinearOp, linear_op
from ..network import Add, Layer, MaxPool2d, ReLU, Sigmoid, Tanh
from .registry import TRANSFORMERS, Context, Options

#: relative error bound of numpy's exp/tanh based activations (a few ulp), used in sound mode
ACTIVATION_REL_ERROR = 8 * 2.0 ** -53


@dataclass(frozen=True, eq=False)
class Interval:
    """Flat arrays lower <= upper, one entry per neuron."""

    lower: np.ndarray
    upper: np.ndarray

    @classmethod
    def from_box(cls, lower: np.ndarray, upper: np.ndarray, options: Options, storage=None) -> "Interval":
        return cls(np.asarray(lower, dtype=np.float64).ravel(), np.asarray(upper, dtype=np.float64).ravel())

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.lower, self.upper


def centre_radius(lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A float centre c and a radius r rounded up so that [lower, upper] ⊆ [c - r, c + r] exactly; a point
    interval (lower == upper) gets c = lower and r = 0 exactly: a radius of one subnormal step there
    (dead ReLUs' outputs) made the products that read it ~7x slower (subnormal arithmetic)."""
    c = lower + (upper - lower) / 2
    r = np.nextafter(np.maximum(upper - c, c - lower), np.inf)
    return c, np.where(upper == lower, 0.0, np.maximum(r, 0.0))


def linear_interval(op: LinearOp, lower: np.ndarray, upper: np.ndarray, sound_fp: bool) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of L x + b over a box: L c + b ± (|L| r + fp slack), slack = gamma_{n+2}(|L|(|c|+r) + |b|)."""
    c, r = centre_radius(lower, upper)
    mid = op.apply(c[None])[0] + op.bias
    rad = op.apply_abs(r[None])[0]
    if sound_fp:
        g = gamma(op.fan_in + 2)
        rad = rad + inflate(g * (op.apply_abs((np.abs(c) + r)[None])[0] + np.abs(op.bias)) + g * rad)
    return widen(mid - rad, mid + rad, 0.0) if sound_fp else (mid - rad, mid + rad)


def interval_linear(x: Interval, layer: Layer, ctx: Context) -> Interval:
    op = linear_op(layer, ctx.input_shapes[0])
    return Interval(*linear_interval(op, x.lower, x.upper, ctx.options.sound_fp))


TRANSFORMERS.register(Interval, *LINEAR_OPS)(interval_linear)


@TRANSFORMERS.register(Interval, ReLU, MaxPool2d)
def interval_monotone_exact(x: Interval, layer: Layer, ctx: Context) -> Interval:
    """Monotone layers computed exactly in float (max): [f(l), f(u)]."""
    shape = (1,) + tuple(ctx.input_shapes[0])
    lo = layer.forward(x.lower.reshape(shape)).ravel()
    hi = layer.forward(x.upper.reshape(shape)).ravel()
    return Interval(lo, hi)


@TRANSFORMERS.register(Interval, Sigmoid, Tanh)
def interval_monotone_rounded(x: Interval, layer: Layer, ctx: Context) -> Interval:
    """Monotone activations [f(l), f(u)], widened by a few ulp for libm rounding in sound mode."""
    lo = layer.forward(x.lower[None])[0]
    hi = layer.forward(x.upper[None])[0]
    if ctx.options.sound_fp:
        lo, hi = widen(lo - ACTIVATION_REL_ERROR * np.abs(lo), hi + ACTIVATION_REL_ERROR * np.abs(hi), 0.0)
    return Interval(lo, hi)


@TRANSFORMERS.register(Interval, Add)
def interval_add(x: Interval, layer: Layer, ctx: Context) -> Interval:
    a, b = ctx.operands
    lo, hi = a.lower + b.lower, a.upper + b.upper
    return Interval(*widen(lo, hi, 0.0)) if ctx.options.sound_fp else Interval(lo, hi)
