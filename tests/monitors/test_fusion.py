"""Score normalisation and fusion rules; the IRLS logistic regression against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from absint.monitors.fusion import FUSION_RULES, Fusion, LogisticRule, MaxRule, MeanRule, ZScore
from absint.monitors.logistic import fit_logistic


def test_logistic_equals_sklearn():
    lm = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    z = rng.standard_normal((300, 4))
    y = (z @ [1.5, -2.0, 0.0, 0.5] + 0.3 + rng.logistic(size=300)) > 0
    for l2 in (0.1, 1.0, 10.0):
        ours = fit_logistic(z, y, l2=l2)
        ref = lm.LogisticRegression(C=1.0 / l2, tol=1e-12, max_iter=10000).fit(z, y)
        assert np.allclose(ours.weights, ref.coef_[0], atol=1e-6)
        assert ours.intercept == pytest.approx(ref.intercept_[0], abs=1e-6)
        assert np.allclose(ours.probability(z), ref.predict_proba(z)[:, 1], atol=1e-6)


def test_logistic_separable_stays_finite():
    z = np.array([[0.0], [1.0], [2.0], [3.0]])
    m = fit_logistic(z, np.array([0, 0, 1, 1]), l2=1.0)
    assert np.isfinite(m.weights).all() and m.weights[0] > 0


def test_zscore_and_simple_rules():
    n = ZScore.fit(np.array([1.0, 2.0, 3.0, np.inf]))
    assert n.mean == 2.0 and n(np.array([2.0]))[0] == 0.0
    assert ZScore.fit(np.ones(4)).sd == 1.0
    z = np.array([[1.0, -1.0], [0.0, 3.0]])
    assert MaxRule().combine(z).tolist() == [1.0, 3.0]
    assert MeanRule().combine(z).tolist() == [0.0, 1.5]
    assert set(FUSION_RULES) == {"max", "mean", "logistic"}


def test_logistic_rule_nonnegative_and_fallback():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((400, 3))
    y = (2 * z[:, 0] - 2 * z[:, 1] + rng.logistic(size=400)) > 0     # column 1 would get a negative weight
    rule = LogisticRule().fit(z, y)
    assert rule.model is not None and np.all(rule.model.weights >= 0) and 1 not in rule.kept
    few = LogisticRule().fit(z, np.r_[True, np.zeros(399, bool)])      # one error: mean rule
    assert few.model is None and np.allclose(few.combine(z), z.mean(axis=1))


class _Const:
    """A fake monitor returning a fixed column of a score table."""

    name = "const"

    def __init__(self, col):
        self.layers = (f"L{col}",)
        self.col = col

    def fit(self, acts, labels, preds):
        return self

    def score(self, acts, preds):
        return acts["table"][:, self.col]


def test_fusion_normalises_members_on_validation():
    rng = np.random.default_rng(2)
    table = np.c_[rng.normal(10, 2, 200), rng.normal(-5, 0.1, 200)]
    f = Fusion([_Const(0), _Const(1)], MeanRule())
    with pytest.raises(RuntimeError):
        f.score({"table": table}, None)
    f.fit({"table": table}, np.zeros(200), np.zeros(200))
    assert f.layers == ("L0", "L1")
    z = (table - table.mean(0)) / table.std(0)
    assert np.allclose(f.score({"table": table}, None), z.mean(axis=1))
    with pytest.raises(ValueError):
        Fusion([], MaxRule())
