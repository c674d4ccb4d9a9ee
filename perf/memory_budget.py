"""The memory-budget experiment: time, peak RSS and bounds of every storage under shrinking RAM budgets.

    python perf/memory_budget.py [--widths 4,16,32,64] [--nets cifar_base_kw,cifar_wide_kw]
                                 [--storages dense,csr,hdf5,auto] [--fractions 1,4,16]
                                 [--domains zonotope,deeppoly] [--csv out.csv] [--plot out.png]
                                 [--timeout 300] [--scratch DIR] [--threads 1] [--quick]

Networks: the zoo's ``cifar_conv(w)`` on ``Box.linf(cifar_conv_input(), CIFAR_EPS)`` for each
width, and the oval21 nets on the first region of their first ``instances.csv`` property.

Per network, first the reference: dense storage without a budget, in a fresh process. Its
measured peak RSS growth is "the dense peak" P. When the dense generator matrices would not fit
this machine (plan estimate max_k symbols_k * neurons_k * 8 bytes above ``--max-dense-gib``, e.g.
cifar_conv(64)), dense is skipped, CSR without a budget is the reference, and P is the planner's
estimated dense peak. Then, for each storage and fraction f, a fresh process runs the analysis
with budget P / f (f = 1: no budget). A fixed storage under a budget is a legitimate point: the
planner raises ``MemoryBudgetError`` when it cannot fit (status "infeasible", with the bytes it
needed). Each child first runs ``kernels.warmup()`` and a tiny analysis of ``cifar_conv(1)`` with
the same domain and storage, so JIT and library memory are not counted.

Measured per point: wall time of ``absint.analyze``; peak RSS growth sampled by a psutil thread
every 2 ms ("sampled") and ``ru_maxrss`` minus the RSS before the run ("maxrss"; the high-water
mark is reset just before the run through /proc/self/clear_refs, so it is the kernel's exact peak;
without that reset it is an upper bound); ``stats["peak_bytes"]``; the planner's estimated peak for
the same call ("est"); ``stats["disk_bytes_written"]``; the storage of each node; and the largest
relative bound difference from the reference over every node,
max_k max_i |a_i - b_i| / max(|a_i|, |b_i|, 1e-12) over lower and upper bounds.

Extra points: ``auto`` under 2 GiB on cifar_conv(64) (when 64 is among the widths), and DeepPoly
under 1 GiB on cifar_conv(16/32/64) (``--domains`` includes deeppoly). ``--quick``: width 4 and
cifar_base_kw, fractions 1 and 4, zonotope only (a few minutes at most).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from perf._measure import RssSampler, maxrss_bytes, reset_peak_rss, rss_bytes, run_child, trim_heap  # noqa: E402

CHILD_TAG = "@@MEMBUDGET@@ "
STORAGES = ("dense", "csr", "hdf5", "auto")
OVAL_NETS = ("cifar_base_kw", "cifar_wide_kw")
DEEPPOLY_WIDTHS = (16, 32, 64)
DEEPPOLY_BUDGET = 1 << 30
BIG_WIDTH, BIG_BUDGET = 64, 2 << 30
#: bounds closer than this (relative, see max_rel_diff) count as "the same bounds" in the summary
SAME_BOUNDS_RTOL = 1e-9

COLUMNS = ["case", "domain", "storage", "fraction", "budget_bytes", "status", "needed_bytes", "time_s",
           "analyze_time_s", "sampled_peak_bytes", "maxrss_peak_bytes", "stats_peak_bytes", "est_peak_bytes",
           "disk_bytes_written", "storages", "n_symbols", "block_size", "mean_width", "maxrss_reset", "reference",
           "max_rel_diff", "over_budget", "error"]


# ---------------------------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------------------------

def case_ids(widths, nets) -> tuple[list[str], list[str]]:
    """Case ids ("zoo/cifar_conv16", "oval21/cifar_base_kw") and notes on missing benchmarks."""
    from tests._bench import benchmarks_dir

    ids = [f"zoo/cifar_conv{w}" for w in widths]
    notes = []
    root = benchmarks_dir()
    for name in nets:
        if root is None or not (root / "oval21" / "nets" / f"{name}.onnx").is_file():
            notes.append(f"oval21/{name}: skipped, benchmarks not found (set ABSINT_BENCHMARKS)")
        else:
            ids.append(f"oval21/{name}")
    return ids, notes


def load_case(case: str):
    """(network, absint.Box) of a case id."""
    import absint
    import absint.zoo as zoo

    fam, name = case.split("/")
    if fam == "zoo":
        net = zoo.cifar_conv(int(name[len("cifar_conv"):]))
        return net, absint.Box.linf(zoo.cifar_conv_input(), zoo.CIFAR_EPS)
    from tests._bench import benchmark_instances

    onnx, vnnlib = next((o, v) for _, o, v, _ in benchmark_instances(fam) if o.name == f"{name}.onnx")
    net = absint.load_onnx(onnx)
    lo, hi, _ = absint.load_vnnlib(vnnlib, net).regions[0]
    return net, absint.Box(lo, hi)


def plan_facts(case: str) -> dict:
    """Planner estimates of a case (no analysis): dense generator bytes, dense peak, CSR/dense per conv layer.

    The conv prefix is every node before the first Reshape/Affine; per node the dense store holds
    symbols*neurons*8 bytes, the CSR store 16*nnz + 8*(symbols+1) (the planner's byte model).
    """
    import absint
    from absint.network import Affine, Reshape
    from absint.planner import CSR_NNZ_BYTES, CSR_ROW_BYTES

    net, box = load_case(case)
    p = absint.plan(net, box, storage="auto")
    dense_plan = absint.plan(net, box, storage="dense")
    prefix = []
    for lp, node in zip(p.layers, net.nodes):
        if isinstance(node.layer, (Affine, Reshape)):
            break
        prefix.append((lp.name, 8 * lp.n_symbols * lp.n_neurons, CSR_NNZ_BYTES * lp.nnz + CSR_ROW_BYTES * (lp.n_symbols + 1)))
    return {"case": case, "dense_g_bytes": max(8 * lp.n_symbols * lp.n_neurons for lp in p.layers),
            "dense_est_peak": dense_plan.peak_bytes, "auto_est_peak": p.peak_bytes,
            "hdf5_disk_bytes": sum(lp.disk for lp in p.layers), "conv_prefix": prefix,
            "n_symbols_est": p.layers[-1].n_symbols}


# ---------------------------------------------------------------------------------------------
# child: one analysis in a fresh process
# ---------------------------------------------------------------------------------------------

def _warm_up(domain: str, storage: str, scratch) -> None:
    """kernels.warmup() and one tiny analysis on the same code path (JIT, scipy/h5py imports, first touch).

    The warm-up box perturbs only 32 pixels of cifar_conv(1)'s input (32 symbols), so the memory it leaves
    in the allocator's free lists is small and does not hide the measured run's growth.
    """
    import numpy as np

    import absint
    import absint.zoo as zoo
    import kernels

    kernels.warmup()
    net = zoo.cifar_conv(1)
    x = zoo.cifar_conv_input().ravel()
    eps = np.zeros_like(x)
    eps[:: x.size // 32] = zoo.CIFAR_EPS
    box = absint.Box(np.clip(x - eps, 0, 1).reshape(zoo.CIFAR_SHAPE), np.clip(x + eps, 0, 1).reshape(zoo.CIFAR_SHAPE))
    absint.analyze(net, box, domain=domain, storage=storage, scratch_dir=scratch)


def measure(point: dict) -> dict:
    """Run one point (case, domain, storage, budget) and return its measurements; bounds go to point["npz"]."""
    import gc

    import numpy as np

    import absint

    out = {k: point.get(k) for k in ("case", "domain", "storage", "fraction", "budget_bytes")}
    domain, storage, budget, scratch = point["domain"], point["storage"], point["budget_bytes"], point.get("scratch")
    _warm_up(domain, storage, scratch)
    net, box = load_case(point["case"])
    try:
        gc.collect()
        trim_heap()
        out["maxrss_reset"] = reset_peak_rss()
        rss0 = rss_bytes()
        with RssSampler() as sampler:
            t0 = time.perf_counter()
            res = absint.analyze(net, box, domain=domain, storage=storage, memory_budget=budget, scratch_dir=scratch)
            dt = time.perf_counter() - t0
        maxrss = max(0, maxrss_bytes() - rss0)
    except absint.MemoryBudgetError as exc:
        out.update(status="infeasible", needed_bytes=int(exc.needed), error=f"no plan fits at {exc.layer}")
        return out
    # the planner's estimate for the same call, after the measured run (its work must not pre-fill the heap)
    out["est_peak_bytes"] = int(absint.plan(net, box, domain=domain, memory_budget=budget, storage=storage).peak_bytes) or None
    st = res.stats
    out.update(status="ok", time_s=dt, analyze_time_s=float(st["time_s"]), sampled_peak_bytes=sampler.growth,
               maxrss_peak_bytes=maxrss, stats_peak_bytes=int(st["peak_bytes"]),
               disk_bytes_written=int(st.get("disk_bytes_written", 0)), storages=list(st["storage"]),
               n_symbols=int(st["n_symbols"][-1]) if st["n_symbols"] else 0, block_size=st.get("block_size"),
               mean_width=float(np.mean(res.upper - res.lower)))
    if point.get("npz"):
        np.savez(point["npz"], **{f"l{k}": lo for k, (lo, _) in enumerate(res.layer_bounds)},
                 **{f"u{k}": hi for k, (_, hi) in enumerate(res.layer_bounds)})
    return out


# ---------------------------------------------------------------------------------------------
# parent: points, comparison, tables
# ---------------------------------------------------------------------------------------------

def run_point(point: dict, args) -> dict:
    """``measure(point)`` in a fresh interpreter; a row with status timeout/crash when it fails."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(point)]
    t0 = time.perf_counter()
    row = run_child(cmd, CHILD_TAG, args.timeout, cwd=str(REPO), threads=args.threads)
    for k in ("case", "domain", "storage", "fraction", "budget_bytes"):
        row.setdefault(k, point.get(k))
    row["wall_s"] = time.perf_counter() - t0
    return row


def load_bounds(path) -> list[tuple]:
    import numpy as np

    with np.load(path) as z:
        n = len(z.files) // 2
        return [(z[f"l{k}"], z[f"u{k}"]) for k in range(n)]


def max_rel_diff(a: list[tuple], b: list[tuple]) -> float:
    """max over nodes and neurons of |a - b| / max(|a|, |b|, 1e-12), lower and upper bounds."""
    import numpy as np

    if len(a) != len(b):
        return float("inf")
    worst = 0.0
    for (la, ua), (lb, ub) in zip(a, b):
        for x, y in ((la, lb), (ua, ub)):
            if x.size:
                den = np.maximum(np.maximum(np.abs(x), np.abs(y)), 1e-12)
                worst = max(worst, float(np.max(np.abs(x - y) / den)))
    return worst


def _log(row: dict) -> None:
    from absint.tables import format_bytes

    what = f"  {row['case']:22s} {row['domain']:9s} {row['storage']:5s} {_budget_label(row):>18s}  {row['status']:10s}"
    if row["status"] == "ok":
        what += f" {row['time_s']:8.2f} s  peak {format_bytes(row['sampled_peak_bytes'])}"
    elif row.get("error"):
        what += f" {row['error']}"
    print(what, flush=True)


def _budget_label(row: dict) -> str:
    from absint.tables import format_bytes

    b = row.get("budget_bytes")
    if b is None:
        return "unbounded"
    f = row.get("fraction")
    return f"1/{f:g} = {format_bytes(b)}" if f else format_bytes(b)


def _skip(point: dict, why: str) -> dict:
    return {**{k: point.get(k) for k in ("case", "domain", "storage", "fraction", "budget_bytes")},
            "status": "skipped", "error": why}


def run_case(case: str, args, facts: dict, tmp: str) -> list[dict]:
    """The reference and every (storage, fraction) point of one zonotope case."""
    from absint.tables import format_bytes

    gib = 1 << 30
    dense_fits = facts["dense_g_bytes"] <= args.max_dense_gib * gib
    ref_storage = "dense" if dense_fits else "csr"
    base = {"case": case, "domain": "zonotope", "scratch": args.scratch}
    ref_point = {**base, "storage": ref_storage, "fraction": 1, "budget_bytes": None,
                 "npz": os.path.join(tmp, f"{case.replace('/', '_')}_ref.npz")}
    ref = run_point(ref_point, args)
    ref["reference"] = ref_storage
    _log(ref)
    ref_bounds = load_bounds(ref_point["npz"]) if ref["status"] == "ok" else None
    if ref_storage == "dense" and ref["status"] == "ok":
        dense_peak, source = ref["sampled_peak_bytes"], "measured"
    else:
        dense_peak, source = facts["dense_est_peak"], "plan estimate"
    facts.update(dense_peak=dense_peak, dense_peak_source=source, reference=ref_storage,
                 ref_time_s=ref.get("time_s") if ref["status"] == "ok" else None)
    print(f"    dense peak {format_bytes(dense_peak)} ({source}); reference {ref_storage}", flush=True)
    rows = [ref]
    for storage in args.storages:
        for f in args.fractions:
            if storage == ref_storage and f == 1:
                continue
            budget = None if f == 1 else int(dense_peak / f)
            point = {**base, "storage": storage, "fraction": f, "budget_bytes": budget,
                     "npz": os.path.join(tmp, f"{case.replace('/', '_')}_{storage}_{f:g}.npz")}
            if storage == "dense" and f == 1 and not dense_fits:
                row = _skip(point, f"dense generators ~{format_bytes(facts['dense_g_bytes'])} > --max-dense-gib")
            elif storage == "hdf5" and facts["hdf5_disk_bytes"] > args.max_disk_gib * gib:
                row = _skip(point, f"hdf5 would write ~{format_bytes(facts['hdf5_disk_bytes'])} > --max-disk-gib")
            else:
                row = run_point(point, args)
            _compare(row, ref_bounds, ref_storage, point["npz"])
            rows.append(row)
            _log(row)
    return rows


def _compare(row: dict, ref_bounds, ref_storage: str, npz: str) -> None:
    row["reference"] = ref_storage
    if row["status"] == "ok" and ref_bounds is not None and os.path.exists(npz):
        row["max_rel_diff"] = max_rel_diff(load_bounds(npz), ref_bounds)
        os.remove(npz)
    b = row.get("budget_bytes")
    if row["status"] == "ok" and b:
        row["over_budget"] = bool(row["sampled_peak_bytes"] > b)


def run_experiment(args) -> tuple[list[dict], dict[str, dict], list[str]]:
    """All points of the experiment: (rows, plan facts per case, notes)."""
    cases, notes = case_ids(args.widths, args.nets)
    facts: dict[str, dict] = {}
    rows: list[dict] = []
    tmp = tempfile.mkdtemp(prefix="absint-membudget-")
    try:
        if "zonotope" in args.domains:
            for case in cases:
                facts[case] = plan_facts(case)
                print(f"{case}: dense generators ~{_fb(facts[case]['dense_g_bytes'])}, planner dense peak "
                      f"{_fb(facts[case]['dense_est_peak'])}, auto peak {_fb(facts[case]['auto_est_peak'])}",
                      flush=True)
                rows += run_case(case, args, facts[case], tmp)
            big = f"zoo/cifar_conv{BIG_WIDTH}"
            if big in cases and "auto" in args.storages:
                point = {"case": big, "domain": "zonotope", "storage": "auto", "fraction": None,
                         "budget_bytes": BIG_BUDGET, "scratch": args.scratch,
                         "npz": os.path.join(tmp, "big_auto.npz")}
                row = run_point(point, args)
                ref_npz = os.path.join(tmp, f"{big.replace('/', '_')}_ref.npz")
                _compare(row, load_bounds(ref_npz) if os.path.exists(ref_npz) else None,
                         facts[big]["reference"], point["npz"])
                row["extra"] = "2GiB"
                rows.append(row)
                _log(row)
        if "deeppoly" in args.domains:
            for w in args.deeppoly_widths:
                point = {"case": f"zoo/cifar_conv{w}", "domain": "deeppoly", "storage": "dense", "fraction": None,
                         "budget_bytes": DEEPPOLY_BUDGET, "scratch": args.scratch}
                row = run_point(point, args)
                if row["status"] == "ok":
                    row["over_budget"] = bool(row["sampled_peak_bytes"] > DEEPPOLY_BUDGET)
                rows.append(row)
                _log(row)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows, facts, notes


def _fb(n) -> str:
    from absint.tables import format_bytes

    return "-" if n is None else format_bytes(n)


def _rle(storages) -> str:
    """['csr', 'csr', 'dense'] -> 'csr*2 dense'."""
    if not storages:
        return "-"
    out, prev, n = [], storages[0], 0
    for s in storages + [None]:
        if s == prev:
            n += 1
            continue
        out.append(prev if n == 1 else f"{prev}*{n}")
        prev, n = s, 1
    return " ".join(out)


def table_rows(rows: list[dict], facts: dict[str, dict]) -> list[list]:
    out = []
    for r in rows:
        ok = r["status"] == "ok"
        ref_t = facts.get(r["case"], {}).get("ref_time_s")
        ratio = f"{r['time_s'] / ref_t:.2f}" if ok and ref_t and r["domain"] == "zonotope" else "-"
        est = r.get("est_peak_bytes")
        status = r["status"] + (" OVER" if r.get("over_budget") else "")
        if r["status"] == "infeasible":
            status += f" (needs {_fb(r.get('needed_bytes'))})"
        elif r["status"] in ("timeout", "crash", "skipped"):
            status += f" ({r.get('error', '')[:60]})"
        diff = r.get("max_rel_diff")
        out.append([r["case"].split("/")[1], r["domain"][:4], r["storage"] if r["domain"] == "zonotope" else "-",
                    _budget_label(r), status,
                    f"{r['time_s']:.2f}" if ok else "-", ratio,
                    _fb(r.get("sampled_peak_bytes")) if ok else "-", _fb(r.get("maxrss_peak_bytes")) if ok else "-",
                    _fb(est) if est else "-",
                    f"{r['sampled_peak_bytes'] / est:.2f}" if ok and est else "-",
                    _fb(r.get("disk_bytes_written")) if ok and r.get("disk_bytes_written") else "-",
                    _rle(r.get("storages")) if ok and r["domain"] == "zonotope" else
                    (f"block {r.get('block_size')}" if ok else "-"),
                    f"{diff:.1e}" if diff is not None else "-"])
    return out


HEADERS = ["net", "dom", "storage", "budget", "status", "time s", "x ref", "sampled", "maxrss", "est peak",
           "meas/est", "disk", "storages per node", "max rel diff"]


def format_results(rows: list[dict], facts: dict[str, dict]) -> str:
    from absint.tables import format_table

    return format_table(HEADERS, table_rows(rows, facts), align="lllll" + "r" * 6 + "rlr")


def summary(rows: list[dict], facts: dict[str, dict]) -> list[str]:
    """The goal lines: time and bounds at 1/16, CSR vs dense bytes in the conv prefix, w=64 under 2 GiB,
    DeepPoly under 1 GiB, and every point whose measured peak exceeded its budget or estimate."""
    lines = []
    zrows = [r for r in rows if r["domain"] == "zonotope"]
    smallest = max((r["fraction"] for r in zrows if r.get("fraction")), default=None)
    if smallest and smallest > 1:
        lines.append(f"Goal 1: at 1/{smallest:g} of the dense peak, time <= 3x the reference and the same bounds "
                     f"(max rel diff <= {SAME_BOUNDS_RTOL:g})")
        for case, fc in facts.items():
            cells = []
            for r in zrows:
                if r["case"] != case or r.get("fraction") != smallest:
                    continue
                if r["status"] != "ok":
                    cells.append(f"{r['storage']} {r['status']}")
                    continue
                ref_t = fc.get("ref_time_s")
                ratio = r["time_s"] / ref_t if ref_t else float("nan")
                diff = r.get("max_rel_diff")
                same = diff is not None and diff <= SAME_BOUNDS_RTOL
                met = ratio <= 3 and same
                cells.append(f"{r['storage']} {ratio:.2f}x diff {diff if diff is not None else float('nan'):.1e}"
                             f" [{'met' if met else 'NOT met'}]")
            lines.append(f"  {case} (reference {fc.get('reference')}, {_fb(fc.get('dense_peak'))} dense peak "
                         f"{fc.get('dense_peak_source')}): " + "; ".join(cells))
    lines.append("Goal 2: CSR bytes vs dense bytes through the conv prefix (planner byte model; goal >= 5x smaller)")
    for case, fc in facts.items():
        pre = fc["conv_prefix"]
        if not pre:
            continue
        ratios = [d / c for _, d, c in pre]
        tot = sum(d for _, d, _ in pre) / sum(c for _, _, c in pre)
        measured = ""
        dense_r = next((r for r in zrows if r["case"] == case and r["storage"] == "dense" and r["budget_bytes"] is None
                        and r["status"] == "ok"), None)
        csr_r = next((r for r in zrows if r["case"] == case and r["storage"] == "csr" and r["budget_bytes"] is None
                      and r["status"] == "ok"), None)
        if dense_r and csr_r and csr_r["sampled_peak_bytes"]:
            measured = (f"; measured whole-run peak dense/csr {dense_r['sampled_peak_bytes'] / csr_r['sampled_peak_bytes']:.1f}x"
                        f" ({_fb(dense_r['sampled_peak_bytes'])} / {_fb(csr_r['sampled_peak_bytes'])})")
        lines.append(f"  {case}: per node {min(ratios):.1f}x .. {max(ratios):.1f}x, whole prefix {tot:.1f}x "
                     f"[{'met' if min(ratios) >= 5 else 'NOT met'}]{measured}")
    big = [r for r in rows if r.get("extra") == "2GiB"]
    for r in big:
        fc = facts.get(r["case"], {})
        ok = r["status"] == "ok"
        lines.append(f"Goal 3: {r['case']} (dense generators ~{_fb(fc.get('dense_g_bytes'))}) with auto under 2 GiB: "
                     + (f"completes in {r['time_s']:.1f} s, sampled peak {_fb(r['sampled_peak_bytes'])}, maxrss "
                        f"{_fb(r['maxrss_peak_bytes'])}, storages {_rle(r['storages'])}, max rel diff vs "
                        f"{r.get('reference')} {r.get('max_rel_diff', float('nan')):.1e} "
                        f"[{'met' if not r.get('over_budget') else 'completes but OVER budget'}]" if ok else
                        f"{r['status']} {r.get('error', '')} [NOT met]"))
    dp = [r for r in rows if r["domain"] == "deeppoly"]
    if dp:
        lines.append("DeepPoly under 1 GiB: " + "; ".join(
            f"{r['case'].split('/')[1]} " + (f"{r['time_s']:.1f} s, peak {_fb(r['sampled_peak_bytes'])}, "
                                             f"block {r.get('block_size')}" + (" OVER" if r.get("over_budget") else "")
                                             if r["status"] == "ok" else r["status"]) for r in dp))
    over = [r for r in rows if r.get("over_budget")]
    lines.append(f"Planner misestimates: {len(over)} point(s) with a measured peak above the budget"
                 + ("" if over else " (none)"))
    for r in over:
        lines.append(f"  {r['case']} {r['domain']} {r['storage']} budget {_fb(r['budget_bytes'])}: sampled "
                     f"{_fb(r['sampled_peak_bytes'])} (x{r['sampled_peak_bytes'] / r['budget_bytes']:.2f}), maxrss "
                     f"{_fb(r['maxrss_peak_bytes'])}, planner estimate {_fb(r.get('est_peak_bytes'))}")
    under = [r for r in rows if r["status"] == "ok" and r.get("est_peak_bytes")
             and r["sampled_peak_bytes"] > r["est_peak_bytes"]]
    if under:
        worst = max(under, key=lambda r: r["sampled_peak_bytes"] / r["est_peak_bytes"])
        lines.append(f"  measured peak above the planner's own estimate at {len(under)} point(s); worst "
                     f"{worst['case']} {worst['storage']} {_budget_label(worst)}: {_fb(worst['sampled_peak_bytes'])} "
                     f"vs estimate {_fb(worst['est_peak_bytes'])} (x{worst['sampled_peak_bytes'] / worst['est_peak_bytes']:.2f})")
    return lines


def write_csv(rows: list[dict], path: str) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("|".join(r[k]) if k == "storages" and r.get(k) else r.get(k, "")) for k in COLUMNS})


