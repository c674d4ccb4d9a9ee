"""Shared fixtures; benchmark discovery lives in ``tests._bench``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._bench import NO_BENCHMARKS, benchmarks_dir


@pytest.fixture(scope="session")
def benchmarks() -> Path:
    """The benchmark folder; skips the test with a reason when it is absent."""
    root = benchmarks_dir()
    if root is None:
        pytest.skip(NO_BENCHMARKS)
    return root
