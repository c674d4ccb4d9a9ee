"""The ``absint`` command line: ``info``, ``bounds``, ``plan``, ``verify``, ``run-benchmark``, ``demo``,
``hierarchy``, ``monitor-bench``, ``--version``.

Errors print one line ``absint: error: ...`` on stderr and exit 1 (2 for usage errors, 130 on
Ctrl-C, 143 on SIGTERM, which takes Ctrl-C's path: workers stopped, partial results written);
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence

import numpy as np

from . import __version__
from .errors import AbsintError, StorageError
from .network import NETWORK_INPUT, Network, ReLU, Sigmoid, Tanh
from .tables import format_table

Runner = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Runner]] = {}


def register_command(name: str, help: str, configure: Callable[[argparse.ArgumentParser], None],
                     run: Runner) -> None:
    """Add a subcommand: ``configure`` adds its arguments, ``run`` returns the exit code."""
    COMMANDS[name] = (help, configure, run)


# ------------------------------------------------------------------------------- info
ACTIVATIONS = (ReLU, Sigmoid, Tanh)


def network_table(net: Network) -> tuple[list[list[object]], dict[str, int]]:
    """One row per node (index, name, op, inputs, output shape, parameters, neurons) and totals."""
    rows = []
    for idx, node in enumerate(net.nodes):
        inputs = ",".join("in" if i == NETWORK_INPUT else str(i) for i in node.inputs)
        rows.append([idx, node.name, type(node.layer).__name__, node.layer.describe(), inputs,
                     "x".join(map(str, node.shape)), node.layer.n_params, node.size])
    act = [n for n in net.nodes if isinstance(n.layer, ACTIVATIONS)]
    totals = {"nodes": len(net.nodes), "parameters": sum(r[6] for r in rows),
              "activation layers": len(act), "activation neurons": sum(n.size for n in act)}
    return rows, totals


def _configure_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("network", help="ONNX file")


def _run_info(args: argparse.Namespace) -> int:
    from .onnx_import import load_onnx

    net = load_onnx(args.network)
    rows, totals = network_table(net)
    print(f"{args.network}: input {'x'.join(map(str, net.input_shape))} ({net.input_size} values) -> "
          f"output {net.output_size}")
    print(format_table(["#", "name", "op", "parameters", "inputs", "output", "params", "neurons"], rows,
                       align="rllllrrr"))
    by_kind: dict[str, list[int]] = {}
    for n in net.nodes:
        if isinstance(n.layer, ACTIVATIONS):
            by_kind.setdefault(type(n.layer).__name__, []).append(n.size)
    print(f"total: {totals['nodes']} nodes, {totals['parameters']} parameters")
    for kind, sizes in by_kind.items():
        widths = sizes[0] if len(set(sizes)) == 1 else ", ".join(map(str, sizes))
        print(f"{kind}: {len(sizes)} hidden layers of {widths} neurons ({sum(sizes)} neurons)")
    return 0


register_command("info", "print the layers of an ONNX network", _configure_info, _run_info)


# ----------------------------------------------------------------------------- bounds
def _configure_bounds(p: argparse.ArgumentParser) -> None:
    p.add_argument("network", help="ONNX file")
    p.add_argument("property", help="VNN-LIB file (its input boxes are analysed)")
    p.add_argument("--domain", choices=["interval", "zonotope", "deeppoly"], default="zonotope")
    p.add_argument("--no-sound-fp", action="store_true",
                   help="omit the float64 rounding-error terms (for comparisons with tools that ignore them)")
    p.add_argument("--json", action="store_true", help="print the bounds and statistics as JSON")
    _storage_arguments(p)


def _storage_arguments(p: argparse.ArgumentParser) -> None:
    from .planner import STORAGES

    p.add_argument("--storage", choices=STORAGES, default=None,
                   help="noise-symbol storage (default: dense, or auto when --memory is given)")
    p.add_argument("--memory", metavar="SIZE", default=None,
                   help="RAM budget of the analysis, e.g. 512MiB or 2GiB (the planner picks storages to meet it)")
    p.add_argument("--reduce-symbols", metavar="K", type=int, default=None,
                   help="zonotope order reduction (looser bounds): keep at most K noise symbols after each layer")
    p.add_argument("--scratch", metavar="DIR", default=None,
                   help="directory for on-disk (hdf5) storage (default: $ABSINT_SCRATCH or the system temp dir)")


def _storage_choice(args: argparse.Namespace) -> str:
    return args.storage or ("auto" if args.memory else "dense")


def _run_bounds(args: argparse.Namespace) -> int:
    import json

    from .analysis import analyze
    from .onnx_import import load_onnx
    from .vnnlib import load_vnnlib

    net = load_onnx(args.network)
    spec = load_vnnlib(args.property, net)
    results = []
    for k, region in enumerate(spec.regions):
        res = analyze(net, region.box, domain=args.domain, sound_fp=not args.no_sound_fp,
                      storage=_storage_choice(args), memory_budget=args.memory, scratch_dir=args.scratch,
                      reduce_symbols=args.reduce_symbols)
        results.append({"region": k, "lower": res.lower.tolist(), "upper": res.upper.tolist(),
                        "time_s": res.stats["time_s"], "peak_bytes": res.stats["peak_bytes"],
                        "n_symbols": max(res.stats["n_symbols"] or [0]), "storage": res.stats["storage"],
                        "disk_bytes_written": res.stats["disk_bytes_written"]})
    if args.json:
        print(json.dumps({"network": args.network, "property": args.property, "domain": args.domain,
                          "regions": results}, indent=1))
        return 0
    for r in results:
        print(f"region {r['region']}: {args.domain}, {r['time_s'] * 1000:.1f} ms, {r['n_symbols']} symbols")
        rows = [[j, lo, hi, hi - lo] for j, (lo, hi) in enumerate(zip(r["lower"], r["upper"]))]
        print(format_table(["output", "lower", "upper", "width"], rows))
    return 0


register_command("bounds", "sound output bounds over a property's input boxes", _configure_bounds, _run_bounds)


# --------------------------------------------------------------------------------- plan
def _configure_plan(p: argparse.ArgumentParser) -> None:
    p.add_argument("network", help="ONNX file")
    p.add_argument("property", help="VNN-LIB file (the first input box is planned)")
    p.add_argument("--domain", choices=["zonotope", "deeppoly"], default="zonotope")
    p.add_argument("--memory", metavar="SIZE", default=None, help="RAM budget, e.g. 512MiB (default: unbounded)")
    p.add_argument("--storage", choices=("dense", "csr", "hdf5", "auto"), default="auto")


def _run_plan(args: argparse.Namespace) -> int:
    from .onnx_import import load_onnx
    from .planner import plan
    from .vnnlib import load_vnnlib

    net = load_onnx(args.network)
    spec = load_vnnlib(args.property, net)
    print(plan(net, spec.regions[0].box, domain=args.domain, memory_budget=args.memory, storage=args.storage).table())
    return 0


register_command("plan", "per-layer storage plan and memory estimates of an analysis", _configure_plan, _run_plan)


# ------------------------------------------------------------------------------- demo
def _configure_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--samples", type=int, default=1000, help="random points per property (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per property verification (default 10)")


DEMO_DOMAINS = ("interval", "zonotope", "deeppoly")


def _run_demo(args: argparse.Namespace) -> int:
    from . import zoo
    from .analysis import analyze
    from .verify import verify
    from .vnnlib import load_vnnlib

    rng = np.random.default_rng(args.seed)
    properties = zoo.manifest()["properties"]
    for name in zoo.BUNDLED_NETWORKS:
        net = zoo.load(name)
        rows, totals = network_table(net)
        print(f"== {name}: {'x'.join(map(str, net.input_shape))} -> {net.output_size}, "
              f"{totals['nodes']} nodes, {totals['parameters']} parameters, "
              f"{totals['activation neurons']} ReLU neurons")
        table = []
        for prop in (zoo.path(p["file"]) for p in properties if p["network"] == name):
            spec = load_vnnlib(prop, net)
            hits = 0
            for region in spec.regions:
                x = region.box.sample(args.samples, rng)
                hits += int(region.is_unsafe(net.forward(x)).sum())
            row = [prop.name, int(np.argmax(net.forward(spec.regions[0].box.center)[0])), hits]
            for domain in DEMO_DOMAINS:
                res = analyze(net, spec.regions[0].box, domain=domain)
                symbols = max(res.stats["n_symbols"] or [0])
                row.append(f"{np.mean(res.width):.3g} ({res.stats['time_s'] * 1000:.0f} ms"
                           + (f", {symbols} symbols)" if symbols else ")"))
            verdict = verify(net, spec, domain="deeppoly", timeout=args.timeout, seed=args.seed)
            row.append(f"{verdict.status} ({verdict.stats['time_s']:.2f} s)")
            table.append(row)
        print(format_table(["property", "centre class", f"unsafe of {args.samples} samples"]
                           + [f"{d} mean width" for d in DEMO_DOMAINS] + ["verdict (deeppoly)"],
                           table, align="lrrrrrl"))
        print()
    print("(widths: mean output-bound width of each domain over the property's box; verdict: absint.verify, "
          "'violated' always with a counterexample checked by a forward pass)")
    return 0


register_command("demo", "run the bundled example networks and properties", _configure_demo, _run_demo)


# ----------------------------------------------------------------------------- verify
DOMAINS = ("interval", "zonotope", "deeppoly")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _configure_verify(p: argparse.ArgumentParser) -> None:
    from .planner import STORAGES

    p.add_argument("network", help="ONNX file")
    p.add_argument("property", help="VNN-LIB file (.gz too): the unsafe set to rule out")
    p.add_argument("--timeout", type=_positive_float, default=60.0, metavar="S", help="seconds (default 60)")
    p.add_argument("--domain", choices=DOMAINS, default="deeppoly")
    p.add_argument("--memory", metavar="SIZE", default=None, help="RAM budget of each analysis, e.g. 512MiB")
    p.add_argument("--storage", choices=STORAGES, default=None, help="noise-symbol storage (default: planner)")
    p.add_argument("--out", metavar="FILE", default=None, help="write the VNN-COMP result file here")
    p.add_argument("--seed", type=int, default=0, help="seed of the counterexample search")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print the search's progress on stderr every 10 s (boxes, depth, global bound)")
    _add_method(p)


def _progress_line(report: dict) -> str:
    """One ``absint verify -v`` line from a ``verify`` progress report."""
    line = (f"[{report['time_s']:7.1f} s] region {report['region']}/{report['regions']}: {report['boxes']} boxes, "
            f"depth {report['max_depth']}, {report['samples']} samples")
    if "global_bound" in report:
        line += (f"; ReLU branch and bound: global bound {report['global_bound']:.6g} "
                 f"(root {report['root_bound']:.6g}), MILPs {report['time_milp_s']:.1f} s"
                 + (" (the root's MILP bounds under way)" if report["milp_running"] else ""))
    return line


def _add_method(p: argparse.ArgumentParser) -> None:
    from .verify import METHODS

    p.add_argument("--method", choices=METHODS, default="auto",
                   help="branch and bound: auto (input splitting for at most 16 input dimensions of non-zero "
                        "width, else on ReLU phases), input-split, bab (ReLU phases), none")


def _short_vector(name: str, v: np.ndarray, limit: int = 4) -> str:
    v = np.asarray(v, np.float64).ravel()
    shown = ", ".join(f"{name}_{i}={x:.6g}" for i, x in enumerate(v[:limit]))
    return shown + (f", ... ({v.size} values)" if v.size > limit else "")


def _run_verify(args: argparse.Namespace) -> int:
    from .verify import verify
    from .vnncomp import load_network, write_result
    from .vnnlib import load_vnnlib

    net = load_network(args.network)
    spec = load_vnnlib(args.property, net)
    progress = (lambda report: print(_progress_line(report), file=sys.stderr, flush=True)) if args.verbose else None
    v = verify(net, spec, domain=args.domain, timeout=args.timeout, memory_budget=args.memory,
               storage=args.storage, seed=args.seed, method=args.method, progress=progress)
    stats = v.stats
    head = f"{v.status} ({v.result}) in {stats.get('time_s', 0.0):.2f} s, {stats.get('boxes', 0)} boxes"
    if v.status == "violated":
        x, _ = v.counterexample
        x = np.asarray(x, np.float64)
        y = net.forward(x.reshape((1,) + tuple(net.input_shape)))[0]
        if not bool(spec.is_counterexample(x.ravel(), y)):  # verify re-checks too; never report an unchecked sat
            if args.out:
                from .vnncomp import atomic_write_text

                atomic_write_text(args.out, "unknown\n")
            raise ValueError("the counterexample found did not re-check (x outside the box or net(x) safe); "
                             "reported unknown")
        print(f"{head}: counterexample checked by a concrete forward pass: {_short_vector('X', x)}; "
              f"{_short_vector('Y', y)}")
    else:
        bab = stats.get("bab")
        detail = (f"ReLU branch and bound: {bab['subproblems']} sub-problems, depth {bab['max_depth']}, "
                  f"{bab['time_bounding_s']:.1f} s bounding, {bab['time_branching_s']:.1f} s branching"
                  if bab else f"{stats.get('analyses', 0)} analyses")
        print(f"{head}, {detail}, {stats.get('samples', 0)} samples ({args.domain})")
    if args.out:
        write_result(args.out, v, net.input_size)
    return 0


register_command("verify", "decide a VNN-LIB property (VNN-COMP result format with --out)", _configure_verify,
                 _run_verify)


# ---------------------------------------------------------------------- run-benchmark
def _configure_run_benchmark(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory", help="VNN-COMP benchmark folder (with instances.csv)")
    p.add_argument("--timeout-scale", type=_positive_float, default=1.0, metavar="K",
                   help="multiply every instance's timeout by K (default 1)")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="instances verified at once (default 1)")
    p.add_argument("--out", metavar="CSV", default="results.csv", help="results file (default results.csv)")
    p.add_argument("--domain", choices=DOMAINS, default="deeppoly")
    p.add_argument("--executor", choices=("local", "dask", "inline"), default="local",
                   help="local: a fresh process per instance; dask: a distributed scheduler (--scheduler); "
                        "inline: this process, one at a time (debugging)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None, help="Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N instances")
    p.add_argument("--filter", default=None, metavar="SUBSTRING",
                   help="only instances whose network or property path contains SUBSTRING")
    p.add_argument("--stats", metavar="JSONL", default=None,
                   help="also write each finished instance's search statistics (sub-problems, bounds, why it "
                        "stopped) as one JSON line")
    _add_method(p)


def _stats_line(row) -> str:
    """One instance's result and statistics as a JSON line (numpy scalars as numbers)."""
    import json

    def plain(v):
        return v.item() if isinstance(v, np.generic) else str(v)

    return json.dumps({"onnx": str(row.instance.onnx), "vnnlib": str(row.instance.vnnlib), "status": row.status,
                       "time_s": row.time_s, "error": row.error, "stats": row.stats}, default=plain) + "\n"


