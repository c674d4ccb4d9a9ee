"""ONNX -> absint IR.

Each ONNX operator has one handler in ``LAYER_OPS`` (it may create IR nodes) and, when it can
also act on constants, one evaluator in ``CONSTANT_OPS``; a node whose inputs are all constants
(initialisers, Constant nodes, shapes) is folded by numpy. The network input's first axis is
the batch axis: handlers see full ONNX shapes (1, *shape) and the IR keeps per-sample shapes.
After import, ``simplify`` folds elementwise affines (BatchNorm, MatMul+Add, normalisation)
into the preceding Affine/Conv, drops identities and merges reshapes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import ModelFormatError, ShapeError, UnsupportedOperatorError
from .network import (NETWORK_INPUT, Add, Affine, AvgPool2d, Conv2d, ElementwiseAffine, Layer,
                      MaxPool2d, Network, Node, ReLU, Reshape, Sigmoid, Tanh, Transpose)

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Var:
    """A tensor computed by the network: IR node ``index`` (or NETWORK_INPUT), per-sample ``shape``."""

    index: int
    shape: Shape

    @property
    def full_shape(self) -> Shape:
        return (1,) + self.shape


@dataclass(frozen=True)
class Const:
    """A tensor known at import time."""

    value: np.ndarray


Value = Var | Const


class GraphBuilder:
    """Collects IR nodes while the ONNX graph is walked."""

    def __init__(self, input_shape: Shape):
        self.input_shape = input_shape
        self.names: list[str] = []
        self.layers: list[Layer] = []
        self.inputs: list[tuple[int, ...]] = []
        self.shapes: list[Shape] = []
        self.node_name = ""

    def add(self, layer: Layer, *args: Var) -> Var:
        shape = tuple(int(s) for s in layer.output_shape(*(a.shape for a in args)))
        suffix = f"#{len(self.layers)}" if self.node_name in self.names else ""
        self.names.append(self.node_name + suffix)
        self.layers.append(layer)
        self.inputs.append(tuple(a.index for a in args))
        self.shapes.append(shape)
        return Var(len(self.layers) - 1, shape)

    def reshape(self, x: Var, shape: Shape) -> Var:
        shape = tuple(int(s) for s in shape)
        return x if shape == x.shape else self.add(Reshape(shape), x)


Handler = Callable[[object, list, dict, GraphBuilder], list]
LAYER_OPS: dict[str, Handler] = {}
CONSTANT_OPS: dict[str, Callable[..., list]] = {}


def layer_op(*op_types: str):
    def register(fn: Handler) -> Handler:
        for op in op_types:
            LAYER_OPS[op] = fn
        return fn
    return register


def constant_op(*op_types: str):
    def register(fn):
        for op in op_types:
            CONSTANT_OPS[op] = fn
        return fn
    return register


def supported_operators() -> list[str]:
    return sorted(set(LAYER_OPS) | set(CONSTANT_OPS))


class _Unsupported(Exception):
    """Raised by handlers for an operator use absint cannot represent (turned into the public error)."""


# ----------------------------------------------------------------------------- helpers
def _per_sample(full: Shape, what: str) -> Shape:
    if len(full) == 0 or full[0] != 1:
        raise ShapeError(f"{what} would change the batch axis (result shape {tuple(full)})")
    return tuple(int(s) for s in full[1:])


def _var_input(args: list, position: int = 0) -> Var:
    x = args[position]
    if not isinstance(x, Var):
        raise _Unsupported(f"input {position} must be computed from the network input")
    return x


def _const_input(args: list, position: int, what: str) -> np.ndarray:
    c = args[position] if position < len(args) else None
    if not isinstance(c, Const):
        raise _Unsupported(f"{what} must be a constant (initialiser)")
    return c.value


def _broadcast_to_var(c: np.ndarray, x: Var, op: str) -> np.ndarray:
    """Broadcast a constant operand against a variable; the result may not grow the variable."""
    full = np.broadcast_shapes(c.shape, x.full_shape)
    if tuple(full) != x.full_shape:
        raise ShapeError(f"{op} with a constant of shape {c.shape} would broadcast {x.full_shape} to {full}")
    return np.broadcast_to(c.astype(np.float64), x.full_shape)[0]


def _pads_2d(attrs: dict, in_hw: Shape, kernel: Shape, stride: Shape, dilation: Shape) -> tuple:
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("NOTSET", ""):
        pads = tuple(attrs.get("pads", (0, 0, 0, 0)))
        if len(pads) != 4:
            raise _Unsupported(f"pads {pads} (only 2-d windows are supported)")
        return pads
    if auto_pad == "VALID":
        return (0, 0, 0, 0)
    begin, end = [], []
    for a in range(2):
        out = -(-in_hw[a] // stride[a])
        total = max(0, (out - 1) * stride[a] + (kernel[a] - 1) * dilation[a] + 1 - in_hw[a])
        small, big = total // 2, total - total // 2
        begin.append(small if auto_pad == "SAME_UPPER" else big)
        end.append(big if auto_pad == "SAME_UPPER" else small)
    return (begin[0], begin[1], end[0], end[1])


def _window_attrs(attrs: dict, kernel: Shape, in_hw: Shape) -> tuple:
    if len(kernel) != 2:
        raise _Unsupported(f"kernel_shape {tuple(kernel)} (only 2-d windows are supported)")
    stride = tuple(attrs.get("strides", (1, 1)))
    dilation = tuple(attrs.get("dilations", (1, 1)))
    if attrs.get("ceil_mode", 0):
        raise _Unsupported("ceil_mode=1")
    return stride, _pads_2d(attrs, in_hw, kernel, stride, dilation), dilation


# ---------------------------------------------------------------------- layer handlers
@layer_op("Relu")
def _relu(node, args, attrs, g):
    return [g.add(ReLU(), _var_input(args))]


@layer_op("Sigmoid")
def _sigmoid(node, args, attrs, g):
    return [g.add(Sigmoid(), _var_input(args))]


@layer_op("Tanh")
def _tanh(node, args, attrs, g):
    return [g.add(Tanh(), _var_input(args))]


@layer_op("Identity", "Dropout")
def _identity(node, args, attrs, g):
    if len(node.output) > 1 and node.output[1]:
        raise _Unsupported("the dropout mask output")
    return [args[0]]


@layer_op("Flatten")
def _flatten(node, args, attrs, g):
    x = _var_input(args)
    full = x.full_shape
    axis = attrs.get("axis", 1)
    axis = axis + len(full) if axis < 0 else axis
    out = (int(np.prod(full[:axis], dtype=np.int64)), int(np.prod(full[axis:], dtype=np.int64)))
    return [g.reshape(x, _per_sample(out, "Flatten"))]


def _reshape_target(full: Shape, target: np.ndarray, allowzero: int) -> Shape:
    target = [int(t) for t in target]
    out = [full[i] if (t == 0 and not allowzero) else t for i, t in enumerate(target)]
    if out.count(-1) > 1:
        raise ShapeError(f"Reshape target {target} has more than one -1")
    if -1 in out:
        known = int(np.prod([s for s in out if s != -1], dtype=np.int64))
        total = int(np.prod(full, dtype=np.int64))
        if known == 0 or total % known:
            raise ShapeError(f"cannot reshape {full} into {target}")
        out[out.index(-1)] = total // known
    if int(np.prod(out, dtype=np.int64)) != int(np.prod(full, dtype=np.int64)):
        raise ShapeError(f"cannot reshape {full} into {target}")
    return tuple(out)


@layer_op("Reshape")
def _reshape(node, args, attrs, g):
    x = _var_input(args)
    if len(args) > 1:
        target = _const_input(args, 1, "the Reshape target shape")
    else:  # opset < 5
        target = np.array(attrs["shape"])
    full = _reshape_target(x.full_shape, target, attrs.get("allowzero", 0))
    return [g.reshape(x, _per_sample(full, "Reshape"))]


def _squeeze_axes(node, args, attrs, rank: int) -> list[int] | None:
    if len(args) > 1 and args[1] is not None:
        axes = _const_input(args, 1, "the axes")
    else:
        axes = attrs.get("axes")
    if axes is None:
        return None
    return sorted(int(a) + rank if int(a) < 0 else int(a) for a in np.atleast_1d(axes))


@layer_op("Squeeze")
def _squeeze(node, args, attrs, g):
    x = _var_input(args)
    full = x.full_shape
    axes = _squeeze_axes(node, args, attrs, len(full))
    if axes is None:
        axes = [i for i, s in enumerate(full) if s == 1 and i > 0]
    if 0 in axes:
        raise ShapeError("Squeeze of the batch axis")
    if any(full[a] != 1 for a in axes):
        raise ShapeError(f"Squeeze of axes {axes} of shape {full} that are not 1")
    out = tuple(s for i, s in enumerate(full) if i not in axes)
    return [g.reshape(x, _per_sample(out, "Squeeze"))]


@layer_op("Unsqueeze")
def _unsqueeze(node, args, attrs, g):
    x = _var_input(args)
    full = list(x.full_shape)
    raw = _squeeze_axes(node, args, attrs, 0) or []
    axes = _squeeze_axes(node, args, attrs, len(full) + len(raw))
    if not axes or 0 in axes:
        raise ShapeError(f"Unsqueeze at axes {axes} would move the batch axis")
    for a in axes:
        full.insert(a, 1)
    return [g.reshape(x, _per_sample(tuple(full), "Unsqueeze"))]


@layer_op("Transpose")
def _transpose(node, args, attrs, g):
    x = _var_input(args)
    full = x.full_shape
    perm = list(attrs.get("perm", range(len(full) - 1, -1, -1)))
    if perm[0] != 0:
        raise _Unsupported(f"perm {perm} moves the batch axis")
    sample_perm = tuple(p - 1 for p in perm[1:])
    out_shape = tuple(x.shape[p] for p in sample_perm)
    moved = [p for p in sample_perm if x.shape[p] != 1]
    if moved == sorted(moved):  # only size-1 axes move: the flat order is unchanged
        return [g.reshape(x, out_shape)]
    return [g.add(Transpose(sample_perm), x)]


@layer_op("Gemm")
def _gemm(node, args, attrs, g):
    x = _var_input(args)
    if attrs.get("transA", 0):
        raise _Unsupported("transA=1 on the network input side")
    if len(x.shape) != 1:
        raise ShapeError(f"Gemm input must be a matrix (batch, k), got {x.full_shape}")
    b = _const_input(args, 1, "the Gemm weight B").astype(np.float64)
    weight = (b if attrs.get("transB", 0) else b.T) * attrs.get("alpha", 1.0)
    bias = np.zeros(weight.shape[0])
    if len(args) > 2 and args[2] is not None:
        c = _const_input(args, 2, "the Gemm bias C").astype(np.float64)
        bias = np.broadcast_to(c, (1, weight.shape[0]))[0] * attrs.get("beta", 1.0)
    return [g.add(Affine(weight, bias), x)]


@layer_op("MatMul")
def _matmul(node, args, attrs, g):
    x = _var_input(args)
    w = _const_input(args, 1, "the second MatMul operand").astype(np.float64)
    if w.ndim != 2:
        raise _Unsupported(f"MatMul with a weight of shape {w.shape} (2-d weights only)")
    if not x.shape or x.shape[-1] != w.shape[0]:
        raise ShapeError(f"MatMul of {x.full_shape} by {w.shape}")
    if any(s != 1 for s in x.shape[:-1]):
        raise _Unsupported(f"MatMul over an input of per-sample shape {x.shape} (vectors only)")
    y = g.add(Affine(w.T, np.zeros(w.shape[1])), x)
    return [g.reshape(y, x.shape[:-1] + (w.shape[1],))]


@layer_op("Conv")
def _conv(node, args, attrs, g):
    x = _var_input(args)
    w = _const_input(args, 1, "the Conv weight").astype(np.float64)
    if w.ndim != 4 or len(x.shape) != 3:
        raise _Unsupported(f"Conv with weight {w.shape} on input {x.full_shape} (2-d convolutions only)")
    bias = _const_input(args, 2, "the Conv bias") if len(args) > 2 and args[2] is not None else np.zeros(w.shape[0])
    stride, pads, dilation = _window_attrs(attrs, w.shape[2:], x.shape[1:])
    layer = Conv2d(w, bias, stride, pads, dilation, int(attrs.get("group", 1)))
    return [g.add(layer, x)]


@layer_op("AveragePool")
def _avgpool(node, args, attrs, g):
    x = _var_input(args)
    kernel = tuple(attrs["kernel_shape"])
    stride, pads, dilation = _window_attrs(attrs, kernel, x.shape[1:])
    if tuple(dilation) != (1, 1):
        raise _Unsupported("AveragePool with dilations")
    return [g.add(AvgPool2d(kernel, stride, pads, bool(attrs.get("count_include_pad", 0))), x)]


@layer_op("GlobalAveragePool")
def _global_avgpool(node, args, attrs, g):
    x = _var_input(args)
    if len(x.shape) != 3:
        raise _Unsupported(f"GlobalAveragePool on input {x.full_shape} (2-d only)")
    return [g.add(AvgPool2d(x.shape[1:], (1, 1)), x)]


@layer_op("MaxPool")
def _maxpool(node, args, attrs, g):
    x = _var_input(args)
    if len(node.output) > 1 and node.output[1]:
        raise _Unsupported("the Indices output of MaxPool")
    kernel = tuple(attrs["kernel_shape"])
    stride, pads, dilation = _window_attrs(attrs, kernel, x.shape[1:])
    return [g.add(MaxPool2d(kernel, stride, pads, dilation), x)]


@layer_op("BatchNormalization")
def _batchnorm(node, args, attrs, g):
    x = _var_input(args)
    if len(node.output) > 1 and any(node.output[1:]):
        raise _Unsupported("training-mode outputs of BatchNormalization")
    scale, shift, mean, var = (_const_input(args, i, "BatchNormalization parameters").astype(np.float64)
                               for i in range(1, 5))
    s = scale / np.sqrt(var + attrs.get("epsilon", 1e-5))
    t = shift - mean * s
    expand = (slice(None),) + (None,) * (len(x.shape) - 1)
    return [_elementwise(g, x, np.broadcast_to(s[expand], x.shape), np.broadcast_to(t[expand], x.shape))]


def _elementwise(g: GraphBuilder, x: Var, scale, shift) -> Var:
    return g.add(ElementwiseAffine(np.broadcast_to(scale, x.shape), np.broadcast_to(shift, x.shape)), x)


@layer_op("Neg")
def _neg(node, args, attrs, g):
    return [_elementwise(g, _var_input(args), -1.0, 0.0)]


@layer_op("Add", "Sub", "Mul", "Div")
def _arith(node, args, attrs, g):
    a, b = args
    op = node.op_type
    if isinstance(a, Var) and isinstance(b, Var):
        if op == "Add":
            return [g.add(Add(), a, b)]
        if op == "Sub":
            return [g.add(Add(), a, _elementwise(g, b, -1.0, 0.0))]
        raise _Unsupported(f"{op} of two computed tensors (nonlinear)")
    if isinstance(a, Var):
        c = _broadcast_to_var(b.value, a, op)
        if op == "Div" and np.any(c == 0):
            raise ShapeError("Div by a constant that contains zeros")
        if op == "Div":
            return [_elementwise(g, a, 1.0 / c, 0.0)]
        scale, shift = {"Add": (1.0, c), "Sub": (1.0, -c), "Mul": (c, 0.0)}[op]
        return [_elementwise(g, a, scale, shift)]
    c = _broadcast_to_var(a.value, b, op)
    if op == "Div":
        raise _Unsupported("Div of a constant by a computed tensor (nonlinear)")
    scale, shift = {"Add": (1.0, c), "Sub": (-1.0, c), "Mul": (c, 0.0)}[op]
    return [_elementwise(g, b, scale, shift)]


@layer_op("Shape")
def _shape(node, args, attrs, g):
    x = _var_input(args)
    full = np.array(x.full_shape, dtype=np.int64)
    return [Const(full[attrs.get("start", 0):attrs.get("end", len(full))])]


# ------------------------------------------------------------------- constant folding
def _np_binary(fn):
    def evaluate(node, vals, attrs):
        return [fn(vals[0], vals[1])]
    return evaluate


CONSTANT_OPS.update({
    "Add": _np_binary(np.add), "Sub": _np_binary(np.subtract), "Mul": _np_binary(np.multiply),
    "MatMul": _np_binary(np.matmul), "Pow": _np_binary(np.power),
})


@constant_op("Div")
def _c_div(node, vals, attrs):
    a, b = vals
    if np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer):
        return [np.trunc(a / b).astype(a.dtype)]
    return [a / b]


@constant_op("Neg", "Sqrt", "Identity", "Relu")
def _c_unary(node, vals, attrs):
    fn = {"Neg": np.negative, "Sqrt": np.sqrt, "Identity": np.asarray, "Relu": lambda v: np.maximum(v, 0)}
    return [fn[node.op_type](vals[0])]


@constant_op("Reshape")
def _c_reshape(node, vals, attrs):
    target = vals[1] if len(vals) > 1 else np.array(attrs["shape"])
    return [vals[0].reshape(_reshape_target(vals[0].shape, target, attrs.get("allowzero", 0)))]


@constant_op("Flatten")
def _c_flatten(node, vals, attrs):
    v = vals[0]
    axis = attrs.get("axis", 1) % max(v.ndim, 1) if attrs.get("axis", 1) < 0 else attrs.get("axis", 1)
    return [v.reshape(int(np.prod(v.shape[:axis], dtype=np.int64)), -1)]


@constant_op("Transpose")
def _c_transpose(node, vals, attrs):
    return [np.transpose(vals[0], attrs.get("perm"))]


@constant_op("Squeeze")
def _c_squeeze(node, vals, attrs):
    axes = vals[1] if len(vals) > 1 and vals[1] is not None else attrs.get("axes")
    return [np.squeeze(vals[0], axis=None if axes is None else tuple(int(a) for a in np.atleast_1d(axes)))]


@constant_op("Unsqueeze")
def _c_unsqueeze(node, vals, attrs):
    axes = vals[1] if len(vals) > 1 else attrs.get("axes")
    return [np.expand_dims(vals[0], tuple(int(a) for a in np.atleast_1d(axes)))]


@constant_op("Concat")
def _c_concat(node, vals, attrs):
    return [np.concatenate(vals, axis=attrs.get("axis", 0))]


@constant_op("Gather")
def _c_gather(node, vals, attrs):
    return [np.take(vals[0], vals[1], axis=attrs.get("axis", 0))]


@constant_op("Cast")
def _c_cast(node, vals, attrs):
    from onnx import helper
    return [vals[0].astype(helper.tensor_dtype_to_np_dtype(attrs["to"]))]


@constant_op("Shape")
def _c_shape(node, vals, attrs):
    return [np.array(vals[0].shape, dtype=np.int64)[attrs.get("start", 0):attrs.get("end", vals[0].ndim)]]


@constant_op("ConstantOfShape")
def _c_constant_of_shape(node, vals, attrs):
    from onnx import numpy_helper
    fill = numpy_helper.to_array(attrs["value"]) if "value" in attrs else np.zeros(1, np.float32)
    return [np.full(tuple(int(s) for s in vals[0]), fill.reshape(-1)[0], dtype=fill.dtype)]


@constant_op("Slice")
def _c_slice(node, vals, attrs):
    data = vals[0]
    if len(vals) > 1:
        starts, ends = vals[1], vals[2]
        axes = vals[3] if len(vals) > 3 and vals[3] is not None else range(len(starts))
        steps = vals[4] if len(vals) > 4 and vals[4] is not None else [1] * len(starts)
    else:
        starts, ends = attrs["starts"], attrs["ends"]
        axes, steps = attrs.get("axes", range(len(starts))), [1] * len(starts)
    index = [slice(None)] * data.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[int(a)] = slice(int(s), int(e), int(st))
    return [data[tuple(index)]]


@constant_op("Constant")
def _c_constant(node, vals, attrs):
    from onnx import numpy_helper
    if "value" in attrs:
        return [numpy_helper.to_array(attrs["value"])]
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return [np.array(attrs[key], dtype=dtype)]
    raise _Unsupported("a Constant without a numeric value")


# ---------------------------------------------------------------------------- loading
def load_onnx(path: str | os.PathLike, *, simplify_graph: bool = True) -> Network:
    """Read an ONNX file into a ``Network``; errors name the file, the node and the operator."""
    import onnx
    from google.protobuf.message import DecodeError

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFormatError(f"{path}: no such file")
    try:
        model = onnx.load(path)
    except (DecodeError, ValueError, RuntimeError, OSError, UnicodeDecodeError, TypeError) as exc:
        raise ModelFormatError(f"{path}: not a readable ONNX model (truncated or corrupt file?): "
                               f"{type(exc).__name__}: {exc}") from None
    if not model.graph.node or not model.graph.output:
        raise ModelFormatError(f"{path}: the ONNX graph is empty (truncated or corrupt file?)")
    return network_from_model(model, name=os.path.basename(path), simplify_graph=simplify_graph)


def _input_shape(value_info, source: str) -> Shape:
    if not value_info.type.tensor_type.HasField("shape"):
        raise ModelFormatError(f"{source}: input {value_info.name!r} has an unknown shape (no dimensions given)")
    dims = value_info.type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if shape and (shape[0] is None or shape[0] == 1):
        shape = shape[1:]
    if any(s is None or s <= 0 for s in shape):
        raise ModelFormatError(f"{source}: input {value_info.name!r} has an unknown dimension "
                               f"(shape {[d.dim_param or d.dim_value for d in dims]})")
    return tuple(shape)


def network_from_model(model, name: str = "", simplify_graph: bool = True) -> Network:
    """Build a ``Network`` from an in-memory ``onnx.ModelProto``."""
    from onnx import helper, numpy_helper

    graph = model.graph
    source = name or graph.name or "<onnx>"
    values: dict[str, Value] = {}
    for init in graph.initializer:
        try:
            values[init.name] = Const(numpy_helper.to_array(init))
        except Exception as exc:  # noqa: BLE001 - corrupt tensor payloads surface here
            raise ModelFormatError(f"{source}: initialiser {init.name!r} is unreadable: {exc}") from None
    real_inputs = [i for i in graph.input if i.name not in values]
    if len(real_inputs) != 1:
        raise ModelFormatError(f"{source}: expected exactly one network input, found "
                               f"{[i.name for i in real_inputs]}")
    builder = GraphBuilder(_input_shape(real_inputs[0], source))
    values[real_inputs[0].name] = Var(NETWORK_INPUT, builder.input_shape)

    for node in graph.node:
        node_name = node.name or (node.output[0] if node.output else node.op_type)
        builder.node_name = node_name
        try:
            args = [values[i] if i else None for i in node.input]
        except KeyError as exc:
            raise ModelFormatError(f"{source}: node {node_name!r} reads undefined tensor {exc.args[0]!r} "
                                   f"(graph not topologically sorted or corrupt)") from None
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        outputs = _run_node(node, node_name, args, attrs, builder, source)
        for out_name, value in zip(node.output, outputs):
            if out_name:
                values[out_name] = value

    out = values.get(graph.output[0].name)
    if not isinstance(out, Var) or out.index == NETWORK_INPUT:
        raise ModelFormatError(f"{source}: the graph output {graph.output[0].name!r} is not computed by any layer")
    nodes = [Node(n, l, i, s) for n, l, i, s in zip(builder.names, builder.layers, builder.inputs, builder.shapes)]
    nodes = _prune(nodes, out.index)
    if simplify_graph:
        nodes = simplify(nodes)
    return Network(builder.input_shape, nodes, name=source)


def _run_node(node, node_name: str, args: list, attrs: dict, builder: GraphBuilder, source: str) -> list:
    op = node.op_type
    if node.domain not in ("", "ai.onnx"):
        op = f"{node.domain}.{op}"
    all_const = all(a is None or isinstance(a, Const) for a in args)
    try:
        if all_const and op in CONSTANT_OPS:
            vals = [None if a is None else a.value for a in args]
            return [Const(np.asarray(v)) for v in CONSTANT_OPS[op](node, vals, attrs)]
        if op in LAYER_OPS and not all_const:
            return LAYER_OPS[op](node, args, attrs, builder)
    except _Unsupported as exc:
        raise UnsupportedOperatorError(op, node_name, supported_operators(), str(exc)) from None
    except ShapeError as exc:
        raise ShapeError(f"{source}: node {node_name!r} ({op}): {exc}") from None
    except (KeyError, IndexError, ValueError, TypeError, ZeroDivisionError) as exc:
        raise ModelFormatError(f"{source}: node {node_name!r} ({op}) is malformed: "
                               f"{type(exc).__name__}: {exc}") from None
    detail = "not supported on constants only" if op in LAYER_OPS else ""
    raise UnsupportedOperatorError(op, node_name, supported_operators(), detail)


# ------------------------------------------------------------------------ simplifying
def _prune(nodes: list[Node], output: int) -> list[Node]:
    """Keep the nodes the output depends on, renumbered, with the output last."""
    keep, stack = set(), [output]
    while stack:
        i = stack.pop()
        if i != NETWORK_INPUT and i not in keep:
            keep.add(i)
            stack.extend(nodes[i].inputs)
    order = sorted(keep)
    order.remove(output)
    order.append(output)
    new_index = {old: new for new, old in enumerate(order)}
    new_index[NETWORK_INPUT] = NETWORK_INPUT
    return [Node(nodes[i].name, nodes[i].layer, tuple(new_index[j] for j in nodes[i].inputs), nodes[i].shape)
            for i in order]


def _fold_into(producer: Layer, ea: ElementwiseAffine) -> Layer | None:
    """Affine/Conv followed by y = s*x + t as one layer, or None when the fold is not exact."""
    if isinstance(producer, Affine):
        s, t = ea.scale.ravel(), ea.shift.ravel()
        return Affine(producer.weight * s[:, None], producer.bias * s + t)
    if isinstance(producer, Conv2d):
        s = ea.scale.reshape(ea.scale.shape[0], -1)
        t = ea.shift.reshape(ea.shift.shape[0], -1)
        if np.any(s != s[:, :1]) or np.any(t != t[:, :1]):
            return None  # not per-channel
        s, t = s[:, 0], t[:, 0]
        return Conv2d(producer.weight * s[:, None, None, None], producer.bias * s + t, producer.stride,
                      producer.padding, producer.dilation, producer.groups)
    if isinstance(producer, ElementwiseAffine):
        return ElementwiseAffine(producer.scale * ea.scale, producer.shift * ea.scale + ea.shift)
    return None


def simplify(nodes: list[Node]) -> list[Node]:
    """Fold elementwise affines into the preceding layer, drop identities, merge reshapes."""
    nodes = list(nodes)
    changed = True
    while changed:
        changed = False
        users: list[list[int]] = [[] for _ in nodes]
        for idx, node in enumerate(nodes):
            for i in node.inputs:
                if i != NETWORK_INPUT:
                    users[i].append(idx)
        for idx, node in enumerate(nodes):
            (src,) = node.inputs if len(node.inputs) == 1 else (None,)
            if src is None:
                continue
            layer = node.layer
            prev = nodes[src] if src != NETWORK_INPUT else None
            redundant = ((isinstance(layer, ElementwiseAffine) and layer.is_identity())
                         or (isinstance(layer, Reshape) and prev is not None and prev.shape == node.shape))
            if redundant and not (src == NETWORK_INPUT and idx == len(nodes) - 1):
                nodes = _bypass(nodes, idx)
                changed = True
                break
            if prev is None or len(users[src]) != 1:
                continue
            merged = None
            if isinstance(layer, ElementwiseAffine):
                merged = _fold_into(prev.layer, layer)
                if merged is None and _fold_through_reshape(nodes, users, idx):
                    nodes = _bypass(nodes, idx)
                    changed = True
                    break
            elif isinstance(layer, Reshape) and isinstance(prev.layer, Reshape):
                merged = Reshape(node.shape)
            if merged is not None:
                nodes[src] = Node(prev.name, merged, prev.inputs, node.shape)
                nodes = _bypass(nodes, idx)
                changed = True
                break
    return nodes


def _fold_through_reshape(nodes: list[Node], users: list[list[int]], idx: int) -> bool:
    """Fold the elementwise affine ``idx`` across a Reshape into the layer before it (in place).

    ``s * reshape(z) + t`` equals ``reshape(s' * z + t')`` with s', t' reshaped to z's shape, as
    from MatMul on an unflattened (1, k) input followed by Add. The caller then bypasses ``idx``.
    """
    (rsh,) = nodes[idx].inputs
    if rsh == NETWORK_INPUT or not isinstance(nodes[rsh].layer, Reshape):
        return False
    (src,) = nodes[rsh].inputs
    if src == NETWORK_INPUT or len(users[src]) != 1:
        return False
    ea, prod = nodes[idx].layer, nodes[src]
    merged = _fold_into(prod.layer, ElementwiseAffine(ea.scale.reshape(prod.shape), ea.shift.reshape(prod.shape)))
    if merged is None:
        return False
    nodes[src] = Node(prod.name, merged, prod.inputs, prod.shape)
    return True


def _bypass(nodes: list[Node], idx: int) -> list[Node]:
    """Remove node ``idx``: its readers read its input instead; the output stays the last node."""
    (src,) = nodes[idx].inputs
    if idx == len(nodes) - 1:
        kept = nodes[:idx]
        return _prune(kept, src)

    def remap(i: int) -> int:
        if i == idx:
            return src
        return i - 1 if i > idx else i

    return [Node(n.name, n.layer, tuple(remap(i) for i in n.inputs), n.shape)
            for k, n in enumerate(nodes) if k != idx]
