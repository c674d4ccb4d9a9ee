"""The digits networks: scikit-learn's 8x8 handwritten digits, an MLP and a small CNN.

Data: ``sklearn.datasets.load_digits`` (1797 images, 16 grey levels), pixels scaled to
[0, 1] by x / 16, split 75/25 with ``train_test_split(test_size=0.25, random_state=0,
stratify=y)``. Both networks are trained by ``absint.zoo.train`` (seeded Adam, float64)
and returned as IR networks with float32-representable parameters.
"""

from __future__ import annotations

import numpy as np

from ..network import Network
from .train import AdamConfig, Conv, Dense, Flatten, ReLU, Sequential, fit

__all__ = ["digits_data", "train_digits_mlp", "train_digits_cnn", "DIGITS_SHAPE",
           "MLP_CONFIG", "CNN_CONFIG"]

DIGITS_SHAPE = (1, 8, 8)
N_CLASSES = 10

MLP_CONFIG = AdamConfig(lr=2e-3, epochs=60, batch_size=32, weight_decay=1e-4)
CNN_CONFIG = AdamConfig(lr=2e-3, epochs=40, batch_size=32, weight_decay=1e-4)


def digits_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test); x of shape (n, 1, 8, 8) in [0, 1], y int labels 0..9."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.images.astype(np.float64) / 16.0).reshape((-1,) + DIGITS_SHAPE)
    y = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    return x_tr, y_tr, x_te, y_te


def mlp_model(rng: np.random.Generator) -> Sequential:
    """64-64-32-10 ReLU MLP on the flattened image."""
    layers = [Flatten(), Dense(64, 64, rng), ReLU(), Dense(64, 32, rng), ReLU(), Dense(32, N_CLASSES, rng)]
    names = ["flatten", "fc1", "relu1", "fc2", "relu2", "fc3"]
    return Sequential(layers, names)


def cnn_model(rng: np.random.Generator) -> Sequential:
    """Conv(1->8, 3x3, pad 1) ReLU Conv(8->16, 3x3, stride 2, pad 1) ReLU Flatten 256-32-10."""
    layers = [Conv(1, 8, (3, 3), rng, padding=(1, 1, 1, 1)), ReLU(),
              Conv(8, 16, (3, 3), rng, stride=(2, 2), padding=(1, 1, 1, 1)), ReLU(),
              Flatten(), Dense(256, 32, rng), ReLU(), Dense(32, N_CLASSES, rng)]
    names = ["conv1", "relu1", "conv2", "relu2", "flatten", "fc1", "relu3", "fc2"]
    return Sequential(layers, names)


def _train(build, cfg: AdamConfig, name: str, seed: int) -> Network:
    x_tr, y_tr, _, _ = digits_data()
    rng = np.random.default_rng(seed)
    model = build(rng)
    fit(model, x_tr, y_tr, cfg, rng)
    return model.to_network(DIGITS_SHAPE, name)


def train_digits_mlp(seed: int = 0) -> Network:
    """Train the digits MLP (deterministic for a given seed); a Network with input (1, 8, 8)."""
    return _train(mlp_model, MLP_CONFIG, "digits_mlp", seed)


def train_digits_cnn(seed: int = 0) -> Network:
    """Train the digits CNN (deterministic for a given seed); a Network with input (1, 8, 8)."""
    return _train(cnn_model, CNN_CONFIG, "digits_cnn", seed)
