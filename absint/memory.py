"""Peak resident-memory growth of a piece of work, sampled by a background thread."""

from __future__ import annotations

import threading

import psutil

_PROCESS = psutil.Process()


class RssSampler:
    """``with RssSampler() as s: ...`` then ``s.peak_growth``: max RSS minus RSS at entry, in bytes.

    A daemon thread reads the RSS every ``interval`` seconds (psutil, ~20 µs a read), so transient
    arrays freed inside a step (back-substitution blocks, im2col buffers) are seen; ``sample()``
    adds a reading from the calling thread (cheap checkpoints between steps). With ``thread=False``
    only those checkpoints count (for work too small for transients to matter, where starting a
    thread would cost more than the work).
    """

    def __init__(self, interval: float = 0.002, thread: bool = True):
        self.interval = interval
        self.thread = thread
        self.start_rss = 0
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        rss = _PROCESS.memory_info().rss
        if rss > self.peak_rss:
            self.peak_rss = rss

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    @property
    def peak_growth(self) -> int:
        return max(0, int(self.peak_rss - self.start_rss))

    def start(self) -> "RssSampler":
        self.start_rss = self.peak_rss = _PROCESS.memory_info().rss
        if self.thread:
            self._thread = threading.Thread(target=self._loop, name="absint-rss-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def __enter__(self) -> "RssSampler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
