"""The IR's concrete semantics: ``Network`` evaluation and validation, layers against slow references."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from absint import im2col
from absint.errors import ShapeError
from absint.im2col import window_output_hw
from absint.network import (NETWORK_INPUT, Add, Affine, AvgPool2d, Conv2d, ElementwiseAffine, MaxPool2d, Network,
                            Node, ReLU, Reshape, Sigmoid, Tanh, Transpose)

HYP = settings(max_examples=60, deadline=None)


# ------------------------------------------------------------------ slow references
def slow_conv(x, w, b, stride, pads, dil, groups):
    batch, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.zeros((batch, c, h + pads[0] + pads[2], wd + pads[1] + pads[3]))
    xp[:, :, pads[0]:pads[0] + h, pads[1]:pads[1] + wd] = x
    oh = (xp.shape[2] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (xp.shape[3] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((batch, o, oh, ow))
    og = o // groups
    for n in range(batch):
        for oc in range(o):
            g = oc // og
            for i in range(oh):
                for j in range(ow):
                    acc = b[oc]
                    for ci in range(cg):
                        for u in range(kh):
                            for v in range(kw):
                                acc += (xp[n, g * cg + ci, i * stride[0] + u * dil[0], j * stride[1] + v * dil[1]]
                                        * w[oc, ci, u, v])
                    out[n, oc, i, j] = acc
    return out


def slow_pool(x, kernel, stride, pads, kind, count_include_pad=False, dil=(1, 1)):
    """Max or average over windows, reading only real cells (pads are counted, not read)."""
    batch, c, h, w = x.shape
    oh, ow = window_output_hw((h, w), kernel, stride, pads, dil)
    out = np.zeros((batch, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            cells = []
            for u in range(kernel[0]):
                for v in range(kernel[1]):
                    r = i * stride[0] + u * dil[0] - pads[0]
                    q = j * stride[1] + v * dil[1] - pads[1]
                    if 0 <= r < h and 0 <= q < w:
                        cells.append(x[:, :, r, q])
            stack = np.stack(cells)
            if kind == "max":
                out[:, :, i, j] = stack.max(axis=0)
            else:
                div = kernel[0] * kernel[1] if count_include_pad else len(cells)
                out[:, :, i, j] = stack.sum(axis=0) / div
    return out


# ---------------------------------------------------------------------- strategies
@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    cg = draw(st.integers(1, 2))
    og = draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h = draw(st.integers(max(1, dil[0] * (kh - 1) + 1 - pads[0] - pads[2]), 7))
    w = draw(st.integers(max(1, dil[1] * (kw - 1) + 1 - pads[1] - pads[3]), 7))
    batch = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31))
    return groups, cg, og, (kh, kw), stride, dil, pads, (h, w), batch, seed


@st.composite
def pool_cases(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = (draw(st.integers(0, kernel[0] - 1)), draw(st.integers(0, kernel[1] - 1)),
            draw(st.integers(0, kernel[0] - 1)), draw(st.integers(0, kernel[1] - 1)))
    h = draw(st.integers(dil[0] * (kernel[0] - 1) + 1, 7))
    w = draw(st.integers(dil[1] * (kernel[1] - 1) + 1, 7))
    return kernel, stride, dil, pads, (h, w), draw(st.integers(1, 3)), draw(st.integers(0, 2**31))


# --------------------------------------------------------------------------- layers
@HYP
@given(conv_cases())
def test_conv2d_matches_slow_loop(case):
    groups, cg, og, k, stride, dil, pads, hw, batch, seed = case
    rng = np.random.default_rng(seed)
    w, b = rng.normal(size=(og * groups, cg, *k)), rng.normal(size=og * groups)
    x = rng.normal(size=(batch, cg * groups, *hw))
    layer = Conv2d(w, b, stride, pads, dil, groups)
    out = layer.forward(x)
    ref = slow_conv(x, w, b, stride, pads, dil, groups)
    assert out.shape == ref.shape and out.shape[1:] == layer.output_shape(x.shape[1:])
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


def test_conv2d_chunked_im2col_equals_unchunked(monkeypatch):
    rng = np.random.default_rng(3)
    layer = Conv2d(rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4), (2, 1), (1, 0, 2, 1), (1, 2), 1)
    x = rng.normal(size=(7, 2, 8, 9))
    whole = layer.forward(x)
    monkeypatch.setattr(im2col, "IM2COL_CHUNK_BYTES", 1)  # one sample per chunk
    np.testing.assert_array_equal(layer.forward(x), whole)
    np.testing.assert_allclose(whole, slow_conv(x, layer.weight, layer.bias, (2, 1), (1, 0, 2, 1), (1, 2), 1),
                               atol=1e-12)


@HYP
@given(pool_cases(), st.booleans())
def test_avgpool_matches_slow_reference(case, include_pad):
    kernel, stride, _dil, pads, hw, batch, seed = case
    x = np.random.default_rng(seed).normal(size=(batch, 2, *hw))
    layer = AvgPool2d(kernel, stride, pads, include_pad)
    out = layer.forward(x)
    np.testing.assert_allclose(out, slow_pool(x, kernel, stride, pads, "avg", include_pad), rtol=1e-12, atol=1e-12)
    assert out.shape[1:] == layer.output_shape(x.shape[1:])
    assert layer.divisors(hw).shape == out.shape[2:]


@HYP
@given(pool_cases())
def test_maxpool_matches_slow_reference(case):
    kernel, stride, dil, pads, hw, batch, seed = case
    x = np.random.default_rng(seed).normal(size=(batch, 2, *hw)) - 10.0  # all negative: padding must not win
    layer = MaxPool2d(kernel, stride, pads, dil)
    out = layer.forward(x)
    np.testing.assert_array_equal(out, slow_pool(x, kernel, stride, pads, "max", dil=dil))
    assert out.shape[1:] == layer.output_shape(x.shape[1:])


def test_global_average_pool_is_the_mean():
    x = np.random.default_rng(0).normal(size=(3, 4, 5, 6))
    out = AvgPool2d((5, 6), (1, 1)).forward(x)
    np.testing.assert_allclose(out[:, :, 0, 0], x.mean(axis=(2, 3)), atol=1e-14)


@pytest.mark.parametrize("hw,k,s,p,d,expected", [
    ((5, 5), (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), (3, 3)),
    ((32, 32), (4, 4), (2, 2), (1, 1, 1, 1), (1, 1), (16, 16)),
    ((7, 8), (3, 2), (2, 3), (1, 0, 0, 1), (2, 1), (2, 3)),
    ((1, 1), (1, 1), (5, 5), (0, 0, 0, 0), (1, 1), (1, 1)),
])
def test_window_output_hw(hw, k, s, p, d, expected):
    assert window_output_hw(hw, k, s, p, d) == expected


def test_elementwise_layers():
    x = np.linspace(-50, 50, 24).reshape(2, 3, 4)
    np.testing.assert_array_equal(ReLU().forward(x), np.maximum(x, 0))
    np.testing.assert_allclose(Tanh().forward(x), np.tanh(x))
    np.testing.assert_allclose(Sigmoid().forward(x), 1 / (1 + np.exp(-x)), rtol=1e-14)
    ea = ElementwiseAffine(np.full((3, 4), 2.0), np.arange(12.0).reshape(3, 4))
    np.testing.assert_array_equal(ea.forward(x), 2 * x + np.arange(12.0).reshape(3, 4))
    assert not ea.is_identity() and ElementwiseAffine(np.ones(3), np.zeros(3)).is_identity()
    np.testing.assert_array_equal(Add().forward(x, 2 * x), 3 * x)


def test_sigmoid_extremes_without_warnings():
    x = np.array([[-1e308, -1000.0, -745.0, -40.0, 0.0, 40.0, 710.0, 1000.0, 1e308, -np.inf, np.inf]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = Sigmoid().forward(x)
        y32 = Sigmoid().forward(x[:, 1:-3].astype(np.float32))
    assert y.dtype == np.float64 and y32.dtype == np.float64
    assert np.all((y >= 0) & (y <= 1)) and y[0, 4] == 0.5
    assert y[0, 0] == 0 and y[0, -3] == 1 and y[0, -2] == 0 and y[0, -1] == 1
    np.testing.assert_allclose(Sigmoid().forward(np.array([[-5.0, 5.0]])), [[1 / (1 + np.exp(5)), 1 / (1 + np.exp(-5))]])


def test_affine_reshape_transpose():
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=(3, 12)), rng.normal(size=3)
    x = rng.normal(size=(5, 2, 3, 2))
    np.testing.assert_allclose(Affine(w, b).forward(x), x.reshape(5, 12) @ w.T + b)
    assert Affine(w, b).output_shape((2, 3, 2)) == (3,)
    assert Reshape((6, 2)).forward(x).shape == (5, 6, 2)
    t = Transpose((1, 2, 0))
    assert t.output_shape((2, 3, 2)) == (3, 2, 2)
    np.testing.assert_array_equal(t.forward(x), x.transpose(0, 2, 3, 1))
    assert t.forward(x).flags.c_contiguous


def test_layer_parameters_are_frozen_float64_copies():
    w = np.ones((2, 3), dtype=np.float32)
    layer = Affine(w, [0, 1])
    w[0, 0] = 5.0
    assert layer.weight.dtype == np.float64 and layer.weight[0, 0] == 1.0 and layer.bias.dtype == np.float64
    with pytest.raises(ValueError):
        layer.weight[0, 0] = 2.0
    with pytest.raises(AttributeError):
        layer.bias = np.zeros(2)


@pytest.mark.parametrize("make", [
    lambda: Affine(np.zeros((2, 3)), np.zeros(3)),
    lambda: Affine(np.zeros(3), np.zeros(3)),
    lambda: Conv2d(np.zeros((3, 1, 2, 2)), np.zeros(3), groups=2),
    lambda: Conv2d(np.zeros((2, 1, 2, 2)), np.zeros(2), groups=0),
    lambda: Conv2d(np.zeros((2, 1, 2, 2)), np.zeros(2), stride=(0, 1)),
    lambda: Conv2d(np.zeros((2, 1, 2, 2)), np.zeros(2), dilation=(1, 0)),
    lambda: Conv2d(np.zeros((2, 1, 2, 2)), np.zeros(2), padding=(0, -1, 0, 0)),
    lambda: Conv2d(np.zeros((2, 1, 2)), np.zeros(2)),
    lambda: MaxPool2d((2, 2), (0, 1)),
    lambda: MaxPool2d((2, 2), (1, 1), dilation=(0, 1)),
    lambda: AvgPool2d((0, 2), (1, 1)),
    lambda: AvgPool2d((2, 2), (1, 1), (1, 1)),
    lambda: ElementwiseAffine(np.ones(3), np.zeros(4)),
], ids=["bias", "weight-1d", "groups", "groups0", "stride0", "dil0", "negpad", "weight-3d", "pool-stride0",
        "pool-dil0", "kernel0", "pads2", "ea-shapes"])
def test_invalid_layer_parameters_are_shape_errors(make):
    with pytest.raises(ShapeError):
        make()


@pytest.mark.parametrize("layer,shapes", [
    (Affine(np.zeros((2, 3)), np.zeros(2)), [(4,)]),
    (Conv2d(np.zeros((2, 3, 2, 2)), np.zeros(2)), [(2, 5, 5)]),
    (Conv2d(np.zeros((2, 1, 4, 4)), np.zeros(2)), [(1, 3, 3)]),
    (Reshape((5,)), [(2, 3)]),
    (Transpose((0, 0)), [(2, 2)]),
    (ElementwiseAffine(np.ones(3), np.zeros(3)), [(4,)]),
    (Add(), [(3,), (4,)]),
    (MaxPool2d((3, 3), (1, 1)), [(1, 2, 2)]),
    (AvgPool2d((2, 2), (1, 1)), [(4, 4)]),
])
def test_output_shape_rejects_inputs_that_do_not_fit(layer, shapes):
    with pytest.raises(ShapeError):
        layer.output_shape(*shapes)


# -------------------------------------------------------------------------- Network
def small_net(rng=None) -> Network:
    """Conv -> ReLU -> (Affine, skip) -> Add: node 1 is read by two later nodes."""
    rng = rng or np.random.default_rng(0)
    return Network((2, 4, 4), [
        Node("conv", Conv2d(rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3), padding=(1, 1, 1, 1)), (NETWORK_INPUT,)),
        Node("relu", ReLU(), (0,)),
        Node("flat", Reshape((48,)), (1,)),
        Node("fc", Affine(rng.normal(size=(48, 48)), rng.normal(size=48)), (2,)),
        Node("skip", Add(), (3, 2)),
        Node("out", Affine(rng.normal(size=(5, 48)), rng.normal(size=5)), (4,)),
    ], name="small")


def manual_forward(net: Network, x: np.ndarray) -> np.ndarray:
    conv, _relu, _flat, fc, _skip, out = (n.layer for n in net.nodes)
    h = np.maximum(slow_conv(x, conv.weight, conv.bias, (1, 1), (1, 1, 1, 1), (1, 1), 1), 0).reshape(len(x), -1)
    h = h @ fc.weight.T + fc.bias + h
    return h @ out.weight.T + out.bias


def test_forward_accepts_batches_flat_batches_and_single_samples():
    net = small_net()
    x = np.random.default_rng(1).normal(size=(4, 2, 4, 4))
    ref = manual_forward(net, x)
    np.testing.assert_allclose(net.forward(x), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(net.forward(x.reshape(4, 32)), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(net.forward(x[0]), ref[:1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(net.forward(x[0].ravel()), ref[:1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(net.forward(x[0].ravel().tolist()), ref[:1], rtol=1e-12, atol=1e-12)
    y32 = net.forward(x.astype(np.float32))
    assert y32.dtype == np.float64 and y32.shape == (4, 5)
    assert net.forward(np.zeros((0, 32))).shape == (0, 5)


def test_forward_does_not_modify_its_input():
    net = small_net()
    x = np.random.default_rng(2).normal(size=(3, 32))
    before = x.copy()
    net.forward(x)
    net.activations(x)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("shape", [(3,), (4, 31), (4, 2, 4, 5), (4, 3, 4, 4), (), (2, 32, 1)])
def test_forward_rejects_wrong_input_sizes_clearly(shape):
    net = small_net()
    with pytest.raises(ShapeError) as info:
        net.forward(np.zeros(shape))
    msg = str(info.value)
    assert str(shape) in msg and "(2, 4, 4)" in msg and "32" in msg


def test_activations_returns_every_node():
    net = small_net()
    x = np.random.default_rng(3).normal(size=(3, 2, 4, 4))
    acts = net.activations(x)
    assert len(acts) == len(net.nodes) == len(net)
    for a, node in zip(acts, net.nodes):
        assert a.shape == (3, *node.shape), node.name
    np.testing.assert_array_equal(acts[-1], net.forward(x))
    np.testing.assert_array_equal(acts[1], np.maximum(acts[0], 0))
    np.testing.assert_allclose(acts[4], acts[3] + acts[2])


def test_network_shapes_summary_and_consumers():
    net = small_net()
    assert net.input_shape == (2, 4, 4) and net.input_size == 32
    assert net.output_shape == (5,) and net.output_size == 5
    assert [n.shape for n in net.nodes] == [(3, 4, 4), (3, 4, 4), (48,), (48,), (48,), (5,)]
    assert net.consumers() == [[1], [2], [3, 4], [4], [5], []]
    assert "small" in repr(net) and "Conv2d" in repr(net)


def test_network_recomputes_node_shapes():
    net = Network((3,), [Node("r", ReLU(), (NETWORK_INPUT,), shape=(99,))])
    assert net.nodes[0].shape == (3,)


@pytest.mark.parametrize("nodes,match", [
    ([Node("a", ReLU(), (1,)), Node("b", ReLU(), (NETWORK_INPUT,))], "'a' reads node 1"),
    ([Node("a", ReLU(), (0,))], "'a' reads node 0"),
    ([Node("a", ReLU(), (-2,))], "'a' reads node -2"),
    ([Node("a", Add(), (NETWORK_INPUT,))], "'a'.*2 inputs"),
    ([Node("a", ReLU(), (NETWORK_INPUT, NETWORK_INPUT))], "'a'.*1 inputs"),
    ([Node("fc", Affine(np.zeros((2, 5)), np.zeros(2)), (NETWORK_INPUT,))], "'fc'.*5 inputs"),
    ([], "at least one node"),
])
def test_network_rejects_invalid_graphs(nodes, match):
    with pytest.raises(ShapeError, match=match):
        Network((4,), nodes)


def test_intermediate_values_survive_early_freeing():
    """Node 0 is read by the last node: freeing must follow the last use, not the next node."""
    nodes = [Node("a", ElementwiseAffine(np.full(3, 2.0), np.zeros(3)), (NETWORK_INPUT,)),
             Node("b", ReLU(), (0,)), Node("c", Tanh(), (1,)), Node("d", Add(), (2, 0)), Node("e", Add(), (3, 0))]
    net = Network((3,), nodes)
    x = np.array([[1.0, -2.0, 0.5]])
    np.testing.assert_allclose(net.forward(x), np.tanh(np.maximum(2 * x, 0)) + 4 * x)
    np.testing.assert_allclose(net.forward(x), net.activations(x)[-1])
