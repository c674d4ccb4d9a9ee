"""Best-first branch and bound on the input box, bounding many sub-boxes per call with batched DeepPoly.

For networks that are chains of Affine and ReLU layers (ACAS Xu, mnistfc) with few input dimensions
of non-zero width. The property rows A y - b are the last layer; a disjunct of the unsafe set is
empty on a box when some row's lower bound is positive. Each round pops the K hardest boxes (lowest
best-row lower bound), halves each along the dimension of largest smear |Λ_i| x width_i of the lower
bound y_r >= Λ x + c of its open disjuncts' best rows (ReluVal/Neurify, Wang et al. 2018) plus its
share of the looseness the smears do not explain (see ``_split_dims``), bounds the
2K halves in one ``deeppoly_boxes`` call, and tries as counterexamples each half's centre and the box
corner minimising Λ x (the relaxation's own minimiser), checked by a concrete forward pass. K adapts so
that one round takes about ``ROUND_SECONDS`` (deadlines stay precise). A conjunctive disjunct is also
proved empty by a convex combination of two rows' linear bounds (``_pair_lower``), and the boxes
DeepPoly leaves open get optimised slopes where that pays (``OptimiseGate``).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .domains.deeppoly_batch import AffineReluChain, BatchBounds, ReluSplits, deeppoly_boxes
from .fp import gamma, inflate, outward_float32
from .network import Affine

#: target wall time of one round of batched bounding
ROUND_SECONDS = 0.1
#: bounds on the number of boxes split per round
MIN_ROUND, MAX_ROUND = 4, 1024
#: look-ahead branching (opt-in) only with at most this many splittable dimensions
MAX_LOOKAHEAD = 8
#: every this many rounds, a gradient attack on the currently hardest box
ATTACK_EVERY = 32
#: weight of the looseness the smears do not explain in the choice of the split dimension; boxes needed
#: to decide ACAS Xu 1_4, 3_3, 2_2 prop_1 and 1_1 prop_3 in all: 11.5k (0.01), 13.4k (0.05), 20.6k (0.2),
#: over 40k (1.0; 0 never finishes 1_4 prop_1)
UNEXPLAINED_WEIGHT = 0.01
#: also prove a conjunctive disjunct empty by convex combinations of two of its rows (``_pair_lower``)
PAIR_COMBINATIONS = True
#: ... only with at most this many inputs, on chunks of boxes of about PAIR_CHUNK_BYTES of temporaries
PAIR_MAX_INPUTS, PAIR_CHUNK_BYTES = 32, 32 << 20
#: children's layer bounds are intersected with their parent's (kept float32 in the queue): fewer unstable
#: ReLUs to back-substitute, tighter relaxations
REUSE_PARENT_BOUNDS = True
#: at most this many bytes of layer bounds in the queue (ACAS Xu: ~2.4 KB a box); beyond, children of
#: boxes queued without them start from their own bounds
PARENT_BOUNDS_BYTES = 1 << 30
#: Adam iterations of optimised slopes on the boxes DeepPoly leaves open where it pays (``OptimiseGate``;
#: 0: DeepPoly only)
OPTIMISE_ITERATIONS = 20
#: boxes optimised slopes leave open get optimised intermediate bounds too (alpha-CROWN's), gated the same
#: way, once the search has bounded INTERMEDIATE_AFTER boxes: ~20 ms a box against ~0.3 ms for DeepPoly,
#: it pays only on hard instances. ACAS Xu 3_3 / 4_2 prop_2: 27 / 26 s (from the first box: 48 / 27 s;
#: without: 82 s / timeout); 1_8 prop_2, 2_2 prop_1: 4.6 / 1.7 s (from the first box: 20.5 / 5.5 s)
OPTIMISE_INTERMEDIATE = True
INTERMEDIATE_AFTER = 10_000


class OptimiseGate:
    """Which boxes DeepPoly leaves open get optimised slopes: those at depths of the search tree where
    optimising closed at least ``MIN_CLOSE_RATE`` of the boxes it was tried on (every depth is tried on
    its first ``EXPLORE`` boxes). Wide shallow boxes are rarely closed by better slopes (ACAS Xu 3_3 prop_2:
    none of the first 31 up to depth 8, 10-40 % deeper), and a closed deep box saves the subtree DeepPoly
    alone would need."""

    EXPLORE = 32
    MIN_CLOSE_RATE = 0.05

    def __init__(self, max_depth: int = 256):
        self.tried = np.zeros(max_depth, np.int64)
        self.closed = np.zeros(max_depth, np.int64)

    def select(self, depth: np.ndarray, open_: np.ndarray) -> np.ndarray:
        """Mask of the open boxes (``open_``) at depths ``depth`` to optimise."""
        d = np.minimum(depth, len(self.tried) - 1)
        pays = (self.tried[d] < self.EXPLORE) | (self.closed[d] >= self.MIN_CLOSE_RATE * self.tried[d])
        return open_ & pays

    def record(self, depth: np.ndarray, closed: np.ndarray) -> None:
        """The optimised boxes' depths and whether optimising closed them."""
        d = np.minimum(depth, len(self.tried) - 1)
        np.add.at(self.tried, d, 1)
        np.add.at(self.closed, d, closed.astype(np.int64))


