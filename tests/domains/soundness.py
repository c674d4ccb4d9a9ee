"""Sampling-based soundness harness: concrete points must stay inside every node's bounds.

Import as ``tests.domains.soundness``. For a network and an input box, ``soundness_points``
draws a mix of

* uniform samples of the box,
* box corners (all of them when few, otherwise a random subset of vertices),
* gradient-guided points: projected signed-gradient ascent (PGD) that maximises or minimises
  one neuron of one node, for a random subset of (node, neuron) targets (``absint.gradients``);
  every iterate is kept,

and ``check_sound`` evaluates every point on every node and compares with
``analysis.layer_bounds``, raising an ``AssertionError`` that names the worst violation
(node, neuron, point and how it was generated). With ``sound_fp=True`` no tolerance is needed:
the bounds claim to contain the float64 values ``net.forward`` computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from absint.analysis import Analysis, analyze
from absint.gradients import functional_vjp
from absint.network import NETWORK_INPUT, Network, ReLU, Sigmoid, Tanh

#: elementwise monotone layers: their extremes are those of their input, which has useful gradients
_MONOTONE = (ReLU, Sigmoid, Tanh)


@dataclass(frozen=True)
class Points:
    """Points (n, input_size) in the box and, per point, the index of its origin in ``kinds``."""

    x: np.ndarray
    origin: np.ndarray
    kinds: tuple[str, ...] = ("uniform", "corner", "gradient")

    def __len__(self) -> int:
        return len(self.x)

    def describe(self, i: int) -> str:
        return self.kinds[int(self.origin[i])]


# ------------------------------------------------------------------------- point generators
def _flat_box(lower, upper) -> tuple[np.ndarray, np.ndarray]:
    lo = np.asarray(lower, dtype=np.float64).ravel()
    hi = np.asarray(upper, dtype=np.float64).ravel()
    return lo, hi


def uniform_points(lower, upper, n: int, rng: np.random.Generator) -> np.ndarray:
    lo, hi = _flat_box(lower, upper)
    return np.clip(lo + rng.random((n, lo.size)) * (hi - lo), lo, hi)


def corner_points(lower, upper, n: int, rng: np.random.Generator) -> np.ndarray:
    """All vertices of the box (over its non-degenerate dims) when there are at most n, else n random ones."""
    lo, hi = _flat_box(lower, upper)
    free = np.flatnonzero(hi > lo)
    if free.size <= 20 and 2 ** free.size <= n:
        bits = (np.arange(2 ** free.size)[:, None] >> np.arange(free.size)) & 1
    else:
        bits = rng.integers(0, 2, size=(n, free.size))
    pts = np.repeat(lo[None], len(bits), axis=0)
    pts[:, free] = np.where(bits.astype(bool), hi[free], lo[free])
    return pts


def _targets(net: Network, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n random (node, neuron) pairs; a node is chosen uniformly, then a neuron of it.

    A ReLU/Sigmoid/Tanh node is replaced by its input node (same neuron): same extremes,
    without the zero gradients of dead ReLUs."""
    nodes = rng.integers(0, len(net.nodes), size=n)
    neurons = np.array([rng.integers(0, net.nodes[k].size) for k in nodes], dtype=np.int64)
    for t, k in enumerate(nodes):
        node = net.nodes[k]
        if isinstance(node.layer, _MONOTONE) and node.inputs[0] != NETWORK_INPUT:
            nodes[t] = node.inputs[0]
    return nodes, neurons


