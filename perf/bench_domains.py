"""Speed and memory of ``absint.analyze`` per network family and domain, against a forward-pass floor.

    python perf/bench_domains.py [--families acasxu mnistfc oval21 zoo] [--domains ...]
                                 [--repeat 5] [--csv out.csv] [--quick] [--no-jit]

Each (network, domain) runs in a fresh child process (clean RSS, a time limit, and an
out-of-memory kill cannot take the whole run down): one warm-up ``analyze``, then the median
wall time of ``--repeat`` runs (fewer if ``--case-seconds`` is used up). Memory: the largest
``stats["peak_bytes"]`` and the largest RSS growth seen by a psutil thread sampling every
2 ms, both relative to the RSS just before a run. ``symbols`` is the row count the domain
carries: zonotope generators at the output, the input dimension for DeepPoly (its
back-substitution carries one coefficient per input), 1 for intervals (centre + radius).
THE FLOOR is the median time of ``net.forward(X)`` with X of shape (symbols + 1, *input_shape):
the cost of pushing the same number of rows through the network concretely (done in row
blocks of at most ``--floor-block-mib`` of activations, same arithmetic, bounded memory).
``ratio = analysis time / floor``.

A second table times the very first ``analyze`` in fresh processes (ACAS Xu 1_1, prop_1),
twice per domain, to show whether numba's ``cache=True`` is reused across processes (the
second process should find the cache the first one wrote); ``stats["jit_s"]`` is shown too.

On a shared machine pass ``--threads 1``: BLAS / numba worker threads that spin while another
process holds the core can make a 5 ms analysis take 50 ms.

Zonotope cases whose dense generator matrix could exceed ``--max-gib`` (estimate: one symbol
per ReLU neuron whose interval bounds cross 0, every neuron of other activations) are skipped
with the estimate printed; raise the limit to run them.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from perf._measure import RssSampler  # noqa: E402  (shared with memory_budget.py)

DOMAINS = ("interval", "zonotope", "deeppoly")
FAMILIES = ("acasxu", "mnistfc", "oval21", "zoo")
ACAS_NETS = ("1_1", "2_3", "5_9")
ACAS_PROPS = ("prop_1", "prop_2")
MNIST_NETS = ("256x2", "256x4", "256x6")
OVAL_NETS = ("cifar_base_kw", "cifar_wide_kw")
CIFAR_WIDTHS = (4, 16)
QUICK_CASES = ("acasxu/1_1/prop_1", "mnistfc/256x2", "zoo/digits_mlp", "zoo/digits_cnn")
CHILD_TAG = "@@BENCH_RESULT@@ "


# ---------------------------------------------------------------------------------------------
# cases: a case id names a (network, input box) pair; load_case rebuilds it in any process
# ---------------------------------------------------------------------------------------------

def _bench_root() -> Path | None:
    from tests._bench import benchmarks_dir

    return benchmarks_dir()


def _instances(family: str) -> list[tuple[Path, Path]]:
    from tests._bench import benchmark_instances

    return [(onnx, vnnlib) for _, onnx, vnnlib, _ in benchmark_instances(family)]


def case_ids(families: list[str], quick: bool) -> tuple[list[str], list[str]]:
    """The case ids to run and notes on the ones that cannot be (benchmarks missing)."""
    ids, notes = [], []
    root = _bench_root()
    for fam in families:
        if fam == "zoo":
            ids += ["zoo/digits_mlp", "zoo/digits_cnn"] + [f"zoo/cifar_conv{w}" for w in CIFAR_WIDTHS]
            continue
        if root is None or not (root / fam).is_dir():
            notes.append(f"{fam}: skipped, benchmarks not found (set ABSINT_BENCHMARKS)")
            continue
        if fam == "acasxu":
            ids += [f"acasxu/{n}/{p}" for n in ACAS_NETS for p in ACAS_PROPS]
        elif fam == "mnistfc":
            ids += [f"mnistfc/{n}" for n in MNIST_NETS]
        elif fam == "oval21":
            ids += [f"oval21/{n}" for n in OVAL_NETS]
        else:
            raise SystemExit(f"unknown family {fam!r}; choose from {', '.join(FAMILIES)}")
    if quick:
        ids = [c for c in ids if c in QUICK_CASES]
    return ids, notes


def load_case(case: str):
    """(network, absint.Box) of a case id; the first region of the case's property."""
    import absint
    import absint.zoo as zoo

    parts = case.split("/")
    fam = parts[0]
    if fam == "zoo":
        name = parts[1]
        if name.startswith("cifar_conv"):
            net = zoo.cifar_conv(int(name[len("cifar_conv"):]))
            return net, absint.Box.linf(zoo.cifar_conv_input(), zoo.CIFAR_EPS)
        net = zoo.load(name)
        prop = next(p["file"] for p in zoo.manifest()["properties"] if p["network"] == name)
        lo, hi, _ = absint.load_vnnlib(zoo.path(prop), net).regions[0]
        return net, absint.Box(lo, hi)
    root = _bench_root()
    if root is None:
        raise FileNotFoundError("benchmarks not found: set ABSINT_BENCHMARKS")
    if fam == "acasxu":
        onnx = root / "acasxu" / f"ACASXU_run2a_{parts[1]}_batch_2000.onnx"
        vnnlib = root / "acasxu" / f"{parts[2]}.vnnlib"
    else:  # mnistfc / oval21: the first instances.csv line of that network
        key = {"mnistfc": f"mnist-net_{parts[1]}.onnx", "oval21": f"{parts[1]}.onnx"}[fam]
        onnx, vnnlib = next((o, v) for o, v in _instances(fam) if o.name == key)
    net = absint.load_onnx(onnx)
    lo, hi, _ = absint.load_vnnlib(vnnlib, net).regions[0]
    return net, absint.Box(lo, hi)


