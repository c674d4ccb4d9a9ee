"""The LP of one ReLU sub-problem, solved by HiGHS, as slopes and multipliers for ``slopes.pair_bounds``.

Variables: the input x in its box, per hidden layer the pre-activations z = W y_prev + b and the outputs y.
A neuron fixed active (split +1, or l >= 0) has y = z, one fixed inactive (split -1, or u <= 0) y = 0; a
split adds s z >= m. A free unstable neuron has the triangle relaxation y >= 0, y >= z,
y <= u (z - l) / (u - l) (Ehlers ATVA 2017). ``m`` is 0 for a row's minimum; the emptiness LP maximises m.

By LP duality the optimum is beta-CROWN's bound at its best (α, β) (Wang et al. NeurIPS 2021, Thm. 3.1):
β_i is the dual of neuron i's split row and α_i = μ_z / (μ_0 + μ_z) from the duals of y >= z and y >= 0.
The solver's numbers are never trusted as bounds: ``pair_bounds`` evaluates these parameters soundly.
First-order ascent reaches the LP optimum at the root, but deep in a search a child's 20 Adam steps can
stop far below it (mnistfc 256x4 prop_8_0.05, depth 40: -0.40 against an LP optimum of -0.22), and a
child whose splits no input meets can need thousands of steps to show it (margins of -0.001).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from ..domains.deeppoly_batch import AffineReluChain


@dataclass
class LpParameters:
    """The LP's optimum (+inf when infeasible; for the emptiness LP, ``row`` None, -max m) and the slopes
    and multipliers per ReLU (n,) it implies (α NaN where the LP leaves it free: no dual on either lower
    plane; both None when the LP has no optimum)."""

    value: float
    alpha: dict | None
    beta: dict | None
    row: int | None


def _dense(w) -> np.ndarray:
    return w.toarray() if sp.issparse(w) else np.asarray(w, np.float64)


def _tail(chain: AffineReluChain, first: int) -> tuple[np.ndarray, np.ndarray]:
    """The composition W, b of the Affine layers from chain index ``first`` to the end."""
    W, b = None, None
    for layer in chain.layers[first:]:
        w, c = _dense(layer.weight), np.asarray(layer.bias, np.float64)
        W, b = (w, c) if W is None else (w @ W, w @ b + c)
    return W, b


def sub_problem_lp(chain: AffineReluChain, layers: list, phases: dict, lower: np.ndarray, upper: np.ndarray,
                   row: int | None, time_limit: float = 5.0) -> LpParameters:
    """One sub-problem's LP: min of output ``row`` (an output of the Affine layers after the last ReLU), or
    with ``row=None`` max m s.t. s_i z_i >= m on every split (the sub-problem is empty when m < 0).
    ``layers``: per chain layer (n,) lower and upper bounds; ``phases``: per ReLU index (n,) in {-1, 0, 1};
    ``lower``/``upper``: the input box."""
    relus = sorted(phases)
    n0 = lower.size
    offsets, n_var = [], n0
    for j in relus:
        n = phases[j].size
        offsets.append((n_var, n_var + n, n))  # z, y
        n_var += 2 * n
    m_var = n_var
    n_var += 1
    lb, ub = np.full(n_var, -np.inf), np.full(n_var, np.inf)
    lb[:n0], ub[:n0] = lower, upper
    lb[m_var], ub[m_var] = (0.0, 0.0) if row is not None else (-np.inf, 1.0)
    eq, ineq, b_eq, b_ub = [], [], [], []  # (rows, cols, vals) triples; right-hand sides
    n_eq = n_ub = 0
    prev = np.arange(n0)
    split_at, lower_at = {}, {}
    for (z0, y0, n), j in zip(offsets, relus):
        W = sp.coo_array(chain.layers[j - 1].weight)  # dense or sparse alike
        bias = np.asarray(chain.layers[j - 1].bias, np.float64)
        eq.append((n_eq + W.row, prev[W.col], -W.data))
        eq.append((n_eq + np.arange(n), z0 + np.arange(n), np.ones(n)))
        b_eq.append(bias)
        n_eq += n
        l, u = np.asarray(layers[j - 1][0], np.float64), np.asarray(layers[j - 1][1], np.float64)
        s = np.asarray(phases[j])
        active = (s > 0) | ((s == 0) & (l >= 0))
        dead = ~active & ((s < 0) | (u <= 0))
        free = ~active & ~dead
        ia = np.flatnonzero(active)
        k = np.arange(ia.size)
        eq.append((n_eq + np.concatenate([k, k]), np.concatenate([z0 + ia, y0 + ia]),
                   np.concatenate([np.ones(ia.size), -np.ones(ia.size)])))
        b_eq.append(np.zeros(ia.size))
        n_eq += ia.size
        lb[y0 + np.flatnonzero(dead)] = ub[y0 + np.flatnonzero(dead)] = 0.0
        iu = np.flatnonzero(free)
        lb[y0 + iu] = 0.0
        k = np.arange(iu.size)
        ineq.append((n_ub + np.concatenate([k, k]), np.concatenate([z0 + iu, y0 + iu]),
                     np.concatenate([np.ones(iu.size), -np.ones(iu.size)])))  # z - y <= 0
        b_ub.append(np.zeros(iu.size))
        lower_at[j] = (n_ub, iu)
        n_ub += iu.size
        slope = u[iu] / (u[iu] - l[iu])
        ineq.append((n_ub + np.concatenate([k, k]), np.concatenate([y0 + iu, z0 + iu]),
                     np.concatenate([np.ones(iu.size), -slope])))  # y - slope z <= -slope l
        b_ub.append(-slope * l[iu])
        n_ub += iu.size
        isp = np.flatnonzero(s != 0)
        k = np.arange(isp.size)
        ineq.append((n_ub + np.concatenate([k, k]), np.concatenate([z0 + isp, np.full(isp.size, m_var)]),
                     np.concatenate([-s[isp].astype(np.float64), np.ones(isp.size)])))  # m - s z <= 0
        b_ub.append(np.zeros(isp.size))
        split_at[j] = (n_ub, isp)
        n_ub += isp.size
        prev = y0 + np.arange(n)
    c = np.zeros(n_var)
    const = 0.0
    if row is None:
        c[m_var] = -1.0
    else:
        W, b = _tail(chain, relus[-1] + 1)
        c[prev] = W[row]
        const = float(b[row])

    def stack(parts, n_rows):
        r, k, v = (np.concatenate(x) for x in zip(*parts))
        return sp.csr_array((v, (r, k)), shape=(n_rows, n_var))

    res = linprog(c, A_ub=stack(ineq, n_ub), b_ub=np.concatenate(b_ub), A_eq=stack(eq, n_eq),
                  b_eq=np.concatenate(b_eq), bounds=np.stack([lb, ub], axis=1), method="highs-ds",
                  options={"time_limit": time_limit})
    if res.status == 2:
        return LpParameters(np.inf, None, None, row)
    if res.status != 0:
        return LpParameters(np.nan, None, None, row)
    dual = -np.asarray(res.ineqlin.marginals)  # >= 0 for <= rows of a minimisation
    reduced = np.asarray(res.lower.marginals)  # >= 0 where a variable sits at its lower bound
    alpha, beta = {}, {}
    for (z0, y0, n), j in zip(offsets, relus):
        r0, isp = split_at[j]
        beta[j] = np.zeros(n)
        beta[j][isp] = np.maximum(dual[r0:r0 + isp.size], 0.0)
        r0, iu = lower_at[j]
        mu_z, mu_0 = np.maximum(dual[r0:r0 + iu.size], 0.0), np.maximum(reduced[y0 + iu], 0.0)
        total = mu_z + mu_0
        alpha[j] = np.full(n, np.nan)
        alpha[j][iu] = np.where(total > 0, mu_z / np.where(total > 0, total, 1.0), np.nan)
    return LpParameters(float(res.fun) + const, alpha, beta, row)


__all__ = ["LpParameters", "sub_problem_lp"]
