"""numba kernels over plain arrays (no imports from absint/).

``warmup()`` compiles every kernel: it calls ``_warmup()`` of each submodule that defines one.
"""

import importlib
import pkgutil
import time

__all__ = ["warmup", "compile_seconds"]

_first_warmup_seconds = None


def warmup() -> float:
    """Compile (or load from numba's cache) every kernel on tiny inputs; returns the seconds spent."""
    global _first_warmup_seconds
    t0 = time.perf_counter()
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        fn = getattr(module, "_warmup", None)
        if callable(fn):
            fn()
    seconds = time.perf_counter() - t0
    if _first_warmup_seconds is None:
        _first_warmup_seconds = seconds
    return seconds


def compile_seconds() -> float:
    """Seconds the first warmup of this process took (running it now if none ran yet); 0.0 on later calls."""
    global _first_warmup_seconds
    if _first_warmup_seconds is None:
        warmup()
    seconds, _first_warmup_seconds = _first_warmup_seconds, 0.0
    return seconds
