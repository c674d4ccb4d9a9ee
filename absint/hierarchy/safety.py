"""Abstract (hierarchical) safety of a classifier over an input box.

The argmax stays inside the label's group G (at some level) iff for every class j outside G,
max_{g in G} y_g - y_j > 0 on the whole box. One analysis bounds every needed difference at once:
the rows are appended to the network as a last Affine layer (``absint.verify.spec_network``), so
relational domains bound y_g - y_j directly instead of subtracting output bounds.

Rows per (level, j): the pairwise differences y_g - y_j (g in G), and convex combinations
sum_g w_g y_g - y_j with w on the simplex, a sound lower bound since sum_g w_g y_g <= max_g y_g
(for a zonotope, max over w of the lower bound equals the exact minimum of max_g y_g - y_j, by
minimax duality). Weights tried: uniform and a softmax of the logits at the centre, then, for the
(level, j) still open, a second analysis with weights from the first pass's pairwise bounds.
Falsification (``absint.verify.falsify``: random points and signed-gradient descent, Madry et al.
2018) runs from the coarsest open level to the finest; a counterexample at a level is one at every
finer level, a proof at a level is one at every coarser level. Counterexamples are re-checked by
``net.forward``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from ..analysis import analyze
from ..box import Box
from ..errors import AnalysisTimeout, ShapeError
from ..network import Network
from ..spec import LinearConstraints, Region
from ..verify import falsify, spec_network
from .format import Hierarchy

__all__ = ["Status", "HierarchyOptions", "LevelResult", "HierarchyResult", "LevelBounds", "margin_rows",
           "bound_levels", "attack_levels", "classify", "verify", "level_region"]

Counterexample = tuple[np.ndarray, np.ndarray]


class Status(Enum):
    """The verdict at one level: ROBUST (exact class kept), SAFE (argmax stays in the group),
    UNSAFE (a checked counterexample leaves the group), UNKNOWN."""

    ROBUST = "robust"
    SAFE = "safe"
    UNSAFE = "unsafe"
    UNKNOWN = "unknown"

    @property
    def proved(self) -> bool:
        """Robust or safe: the argmax provably stays inside the group."""
        return self in (Status.ROBUST, Status.SAFE)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class HierarchyOptions:
    """How hard to try. ``convex``: the sum_g w_g y_g - y_j rows; ``refine``: a second analysis with
    weights from the first pass's bounds where a level is still open; ``falsify``: search for
    counterexamples (``samples`` random points, ``pgd_steps`` signed-gradient steps, ``seed``);
    ``timeout`` (s) bounds the whole call; ``storage``/``memory_budget`` go to ``analyze``."""

    convex: bool = True
    refine: bool = True
    falsify: bool = True
    samples: int = 256
    pgd_steps: int = 20
    seed: int = 0
    timeout: float | None = None
    storage: str = "dense"
    memory_budget: object = None


@dataclass(frozen=True)
class LevelResult:
    """One level: the label's group (name and output indices), the status, a sound lower bound of
    min_{j not in G} max_{g in G} (y_g - y_j) over the box (> 0 proves the level), and a counterexample
    (x, y = net.forward(x)) whose argmax leaves the group, when UNSAFE."""

    level: int
    group: str
    members: tuple[int, ...]
    status: Status
    lower_bound: float
    counterexample: Counterexample | None = None


@dataclass
class HierarchyResult:
    """Per level (index = level) the verdict for one input region; ``prediction`` is the argmax at the centre."""

    label: int
    prediction: int
    domain: str
    levels: tuple[LevelResult, ...]
    stats: dict = field(default_factory=dict)

    def __getitem__(self, level: int) -> LevelResult:
        return self.levels[level]

    def status(self, level: int) -> Status:
        return self.levels[level].status

    @property
    def robust(self) -> bool:
        return self.levels[0].status is Status.ROBUST

    @property
    def abstract_only(self) -> bool:
        """Abstract safe at some level without being robust (what the hierarchy buys)."""
        return not self.robust and any(lv.status is Status.SAFE for lv in self.levels[1:])


@dataclass(frozen=True)
class LevelBounds:
    """Lower bound per level of min_{j not in G} max_{g in G} (y_g - y_j) (index = level), and run stats."""

    lower: np.ndarray
    stats: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- the rows
@dataclass
class _Rows:
    """Distinct difference rows over the outputs, and which rows serve each (level, j)."""

    n_out: int
    rows: list[np.ndarray] = field(default_factory=list)
    index: dict[bytes, int] = field(default_factory=dict)
    owners: dict[tuple[int, int], list[int]] = field(default_factory=dict)

    def add(self, key: tuple[int, int], row: np.ndarray) -> None:
        tag = row.tobytes()
        k = self.index.get(tag)
        if k is None:
            k = self.index[tag] = len(self.rows)
            self.rows.append(row)
        self.owners.setdefault(key, []).append(k)

    def combination(self, key: tuple[int, int], members: np.ndarray, weights: np.ndarray) -> None:
        """sum_g w_g y_g - y_j with w normalised onto the simplex (skipped when it is a pairwise row)."""
        weights = np.maximum(np.asarray(weights, np.float64), 0.0)
        if not np.isfinite(weights).all() or weights.sum() <= 0 or np.count_nonzero(weights) < 2:
            return
        row = np.zeros(self.n_out)
        row[members] = weights / weights.sum()
        row[key[1]] -= 1.0
        self.add(key, row)

    @property
    def matrix(self) -> np.ndarray:
        return np.array(self.rows, dtype=np.float64).reshape(len(self.rows), self.n_out)


def _outside(hierarchy: Hierarchy, label: int, level: int) -> tuple[np.ndarray, np.ndarray]:
    members = hierarchy.group_members(label, level)
    return members, np.setdiff1d(np.arange(hierarchy.n_classes), members)


def _softmax(v: np.ndarray) -> np.ndarray:
    e = np.exp(v - v.max())
    return e / e.sum()


def margin_rows(hierarchy: Hierarchy, label: int, y_centre: np.ndarray | None = None, convex: bool = True,
                levels=None) -> _Rows:
    """Rows y_g - y_j (g in the label's group G, j outside) for every level, plus, with ``convex``, the
    uniform and centre-softmax combinations sum_g w_g y_g - y_j."""
    rows = _Rows(hierarchy.n_classes)
    for level in hierarchy.levels if levels is None else levels:
        members, outside = _outside(hierarchy, label, level)
        for j in outside:
            for g in members:
                row = np.zeros(hierarchy.n_classes)
                row[g], row[j] = 1.0, -1.0
                rows.add((level, int(j)), row)
            if convex and members.size > 1:
                rows.combination((level, int(j)), members, np.ones(members.size))
                if y_centre is not None:
                    rows.combination((level, int(j)), members, _softmax(np.asarray(y_centre)[members]))
    return rows


def _refined_rows(hierarchy: Hierarchy, label: int, first: _Rows, lower: np.ndarray, upper: np.ndarray,
                  open_keys: list[tuple[int, int]]) -> _Rows:
    """For each open (level, j): combinations weighted by the positive parts of the pairwise upper bounds
    and midpoints of y_g - y_j (classes g that can never beat j get weight 0)."""
    rows = _Rows(hierarchy.n_classes)
    for level, j in open_keys:
        members, _ = _outside(hierarchy, label, level)
        if members.size < 2:
            continue
        pair = []
        for g in members:
            row = np.zeros(hierarchy.n_classes)
            row[g], row[j] = 1.0, -1.0
            pair.append(first.index[row.tobytes()])
        lo, hi = lower[pair], upper[pair]
        rows.combination((level, j), members, hi)
        rows.combination((level, j), members, (lo + hi) / 2)
    return rows


# ---------------------------------------------------------------------------- bounds
def _analyze_rows(net: Network, box: Box, rows: _Rows, domain: str, options: HierarchyOptions,
                  deadline: float | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Lower and upper bounds of every row over the box (None on timeout)."""
    if not rows.rows:
        return np.zeros(0), np.zeros(0)
    try:
        res = analyze(spec_network(net, rows.matrix, np.zeros(len(rows.rows))), box, domain=domain,
                      storage=options.storage, memory_budget=options.memory_budget, deadline=deadline)
    except AnalysisTimeout:
        return None
    return res.lower, res.upper


def _best(rows: _Rows, lower: np.ndarray, best: dict[tuple[int, int], float]) -> None:
    for key, idx in rows.owners.items():
        best[key] = max(best.get(key, -np.inf), float(lower[idx].max()))


def bound_levels(net: Network, box: Box, label: int, hierarchy: Hierarchy, domain: str = "deeppoly", *,
                 x=None, options: HierarchyOptions | None = None, deadline: float | None = None) -> LevelBounds:
    """Per level, a sound lower bound of min_{j not in G} max_{g in G} (y_g - y_j) over ``box`` (> 0: safe);
    a proof at a finer level is carried to the coarser ones (its group is contained in theirs)."""
    options = options or HierarchyOptions()
    hierarchy.check_outputs(net.output_size)
    t0 = time.perf_counter()
    centre = box.center if x is None else np.asarray(x, np.float64)
    y_centre = net.forward(centre.reshape((1,) + tuple(net.input_shape)))[0]
    first = margin_rows(hierarchy, label, y_centre, options.convex)
    best: dict[tuple[int, int], float] = {}
    analyses = 0
    found = _analyze_rows(net, box, first, domain, options, deadline)
    if found is not None:
        analyses += 1
        _best(first, found[0], best)
        open_keys = [k for k, v in best.items() if v <= 0]
        if options.refine and options.convex and open_keys:
            second = _refined_rows(hierarchy, label, first, found[0], found[1], open_keys)
            if second.rows:
                more = _analyze_rows(net, box, second, domain, options, deadline)
                if more is not None:
                    analyses += 1
                    _best(second, more[0], best)
    lower = np.full(hierarchy.depth + 1, -np.inf)
    for level in hierarchy.levels:
        _, outside = _outside(hierarchy, label, level)
        lower[level] = min((best.get((level, int(j)), -np.inf) for j in outside), default=np.inf)
    order = hierarchy.coarse_to_fine()
    for pos in range(len(order) - 2, -1, -1):  # a finer proof proves every coarser level
        if lower[order[pos + 1]] > 0:
            lower[order[pos]] = max(lower[order[pos]], lower[order[pos + 1]])
    return LevelBounds(lower, {"analyses": analyses, "rows": len(first.rows), "analysis_s": time.perf_counter() - t0})


# ---------------------------------------------------------------------- falsification
def level_region(hierarchy: Hierarchy, label: int, level: int, box: Box,
                 y_centre: np.ndarray | None = None) -> Region:
    """The unsafe set of one level as a VNN-LIB style region: the disjunction over j outside G of
    {y_g < y_j for all g in G} (the argmax is j, outside G, whatever the tie-breaking); the
    disjuncts are ordered by y_j at the centre, the strongest competitor first."""
    members, outside = _outside(hierarchy, label, level)
    if y_centre is not None:
        outside = outside[np.argsort(-np.asarray(y_centre)[outside], kind="stable")]
    disjuncts = []
    for j in outside:
        A = np.zeros((members.size, hierarchy.n_classes))
        A[np.arange(members.size), members] = 1.0
        A[:, j] -= 1.0
        disjuncts.append(LinearConstraints(A, np.zeros(members.size), np.ones(members.size, bool)))
    return Region(np.asarray(box.lower), np.asarray(box.upper), tuple(disjuncts))


def attack_levels(net: Network, box: Box, label: int, hierarchy: Hierarchy, *, skip=(), x=None,
                  options: HierarchyOptions | None = None, deadline: float | None = None) -> dict[int, Counterexample]:
    """Counterexamples by level (coarsest first; one found at a level also serves the finer ones), each
    re-checked by ``net.forward``: x in the box, the argmax outside the label's group. ``skip``: levels
    not to attack (e.g. proved ones; a counterexample found at a coarser level is still recorded for
    them, so ``classify`` exposes a wrong proof)."""
    options = options or HierarchyOptions()
    centre = box.center if x is None else np.asarray(x, np.float64)
    shape = (1,) + tuple(net.input_shape)
    y_centre = net.forward(centre.reshape(shape))[0]
    order = hierarchy.coarse_to_fine()
    found: dict[int, Counterexample] = {}
    for pos, level in enumerate(order):
        if level in skip or level in found:
            continue
        region = level_region(hierarchy, label, level, box, y_centre)
        cex = falsify(net, region, samples=options.samples, pgd_steps=options.pgd_steps,
                      rng=options.seed + level, deadline=deadline)
        if cex is None:
            continue
        xc = np.asarray(cex[0], np.float64).reshape(box.shape)
        y = net.forward(xc.reshape(shape))[0]
        for finer in order[pos:]:
            if finer not in found and bool(box.contains(xc[None])[0]) and \
                    bool(level_region(hierarchy, label, finer, box).is_unsafe(y)):
                found[finer] = (xc, y)
    return found


# --------------------------------------------------------------------------- verdicts
def classify(hierarchy: Hierarchy, label: int, lower: np.ndarray,
             counterexamples: dict[int, Counterexample]) -> tuple[LevelResult, ...]:
    """Statuses from the lower bounds (> 0 proves) and the checked counterexamples; a level that is both
    proved and refuted is a soundness bug and raises ``RuntimeError``."""
    robust = bool(lower[0] > 0)
    out = []
    for level in hierarchy.levels:
        proved = bool(lower[level] > 0)
        cex = counterexamples.get(level)
        if proved and cex is not None:
            raise RuntimeError(f"unsound: level {level} proved (lower bound {lower[level]}) but the counterexample "
                               f"with outputs {cex[1]} leaves group {hierarchy.group_name(label, level)!r}")
        if robust:
            status = Status.ROBUST
        elif proved:
            status = Status.SAFE
        elif cex is not None:
            status = Status.UNSAFE
        else:
            status = Status.UNKNOWN
        members = tuple(int(k) for k in hierarchy.group_members(label, level))
        out.append(LevelResult(level, hierarchy.group_name(label, level), members, status, float(lower[level]),
                               cex if status is Status.UNSAFE else None))
    return tuple(out)


def _region(net: Network, x, eps, box, clip) -> tuple[Box, np.ndarray]:
    if (eps is None) == (box is None):
        raise ValueError("give exactly one of eps (an L-inf ball around x) and box")
    if box is None:
        if x is None:
            raise ValueError("eps needs the point x")
        box = Box.linf(np.asarray(x, np.float64).reshape(net.input_shape), float(eps), clip=clip)
    elif not isinstance(box, Box):
        box = Box(*box)
    if box.size != net.input_size:
        raise ShapeError(f"input box has {box.size} values, the network takes {net.input_size}")
    centre = box.center if x is None else np.asarray(x, np.float64)
    if centre.size != net.input_size:
        raise ShapeError(f"x has {centre.size} values, the network takes {net.input_size}")
    return box, centre.reshape(net.input_shape)


def verify(net: Network, x, label: int, eps: float | None = None, box=None, *, hierarchy: Hierarchy,
           domain: str = "deeppoly", options: HierarchyOptions | None = None,
           clip: tuple[float, float] | None = (0.0, 1.0)) -> HierarchyResult:
    """Per level of ``hierarchy``: robust / safe / unsafe (checked counterexample) / unknown for the
    L-inf ball of radius ``eps`` around ``x`` (clipped to ``clip``) or for ``box``; see the module docstring."""
    options = options or HierarchyOptions()
    hierarchy.check_outputs(net.output_size)
    label = int(label)
    if not 0 <= label < hierarchy.n_classes:
        raise ValueError(f"label {label} out of range 0..{hierarchy.n_classes - 1}")
    t0 = time.perf_counter()
    deadline = None if options.timeout is None else t0 + options.timeout
    box, centre = _region(net, x, eps, box, clip)
    prediction = int(np.argmax(net.forward(centre[None])[0]))
    bounds = bound_levels(net, box, label, hierarchy, domain, x=centre, options=options, deadline=deadline)
    t1 = time.perf_counter()
    cex: dict[int, Counterexample] = {}
    if options.falsify:
        proved = {lv for lv in hierarchy.levels if bounds.lower[lv] > 0}
        cex = attack_levels(net, box, label, hierarchy, skip=proved, x=centre, options=options, deadline=deadline)
    levels = classify(hierarchy, label, bounds.lower, cex)
    stats = dict(bounds.stats, falsify_s=time.perf_counter() - t1, time_s=time.perf_counter() - t0)
    return HierarchyResult(label, prediction, domain, levels, stats)
