"""DeepPoly over a batch of input boxes at once, for chains of Affine and ReLU layers (ACAS Xu, mnistfc).

The relaxations and rounding-error terms are those of ``absint.domains.deeppoly`` (Singh et al. POPL
2019: ReLU upper chord, lower slope 0/1 by area; a back-substitution step through y = Wx + b adds
gamma_{max(in,out)+3} |C|(|W| m + |b|) to the slack, a ReLU step 2u |C| v + gamma_{n+2} |C| |b|), but
every array carries a leading batch axis and back-substitution works on (box, neuron) pairs, so one
BLAS product serves every box: input splitting bounds hundreds of sub-boxes per call. The elementwise
steps are the row kernels of ``kernels.batch_backsub``, which read each pair's box data by index. The input
coefficients of each output's lower bound, y_i >= Λ_i x + c_i on the box, are returned too; |Λ_i| x
width ranks the input dimensions for splitting (the "smear" of ReluVal/Neurify, Wang et al. 2018).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from kernels.batch_backsub import affine_backsub_terms, concretize_rows, relu_backsub_rows
from kernels.spmm import dense_csr

from ..fp import UNIT_ROUNDOFF, addition_error, gamma, inflate, widen
from ..errors import MemoryBudgetError
from ..linear import is_linear, linear_op
from ..network import NETWORK_INPUT, Affine, Network, ReLU, Reshape
from ..relaxations import relu_deeppoly
from ..threads import blas_single_thread
from .interval import centre_radius


#: an explicit matrix of a linear layer is stored sparse (CSR) below this share of non-zeros
SPARSE_DENSITY = 0.2
#: temporaries of back-substitution per (box, neuron) pair, in rows as wide as the widest layer
PAIR_ARRAYS = 12
#: default bytes of back-substitution temporaries at once
PAIR_BYTES = 256 << 20


@dataclass(frozen=True, eq=False)
class SparseAffine(Affine):
    """y = W x + b with W a scipy CSR array: a convolution made explicit inside a chain (products with
    dense coefficient rows, C W and X Wᵀ, cost its non-zeros, not its full size)."""

    def __post_init__(self):
        object.__setattr__(self, "weight", sp.csr_array(self.weight))
        object.__setattr__(self, "bias", np.asarray(self.bias, np.float64))
        if self.bias.shape[0] != self.weight.shape[0]:
            raise ValueError(f"SparseAffine bias has {self.bias.shape[0]} entries for {self.weight.shape[0]} outputs")

    @property
    def nbytes(self) -> int:
        w = self.weight
        return w.data.nbytes + w.indices.nbytes + w.indptr.nbytes + self.bias.nbytes

    @cached_property
    def weight_t(self) -> sp.csr_array:
        """Wᵀ in CSR, for forward products X Wᵀ (``transposed_product``)."""
        return sp.csr_array(self.weight.T)

    @cached_property
    def abs_weight_t(self) -> sp.csr_array:
        """|W|ᵀ in CSR (interval radii and rounding-term magnitudes)."""
        return abs(self.weight_t)


def right_product(C: np.ndarray, W) -> np.ndarray:
    """C W for coefficient rows C (P, n) and a dense or CSR W (n, m); a CSR W goes through the blocked
    kernel ``kernels.spmm.dense_csr`` (2-10x scipy's product on back-substitution rows)."""
    if not sp.issparse(W):
        return C @ W
    C = np.ascontiguousarray(C, W.dtype)
    out = np.empty((C.shape[0], W.shape[1]), W.dtype)
    dense_csr(C, W.indptr, W.indices, W.data, out, W.has_sorted_indices)
    return out


def transposed_product(X: np.ndarray, W, WT=None) -> np.ndarray:
    """X Wᵀ for rows X (P, m) and a dense or CSR W (n, m): the forward pass through a layer. A CSR W goes
    through ``right_product`` with its transpose ``WT`` in CSR (built when not given; callers keep it),
    which did oval21's convolutions several times faster than scipy's product (perf/README.md)."""
    if not sp.issparse(W):
        return X @ W.T
    return right_product(X, sp.csr_array(W.T) if WT is None else WT)


def layer_product(X: np.ndarray, layer: Affine, absolute: bool = False) -> np.ndarray:
    """X Wᵀ, or X |W|ᵀ with ``absolute``, for rows X (P, n_in) and an Affine layer (a ``SparseAffine``'s
    through its cached transposes)."""
    if isinstance(layer, SparseAffine):
        return right_product(X, layer.abs_weight_t if absolute else layer.weight_t)
    return X @ (np.abs(layer.weight) if absolute else layer.weight).T


def _explicit(op) -> Affine:
    """The layer of ``op`` as an explicit matrix: sparse when few entries are non-zero."""
    W = op.apply(np.eye(op.n_in)).T
    bias = np.array(op.bias, np.float64)
    if np.count_nonzero(W) < SPARSE_DENSITY * W.size:
        return SparseAffine(W, bias)
    return Affine(np.ascontiguousarray(W), bias)


@dataclass(frozen=True, eq=False)
class AffineReluChain:
    """A network that is a chain of Affine and ReLU layers on the flat input (reshapes dropped)."""

    layers: tuple[Affine | ReLU, ...]
    n_inputs: int

    @classmethod
    def from_network(cls, net: Network, materialise_bytes: int = 0) -> "AffineReluChain | None":
        """The chain of ``net``, or None when ``net`` has another layer type or a branch.

        Other linear layers (Conv2d, pooling by averages, normalisation) become explicit Affine
        matrices (``SparseAffine`` when mostly zero) when ``materialise_bytes`` > 0, up to that many
        bytes in all, counting the dense matrix built on the way (the entries are copies of the
        weights, so the network's real-arithmetic function is unchanged); beyond it, MemoryBudgetError."""
        layers, shape, dense_bytes = [], tuple(net.input_shape), 0
        for k, node in enumerate(net.nodes):
            if node.inputs != ((k - 1) if k else NETWORK_INPUT,):
                return None
            layer, in_shape = node.layer, shape
            shape = tuple(layer.output_shape(shape))
            if isinstance(layer, Reshape):
                continue
            if not isinstance(layer, (Affine, ReLU)):
                if not (materialise_bytes and is_linear(layer)):
                    return None
                op = linear_op(layer, in_shape)
                if dense_bytes + 16 * op.n_in * op.n_out > materialise_bytes:  # the identity's image and W
                    raise MemoryBudgetError(node.name, dense_bytes + 16 * op.n_in * op.n_out, materialise_bytes)
                layer = _explicit(op)
                dense_bytes += layer.nbytes if isinstance(layer, SparseAffine) else layer.weight.nbytes
            layers.append(layer)
        if not layers or not isinstance(layers[0], Affine):
            return None
        return cls(tuple(layers), net.input_size)

    @property
    def n_outputs(self) -> int:
        last = next(l for l in reversed(self.layers) if isinstance(l, Affine))
        return last.weight.shape[0]


@dataclass(frozen=True, eq=False)
class ReluSplits:
    """Fixed ReLU phases of each box (the sub-problems of ReLU branch and bound).

    ``phases[j]`` (B, n) for the ReLU at chain index j: +1 the box is restricted to inputs where the
    ReLU's input is >= 0, -1 to where it is <= 0, 0 free. ``prior[k]`` (lower, upper) (B, n): bounds of
    layer k's outputs already known to hold on the box (a parent sub-problem's), intersected with the
    new ones. Layers k <= ``start[b]`` are not back-substituted for box b (their prior bounds are kept)."""

    phases: dict[int, np.ndarray]
    prior: list[tuple[np.ndarray, np.ndarray]] | None = None
    start: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class BatchBounds:
    """Output bounds (B, n_out) of every box and, when asked for, the lower bounds' input
    coefficients Λ (B, n_out, n_in) and constants c (B, n_out): y_i >= Λ_i x + c_i for every x of
    box b (rounding errors included in c). With ``ReluSplits``:
    every layer's output bounds, and which boxes' split constraints were proved contradictory
    (their sub-problem is empty)."""

    lower: np.ndarray
    upper: np.ndarray
    lower_coef: np.ndarray | None = None
    lower_const: np.ndarray | None = None
    layers: list[tuple[np.ndarray, np.ndarray]] | None = None
    infeasible: np.ndarray | None = None


def _interval_affine(layer: Affine, lo: np.ndarray, hi: np.ndarray, sound: bool):
    """Per box, W c + b ± (|W| r + slack), slack = gamma_{n+2}(|W|(|c| + r) + |b|) (as ``linear_interval``)."""
    W, b = layer.weight, layer.bias
    c, r = centre_radius(lo, hi)
    mid = layer_product(c, layer) + b
    rad = layer_product(r, layer, absolute=True)
    if not sound:
        return mid - rad, mid + rad
    g = gamma(W.shape[1] + 2)
    rad = rad + inflate(g * (layer_product(np.abs(c) + r, layer, absolute=True) + np.abs(b)) + g * rad)
    return widen(mid - rad, mid + rad, 0.0)


def _rows_to_refine(chain: AffineReluChain, k: int, lo: np.ndarray, hi: np.ndarray,
                    splits: ReluSplits | None) -> tuple[np.ndarray, np.ndarray]:
    """(box, neuron) pairs whose bounds are back-substituted: every output neuron of the last layer;
    the unstable neurons of an Affine read by a ReLU (stable ones have exact relaxations) that are not
    split and lie after the box's start layer; none for the first Affine (its interval bounds on the
    input box are already tight)."""
    last = k == len(chain.layers) - 1
    if last:
        mask = np.ones(lo.shape, bool)
    elif k == 0 or not isinstance(chain.layers[k + 1], ReLU):
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    else:
        mask = (lo < 0) & (hi > 0)
        if splits is not None and k + 1 in splits.phases:
            mask &= splits.phases[k + 1] == 0
    if splits is not None and splits.start is not None:
        mask &= (splits.start < k)[:, None]
    return np.nonzero(mask)


def _apply_splits(splits: ReluSplits, k: int, lo: np.ndarray, hi: np.ndarray, infeasible: np.ndarray) -> None:
    """Intersect layer k's bounds with the prior ones and the split constraints (in place); boxes whose
    bounds cross are empty sub-problems."""
    if splits.prior is not None:
        np.maximum(lo, splits.prior[k][0], out=lo)
        np.minimum(hi, splits.prior[k][1], out=hi)
    phase = splits.phases.get(k + 1)
    if phase is not None:
        np.maximum(lo, 0.0, out=lo, where=phase > 0)
        np.minimum(hi, 0.0, out=hi, where=phase < 0)
    crossed = lo > hi
    if crossed.any():
        infeasible |= crossed.any(axis=1)
        hi[crossed] = lo[crossed]


def deeppoly_boxes(chain: AffineReluChain, lower: np.ndarray, upper: np.ndarray, sound_fp: bool = True,
                   lower_coef: bool = False, splits: ReluSplits | None = None,
                   pair_bytes: int = PAIR_BYTES) -> BatchBounds:
    """DeepPoly bounds of ``chain`` over each box [lower[b], upper[b]] (arrays (B, n_in)), within the
    ReLU phases of ``splits`` when given (then every layer's bounds are returned too). Back-substitution
    runs on chunks of (box, neuron) pairs of about ``pair_bytes`` of temporaries.
    """
    lower = np.array(lower, np.float64, order="C").reshape(len(lower), -1)  # writable C copies: the kernels'
    upper = np.array(upper, np.float64, order="C").reshape(len(upper), -1)  # compiled signature
    if lower.shape != upper.shape or lower.shape[1] != chain.n_inputs:
        raise ValueError(f"boxes must be (B, {chain.n_inputs}) arrays, got {lower.shape} and {upper.shape}")
    mags = []      # per layer: magnitude max(|l|, |u|) of its input, (B, n_in)
    relax = []     # per layer: None (Affine) or (a_l, b_l, a_u, b_u), each (B, n)
    affine_v = []  # per layer: |W| m + |b| of an Affine (its rounding-term magnitudes, (B, n_out)), else None
    layers = [] if splits is not None else None
    infeasible = np.zeros(len(lower), bool)
    lo, hi = lower, upper
    coef = const = None
    for k, layer in enumerate(chain.layers):
        mags.append(np.maximum(np.abs(lo), np.abs(hi)))
        if isinstance(layer, ReLU):
            relax.append(relu_deeppoly(lo, hi))
            affine_v.append(None)
            lo, hi = np.maximum(lo, 0.0), np.maximum(hi, 0.0)
            if layers is not None:
                layers.append((lo, hi))
            continue
        relax.append(None)
        affine_v.append(layer_product(mags[-1], layer, absolute=True) + np.abs(layer.bias) if sound_fp else None)
        lo, hi = _interval_affine(layer, lo, hi, sound_fp)
        if splits is not None and splits.prior is not None:  # tighter inputs to the refinement's choice
            np.maximum(lo, splits.prior[k][0], out=lo)
            np.minimum(hi, splits.prior[k][1], out=hi)
        boxes, rows = _rows_to_refine(chain, k, lo, hi, splits)
        want = lower_coef and k == len(chain.layers) - 1
        if boxes.size:
            # pairs in chunks: each carries a few rows as wide as the widest layer it passes
            width = max(l.weight.shape[1] for l in chain.layers[:k + 1] if isinstance(l, Affine))
            step = boxes.size if want else max(1, pair_bytes // (PAIR_ARRAYS * 8 * width))
            parts = []
            for s in range(0, boxes.size, step):
                bx, rw = boxes[s:s + step], rows[s:s + step]
                l, u, C = _backsubstitute(chain, k, bx, rw, mags, relax, affine_v, lower, upper, sound_fp, want)
                lo[bx, rw] = np.maximum(lo[bx, rw], l)
                hi[bx, rw] = np.minimum(hi[bx, rw], u)
                parts.append(C)
            if want:
                coef = parts[0][0].reshape(lo.shape + (chain.n_inputs,))
                const = parts[0][1].reshape(lo.shape)
        if splits is not None:
            _apply_splits(splits, k, lo, hi, infeasible)
            layers.append((lo, hi))
        else:
            crossed = lo > hi  # unsound-mode rounding only (see deeppoly._uncross)
            if crossed.any():
                lo[crossed], hi[crossed] = hi[crossed], lo[crossed]
    return BatchBounds(lo, hi, coef, const, layers, infeasible if splits is not None else None)


def _backsubstitute(chain, k, boxes, rows, mags, relax, affine_v, lower, upper, sound, want_coef):
    """Concrete bounds of the (box, neuron) pairs of layer k by back-substitution to the input box.

    The upper and lower coefficient rows are one (2, p, n) array, so an Affine step is one BLAS product;
    ReLU steps, constants, rounding terms and the concretisation are kernels/batch_backsub.py row kernels
    that read each pair's box data through ``boxes``."""
    boxes = np.ascontiguousarray(boxes, np.intp)
    W, b = chain.layers[k].weight, chain.layers[k].bias
    C = np.empty((2,) + (boxes.size, W.shape[1]))
    C[0] = W[rows].toarray() if sp.issparse(W) else W[rows]  # e_i^T W: the first step is a gather
    C[1] = C[0]
    const_u, const_l = b[rows].copy(), b[rows].copy()
    slack = gamma(max(W.shape) + 3) * affine_v[k][boxes, rows] if sound else np.zeros(boxes.size)
    for j in range(k - 1, -1, -1):
        layer = chain.layers[j]
        if isinstance(layer, Affine):
            W, bias = layer.weight, np.array(layer.bias, np.float64)  # a writable copy: one kernel signature
            affine_backsub_terms(C[0], C[1], bias, boxes, affine_v[j] if sound else _NO_V, const_u, const_l, slack,
                                 sound, gamma(max(W.shape) + 3))
            if sound:
                slack += addition_error(const_u, const_l)
            C = _product(C, W, boxes, relax[j + 1])
        else:
            a_l, b_l, a_u, b_u = relax[j]
            relu_backsub_rows(C[0], C[1], boxes, a_l, b_l, a_u, b_u, mags[j], const_u, const_l, slack, sound,
                              2 * UNIT_ROUNDOFF, gamma(C.shape[2] + 2))
            if sound:
                slack += addition_error(const_u, const_l)
    lo, up, mag_m = np.empty(boxes.size), np.empty(boxes.size), np.empty(boxes.size)
    concretize_rows(C[0], C[1], boxes, lower, upper, const_u, const_l, lo, up, mag_m)
    if sound:
        slack += gamma(chain.n_inputs + len(chain.layers) + 4) * (mag_m + np.abs(const_u) + np.abs(const_l))
        lo, up = widen(lo, up, inflate(slack))
    # the lower linear form y >= C_l x + const_l - slack holds pointwise on the box
    return lo, up, ((C[1], widen(const_l, const_l, inflate(slack))[0] if sound else const_l) if want_coef else None)


_NO_V = np.zeros((0, 0))

#: the dense product skips the columns inactive on every box when at most this fraction of them is live
LIVE_FRACTION = 0.9
#: cost of the few numpy calls per box of a per-box product, in multiply-adds (~30 µs)
GROUP_CALL = 150_000


def _product(C, W, boxes, relu_relax):
    """C W for coefficient rows C (2, p, n) that went through the ReLU with relaxations ``relu_relax``
    (None: no ReLU): the columns of the neurons inactive (a_l = a_u = 0) on a row's box are zero, so the
    product skips them: per run of rows of one box when that is cheaper, else those dead on all boxes."""
    p, (n, m) = boxes.size, W.shape
    if relu_relax is None or p == 0 or sp.issparse(W):  # a sparse W costs its non-zeros already
        return right_product(C.reshape(2 * p, n), W).reshape(2, p, m)
    a_l, _, a_u, _ = relu_relax
    starts = np.flatnonzero(np.r_[True, boxes[1:] != boxes[:-1]])
    ends = np.r_[starts[1:], p]
    live = (a_l[boxes[starts]] != 0) | (a_u[boxes[starts]] != 0)  # (runs, n)
    cols = np.flatnonzero(live.any(axis=0))
    grouped_cost = m * int(((ends - starts) * live.sum(axis=1)).sum()) + GROUP_CALL * starts.size
    if grouped_cost < p * cols.size * m:
        out = np.empty((2, p, m))
        with blas_single_thread():  # small products: waking BLAS threads for each costs more than it gains
            for s, e, run_live in zip(starts, ends, live):
                run_cols = np.flatnonzero(run_live)
                np.matmul(C[:, s:e][:, :, run_cols], W[run_cols], out=out[:, s:e])
        return out
    if cols.size <= LIVE_FRACTION * n:
        C, W = C[:, :, cols], W[cols]
    return (C.reshape(2 * p, W.shape[0]) @ W).reshape(2, p, m)


__all__ = ["AffineReluChain", "BatchBounds", "ReluSplits", "SparseAffine", "deeppoly_boxes", "layer_product",
           "right_product", "transposed_product"]
