"""Acceptance on the digits case: monitors separate clearly shifted inputs and are at chance on an
identically distributed split (fixed seeds; split sizes ~225 give an AUROC standard error ~0.03).

Measured exceptions, asserted as such: the output baselines (MSP, energy) are over-confident on
uniform noise (ReLU networks far from the data, Hein et al. CVPR 2019): AUROC 0.90/0.90 (MLP) and
0.91/0.86 (CNN), so their clearly shifted set is the photo patches (0.94-0.96). Per-layer monitors
are asserted with their layers combined (the bench's ``+mean`` fusion); the Hamming monitor on the
narrow last hidden layer alone reaches only 0.86 (MLP relu2) and 0.82 (CNN relu3) on noise.
"""

from __future__ import annotations

import numpy as np
import pytest

import absint.zoo as zoo
from absint.monitors import MONITORS, collect_activations, output_layer
from absint.monitors.bench import BenchOptions, _fusions, build_monitors
from absint.monitors.cases import digits_case
from absint.monitors.metrics import auroc

pytest.importorskip("sklearn")
pytest.importorskip("PIL")


@pytest.fixture(scope="module", params=zoo.BUNDLED_NETWORKS)
def scored(request):
    """Scores of every monitor (and fusion) on val, test and the OoD sets of one digits network."""
    net = zoo.load(request.param)
    case = digits_case(net.input_shape, ood=("noise", "photos"))
    out = output_layer(net)
    sets = {"fit": case.fit.x, "val": case.val.x, "test": case.test.x, **case.ood}
    acts = {k: collect_activations(net, x) for k, x in sets.items()}
    preds = {k: a[out].argmax(axis=1) for k, a in acts.items()}
    entries = build_monitors(net, BenchOptions())
    for e in entries:
        e.monitor.fit(acts["fit"], case.fit.y, preds["fit"])
    fusions = _fusions(entries, BenchOptions())
    half = len(case.val) // 2               # fusions are fitted on the first half of the validation split
    val_a = {k: v[:half] for k, v in acts["val"].items()}
    for e in fusions:
        e.monitor.fit(val_a, case.val.y[:half], preds["val"][:half])
    scores = {(e.kind, e.layer): {k: e.monitor.score(acts[k], preds[k]) for k in sets if k != "fit"}
              for e in entries + fusions}
    for e in fusions:
        scores[(e.kind, e.layer)]["val"] = scores[(e.kind, e.layer)]["val"][half:]
    return request.param, scores, {e.label for e in fusions}


def _auroc(neg, pos):
    return auroc(np.r_[np.zeros(len(neg)), np.ones(len(pos))], np.r_[neg, pos])


def test_every_type_is_benchmarked(scored):
    _, scores, _ = scored
    assert {kind for kind, _ in scores} >= set(MONITORS)


def test_shifted_set_separated(scored):
    name, scores, _ = scored
    checked = []
    for (kind, layer), s in scores.items():
        per_layer = kind in MONITORS.types and MONITORS.get(kind).per_layer
        if per_layer:
            continue                                     # asserted through the kind+mean layer fusion
        shifted = "photos" if kind in ("msp", "energy") else "noise"
        value = _auroc(s["test"], s[shifted])
        checked.append(kind)
        assert value > 0.9, (name, kind, layer, shifted, value)
    for kind, t in MONITORS.types.items():
        if t.per_layer:
            assert f"{kind}+mean" in checked
    assert {"fusion-max", "fusion-mean", "fusion-logistic"} <= set(checked)


def test_near_chance_on_identically_distributed_split(scored):
    """Validation vs test halves of the held-out digits (monitors fitted on the fit split; fusions on the
    first half of the validation split, which is then left out of the comparison)."""
    name, scores, _ = scored
    for (kind, layer), s in scores.items():
        value = _auroc(s["val"], s["test"])
        assert 0.4 < value < 0.6, (name, kind, layer, value)
