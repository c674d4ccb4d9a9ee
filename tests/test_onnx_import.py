"""ONNX import against onnxruntime: every supported operator, folding, errors and the benchmarks."""

from __future__ import annotations

import re
import warnings
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from tests import _bench
from tests.onnx_builders import (assert_close, check, init, ints, model, node, onnx,
                                 ort_outputs, rand, random_input, save)

from absint.errors import ModelFormatError, ShapeError, UnsupportedOperatorError
from absint.network import (Add, Affine, AvgPool2d, ElementwiseAffine, ReLU, Reshape, Sigmoid, Tanh,
                            Transpose)
from absint.onnx_import import load_onnx, supported_operators


def kinds(net) -> list[str]:
    return [type(n.layer).__name__ for n in net.nodes]


# --------------------------------------------------------------------------- Gemm / MatMul
@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("bias", ["n", "1n", "scalar", None])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, -2.0)])
def test_gemm(tmp_path, trans_b, bias, alpha, beta):
    w = rand(7, 5) if trans_b else rand(5, 7)
    inits = [init("W", w)]
    inputs = ["x", "W"]
    if bias is not None:
        shape = {"n": (7,), "1n": (1, 7), "scalar": ()}[bias]
        inits.append(init("C", rand(*shape, seed=2)))
        inputs.append("C")
    m = model([node("Gemm", inputs, "y", transB=trans_b, alpha=alpha, beta=beta)], [5], inits)
    net = check(m, tmp_path)
    assert kinds(net) == ["Affine"] and net.output_shape == (7,)


@pytest.mark.parametrize("unflattened", [False, True])
def test_matmul_add_is_one_affine(tmp_path, unflattened):
    shape = [1, 5] if unflattened else [5]
    nodes = [node("MatMul", ["x", "W1"], "h"), node("Add", ["h", "b1"], "a"), node("Relu", "a", "r"),
             node("MatMul", ["r", "W2"], "h2"), node("Add", ["b2", "h2"], "y")]
    inits = [init("W1", rand(5, 6)), init("b1", rand(6, seed=2)), init("W2", rand(6, 3, seed=3)),
             init("b2", rand(3, seed=4))]
    net = check(model(nodes, shape, inits), tmp_path)
    assert [k for k in kinds(net) if k != "Reshape"] == ["Affine", "ReLU", "Affine"]


