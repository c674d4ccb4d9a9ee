"""The CIFAR-shaped ``cifar_conv(w)`` family: untrained, seeded, He-initialised ReLU CNNs.

Input (3, 32, 32). Conv(3->w, 3x3, s1, p1) ReLU Conv(w->2w, 3x3, s2, p1) ReLU
Conv(2w->2w, 3x3, s1, p1) ReLU Flatten Affine(2w*16*16 -> 512) ReLU Affine(512 -> 10).
Weights ~ N(0, 2 / fan_in) rounded to float32, biases 0. Built on demand (w = 64 has
~17M parameters), never bundled. Experiments use the box ``Box.linf(cifar_conv_input(),
CIFAR_EPS)`` with ``CIFAR_EPS = 2/255``.
"""

from __future__ import annotations

import numpy as np

from ..network import Affine, Conv2d, Network, Node, ReLU, Reshape
from .train import round_to_float32

__all__ = ["cifar_conv", "cifar_conv_input", "CIFAR_SHAPE", "CIFAR_EPS", "CIFAR_WIDTHS"]

CIFAR_SHAPE = (3, 32, 32)
CIFAR_EPS = 2.0 / 255.0
CIFAR_WIDTHS = (16, 32, 64)
HIDDEN = 512
N_CLASSES = 10


def _he(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    """He-normal weights N(0, 2 / fan_in), rounded to float32-representable values."""
    return round_to_float32(rng.standard_normal(shape) * np.sqrt(2.0 / fan_in))


def _conv(rng: np.random.Generator, c_in: int, c_out: int, stride: int) -> Conv2d:
    weight = _he(rng, (c_out, c_in, 3, 3), c_in * 9)
    return Conv2d(weight, np.zeros(c_out), stride=(stride, stride), padding=(1, 1, 1, 1))


def _affine(rng: np.random.Generator, n_in: int, n_out: int) -> Affine:
    return Affine(_he(rng, (n_out, n_in), n_in), np.zeros(n_out))


def cifar_conv(w: int, seed: int = 0) -> Network:
    """The width-``w`` member of the family (any w >= 1; the experiments use 16, 32, 64)."""
    if int(w) != w or w < 1:
        raise ValueError(f"width must be a positive integer, got {w!r}")
    w = int(w)
    rng = np.random.default_rng(seed)
    flat = 2 * w * 16 * 16
    layers = [("conv1", _conv(rng, 3, w, 1)), ("relu1", ReLU()),
              ("conv2", _conv(rng, w, 2 * w, 2)), ("relu2", ReLU()),
              ("conv3", _conv(rng, 2 * w, 2 * w, 1)), ("relu3", ReLU()),
              ("flatten", Reshape((flat,))),
              ("fc1", _affine(rng, flat, HIDDEN)), ("relu4", ReLU()),
              ("fc2", _affine(rng, HIDDEN, N_CLASSES))]
    nodes = [Node(name, layer, (k - 1,)) for k, (name, layer) in enumerate(layers)]
    return Network(CIFAR_SHAPE, nodes, name=f"cifar_conv_w{w}")


def cifar_conv_input(seed: int = 0) -> np.ndarray:
    """A seeded uniform-random image in [0, 1] of shape (3, 32, 32), float32-representable."""
    return round_to_float32(np.random.default_rng(seed).random(CIFAR_SHAPE))
