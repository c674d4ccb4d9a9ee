"""Shared measurement helpers of the perf scripts: RSS sampling, ru_maxrss, fresh child processes.

* ``RssSampler``: largest RSS growth ``max_t rss(t) - rss(t0)`` seen by a daemon thread polling
  psutil every ``period`` seconds (default 2 ms) while the ``with`` block runs.
* ``maxrss_bytes()``: the process's high-water mark (VmHWM on Linux, else
  ``getrusage(RUSAGE_SELF).ru_maxrss``), so ``maxrss_bytes() - rss_at_start`` bounds a run's growth from above;
  ``reset_peak_rss()`` first lowers the mark to the current RSS (Linux >= 4.0, writing 5 to
  /proc/self/clear_refs), which makes the difference the kernel's exact peak growth of the run.
* ``run_child(cmd, tag, timeout)``: runs ``cmd`` in a fresh interpreter and returns the JSON object
  the child printed on a line starting with ``tag``; a dict with ``status`` "timeout" or "crash"
  (and ``error``) otherwise, so one out-of-memory kill or hang only loses that measurement.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


class RssSampler:
    """Largest RSS growth over ``base`` seen by a daemon thread polling psutil every ``period`` s."""

    def __init__(self, period: float = 0.002):
        import psutil

        self._proc, self._period = psutil.Process(), period
        self._stop, self._started = threading.Event(), threading.Event()
        self.base = self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, name="perf-rss-sampler", daemon=True)

    def _run(self) -> None:
        self._started.set()
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(self._period)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        self._started.wait()
        self._stop.wait(2 * self._period)  # the thread's own stack is touched: not the measured work's memory
        self.base = self.peak = self._proc.memory_info().rss
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def growth(self) -> int:
        return int(self.peak - self.base)


def rss_bytes() -> int:
    """The current resident set size of this process."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def maxrss_bytes() -> int:
    """This process's peak RSS so far: VmHWM of /proc/self/status on Linux, else ``ru_maxrss``.

    VmHWM is the memory map's high-water mark, which ``reset_peak_rss`` lowers; ``ru_maxrss`` also keeps
    the marks of threads that have exited (e.g. library worker threads), which no reset clears.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark (ru_maxrss, VmHWM) to the current RSS; False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def trim_heap() -> bool:
    """Return freed heap memory to the OS (glibc ``malloc_trim(0)``), so that memory freed by earlier work
    in this process is not silently reused by the measured run (which would hide its growth)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.malloc_trim(0) or True)
    except (OSError, AttributeError):
        return False


def child_env(threads: int | None = None) -> dict:
    """The environment of a child process, with the BLAS/numba thread counts pinned if asked."""
    env = dict(os.environ)
    if threads is not None:
        env.update({k: str(threads) for k in THREAD_VARS})
    return env


def run_child(cmd: list[str], tag: str, timeout: float | None, cwd: str | None = None,
              threads: int | None = None) -> dict:
    """The JSON object printed by ``cmd`` after ``tag``; {"status": "timeout"|"crash", "error": ...} else."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=child_env(threads))
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "error": f"timeout after {timeout:g} s"}
    for line in proc.stdout.splitlines():
        if line.startswith(tag):
            return json.loads(line[len(tag):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    code = proc.returncode
    why = f"killed by signal {-code}" if code < 0 else f"exit {code}"
    return {"status": "crash", "error": f"{why}: {tail[:160]}"}


def times_ms(fn, repeat: int) -> list[float]:
    """Wall times of ``repeat`` calls of fn(), in milliseconds (after one untimed warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - t0))
    return times
