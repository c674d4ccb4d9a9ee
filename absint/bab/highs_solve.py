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


def highs_minimise(c: np.ndarray, matrix: sp.csr_array, row_lo: np.ndarray, row_hi: np.ndarray, col_lo: np.ndarray,
                   col_hi: np.ndarray, integral: np.ndarray, options: dict) -> HighsResult:
    """Minimise c·x with the columns where ``integral`` is non-zero integer; ``options`` are HiGHS's, by name
    (an unknown name raises ValueError)."""
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
    is_mip = bool(np.any(integral))
    if is_mip:
        lp.integrality_ = [highspy.HighsVarType.kInteger if v else highspy.HighsVarType.kContinuous for v in integral]
    h = highspy._Highs()  # the plain binding: no Python callbacks during the solve, no banner
    for name, value in {"output_flag": False, **options}.items():
        if h.setOptionValue(name, value) != highspy.HighsStatus.kOk:
            raise ValueError(f"HiGHS rejects option {name}={value!r}")
    if h.passModel(lp) == highspy.HighsStatus.kError:
        raise ValueError("HiGHS rejects the model")
    h.run()
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


__all__ = ["HighsResult", "highs_minimise"]
