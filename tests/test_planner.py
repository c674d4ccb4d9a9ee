"""The storage planner: estimates, budget errors, cleanup on every exit path, and the budget met."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp

import absint
from absint import zoo
from absint.errors import MemoryBudgetError
from absint.linear import linear_op
from absint.network import NETWORK_INPUT
from absint.sparsity import input_support, propagate
from absint.tables import parse_bytes


@pytest.fixture(scope="module")
def cifar():
    return zoo.cifar_conv(4), absint.Box.linf(zoo.cifar_conv_input(), zoo.CIFAR_EPS)


def test_parse_bytes():
    assert parse_bytes("512MiB") == 512 << 20
    assert parse_bytes("1.5GB") == 1_500_000_000
    assert parse_bytes(4096) == 4096
    assert parse_bytes("2gib") == 2 << 30
    for bad in ("lots", "-3MiB", 0, "12 parsecs"):
        with pytest.raises(ValueError):
            parse_bytes(bad)


def test_predicted_nnz_bounds_the_real_csr_rows(cifar):
    """Receptive-field propagation of the input symbols through the conv prefix: exact or above, never below."""
    net, box = cifar
    lo, hi = box.lower.ravel(), box.upper.ravel()
    cols = np.flatnonzero(hi > lo)
    support = input_support(tuple(net.input_shape), cols)
    g = sp.csr_matrix((np.ones(len(cols)), cols, np.arange(len(cols) + 1)), shape=(len(cols), lo.size))
    shape = tuple(net.input_shape)
    for node in net.nodes[:1]:
        op = linear_op(node.layer, shape)
        g = sp.csr_matrix(op.apply_sparse(g))
        g.data[:] = 1.0  # structural non-zeros (weights may cancel)
        support = propagate(support, node.layer, node.shape)
        shape = node.shape
        assert support.nnz() >= g.nnz
        assert support.nnz() == g.nnz  # exact for a conv with stride <= kernel


def test_plan_table_and_choices(cifar):
    net, box = cifar
    p = absint.plan(net, box, memory_budget="1GiB")
    text = p.table()
    assert "conv1" in text and "choice" in text and "1.0 GiB" in text
    assert [lp.choice for lp in p.layers][:3] == ["csr"] * 3
    assert all(lp.peak[lp.choice] <= p.budget for lp in p.layers)
    # symbol upper bounds from the interval pre-pass bound the real counts
    real = absint.analyze(net, box).stats["n_symbols"]
    assert all(lp.n_symbols >= r for lp, r in zip(p.layers, real))


def test_impossible_budget_fails_before_work_and_leaves_nothing(cifar, tmp_path):
    net, box = cifar
    with pytest.raises(MemoryBudgetError) as info:
        absint.analyze(net, box, storage="auto", memory_budget="1MiB", scratch_dir=tmp_path)
    err = info.value
    assert err.given == 1 << 20 and err.needed > err.given
    assert "conv1" in err.layer or "input" in err.layer
    assert "1.0 MiB" in str(err)
    assert list(tmp_path.iterdir()) == []


def test_deeppoly_budget_sets_block_size_and_same_bounds(cifar):
    net, box = cifar
    free = absint.analyze(net, box, domain="deeppoly")
    tight = absint.analyze(net, box, domain="deeppoly", memory_budget="12MiB")
    assert tight.stats["block_size"] < free.stats.get("block_size", 512)
    np.testing.assert_allclose(tight.lower, free.lower, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(tight.upper, free.upper, rtol=1e-9, atol=1e-12)
    with pytest.raises(MemoryBudgetError, match="DeepPoly"):
        absint.analyze(net, box, domain="deeppoly", memory_budget="100KiB")
    for storage in ("auto", "hdf5", "csr"):  # DeepPoly keeps no noise symbols: any storage name is accepted
        other = absint.analyze(net, box, domain="deeppoly", storage=storage, memory_budget="12MiB")
        np.testing.assert_array_equal(other.lower, tight.lower)
        np.testing.assert_array_equal(other.upper, tight.upper)


@pytest.mark.parametrize("exc", [RuntimeError("injected"), KeyboardInterrupt()])
def test_exception_mid_analysis_removes_scratch_files(cifar, tmp_path, monkeypatch, exc):
    net, box = cifar
    import absint.domains.zonotope as zono

    calls = {"n": 0}
    original = zono._relax

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            assert any(tmp_path.iterdir()), "the HDF5 run should have scratch files by now"
            raise exc
        return original(*args, **kwargs)

    monkeypatch.setattr(zono, "_relax", failing)
    with pytest.raises(type(exc)):
        absint.analyze(net, box, storage="hdf5", scratch_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_budget_run_in_subprocess_stays_under_budget_with_dense_bounds(cifar, tmp_path):
    """A quarter of the dense peak: measured RSS growth (sampled) stays below it; bounds equal dense."""
    script = textwrap.dedent("""
        import json, sys, threading, time
        import numpy as np, psutil, absint, kernels
        from absint import zoo
        net = zoo.cifar_conv(4)
        box = absint.Box.linf(zoo.cifar_conv_input(), zoo.CIFAR_EPS)
        kernels.warmup()
        storage, budget = sys.argv[1], None if sys.argv[2] == "none" else int(sys.argv[2])
        proc = psutil.Process()
        rss0 = proc.memory_info().rss
        peak, done = [rss0], []
        def sample():
            while not done:
                peak[0] = max(peak[0], proc.memory_info().rss)
                time.sleep(0.002)
        t = threading.Thread(target=sample, daemon=True)
        t.start()
        try:
            res = absint.analyze(net, box, storage=storage, memory_budget=budget, scratch_dir=sys.argv[3])
        finally:
            done.append(1)
            t.join()
        print(json.dumps({"growth": peak[0] - rss0, "lower": res.lower.tolist(), "upper": res.upper.tolist()}))
    """)

    def run(storage, budget):
        out = subprocess.run([sys.executable, "-c", script, storage, str(budget), str(tmp_path)],
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])

    dense = run("dense", "none")
    budget = dense["growth"] // 4
    bounded = run("auto", budget)
    assert bounded["growth"] < budget, (bounded["growth"], budget, dense["growth"])
    np.testing.assert_allclose(bounded["lower"], dense["lower"], rtol=1e-9)
    np.testing.assert_allclose(bounded["upper"], dense["upper"], rtol=1e-9)
    assert list(tmp_path.iterdir()) == []
