"""``absint verify`` and ``absint run-benchmark``, and the VNN-COMP tool scripts in vnncomp/."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from absint.cli import main
from absint.network import Affine, Network, Node, ReLU
from absint.onnx_export import save_onnx
from absint.verify import Verdict
from absint.vnncomp import read_result
from tests.test_vnncomp import THREE, make_folder, prop_text

VERIFY_MODULE = sys.modules["absint.verify"]
REPO = Path(__file__).resolve().parents[1]


def two_in_net() -> Network:
    """y0 = relu(x0 + x1), y1 = x0 - x1 on two inputs."""
    return Network((2,), [Node("fc1", Affine(np.array([[1.0, 1.0], [1.0, -1.0]]), np.zeros(2)), (-1,)),
                          Node("relu", ReLU(), (0,)),
                          Node("fc2", Affine(np.array([[1.0, 0.0]]), np.zeros(1)), (1,)),
                          ])


@pytest.fixture
def files(tmp_path):
    """y = x over [0, 1]: unsafe y >= 0.5 (sat), unsafe y >= 2 (unsat); and a 2-input ReLU net."""
    make_folder(tmp_path, [])
    save_onnx(two_in_net(), tmp_path / "two.onnx")
    (tmp_path / "two_sat.vnnlib").write_text(prop_text(2, [(0, 1), (0, 1)], "(assert (>= Y_0 1.5))\n"))
    (tmp_path / "two_unsat.vnnlib").write_text(prop_text(2, [(0, 1), (0, 1)], "(assert (>= Y_0 2.5))\n"))
    return tmp_path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------------- verify
def test_verify_violated_writes_a_checked_counterexample(files, capsys):
    out = files / "res.txt"
    code, stdout, err = run(capsys, "verify", files / "id.onnx", files / "sat.vnnlib", "--out", out, "--timeout", "10")
    assert code == 0, err
    assert stdout.startswith("violated (sat)") and "counterexample checked" in stdout
    word, x, y = read_result(out)
    assert word == "sat" and x.shape == (1,) and y.shape == (1,)
    assert 0 <= x[0] <= 1 and y[0] == x[0] and y[0] >= 0.5  # y = x, unsafe y >= 0.5
    lines = out.read_text().splitlines()
    assert lines == ["sat", f"((X_0 {float(x[0])!r})", f" (Y_0 {float(y[0])!r}))"]


def test_verify_violated_two_inputs(files, capsys):
    out = files / "res.txt"
    code, stdout, _ = run(capsys, "verify", files / "two.onnx", files / "two_sat.vnnlib", "--out", out, "--seed", 3)
    assert code == 0 and stdout.startswith("violated (sat)")
    word, x, y = read_result(out)
    assert word == "sat" and np.all((0 <= x) & (x <= 1))
    assert y[0] == pytest.approx(max(x[0] + x[1], 0.0), abs=1e-6) and y[0] >= 1.5
    text = out.read_text()
    assert text.startswith("sat\n((X_0 ") and "\n (X_1 " in text and text.endswith("))\n")


@pytest.mark.parametrize("domain", ["interval", "zonotope", "deeppoly"])
def test_verify_holds(files, capsys, domain):
    out = files / "res.txt"
    out.write_text("stale")
    code, stdout, _ = run(capsys, "verify", files / "id.onnx", files / "unsat.vnnlib", "--out", out,
                          "--domain", domain)
    assert code == 0 and stdout.startswith("holds (unsat) in ") and " boxes" in stdout
    assert out.read_text() == "unsat\n"
    code, stdout, _ = run(capsys, "verify", files / "two.onnx", files / "two_unsat.vnnlib", "--domain", domain)
    assert code == 0 and stdout.startswith("holds (unsat)")  # no --out: nothing written


def test_verify_options_reach_verify(files, capsys, monkeypatch):
    seen = {}

    def fake(net, spec, **kwargs):
        seen.update(kwargs)
        return Verdict("timeout", None, {"time_s": 1.0})

    monkeypatch.setattr(VERIFY_MODULE, "verify", fake)
    code, stdout, _ = run(capsys, "verify", files / "id.onnx", files / "sat.vnnlib", "--timeout", "2.5",
                          "--domain", "deeppoly", "--memory", "64MiB", "--storage", "csr", "--seed", "7",
                          "--method", "bab", "--out", files / "r")
    assert code == 0 and stdout.startswith("timeout (timeout)")
    assert seen == {"domain": "deeppoly", "timeout": 2.5, "memory_budget": "64MiB", "storage": "csr", "seed": 7,
                    "method": "bab", "progress": None}
    assert (files / "r").read_text() == "timeout\n"


def test_verify_never_writes_an_unchecked_sat(files, capsys, monkeypatch):
    """A (buggy) violated verdict with a safe point: error exit, the result file says unknown."""
    monkeypatch.setattr(VERIFY_MODULE, "verify",
                        lambda net, spec, **kw: Verdict("violated", (np.array([0.1]), np.array([0.9])), {}))
    code, stdout, err = run(capsys, "verify", files / "id.onnx", files / "sat.vnnlib", "--out", files / "r")
    assert code == 1 and err.startswith("absint: error: ") and "re-check" in err and len(err.splitlines()) == 1
    assert (files / "r").read_text() == "unknown\n"


def test_verify_errors_and_exit_codes(files, capsys, monkeypatch):
    code, _, err = run(capsys, "verify", files / "missing.onnx", files / "sat.vnnlib")
    assert code == 1 and err.startswith("absint: error: ") and "missing.onnx" in err and len(err.splitlines()) == 1
    (files / "bad.vnnlib").write_text("(declare-const X_0 Real)\n(assert (>= X_0 ")
    code, _, err = run(capsys, "verify", files / "id.onnx", files / "bad.vnnlib", "--out", files / "r")
    assert code == 1 and err.startswith("absint: error: ") and not (files / "r").exists()
    code, _, err = run(capsys, "verify", files / "two.onnx", files / "sat.vnnlib")  # 1-input property
    assert code == 1 and err.startswith("absint: error: ")
    with pytest.raises(SystemExit) as info:
        main(["verify", str(files / "id.onnx"), str(files / "sat.vnnlib"), "--timeout", "0"])
    assert info.value.code == 2
    capsys.readouterr()

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(VERIFY_MODULE, "verify", interrupted)
    code, _, err = run(capsys, "verify", files / "id.onnx", files / "sat.vnnlib", "--out", files / "r")
    assert code == 130 and "interrupted" in err and not (files / "r").exists()


def test_verify_console_script(files):
    """The installed entry point, as the VNN-COMP scripts call it."""
    exe = shutil.which("absint", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("the absint console script is not installed beside this python")
    proc = subprocess.run([exe, "verify", str(files / "id.onnx"), str(files / "unsat.vnnlib"), "--out",
                           str(files / "r")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (files / "r").read_text() == "unsat\n"


# -------------------------------------------------------------------------- run-benchmark
def _csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_run_benchmark_cli(files, capsys):
    (files / "instances.csv").write_text("".join(r + "\n" for r in THREE))
    out = files / "results.csv"
    code, stdout, err = run(capsys, "run-benchmark", files, "--out", out, "--jobs", "2", "--timeout-scale", "0.5")
    assert code == 0, err
    progress = [line for line in err.splitlines() if line.startswith("[")]
    assert len(progress) == 3 and {p[:5] for p in progress} == {"[1/3]", "[2/3]", "[3/3]"}
    assert any("id sat violated" in p for p in progress) and any("broken sat error" in p for p in progress)
    assert any("id unsat holds" in p for p in progress)
    table = {line.split()[0]: line.split()[1:] for line in stdout.splitlines() if line.split()}
    assert table["property"][:6] == ["holds", "violated", "unknown", "timeout", "error", "instances"]
    assert table["all"][:6] == ["1", "1", "0", "0", "1", "3"]
    assert table["sat"][:6] == ["0", "1", "0", "0", "1", "2"] and table["unsat"][:6] == ["1", "0", "0", "0", "0", "1"]
    rows = _csv(out)
    assert [r["timeout"] for r in rows] == ["20", "20", "20"]  # the csv keeps the instance's own timeout
    assert [r["result"].split(":")[0] for r in rows] == ["sat", "error", "unsat"]


def test_run_benchmark_cli_filter_limit_and_errors(files, capsys, monkeypatch):
    (files / "instances.csv").write_text("".join(r + "\n" for r in THREE))
    monkeypatch.chdir(files)
    code, stdout, err = run(capsys, "run-benchmark", files, "--filter", "unsat", "--executor", "inline")
    assert code == 0 and "1 instances" in stdout and "property" in stdout
    assert [r["vnnlib"] for r in _csv(files / "results.csv")] == ["unsat.vnnlib"]  # default --out
    code, stdout, _ = run(capsys, "run-benchmark", files, "--limit", "1", "--executor", "inline", "--out", "a.csv",
                          "--stats", "s.jsonl")
    assert code == 0 and [r["result"] for r in _csv(files / "a.csv")] == ["sat"]
    lines = [json.loads(line) for line in (files / "s.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["status"] == "violated" and lines[0]["vnnlib"].endswith("sat.vnnlib")
    assert lines[0]["stats"]["time_s"] > 0 and lines[0]["time_s"] > 0
    code, _, err = run(capsys, "run-benchmark", files / "nowhere")
    assert code == 1 and err.startswith("absint: error: ") and "instances.csv" in err
    code, _, err = run(capsys, "run-benchmark", files, "--jobs", "0")
    assert code == 1 and "--jobs" in err
    code, _, err = run(capsys, "run-benchmark", files, "--executor", "dask")
    assert code == 1 and "--scheduler" in err
    monkeypatch.setitem(sys.modules, "distributed", None)
    code, _, err = run(capsys, "run-benchmark", files, "--executor", "dask", "--scheduler", "tcp://127.0.0.1:1")
    assert code == 1 and "pip install absint[distributed]" in err and len(err.splitlines()) == 1


def test_run_benchmark_cli_ctrl_c(files, capsys, monkeypatch):
    (files / "instances.csv").write_text("".join(r + "\n" for r in THREE))
    real, calls = VERIFY_MODULE.verify, []

    def interrupt_third(net, spec, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second call is the third instance (the second has no network)
            raise KeyboardInterrupt
        return real(net, spec, **kwargs)

    monkeypatch.setattr(VERIFY_MODULE, "verify", interrupt_third)
    code, stdout, err = run(capsys, "run-benchmark", files, "--executor", "inline", "--out", files / "r.csv")
    assert code == 130 and "interrupted" in err
    assert "2 of 3 instances" in stdout
    table = {line.split()[0]: line.split()[1:] for line in stdout.splitlines()[1:] if line.split()}
    assert table["all"][:6] == ["0", "1", "0", "0", "1", "2"]
    assert [r["result"].split(":")[0] for r in _csv(files / "r.csv")] == ["sat", "error"]


# ------------------------------------------------------------------------- vnncomp scripts
def _script_env(tmp_path) -> dict:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["ABSINT_VNNCOMP_RUN_DIR"] = str(tmp_path / "run")
    env["ABSINT_PYTHON"] = sys.executable
    return env


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is needed for the VNN-COMP scripts")
def test_vnncomp_scripts(files):
    env = _script_env(files)
    if shutil.which("absint", path=env["PATH"]) is None:
        env["ABSINT_BIN"] = ""  # fall back to python -m absint.cli
    scripts = REPO / "vnncomp"
    res = files / "out" / "result.txt"
    res.parent.mkdir()
    proc = subprocess.run(["bash", scripts / "run_instance.sh", "v1", "test", files / "id.onnx",
                           files / "sat.vnnlib", res, "30"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    word, x, y = read_result(res)
    assert word == "sat" and 0.5 <= y[0] == x[0] <= 1
    assert not list((files / "run").glob("*.pid"))  # the pid record is removed after the run
    proc = subprocess.run(["bash", scripts / "run_instance.sh", "v1", "test", files / "id.onnx",
                           files / "unsat.vnnlib", res, "30"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and res.read_text() == "unsat\n"
    proc = subprocess.run(["bash", scripts / "run_instance.sh", "v2", "test", "a", "b", "c", "1"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "v1" in proc.stderr
    proc = subprocess.run(["bash", scripts / "run_instance.sh", "v1", "test", files / "missing.onnx",
                           files / "sat.vnnlib", res, "30"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and not res.exists()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is needed for the VNN-COMP scripts")
def test_prepare_instance_stops_recorded_leftovers_only(files):
    env = _script_env(files)
    run_dir = files / "run"
    run_dir.mkdir()
    # a recorded leftover whose command line names absint, and a recorded process that is not absint
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "absint", "verify", "x"])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (run_dir / f"{leftover.pid}.pid").write_text(f"{leftover.pid}\n")
        (run_dir / f"{other.pid}.pid").write_text(f"{other.pid}\n")
        (run_dir / "garbage.pid").write_text("not a pid\n")
        proc = subprocess.run(["bash", REPO / "vnncomp" / "prepare_instance.sh", "v1", "test", files / "id.onnx",
                               files / "sat.vnnlib"], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "kernels ready" in proc.stdout
        assert leftover.wait(timeout=10) is not None
        assert other.poll() is None  # never touched: not an `absint verify` command line
        assert not list(run_dir.glob("*.pid"))
        proc = subprocess.run(["bash", REPO / "vnncomp" / "prepare_instance.sh", "v1", "test",
                               files / "missing.onnx", files / "sat.vnnlib"], env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 1 and "missing.onnx" in proc.stderr
    finally:
        for p in (leftover, other):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_verify_verbose_prints_progress_on_stderr(tmp_path, capsys, monkeypatch):
    """``-v`` prints the search's progress on stderr (here at every check: ``PROGRESS_SECONDS`` 0), stdout
    keeps only the verdict; without it stderr stays empty."""
    from tests.bab.test_search import _net_and_min
    from tests.bab.test_search import _prop as box_prop

    net, lo, hi, m = _net_and_min(0)
    save_onnx(net, tmp_path / "net.onnx", dtype="float64")
    (tmp_path / "p.vnnlib").write_text(box_prop(lo, hi, f"(assert (<= Y_0 {float(m - 0.02)!r}))\n"))
    monkeypatch.setattr(VERIFY_MODULE, "PROGRESS_SECONDS", 0.0)
    code, stdout, err = run(capsys, "verify", tmp_path / "net.onnx", tmp_path / "p.vnnlib", "--method", "bab", "-v")
    assert code == 0 and stdout.startswith("holds (unsat)") and stdout.count("\n") == 1
    lines = err.splitlines()
    assert lines and all(line.startswith("[") and " s] region 1/1: " in line and " boxes, depth " in line
                         for line in lines), err
    assert any("global bound" in line for line in lines)
    code, stdout, err = run(capsys, "verify", tmp_path / "net.onnx", tmp_path / "p.vnnlib", "--method", "bab")
    assert code == 0 and stdout.startswith("holds (unsat)") and err == ""
