"""The bundled digits networks and properties: accuracy, onnxruntime agreement, reproducibility."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

import absint.zoo as zoo
from absint.zoo.build import EPSILONS, N_IMAGES, build, property_name
from absint.zoo.properties import linf_bounds

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def data():
    return zoo.digits_data()


@pytest.fixture(scope="module")
def manifest():
    return zoo.manifest()


@pytest.fixture(scope="module", params=zoo.BUNDLED_NETWORKS)
def name(request):
    return request.param


def ort_session(path):
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_digits_data_shapes_and_range(data):
    x_tr, y_tr, x_te, y_te = data
    assert x_tr.shape == (1347, 1, 8, 8) and x_te.shape == (450, 1, 8, 8)
    assert x_tr.min() == 0.0 and x_tr.max() == 1.0 and np.all(x_tr * 16 == np.round(x_tr * 16))
    assert set(np.unique(y_te)) == set(range(10)) and len(y_tr) == 1347


def test_bundled_files_listed_and_hashes_match(manifest):
    for entry in manifest["networks"].values():
        assert hashlib.sha256(zoo.path(entry["file"]).read_bytes()).hexdigest() == entry["sha256"]
    for entry in manifest["properties"]:
        assert zoo.path(entry["file"]).is_file()
    assert sorted(manifest["networks"]) == sorted(zoo.BUNDLED_NETWORKS)
    assert len(manifest["properties"]) == len(zoo.BUNDLED_NETWORKS) * N_IMAGES * len(EPSILONS)


def test_loaded_network_accuracy(name, data, manifest):
    _, _, x_te, y_te = data
    net = zoo.load(name)
    assert net.input_shape == (1, 8, 8) and net.output_shape == (10,)
    correct = int(np.sum(np.argmax(net.forward(x_te), axis=1) == y_te))
    assert correct / len(y_te) >= 0.95
    assert correct == manifest["networks"][name]["test_correct"]


def test_onnxruntime_accuracy(name, data):
    """Independent of absint's importer: the ONNX file itself classifies the held-out split."""
    _, _, x_te, y_te = data
    out = ort_session(zoo.path(f"{name}.onnx")).run(None, {"input": x_te.astype(np.float32)})[0]
    assert np.mean(np.argmax(out, axis=1) == y_te) >= 0.95


def test_onnxruntime_equals_loaded_network(name):
    net = zoo.load(name)
    x = np.random.default_rng(0).random((50, 1, 8, 8)).astype(np.float32)
    got = ort_session(zoo.path(f"{name}.onnx")).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, net.forward(x), rtol=1e-5, atol=1e-5)


def test_loaded_weights_are_float32_representable(name):
    for node in zoo.load(name).nodes:
        for attr in ("weight", "bias"):
            value = getattr(node.layer, attr, None)
            if value is not None:
                np.testing.assert_array_equal(value, value.astype(np.float32).astype(np.float64))


def test_properties_match_test_images(data, manifest):
    _, _, x_te, y_te = data
    for entry in manifest["properties"]:
        i, eps = entry["test_index"], entry["eps"]
        assert entry["file"] == property_name(entry["network"], i, eps) and entry["label"] == y_te[i]
        text = zoo.path(entry["file"]).read_text()
        lo, hi = linf_bounds(x_te[i], eps)
        assert re.search(rf"\(assert \(<= X_63 {re.escape(repr(float(hi[63])))}\)\)", text)
        assert text.count("(and (>= Y_") == 9


def test_property_centres_are_classified_correctly(data, manifest):
    _, _, x_te, y_te = data
    nets = {n: zoo.load(n) for n in zoo.BUNDLED_NETWORKS}
    for entry in manifest["properties"]:
        pred = np.argmax(nets[entry["network"]].forward(x_te[entry["test_index"]]))
        assert pred == entry["label"]


def test_bundled_properties_parse_with_load_vnnlib(data, manifest):
    try:
        from absint.vnnlib import load_vnnlib
    except ImportError as exc:
        pytest.skip(f"absint.vnnlib.load_vnnlib not importable yet ({exc})")
    _, _, x_te, _ = data
    for entry in manifest["properties"][:2]:
        spec = load_vnnlib(zoo.path(entry["file"]), zoo.load(entry["network"]))
        lo, hi = linf_bounds(x_te[entry["test_index"]], entry["eps"])
        lower, upper, _ = spec.regions[0]
        np.testing.assert_array_equal(np.ravel(lower), lo)
        np.testing.assert_array_equal(np.ravel(upper), hi)


def test_rebuild_is_byte_identical(tmp_path):
    """Retraining with seed 0 and re-exporting reproduces every bundled file bit for bit (~5 s)."""
    build(tmp_path, log=lambda msg: None)
    produced = sorted(p.name for p in tmp_path.iterdir())
    assert produced == zoo.available()
    for fname in produced:
        assert (tmp_path / fname).read_bytes() == zoo.path(fname).read_bytes(), fname


def test_load_unknown_name():
    with pytest.raises(KeyError, match="digits_mlp"):
        zoo.load("nope")
    with pytest.raises(FileNotFoundError, match="absint.zoo.build"):
        zoo.path("nope.onnx")