def gradient_points(net: Network, lower, upper, n: int, rng: np.random.Generator, steps: int = 6,
                    chunk: int = 512) -> np.ndarray:
    """PGD iterates pushing random neurons of random nodes up and down (n points in total).

    n // (2 steps) targets, each maximised and minimised from its own uniform start; step t moves
    every coordinate by sign(gradient) * width / 4 * 0.7**t, then projects onto the box."""
    lo, hi = _flat_box(lower, upper)
    width = hi - lo
    n_targets = max(1, n // (2 * steps))
    nodes, neurons = _targets(net, n_targets, rng)
    nodes, neurons = np.concatenate([nodes, nodes]), np.concatenate([neurons, neurons])
    signs = np.concatenate([np.ones(n_targets), -np.ones(n_targets)])
    out = []
    for s in range(0, len(nodes), chunk):
        tn, tj, ts = nodes[s:s + chunk], neurons[s:s + chunk], signs[s:s + chunk]
        rows = np.arange(len(tn))
        x = uniform_points(lo, hi, len(tn), rng)
        cotangents = {}
        for k in np.unique(tn):
            c = np.zeros((len(tn), net.nodes[k].size))
            sel = tn == k
            c[rows[sel], tj[sel]] = ts[sel]
            cotangents[int(k)] = c
        for t in range(steps):
            g = functional_vjp(net, x, cotangents)
            x = np.clip(x + np.sign(g) * width * (0.25 * 0.7 ** t), lo, hi)
            out.append(x)
    pts = np.concatenate(out)
    return pts[:n] if len(pts) > n else pts


def soundness_points(net: Network, lower, upper, n: int = 10_000, seed: int = 0,
                     shares: tuple[float, float, float] = (0.4, 0.2, 0.4)) -> Points:
    """About n points: shares of uniform, corner and gradient-guided points."""
    rng = np.random.default_rng(seed)
    n_uni, n_cor = int(n * shares[0]), int(n * shares[1])
    parts = [uniform_points(lower, upper, n_uni, rng), corner_points(lower, upper, n_cor, rng),
             gradient_points(net, lower, upper, n - n_uni - n_cor, rng)]
    x = np.concatenate(parts)
    origin = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
    return Points(x, origin)


# ------------------------------------------------------------------------------- checking
@dataclass(frozen=True)
class Violation:
    """The worst (largest excess) point/neuron outside its node's bounds."""

    node: int
    name: str
    layer: str
    neuron: int
    point: int
    origin: str
    value: float
    lower: float
    upper: float
    excess: float
    count: int
    nodes: tuple[int, ...]

    def message(self, domain: str) -> str:
        return (f"{domain} bounds unsound at node {self.node} {self.name!r} ({self.layer}) neuron {self.neuron}: "
                f"value {self.value!r} outside [{self.lower!r}, {self.upper!r}] by {self.excess:.3g} "
                f"(point {self.point}, {self.origin}); {self.count} violating (point, neuron) pairs "
                f"at nodes {list(self.nodes)}")


def find_violation(net: Network, bounds: list[tuple[np.ndarray, np.ndarray]], points: Points,
                   tol: float = 0.0, rtol: float = 0.0, chunk: int = 2048) -> Violation | None:
    """The worst violation of ``bounds`` (flat (lower, upper) per node) over ``points``, or None.

    A value v of bounds [l, u] violates when v < l - (tol + rtol|l|) or v > u + (tol + rtol|u|), or is NaN."""
    worst, count, bad_nodes = None, 0, set()
    for s in range(0, len(points), chunk):
        acts = net.activations(points.x[s:s + chunk])
        for k, (a, (lo, hi)) in enumerate(zip(acts, bounds)):
            a = a.reshape(a.shape[0], -1)
            excess = np.maximum(lo - tol - rtol * np.abs(lo) - a, a - hi - tol - rtol * np.abs(hi))
            excess = np.where(np.isnan(a), np.inf, excess)
            bad = excess > 0
            if not bad.any():
                continue
            count += int(bad.sum())
            bad_nodes.add(k)
            p, j = np.unravel_index(int(np.argmax(excess)), excess.shape)
            if worst is None or excess[p, j] > worst[0]:
                worst = (float(excess[p, j]), k, int(j), s + int(p), float(a[p, j]))
    if worst is None:
        return None
    excess, k, j, p, value = worst
    node = net.nodes[k]
    return Violation(k, node.name, type(node.layer).__name__, j, p, points.describe(p), value,
                     float(bounds[k][0][j]), float(bounds[k][1][j]), excess, count, tuple(sorted(bad_nodes)))


def check_sound(net: Network, lower, upper, domain: str, points: Points | None = None, n: int = 10_000,
                seed: int = 0, tol: float = 0.0, rtol: float = 0.0, **analyze_kwargs) -> Analysis:
    """Analyse ``net`` over the box and assert every point lies in every node's bounds."""
    lo = np.asarray(lower, dtype=np.float64).reshape(net.input_shape)
    hi = np.asarray(upper, dtype=np.float64).reshape(net.input_shape)
    if points is None:
        points = soundness_points(net, lo, hi, n, seed)
    lo_f, hi_f = lo.ravel(), hi.ravel()
    assert np.all((points.x >= lo_f) & (points.x <= hi_f)), "harness bug: a sample point left the box"
    result = analyze(net, (lo, hi), domain=domain, **analyze_kwargs)
    assert len(result.layer_bounds) == len(net.nodes)
    for k, (l, u) in enumerate(result.layer_bounds):
        assert l.shape == u.shape == (net.nodes[k].size,), f"node {k}: bounds of shapes {l.shape}, {u.shape}"
        crossed = np.flatnonzero(~(l <= u))
        assert crossed.size == 0, (f"{domain} node {k} {net.nodes[k].name!r}: lower > upper (or NaN) at "
                                   f"{crossed.size} neurons, e.g. {crossed[0]}: [{l[crossed[0]]!r}, {u[crossed[0]]!r}]")
    violation = find_violation(net, result.layer_bounds, points, tol, rtol)
    assert violation is None, violation.message(domain) + f" [{net!r}]"
    return result


def assert_contains(outer: list[tuple[np.ndarray, np.ndarray]], inner: list[tuple[np.ndarray, np.ndarray]],
                    rtol: float, what: str, atol: float = 0.0) -> None:
    """Every node's [inner] ⊆ [outer], up to rtol relative (to the larger magnitude) + atol."""
    for k, ((ol, ou), (il, iu)) in enumerate(zip(outer, inner)):
        scale = rtol * np.maximum(np.maximum(np.abs(ol), np.abs(il)), np.maximum(np.abs(ou), np.abs(iu))) + atol
        bad_lo, bad_hi = ol - il - scale, iu - ou - scale
        worst = np.maximum(bad_lo, bad_hi)
        if np.any(worst > 0) or np.isnan(worst).any():
            j = int(np.nanargmax(worst))
            raise AssertionError(f"{what}: node {k} neuron {j}: [{il[j]!r}, {iu[j]!r}] not inside "
                                 f"[{ol[j]!r}, {ou[j]!r}] ({int((worst > 0).sum())} neurons)")
