"""Intermediate bounds of the first hidden layers from mixed-integer programs (the exact ReLU encoding).

Optimised DeepPoly (alpha-CROWN) reaches the bound of the triangle LP relaxation and no further (Salman
et al. NeurIPS 2019, "convex barrier"); the exact encoding of each unstable ReLU a = max(z, 0) with a
binary d (Tjeng et al. ICLR 2019):

    a >= 0,  a >= z,  a <= u d,  a <= z - l (1 - d),  d in {0, 1}       (l < 0 < u the bounds of z)

gives the true range of a neuron of layer k over the input box, given the bounds of layers < k. ERAN
refined the first layers of the mnistfc networks this way (Singh et al. 2019, "Boosting robustness
certification"). Each bound is a MILP solved by HiGHS (``highs_solve``) under a time limit; the
solver's dual bound is valid at any time. The solver works in floating point with feasibility
tolerances (1e-7 primal, 1e-6 integrality), so each bound is moved outward by ``MARGIN`` times the
magnitude of its terms (Σ|c_j|·max(|lb_j|, |ub_j|) + |v|), ten times those tolerances, and intersected
with the given bounds: a bound never gets looser than the input's.

On mnistfc 256x4 prop_4_0.05 the 85 unstable neurons of the second hidden layer (40 binaries in the
first) took 88 s of HiGHS at 1 s per solve on two threads with its primal heuristics on; 20 became
stable, and after alpha-CROWN on the later layers the root bound went from -2.02 to -1.38. With the
heuristics off (``HIGHS_OPTIONS``), 120 s took it to -1.14 (perf/README.md, session 13).

Deeper layers need more binaries than a solve can afford (on 256x4 prop_14_0.03 every exact solve of
a third-layer neuron, 86 binaries, hit 20 s), so each MILP keeps as binaries only the ``MILP_BINARIES``
unstable neurons that can move its objective most and relaxes the others to their triangle (partial
MILP, Singh et al. 2019): a valid bound between the LP's and the exact one. Layer by layer, with
alpha-CROWN on the later layers in between, 20 binaries refined layers 2 and 3 of prop_14_0.03 in 111 s
to a root bound of -1.61, where the exact second layer alone took 153 s to reach -2.20 (session 14).
How the time is spent matters as much: each layer gets a share of the time left, and its
neurons are solved most important first (``_importance``), each solve with up to ``MAX_SOLVE_SECONDS``,
until the layer's time is up. Session 14 gave every solve an equal share over all the layers' unstable
neurons, counted before the earlier layers' bounds stabilise most of the later ones: on mnistfc 256x6
prop_6_0.05 solves got ~0.9 s, too short for their branch and bound to beat the LP, and the root bound
was -1.63; now it is -0.58 and the property holds in 129 s (session 15). Each neuron is one task on the
thread pool (no thread waits for another's solve), its first solve the side nearer to stable, its second
skipped when the first proves it stable: on 256x4 prop_8_0.05 both layers were done in 158 s, where the
two solves per neuron in pairs had not finished them in 203 s (session 16). A first solve only has to
decide the neuron's sign when the neuron is stable, so HiGHS gets the threshold as a cutoff
(``objective_bound``) and stops once no node can go below it; with its primal heuristics off it has no
incumbent to close the gap with, and a stable neuron's solve otherwise ran until the tree was exhausted
or its time limit (session 19). Under the cutoff the dual bound HiGHS reports leaves out the pruned
nodes, so only min(bound, threshold) is kept. The time the last layer leaves goes back to the neurons
the earlier layers' shares dropped, in a second pass: on 256x4 prop_8_0.05 (300 s) the second layer's
share had ended after 101 s and the third layer took 13 s; with the second pass the MILPs used 177 s
of their 202, and the root bound went from -0.44 to -0.36; giving the second layer three quarters of
the time instead of half took it to -0.245 (session 20). HiGHS's presolve is off: it took 0.27 s of
every solve and removed 12 of 216 rows (the second layer of prop_8_0.05: 159 s instead of 201 s).
With ``later``, the time the refined layers leave goes on to the hidden layers after them but the last
(the search splits that one): on 256x6 prop_2_0.05 layers 2 and 3 were done after 133 s of the 203 s,
and the later layers took the fifth layer from 17 unstable neurons to 1 (its own solves: 8 s) and the
root bound from -1.69 to -0.26 (session 22). The later layers' LP bounds come first: alpha-CROWN's
back-substitution uses a stable neuron's bounds only through its relaxation, the LP of the encoding
keeps them as its columns' bounds, and after MILP bounds of layers 2 and 3 these are much tighter than
the relaxation implies. On 256x6 prop_0_0.03 the fourth layer's LP bounds took it from 126 unstable
neurons to 87 (alpha-CROWN with 100 iterations: 126), the fifth then from 231 to 156, and the rows'
bound from -44.9 to -18.9; the LPs run on one persistent HiGHS model per thread (``PersistentLp``,
1.9-2.8x faster than a fresh model per solve). Partial MILPs of the fifth layer then took it to 8
unstable neurons in 57 s, the sixth from 256 to 67, and the rows to -0.26; so the first refined layers
keep only 1 - ``LATER_SHARE`` of the time (session 24). A solve stopped by its time limit keeps HiGHS's
dual bound even when it found no point of the encoding, which ``scipy.optimize.milp`` drops
(``highs_solve``).
``output_minima`` solves the same encoding, every unstable ReLU a binary and the splits as constraints,
for one output over a sub-problem of the search, which closes the sub-problem when it has no point.
Unlike the rest of the search, these bounds are not rigorous in floating point: they rest on the margin
covering the solver's tolerances (it is ten times them, relative to the terms' magnitude), and an
encoding HiGHS calls infeasible on its tolerances (1e-7 primal feasibility) having no point.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp

from ..domains.deeppoly_batch import AffineReluChain
from ..network import Affine, ReLU
from .highs_solve import PersistentLp, highs_minimise
from .slopes import optimise_intermediate

#: time limit of one solve (a deadline waits for the running ones)
MAX_SOLVE_SECONDS = 20.0
#: how often the caller's ``check_time`` runs while solves are under way
CHECK_SECONDS = 0.25
#: binaries per MILP (the unstable neurons that move its objective most; ``_Model.integral_for``), the
#: others relaxed to their triangle
MILP_BINARIES = 20
#: outward move of each solver bound, relative to the magnitude of its terms
MARGIN = 1e-6
#: weight of the first refined layer (the second hidden one) in the shares of the MILP time, the later
#: layers' 1: on mnistfc 256x4 prop_8_0.05 (300 s) the second layer needs 159 s and the third 33 s after
#: it; with equal shares (and the second pass) the root bound was -0.36, with 3:1 -0.245
FIRST_LAYER_WEIGHT = 3.0
#: share of the MILP time kept from the first refined layers for the later ones (``milp_intermediate``
#: with ``later``): their LP bounds, then their partial MILPs in the time left
LATER_SHARE = 0.3
#: HiGHS options (``highs_solve``): only the dual bound is used,
#: so the primal heuristics are off; on mnistfc 256x4 prop_4_0.05 a second-layer neuron's exact bound
#: took 2.7 s instead of 5.2 s (the sub-MIP heuristics had taken 4 s of the root). Presolve is off: it
#: removed 12 of 216 rows and took 0.27 s of every solve (0.35 s against 0.08 s with one binary); on
#: 256x4 prop_8_0.05 the 245 solves of the second layer took 159 s instead of 201 s, same bounds
HIGHS_OPTIONS = {"presolve": "off", "mip_heuristic_effort": 0.0, "mip_heuristic_run_rins": False,
                 "mip_heuristic_run_rens": False, "mip_heuristic_run_root_reduced_cost": False,
                 "mip_heuristic_run_feasibility_jump": False}


class _Model:
    """The exact encoding of the chain's layers before Affine layer ``top`` over one input box: variables
    x (the input), then per hidden ReLU layer the pre-activations z and outputs a of its neurons that can
    be active, and one binary per unstable neuron; the dense rows z = W a_prev + b appear once. A neuron
    ``phases`` (per ReLU chain index, (n,) in {-1, 0, 1}) splits inactive keeps a row W a_prev + b <= 0:
    its upper bound 0 is the split's constraint, not a consequence of the others."""

    def __init__(self, chain: AffineReluChain, layers: list, lo: np.ndarray, hi: np.ndarray, top: int,
                 phases: dict | None = None):
        var_lo, var_hi, integral = [lo], [hi], [np.zeros(lo.size)]
        # per hidden layer: its first binary's column, the live neurons' upper relaxation slopes, the
        # unstable ones' triangle heights, |W| between live neurons (for ``integral_for``)
        self.first_binary, self._slope, self._gap, self._weight = [], [], [], []
        blocks, rows_lo, rows_hi = [], [], []
        n_vars, prev, prev_live = lo.size, 0, np.arange(lo.size)
        for k in range(top):
            layer = chain.layers[k]
            if not isinstance(layer, Affine):
                continue
            if not isinstance(chain.layers[k + 1], ReLU):
                raise ValueError(f"chain layer {k} is an Affine not followed by a ReLU")
            l, u = layers[k][0][0], layers[k][1][0]
            live = np.flatnonzero(u > 0)  # inactive neurons output 0 and need no variables
            unstable = live[l[live] < 0]
            n, m = live.size, unstable.size
            weight = sp.csr_array(layer.weight)
            W = weight[live][:, prev_live]  # the previous layer's inactive outputs are 0
            bias = np.asarray(layer.bias, np.float64)[live]
            z, a, d = n_vars, n_vars + n, n_vars + 2 * n  # pre-activations, outputs, binaries
            n_vars = d + m
            var_lo += [l[live], np.zeros(n), np.zeros(m)]
            var_hi += [u[live], u[live], np.ones(m)]
            integral += [np.zeros(n), np.zeros(n), np.ones(m)]
            eye = sp.eye_array(n, format="csr")
            pos = np.flatnonzero(l[live] < 0)  # the unstable ones among the live
            t = np.arange(m)
            ones = sp.csr_array((np.ones(m), (t, pos)), shape=(m, n))
            # z - W a_prev = b (dense rows, once per neuron)
            blocks.append(self._rows(n_vars, [(prev, -W), (z, eye)]))
            rows_lo.append(bias)
            rows_hi.append(bias)
            # active: a - z = 0
            act = np.flatnonzero(l[live] >= 0)
            blocks.append(self._rows(n_vars, [(z, -eye[act]), (a, eye[act])]))
            rows_lo.append(np.zeros(act.size))
            rows_hi.append(np.zeros(act.size))
            # unstable: a - z >= 0;  a - u d <= 0;  a - z - l d <= -l
            diag = lambda v: sp.csr_array((v, (t, t)), shape=(m, m))  # noqa: E731
            blocks.append(self._rows(n_vars, [(z, -ones), (a, ones)]))
            rows_lo.append(np.zeros(m))
            rows_hi.append(np.full(m, np.inf))
            blocks.append(self._rows(n_vars, [(a, ones), (d, diag(-u[unstable]))]))
            rows_lo.append(np.full(m, -np.inf))
            rows_hi.append(np.zeros(m))
            blocks.append(self._rows(n_vars, [(z, -ones), (a, ones), (d, diag(-l[unstable]))]))
            rows_lo.append(np.full(m, -np.inf))
            rows_hi.append(-l[unstable])
            self.first_binary.append(d)
            self._slope.append(_upper_slope(l[live], u[live]))
            self._gap.append(_triangle_height(l[unstable], u[unstable]))
            self._weight.append(np.abs(W.toarray()))
            off = np.flatnonzero((phases[k + 1] < 0) & (u <= 0)) if phases is not None and k + 1 in phases else []
            if len(off):  # W a_prev + b <= 0 (W's rows over the previous layer's live outputs)
                blocks.append(self._rows(n_vars, [(prev, weight[off][:, prev_live])]))
                rows_lo.append(np.full(len(off), -np.inf))
                rows_hi.append(-np.asarray(layer.bias, np.float64)[off])
            prev, prev_live = a, live
        self.live = prev_live
        self.n_vars, self.out, self.n_inputs = n_vars, prev, lo.size
        matrix = sp.vstack([sp.hstack([blk, sp.csr_array((blk.shape[0], n_vars - blk.shape[1]))]) if blk.shape[1] < n_vars
                            else blk for blk in blocks], format="csr")
        self.matrix, self.row_lo, self.row_hi = matrix, np.concatenate(rows_lo), np.concatenate(rows_hi)
        self.col_lo, self.col_hi = np.concatenate(var_lo), np.concatenate(var_hi)
        self.integrality = np.concatenate(integral)
        self.n_binaries = int(self.integrality.sum())
        self._lps = threading.local()

    def _lp(self) -> PersistentLp:
        """The calling thread's LP of the encoding without binaries (its solves start from its last basis)."""
        lp = getattr(self._lps, "lp", None)
        if lp is None:
            lp = self._lps.lp = PersistentLp(self.matrix, self.row_lo, self.row_hi, self.col_lo, self.col_hi,
                                             {"presolve": "off"})
        return lp

    def integral_for(self, c_out: np.ndarray, binaries: int | None) -> np.ndarray:
        """The integrality vector that keeps as binaries only the ``binaries`` unstable neurons whose
        relaxation can move c_out · a_out most, the others relaxed to their triangle (the LP relaxation of
        the encoding; partial MILP, Singh et al. 2019): neuron m's score is its triangle's height
        -l u/(u-l) times |c| back-propagated to it through |W| and the upper relaxation slopes."""
        if binaries is None or binaries >= self.n_binaries:
            return self.integrality
        scores = []
        v = np.abs(c_out[self.live])
        for h in range(len(self.first_binary) - 1, -1, -1):
            scores.append(v[self._slope[h] < 1.0] * self._gap[h])
            v = (v * self._slope[h]) @ self._weight[h]
        scores = np.concatenate(scores[::-1])
        columns = np.concatenate([d + np.arange(g.size) for d, g in zip(self.first_binary, self._gap)])
        keep = columns[np.argsort(-scores, kind="stable")[:max(int(binaries), 0)]]
        integral = np.zeros_like(self.integrality)
        integral[keep] = 1.0
        return integral

    @staticmethod
    def _rows(n_vars: int, parts: list) -> sp.csr_array:
        """Constraint rows with the given (column offset, block) parts, as wide as the variables so far."""
        n_rows = parts[0][1].shape[0]
        coo = [sp.coo_array(blk) for _, blk in parts]
        r = np.concatenate([c.row for c in coo])
        c = np.concatenate([c.col + off for (off, _), c in zip(parts, coo)])
        v = np.concatenate([c.data for c in coo])
        return sp.csr_array((v, (r, c)), shape=(n_rows, n_vars))

    def minimum(self, c_out: np.ndarray, seconds: float, binaries: int | None = None,
                enough: float | None = None) -> float:
        """A lower bound of c_out · a_out (the outputs of the last hidden layer before ``top``) over the
        encoding with at most ``binaries`` binaries (``integral_for``; None: all): HiGHS's dual bound after
        at most ``seconds``, moved outward by ``MARGIN``; -inf when the solver gives none. With ``enough``,
        the solve may stop as soon as its bound reaches it (HiGHS's ``objective_bound`` cutoff: no
        solution below the target exists), and then returns a bound >= ``enough``, not the minimum."""
        return self.solve(c_out, seconds, binaries, enough)[0]

    def solve(self, c_out: np.ndarray, seconds: float, binaries: int | None = None, enough: float | None = None,
              infeasible: float = -np.inf) -> tuple[float, np.ndarray | None]:
        """``minimum``'s bound, ``infeasible`` in its place when HiGHS finds no point of the encoding (without
        a cutoff), and the input x of the best point HiGHS found (None if none). Without binaries the LP is
        solved on the calling thread's persistent model (``PersistentLp``), from its last basis."""
        c = np.zeros(self.n_vars)
        c[self.out:self.out + self.live.size] = c_out[self.live]
        scale = np.abs(c) @ np.maximum(np.abs(self.col_lo), np.abs(self.col_hi))
        integral = self.integral_for(c_out, binaries)
        target = None
        if not integral.any():
            # an LP stopped by the cutoff reports no bound, and it is cheap anyway: no cutoff
            res = self._lp().minimise(c, seconds)
        else:
            options = {"time_limit": max(seconds, 1e-3), **HIGHS_OPTIONS}
            if enough is not None and np.isfinite(enough):
                target = enough + 2.0 * MARGIN * (scale + abs(enough) + 1.0)  # >= enough after the margin
                options["objective_bound"] = target
            res = highs_minimise(c, self.matrix, self.row_lo, self.row_hi, self.col_lo, self.col_hi, integral, options)
        value = res.dual_bound
        if target is not None:
            # with the cutoff, the nodes pruned against it leave the reported dual bound: only min(bound,
            # target) is valid (on mnistfc 256x4 the bound reported was up to 6x the true minimum)
            if res.infeasible:  # every node pruned: no point of the encoding goes below the target
                value = target
            elif np.isfinite(value):
                value = min(value, target)
        x = None if res.x is None else res.x[:self.n_inputs]
        if target is None and res.infeasible:  # no point meets the encoding
            return infeasible, x
        if not np.isfinite(value):
            return -np.inf, x
        return float(value - MARGIN * (scale + abs(value) + 1.0)), x


