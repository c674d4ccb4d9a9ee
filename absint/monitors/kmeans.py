"""k-means clustering in numpy (Lloyd's iterations from a k-means++ start; Arthur & Vassilvitskii 2007).

Minimises sum_i min_j ||x_i - c_j||^2; seeded, deterministic for a given generator.
"""

from __future__ import annotations

import numpy as np

__all__ = ["kmeans"]


def _sq_dist(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.maximum((x * x).sum(axis=1)[:, None] - 2 * x @ c.T + (c * c).sum(axis=1)[None], 0.0)


def kmeans(x: np.ndarray, k: int, rng: np.random.Generator | int | None = 0, max_iter: int = 100
           ) -> tuple[np.ndarray, np.ndarray]:
    """(centres (k', d), assignment (n,)) with k' = min(k, distinct rows of x); empty clusters are dropped."""
    x = np.asarray(x, np.float64)
    rng = np.random.default_rng(rng)
    n = len(x)
    if n == 0:
        return np.zeros((0, x.shape[1])), np.zeros(0, np.int64)
    k = min(int(k), len(np.unique(x, axis=0)))
    centres = [x[rng.integers(n)]]
    d2 = _sq_dist(x, centres[0][None])[:, 0]
    for _ in range(1, k):                      # k-means++: next centre with probability ~ D(x)^2
        total = d2.sum()
        if total <= 0:
            break
        nxt = x[rng.choice(n, p=d2 / total)]
        centres.append(nxt)
        d2 = np.minimum(d2, _sq_dist(x, nxt[None])[:, 0])
    c = np.stack(centres)
    assign = np.full(n, -1)
    for _ in range(max_iter):
        new = _sq_dist(x, c).argmin(axis=1)
        if np.array_equal(new, assign):
            break
        assign = new
        c = np.stack([x[assign == j].mean(axis=0) if np.any(assign == j) else c[j] for j in range(len(c))])
    used = np.unique(assign)
    remap = np.full(len(c), -1)
    remap[used] = np.arange(len(used))
    return c[used], remap[assign]
