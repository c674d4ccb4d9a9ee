"""The cifar_conv(w) family: shapes, parameter counts, seeding, He initialisation, ONNX export."""

from __future__ import annotations

import numpy as np
import pytest

from absint.network import Affine, Conv2d, ReLU, Reshape
from absint.zoo import CIFAR_EPS, cifar_conv, cifar_conv_input
from absint.zoo.train import round_to_float32


def expected_params(w: int) -> int:
    conv = (3 * w * 9 + w) + (w * 2 * w * 9 + 2 * w) + (2 * w * 2 * w * 9 + 2 * w)
    return conv + (2 * w * 256 * 512 + 512) + (512 * 10 + 10)


def test_w16_structure_shapes_and_params():
    net = cifar_conv(16)
    assert net.input_shape == (3, 32, 32) and net.output_shape == (10,)
    kinds = [type(n.layer) for n in net.nodes]
    assert kinds == [Conv2d, ReLU, Conv2d, ReLU, Conv2d, ReLU, Reshape, Affine, ReLU, Affine]
    shapes = [n.shape for n in net.nodes]
    assert shapes == [(16, 32, 32), (16, 32, 32), (32, 16, 16), (32, 16, 16), (32, 16, 16), (32, 16, 16),
                      (8192,), (512,), (512,), (10,)]
    convs = [n.layer for n in net.nodes if isinstance(n.layer, Conv2d)]
    assert [c.stride for c in convs] == [(1, 1), (2, 2), (1, 1)]
    assert all(c.padding == (1, 1, 1, 1) and c.kernel == (3, 3) for c in convs)
    assert sum(n.layer.n_params for n in net.nodes) == expected_params(16) == 4_214_282


def test_w64_builds():
    net = cifar_conv(64)
    assert net.nodes[6].shape == (2 * 64 * 16 * 16,) and net.nodes[7].shape == (512,)
    assert sum(n.layer.n_params for n in net.nodes) == expected_params(64)
    assert net.forward(cifar_conv_input()).shape == (1, 10)


def test_seeded_and_float32_representable():
    a, b, c = cifar_conv(16, seed=0), cifar_conv(16, seed=0), cifar_conv(16, seed=1)
    for na, nb, nc in zip(a.nodes, b.nodes, c.nodes):
        if hasattr(na.layer, "weight"):
            w = na.layer.weight
            np.testing.assert_array_equal(w, nb.layer.weight)
            assert not np.array_equal(w, nc.layer.weight)
            np.testing.assert_array_equal(w, round_to_float32(w))
            assert np.all(na.layer.bias == 0)


def test_he_initialisation_scale():
    net = cifar_conv(32)
    for node in net.nodes:
        if hasattr(node.layer, "weight"):
            w = node.layer.weight
            fan_in = w[0].size
            assert abs(w.mean()) < 0.05 * np.sqrt(2 / fan_in)
            assert np.isclose(w.std(), np.sqrt(2 / fan_in), rtol=0.1)


def test_input_and_eps():
    x = cifar_conv_input()
    assert x.shape == (3, 32, 32) and x.min() >= 0 and x.max() <= 1
    np.testing.assert_array_equal(x, cifar_conv_input(0))
    assert not np.array_equal(x, cifar_conv_input(1))
    np.testing.assert_array_equal(x, round_to_float32(x))
    assert CIFAR_EPS == 2 / 255


def test_bad_width_rejected():
    for w in (0, 2.5, -3):
        with pytest.raises(ValueError):
            cifar_conv(w)


def test_w16_onnx_export_matches_forward():
    ort = pytest.importorskip("onnxruntime")
    from absint.onnx_export import to_onnx_model

    net = cifar_conv(16)
    sess = ort.InferenceSession(to_onnx_model(net).SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.stack([cifar_conv_input(0), cifar_conv_input(1)])
    got = sess.run(None, {"input": x.astype(np.float32)})[0]
    want = net.forward(x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