# ------------------------------------------------------------------------------------ Conv
CONV_CASES = {
    "plain": dict(),
    "stride": dict(strides=[2, 1]),
    "asym_pads": dict(pads=[1, 0, 2, 1]),
    "dilation": dict(dilations=[2, 1], pads=[1, 1, 1, 1]),
    "groups": dict(group=2),
    "depthwise": dict(group=4),
    "same_upper": dict(auto_pad="SAME_UPPER", strides=[2, 2]),
    "same_lower": dict(auto_pad="SAME_LOWER", strides=[2, 2]),
    "same_upper_s1": dict(auto_pad="SAME_UPPER"),
    "valid": dict(auto_pad="VALID", strides=[2, 2]),
    "everything": dict(strides=[2, 3], pads=[2, 1, 0, 1], dilations=[1, 2], group=2),
}


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv(tmp_path, case, bias):
    attrs = CONV_CASES[case]
    group = attrs.get("group", 1)
    w = rand(8, 4 // group, 4, 3)
    inits = [init("W", w)] + ([init("B", rand(8, seed=5))] if bias else [])
    conv = node("Conv", ["x", "W"] + (["B"] if bias else []), "y", **attrs)
    net = check(model([conv], [4, 9, 8], inits, opset=11), tmp_path)
    assert kinds(net) == ["Conv2d"] and net.nodes[0].layer.groups == group


# ----------------------------------------------------------------------------- activations
@pytest.mark.parametrize("op,layer", [("Relu", ReLU), ("Sigmoid", Sigmoid), ("Tanh", Tanh)])
def test_activation(tmp_path, op, layer):
    m = model([node("Gemm", ["x", "W"], "h", transB=1), node(op, "h", "y")], [4], [init("W", rand(6, 4))])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exp overflow in Sigmoid must not warn
        net = check(m, tmp_path, scale=1.0)
        check(m, tmp_path, scale=300.0, seed=3)  # saturates: |x| of several hundreds
    assert isinstance(net.nodes[-1].layer, layer)


# ------------------------------------------------------------------- reshaping operators
@pytest.mark.parametrize("axis,shape", [(1, [3, 4, 5]), (0, [3, 4, 5]), (-3, [3, 4, 5]),
                                        (2, [1, 4, 5]), (-1, [1, 1, 5]), (3, [1, 1, 5])])
def test_flatten(tmp_path, axis, shape):
    m = model([node("Flatten", "x", "f", axis=axis), node("Relu", "f", "y")], shape, opset=11, batch=1)
    net = check(m, tmp_path)
    assert net.output_size == int(np.prod(shape))


@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_without_axes_keeps_the_batch_axis(tmp_path, opset):
    net = check(model([node("Squeeze", "x", "s"), node("Relu", "s", "y")], [3, 1, 4, 1], opset=opset), tmp_path)
    assert net.nodes[0].shape == (3, 4)


def test_flatten_that_would_merge_the_batch_axis_is_a_shape_error(tmp_path):
    m = model([node("Flatten", "x", "y", axis=2)], [3, 4, 5], opset=11)
    with pytest.raises(ShapeError, match="batch"):
        load_onnx(save(m, tmp_path))


@pytest.mark.parametrize("target", [[0, -1], [1, 3, 0, -1], [-1, 20, 3], [1, 60], [0, 5, 4, 3]])
def test_reshape_with_zero_and_minus_one(tmp_path, target):
    nodes = [node("Reshape", ["x", "shape"], "r"), node("Relu", "r", "y")]
    net = check(model(nodes, [3, 4, 5], [ints("shape", target)], batch=1), tmp_path)
    assert net.output_size == 60


@pytest.mark.parametrize("opset", [9, 11, 13])
def test_dynamic_pytorch_reshape_is_folded(tmp_path, opset):
    """x.view(x.size(0), -1): Shape -> Gather -> Unsqueeze -> Concat -> Reshape, then Gemm."""
    unsq = (node("Unsqueeze", "n", "n1", axes=[0]) if opset < 13
            else node("Unsqueeze", ["n", "ax0"], "n1"))
    nodes = [node("Relu", "x", "r"), node("Shape", "r", "s"), node("Gather", ["s", "i0"], "n", axis=0), unsq,
             node("Concat", ["n1", "m1"], "target", axis=0), node("Reshape", ["r", "target"], "flat"),
             node("Gemm", ["flat", "W", "B"], "y", transB=1)]
    inits = [ints("i0", 0), ints("m1", [-1]), ints("ax0", [0]), init("W", rand(3, 24)), init("B", rand(3))]
    net = check(model(nodes, [2, 3, 4], inits, opset=opset), tmp_path)
    assert [k for k in kinds(net)] == ["ReLU", "Reshape", "Affine"]


def test_transpose_nchw_to_nhwc_then_gemm(tmp_path):
    nodes = [node("Relu", "x", "r"), node("Transpose", "r", "t", perm=[0, 2, 3, 1]),
             node("Flatten", "t", "f"), node("Gemm", ["f", "W"], "y", transB=1)]
    net = check(model(nodes, [3, 4, 5], [init("W", rand(7, 60))]), tmp_path)
    transposes = [n for n in net.nodes if isinstance(n.layer, Transpose)]
    assert len(transposes) == 1 and transposes[0].shape == (4, 5, 3)


@pytest.mark.parametrize("perm,shape", [([0, 2, 1, 3], [1, 6, 5]), ([0, 3, 2, 1], [4, 1, 1]),
                                        ([0, 1, 3, 2], [4, 5, 1])])
def test_transpose_of_size_one_axes_is_a_reshape(tmp_path, perm, shape):
    nodes = [node("Relu", "x", "r"), node("Transpose", "r", "t", perm=perm), node("Flatten", "t", "f"),
             node("Gemm", ["f", "W"], "y", transB=1)]
    net = check(model(nodes, shape, [init("W", rand(3, int(np.prod(shape))))]), tmp_path)
    assert not any(isinstance(n.layer, Transpose) for n in net.nodes)


@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_unsqueeze(tmp_path, opset):
    def axes_node(op, src, dst, axes, tag):
        if opset < 13:
            return [node(op, src, dst, axes=axes)]
        return [node(op, [src, tag], dst)]
    nodes = (axes_node("Unsqueeze", "x", "u", [1, -1], "a1") + [node("Relu", "u", "r")]
             + axes_node("Squeeze", "r", "s", [1, 4], "a2")
             + axes_node("Unsqueeze", "s", "u2", [2], "a3") + axes_node("Squeeze", "u2", "y", [-2], "a4"))
    inits = [ints("a1", [1, -1]), ints("a2", [1, 4]), ints("a3", [2]), ints("a4", [-2])]
    net = check(model(nodes, [3, 4], inits if opset >= 13 else [], opset=opset), tmp_path)
    assert net.output_shape == (3, 4) and net.nodes[0].shape == (1, 3, 4, 1)
    assert kinds(net) == ["Reshape", "ReLU", "Reshape"]  # two Squeeze/Unsqueeze pairs merged


# ------------------------------------------------------------------ constants and affines
ARITH_CASES = [  # (op, constant shape, constant first)
    ("Add", (1, 3, 1, 1), False), ("Sub", (5,), False), ("Mul", (4, 1), False), ("Div", (1, 1, 1, 1), False),
    ("Mul", (), False), ("Add", (1, 3, 4, 5), False), ("Sub", (3, 1, 1), True), ("Add", (5,), True),
    ("Mul", (1, 4, 5), True), ("Div", (), False),
]


@pytest.mark.parametrize("op,shape,const_first", ARITH_CASES)
def test_arithmetic_with_constants(tmp_path, op, shape, const_first):
    c = rand(*shape, seed=7) if shape else np.float32(-1.75)
    if op == "Div":
        c = np.where(np.abs(c) < 0.3, 0.5, c).astype(np.float32)
    inputs = ["c", "x"] if const_first else ["x", "c"]
    nodes = [node(op, inputs, "e"), node("Relu", "e", "y")]
    net = check(model(nodes, [3, 4, 5], [init("c", c)]), tmp_path)
    assert kinds(net) == ["ElementwiseAffine", "ReLU"]


def test_normalisation_sub_div_before_conv(tmp_path):
    mean, std = init("mean", [[[[0.5]], [[0.4]], [[0.3]]]]), init("std", [[[[0.2]], [[0.25]], [[0.3]]]])
    nodes = [node("Sub", ["x", "mean"], "s"), node("Div", ["s", "std"], "n"),
             node("Conv", ["n", "W", "B"], "c", pads=[1, 1, 1, 1]), node("Relu", "c", "y")]
    net = check(model(nodes, [3, 6, 6], [mean, std, init("W", rand(4, 3, 3, 3)), init("B", rand(4))]),
                tmp_path)
    assert kinds(net) == ["ElementwiseAffine", "Conv2d", "ReLU"]


@pytest.mark.parametrize("nodes", [
    [node("Neg", "x", "y")],
    [node("Sub", ["c", "x"], "y")],
    [node("Neg", "x", "n"), node("Sub", ["c", "n"], "s"), node("Mul", ["s", "c"], "y")],
], ids=["neg", "const_minus_x", "chain"])
def test_negation_and_const_minus_x(tmp_path, nodes):
    net = check(model(nodes, [2, 3], [init("c", rand(2, 3, seed=9))]), tmp_path)
    assert kinds(net) == ["ElementwiseAffine"]


def test_residual_block(tmp_path):
    nodes = [node("Conv", ["x", "W1", "B1"], "c1", pads=[1, 1, 1, 1]), node("Relu", "c1", "r1"),
             node("Conv", ["r1", "W2", "B2"], "c2", pads=[1, 1, 1, 1]), node("Add", ["c2", "x"], "s"),
             node("Relu", "s", "y")]
    inits = [init("W1", rand(3, 3, 3, 3)), init("B1", rand(3, seed=2)), init("W2", rand(3, 3, 3, 3, seed=3)),
             init("B2", rand(3, seed=4))]
    net = check(model(nodes, [3, 5, 5], inits), tmp_path)
    assert kinds(net) == ["Conv2d", "ReLU", "Conv2d", "Add", "ReLU"]
    assert net.nodes[3].inputs == (2, -1)


def test_sub_of_two_tensors(tmp_path):
    nodes = [node("Gemm", ["x", "W1"], "a", transB=1), node("Relu", "x", "r"), node("Sub", ["a", "r"], "s"),
             node("Sub", ["r", "s"], "y")]
    net = check(model(nodes, [4], [init("W1", rand(4, 4))]), tmp_path)
    assert sum(isinstance(n.layer, Add) for n in net.nodes) == 2


# --------------------------------------------------------------------------- BatchNorm
def bn_inits(c: int, prefix: str = "bn") -> list:
    rng = np.random.default_rng(11)
    return [init(f"{prefix}_s", rng.uniform(0.5, 2, c)), init(f"{prefix}_b", rng.normal(size=c)),
            init(f"{prefix}_m", rng.normal(size=c)), init(f"{prefix}_v", rng.uniform(0.2, 3, c))]


def bn(src: str, dst: str, prefix: str = "bn", **attrs):
    return node("BatchNormalization", [src] + [f"{prefix}_{k}" for k in "sbmv"], dst, **attrs)


@pytest.mark.parametrize("opset", [9, 13])
def test_batchnorm_after_conv_folds(tmp_path, opset):
    nodes = [node("Conv", ["x", "W"], "c", strides=[2, 2]), bn("c", "b", epsilon=1e-3), node("Relu", "b", "y")]
    net = check(model(nodes, [3, 8, 8], [init("W", rand(5, 3, 3, 3))] + bn_inits(5), opset=opset), tmp_path)
    assert kinds(net) == ["Conv2d", "ReLU"]


def test_batchnorm_after_gemm_folds(tmp_path):
    nodes = [node("Gemm", ["x", "W", "B"], "g", transB=1), bn("g", "y")]
    net = check(model(nodes, [4], [init("W", rand(6, 4)), init("B", rand(6))] + bn_inits(6)), tmp_path)
    assert kinds(net) == ["Affine"]


@pytest.mark.parametrize("shape", [[3, 4, 4], [3]])
def test_batchnorm_on_the_input_stays_elementwise(tmp_path, shape):
    nodes = [bn("x", "b"), node("Relu", "b", "y")]
    net = check(model(nodes, shape, bn_inits(3)), tmp_path)
    assert kinds(net) == ["ElementwiseAffine", "ReLU"]


def test_batchnorm_after_shared_conv_is_not_folded(tmp_path):
    """The conv output is also read by a residual Add: folding would change the skip path."""
    nodes = [node("Conv", ["x", "W"], "c", pads=[1, 1, 1, 1]), bn("c", "b"), node("Relu", "b", "r"),
             node("Add", ["r", "c"], "y")]
    net = check(model(nodes, [3, 4, 4], [init("W", rand(3, 3, 3, 3))] + bn_inits(3)), tmp_path)
    assert "ElementwiseAffine" in kinds(net)


def test_non_per_channel_scale_after_conv_is_not_folded(tmp_path):
    nodes = [node("Conv", ["x", "W"], "c"), node("Mul", ["c", "s"], "y")]
    net = check(model(nodes, [2, 4, 4], [init("W", rand(3, 2, 2, 2)), init("s", rand(1, 3, 3, 3))]), tmp_path)
    assert kinds(net) == ["Conv2d", "ElementwiseAffine"]


# ------------------------------------------------------------------------------- pooling
POOL_CASES = {
    "avg_k2": ("AveragePool", dict(kernel_shape=[2, 2], strides=[2, 2])),
    "avg_pad_excl": ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    "avg_pad_incl": ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                                         count_include_pad=1)),
    "avg_asym_excl": ("AveragePool", dict(kernel_shape=[3, 2], strides=[1, 2], pads=[0, 1, 2, 0])),
    "avg_asym_incl": ("AveragePool", dict(kernel_shape=[3, 2], strides=[1, 2], pads=[0, 1, 2, 0],
                                          count_include_pad=1)),
    "avg_same_upper": ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")),
    "max_k2": ("MaxPool", dict(kernel_shape=[2, 2], strides=[2, 2])),
    "max_pads": ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    "max_asym": ("MaxPool", dict(kernel_shape=[2, 3], strides=[1, 2], pads=[1, 0, 0, 2])),
    "max_dilated": ("MaxPool", dict(kernel_shape=[2, 2], dilations=[2, 2], pads=[1, 0, 1, 1])),
    "max_same_lower": ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_LOWER")),
}


