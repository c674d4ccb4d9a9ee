"""OoD generators and the benchmark's data cases (splits, shapes, ranges, determinism)."""

from __future__ import annotations

import numpy as np
import pytest

from absint.monitors.cases import csv_case, digits_case, stratified_split
from absint.monitors.ood import OOD_SETS, make_ood


def _images():
    return np.random.default_rng(0).random((12, 8, 8)) ** 3


@pytest.mark.parametrize("name", [n for n in OOD_SETS if n != "photos"])
def test_generators_shape_range_deterministic(name):
    a = make_ood([name], _images(), seed=3)[name]
    b = make_ood([name], _images(), seed=3)[name]
    assert a.shape == (12, 8, 8) and a.min() >= 0 and a.max() <= 1
    assert np.array_equal(a, b)


def test_transforms():
    x = _images()
    sets = make_ood(["inverted", "rotated"], x)
    assert np.allclose(sets["inverted"], 1 - x)
    assert np.array_equal(sets["rotated"][:, 0, :], x[:, :, -1])      # top row = old right column
    with pytest.raises(ValueError, match="unknown OoD set"):
        make_ood(["nope"], x)


def test_photo_patches():
    pytest.importorskip("sklearn")
    pytest.importorskip("PIL")
    p = make_ood(["photos"], np.zeros((6, 28, 28)), seed=1)["photos"]
    assert p.shape == (6, 28, 28) and 0 <= p.min() and p.max() <= 1 and p.std() > 0


def test_stratified_split():
    y = np.repeat(np.arange(4), [10, 20, 7, 1])
    parts = stratified_split(y, (0.5, 0.25, 0.25), seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(y)))
    assert np.sum(y[parts[0]] == 1) == 10 and np.sum(y[parts[1]] == 1) == 5


def test_digits_case_reuses_zoo_split():
    pytest.importorskip("sklearn")
    import absint.zoo as zoo

    case = digits_case((1, 8, 8), ood=("noise", "inverted"))
    x_tr, y_tr, x_te, y_te = zoo.digits_data()
    assert np.array_equal(case.fit.x, x_tr) and np.array_equal(case.fit.y, y_tr)   # monitors fit on training data
    assert len(case.val) + len(case.test) == len(y_te)
    held = {x.tobytes() for x in x_te}
    assert all(x.tobytes() in held for x in np.concatenate([case.val.x, case.test.x]))
    assert case.ood["inverted"].shape == case.test.x.shape
    assert np.allclose(case.ood["inverted"], 1 - case.test.x)


def test_csv_case(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(5), 8)
    x = rng.integers(0, 256, (40, 16))
    path = tmp_path / "d.csv"
    np.savetxt(path, np.c_[y, x], fmt="%d", delimiter=",")
    case = csv_case(path, (16, 1), ood=("noise",))
    assert len(case.fit) == 20 and len(case.val) == 10 and len(case.test) == 10
    assert case.fit.x.shape == (20, 16, 1) and case.fit.x.max() <= 1
    assert case.ood["noise"].shape == (10, 16, 1) and "not on the network's training data" in case.note
    with pytest.raises(ValueError, match="takes"):
        csv_case(path, (15,))
