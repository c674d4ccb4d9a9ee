"""pytest-benchmark: ``absint.analyze`` per (network, domain) on a small set of networks.

    /work/venv/bin/python -m pytest perf/test_bench_domains.py --benchmark-only [--benchmark-json out.json]

Networks: ACAS Xu 1_1 prop_1 and mnistfc 256x2 (skipped when the VNN-COMP benchmarks are absent),
the bundled digits_cnn and cifar_conv(4). Each benchmark also checks that the bounds contain
``net.forward`` of sampled points of the box, so a broken domain fails rather than times.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")

import absint  # noqa: E402
from perf.bench_domains import load_case, symbols_of  # noqa: E402
from tests._bench import NO_BENCHMARKS, benchmarks_dir  # noqa: E402

DOMAINS = ("interval", "zonotope", "deeppoly")
# case id -> (needs the VNN-COMP benchmarks, timed rounds)
CASES = {
    "acasxu/1_1/prop_1": (True, 20),
    "mnistfc/256x2": (True, 10),
    "zoo/digits_cnn": (False, 10),
    "zoo/cifar_conv4": (False, 3),
}

_loaded: dict = {}


def _case(case: str):
    needs_bench, _ = CASES[case]
    if needs_bench and (benchmarks_dir() is None or not (benchmarks_dir() / case.split("/")[0]).is_dir()):
        pytest.skip(f"{case}: {NO_BENCHMARKS}")
    if case not in _loaded:
        _loaded[case] = load_case(case)
    return _loaded[case]


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("case", list(CASES))
def test_analyze(benchmark, case, domain):
    net, box = _case(case)
    rounds = CASES[case][1]
    benchmark.group = case
    res = benchmark.pedantic(absint.analyze, args=(net, box), kwargs={"domain": domain},
                             rounds=rounds, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(symbols=symbols_of(domain, net, res), peak_bytes=int(res.stats["peak_bytes"]),
                                mean_width=float(np.mean(res.upper - res.lower)))
    # the timed result must still be sound: sampled points of the box land inside the bounds
    rng = np.random.default_rng(0)
    lo, hi = box.lower.reshape(-1), box.upper.reshape(-1)
    pts = np.vstack([lo, hi, (lo + hi) / 2, lo + (hi - lo) * rng.random((32, lo.size))])
    y = net.forward(pts.reshape((-1,) + tuple(net.input_shape)))
    assert res.lower.shape == res.upper.shape == (net.output_size,)
    assert np.all(res.lower <= res.upper)
    assert np.all(y >= res.lower) and np.all(y <= res.upper)