@pytest.mark.parametrize("case", list(POOL_CASES))
def test_pooling(tmp_path, case):
    op, attrs = POOL_CASES[case]
    net = check(model([node(op, "x", "y", **attrs)], [3, 7, 8], opset=11), tmp_path)
    assert kinds(net) == [("AvgPool2d" if op == "AveragePool" else "MaxPool2d")]


def test_global_average_pool(tmp_path):
    nodes = [node("Conv", ["x", "W"], "c"), node("GlobalAveragePool", "c", "g"), node("Flatten", "g", "f"),
             node("Gemm", ["f", "W2"], "y", transB=1)]
    net = check(model(nodes, [2, 6, 5], [init("W", rand(4, 2, 3, 3)), init("W2", rand(3, 4))]), tmp_path)
    assert net.nodes[1].shape == (4, 1, 1) and isinstance(net.nodes[1].layer, AvgPool2d)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_ceil_mode_is_unsupported(tmp_path, op):
    m = model([node(op, "x", "y", name="pool1", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)], [1, 5, 5],
              opset=11)
    with pytest.raises(UnsupportedOperatorError, match="ceil_mode") as info:
        load_onnx(save(m, tmp_path))
    assert info.value.op_type == op and info.value.node_name == "pool1"


# ------------------------------------------------- Constant, Identity, Dropout, folding
@pytest.mark.parametrize("opset", [9, 13])
def test_constant_identity_dropout(tmp_path, opset):
    from onnx import helper, numpy_helper
    const = helper.make_node("Constant", [], ["k"], name="k",
                             value=numpy_helper.from_array(rand(4, seed=3), "k"))
    drop = node("Dropout", "i", "d", ratio=0.3) if opset < 12 else node("Dropout", ["i", "ratio"], "d")
    nodes = [const, node("Identity", "x", "i"), drop, node("Add", ["d", "k"], "a"), node("Identity", "a", "y")]
    inits = [init("ratio", np.float32(0.3))] if opset >= 12 else []
    net = check(model(nodes, [4], inits, opset=opset), tmp_path)
    assert kinds(net) == ["ElementwiseAffine"]


