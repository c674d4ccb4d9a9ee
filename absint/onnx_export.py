"""Export an IR ``Network`` to ONNX (the inverse of ``absint.onnx_import``).

The graph input is ``"input"`` of shape ``[batch, *net.input_shape]`` (``batch`` symbolic),
the graph output ``"output"`` of shape ``[batch, *net.output_shape]``. Layer mapping:

==================  ==========================================================
Affine              [Flatten(axis=1) if the input is not 1-d] Gemm(transB=1): y = x Wᵀ + b
Conv2d              Conv (pads = [top, left, bottom, right]), strides, dilations, group
ReLU/Sigmoid/Tanh   Relu / Sigmoid / Tanh
Reshape             Reshape to [-1, *shape] (the batch axis is kept)
Transpose           Transpose with perm (0, *[p + 1 for p in perm])
ElementwiseAffine   Mul(scale) then Add(shift), constants of shape [1, *shape]
Add                 Add
AvgPool2d           AveragePool (count_include_pad as in the layer)
MaxPool2d           MaxPool (with dilations)
==================  ==========================================================

Weights are written as float32 initialisers by default (``dtype="float64"`` keeps the exact
IR values). The float32 export is lossless iff every parameter is float32-representable;
otherwise the values are rounded to nearest and a ``UserWarning`` says how many changed.
The output bytes depend only on the network (no timestamps or library versions), so
exporting the same network twice gives identical files.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from os import PathLike

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .network import (NETWORK_INPUT, Add, Affine, AvgPool2d, Conv2d, ElementwiseAffine, Layer,
                      MaxPool2d, Network, Node, ReLU, Reshape, Shape, Sigmoid, Tanh, Transpose)

__all__ = ["save_onnx", "to_onnx_model", "DEFAULT_OPSET"]

DEFAULT_OPSET = 13
MIN_OPSET = 11
INPUT_NAME = "input"
OUTPUT_NAME = "output"
BATCH_DIM = "batch"

_DTYPES = {"float32": (np.float32, TensorProto.FLOAT), "float64": (np.float64, TensorProto.DOUBLE)}


class _GraphBuilder:
    """Collects ONNX nodes and initialisers with unique names while the IR is walked."""

    def __init__(self, dtype: str):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        self.np_dtype, self.onnx_dtype = _DTYPES[dtype]
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.used: set[str] = {INPUT_NAME, OUTPUT_NAME}
        self.lossy: list[str] = []

    def fresh(self, base: str) -> str:
        """A tensor/node name not used yet, derived from ``base``."""
        name, k = base, 1
        while name in self.used:
            name, k = f"{base}_{k}", k + 1
        self.used.add(name)
        return name

    def constant(self, base: str, value: np.ndarray) -> str:
        """Add a floating-point initialiser in the export dtype; returns its name."""
        value = np.asarray(value, dtype=np.float64)
        cast = value.astype(self.np_dtype)
        if not np.array_equal(cast.astype(np.float64), value):
            self.lossy.append(base)
        return self._add_initializer(base, cast)

    def int64_constant(self, base: str, value) -> str:
        return self._add_initializer(base, np.asarray(value, dtype=np.int64))

    def _add_initializer(self, base: str, value: np.ndarray) -> str:
        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str, name: str, **attrs) -> str:
        """Append one ONNX node writing tensor ``output``; returns ``output``."""
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=self.fresh(name), **attrs))
        return output


#: exporter(builder, layer, input tensor names, input shapes, output tensor name, base name)
Exporter = Callable[[_GraphBuilder, Layer, list[str], list[Shape], str, str], None]
_EXPORTERS: dict[type[Layer], Exporter] = {}


def _exports(layer_type: type[Layer]) -> Callable[[Exporter], Exporter]:
    def register(fn: Exporter) -> Exporter:
        _EXPORTERS[layer_type] = fn
        return fn
    return register


@_exports(Affine)
def _affine(b: _GraphBuilder, layer: Affine, xs, shapes, out, base):
    """y = x Wᵀ + b via Gemm(transB=1); a non-flat input is flattened first (axis 1)."""
    x = xs[0]
    if len(shapes[0]) != 1:
        x = b.op("Flatten", [x], b.fresh(f"{base}_flat"), f"{base}_flatten", axis=1)
    w = b.constant(f"{base}.weight", layer.weight)
    bias = b.constant(f"{base}.bias", layer.bias)
    b.op("Gemm", [x, w, bias], out, base, transB=1)


@_exports(Conv2d)
def _conv(b: _GraphBuilder, layer: Conv2d, xs, shapes, out, base):
    """ONNX Conv; the IR padding (top, left, bottom, right) is ONNX [x1_b, x2_b, x1_e, x2_e]."""
    w = b.constant(f"{base}.weight", layer.weight)
    bias = b.constant(f"{base}.bias", layer.bias)
    b.op("Conv", [xs[0], w, bias], out, base, kernel_shape=list(layer.kernel),
         strides=list(layer.stride), pads=list(layer.padding), dilations=list(layer.dilation),
         group=layer.groups)


def _elementwise(op_type: str) -> Exporter:
    def export(b: _GraphBuilder, layer: Layer, xs, shapes, out, base):
        b.op(op_type, xs, out, base)
    export.__doc__ = f"ONNX {op_type} of the inputs."
    return export


_exports(ReLU)(_elementwise("Relu"))
_exports(Sigmoid)(_elementwise("Sigmoid"))
_exports(Tanh)(_elementwise("Tanh"))
_exports(Add)(_elementwise("Add"))


@_exports(Reshape)
def _reshape(b: _GraphBuilder, layer: Reshape, xs, shapes, out, base):
    """Reshape to [-1, *shape]: the batch axis is kept whatever its size."""
    shape = b.int64_constant(f"{base}.shape", [-1, *layer.shape])
    b.op("Reshape", [xs[0], shape], out, base)


@_exports(Transpose)
def _transpose(b: _GraphBuilder, layer: Transpose, xs, shapes, out, base):
    """Per-sample permutation shifted past the batch axis: perm' = (0, p_0 + 1, ...)."""
    b.op("Transpose", [xs[0]], out, base, perm=[0] + [p + 1 for p in layer.perm])


