"""`absint demo`: runs the bundled networks and properties with no arguments and reports every verdict."""

from __future__ import annotations

import re

from absint import zoo
from absint.cli import main


def test_demo_reports_widths_and_a_verdict_per_bundled_property(capsys):
    assert main(["demo", "--samples", "200", "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    for prop in zoo.manifest()["properties"]:
        line = next(l for l in out.splitlines() if l.startswith(prop["file"]))
        verdict = re.search(r"(holds|violated|unknown|timeout) \(", line)
        assert verdict, line
        widths = [float(w) for w in re.findall(r"\s([0-9.e+-]+) \(\d+ ms", line)]
        assert len(widths) == 3 and widths[0] >= widths[1] and widths[0] >= widths[2], line
