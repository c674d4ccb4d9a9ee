"""Random small networks over every IR operator, and random input boxes (import as ``tests.random_nets``).

``random_network(ops, seed)`` applies the operators named in ``ops`` in order to a small (C, H, W)
input, inserting Reshapes where an operator needs a (C, H, W) tensor; parameters come from a
numpy generator seeded by ``seed`` (so a hypothesis example is reproduced by its ops and seed).
``random_box(shape, mode, seed)`` draws an input box of one of ``BOX_MODES``.
"""

from __future__ import annotations

import numpy as np

from absint.im2col import window_output_hw
from absint.network import (NETWORK_INPUT, Add, Affine, AvgPool2d, Conv2d, ElementwiseAffine, MaxPool2d, Network,
                            Node, ReLU, Reshape, Sigmoid, Tanh, Transpose)

#: operator names: one per IR layer type, "residual" builds Add over two branches from one node
OPS = ("affine", "conv", "relu", "sigmoid", "tanh", "reshape", "transpose", "eltwise", "residual", "avgpool",
       "maxpool")
#: wide / small (most ReLUs stable) / point (zero width) / partial (some zero-width dims) /
#: positive / negative (the whole box on one side of 0, e.g. of an input-level ReLU kink)
BOX_MODES = ("wide", "small", "point", "partial", "positive", "negative")

MAX_NEURONS = 160


def _weights(rng: np.random.Generator, shape, fan_in: int) -> np.ndarray:
    w = rng.normal(size=shape) * np.sqrt(2.0 / max(fan_in, 1))
    if rng.random() < 0.3:
        w[rng.random(shape) < 0.2] = 0.0  # exact zeros: degenerate rows and symbols
    return w


def _factor(n: int, rng: np.random.Generator) -> tuple[int, int]:
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    a = int(rng.choice(divisors))
    return a, n // a


