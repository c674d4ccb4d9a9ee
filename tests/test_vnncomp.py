"""absint.vnncomp: result files (exact format, round trip), instances.csv, and the benchmark runner."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import absint.vnncomp as vc
from absint.network import Affine, Network, Node, ReLU
from absint.onnx_export import save_onnx
from absint.verify import Verdict
from tests._bench import NO_BENCHMARKS, benchmarks_dir

VERIFY_MODULE = sys.modules["absint.verify"]  # ``absint.verify`` the attribute is the function


# ------------------------------------------------------------------------------ helpers
def identity_net() -> Network:
    """y = x on one input."""
    return Network((1,), [Node("fc", Affine(np.array([[1.0]]), np.zeros(1)), (-1,))])


def prop_text(n_in: int, box, unsafe: str, n_out: int = 1) -> str:
    decl = "".join(f"(declare-const X_{i} Real)\n" for i in range(n_in))
    decl += "".join(f"(declare-const Y_{j} Real)\n" for j in range(n_out))
    bounds = "".join(f"(assert (>= X_{i} {lo}))\n(assert (<= X_{i} {hi}))\n" for i, (lo, hi) in enumerate(box))
    return decl + bounds + unsafe


def make_folder(root: Path, rows: list[str], sub: str = "") -> Path:
    """A VNN-COMP folder: y = x over [0, 1]; sat.vnnlib (y >= 0.5), unsat.vnnlib (y >= 2); ``rows`` in the csv."""
    (root / sub).mkdir(parents=True, exist_ok=True)
    save_onnx(identity_net(), root / sub / "id.onnx")
    (root / sub / "sat.vnnlib").write_text(prop_text(1, [(0, 1)], "(assert (>= Y_0 0.5))\n"))
    (root / sub / "unsat.vnnlib").write_text(prop_text(1, [(0, 1)], "(assert (>= Y_0 2))\n"))
    (root / "instances.csv").write_text("".join(r + "\n" for r in rows))
    return root


THREE = ["id.onnx,sat.vnnlib,20", "broken.onnx,sat.vnnlib,20", "id.onnx,unsat.vnnlib,20"]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# -------------------------------------------------------------------------- result files
def test_format_result_exact_text():
    text = vc.format_result("sat", np.array([[0.1, -2.5]]), np.array([1 / 3]))
    assert text == "sat\n((X_0 0.1)\n (X_1 -2.5)\n (Y_0 0.3333333333333333))\n"
    assert vc.format_result("sat", [1.0], [2.0, 3.0]) == "sat\n((X_0 1.0)\n (Y_0 2.0)\n (Y_1 3.0))\n"
    for word in ("unsat", "unknown", "timeout"):
        assert vc.format_result(word) == word + "\n"
    with pytest.raises(ValueError, match="result word"):
        vc.format_result("holds")
    with pytest.raises(ValueError, match="counterexample"):
        vc.format_result("sat")


@pytest.mark.parametrize("n_in, n_out", [(1, 1), (7, 3)])
def test_result_round_trip_is_bit_exact(tmp_path, n_in, n_out):
    rng = np.random.default_rng(n_in)
    x = rng.normal(size=n_in) * 10.0 ** rng.integers(-300, 300, size=n_in)
    x[0] = 5e-324  # the smallest subnormal
    y = rng.normal(size=n_out)
    y[-1] = -0.0
    v = Verdict("violated", (x.reshape(1, n_in), y), {})
    path = tmp_path / "res.txt"
    vc.write_result(path, v, n_inputs=n_in)
    word, x2, y2 = vc.read_result(path)
    assert word == "sat"
    assert x2.tobytes() == x.tobytes() and y2.tobytes() == y.tobytes()
    assert path.read_text().splitlines()[0] == "sat"
    assert len(path.read_text().splitlines()) == 1 + n_in + n_out


@pytest.mark.parametrize("status, word", [("holds", "unsat"), ("unknown", "unknown"), ("timeout", "timeout")])
def test_result_words(tmp_path, status, word):
    path = tmp_path / "r"
    path.write_text("stale partial content")
    vc.write_result(path, Verdict(status), n_inputs=3)
    assert path.read_text() == word + "\n"
    assert vc.read_result(path) == (word, None, None)
    assert os.listdir(tmp_path) == ["r"]  # no temporary file left behind


def test_write_result_is_atomic(tmp_path, monkeypatch):
    """An interruption before the rename leaves the old file intact and no temporary file."""
    path = tmp_path / "r"
    path.write_text("unknown\n")

    def boom(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(vc.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        vc.write_result(path, Verdict("violated", (np.zeros(2), np.ones(1))), n_inputs=2)
    assert path.read_text() == "unknown\n"
    assert os.listdir(tmp_path) == ["r"]


def test_write_result_checks_the_counterexample(tmp_path):
    with pytest.raises(ValueError, match="2 inputs"):
        vc.write_result(tmp_path / "r", Verdict("violated", (np.zeros(2), np.ones(1))), n_inputs=3)
    with pytest.raises(ValueError, match="without a counterexample"):
        vc.write_result(tmp_path / "r", Verdict("violated"), n_inputs=3)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("text, match", [("", "empty"), ("maybe\n", "expected one of"),
                                         ("sat\n((X_0 1.0)\n (X_2 1.0)\n (Y_0 2.0))", "without gaps"),
                                         ("sat\n((X_0 1.0))", "Y_0"), ("sat\n((X_0 abc)\n (Y_0 1))", "not a number"),
                                         ("sat\n((Z_0 1.0))", "cannot read")])
def test_parse_result_errors(text, match):
    with pytest.raises(ValueError, match=match):
        vc.parse_result(text)


def test_parse_result_accepts_newer_synonyms_and_layout():
    assert vc.parse_result("holds\n")[0] == "unsat"
    word, x, y = vc.parse_result("violated\n((X_0 1.5) (X_1 -2) (Y_0 3e-3))")
    assert word == "sat" and x.tolist() == [1.5, -2.0] and y.tolist() == [0.003]


# ---------------------------------------------------------------------------- instances.csv
def test_read_instances(tmp_path):
    make_folder(tmp_path, ["", "onnx/id.onnx, sat.vnnlib ,12.5", "# a comment", "onnx/id.onnx,unsat.vnnlib,3"],
                sub="")
    rows = vc.read_instances(tmp_path)
    assert [(r.onnx_rel, r.vnnlib_rel, r.timeout) for r in rows] == [("onnx/id.onnx", "sat.vnnlib", 12.5),
                                                                      ("onnx/id.onnx", "unsat.vnnlib", 3.0)]
    assert rows[0].onnx == tmp_path / "onnx" / "id.onnx" and rows[0].name == "id sat"
    assert vc.read_instances(tmp_path / "instances.csv") == rows
    with pytest.raises(FileNotFoundError, match="id.onnx"):
        vc.read_instances(tmp_path, check_files=True)


def test_read_instances_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="instances.csv"):
        vc.read_instances(tmp_path)
    for bad, match in [("a.onnx,b.vnnlib\n", ":1: expected"), ("a.onnx,b.vnnlib,10\na.onnx,b.vnnlib,x\n",
                                                                  ":2: timeout 'x'"),
                       ("a.onnx,b.vnnlib,-1\n", "positive"), ("a.onnx,,1\n", "expected")]:
        (tmp_path / "instances.csv").write_text(bad)
        with pytest.raises(ValueError, match=match):
            vc.read_instances(tmp_path)


def test_read_instances_finds_gzipped_files_and_loads_them(tmp_path):
    import gzip

    make_folder(tmp_path, ["id.onnx,sat.vnnlib,5"])
    for name in ("id.onnx", "sat.vnnlib"):
        data = (tmp_path / name).read_bytes()
        (tmp_path / (name + ".gz")).write_bytes(gzip.compress(data))
        (tmp_path / name).unlink()
    (inst,) = vc.read_instances(tmp_path, check_files=True)
    assert inst.onnx.name == "id.onnx.gz" and inst.vnnlib.name == "sat.vnnlib.gz" and inst.name == "id sat"
    out = vc.run_instance(str(inst.onnx), str(inst.vnnlib), 10.0)
    assert out["status"] == "violated", out
    assert vc.check_counterexample(inst.onnx, inst.vnnlib, *out["counterexample"]) == (True, "")


# ------------------------------------------------------------------------------ the runner
def test_run_instance_records_errors():
    out = vc.run_instance("/nonexistent/net.onnx", "/nonexistent/p.vnnlib", 5.0)
    assert out["status"] == "error" and "no such file" in out["error"]


def test_check_counterexample_rejects_wrong_points(tmp_path):
    make_folder(tmp_path, [])
    net, prop = tmp_path / "id.onnx", tmp_path / "sat.vnnlib"
    assert vc.check_counterexample(net, prop, [0.7])[0]
    assert not vc.check_counterexample(net, prop, [0.2])[0]      # safe output
    assert not vc.check_counterexample(net, prop, [1.5])[0]      # outside the box
    assert not vc.check_counterexample(net, prop, [0.7, 0.7])[0]  # wrong size
    assert not vc.check_counterexample(net, prop, [np.nan])[0]


def test_run_benchmark_local_processes(tmp_path):
    """3 instances in fresh worker processes: sat (checked), a missing network (error row), unsat."""
    make_folder(tmp_path, THREE)
    seen = []
    out = tmp_path / "results.csv"
    rows = vc.run_benchmark(tmp_path, jobs=2, out=out, progress=lambda d, n, r: seen.append((d, n, r.status)))
    assert [r.status for r in rows] == ["violated", "error", "holds"]
    assert [r.result for r in rows] == ["sat", "error", "unsat"]
    assert rows[0].counterexample_checked is True and rows[2].counterexample_checked is None
    assert "broken.onnx" in rows[1].error and "no such file" in rows[1].error
    assert sorted(d for d, _, _ in seen) == [1, 2, 3] and {n for _, n, _ in seen} == {3}
    table = read_csv(out)
    assert list(table[0]) == list(vc.CSV_COLUMNS)
    assert [(t["onnx"], t["vnnlib"], t["timeout"]) for t in table] == [tuple(r.split(",")) for r in THREE]
    assert [t["result"].split(":")[0] for t in table] == ["sat", "error", "unsat"]
    assert table[1]["result"].startswith("error: ModelFormatError")
    assert [t["counterexample_checked"] for t in table] == ["true", "", ""]
    assert all(float(t["time_s"]) >= 0 for t in table)
    headers, summary = vc.summary_table(rows)
    as_dict = {row[0]: dict(zip(headers, row)) for row in summary}
    assert set(as_dict) == {"sat", "unsat", "all"}
    assert [as_dict["all"][s] for s in vc.SUMMARY_STATUSES] == [1, 1, 0, 0, 1]
    assert as_dict["sat"]["violated"] == 1 and as_dict["sat"]["error"] == 1 and as_dict["sat"]["instances"] == 2
    assert as_dict["all"]["total s"] == pytest.approx(sum(r.time_s for r in rows), abs=0.01)


def _worker_state(conn):
    import sys

    from numba.np.ufunc import parallel

    conn.send(("absint.warm_start" in sys.modules, "numba.cpython.mathimpl" in sys.modules,
               bool(parallel._is_initialized)))
    conn.close()


@pytest.mark.skipif("forkserver" not in __import__("multiprocessing").get_all_start_methods(),
                    reason="no forkserver start method on this platform")
def test_workers_start_with_numba_loaded_but_no_threads():
    """Instance workers come from a forkserver that has numba's compiler loaded (absint.warm_start) and
    has not started numba's thread pool (OpenMP threads do not survive a fork)."""
    ctx = vc._mp_context()
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_worker_state, args=(send,))
    proc.start()
    send.close()
    state = recv.recv()
    proc.join(10)
    assert state == (True, True, False)


