"""Best-first branch and bound on ReLU phases (for high-dimensional inputs: mnistfc, oval21).

A sub-problem fixes the phase of some ReLUs (s z >= 0 with s = +1 active, -1 inactive). Each round pops
the K sub-problems with the worst bound, splits each on its chosen neuron into an active and an
inactive child, and bounds all 2K children in one batch: DeepPoly intermediate bounds under the new
split (layers after it are back-substituted again; bounds are intersected with the parent's), then
the output rows of the open disjuncts by ``optimise_pairs`` (α and β warm-started from the parent,
Wang et al. NeurIPS 2021 "beta-CROWN"; a child that no step raised and that does not pass its parent
is optimised again from the cold start, ``optimise_pairs_with_cold_retry``). A child whose split
constraints contradict its bounds is empty.
Each child's relaxation minimiser x* is forwarded as a counterexample candidate (checked by the
caller's concrete re-check). The next split of a child is chosen where its bound loses most
(``absint.bab.branching``). When the search stalls, the worst queued sub-problems of a fully connected
network get their exact MILP, which closes the empty ones the relaxations cannot (``_milp_worst``). The
queue's memory is counted against the budget.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numba
import numpy as np

from ..domains.deeppoly_batch import AffineReluChain, ReluSplits, deeppoly_boxes
from ..fp import outward_float32
from ..input_split import RowSets, _disjunct_scores, first_counterexample
from ..network import Affine, Conv2d, Network, ReLU
from ..threads import blas_single_thread
from .branching import choose_splits
from .milp_bounds import milp_intermediate, output_minima
from .relaxation_lp import sub_problem_lp
from .slopes import (LR_ALPHA, LR_BETA, PairProblem, optimise_intermediate, optimise_pairs,
                     optimise_pairs_with_cold_retry, pair_bounds, prove_empty)


#: rounds between gradient attacks from the worst sub-problems' relaxation minimisers
ATTACK_EVERY = 8
#: filtered smart branching candidates on networks with convolutions (``BabOptions.for_network``)
CONV_CANDIDATES = 8
#: hidden layers (after the first) whose root bounds come from (partial) MILPs on networks without convolutions
FC_MILP_LAYERS = 2
#: share of a verification's time left after ``BabOptions.milp_after`` that the root's MILP bounds may take
#: (they stop sooner when every neuron is solved or the rows are proved; ``BabOptions.milp_share``): on
#: mnistfc 256x4 prop_6_0.05 the root bound was -2.73 after 116 s of MILPs (0.4), -0.69 after 203 s (0.7);
#: alpha-beta-CROWN gave its MILPs 0.8 in VNN-COMP 2021 (perf/README.md, session 16). With hidden layers
#: after the ``FC_MILP_LAYERS`` refined ones and the last (``milp_later``), their LP bounds and partial
#: MILPs need time of their own, ``DEEP_MILP_SHARE``: mnistfc 256x6 prop_0_0.03 holds in 288 s (root
#: -0.21 after 247 s of MILPs), where with 0.7 its root stood at -9.25 at 300 s (session 24)
MILP_SHARE, DEEP_MILP_SHARE = 0.7, 0.85
#: queued sub-problems whose worst disjunct gets an exact MILP in each stalled round on networks without
#: convolutions (``BabOptions.milp_polish``), each solve's time limit, and the share of the search's time
#: (since its start or restart) those MILPs may take
FC_MILP_POLISH, MILP_POLISH_SECONDS, MILP_POLISH_SHARE = 16, 5.0, 0.5
#: rounds, and the rise of the global bound over them, below which the search counts as stalled
STALL_ROUNDS, STALL_GAIN = 3, 1e-3
#: arrays per (sub-problem, row) pair while it is bounded (relaxation, optimiser state, gradients), each as
#: wide as all ReLUs together
PAIR_STATE_ARRAYS = 30


@dataclass(frozen=True)
class BabOptions:
    """Search settings: sub-problems split per round (``batch``), Adam iterations at the root (for the
    rows, and for the intermediate bounds: 0 keeps DeepPoly's) and per round, the rounds' Adam step
    sizes, whether intermediate bounds are back-substituted again after a split, and the bytes the
    queue and a round's arrays may use.

    The rounds start from the parent's α and β, where Adam's first steps (about ``lr`` on every
    coordinate, whatever the gradient's size) undo the warm start: with alpha-CROWN's 0.1 for the
    slopes, a child's bound needed ~18 of 40 iterations to recover its start on mnistfc 256x4. A small
    slope step (0.01) and a larger multiplier step (0.2, the new split's β starts at 0) with 20
    iterations decided 256x4 prop_0_0.03 in 11 s, where 15 iterations at (0.1, 0.05) had not in 90 s
    (``perf/bench_bab.py --set``). Children at depth <= ``intermediate_depth`` get optimised intermediate
    bounds under their splits (``intermediate_iterations``, β on the split neurons) before their rows.
    Larger rounds amortise the per-round work: ``batch`` 128 (capped by the memory budget: 78 on oval21
    base with 4 GiB) bounded 88 oval21 sub-problems/s vs 73 with 64, 267 vs 245 on mnistfc 256x4.
    Filtered smart branching tries ``branching_candidates`` neurons per split; ``for_network`` sets
    the count that suits a network. With ``cold_retry``, a child that no Adam step raised and whose bound
    does not pass its parent's is optimised again from DeepPoly's slopes and zero multipliers
    (``optimise_pairs_with_cold_retry``):
    deep in a search the inherited start is a trap that Adam's first steps (about ``lr`` on every
    coordinate) leave without gaining. On mnistfc 256x4 prop_6_0.05, 100 s from its MILP root, the global
    bound stalled at -0.1825 from depth 37 on (most children kept their parent's bound) and reached -0.129
    with the retry. Children their rows leave open get ``empty_iterations`` Adam steps towards a proof that
    no input meets their splits (``prove_empty``); those proved are closed. On the same instance the LP of
    the worst open children (triangle relaxation with the split constraints) was infeasible for nearly
    all of them at depth 50: the search kept splitting empty sub-problems whose rows' 20 steps cannot
    show it. 200 steps proved 143 of a round's 210 children empty in 0.8 s (50 steps: 0). When the global
    bound has risen by less than ``STALL_GAIN`` over ``STALL_ROUNDS`` rounds, the ``lp_polish`` children
    with the worst open disjuncts get the LP optimum of their relaxation (``relaxation_lp``; its duals are
    α and β, evaluated soundly): on 256x4 prop_8_0.05 the worst children's 20 Adam steps stood at -0.40 to
    -0.52 where their LPs gave -0.22 or were infeasible. From the MILP roots, 100 s (global bound): prop_8
    -0.408 before, -0.408 with the proofs of emptiness, -0.281 with the LPs too; prop_6 -0.130, -0.121
    (proofs before the rows), -0.124.

    With ``milp_layers`` > 0, a search still open ``milp_after`` seconds after its start tightens the
    root's bounds of that many hidden layers after the first by MILPs (``absint.bab.milp_bounds``, about
    ``milp_seconds`` of solver time; ``verify`` sets it to ``milp_share`` of the time it has left after
    ``milp_after``) and starts again from that root. On mnistfc 256x4 prop_4_0.05 (300 s
    runs): 120 s of exact MILPs on the second layer moved the root bound from -2.08 to -1.14, and the
    search then proved it with 215 sub-problems (122 s in all), where without them it stood at -1.16
    after 47,911 sub-problems. Partial MILPs of layers 2 and 3 (116 s) took prop_14_0.03 from a root of
    -2.33 and -1.34 at 300 s (exact, layer 2) to -1.82 and -1.16, and prop_8_0.05 from -3.15 / -1.88 to
    -2.34 / -1.22. With ``milp_later``, the time those layers leave goes to the hidden layers after them
    but the last (which the search's splits handle), unless the root's rows are proved by then: on 256x6
    prop_2_0.05 layers 2 and 3 were done after 133 s with a root bound of -1.69 and 70 s unused; the
    later layers took its fifth layer from 17 unstable neurons to 1 and the root bound to -0.26.

    With ``milp_polish`` > 0, a stalled search gives that many of the worst queued sub-problems the exact
    MILP of their worst open disjunct (``_milp_worst``; ``milp_polish_seconds`` each, within
    ``MILP_POLISH_SHARE`` of the search's time): from the MILP roots, 100 s, 4 per stalled round left
    256x4 prop_8_0.05 at -0.100 (130 of 132 closed) and proved prop_6_0.05 in 23 s; 16 proved prop_8_0.05
    in 18 s (8 MILPs, at depth 13)."""

    batch: int = 128
    root_iterations: int = 50
    intermediate_iterations: int = 20
    iterations: int = 20
    lr_alpha: float = 0.01
    lr_beta: float = 0.2
    refine_intermediate: bool = True
    intermediate_depth: int = 0
    branching_candidates: int = 3
    cold_retry: bool = True
    empty_iterations: int = 200
    lp_polish: int = 4
    max_subproblems: int | None = None
    memory_bytes: int = 4 << 30
    milp_layers: int = 0
    milp_later: bool = False
    milp_after: float = 10.0
    milp_seconds: float = 60.0
    milp_polish: int = 0
    milp_polish_seconds: float = MILP_POLISH_SECONDS
    milp_share: float = MILP_SHARE

    @classmethod
    def for_network(cls, net: Network, **overrides) -> BabOptions:
        """The defaults for ``net``; when it has a convolution, ``CONV_CANDIDATES`` FSB candidates, no
        DeepPoly refinement of the children's intermediate bounds (``refine_intermediate=False``: they
        keep the parent's, intersected with the split), no ``cold_retry``, no proofs of empty children
        (``empty_iterations=0``) and no LPs (``lp_polish=0``; none is measured on oval21 yet);
        without, MILP bounds of ``FC_MILP_LAYERS`` layers and then of the later ones (``milp_later``, with
        ``DEEP_MILP_SHARE`` of the time when there are any), and the MILPs of stalled searches' worst
        sub-problems (``milp_polish``); ``overrides`` win.

        Measured on two oval21 conv networks and mnistfc (perf/README.md, bench_bab): on cifar_base_kw
        img4631, 8 candidates reach -0.0021 at 300 s where 3 reach -0.0107 (one run), and it holds in
        370 s in a full run; on mnistfc 256x4 FSB's look-ahead, which keeps the later layers' bounds,
        drifts to the last ReLU layer (422 of 540 splits with 8 candidates on prop_0_0.03), and 8
        candidates leave prop_0_0.03 open at 300 s where 3 decide it in 10 s. Without the refinement
        img4631 holds in 54.6 s instead of 84.6 s after the same number of sub-problems (20,979 vs
        20,933: the refined bounds of the 100-neuron layer behind most splits changed almost nothing),
        and wide img6762 reaches -0.0040 at 240 s instead of -0.0060 (153 vs 95 sub-problems/s); on
        mnistfc 256x4 prop_4_0.05 the refinement pays (-1.204 vs -1.238 at 60 s), so FC nets keep it."""
        if any(isinstance(n.layer, Conv2d) for n in net.nodes):
            overrides.setdefault("branching_candidates", CONV_CANDIDATES)
            overrides.setdefault("refine_intermediate", False)
            overrides.setdefault("cold_retry", False)  # measured on mnistfc only so far
            overrides.setdefault("empty_iterations", 0)  # likewise
            overrides.setdefault("lp_polish", 0)  # the LP of a conv net is large, and not measured either
        else:
            overrides.setdefault("milp_layers", FC_MILP_LAYERS)
            overrides.setdefault("milp_later", True)
            hidden = sum(isinstance(n.layer, ReLU) for n in net.nodes)
            # hidden layers between the refined ones and the last: their LPs and MILPs get time of their own
            if overrides["milp_later"] and hidden > overrides["milp_layers"] + 2:
                overrides.setdefault("milp_share", DEEP_MILP_SHARE)
            overrides.setdefault("milp_polish", FC_MILP_POLISH)
        return cls(**overrides)


@dataclass
class BabOutcome:
    """"holds", "unknown", or a counterexample (x, y); with the statistics of the search."""

    result: str | tuple = "holds"
    subproblems: int = 0
    rounds: int = 0
    max_depth: int = 0
    time_bounding: float = 0.0
    time_branching: float = 0.0
    queue_peak: int = 0
    queue_size: int = 0  # open sub-problems at the end (or when stopped)
    queue_bytes_peak: int = 0  # the queue's largest size in bytes (counted against the memory budget)
    root_bound: float = float("nan")
    global_bound: float = float("nan")  # the worst open sub-problem's bound: the whole problem's lower bound
    exhausted: int = 0   # sub-problems with every ReLU fixed and still not proved
    empty: int = 0       # children proved empty (``prove_empty``, or the LP's multipliers)
    time_lp: float = 0.0  # seconds of the sub-problems' LPs (``BabOptions.lp_polish``)
    splits_by_layer: list[int] = field(default_factory=list)  # splits made in each hidden ReLU layer, first first
    reason: str = ""
    time_milp: float = 0.0  # seconds of MILP intermediate bounds (``BabOptions.milp_layers``)
    restarts: int = 0  # searches started again from a root with MILP bounds
    subproblem_milps: int = 0  # exact MILPs of queued sub-problems (``BabOptions.milp_polish``)
    milp_closed: int = 0  # sub-problems those closed
    time_subproblem_milp: float = 0.0
    milp_started: float | None = None  # ``time.perf_counter()`` when the root's MILP bounds under way began

    def stats(self) -> dict:
        return {"subproblems": self.subproblems, "rounds": self.rounds, "max_depth": self.max_depth,
                "time_bounding_s": round(self.time_bounding, 4), "time_branching_s": round(self.time_branching, 4),
                "queue_peak": self.queue_peak, "queue_size": self.queue_size,
                "queue_bytes_peak": self.queue_bytes_peak, "root_bound": self.root_bound,
                "global_bound": self.global_bound, "exhausted": self.exhausted, "empty": self.empty,
                "time_lp_s": round(self.time_lp, 4),
                "splits_by_layer": list(self.splits_by_layer), "time_milp_s": round(self.time_milp, 4),
                "restarts": self.restarts, "subproblem_milps": self.subproblem_milps, "milp_closed": self.milp_closed,
                "time_subproblem_milp_s": round(self.time_subproblem_milp, 4),
                **({"reason": self.reason} if self.reason else {})}


@dataclass
class _Sub:
    """A queued sub-problem, packed: pre-activation bounds per Affine layer (float32, rounded outward),
    ReLU phases, open disjuncts, and the warm starts of the rows it had pairs for (``rows``): slopes
    (len(rows), n) per ReLU and the multipliers of its split neurons only (len(rows), splits), float32;
    its chosen split."""

    bounds: dict
    phases: dict
    open: np.ndarray
    rows: np.ndarray
    alpha: dict
    beta: dict
    choice: tuple[int, int]
    depth: int
    row_bounds: np.ndarray  # (R,) its rows' lower bounds: its children's hold at least these

    @property
    def nbytes(self) -> int:
        arrays = [a for lh in self.bounds.values() for a in lh] + list(self.phases.values()) \
            + list(self.alpha.values()) + list(self.beta.values()) + [self.row_bounds, self.rows, self.open]
        return sum(a.nbytes for a in arrays) + 400

    def warm_start(self, j: int, R: int) -> tuple[np.ndarray, np.ndarray]:
        """The (R, n) float64 slopes and multipliers of ReLU j (zero on rows without a pair and, for the
        multipliers, on neurons it did not split)."""
        n = self.phases[j].size
        alpha, beta = np.zeros((R, n)), np.zeros((R, n))
        alpha[self.rows] = self.alpha[j]
        beta[np.ix_(self.rows, np.flatnonzero(self.phases[j]))] = self.beta[j]
        return alpha, beta


@dataclass
class _Batch:
    """Children of one round, stacked: layer bounds and phases (B, n), parents' open disjuncts,
    warm starts, depth."""

    phases: dict
    prior: list
    start: np.ndarray
    open: np.ndarray
    alpha: dict
    beta: dict
    depth: np.ndarray
    row_bounds: np.ndarray | None = None


def _relu_indices(chain: AffineReluChain) -> list[int]:
    return [j for j, layer in enumerate(chain.layers) if isinstance(layer, ReLU)]


def _prior_list(chain: AffineReluChain, bounds: dict) -> list:
    """Every chain layer's (lower, upper) from the Affine layers' ones (ReLU outputs are max(., 0))."""
    out = []
    for k, layer in enumerate(chain.layers):
        if isinstance(layer, Affine):
            out.append(bounds[k])
        else:
            lo, hi = out[-1]
            out.append((np.maximum(lo, 0.0), np.maximum(hi, 0.0)))
    return out


def _root_batch(chain: AffineReluChain, rows: RowSets, prior: list | None = None) -> _Batch:
    """The whole box as a batch of one: no split, every disjunct open; ``prior``: bounds known to hold on it."""
    phases = {j: np.zeros((1, chain.layers[j - 1].weight.shape[0]), np.int8) for j in _relu_indices(chain)}
    return _Batch(phases, prior, None, np.ones((1, len(rows.slices)), bool), None, None, np.zeros(1, int))


def _children(chain: AffineReluChain, subs: list[_Sub]) -> _Batch:
    """The active (even index) and inactive (odd) child of each sub-problem."""
    relus = _relu_indices(chain)
    twice = [s for s in subs for _ in (0, 1)]
    phases = {j: np.stack([s.phases[j] for s in twice]) for j in relus}
    for c, s in enumerate(twice):
        j, i = s.choice
        phases[j][c, i] = 1 if c % 2 == 0 else -1
    affine = {k: (np.stack([s.bounds[k][0] for s in twice]).astype(np.float64),
                  np.stack([s.bounds[k][1] for s in twice]).astype(np.float64)) for k in twice[0].bounds}
    prior = _prior_list(chain, affine)
    start = np.array([s.choice[0] - 1 for s in twice])
    R = subs[0].row_bounds.size
    alpha, beta = {}, {}
    for j in relus:
        per_sub = [s.warm_start(j, R) for s in subs]
        alpha[j] = np.stack([a for a, _ in per_sub for _ in (0, 1)])
        beta[j] = np.stack([b for _, b in per_sub for _ in (0, 1)])
    return _Batch(phases, prior, start, np.stack([s.open for s in twice]), alpha, beta,
                  np.array([s.depth + 1 for s in twice]), np.stack([s.row_bounds for s in twice]))


def relu_bab(chain: AffineReluChain, rows: RowSets, lo0: np.ndarray, hi0: np.ndarray, *,
             check_counterexample: Callable[[np.ndarray], tuple | None],
             check_time: Callable[[], None], options: BabOptions = BabOptions(),
             forward: Callable[[np.ndarray], np.ndarray] | None = None,
             attack: Callable[[np.ndarray], tuple | None] | None = None,
             out: BabOutcome | None = None, deadline: float = np.inf) -> BabOutcome:
    """Decide "no point of [lo0, hi0] reaches any disjunct of ``rows``" by ReLU branch and bound; the
    chain's outputs are the rows' margins A y - b (``verify.spec_network``). ``check_counterexample(x)``
    returns a re-checked (x, y) or None; ``check_time`` raises at the deadline; ``forward`` maps flat
    inputs to the margins (defaults to the chain's own evaluation); ``attack(starts)``, a gradient
    falsifier started from the given inputs, runs every ``ATTACK_EVERY`` rounds from the relaxation
    minimisers of the round's worst sub-problems. ``out`` is updated as the
    search goes (statistics survive a deadline) and returned. ``deadline`` (``time.perf_counter()``), when
    ``check_time`` has one, caps the time limits of the MILP solves, which ``check_time`` cannot interrupt:
    without it a search whose deadline came during a sub-problem's MILP ended up to one solve late.

    BLAS runs on the calling thread throughout: its idle threads spin after each product and took a
    core from the numba kernels' threads (oval21 wide img6762: 23 sub-problems/s with two BLAS threads,
    54 with one; mnistfc 256x4: 58 vs 128, numba on two threads in both)."""
    with blas_single_thread():
        return _search(chain, rows, lo0, hi0, check_counterexample, check_time, options, forward, attack,
                       out if out is not None else BabOutcome(), deadline=deadline)


def _search(chain, rows, lo0, hi0, check_counterexample, check_time, options, forward, attack, out,
            root_prior=None, deadline: float = np.inf) -> BabOutcome:
    """``relu_bab``'s loop; ``root_prior``: bounds of every chain layer known to hold on the whole box (the
    search restarted from ``_milp_root``, which it does at most once)."""
    forward = forward or (lambda x: _chain_forward(chain, x))
    relus = _relu_indices(chain)
    if len(out.splits_by_layer) != len(relus):
        out.splits_by_layer = [0] * len(relus)
    milp_at = (time.perf_counter() + options.milp_after
               if root_prior is None and options.milp_layers > 0 and len(relus) > 1 else None)
    R = rows.A.shape[0]
    started, milp_before = time.perf_counter(), out.time_subproblem_milp
    lo0 = np.asarray(lo0, np.float64).ravel()
    hi0 = np.asarray(hi0, np.float64).ravel()

    root = _root_batch(chain, rows, root_prior)
    queue: list = []
    history: list = []  # the global bound after each round
    exhausted_low = float("inf")  # the worst bound of the sub-problems left with every ReLU fixed (not queued)
    counter = 0
    queue_bytes = 0
    batch = root
    steps = (options.root_iterations, LR_ALPHA, LR_BETA)  # Adam iterations and step sizes
    # a round's arrays (about PAIR_STATE_ARRAYS rows as wide as all ReLUs per pair, 2 children x R rows per
    # split sub-problem) stay within a quarter of the budget; back-substitution temporaries an eighth
    n_relu = sum(chain.layers[j - 1].weight.shape[0] for j in relus)
    per_split = 2 * R * PAIR_STATE_ARRAYS * 8 * max(n_relu, 1)
    k_max = int(np.clip(options.memory_bytes // 4 // per_split, 1, options.batch))
    k_round = max(1, min(k_max, options.batch // 8))
    while True:
        check_time()
        t_bound = time.perf_counter()
        B = len(batch.open)
        lo, hi = np.repeat(lo0[None], B, axis=0), np.repeat(hi0[None], B, axis=0)
        splits = ReluSplits(batch.phases, batch.prior, batch.start if options.refine_intermediate or batch.start is None
                            else np.full(B, len(chain.layers)))
        res = deeppoly_boxes(chain, lo, hi, sound_fp=True, splits=splits, pair_bytes=max(options.memory_bytes // 8, 1 << 20))
        layers, feasible = res.layers, ~res.infeasible
        out.subproblems += B
        if batch is not root and options.intermediate_iterations > 0:
            _optimise_shallow(chain, batch, layers, feasible, lo, hi, options, check_time)
        bound = _bound_rows(chain, rows, batch, layers, feasible, lo, hi, steps, check_time,
                            cold_retry=options.cold_retry)
        if batch is root and options.intermediate_iterations > 0 and not _proved(bound[0], rows, batch, feasible):
            # the rows alone do not prove the root: optimise the intermediate bounds too (alpha-CROWN), once
            layers, empty_root = optimise_intermediate(chain, layers, batch.phases, lo, hi,
                                                       options.intermediate_iterations, check_time)
            feasible &= ~empty_root
            warm = replace(batch, alpha=_root_slopes(bound, R, relus))
            first = bound[0]
            bound = _bound_rows(chain, rows, warm, layers, feasible, lo, hi, steps, check_time)
            np.maximum(bound[0], first, out=bound[0])  # both are bounds of the root
        if batch is root:
            root_layers = [(l.copy(), u.copy()) for l, u in layers]
        low, pp, opt, sub, row, row_open = bound
        empty, score, _ = _disjunct_scores(low, rows)
        still = batch.open & ~empty & feasible[:, None]
        if batch is not root and options.empty_iterations > 0:
            out.empty += _drop_empty(chain, batch, layers, still, lo, hi, options.empty_iterations, check_time)
        if batch is not root and options.lp_polish > 0 and still.any() and _stalled(history):
            t_lp = time.perf_counter()
            emptied = _polish_worst(chain, rows, batch, layers, lo, hi, low, still, bound, options.lp_polish, check_time)
            out.empty += emptied
            out.time_lp += time.perf_counter() - t_lp
            empty, score, _ = _disjunct_scores(low, rows)
            still &= ~empty
        out.time_bounding += time.perf_counter() - t_bound
        if batch is root:
            out.root_bound = float(np.min(np.where(batch.open, score, np.inf)))  # the closed disjuncts' are > 0
        live = np.flatnonzero(still.any(axis=1))
        if live.size:
            found = _try_minimisers(opt, sub, live, rows, forward, check_counterexample)
            if found is None and attack is not None and out.rounds % ATTACK_EVERY == ATTACK_EVERY - 1:
                worst = np.argsort(np.where(still, score, np.inf).min(axis=1))[:8]
                found = attack(opt.at_best.x_star[np.isin(sub, worst)][:8])
            if found is not None:
                out.result = found
                return out
            t_branch = time.perf_counter()
            choices = choose_splits(pp, opt, sub, row, row_open & np.repeat(still, [s.stop - s.start for s in rows.slices], axis=1), live,
                                    options.branching_candidates)
            for b in live:
                choice = choices.get(int(b))
                if choice is None:
                    out.exhausted += 1
                    exhausted_low = min(exhausted_low, float(score[b][still[b]].min()))
                    continue
                out.splits_by_layer[relus.index(choice[0])] += 1
                phases = {j: batch.phases[j][b].copy() for j in relus}
                pair_rows, alpha, beta = _warm_start_of(bound, relus, b, phases)
                bounds = {k: outward_float32(layers[k][0][b], layers[k][1][b])
                          for k, layer in enumerate(chain.layers) if isinstance(layer, Affine)}
                s = _Sub(bounds, phases, still[b].copy(), pair_rows, alpha, beta, choice, int(batch.depth[b]),
                         low[b].copy())
                counter += 1
                queue_bytes += s.nbytes
                heapq.heappush(queue, (float(score[b][still[b]].min()), counter, s))
                out.max_depth = max(out.max_depth, s.depth)
            out.time_branching += time.perf_counter() - t_branch
        out.queue_peak = max(out.queue_peak, len(queue))
        out.queue_bytes_peak = max(out.queue_bytes_peak, queue_bytes)
        out.queue_size = len(queue)
        out.global_bound = min(queue[0][0] if queue else float("inf"), exhausted_low)
        history.append(out.global_bound)
        milp_left = MILP_POLISH_SHARE * (time.perf_counter() - started) - (out.time_subproblem_milp - milp_before)
        if options.milp_polish > 0 and queue and _stalled(history) and milp_left > 0:
            found, freed = _milp_worst(chain, rows, queue, lo0, hi0, options, check_time, check_counterexample, out,
                                       min(time.perf_counter() + max(milp_left, options.milp_polish_seconds), deadline))
            if found is not None:
                out.result = found
                return out
            queue_bytes -= freed
            out.queue_size = len(queue)
            out.global_bound = min(queue[0][0] if queue else float("inf"), exhausted_low)
        if queue_bytes > options.memory_bytes:
            out.result, out.reason = "unknown", "the sub-problem queue outgrew the memory budget"
            return out
        if options.max_subproblems is not None and out.subproblems >= options.max_subproblems and queue:
            out.result, out.reason = "unknown", f"more than {options.max_subproblems} sub-problems"
            return out
        if not queue:
            if out.exhausted:
                out.result, out.reason = "unknown", "sub-problems with every ReLU fixed are not proved"
            return out
        if milp_at is not None and time.perf_counter() >= milp_at:
            # start again, once, from a root that keeps MILP bounds (the queue so far is dropped)
            prior = _milp_root(chain, rows, lo0, hi0, root_layers, options, check_time, out, deadline)
            if prior is None:  # no input reaches these bounds: the box is empty (never on a real box)
                out.result = "holds"
                return out
            return _search(chain, rows, lo0, hi0, check_counterexample, check_time, options, forward, attack, out,
                           prior, deadline)
        t_round = time.perf_counter() - t_bound
        if batch is not root:
            k_round = int(np.clip(k_round * 2 if t_round < 1.0 else k_round, 1, k_max))
        subs = [heapq.heappop(queue)[2] for _ in range(min(k_round, len(queue)))]
        queue_bytes -= sum(s.nbytes for s in subs)
        batch = _children(chain, subs)
        steps = (options.iterations, options.lr_alpha, options.lr_beta)
        out.rounds += 1


def _milp_root(chain, rows: RowSets, lo0, hi0, root_layers, options: BabOptions, check_time, out,
               deadline: float = np.inf) -> list | None:
    """The root's bounds of every chain layer with the MILP bounds of ``options.milp_layers`` layers, and with
    ``options.milp_later`` of the later ones in the time those leave unless the rows are proved by then
    (``milp_intermediate``, ``options.milp_seconds``), and alpha-CROWN on the later layers under them; None
    when they prove the root empty."""
    root = _root_batch(chain, rows)
    feasible = np.ones(1, bool)

    def proved(layers: list) -> bool:
        layers = _prior_list(chain, {k: b for k, b in enumerate(layers) if isinstance(chain.layers[k], Affine)})
        low = _bound_rows(chain, rows, root, layers, feasible, lo0[None], hi0[None],
                          (options.root_iterations, LR_ALPHA, LR_BETA), check_time)[0]
        return _proved(low, rows, root, feasible)

    t = out.milp_started = time.perf_counter()
    try:
        seconds = min(options.milp_seconds, deadline - t)
        layers, empty = milp_intermediate(chain, root_layers, lo0, hi0, options.milp_layers, seconds,
                                          threads=numba.get_num_threads(), check_time=check_time,
                                          iterations=options.intermediate_iterations, later=options.milp_later,
                                          proved=proved)
    finally:
        out.time_milp += time.perf_counter() - t
        out.milp_started = None
    out.restarts += 1
    if empty:
        return None
    return _prior_list(chain, {k: b for k, b in enumerate(layers) if isinstance(chain.layers[k], Affine)})


def _milp_worst(chain, rows: RowSets, queue: list, lo0, hi0, options: BabOptions, check_time, check_counterexample,
                out: BabOutcome, stop: float = np.inf) -> tuple[tuple | None, int]:
    """The ``options.milp_polish`` queued sub-problems with the worst bounds: the best row of each one's
    worst open disjunct gets the exact MILP of the sub-problem (``output_minima``,
    ``options.milp_polish_seconds`` each, on the cores in parallel, none started after ``stop``). Its bound
    raises the row's (children keep it), a disjunct it proves unreachable closes, and all close when the
    encoding has no point; a sub-problem left with no open disjunct leaves the queue (all in place, the
    heap kept). With one disjunct open, the solve stops once it proves the row positive (cutoff 0:
    emptiness is no better then). Returns a re-checked counterexample from a solver's point, or None, and
    the bytes of the queue freed.

    Deep in a search the bounds of most children stay at their parent's while the worst sub-problems are
    empty: on mnistfc 256x4 prop_8_0.05 the worst 40 after 100 s of search sat at -0.1107 at depth 55-62
    (the global bound had not moved for 80 s), their LPs at -0.103, and the exact encodings of the ones
    tried had no point (HiGHS: 0.2 s each); on prop_6_0.05 likewise."""
    worst = heapq.nsmallest(options.milp_polish, queue)
    problems, enough = [], []
    for _, _, s in worst:
        _, score, best = _disjunct_scores(s.row_bounds[None], rows)
        d = int(np.argmin(np.where(s.open, score[0], np.inf)))
        layers = _prior_list(chain, {k: (lh[0][None].astype(np.float64), lh[1][None].astype(np.float64))
                                     for k, lh in s.bounds.items()})
        problems.append((layers, s.phases, int(best[0, d])))
        enough.append(0.0 if s.open.sum() == 1 else -np.inf)
    t = time.perf_counter()
    try:
        solved = output_minima(chain, problems, lo0, hi0, options.milp_polish_seconds, numba.get_num_threads(),
                               check_time, np.array(enough), stop)
    finally:
        out.time_subproblem_milp += time.perf_counter() - t
    out.subproblem_milps += sum(value > -np.inf for value, _ in solved)
    kept, freed = [], 0
    for (_, c, s), (_, _, r), (value, x) in zip(worst, problems, solved):
        if x is not None and value < 0:
            found = check_counterexample(np.clip(x, lo0, hi0))
            if found is not None:
                return found, 0
        s.row_bounds[r] = max(s.row_bounds[r], value)  # +inf: no input meets the sub-problem's splits
        empty, score, _ = _disjunct_scores(s.row_bounds[None], rows)
        s.open &= ~empty[0] & (value < np.inf)
        if s.open.any():
            kept.append((float(np.min(np.where(s.open, score[0], np.inf))), c, s))
        else:
            out.milp_closed += 1
            freed += s.nbytes
    picked = {id(s) for _, _, s in worst}
    queue[:] = [item for item in queue if id(item[2]) not in picked] + kept
    heapq.heapify(queue)
    return None, freed


def _bound_rows(chain, rows: RowSets, batch: _Batch, layers, feasible, lo, hi, steps, check_time, cold_retry=False):
    """Optimised bounds of the open rows of every feasible sub-problem of ``batch``: (low (B, R) with
    +inf on empty sub-problems and -inf on closed rows, the PairProblem, the optimisation, its pairs'
    sub-problems and rows, and the open-row mask). With ``cold_retry``, children's pairs that no step
    raised and that do not pass their parent's bound are optimised again from the cold start
    (``optimise_pairs_with_cold_retry``)."""
    relus = _relu_indices(chain)
    B, R = len(batch.open), rows.A.shape[0]
    row_open = np.zeros((B, R), bool)
    for d, s in enumerate(rows.slices):
        row_open[:, s] = batch.open[:, d:d + 1]
    row_open &= feasible[:, None]
    sub, row = np.nonzero(row_open)
    low = np.full((B, R), np.inf)
    low[feasible] = -np.inf
    if not sub.size:
        return low, None, None, sub, row, row_open
    pp = PairProblem.gather(chain, layers, batch.phases, lo, hi, sub, row)
    a0 = None if batch.alpha is None else {j: batch.alpha[j][sub, row] for j in relus}
    b0 = None if batch.beta is None else {j: batch.beta[j][sub, row] for j in relus}
    iterations, lr_alpha, lr_beta = steps
    if cold_retry and batch.row_bounds is not None:  # children (warm-started from their parent)
        opt = optimise_pairs_with_cold_retry(pp, a0, b0, batch.row_bounds[sub, row], iterations, lr_alpha, lr_beta,
                                             check_time)
    else:
        opt = optimise_pairs(pp, a0, b0, iterations=iterations, lr_alpha=lr_alpha, lr_beta=lr_beta, check_time=check_time)
    low[sub, row] = np.maximum(opt.lower, layers[-1][0][sub, row])
    if batch.row_bounds is not None:  # a sub-problem is part of its parent: the parent's bounds hold
        low[sub, row] = np.maximum(low[sub, row], batch.row_bounds[sub, row])
    return low, pp, opt, sub, row, row_open


def _drop_empty(chain, batch: _Batch, layers: list, still: np.ndarray, lo, hi, iterations: int, check_time) -> int:
    """Children with open rows (``still`` (B, D): open disjuncts) that ``prove_empty`` shows no input reaches
    close them all (in place); how many did. Only children their rows left open are tried: the proof costs
    ``iterations`` steps that the many children of a shallow round their rows prove do not need."""
    pick = np.flatnonzero(still.any(axis=1))
    if not pick.size:
        return 0
    empty = prove_empty(chain, [(l[pick], u[pick]) for l, u in layers], {j: ph[pick] for j, ph in batch.phases.items()},
                        lo[pick], hi[pick], iterations, check_time)
    still[pick[empty]] = False
    return int(empty.sum())


def _stalled(history: list) -> bool:
    """The global bound rose by less than ``STALL_GAIN`` over the last ``STALL_ROUNDS`` rounds."""
    return len(history) > STALL_ROUNDS and history[-1] - history[-1 - STALL_ROUNDS] < STALL_GAIN


def _polish_worst(chain, rows: RowSets, batch: _Batch, layers: list, lo, hi, low: np.ndarray, still: np.ndarray,
                  bound, k: int, check_time) -> int:
    """The ``k`` children with the worst open disjuncts: the best row of that disjunct gets the LP optimum
    of its relaxation (``sub_problem_lp``, the LPs on the cores in parallel) as slopes and multipliers, kept
    where their sound bound beats Adam's (``low`` and the pair's parameters and minimiser, in place, so its
    children start from them); a child whose row LP is infeasible is closed when the multipliers of the
    emptiness LP prove it empty (``still``, in place). Returns how many were."""
    _, pp, opt, sub, row, _ = bound
    _, score, best = _disjunct_scores(low, rows)
    worst = np.where(still, score, np.inf)
    tasks = []
    for b in np.argsort(worst.min(axis=1))[:k]:
        if not np.isfinite(worst[b].min()):
            break
        r = int(best[b, np.argmin(worst[b])])
        p = np.flatnonzero((sub == b) & (row == r))
        if p.size:
            tasks.append((int(b), r, int(p[0])))

    def solve(task):
        b, r, _ = task
        check_time()
        lay = [(l[b], u[b]) for l, u in layers]
        ph = {j: a[b] for j, a in batch.phases.items()}
        lp = sub_problem_lp(chain, lay, ph, lo[b], hi[b], r)
        return sub_problem_lp(chain, lay, ph, lo[b], hi[b], None) if np.isinf(lp.value) else lp

    with ThreadPoolExecutor(max(1, min(len(tasks), numba.get_num_threads()))) as pool:
        solved = list(pool.map(solve, tasks))
    emptied = 0
    for (b, r, q), lp in zip(tasks, solved):
        if lp.alpha is None:
            continue
        one = pp.take(np.array([q]))
        alpha, beta = _lp_alpha(one, lp), _lp_beta(lp)
        if lp.row is None:  # the row's LP was infeasible: this is the emptiness LP's
            if pair_bounds(replace(one, row_sign=np.zeros(1)), alpha, beta).lower[0] > 0:
                still[b] = False
                low[b] = np.inf
                emptied += 1
            continue
        ev = pair_bounds(one, alpha, beta)
        if ev.lower[0] > opt.lower[q]:
            opt.lower[q] = opt.at_best.lower[q] = ev.lower[0]
            opt.at_best.x_star[q] = ev.x_star[0]
            for j in alpha:
                opt.alpha[j][q], opt.beta[j][q] = alpha[j][0], beta[j][0]
                opt.at_best.coef[j][q] = ev.coef[j][0]
            low[b, r] = max(low[b, r], ev.lower[0])
    return emptied


def _lp_alpha(one: PairProblem, lp) -> dict:
    """The LP's slopes (1, n) per ReLU, DeepPoly's where the LP leaves them free."""
    return {j: np.where(np.isnan(a), one.area_alpha[j][0], a)[None] for j, a in lp.alpha.items()}


def _lp_beta(lp) -> dict:
    return {j: b[None] for j, b in lp.beta.items()}


def _optimise_shallow(chain, batch: _Batch, layers: list, feasible: np.ndarray, lo, hi, options: BabOptions,
                      check_time) -> None:
    """Optimised intermediate bounds (``optimise_intermediate``) of the feasible children at depth <=
    ``options.intermediate_depth``, written into ``layers``; children they prove empty leave ``feasible``
    (both in place)."""
    pick = np.flatnonzero(feasible & (batch.depth <= options.intermediate_depth))
    if not pick.size:
        return
    part = [(l[pick], u[pick]) for l, u in layers]
    tight, empty = optimise_intermediate(chain, part, {j: ph[pick] for j, ph in batch.phases.items()}, lo[pick],
                                         hi[pick], options.intermediate_iterations, check_time, after=batch.start[pick])
    for (l, u), (tl, tu) in zip(layers, tight):
        l[pick], u[pick] = tl, tu
    feasible[pick[empty]] = False


def _proved(low, rows: RowSets, batch: _Batch, feasible) -> bool:
    empty, _, _ = _disjunct_scores(low, rows)
    return not (batch.open & ~empty & feasible[:, None]).any()


def _root_slopes(bound, R: int, relus) -> dict:
    """The root's optimised slopes as (1, R, n) per ReLU (zero on rows without a pair)."""
    _, pp, opt, sub, row, _ = bound
    out = {}
    for j in relus:
        a = np.zeros((1, R, pp.su[j].shape[1]))
        a[0, row[sub == 0]] = opt.alpha[j][sub == 0]
        out[j] = a
    return out


def _warm_start_of(bound, relus, b: int, phases: dict) -> tuple[np.ndarray, dict, dict]:
    """Sub-problem b's rows with a pair, and their optimised slopes (rows, n) and multipliers at its split
    neurons (rows, splits) per ReLU, float32 (a queued sub-problem's warm start for its children)."""
    _, pp, opt, sub, row, _ = bound
    sel = np.flatnonzero(sub == b)
    alpha = {j: opt.alpha[j][sel].astype(np.float32) for j in relus}
    beta = {j: opt.beta[j][sel][:, np.flatnonzero(phases[j])].astype(np.float32) for j in relus}
    return row[sel].copy(), alpha, beta


def _chain_forward(chain: AffineReluChain, x: np.ndarray) -> np.ndarray:
    for layer in chain.layers:
        x = x @ layer.weight.T + layer.bias if isinstance(layer, Affine) else np.maximum(x, 0.0)
    return x


def _try_minimisers(opt, sub, live, rows: RowSets, forward, check_counterexample):
    """Forward each open pair's relaxation minimiser x*; return a re-checked counterexample or None."""
    pick = np.isin(sub, live)
    if not pick.any():
        return None
    x = opt.at_best.x_star[pick]
    x = np.unique(x, axis=0)
    return first_counterexample(x, forward(x), rows, check_counterexample)


__all__ = ["BabOptions", "BabOutcome", "relu_bab"]
