"""Predicted non-zeros of a zonotope's generator rows, by propagating each symbol's support.

A symbol created at neuron (c, i, j) of a (C, H, W) tensor reaches, after a convolution, every
output channel of its group and the output rows/columns whose window covers i and j; pools keep
the channel. Supports are tracked as boxes (channel, row, column ranges) per *class* of symbols
(the input's symbols, each ReLU's), so the count is exact for chains of conv/pool layers with
stride <= kernel and an upper bound otherwise (a box hull); dense layers fill the row. Used by the
planner to size CSR storage before any work is done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .network import (Add, Affine, AvgPool2d, Conv2d, ElementwiseAffine, Layer, MaxPool2d, ReLU, Reshape, Sigmoid,
                      Tanh, Transpose)

Shape = tuple[int, ...]


@dataclass
class Support:
    """Support of every symbol class at one node.

    ``count[k]`` symbols of class k; on a (C, H, W) node each class has a box
    ``box[k] = (c0, c1, r0, r1, q0, q1)`` (inclusive ranges, empty when a lower end exceeds its
    upper end); on other nodes ``flat[k]`` is the number of non-zeros of each of its rows.
    """

    shape: Shape
    count: np.ndarray
    box: np.ndarray | None = None
    flat: np.ndarray | None = None

    @property
    def spatial(self) -> bool:
        return self.box is not None

    def row_nnz(self) -> np.ndarray:
        """Non-zeros of one row of each class."""
        if self.box is None:
            return self.flat
        span = np.maximum(self.box[:, 1::2] - self.box[:, 0::2] + 1, 0)
        return span[:, 0] * span[:, 1] * span[:, 2]

    def nnz(self) -> int:
        return int(np.dot(self.count, self.row_nnz()))

    def n_rows(self) -> int:
        return int(self.count.sum())

    def with_flat(self, flat: np.ndarray) -> "Support":
        return Support(self.shape, self.count, None, np.asarray(flat, np.int64))

    def full(self, shape: Shape) -> "Support":
        """Every non-empty row fills the node (a dense layer)."""
        n = int(np.prod(shape))
        return Support(tuple(shape), self.count, None, np.where(self.row_nnz() > 0, n, 0).astype(np.int64))


def _is_spatial(shape: Shape) -> bool:
    return len(shape) == 3


def input_support(shape: Shape, symbol_neurons: np.ndarray) -> Support:
    """One class per neuron carrying a symbol (the input box's non-degenerate dimensions)."""
    return new_symbols(None, shape, symbol_neurons)


def new_symbols(support: Support | None, shape: Shape, neurons: np.ndarray) -> Support:
    """``support`` plus one one-hot class per neuron in ``neurons`` (flat indices)."""
    neurons = np.asarray(neurons, np.int64)
    count = np.ones(len(neurons), np.int64)
    if support is None:
        support = Support(tuple(shape), np.zeros(0, np.int64), np.zeros((0, 6), np.int64) if _is_spatial(shape)
                          else None, None if _is_spatial(shape) else np.zeros(0, np.int64))
    total = np.concatenate([support.count, count])
    if support.spatial:
        c, r, q = np.unravel_index(neurons, shape)
        boxes = np.stack([c, c, r, r, q, q], axis=1).astype(np.int64)
        return Support(support.shape, total, np.concatenate([support.box, boxes]), None)
    return Support(support.shape, total, None, np.concatenate([support.flat, np.ones(len(neurons), np.int64)]))


def window_hull(lo: np.ndarray, hi: np.ndarray, n_out: int, kernel: int, stride: int, pad: int,
                dilation: int) -> tuple[np.ndarray, np.ndarray]:
    """Outputs a whose window {a·s - pad + p·d : 0 <= p < k} meets [lo, hi], as a hull [a0, a1]."""
    reach = (kernel - 1) * dilation
    a0 = -((-(lo + pad - reach)) // stride)      # ceil((lo + pad - reach) / s)
    a1 = (hi + pad) // stride
    a0, a1 = np.maximum(a0, 0), np.minimum(a1, n_out - 1)
    empty = (lo > hi) | (a0 > a1)
    return np.where(empty, 1, a0), np.where(empty, 0, a1)


def _windowed(s: Support, out_shape: Shape, kernel, stride, padding, dilation, channels) -> Support:
    box = s.box.copy()
    for axis, (b0, b1) in enumerate(((2, 3), (4, 5))):
        box[:, b0], box[:, b1] = window_hull(box[:, b0], box[:, b1], out_shape[1 + axis], kernel[axis],
                                             stride[axis], padding[axis], dilation[axis])
    box[:, 0], box[:, 1] = channels(box[:, 0], box[:, 1])
    empty = (box[:, 0::2] > box[:, 1::2]).any(axis=1)
    box[empty] = (1, 0, 1, 0, 1, 0)
    return Support(tuple(out_shape), s.count, box, None)


def _conv(s: Support, layer: Conv2d, out_shape: Shape) -> Support:
    if not s.spatial:
        return s.full(out_shape)
    cin_g = layer.weight.shape[1]
    cout_g = layer.weight.shape[0] // layer.groups

    def channels(c0, c1):
        return (c0 // cin_g) * cout_g, (c1 // cin_g + 1) * cout_g - 1

    return _windowed(s, out_shape, layer.weight.shape[2:], layer.stride, layer.padding, layer.dilation, channels)


def _pool(s: Support, layer, out_shape: Shape) -> Support:
    if not s.spatial:
        return s.full(out_shape)
    dilation = getattr(layer, "dilation", (1, 1))
    return _windowed(s, out_shape, layer.kernel, layer.stride, layer.padding, dilation, lambda c0, c1: (c0, c1))


def _same(s: Support, layer, out_shape: Shape) -> Support:
    return s


def _reshape(s: Support, layer, out_shape: Shape) -> Support:
    if s.spatial and tuple(out_shape) == s.shape:
        return s
    if _is_spatial(out_shape):
        return s.full(out_shape)
    return Support(tuple(out_shape), s.count, None, s.row_nnz().astype(np.int64))


def _dense(s: Support, layer, out_shape: Shape) -> Support:
    return s.full(out_shape)


PROPAGATE: dict[type[Layer], Callable[[Support, Layer, Shape], Support]] = {
    Conv2d: _conv, AvgPool2d: _pool, MaxPool2d: _pool, ReLU: _same, Sigmoid: _same, Tanh: _same,
    ElementwiseAffine: _same, Affine: _dense, Reshape: _reshape, Transpose: _reshape,
}


def propagate(s: Support, layer: Layer, out_shape: Shape) -> Support:
    """The support after ``layer`` (one input)."""
    return PROPAGATE[type(layer)](s, layer, tuple(out_shape))


def union(a: Support, b: Support, out_shape: Shape) -> Support:
    """Support of a sum (residual Add): per class the hull of both boxes, or the sum of the counts."""
    k = max(len(a.count), len(b.count))
    a, b = _pad(a, k), _pad(b, k)
    count = np.maximum(a.count, b.count)
    if a.spatial and b.spatial:
        box = np.empty_like(a.box)
        ea = (a.box[:, 0::2] > a.box[:, 1::2]).any(axis=1)
        eb = (b.box[:, 0::2] > b.box[:, 1::2]).any(axis=1)
        box[:, 0::2] = np.minimum(np.where(ea[:, None], b.box[:, 0::2], a.box[:, 0::2]),
                                  np.where(eb[:, None], a.box[:, 0::2], b.box[:, 0::2]))
        box[:, 1::2] = np.maximum(np.where(ea[:, None], b.box[:, 1::2], a.box[:, 1::2]),
                                  np.where(eb[:, None], a.box[:, 1::2], b.box[:, 1::2]))
        return Support(tuple(out_shape), count, box, None)
    n = int(np.prod(out_shape))
    return Support(tuple(out_shape), count, None, np.minimum(a.row_nnz() + b.row_nnz(), n).astype(np.int64))


def _pad(s: Support, k: int) -> Support:
    """Classes created on another branch appear with an empty support here."""
    extra = k - len(s.count)
    if extra <= 0:
        return s
    count = np.concatenate([s.count, np.zeros(extra, np.int64)])
    if s.spatial:
        return Support(s.shape, count, np.concatenate([s.box, np.tile([[1, 0, 1, 0, 1, 0]], (extra, 1))]), None)
    return Support(s.shape, count, None, np.concatenate([s.flat, np.zeros(extra, np.int64)]))
