"""kernels.warmup compiles every kernel of every kernels submodule."""

from __future__ import annotations

import importlib
import pkgutil

from numba.core.dispatcher import Dispatcher

import kernels


def _submodules():
    return [importlib.import_module(f"kernels.{m.name}") for m in pkgutil.iter_modules(kernels.__path__)]


def test_every_kernel_compiled():
    seconds = kernels.warmup()
    assert isinstance(seconds, float) and seconds >= 0.0
    missing = []
    for module in _submodules():
        for name, obj in vars(module).items():
            # private helpers (leading underscore) are compiled inside the kernels that call them
            if (isinstance(obj, Dispatcher) and not name.startswith("_") and obj.__module__ == module.__name__
                    and not obj.signatures):
                missing.append(f"{module.__name__}.{name}")
    assert not missing, f"kernels not compiled by their module's _warmup(): {missing}"


def test_my_modules_have_warmup():
    for name in ("conv", "interval", "relu", "reductions", "patterns", "batch_backsub"):
        assert callable(getattr(importlib.import_module(f"kernels.{name}"), "_warmup", None)), name


def test_compile_seconds_once():
    first = kernels.compile_seconds()
    assert first >= 0.0
    assert kernels.compile_seconds() == 0.0