def test_initialiser_only_subgraphs_are_folded(tmp_path):
    from onnx import helper
    two = helper.make_node("Constant", [], ["two"], name="two", value_float=2.0)
    nodes = [two, node("Transpose", "Wt", "W", perm=[1, 0]), node("Mul", ["W", "two"], "W2"),
             node("Gemm", ["x", "W2"], "g"), node("Reshape", ["bias0", "bshape"], "bias"),
             node("Add", ["g", "bias"], "y")]
    inits = [init("Wt", rand(6, 5)), init("bias0", rand(2, 3)), ints("bshape", [6])]
    net = check(model(nodes, [5], inits), tmp_path)
    assert kinds(net) == ["Affine"]
    w = net.nodes[0].layer.weight
    assert np.allclose(w, 2 * rand(6, 5)) and np.allclose(net.nodes[0].layer.bias, rand(2, 3).ravel())


@pytest.mark.parametrize("opset", [9, 13])
def test_every_constant_operator_folds_like_onnxruntime(tmp_path, opset):
    """A bias computed from initialisers through every constant evaluator, then x - bias."""
    from onnx import TensorProto, helper, numpy_helper

    def axes(op, src, dst, tag, value):
        return node(op, src, dst, axes=value) if opset < 13 else node(op, [src, tag], dst)
    slice_node = (node("Slice", "fl", "sl", starts=[1], ends=[10**9], axes=[0]) if opset < 10
                  else node("Slice", ["fl", "st", "en", "ax", "sp"], "sl"))
    nodes = [
        helper.make_node("Constant", [], ["k1"], name="k1", value_floats=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        helper.make_node("Constant", [], ["k2"], name="k2", value=numpy_helper.from_array(np.array(2, np.int64))),
        node("Pow", ["k1", "two"], "p"), node("Sqrt", "p", "sq"), node("Reshape", ["sq", "shp"], "r"),
        node("Transpose", "r", "rt"), node("Flatten", "rt", "fl", axis=-1 if opset >= 11 else 1), slice_node,
        node("Concat", ["sl", "sl"], "cc", axis=1), node("Gather", ["cc", "gi"], "ga", axis=0),
        axes("Unsqueeze", "ga", "us", "uax", [0]), axes("Squeeze", "us", "sqz", "uax", [0]),
        node("Shape", "sqz", "shp2"), node("Cast", "shp2", "shpf", to=TensorProto.FLOAT),
        node("Div", ["shp2", "k2"], "half"),
        node("ConstantOfShape", "half", "cos", value=numpy_helper.from_array(np.array([0.5], np.float32))),
        node("MatMul", ["sqz", "m4"], "mm"), node("Neg", "mm", "ng"), node("Relu", "ng", "rl"),
        node("Identity", "rl", "idn"), node("Add", ["idn", "cos"], "b0"), node("Mul", ["b0", "shpf"], "b1"),
        node("Sub", ["x", "b1"], "y")]
    inits = [init("two", 2.0), ints("shp", [2, 3]), ints("st", [-1]), ints("en", [-10**9]), ints("ax", [0]),
             ints("sp", [-1]), ints("gi", [-1, 0]), ints("uax", [0]), init("m4", [[1.0], [-2.0], [0.5], [-0.25]])]
    net = check(model(nodes, [2, 2], inits, opset=opset), tmp_path)
    assert kinds(net) == ["ElementwiseAffine"]


def test_matmul_add_batchnorm_on_unflattened_input_fold_through_reshape(tmp_path):
    nodes = [node("MatMul", ["x", "W"], "h"), node("Add", ["h", "b"], "a"), node("Relu", "a", "r"),
             node("MatMul", ["r", "W2"], "h2"), node("Mul", ["h2", "s"], "y")]
    inits = [init("W", rand(5, 4)), init("b", rand(4)), init("W2", rand(4, 3)), init("s", rand(1, 1, 3))]
    net = check(model(nodes, [1, 1, 5], inits, batch=1), tmp_path)
    assert "ElementwiseAffine" not in kinds(net) and kinds(net).count("Affine") == 2


@pytest.mark.parametrize("attrs", [dict(strides=[0, 1]), dict(strides=[0, 1], auto_pad="SAME_UPPER"),
                                   dict(dilations=[0, 1]), dict(pads=[-1, 0, 0, 0])])
def test_malformed_window_attributes_are_clear_errors(tmp_path, attrs):
    m = model([node("Conv", ["x", "W"], "y", name="bad_conv", **attrs)], [1, 5, 5], [init("W", rand(2, 1, 2, 2))],
              opset=11)
    with pytest.raises((ShapeError, ModelFormatError), match="bad_conv"):
        load_onnx(save(m, tmp_path))


def test_node_names_are_unique_and_fall_back_to_output_names(tmp_path):
    from onnx import helper
    nodes = [node("Relu", "x", "a", name="n"), node("Tanh", "a", "b", name="n"),
             helper.make_node("Sigmoid", ["b"], ["out_tensor"])]
    net = load_onnx(save(model(nodes, [4]), tmp_path))
    names = [n.name for n in net.nodes]
    assert len(set(names)) == 3 and names[0] == "n" and names[-1] == "out_tensor"


def test_initialisers_listed_as_graph_inputs(tmp_path):
    from onnx import TensorProto, helper
    m = model([node("Gemm", ["x", "W"], "y", transB=1)], [4], [init("W", rand(3, 4))])
    m.graph.input.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, [3, 4]))
    net = check(m, tmp_path)
    assert net.input_shape == (4,)