def milp_intermediate(chain: AffineReluChain, layers: list, lo: np.ndarray, hi: np.ndarray, n_layers: int,
                      seconds: float, threads: int = 2, check_time: Callable[[], None] | None = None,
                      binaries: int | None = MILP_BINARIES, iterations: int = 0, later: bool = False,
                      proved: Callable[[list], bool] | None = None) -> tuple[list, bool]:
    """Bounds of the unstable inputs of the ReLU layers 2 .. n_layers + 1 of one box [lo, hi] (flat; ``layers``
    as ``deeppoly_boxes`` returns them for one sub-problem, (1, n) arrays) from MILP encodings over the
    earlier layers with at most ``binaries`` binaries each (None: the exact encoding), layer by layer, on
    ``threads`` threads, within about ``seconds``: each layer gets a share of the time left (the first
    ``FIRST_LAYER_WEIGHT`` parts, each later one 1; what an earlier layer leaves flows to the later ones),
    and its neurons are solved most important first (``_importance``), so a deadline drops the ones that
    move the outputs least; a neuron's second solve is skipped when its first proves it stable
    (``_tighten_layer``). The time left after the last layer goes back to the neurons the earlier ones
    dropped, in a second pass (earliest layer first, equal shares). With ``later``, those layers get
    1 - ``LATER_SHARE`` of the time, and the hidden layers after them but the last then get their LP
    bounds (the encoding without binaries) and partial MILPs in the time left, the same way (equal
    shares, then their second pass). After each layer's first pass, ``proved(layers)`` (the caller's
    test that the bounds so far decide its problem) may end the refinement. With ``iterations`` > 0, the
    bounds of the layers after each refined one are optimised again under it (alpha-CROWN,
    ``optimise_intermediate``) before the next layer's encoding is built. Returns a new ``layers`` list, each bound the tighter of the given
    and the MILP's (after its margin), and whether the bounds prove the box empty."""
    layers = [(l.copy(), u.copy()) for l, u in layers]
    lo, hi = np.asarray(lo, np.float64).ravel(), np.asarray(hi, np.float64).ravel()
    hidden = [k for k in range(len(chain.layers) - 1)
              if isinstance(chain.layers[k], Affine) and isinstance(chain.layers[k + 1], ReLU)]
    stop = time.perf_counter() + seconds
    tail = hidden[1 + n_layers:-1] if later else []  # the last hidden layer is left to the search's splits
    # (layers, the first one's weight, binaries per solve, end of their time): the tail's LPs, then its MILPs
    groups = [(hidden[1:1 + n_layers], FIRST_LAYER_WEIGHT, binaries, stop - seconds * LATER_SHARE if tail else stop),
              (tail, 1.0, 0, stop), (tail, 1.0, binaries, stop)]
    pool = ThreadPoolExecutor(max(1, threads))
    try:
        with _solver_prints_to_stderr():
            for tops, first_weight, group_binaries, group_stop in groups:
                if not tops or time.perf_counter() >= group_stop:
                    continue
                empty, done = _refine_layers(chain, layers, lo, hi, tops, first_weight, pool, group_stop,
                                             group_binaries, iterations, check_time, proved)
                if empty or done:
                    return layers, empty
    finally:  # on a deadline or Ctrl-C the queued solves are dropped; running ones end within their limit
        pool.shutdown(wait=True, cancel_futures=True)
    return layers, False