def test_run_benchmark_empty_and_single(tmp_path):
    make_folder(tmp_path, [])
    assert vc.run_benchmark(tmp_path, out=tmp_path / "r.csv") == []
    assert read_csv(tmp_path / "r.csv") == []
    assert vc.summary_table([])[1] == [["all", 0, 0, 0, 0, 0, 0, 0, 0.0]]
    make_folder(tmp_path, ["id.onnx,unsat.vnnlib,20"])
    (row,) = vc.run_benchmark(tmp_path, executor="inline")
    assert row.status == "holds"
    headers, summary = vc.summary_table([row])
    assert len(summary) == 1 and summary[0][0] == "all"


def test_limit_and_filter(tmp_path):
    make_folder(tmp_path, THREE)
    assert [r.instance.vnnlib_rel for r in vc.run_benchmark(tmp_path, executor="inline", filter="unsat")] == \
        ["unsat.vnnlib"]
    assert [r.instance.onnx_rel for r in vc.run_benchmark(tmp_path, executor="inline", limit=2)] == \
        ["id.onnx", "broken.onnx"]
    assert vc.run_benchmark(tmp_path, executor="inline", limit=0) == []


def _fake_verify(calls, status="unknown", cex=None):
    def fake(net, spec, timeout=60.0, **kwargs):
        calls.append((timeout, kwargs))
        return Verdict(status, cex, {"time_s": 0.0})
    return fake