def plot(rows: list[dict], facts: dict[str, dict], path: str) -> bool:
    """Time and measured peak against the budget (unbounded drawn at the dense peak); False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--plot: matplotlib is not installed; no plot written")
        return False
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 4.5))
    markers = {"dense": "s", "csr": "o", "hdf5": "^", "auto": "*"}
    colors = {}
    for r in rows:
        if r["domain"] != "zonotope" or r["status"] != "ok" or r.get("extra"):
            continue
        fc = facts[r["case"]]
        x = r["budget_bytes"] or fc["dense_peak"]
        c = colors.setdefault(r["case"], f"C{len(colors)}")
        ax_t.scatter(x / 2**20, r["time_s"], color=c, marker=markers.get(r["storage"], "x"))
        ax_m.scatter(x / 2**20, r["sampled_peak_bytes"] / 2**20, color=c, marker=markers.get(r["storage"], "x"))
    lo = min((r["budget_bytes"] or facts[r["case"]]["dense_peak"] for r in rows
              if r["domain"] == "zonotope" and r["case"] in facts), default=1 << 20) / 2**20
    hi = max((facts[c]["dense_peak"] for c in facts), default=1 << 30) / 2**20
    ax_m.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="peak = budget")
    for ax, label in ((ax_t, "analysis time [s]"), (ax_m, "sampled peak RSS growth [MiB]")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("budget [MiB] (unbounded at the dense peak)")
        ax.set_ylabel(label)
    for case, c in colors.items():
        ax_t.scatter([], [], color=c, label=case.split("/")[1])
    for s, m in markers.items():
        ax_t.scatter([], [], color="gray", marker=m, label=s)
    ax_t.legend(fontsize=7)
    ax_m.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--widths", type=_ints, default=[4, 16, 32, 64], help="cifar_conv widths (comma-separated)")
    ap.add_argument("--nets", type=_names, default=list(OVAL_NETS), help="oval21 nets (comma-separated; '' for none)")
    ap.add_argument("--storages", type=_names, default=list(STORAGES))
    ap.add_argument("--fractions", type=_floats, default=[1, 4, 16],
                    help="budgets dense_peak/f; f = 1 means no budget")
    ap.add_argument("--domains", type=_names, default=["zonotope", "deeppoly"])
    ap.add_argument("--deeppoly-widths", type=_ints, default=list(DEEPPOLY_WIDTHS))
    ap.add_argument("--csv", help="write one row per point to this CSV file")
    ap.add_argument("--plot", help="write a PNG of time and peak against the budget (needs matplotlib)")
    ap.add_argument("--timeout", type=float, default=300.0, help="kill a point's child process after this many s")
    ap.add_argument("--scratch", default=None, help="scratch directory of the HDF5 store (default: system temp)")
    ap.add_argument("--threads", type=int, default=None, help="pin BLAS/numba threads in the children")
    ap.add_argument("--max-dense-gib", type=float, default=6.0,
                    help="skip dense (reference becomes csr) when symbols*neurons*8 exceeds this")
    ap.add_argument("--max-disk-gib", type=float, default=16.0,
                    help="skip hdf5 points when the plan's disk estimate exceeds this")
    ap.add_argument("--quick", action="store_true", help="width 4 and cifar_base_kw, fractions 1,4, zonotope only")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.widths, args.nets, args.fractions, args.domains = [4], list(OVAL_NETS[:1]), [1, 4], ["zonotope"]
    for s in args.storages:
        if s not in STORAGES:
            ap.error(f"unknown storage {s!r}; choose from {', '.join(STORAGES)}")
    if 1 not in args.fractions:
        args.fractions = [1.0] + args.fractions
    args.fractions = [int(f) if float(f).is_integer() else f for f in args.fractions]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(CHILD_TAG + json.dumps(measure(json.loads(args.child))), flush=True)
        return 0
    load0 = os.getloadavg()
    print(f"absint memory_budget: widths {args.widths}, oval21 {args.nets}, storages {args.storages}, "
          f"fractions {args.fractions}, domains {args.domains}; {os.cpu_count()} CPUs, load average "
          f"{load0[0]:.2f}/{load0[1]:.2f}/{load0[2]:.2f}", flush=True)
    t0 = time.perf_counter()
    rows, facts, notes = run_experiment(args)
    for note in notes:
        print(note)
    print()
    print(format_results(rows, facts))
    load1 = os.getloadavg()
    print(f"\n{len(rows)} points in {time.perf_counter() - t0:.0f} s, each in a fresh process; load average at the "
          f"end {load1[0]:.2f}/{load1[1]:.2f}/{load1[2]:.2f}. 'x ref' = time / reference time; 'meas/est' = sampled "
          f"peak / planner estimate.\n")
    print("\n".join(summary(rows, facts)))
    if args.csv:
        write_csv(rows, args.csv)
        print(f"wrote {args.csv}")
    if args.plot and plot(rows, facts, args.plot):
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
