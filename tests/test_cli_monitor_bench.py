"""``absint monitor-bench`` end to end on the bundled digits MLP (small: two monitors, two OoD sets)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from absint.cli import main

pytest.importorskip("sklearn")


def test_monitor_bench_digits(tmp_path, capsys):
    out_csv = tmp_path / "m.csv"
    rc = main(["monitor-bench", "digits_mlp", "--monitors", "msp,mahalanobis", "--ood", "noise,inverted",
               "--fusion", "max,logistic", "--csv", str(out_csv), "--plot", str(tmp_path / "m.png")])
    out = capsys.readouterr()
    assert rc == 0
    for text in ("AUROC", "ood:noise", "ood:inverted", "ood:all", "misclassification", "safety gain",
                 "mahalanobis+mean", "fusion-logistic", "scored / s"):
        assert text in out.out
    rows = list(csv.DictReader(open(out_csv)))
    monitors = {(r["monitor"], r["layer"]) for r in rows}
    assert monitors == {("msp", "fc3"), ("mahalanobis", "relu1"), ("mahalanobis", "relu2"),
                        ("mahalanobis+mean", "all"), ("fusion-max", "all"), ("fusion-logistic", "all")}
    assert {r["task"] for r in rows} == {"misclassification", "ood:noise", "ood:inverted", "ood:all"}
    maha = next(r for r in rows if r["monitor"] == "mahalanobis" and r["layer"] == "relu1" and r["task"] == "ood:noise")
    assert float(maha["auroc"]) > 0.9 and 0 <= float(maha["safety_gain"]) <= 1
    try:
        import matplotlib  # noqa: F401
        assert (tmp_path / "m.png").stat().st_size > 0
    except ImportError:
        assert "matplotlib is not installed" in out.err and not (tmp_path / "m.png").exists()


def test_monitor_bench_errors(capsys):
    assert main(["monitor-bench", "digits_mlp", "--monitors", "nope", "--ood", "noise"]) == 1
    assert "unknown monitor 'nope'" in capsys.readouterr().err
    assert main(["monitor-bench", "digits_mlp", "--data", "csv", "--ood", "noise"]) == 1
    assert "needs a data file" in capsys.readouterr().err
    assert main(["monitor-bench", "digits_mlp", "--fusion", "median", "--ood", "noise"]) == 1
    assert "unknown fusion rule" in capsys.readouterr().err


def test_monitor_bench_csv_data(tmp_path, capsys, benchmarks):
    data = benchmarks / "data" / "mnist_test.csv"
    net = benchmarks / "mnistfc" / "mnist-net_256x2.onnx"
    if not data.is_file() or not net.is_file():
        pytest.skip("mnistfc network or MNIST rows absent")
    rc = main(["monitor-bench", str(net), "--data", "csv", "--data-file", str(data), "--monitors", "knn",
               "--ood", "noise", "--fusion", ""])
    assert rc == 0
    out = capsys.readouterr().out
    assert "fitted on test-set rows" in out and "knn" in out