def _refine_layers(chain, layers, lo, hi, tops, first_weight, pool, stop, binaries, iterations, check_time,
                   proved=None) -> tuple[bool, bool]:
    """``milp_intermediate``'s two passes over the Affine layers ``tops`` (in place in ``layers``), the first
    layer's share of the time weighted ``first_weight`` against 1 for each later one; whether the bounds
    prove the box empty, and whether ``proved`` ended the refinement."""
    phases = {k + 1: np.zeros((1, chain.layers[k].weight.shape[0]), np.int8)
              for k in range(len(chain.layers) - 1) if isinstance(chain.layers[k + 1], ReLU)}
    unfinished = {}
    for n, top in enumerate(tops):
        unstable = _unstable(layers, top)
        unstable = unstable[np.argsort(-_importance(chain, layers, top, unstable), kind="stable")]
        share = first_weight / (first_weight + len(tops) - 1) if n == 0 else 1.0 / (len(tops) - n)
        _, unfinished[top] = _tighten_layer(chain, layers, lo, hi, top, unstable, pool, _share(stop, share),
                                            binaries, check_time)
        if iterations > 0 and _later_bounds_empty(chain, layers, phases, lo, hi, top, iterations, check_time):
            return True, False
        if proved is not None and proved(layers):
            return False, True
    # second pass: the time the last layers leave goes back to the neurons the earlier ones dropped
    again = [top for top in tops if unfinished[top].size]
    for n, top in enumerate(again):
        left = unfinished[top][np.isin(unfinished[top], _unstable(layers, top))]
        solves, _ = _tighten_layer(chain, layers, lo, hi, top, left, pool, _share(stop, 1.0 / (len(again) - n)),
                                   binaries, check_time)
        if solves and iterations > 0 and _later_bounds_empty(chain, layers, phases, lo, hi, top, iterations,
                                                             check_time):
            return True, False
    return False, False


