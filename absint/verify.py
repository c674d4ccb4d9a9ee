"""``verify``: decide a VNN-LIB property (holds / violated with a checked counterexample / unknown / timeout).

VNN-LIB describes the UNSAFE set: per region, an input box and a disjunction of conjunctions
``A y <= b``. The property *holds* (VNN-COMP "unsat") when every disjunct of every region is proved
empty over its box: some row i has a lower bound of (A y - b)_i above 0. The rows are appended to
the network as a last Affine layer, so the abstract domain bounds A y - b directly (far tighter than
combining output bounds). It is *violated* ("sat") only with an input x in a box whose concrete
``net.forward`` output satisfies a disjunct; every counterexample is re-checked before it is
reported. Search: random sampling and projected signed-gradient steps on the constraint margin
(falsification), then branch and bound: on the input box for low-dimensional inputs (ACAS Xu;
``absint.input_split`` on Affine/ReLU chains, else splitting the dimension of largest |gradient| x
width, hardest box first), and on ReLU phases for high-dimensional ones (``absint.bab``: optimised
DeepPoly with alpha/beta multipliers, mnistfc and oval21).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from .analysis import analyze
from .bab.search import BabOptions, BabOutcome, relu_bab
from .errors import AnalysisTimeout, MemoryBudgetError
from .domains.deeppoly_batch import AffineReluChain
from .gradients import vjp
from .input_split import RowSets, SplitOutcome, split_search
from .network import Affine, Network, Node
from .region_attack import RegionAttack
from .threads import thread_budget
from .spec import LinearConstraints, Region, Spec
from .tables import parse_bytes

STATUSES = ("holds", "violated", "unknown", "timeout")
#: VNN-COMP result words of each status
VNNCOMP_RESULT = {"holds": "unsat", "violated": "sat", "unknown": "unknown", "timeout": "timeout"}
#: input splitting is tried when at most this many input dimensions have non-zero width
MAX_SPLIT_DIMS = 16
#: branch-and-bound methods: "auto" (input splitting for at most MAX_SPLIT_DIMS inputs of non-zero width,
#: else ReLU branch and bound), "input-split", "bab" (ReLU phases), "none" (one analysis per region)
METHODS = ("auto", "input-split", "bab", "none")
#: memory of ReLU branch and bound (explicit layer matrices, queue, batches) without a budget
DEFAULT_BAB_BYTES = 4 << 30
#: seconds between ``verify``'s progress reports (its ``progress`` callback; ``absint verify -v``)
PROGRESS_SECONDS = 10.0


@dataclass
class Verdict:
    """The answer for one property: status, a checked counterexample (x, y) when violated, and stats."""

    status: str
    counterexample: tuple[np.ndarray, np.ndarray] | None = None
    stats: dict = field(default_factory=dict)

    @property
    def result(self) -> str:
        """The VNN-COMP word: sat / unsat / unknown / timeout."""
        return VNNCOMP_RESULT[self.status]


class _Deadline(Exception):
    pass


@dataclass
class _Search:
    """State shared by the steps of one verification: network, deadline, RNG, counters."""

    net: Network
    deadline: float
    rng: np.random.Generator
    domain: str
    analyze_kwargs: dict
    method: str = "auto"
    bab_bytes: int = DEFAULT_BAB_BYTES
    analyses: int = 0
    boxes: int = 0
    samples: int = 0
    max_depth: int = 0
    bab: BabOutcome | None = None
    progress: Callable[[dict], None] | None = None
    progress_every: float = PROGRESS_SECONDS
    started: float = field(default_factory=time.perf_counter)
    region: int = 0
    n_regions: int = 1
    live: BabOutcome | SplitOutcome | None = None  # the branch and bound under way
    next_report: float = field(init=False)  # ``time.perf_counter()`` of the next progress report

    def __post_init__(self) -> None:
        self.next_report = self.started + self.progress_every

    def check_time(self) -> None:
        now = time.perf_counter()
        if now > self.deadline:
            raise _Deadline
        if self.progress is not None and now >= self.next_report:
            self.next_report = now + self.progress_every
            self.progress(self.snapshot(now))

    def snapshot(self, now: float) -> dict:
        """What ``verify(progress=...)`` reports: seconds so far, the region (1-based) and their number,
        boxes (branch-and-bound sub-problems included), samples, depth, and with ReLU branch and bound under
        way its ``global_bound`` (the worst open sub-problem's; > 0 proves the region), ``root_bound``, seconds
        of MILP bounds so far, and whether the root's MILP bounds are under way (``milp_running``)."""
        live = self.live
        boxes = self.boxes + (live.subproblems if isinstance(live, BabOutcome) else live.boxes if live else 0)
        depth = max(self.max_depth, live.max_depth if live else 0)
        out = {"time_s": now - self.started, "region": self.region + 1, "regions": self.n_regions, "boxes": boxes,
               "samples": self.samples, "max_depth": depth}
        if isinstance(live, BabOutcome):
            running = live.milp_started is not None
            milp = live.time_milp + live.time_subproblem_milp + (now - live.milp_started if running else 0.0)
            out.update(global_bound=live.global_bound, root_bound=live.root_bound, milp_running=running,
                       time_milp_s=milp)
        return out


def spec_network(net: Network, rows: np.ndarray, offsets: np.ndarray) -> Network:
    """``net`` followed by the Affine layer y -> rows·y - offsets (the constraint margins)."""
    last = len(net.nodes) - 1
    node = Node("__property__", Affine(np.asarray(rows, np.float64), -np.asarray(offsets, np.float64)), (last,))
    return Network(net.input_shape, list(net.nodes) + [node], name=f"{net.name}+property")


def _stack(unsafe: tuple[LinearConstraints, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[slice]]:
    """All disjuncts' rows in one matrix, with each disjunct's slice of rows."""
    A = np.concatenate([c.A for c in unsafe]) if unsafe else np.zeros((0, 0))
    b = np.concatenate([c.b for c in unsafe]) if unsafe else np.zeros(0)
    strict = np.concatenate([c.strict for c in unsafe]) if unsafe else np.zeros(0, bool)
    slices, start = [], 0
    for c in unsafe:
        slices.append(slice(start, start + c.n_rows))
        start += c.n_rows
    return A, b, strict, slices


def _margins(y: np.ndarray, A: np.ndarray, b: np.ndarray, slices: list[slice]) -> np.ndarray:
    """Per point and disjunct, max_i (A_i y - b_i): the disjunct holds (unsafe) where it is <= 0."""
    d = y @ A.T - b
    return np.stack([d[:, s].max(axis=1) if s.stop > s.start else np.full(len(y), -np.inf) for s in slices], axis=1)


def _counterexample(search: _Search, region: Region, x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """x (flat) clipped into the box, re-checked by a concrete forward pass; None if not unsafe."""
    lo, hi = region.lower.ravel(), region.upper.ravel()
    x = np.clip(np.asarray(x, np.float64).ravel(), lo, hi)
    y = search.net.forward(x.reshape((1,) + tuple(search.net.input_shape)))[0]
    if region.contains(x) and region.is_unsafe(y):
        return x.reshape(region.lower.shape), y
    return None


def _falsify(search: _Search, region: Region, lo: np.ndarray, hi: np.ndarray, A, b, slices,
             n_samples: int, pgd_steps: int, starts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Random points of [lo, hi] (and ``starts``), then signed-gradient descent of each disjunct's margin
    from the best ones."""
    net = search.net
    shape = (-1,) + tuple(net.input_shape)
    width = hi - lo
    x = lo + search.rng.random((n_samples, lo.size)) * width
    x = np.vstack([x, (lo + hi)[None] / 2] + ([np.clip(starts, lo, hi)] if starts is not None else []))
    y = net.forward(x.reshape(shape))
    search.samples += len(x)
    m = _margins(y, A, b, slices)
    for i in np.flatnonzero((m <= 0).any(axis=1))[:4]:
        found = _counterexample(search, region, x[i])
        if found is not None:
            return found
    search.check_time()
    if pgd_steps <= 0 or not np.any(width > 0):
        return None
    for k, s in enumerate(slices):  # descend each disjunct's margin from its best few starts
        starts = x[np.argsort(m[:, k])[:min(8, len(x))]].copy()
        step = width / max(4, pgd_steps) * 2.0
        for t in range(pgd_steps):
            yk = net.forward(starts.reshape(shape))
            d = yk @ A[s].T - b[s]
            worst = np.argmax(d, axis=1)  # the row to push down
            grad = vjp(net, starts.reshape(shape), A[s][worst]).reshape(len(starts), -1)
            starts = np.clip(starts - step * np.sign(grad), lo, hi)
            search.samples += len(starts)
            step *= 0.85
            if (d.max(axis=1) <= 0).any() or t == pgd_steps - 1:
                yk = net.forward(starts.reshape(shape))
                hit = np.flatnonzero(_margins(yk, A[s], b[s], [slice(0, s.stop - s.start)])[:, 0] <= 0)
                for i in hit[:4]:
                    found = _counterexample(search, region, starts[i])
                    if found is not None:
                        return found
            search.check_time()
    return None


def falsify(net: Network, region: Region, *, samples: int = 256, pgd_steps: int = 20,
            rng: np.random.Generator | int | None = 0, deadline: float | None = None
            ) -> tuple[np.ndarray, np.ndarray] | None:
    """A counterexample (x, y) of one region (x in its box, y = net.forward(x) in a disjunct), or None.

    Random points of the box, then projected signed-gradient descent (PGD, Madry et al. 2018) of each
    disjunct's margin max_i (A_i y - b_i) from its best starts; the disjuncts are tried in the order
    given. Every returned pair is re-checked by ``net.forward``. ``deadline``: a ``time.perf_counter()``
    value after which the search gives up (returns None)."""
    A, b, _, slices = _stack(region.unsafe)
    if not slices:
        return None
    search = _Search(net, np.inf if deadline is None else deadline, np.random.default_rng(rng), "", {})
    lo, hi = region.lower.ravel().astype(np.float64), region.upper.ravel().astype(np.float64)
    try:
        return _falsify(search, region, lo, hi, A, b, slices, samples, pgd_steps)
    except _Deadline:
        return None


def _bound(search: _Search, net_rows: Network, lo: np.ndarray, hi: np.ndarray, strict: np.ndarray,
           slices: list[slice]) -> tuple[np.ndarray, np.ndarray]:
    """Per disjunct: whether it is proved empty over [lo, hi], and its score (max_i lower bound of A_i y - b_i)."""
    try:
        res = analyze(net_rows, (lo.reshape(search.net.input_shape), hi.reshape(search.net.input_shape)),
                      domain=search.domain, deadline=search.deadline, **search.analyze_kwargs)
    except AnalysisTimeout:
        raise _Deadline from None
    search.analyses += 1
    low = res.lower
    proved = np.where(strict, low >= 0, low > 0)
    empty = np.array([proved[s].any() for s in slices], dtype=bool)
    score = np.array([low[s].max() if s.stop > s.start else np.inf for s in slices])
    return empty, score


def _split_dim(search: _Search, A, b, slices, open_disjuncts, lo, hi) -> int:
    """The dimension of largest |∂ margin/∂x| x width at the centre, over the open disjuncts' rows."""
    net = search.net
    x = ((lo + hi) / 2)[None]
    y = net.forward(x.reshape((1,) + tuple(net.input_shape)))[0]
    influence = np.zeros(lo.size)
    for k in open_disjuncts:
        s = slices[k]
        row = A[s][np.argmax(A[s] @ y - b[s])]
        g = vjp(net, x.reshape((1,) + tuple(net.input_shape)), row[None]).ravel()
        influence += np.abs(g) * (hi - lo)
    influence[hi <= lo] = -1.0
    if not np.any(influence > 0):
        return int(np.argmax(hi - lo))
    return int(np.argmax(influence))


def _batched_split(search: _Search, region: Region, chain, A, b, strict, slices, lo0, hi0) -> str | tuple:
    """Input splitting with batched DeepPoly (``absint.input_split``) for Affine/ReLU chains."""
    shape = (-1,) + tuple(search.net.input_shape)

    def forward(x):
        search.samples += len(x)
        return search.net.forward(x.reshape(shape))

    def backward(x, c):
        return vjp(search.net, x.reshape(shape), c).reshape(len(x), -1)

    check = lambda x: _counterexample(search, region, x)  # noqa: E731
    # rare counterexamples (ACAS Xu prop_7 on 1_9, prop_2 on 5_3): growing attacks on the whole region
    region_attack = RegionAttack(forward, backward, A, b, slices, lo0, hi0, check, search.rng, search.check_time)
    outcome = search.live = SplitOutcome("holds")
    try:
        with thread_budget(1):  # small products: one BLAS thread is faster, and leaves a core to other jobs
            split_search(chain, RowSets(A, b, strict, tuple(slices)), lo0, hi0, forward=forward,
                         check_counterexample=check,
                         attack=lambda lo, hi: _falsify(search, region, lo, hi, A, b, slices, 16, 8),
                         background=region_attack, check_time=search.check_time, out=outcome)
    finally:
        search.live = None
        search.boxes += outcome.boxes
        search.analyses += outcome.rounds + 1
        search.max_depth = max(search.max_depth, outcome.max_depth)
    return outcome.result


def _relu_bab(search: _Search, region: Region, chain, A, b, strict, slices, lo0, hi0) -> str | tuple:
    """ReLU branch and bound (``absint.bab``) on an Affine/ReLU chain (convolutions made explicit)."""
    shape = (-1,) + tuple(search.net.input_shape)

    def margins(x):
        search.samples += len(x)
        return search.net.forward(x.reshape(shape)) @ A.T - b

    outcome = search.bab = search.live = BabOutcome()
    options = BabOptions.for_network(search.net, memory_bytes=search.bab_bytes)
    left = search.deadline - time.perf_counter()
    if np.isfinite(left):  # MILP bounds take a share of the time the search would have after them
        options = replace(options, milp_seconds=options.milp_share * max(left - options.milp_after, 0.0))
    try:
        relu_bab(chain, RowSets(A, b, strict, tuple(slices)), lo0, hi0,
                 check_counterexample=lambda x: _counterexample(search, region, x), check_time=search.check_time,
                 options=options, forward=margins, out=outcome, deadline=search.deadline,
                 attack=lambda starts: _falsify(search, region, lo0, hi0, A, b, slices, 0, 10, starts))
    finally:
        search.live = None
        search.boxes += outcome.subproblems
        search.analyses += outcome.rounds + 1
        search.max_depth = max(search.max_depth, outcome.max_depth)
    return outcome.result


def _chain(search: _Search, net_rows: Network, materialise: bool) -> AffineReluChain | None:
    """The Affine/ReLU chain of ``net_rows`` for batched DeepPoly (convolutions as explicit matrices
    when ``materialise``, within half the branch-and-bound memory), or None."""
    if search.domain != "deeppoly":
        return None
    try:
        return AffineReluChain.from_network(net_rows, materialise_bytes=search.bab_bytes // 2 if materialise else 0)
    except MemoryBudgetError:
        return None


def _verify_region(search: _Search, region: Region, split: bool, n_samples: int, pgd_steps: int) -> str | tuple:
    """'holds', 'unknown', or a counterexample tuple for one region."""
    A, b, strict, slices = _stack(region.unsafe)
    if not slices:
        return "holds"  # no unsafe outputs
    lo0, hi0 = region.lower.ravel().astype(np.float64), region.upper.ravel().astype(np.float64)
    found = _falsify(search, region, lo0, hi0, A, b, slices, n_samples, pgd_steps)
    if found is not None:
        return found
    net_rows = spec_network(search.net, A, b)
    method = search.method if split else "none"
    low_dim = int(np.count_nonzero(hi0 > lo0)) <= MAX_SPLIT_DIMS
    can_split = method == "input-split" or (method == "auto" and low_dim)
    if method == "bab" or (method == "auto" and not low_dim):
        chain = _chain(search, net_rows, materialise=True)
        if chain is not None:
            return _relu_bab(search, region, chain, A, b, strict, slices, lo0, hi0)
    chain = _chain(search, net_rows, materialise=False) if can_split else None
    if chain is not None:
        return _batched_split(search, region, chain, A, b, strict, slices, lo0, hi0)
    empty, score = _bound(search, net_rows, lo0, hi0, strict, slices)
    search.boxes += 1
    if empty.all():
        return "holds"
    if not can_split:
        return "unknown"
    # best-first on the worst open score: the box most likely to hold a counterexample comes first
    counter = 0
    queue = [(float(score[~empty].min()), counter, lo0, hi0, ~empty)]
    while queue:
        search.check_time()
        _, _, lo, hi, open_d = heapq.heappop(queue)
        open_idx = np.flatnonzero(open_d)
        dim = _split_dim(search, A, b, slices, open_idx, lo, hi)
        mid = lo[dim] + (hi[dim] - lo[dim]) / 2
        if not (lo[dim] < mid < hi[dim]):
            return "unknown"  # cannot split further in floating point
        for part_lo, part_hi in ((lo, np.where(np.arange(lo.size) == dim, mid, hi)),
                                 (np.where(np.arange(lo.size) == dim, mid, lo), hi)):
            found = _falsify(search, region, part_lo, part_hi, A, b, slices, 4, 0)
            if found is not None:
                return found
            e, sc = _bound(search, net_rows, part_lo, part_hi, strict, slices)
            search.boxes += 1
            still = open_d & ~e
            if still.any():
                if search.boxes % 16 == 0:  # now and then, a gradient search on a hard box
                    found = _falsify(search, region, part_lo, part_hi, A, b, slices, 16, 8)
                    if found is not None:
                        return found
                counter += 1
                heapq.heappush(queue, (float(sc[still].min()), counter, part_lo, part_hi, still))
    return "holds"


def verify(net: Network, spec: Spec, domain: str = "deeppoly", timeout: float = 60.0, memory_budget=None, *,
           storage: str | None = None, seed: int = 0, split: bool = True, samples: int = 256,
           pgd_steps: int = 20, method: str = "auto", progress: Callable[[dict], None] | None = None,
           progress_every: float | None = None) -> Verdict:
    """Decide ``spec`` on ``net`` within ``timeout`` seconds (see the module docstring).

    Returns a ``Verdict``: "holds" (every unsafe disjunct proved empty), "violated" (with a
    counterexample (x, y) re-checked by ``net.forward``), "unknown", or "timeout". ``method`` picks the
    branch and bound (``METHODS``; ReLU branch and bound and batched input splitting need the DeepPoly
    domain); ``split=False`` turns branch and bound off. ``memory_budget`` also bounds ReLU branch and
    bound (its explicit layer matrices, queue and batches). ``progress(report)`` is called about every
    ``progress_every`` seconds (default ``PROGRESS_SECONDS``) while the search runs, with
    ``_Search.snapshot``'s dict (seconds, region, boxes, depth, and ReLU branch and bound's global bound);
    an exception it raises ends the verification.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if spec.n_inputs != net.input_size or spec.n_outputs != net.output_size:
        from .errors import ShapeError

        raise ShapeError(f"the property has {spec.n_inputs} inputs and {spec.n_outputs} outputs, the network "
                         f"{net.input_size} and {net.output_size}")
    t0 = time.perf_counter()
    kwargs = {"memory_budget": memory_budget}
    if storage is not None or memory_budget is not None:
        kwargs["storage"] = storage or "auto"
    search = _Search(net, t0 + float(timeout), np.random.default_rng(seed), domain, kwargs, method,
                     DEFAULT_BAB_BYTES if memory_budget is None else parse_bytes(memory_budget), progress=progress,
                     progress_every=PROGRESS_SECONDS if progress_every is None else float(progress_every),
                     started=t0, n_regions=len(spec.regions))
    status, cex = "holds", None
    try:
        for search.region, region in enumerate(spec.regions):
            outcome = _verify_region(search, region, split, samples, pgd_steps)
            if isinstance(outcome, tuple):
                status, cex = "violated", outcome
                break
            if outcome == "unknown":
                status = "unknown"
    except _Deadline:
        status, cex = "timeout", None
    stats = {"time_s": time.perf_counter() - t0, "analyses": search.analyses, "boxes": search.boxes,
             "samples": search.samples, "max_depth": search.max_depth, "domain": domain}
    if search.bab is not None:
        stats["bab"] = search.bab.stats()
    return Verdict(status, cex, stats)


__all__ = ["verify", "Verdict", "spec_network", "falsify", "STATUSES", "VNNCOMP_RESULT", "METHODS"]
