"""The storage planner: per layer, the fastest noise-symbol storage whose memory fits a RAM budget.

Before any work, an interval pass bounds the number of symbols every layer can create (a
zonotope's bounds lie inside the interval bounds, so a neuron that creates a symbol in the
zonotope is unstable for the interval domain too); ``absint.sparsity`` predicts the CSR
non-zeros from receptive fields. For each node and storage the planner estimates the peak bytes
(every live store in its chosen format, the operands, the output and the pass's temporaries) and
a relative cost, and picks the cheapest storage that fits, node by node. After each layer that
creates symbols it re-plans the rest with the real count. DeepPoly obeys the budget through its
back-substitution block size.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .box import Box
from .domains import Options
from .errors import MemoryBudgetError
from .im2col import IM2COL_CHUNK_BYTES, conv2d_work_bytes
from .linear import CACHED_ABS_BYTES, ConvOp, DenseOp, is_linear, linear_op
from .network import NETWORK_INPUT, Add, Affine, Conv2d, Layer, MaxPool2d, Network, ReLU, Sigmoid, Tanh
from .relaxations import maxpool_windows
from .sparsity import Support, input_support, new_symbols, propagate, union
from .tables import format_bytes, format_table

#: storage names users pass: a fixed backend for every layer, or "auto" (this planner decides)
STORAGES = ("dense", "csr", "hdf5", "auto")
BACKENDS = ("dense", "csr", "hdf5")

#: bytes of a CSR non-zero (float64 value + int64 column) and per row (int64 row pointer)
CSR_NNZ_BYTES, CSR_ROW_BYTES = 16, 8
#: the HDF5 store's default block (storage.HDF5Format.block_bytes) and its chunk cache
HDF5_BLOCK_BYTES, HDF5_CACHE_BYTES = 32 << 20, 4 << 20
#: the HDF5 library's own RSS once files are open (metadata caches, free lists), measured ~20-30 MiB
HDF5_LIBRARY_BYTES = 24 << 20
#: a dense layer applied to a CSR block produces a dense block of at most this size
CSR_DENSE_BLOCK_BYTES = 1 << 26
#: RAM the analysis needs besides the stores, per neuron of each node (bounds, centre, box term, ...)
PER_NEURON_BYTES = 8 * 8
#: a budget no analysis reaches (estimates without a limit)
UNBOUNDED = 1 << 62
#: margin on every estimate: numpy/scipy temporaries the model does not count, allocator slack
SAFETY, SAFETY_BYTES = 1.15, 8 << 20
#: relative speeds of the cost model: dense flops/s, CSR scattered multiply-adds/s, disk bytes/s
DENSE_FLOPS, SPARSE_FLOPS, DISK_BYTES_PER_S = 4e9, 3e8, 4e8


@dataclass
class LayerPlan:
    """One node's estimates: symbols (upper bound), density, peak bytes and cost per storage, choice."""

    index: int
    name: str
    layer: str
    n_neurons: int
    n_symbols: int
    nnz: int
    peak: dict[str, int] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)
    disk: int = 0
    choice: str = "dense"

    @property
    def density(self) -> float:
        return self.nnz / max(1, self.n_symbols * self.n_neurons)