def output_minima(chain: AffineReluChain, problems: list, lo: np.ndarray, hi: np.ndarray, seconds: float,
                  threads: int = 2, check_time: Callable[[], None] | None = None,
                  enough: float | np.ndarray = -np.inf, stop: float = np.inf) -> list[tuple[float, np.ndarray | None]]:
    """For each (layers, phases, row) of ``problems`` (a sub-problem's bounds of every chain layer, (1, n)
    arrays with its ReLU splits applied, as ``deeppoly_boxes`` returns them; its splits, per ReLU chain
    index (n,) in {-1, 0, 1}; an output of the chain), a lower bound of that output over the sub-problem's
    exact encoding (a binary per unstable ReLU) and the box [lo, hi], solved by HiGHS within ``seconds``:
    +inf when no input meets the sub-problem's bounds and splits. With a finite ``enough`` (one per problem,
    or one for all) HiGHS gets it as a cutoff: it stops once no point goes below it, and the bound is then
    >= ``enough`` (and +inf no longer tells an empty sub-problem). With the input of the best point HiGHS
    found (None if none; a counterexample candidate). The solves run on ``threads`` threads, none after
    ``stop`` (``time.perf_counter``; a problem not solved by then gets -inf); ``check_time`` is called while
    they do (on a deadline the running ones end within ``seconds``). The LP relaxation cannot tell some
    sub-problems empty that the encoding can: on mnistfc 256x4 prop_8_0.05 the worst sub-problems after
    100 s of search had LP bounds of -0.103 and encodings with no point, which HiGHS showed in 0.2 s each
    with 123-127 binaries (perf/README.md, session 21)."""
    lo, hi = np.asarray(lo, np.float64).ravel(), np.asarray(hi, np.float64).ravel()
    top = max(k for k, layer in enumerate(chain.layers) if isinstance(layer, ReLU)) + 1
    results: list = [None] * len(problems)
    enough = np.broadcast_to(np.asarray(enough, np.float64), (len(problems),))
    # the outputs as affine functions c_r · a + d_r of the last ReLU's outputs (the later Affine layers composed)
    coef, const = np.eye(chain.layers[-1].weight.shape[0]), np.zeros(chain.layers[-1].weight.shape[0])
    for layer in chain.layers[:top - 1:-1]:  # the Affine layers after the last ReLU, last first
        const = const + coef @ np.asarray(layer.bias, np.float64)
        coef = np.asarray((sp.csr_array(layer.weight).T @ coef.T).T)
    given_up = threading.Event()

    def solve(i: int) -> None:
        left = min(seconds, stop - time.perf_counter())
        if given_up.is_set() or left <= 0:
            results[i] = (-np.inf, None)
            return
        layers, phases, row = problems[i]
        model = _Model(chain, layers, lo, hi, top, phases)
        value, x = model.solve(coef[row], left, None, enough[i] - const[row], infeasible=np.inf)
        results[i] = (value + const[row] if np.isfinite(value) else value, x)

    pool = ThreadPoolExecutor(max(1, min(threads, len(problems))))
    try:
        with _solver_prints_to_stderr():
            pending = {pool.submit(solve, i) for i in range(len(problems))}
            while pending:
                done, pending = wait(pending, timeout=CHECK_SECONDS)
                for task in done:
                    task.result()  # a task's error is raised here
                if pending and check_time is not None:
                    check_time()
    except BaseException:
        given_up.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def _share(stop: float, fraction: float) -> float:
    """The deadline after ``fraction`` of the time left before ``stop``."""
    now = time.perf_counter()
    return now + max(stop - now, 0.0) * min(fraction, 1.0)


