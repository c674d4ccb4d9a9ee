"""Runs over many images and their summaries: counts per level and status, per-image CSV rows."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from ..network import Network
from .format import Hierarchy
from .images import ImageFormat
from .safety import HierarchyOptions, HierarchyResult, Status, verify

__all__ = ["verify_images", "level_counts", "summary_table", "per_image_rows", "write_per_image_csv",
           "level_groups_text"]

Progress = Callable[[int, int, HierarchyResult], None]


def verify_images(net: Network, hierarchy: Hierarchy, fmt: ImageFormat, labels: np.ndarray, values: np.ndarray,
                  eps: float, domain: str = "deeppoly", options: HierarchyOptions | None = None,
                  progress: Progress | None = None) -> list[HierarchyResult]:
    """``verify`` for each CSV image (values in CSV order) with an L-inf ball of ``eps`` in scaled pixels."""
    hierarchy.check_outputs(net.output_size)
    bad = np.flatnonzero((labels < 0) | (labels >= hierarchy.n_classes))
    if bad.size:
        raise ValueError(f"image {int(bad[0])} has label {int(labels[bad[0]])}, the hierarchy has "
                         f"{hierarchy.n_classes} classes (0..{hierarchy.n_classes - 1})")
    pixels = fmt.pixels(values)
    results = []
    for k, (label, p) in enumerate(zip(labels, pixels)):
        r = verify(net, fmt.normalise(p), int(label), box=fmt.linf_box(p, eps), hierarchy=hierarchy,
                   domain=domain, options=options)
        results.append(r)
        if progress is not None:
            progress(k + 1, len(labels), r)
    return results


def level_counts(hierarchy: Hierarchy, results: Iterable[HierarchyResult]) -> dict[int, dict[Status, int]]:
    """Level -> status -> number of images."""
    counts = {lv: {s: 0 for s in Status} for lv in hierarchy.levels}
    for r in results:
        for res in r.levels:
            counts[res.level][res.status] += 1
    return counts


def level_groups_text(hierarchy: Hierarchy, level: int, limit: int = 4) -> str:
    """The groups of a level, e.g. 'vehicle, animal' or 'mammal, non-mammal + 4 single classes'."""
    if level == 0:
        return "(exact class)"
    parts = hierarchy.partition(level)
    named = [n for n, ks in parts.items() if not (ks.size == 1 and hierarchy.classes[ks[0]] == n)]
    single = len(parts) - len(named)
    text = ", ".join(named[:limit]) + (f" +{len(named) - limit}" if len(named) > limit else "")
    return text + (f" + {single} single class{'es' if single > 1 else ''}" if single else "")


def summary_table(hierarchy: Hierarchy, results: Sequence[HierarchyResult]) -> tuple[list[str], list[list]]:
    """Headers and one row per level: groups, counts of robust / safe / unsafe / unknown, abstract-safe."""
    counts = level_counts(hierarchy, results)
    rows = []
    for lv in hierarchy.levels:
        c = counts[lv]
        rows.append([lv, level_groups_text(hierarchy, lv)] + [c[s] for s in Status]
                    + [c[Status.ROBUST] + c[Status.SAFE]])
    return ["level", "groups"] + [s.value for s in Status] + ["abstract-safe"], rows


def per_image_rows(hierarchy: Hierarchy, results: Sequence[HierarchyResult]) -> tuple[list[str], list[list]]:
    """Headers and one row per image: label, prediction, per level group / status / lower bound, seconds."""
    headers = ["image", "label", "prediction"]
    for lv in hierarchy.levels:
        headers += [f"level{lv}_group", f"level{lv}_status", f"level{lv}_lower_bound"]
    headers += ["abstract_only", "time_s"]
    rows = []
    for k, r in enumerate(results):
        row: list = [k, r.label, r.prediction]
        for res in r.levels:
            row += [res.group, res.status.value, f"{res.lower_bound:.6g}"]
        rows.append(row + [int(r.abstract_only), f"{r.stats.get('time_s', 0.0):.4f}"])
    return headers, rows


def write_per_image_csv(path, hierarchy: Hierarchy, results: Sequence[HierarchyResult]) -> None:
    headers, rows = per_image_rows(hierarchy, results)
    with open(Path(path), "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(headers)
        writer.writerows(rows)