@dataclass
class Plan:
    """Storage per node (zonotope), block size (DeepPoly), and the estimates behind them."""

    domain: str
    budget: int | None
    storage: str
    layers: list[LayerPlan]
    input_storage: str = "dense"
    options: Options = field(default_factory=Options)
    #: bytes an HDF5 pass moves per block (smaller under tight budgets)
    hdf5_block_bytes: int = HDF5_BLOCK_BYTES
    #: inputs to re-planning (zonotope with a budget): the network, estimates and live sets
    _model: "_ZonotopeModel | None" = field(default=None, repr=False)

    def _unbounded(self) -> "Plan":
        self.budget = None
        return self

    def storage_for(self, index: int) -> str:
        return self.layers[index].choice if self.layers else self.input_storage  # DeepPoly: no stores

    @property
    def peak_bytes(self) -> int:
        """The largest estimated peak of the chosen storages."""
        return max((lp.peak.get(lp.choice, 0) for lp in self.layers), default=0)

    def observe(self, index: int, n_symbols: int) -> None:
        """After node ``index`` ran with ``n_symbols`` symbols: re-plan the rest when it created fewer."""
        if self._model is None or index + 1 >= len(self.layers):
            return
        est = self.layers[index].n_symbols
        if n_symbols < est:
            self._model.lower_symbols(index, est - n_symbols)
            self._model.choose(self, start=index + 1)

    def table(self) -> str:
        """The per-layer table ``absint plan`` prints."""
        head = ["#", "node", "layer", "symbols", "neurons", "density", "dense", "csr", "hdf5 RAM", "hdf5 disk",
                "choice"]
        rows = [[lp.index, lp.name, lp.layer, lp.n_symbols, lp.n_neurons, f"{lp.density:.3g}",
                 *(format_bytes(lp.peak[s]) if s in lp.peak else "-" for s in BACKENDS),
                 format_bytes(lp.disk) if lp.disk else "-", lp.choice] for lp in self.layers]
        budget = "unbounded" if self.budget is None else format_bytes(self.budget)
        lines = [f"domain {self.domain}, storage {self.storage}, memory budget {budget}"]
        if self.domain == "deeppoly":
            lines.append(f"DeepPoly back-substitution block size: {self.options.block_size} rows")
        if self.layers:
            lines.append(format_table(head, rows))
        return "\n".join(lines)


def _symbol_neurons(layer: Layer, lo: np.ndarray, hi: np.ndarray, in_shape, intersect: bool) -> np.ndarray:
    """Neurons that may create a symbol at this layer (from interval bounds of its input)."""
    if isinstance(layer, ReLU):
        return np.flatnonzero((lo < 0) & (hi > 0)) if intersect else np.arange(lo.size)
    if isinstance(layer, (Sigmoid, Tanh)):
        return np.flatnonzero(lo < hi)
    if isinstance(layer, MaxPool2d):
        olo, ohi, dominated, _ = maxpool_windows(lo, hi, layer, in_shape)
        return np.flatnonzero(~dominated & (olo < ohi)) if intersect else np.arange(olo.size)
    return np.zeros(0, np.int64)