def test_empty_batch_forward(tmp_path):
    nodes = [node("Conv", ["x", "W"], "c"), node("Relu", "c", "r"), node("Flatten", "r", "f"),
             node("Gemm", ["f", "W2"], "y", transB=1)]
    net = load_onnx(save(model(nodes, [1, 3, 3], [init("W", rand(2, 1, 2, 2)), init("W2", rand(3, 8))]), tmp_path))
    assert net.forward(np.zeros((0, 1, 3, 3))).shape == (0, 3)
    assert net.forward(np.zeros((0, 9))).shape == (0, 3)


def test_acas_style_zero_subtraction_disappears(tmp_path):
    nodes = [node("Sub", ["x", "zero"], "s"), node("Flatten", "s", "f"), node("MatMul", ["f", "W1"], "h"),
             node("Add", ["h", "b1"], "a"), node("Relu", "a", "r"), node("MatMul", ["r", "W2"], "h2"),
             node("Add", ["h2", "b2"], "y")]
    inits = [init("zero", np.zeros(5)), init("W1", rand(5, 8)), init("b1", rand(8, seed=3)),
             init("W2", rand(8, 5, seed=4)), init("b2", rand(5, seed=5))]
    net = check(model(nodes, [1, 1, 5], inits, opset=8, batch=1), tmp_path)
    assert [k for k in kinds(net) if k != "Reshape"] == ["Affine", "ReLU", "Affine"]
    assert net.nodes[-1].name == "h2" and net.output_shape == (5,)


