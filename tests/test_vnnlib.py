"""VNN-LIB parser: benchmark files, hand-checked values, semantics, error positions, streaming."""

from __future__ import annotations

import gzip
from fractions import Fraction
import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest

import absint
from absint.errors import ShapeError, VnnlibError, VnnlibSyntaxError
from absint.spec import LinearConstraints, Region, Spec
from absint.vnnlib import MAX_DISJUNCTS, load_vnnlib, parse_vnnlib
from tests._bench import NO_BENCHMARKS, benchmark_instances, benchmarks_dir

# family -> (input shape of the network, number of outputs)
FAMILY_SHAPES = {"acasxu": ((1, 1, 5), 5), "mnistfc": ((784, 1), 10), "oval21": ((3, 32, 32), 10)}


def _stub_net(input_shape, n_out):
    """Duck-typed stand-in for ``absint.Network`` (only the sizes the parser reads)."""
    return SimpleNamespace(input_shape=tuple(input_shape), input_size=int(np.prod(input_shape)),
                           output_size=n_out)


def _properties():
    """One (family, onnx, vnnlib) per distinct property file listed in the instances.csv files."""
    seen, out = set(), []
    for fam, onnx, prop, _ in benchmark_instances():
        if prop not in seen:
            seen.add(prop)
            out.append(pytest.param(fam, onnx, prop, id=f"{fam}/{prop.name}"))
    return out or [pytest.param(None, None, None, marks=pytest.mark.skip(reason=NO_BENCHMARKS))]


def _bench_file(rel: str):
    root = benchmarks_dir()
    if root is None:
        pytest.skip(NO_BENCHMARKS)
    return root / rel


HEAD = "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
BOX = "(assert (>= X_0 0))\n(assert (<= X_0 1))\n(assert (>= X_1 -1))\n(assert (<= X_1 1))\n"


def parse(body: str, **kw) -> Spec:
    return parse_vnnlib(HEAD + BOX + body, source="t.vnnlib", **kw)


def _holds(region: Region, y) -> bool:
    return bool(region.is_unsafe(np.asarray(y, dtype=float)))


# ---------------------------------------------------------------------------- benchmarks
@pytest.mark.parametrize("family,onnx,prop", _properties())
def test_every_benchmark_property_parses(family, onnx, prop):
    shape, n_out = FAMILY_SHAPES[family]
    spec = load_vnnlib(prop, _stub_net(shape, n_out))
    assert (spec.n_inputs, spec.n_outputs, spec.input_shape) == (int(np.prod(shape)), n_out, shape)
    assert spec.source == str(prop) and spec.regions
    for lo, hi, unsafe in spec.regions:
        assert lo.shape == hi.shape == shape and lo.dtype == np.float64
        assert np.isfinite(lo).all() and np.isfinite(hi).all() and (lo <= hi).all()
        assert unsafe and all(c.A.shape == (c.n_rows, n_out) for c in unsafe)
    # same result without a net: flat arrays
    flat = load_vnnlib(prop)
    assert np.array_equal(flat.regions[0].lower, spec.regions[0].lower.ravel())


def test_benchmark_properties_with_onnx_networks():
    if benchmarks_dir() is None:
        pytest.skip(NO_BENCHMARKS)
    load_onnx = getattr(absint, "load_onnx", None)
    if load_onnx is None:
        from absint.onnx_import import load_onnx
    done = set()
    for fam, onnx, prop, _ in benchmark_instances():
        if fam in done:
            continue
        done.add(fam)
        net = load_onnx(onnx)
        spec = load_vnnlib(prop, net)
        assert spec.input_shape == FAMILY_SHAPES[fam][0] == tuple(net.input_shape)
        for reg in spec.regions:
            x = reg.box.sample(4, rng=0)
            y = net.forward(x)
            assert reg.contains(x).all() and reg.is_unsafe(y).shape == (4,)
    assert done == set(FAMILY_SHAPES)