class _ZonotopeModel:
    """Per-node symbol counts, supports and pass sizes of a zonotope analysis, for the cost model."""

    def __init__(self, net: Network, box: Box, options: Options, block_bytes: int = HDF5_BLOCK_BYTES):
        from .analysis import analyze  # the interval pre-pass; analysis imports this module

        self.net = net
        self.block_bytes = block_bytes
        interval = analyze(net, box, domain="interval", storage="dense", sound_fp=options.sound_fp)
        lo_in, hi_in = box.lower.ravel(), box.upper.ravel()
        symbols_in = np.flatnonzero(hi_in > lo_in)
        self.m0 = len(symbols_in)
        support_in = input_support(tuple(net.input_shape), symbols_in)
        self.input_nnz = support_in.nnz()
        supports: list[Support] = []
        self.m: list[int] = []
        self.nnz: list[int] = []
        total = self.m0
        # on a chain every symbol-creating node is exclusive, so order reduction always applies there
        chain = all(node.inputs == (idx - 1 if idx else NETWORK_INPUT,) for idx, node in enumerate(net.nodes))
        for idx, node in enumerate(net.nodes):
            ins = [support_in if i == NETWORK_INPUT else supports[i] for i in node.inputs]
            if isinstance(node.layer, Add):
                s = union(ins[0], ins[1], node.shape)
            else:
                s = propagate(ins[0], node.layer, node.shape)
            i0 = node.inputs[0]
            lo, hi = (lo_in, hi_in) if i0 == NETWORK_INPUT else interval.layer_bounds[i0]
            in_shape = net.input_shape if i0 == NETWORK_INPUT else net.nodes[i0].shape
            fresh = _symbol_neurons(node.layer, lo, hi, in_shape, options.intersect_interval)
            if len(fresh):
                s = new_symbols(s, node.shape, fresh)
                total += len(fresh)
                if options.reduce_symbols is not None and chain:  # order reduction caps the count
                    total = min(total, options.reduce_symbols)
            supports.append(s)
            self.m.append(total)
            self.nnz.append(min(s.nnz(), total * node.size))
        self.last_use = net._last_uses()
        self.input_last_use = max(k for k, n in enumerate(net.nodes) if NETWORK_INPUT in n.inputs)
        # bounds and centres per neuron, plus what the linear operators derive from their weights and
        # keep for the network's lifetime (|W| for the rounding terms): at most one weight-sized array each
        derived = sum(min(node.layer.weight.nbytes, CACHED_ABS_BYTES) for node in net.nodes
                      if isinstance(node.layer, (Affine, Conv2d)))
        self.base = PER_NEURON_BYTES * (net.input_size + sum(node.size for node in net.nodes)) + derived

    def lower_symbols(self, index: int, delta: int) -> None:
        for k in range(index, len(self.m)):
            self.m[k] = max(0, self.m[k] - delta)
            self.nnz[k] = min(self.nnz[k], self.m[k] * self.net.nodes[k].size)

    # ------------------------------------------------------------------ per-node estimates
    def _in_stats(self, idx: int) -> list[tuple[int, int, int]]:
        """(index, rows, nnz) of each operand (index NETWORK_INPUT for the input box)."""
        out = []
        for i in self.net.nodes[idx].inputs:
            if i == NETWORK_INPUT:
                out.append((i, self.m0, self.input_nnz))
            else:
                out.append((i, self.m[i], self.nnz[i]))
        return out

    def store_bytes(self, storage: str, rows: int, cols: int, nnz: int) -> int:
        if storage == "dense":
            return 8 * rows * cols
        if storage == "csr":
            return CSR_NNZ_BYTES * nnz + CSR_ROW_BYTES * (rows + 1)
        return 8 * cols  # hdf5: the abs-row-sum vector; rows live on disk

    def pass_bytes(self, idx: int, storage: str, in_storage: str) -> int:
        """Temporaries of node idx's pass beyond its operands and output."""
        node = self.net.nodes[idx]
        layer, n_out, m = node.layer, node.size, self.m[idx]

        def conv_work(rows: int) -> int:
            if not isinstance(layer, Conv2d):
                return 0
            return conv2d_work_bytes(rows, node_in_shape(self.net, idx)[0], layer.weight.shape, node.shape[1:],
                                     layer.groups)

        if "hdf5" in (storage, in_storage):  # a block in, a block out, the layer's work: block_bytes in all
            return 2 * self.block_bytes + 2 * HDF5_CACHE_BYTES + HDF5_LIBRARY_BYTES
        if in_storage == "csr":
            if isinstance(layer, Conv2d):
                return 2 * CSR_NNZ_BYTES * self.nnz[idx] + 16 * (m + 1)  # kernel output before scipy wraps it
            if is_linear(layer) or isinstance(layer, MaxPool2d):
                return min(CSR_DENSE_BLOCK_BYTES, 8 * m * n_out) + CSR_NNZ_BYTES * self.nnz[idx]
            return CSR_NNZ_BYTES * self.nnz[idx]
        return conv_work(m) + (8 * m * n_out if storage == "csr" else 0)

    def cost(self, idx: int, storage: str, in_storage: str) -> float:
        node = self.net.nodes[idx]
        layer = node.layer
        m, n_out = self.m[idx], node.size
        in_stats = self._in_stats(idx)
        n_in = self.net.nodes[in_stats[0][0]].size if in_stats[0][0] != NETWORK_INPUT else self.net.input_size
        nnz_in = sum(s[2] for s in in_stats)
        if is_linear(layer):
            op = linear_op(layer, node_in_shape(self.net, idx))
            per_row = op.fan_in * n_out
            if isinstance(op, DenseOp):
                per_row = n_in * n_out
        else:
            per_row = 2 * n_out
        dense_flops = m * per_row
        if in_storage == "csr":
            if isinstance(layer, Conv2d):
                kh, kw = layer.weight.shape[2:]
                compute = nnz_in * (layer.weight.shape[0] // layer.groups) * kh * kw / SPARSE_FLOPS
            elif is_linear(layer) and isinstance(linear_op(layer, node_in_shape(self.net, idx)), DenseOp):
                compute = nnz_in * n_out / (SPARSE_FLOPS * 3)
            else:
                compute = (nnz_in + self.nnz[idx]) / SPARSE_FLOPS
        else:
            compute = dense_flops / DENSE_FLOPS + 8 * m * (n_in + n_out) / (10 * DISK_BYTES_PER_S)
        if storage == "csr" and in_storage != "csr":
            compute += 8 * m * n_out / SPARSE_FLOPS
        if "hdf5" in (storage, in_storage):
            compute += 8 * m * (n_in + n_out) / DISK_BYTES_PER_S
        return compute

    def input_options(self, fixed: str | None) -> list[str]:
        return [fixed] if fixed else list(BACKENDS)

    def _peak(self, idx: int, s: str, path: dict[int, str]) -> int:
        """Estimated peak RSS growth while node ``idx`` writes its output in storage ``s``."""
        net = self.net
        node = net.nodes[idx]
        size = lambda i: net.input_size if i == NETWORK_INPUT else net.nodes[i].size
        rows = lambda i: self.m0 if i == NETWORK_INPUT else self.m[i]
        nnz = lambda i: self.input_nnz if i == NETWORK_INPUT else self.nnz[i]
        held = 0
        for j in [NETWORK_INPUT, *range(idx)]:  # stores still needed: operands and skip connections
            last = self.input_last_use if j == NETWORK_INPUT else self.last_use[j]
            if last >= idx:
                held += self.store_bytes(path[j], rows(j), size(j), nnz(j))
        out = self.store_bytes(s, self.m[idx], node.size, self.nnz[idx])
        temp = self.pass_bytes(idx, s, path[node.inputs[0]])
        return int(SAFETY * (self.base + held + out + temp)) + SAFETY_BYTES

    def choose(self, plan: Plan, start: int = 0) -> None:
        """Storages from node ``start`` on: the cheapest sequence (Viterbi over the node order, one
        state per storage of the current node) whose estimated peak fits the budget at every node."""
        net = self.net
        fixed = None if plan.storage == "auto" else plan.storage
        if start == 0:
            states, peaks = {}, []
            for s in self.input_options(fixed):
                peak = int(SAFETY * (self.base + self.store_bytes(s, self.m0, net.input_size, self.input_nnz)))
                peaks.append(peak + SAFETY_BYTES)
                if plan.budget is None or peak + SAFETY_BYTES <= plan.budget:
                    states[s] = (self.build_cost(s), {NETWORK_INPUT: s})
            if not states:
                raise MemoryBudgetError("input box symbols", min(peaks), plan.budget)
        else:
            prefix = {NETWORK_INPUT: plan.input_storage, **{lp.index: lp.choice for lp in plan.layers[:start]}}
            states = {prefix[start - 1]: (0.0, prefix)}
        for idx in range(start, len(net.nodes)):
            node, lp = net.nodes[idx], plan.layers[idx]
            lp.n_symbols, lp.nnz = self.m[idx], self.nnz[idx]
            lp.disk = 8 * lp.n_symbols * node.size
            lp.peak, lp.cost = {}, {}
            new_states: dict[str, tuple[float, dict[int, str]]] = {}
            for s in ([fixed] if fixed else BACKENDS):
                for cost, path in states.values():
                    peak = self._peak(idx, s, path)
                    c = cost + self.cost(idx, s, path[node.inputs[0]])
                    lp.peak[s] = min(lp.peak.get(s, peak), peak)
                    lp.cost[s] = min(lp.cost.get(s, c - cost), c - cost)
                    if (plan.budget is None or peak <= plan.budget) and (s not in new_states or c < new_states[s][0]):
                        new_states[s] = (c, {**path, idx: s})
            if not new_states:
                raise MemoryBudgetError(f"{node.name} (node {idx}, {type(node.layer).__name__})",
                                        min(lp.peak.values()), plan.budget)
            states = new_states
        _, path = min(states.values(), key=lambda t: t[0])
        plan.input_storage = path[NETWORK_INPUT]
        for lp in plan.layers[start:]:
            lp.choice = path[lp.index]

    def build_cost(self, s: str) -> float:
        """Building the input box's store."""
        dense_bytes = 8 * self.m0 * self.net.input_size
        return {"dense": dense_bytes / (10 * DISK_BYTES_PER_S), "csr": 0.0,
                "hdf5": dense_bytes / DISK_BYTES_PER_S}[s]


def node_in_shape(net: Network, idx: int) -> tuple[int, ...]:
    i = net.nodes[idx].inputs[0]
    return tuple(net.input_shape) if i == NETWORK_INPUT else tuple(net.nodes[i].shape)


def _deeppoly_block_size(net: Network, budget: int, options: Options) -> int:
    """Rows back-substituted at once so that coefficient blocks fit the budget.

    A block of k rows holds upper and lower coefficients over the widest pending nodes and the
    relaxation's sign splits (4 more), plus a convolution's transposed im2col columns, which the
    adjoints take in chunks of at most ``IM2COL_CHUNK_BYTES`` (or one row).
    """
    widths = [net.input_size] + [n.size for n in net.nodes]
    work = 0
    for idx, node in enumerate(net.nodes):
        if isinstance(node.layer, Conv2d):
            op = linear_op(node.layer, node_in_shape(net, idx))
            assert isinstance(op, ConvOp)
            _, cin_g, kh, kw = node.layer.weight.shape
            padded = op.in_shape[0] * (op.in_shape[1] + node.layer.padding[0] + node.layer.padding[2]) * (
                op.in_shape[2] + node.layer.padding[1] + node.layer.padding[3])
            work = max(work, 8 * (cin_g * kh * kw * op.out_shape[1] * op.out_shape[2] * node.layer.groups + padded))
    per_row = 8 * 8 * max(widths)
    fixed = sum(PER_NEURON_BYTES * w for w in widths)
    available = budget - fixed
    # k rows need k * work of transposed-conv temporaries, but ConvOp.apply_transpose takes them in
    # chunks of IM2COL_CHUNK_BYTES (at least one row): either bound may be the one that fits
    uncapped = available // (per_row + work)
    capped = (available - max(IM2COL_CHUNK_BYTES, work)) // per_row
    rows = max(uncapped, capped)
    if rows < 1:
        widest = max(range(len(net.nodes)), key=lambda k: net.nodes[k].size)
        raise MemoryBudgetError(f"{net.nodes[widest].name} (DeepPoly back-substitution)", fixed + per_row + work,
                                budget)
    return int(max(1, min(options.block_size if options.block_size > 0 else 1 << 30, rows)))


def make_plan(net: Network, box: Box, domain: str, storage: str, budget: int | None,
              options: Options) -> Plan:
    """The plan ``analyze`` follows (see the module docstring); raises MemoryBudgetError when none fits."""
    if storage not in STORAGES:
        raise ValueError(f"unknown storage {storage!r}; choose one of {', '.join(STORAGES)}")
    if domain == "deeppoly":
        if budget is not None:
            options = replace(options, block_size=_deeppoly_block_size(net, budget, options))
        return Plan(domain, budget, storage, [], "dense", options)
    if domain != "zonotope" or (budget is None and storage != "auto"):
        fixed = storage if storage != "auto" else "dense"
        layers = [LayerPlan(k, n.name, type(n.layer).__name__, n.size, 0, 0, choice=fixed)
                  for k, n in enumerate(net.nodes)]
        if domain != "zonotope":
            fixed = "dense"
            for lp in layers:
                lp.choice = "dense"
        return Plan(domain, budget, storage, layers, fixed, options)
    block = HDF5_BLOCK_BYTES if budget is None else int(min(HDF5_BLOCK_BYTES, max(1 << 18, budget // 16)))
    model = _ZonotopeModel(net, box, options, block)
    layers = [LayerPlan(k, n.name, type(n.layer).__name__, n.size, 0, 0) for k, n in enumerate(net.nodes)]
    plan = Plan(domain, budget, storage, layers, "dense", options, hdf5_block_bytes=block, _model=model)
    model.choose(plan)
    return plan


def plan(net: Network, box, domain: str = "zonotope", memory_budget=None, storage: str = "auto",
         options: Options | None = None) -> Plan:
    """Estimates and choices for an analysis, without running it (``absint plan``)."""
    from .analysis import _as_box
    from .tables import parse_bytes

    budget = None if memory_budget is None else parse_bytes(memory_budget)
    options = options or Options()
    box = _as_box(net, box)
    if domain == "zonotope" and budget is None:  # estimate every layer even without a budget to meet
        return make_plan(net, box, domain, storage, UNBOUNDED, options)._unbounded()
    return make_plan(net, box, domain, storage, budget, options)
