"""The numpy trainer: analytic gradients agree with finite differences; training is seeded."""

from __future__ import annotations

import numpy as np
import pytest

from absint.zoo.train import (AdamConfig, Conv, Dense, Flatten, ReLU, Sequential, accuracy, fit,
                              round_to_float32, softmax_cross_entropy)


def numeric_grad(f, p: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar f() with respect to every entry of p (modified in place)."""
    g = np.zeros_like(p)
    for i in np.ndindex(p.shape):
        old = p[i]
        p[i] = old + h
        up = f()
        p[i] = old - h
        down = f()
        p[i] = old
        g[i] = (up - down) / (2 * h)
    return g


def small_model(rng) -> Sequential:
    layers = [Conv(2, 3, (3, 2), rng, stride=(2, 1), padding=(1, 0, 2, 1)), ReLU(),
              Conv(3, 2, (2, 2), rng, stride=(1, 2), padding=(0, 1, 1, 0)), ReLU(),
              Flatten(), Dense(2 * 4 * 3, 4, rng)]
    return Sequential(layers, ["c1", "r1", "c2", "r2", "flat", "fc"])


def test_backprop_matches_finite_differences():
    rng = np.random.default_rng(0)
    model = small_model(rng)
    for p in model.params:
        p += 0.1 * rng.standard_normal(p.shape)  # nonzero biases too
    x = rng.standard_normal((3, 2, 6, 5))
    y = np.array([0, 3, 1])

    def loss():
        return softmax_cross_entropy(model.forward(x), y)[0]

    _, g = softmax_cross_entropy(model.forward(x, train=True), y)
    model.backward(g)
    analytic = [gr.copy() for gr in model.grads]
    for p, a in zip(model.params, analytic):
        np.testing.assert_allclose(a, numeric_grad(loss, p), rtol=1e-5, atol=1e-7)


def test_input_gradient_of_conv_is_the_adjoint():
    """<conv(x), g> = <x, conv^T(g)> for the bias-free conv: col2im is the adjoint of im2col."""
    rng = np.random.default_rng(1)
    conv = Conv(2, 3, (3, 3), rng, stride=(2, 2), padding=(1, 2, 0, 1))
    x = rng.standard_normal((2, 2, 7, 6))
    y = conv.forward(x, train=True)
    g = rng.standard_normal(y.shape)
    dx = conv.backward(g)
    assert dx.shape == x.shape
    assert np.isclose(np.sum(y * g), np.sum(x * dx))


def test_softmax_cross_entropy_value():
    logits = np.array([[0.0, 0.0], [2.0, 0.0]])
    loss, grad = softmax_cross_entropy(logits, np.array([0, 1]))
    want = (np.log(2) + np.log(1 + np.exp(2))) / 2
    assert np.isclose(loss, want)
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-15)


def test_ir_export_matches_trainer_forward():
    rng = np.random.default_rng(2)
    model = small_model(rng)
    net = model.to_network((2, 6, 5), "small")
    x = rng.standard_normal((4, 2, 6, 5))
    np.testing.assert_allclose(net.forward(x), model.forward(x), rtol=1e-6, atol=1e-6)
    for node in net.nodes:
        for name in ("weight", "bias"):
            value = getattr(node.layer, name, None)
            if value is not None:
                np.testing.assert_array_equal(value, round_to_float32(value))


def test_fit_learns_separable_data_and_is_seeded():
    def run(seed):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((200, 4))
        y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
        model = Sequential([Dense(4, 8, rng), ReLU(), Dense(8, 2, rng)], ["a", "r", "b"])
        history = fit(model, x, y, AdamConfig(lr=1e-2, epochs=30, batch_size=16), rng)
        return model, history, accuracy(model.forward, x, y)

    m1, h1, acc = run(0)
    m2, h2, _ = run(0)
    _, h3, _ = run(1)
    assert acc >= 0.95 and h1[-1] < h1[0]
    assert h1 == h2 and h1 != h3
    for p, q in zip(m1.params, m2.params):
        np.testing.assert_array_equal(p, q)


def test_sequential_needs_one_name_per_layer():
    with pytest.raises(ValueError):
        Sequential([ReLU()], [])
