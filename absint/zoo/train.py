"""A small, deterministic numpy trainer for the zoo networks (float64, no framework).

Sequential models of ``Dense``, ``Conv``, ``ReLU`` and ``Flatten`` layers, trained by
mini-batch Adam on the mean softmax cross-entropy ``L = -mean_i log softmax(z_i)[y_i]``.
Gradients are hand-written backprop; convolutions use im2col (``absint.im2col.windows``)
forward and its adjoint col2im backward. ``Sequential.to_network`` rounds the trained
parameters to float32-representable float64 values and builds the IR ``Network``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..im2col import Pads, Pair, window_output_hw, windows
from ..network import Affine, Conv2d, Network, Node, ReLU as IRReLU, Reshape

__all__ = ["Dense", "Conv", "ReLU", "Flatten", "Sequential", "AdamConfig", "fit", "accuracy",
           "softmax_cross_entropy", "round_to_float32"]


def round_to_float32(a: np.ndarray) -> np.ndarray:
    """Nearest float32 value of each entry, returned as float64 (exactly representable in float32)."""
    return np.asarray(a, dtype=np.float64).astype(np.float32).astype(np.float64)


def he_normal(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    """He initialisation: N(0, 2 / fan_in)."""
    return rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)


class Dense:
    """y = x Wᵀ + b on flat inputs; backward: dW = gᵀx, db = Σ g, dx = g W."""

    def __init__(self, n_in: int, n_out: int, rng: np.random.Generator):
        self.weight = he_normal(rng, (n_out, n_in), n_in)
        self.bias = np.zeros(n_out)
        self.grads = [np.zeros_like(self.weight), np.zeros_like(self.bias)]
        self._x: np.ndarray | None = None

    @property
    def params(self) -> list[np.ndarray]:
        return [self.weight, self.bias]

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        if train:
            self._x = x
        return x @ self.weight.T + self.bias

    def backward(self, g: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        self.grads[0][...] = g.T @ self._x
        self.grads[1][...] = g.sum(axis=0)
        return g @ self.weight if need_input_grad else None

    def to_ir(self) -> Affine:
        return Affine(round_to_float32(self.weight), round_to_float32(self.bias))


class Conv:
    """2-d cross-correlation y = W ⋆ x + b by im2col: cols (B·OH·OW, C·KH·KW) @ W_matᵀ."""

    def __init__(self, c_in: int, c_out: int, kernel: Pair, rng: np.random.Generator,
                 stride: Pair = (1, 1), padding: Pads = (0, 0, 0, 0)):
        fan_in = c_in * kernel[0] * kernel[1]
        self.weight = he_normal(rng, (c_out, c_in) + tuple(kernel), fan_in)
        self.bias = np.zeros(c_out)
        self.kernel, self.stride, self.padding = tuple(kernel), tuple(stride), tuple(padding)
        self.grads = [np.zeros_like(self.weight), np.zeros_like(self.bias)]
        self._cols: np.ndarray | None = None
        self._in_shape: tuple[int, ...] = ()

    @property
    def params(self) -> list[np.ndarray]:
        return [self.weight, self.bias]

    def _im2col(self, x: np.ndarray) -> tuple[np.ndarray, int, int]:
        win = windows(x, self.kernel, self.stride, self.padding)          # (B, C, OH, OW, KH, KW)
        b, _, oh, ow = win.shape[:4]
        cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(b * oh * ow, -1)   # rows (b, oh, ow)
        return cols, oh, ow

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        cols, oh, ow = self._im2col(x)
        if train:
            self._cols, self._in_shape = cols, x.shape
        out = cols @ self.weight.reshape(self.weight.shape[0], -1).T + self.bias
        return out.reshape(x.shape[0], oh, ow, -1).transpose(0, 3, 1, 2)

    def backward(self, g: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        batch, c_out, oh, ow = g.shape
        gm = g.transpose(0, 2, 3, 1).reshape(-1, c_out)                    # (B·OH·OW, O)
        w_mat = self.weight.reshape(c_out, -1)
        self.grads[0][...] = (gm.T @ self._cols).reshape(self.weight.shape)
        self.grads[1][...] = gm.sum(axis=0)
        if not need_input_grad:
            return None
        dcols = (gm @ w_mat).reshape(batch, oh, ow, self._in_shape[1], *self.kernel)
        return self._col2im(dcols)

    def _col2im(self, dcols: np.ndarray) -> np.ndarray:
        """Adjoint of im2col: scatter-add each window entry back to its (padded) input cell."""
        batch, c, h, w = self._in_shape
        top, left, bottom, right = self.padding
        oh, ow = dcols.shape[1:3]
        sh, sw = self.stride
        dx = np.zeros((batch, c, h + top + bottom, w + left + right))
        for i in range(self.kernel[0]):
            for j in range(self.kernel[1]):
                dx[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += \
                    dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
        return dx[:, :, top:top + h, left:left + w]

    def output_shape(self, in_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        oh, ow = window_output_hw(in_shape[1:], self.kernel, self.stride, self.padding)
        return self.weight.shape[0], oh, ow

    def to_ir(self) -> Conv2d:
        return Conv2d(round_to_float32(self.weight), round_to_float32(self.bias),
                      stride=self.stride, padding=self.padding)


class ReLU:
    """y = max(x, 0); backward passes g where x > 0."""

    params: list[np.ndarray] = []
    grads: list[np.ndarray] = []

    def __init__(self):
        self._mask: np.ndarray | None = None

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        if train:
            self._mask = x > 0
        return np.maximum(x, 0.0)

    def backward(self, g: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        return g * self._mask

    def to_ir(self) -> IRReLU:
        return IRReLU()


class Flatten:
    """(B, *shape) -> (B, prod(shape)) in C order; backward reshapes back."""

    params: list[np.ndarray] = []
    grads: list[np.ndarray] = []

    def __init__(self):
        self._shape: tuple[int, ...] = ()

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, g: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        return g.reshape(self._shape)

    def to_ir(self) -> Reshape:
        return Reshape((int(np.prod(self._shape[1:])),))


class Sequential:
    """A chain of trainer layers with named IR export."""

    def __init__(self, layers: list, names: list[str]):
        if len(layers) != len(names):
            raise ValueError("one name per layer")
        self.layers, self.names = layers, names

    @property
    def params(self) -> list[np.ndarray]:
        return [p for layer in self.layers for p in layer.params]

    @property
    def grads(self) -> list[np.ndarray]:
        return [g for layer in self.layers for g in layer.grads]

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x, train)
        return x

    def backward(self, g: np.ndarray) -> None:
        for k in range(len(self.layers) - 1, -1, -1):
            g = self.layers[k].backward(g, need_input_grad=k > 0)

    def to_network(self, input_shape: tuple[int, ...], name: str) -> Network:
        """The IR network with float32-rounded parameters (Flatten needs one forward pass first)."""
        self.forward(np.zeros((1,) + tuple(input_shape)))
        nodes = [Node(n, layer.to_ir(), (k - 1,)) for k, (n, layer) in enumerate(zip(self.names, self.layers))]
        return Network(input_shape, nodes, name=name)


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean loss -log softmax(z)[y] and its gradient (softmax(z) - onehot(y)) / batch."""
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    n = len(labels)
    loss = -log_p[np.arange(n), labels].mean()
    grad = np.exp(log_p)
    grad[np.arange(n), labels] -= 1.0
    return float(loss), grad / n


