"""DeepPoly (Singh et al. POPL 2019): per neuron a lower and an upper linear bound in its inputs,
and concrete bounds by back-substitution of those linear bounds down to the input box.

Each node records a relaxation (linear layer: exact; activation: a_l x + b_l <= y <= a_u x + b_u;
MaxPool: a chosen input below, a constant or the dominating input above; Add: exact). The
element is a handle (graph, node index). Bounds of nodes that feed a non-linear layer, and of the
output, come from back-substitution of blocks of ``Options.block_size`` neurons, so memory stays
at block x layer width; other nodes get interval bounds from their inputs.

Sound float64 mode: every back-substitution step adds gamma_K (|C| (|L| m + |b|)) to the slack
of each row, where C are the coefficients reaching the step, L, b its linear map and m the
magnitude bound max(|l|, |u|) of its input (Higham's dot-product bound, see absint.fp).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kernels.backsub import concretize, diagonal_backsub, linear_backsub_terms

from ..fp import UNIT_ROUNDOFF, addition_error, gamma, inflate, widen
from ..linear import LINEAR_OPS, DenseOp, LinearOp, linear_op
from ..network import NETWORK_INPUT, Add, Layer, MaxPool2d, ReLU, Sigmoid, Tanh
from ..relaxations import maxpool_windows, relu_deeppoly, s_shaped_deeppoly, sigmoid, sigmoid_derivative, tanh_derivative
from . import deeppoly_windows
from .interval import linear_interval
from .registry import TRANSFORMERS, Context, Options


@dataclass(frozen=True, eq=False)
class LinearRelax:
    op: LinearOp


@dataclass(frozen=True, eq=False)
class DiagonalRelax:
    """a_l x + b_l <= y <= a_u x + b_u elementwise."""

    a_l: np.ndarray
    b_l: np.ndarray
    a_u: np.ndarray
    b_u: np.ndarray


@dataclass(frozen=True, eq=False)
class GatherRelax:
    """y_o >= x[src_l[o]] (lower); y_o <= x[src_u[o]] where dominated, else <= const_u[o]."""

    n_in: int
    src_l: np.ndarray
    src_u: np.ndarray
    use_u: np.ndarray
    const_u: np.ndarray


@dataclass(frozen=True, eq=False)
class SumRelax:
    """y = a + b (two inputs)."""


@dataclass(eq=False)
class DeepPolyGraph:
    """Relaxations and concrete bounds of every node analysed so far."""

    input_lower: np.ndarray
    input_upper: np.ndarray
    inputs: list[tuple[int, ...]] = field(default_factory=list)
    relaxations: list = field(default_factory=list)
    bounds: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def node_bounds(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return (self.input_lower, self.input_upper) if i == NETWORK_INPUT else self.bounds[i]

    def magnitude(self, i: int) -> np.ndarray:
        lo, hi = self.node_bounds(i)
        return np.maximum(np.abs(lo), np.abs(hi))


@dataclass(eq=False)
class DeepPoly:
    """Handle on node ``index`` of a DeepPoly graph (NETWORK_INPUT for the input box)."""

    graph: DeepPolyGraph
    index: int

    @classmethod
    def from_box(cls, lower: np.ndarray, upper: np.ndarray, options: Options, storage=None) -> "DeepPoly":
        lo = np.asarray(lower, float).ravel().copy()
        hi = np.asarray(upper, float).ravel().copy()
        return cls(DeepPolyGraph(lo, hi), NETWORK_INPUT)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.graph.node_bounds(self.index)


# ------------------------------------------------------------------ back-substitution
def _step(graph: DeepPolyGraph, relax, node_inputs, C_u, C_l, sound: bool):
    """Push coefficients on a node's output to its inputs.

    Returns per input (C_u, C_l) and the constants/slacks added for upper and lower rows.
    """
    k = C_u.shape[0]
    const_u, const_l, slack = np.zeros(k), np.zeros(k), np.zeros(k)
    in_bounds = graph.node_bounds(node_inputs[0])
    if isinstance(relax, LinearRelax):
        op = relax.op
        same = C_u is C_l  # equal rows (before any relaxation): transposed once
        C_u, C_l = np.ascontiguousarray(C_u), np.ascontiguousarray(C_l)
        if sound and not op.exact:
            v = _linear_magnitudes(graph, relax, node_inputs[0])
        else:
            v = np.zeros(C_u.shape[1])
        mag_v = np.empty(k)
        linear_backsub_terms(C_u, C_l, np.ascontiguousarray(op.bias, dtype=np.float64), v, const_u, const_l, mag_v)
        if sound and not op.exact:
            slack += gamma(max(op.fan_in, op.fan_out) + 3) * mag_v  # C Lᵀ sums fan_out products per entry
        T_u = op.apply_transpose(C_u)
        out = [(T_u, T_u if same else op.apply_transpose(C_l))]
        return out, const_u, const_l, slack
    if isinstance(relax, DiagonalRelax):
        # fused kernel: C⁺/C⁻ split, constants and the magnitudes for the rounding terms in one pass
        new_u, new_l = np.ascontiguousarray(C_u), np.ascontiguousarray(C_l)
        if new_l is new_u:
            new_l = new_u.copy()
        v, b = deeppoly_windows.cached(graph, ("diagonal", id(relax)), (relax, *in_bounds), lambda: (
            np.maximum(np.abs(relax.a_l), np.abs(relax.a_u)) * graph.magnitude(node_inputs[0]),
            np.maximum(np.abs(relax.b_l), np.abs(relax.b_u))))
        mag_v, mag_b = np.empty(k), np.empty(k)
        diagonal_backsub(new_u, new_l, relax.a_l, relax.b_l, relax.a_u, relax.b_u, v, b, const_u, const_l,
                         mag_v, mag_b)
        if sound:
            slack += 2 * UNIT_ROUNDOFF * mag_v + gamma(C_u.shape[1] + 2) * mag_b
        return [(new_u, new_l)], const_u, const_l, slack
    if isinstance(relax, GatherRelax):
        pu, nu = np.maximum(C_u, 0.0), np.minimum(C_u, 0.0)
        pl, nl = np.maximum(C_l, 0.0), np.minimum(C_l, 0.0)
        new_u = np.zeros((k, relax.n_in))
        new_l = np.zeros((k, relax.n_in))
        up_u = pu * relax.use_u
        up_l = nl * relax.use_u
        for target, lower_part, upper_part in ((new_u, nu, up_u), (new_l, pl, up_l)):
            np.add.at(target.T, relax.src_l, lower_part.T)
            np.add.at(target.T, relax.src_u, upper_part.T)
        const_u += (pu * ~relax.use_u) @ relax.const_u
        const_l += (nl * ~relax.use_u) @ relax.const_u
        if sound:
            slack += gamma(C_u.shape[1] + 2) * np.maximum(np.abs(C_u) @ np.abs(relax.const_u),
                                                          np.abs(C_l) @ np.abs(relax.const_u))
        return [(new_u, new_l)], const_u, const_l, slack
    if isinstance(relax, SumRelax):
        return [(C_u, C_l), (C_u.copy(), C_l.copy())], const_u, const_l, slack
    raise TypeError(f"unknown relaxation {type(relax).__name__}")


def _linear_magnitudes(graph: DeepPolyGraph, relax: LinearRelax, source: int) -> np.ndarray:
    """|L| m + |b| of a linear node reading node ``source`` (m its magnitude bound), once per analysis."""
    op = relax.op
    return deeppoly_windows.cached(graph, ("linear", id(relax)), (relax, *graph.node_bounds(source)), lambda: (
        op.apply_abs(graph.magnitude(source)[None])[0] + np.abs(op.bias)))


def backsubstitute(graph: DeepPolyGraph, target: int, rows: np.ndarray, sound: bool, windows: bool = False):
    """Concrete (lower, upper) of neurons ``rows`` of node ``target`` by full back-substitution."""
    k = len(rows)
    relax = graph.relaxations[target]
    if isinstance(relax, LinearRelax) and isinstance(relax.op, DenseOp):
        # one-hot rows through y = Wx + b: W's rows, b's entries and |W|m+|b|'s entries, exactly
        op, source = relax.op, graph.inputs[target][0]
        C = np.ascontiguousarray(op.matrix[rows], dtype=np.float64)
        const = np.asarray(op.bias, dtype=np.float64)[rows]
        slack = np.zeros(k)
        if sound:
            slack += gamma(max(op.fan_in, op.fan_out) + 3) * _linear_magnitudes(graph, relax, source)[rows]
        return finish_backsubstitution(graph, source, C, C, const, const.copy(), slack, sound, windows)
    eye = np.zeros((k, graph.bounds[target][0].size))
    eye[np.arange(k), rows] = 1.0
    return finish_backsubstitution(graph, target, eye, eye, np.zeros(k), np.zeros(k), np.zeros(k), sound, windows)


def finish_backsubstitution(graph: DeepPolyGraph, start: int, C_u: np.ndarray, C_l: np.ndarray,
                            const_u: np.ndarray, const_l: np.ndarray, slack: np.ndarray, sound: bool,
                            windows: bool = False):
    """Continue a back-substitution whose dense coefficient rows (on node ``start``'s output) are C_u, C_l
    down to the input box; (lower, upper). ``C_l is C_u`` (one array) while the rows are equal. With
    ``windows``, a single pending chain that reaches convolutions and their relaxations continues on windows
    over the whole map (``deeppoly_windows.continue_on_map``)."""
    k = C_u.shape[0]
    pending: dict[int, list[np.ndarray]] = {start: [C_u, C_l]}
    if start != NETWORK_INPUT:
        for j in range(start, -1, -1):
            if j not in pending:
                continue
            if windows and len(pending) == 1 and (shape := deeppoly_windows.map_shape(graph, j)) is not None:
                return deeppoly_windows.continue_on_map(graph, j, shape, *pending[j], const_u, const_l, slack, sound)
            C_u, C_l = pending.pop(j)
            outs, cu, cl, s = _step(graph, graph.relaxations[j], graph.inputs[j], C_u, C_l, sound)
            const_u += cu
            const_l += cl
            slack += s
            if sound:
                slack += addition_error(const_u, const_l)
            for i, (nu, nl) in zip(graph.inputs[j], outs):
                if i not in pending:
                    pending[i] = [nu, nl]
                elif pending[i][0] is pending[i][1]:  # shared rows: add out of place
                    total = pending[i][0] + nu
                    pending[i] = [total, total if nl is nu else pending[i][1] + nl]
                else:
                    pending[i][0] += nu
                    pending[i][1] += nl
    lo_in, hi_in = graph.input_lower, graph.input_upper
    C_u, C_l = pending.get(NETWORK_INPUT, [np.zeros((k, lo_in.size)), np.zeros((k, lo_in.size))])
    upper, lower, mag_m = const_u.copy(), const_l.copy(), np.empty(k)
    m = np.maximum(np.abs(lo_in), np.abs(hi_in))
    concretize(np.ascontiguousarray(C_u), np.ascontiguousarray(C_l), lo_in, hi_in, m, upper, lower, mag_m)
    if sound:
        slack += input_rounding(graph) * (mag_m + np.abs(const_u) + np.abs(const_l))
        return widen(lower, upper, inflate(slack))
    return lower, upper


def input_rounding(graph: DeepPolyGraph) -> float:
    """gamma of the final concretisation: a dot product over the input plus the accumulated constants."""
    return gamma(graph.input_lower.size + len(graph.relaxations) + 3)


def _feeds_nonlinear(ctx: Context) -> bool:
    net = ctx.network
    if net is None or ctx.index == len(net.nodes) - 1:
        return True
    return any(ctx.index in n.inputs and not type(n.layer) in LINEAR_OPS and not isinstance(n.layer, Add)
               for n in net.nodes[ctx.index + 1:])


def _rows_to_refine(graph: DeepPolyGraph, index: int, ctx: Context) -> np.ndarray:
    """Neurons worth a back-substitution. All of them, except: a linear node read straight from the
    input box already has exact interval bounds; a node read only by ReLUs needs tight bounds only on
    its unstable neurons (a stable neuron's relaxation is exact whatever its bounds), unless
    ``Options.refine_stable``."""
    lo, hi = graph.bounds[index]
    net = ctx.network
    everything = np.arange(lo.size)
    if net is None or ctx.index == len(net.nodes) - 1:
        return everything
    if ctx.node.inputs == (NETWORK_INPUT,) and isinstance(graph.relaxations[index], LinearRelax):
        return everything[:0]
    if ctx.options.refine_stable:
        return everything
    readers = [n for n in net.nodes[ctx.index + 1:] if ctx.index in n.inputs]
    if readers and all(isinstance(n.layer, ReLU) for n in readers):
        return np.flatnonzero((lo < 0) & (hi > 0))
    return everything


def _refine(graph: DeepPolyGraph, index: int, ctx: Context) -> None:
    """Replace node ``index``'s bounds by back-substituted ones (intersected), block by block."""
    lo, hi = graph.bounds[index]
    block = max(1, ctx.options.block_size)
    new_lo, new_hi = lo.copy(), hi.copy()
    todo = _rows_to_refine(graph, index, ctx)
    windowed = ctx.options.conv_windows and deeppoly_windows.applicable(graph, index)
    if windowed and (per_row := deeppoly_windows.row_bytes(graph, index)) and ctx.network is not None:
        # a block may hold half the bytes the planner counts for ``block`` dense rows (8 rows of the widest
        # node each; half: margin for the model's slack): windows are small, so many more rows fit (fewer,
        # larger BLAS products; measured peaks under 1 GiB: see README)
        widest = max([ctx.network.input_size] + [n.size for n in ctx.network.nodes])
        block = max(block, block * 32 * widest // per_row)
    block = max(1, -(-todo.size // max(1, -(-todo.size // block))))  # blocks of even size
    for start in range(0, todo.size, block):
        rows = todo[start:start + block]
        if windowed:
            l, u = deeppoly_windows.backsubstitute_windowed(graph, index, rows, ctx.options.sound_fp)
        else:
            l, u = backsubstitute(graph, index, rows, ctx.options.sound_fp, ctx.options.conv_windows)
        new_lo[rows] = np.maximum(lo[rows], l)
        new_hi[rows] = np.minimum(hi[rows], u)
    _uncross(new_lo, new_hi)
    graph.bounds[index] = (new_lo, new_hi)


def _uncross(lower: np.ndarray, upper: np.ndarray) -> None:
    """Without fp-soundness, two differently rounded bounds of a zero-width neuron may cross by an
    ulp after intersection; swap them back (both are values the neuron may take up to rounding)."""
    crossed = lower > upper
    if crossed.any():
        lower[crossed], upper[crossed] = upper[crossed], lower[crossed]


def _record(x: DeepPoly, ctx: Context, relax, lo: np.ndarray, hi: np.ndarray, refine: bool) -> DeepPoly:
    graph = x.graph
    graph.inputs.append(tuple(ctx.node.inputs))
    graph.relaxations.append(relax)
    graph.bounds.append((lo, hi))
    assert len(graph.bounds) == ctx.index + 1, "DeepPoly nodes must be recorded in network order"
    if refine:
        _refine(graph, ctx.index, ctx)
    return DeepPoly(graph, ctx.index)


def deeppoly_linear(x: DeepPoly, layer: Layer, ctx: Context) -> DeepPoly:
    op = linear_op(layer, ctx.input_shapes[0])
    lo, hi = linear_interval(op, *x.bounds(), ctx.options.sound_fp)
    return _record(x, ctx, LinearRelax(op), lo, hi, _feeds_nonlinear(ctx))


TRANSFORMERS.register(DeepPoly, *LINEAR_OPS)(deeppoly_linear)


@TRANSFORMERS.register(DeepPoly, Add)
def deeppoly_add(x: DeepPoly, layer: Add, ctx: Context) -> DeepPoly:
    (la, ua), (lb, ub) = (op.bounds() for op in ctx.operands)
    lo, hi = widen(la + lb, ua + ub, 0.0)
    return _record(x, ctx, SumRelax(), lo, hi, _feeds_nonlinear(ctx))


@TRANSFORMERS.register(DeepPoly, ReLU)
def deeppoly_relu(x: DeepPoly, layer: ReLU, ctx: Context) -> DeepPoly:
    l, u = x.bounds()
    relax = DiagonalRelax(*relu_deeppoly(l, u))
    return _record(x, ctx, relax, np.maximum(l, 0.0), np.maximum(u, 0.0), ctx.index == len(ctx.network.nodes) - 1)


def _s_shaped(f, df):
    def transformer(x: DeepPoly, layer: Layer, ctx: Context) -> DeepPoly:
        l, u = x.bounds()
        relax = DiagonalRelax(*s_shaped_deeppoly(f, df, l, u))
        lo, hi = f(l), f(u)
        lo, hi = widen(lo - 8 * UNIT_ROUNDOFF * np.abs(lo), hi + 8 * UNIT_ROUNDOFF * np.abs(hi), 0.0)
        return _record(x, ctx, relax, lo, hi, ctx.index == len(ctx.network.nodes) - 1)
    return transformer


TRANSFORMERS.register(DeepPoly, Sigmoid)(_s_shaped(sigmoid, sigmoid_derivative))
TRANSFORMERS.register(DeepPoly, Tanh)(_s_shaped(np.tanh, tanh_derivative))


@TRANSFORMERS.register(DeepPoly, MaxPool2d)
def deeppoly_maxpool(x: DeepPoly, layer: MaxPool2d, ctx: Context) -> DeepPoly:
    """Lower: the input with the largest lower bound; upper: that input if it dominates its window,
    else the largest upper bound (a constant)."""
    l, u = x.bounds()
    lo, hi, dominated, src = maxpool_windows(l, u, layer, ctx.input_shapes[0])
    relax = GatherRelax(l.size, src, src, dominated, np.where(dominated, 0.0, hi))
    return _record(x, ctx, relax, lo, hi, ctx.index == len(ctx.network.nodes) - 1)
