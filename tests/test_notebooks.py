"""The case-study notebooks execute (code cells run in order by tests.notebook_runner)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.notebook_runner import run_notebook

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_activation_patterns_notebook():
    pytest.importorskip("sklearn")
    pytest.importorskip("PIL")
    texts = run_notebook(NOTEBOOKS / "activation_patterns.ipynb")
    out = "\n".join(texts)
    assert "distinct patterns among the first n training images" in out
    assert "known exactly / mean normalised Hamming distance" in out
    assert "mean per-neuron accuracy" in out
    assert "AUROC (positives" in out and "fusion-logistic" in out
    assert "ood:all AUROC" in out or "mnistfc case skipped" in out
