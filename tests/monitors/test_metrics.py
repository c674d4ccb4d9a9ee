"""absint.monitors.metrics equals scikit-learn on the same scores (ties included) and hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from absint.monitors.metrics import (acceptance_threshold, auroc, aurc, average_precision, fpr_at_tpr, risk_coverage,
                                     roc_curve, safety_figures)

sk = pytest.importorskip("sklearn.metrics")


def _cases():
    rng = np.random.default_rng(0)
    for t in range(300):
        n = int(rng.integers(2, 80))
        y = rng.random(n) < rng.uniform(0.05, 0.95)
        if y.all() or not y.any():
            continue
        if t % 3 == 0:
            s = rng.integers(0, rng.integers(1, 6), n).astype(float)          # heavy ties
        elif t % 3 == 1:
            s = rng.standard_normal(n) + y
        else:
            s = np.round(rng.random(n), 1)
        yield y, s


def test_auroc_and_ap_equal_sklearn():
    count = 0
    for y, s in _cases():
        assert auroc(y, s) == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)
        assert average_precision(y, s) == pytest.approx(sk.average_precision_score(y, s), abs=1e-12)
        count += 1
    assert count > 200


def test_roc_curve_and_fpr95_equal_sklearn():
    for y, s in _cases():
        fpr, tpr, thr = sk.roc_curve(y, s, drop_intermediate=False)
        f, t, _ = roc_curve(y, s)
        assert np.allclose(f, fpr) and np.allclose(t, tpr)
        assert fpr_at_tpr(y, s) == pytest.approx(fpr[np.argmax(tpr >= 0.95)])


def test_bench_figures_equal_sklearn_on_monitor_scores():
    """The benchmark's AUROC / AUPR are those scikit-learn gives for the same scores."""
    from absint.monitors.bench import OOD_ALL, BenchOptions, run_bench
    from tests.monitors._cases import small_case
    import absint.zoo as zoo

    net = zoo.load("digits_mlp")
    case = small_case(net)
    res = run_bench(net, case, BenchOptions(monitors=("msp", "hamming"), layer_fusion=(), fusion=()))
    from absint.monitors import collect_activations
    from absint.monitors.base import output_layer
    entry = res.entries[0]
    acts = collect_activations(net, case.test.x)
    preds = acts[output_layer(net)].argmax(axis=1)
    oacts = collect_activations(net, np.concatenate(list(case.ood.values())))
    s = np.r_[entry.monitor.score(acts, preds), entry.monitor.score(oacts, oacts[output_layer(net)].argmax(axis=1))]
    y = np.r_[np.zeros(len(preds)), np.ones(len(s) - len(preds))]
    row = next(r for r in res.rows if r.monitor == "msp" and r.task == OOD_ALL)
    assert row.auroc == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)
    assert row.aupr == pytest.approx(sk.average_precision_score(y, s), abs=1e-12)


def test_errors():
    with pytest.raises(ValueError, match="both"):
        auroc([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        auroc([0, 1], [np.nan, 0.2])
    with pytest.raises(ValueError, match="length"):
        auroc([0, 1, 1], [0.1, 0.2])


def test_risk_coverage_and_aurc():
    hazard = np.array([0, 1, 0, 1], bool)
    s = np.array([0.1, 0.2, 0.2, 0.9])
    cov, risk = risk_coverage(hazard, s)
    assert cov.tolist() == [0.25, 0.75, 1.0] and np.allclose(risk, [0.0, 1 / 3, 0.5])
    assert aurc(hazard, s) == pytest.approx(0.25 * 0 + 0.5 / 3 + 0.25 * 0.5)
    # distinct scores: AURC is the mean of the risks at coverages 1/n .. n/n
    h = np.array([1, 0, 0, 1, 0], bool)
    s2 = np.array([0.5, 0.1, 0.2, 0.9, 0.3])
    risks = np.cumsum(h[np.argsort(s2)]) / np.arange(1, 6)
    assert aurc(h, s2) == pytest.approx(risks.mean())


def test_threshold_and_safety_figures():
    ok = np.arange(1, 21, dtype=float)              # 20 correct validation scores
    t = acceptance_threshold(ok, 0.95)
    assert t == 19.0 and np.mean(ok <= t) >= 0.95 and np.mean(ok <= 18.0) < 0.95
    hazard = np.array([0, 0, 0, 1, 1, 0], bool)
    s = np.array([1.0, 2.0, 30.0, 25.0, 5.0, 3.0])
    f = safety_figures(hazard, s, t)
    assert f.safety_gain == 0.5                      # one of two hazards rejected
    assert f.residual_hazard == pytest.approx(1 / 4)  # accepted: 1, 2, 5, 3 -> one hazard
    assert f.availability_cost == pytest.approx(1 / 4)
    assert f.coverage == pytest.approx(4 / 6) and f.baseline_hazard == pytest.approx(2 / 6)
