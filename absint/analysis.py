"""``analyze``: push an input box through the network in one abstract domain.

The loop is domain-agnostic: for each node, look up the transformer registered for
(element type, layer type) and apply it; every node's concrete bounds are kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import psutil

from .box import Box
from .domains import DOMAINS, TRANSFORMERS, Context, Options
from .errors import ShapeError
from .network import NETWORK_INPUT, Network


@dataclass
class Analysis:
    """Output bounds, per-node bounds (flat arrays) and run statistics of one analysis."""

    domain: str
    lower: np.ndarray
    upper: np.ndarray
    layer_bounds: list[tuple[np.ndarray, np.ndarray]]
    stats: dict = field(default_factory=dict)

    @property
    def width(self) -> np.ndarray:
        return self.upper - self.lower


def _as_box(net: Network, box) -> Box:
    if not isinstance(box, Box):
        box = Box(*box)
    if box.size != net.input_size:
        raise ShapeError(f"input box has {box.size} values, the network takes {net.input_size} "
                         f"(shape {net.input_shape})")
    return box


def analyze(net: Network, box, domain: str = "zonotope", storage: str = "dense", memory_budget=None,
            *, sound_fp: bool = True, options: Options | None = None) -> Analysis:
    """Sound bounds of every node of ``net`` over ``box`` (an ``absint.Box`` or (lower, upper))."""
    try:
        element_type = DOMAINS[domain]
    except KeyError:
        raise ValueError(f"unknown domain {domain!r}; choose one of {', '.join(DOMAINS)}") from None
    if storage != "dense":
        raise ValueError(f"storage {storage!r} is not available yet: only 'dense' is implemented")
    if memory_budget is not None:
        raise ValueError("memory budgets need the planner, which is not implemented yet; pass memory_budget=None")
    options = options or Options(sound_fp=sound_fp)
    box = _as_box(net, box)
    rss0 = psutil.Process().memory_info().rss
    peak_rss = rss0
    t0 = time.perf_counter()
    lo_in, hi_in = box.lower.ravel(), box.upper.ravel()
    start = element_type.from_box(lo_in, hi_in, options)
    last_use = net._last_uses()
    elements: list = [None] * len(net.nodes)
    bounds: list[tuple[np.ndarray, np.ndarray]] = []
    n_symbols: list[int] = []
    shared = {"n_symbols": int(getattr(start, "n_symbols", 0))}
    for idx, node in enumerate(net.nodes):
        operands = tuple(start if i == NETWORK_INPUT else elements[i] for i in node.inputs)
        shapes = tuple(net.input_shape if i == NETWORK_INPUT else net.nodes[i].shape for i in node.inputs)
        owns = tuple(i != NETWORK_INPUT and last_use[i] == idx and node.inputs.count(i) == 1 for i in node.inputs)
        ctx = Context(options, node, idx, shapes, operands, bounds, (lo_in, hi_in), owns, shared, net)
        transformer = TRANSFORMERS.lookup(element_type, type(node.layer))
        element = transformer(operands[0], node.layer, ctx)
        elements[idx] = element
        bounds.append(element.bounds())
        n_symbols.append(int(getattr(element, "n_symbols", 0)))
        for i in node.inputs:
            if i != NETWORK_INPUT and last_use[i] == idx:
                elements[i] = None
        peak_rss = max(peak_rss, psutil.Process().memory_info().rss)
    elapsed = time.perf_counter() - t0
    lower, upper = bounds[-1]
    stats = {"time_s": elapsed, "peak_bytes": int(peak_rss - rss0), "n_symbols": n_symbols,
             "storage": [storage] * len(net.nodes)}
    return Analysis(domain, lower.copy(), upper.copy(), bounds, stats)