@dataclass(frozen=True)
class AdamConfig:
    """Adam: m ← β1 m + (1-β1) g, v ← β2 v + (1-β2) g², θ ← θ - lr_t m̂ / (√v̂ + ε) - lr_t λ θ."""

    lr: float = 2e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0   # decoupled (AdamW), applied to weights of rank >= 2 only
    epochs: int = 40
    batch_size: int = 32
    final_lr_fraction: float = 0.05   # lr decays linearly (per epoch) to this fraction


def fit(model: Sequential, x: np.ndarray, y: np.ndarray, cfg: AdamConfig,
        rng: np.random.Generator) -> list[float]:
    """Train in place with shuffled mini-batches; returns the mean loss of each epoch."""
    params, grads = model.params, model.grads
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    step, history = 0, []
    for epoch in range(cfg.epochs):
        frac = epoch / max(cfg.epochs - 1, 1)
        lr = cfg.lr * (1.0 - (1.0 - cfg.final_lr_fraction) * frac)
        order = rng.permutation(len(x))
        losses = []
        for start in range(0, len(x), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            loss, g = softmax_cross_entropy(model.forward(x[idx], train=True), y[idx])
            model.backward(g)
            step += 1
            _adam_step(params, grads, m, v, step, lr, cfg)
            losses.append(loss)
        history.append(float(np.mean(losses)))
    return history


def _adam_step(params, grads, m, v, step: int, lr: float, cfg: AdamConfig) -> None:
    c1 = 1.0 - cfg.beta1 ** step
    c2 = 1.0 - cfg.beta2 ** step
    for p, g, mi, vi in zip(params, grads, m, v):
        mi *= cfg.beta1
        mi += (1.0 - cfg.beta1) * g
        vi *= cfg.beta2
        vi += (1.0 - cfg.beta2) * g * g
        if cfg.weight_decay and p.ndim >= 2:
            p -= lr * cfg.weight_decay * p
        p -= lr * (mi / c1) / (np.sqrt(vi / c2) + cfg.eps)


def accuracy(predict, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of samples whose arg-max output equals the label; ``predict`` maps a batch to logits."""
    return float(np.mean(np.argmax(predict(x), axis=1) == y))