@_exports(ElementwiseAffine)
def _elementwise_affine(b: _GraphBuilder, layer: ElementwiseAffine, xs, shapes, out, base):
    """y = x * scale + shift as Mul then Add with constants of shape [1, *shape]."""
    scale = b.constant(f"{base}.scale", layer.scale[None])
    shift = b.constant(f"{base}.shift", layer.shift[None])
    scaled = b.op("Mul", [xs[0], scale], b.fresh(f"{base}_scaled"), f"{base}_mul")
    b.op("Add", [scaled, shift], out, f"{base}_add")


def _pool_attrs(layer) -> dict:
    return dict(kernel_shape=list(layer.kernel), strides=list(layer.stride), pads=list(layer.padding))


@_exports(AvgPool2d)
def _avgpool(b: _GraphBuilder, layer: AvgPool2d, xs, shapes, out, base):
    """Window mean; the divisor counts padded cells iff count_include_pad."""
    b.op("AveragePool", [xs[0]], out, base, count_include_pad=int(layer.count_include_pad),
         **_pool_attrs(layer))


@_exports(MaxPool2d)
def _maxpool(b: _GraphBuilder, layer: MaxPool2d, xs, shapes, out, base):
    """Window maximum (padding never wins)."""
    b.op("MaxPool", [xs[0]], out, base, dilations=list(layer.dilation), **_pool_attrs(layer))


def _base_name(node: Node, idx: int, taken: set[str]) -> str:
    """ONNX-friendly name for a node: its IR name (sanitised) if usable, else ``node{idx}``."""
    name = re.sub(r"[^A-Za-z0-9_.:/-]", "_", node.name or "")
    if not name or name in taken:
        name = f"node{idx}"
    taken.add(name)
    return name


def _value_info(name: str, elem_type: int, shape: Shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, [BATCH_DIM, *shape])


def to_onnx_model(net: Network, *, opset: int = DEFAULT_OPSET, dtype: str = "float32") -> onnx.ModelProto:
    """The ONNX model computing ``net`` (see the module docstring for the operator mapping)."""
    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise ValueError(f"opset must be in [{MIN_OPSET}, {onnx.defs.onnx_opset_version()}], got {opset}")
    b = _GraphBuilder(dtype)
    names: list[str] = []
    taken: set[str] = set(b.used)
    last = len(net.nodes) - 1
    for idx, node in enumerate(net.nodes):
        exporter = _EXPORTERS.get(type(node.layer))
        if exporter is None:
            raise TypeError(f"no ONNX exporter for layer type {type(node.layer).__name__} "
                            f"(node {node.name!r}); supported: {sorted(t.__name__ for t in _EXPORTERS)}")
        base = _base_name(node, idx, taken)
        xs = [INPUT_NAME if i == NETWORK_INPUT else names[i] for i in node.inputs]
        shapes = [net.input_shape if i == NETWORK_INPUT else net.nodes[i].shape for i in node.inputs]
        out = OUTPUT_NAME if idx == last else b.fresh(base + "_out")
        exporter(b, node.layer, xs, shapes, out, base)
        names.append(out)
    if b.lossy:
        warnings.warn(f"{len(b.lossy)} parameter tensor(s) are not exactly representable in {dtype} "
                      f"and were rounded: {', '.join(b.lossy[:5])}{' ...' if len(b.lossy) > 5 else ''}",
                      UserWarning, stacklevel=2)
    graph = helper.make_graph(b.nodes, net.name or "absint_network",
                              [_value_info(INPUT_NAME, b.onnx_dtype, net.input_shape)],
                              [_value_info(OUTPUT_NAME, b.onnx_dtype, net.output_shape)],
                              initializer=b.initializers)
    opsets = [helper.make_opsetid("", opset)]
    return helper.make_model(graph, opset_imports=opsets, producer_name="absint",
                             ir_version=helper.find_min_ir_version_for(opsets))


def save_onnx(net: Network, path: str | PathLike, *, opset: int = DEFAULT_OPSET, dtype: str = "float32") -> None:
    """Write ``net`` as an ONNX file at ``path`` (deterministic bytes for a given network)."""
    model = to_onnx_model(net, opset=opset, dtype=dtype)
    with open(path, "wb") as fh:
        fh.write(model.SerializeToString(deterministic=True))
