"""The ``absint`` command line: ``absint info NET``, ``absint demo``, ``absint --version``.

Errors print one line ``absint: error: ...`` on stderr and exit 1 (2 for usage errors, 130 on
Ctrl-C); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
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


DEMO_DOMAINS = ("interval", "zonotope", "deeppoly")


def _run_demo(args: argparse.Namespace) -> int:
    from . import zoo
    from .analysis import analyze
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
                row.append(f"{np.mean(res.width):.3g} ({res.stats['time_s'] * 1000:.0f} ms)")
            table.append(row)
        print(format_table(["property", "centre class", f"unsafe of {args.samples} samples"]
                           + [f"{d} mean width (time)" for d in DEMO_DOMAINS], table, align="lrrrrr"))
        print()
    print("(verdicts arrive with the verification front end; this demo samples the properties and "
          "compares the output bounds of the three domains)")
    return 0


register_command("demo", "run the bundled example networks and properties", _configure_demo, _run_demo)


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
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("absint: interrupted", file=sys.stderr)
        return 130
    except (AbsintError, StorageError, OSError, ValueError) as exc:
        if args.debug:
            raise
        print(f"absint: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
