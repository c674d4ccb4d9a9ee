"""absint.verify: verdicts on networks whose answer is known analytically, and never wrong on benchmarks."""

from __future__ import annotations

import numpy as np
import pytest

import absint
from absint.network import Affine, Network, Node, ReLU
from absint.verify import spec_network
from absint.vnnlib import parse_vnnlib
from tests._bench import NO_BENCHMARKS, assert_onnxruntime_confirms, benchmark_instances


def _prop(n_in, box, unsafe):
    decl = "".join(f"(declare-const X_{i} Real)\n" for i in range(n_in)) + "(declare-const Y_0 Real)\n"
    bounds = "".join(f"(assert (>= X_{i} {lo}))\n(assert (<= X_{i} {hi}))\n" for i, (lo, hi) in enumerate(box))
    return decl + bounds + unsafe


def abs_net() -> Network:
    """y = relu(x) + relu(-x) = |x| on one input."""
    return Network((1,), [Node("fc1", Affine(np.array([[1.0], [-1.0]]), np.zeros(2)), (-1,)),
                          Node("relu", ReLU(), (0,)),
                          Node("fc2", Affine(np.array([[1.0, 1.0]]), np.zeros(1)), (1,))])


@pytest.mark.parametrize("domain", ["interval", "zonotope", "deeppoly"])
@pytest.mark.parametrize("threshold, expected", [(1.5, "holds"), (0.9, "violated"), (1.0, "violated"),
                                                 (1.0000001, "holds")])
def test_abs_value_both_ways(domain, threshold, expected):
    """|x| over [-1, 1] reaches exactly 1: unsafe y >= t holds for t > 1, is violated for t <= 1."""
    net = abs_net()
    spec = parse_vnnlib(_prop(1, [(-1, 1)], f"(assert (>= Y_0 {threshold}))\n"), net)
    v = absint.verify(net, spec, domain=domain, timeout=20)
    assert v.status == expected, v
    if expected == "violated":
        x, y = v.counterexample
        assert -1 <= x.ravel()[0] <= 1 and y[0] >= threshold
        np.testing.assert_array_equal(net.forward(x[None])[0], y)
    else:
        assert v.counterexample is None
    assert v.result == {"holds": "unsat", "violated": "sat"}[expected]


def test_needs_splitting_and_disjunctions():
    """|x| >= 0.5 or |x| <= 0.1 is violated; 'y <= -0.1 or y >= 1.2' holds only once the box is split
    (intervals of |x| over [-1, 1] include negative values before splitting)."""
    net = abs_net()
    holds = parse_vnnlib(_prop(1, [(-1, 1)], "(assert (or (<= Y_0 -0.1) (>= Y_0 1.2)))\n"), net)
    assert absint.verify(net, holds, domain="interval", timeout=20).status == "holds"
    assert absint.verify(net, holds, domain="interval", timeout=20, split=False).status == "unknown"
    violated = parse_vnnlib(_prop(1, [(-1, 1)], "(assert (or (<= Y_0 -0.1) (<= Y_0 0.0)))\n"), net)
    assert absint.verify(net, violated, domain="zonotope", timeout=20).status == "violated"


def test_timeout_is_honoured():
    """A property that only holds at a single point: the search keeps splitting until the deadline."""
    net = abs_net()
    spec = parse_vnnlib(_prop(1, [(-1, 1)], "(assert (<= Y_0 0.0))\n(assert (>= Y_0 0.0))\n"
                                          "(assert (>= Y_0 1e-300))\n"), net)
    v = absint.verify(net, spec, domain="interval", timeout=0.5, samples=16)
    assert v.status in ("timeout", "holds", "unknown")
    assert v.stats["time_s"] < 0.5 * 1.1 + 0.05


def test_spec_network_appends_the_rows():
    net = abs_net()
    rows = np.array([[2.0], [-1.0]])
    wrapped = spec_network(net, rows, np.array([0.5, 1.0]))
    x = np.array([[0.3], [-0.7]])
    np.testing.assert_allclose(wrapped.forward(x), net.forward(x) @ rows.T - [0.5, 1.0])