def zonotope_bytes_estimate(net, box=None) -> int:
    """Dense zonotope memory estimate: max over nodes of symbols × (n_in + n_out) × 8 bytes.

    Symbols start at the input size; an activation adds one per neuron that can be non-linear:
    with ``box``, the ReLU neurons whose interval bounds cross 0 (zonotope bounds lie inside the
    interval bounds, so this is an upper bound), otherwise every activation neuron.
    """
    import numpy as np

    from absint.network import NETWORK_INPUT, MaxPool2d, ReLU, Sigmoid, Tanh

    bounds = None
    if box is not None:
        import absint

        bounds = absint.analyze(net, box, domain="interval").layer_bounds
    symbols, worst = net.input_size, 0
    for node in net.nodes:
        n_in = sum(net.input_size if i == NETWORK_INPUT else net.nodes[i].size for i in node.inputs)
        if isinstance(node.layer, ReLU) and bounds is not None:
            src = node.inputs[0]
            lo, hi = (box.lower.ravel(), box.upper.ravel()) if src == NETWORK_INPUT else bounds[src]
            symbols += int(np.count_nonzero((lo < 0) & (hi > 0)))
        elif isinstance(node.layer, (ReLU, Sigmoid, Tanh, MaxPool2d)):
            symbols += node.size
        worst = max(worst, symbols * (n_in + node.size) * 8)
    return worst


# ---------------------------------------------------------------------------------------------
# child: measure one (case, domain) and print a JSON line
# ---------------------------------------------------------------------------------------------

def symbols_of(domain: str, net, res) -> int:
    """Rows the domain carries: zonotope generators at the output, input size (DeepPoly), 1 (interval)."""
    if domain == "zonotope":
        return int(res.stats["n_symbols"][-1])
    if domain == "deeppoly":
        return int(net.input_size)
    return 1


