"""Zonotope domain (DeepZ, Singh et al. NeurIPS 2018): x = c + Gᵀε + [-e, e], ε ∈ [-1, 1]^m.

Centre c (n,), generator rows G (m, n) in a ``storage.NoiseStore``, and a per-neuron box term
e >= 0 that absorbs float64 rounding errors (sound mode). Bounds are c ± (Σ_i |G_i| + e),
intersected with a parallel interval analysis when that is tighter. Noise symbols are numbered
globally (``ctx.shared["n_symbols"]``) so that branches that meet in an Add share them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from storage import DenseFormat, NoiseStore, StoreFormat

from ..fp import UNIT_ROUNDOFF, gamma, inflate, widen
from ..linear import LINEAR_OPS, ColumnSelectOp, DiagonalOp, linear_op
from ..network import Add, Layer, MaxPool2d, ReLU, Sigmoid, Tanh
from ..relaxations import maxpool_windows, relu_parallel, s_shaped_parallel, sigmoid, sigmoid_derivative, tanh_derivative
from .interval import centre_radius, linear_interval
from .registry import TRANSFORMERS, Context, Options

SYMBOLS = "n_symbols"


@dataclass(eq=False)
class Zonotope:
    """Centre, generator store, box term, and interval bounds (lower, upper) to intersect with."""

    center: np.ndarray
    gens: NoiseStore
    err: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    sound_fp: bool = True
    _abs_sum: np.ndarray | None = field(default=None, repr=False)
    _bounds: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @classmethod
    def from_box(cls, lower: np.ndarray, upper: np.ndarray, options: Options,
                 storage: StoreFormat | None = None) -> "Zonotope":
        """One symbol per input of non-zero width: c = midpoint, G = diag(radius) on those inputs."""
        c, r = centre_radius(np.asarray(lower, float).ravel(), np.asarray(upper, float).ravel())
        cols = np.flatnonzero(r > 0)
        gens = (storage or DenseFormat()).from_diagonal(cols, r[cols], c.size)
        return cls(c, gens, np.zeros_like(c), np.asarray(lower, float).ravel().copy(),
                   np.asarray(upper, float).ravel().copy(), options.sound_fp)

    @property
    def n_symbols(self) -> int:
        return self.gens.shape[0]

    def stores(self) -> tuple[NoiseStore, ...]:
        """The noise stores this element holds (closed by the analysis once no node needs them)."""
        return (self.gens,)

    def abs_sum(self) -> np.ndarray:
        """Σ_i |G_i| per neuron (cached)."""
        if self._abs_sum is None:
            self._abs_sum = self.gens.abs_row_sum()
        return self._abs_sum

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """c ± (Σ|G_i| + e), rounded outwards, intersected with the interval bounds."""
        if self._bounds is None:
            rad = self.abs_sum()
            if self.sound_fp:
                rad = inflate(rad * (1.0 + gamma(max(self.n_symbols, 1) + 1)) + self.err)
                lo, hi = widen(self.center - rad, self.center + rad, 0.0)
            else:
                lo, hi = self.center - rad - self.err, self.center + rad + self.err
            lo, hi = np.maximum(lo, self.lower), np.minimum(hi, self.upper)
            crossed = lo > hi  # sound_fp=False only: two roundings of a zero-width neuron
            if crossed.any():
                lo[crossed], hi[crossed] = hi[crossed], lo[crossed]
            self._bounds = (lo, hi)
        return self._bounds


def _with_symbols(z: Zonotope, ctx: Context) -> NoiseStore:
    """The operand's store padded with zero rows for symbols created on other branches.

    Padding only appends zero rows (G's meaning over the existing symbols is unchanged), so it is
    done in place even when other nodes still read this store.
    """
    total = ctx.shared.setdefault(SYMBOLS, z.n_symbols)
    if z.gens.shape[0] < total:
        z.gens.pad_symbols(total)
    return z.gens


def _storage(ctx: Context) -> StoreFormat:
    """The format the plan chose for this node's generators (dense when there is no plan)."""
    return ctx.storage or DenseFormat()


def zonotope_linear(z: Zonotope, layer: Layer, ctx: Context) -> Zonotope:
    """c' = Lc + b, G' = G Lᵀ (each row, no bias), e' = |L|e + gamma_{n+2}(|L|(Σ|G_i| + |c| + e) + |b|)."""
    op = linear_op(layer, ctx.input_shapes[0])
    center = op.apply(z.center[None])[0] + op.bias
    gens = z.gens.apply(op, _storage(ctx))
    err = op.apply_abs(z.err[None])[0] if np.any(z.err) else np.zeros(op.n_out)
    sound = ctx.options.sound_fp and not op.exact
    if sound:
        g = gamma(op.fan_in + 2)
        magnitude = op.apply_abs((z.abs_sum() + np.abs(z.center) + z.err)[None])[0] + np.abs(op.bias)
        err = inflate(err + g * magnitude)
    if ctx.options.intersect_interval:
        lo, hi = linear_interval(op, *z.bounds(), ctx.options.sound_fp)
    else:
        lo, hi = np.full(op.n_out, -np.inf), np.full(op.n_out, np.inf)
    return Zonotope(center, gens, err, lo, hi, ctx.options.sound_fp)


TRANSFORMERS.register(Zonotope, *LINEAR_OPS)(zonotope_linear)


def _relax(z: Zonotope, ctx: Context, lam: np.ndarray, o_lo: np.ndarray, o_hi: np.ndarray,
           lo: np.ndarray, hi: np.ndarray) -> Zonotope:
    """y = λx + (o_lo+o_hi)/2 + ((o_hi-o_lo)/2) ε_new, one new symbol per neuron with o_hi > o_lo.

    Rounding: λc + μ and λG are each off by <= u per product, added to e with λ·Σ|G_i|.
    """
    mu = o_lo + (o_hi - o_lo) / 2
    spread = np.maximum(o_hi - mu, mu - o_lo)
    beta = np.where(o_hi > o_lo, np.nextafter(np.maximum(spread, 0.0), np.inf), 0.0)
    gens = _with_symbols(z, ctx)
    abs_sum = z.abs_sum() if ctx.options.sound_fp else None
    if ctx.owns_operand and ctx.owns_operand[0] and gens.format == _storage(ctx):
        gens.scale_columns(lam)
    else:
        gens = gens.apply(DiagonalOp(lam, np.zeros_like(lam), (lam.size,), (lam.size,)), _storage(ctx))
    center = lam * z.center + mu
    err = lam * z.err
    if ctx.options.sound_fp:
        err = inflate(err + 2 * UNIT_ROUNDOFF * (np.abs(lam * z.center) + np.abs(mu) + lam * abs_sum + lam * z.err))
    new = np.flatnonzero(beta > 0)
    gens.append_symbols(new, beta[new])
    gens, err = _reduce(gens, err, ctx)
    ctx.shared[SYMBOLS] = gens.shape[0]
    return Zonotope(center, gens, err, lo, hi, ctx.options.sound_fp)


def _reduce(gens: NoiseStore, err: np.ndarray, ctx: Context) -> tuple[NoiseStore, np.ndarray]:
    """Order reduction (opt-in): above K symbols, fold the rows of smallest L1 norm into the box term,
    e += Σ_dropped |G_i| (sound: each dropped ε_i G_i lies in [-|G_i|, |G_i|]). Only where no other
    live element shares the symbols (their numbering changes)."""
    k = ctx.options.reduce_symbols
    if k is None or gens.shape[0] <= k or not ctx.exclusive:
        return gens, err
    norms = gens.row_abs_sums()
    keep = np.zeros(len(norms), dtype=bool)
    keep[np.argsort(-norms, kind="stable")[:k]] = True
    reduced, dropped = gens.select_rows(keep)
    if reduced is not gens:
        gens.close()
    if ctx.options.sound_fp:
        dropped = inflate(dropped * (1.0 + gamma(len(norms) - k + 1)))
    ctx.shared["reduced_symbols"] = ctx.shared.get("reduced_symbols", 0) + int(len(norms) - k)
    return reduced, (inflate(err + dropped) if ctx.options.sound_fp else err + dropped)


@TRANSFORMERS.register(Zonotope, ReLU)
def zonotope_relu(z: Zonotope, layer: ReLU, ctx: Context) -> Zonotope:
    """DeepZ ReLU: stable neurons pass or vanish; crossing: λ = u/(u-l), μ = -λl/2, one new symbol."""
    l, u = z.bounds()
    lam, o_lo, o_hi = relu_parallel(l, u)
    return _relax(z, ctx, lam, o_lo, o_hi, np.maximum(l, 0.0), np.maximum(u, 0.0))


def _s_shaped(f, df):
    def transformer(z: Zonotope, layer: Layer, ctx: Context) -> Zonotope:
        l, u = z.bounds()
        lam, o_lo, o_hi = s_shaped_parallel(f, df, l, u)
        lo, hi = f(l), f(u)
        lo, hi = widen(lo - 8 * UNIT_ROUNDOFF * np.abs(lo), hi + 8 * UNIT_ROUNDOFF * np.abs(hi), 0.0)
        return _relax(z, ctx, lam, o_lo, o_hi, lo, hi)
    return transformer


TRANSFORMERS.register(Zonotope, Sigmoid)(_s_shaped(sigmoid, sigmoid_derivative))
TRANSFORMERS.register(Zonotope, Tanh)(_s_shaped(np.tanh, tanh_derivative))


@TRANSFORMERS.register(Zonotope, Add)
def zonotope_add(z: Zonotope, layer: Add, ctx: Context) -> Zonotope:
    """(c_a + c_b, G_a + G_b, e_a + e_b + rounding) over the shared symbols."""
    a, b = ctx.operands
    gens_a, gens_b = _with_symbols(a, ctx), _with_symbols(b, ctx)
    center = a.center + b.center
    err = a.err + b.err
    if ctx.options.sound_fp:
        err = inflate(err + UNIT_ROUNDOFF * (np.abs(center) + a.abs_sum() + b.abs_sum()))
    (la, ua), (lb, ub) = a.bounds(), b.bounds()
    lo, hi = widen(la + lb, ua + ub, 0.0)
    return Zonotope(center, gens_a.add(gens_b, _storage(ctx)), err, lo, hi, ctx.options.sound_fp)


@TRANSFORMERS.register(Zonotope, MaxPool2d)
def zonotope_maxpool(z: Zonotope, layer: MaxPool2d, ctx: Context) -> Zonotope:
    """An output whose window has one input dominating the rest keeps that input's affine form;
    the others become a fresh symbol over the box [max of lowers, max of uppers]."""
    l, u = z.bounds()
    lo, hi, dominated, source = maxpool_windows(l, u, layer, ctx.input_shapes[0])
    keep = np.where(dominated, source, 0)
    mask = dominated.astype(np.float64)
    select = ColumnSelectOp(keep, mask, (l.size,), (len(keep),))
    gens = _with_symbols(z, ctx).apply(select, _storage(ctx))
    c_box, r_box = centre_radius(lo, hi)
    center = np.where(dominated, z.center[keep], c_box)
    err = np.where(dominated, z.err[keep], 0.0)
    fresh = np.flatnonzero(~dominated & (r_box > 0))
    gens.append_symbols(fresh, r_box[fresh])
    ctx.shared[SYMBOLS] = gens.shape[0]
    return Zonotope(center, gens, err, lo, hi, ctx.options.sound_fp)