def _benchmark_summary(rows, total: int) -> str:
    from .vnncomp import summary_table

    headers, table = summary_table(rows)
    done = f"{len(rows)} of {total} instances" if len(rows) != total else f"{total} instances"
    return f"{done}\n" + format_table(headers, table, align="l" + "r" * (len(headers) - 1))


def _run_run_benchmark(args: argparse.Namespace) -> int:
    from .vnncomp import BenchmarkInterrupted, run_benchmark

    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    if args.executor == "dask" and not args.scheduler:
        raise ValueError("--executor dask needs --scheduler ADDRESS")

    stats_file = open(args.stats, "w") if args.stats else None

    def progress(done: int, total: int, row) -> None:
        why = row.error or ("" if row.status == "holds" else (row.stats.get("bab") or {}).get("reason", ""))
        detail = f" ({why})" if why else ""
        print(f"[{done}/{total}] {row.instance.name} {row.status} {row.time_s:.2f} s{detail}", file=sys.stderr,
              flush=True)
        if stats_file is not None:
            stats_file.write(_stats_line(row))
            stats_file.flush()

    try:
        rows = run_benchmark(args.directory, timeout_scale=args.timeout_scale, jobs=args.jobs, out=args.out,
                             domain=args.domain, progress=progress, executor=args.executor,
                             scheduler=args.scheduler, limit=args.limit, filter=args.filter,
                             options=None if args.method == "auto" else {"method": args.method})
    except BenchmarkInterrupted as exc:
        print("interrupted: partial summary of the finished instances "
              f"(written to {args.out})", file=sys.stderr)
        print(_benchmark_summary(exc.rows, exc.total))
        raise
    finally:
        if stats_file is not None:
            stats_file.close()
    print(_benchmark_summary(rows, len(rows)))
    print(f"results written to {args.out}")
    return 0


