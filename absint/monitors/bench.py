"""The monitor benchmark: fit monitors, score in- and out-of-distribution data, report metrics.

For a network and a ``MonitorCase`` (fit / validation / test splits and OoD sets): every
registered monitor type is fitted on the fit split (per-layer types once per hidden ReLU layer);
fusions (per type over its layers, and over all monitors) are fitted on the validation split.
Tasks: OoD detection (test vs each OoD set, and vs all of them pooled; positives = OoD) and
misclassification detection (test errors vs correct test predictions). Per monitor and task:
AUROC, FPR at 95 % TPR, AUPR (positives = inputs to reject), and at the threshold that accepts
``accept_rate`` of the correct validation predictions: safety gain, residual hazard, availability
cost, coverage; and the risk/coverage curve with its area (AURC). Hazards: the network's errors
and every OoD input.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..network import Network
from ..tables import format_table
from .base import MONITORS, Monitor, collect_activations, hidden_layers, output_layer
from .cases import MonitorCase
from .fusion import FUSION_RULES, Fusion
from .metrics import (acceptance_threshold, auroc, aurc, average_precision, fpr_at_tpr, risk_coverage,
                      safety_figures)

# importing the implementations registers them
from . import boxes, hamming, knn, mahalanobis, output  # noqa: F401,E402

__all__ = ["BenchOptions", "Entry", "TaskResult", "BenchResult", "build_monitors", "run_bench", "format_report",
           "write_csv", "plot_risk_coverage", "MISCLASSIFICATION", "OOD_ALL"]

MISCLASSIFICATION = "misclassification"
OOD_ALL = "ood:all"


@dataclass(frozen=True)
class BenchOptions:
    monitors: tuple[str, ...] = ("msp", "energy", "mahalanobis", "knn", "box", "hamming")
    layer_fusion: tuple[str, ...] = ("mean",)              # per monitor type, over its layers
    fusion: tuple[str, ...] = ("max", "mean", "logistic")  # over every single-layer monitor
    accept_rate: float = 0.95
    monitor_options: tuple[tuple[str, Any], ...] = ()      # (type name, options dataclass) overrides


@dataclass
class Entry:
    """One scored monitor: type ``kind`` on ``layer`` ("all" for fusions of several layers)."""

    kind: str
    layer: str
    monitor: Monitor
    fit_s: float = 0.0
    score_s: float = 0.0
    scored: int = 0

    @property
    def label(self) -> str:
        return f"{self.kind}@{self.layer}"


@dataclass(frozen=True)
class TaskResult:
    monitor: str
    layer: str
    task: str
    n_in: int
    n_out: int
    auroc: float
    fpr95: float
    aupr: float
    threshold: float
    safety_gain: float
    residual_hazard: float
    availability_cost: float
    coverage: float
    baseline_hazard: float
    aurc: float
    curve: tuple[np.ndarray, np.ndarray] = field(repr=False, compare=False, default=(np.zeros(0), np.zeros(0)))


@dataclass
class BenchResult:
    network: str
    case: str
    note: str
    accuracy: dict[str, float]
    sizes: dict[str, int]
    rows: list[TaskResult]
    entries: list[Entry]
    accept_rate: float = 0.95


def build_monitors(net: Network, options: BenchOptions) -> list[Entry]:
    """One unfitted entry per (monitor type, layer): output types on the logits, others per ReLU layer."""
    overrides = dict(options.monitor_options)
    entries = []
    for name in options.monitors:
        mtype = MONITORS.get(name)
        layers = hidden_layers(net) if mtype.per_layer else [output_layer(net)]
        for layer in layers:
            entries.append(Entry(name, layer, mtype.build(layer, overrides.get(name))))
    return entries


def _fusions(entries: list[Entry], options: BenchOptions) -> list[Entry]:
    out = []
    for rule in options.layer_fusion + options.fusion:
        if rule not in FUSION_RULES:
            raise ValueError(f"unknown fusion rule {rule!r}; available: {', '.join(FUSION_RULES)}")
    kinds = dict.fromkeys(e.kind for e in entries)
    for kind in kinds:
        members = [e.monitor for e in entries if e.kind == kind]
        if len(members) > 1:
            for rule in options.layer_fusion:
                out.append(Entry(f"{kind}+{rule}", "all", Fusion(members, FUSION_RULES[rule]())))
    if len(entries) > 1:
        for rule in options.fusion:
            out.append(Entry(f"fusion-{rule}", "all", Fusion([e.monitor for e in entries], FUSION_RULES[rule]())))
    return out


def _score(entry: Entry, acts, preds) -> np.ndarray:
    t0 = time.perf_counter()
    s = np.asarray(entry.monitor.score(acts, preds), np.float64)
    entry.score_s += time.perf_counter() - t0
    entry.scored += len(s)
    return s


def _task(entry: Entry, task: str, y: np.ndarray, hazard: np.ndarray, s: np.ndarray, threshold: float) -> TaskResult:
    nan = float("nan")
    both = 0 < y.sum() < len(y)
    fig = safety_figures(hazard, s, threshold)
    curve = risk_coverage(hazard, s)
    return TaskResult(entry.kind, entry.layer, task, int((~y).sum()), int(y.sum()),
                      auroc(y, s) if both else nan, fpr_at_tpr(y, s) if both else nan,
                      average_precision(y, s) if y.any() else nan, threshold, fig.safety_gain,
                      fig.residual_hazard, fig.availability_cost, fig.coverage, fig.baseline_hazard, aurc(hazard, s),
                      curve)


def run_bench(net: Network, case: MonitorCase, options: BenchOptions = BenchOptions()) -> BenchResult:
    """Fit, score and evaluate every monitor on ``case``; see the module docstring."""
    acts = {name: collect_activations(net, split.x)
            for name, split in (("fit", case.fit), ("val", case.val), ("test", case.test))}
    ood_acts = {name: collect_activations(net, x) for name, x in case.ood.items()}
    out_name = output_layer(net)
    preds = {name: a[out_name].argmax(axis=1) for name, a in acts.items()}
    ood_preds = {name: a[out_name].argmax(axis=1) for name, a in ood_acts.items()}
    labels = {"fit": case.fit.y, "val": case.val.y, "test": case.test.y}
    entries = build_monitors(net, options)
    for e in entries:
        t0 = time.perf_counter()
        e.monitor.fit(acts["fit"], labels["fit"], preds["fit"])
        e.fit_s = time.perf_counter() - t0
    fusions = _fusions(entries, options)
    for e in fusions:
        t0 = time.perf_counter()
        e.monitor.fit(acts["val"], labels["val"], preds["val"])
        e.fit_s = time.perf_counter() - t0
    errors = preds["test"] != labels["test"]
    val_ok = preds["val"] == labels["val"]
    rows = []
    for e in entries + fusions:
        threshold = acceptance_threshold(_score(e, acts["val"], preds["val"])[val_ok], options.accept_rate)
        s_test = _score(e, acts["test"], preds["test"])
        rows.append(_task(e, MISCLASSIFICATION, errors, errors, s_test, threshold))
        s_ood = {name: _score(e, ood_acts[name], ood_preds[name]) for name in case.ood}
        for name, s in list(s_ood.items()) + ([(OOD_ALL, np.concatenate(list(s_ood.values())))] if s_ood else []):
            y = np.r_[np.zeros(len(s_test), bool), np.ones(len(s), bool)]
            rows.append(_task(e, f"ood:{name}" if name != OOD_ALL else OOD_ALL, y, np.r_[errors, np.ones(len(s), bool)],
                              np.r_[s_test, s], threshold))
    accuracy = {name: float(np.mean(preds[name] == labels[name])) for name in preds}
    sizes = {"fit": len(case.fit), "val": len(case.val), "test": len(case.test),
             **{f"ood:{k}": len(v) for k, v in case.ood.items()}}
    return BenchResult(net.name, case.name, case.note, accuracy, sizes, rows, entries + fusions, options.accept_rate)


# --------------------------------------------------------------------------------------------- output
def _f(v: float, digits: int = 3) -> str:
    return "-" if v != v else f"{v:.{digits}f}"


def format_report(result: BenchResult, detail_tasks: tuple[str, ...] = (OOD_ALL, MISCLASSIFICATION)) -> str:
    """An AUROC matrix (monitor x task) and, for ``detail_tasks``, every figure per monitor."""
    tasks = list(dict.fromkeys(r.task for r in result.rows))
    monitors = list(dict.fromkeys((r.monitor, r.layer) for r in result.rows))
    by_key = {(r.monitor, r.layer, r.task): r for r in result.rows}
    acc = ", ".join(f"{k} {v:.3f}" for k, v in result.accuracy.items())
    sizes = ", ".join(f"{k} {v}" for k, v in result.sizes.items())
    parts = [f"{result.network} on {result.case}: accuracy {acc}", f"sizes: {sizes}", f"({result.note})", "",
             "AUROC (positives: OoD inputs / misclassified test inputs)"]
    parts.append(format_table(["monitor", "layer"] + tasks,
                              [[m, l] + [_f(by_key[(m, l, t)].auroc) for t in tasks] for m, l in monitors],
                              align="ll" + "r" * len(tasks)))
    for task in detail_tasks:
        rows = [r for r in result.rows if r.task == task]
        if not rows:
            continue
        parts += ["", f"{task}: {rows[0].n_in} negatives vs {rows[0].n_out} positives; the threshold accepts "
                      f"{result.accept_rate:.0%} of the correct validation predictions; hazard without a monitor "
                      f"{_f(rows[0].baseline_hazard)}"]
        parts.append(format_table(
            ["monitor", "layer", "AUROC", "FPR95", "AUPR", "safety gain", "resid. hazard", "avail. cost",
             "coverage", "AURC"],
            [[r.monitor, r.layer, _f(r.auroc), _f(r.fpr95), _f(r.aupr), _f(r.safety_gain), _f(r.residual_hazard),
              _f(r.availability_cost), _f(r.coverage), _f(r.aurc, 4)] for r in rows], align="ll" + "r" * 8))
    timing = [[e.kind, e.layer, _f(e.fit_s * 1e3, 1), _f(e.scored / e.score_s if e.score_s > 0 else float("nan"), 0)]
              for e in result.entries]
    parts += ["", "time", format_table(["monitor", "layer", "fit ms", "scored / s"], timing, align="llrr")]
    return "\n".join(parts)


CSV_FIELDS = ["network", "case", "monitor", "layer", "task", "n_in", "n_out", "auroc", "fpr95", "aupr", "threshold",
              "safety_gain", "residual_hazard", "availability_cost", "coverage", "baseline_hazard", "aurc"]


def write_csv(result: BenchResult, path) -> None:
    """One row per (monitor, layer, task) with every figure."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_FIELDS)
        for r in result.rows:
            w.writerow([result.network, result.case] + [getattr(r, k) for k in CSV_FIELDS[2:]])


def plot_risk_coverage(result: BenchResult, path, tasks: tuple[str, ...] = (OOD_ALL, MISCLASSIFICATION)) -> bool:
    """Risk/coverage curves per task, one line per monitor; False (nothing written) without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    tasks = [t for t in tasks if any(r.task == t for r in result.rows)]
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.5), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for r in (r for r in result.rows if r.task == task):
            ax.step(r.curve[0], r.curve[1], where="pre", label=f"{r.monitor}@{r.layer} ({r.aurc:.3f})", lw=1)
        ax.set(title=f"{result.network}: {task}", xlabel="coverage", ylabel="risk", xlim=(0, 1))
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
