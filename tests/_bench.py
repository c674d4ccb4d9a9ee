"""Where the VNN-COMP benchmarks are, and their instances (import as ``tests._bench``)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def benchmarks_dir() -> Path | None:
    """``ABSINT_BENCHMARKS`` if set, else ``../shared/benchmarks`` next to the repository."""
    env = os.environ.get("ABSINT_BENCHMARKS")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "benchmarks"
    return path if path.is_dir() else None


def benchmark_instances(family: str | None = None) -> list[tuple[str, Path, Path, float]]:
    """(family, onnx path, vnnlib path, timeout) of every instances.csv line; [] when absent."""
    root = benchmarks_dir()
    if root is None:
        return []
    rows = []
    for csv_path in sorted(root.glob("*/instances.csv")):
        fam = csv_path.parent.name
        if family is not None and fam != family:
            continue
        with open(csv_path, newline="") as fh:
            for line in csv.reader(fh):
                if len(line) >= 3 and line[0].strip():
                    rows.append((fam, csv_path.parent / line[0].strip(), csv_path.parent / line[1].strip(),
                                 float(line[2])))
    return rows


def benchmark_networks() -> list[Path]:
    root = benchmarks_dir()
    return sorted(root.rglob("*.onnx")) if root is not None else []


NO_BENCHMARKS = "benchmarks not found: set ABSINT_BENCHMARKS or provide ../shared/benchmarks"


def assert_onnxruntime_confirms(onnx_path, spec, x) -> None:
    """onnxruntime's output at the counterexample x (float32 input) also satisfies the unsafe set."""
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    y_ort = sess.run(None, {inp.name: np.asarray(x).reshape(shape).astype(np.float32)})[0].ravel()
    assert spec.is_counterexample(np.asarray(x).ravel(), y_ort.astype(np.float64), tol=1e-4)
