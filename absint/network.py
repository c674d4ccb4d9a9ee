"""The network IR: layer dataclasses and ``Network``, a topologically ordered list of nodes.

Every layer is a frozen dataclass holding float64, read-only parameters and knows its
concrete semantics on a batch: ``forward(*xs)`` with each ``x`` of shape
(batch, *input_shape). Shapes are per sample (no batch axis), channels first.
Abstract domains dispatch on the layer *type* through their own registries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .errors import ShapeError
from .im2col import Pads, Pair, conv2d_forward, window_output_hw, windows

Shape = tuple[int, ...]

#: index used in ``Node.inputs`` for the network input.
NETWORK_INPUT = -1


def _frozen_array(a, ndim: int | None = None, name: str = "array") -> np.ndarray:
    arr = np.array(a, dtype=np.float64, order="C", copy=True)
    if ndim is not None and arr.ndim != ndim:
        raise ShapeError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    arr.setflags(write=False)
    return arr


class Layer:
    """Base of the IR layer types. Subclasses are frozen dataclasses."""

    n_inputs: ClassVar[int] = 1

    def output_shape(self, *input_shapes: Shape) -> Shape:
        """Per-sample output shape for the given per-sample input shapes (default: unchanged)."""
        return input_shapes[0]

    def forward(self, *xs: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:
        """Short parameter summary for ``absint info``."""
        return ""

    @property
    def n_params(self) -> int:
        return 0


def _check_window(stride, padding, dilation, what: str) -> None:
    """Strides and dilations are two positive integers, paddings four non-negative ones."""
    if len(stride) != 2 or len(dilation) != 2 or len(padding) != 4:
        raise ShapeError(f"{what} needs 2 strides, 2 dilations and 4 paddings, got {stride}, {dilation}, {padding}")
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ShapeError(f"{what} strides {stride} and dilations {dilation} must be positive and "
                         f"paddings {padding} non-negative")


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow: exp is only taken of non-positive numbers."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def _size(shape: Shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


@dataclass(frozen=True, eq=False)
class Affine(Layer):
    """y = W x + b on the flattened input; W is (out, in)."""

    weight: np.ndarray
    bias: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "weight", _frozen_array(self.weight, 2, "Affine weight"))
        object.__setattr__(self, "bias", _frozen_array(self.bias, 1, "Affine bias"))
        if self.bias.shape[0] != self.weight.shape[0]:
            raise ShapeError(f"Affine bias has {self.bias.shape[0]} entries for {self.weight.shape[0]} outputs")

    def output_shape(self, in_shape: Shape) -> Shape:
        if _size(in_shape) != self.weight.shape[1]:
            raise ShapeError(f"Affine expects {self.weight.shape[1]} inputs, got shape {in_shape}")
        return (self.weight.shape[0],)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(x.shape[0], self.weight.shape[1]) @ self.weight.T + self.bias

    def describe(self) -> str:
        return f"{self.weight.shape[1]}->{self.weight.shape[0]}"

    @property
    def n_params(self) -> int:
        return self.weight.size + self.bias.size


@dataclass(frozen=True, eq=False)
class Conv2d(Layer):
    """2-d cross-correlation (ONNX Conv) of a (C, H, W) input; weight (O, C/groups, KH, KW)."""

    weight: np.ndarray
    bias: np.ndarray
    stride: Pair = (1, 1)
    padding: Pads = (0, 0, 0, 0)
    dilation: Pair = (1, 1)
    groups: int = 1

    def __post_init__(self):
        object.__setattr__(self, "weight", _frozen_array(self.weight, 4, "Conv2d weight"))
        object.__setattr__(self, "bias", _frozen_array(self.bias, 1, "Conv2d bias"))
        object.__setattr__(self, "stride", tuple(int(s) for s in self.stride))
        object.__setattr__(self, "padding", tuple(int(p) for p in self.padding))
        object.__setattr__(self, "dilation", tuple(int(d) for d in self.dilation))
        object.__setattr__(self, "groups", int(self.groups))
        _check_window(self.stride, self.padding, self.dilation, type(self).__name__)
        if (self.groups < 1 or self.weight.shape[0] % self.groups
                or self.bias.shape[0] != self.weight.shape[0]):
            raise ShapeError(f"Conv2d weight {self.weight.shape}, bias {self.bias.shape} and groups "
                             f"{self.groups} do not fit")

    @property
    def kernel(self) -> Pair:
        return self.weight.shape[2], self.weight.shape[3]

    def output_shape(self, in_shape: Shape) -> Shape:
        if len(in_shape) != 3 or in_shape[0] != self.weight.shape[1] * self.groups:
            raise ShapeError(f"Conv2d with weight {self.weight.shape} and groups {self.groups} "
                             f"cannot take input shape {in_shape}")
        oh, ow = window_output_hw(in_shape[1:], self.kernel, self.stride, self.padding, self.dilation)
        if oh < 1 or ow < 1:
            raise ShapeError(f"Conv2d output would be empty for input shape {in_shape}")
        return (self.weight.shape[0], oh, ow)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return conv2d_forward(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def describe(self) -> str:
        o, i, kh, kw = self.weight.shape
        text = f"{i * self.groups}->{o} k{kh}x{kw} s{self.stride[0]}x{self.stride[1]} p{','.join(map(str, self.padding))}"
        if self.dilation != (1, 1):
            text += f" d{self.dilation[0]}x{self.dilation[1]}"
        if self.groups != 1:
            text += f" g{self.groups}"
        return text

    @property
    def n_params(self) -> int:
        return self.weight.size + self.bias.size


@dataclass(frozen=True, eq=False)
class ReLU(Layer):
    """y = max(x, 0), elementwise."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0.0)