class _Builder:
    def __init__(self, input_shape, rng: np.random.Generator):
        self.rng = rng
        self.input_shape = tuple(input_shape)
        self.nodes: list[Node] = []
        self.cur = NETWORK_INPUT
        self.shape = self.input_shape

    def add(self, layer, inputs=None) -> int:
        inputs = (self.cur,) if inputs is None else tuple(inputs)
        shapes = [self.input_shape if i == NETWORK_INPUT else self.nodes[i].shape for i in inputs]
        shape = tuple(layer.output_shape(*shapes))
        self.nodes.append(Node(f"n{len(self.nodes)}_{type(layer).__name__.lower()}", layer, inputs, shape))
        self.cur, self.shape = len(self.nodes) - 1, shape
        return self.cur

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def to_chw(self) -> None:
        if len(self.shape) != 3:
            a, b = _factor(self.size, self.rng)
            self.add(Reshape((1, a, b)))

    # --------------------------------------------------------------- operators
    def affine(self, n_out: int | None = None) -> None:
        n_out = int(self.rng.integers(1, 13)) if n_out is None else n_out
        self.add(Affine(_weights(self.rng, (n_out, self.size), self.size), self.rng.normal(size=n_out) * 0.5))

    def conv(self, same: bool = False) -> None:
        self.to_chw()
        c, h, w = self.shape
        rng = self.rng
        for _ in range(20):
            groups = int(rng.choice([g for g in (1, 2, 3) if c % g == 0]))
            out = c if same else groups * int(rng.integers(1, 4))
            if same:
                k, stride, dil = (int(rng.choice([1, 3])),) * 2, (1, 1), (1, 1)
                pads = ((k[0] - 1) // 2, (k[1] - 1) // 2) * 2
            else:
                k = tuple(int(v) for v in rng.integers(1, 4, size=2))
                stride = tuple(int(v) for v in rng.integers(1, 3, size=2))
                dil = tuple(int(v) for v in rng.integers(1, 3, size=2))
                pads = tuple(int(v) for v in rng.integers(0, 3, size=4))
            oh, ow = window_output_hw((h, w), k, stride, pads, dil)
            if oh >= 1 and ow >= 1 and out * oh * ow <= MAX_NEURONS:
                break
        else:
            out, groups, k, stride, pads, dil = 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1)
        fan_in = (c // groups) * k[0] * k[1]
        weight = _weights(rng, (out, c // groups) + k, fan_in)
        self.add(Conv2d(weight, rng.normal(size=out) * 0.5, stride, pads, dil, groups))

    def _pool(self, cls) -> None:
        self.to_chw()
        c, h, w = self.shape
        rng = self.rng
        for _ in range(20):
            k = tuple(int(v) for v in rng.integers(1, 4, size=2))
            stride = tuple(int(v) for v in rng.integers(1, 3, size=2))
            pads = tuple(int(rng.integers(0, k[i % 2])) for i in range(4))  # pad < kernel (ONNX)
            dil = tuple(int(v) for v in rng.integers(1, 3, size=2)) if cls is MaxPool2d else (1, 1)
            oh, ow = window_output_hw((h, w), k, stride, pads, dil)
            if oh < 1 or ow < 1:
                continue
            layer = (MaxPool2d(k, stride, pads, dil) if cls is MaxPool2d
                     else AvgPool2d(k, stride, pads, bool(rng.integers(2))))
            if np.isfinite(layer.forward(np.zeros((1, c, h, w)))).all():  # no window wholly in padding
                break
        else:
            layer = cls((1, 1), (1, 1))
        self.add(layer)

    def avgpool(self) -> None:
        self._pool(AvgPool2d)

    def maxpool(self) -> None:
        self._pool(MaxPool2d)

    def relu(self) -> None:
        self.add(ReLU())

    def sigmoid(self) -> None:
        self.add(Sigmoid())

    def tanh(self) -> None:
        self.add(Tanh())

    def eltwise(self) -> None:
        scale = self.rng.normal(size=self.shape) * 1.5
        scale[self.rng.random(self.shape) < 0.1] = 0.0
        self.add(ElementwiseAffine(scale, self.rng.normal(size=self.shape) * 0.5))

    def reshape(self) -> None:
        if len(self.shape) == 3 and self.rng.random() < 0.5:
            c, h, w = self.shape
            self.add(Reshape((c, w, h) if self.rng.random() < 0.5 else (c * h * w,)))
        else:
            a, b = _factor(self.size, self.rng)
            self.add(Reshape((1, a, b)))

    def transpose(self) -> None:
        if len(self.shape) == 1:
            self.add(Reshape(_factor(self.size, self.rng)))
        perm = tuple(int(p) for p in self.rng.permutation(len(self.shape)))
        self.add(Transpose(perm))

    def _same_shape_branch(self, start: int, identity: bool) -> int:
        """One shape-preserving operator applied to node ``start``; returns the branch's last node."""
        self.cur, self.shape = start, self._shape_of(start)
        kind = self.rng.choice(["eltwise", "relu", "tanh", "linear"] + ["identity"] * identity)
        if kind == "identity":
            return start
        if kind == "linear":
            if len(self.shape) == 3 and self.rng.random() < 0.7:
                self.conv(same=True)
            else:
                shape = self.shape
                self.affine(int(np.prod(shape)))
                if len(shape) != 1:
                    self.add(Reshape(shape))
        else:
            getattr(self, str(kind))()
        return self.cur

    def _shape_of(self, i: int):
        return self.input_shape if i == NETWORK_INPUT else self.nodes[i].shape

    def residual(self) -> None:
        root = self.cur
        a = self._same_shape_branch(root, identity=False)
        b = self._same_shape_branch(root, identity=True)
        self.add(Add(), (a, b))

    def shrink(self) -> None:
        """Keep the networks small: an Affine to a few neurons when the current node is large."""
        if self.size > MAX_NEURONS:
            self.affine()


def random_network(ops, seed: int, input_shape=None) -> Network:
    """A network applying ``ops`` (names from ``OPS``) in order, parameters drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    if input_shape is None:
        input_shape = (int(rng.integers(1, 4)), int(rng.integers(2, 7)), int(rng.integers(2, 7)))
    b = _Builder(input_shape, rng)
    for op in ops:
        getattr(b, op)()
        b.shrink()
    if not b.nodes:
        b.affine()
    return Network(input_shape, b.nodes, name="random:" + "-".join(ops))


def random_box(shape, mode: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of the given per-sample shape; see ``BOX_MODES``."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform(-1.5, 1.5, size=shape)
    radius = {"wide": rng.uniform(0.0, 2.0, size=shape), "small": rng.uniform(0.0, 1e-3, size=shape),
              "point": np.zeros(shape), "partial": rng.uniform(0.0, 1.0, size=shape) * (rng.random(shape) < 0.5),
              "positive": rng.uniform(0.0, 1.0, size=shape), "negative": rng.uniform(0.0, 1.0, size=shape)}[mode]
    if mode == "positive":
        centre = radius + rng.uniform(0.0, 1.0, size=shape)
    elif mode == "negative":
        centre = -radius - rng.uniform(0.0, 1.0, size=shape)
    return centre - radius, centre + radius
