"""``analyze``: push an input box through the network in one abstract domain.

The loop is domain-agnostic: for each node, look up the transformer registered for
(element type, layer type) and apply it; every node's concrete bounds are kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from contextlib import nullcontext

import kernels
from kernels._config import single_threaded
from storage import CSRFormat, DenseFormat, HDF5Format, Scratch, StoreFormat

from .box import Box
from .domains import DOMAINS, TRANSFORMERS, Context, Options
from .errors import AnalysisTimeout, ShapeError
from .memory import RssSampler
from .network import NETWORK_INPUT, Network
from .planner import STORAGES, Plan, make_plan
from .tables import parse_bytes



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


#: networks with input size x total neurons above this get a background RSS sampler thread
SAMPLER_THREAD_ABOVE = 1 << 22


def _release(old, new) -> None:
    """Close the noise stores of an element no node needs any more (HDF5 files go at once)."""
    keep = {id(store) for store in getattr(new, "stores", tuple)()}
    for store in getattr(old, "stores", tuple)():
        if id(store) not in keep:
            store.close()


def _formats(scratch: Scratch | None, block_bytes: int | None) -> dict[str, StoreFormat]:
    formats: dict[str, StoreFormat] = {"dense": DenseFormat(), "csr": CSRFormat()}
    if scratch is not None:
        formats["hdf5"] = HDF5Format(scratch, block_bytes) if block_bytes else HDF5Format(scratch)
    return formats


def analyze(net: Network, box, domain: str = "zonotope", storage: str = "dense", memory_budget=None,
            *, sound_fp: bool = True, options: Options | None = None, scratch_dir=None,
            block_bytes: int | None = None, reduce_symbols: int | None = None,
            deadline: float | None = None) -> Analysis:
    """Sound bounds of every node of ``net`` over ``box`` (an ``absint.Box`` or (lower, upper)).

    ``storage`` holds the zonotope's noise symbols: "dense", "csr", "hdf5" (chunked files in
    ``scratch_dir``, default $ABSINT_SCRATCH or the system temp dir) or "auto" (the planner picks
    per layer the fastest that fits ``memory_budget``: bytes or a string such as "512MiB").
    A budget no plan meets raises ``MemoryBudgetError`` before any work starts. Every storage
    gives the same bounds; scratch files are removed on every exit path. ``reduce_symbols=K``
    (opt-in, looser bounds) folds the smallest symbols into the box term whenever more than K
    remain after a layer, reported as ``stats["reduced_symbols"]``. ``deadline`` (a
    ``time.perf_counter()`` value) raises ``AnalysisTimeout`` between layers once passed.
    """
    try:
        element_type = DOMAINS[domain]
    except KeyError:
        raise ValueError(f"unknown domain {domain!r}; choose one of {', '.join(DOMAINS)}") from None
    if storage not in STORAGES:
        raise ValueError(f"unknown storage {storage!r}; choose one of {', '.join(STORAGES)}")
    budget = None if memory_budget is None else parse_bytes(memory_budget)
    options = options or Options(sound_fp=sound_fp)
    if reduce_symbols is not None:
        if int(reduce_symbols) < 0:
            raise ValueError(f"reduce_symbols must be >= 0, got {reduce_symbols}")
        options = replace(options, reduce_symbols=int(reduce_symbols))
    box = _as_box(net, box)
    jit_s = kernels.compile_seconds()
    needs_disk = storage in ("hdf5", "auto") and domain == "zonotope"
    with (Scratch(scratch_dir) if needs_disk else nullcontext()) as scratch:
        storage_plan = make_plan(net, box, domain, storage, budget, options)
        block_bytes = block_bytes or storage_plan.hdf5_block_bytes
        small = net.input_size * sum(node.size for node in net.nodes) <= SAMPLER_THREAD_ABOVE
        with single_threaded() if small else nullcontext():  # thread wake-ups cost more than small kernels
            return _run(net, box, element_type, domain, storage_plan, _formats(scratch, block_bytes), scratch,
                        storage_plan.options, jit_s, deadline)


def _run(net: Network, box: Box, element_type, domain: str, storage_plan: Plan, formats: dict[str, StoreFormat],
         scratch: Scratch | None, options: Options, jit_s: float, deadline: float | None = None) -> Analysis:
    # a sampling thread only where a layer's transients can be large; small nets get per-node samples
    big = net.input_size * sum(node.size for node in net.nodes) > SAMPLER_THREAD_ABOVE
    sampler = RssSampler(thread=big).start()
    t0 = time.perf_counter()
    lo_in, hi_in = box.lower.ravel(), box.upper.ravel()
    start = element_type.from_box(lo_in, hi_in, options, formats[storage_plan.input_storage])
    last_use = net._last_uses()
    input_last_use = max(k for k, n in enumerate(net.nodes) if NETWORK_INPUT in n.inputs)
    elements: list = [None] * len(net.nodes)
    bounds: list[tuple[np.ndarray, np.ndarray]] = []
    n_symbols: list[int] = []
    used: list[str] = []
    shared = {"n_symbols": int(getattr(start, "n_symbols", 0))}
    try:
        for idx, node in enumerate(net.nodes):
            if deadline is not None and time.perf_counter() > deadline:
                raise AnalysisTimeout(f"analysis passed its deadline at node {idx} ({node.name})")
            operands = tuple(start if i == NETWORK_INPUT else elements[i] for i in node.inputs)
            shapes = tuple(net.input_shape if i == NETWORK_INPUT else net.nodes[i].shape for i in node.inputs)
            owns = tuple(i != NETWORK_INPUT and last_use[i] == idx and node.inputs.count(i) == 1
                         for i in node.inputs)
            name = storage_plan.storage_for(idx)
            exclusive = all(e is None for j, e in enumerate(elements[:idx]) if j not in node.inputs) and (
                NETWORK_INPUT in node.inputs or idx > input_last_use)
            ctx = Context(options, node, idx, shapes, operands, bounds, (lo_in, hi_in), owns, shared, net,
                          formats[name], exclusive)
            transformer = TRANSFORMERS.lookup(element_type, type(node.layer))
            element = transformer(operands[0], node.layer, ctx)
            elements[idx] = element
            bounds.append(element.bounds())
            n_symbols.append(int(getattr(element, "n_symbols", 0)))
            used.append(name if hasattr(element, "stores") else "-")
            for i in set(node.inputs):
                if i != NETWORK_INPUT and last_use[i] == idx:
                    _release(elements[i], element)
                    elements[i] = None
            if idx == input_last_use:
                _release(start, element)
            if big:
                sampler.sample()
            storage_plan.observe(idx, n_symbols[-1])
        elapsed = time.perf_counter() - t0
    finally:
        sampler.stop()
        for element in elements + [start]:
            if element is not None:
                _release(element, None)
    lower, upper = bounds[-1]
    stats = {"time_s": elapsed, "jit_s": jit_s, "peak_bytes": sampler.peak_growth, "n_symbols": n_symbols,
             "storage": used, "disk_bytes_written": scratch.bytes_written if scratch is not None else 0,
             "memory_budget": storage_plan.budget,
             "reduced_symbols": shared.get("reduced_symbols", 0)}
    if domain == "deeppoly":
        stats["block_size"] = options.block_size
    return Analysis(domain, lower.copy(), upper.copy(), bounds, stats)