@dataclass(frozen=True, eq=False)
class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x)), elementwise."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return sigmoid(x)


@dataclass(frozen=True, eq=False)
class Tanh(Layer):
    """y = tanh(x), elementwise."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(x)


@dataclass(frozen=True, eq=False)
class Reshape(Layer):
    """Reinterpret the (C-order) data in a new shape; Flatten is Reshape((n,))."""

    shape: Shape

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))

    def output_shape(self, in_shape: Shape) -> Shape:
        if _size(in_shape) != _size(self.shape):
            raise ShapeError(f"cannot reshape {in_shape} into {self.shape}")
        return self.shape

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x.reshape((x.shape[0],) + self.shape)

    def describe(self) -> str:
        return "x".join(map(str, self.shape))


@dataclass(frozen=True, eq=False)
class Transpose(Layer):
    """Permute the per-sample axes: out.shape[i] = in.shape[perm[i]] (a permutation of neurons)."""

    perm: tuple[int, ...]

    def __post_init__(self):
        object.__setattr__(self, "perm", tuple(int(p) for p in self.perm))

    def output_shape(self, in_shape: Shape) -> Shape:
        if sorted(self.perm) != list(range(len(in_shape))):
            raise ShapeError(f"Transpose perm {self.perm} does not fit input shape {in_shape}")
        return tuple(in_shape[p] for p in self.perm)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x.transpose((0,) + tuple(p + 1 for p in self.perm)))

    def describe(self) -> str:
        return "perm " + ",".join(map(str, self.perm))


@dataclass(frozen=True, eq=False)
class ElementwiseAffine(Layer):
    """y = scale * x + shift elementwise; scale and shift have the input shape.

    Input normalisation (Sub/Div/Mul/Add by constants) and unfoldable BatchNorm.
    """

    scale: np.ndarray
    shift: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "scale", _frozen_array(self.scale, name="scale"))
        object.__setattr__(self, "shift", _frozen_array(self.shift, name="shift"))
        if self.scale.shape != self.shift.shape:
            raise ShapeError(f"ElementwiseAffine scale {self.scale.shape} and shift {self.shift.shape} differ")

    def output_shape(self, in_shape: Shape) -> Shape:
        if tuple(in_shape) != self.scale.shape:
            raise ShapeError(f"ElementwiseAffine of shape {self.scale.shape} applied to {in_shape}")
        return tuple(in_shape)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x * self.scale + self.shift

    def is_identity(self) -> bool:
        return bool(np.all(self.scale == 1.0) and np.all(self.shift == 0.0))

    @property
    def n_params(self) -> int:
        return self.scale.size + self.shift.size


@dataclass(frozen=True, eq=False)
class Add(Layer):
    """y = a + b of two tensors of the same shape (residual connections)."""

    n_inputs: ClassVar[int] = 2

    def output_shape(self, a: Shape, b: Shape) -> Shape:
        if tuple(a) != tuple(b):
            raise ShapeError(f"Add of tensors with different shapes {a} and {b}")
        return tuple(a)

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a + b


@dataclass(frozen=True, eq=False)
class _Pool2d(Layer):
    kernel: Pair
    stride: Pair
    padding: Pads = (0, 0, 0, 0)

    def __post_init__(self):
        for name in ("kernel", "stride", "padding"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if len(self.kernel) != 2 or min(self.kernel) < 1:
            raise ShapeError(f"{type(self).__name__} kernel {self.kernel} must be two positive sizes")
        _check_window(self.stride, self.padding, (1, 1), type(self).__name__)

    def output_shape(self, in_shape: Shape) -> Shape:
        if len(in_shape) != 3:
            raise ShapeError(f"{type(self).__name__} needs a (C, H, W) input, got {in_shape}")
        oh, ow = window_output_hw(in_shape[1:], self.kernel, self.stride, self.padding, self._dilation())
        if oh < 1 or ow < 1:
            raise ShapeError(f"{type(self).__name__} output would be empty for input shape {in_shape}")
        return (in_shape[0], oh, ow)

    def _dilation(self) -> Pair:
        return (1, 1)

    def describe(self) -> str:
        return (f"k{self.kernel[0]}x{self.kernel[1]} s{self.stride[0]}x{self.stride[1]} "
                f"p{','.join(map(str, self.padding))}")


@dataclass(frozen=True, eq=False)
class AvgPool2d(_Pool2d):
    """Mean over each window; padded cells count in the divisor iff ``count_include_pad``."""

    count_include_pad: bool = False

    def forward(self, x: np.ndarray) -> np.ndarray:
        win = windows(x, self.kernel, self.stride, self.padding)
        total = win.sum(axis=(-2, -1))
        if self.count_include_pad or not any(self.padding):
            return total / (self.kernel[0] * self.kernel[1])
        return total / self.divisors(x.shape[-2:])

    def divisors(self, hw: Pair) -> np.ndarray:
        """Number of real (unpadded) cells in each output window, shape (OH, OW)."""
        if self.count_include_pad:
            oh, ow = window_output_hw(hw, self.kernel, self.stride, self.padding)
            return np.full((oh, ow), float(self.kernel[0] * self.kernel[1]))
        ones = np.ones((1,) + tuple(hw))
        return windows(ones, self.kernel, self.stride, self.padding).sum(axis=(-2, -1))[0]


@dataclass(frozen=True, eq=False)
class MaxPool2d(_Pool2d):
    """Maximum over each window; padding never wins (padded with -inf)."""

    dilation: Pair = (1, 1)

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "dilation", tuple(int(v) for v in self.dilation))
        _check_window(self.stride, self.padding, self.dilation, type(self).__name__)

    def _dilation(self) -> Pair:
        return self.dilation

    def forward(self, x: np.ndarray) -> np.ndarray:
        win = windows(x, self.kernel, self.stride, self.padding, self.dilation, pad_value=-np.inf)
        return win.max(axis=(-2, -1))


LAYER_TYPES: tuple[type[Layer], ...] = (Affine, Conv2d, ReLU, Sigmoid, Tanh, Reshape, Transpose,
                                         ElementwiseAffine, Add, AvgPool2d, MaxPool2d)


@dataclass(frozen=True, eq=False)
class Node:
    """One layer application: ``inputs`` are indices of earlier nodes (or NETWORK_INPUT)."""

    name: str
    layer: Layer
    inputs: tuple[int, ...]
    shape: Shape = field(default=())

    @property
    def size(self) -> int:
        return _size(self.shape)


class Network:
    """A feed-forward network: topologically ordered nodes; the last node is the output.

    ``forward(x)`` evaluates a batch ``x`` of shape (batch, *input_shape) or
    (batch, input_size) in float64 and returns (batch, output_size).
    """

    def __init__(self, input_shape: Shape, nodes: list[Node] | tuple[Node, ...], name: str = ""):
        self.input_shape: Shape = tuple(int(s) for s in input_shape)
        self.name = name
        checked = []
        for idx, node in enumerate(nodes):
            if len(node.inputs) != node.layer.n_inputs:
                raise ShapeError(f"node {node.name!r}: {type(node.layer).__name__} takes "
                                 f"{node.layer.n_inputs} inputs, got {len(node.inputs)}")
            for i in node.inputs:
                if not (i == NETWORK_INPUT or 0 <= i < idx):
                    raise ShapeError(f"node {node.name!r} reads node {i}, which is not before it")
            in_shapes = [self.input_shape if i == NETWORK_INPUT else checked[i].shape for i in node.inputs]
            try:
                shape = tuple(int(s) for s in node.layer.output_shape(*in_shapes))
            except ShapeError as exc:
                raise ShapeError(f"node {node.name!r}: {exc}") from None
            checked.append(Node(node.name, node.layer, tuple(node.inputs), shape))
        if not checked:
            raise ShapeError("a network needs at least one node")
        self.nodes: tuple[Node, ...] = tuple(checked)

    # ------------------------------------------------------------------ shapes
    @property
    def input_size(self) -> int:
        return _size(self.input_shape)

    @property
    def output_shape(self) -> Shape:
        return self.nodes[-1].shape

    @property
    def output_size(self) -> int:
        return self.nodes[-1].size

    def __len__(self) -> int:
        return len(self.nodes)

    def __repr__(self) -> str:
        kinds = ", ".join(type(n.layer).__name__ for n in self.nodes)
        return f"Network({self.name!r}, input {self.input_shape} -> {self.output_shape}: {kinds})"

    # -------------------------------------------------------------- evaluation
    def _as_batch(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.shape == self.input_shape or (x.ndim == 1 and x.size == self.input_size):
            x = x[None]
        if x.ndim == 2 and x.shape[1] == self.input_size:
            return x.reshape((x.shape[0],) + self.input_shape)
        if x.shape[1:] != self.input_shape:
            raise ShapeError(f"input of shape {x.shape} does not fit the network input {self.input_shape} "
                             f"(expected (batch, *{self.input_shape}) or (batch, {self.input_size}))")
        return x

    def activations(self, x) -> list[np.ndarray]:
        """Values of every node for a batch: a list of arrays (batch, *node.shape)."""
        x = self._as_batch(x)
        values: list[np.ndarray] = []
        for node in self.nodes:
            args = [x if i == NETWORK_INPUT else values[i] for i in node.inputs]
            values.append(node.layer.forward(*args))
        return values

    def forward(self, x) -> np.ndarray:
        """Outputs (batch, output_size) for a batch of inputs, in float64."""
        x = self._as_batch(x)
        values: list[np.ndarray | None] = [None] * len(self.nodes)
        last_use = self._last_uses()
        for idx, node in enumerate(self.nodes):
            args = [x if i == NETWORK_INPUT else values[i] for i in node.inputs]
            values[idx] = node.layer.forward(*args)
            for i in node.inputs:
                if i != NETWORK_INPUT and last_use[i] == idx:
                    values[i] = None  # free intermediate results early
        out = values[-1]
        return out.reshape(out.shape[0], self.output_size)

    def _last_uses(self) -> list[int]:
        last = list(range(len(self.nodes)))
        for idx, node in enumerate(self.nodes):
            for i in node.inputs:
                if i != NETWORK_INPUT:
                    last[i] = max(last[i], idx)
        last[-1] = len(self.nodes)
        return last

    # ----------------------------------------------------------------- summary
    def consumers(self) -> list[list[int]]:
        """For each node, the indices of the nodes that read it."""
        users: list[list[int]] = [[] for _ in self.nodes]
        for idx, node in enumerate(self.nodes):
            for i in node.inputs:
                if i != NETWORK_INPUT:
                    users[i].append(idx)
        return users