@dataclass(frozen=True)
class RowSets:
    """The property rows: A (R, n_out), b (R,), strict (R,), and each disjunct's slice of rows."""

    A: np.ndarray
    b: np.ndarray
    strict: np.ndarray
    slices: tuple[slice, ...]


@dataclass
class SplitOutcome:
    """"holds", "unknown", or a counterexample (x, y); with the search statistics."""

    result: str | tuple
    boxes: int = 0
    rounds: int = 0
    max_depth: int = 0


def _disjunct_scores(low: np.ndarray, rows: RowSets, pairs: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per box and disjunct: proved empty, score (best row's lower bound, or of a pair of its rows when
    ``pairs`` (B, D) from ``_pair_lower`` is given and higher), and the best row's index."""
    proved = np.where(rows.strict, low >= 0, low > 0)
    n, d = low.shape[0], len(rows.slices)
    empty = np.zeros((n, d), bool)
    score = np.full((n, d), np.inf)
    best = np.zeros((n, d), np.intp)
    for k, s in enumerate(rows.slices):
        if s.stop <= s.start:
            continue
        empty[:, k] = proved[:, s].any(axis=1)
        best[:, k] = s.start + np.argmax(low[:, s], axis=1)
        score[:, k] = low[np.arange(n), best[:, k]]
    if pairs is not None:
        empty |= pairs > 0
        score = np.maximum(score, pairs)
    return empty, score, best


def _pair_lower(coef: np.ndarray, const: np.ndarray, lo: np.ndarray, hi: np.ndarray, rows: RowSets) -> np.ndarray:
    """Per box and disjunct, a sound lower bound of max(row_r, row_s) over the box from the best convex
    combination of two rows' linear lower bounds row_r >= Λ_r x + c_r (-inf with fewer than two rows, or
    with more than ``PAIR_MAX_INPUTS`` inputs: the candidates cost (pairs x inputs²) per box).

    A disjunct (a conjunction A y <= b) is empty when max_r row_r > 0 on the box; that follows from
    t row_r + (1 - t) row_s > 0 for any t in [0, 1], whose lower bound
    v(t) = t c_r + (1-t) c_s + Σ_i min(g_i lo_i, g_i hi_i), g = t Λ_r + (1-t) Λ_s, is concave and
    piecewise linear in t: its maximum is at t = 0, 1 (the single rows, which the caller has) or where
    some g_i = 0, the candidates tried here. This is the LP dual of min_x max(Λ_r x + c_r, Λ_s x + c_s);
    on ACAS Xu's conjunctive properties (2, 3, 4) it proves boxes on which no single row is positive.
    Rounding: every term's error is below gamma_{n+6} times its magnitude (Higham Thm 3.1)."""
    n_box, n_in = lo.shape
    out = np.full((n_box, len(rows.slices)), -np.inf)
    if n_in > PAIR_MAX_INPUTS:
        return out
    for k, s in enumerate(rows.slices):
        r, q = np.triu_indices(s.stop - s.start, 1)
        if not r.size:
            continue
        step = max(1, PAIR_CHUNK_BYTES // (8 * r.size * n_in * n_in))
        for b in range(0, n_box, step):
            out[b:b + step, k] = _pair_values(coef[b:b + step, s.start + r], coef[b:b + step, s.start + q],
                                              const[b:b + step, s.start + r], const[b:b + step, s.start + q],
                                              lo[b:b + step], hi[b:b + step])
    return out


def _pair_values(Lr, Lq, cr, cq, lo, hi) -> np.ndarray:
    """``_pair_lower`` on boxes (B, n) for row pairs with coefficients (B, P, n) and constants (B, P)."""
    n_in = lo.shape[1]
    mag = np.maximum(np.abs(lo), np.abs(hi))[:, None, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = Lq / (Lq - Lr)                                              # g_i(t) = 0
    t = np.where(np.isfinite(t) & (t > 0) & (t < 1), t, 0.0)[..., None]  # (B, P, n cand, 1)
    g = t * Lr[:, :, None] + (1 - t) * Lq[:, :, None]                   # (B, P, cand, n)
    v = (t[..., 0] * cr[..., None] + (1 - t[..., 0]) * cq[..., None]
         + np.minimum(g * lo[:, None, None], g * hi[:, None, None]).sum(axis=-1))
    err = gamma(n_in + 6) * (t[..., 0] * np.abs(cr)[..., None] + (1 - t[..., 0]) * np.abs(cq)[..., None]
                             + ((t * np.abs(Lr)[:, :, None] + (1 - t) * np.abs(Lq)[:, :, None]) * mag).sum(axis=-1))
    v = np.nextafter(v - inflate(err, 3 * n_in + 6), -np.inf)  # (3n + 6 terms: products may underflow)
    return np.where(np.isnan(v), -np.inf, v).max(axis=(1, 2))


def _split_dims(coef: np.ndarray, best: np.ndarray, open_: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                gap: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Per box, the input dimension of largest estimated influence on its open disjuncts' best rows.

    The linear part of a row's looseness is the smear |Λ_i| x width_i of its lower bound y >= Λx + c;
    what the smears do not explain, gap - Σ_i smear_i (gap = the row's value at the box centre minus
    its lower bound), comes from the ReLU relaxations and is shared out in proportion to the widths
    relative to ``scale`` (the root box's widths). Without the second term, a box that is narrow in the
    dimensions the bound is linear in, but wide in one it bends along, is split forever."""
    n = lo.shape[0]
    width = hi - lo
    rel = np.where(scale > 0, width / np.where(scale > 0, scale, 1.0), 0.0)
    rel_share = rel / np.maximum(rel.sum(axis=1, keepdims=True), np.finfo(float).tiny)
    influence = np.zeros_like(lo)
    for k in range(best.shape[1]):
        smear = np.abs(coef[np.arange(n), best[:, k]]) * width
        unexplained = UNEXPLAINED_WEIGHT * np.maximum(gap[:, k] - smear.sum(axis=1), 0.0)
        influence += np.where(open_[:, k:k + 1], smear + unexplained[:, None] * rel_share, 0.0)
    influence[width <= 0] = -1.0
    dims = np.argmax(influence, axis=1)
    flat = influence.max(axis=1) <= 0
    dims[flat] = np.argmax(rel[flat], axis=1)
    return dims


def _centre_gaps(forward, rows: "RowSets", lo: np.ndarray, hi: np.ndarray, best: np.ndarray,
                 score: np.ndarray) -> np.ndarray:
    """Per box and disjunct, (A y(centre) - b) of the best row minus its lower bound (>= 0 up to rounding)."""
    y = forward((lo + hi) / 2)
    d = y @ rows.A.T - rows.b
    n = len(lo)
    gap = np.zeros(best.shape)
    for k in range(best.shape[1]):
        gap[:, k] = d[np.arange(n), best[:, k]] - score[:, k]
    return np.where(np.isfinite(gap), np.maximum(gap, 0.0), 0.0)


def split_search(chain: AffineReluChain, rows: RowSets, lo0: np.ndarray, hi0: np.ndarray, *,
                 forward: Callable[[np.ndarray], np.ndarray],
                 check_counterexample: Callable[[np.ndarray], tuple | None],
                 attack: Callable[[np.ndarray, np.ndarray], tuple | None],
                 check_time: Callable[[], None], sound_fp: bool = True, lookahead: bool = False,
                 optimise: int | None = None, background: Callable[[], tuple | None] | None = None,
                 out: SplitOutcome | None = None) -> SplitOutcome:
    """Decide "no point of [lo0, hi0] reaches any disjunct" by input splitting (see the module docstring).

    ``forward`` maps flat inputs (N, n_in) to outputs; ``check_counterexample(x)`` returns the re-checked
    (x, y) or None; ``attack(lo, hi)`` is a gradient falsifier on one box; ``check_time`` raises at the
    deadline; ``background()``, called every round, is a falsifier that keeps to its own time share (a
    ``RegionAttack``) and returns a re-checked (x, y) or None. ``lookahead``: split each box along every
    dimension on trial and keep the dimension whose halves have the best summed bound (ties to the smear
    dimension); measured on ACAS Xu it needs fewer boxes on some instances (3_3 prop_1: 541 vs 1327) and
    far more on others (1_1 prop_3: > 29,000 vs 6,089), so smear is the default. ``optimise`` > 0
    (default ``OPTIMISE_ITERATIONS``): the open rows of the boxes DeepPoly does not prove, at depths the
    ``OptimiseGate`` lets through, are bounded again with that many Adam iterations of optimised slopes
    (``absint.bab.slopes``, alpha-CROWN). ``out`` (updated as the search goes, so a caller keeps the
    statistics of a search stopped by ``check_time``) is returned."""
    out = out if out is not None else SplitOutcome("holds")
    optimise = OPTIMISE_ITERATIONS if optimise is None else optimise

    gate = OptimiseGate() if optimise else None
    deep_gate = OptimiseGate() if optimise and OPTIMISE_INTERMEDIATE else None

    affine = [k for k, layer in enumerate(chain.layers) if isinstance(layer, Affine)]

    def bound(lo, hi, depth, open_in, prior=None):
        splits = ReluSplits({}, prior) if optimise or REUSE_PARENT_BOUNDS else None
        res = deeppoly_boxes(chain, lo, hi, sound_fp, lower_coef=True, splits=splits)
        out.boxes += len(lo)
        pairs = _pair_lower(res.lower_coef, res.lower_const, lo, hi, rows) if PAIR_COMBINATIONS else None
        if sound_fp and res.infeasible is not None and res.infeasible.any():
            raise RuntimeError("sound layer bounds crossed on a non-empty input box (a bug)")
        empty, score, best = _disjunct_scores(res.lower, rows, pairs)
        if gate is not None:
            pick = gate.select(depth, (open_in & ~empty).any(axis=1))
            if pick.any():
                low = _optimised_rows(chain, res, lo, hi, rows, optimise, pick[:, None] & open_in & ~empty)
                empty, score, best = _disjunct_scores(low, rows, pairs)
                gate.record(depth[pick], ~(open_in & ~empty)[pick].any(axis=1))
                late = deep_gate is not None and out.boxes > INTERMEDIATE_AFTER
                deeper = deep_gate.select(depth, pick & (open_in & ~empty).any(axis=1)) if late else pick[:0]  # [:0]: none
                if deeper.any():
                    idx = np.flatnonzero(deeper)
                    tight, layers = _tightened_rows(chain, res, lo, hi, rows, optimise, idx, open_in[idx] & ~empty[idx])
                    # fmax/fmin: a NaN from the float32 iterates never replaces a bound
                    low[idx] = np.fmax(low[idx], tight)
                    for k in affine[:-1]:  # the children start from the tightened bounds (the rows: ``low``)
                        res.layers[k][0][idx] = np.fmax(res.layers[k][0][idx], layers[k][0])
                        res.layers[k][1][idx] = np.fmin(res.layers[k][1][idx], layers[k][1])
                    empty, score, best = _disjunct_scores(low, rows, pairs)
                    deep_gate.record(depth[idx], ~(open_in & ~empty)[idx].any(axis=1))
        return res, empty, score, best

    root, empty, score, best = bound(lo0[None], hi0[None], np.zeros(1, np.intp), np.ones((1, len(rows.slices)), bool))
    open_root = ~empty[0]
    if not open_root.any():
        return out
    splittable = np.flatnonzero(hi0 > lo0)
    queue: list = []
    counter = 0
    heapq.heappush(queue, (float(score[0][open_root].min()), counter, 0, lo0, hi0, open_root,
                           int(_split_dims(root.lower_coef, best, open_root[None], lo0[None], hi0[None],
                                           _centre_gaps(forward, rows, lo0[None], hi0[None], best, score),
                                           hi0 - lo0)[0]), _row(_packed_layers(root, affine, [0]), 0)))
    lookahead = lookahead and splittable.size <= MAX_LOOKAHEAD
    k_round = MIN_ROUND
    while queue:
        check_time()
        t0 = time.perf_counter()
        items = [heapq.heappop(queue) for _ in range(min(k_round, len(queue)))]
        # children of every item along every candidate dimension (look-ahead) or its smear dimension
        cand = [(i, d) for i, it in enumerate(items) for d in (splittable if lookahead else (it[6],))
                if it[3][d] < it[4][d]]
        lo = np.empty((2 * len(cand), lo0.size))
        hi = np.empty_like(lo)
        for c, (i, d) in enumerate(cand):
            l, h = items[i][3], items[i][4]
            mid = l[d] + (h[d] - l[d]) / 2
            lo[2 * c], hi[2 * c], lo[2 * c + 1], hi[2 * c + 1] = l, h, l, h
            if l[d] < mid < h[d]:
                hi[2 * c, d] = lo[2 * c + 1, d] = mid
        parent_open = np.array([items[i][5] for i, _ in cand for _ in (0, 1)]).reshape(len(lo), -1)
        res, empty, score, best = bound(lo, hi, np.array([items[i][2] + 1 for i, _ in cand for _ in (0, 1)]),
                                        parent_open, _parents_layers([items[i][7] for i, _ in cand for _ in (0, 1)],
                                                                     chain, affine))
        out.rounds += 1
        still = parent_open & ~empty
        child_score = np.where(still, score, np.inf).min(axis=1)
        finite = child_score[np.isfinite(child_score)]
        capped = np.minimum(child_score, (finite.max() if finite.size else 0.0) + 1.0)
        pair = capped[0::2] + capped[1::2]
        chosen = {}  # per item, the candidate with the best pair; ties go to the smear dimension
        for c, (i, d) in enumerate(cand):
            if np.array_equal(lo[2 * c], lo[2 * c + 1]):
                continue
            tie_break = 1e-9 * max(1.0, abs(pair[chosen[i]])) if i in chosen else 0.0
            if i not in chosen or pair[c] > pair[chosen[i]] + tie_break or (
                    pair[c] >= pair[chosen[i]] - tie_break and d == items[i][6]):
                chosen[i] = c
        if len(chosen) < len(items):
            out.result = "unknown"  # a box that cannot be split further in floating point
            return out
        keep = np.array(sorted(2 * c + s for c in chosen.values() for s in (0, 1)))
        live_all = np.flatnonzero(still.any(axis=1))
        if live_all.size:
            found = _try_minimisers(res.lower_coef, best, still, lo, hi, live_all, rows, forward, check_counterexample)
            if found is not None:
                out.result = found
                return out
        live = keep[still[keep].any(axis=1)]
        if live.size:
            packed = _packed_layers(res, affine, live)
            if packed is not None and (len(queue) + live.size) * packed.shape[1] * 4 > PARENT_BOUNDS_BYTES:
                packed = None  # the queue's copies of layer bounds stay within their budget
            gaps = _centre_gaps(forward, rows, lo[live], hi[live], best[live], score[live])
            dims = _split_dims(res.lower_coef[live], best[live], still[live], lo[live], hi[live], gaps, hi0 - lo0)
            for j, ch in enumerate(live):
                depth = items[cand[ch // 2][0]][2] + 1
                out.max_depth = max(out.max_depth, depth)
                counter += 1
                heapq.heappush(queue, (float(score[ch][still[ch]].min()), counter, depth, lo[ch], hi[ch], still[ch],
                                       int(dims[j]), _row(packed, j)))
        found = None
        if queue and out.rounds % ATTACK_EVERY == 0:
            found = attack(queue[0][3], queue[0][4])
        if found is None and background is not None:
            found = background()
        if found is not None:
            out.result = found
            return out
        elapsed = time.perf_counter() - t0
        k_round = int(np.clip(k_round * ROUND_SECONDS / max(elapsed, 1e-4), MIN_ROUND, MAX_ROUND))
    return out


def _packed_layers(res, affine: list[int], boxes) -> np.ndarray | None:
    """Per box of ``boxes``, the bounds of every Affine layer's outputs (lower and upper, layer after layer)
    in one float32 row rounded outward (a queued box's; its children's bounds are intersected with them:
    they hold on every sub-box), or None."""
    if res.layers is None or not REUSE_PARENT_BOUNDS:
        return None
    return np.concatenate([np.concatenate(outward_float32(res.layers[k][0][boxes], res.layers[k][1][boxes]), axis=1)
                           for k in affine], axis=1)


def _row(packed: np.ndarray | None, b: int) -> np.ndarray | None:
    """Row b of ``_packed_layers``' array (a copy: a queued box keeps only its own), or None."""
    return None if packed is None else packed[b].copy()


def _parents_layers(packed: list, chain: AffineReluChain, affine: list[int]) -> list | None:
    """``ReluSplits.prior`` of a round's children from their parents' rows of ``_packed_layers``
    (None if any has none)."""
    if any(p is None for p in packed):
        return None
    flat = np.array(packed, np.float64)
    prior, at = [None] * len(chain.layers), 0
    for k in affine:
        n = chain.layers[k].weight.shape[0]
        prior[k] = (flat[:, at:at + n], flat[:, at + n:at + 2 * n])
        at += 2 * n
    return prior


def _optimised_rows(chain: AffineReluChain, res, lo: np.ndarray, hi: np.ndarray, rows: RowSets,
                    iterations: int, wanted: np.ndarray | None = None) -> np.ndarray:
    """Row lower bounds (B, R): DeepPoly's, raised on the rows of the disjuncts it leaves open (and
    ``wanted`` (B, D) asks for, default all) by alpha-CROWN's optimised slopes (each (box, row) pair its own)."""
    from .bab.slopes import PairProblem, optimise_pairs  # absint.bab imports this module

    empty, _, _ = _disjunct_scores(res.lower, rows)
    if wanted is not None:
        empty = empty | ~wanted
    row_open = np.zeros(res.lower.shape, bool)
    for d, s in enumerate(rows.slices):
        row_open[:, s] = ~empty[:, d:d + 1]
    sub, row = np.nonzero(row_open)
    if not sub.size:
        return res.lower.copy()
    pp = PairProblem.gather(chain, res.layers, {}, lo, hi, sub, row)
    opt = optimise_pairs(pp, iterations=iterations)
    low = res.lower.copy()
    low[sub, row] = np.maximum(low[sub, row], opt.lower)
    return low


def _tightened_rows(chain: AffineReluChain, res, lo: np.ndarray, hi: np.ndarray, rows: RowSets, iterations: int,
                    boxes: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, list]:
    """Row lower bounds (len(boxes), R) of ``boxes`` with optimised intermediate bounds (alpha-CROWN's,
    ``optimise_intermediate``) and then optimised rows of the disjuncts ``wanted`` (len(boxes), D); and
    those layer bounds."""
    from .bab.slopes import optimise_intermediate  # absint.bab imports this module

    layers, _ = optimise_intermediate(chain, [(l[boxes], h[boxes]) for l, h in res.layers], {}, lo[boxes], hi[boxes],
                                      iterations)
    sub = BatchBounds(res.lower[boxes], res.upper[boxes], layers=layers)
    return _optimised_rows(chain, sub, lo[boxes], hi[boxes], rows, iterations, wanted), layers


def _try_minimisers(coef, best, still, lo, hi, live, rows: RowSets, forward, check_counterexample):
    """Forward the centre of each live box and, per open disjunct, the corner minimising its best row's
    linear lower bound; return a re-checked counterexample or None."""
    cands = [(lo[live] + hi[live]) / 2]
    for k in range(best.shape[1]):
        sel = live[still[live, k]]
        if sel.size:
            c = coef[sel, best[sel, k]]
            cands.append(np.where(c > 0, lo[sel], hi[sel]))
    x = np.vstack(cands)
    y = forward(x)
    return first_counterexample(x, y @ rows.A.T - rows.b, rows, check_counterexample)


def first_counterexample(x: np.ndarray, margins: np.ndarray, rows: RowSets, check_counterexample, limit: int = 8):
    """The first of the points x whose margins A y - b satisfy some disjunct and that
    ``check_counterexample`` confirms (it returns the re-checked (x, y)); None if none does."""
    unsafe = np.zeros(len(x), bool)
    for s in rows.slices:
        if s.stop > s.start:
            unsafe |= np.where(rows.strict[s], margins[:, s] < 0, margins[:, s] <= 0).all(axis=1)
    for i in np.flatnonzero(unsafe)[:limit]:
        found = check_counterexample(x[i])
        if found is not None:
            return found
    return None


__all__ = ["RowSets", "SplitOutcome", "split_search", "first_counterexample"]
