"""Vector-Jacobian products of the IR in numpy (reverse-mode differentiation of a batch).

``vjp(net, x, cotangent)`` is the gradient of ``cotangent · net(x)`` with respect to ``x``, one
row per sample; ``node_vjp`` does the same for a linear functional of any node's output, and
``functional_vjp`` for a sum of functionals of several nodes at once (each sample of the batch
may seed a different node, so one backward pass serves many targets). The forward values come
from ``net.activations(x)``.

Each layer type has one backward rule in ``BACKWARD``:
``rule(layer, inputs, output, grad_output) -> grads of inputs`` on batched arrays of the
per-sample shapes. Linear layers use ``absint.linear.linear_op(...).apply_transpose``. At the
kinks the rules pick a subgradient: ReLU'(0) = 0, and MaxPool2d sends a window's gradient to the
first position holding its maximum.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from .errors import ShapeError
from .im2col import windows
from .linear import linear_op
from .network import (NETWORK_INPUT, Add, Affine, AvgPool2d, Conv2d, ElementwiseAffine, Layer, MaxPool2d,
                      Network, ReLU, Reshape, Sigmoid, Tanh, Transpose)

__all__ = ["BACKWARD", "vjp", "node_vjp", "functional_vjp", "output_gradient", "register_backward"]

#: rule(layer, inputs, output, grad_output) -> one gradient per input, each of its input's shape
BackwardRule = Callable[[Layer, tuple[np.ndarray, ...], np.ndarray, np.ndarray], tuple[np.ndarray, ...]]
BACKWARD: dict[type[Layer], BackwardRule] = {}


def register_backward(*layers: type[Layer]) -> Callable[[BackwardRule], BackwardRule]:
    def add(rule: BackwardRule) -> BackwardRule:
        for layer in layers:
            BACKWARD[layer] = rule
        return rule
    return add


def _rule(layer: Layer) -> BackwardRule:
    for cls in type(layer).__mro__:
        rule = BACKWARD.get(cls)
        if rule is not None:
            return rule
    raise NotImplementedError(f"no backward rule for {type(layer).__name__} layers; "
                              f"supported: {', '.join(sorted(c.__name__ for c in BACKWARD))}")


# ----------------------------------------------------------------------------- rules
@register_backward(Affine, Conv2d, ElementwiseAffine, Reshape, Transpose, AvgPool2d)
def _linear_backward(layer, inputs, output, g):
    """Lᵀ g for y = L x + b."""
    (x,) = inputs
    op = linear_op(layer, x.shape[1:])
    return (op.apply_transpose(g.reshape(g.shape[0], -1)).reshape(x.shape),)


@register_backward(ReLU)
def _relu_backward(layer, inputs, output, g):
    return (g * (inputs[0] > 0),)


@register_backward(Sigmoid)
def _sigmoid_backward(layer, inputs, output, g):
    return (g * output * (1.0 - output),)


@register_backward(Tanh)
def _tanh_backward(layer, inputs, output, g):
    return (g * (1.0 - output * output),)


@register_backward(Add)
def _add_backward(layer, inputs, output, g):
    return g, g


@register_backward(MaxPool2d)
def _maxpool_backward(layer: MaxPool2d, inputs, output, g):
    """Each window's gradient goes to (the first of) its argmax input."""
    (x,) = inputs
    batch, n_in = x.shape[0], int(np.prod(x.shape[1:]))
    k = layer.kernel[0] * layer.kernel[1]
    win = windows(x, layer.kernel, layer.stride, layer.padding, layer.dilation, pad_value=-np.inf)
    win = win.reshape(batch, -1, k)                                   # (B, C*OH*OW, K)
    index = np.arange(n_in, dtype=np.float64).reshape((1,) + x.shape[1:])
    src = windows(index, layer.kernel, layer.stride, layer.padding, layer.dilation, pad_value=-1.0)
    src = src.reshape(-1, k).astype(np.int64)                         # (C*OH*OW, K)
    best = np.argmax(win, axis=2)                                     # (B, C*OH*OW)
    target = src[np.arange(src.shape[0])[None, :], best]              # flat input index, -1 = padding
    gflat = g.reshape(batch, -1)
    keep = target >= 0
    flat = (target + n_in * np.arange(batch)[:, None])[keep]
    grad = np.bincount(flat, weights=gflat[keep], minlength=batch * n_in)
    return (grad.reshape(x.shape),)


# ----------------------------------------------------------------------------- drivers
def _backward(net: Network, x: np.ndarray, acts: list[np.ndarray], seeds: Mapping[int, np.ndarray]) -> np.ndarray:
    """Gradient with respect to ``x`` of Σ_k seeds[k] · acts[k] (per sample)."""
    batch = x.shape[0]
    grads: list[np.ndarray | None] = [None] * len(net.nodes)
    for k, seed in seeds.items():
        if not -len(net.nodes) <= k < len(net.nodes):
            raise IndexError(f"node index {k} out of range for a network of {len(net.nodes)} nodes")
        k %= len(net.nodes)
        seed = np.asarray(seed, dtype=np.float64)
        size = net.nodes[k].size
        if seed.ndim == 1 and seed.size == size:
            seed = np.broadcast_to(seed, (batch, size))
        if seed.shape[0] != batch or seed[0].size != size:
            raise ShapeError(f"cotangent of shape {seed.shape} does not fit node {k} "
                             f"({net.nodes[k].name!r}, {size} values) and batch {batch}")
        seed = seed.reshape(acts[k].shape)
        grads[k] = seed.copy() if grads[k] is None else grads[k] + seed
    grad_x = np.zeros_like(x)
    last = max((k % len(net.nodes) for k in seeds), default=-1)
    for idx in range(last, -1, -1):
        g = grads[idx]
        if g is None:
            continue
        grads[idx] = None
        node = net.nodes[idx]
        args = tuple(x if i == NETWORK_INPUT else acts[i] for i in node.inputs)
        for i, gi in zip(node.inputs, _rule(node.layer)(node.layer, args, acts[idx], g)):
            if i == NETWORK_INPUT:
                grad_x += gi
            elif grads[i] is None:
                grads[i] = gi
            else:
                grads[i] = grads[i] + gi
    return grad_x


def _prepare(net: Network, x) -> tuple[np.ndarray, tuple[int, ...]]:
    """x as a batch (batch, *input_shape), and the shape the gradient is returned in (that of x)."""
    arr = np.asarray(x, dtype=np.float64)
    return net._as_batch(arr), arr.shape


def functional_vjp(net: Network, x, cotangents: Mapping[int, np.ndarray]) -> np.ndarray:
    """d/dx of Σ_k cotangents[k] · node_k(x), for a batch x; cotangents[k] is (batch, node_k.size)
    (or (node_k.size,), shared by the batch). Returns an array of x's shape."""
    batch, shape = _prepare(net, x)
    acts = net.activations(batch)
    return _backward(net, batch, acts, cotangents).reshape(shape)


def node_vjp(net: Network, x, node_index: int, cotangent) -> np.ndarray:
    """d(cotangent · node(x))/dx for node ``node_index`` (negative counts from the end)."""
    return functional_vjp(net, x, {node_index: cotangent})


def vjp(net: Network, x, cotangent) -> np.ndarray:
    """d(cotangent · net(x))/dx: x (batch, *input_shape) or (batch, input_size), cotangent (batch, n_out)."""
    return node_vjp(net, x, len(net.nodes) - 1, cotangent)


def output_gradient(net: Network, x, weights) -> np.ndarray:
    """Gradient of the output functional ``weights · y`` (weights (n_out,) or (batch, n_out)) at each x."""
    return vjp(net, x, weights)