register_command("run-benchmark", "verify every instance of a VNN-COMP benchmark folder", _configure_run_benchmark,
                 _run_run_benchmark)


# -------------------------------------------------------------------------- hierarchy
def _radius(text: str) -> float:
    from .hierarchy.images import parse_eps

    try:
        return parse_eps(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _configure_hierarchy(p: argparse.ArgumentParser) -> None:
    from .hierarchy import BUNDLED
    from .hierarchy.images import Layout

    p.add_argument("network", help="ONNX file (a classifier: one output per class)")
    p.add_argument("--hierarchy", required=True, metavar="H.json",
                   help=f"class hierarchy file, or a bundled one: {', '.join(BUNDLED)}")
    p.add_argument("--data", required=True, metavar="CSV", help="images: label, then the pixel values, one per line")
    p.add_argument("--eps", required=True, type=_radius, metavar="E",
                   help="L-inf radius in scaled pixel units (after --scale, before --mean/--std), e.g. 2/255")
    p.add_argument("--domain", choices=DOMAINS, default="deeppoly")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N images")
    p.add_argument("--out", metavar="CSV", default=None, help="write one row per image here")
    p.add_argument("--scale", type=_positive_float, default=1.0, help="divide pixel values by this (e.g. 255)")
    p.add_argument("--mean", type=float, nargs="+", default=[0.0], metavar="M", help="per-channel mean (1 or C values)")
    p.add_argument("--std", type=_positive_float, nargs="+", default=[1.0], metavar="S",
                   help="per-channel standard deviation (1 or C values)")
    p.add_argument("--layout", choices=[m.value for m in Layout], default="CHW",
                   help="pixel order in the CSV: CHW (channel planes) or HWC (channels interleaved, ERAN CIFAR)")
    p.add_argument("--no-clip", action="store_true", help="do not clip the perturbed pixels to [0, 1]")
    p.add_argument("--timeout", type=_positive_float, default=None, metavar="S", help="seconds per image")
    p.add_argument("--seed", type=int, default=0, help="seed of the counterexample search")


def _load_hierarchy_arg(text: str, n_outputs: int):
    from pathlib import Path

    from .hierarchy import BUNDLED, bundled_path, load_hierarchy

    path = Path(text)
    if not path.exists() and text in BUNDLED:
        path = bundled_path(text)
    elif not path.is_file():
        raise FileNotFoundError(f"no hierarchy file {text!r} (bundled hierarchies: {', '.join(BUNDLED)})")
    return load_hierarchy(path, n_outputs=n_outputs)


def _run_hierarchy(args: argparse.Namespace) -> int:
    import time

    from .hierarchy import HierarchyOptions
    from .hierarchy.images import ImageFormat, Layout, read_image_csv
    from .hierarchy.report import summary_table, verify_images, write_per_image_csv
    from .vnncomp import load_network

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    net = load_network(args.network)
    hierarchy = _load_hierarchy_arg(args.hierarchy, net.output_size)
    fmt = ImageFormat(tuple(net.input_shape), args.scale, tuple(args.mean), tuple(args.std), Layout(args.layout),
                      None if args.no_clip else (0.0, 1.0))
    labels, values = read_image_csv(args.data, net.input_size, args.limit)
    options = HierarchyOptions(seed=args.seed, timeout=args.timeout)
    t0 = time.perf_counter()

    def progress(done: int, total: int, r) -> None:
        levels = " ".join(f"L{res.level}={res.status.value}" for res in r.levels)
        print(f"[{done}/{total}] label {r.label} prediction {r.prediction}: {levels} ({r.stats['time_s']:.2f} s)",
              file=sys.stderr, flush=True)

    results = verify_images(net, hierarchy, fmt, labels, values, args.eps, args.domain, options, progress)
    print(f"{args.network}: hierarchy {hierarchy.name!r} (levels 0..{hierarchy.depth}), eps {args.eps:.6g}, "
          f"{args.domain}, {len(results)} images in {time.perf_counter() - t0:.1f} s")
    headers, rows = summary_table(hierarchy, results)
    print(format_table(headers, rows, align="ll" + "r" * (len(headers) - 2)))
    print(f"abstract safe at some level but not robust: {sum(r.abstract_only for r in results)} of "
          f"{len(results)} images; accuracy at the centres: {sum(r.prediction == r.label for r in results)} "
          f"of {len(results)}")
    if args.out:
        write_per_image_csv(args.out, hierarchy, results)
        print(f"per-image results written to {args.out}")
    return 0


register_command("hierarchy", "abstract safety of a classifier under a class hierarchy, over a CSV of images",
                 _configure_hierarchy, _run_hierarchy)

# ----------------------------------------------------------------------- monitor-bench
def _names(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _configure_monitor_bench(p: argparse.ArgumentParser) -> None:
    from .monitors import CASES, FUSION_RULES, MONITORS
    from .monitors.bench import BenchOptions
    from .monitors.ood import DEFAULT_OOD, OOD_SETS

    d = BenchOptions()
    p.add_argument("network", help="ONNX file, or a bundled zoo network (digits_mlp, digits_cnn)")
    p.add_argument("--data", choices=list(CASES), default="digits",
                   help="in-distribution data: digits (scikit-learn digits, zoo splits) or csv (--data-file)")
    p.add_argument("--data-file", metavar="CSV", default=None,
                   help="label-first CSV of images, pixels 0..255 (with --data csv), e.g. the MNIST test rows")
    p.add_argument("--monitors", type=_names, default=d.monitors, metavar="LIST",
                   help=f"comma-separated monitor types (default all: {','.join(MONITORS)})")
    p.add_argument("--layer-fusion", type=_names, default=d.layer_fusion, metavar="RULES",
                   help=f"rules combining each monitor type's layers ({','.join(FUSION_RULES)}; '' for none)")
    p.add_argument("--fusion", type=_names, default=d.fusion, metavar="RULES",
                   help="rules combining all monitors (default max,mean,logistic; '' for none)")
    p.add_argument("--ood", type=_names, default=DEFAULT_OOD, metavar="LIST",
                   help=f"OoD sets ({','.join(OOD_SETS)})")
    p.add_argument("--accept", type=float, default=d.accept_rate, metavar="RATE",
                   help="share of correct validation predictions the threshold accepts (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="seed of the splits and OoD sets")
    p.add_argument("--csv", metavar="FILE", default=None, help="write every figure, one row per monitor and task")
    p.add_argument("--plot", metavar="PNG", default=None, help="risk/coverage curves (needs matplotlib: extra 'plot')")


def _load_named_network(text: str) -> Network:
    from pathlib import Path

    from . import zoo
    from .onnx_import import load_onnx

    stem = text[:-5] if text.endswith(".onnx") else text
    if not Path(text).exists() and stem in zoo.BUNDLED_NETWORKS:
        return zoo.load(stem)
    return load_onnx(text)


def _run_monitor_bench(args: argparse.Namespace) -> int:
    from .monitors import CASES
    from .monitors.bench import BenchOptions, format_report, plot_risk_coverage, run_bench, write_csv

    if not 0 < args.accept <= 1:
        raise ValueError(f"--accept must be in (0, 1], got {args.accept}")
    net = _load_named_network(args.network)
    case = CASES[args.data](net.input_shape, args.ood, args.seed, path=args.data_file)
    options = BenchOptions(monitors=args.monitors, layer_fusion=args.layer_fusion, fusion=args.fusion,
                           accept_rate=args.accept)
    result = run_bench(net, case, options)
    print(format_report(result))
    if args.csv:
        write_csv(result, args.csv)
        print(f"figures written to {args.csv}")
    if args.plot:
        if plot_risk_coverage(result, args.plot):
            print(f"risk/coverage plot written to {args.plot}")
        else:
            print("no plot: matplotlib is not installed (pip install absint[plot])", file=sys.stderr)
    return 0


register_command("monitor-bench", "fit runtime monitors of internal layers and report OoD / error detection",
                 _configure_monitor_bench, _run_monitor_bench)


# ------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="absint", description="Memory-bounded abstract interpretation "
                                     "of neural networks (interval, zonotope, DeepPoly).")
    parser.add_argument("--version", action="version", version=f"absint {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, configure, runner) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks of errors")
        configure(p)
        p.set_defaults(run=runner)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    terminated = []

    def on_sigterm(signum, frame):
        terminated.append(signum)
        raise KeyboardInterrupt

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if in_main else None
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print(f"absint: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 143 if terminated else 130
    except (AbsintError, StorageError, OSError, ValueError, ImportError) as exc:
        if args.debug:
            raise
        print(f"absint: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
