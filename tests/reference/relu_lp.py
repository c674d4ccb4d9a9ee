"""Exact minimum of a linear function of a small Affine/ReLU chain's output over a box: enumerate every
ReLU phase pattern, and for each solve the LP min c·y(x) s.t. x in the box and the pattern's sign
constraints (the network is linear on each pattern's polytope) with scipy.optimize.linprog."""

from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import linprog

from absint.network import Affine


def exact_minimum(layers, lower, upper, c, fixed: dict | None = None) -> tuple[float, np.ndarray | None]:
    """min over x in [lower, upper] of c · chain(x), restricted to the phases in ``fixed`` ({(j, i): ±1}
    for the ReLU at chain index j); (inf, None) when that set is empty. ``layers``: Affine/ReLU list."""
    relu_sizes = [(j, layers[j - 1].weight.shape[0]) for j, l in enumerate(layers) if not isinstance(l, Affine)]
    neurons = [(j, i) for j, n in relu_sizes for i in range(n)]
    fixed = fixed or {}
    best, arg = np.inf, None
    for pattern in itertools.product((1, -1), repeat=len(neurons)):
        phase = dict(zip(neurons, pattern))
        if any(phase[k] != v for k, v in fixed.items()):
            continue
        M, m = np.eye(len(lower)), np.zeros(len(lower))  # current layer = M x + m
        A_ub, b_ub = [], []
        for j, layer in enumerate(layers):
            if isinstance(layer, Affine):
                M, m = layer.weight @ M, layer.weight @ m + layer.bias
                continue
            s = np.array([phase[(j, i)] for i in range(M.shape[0])], float)
            A_ub.append(-s[:, None] * M)   # s z >= 0  <=>  -s M x <= s m
            b_ub.append(s * m)
            keep = (s > 0).astype(float)
            M, m = keep[:, None] * M, keep * m
        res = linprog(c @ M, A_ub=np.vstack(A_ub) if A_ub else None, b_ub=np.concatenate(b_ub) if b_ub else None,
                      bounds=list(zip(lower, upper)), method="highs")
        if res.status == 0 and res.fun + c @ m < best:
            best, arg = res.fun + c @ m, res.x
    return best, arg
