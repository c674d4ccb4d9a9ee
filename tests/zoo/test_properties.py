"""VNN-LIB writer: exact number text, structure of the property, streaming, parser round trip."""

from __future__ import annotations

import io
import re
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, strategies as st

from absint.zoo.properties import format_real, linf_bounds, write_linf_property

BOUND_RE = re.compile(r"\(assert \((<=|>=) X_(\d+) (\S+)\)\)")
DISJUNCT_RE = re.compile(r"\(and \(>= Y_(\d+) Y_(\d+)\)\)")


def parse_bounds(text: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Independent mini-parser of the input bounds the writer produces."""
    lo, hi = np.full(n, np.nan), np.full(n, np.nan)
    for op, i, value in BOUND_RE.findall(text):
        (hi if op == "<=" else lo)[int(i)] = float(value)
    return lo, hi


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_format_real_is_exact_and_positional(value):
    text = format_real(value)
    assert float(text) == value
    assert re.fullmatch(r"-?\d+\.\d+", text), text


def test_format_real_examples():
    assert format_real(1e-5) == "0.00001"
    assert format_real(0.1) == "0.1"
    assert format_real(-0.0) == "0.0"
    assert format_real(2.0) == "2.0"
    assert format_real(1 / 3) == repr(1 / 3)
    with pytest.raises(ValueError):
        format_real(float("inf"))


def test_property_text_structure_and_exact_bounds(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 3))
    x[0, 0, 0], x[1, 2, 2] = 0.0, 1.0
    eps = 0.05
    path = tmp_path / "p.vnnlib"
    write_linf_property(path, x, eps, label=3, n_outputs=5, comment="hello\nsecond line")
    text = path.read_text()
    assert text.startswith("; hello\n; second line\n")
    assert len(re.findall(r"\(declare-const X_\d+ Real\)", text)) == 18
    assert len(re.findall(r"\(declare-const Y_\d+ Real\)", text)) == 5
    lo, hi = parse_bounds(text, 18)
    np.testing.assert_array_equal(lo, np.clip(x.ravel() - eps, 0, 1))
    np.testing.assert_array_equal(hi, np.clip(x.ravel() + eps, 0, 1))
    assert lo[0] == 0.0 and hi[17] == 1.0
    disjuncts = DISJUNCT_RE.findall(text)
    assert sorted(int(j) for j, _ in disjuncts) == [0, 1, 2, 4]
    assert all(lab == "3" for _, lab in disjuncts)
    assert text.count("(assert (or") == 1 and text.count("(") == text.count(")")


def test_no_clip_and_file_object():
    buf = io.StringIO()
    x = np.array([-2.0, 0.5, 3.0])
    write_linf_property(buf, x, 0.25, label=0, n_outputs=2, clip=None)
    lo, hi = parse_bounds(buf.getvalue(), 3)
    np.testing.assert_array_equal(lo, x - 0.25)
    np.testing.assert_array_equal(hi, x + 0.25)
    assert DISJUNCT_RE.findall(buf.getvalue()) == [("1", "0")]


def test_linf_bounds_matches_box_linf():
    from absint.box import Box

    x = np.random.default_rng(1).random((3, 4))
    box = Box.linf(x, 0.1)
    lo, hi = linf_bounds(x, 0.1)
    np.testing.assert_array_equal(lo, box.lower.ravel())
    np.testing.assert_array_equal(hi, box.upper.ravel())


@pytest.mark.parametrize("label, n_outputs", [(5, 5), (-1, 10), (0, 1)])
def test_bad_label_rejected(label, n_outputs):
    with pytest.raises(ValueError):
        write_linf_property(io.StringIO(), np.zeros(3), 0.1, label, n_outputs)


def test_negative_eps_rejected():
    with pytest.raises(ValueError):
        write_linf_property(io.StringIO(), np.zeros(3), -0.1, 0, 2)


def test_imagenet_sized_property_streams(tmp_path):
    """3x224x224 inputs: the writer's extra memory stays far below the ~17 MB of text."""
    x = np.random.default_rng(0).random((3, 224, 224))
    path = tmp_path / "big.vnnlib"
    tracemalloc.start()
    try:
        write_linf_property(path, x, 2 / 255, label=7, n_outputs=1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    size = path.stat().st_size
    assert size > 15e6
    assert peak < 8e6, f"peak traced memory {peak} bytes for a {size} byte file"
    with open(path) as fh:
        tail = fh.read()[-200:]
    assert tail.endswith("(and (>= Y_999 Y_7))\n))\n")


def _load_vnnlib():
    try:
        from absint.vnnlib import load_vnnlib
    except ImportError as exc:
        pytest.skip(f"absint.vnnlib.load_vnnlib not importable yet ({exc})")
    return load_vnnlib


def test_roundtrip_through_load_vnnlib(tmp_path):
    load_vnnlib = _load_vnnlib()
    from absint.network import Affine, Network, Node, Reshape

    rng = np.random.default_rng(3)
    net = Network((1, 4, 4), [Node("flat", Reshape((16,)), (-1,)),
                              Node("fc", Affine(rng.standard_normal((4, 16)), np.zeros(4)), (0,))])
    x = rng.random((1, 4, 4))
    path = tmp_path / "p.vnnlib"
    write_linf_property(path, x, 1 / 255, label=2, n_outputs=4)
    spec = load_vnnlib(path, net)
    lo, hi = linf_bounds(x, 1 / 255)
    assert len(spec.regions) >= 1
    for lower, upper, _unsafe in spec.regions:
        np.testing.assert_array_equal(np.ravel(lower), lo)
        np.testing.assert_array_equal(np.ravel(upper), hi)
