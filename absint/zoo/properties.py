"""VNN-LIB writer for VNN-COMP style L-infinity robustness properties.

Input region: X_i in [max(x_i - eps, clip_lo), min(x_i + eps, clip_hi)] (as ``Box.linf``).
Unsafe region: OR over j != label of Y_j >= Y_label (some other class at least ties).
Numbers are written as the shortest decimal that reads back as the same double (the digits
of ``repr(float)``, without an exponent), so a parser recovers the bounds exactly. Lines are
streamed to the file, so properties of any input size (e.g. 3x224x224) take constant memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from os import PathLike
from typing import IO, TextIO

import numpy as np

__all__ = ["write_linf_property", "format_real", "linf_bounds"]

_CHUNK = 4096  # input variables per write call


def format_real(value: float) -> str:
    """Exact decimal text of a finite double: shortest round-trip digits, positional notation."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"VNN-LIB bounds must be finite, got {value!r}")
    if value == 0.0:
        return "0.0"  # also for -0.0
    text = repr(value)
    return text if "e" not in text else np.format_float_positional(value, unique=True, trim="0")


def linf_bounds(x, eps: float, clip: tuple[float, float] | None = (0.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """Flat lower/upper bounds of the L-inf ball of radius eps around x, clipped to ``clip``."""
    x = np.asarray(x, dtype=np.float64).ravel()
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    lo, hi = x - eps, x + eps
    if clip is not None:
        lo, hi = np.clip(lo, *clip), np.clip(hi, *clip)
    return lo, hi


@contextmanager
def _text_sink(path_or_file: str | PathLike | TextIO) -> Iterator[IO[str]]:
    if hasattr(path_or_file, "write"):
        yield path_or_file
    else:
        with open(path_or_file, "w", encoding="ascii", newline="\n") as fh:
            yield fh


def _header_lines(comment: str | None, n_inputs: int, n_outputs: int, eps: float, label: int) -> Iterable[str]:
    text = comment if comment is not None else "L-infinity robustness property"
    for line in text.splitlines() or [""]:
        yield f"; {line}\n"
    yield f"; inputs: {n_inputs}, outputs: {n_outputs}, eps: {format_real(eps)}, label: {label}\n\n"


def _declarations(prefix: str, n: int) -> Iterator[str]:
    for i in range(n):
        yield f"(declare-const {prefix}_{i} Real)\n"


def _input_bounds(lo: np.ndarray, hi: np.ndarray) -> Iterator[str]:
    for start in range(0, lo.size, _CHUNK):
        block = zip(lo[start:start + _CHUNK].tolist(), hi[start:start + _CHUNK].tolist())
        for i, (a, b) in enumerate(block, start):
            yield f"(assert (<= X_{i} {format_real(b)}))\n(assert (>= X_{i} {format_real(a)}))\n"


def _unsafe_output(label: int, n_outputs: int) -> Iterator[str]:
    yield "(assert (or\n"
    for j in range(n_outputs):
        if j != label:
            yield f"    (and (>= Y_{j} Y_{label}))\n"
    yield "))\n"


def _write_chunked(fh: IO[str], lines: Iterable[str]) -> None:
    buf: list[str] = []
    for line in lines:
        buf.append(line)
        if len(buf) >= _CHUNK:
            fh.writelines(buf)
            buf.clear()
    fh.writelines(buf)


def write_linf_property(path_or_file: str | PathLike | TextIO, x, eps: float, label: int, n_outputs: int,
                        clip: tuple[float, float] | None = (0.0, 1.0), comment: str | None = None) -> None:
    """Write the property "the class stays ``label`` on the clipped L-inf ball of radius eps around x".

    ``x`` is flattened in C order (X_i is ``x.ravel()[i]``); the file states the unsafe
    region (another output >= Y_label), as VNN-COMP benchmarks do.
    """
    label = int(label)
    if n_outputs < 2 or not 0 <= label < n_outputs:
        raise ValueError(f"need n_outputs >= 2 and 0 <= label < n_outputs, got label {label}, "
                         f"n_outputs {n_outputs}")
    lo, hi = linf_bounds(x, eps, clip)
    with _text_sink(path_or_file) as fh:
        _write_chunked(fh, _header_lines(comment, lo.size, n_outputs, eps, label))
        _write_chunked(fh, _declarations("X", lo.size))
        fh.write("\n")
        _write_chunked(fh, _declarations("Y", n_outputs))
        fh.write("\n; input region\n")
        _write_chunked(fh, _input_bounds(lo, hi))
        fh.write(f"\n; unsafe: some output j != {label} is at least Y_{label}\n")
        _write_chunked(fh, _unsafe_output(label, n_outputs))
