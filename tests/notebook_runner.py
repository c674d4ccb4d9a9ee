"""Execute a notebook's code cells in one namespace, capturing each cell's output (no Jupyter needed)."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path


def run_notebook(path, cwd=None, write_outputs: bool = False) -> list[str]:
    """Run every code cell of ``path`` in order (cwd: ``cwd``); returns the printed text per code cell.

    With ``write_outputs`` the captured text is stored in the notebook as stream outputs.
    """
    path = Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    namespace: dict = {"__name__": "__main__"}
    texts = []
    old = Path.cwd()
    os.chdir(cwd or path.parent)
    try:
        count = 0
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            count += 1
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                exec(compile("".join(cell["source"]), f"{path.name}[cell {count}]", "exec"), namespace)
            texts.append(buf.getvalue())
            if write_outputs:
                cell["execution_count"] = count
                cell["outputs"] = ([{"name": "stdout", "output_type": "stream",
                                     "text": buf.getvalue().splitlines(True)}] if buf.getvalue() else [])
    finally:
        os.chdir(old)
    if write_outputs:
        path.write_text(json.dumps(nb, indent=1) + "\n", encoding="utf-8")
    return texts


if __name__ == "__main__":  # python -m tests.notebook_runner NOTEBOOK: run it and store the outputs
    import sys

    for text in run_notebook(sys.argv[1], write_outputs=True):
        print(text)
