"""Linear layers as operators on blocks of row vectors, shared by every abstract domain.

A linear layer is y = L x + b on flattened tensors. ``LinearOp`` applies L (no bias) to each
row of a block X (k, n_in) -> (k, n_out) (zonotope generators, interval centres), |L| to
non-negative rows (radii, rounding-error terms), and the transpose Lᵀ to rows of coefficients
(k, n_out) -> (k, n_in) (DeepPoly back-substitution), without materialising L for
convolutions, pools and permutations. ``linear_op(layer, in_shape)`` finds the operator of a
layer through a registry of layer types.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from kernels.conv_transpose import col2im_add, conv2d_transpose_rows
from kernels.csr import csr_conv2d_matrix

from .im2col import IM2COL_CHUNK_BYTES, conv2d_forward, conv2d_work_bytes, window_output_hw

#: |W| of a dense layer is cached up to this size, else computed in chunks of this size at each use
CACHED_ABS_BYTES = 4 << 20
#: ConvOp.apply_transpose scatters rows with at most this fraction of non-zeros (numba), else BLAS
SPARSE_TRANSPOSE_DENSITY = 0.25  # numba wins below ~30 % (512 rows, 32->16 ch 3x3 s2: 202 vs 222 ms at 30 %)
from .network import Affine, AvgPool2d, Conv2d, ElementwiseAffine, Layer, Reshape, Transpose

Shape = tuple[int, ...]


class LinearOp:
    """y = L x + bias on flattened vectors, applied to blocks of rows."""

    in_shape: Shape
    out_shape: Shape
    bias: np.ndarray
    #: the largest number of products summed into one output (for rounding-error bounds)
    fan_in: int
    #: True when float evaluation is exact (permutations): no rounding-error term needed
    exact: bool = False
    #: the largest number of outputs one input reaches: the length of the sums in Lᵀ (back-substitution)
    fan_out: int = 1

    @cached_property
    def n_in(self) -> int:
        return int(np.prod(self.in_shape, dtype=np.int64))

    @cached_property
    def n_out(self) -> int:
        return int(np.prod(self.out_shape, dtype=np.int64))

    def apply(self, rows: np.ndarray) -> np.ndarray:
        """L applied to each row: (k, n_in) -> (k, n_out)."""
        raise NotImplementedError

    def apply_abs(self, rows: np.ndarray) -> np.ndarray:
        """|L| applied to each row: (k, n_in) -> (k, n_out)."""
        raise NotImplementedError

    def apply_transpose(self, rows: np.ndarray) -> np.ndarray:
        """Lᵀ applied to each row, i.e. rows @ L: (k, n_out) -> (k, n_in)."""
        raise NotImplementedError

    def apply_sparse(self, rows: sp.csr_matrix) -> sp.csr_matrix | np.ndarray:
        """L applied to each row of a CSR block; CSR out where rows stay sparse, else dense."""
        return self.apply(rows.toarray())


@dataclass(frozen=True, eq=False)
class DenseOp(LinearOp):
    """An explicit matrix L (n_out, n_in)."""

    matrix: np.ndarray
    bias: np.ndarray
    in_shape: Shape
    out_shape: Shape

    @property
    def fan_in(self) -> int:
        return self.matrix.shape[1]

    @property
    def fan_out(self) -> int:
        return self.matrix.shape[0]

    @cached_property
    def abs_matrix(self) -> np.ndarray | None:
        """|L| kept when small; large matrices get |L| chunk by chunk at each use (no weight-sized copy)."""
        return np.abs(self.matrix) if self.matrix.nbytes <= CACHED_ABS_BYTES else None

    def apply(self, rows):
        return rows @ self.matrix.T

    def apply_abs(self, rows):
        if self.abs_matrix is not None:
            return rows @ self.abs_matrix.T
        out = np.empty((rows.shape[0], self.matrix.shape[0]))
        step = max(1, CACHED_ABS_BYTES // (8 * self.matrix.shape[1]))
        for start in range(0, self.matrix.shape[0], step):
            out[:, start:start + step] = rows @ np.abs(self.matrix[start:start + step]).T
        return out

    def apply_transpose(self, rows):
        return rows @ self.matrix

    def apply_sparse(self, rows):
        """A dense matrix fills every row: sparse x dense product, dense out."""
        return np.asarray(rows @ self.matrix.T)


@dataclass(frozen=True, eq=False)
class ConvOp(LinearOp):
    """A 2-d convolution (no bias) on rows reshaped to (C, H, W)."""

    layer: Conv2d
    in_shape: Shape
    out_shape: Shape

    @cached_property
    def bias(self) -> np.ndarray:
        return np.repeat(self.layer.bias, self.out_shape[1] * self.out_shape[2])

    @cached_property
    def abs_weight(self) -> np.ndarray:
        return np.abs(self.layer.weight)

    @cached_property
    def work_bytes_per_row(self) -> int:
        """Temporaries of the im2col path per row (for block sizes under a memory budget)."""
        return conv2d_work_bytes(1, self.in_shape[0], self.layer.weight.shape, self.out_shape[1:], self.layer.groups)

    @property
    def fan_in(self) -> int:
        w = self.layer.weight
        return w.shape[1] * w.shape[2] * w.shape[3]

    def _conv(self, rows, weight):
        c = self.layer
        x = rows.reshape((rows.shape[0],) + tuple(self.in_shape))
        return conv2d_forward(x, weight, None, c.stride, c.padding, c.dilation, c.groups).reshape(rows.shape[0], -1)

    def apply(self, rows):
        return self._conv(rows, self.layer.weight)

    def apply_abs(self, rows):
        return self._conv(rows, self.abs_weight)

    def apply_transpose(self, rows):
        """Rows mostly zero (back-substitution near its start) are scattered by a numba kernel that
        skips zeros; dense rows go through BLAS (``conv2d_transpose``) in chunks of bounded size."""
        rows = np.ascontiguousarray(rows, dtype=np.float64)
        k = rows.shape[0]
        sample = rows[::max(1, k // 16)]  # the density of a few rows decides the path
        if k and np.count_nonzero(sample) <= SPARSE_TRANSPOSE_DENSITY * sample.size:
            c = self.layer
            out = np.empty((k, self.n_in))
            return conv2d_transpose_rows(rows, np.ascontiguousarray(c.weight), tuple(self.in_shape),
                                         tuple(self.out_shape[1:]), c.stride, c.padding, c.dilation, c.groups, out)
        per_row = 8 * (self.layer.weight.shape[1] * self.layer.weight.shape[2] * self.layer.weight.shape[3]
                       * self.out_shape[1] * self.out_shape[2] * self.layer.groups + self.n_in)
        step = max(1, IM2COL_CHUNK_BYTES // max(per_row, 1))
        out = np.empty((k, self.n_in))
        for start in range(0, k, step):
            block = rows[start:start + step]
            out[start:start + step] = conv2d_transpose(block.reshape((len(block),) + tuple(self.out_shape)),
                                                       self.layer, tuple(self.in_shape)).reshape(len(block), -1)
        return out

    @cached_property
    def fan_out(self) -> int:
        """Most outputs one input reaches: cout_g * ceil(KH/sh) * ceil(KW/sw)."""
        c = self.layer
        kh, kw = c.weight.shape[2:]
        return (c.weight.shape[0] // c.groups) * -(-kh // c.stride[0]) * -(-kw // c.stride[1])

    def apply_sparse(self, rows):
        """Each non-zero scattered through the kernel window (numba CSR-conv kernel), CSR out."""
        return self._sparse_conv(rows, self.layer.weight)

    def _sparse_conv(self, rows, weight):
        c = self.layer
        return csr_conv2d_matrix(rows, weight, tuple(self.in_shape), tuple(self.out_shape), c.stride, c.padding,
                                 c.dilation, c.groups)


def conv2d_transpose(y: np.ndarray, conv: Conv2d, in_shape: Shape) -> np.ndarray:
    """Adjoint of the convolution: x[c, i, j] = sum of w[o, c, p, q] y[o, a, b] over windows hitting (i, j)."""
    k = y.shape[0]
    c_in, h, w = in_shape
    out_ch, cin_g, kh, kw = conv.weight.shape
    _, oh, ow = y.shape[1:]
    sh, sw = conv.stride
    dh, dw = conv.dilation
    top, left, bottom, right = conv.padding
    padded = np.zeros((k, c_in, h + top + bottom, w + left + right))
    cout_g = out_ch // conv.groups
    for g in range(conv.groups):
        yg = y[:, g * cout_g:(g + 1) * cout_g].reshape(k, cout_g, oh * ow)
        wg = conv.weight[g * cout_g:(g + 1) * cout_g].reshape(cout_g, cin_g * kh * kw)
        # one BLAS product for all rows (a batched matmul is one small product per row: slow, and much
        # slower still when the other core is busy); the transposed copy is cout_g/(cin_g kh kw) of cols
        rows = np.ascontiguousarray(yg.transpose(0, 2, 1)).reshape(k * oh * ow, cout_g)
        cols = (rows @ wg).reshape(k, oh * ow, cin_g * kh * kw)
        col2im_add(cols, ow, kh, kw, sh, sw, dh, dw, padded[:, g * cin_g:(g + 1) * cin_g])
    return padded[:, :, top:top + h, left:left + w]


@dataclass(frozen=True, eq=False)
class DiagonalOp(LinearOp):
    """Elementwise y = s * x + t."""

    scale: np.ndarray
    bias: np.ndarray
    in_shape: Shape
    out_shape: Shape
    fan_in: int = 1

    def apply(self, rows):
        return rows * self.scale

    def apply_abs(self, rows):
        return rows * np.abs(self.scale)

    def apply_transpose(self, rows):
        return rows * self.scale

    def apply_sparse(self, rows):
        out = rows.copy()
        out.data *= self.scale[out.indices]
        return out


@dataclass(frozen=True, eq=False)
class GatherOp(LinearOp):
    """A permutation of neurons: y[i] = x[index[i]] (Reshape: identity; Transpose)."""

    index: np.ndarray | None
    in_shape: Shape
    out_shape: Shape
    fan_in: int = 1
    exact: bool = True

    @cached_property
    def bias(self) -> np.ndarray:
        return np.zeros(self.n_out)

    def apply(self, rows):
        return rows if self.index is None else rows[:, self.index]

    apply_abs = apply

    def apply_transpose(self, rows):
        if self.index is None:
            return rows
        out = np.empty_like(rows)
        out[:, self.index] = rows
        return out

    def apply_sparse(self, rows):
        return rows if self.index is None else rows[:, self.index].tocsr()


@dataclass(frozen=True, eq=False)
class ColumnSelectOp(LinearOp):
    """y[o] = scale[o] · x[index[o]]: each output copies one input, scaled (MaxPool's kept inputs)."""

    index: np.ndarray
    scale: np.ndarray
    in_shape: Shape
    out_shape: Shape
    fan_in: int = 1

    @cached_property
    def bias(self) -> np.ndarray:
        return np.zeros(self.n_out)

    def apply(self, rows):
        return rows[:, self.index] * self.scale

    def apply_abs(self, rows):
        return rows[:, self.index] * np.abs(self.scale)

    def apply_transpose(self, rows):
        out = np.zeros((rows.shape[0], self.n_in))
        np.add.at(out.T, self.index, (rows * self.scale).T)
        return out

    @cached_property
    def fan_out(self) -> int:
        return int(np.bincount(self.index, minlength=1).max()) if len(self.index) else 1

    def apply_sparse(self, rows):
        out = rows[:, self.index].tocsr()
        out.data *= self.scale[out.indices]
        out.eliminate_zeros()
        return out


@dataclass(frozen=True, eq=False)
class AvgPoolOp(LinearOp):
    """Average pooling as a depthwise convolution with weight 1/divisor."""

    layer: AvgPool2d
    in_shape: Shape
    out_shape: Shape

    @property
    def bias(self) -> np.ndarray:
        return np.zeros(self.n_out)

    @property
    def fan_in(self) -> int:
        return self.layer.kernel[0] * self.layer.kernel[1]

    @property
    def fan_out(self) -> int:
        (kh, kw), (sh, sw) = self.layer.kernel, self.layer.stride
        return -(-kh // sh) * -(-kw // sw)

    def _sum_conv(self) -> Conv2d:
        c = self.in_shape[0]
        ones = np.ones((c, 1) + tuple(self.layer.kernel))
        return Conv2d(ones, np.zeros(c), self.layer.stride, self.layer.padding, (1, 1), c)

    def _divisors(self) -> np.ndarray:
        return np.broadcast_to(self.layer.divisors(self.in_shape[1:]), self.out_shape).ravel()

    def apply(self, rows):
        return ConvOp(self._sum_conv(), self.in_shape, self.out_shape).apply(rows) / self._divisors()

    apply_abs = apply

    def apply_transpose(self, rows):
        return ConvOp(self._sum_conv(), self.in_shape, self.out_shape).apply_transpose(rows / self._divisors())

    def apply_sparse(self, rows):
        out = ConvOp(self._sum_conv(), self.in_shape, self.out_shape).apply_sparse(rows)
        out.data /= self._divisors()[out.indices]
        return out


OpBuilder = Callable[[Layer, Shape, Shape], LinearOp]
LINEAR_OPS: dict[type[Layer], OpBuilder] = {
    Affine: lambda l, i, o: DenseOp(l.weight, l.bias, i, o),
    Conv2d: lambda l, i, o: ConvOp(l, i, o),
    ElementwiseAffine: lambda l, i, o: DiagonalOp(l.scale.ravel(), l.shift.ravel(), i, o),
    Reshape: lambda l, i, o: GatherOp(None, i, o),
    Transpose: lambda l, i, o: GatherOp(np.arange(int(np.prod(i))).reshape(i).transpose(l.perm).ravel(), i, o),
    AvgPool2d: lambda l, i, o: AvgPoolOp(l, i, o),
}


def is_linear(layer: Layer) -> bool:
    return type(layer) in LINEAR_OPS


#: operators built so far, per layer (weakly: they go with their layer) and input shape
_OPS: "weakref.WeakKeyDictionary[Layer, dict[Shape, LinearOp]]" = weakref.WeakKeyDictionary()


def linear_op(layer: Layer, in_shape: Shape) -> LinearOp:
    """The linear operator of a linear layer applied to inputs of per-sample shape ``in_shape``.

    Operators are cached per (layer, shape), so derived arrays (|W|, repeated biases) are built once
    per network rather than once per analysis.
    """
    in_shape = tuple(int(d) for d in in_shape)
    per_layer = _OPS.setdefault(layer, {})
    op = per_layer.get(in_shape)
    if op is None:
        try:
            build = LINEAR_OPS[type(layer)]
        except KeyError:
            raise TypeError(f"{type(layer).__name__} is not a linear layer") from None
        op = per_layer[in_shape] = build(layer, in_shape, tuple(layer.output_shape(in_shape)))
    return op


__all__ = ["LinearOp", "DenseOp", "ConvOp", "DiagonalOp", "GatherOp", "ColumnSelectOp", "AvgPoolOp", "linear_op", "is_linear",
           "conv2d_transpose", "window_output_hw"]
