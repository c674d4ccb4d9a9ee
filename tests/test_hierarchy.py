"""absint.hierarchy: file format and its errors, verdicts on hand-made networks, soundness on real ones."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

import absint.zoo as zoo
from absint.box import Box
from absint.hierarchy import (Hierarchy, HierarchyError, HierarchyOptions, Status, attack_levels, bundled,
                              bundled_path, level_region, load_hierarchy, parse_hierarchy, schema, verify)
from absint.hierarchy.images import ImageFormat, Layout, parse_eps, read_image_csv
from absint.hierarchy.schema import validate
from absint.network import Affine, Network, Node, ReLU
from absint.verify import falsify

DOMAINS = ("interval", "zonotope", "deeppoly")


# --------------------------------------------------------------------------- format
def test_bundled_hierarchies_and_levels():
    flat, deep = bundled("cifar10"), bundled("cifar10_deep")
    assert flat.classes == deep.classes and flat.classes[3] == "cat" and flat.n_classes == 10
    assert flat.depth == 1 and deep.depth == 2 and deep.levels == (0, 1, 2)
    assert deep.coarse_to_fine() == (1, 2, 0)
    cat, truck, bird = 3, 9, 2
    assert [deep.group_name(cat, lv) for lv in deep.levels] == ["cat", "animal", "mammal"]
    assert [deep.group_name(bird, lv) for lv in deep.levels] == ["bird", "animal", "non-mammal"]
    # a class directly under a top-level group is its own group at deeper levels
    assert [deep.group_name(truck, lv) for lv in deep.levels] == ["truck", "vehicle", "truck"]
    assert deep.group_members(truck, 2).tolist() == [truck]
    assert deep.group_members(cat, 2).tolist() == [3, 4, 5, 7]
    assert sorted(flat.partition(1)) == ["animal", "vehicle"]
    assert flat.partition(1)["vehicle"].tolist() == [0, 1, 8, 9]
    with pytest.raises(ValueError, match="level 3 out of range"):
        deep.group_members(0, 3)


@pytest.mark.parametrize("name", ["cifar10", "cifar10_deep", "digits_shapes"])
def test_levels_are_refining_partitions(name):
    """Every level is a partition; level k+1 refines level k (k >= 1) and level 0 refines all."""
    h = bundled(name)
    assert validate(json.loads(bundled_path(name).read_text()), schema()) is None
    order = h.coarse_to_fine()
    for level in h.levels:
        parts = h.partition(level)
        assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(h.n_classes))
    for coarse, fine in zip(order, order[1:]):
        for k in range(h.n_classes):
            assert set(h.group_members(k, fine)) <= set(h.group_members(k, coarse))


def _doc():
    return json.loads(bundled_path("cifar10_deep").read_text())


def _edit(path_fn):
    doc = _doc()
    path_fn(doc)
    return doc


MALFORMED = [
    ("unknown class", lambda d: d["groups"][0]["members"].append("tank"),
     r"\$\.groups\[0\]\.members\[4\]: unknown class 'tank'"),
    ("duplicate class name", lambda d: d["classes"].__setitem__(9, "cat"),
     r"\$\.classes\[9\]: duplicate \"cat\" \(first at \$\.classes\[3\]\)"),
    ("class in two groups", lambda d: d["groups"][0]["members"].append("dog"),
     r"\$\.groups\[1\]\.members\[0\]\.members\[2\]: class 'dog' appears twice \(first at \$\.groups\[0\]\.members\[4\]\)"),
    ("missing class", lambda d: d["groups"][0]["members"].remove("ship"),
     r"\$\.groups: class 'ship' \(output 8\) in no group"),
    ("classes not a list", lambda d: d.__setitem__("classes", "airplane,automobile"),
     r"\$\.classes: expected array, got string"),
    ("member of the wrong type", lambda d: d["groups"][0]["members"].__setitem__(1, 7),
     r"\$\.groups\[0\]\.members\[1\]: expected object or string, got integer 7"),
    ("group without members", lambda d: d["groups"][1]["members"][1].pop("members"),
     r"\$\.groups\[1\]\.members\[1\]: missing required key 'members'"),
    ("misspelt key", lambda d: d["groups"][0].__setitem__("member", []),
     r"\$\.groups\[0\]\.member: unexpected key 'member'"),
    ("empty group", lambda d: d["groups"][1]["members"][1].__setitem__("members", []),
     r"\$\.groups\[1\]\.members\[1\]\.members: needs at least 1 item"),
    ("empty class name", lambda d: d["classes"].__setitem__(0, ""), r"\$\.classes\[0\]: must not be empty"),
    ("duplicate group name", lambda d: d["groups"][1]["members"][1].__setitem__("name", "vehicle"),
     r"\$\.groups\[1\]\.members\[1\]\.name: duplicate group name 'vehicle' \(first at \$\.groups\[0\]\.name\)"),
    ("no groups key", lambda d: d.pop("groups"), r"\$: missing required key 'groups'"),
    ("top level not an object", None, r"\$: expected object, got array"),
]


@pytest.mark.parametrize("what, edit, message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_hierarchies_name_the_problem(tmp_path, what, edit, message):
    doc = [1, 2] if edit is None else _edit(edit)
    path = tmp_path / "h.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(HierarchyError, match=message) as info:
        load_hierarchy(path)
    assert str(path) in str(info.value)


def test_bad_json_and_size_mismatch(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"classes": ["a", "b"],\n "groups": [}')
    with pytest.raises(HierarchyError, match=r"broken.json: not valid JSON: .* \(line 2, column 13\)"):
        load_hierarchy(path)
    with pytest.raises(HierarchyError, match="has 10 classes, the network has 12 outputs"):
        load_hierarchy(bundled_path("cifar10"), n_outputs=12)
    h = bundled("cifar10")
    with pytest.raises(HierarchyError, match="has 10 classes, the network has 3 outputs"):
        verify(two_class_net(), np.zeros(1), 0, 0.1, hierarchy=h)


def test_validator_refuses_unsupported_keywords():
    with pytest.raises(ValueError, match="'pattern'.*not supported"):
        validate("x", {"type": "string", "pattern": "a+"})


def test_parse_keeps_order_and_name():
    h = parse_hierarchy({"name": "t", "classes": ["b", "a", "c"], "groups": [{"name": "g", "members": ["a", "b"]},
                                                                          {"name": "h", "members": ["c"]}]})
    assert isinstance(h, Hierarchy) and h.name == "t" and h.group_members(0, 1).tolist() == [0, 1]


# ----------------------------------------------------------------- hand-made networks
ABC = parse_hierarchy({"name": "abc", "classes": ["a", "b", "c"],
                       "groups": [{"name": "ab", "members": ["a", "b"]}, {"name": "other", "members": ["c"]}]})


def two_class_net(c_value: float = -0.5, c_slope: float = 0.0) -> Network:
    """h = relu([x, -x]); y_a = h1 - h2 = x, y_b = h2 - h1 = -x, y_c = c_value + c_slope * (h1 + h2)."""
    return Network((1,), [
        Node("fc1", Affine(np.array([[1.0], [-1.0]]), np.zeros(2)), (-1,)),
        Node("relu", ReLU(), (0,)),
        Node("fc2", Affine(np.array([[1.0, -1.0], [-1.0, 1.0], [c_slope, c_slope]]),
                           np.array([0.0, 0.0, c_value])), (1,))])


def _check_counterexample(net, box, result, level):
    x, y = result[level].counterexample
    assert bool(box.contains(x[None])[0])
    np.testing.assert_array_equal(net.forward(x[None])[0], y)
    outside = np.setdiff1d(np.arange(y.size), result[level].members)
    assert y[outside].max() > y[list(result[level].members)].max()


@pytest.mark.parametrize("domain", ["zonotope", "deeppoly"])
def test_abstract_safe_but_not_robust_needs_the_convex_rows(domain):
    """max(y_a, y_b) = |x| >= 0 > -0.5 = y_c on [-1, 1], yet a and b swap: safe at level 1, unsafe at 0.
    No pairwise difference y_a - y_c = x + 0.5 is positive; (y_a + y_b)/2 - y_c = 0.5 is."""
    net, box = two_class_net(), Box([-1.0], [1.0])
    r = verify(net, np.array([0.5]), 0, box=box, hierarchy=ABC, domain=domain)
    assert r.prediction == 0 and r.status(0) is Status.UNSAFE and r.status(1) is Status.SAFE
    assert r.abstract_only and not r.robust and r[1].lower_bound > 0.4 and r[1].group == "ab"
    _check_counterexample(net, box, r, 0)
    pairwise = verify(net, np.array([0.5]), 0, box=box, hierarchy=ABC, domain=domain,
                      options=HierarchyOptions(convex=False))
    assert pairwise.status(1) is Status.UNKNOWN and pairwise.status(0) is Status.UNSAFE


def test_interval_pairwise_case():
    """With y_c = -2 the pairwise rows suffice, even for intervals; interval cannot prove the -0.5 case."""
    box = Box([-1.0], [1.0])
    r = verify(two_class_net(-2.0), np.array([0.5]), 0, box=box, hierarchy=ABC, domain="interval")
    assert [r.status(lv) for lv in (0, 1)] == [Status.UNSAFE, Status.SAFE]
    r = verify(two_class_net(-0.5), np.array([0.5]), 0, box=box, hierarchy=ABC, domain="interval")
    assert [r.status(lv) for lv in (0, 1)] == [Status.UNSAFE, Status.UNKNOWN]


@pytest.mark.parametrize("domain", DOMAINS)
def test_leaving_the_group_is_unsafe_with_a_counterexample(domain):
    """y_c = -0.5 + 1.5 |x| beats both a and b for |x| > 1 (|x| <= 2 here): unsafe at every level."""
    net, box = two_class_net(-0.5, 1.5), Box([-2.0], [2.0])
    r = verify(net, np.array([0.5]), 0, box=box, hierarchy=ABC, domain=domain)
    assert r.status(1) is Status.UNSAFE and r.status(0) is Status.UNSAFE and not r.abstract_only
    _check_counterexample(net, box, r, 1)
    _check_counterexample(net, box, r, 0)


@pytest.mark.parametrize("domain", DOMAINS)
def test_small_box_is_robust_at_every_level(domain):
    r = verify(two_class_net(), np.array([0.5]), 0, 0.1, hierarchy=ABC, domain=domain, clip=None)
    assert all(lv.status is Status.ROBUST for lv in r.levels) and r.robust and not r.abstract_only


def test_three_levels_and_own_group_semantics():
    """Level 2 splits {a, b} into {a} and {b}; c sits directly under 'other', its own group at level 2."""
    deep = parse_hierarchy({"classes": ["a", "b", "c"], "groups": [
        {"name": "ab", "members": [{"name": "A", "members": ["a"]}, {"name": "B", "members": ["b"]}]},
        {"name": "other", "members": ["c"]}]})
    r = verify(two_class_net(), np.array([0.5]), 0, box=Box([-1.0], [1.0]), hierarchy=deep, domain="deeppoly")
    assert [r.status(lv) for lv in (0, 1, 2)] == [Status.UNSAFE, Status.SAFE, Status.UNSAFE]
    assert r[2].group == "A" and deep.group_name(2, 2) == "c"


def test_verify_arguments():
    with pytest.raises(ValueError, match="exactly one of eps"):
        verify(two_class_net(), np.zeros(1), 0, hierarchy=ABC)
    with pytest.raises(ValueError, match="label 5 out of range"):
        verify(two_class_net(), np.zeros(1), 5, 0.1, hierarchy=ABC)


# ---------------------------------------------------------------------- soundness
def _attack(net, box, label, hierarchy, level, seed):
    """2,000 uniform points of the box plus a signed-gradient attack: whether any leaves the group."""
    members = hierarchy.group_members(label, level)
    outside = np.setdiff1d(np.arange(hierarchy.n_classes), members)
    y = net.forward(box.sample(2000, rng=seed))
    if (y[:, outside].max(axis=1) >= y[:, members].max(axis=1)).any():
        return True
    region = level_region(hierarchy, label, level, box)
    return falsify(net, region, samples=256, pgd_steps=40, rng=seed) is not None


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    _, _, x_te, y_te = zoo.digits_data()
    return x_te, y_te


@pytest.mark.parametrize("name", zoo.BUNDLED_NETWORKS)
def test_soundness_on_digits(name, digits):
    """Every 'safe at level L' survives sampling and a gradient attack; abstract safety (at every level) is
    at least as frequent as robustness, and implied by it; counterexamples re-check."""
    x_te, y_te = digits
    net, h = zoo.load(name), bundled("digits_shapes")
    checked, counts = 0, {"robust": 0, **{lv: 0 for lv in h.levels[1:]}}
    for i in range(12):
        for eps in (0.03, 0.08):
            for domain in ("zonotope", "deeppoly"):
                r = verify(net, x_te[i], y_te[i], eps, hierarchy=h, domain=domain,
                           options=HierarchyOptions(seed=i))
                box = Box.linf(x_te[i], eps)
                counts["robust"] += r.robust
                for lv in h.levels[1:]:
                    counts[lv] += r.status(lv).proved
                    assert r.status(lv).proved or not r.robust
                for res in r.levels:
                    if res.status is Status.SAFE or (res.status is Status.ROBUST and res.level == 0):
                        assert not _attack(net, box, int(y_te[i]), h, res.level, seed=i)
                        checked += 1
                    if res.status is Status.UNSAFE:
                        _check_counterexample(net, box, r, res.level)
    assert checked >= 10
    assert all(counts[lv] >= counts["robust"] for lv in h.levels[1:])


def test_attack_levels_shares_counterexamples_with_finer_levels():
    net, box, h = two_class_net(-0.5, 1.5), Box([-2.0], [2.0]), ABC
    found = attack_levels(net, box, 0, h)
    assert set(found) == {0, 1}


# ---------------------------------------------------------------------------- images
def test_image_format_layouts_and_boxes(tmp_path):
    chw = np.arange(12, dtype=float).reshape(3, 2, 2)
    hwc_flat = chw.transpose(1, 2, 0).ravel()
    fmt = ImageFormat((3, 2, 2), scale=10.0, mean=(0.1, 0.2, 0.3), std=(0.5,), layout=Layout.HWC)
    np.testing.assert_allclose(fmt.pixels(hwc_flat[None])[0], chw / 10)
    x = fmt.inputs(hwc_flat[None])[0]
    np.testing.assert_allclose(x[2], (chw[2] / 10 - 0.3) / 0.5)
    box = fmt.linf_box(fmt.pixels(hwc_flat[None])[0], 0.05)
    np.testing.assert_allclose(box.lower[0, 0, 0], (0.0 - 0.1) / 0.5)  # clipped at 0 in pixel space
    np.testing.assert_allclose(box.upper[1, 0, 0], (0.45 - 0.2) / 0.5)
    with pytest.raises(Exception, match="needs 1 or 3 values"):
        ImageFormat((3, 2, 2), mean=(0.1, 0.2))
    assert parse_eps("2/255") == pytest.approx(2 / 255) and parse_eps("0.1") == 0.1
    with pytest.raises(ValueError, match="not a radius"):
        parse_eps("two")
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("1,0,1,2\n2,3,4\n")
    with pytest.raises(ValueError, match=r"d.csv:2: 3 values, expected a label and 3 pixel values"):
        read_image_csv(csv_path, 3)
    labels, values = read_image_csv(csv_path, 3, limit=1)
    assert labels.tolist() == [1] and values.tolist() == [[0, 1, 2]]


# ------------------------------------------------------------------------- benchmarks
OVAL_FORMAT = dict(scale=255.0, mean=(0.485, 0.456, 0.406), std=(0.225,), layout=Layout.HWC)


def test_soundness_on_oval21(benchmarks):
    """cifar_base_kw, two test images, DeepPoly: every proved level survives sampling and a gradient attack."""
    from absint.onnx_import import load_onnx

    net_path, data = benchmarks / "oval21" / "nets" / "cifar_base_kw.onnx", benchmarks / "data" / "cifar10_test.csv"
    if not net_path.is_file() or not data.is_file():
        pytest.skip("oval21/nets/cifar_base_kw.onnx or data/cifar10_test.csv missing from the benchmarks")
    net, h = load_onnx(net_path), bundled("cifar10_deep")
    fmt = ImageFormat(net.input_shape, **OVAL_FORMAT)
    labels, values = read_image_csv(data, net.input_size, limit=2)
    pixels = fmt.pixels(values)
    proved = 0
    for k in range(2):
        for eps in (2 / 255, 6 / 255):
            box = fmt.linf_box(pixels[k], eps)
            r = verify(net, fmt.normalise(pixels[k]), labels[k], box=box, hierarchy=h, domain="deeppoly")
            for res in r.levels:
                if res.status.proved and (res.level > 0 or res.status is Status.ROBUST):
                    proved += 1
                    assert not _attack(net, box, int(labels[k]), h, res.level, seed=k)
                if res.status is Status.UNSAFE:
                    _check_counterexample(net, box, r, res.level)
    assert proved > 0


# ------------------------------------------------------------------------- case study
REPO = Path(__file__).resolve().parents[1]


def run_notebook(path: Path, cwd: Path) -> str:
    """Execute the code cells of a notebook in one namespace (no Jupyter needed); the printed output."""
    nb = json.loads(path.read_text())
    namespace: dict = {"__name__": "__notebook__"}
    out = io.StringIO()
    old = Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out):
            for k, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
                exec(compile("".join(cell["source"]), f"{path.name}[code cell {k}]", "exec"), namespace)
    finally:
        os.chdir(old)
    return out.getvalue()


def test_case_study_notebook_runs():
    """The notebook's quick run (oval21 cifar_base_kw, or the digits MLP without benchmarks) asserts that
    abstract safety is at least as frequent as robustness; the plot cell degrades without matplotlib."""
    pytest.importorskip("sklearn")
    text = run_notebook(REPO / "notebooks" / "cifar10_hierarchy.ipynb", REPO / "notebooks")
    assert "safe L1" in text and "robust" in text


def test_case_study_checks_the_implication():
    import perf.hierarchy_case_study as cs

    headers = ["net", "eps (/255)", "domain", "images", "robust", "safe L1", "safe L2"]
    assert cs.check_implication(headers, [["n", "1", "deeppoly", 3, 2, 3, 2]]) == []
    assert len(cs.check_implication(headers, [["n", "1", "deeppoly", 3, 2, 1, 2]])) == 1