def forward_floor(net, box, rows: int, repeat: int, block_bytes: int) -> tuple[float, int]:
    """Median seconds of net.forward on ``rows`` points of ``box`` (row blocks bounded by block_bytes)."""
    import numpy as np

    widest = max([net.input_size] + [n.size for n in net.nodes])
    block = max(1, min(rows, block_bytes // (8 * widest)))
    rng = np.random.default_rng(0)
    lo, hi = box.lower.reshape(-1), box.upper.reshape(-1)
    X = (lo + (hi - lo) * rng.random((block, lo.size))).reshape((block,) + tuple(net.input_shape))
    net.forward(X[:1])  # warm-up (first-touch, any lazy setup)
    full, rest = divmod(rows, block)
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        for _ in range(full):
            net.forward(X)
        if rest:
            net.forward(X[:rest])
        times.append(time.perf_counter() - t0)
    return statistics.median(times), block


def measure(case: str, domain: str, repeat: int, case_seconds: float, block_bytes: int) -> dict:
    import numpy as np

    import absint

    net, box = load_case(case)
    out = {"case": case, "domain": domain, "input_size": int(net.input_size), "n_out": int(net.output_size)}
    t0 = time.perf_counter()
    res = absint.analyze(net, box, domain=domain)  # warm-up: JIT (or cache load), first touch
    out["warmup_s"] = time.perf_counter() - t0
    times, stats_peak, sampled = [], [], []
    spent = out["warmup_s"]
    for k in range(repeat):
        if k > 0 and spent > case_seconds:
            break
        with RssSampler() as sampler:
            t0 = time.perf_counter()
            res = absint.analyze(net, box, domain=domain)
            dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
        stats_peak.append(int(res.stats["peak_bytes"]))
        sampled.append(sampler.growth)
    out.update(runs=len(times), median_s=statistics.median(times), min_s=min(times),
               stats_time_s=float(res.stats["time_s"]), stats_peak_bytes=max(stats_peak),
               sampled_peak_bytes=max(sampled), symbols=symbols_of(domain, net, res),
               mean_width=float(np.mean(res.upper - res.lower)))
    floor_repeat = max(1, min(repeat, 3) if out["median_s"] > 5 else repeat)
    out["floor_s"], out["floor_block"] = forward_floor(net, box, out["symbols"] + 1, floor_repeat, block_bytes)
    out["ratio"] = out["median_s"] / out["floor_s"] if out["floor_s"] > 0 else float("inf")
    return out


THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def child_env(threads: int | None) -> dict:
    """The environment of a child process, with the BLAS/numba thread counts pinned if asked."""
    env = dict(os.environ)
    if threads is not None:
        env.update({k: str(threads) for k in THREAD_VARS})
    return env


def run_child(case: str, domain: str, args) -> dict:
    """Runs ``measure`` in a fresh interpreter; a dict with 'error' when it fails or times out."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", case, domain, "--repeat", str(args.repeat),
           "--case-seconds", str(args.case_seconds), "--floor-block-mib", str(args.floor_block_mib)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=str(REPO),
                              env=child_env(args.threads))
    except subprocess.TimeoutExpired:
        return {"case": case, "domain": domain, "error": f"timeout after {args.timeout:g} s"}
    for line in proc.stdout.splitlines():
        if line.startswith(CHILD_TAG):
            return json.loads(line[len(CHILD_TAG):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"case": case, "domain": domain, "error": f"exit {proc.returncode}: {tail[:120]}"}


# ---------------------------------------------------------------------------------------------
# JIT cost: first analyze in a fresh process
# ---------------------------------------------------------------------------------------------

JIT_SNIPPET = r"""
import json, sys, time
t0 = time.perf_counter()
import absint
t_import = time.perf_counter() - t0
sys.path.insert(0, {repo!r})
from perf.bench_domains import load_case
net, box = load_case("acasxu/1_1/prop_1")
t0 = time.perf_counter(); res = absint.analyze(net, box, domain={domain!r}); first = time.perf_counter() - t0
t0 = time.perf_counter(); absint.analyze(net, box, domain={domain!r}); second = time.perf_counter() - t0
jit = res.stats.get("jit_s")
print({tag!r} + json.dumps({{"import_s": t_import, "first_s": first, "second_s": second, "jit_s": jit}}))
"""


def jit_cost(domains: list[str], timeout: float, threads: int | None = None) -> list[list]:
    """Per domain: import time, first-call s in two successive fresh processes, warm ms."""
    rows = []
    for domain in domains:
        runs = []
        for _ in range(2):
            code = JIT_SNIPPET.format(repo=str(REPO), domain=domain, tag=CHILD_TAG)
            try:
                proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                      timeout=timeout, cwd=str(REPO), env=child_env(threads))
                line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(CHILD_TAG)), None)
                runs.append(json.loads(line[len(CHILD_TAG):]) if line else None)
            except subprocess.TimeoutExpired:
                runs.append(None)
        if any(r is None for r in runs):
            rows.append([domain, "failed", "", "", "", ""])
            continue
        jit = [r["jit_s"] for r in runs]
        rows.append([domain, round(runs[0]["import_s"], 2), round(runs[0]["first_s"], 3), round(runs[1]["first_s"], 3),
                     "/".join("-" if j is None else f"{j:.3f}" for j in jit),
                     round(1000 * statistics.median([r["second_s"] for r in runs]), 2)])
    return rows


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------

COLUMNS = ["case", "domain", "runs", "median_s", "stats_peak_bytes", "sampled_peak_bytes", "symbols",
           "mean_width", "floor_s", "ratio", "warmup_s", "error"]


def _fmt_row(r: dict) -> list:
    from absint.tables import format_bytes

    if "error" in r:
        return [r["case"], r["domain"], "-", "-", "-", "-", "-", "-", "-", r["error"]]
    return [r["case"], r["domain"], r["runs"], f"{1000 * r['median_s']:.2f}", format_bytes(r["stats_peak_bytes"]),
            format_bytes(r["sampled_peak_bytes"]), r["symbols"], f"{r['mean_width']:.4g}",
            f"{1000 * r['floor_s']:.3f}", f"{r['ratio']:.1f}"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    ap.add_argument("--domains", nargs="+", default=list(DOMAINS), choices=DOMAINS)
    ap.add_argument("--repeat", type=int, default=5, help="timed runs after the warm-up (median reported)")
    ap.add_argument("--csv", help="also write one row per (case, domain) to this CSV file")
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK_CASES)}; --repeat 3")
    ap.add_argument("--no-jit", action="store_true", help="skip the fresh-process first-call table")
    ap.add_argument("--case-seconds", type=float, default=60.0,
                    help="stop repeating a case once warm-up + runs exceed this (at least one timed run)")
    ap.add_argument("--timeout", type=float, default=900.0, help="kill a case's child process after this many s")
    ap.add_argument("--max-gib", type=float, default=3.0,
                    help="skip zonotope cases whose dense generator estimate exceeds this many GiB")
    ap.add_argument("--floor-block-mib", type=float, default=256.0,
                    help="row block of the floor's forward pass: widest activation block at most this")
    ap.add_argument("--threads", type=int, default=None,
                    help="set OPENBLAS/OMP/MKL/NUMBA thread counts in the child processes (default: inherit)")
    ap.add_argument("--child", nargs=2, metavar=("CASE", "DOMAIN"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    block_bytes = int(args.floor_block_mib * 2**20)

    if args.child:
        res = measure(args.child[0], args.child[1], args.repeat, args.case_seconds, block_bytes)
        print(CHILD_TAG + json.dumps(res), flush=True)
        return 0

    from absint.tables import format_table

    if args.quick and args.repeat == ap.get_default("repeat"):
        args.repeat = 3
    cases, notes = case_ids(args.families, args.quick)
    threads = {k: os.environ.get(k, "unset") for k in THREAD_VARS} if args.threads is None else args.threads
    print(f"absint bench_domains: {len(cases)} networks x {len(args.domains)} domains, repeat {args.repeat}, "
          f"threads {threads}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
    for note in notes:
        print(note)
    results = []
    t_start = time.perf_counter()
    for case in cases:
        est = None
        for domain in args.domains:
            if domain == "zonotope":
                if est is None:
                    est = zonotope_bytes_estimate(*load_case(case))
                if est > args.max_gib * 2**30:
                    results.append({"case": case, "domain": domain,
                                    "error": f"skipped: dense estimate {est / 2**30:.1f} GiB > --max-gib {args.max_gib:g}"})
                    print(f"  {case:24s} {domain:9s} {results[-1]['error']}", flush=True)
                    continue
            r = run_child(case, domain, args)
            results.append(r)
            msg = r["error"] if "error" in r else f"{1000 * r['median_s']:.2f} ms (n={r['runs']}, ratio {r['ratio']:.1f})"
            print(f"  {case:24s} {domain:9s} {msg}", flush=True)
    print()
    headers = ["case", "domain", "runs", "median ms", "stats peak", "sampled peak", "symbols", "mean width",
               "floor ms", "ratio"]
    print(format_table(headers, [_fmt_row(r) for r in results], align="llrrrrrrrr"))
    print(f"\n{len(results)} measurements in {time.perf_counter() - t_start:.0f} s "
          f"(each in a fresh process; median of up to {args.repeat} runs after one warm-up)")

    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            for r in results:
                writer.writerow({k: r.get(k, "") for k in COLUMNS})
        print(f"wrote {args.csv}")

    if not args.no_jit:
        if _bench_root() is None or not (_bench_root() / "acasxu").is_dir():
            print("\nJIT cost: skipped, ACAS Xu benchmarks not found")
        else:
            print("\nJIT cost (ACAS Xu 1_1 prop_1; two successive fresh processes per domain)")
            rows = jit_cost(args.domains, args.timeout, args.threads)
            print(format_table(["domain", "import s", "first-call s (proc 1)", "first-call s (proc 2)",
                                "stats jit_s (1/2)", "warm ms"], rows, align="lrrrrr"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
