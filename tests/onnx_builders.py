"""Small ONNX models built with ``onnx.helper`` and onnxruntime as the reference semantics.

Import as ``tests.onnx_builders``. Every model has one float input ``x`` of shape
(batch, *shape); the batch axis is symbolic (``"N"``) unless ``batch=1`` is asked for, in
which case ``ort_forward`` runs onnxruntime sample by sample.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

#: ONNX IR version of the self-made models (old enough for every onnxruntime we support).
IR_VERSION = 8


def init(name: str, value, dtype=np.float32) -> TensorProto:
    """An initialiser (float32 by default, int64 for shapes and axes)."""
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def ints(name: str, value) -> TensorProto:
    return init(name, value, np.int64)


def node(op: str, inputs, outputs, name: str | None = None, **attrs):
    """``helper.make_node`` with the output name as the default node name."""
    outputs = [outputs] if isinstance(outputs, str) else list(outputs)
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    return helper.make_node(op, inputs, outputs, name=name if name is not None else outputs[0], **attrs)


def model(nodes, shape, inits=(), opset: int = 13, batch="N", output: str | None = None,
          input_name: str = "x"):
    """A model with input ``x`` of shape (batch, *shape) and the last node's first output as output."""
    out = output or nodes[-1].output[0]
    graph = helper.make_graph(
        list(nodes), "g",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, *shape])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
        initializer=list(inits))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name="absint-tests")
    m.ir_version = IR_VERSION
    return m


def save(m, directory: Path, name: str = "model.onnx") -> Path:
    path = Path(directory) / name
    path.write_bytes(m.SerializeToString())
    return path


def _session(m):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _fixed_batch(m) -> bool:
    dim = m.graph.input[0].type.tensor_type.shape.dim[0]
    return dim.HasField("dim_value")


def ort_outputs(m, x: np.ndarray, names: list[str] | None = None) -> list[np.ndarray]:
    """onnxruntime values of the graph outputs (or of the tensors ``names``) for a float32 batch."""
    if names:
        m2 = onnx.ModelProto()
        m2.CopyFrom(m)
        del m2.graph.output[:]
        m2.graph.output.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names)
        m = m2
    sess = _session(m)
    in_name = sess.get_inputs()[0].name
    x = np.asarray(x, dtype=np.float32)
    if _fixed_batch(m):
        runs = [sess.run(None, {in_name: x[i:i + 1]}) for i in range(len(x))]
        return [np.concatenate([r[k] for r in runs]) for k in range(len(runs[0]))]
    return sess.run(None, {in_name: x})


def ort_forward(m, x: np.ndarray) -> np.ndarray:
    """onnxruntime output for a batch, flattened to (batch, n) as ``Network.forward`` returns it."""
    y = ort_outputs(m, x)[0]
    return y.reshape(len(x), -1).astype(np.float64)


def assert_close(y: np.ndarray, ref: np.ndarray, tol: float = 1e-5, what: str = "") -> None:
    """|y - ref| <= tol * max(1, |ref|_inf): float32 reference against float64 absint."""
    y = np.asarray(y, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert y.shape == ref.shape, f"{what}: shape {y.shape} != onnxruntime shape {ref.shape}"
    scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
    err = float(np.abs(y - ref).max(initial=0.0))
    assert err <= tol * scale, f"{what}: max |absint - onnxruntime| = {err:.3g} (allowed {tol * scale:.3g})"


def random_input(shape, n: int = 6, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """A float32-representable float64 batch (n, *shape)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, *shape)) * scale).astype(np.float32).astype(np.float64)


def check(m, directory: Path, n: int = 6, seed: int = 0, scale: float = 1.0, tol: float = 1e-5,
          name: str = "model.onnx"):
    """Save ``m``, load it with absint and compare ``forward`` with onnxruntime; returns the Network."""
    from absint.onnx_import import load_onnx

    net = load_onnx(save(m, directory, name))
    shape = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim][1:]
    x = random_input(shape, n, seed, scale)
    y = net.forward(x)
    assert y.dtype == np.float64
    assert_close(y, ort_forward(m, x), tol, what=name)
    return net


def rand(*shape, seed: int = 1, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)