def test_acasxu_prop_1_values():
    spec = load_vnnlib(_bench_file("acasxu/prop_1.vnnlib"), input_shape=(1, 1, 5))
    assert len(spec.regions) == 1
    (lo, hi, unsafe), = spec.regions
    np.testing.assert_array_equal(lo.ravel(), [0.6, -0.5, -0.5, 0.45, -0.5])
    np.testing.assert_array_equal(hi.ravel(), [0.679857769, 0.5, 0.5, 0.5, -0.45])
    (c,), = [unsafe]
    np.testing.assert_array_equal(c.A, [[-1.0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(c.b, [-3.991125645861615])
    assert not c.strict.any()
    assert spec.is_unsafe([3.991125645861615, 9, 9, 9, 9]) and not spec.is_unsafe([3.99, 0, 0, 0, 0])
    box = spec.regions[0].box
    assert isinstance(box, absint.Box) and box.shape == (1, 1, 5)


def test_acasxu_prop_6_two_boxes():
    spec = load_vnnlib(_bench_file("acasxu/prop_6.vnnlib"))
    assert len(spec.regions) == 2
    (lo0, hi0, u0), (lo1, hi1, u1) = spec.regions
    np.testing.assert_array_equal(lo0, [-0.129289109, 0.11140846, -0.499999896, -0.5, -0.5])
    np.testing.assert_array_equal(hi0, [0.700434925, 0.499999896, -0.499204121, 0.5, 0.5])
    np.testing.assert_array_equal(lo1, [-0.129289109, -0.499999896, -0.499999896, -0.5, -0.5])
    np.testing.assert_array_equal(hi1, [0.700434925, -0.11140846, -0.499204121, 0.5, 0.5])
    for unsafe in (u0, u1):                        # (<= Y_j Y_0), j = 1..4: Y_j - Y_0 <= 0
        assert len(unsafe) == 4
        for j, c in enumerate(unsafe, start=1):
            expect = np.zeros((1, 5))
            expect[0, 0], expect[0, j] = -1, 1
            np.testing.assert_array_equal(c.A, expect)
            np.testing.assert_array_equal(c.b, [0.0])
    # COC minimal (index 0 smallest) is safe; any other minimum is unsafe
    assert not spec.is_unsafe([0, 1, 2, 3, 4], region=0) and spec.is_unsafe([5, 1, 2, 3, 4], region=1)
    with pytest.raises(ValueError, match="2 regions"):
        spec.is_unsafe([0, 1, 2, 3, 4])
    x = np.array([[0.0, 0.2, -0.4995, 0, 0], [0.0, 0.0, -0.4995, 0, 0]])
    y = np.array([[5.0, 1, 2, 3, 4], [5.0, 1, 2, 3, 4]])
    np.testing.assert_array_equal(spec.is_counterexample(x, y), [True, False])  # X_1 = 0 is in no box


def test_mnistfc_prop_0_values():
    spec = load_vnnlib(_bench_file("mnistfc/prop_0_0.03.vnnlib"), input_shape=(784, 1))
    (lo, hi, unsafe), = spec.regions
    # spot checks read from the file (lines 801-802, 1257-1261, 3150-3151)
    assert (lo[0, 0], hi[0, 0]) == (0.0, 0.029999999329447746)
    assert (lo[152, 0], hi[152, 0]) == (0.0, 0.029999999329447746)
    assert (lo[153, 0], hi[153, 0]) == (0.052352942526340485, 0.11235294491052628)
    assert (lo[783, 0], hi[783, 0]) == (0.0, 0.029999999329447746)
    # label 8: nine disjuncts (>= Y_j Y_8)  ->  Y_8 - Y_j <= 0
    assert len(unsafe) == 9
    for c, j in zip(unsafe, [0, 1, 2, 3, 4, 5, 6, 7, 9]):
        expect = np.zeros((1, 10))
        expect[0, 8], expect[0, j] = 1, -1
        np.testing.assert_array_equal(c.A, expect)
        np.testing.assert_array_equal(c.b, [0.0])
    y = np.zeros((2, 10))
    y[:, 8] = 1.0
    y[1, 3] = 1.0                                   # tie with the label: unsafe (non-strict)
    np.testing.assert_array_equal(spec.regions[0].is_unsafe(y), [False, True])


def test_oval21_values():
    spec = load_vnnlib(_bench_file("oval21/vnnlib/cifar_base_kw-img4549-eps0.00392156862745098.vnnlib"),
                       _stub_net((3, 32, 32), 10))
    (lo, hi, unsafe), = spec.regions
    assert (lo[0, 0, 0], hi[0, 0, 0]) == (1.487146019935608, 1.5220043659210205)
    assert (lo[0, 0, 1], hi[0, 0, 1]) == (1.2954248189926147, 1.330283284187317)
    assert (lo[1, 0, 0], hi[1, 0, 0]) == (1.738039255142212, 1.772897720336914)      # X_1024
    assert (lo[2, 31, 31], hi[2, 31, 31]) == (2.6225709915161133, 2.640000104904175)  # X_3071
    assert len(unsafe) == 9                         # (<= Y_1 Y_j): Y_1 - Y_j <= 0
    for c, j in zip(unsafe, [0, 2, 3, 4, 5, 6, 7, 8, 9]):
        assert c.A[0, 1] == 1 and c.A[0, j] == -1 and np.count_nonzero(c.A) == 2 and c.b[0] == 0


def test_shape_mismatch_names_file_and_counts():
    prop = _bench_file("acasxu/prop_1.vnnlib")
    with pytest.raises(ShapeError, match=r"prop_1\.vnnlib.*declares 5 inputs.*784 inputs"):
        load_vnnlib(prop, _stub_net((784, 1), 10))
    with pytest.raises(ShapeError, match=r"prop_1\.vnnlib.*declares 5 outputs.*10 outputs"):
        load_vnnlib(prop, _stub_net((1, 1, 5), 10))
    with pytest.raises(ShapeError, match=r"5 inputs.*\(2, 2\) has 4"):
        load_vnnlib(prop, input_shape=(2, 2))


# ---------------------------------------------------------------------------- semantics
def test_top_level_asserts_are_a_conjunction():
    spec = parse("(assert (or (<= Y_0 0) (<= Y_1 0)))\n(assert (>= Y_0 -5))\n")
    (reg,) = spec.regions
    assert len(reg.unsafe) == 2                      # (A and C) or (B and C)
    assert all(c.n_rows == 2 for c in reg.unsafe)
    assert _holds(reg, [-1, 3]) and _holds(reg, [3, -1])
    assert not _holds(reg, [-6, 3])                  # A holds but C does not: not unsafe
    assert not _holds(reg, [1, 1])
    (reg,) = parse("(assert (or (<= Y_0 0) (<= Y_1 0)))\n(assert (or (>= Y_0 -5) (>= Y_1 -5)))\n").regions
    assert len(reg.unsafe) == 4 and all(c.n_rows == 2 for c in reg.unsafe)
    assert _holds(reg, [-6, -1]) and not _holds(reg, [-6, -6]) and not _holds(reg, [1, 1])


def test_dnf_of_nested_and_or_and_input_disjunction():
    spec = parse("(assert (and (or (<= X_0 0.25) (>= X_0 0.75)) (or (<= Y_0 0) (and (<= Y_1 0) (>= Y_1 -1)))))\n")
    assert len(spec.regions) == 2
    (l0, h0, u0), (l1, h1, u1) = spec.regions
    assert (l0[0], h0[0], l1[0], h1[0]) == (0.0, 0.25, 0.75, 1.0)
    assert [c.n_rows for c in u0] == [c.n_rows for c in u1] == [1, 2]


def test_boxes_are_grouped_and_tightened():
    spec = parse("(assert (or (and (<= X_0 1) (<= Y_0 0)) (and (<= X_0 2) (<= Y_1 0))\n"
                 "            (and (<= X_0 0.5) (<= Y_0 9))))\n")
    assert len(spec.regions) == 2                    # X_0 <= 1 and <= 2 give the base box [0, 1]
    assert spec.regions[0].upper[0] == 1.0 and len(spec.regions[0].unsafe) == 2
    assert spec.regions[1].upper[0] == 0.5 and len(spec.regions[1].unsafe) == 1


def test_empty_boxes_are_dropped():
    spec = parse("(assert (or (and (>= X_0 2) (<= Y_0 0)) (<= Y_1 0)))\n")
    assert len(spec.regions) == 1 and spec.regions[0].unsafe[0].A[0, 1] == 1
    assert parse("(assert (>= X_0 3))\n(assert (<= Y_0 0))\n").regions == []


def test_no_output_constraint_means_every_output_is_unsafe():
    (reg,) = parse("").regions
    assert len(reg.unsafe) == 1 and reg.unsafe[0].n_rows == 0 and reg.unsafe[0].A.shape == (0, 2)
    np.testing.assert_array_equal(reg.is_unsafe(np.random.default_rng(0).normal(size=(5, 2))), [True] * 5)


def test_constant_atoms_evaluate():
    (reg,) = parse("(assert (<= 1 2))\n(assert (or (< 2 1) (= Y_0 Y_1) false))\n(assert true)\n").regions
    assert len(reg.unsafe) == 1 and reg.unsafe[0].n_rows == 2
    assert parse("(assert (< 1 1))\n").regions == []


def test_relations_expressions_and_numbers():
    spec = parse("(assert (<= (+ Y_0 (* 2 Y_1) -1e-3) (- .5)))\n(assert (< (- Y_0 Y_1 2.5E+2) 0))\n"
                 "(assert (> (* -1 Y_0) (/ 1 4)))\n(assert (= (- Y_1) 3))\n")
    (c,), = [spec.regions[0].unsafe]
    np.testing.assert_allclose(c.A, [[1, 2], [1, -1], [1, 0], [0, -1], [0, 1]])
    np.testing.assert_allclose(c.b, [-0.5 + 1e-3, 250, -0.25, 3, -3])
    np.testing.assert_array_equal(c.strict, [False, True, True, False, False])


def test_chains_and_negation():
    (c,), = [parse("(assert (<= Y_0 Y_1 4))\n").regions[0].unsafe]
    np.testing.assert_array_equal(c.A, [[1, -1], [0, 1]])
    np.testing.assert_array_equal(c.b, [0, 4])
    reg = parse("(assert (not (and (<= Y_0 0) (<= Y_1 0))))\n").regions[0]
    assert len(reg.unsafe) == 2 and all(c.strict.all() for c in reg.unsafe)   # Y_0 > 0 or Y_1 > 0
    assert _holds(reg, [1, -1]) and not _holds(reg, [0, 0])


def test_strict_rows_and_tolerance():
    c = parse("(assert (< Y_0 1))\n").regions[0].unsafe[0]
    assert isinstance(c, LinearConstraints) and c.strict.tolist() == [True]
    np.testing.assert_array_equal(c.satisfied([[0.5, 0], [1.0, 0]]), [True, False])
    np.testing.assert_array_equal(c.satisfied([[1.0, 0], [1.1, 0]], tol=0.05), [True, False])
    assert c.satisfied([0.0, 0.0]) is True


def test_input_bound_forms():
    text = ("(declare-const X_0 Real)(declare-const X_1 Real)(declare-const X_2 Real)(declare-const Y_0 Real)\n"
            "(assert (>= 0.5 X_0))(assert (<= -1 X_0))(assert (< X_1 2))(assert (> X_1 1))\n"
            "(assert (= X_2 0.25))(assert (<= (* 3 X_0) 1))(assert (>= (- X_1) -1.5))\n"
            "(assert (<= X_2 9))\n(assert (>= X_1 0))\n(assert (>= 5 X_1))\n")   # looser bounds change nothing
    lo, hi, _ = parse_vnnlib(text).regions[0]
    assert lo.tolist() == [-1, 1, 0.25] and hi[1:].tolist() == [1.5, 0.25]
    assert Fraction(hi[0]) * 3 >= 1 and hi[0] - 1 / 3 < 1e-15     # X_0 <= 1/3 rounded outward


def test_ignored_commands_declare_fun_and_comments():
    text = ('(set-logic QF_LRA) ; logic\n(set-info :status "sat")\n(declare-fun X_0 () Real)\n'
            "(declare-const Y_0 Real); (assert (<= X_0 -100))\n(assert ; inside\n (<= X_0 1)) (assert (>= X_0 0))\n"
            "(check-sat)\n(get-model)\n(exit)\n; trailing comment without newline (")
    lo, hi, unsafe = parse_vnnlib(text).regions[0]
    assert (lo[0], hi[0], len(unsafe)) == (0, 1, 1)


def test_adjacent_parentheses_without_spaces():
    text = ("(declare-const X_0 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)(assert(<= X_0 1))"
            "(assert(>= X_0 -1))(assert(or(and(<= Y_0 Y_1))(and(>= Y_0 2))))")
    (lo, hi, unsafe), = parse_vnnlib(text).regions
    assert (lo[0], hi[0], len(unsafe)) == (-1, 1, 2)


def test_dnf_blow_up_is_refused():
    body = "(assert (or (<= Y_0 0) (<= Y_1 0)))\n" * 17    # 2**17 > MAX_DISJUNCTS
    with pytest.raises(VnnlibError, match=f"exceeds {MAX_DISJUNCTS} disjuncts") as e:
        parse(body)
    assert e.value.line == 25                          # 8 header lines + the 17th assert
    assert len(parse("(assert (or (<= Y_0 0) (<= Y_1 0)))\n" * 10).regions[0].unsafe) == 1024


def test_unbounded_and_non_contiguous_inputs():
    with pytest.raises(VnnlibError, match="X_1 has no upper bound"):
        parse_vnnlib("(declare-const X_0 Real)(declare-const X_1 Real)(declare-const Y_0 Real)"
                     "(assert (<= X_0 1))(assert (>= X_0 0))(assert (>= X_1 0))")
    with pytest.raises(VnnlibError, match="X_1 is not declared"):
        parse_vnnlib("(declare-const X_0 Real)(declare-const X_2 Real)(declare-const Y_0 Real)")
    with pytest.raises(VnnlibError, match="no Y variables"):
        parse_vnnlib("(declare-const X_0 Real)(assert (<= X_0 1))(assert (>= X_0 0))")


# ---------------------------------------------------------------------------- errors with positions
BAD = [  # (text, error class, message pattern, line, column)
    ("(declare-const X_0 Real)\n(assert (<= X_0 1)\n", VnnlibSyntaxError, "unclosed '\\('", 2, 1),
    ("(declare-const X_0 Real)\n(assert (<= X_0 1)\n(assert (>= X_0 0))\n", VnnlibSyntaxError,
     "missing '\\)' before the nested command 'assert'", 2, 1),
    ("(declare-const X_0 Real)\n  (assert (<= X_0 1)))\n", VnnlibSyntaxError, "unbalanced '\\)'", 2, 22),
    ("(declare-const X_0 Real)\n(assert (<= X_0 1.2.3))\n", VnnlibSyntaxError, "bad number '1.2.3'", 2, 17),
    ("(declare-const X_0 Real)\n(assert (<= X_0 1_0))\n", VnnlibSyntaxError, "bad number '1_0'", 2, 17),
    ("(declare-const X_0 Real)\n(assert (<= X_0 nan))\n", VnnlibSyntaxError, "unknown variable or symbol 'nan'",
     2, 17),
    ("(declare-const X_0 Real)\n; c\n(assrt (<= X_0 1))\n", VnnlibSyntaxError, "unknown command 'assrt'", 3, 2),
    ("(declare-const X_0 Real)\n(assert (and (>= X_0 0)\n    (<= X_7 1)))\n", VnnlibSyntaxError,
     "unknown variable 'X_7'", 3, 9),
    ("(declare-const X_0 Real)\n(declare-const X_0 Real)\n", VnnlibSyntaxError, "X_0 declared twice", 2, 16),
    ("(declare-const Z_0 Real)\n", VnnlibSyntaxError, "must be X_<i>.*'Z_0'", 1, 16),
    ("(declare-const X_0 Int)\n", VnnlibSyntaxError, "unsupported sort 'Int'", 1, 20),
    ("(declare-const X_0 Real)\nassert\n", VnnlibSyntaxError, "outside parentheses", 2, 1),
    ("(declare-const X_0 Real)(declare-const Y_0 Real)\n(assert (or (<= Y_0 0) (<= X_0 Y_0)))\n", VnnlibError,
     "mixes input \\(X\\) and output \\(Y\\)", 2, 24),
    ("(declare-const X_0 Real)(declare-const X_1 Real)\n\n(assert (<= (+ X_0 X_1) 1))\n", VnnlibError,
     "unsupported: linear constraint over several input variables \\(X_0, X_1\\)", 3, 9),
    ("(declare-const Y_0 Real)\n(assert (<= (* Y_0 Y_0) 1))\n", VnnlibError, "non-linear", 2, 20),
    ("(declare-const Y_0 Real)\n(assert (=> (<= Y_0 1) (<= Y_0 2)))\n", VnnlibSyntaxError,
     "unknown operator '=>'", 2, 10),
    ("(declare-const X_0 Real)\n(set-info :source \"abc)\n", VnnlibSyntaxError, "unterminated string", 2, 19),
]


@pytest.mark.parametrize("segment_size", [7, 64, 1 << 16])
@pytest.mark.parametrize("text,cls,pattern,line,col", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_input_reports_line_and_column(tmp_path, text, cls, pattern, line, col, segment_size):
    path = tmp_path / "bad.vnnlib"
    path.write_text(text)
    with pytest.raises(cls, match=pattern) as e:
        load_vnnlib(path, segment_size=segment_size)
    assert type(e.value) is cls
    assert (e.value.line, e.value.column, e.value.source) == (line, col, str(path))
    assert str(e.value).startswith(f"{path}:{line}:{col}: ")


def test_error_position_deep_in_a_large_file():
    n = 5000
    lines = [f"(declare-const X_{i} Real)" for i in range(n)] + ["(declare-const Y_0 Real)"]
    lines += [f"(assert (<= X_{i} 1))\n(assert (>= X_{i} 0))" for i in range(n)]
    text = "\n".join(lines) + "\n"
    bad = text.replace("(assert (>= X_4321 0))", "(assert (>= X_4321 0..5))")
    with pytest.raises(VnnlibSyntaxError, match="bad number '0..5'") as e:
        parse_vnnlib(bad, segment_size=1000)
    assert (e.value.line, e.value.column) == (n + 1 + 2 * 4321 + 2, 20)


def test_text_passed_as_path_gives_a_hint():
    with pytest.raises(FileNotFoundError, match="parse_vnnlib"):
        load_vnnlib("(declare-const X_0 Real)")


# ---------------------------------------------------------------------------- streaming
def _write_image_property(path, shape, eps=0.01, comment_bytes=0, seed=0):
    """A VNN-COMP style L-inf property; returns the image (flat) it was written for."""
    x = np.random.default_rng(seed).random(int(np.prod(shape)))
    pad = "; " + "c" * comment_bytes + "\n" if comment_bytes else ""
    with open(path, "w") as f:
        f.write("; generated\n" + "".join(f"(declare-const X_{i} Real)\n" for i in range(x.size)))
        f.write("".join(f"(declare-const Y_{j} Real)\n" for j in range(10)))
        for i, v in enumerate(x):
            f.write(f"{pad}(assert (<= X_{i} {v + eps:.18f}))\n(assert (>= X_{i} {v - eps:.18f}))\n")
        f.write("(assert (or\n" + "".join(f"  (and (>= Y_{j} Y_3))\n" for j in range(10) if j != 3) + "))")
    return x


def test_generated_image_property_values(tmp_path):
    path = tmp_path / "img.vnnlib"
    x = _write_image_property(path, (3, 64, 64))
    spec = load_vnnlib(path, input_shape=(3, 64, 64))
    (lo, hi, unsafe), = spec.regions
    np.testing.assert_allclose(lo.ravel(), x - 0.01, rtol=0, atol=1e-15)
    np.testing.assert_allclose(hi.ravel(), x + 0.01, rtol=0, atol=1e-15)
    assert lo[2, 63, 63] == float(f"{x[-1] - 0.01:.18f}")
    assert len(unsafe) == 9 and all(c.A[0, 3] == 1 for c in unsafe)
    gz = tmp_path / "img.vnnlib.gz"                  # compressed files stream too
    gz.write_bytes(gzip.compress(path.read_bytes()))
    np.testing.assert_array_equal(load_vnnlib(gz, input_shape=(3, 64, 64)).regions[0].upper, hi)


def _peak_bytes(fn):
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_parsing_streams_in_bounded_memory(tmp_path):
    small, large = tmp_path / "small.vnnlib", tmp_path / "large.vnnlib"
    _write_image_property(small, (3, 32, 32), comment_bytes=1200)    # ~4 MB, mostly comments
    _write_image_property(large, (3, 32, 32), comment_bytes=3600)    # same property, ~11 MB
    s_size, l_size = small.stat().st_size, large.stat().st_size
    assert s_size > 3_500_000 and l_size > 2.5 * s_size
    spec_s, peak_s = _peak_bytes(lambda: load_vnnlib(small))
    spec_l, peak_l = _peak_bytes(lambda: load_vnnlib(large))
    assert spec_l.n_inputs == 3072 and len(spec_l.regions[0].unsafe) == 9
    np.testing.assert_array_equal(spec_s.regions[0].lower, spec_l.regions[0].lower)
    assert peak_s < s_size / 4, f"peak {peak_s} bytes for a {s_size}-byte file: not streaming"
    assert peak_l < 1.5 * peak_s, f"peak grew from {peak_s} to {peak_l} bytes with the file size"


def test_long_lines_and_comments_across_pieces():
    decl = "".join(f"(declare-const X_{i} Real) " for i in range(300)) + "(declare-const Y_0 Real)"
    body = " ".join(f"(assert (<= X_{i} {i}.5)) (assert (>= X_{i} -{i}))" for i in range(300))
    text = "; " + "x" * 5000 + "\n" + decl + " ;" + "(" * 3000 + "\n" + body     # no newline in body
    spec = parse_vnnlib(text, segment_size=256)
    lo, hi, _ = spec.regions[0]
    assert hi[299] == 299.5 and lo[299] == -299 and hi[0] == 0.5
