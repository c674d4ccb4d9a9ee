"""L2-regularised logistic regression by Newton's method (IRLS), in numpy.

Minimises sum_i log(1 + exp(-t_i (w^T z_i + b))) + (lam / 2) ||w||^2 with t_i in {-1, +1}
(intercept b not penalised); each step solves (X^T R X + lam I') d = gradient with R = p(1 - p).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LogisticModel", "fit_logistic", "sigmoid"]


def sigmoid(t: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-t)) without overflow."""
    out = np.empty_like(t, dtype=np.float64)
    pos = t >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-t[pos]))
    e = np.exp(t[~pos])
    out[~pos] = e / (1.0 + e)
    return out


@dataclass(frozen=True)
class LogisticModel:
    weights: np.ndarray
    intercept: float
    iterations: int

    def decision(self, z: np.ndarray) -> np.ndarray:
        """The log-odds w^T z + b."""
        return np.asarray(z, np.float64) @ self.weights + self.intercept

    def probability(self, z: np.ndarray) -> np.ndarray:
        return sigmoid(self.decision(z))


def fit_logistic(z: np.ndarray, y: np.ndarray, l2: float = 1.0, max_iter: int = 100, tol: float = 1e-10
                 ) -> LogisticModel:
    """Fit P(y = 1 | z) = sigmoid(w^T z + b) on z (n, m), y (n,) in {0, 1}."""
    z = np.asarray(z, np.float64)
    y = np.asarray(y, np.float64)
    n, m = z.shape
    x = np.hstack([z, np.ones((n, 1))])
    penalty = np.full(m + 1, float(l2))
    penalty[-1] = 0.0
    beta = np.zeros(m + 1)
    it = 0
    for it in range(1, max_iter + 1):
        p = sigmoid(x @ beta)
        grad = x.T @ (p - y) + penalty * beta
        r = p * (1 - p)
        hess = (x * r[:, None]).T @ x + np.diag(penalty) + 1e-12 * np.eye(m + 1)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.max(np.abs(step)) < tol:
            break
    return LogisticModel(beta[:-1].copy(), float(beta[-1]), it)