def _later_bounds_empty(chain, layers, phases, lo, hi, top, iterations, check_time) -> bool:
    """Optimise (alpha-CROWN, ``optimise_intermediate``) the bounds of the layers after Affine layer ``top``
    under its tightened ones, in place in ``layers``; whether they prove the box empty."""
    tight, empty = optimise_intermediate(chain, layers, phases, lo[None], hi[None], iterations, check_time,
                                         after=np.array([top + 1]))
    layers[:] = tight
    return bool(empty[0])


def _upper_slope(l: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Slope of each neuron's upper relaxation: 1 when active, u/(u-l) when unstable, 0 when dead."""
    return np.where(u <= 0, 0.0, np.where(l >= 0, 1.0, u / np.where(l < 0, u - l, 1.0)))


def _triangle_height(l: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Height -l u/(u-l) of each neuron's triangle relaxation (its largest gap above the ReLU); 0 when stable."""
    return np.maximum(-l, 0.0) * np.maximum(u, 0.0) / np.where(u > l, u - l, 1.0)


def _importance(chain: AffineReluChain, layers: list, top: int, neurons: np.ndarray) -> np.ndarray:
    """How far each of ``neurons`` (unstable inputs of the ReLU after Affine layer ``top``) can move the
    chain's outputs: its triangle's height -l u/(u-l) times the sum of |W| over every output, back-propagated
    through the later Affine layers' |W| and ReLUs' upper relaxation slopes (the score of
    ``_Model.integral_for``, taken from all the outputs). On mnistfc 256x6 prop_6_0.05 (after layer 2's
    MILPs) the 8 top-scored of the third layer's 32 unstable neurons took the root bound from -1.48 to
    +0.59, all 32 to +0.73, 16 chosen at random to +0.64 (perf/README.md, session 15)."""
    v = np.ones(next(layer.weight.shape[0] for layer in reversed(chain.layers) if isinstance(layer, Affine)))
    for k in range(len(chain.layers) - 1, top + 1, -1):  # down to the neurons' own ReLU, excluded
        layer = chain.layers[k]
        if isinstance(layer, Affine):
            v = abs(sp.csr_array(layer.weight)).T @ v
        else:  # a ReLU: its input is layer k - 1's output
            v = v * _upper_slope(layers[k - 1][0][0], layers[k - 1][1][0])
    l, u = layers[top][0][0][neurons], layers[top][1][0][neurons]
    return v[neurons] * _triangle_height(l, u)


def _unstable(layers: list, k: int) -> np.ndarray:
    l, u = layers[k][0][0], layers[k][1][0]
    return np.flatnonzero((l < 0) & (u > 0))


@contextmanager
def _solver_prints_to_stderr():
    """HiGHS prints a debug line to the C stdout on some solves whatever its log options; send the
    process's file descriptor 1 to stderr meanwhile, so stdout keeps only results."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):  # no usable stdout: nothing to protect
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        _flush_c_stdio()  # C's buffer holds the lines written meanwhile: out before fd 1 is restored
        os.dup2(saved, 1)
        os.close(saved)


def _flush_c_stdio():
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no C library to flush (not on Linux / macOS)
        pass


def _tighten_layer(chain, layers, lo, hi, top, unstable, pool, stop, binaries, check_time) -> tuple[int, np.ndarray]:
    """Tighten the bounds of the neurons ``unstable`` of Affine layer ``top`` in ``layers`` (in place): one
    task per neuron on ``pool``, started in that order, each solve with at most ``binaries`` binaries and
    at most ``MAX_SOLVE_SECONDS``, none started after ``stop``. A neuron's first solve is the side nearer
    to making it stable (its upper bound when u < -l: dead; else its lower bound: active); when that solve
    proves it stable, the other side is skipped (a dead neuron's lower bound and an active one's upper
    bound do not enter its relaxation). Returns the number of solves made and the neurons left
    unfinished (a side not solved, or a solve that ran into ``stop``), in the given order."""
    if check_time is not None:
        check_time()
    if not unstable.size:
        return 0, unstable
    model = _Model(chain, layers, lo, hi, top)
    W = sp.csr_array(chain.layers[top].weight)[unstable].toarray()
    bias = np.asarray(chain.layers[top].bias, np.float64)[unstable]
    l, u = layers[top][0][0], layers[top][1][0]
    lower, upper = l[unstable].copy(), u[unstable].copy()
    given_up = threading.Event()  # set on a deadline or Ctrl-C: running tasks start no further solve
    finished = np.zeros(unstable.size, bool)

    def solve(i: int) -> int:
        solves = 0
        for side in ((-1.0, 1.0) if upper[i] < -lower[i] else (1.0, -1.0)):
            left = stop - time.perf_counter()
            if left <= 0 or given_up.is_set():
                return solves
            first = solves == 0  # it may stop once it proves the neuron stable: value >= -side b
            value = model.minimum(side * W[i], min(left, MAX_SOLVE_SECONDS), binaries,
                                  enough=-side * bias[i] if first else None)
            solves += 1
            if side > 0:
                lower[i] = max(lower[i], value + bias[i])
            else:
                upper[i] = min(upper[i], -value + bias[i])
            if time.perf_counter() >= stop:  # its time limit may have cut it short
                return solves
            if lower[i] >= 0 or upper[i] <= 0:
                break
        finished[i] = True
        return solves

    tasks = [pool.submit(solve, i) for i in range(unstable.size)]
    try:
        pending = set(tasks)
        while pending:
            _, pending = wait(pending, timeout=CHECK_SECONDS)
            if pending and check_time is not None:
                check_time()
        done = sum(task.result() for task in tasks)  # a task's error is raised here
    except BaseException:
        given_up.set()
        raise
    l[unstable] = np.maximum(l[unstable], lower)
    u[unstable] = np.minimum(u[unstable], upper)
    return done, unstable[~finished]


__all__ = ["milp_intermediate", "output_minima", "MARGIN", "MILP_BINARIES"]