def test_node_shapes_and_activations_match_onnxruntime(tmp_path):
    """No folding happens here, so IR node i is ONNX node i: compare every intermediate tensor."""
    nodes = [node("Conv", ["x", "W1", "B1"], "c1", strides=[2, 2], pads=[1, 1, 1, 1]), node("Relu", "c1", "r1"),
             node("MaxPool", "r1", "p1", kernel_shape=[2, 2]), node("Sigmoid", "p1", "s1"),
             node("Transpose", "s1", "t1", perm=[0, 2, 3, 1]), node("Flatten", "t1", "f1"),
             node("Gemm", ["f1", "W2", "B2"], "g1", transB=1), node("Tanh", "g1", "y")]
    inits = [init("W1", rand(4, 2, 3, 3)), init("B1", rand(4, seed=2)), init("W2", rand(5, 64, seed=3)),
             init("B2", rand(5, seed=4))]
    m = model(nodes, [2, 9, 9], inits)
    net = load_onnx(save(m, tmp_path))
    assert [n.name for n in net.nodes] == [n.output[0] for n in nodes]
    x = random_input([2, 9, 9], 4)
    refs = ort_outputs(m, x, [n.output[0] for n in nodes])
    for got, ref, n in zip(net.activations(x), refs, net.nodes):
        assert n.shape == ref.shape[1:], n.name
        assert_close(got, ref, what=n.name)
    assert net.nodes[-1].name == m.graph.output[0].name


def test_unused_branches_are_pruned_and_output_is_last(tmp_path):
    nodes = [node("Relu", "x", "dead"), node("Tanh", "x", "t"), node("Sigmoid", "dead", "dead2"),
             node("Relu", "t", "y")]
    net = check(model(nodes, [3], output="t"), tmp_path)
    assert kinds(net) == ["Tanh"]


# ---------------------------------------------------------------------------- errors
def _big_model():
    return model([node("Gemm", ["x", "W"], "h", transB=1), node("Relu", "h", "y")], [64],
                 [init("W", rand(64, 64))])


def _truncated_sources():
    sources = [("self-made", _big_model().SerializeToString())]
    nets = _bench.benchmark_networks()
    if nets:
        sources.append((nets[0].name, nets[0].read_bytes()))
    return sources


@pytest.mark.parametrize("cut", [0.5, 0.1, 0.9, 0.999])
def test_truncated_files_are_model_format_errors(tmp_path, cut):
    for label, data in _truncated_sources():
        path = tmp_path / f"cut_{label}"
        path.write_bytes(data[:int(len(data) * cut)])
        with pytest.raises(ModelFormatError) as info:
            load_onnx(path)
        assert str(path) in str(info.value), label
        assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize("seed", range(8))