def test_timeout_scaling_and_options_reach_verify(tmp_path, monkeypatch):
    make_folder(tmp_path, ["id.onnx,sat.vnnlib,20", "id.onnx,unsat.vnnlib,7"])
    calls = []
    monkeypatch.setattr(VERIFY_MODULE, "verify", _fake_verify(calls))
    rows = vc.run_benchmark(tmp_path, timeout_scale=0.5, executor="inline", domain="deeppoly")
    assert [r.status for r in rows] == ["unknown", "unknown"]
    # verify gets the scaled timeout minus the (small) loading time
    assert 9.0 < calls[0][0] <= 10.0 and 2.5 < calls[1][0] <= 3.5
    assert all(kw["domain"] == "deeppoly" for _, kw in calls)
    with pytest.raises(ValueError, match="timeout-scale"):
        vc.run_benchmark(tmp_path, timeout_scale=0)
    with pytest.raises(ValueError, match="jobs"):
        vc.run_benchmark(tmp_path, jobs=0)
    with pytest.raises(ValueError, match="executor"):
        vc.run_benchmark(tmp_path, executor="cloud")


def test_unchecked_counterexample_is_an_error_never_sat(tmp_path, monkeypatch):
    """A 'violated' verdict whose point is safe (0.2: y = 0.2 < 0.5) fails the parent's re-check."""
    make_folder(tmp_path, ["id.onnx,sat.vnnlib,20"])
    monkeypatch.setattr(VERIFY_MODULE, "verify",
                        _fake_verify([], "violated", (np.array([0.2]), np.array([0.9]))))
    (row,) = vc.run_benchmark(tmp_path, executor="inline", out=tmp_path / "r.csv")
    assert row.status == "error" and row.counterexample_checked is False and vc.UNCHECKED in row.error
    (line,) = read_csv(tmp_path / "r.csv")
    assert line["result"].startswith("error: unchecked counterexample") and line["counterexample_checked"] == "false"


