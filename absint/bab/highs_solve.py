"""One (mixed-integer) linear program, min c·x over row_lo <= A x <= row_hi, col_lo <= x <= col_hi, solved by
HiGHS through its own Python binding (``highspy``).

``scipy.optimize.milp`` runs the same solver but returns no dual bound when a time limit stops a MILP before
it found a feasible point, and with the primal heuristics off that is most stopped solves: on mnistfc 256x6
prop_2_0.05 (layers 2-5 refined) the exact MILP of one output row over the whole box stopped after 15 s
with HiGHS's dual bound at +0.057, which proves the row, and scipy reported none (perf/README.md,
session 22). The binding's plain class runs without Python callbacks, so solves on several threads do
not contend for the interpreter (two 8 s solves on two threads: 8.05 s).
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class HighsResult:
    """What a solve found: ``infeasible`` (no point meets the constraints, or with ``objective_bound`` none
    goes below it), a valid lower bound of the minimum (-inf if none; the optimum when ``optimal``), and
    the best feasible point (None if none)."""

    infeasible: bool
    optimal: bool
    dual_bound: float
    x: np.ndarray | None


def _finite(v: np.ndarray) -> np.ndarray:
    out = np.asarray(v, np.float64).copy()
    out[np.isposinf(out)] = highspy.kHighsInf
    out[np.isneginf(out)] = -highspy.kHighsInf
    return out


def _model(c: np.ndarray, matrix: sp.csr_array, row_lo: np.ndarray, row_hi: np.ndarray, col_lo: np.ndarray,
           col_hi: np.ndarray) -> highspy.HighsLp:
    matrix = sp.csr_array(matrix)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = matrix.shape[1], matrix.shape[0]
    lp.col_cost_ = np.asarray(c, np.float64)
    lp.col_lower_, lp.col_upper_ = _finite(col_lo), _finite(col_hi)
    lp.row_lower_, lp.row_upper_ = _finite(row_lo), _finite(row_hi)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = matrix.shape[1], matrix.shape[0]
    lp.a_matrix_.start_ = matrix.indptr.astype(np.int32)
    lp.a_matrix_.index_ = matrix.indices.astype(np.int32)
    lp.a_matrix_.value_ = matrix.data.astype(np.float64)
    return lp


def _solver(lp: highspy.HighsLp, options: dict) -> highspy._Highs:
    h = highspy._Highs()  # the plain binding: no Python callbacks during the solve, no banner
    for name, value in {"output_flag": False, **options}.items():
        if h.setOptionValue(name, value) != highspy.HighsStatus.kOk:
            raise ValueError(f"HiGHS rejects option {name}={value!r}")
    if h.passModel(lp) == highspy.HighsStatus.kError:
        raise ValueError("HiGHS rejects the model")
    return h


def _result(h: highspy._Highs, is_mip: bool) -> HighsResult:
    status = h.getModelStatus()
    info = h.getInfo()
    if status == highspy.HighsModelStatus.kInfeasible:
        return HighsResult(True, False, np.inf, None)
    optimal = status == highspy.HighsModelStatus.kOptimal
    bound = info.mip_dual_bound if is_mip else (info.objective_function_value if optimal else -np.inf)
    if optimal and not np.isfinite(bound):
        bound = info.objective_function_value
    bound = float(bound) if np.isfinite(bound) and abs(bound) < highspy.kHighsInf else -np.inf
    x = None
    if info.primal_solution_status == highspy.kSolutionStatusFeasible:
        x = np.asarray(h.getSolution().col_value, np.float64)
    return HighsResult(False, optimal, bound, x)


def highs_minimise(c: np.ndarray, matrix: sp.csr_array, row_lo: np.ndarray, row_hi: np.ndarray, col_lo: np.ndarray,
                   col_hi: np.ndarray, integral: np.ndarray, options: dict) -> HighsResult:
    """Minimise c·x with the columns where ``integral`` is non-zero integer; ``options`` are HiGHS's, by name
    (an unknown name raises ValueError)."""
    lp = _model(c, matrix, row_lo, row_hi, col_lo, col_hi)
    is_mip = bool(np.any(integral))
    if is_mip:
        lp.integrality_ = [highspy.HighsVarType.kInteger if v else highspy.HighsVarType.kContinuous for v in integral]
    h = _solver(lp, options)
    h.run()
    return _result(h, is_mip)


class PersistentLp:
    """One LP, min c·x over fixed constraints, whose objective c changes between solves; HiGHS starts each
    solve from the last one's basis. On the LP bounds of mnistfc 256x6 prop_0_0.03's fourth and fifth
    hidden layers (120 solves each) this took 3.6 s and 11.9 s where a fresh model per solve took 10.0 s
    and 23.1 s, with the same optima. Not thread-safe: one per thread."""

    def __init__(self, matrix: sp.csr_array, row_lo: np.ndarray, row_hi: np.ndarray, col_lo: np.ndarray,
                 col_hi: np.ndarray, options: dict):
        self._h = _solver(_model(np.zeros(matrix.shape[1]), matrix, row_lo, row_hi, col_lo, col_hi), options)
        self._columns = np.arange(matrix.shape[1], dtype=np.int32)

    def minimise(self, c: np.ndarray, seconds: float) -> HighsResult:
        """min c·x, within ``seconds``."""
        self._h.changeColsCost(self._columns.size, self._columns, np.asarray(c, np.float64))
        self._h.setOptionValue("time_limit", max(float(seconds), 1e-3))
        self._h.run()
        return _result(self._h, False)


__all__ = ["HighsResult", "PersistentLp", "highs_minimise"]