def test_garbage_bytes_are_model_format_errors(tmp_path, seed):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(ModelFormatError, match=re.escape(str(path))):
        load_onnx(path)


def test_text_empty_missing_and_directory_are_model_format_errors(tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "text.onnx").write_text("this is not an onnx model\n" * 20)
    for name in ["empty.onnx", "text.onnx", "missing.onnx", "."]:
        path = tmp_path / name
        with pytest.raises(ModelFormatError) as info:
            load_onnx(path)
        assert str(path) in str(info.value)


def test_lstm_is_unsupported_with_name_and_list(tmp_path):
    nodes = [node("LSTM", ["x", "W", "R"], "y", name="encoder_lstm", hidden_size=2)]
    m = model(nodes, [1, 3], [init("W", rand(1, 8, 3)), init("R", rand(1, 8, 2))])
    with pytest.raises(UnsupportedOperatorError) as info:
        load_onnx(save(m, tmp_path))
    msg = str(info.value)
    assert "LSTM" in msg and "encoder_lstm" in msg and "Conv" in msg and "Relu" in msg and "Gemm" in msg
    assert info.value.op_type == "LSTM" and "Conv" in info.value.supported


@pytest.mark.parametrize("op", ["Mul", "Div"])
def test_product_of_two_computed_tensors_is_unsupported(tmp_path, op):
    nodes = [node("Relu", "x", "r"), node(op, ["x", "r"], "y", name="prod")]
    with pytest.raises(UnsupportedOperatorError, match=op) as info:
        load_onnx(save(model(nodes, [3]), tmp_path))
    assert "prod" in str(info.value)


def test_constant_divided_by_tensor_is_unsupported(tmp_path):
    m = model([node("Div", ["c", "x"], "y")], [3], [init("c", np.ones(3))])
    with pytest.raises(UnsupportedOperatorError, match="Div"):
        load_onnx(save(m, tmp_path))


@pytest.mark.parametrize("dims", [["N", 3, "H", 8], ["N", 0, 4], None])
def test_unknown_input_dims_are_model_format_errors(tmp_path, dims):
    from onnx import TensorProto, helper
    m = model([node("Relu", "x", "y")], [1])
    m.graph.input[0].CopyFrom(helper.make_tensor_value_info("x", TensorProto.FLOAT, dims))
    with pytest.raises(ModelFormatError, match="x"):
        load_onnx(save(m, tmp_path))


def test_graph_structure_errors(tmp_path):
    from onnx import TensorProto, helper
    m = model([node("Add", ["x", "z"], "y")], [3])
    m.graph.input.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 3]))
    with pytest.raises(ModelFormatError, match="one network input"):
        load_onnx(save(m, tmp_path))
    m = model([node("Relu", "nowhere", "y")], [3])
    with pytest.raises(ModelFormatError, match="nowhere"):
        load_onnx(save(m, tmp_path))
    m = model([node("Relu", "x", "r")], [3], [init("c", np.ones(3))], output="c")
    with pytest.raises(ModelFormatError, match="not computed"):
        load_onnx(save(m, tmp_path))


def test_supported_operators_list():
    ops = supported_operators()
    for op in ["Conv", "Gemm", "MatMul", "Relu", "Sigmoid", "Tanh", "Flatten", "Reshape", "Transpose",
               "BatchNormalization", "AveragePool", "MaxPool", "GlobalAveragePool", "Add", "Sub", "Mul", "Div"]:
        assert op in ops
    assert "LSTM" not in ops


# --------------------------------------------------------------------------- simplify
def test_simplify_keeps_semantics_of_shared_and_chained_nodes():
    from absint.network import NETWORK_INPUT, Network, Node
    from absint.onnx_import import simplify
    rng = np.random.default_rng(0)
    nodes = [Node("ea0", ElementwiseAffine(np.ones(4), np.zeros(4)), (NETWORK_INPUT,)),
             Node("fc", Affine(rng.normal(size=(4, 4)), rng.normal(size=4)), (0,)),
             Node("scale", ElementwiseAffine(rng.normal(size=4), rng.normal(size=4)), (1,)),
             Node("r1", Reshape((2, 2)), (2,)), Node("r2", Reshape((4, 1)), (3,)), Node("r3", Reshape((4,)), (4,)),
             Node("relu", ReLU(), (5,)), Node("skip", Add(), (6, 1)),
             Node("last", ElementwiseAffine(np.ones(4), np.zeros(4)), (7,))]
    net = Network((4,), nodes)
    small = Network((4,), simplify(list(net.nodes)))
    x = rng.normal(size=(10, 4))
    np.testing.assert_allclose(small.forward(x), net.forward(x), rtol=1e-12, atol=1e-12)
    assert kinds(small) == ["Affine", "ElementwiseAffine", "ReLU", "Add"]


