"""absint.gradients: vector-Jacobian products checked against central finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from absint.errors import ShapeError
from absint.gradients import BACKWARD, functional_vjp, node_vjp, output_gradient, vjp
from absint.network import LAYER_TYPES, NETWORK_INPUT, MaxPool2d, Network, Node, ReLU
from tests._bench import benchmarks_dir
from tests.random_nets import OPS, random_network

H = 1e-6


def _kink_margin(net: Network, x: np.ndarray) -> np.ndarray:
    """Per sample: distance of ReLU inputs from 0 and MaxPool winners from the runners-up (ties of
    equal values, e.g. zeros of dead ReLUs, are excluded: both sides have the same derivative there)."""
    acts = net.activations(x)
    margin = np.full(x.shape[0], np.inf)
    for node in net.nodes:
        arg = x if node.inputs[0] == NETWORK_INPUT else acts[node.inputs[0]]
        if isinstance(node.layer, ReLU):
            margin = np.minimum(margin, np.abs(arg.reshape(len(x), -1)).min(axis=1))
        elif isinstance(node.layer, MaxPool2d):
            from absint.im2col import windows

            layer = node.layer
            win = windows(arg, layer.kernel, layer.stride, layer.padding, layer.dilation, pad_value=-np.inf)
            win = np.sort(win.reshape(len(x), -1, layer.kernel[0] * layer.kernel[1]), axis=2)
            if win.shape[2] > 1:
                gap = win[:, :, -1] - win[:, :, -2]
                gap = np.where((gap == 0) | ~np.isfinite(gap), np.inf, gap)
                margin = np.minimum(margin, gap.min(axis=1))
    return margin


def _fd_functional(f, x: np.ndarray, h: float = H) -> np.ndarray:
    """Central differences of f: (batch, n) -> (batch,) coordinate by coordinate."""
    flat = x.reshape(len(x), -1)
    grad = np.empty_like(flat)
    for j in range(flat.shape[1]):
        e = np.zeros(flat.shape[1])
        e[j] = h
        grad[:, j] = (f((flat + e).reshape(x.shape)) - f((flat - e).reshape(x.shape))) / (2 * h)
    return grad.reshape(x.shape)


def _assert_close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    err = float(np.abs(got - want).max(initial=0.0))
    assert err <= 2e-6 * scale, f"{what}: max |vjp - finite difference| = {err:.3g} (scale {scale:.3g})"


def _smooth_points(net: Network, rng: np.random.Generator, n: int = 4, scale: float = 1.0) -> np.ndarray:
    """n inputs at least 1e-4 away from every kink (resampled until found)."""
    keep = []
    for _ in range(50):
        x = rng.normal(size=(4 * n,) + net.input_shape) * scale
        keep.extend(x[_kink_margin(net, x) > 1e-4])
        if len(keep) >= n:
            return np.array(keep[:n])
    pytest.skip("no inputs away from the kinks found")


def test_every_layer_type_has_a_rule():
    assert set(LAYER_TYPES) <= set(BACKWARD)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("op", OPS)
def test_vjp_matches_finite_differences(op, seed):
    rng = np.random.default_rng(1000 + seed)
    extra = [str(o) for o in rng.choice(OPS, size=int(rng.integers(0, 3)))]
    ops = extra[:1] + [op] + extra[1:] + (["affine"] if seed % 2 else [])
    net = random_network(ops, seed)
    x = _smooth_points(net, rng)
    c = rng.normal(size=(len(x), net.output_size))
    got = vjp(net, x, c)
    assert got.shape == x.shape
    want = _fd_functional(lambda z: np.einsum("bo,bo->b", net.forward(z), c), x)
    _assert_close(got, want, f"{net!r}")


@pytest.mark.parametrize("seed", range(8))
def test_node_vjp_matches_finite_differences_at_every_node(seed):
    rng = np.random.default_rng(seed)
    ops = [str(o) for o in rng.choice(OPS, size=4)]
    net = random_network(ops, seed)
    x = _smooth_points(net, rng, n=3)
    for k, node in enumerate(net.nodes):
        c = rng.normal(size=(len(x), node.size))
        got = node_vjp(net, x, k, c)
        want = _fd_functional(lambda z: np.einsum("bo,bo->b", net.activations(z)[k].reshape(len(z), -1), c), x)
        _assert_close(got, want, f"node {k} ({type(node.layer).__name__}) of {net!r}")


def test_batch_consistency_and_shapes():
    rng = np.random.default_rng(3)
    net = random_network(["conv", "relu", "residual", "maxpool", "affine"], 3)
    x = rng.normal(size=(5,) + net.input_shape)
    c = rng.normal(size=(5, net.output_size))
    batch = vjp(net, x, c)
    single = np.concatenate([vjp(net, x[i:i + 1], c[i:i + 1]) for i in range(5)])
    np.testing.assert_allclose(batch, single, rtol=1e-12, atol=1e-14)
    flat = vjp(net, x.reshape(5, -1), c)
    assert flat.shape == (5, net.input_size)
    np.testing.assert_allclose(flat, batch.reshape(5, -1), rtol=1e-12, atol=1e-14)
    assert vjp(net, x[0], c[0]).shape == x[0].shape
    w = rng.normal(size=net.output_size)
    np.testing.assert_allclose(output_gradient(net, x, w), vjp(net, x, np.tile(w, (5, 1))), rtol=1e-12)


def test_functional_vjp_is_linear_in_the_seeds():
    rng = np.random.default_rng(4)
    net = random_network(["affine", "tanh", "residual", "affine"], 4)
    x = rng.normal(size=(3,) + net.input_shape)
    seeds = {1: rng.normal(size=(3, net.nodes[1].size)), len(net.nodes) - 1: rng.normal(size=(3, net.output_size))}
    both = functional_vjp(net, x, seeds)
    parts = sum(node_vjp(net, x, k, c) for k, c in seeds.items())
    np.testing.assert_allclose(both, parts, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(node_vjp(net, x, -1, seeds[len(net.nodes) - 1]),
                               vjp(net, x, seeds[len(net.nodes) - 1]), rtol=1e-12)


def test_maxpool_sends_the_gradient_to_the_argmax():
    net = Network((1, 2, 3), [Node("pool", MaxPool2d((2, 2), (1, 1)), (-1,))])
    x = np.array([[[[1.0, 5.0, 2.0], [4.0, 3.0, 6.0]]]])
    g = vjp(net, x, np.array([[10.0, 100.0]]))
    np.testing.assert_array_equal(g, [[[[0.0, 10.0, 0.0], [0.0, 0.0, 100.0]]]])


def test_fan_out_accumulates():
    """x feeds both Add operands: d(x + x)/dx = 2."""
    from absint.network import Add

    net = Network((3,), [Node("add", Add(), (-1, -1))])
    np.testing.assert_array_equal(vjp(net, np.zeros((2, 3)), np.ones((2, 3))), np.full((2, 3), 2.0))


def test_bad_cotangent_shape():
    net = random_network(["affine"], 0)
    with pytest.raises(ShapeError):
        vjp(net, np.zeros((2,) + net.input_shape), np.zeros((3, net.output_size)))
    with pytest.raises(IndexError):
        node_vjp(net, np.zeros((1,) + net.input_shape), 5, np.zeros((1, 1)))


def test_acasxu_matches_finite_differences():
    root = benchmarks_dir()
    path = None if root is None else root / "acasxu" / "ACASXU_run2a_1_1_batch_2000.onnx"
    if path is None or not path.is_file():
        pytest.skip("ACAS Xu benchmark network not found (set ABSINT_BENCHMARKS or provide ../shared/benchmarks)")
    from absint import load_onnx

    net = load_onnx(path)
    rng = np.random.default_rng(0)
    x = _smooth_points(net, rng, n=8, scale=0.3)
    c = rng.normal(size=(len(x), net.output_size))
    want = _fd_functional(lambda z: np.einsum("bo,bo->b", net.forward(z), c), x)
    _assert_close(vjp(net, x, c), want, "ACAS Xu 1_1")
    for k in (1, 6, 12):
        ck = rng.normal(size=(len(x), net.nodes[k].size))
        want = _fd_functional(lambda z: np.einsum("bo,bo->b", net.activations(z)[k].reshape(len(z), -1), ck), x)
        _assert_close(node_vjp(net, x, k, ck), want, f"ACAS Xu 1_1 node {k}")
