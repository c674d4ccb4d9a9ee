"""Best-first branch and bound over the binaries of a (partial) MILP encoding, each node one LP of a single
persistent HiGHS model (the binaries' bounds changed, dual simplex from the last basis; no cuts).

A node fixes some binaries to 0 or 1; its LP optimum bounds every point of its sub-tree from below, so the
least bound over the open nodes and the integral leaves is a lower bound of the MILP's minimum at any time
(Land and Doig 1960). HiGHS's MILP solver spends 0.3-0.4 s of root work (cut separation over the input
columns, rounding heuristics) on every solve of the second hidden layer's neurons of mnistfc 256x6
prop_0_0.03, most of a tree of 11-100 nodes; this search reached the same 16 bounds in 8.2 s where HiGHS
took 14.5 s (33-799 nodes of about 2.5 ms). On the third layer, whose trees are larger, HiGHS's cuts
and strong branching win (41.9 s against 126.5 s, perf/README.md, session 23), so the caller gives this
search a node budget and the MILP solver what it leaves open.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp

from .highs_solve import _finite


@dataclass(frozen=True)
class BranchResult:
    """A lower bound of the minimum (+inf: no point meets the constraints, or with a target none goes below
    it; the target itself when every node left reaches it), whether the search closed its tree (then
    ``lower`` is the minimum, or the target), and the LPs it solved."""

    lower: float
    closed: bool
    nodes: int


class PersistentLp:
    """One HiGHS LP over fixed constraints whose costs and column bounds change between solves; each solve
    starts from the last basis. Not thread-safe: one per thread."""

    def __init__(self, matrix: sp.csr_array, row_lo: np.ndarray, row_hi: np.ndarray, col_lo: np.ndarray,
                 col_hi: np.ndarray):
        matrix = sp.csr_array(matrix)
        self.col_lo, self.col_hi = np.asarray(col_lo, np.float64), np.asarray(col_hi, np.float64)
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = matrix.shape[1], matrix.shape[0]
        lp.col_cost_ = np.zeros(matrix.shape[1])
        lp.col_lower_, lp.col_upper_ = _finite(self.col_lo), _finite(self.col_hi)
        lp.row_lower_, lp.row_upper_ = _finite(row_lo), _finite(row_hi)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = matrix.shape[1], matrix.shape[0]
        lp.a_matrix_.start_ = matrix.indptr.astype(np.int32)
        lp.a_matrix_.index_ = matrix.indices.astype(np.int32)
        lp.a_matrix_.value_ = matrix.data.astype(np.float64)
        self._h = highspy._Highs()
        for name, value in {"output_flag": False, "presolve": "off"}.items():
            self._h.setOptionValue(name, value)
        if self._h.passModel(lp) == highspy.HighsStatus.kError:
            raise ValueError("HiGHS rejects the model")
        self._columns = np.arange(matrix.shape[1], dtype=np.int32)

    def set_cost(self, c: np.ndarray) -> None:
        self._h.changeColsCost(self._columns.size, self._columns, np.asarray(c, np.float64))

    def solve(self, columns: np.ndarray, lo: np.ndarray, hi: np.ndarray, seconds: float) -> tuple[float, np.ndarray | None]:
        """The LP's minimum with ``columns`` bounded to [lo, hi] (+inf when infeasible, -inf when HiGHS
        ends without an optimum) and its optimal point."""
        self._h.changeColsBounds(columns.size, columns.astype(np.int32), np.asarray(lo, np.float64),
                                 np.asarray(hi, np.float64))
        self._h.setOptionValue("time_limit", max(float(seconds), 1e-3))
        self._h.run()
        status = self._h.getModelStatus()
        if status == highspy.HighsModelStatus.kInfeasible:
            return np.inf, None
        if status != highspy.HighsModelStatus.kOptimal:
            return -np.inf, None
        return float(self._h.getInfo().objective_function_value), np.asarray(self._h.getSolution().col_value)


def lp_branch_minimise(lp: PersistentLp, c: np.ndarray, binaries: np.ndarray, all_binaries: np.ndarray,
                       stop: float, max_nodes: int, target: float | None = None) -> BranchResult:
    """min c·x over ``lp``'s constraints with the columns ``binaries`` in {0, 1} (the other columns of
    ``all_binaries`` relaxed to their bounds), by best-first branch and bound on the most fractional binary,
    until the tree is closed, ``max_nodes`` LPs, or ``stop`` (``time.perf_counter()``). With ``target``,
    nodes whose bound reaches it are dropped, and the result is at most ``target``."""
    binaries = np.asarray(binaries, np.int64)
    lp.set_cost(c)
    every = np.asarray(all_binaries, np.int32)
    base_lo, base_hi = lp.col_lo[every], lp.col_hi[every]
    where = {int(j): k for k, j in enumerate(every)}
    cut = np.inf if target is None else float(target)

    def bound(fixed: dict) -> tuple[float, np.ndarray | None]:
        lo, hi = base_lo.copy(), base_hi.copy()
        for j, v in fixed.items():
            lo[where[j]] = hi[where[j]] = v
        return lp.solve(every, lo, hi, stop - time.perf_counter())

    value, x = bound({})
    nodes, count, best_leaf = 1, 0, np.inf
    heap = [(value, count, {}, x)] if value < cut else []
    while heap and nodes < max_nodes and time.perf_counter() < stop:
        value, _, fixed, x = heap[0]
        if value >= best_leaf or x is None:  # no open node below the best leaf, or an LP without an optimum
            break
        heapq.heappop(heap)
        frac = np.minimum(x[binaries], 1.0 - x[binaries])
        k = int(np.argmax(frac))
        if frac[k] <= 1e-9:  # integral: a point of the encoding, and the least of its sub-tree
            best_leaf = min(best_leaf, value)
            continue
        for v in (0.0, 1.0):
            child = {**fixed, int(binaries[k]): v}
            child_value, child_x = bound(child)
            nodes += 1
            count += 1
            if child_value < min(cut, best_leaf):
                heapq.heappush(heap, (child_value, count, child, child_x))
    open_low = heap[0][0] if heap else np.inf
    lower = min(open_low, best_leaf, cut)
    closed = not heap or open_low >= best_leaf
    return BranchResult(lower, closed, nodes)


__all__ = ["BranchResult", "PersistentLp", "lp_branch_minimise"]
