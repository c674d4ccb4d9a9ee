"""VNN-COMP plumbing: result files, ``instances.csv``, and a benchmark runner (one fresh process per instance).

Result file: the first line is the verdict word (sat / unsat / unknown / timeout); after ``sat``
the checked counterexample follows as an assignment ``((X_0 v)`` / `` (X_i v)`` / `` (Y_j v))``,
floats written with ``repr`` so they read back bit for bit.

``run_benchmark`` runs every instance of a VNN-COMP folder with its own timeout (times a scale)
in a fresh worker process, kills a worker that overruns ``timeout * 1.1 + 10`` s, re-checks every
counterexample in the parent (x in the box, ``net.forward(x)`` unsafe), and writes ``results.csv``.
"""

from __future__ import annotations

import csv
import gzip
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import AbsintError

#: VNN-COMP result words, and the verdict status each stands for
RESULT_WORDS = ("sat", "unsat", "unknown", "timeout")
STATUS_OF_RESULT = {"sat": "violated", "unsat": "holds", "unknown": "unknown", "timeout": "timeout"}
#: statuses counted by the summary, in display order
SUMMARY_STATUSES = ("holds", "violated", "unknown", "timeout", "error")
#: results.csv columns
CSV_COLUMNS = ("onnx", "vnnlib", "timeout", "result", "time_s", "counterexample_checked")
#: the parent kills a worker after ``timeout * GUARD_FACTOR + slack`` seconds
GUARD_FACTOR = 1.1
GUARD_SLACK_S = 10.0
UNCHECKED = "unchecked counterexample"


class MissingDependencyError(AbsintError, ImportError):
    """An optional dependency (e.g. ``distributed`` for the dask executor) is not installed."""


# ------------------------------------------------------------------------------ result files
def format_result(word: str, x=None, y=None) -> str:
    """The text of a result file: ``word`` and, for sat, the assignment of every X_i and Y_j."""
    if word not in RESULT_WORDS:
        raise ValueError(f"result word must be one of {', '.join(RESULT_WORDS)}, got {word!r}")
    if word != "sat":
        return word + "\n"
    if x is None or y is None:
        raise ValueError("a sat result needs the counterexample (x, y)")
    pairs = [f"X_{i} {float(v)!r}" for i, v in enumerate(np.asarray(x, np.float64).ravel())]
    pairs += [f"Y_{j} {float(v)!r}" for j, v in enumerate(np.asarray(y, np.float64).ravel())]
    lines = [("(" if k == 0 else " ") + f"({p})" for k, p in enumerate(pairs)]
    lines[-1] += ")"
    return "sat\n" + "\n".join(lines) + "\n"


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path`` (never a partial file)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent if str(path.parent) else ".")
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_result(path, verdict, n_inputs: int | None = None) -> None:
    """Write ``verdict`` (an ``absint.Verdict``) as a VNN-COMP result file, atomically.

    ``n_inputs`` (the network's input size) is checked against the counterexample when given."""
    x = y = None
    if verdict.result == "sat":
        if verdict.counterexample is None:
            raise ValueError("a violated verdict without a counterexample cannot be written as sat")
        x, y = verdict.counterexample
        if n_inputs is not None and np.asarray(x).size != n_inputs:
            raise ValueError(f"the counterexample has {np.asarray(x).size} inputs, the network {n_inputs}")
    atomic_write_text(path, format_result(verdict.result, x, y))


def parse_result(text: str, source: str = "<result>") -> tuple[str, np.ndarray | None, np.ndarray | None]:
    """(word, x, y) of a result file's text; x and y are flat float64 arrays for sat, else None."""
    lines = text.strip().splitlines()
    if not lines:
        raise ValueError(f"{source}: empty result file")
    word = lines[0].strip()
    if word in ("holds", "violated"):  # the VNN-COMP 2023+ synonyms
        word = {"holds": "unsat", "violated": "sat"}[word]
    if word not in RESULT_WORDS:
        raise ValueError(f"{source}: line 1: expected one of {', '.join(RESULT_WORDS)}, got {word!r}")
    if word != "sat":
        return word, None, None
    body = " ".join(lines[1:]).replace("(", " ( ").replace(")", " ) ").split()
    values: dict[str, dict[int, float]] = {"X": {}, "Y": {}}
    i = 0
    while i < len(body):
        tok = body[i]
        if tok in ("(", ")"):
            i += 1
            continue
        name, _, idx = tok.partition("_")
        if name not in values or not idx.isdigit() or i + 1 >= len(body):
            raise ValueError(f"{source}: cannot read the assignment near {tok!r}")
        try:
            values[name][int(idx)] = float(body[i + 1])
        except ValueError:
            raise ValueError(f"{source}: {tok}: not a number: {body[i + 1]!r}") from None
        i += 2
    arrays = []
    for name in ("X", "Y"):
        got = values[name]
        if sorted(got) != list(range(len(got))) or not got:
            raise ValueError(f"{source}: the sat assignment must give {name}_0 .. {name}_n without gaps")
        arrays.append(np.array([got[k] for k in range(len(got))], np.float64))
    return word, arrays[0], arrays[1]


