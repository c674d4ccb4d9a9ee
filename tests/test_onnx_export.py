"""IR -> ONNX exporter: every layer type runs in onnxruntime like ``Network.forward``."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from hypothesis import given, settings, strategies as st

from absint.network import (NETWORK_INPUT, Add, Affine, AvgPool2d, Conv2d, ElementwiseAffine, Layer,
                            MaxPool2d, Network, Node, ReLU, Reshape, Sigmoid, Tanh, Transpose)
from absint.onnx_export import save_onnx, to_onnx_model

ort = pytest.importorskip("onnxruntime")


def f32(a) -> np.ndarray:
    """Round to float32-representable float64 values (so the float32 export is lossless)."""
    return np.asarray(a, dtype=np.float64).astype(np.float32).astype(np.float64)


def rand(rng, *shape, scale=1.0):
    return f32(rng.standard_normal(shape) * scale)


def chain(input_shape, layers, name="test") -> Network:
    """A sequential network of ``layers`` (each reads the previous node)."""
    return Network(input_shape, [Node(f"n{k}", layer, (k - 1,)) for k, layer in enumerate(layers)], name=name)


def run_ort(model: onnx.ModelProto, x: np.ndarray, dtype=np.float32) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x.astype(dtype)})[0]


def assert_matches_onnxruntime(net: Network, batch: int = 4, seed: int = 0, rtol: float = 1e-5) -> None:
    """Export (float32), check the model, run it on a batch and compare with forward in float64."""
    model = to_onnx_model(net)
    onnx.checker.check_model(model, full_check=True)
    x = f32(np.random.default_rng(seed).uniform(-1, 1, (batch,) + net.input_shape))
    got = run_ort(model, x)
    assert got.shape == (batch,) + net.output_shape
    want = net.forward(x)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got.reshape(batch, -1), want, rtol=rtol, atol=rtol * scale)


# ------------------------------------------------------------------ networks of each layer type
def _affine_flat(rng):
    return chain((6,), [Affine(rand(rng, 5, 6), rand(rng, 5))])


def _affine_on_image(rng):
    return chain((2, 3, 3), [Affine(rand(rng, 4, 18), rand(rng, 4)), Tanh()])


def _conv_basic(rng):
    return chain((2, 6, 6), [Conv2d(rand(rng, 3, 2, 3, 3), rand(rng, 3), padding=(1, 1, 1, 1)), ReLU()])


def _conv_asymmetric(rng):
    conv = Conv2d(rand(rng, 4, 3, 3, 2), rand(rng, 4), stride=(2, 1), padding=(0, 1, 2, 0))
    return chain((3, 7, 5), [conv, Sigmoid()])


def _conv_dilated_grouped(rng):
    conv = Conv2d(rand(rng, 4, 1, 3, 3), rand(rng, 4), stride=(1, 2), padding=(2, 1, 1, 2),
                  dilation=(2, 1), groups=2)
    return chain((2, 7, 8), [conv])


def _activations(rng):
    return chain((3, 2, 2), [ReLU(), ElementwiseAffine(rand(rng, 3, 2, 2), rand(rng, 3, 2, 2)), Sigmoid(),
                             Tanh()])


def _reshape_transpose(rng):
    # (the two transposes must not cancel: a wrong perm would then go unnoticed)
    return chain((2, 3, 4), [Transpose((2, 0, 1)), Reshape((3, 8)), Transpose((1, 0)), Reshape((24,)),
                             Affine(rand(rng, 3, 24), rand(rng, 3))])


def _elementwise_affine(rng):
    return chain((2, 4, 4), [ElementwiseAffine(rand(rng, 2, 4, 4), rand(rng, 2, 4, 4))])


def _residual_add(rng):
    nodes = [Node("fc1", Affine(rand(rng, 5, 5), rand(rng, 5)), (NETWORK_INPUT,)),
             Node("relu", ReLU(), (0,)),
             Node("add", Add(), (1, NETWORK_INPUT)),
             Node("fc2", Affine(rand(rng, 3, 5), rand(rng, 3)), (2,))]
    return Network((5,), nodes, name="residual")


def _avgpool_include_pad(rng):
    return chain((2, 5, 5), [AvgPool2d((3, 3), (2, 2), (1, 1, 1, 1), count_include_pad=True)])


def _avgpool_exclude_pad(rng):
    return chain((2, 6, 5), [AvgPool2d((2, 3), (2, 1), (1, 1, 0, 1), count_include_pad=False)])


def _maxpool(rng):
    return chain((3, 6, 6), [MaxPool2d((2, 2), (2, 2)), ReLU()])


def _maxpool_padded_dilated(rng):
    return chain((2, 7, 7), [MaxPool2d((3, 2), (1, 2), (1, 0, 1, 1), dilation=(1, 2))])


def _small_cnn(rng):
    return chain((1, 8, 8), [ElementwiseAffine(np.full((1, 8, 8), 2.0), np.full((1, 8, 8), -1.0)),
                             Conv2d(rand(rng, 4, 1, 3, 3, scale=0.5), rand(rng, 4), padding=(1, 1, 1, 1)),
                             ReLU(), AvgPool2d((2, 2), (2, 2)),
                             Conv2d(rand(rng, 6, 4, 3, 3, scale=0.3), rand(rng, 6), stride=(2, 2),
                                    padding=(1, 1, 1, 1)),
                             ReLU(), MaxPool2d((2, 2), (1, 1)), Reshape((6,)),
                             Affine(rand(rng, 10, 6), rand(rng, 10))])


BUILDERS = [_affine_flat, _affine_on_image, _conv_basic, _conv_asymmetric, _conv_dilated_grouped, _activations,
            _reshape_transpose, _elementwise_affine, _residual_add, _avgpool_include_pad, _avgpool_exclude_pad,
            _maxpool, _maxpool_padded_dilated, _small_cnn]


@pytest.mark.parametrize("build", BUILDERS, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("seed", [0, 1])
def test_layer_matches_onnxruntime(build, seed):
    assert_matches_onnxruntime(build(np.random.default_rng(seed)), seed=seed)


def test_every_layer_type_is_covered():
    rng = np.random.default_rng(0)
    covered = {type(n.layer) for build in BUILDERS for n in build(rng).nodes}
    from absint.network import LAYER_TYPES
    assert covered == set(LAYER_TYPES)


@settings(max_examples=25, deadline=None)
@given(c_in=st.integers(1, 3), c_out=st.integers(1, 3), k=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 3)), pads=st.tuples(*[st.integers(0, 2)] * 4),
       dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)), seed=st.integers(0, 2**16))
def test_random_conv_matches_onnxruntime(c_in, c_out, k, stride, pads, dilation, seed):
    rng = np.random.default_rng(seed)
    conv = Conv2d(rand(rng, c_out, c_in, *k), rand(rng, c_out), stride=stride, padding=pads, dilation=dilation)
    assert_matches_onnxruntime(chain((c_in, 7, 6), [conv]), batch=2, seed=seed)


# ---------------------------------------------------------------------------- graph interface
def test_input_output_names_and_symbolic_batch():
    model = to_onnx_model(_conv_basic(np.random.default_rng(0)))
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "input" and out.name == "output"
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [2, 6, 6]
    assert [d.dim_value for d in out.type.tensor_type.shape.dim[1:]] == [3, 6, 6]
    assert model.opset_import[0].version == 13


def test_weights_are_float32_initialisers():
    model = to_onnx_model(_small_cnn(np.random.default_rng(0)))
    floats = [t for t in model.graph.initializer if t.data_type != onnx.TensorProto.INT64]
    assert floats and all(t.data_type == onnx.TensorProto.FLOAT for t in floats)


def test_gemm_uses_transb_and_flatten_for_images():
    model = to_onnx_model(_affine_on_image(np.random.default_rng(0)))
    ops = [n.op_type for n in model.graph.node]
    assert ops == ["Flatten", "Gemm", "Tanh"]
    gemm = model.graph.node[1]
    assert {a.name: a.i for a in gemm.attribute}["transB"] == 1


def test_export_is_deterministic(tmp_path):
    net = _small_cnn(np.random.default_rng(3))
    save_onnx(net, tmp_path / "a.onnx")
    save_onnx(net, tmp_path / "b.onnx")
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


def test_opset_17_also_valid():
    net = _small_cnn(np.random.default_rng(0))
    model = to_onnx_model(net, opset=17)
    onnx.checker.check_model(model, full_check=True)
    x = f32(np.random.default_rng(0).random((2, 1, 8, 8)))
    np.testing.assert_allclose(run_ort(model, x).reshape(2, -1), net.forward(x), rtol=1e-5, atol=1e-5)


def test_bad_opset_rejected():
    with pytest.raises(ValueError, match="opset"):
        to_onnx_model(_affine_flat(np.random.default_rng(0)), opset=7)


def test_lossy_float32_export_warns():
    net = chain((2,), [Affine(np.array([[0.1, 0.2]]), np.array([1 / 3]))])
    with pytest.warns(UserWarning, match="not exactly representable"):
        to_onnx_model(net)


def test_float32_representable_export_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_onnx_model(_small_cnn(np.random.default_rng(0)))


def test_float64_export_keeps_exact_values():
    net = chain((3,), [Affine(np.array([[0.1, 0.2, 1 / 3], [1e-300, -2.5, 7.0]]), np.array([0.7, 1 / 7])),
                       ReLU(), Affine(np.array([[1 / 9, 2 / 3]]), np.array([0.1]))])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = to_onnx_model(net, dtype="float64")
    onnx.checker.check_model(model, full_check=True)
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(weights["n0.weight"], net.nodes[0].layer.weight)
    x = np.random.default_rng(0).random((4, 3))
    np.testing.assert_allclose(run_ort(model, x, np.float64), net.forward(x), rtol=1e-14)


def test_unknown_layer_type_rejected():
    class Custom(Layer):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="no ONNX exporter for layer type Custom"):
        to_onnx_model(Network((2,), [Node("c", Custom(), (NETWORK_INPUT,))]))


def test_duplicate_and_odd_node_names_are_made_unique():
    rng = np.random.default_rng(0)
    nodes = [Node("same name", Affine(rand(rng, 3, 3), rand(rng, 3)), (NETWORK_INPUT,)),
             Node("same name", ReLU(), (0,)), Node("", Affine(rand(rng, 2, 3), rand(rng, 2)), (1,))]
    model = to_onnx_model(Network((3,), nodes))
    onnx.checker.check_model(model, full_check=True)
    names = [n.name for n in model.graph.node]
    assert len(set(names)) == len(names)


# ------------------------------------------------------------------ round trip through the importer
@pytest.mark.parametrize("build", BUILDERS, ids=lambda f: f.__name__.strip("_"))
def test_roundtrip_through_load_onnx(build, tmp_path):
    from absint.onnx_import import load_onnx

    net = build(np.random.default_rng(5))
    save_onnx(net, tmp_path / "net.onnx")
    back = load_onnx(tmp_path / "net.onnx")
    assert back.input_shape == net.input_shape and back.output_size == net.output_size
    x = np.random.default_rng(1).uniform(-1, 1, (6,) + net.input_shape)
    want = net.forward(x)
    # the importer may fold layers (e.g. ElementwiseAffine into a Conv): float64 rounding only
    np.testing.assert_allclose(back.forward(x), want, rtol=1e-12, atol=1e-12 * max(1.0, np.abs(want).max()))
