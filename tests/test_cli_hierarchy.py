"""``absint hierarchy``: end to end on the bundled digits network, and one-line errors for bad inputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import absint.zoo as zoo
from absint.cli import main
from absint.hierarchy import bundled_path

pytest.importorskip("sklearn")
N_IMAGES = 6


@pytest.fixture(scope="module")
def digits_csv(tmp_path_factory):
    """The first test images of the digits split: label, then the 64 grey levels 0..16 (CHW = row order)."""
    _, _, x, y = zoo.digits_data()
    path = tmp_path_factory.mktemp("data") / "digits.csv"
    np.savetxt(path, np.column_stack([y[:N_IMAGES], np.round(x[:N_IMAGES].reshape(N_IMAGES, -1) * 16)]),
               fmt="%d", delimiter=",")
    return path


NET = str(zoo.path("digits_mlp.onnx"))


def run(capsys, *argv):
    code = main(["hierarchy", NET, *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_end_to_end_digits(capsys, tmp_path, digits_csv):
    out_csv = tmp_path / "per_image.csv"
    code, out, err = run(capsys, "--hierarchy", "digits_shapes", "--data", digits_csv, "--eps", "1/16",
                         "--scale", "16", "--domain", "deeppoly", "--out", out_csv)
    assert code == 0, err
    assert f"[{N_IMAGES}/{N_IMAGES}] label" in err  # progress on stderr
    assert "hierarchy 'digits_shapes' (levels 0..2)" in out and f"{N_IMAGES} images" in out
    with open(out_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == N_IMAGES
    assert [r["level1_group"] for r in rows[:2]] == ["other", "round"]  # labels 2 and 0
    table = {int(line.split()[0]): line.split() for line in out.splitlines() if line[:1].isdigit()}
    for level in (0, 1, 2):
        statuses = [r[f"level{level}_status"] for r in rows]
        counts = [int(v) for v in table[level][-5:]]
        assert counts[:4] == [statuses.count(s) for s in ("robust", "safe", "unsafe", "unknown")]
        assert counts[4] == counts[0] + counts[1]
        assert counts[4] >= sum(r["level0_status"] == "robust" for r in rows)  # abstract safety >= robustness
    for r in rows:
        if r["level0_status"] == "robust":
            assert r["level1_status"] == r["level2_status"] == "robust"
        if r["level1_status"] == "unsafe":
            assert r["level0_status"] == r["level2_status"] == "unsafe"
        assert (r["abstract_only"] == "1") == (r["level0_status"] != "robust" and "safe" in
                                               (r["level1_status"], r["level2_status"]))


def test_limit_layout_and_interval(capsys, tmp_path, digits_csv):
    out_csv = tmp_path / "o.csv"
    code, out, err = run(capsys, "--hierarchy", bundled_path("digits_shapes"), "--data", digits_csv, "--eps", "0.01",
                         "--scale", "16", "--mean", "0.5", "--std", "1", "--layout", "HWC", "--limit", "2",
                         "--domain", "interval", "--out", out_csv)
    assert code == 0, err
    assert len(out_csv.read_text().splitlines()) == 3 and "2 images" in out


def _hierarchy_file(tmp_path, edit):
    doc = json.loads(bundled_path("digits_shapes").read_text())
    edit(doc)
    path = tmp_path / "h.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("make, message", [
    (lambda t: t / "missing.json", "no hierarchy file"),
    (lambda t: _hierarchy_file(t, lambda d: d["groups"][1]["members"].append("11")), "unknown class '11'"),
    (lambda t: _hierarchy_file(t, lambda d: (d["classes"].append("10"), d["groups"][2]["members"].append("10"))),
     "has 11 classes, the network has 10 outputs"),
    (lambda t: (t / "bad.json").write_text("{\"classes\": [") and t / "bad.json", "not valid JSON"),
], ids=["missing", "unknown class", "size mismatch", "bad json"])
def test_bad_hierarchy_files(capsys, tmp_path, digits_csv, make, message):
    code, out, err = run(capsys, "--hierarchy", make(tmp_path), "--data", digits_csv, "--eps", "0.01",
                         "--scale", "16")
    assert code == 1 and err.startswith("absint: error: ") and message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("content, message", [
    ("3,1,2,3\n", "1: 4 values, expected a label and 64 pixel values"),
    ("12," + ",".join(["0"] * 64) + "\n", "image 0 has label 12, the hierarchy has 10 classes"),
    ("x," + ",".join(["0"] * 64) + "\n", "1: not a number"),
    ("", "no images"),
])
def test_bad_data_files(capsys, tmp_path, content, message):
    path = tmp_path / "d.csv"
    path.write_text(content)
    code, _, err = run(capsys, "--hierarchy", "digits_shapes", "--data", path, "--eps", "0.01")
    assert code == 1 and message in err and len(err.splitlines()) == 1


def test_bad_arguments(capsys, digits_csv):
    code, _, err = run(capsys, "--hierarchy", "digits_shapes", "--data", digits_csv, "--eps", "0.01", "--mean", "1", "2")
    assert code == 1 and "--mean needs 1 value" in err
    with pytest.raises(SystemExit) as info:
        run(capsys, "--hierarchy", "digits_shapes", "--data", digits_csv, "--eps", "abc")
    assert info.value.code == 2 and "not a radius" in capsys.readouterr().err