def read_result(path) -> tuple[str, np.ndarray | None, np.ndarray | None]:
    """(word, x, y) of a VNN-COMP result file (see ``parse_result``)."""
    return parse_result(Path(path).read_text(), str(path))


# ---------------------------------------------------------------------------- instances.csv
@dataclass(frozen=True)
class Instance:
    """One benchmark instance: the network, the property (absolute paths) and its timeout in seconds."""

    onnx: Path
    vnnlib: Path
    timeout: float
    onnx_rel: str = ""
    vnnlib_rel: str = ""

    @property
    def name(self) -> str:
        """``<network stem> <property stem>`` for progress lines."""
        return f"{_stem(self.onnx)} {_stem(self.vnnlib)}"


def _stem(p: Path) -> str:
    name = p.name
    for suffix in (".gz", ".onnx", ".vnnlib"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def read_instances(directory, check_files: bool = False) -> list[Instance]:
    """The rows ``onnx,vnnlib,timeout`` of ``directory/instances.csv`` (paths relative to the folder).

    Raises FileNotFoundError without the csv (or, with ``check_files``, a missing network/property)
    and ValueError naming the line of a malformed row."""
    directory = Path(directory)
    csv_path = directory / "instances.csv" if directory.is_dir() or not directory.suffix else directory
    if csv_path.suffix == ".csv":
        directory = csv_path.parent
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: no such file (a VNN-COMP benchmark folder has an instances.csv)")
    out = []
    with open(csv_path, newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            cells = [c.strip() for c in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if len(cells) != 3 or not cells[0] or not cells[1]:
                raise ValueError(f"{csv_path}:{lineno}: expected 'onnx_path,vnnlib_path,timeout', got {row!r}")
            try:
                timeout = float(cells[2])
            except ValueError:
                raise ValueError(f"{csv_path}:{lineno}: timeout {cells[2]!r} is not a number") from None
            if not (timeout > 0 and math.isfinite(timeout)):
                raise ValueError(f"{csv_path}:{lineno}: timeout must be a positive number, got {cells[2]!r}")
            inst = Instance(_resolve(directory / cells[0]), _resolve(directory / cells[1]), timeout, cells[0], cells[1])
            if check_files:
                for p in (inst.onnx, inst.vnnlib):
                    if not p.is_file():
                        raise FileNotFoundError(f"{csv_path}:{lineno}: {p}: no such file")
            out.append(inst)
    return out


def _resolve(p: Path) -> Path:
    """``p``, or ``p.gz`` when only the gzipped file is there (VNN-COMP repositories ship both ways)."""
    if not p.exists() and p.with_name(p.name + ".gz").exists():
        return p.with_name(p.name + ".gz")
    return p


# --------------------------------------------------------------------------- one instance
def load_network(path):
    """``absint.load_onnx`` that also reads ``.onnx.gz``."""
    from .onnx_import import load_onnx, network_from_model

    path = Path(path)
    if path.suffix != ".gz":
        return load_onnx(path)
    import onnx

    from .errors import ModelFormatError

    try:
        with gzip.open(path, "rb") as fh:
            model = onnx.load_from_string(fh.read())
    except (OSError, ValueError, EOFError) as exc:
        raise ModelFormatError(f"{path}: not a readable gzipped ONNX model: {type(exc).__name__}: {exc}") from None
    return network_from_model(model, name=path.name[:-3])


def run_instance(onnx_path: str, vnnlib_path: str, timeout: float, options: dict | None = None) -> dict:
    """Load and verify one instance; a dict (status, result, time_s, counterexample, stats, error).

    Never raises for a bad instance: the error becomes ``status == "error"`` with its message."""
    t0 = time.perf_counter()
    options = dict(options or {})
    try:
        from .verify import verify
        from .vnnlib import load_vnnlib

        net = load_network(onnx_path)
        spec = load_vnnlib(vnnlib_path, net)
        remaining = max(float(timeout) - (time.perf_counter() - t0), 0.0)
        v = verify(net, spec, timeout=remaining, **options)
        cex = None
        if v.counterexample is not None:
            cex = (np.asarray(v.counterexample[0], np.float64).ravel(),
                   np.asarray(v.counterexample[1], np.float64).ravel())
        return {"status": v.status, "result": v.result, "time_s": time.perf_counter() - t0,
                "counterexample": cex, "stats": dict(v.stats), "error": ""}
    except Exception as exc:  # one bad instance must not stop a benchmark run
        return {"status": "error", "result": "error", "time_s": time.perf_counter() - t0,
                "counterexample": None, "stats": {}, "error": f"{type(exc).__name__}: {exc}"}


def check_counterexample(onnx_path, vnnlib_path, x, y=None) -> tuple[bool, str]:
    """Re-check (x, y): x lies in a region's box and ``net.forward(x)`` is unsafe there; (ok, reason)."""
    from .vnnlib import load_vnnlib

    net = load_network(onnx_path)
    spec = load_vnnlib(vnnlib_path, net)
    x = np.asarray(x, np.float64).ravel()
    if x.size != net.input_size:
        return False, f"the counterexample has {x.size} inputs, the network {net.input_size}"
    if not np.all(np.isfinite(x)):
        return False, "the counterexample is not finite"
    y_net = net.forward(x.reshape((1,) + tuple(net.input_shape)))[0]
    if not bool(spec.is_counterexample(x, y_net)):
        return False, "net.forward(x) is not in the unsafe set (or x is outside the input box)"
    return True, ""


# ---------------------------------------------------------------------------- the runner
@dataclass
class InstanceResult:
    """One finished instance: status (holds/violated/unknown/timeout/error), the VNN-COMP result cell, time."""

    instance: Instance
    status: str
    result: str
    time_s: float
    error: str = ""
    counterexample_checked: bool | None = None
    stats: dict = field(default_factory=dict)

    def csv_row(self) -> list[str]:
        checked = "" if self.counterexample_checked is None else str(self.counterexample_checked).lower()
        result = f"error: {self.error}" if self.status == "error" else self.result
        return [self.instance.onnx_rel or str(self.instance.onnx), self.instance.vnnlib_rel or str(self.instance.vnnlib),
                f"{self.instance.timeout:g}", result, f"{self.time_s:.3f}", checked]


class BenchmarkInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``run_benchmark``: ``rows`` holds the finished instances (also written to the csv)."""

    def __init__(self, rows: list[InstanceResult], total: int):
        super().__init__(f"interrupted after {len(rows)} of {total} instances")
        self.rows = rows
        self.total = total


def _finish(inst: Instance, out: dict) -> InstanceResult:
    """A worker's dict as an ``InstanceResult``; a sat result is re-checked here, in the parent."""
    status, result, error = out["status"], out["result"], out.get("error", "")
    checked = None
    if status == "violated":
        cex = out.get("counterexample")
        try:
            ok, why = (False, "no counterexample") if cex is None else check_counterexample(
                inst.onnx, inst.vnnlib, cex[0], cex[1])
        except Exception as exc:
            ok, why = False, f"{type(exc).__name__}: {exc}"
        checked = ok
        if not ok:
            status, result, error = "error", "error", f"{UNCHECKED} ({why})"
    return InstanceResult(inst, status, result, float(out.get("time_s", 0.0)), error, checked,
                          dict(out.get("stats") or {}))


def _timeout_result(inst: Instance, elapsed: float, why: str) -> InstanceResult:
    return InstanceResult(inst, "timeout", "timeout", elapsed, "", None, {"killed": why})


def write_results_csv(path, rows: Sequence[InstanceResult]) -> None:
    """results.csv (columns ``CSV_COLUMNS``), written atomically."""
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow(r.csv_row())
    atomic_write_text(path, buf.getvalue())


def run_benchmark(directory, timeout_scale: float = 1.0, jobs: int = 1, out=None, domain: str = "deeppoly",
                  progress: Callable[[int, int, InstanceResult], None] | None = None, executor: str = "local",
                  scheduler: str | None = None, *, limit: int | None = None, filter: str | None = None,
                  options: dict | None = None, guard_slack: float = GUARD_SLACK_S,
                  instances: Sequence[Instance] | None = None) -> list[InstanceResult]:
    """Verify every instance of ``directory/instances.csv``; rows in csv order, also written to ``out``.

    ``executor``: "local" (a fresh process per instance, ``jobs`` at a time, each killed after
    ``timeout * 1.1 + guard_slack`` s), "dask" (a ``distributed.Client`` at ``scheduler``), or
    "inline" (this process, one by one: for debugging and tests). ``limit``/``filter`` select the
    first N instances / those whose paths contain a substring. ``options`` go to ``absint.verify``."""
    if timeout_scale <= 0:
        raise ValueError(f"--timeout-scale must be positive, got {timeout_scale}")
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    todo = list(instances) if instances is not None else read_instances(directory)
    if filter:
        todo = [i for i in todo if filter in (i.onnx_rel or str(i.onnx)) or filter in (i.vnnlib_rel or str(i.vnnlib))]
    if limit is not None:
        todo = todo[:max(int(limit), 0)]
    opts = {"domain": domain, **(options or {})}
    tasks = [(inst, inst.timeout * timeout_scale) for inst in todo]
    done: dict[int, InstanceResult] = {}

    def record(k: int, res: InstanceResult) -> None:
        done[k] = res
        if progress is not None:
            progress(len(done), len(tasks), res)

    runners = {"local": _run_local, "dask": _run_dask, "inline": _run_inline}
    if executor not in runners:
        raise ValueError(f"unknown executor {executor!r}: use local, dask or inline")
    try:
        if executor == "dask":
            _run_dask(tasks, opts, record, guard_slack, scheduler)
        else:
            runners[executor](tasks, opts, record, guard_slack, jobs)
    except KeyboardInterrupt:
        rows = [done[k] for k in sorted(done)]
        if out is not None:
            write_results_csv(out, rows)
        raise BenchmarkInterrupted(rows, len(tasks)) from None
    rows = [done[k] for k in sorted(done)]
    if out is not None:
        write_results_csv(out, rows)
    return rows


def _run_inline(tasks, opts, record, guard_slack, jobs) -> None:
    for k, (inst, timeout) in enumerate(tasks):
        record(k, _finish(inst, run_instance(str(inst.onnx), str(inst.vnnlib), timeout, opts)))


def _child(conn, onnx_path: str, vnnlib_path: str, timeout: float, opts: dict, threads: int) -> None:
    """Worker process body: run one instance with at most ``threads`` BLAS/numba threads, send its dict."""
    from .threads import thread_budget

    try:
        with thread_budget(threads):
            conn.send(run_instance(onnx_path, vnnlib_path, timeout, opts))
    except KeyboardInterrupt:
        pass
    finally:
        conn.close()


def _mp_context():
    """forkserver where available (cheap starts, and no fork of a parent running numba threads), else spawn."""
    import multiprocessing as mp

    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        # onnx itself too: importing it takes ~0.7 s, which each instance's time would otherwise count;
        # warm_start loads numba's compiler (~0.3 s per process at its first kernel call otherwise)
        ctx.set_forkserver_preload(["absint.vnncomp", "absint.verify", "absint.vnnlib", "absint.onnx_import", "onnx",
                                    "absint.warm_start"])
        return ctx
    return mp.get_context("spawn")


def _stop(proc) -> None:
    """Terminate a worker, then kill it if it does not exit within a second."""
    if proc.is_alive():
        proc.terminate()
        proc.join(1.0)
    if proc.is_alive():
        proc.kill()
        proc.join(1.0)


def _run_local(tasks, opts, record, guard_slack, jobs) -> None:
    """A fresh process per instance, at most ``jobs`` at once; overrunning workers are killed."""
    from multiprocessing.connection import wait

    from .threads import cores

    ctx = _mp_context()
    threads = max(1, cores() // jobs)  # jobs x threads never oversubscribes the machine
    pending = list(enumerate(tasks))[::-1]
    running: dict = {}  # conn -> (k, inst, proc, start, deadline)
    try:
        while pending or running:
            while pending and len(running) < jobs:
                k, (inst, timeout) = pending.pop()
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_child, args=(send, str(inst.onnx), str(inst.vnnlib), timeout, opts, threads),
                                   name=f"absint-{inst.name}", daemon=True)
                start = time.monotonic()
                # registered before it starts: a Ctrl-C during start() still stops it in the finally below
                running[recv] = (k, inst, proc, start, start + timeout * GUARD_FACTOR + guard_slack)
                proc.start()
                # the guard counts from the worker's start, not from the forkserver's own first start-up
                start = time.monotonic()
                running[recv] = (k, inst, proc, start, start + timeout * GUARD_FACTOR + guard_slack)
                send.close()
            now = time.monotonic()
            wait_s = max(0.0, min(v[4] for v in running.values()) - now)
            ready = wait(list(running), timeout=min(wait_s, 1.0))
            for conn in ready:
                k, inst, proc, start, _ = running.pop(conn)
                try:
                    out = conn.recv()
                except (EOFError, OSError):
                    proc.join(1.0)
                    out = {"status": "error", "result": "error", "time_s": time.monotonic() - start,
                           "error": f"the worker process died (exit code {proc.exitcode})"}
                conn.close()
                proc.join(5.0)  # let it exit cleanly (terminating during its shutdown can leak resources)
                _stop(proc)
                record(k, _finish(inst, out))
            now = time.monotonic()
            for conn in [c for c, v in running.items() if now > v[4]]:
                k, inst, proc, start, _ = running.pop(conn)
                _stop(proc)
                conn.close()
                record(k, _timeout_result(inst, now - start, "hard wall-clock guard"))
    finally:  # Ctrl-C or an error: no worker survives the run
        for conn, (_, _, proc, _, _) in running.items():
            _stop(proc)
            conn.close()


def _run_dask(tasks, opts, record, guard_slack, scheduler) -> None:
    """Submit ``run_instance`` per instance to a Dask distributed scheduler.

    Dask workers are not killed: when no result arrives for ``max timeout * 1.1 + guard_slack`` s,
    every unfinished instance is recorded as a timeout and its task cancelled."""
    try:
        from distributed import Client, wait
    except ImportError:
        raise MissingDependencyError("the dask executor needs the 'distributed' package: pip install absint[distributed]") from None
    if not scheduler:
        raise ValueError("the dask executor needs --scheduler ADDRESS (e.g. tcp://host:8786)")
    own_client = not isinstance(scheduler, Client)
    client = Client(scheduler) if own_client else scheduler  # an address, a cluster object, or a Client
    import uuid

    futures = {}
    run_id = uuid.uuid4().hex[:8]  # keys unique per run: a scheduler may still hold an earlier run's tasks
    try:
        for k, (inst, timeout) in enumerate(tasks):
            f = client.submit(run_instance, str(inst.onnx), str(inst.vnnlib), timeout, opts, pure=False,
                              key=f"absint-{run_id}-{k}-{inst.name.replace(' ', '-')}")
            futures[f] = (k, inst)
        guard = max((t for _, t in tasks), default=0.0) * GUARD_FACTOR + guard_slack
        remaining = set(futures)
        while remaining:
            t0 = time.monotonic()
            try:
                finished, _ = wait(list(remaining), timeout=guard, return_when="FIRST_COMPLETED")
            except TimeoutError:
                for f in remaining:
                    k, inst = futures[f]
                    f.cancel()
                    record(k, _timeout_result(inst, time.monotonic() - t0, "no result from the dask cluster in time"))
                break
            for f in finished:
                remaining.discard(f)
                k, inst = futures[f]
                try:
                    out = f.result()
                except Exception as exc:
                    out = {"status": "error", "result": "error", "time_s": 0.0,
                           "error": f"{type(exc).__name__}: {exc}"}
                record(k, _finish(inst, out))
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
        if own_client:
            client.close()


# ------------------------------------------------------------------------------- summaries
def summary_table(rows: Sequence[InstanceResult]) -> tuple[list[str], list[list[object]]]:
    """Headers and rows: per property file (when there are several) and in total, the count of each
    status, the number of instances, and the total and median time."""
    headers = ["property", *SUMMARY_STATUSES, "instances", "total s", "median s"]

    def line(label: str, rs: Sequence[InstanceResult]) -> list[object]:
        times = [r.time_s for r in rs]
        return [label, *(sum(r.status == s for r in rs) for s in SUMMARY_STATUSES), len(rs),
                round(sum(times), 2), round(statistics.median(times), 3) if times else 0.0]

    by_prop: dict[str, list[InstanceResult]] = {}
    for r in rows:
        by_prop.setdefault(_stem(r.instance.vnnlib), []).append(r)
    table = []
    if len(by_prop) > 1:
        for prop in sorted(by_prop, key=_natural_key):
            table.append(line(prop, by_prop[prop]))
    table.append(line("all", rows))
    return headers, table


def _natural_key(s: str):
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


__all__ = ["Instance", "InstanceResult", "BenchmarkInterrupted", "format_result", "parse_result", "write_result",
           "read_result", "read_instances", "run_instance", "run_benchmark", "check_counterexample",
           "write_results_csv", "summary_table", "load_network", "CSV_COLUMNS"]
