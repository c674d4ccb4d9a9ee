"""pytest setup for perf/ (not collected by the normal run: pyproject's testpaths is tests/)."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `tests._bench` and `perf.bench_domains` import from the repo root
    sys.path.insert(0, str(REPO))