def test_simplify_keeps_an_identity_that_is_the_whole_network():
    from absint.network import NETWORK_INPUT, Network, Node
    from absint.onnx_import import simplify
    nodes = simplify([Node("id", ElementwiseAffine(np.ones(3), np.zeros(3)), (NETWORK_INPUT,), (3,))])
    assert len(Network((3,), nodes)) == 1


# ------------------------------------------------------------------------- benchmarks
def _vnnlib_boxes_fallback(path: Path, n_inputs: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Input boxes of a VNN-LIB file from its ``(<= X_i v)`` / ``(>= X_i v)`` bounds.

    A bound on an input that the current box already bounds starts a new box (a disjunction of
    boxes, as in ACAS Xu prop_6). Used only while ``absint.vnnlib`` does not exist.
    """
    text = re.sub(r";[^\n]*", "", path.read_text())
    boxes = [(np.full(n_inputs, -np.inf), np.full(n_inputs, np.inf))]
    for op, idx, val in re.findall(r"\(\s*(<=|>=)\s+X_(\d+)\s+([-+.\deE]+)\s*\)", text):
        arr = boxes[-1][1 if op == "<=" else 0]
        if np.isfinite(arr[int(idx)]):
            boxes.append((np.full(n_inputs, -np.inf), np.full(n_inputs, np.inf)))
            arr = boxes[-1][1 if op == "<=" else 0]
        arr[int(idx)] = float(val)
    assert all(np.isfinite(lo).all() and np.isfinite(hi).all() for lo, hi in boxes), path.name
    return boxes


def property_boxes(path: Path, net) -> list[tuple[np.ndarray, np.ndarray]]:
    """(lower, upper) flat input boxes; prefers ``absint.load_vnnlib`` when it exists."""
    try:
        from absint.vnnlib import load_vnnlib
    except ImportError:
        return _vnnlib_boxes_fallback(path, net.input_size)
    spec = load_vnnlib(path, net)
    return [(np.asarray(r[0], float).reshape(-1), np.asarray(r[1], float).reshape(-1)) for r in spec.regions]


def _instances_by_network() -> dict[Path, list[Path]]:
    props = defaultdict(list)
    for _fam, onnx_path, vnnlib_path, _t in _bench.benchmark_instances():
        if vnnlib_path not in props[onnx_path.resolve()]:
            props[onnx_path.resolve()].append(vnnlib_path)
    return props


_NETS = _bench.benchmark_networks()
_PROPS = _instances_by_network()


@pytest.mark.skipif(not _NETS, reason=_bench.NO_BENCHMARKS)
@pytest.mark.parametrize("onnx_path", _NETS or [None],
                         ids=[p.name for p in _NETS] or ["none"])
def test_benchmark_network_matches_onnxruntime(onnx_path):
    net = load_onnx(onnx_path)
    m = onnx.load(str(onnx_path))
    shape = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    vnnlibs = _PROPS.get(onnx_path.resolve(), [])
    assert vnnlibs, f"{onnx_path.name} has no instances"
    rng = np.random.default_rng(zlib.crc32(onnx_path.name.encode()))
    from tests.onnx_builders import _session
    sess = _session(m)
    in_name = sess.get_inputs()[0].name
    for vnnlib_path in vnnlibs:
        for lo, hi in property_boxes(vnnlib_path, net):
            assert lo.shape == (net.input_size,) and np.all(lo <= hi), vnnlib_path.name
            x = rng.uniform(lo, hi, size=(50, net.input_size)).astype(np.float32)
            ref = np.concatenate([sess.run(None, {in_name: xi.reshape(shape)})[0].reshape(1, -1) for xi in x])
            y = net.forward(x.astype(np.float64))
            err = np.abs(y - ref).max()
            assert err <= 1e-5, f"{onnx_path.name} on {vnnlib_path.name}: max error {err:.3g}"


@pytest.mark.skipif(not _NETS, reason=_bench.NO_BENCHMARKS)
def test_fallback_boxes_agree_with_load_vnnlib():
    """Keeps the local fallback honest while ``absint.vnnlib`` exists (every benchmark property)."""
    vnnlib = pytest.importorskip("absint.vnnlib")
    nets = {}
    for fam, onnx_path, vnnlib_path, _t in _bench.benchmark_instances():
        if (fam, vnnlib_path) in nets:
            continue
        net = nets[fam, vnnlib_path] = load_onnx(onnx_path)
        ours = _vnnlib_boxes_fallback(vnnlib_path, net.input_size)
        theirs = vnnlib.load_vnnlib(vnnlib_path, net).regions
        assert len(ours) == len(theirs), vnnlib_path.name
        for (lo, hi), region in zip(ours, theirs):
            np.testing.assert_array_equal(lo, np.ravel(region[0]))
            np.testing.assert_array_equal(hi, np.ravel(region[1]))