def _acas_cases():
    rows = benchmark_instances("acasxu")
    if not rows:
        return [pytest.param(None, marks=pytest.mark.skip(reason=NO_BENCHMARKS))]
    wanted = {"prop_1", "prop_2", "prop_3", "prop_4"}
    picked = [r for r in rows if r[2].stem in wanted][::7][:8]
    return [pytest.param(r, id=f"{r[1].stem[13:18]}-{r[2].stem}") for r in picked]


@pytest.mark.parametrize("instance", _acas_cases())
def test_acasxu_never_wrong(instance):
    """'holds' never comes with a counterexample from an independent search, and 'violated' is confirmed by
    net.forward and onnxruntime."""
    _, onnx_path, vnnlib_path, _ = instance
    net = absint.load_onnx(onnx_path)
    spec = absint.load_vnnlib(vnnlib_path, net)
    v = absint.verify(net, spec, domain="deeppoly", timeout=10, seed=1)
    if v.status == "violated":
        x, y = v.counterexample
        assert spec.is_counterexample(x.ravel(), y)
        assert_onnxruntime_confirms(onnx_path, spec, x)
    elif v.status == "holds":
        rng = np.random.default_rng(5)
        for region in spec.regions:
            pts = region.box.sample(3000, rng=rng).reshape(-1, net.input_size)
            assert not spec.is_counterexample(pts, net.forward(pts)).any()


def _bab_case(seed: int):
    """A 3-input ReLU net and a property that holds by 0.02 (its exact minimum by enumeration), for ReLU
    branch and bound."""
    from tests.bab.test_search import _net_and_min
    from tests.bab.test_search import _prop as box_prop

    net, lo, hi, m = _net_and_min(seed)
    return net, parse_vnnlib(box_prop(lo, hi, f"(assert (<= Y_0 {float(m - 0.02)!r}))\n"), net)


def test_verify_reports_progress_while_it_searches():
    """With ``progress_every`` 0 every check of the clock after the first reports: seconds and boxes never go
    back, the region is the only one, ReLU branch and bound's reports carry its global bound (never above
    the proof's 0 before it ends), and the verdict is the one of a run without reports."""
    with_bab = 0
    for seed in range(4):
        net, spec = _bab_case(seed)
        reports = []
        v = absint.verify(net, spec, timeout=30, method="bab", samples=0, pgd_steps=0, progress=reports.append,
                          progress_every=0.0)
        assert v.status == absint.verify(net, spec, timeout=30, method="bab", samples=0, pgd_steps=0).status == "holds"
        assert reports, seed
        times, boxes = [r["time_s"] for r in reports], [r["boxes"] for r in reports]
        assert times == sorted(times) and times[-1] <= v.stats["time_s"] and boxes == sorted(boxes)
        assert all(r["region"] == 1 and r["regions"] == 1 for r in reports)
        bab = [r for r in reports if "global_bound" in r]
        with_bab += bool(bab)
        assert all(not r["global_bound"] > 0 or r is bab[-1] for r in bab[:-1])
    assert with_bab > 0


def test_an_error_in_the_progress_callback_ends_the_verification():
    class Enough(Exception):
        pass

    def stop(report):
        raise Enough

    net, spec = _bab_case(0)
    with pytest.raises(Enough):
        absint.verify(net, spec, timeout=30, method="bab", samples=0, pgd_steps=0, progress=stop, progress_every=0.0)


def test_progress_counts_the_milp_bounds_under_way():
    """While the root's MILP bounds run (``BabOutcome.milp_started``) a report counts their seconds so far
    and says so; after them, only the seconds they took."""
    import time

    from absint.bab.search import BabOutcome
    from absint.cli import _progress_line
    from absint.verify import _Search

    now = time.perf_counter()
    search = _Search(abs_net(), now + 60.0, np.random.default_rng(0), "deeppoly", {}, started=now - 7.0)
    search.live = BabOutcome(time_milp=1.5, time_subproblem_milp=0.5, milp_started=now - 4.0, subproblems=12)
    report = search.snapshot(now)
    assert report["milp_running"] and report["time_milp_s"] == pytest.approx(6.0) and report["boxes"] == 12
    assert report["time_s"] == pytest.approx(7.0)
    assert "MILPs 6.0 s (the root's MILP bounds under way)" in _progress_line(report)
    search.live.milp_started = None
    report = search.snapshot(now)
    assert not report["milp_running"] and report["time_milp_s"] == pytest.approx(2.0)
    assert "under way" not in _progress_line(report)
