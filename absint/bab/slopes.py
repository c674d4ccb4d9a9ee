"""Optimised DeepPoly lower bounds of output rows over ReLU sub-problems (alpha and beta multipliers).

A *pair* is one output row r of one sub-problem b (a box with some ReLU phases fixed and the bounds of
every layer). Back-substitution from y_r through the chain uses, at a free unstable ReLU input z
(l < 0 < u), the lower relaxation α z (any α in [0, 1]: Xu et al. ICLR 2021 "alpha-CROWN") when the
coefficient on the ReLU output is >= 0, and the chord u/(u-l) (z - l) otherwise; a split neuron with
sign s (+1 active, -1 inactive) enters the objective as y_r - β s z (β >= 0, Wang et al. NeurIPS 2021
"beta-CROWN"), a valid lower bound on the sub-problem where s z >= 0. Every (α, β) gives a sound bound.

The gradient is analytic: the bound equals the linearised network evaluated forward from the input
corner x* that minimises its last linear form, so with ẑ the pre-activations of that forward pass,
∂bound/∂α_i = g_i ẑ_i (g_i >= 0 the coefficient on the ReLU output) and ∂bound/∂β_i = -s_i ẑ_i.
Projected Adam ascent (Kingma and Ba 2015) keeps α in [0, 1] and β >= 0; the best iterate of each
pair is kept, and its bound is recomputed with rigorous float64 rounding terms (those of
``absint.domains.deeppoly_batch``).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field, fields

import numpy as np

from ..domains.deeppoly_batch import (AffineReluChain, SparseAffine, layer_product, right_product,
                                      transposed_product)
from ..fp import UNIT_ROUNDOFF, addition_error, gamma, inflate
from ..network import Affine, ReLU
from kernels.relu_pairs import adam_ascent, live_columns, relu_backward_pairs, relu_forward_pairs


def _c(a: np.ndarray, dtype=np.float64) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=dtype)


#: the optimiser's iterates run in this precision (BLAS products twice as fast as float64); only the
#: sound evaluations, at the start and at the best iterate, are float64 with rounding terms
ITERATE_DTYPE = np.float32

_CHAIN_ARRAYS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _chain_arrays(chain: AffineReluChain, dtype) -> list:
    """Per chain layer, (W, b, Wᵀ) in ``dtype`` for an Affine (the layer's own arrays for float64; Wᵀ in
    CSR for a ``SparseAffine``, None for a dense W), None for a ReLU; cached per chain."""
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return [(l.weight, l.bias, l.weight_t if isinstance(l, SparseAffine) else None) if isinstance(l, Affine)
                else None for l in chain.layers]
    per_chain = _CHAIN_ARRAYS.setdefault(chain, {})
    if dtype not in per_chain:
        per_chain[dtype] = [(l.weight.astype(dtype), l.bias.astype(dtype),
                             l.weight_t.astype(dtype) if isinstance(l, SparseAffine) else None)
                            if isinstance(l, Affine) else None for l in chain.layers]
    return per_chain[dtype]

#: the iterates drop the pairs already above ``stop_at`` once at most this fraction of them is left
COMPACT_BELOW = 0.75

#: Adam step sizes and moment decays (alpha-CROWN's defaults: 0.1 for slopes, 0.05 for multipliers)
LR_ALPHA, LR_BETA, ADAM_B1, ADAM_B2, ADAM_EPS = 0.1, 0.05, 0.9, 0.999, 1e-8


@dataclass
class PairProblem:
    """The per-pair data of a batch of sub-problems, gathered once: for each ReLU at chain index j,
    ``unstable[j]``, ``fixed[j]`` (slope 1 of stable-active neurons, 0 of dead ones), the chord slope
    ``su[j]`` and intercept ``bu[j]``, the split signs ``sign[j]`` (0 where free), the input
    magnitudes ``mag[j]`` (for rounding terms), DeepPoly's slopes ``area_alpha[j]`` and the input
    bounds ``pre_lower[j]``, ``pre_upper[j]``; per Affine, ``affine_v[j]`` = |W| m + |b|."""

    chain: AffineReluChain
    rows: np.ndarray        # (P,) output row of each pair
    lower: np.ndarray       # (P, n_in) input box of each pair
    upper: np.ndarray
    unstable: dict
    fixed: dict
    su: dict
    bu: dict
    sign: dict
    mag: dict
    affine_v: dict
    area_alpha: dict
    pre_lower: dict
    pre_upper: dict
    top: int = -1                       # chain index of the layer whose outputs the rows are (-1: the last)
    row_sign: np.ndarray | None = None  # (P,) ±1: bound σ z_row (-1 gives an upper bound); None: all +1
    _live: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def live_columns(self, j: int) -> np.ndarray:
        """Columns of ReLU j where some pair is unstable or split (``kernels.relu_pairs.live_columns``),
        computed once: later edits may only clear ``unstable`` entries (FSB's look-ahead), which keeps
        it a superset."""
        cols = self._live.get(j)
        if cols is None:
            cols = self._live[j] = live_columns(self.unstable[j], self.sign[j])
        return cols

    @property
    def n_pairs(self) -> int:
        return len(self.rows)

    @property
    def dtype(self) -> np.dtype:
        return self.lower.dtype

    def astype(self, dtype) -> "PairProblem":
        """The same pairs with every real array in ``dtype`` (for the optimiser's iterates)."""
        def conv(v):
            if isinstance(v, dict):
                return {j: a if a.dtype == bool else a.astype(dtype) for j, a in v.items()}
            return v.astype(dtype) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
        return PairProblem(**{f.name: conv(getattr(self, f.name)) for f in fields(self) if f.init})

    @classmethod
    def gather(cls, chain: AffineReluChain, layers: list[tuple[np.ndarray, np.ndarray]], phases: dict,
               lower: np.ndarray, upper: np.ndarray, sub: np.ndarray, rows: np.ndarray, top: int = -1,
               row_sign: np.ndarray | None = None) -> "PairProblem":
        """Pairs (sub[p], rows[p]) of the sub-problems whose layer bounds are ``layers`` (per chain layer,
        (B, n) arrays, as ``deeppoly_boxes`` returns them with splits) and whose input boxes are
        ``lower``/``upper`` (B, n_in). The rows are outputs of layer ``top`` (an Affine; default the
        last), bounded from below, or from above where ``row_sign`` is -1."""
        top = top % len(chain.layers)
        unstable, fixed, su, bu, sign, mag, affine_v, area, pl, pu = {}, {}, {}, {}, {}, {}, {}, {}, {}, {}
        # the magnitudes' products only for the sub-problems the pairs use (input splitting asks for a few
        # boxes of a round of up to 1024)
        used, at = np.unique(sub, return_inverse=True)
        for j, layer in enumerate(chain.layers[:top + 1]):
            lo_in, hi_in = (lower, upper) if j == 0 else layers[j - 1]
            m = np.maximum(np.abs(lo_in), np.abs(hi_in))
            if isinstance(layer, Affine):
                affine_v[j] = (layer_product(m[used], layer, absolute=True) + np.abs(layer.bias))[at]
                continue
            l, u = lo_in[sub], hi_in[sub]
            cross = (l < 0) & (u > 0)
            width = np.where(cross, u - l, 1.0)
            slope = np.where(cross, u / width, 0.0)
            # chord intercept -slope*l rounded up, as relu_deeppoly (sound for the computed slope)
            icpt = np.where(cross, np.nextafter(np.maximum(np.nextafter(-slope * l, np.inf),
                                                           np.nextafter((1.0 - slope) * u, np.inf)), np.inf), 0.0)
            unstable[j], fixed[j], su[j], bu[j] = cross, (l >= 0).astype(np.float64), slope, icpt
            ph = phases.get(j)
            sign[j] = np.zeros_like(l) if ph is None else ph[sub].astype(np.float64)
            mag[j] = m[sub]
            area[j] = np.where(cross & (u > -l), 1.0, 0.0)
            pl[j], pu[j] = l, u
        return cls(chain, np.asarray(rows, np.intp), lower[sub], upper[sub], unstable, fixed, su, bu, sign, mag,
                   affine_v, area, pl, pu, top, None if row_sign is None else np.asarray(row_sign, np.float64))

    def take(self, pairs: np.ndarray) -> "PairProblem":
        """The sub-problem of the given pairs (copies of their rows)."""
        per_pair = lambda d: {j: a[pairs] for j, a in d.items()}  # noqa: E731
        return PairProblem(self.chain, self.rows[pairs], self.lower[pairs], self.upper[pairs],
                           per_pair(self.unstable), per_pair(self.fixed), per_pair(self.su), per_pair(self.bu),
                           per_pair(self.sign), per_pair(self.mag), per_pair(self.affine_v),
                           per_pair(self.area_alpha), per_pair(self.pre_lower), per_pair(self.pre_upper), self.top,
                           None if self.row_sign is None else self.row_sign[pairs])

    def default_alpha(self) -> dict:
        """DeepPoly's slopes: 1 where u > -l, else 0 (the area heuristic), per ReLU (P, n)."""
        return {j: a.copy() for j, a in self.area_alpha.items()}

    def zero_beta(self) -> dict:
        return {j: np.zeros_like(s) for j, s in self.sign.items()}


@dataclass
class PairBounds:
    """Lower bounds (P,) of the pairs, the coefficients g_j on each ReLU output (for branching scores),
    the minimising input corners x* (P, n_in), and when asked the gradients in α and β."""

    lower: np.ndarray
    coef: dict
    x_star: np.ndarray
    grad_alpha: dict | None = None
    grad_beta: dict | None = None


def pair_bounds(pp: PairProblem, alpha: dict, beta: dict, sound: bool = True, grad: bool = False) -> PairBounds:
    """Lower bound of σ_p y_{rows[p]} (y: layer ``pp.top``'s outputs) on each pair's sub-problem for the
    given slopes and multipliers."""
    chain, dt = pp.chain, pp.dtype
    if sound and dt != np.float64:
        raise ValueError("sound bounds are evaluated in float64")
    arrays = _chain_arrays(chain, dt)
    P = pp.n_pairs
    C = np.zeros((P, arrays[pp.top][0].shape[0]), dt)
    C[np.arange(P), pp.rows] = 1.0 if pp.row_sign is None else pp.row_sign
    const = np.zeros(P, dt)
    slack = np.zeros(P)
    coefs = {}
    for j in range(pp.top, -1, -1):
        if arrays[j] is not None:
            W, bias, _ = arrays[j]
            const += C @ bias
            if sound:
                slack += gamma(max(W.shape) + 3) * np.einsum("pj,pj->p", np.abs(C), pp.affine_v[j]) \
                    + addition_error(const)
            C = right_product(C, W)
            continue
        coefs[j] = C
        C_new = np.empty_like(C)
        acc, abs_mag, abs_icpt = np.zeros(P, dt), np.empty(P, dt), np.empty(P, dt)
        relu_backward_pairs(C, _c(alpha[j], dt), pp.su[j], pp.bu[j], pp.fixed[j], pp.unstable[j], _c(beta[j], dt),
                            pp.sign[j], pp.mag[j], pp.live_columns(j), C_new, acc, abs_mag, abs_icpt)
        const += acc
        if sound:
            slack += 2 * UNIT_ROUNDOFF * abs_mag + gamma(C.shape[1] + 2) * abs_icpt + addition_error(const)
        C = C_new
    x_star = np.where(C >= 0, pp.lower, pp.upper)
    bound = const + np.einsum("pj,pj->p", C, x_star)
    if sound:
        m = np.maximum(np.abs(pp.lower), np.abs(pp.upper))
        slack += gamma(chain.n_inputs + pp.top + 5) * (np.einsum("pj,pj->p", np.abs(C), m) + np.abs(const))
        bound = np.nextafter(bound - inflate(slack), -np.inf)
    out = PairBounds(bound, coefs, x_star)
    if grad:
        out.grad_alpha, out.grad_beta = _gradients(pp, alpha, coefs, x_star)
    return out


def _gradients(pp: PairProblem, alpha: dict, coefs: dict, x_star: np.ndarray) -> tuple[dict, dict]:
    """∂bound/∂α and ∂bound/∂β from the forward pass of the linearised network from x*."""
    h = x_star
    ga, gb = {}, {}
    for j, arrays in enumerate(_chain_arrays(pp.chain, pp.dtype)[:pp.top + 1]):
        if arrays is not None:
            W, bias, WT = arrays
            h = transposed_product(h, W, WT) + bias
            continue
        z = h
        h, ga[j], gb[j] = np.empty_like(z), np.empty_like(z), np.empty_like(z)
        relu_forward_pairs(z, coefs[j], _c(alpha[j], pp.dtype), pp.su[j], pp.bu[j], pp.fixed[j], pp.unstable[j], pp.sign[j],
                           pp.live_columns(j), h, ga[j], gb[j])
    return ga, gb


@dataclass
class OptimisedBounds:
    """The sound bounds (P,) at each pair's best (α, β), those parameters, the evaluation there, and the
    pairs in the iterates' precision (``work``, for cheap look-ahead bounds)."""

    lower: np.ndarray
    alpha: dict
    beta: dict
    at_best: PairBounds
    iterations: int
    work: PairProblem | None = None
    improved: np.ndarray | None = None  # (P,) bool: an iterate's sound bound beat the start's


def _pick(keep: np.ndarray, a: PairBounds, b: PairBounds) -> PairBounds:
    """Per pair, ``a`` where ``keep`` else ``b``."""
    if keep.all():
        return a
    k = keep[:, None]
    return PairBounds(np.where(keep, a.lower, b.lower), {j: np.where(k, c, b.coef[j]) for j, c in a.coef.items()},
                      np.where(k, a.x_star, b.x_star))


def optimise_pairs(pp: PairProblem, alpha: dict | None = None, beta: dict | None = None, iterations: int = 20,
                   stop_at: float = 0.0, lr_alpha: float = LR_ALPHA, lr_beta: float = LR_BETA,
                   check_time=None, dtype=None) -> OptimisedBounds:
    """Projected Adam ascent of every pair's lower bound in its α (in [0, 1]) and β (>= 0), from the given
    starting values (DeepPoly's slopes and zero multipliers by default). The start is evaluated soundly
    in float64; the iterates run in ``dtype`` (default ``ITERATE_DTYPE``); the best iterate of each pair (chosen on its bound without
    rounding terms) is evaluated soundly again, and each pair keeps the better of the two sound bounds,
    so the result is never below the start's. Pairs whose bound exceeds ``stop_at`` leave the iterates
    (together, once at most ``COMPACT_BELOW`` of the pairs iterated are left); all stop once every one does;
    ``check_time()`` is called every iteration (it may raise)."""
    alpha0 = {j: _c(np.clip(a, 0.0, 1.0)) for j, a in (alpha or pp.default_alpha()).items()}
    beta0 = {j: _c(np.maximum(b, 0.0) * (pp.sign[j] != 0)) for j, b in (beta or pp.zero_beta()).items()}
    start = pair_bounds(pp, alpha0, beta0, sound=True, grad=iterations > 1)
    if iterations <= 1 or np.all(start.lower > stop_at):
        return OptimisedBounds(start.lower, alpha0, beta0, start, 1, pp, np.zeros(pp.n_pairs, bool))
    dtype = np.dtype(ITERATE_DTYPE if dtype is None else dtype)
    work = pp if dtype == np.float64 else pp.astype(dtype)
    alpha = {j: a.astype(dtype) for j, a in alpha0.items()}
    beta = {j: b.astype(dtype) for j, b in beta0.items()}
    best_a = {j: a.copy() for j, a in alpha.items()}
    best_b = {j: b.copy() for j, b in beta.items()}
    best = start.lower.copy()
    moments = {("a", j): [np.zeros_like(a), np.zeros_like(a)] for j, a in alpha.items()}
    moments.update({("b", j): [np.zeros_like(b), np.zeros_like(b)] for j, b in beta.items()})
    grads = start.grad_alpha, start.grad_beta
    done = 1
    live_pp, idx = work, np.arange(pp.n_pairs)  # the pairs still optimised (not yet above stop_at)
    split = {j: s != 0 for j, s in live_pp.sign.items()}
    for it in range(1, iterations):
        c1, c2 = 1 - ADAM_B1 ** it, 1 - ADAM_B2 ** it
        for (kind, j), (m1, m2) in moments.items():
            if kind == "a":  # α acts on free unstable neurons only, β on split ones (sign != 0)
                adam_ascent(alpha[j], _c(grads[0][j], dtype), m1, m2, ADAM_B1, ADAM_B2, c1, c2, lr_alpha, ADAM_EPS,
                            0.0, 1.0, live_pp.unstable[j], live_pp.live_columns(j))
            else:
                adam_ascent(beta[j], _c(grads[1][j], dtype), m1, m2, ADAM_B1, ADAM_B2, c1, c2, lr_beta, ADAM_EPS,
                            0.0, np.inf, split[j], live_pp.live_columns(j))
        if check_time is not None:
            check_time()
        ev = pair_bounds(live_pp, alpha, beta, sound=False, grad=it < iterations - 1)
        better = ev.lower > best[idx]
        gi = idx[better]
        best[gi] = ev.lower[better]
        for j in alpha:
            best_a[j][gi] = alpha[j][better]
            best_b[j][gi] = beta[j][better]
        done = it + 1
        live = best[idx] <= stop_at
        if not live.any():
            break
        grads = ev.grad_alpha, ev.grad_beta
        if it < iterations - 1 and live.sum() <= COMPACT_BELOW * live.size:  # drop the pairs already above stop_at from the iterates
            keep = np.flatnonzero(live)
            idx, live_pp = idx[keep], live_pp.take(keep)
            split = {j: m[keep] for j, m in split.items()}
            alpha = {j: _c(a[keep], dtype) for j, a in alpha.items()}
            beta = {j: _c(b[keep], dtype) for j, b in beta.items()}
            moments = {key: [_c(m[keep], dtype) for m in ms] for key, ms in moments.items()}
            grads = tuple({j: g[keep] for j, g in gs.items()} for gs in grads)
    best_a = {j: _c(a) for j, a in best_a.items()}
    best_b = {j: _c(b) for j, b in best_b.items()}
    final = pair_bounds(pp, best_a, best_b, sound=True)
    keep = final.lower >= start.lower
    k = keep[:, None]
    alpha_out = {j: np.where(k, a, alpha0[j]) for j, a in best_a.items()}
    beta_out = {j: np.where(k, b, beta0[j]) for j, b in best_b.items()}
    at_best = _pick(keep, final, start)
    return OptimisedBounds(at_best.lower, alpha_out, beta_out, at_best, done, work, final.lower > start.lower)


def optimise_pairs_with_cold_retry(pp: PairProblem, alpha: dict, beta: dict | None, floor: np.ndarray,
                                   iterations: int, lr_alpha: float, lr_beta: float, check_time=None,
                                   dtype=None) -> OptimisedBounds:
    """``optimise_pairs`` from the warm start (α, β) with steps ``lr_alpha``, ``lr_beta``; the pairs that no
    iterate raised and that end at or below ``floor`` (P,) are optimised again from DeepPoly's slopes and
    zero multipliers with the root's steps (``LR_ALPHA``, ``LR_BETA``), and each keeps the better sound
    bound, with its parameters.

    In a search, ``floor`` is the parent's bound, which a child keeps anyway. A warm start inherited
    through many splits can be a trap that Adam's first steps (about lr on every coordinate) leave
    without ever gaining: on mnistfc 256x4 prop_6_0.05 at depth 40, 20 steps from it raised 3-9 % of the
    children's bounds (median gain 0), 20 steps from the cold start 92-97 % (median +0.09 to +0.14).
    Retrying only the pairs no step raised keeps the cost low where the warm start works.
    """
    warm = optimise_pairs(pp, alpha, beta, iterations=iterations, lr_alpha=lr_alpha, lr_beta=lr_beta,
                          check_time=check_time, dtype=dtype)
    retry = np.flatnonzero((warm.lower <= floor) & ~warm.improved)
    if not retry.size:
        return warm
    cold = optimise_pairs(pp.take(retry), iterations=iterations, check_time=check_time, dtype=dtype)
    win = cold.lower > warm.lower[retry]
    take, src = retry[win], np.flatnonzero(win)
    if not take.size:
        return warm
    warm.lower[take] = cold.lower[src]
    warm.at_best.lower[take] = cold.at_best.lower[src]
    warm.at_best.x_star[take] = cold.at_best.x_star[src]
    for j in warm.alpha:
        warm.alpha[j][take] = cold.alpha[j][src]
        warm.beta[j][take] = cold.beta[j][src]
        warm.at_best.coef[j][take] = cold.at_best.coef[j][src]
    return warm


def prove_empty(chain: AffineReluChain, layers: list, phases: dict, lower: np.ndarray, upper: np.ndarray,
                iterations: int = 50, check_time=None) -> np.ndarray:
    """Which sub-problems (B,) no input reaches, proved by beta-CROWN with a zero objective: for any α and
    β >= 0 the sound lower bound of -Σ_i β_i s_i z_i over the relaxation is at most 0 at every point that meets
    each split (s_i z_i >= 0), so a positive one proves there is none (by LP duality one exists whenever the
    relaxation with the split constraints is infeasible). ``optimise_pairs`` ascends it, one pair per
    sub-problem, from DeepPoly's slopes and β = 0; the bound is homogeneous in β, so the step sizes and the
    objective's scale do not matter, which they do for the rows: deep in a search most children can be
    empty, and 20 steps on their rows show it for few (mnistfc 256x4 prop_6_0.05, rounds saved from
    searches: 233-256 of 256 children at depth 20-40 proved empty in 50 steps; at depth 43-58, 143 of 210
    in 200 steps, 0.8 s, where 50 steps proved none)."""
    B = len(lower)
    pp = PairProblem.gather(chain, layers, phases, lower, upper, np.arange(B), np.zeros(B, np.intp),
                            row_sign=np.zeros(B))
    return optimise_pairs(pp, iterations=iterations, check_time=check_time).lower > 0.0


def optimise_intermediate(chain: AffineReluChain, layers: list, phases: dict, lower: np.ndarray, upper: np.ndarray,
                          iterations: int = 20, check_time=None,
                          after: np.ndarray | None = None) -> tuple[list, np.ndarray]:
    """Tighter bounds of the free unstable ReLU inputs, layer by layer from the input: each neuron's lower
    and upper bound optimised over its own slopes of the earlier ReLUs (alpha-CROWN's intermediate
    bounds) and the multipliers of the earlier splits, intersected with the given ones; later layers then
    use the tightened relaxations. With ``after`` (B,), sub-problem b tightens only the layers after
    chain layer after[b] (a child's new split at ReLU after[b] + 1 cannot change the earlier ones).
    Returns the new ``layers`` list (the given arrays are not modified) and which sub-problems the
    tightened bounds prove empty."""
    layers = [(lo.copy(), hi.copy()) for lo, hi in layers]
    empty = np.zeros(len(lower), bool)
    for k in range(1, len(chain.layers) - 1):
        if not (isinstance(chain.layers[k], Affine) and isinstance(chain.layers[k + 1], ReLU)):
            continue
        if check_time is not None:
            check_time()
        lo, hi = layers[k]
        free = (lo < 0) & (hi > 0)
        if k + 1 in phases:
            free &= phases[k + 1] == 0
        if after is not None:
            free &= (after < k)[:, None]
        b, i = np.nonzero(free)
        if not b.size:
            continue
        n = b.size
        pp = PairProblem.gather(chain, layers, phases, lower, upper, np.concatenate([b, b]), np.concatenate([i, i]),
                                top=k, row_sign=np.concatenate([np.ones(n), -np.ones(n)]))
        opt = optimise_pairs(pp, iterations=iterations, stop_at=np.inf, check_time=check_time)
        lo[b, i] = np.maximum(lo[b, i], opt.lower[:n])
        hi[b, i] = np.minimum(hi[b, i], -opt.lower[n:])
        crossed = lo[b, i] > hi[b, i]  # sound bounds cross only on an empty sub-problem
        empty[b[crossed]] = True
        hi[b, i] = np.maximum(hi[b, i], lo[b, i])
        layers[k + 1] = (np.maximum(lo, 0.0), np.maximum(hi, 0.0))
    return layers, empty


__all__ = ["PairProblem", "PairBounds", "pair_bounds", "optimise_pairs", "OptimisedBounds", "optimise_intermediate",
           "optimise_pairs_with_cold_retry", "prove_empty"]