def test_ctrl_c_writes_partial_results(tmp_path, monkeypatch):
    make_folder(tmp_path, THREE)
    calls = []
    real = VERIFY_MODULE.verify

    def interrupt_second(net, spec, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(net, spec, **kwargs)

    monkeypatch.setattr(VERIFY_MODULE, "verify", interrupt_second)
    out = tmp_path / "results.csv"
    with pytest.raises(KeyboardInterrupt) as info:
        vc.run_benchmark(tmp_path, executor="inline", out=out)
    assert isinstance(info.value, vc.BenchmarkInterrupted)
    assert [r.status for r in info.value.rows] == ["violated", "error"] and info.value.total == 3
    assert [t["result"].split(":")[0] for t in read_csv(out)] == ["sat", "error"]


def test_hard_guard_kills_a_stuck_worker(tmp_path):
    """A property file that is a FIFO blocks its worker in open(); the parent kills it and records timeout."""
    make_folder(tmp_path, ["id.onnx,stuck.vnnlib,0.5", "id.onnx,unsat.vnnlib,20"])
    os.mkfifo(tmp_path / "stuck.vnnlib")
    t0 = time.monotonic()
    rows = vc.run_benchmark(tmp_path, jobs=2, guard_slack=1.0, out=tmp_path / "r.csv")
    elapsed = time.monotonic() - t0
    assert [r.status for r in rows] == ["timeout", "holds"]
    assert rows[0].stats.get("killed") and rows[0].time_s >= 0.5 * 1.1 + 1.0
    assert elapsed < 30
    assert [t["result"] for t in read_csv(tmp_path / "r.csv")] == ["timeout", "unsat"]


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_in_local_mode_stops_workers(tmp_path, signum, code):
    """SIGINT (or SIGTERM) to a run with a stuck worker: exit 130 (143), partial csv and summary, no worker left."""
    psutil = pytest.importorskip("psutil")
    make_folder(tmp_path, ["id.onnx,unsat.vnnlib,20", "id.onnx,stuck.vnnlib,60"])
    os.mkfifo(tmp_path / "stuck.vnnlib")
    out, err_path = tmp_path / "r.csv", tmp_path / "stderr.txt"
    with open(err_path, "w") as err:
        # default SIGINT in the child even when this test runs in a background job (which ignores SIGINT)
        proc = subprocess.Popen([sys.executable, "-m", "absint.cli", "run-benchmark", str(tmp_path), "--out",
                                 str(out)], stdout=subprocess.PIPE, stderr=err, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 60
            while "[1/2]" not in err_path.read_text() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "[1/2]" in err_path.read_text(), f"the first instance did not finish: {err_path.read_text()}"
            time.sleep(1.5)  # the stuck worker has started (Ctrl-C during its start is covered by the parent too)
            kids = psutil.Process(proc.pid).children(recursive=True)
            proc.send_signal(signum)
            try:
                stdout, _ = proc.communicate(timeout=90)
            except subprocess.TimeoutExpired:
                tree = [(p.pid, p.name(), p.status()) for p in psutil.Process(proc.pid).children(recursive=True)]
                pytest.fail(f"no exit 90 s after signal {signum}; children {tree}; stderr: {err_path.read_text()[-2000:]}")
        finally:
            if proc.poll() is None:
                proc.kill()
    stderr = err_path.read_text()
    assert proc.returncode == code, (stdout, stderr)
    assert "[1/2] id unsat holds" in stderr and "interrupted" in stderr
    assert "1 of 2 instances" in stdout and "all" in stdout
    assert [t["result"] for t in read_csv(out)] == ["unsat"]
    _, alive = psutil.wait_procs(kids, timeout=10)
    assert not alive


# ----------------------------------------------------------------------------------- dask
def test_dask_executor_missing_dependency(tmp_path, monkeypatch):
    make_folder(tmp_path, ["id.onnx,sat.vnnlib,20"])
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install absint\[distributed\]"):
        vc.run_benchmark(tmp_path, executor="dask", scheduler="tcp://127.0.0.1:1")


def test_dask_executor_local_cluster(tmp_path):
    distributed = pytest.importorskip("distributed", reason="the dask executor needs the distributed package")
    make_folder(tmp_path, ["id.onnx,sat.vnnlib,20", "id.onnx,unsat.vnnlib,20"])
    with pytest.raises(ValueError, match="scheduler"):
        vc.run_benchmark(tmp_path, executor="dask")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        rows = vc.run_benchmark(tmp_path, executor="dask", scheduler=cluster.scheduler_address,
                                out=tmp_path / "r.csv")
    assert [r.status for r in rows] == ["violated", "holds"]
    assert rows[0].counterexample_checked is True
    assert [t["result"] for t in read_csv(tmp_path / "r.csv")] == ["sat", "unsat"]


# ------------------------------------------------------------------------------- ACAS Xu
def test_acasxu_instances_never_wrong():
    """Two ACAS Xu instances with short timeouts: no error, and any sat is a re-checked counterexample."""
    root = benchmarks_dir()
    if root is None or not (root / "acasxu" / "instances.csv").is_file():
        pytest.skip(NO_BENCHMARKS)
    insts = [i for i in vc.read_instances(root / "acasxu") if i.vnnlib_rel in ("prop_1.vnnlib", "prop_2.vnnlib")]
    pick = [next(i for i in insts if i.vnnlib_rel == "prop_1.vnnlib"),
            next(i for i in insts if i.vnnlib_rel == "prop_2.vnnlib" and "_2_1_" in i.onnx_rel)]
    rows = vc.run_benchmark(root / "acasxu", jobs=2, instances=pick, timeout_scale=3.0 / pick[0].timeout,
                            domain="deeppoly")
    assert len(rows) == 2
    # ground truth (VNN-COMP 2021): 1_1 prop_1 is unsat, 2_1 prop_2 is sat (found by sampling at once)
    assert rows[0].status in ("holds", "unknown", "timeout"), rows[0]
    assert rows[1].status == "violated" and rows[1].counterexample_checked is True, rows[1]
