"""Case study: robustness vs abstract safety under the CIFAR-10 class hierarchy (oval21 networks).

    python perf/hierarchy_case_study.py [--nets cifar_base_kw,cifar_wide_kw] [--images 100]
                                        [--eps 0.5,1,2,4,8] [--domains interval,zonotope,deeppoly]
                                        [--hierarchy cifar10_deep] [--csv summary.csv]
                                        [--per-image per_image.csv] [--quick]

Input convention of the oval21 networks (measured, see README): x = (p/255 - mean_c) / 0.225 with
mean = (0.485, 0.456, 0.406), pixels of ``data/cifar10_test.csv`` in HWC order (ERAN layout); eps is
in pixel units /255, clipped to [0, 1] in pixel space, so the normalised radius is eps / 0.225.
``--nets digits_mlp,digits_cnn`` runs the bundled digits networks instead (no benchmarks needed;
their test split, hierarchy digits_shapes, eps in [0, 1] pixel units /255 too unless --eps-unit 1).

Per network, eps and domain: robust count (level 0), abstract-safe counts per level (robust or safe),
unsafe counts per level (checked counterexamples), and the number of images abstract safe at some
level without being robust. Each domain bounds all levels in one analysis (plus one refinement); the
counterexample search runs once per (image, eps) for the levels no domain proved, and a counterexample
found at a smaller eps is reused (the balls are nested). The script fails (exit 1) if abstract safety
is ever less frequent than robustness at some level.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from absint.hierarchy import (HierarchyOptions, Status, attack_levels, bound_levels, bundled,  # noqa: E402
                              classify, level_region)
from absint.hierarchy.images import ImageFormat, Layout, read_image_csv  # noqa: E402
from absint.tables import format_table  # noqa: E402
from tests._bench import benchmarks_dir  # noqa: E402

OVAL_NETS = ("cifar_base_kw", "cifar_wide_kw")
DIGITS_NETS = ("digits_mlp", "digits_cnn")
EPS_PIXELS = (0.5, 1.0, 2.0, 4.0, 8.0)
DOMAINS = ("interval", "zonotope", "deeppoly")
#: measured input convention of the oval21 networks
LETTER = {"robust": "R", "safe": "S", "unsafe": "X", "unknown": "?"}
OVAL_MEAN, OVAL_STD = (0.485, 0.456, 0.406), (0.225,)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nets", default=",".join(OVAL_NETS))
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--eps", default=",".join(f"{e:g}" for e in EPS_PIXELS), help="pixel units (/255)")
    p.add_argument("--domains", default=",".join(DOMAINS))
    p.add_argument("--hierarchy", default=None, help="bundled name (default cifar10_deep; digits_shapes for digits)")
    p.add_argument("--csv", default=None, help="summary table as CSV")
    p.add_argument("--per-image", default=None, help="one row per (net, eps, domain, image)")
    p.add_argument("--samples", type=int, default=128)
    p.add_argument("--pgd-steps", type=int, default=12)
    p.add_argument("--quick", action="store_true",
                   help="3 images, eps 1 and 4, one network (cifar_base_kw, or digits_mlp without benchmarks)")
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.eps = 3, "1,4"
        args.nets = OVAL_NETS[0] if _oval_dir() is not None else DIGITS_NETS[0]
    return args


def _oval_dir() -> Path | None:
    root = benchmarks_dir()
    if root is None or not (root / "oval21" / "nets").is_dir() or not (root / "data" / "cifar10_test.csv").is_file():
        return None
    return root


def load_case(name: str, n_images: int):
    """(network, hierarchy name, ImageFormat, labels, CSV values) of one network."""
    from absint import load_onnx
    import absint.zoo as zoo

    if name in DIGITS_NETS:
        net = zoo.load(name)
        _, _, x, y = zoo.digits_data()
        fmt = ImageFormat(net.input_shape, scale=1.0)
        return net, "digits_shapes", fmt, y[:n_images], x[:n_images].reshape(len(x[:n_images]), -1)
    root = _oval_dir()
    if root is None:
        raise SystemExit(f"{name}: the oval21 benchmarks or data/cifar10_test.csv are missing "
                         "(set ABSINT_BENCHMARKS)")
    net = load_onnx(root / "oval21" / "nets" / f"{name}.onnx")
    fmt = ImageFormat(net.input_shape, scale=255.0, mean=OVAL_MEAN, std=OVAL_STD, layout=Layout.HWC)
    labels, values = read_image_csv(root / "data" / "cifar10_test.csv", net.input_size, n_images)
    return net, "cifar10_deep", fmt, labels, values


def accuracy_table(nets: list[str], n_images: int) -> list[list]:
    """Accuracy on the test images under the measured convention and under the wrong layout (a check)."""
    rows = []
    for name in nets:
        net, _, fmt, labels, values = load_case(name, n_images)
        right = np.mean(np.argmax(net.forward(fmt.inputs(values)), 1) == labels)
        other = Layout.CHW if fmt.layout is Layout.HWC else Layout.HWC
        wrong_fmt = ImageFormat(fmt.input_shape, fmt.scale, fmt.mean, fmt.std, other)
        wrong = np.mean(np.argmax(net.forward(wrong_fmt.inputs(values)), 1) == labels)
        rows.append([name, len(labels), f"{right:.2f} ({fmt.layout.value})", f"{wrong:.2f} ({other.value})"])
    return rows


def _reuse(net, box, label, hierarchy, known) -> dict:
    """Counterexamples of a smaller ball that are also in this box and still leave the group."""
    found = {}
    for x, _ in known:
        if not bool(box.contains(x[None])[0]):
            continue
        y = net.forward(x[None])[0]
        for level in hierarchy.levels:
            if level not in found and bool(level_region(hierarchy, label, level, box).is_unsafe(y)):
                found[level] = (x, y)
    return found


def run_network(name: str, args, log=print) -> list[dict]:
    """One dict per (eps, domain, image): statuses per level, lower bounds, times."""
    net, h_name, fmt, labels, values = load_case(name, args.images)
    hierarchy = bundled(args.hierarchy or h_name)
    options = HierarchyOptions(samples=args.samples, pgd_steps=args.pgd_steps)
    domains = args.domains.split(",")
    eps_list = [float(e) for e in args.eps.split(",")]
    pixels = fmt.pixels(values)
    rows = []
    for k, (label, p) in enumerate(zip(labels, pixels)):
        known: list = []
        x = fmt.normalise(p)
        prediction = int(np.argmax(net.forward(x[None])[0]))
        for eps in eps_list:
            box = fmt.linf_box(p, eps / 255.0)
            bounds, times = {}, {}
            for domain in domains:
                t0 = time.perf_counter()
                bounds[domain] = bound_levels(net, box, int(label), hierarchy, domain, x=x, options=options).lower
                times[domain] = time.perf_counter() - t0
            proved = {lv for lv in hierarchy.levels if any(b[lv] > 0 for b in bounds.values())}
            t0 = time.perf_counter()
            cex = _reuse(net, box, int(label), hierarchy, known)
            open_levels = set(hierarchy.levels) - proved - set(cex)
            if open_levels:
                cex.update(attack_levels(net, box, int(label), hierarchy, skip=set(hierarchy.levels) - open_levels,
                                         x=x, options=options))
            known.extend(cex.values())
            attack_s = time.perf_counter() - t0
            for domain in domains:
                levels = classify(hierarchy, int(label), bounds[domain], cex)
                row = {"net": name, "eps": eps, "domain": domain, "image": k, "label": int(label),
                       "prediction": prediction, "analysis_s": round(times[domain], 4), "attack_s": round(attack_s, 4)}
                for res in levels:
                    row[f"level{res.level}"] = res.status.value
                    row[f"level{res.level}_lower"] = float(f"{res.lower_bound:.6g}")
                rows.append(row)
        log(f"[{name}] image {k + 1}/{len(labels)} label {label} prediction {prediction} "
            f"(levels {''.join(map(str, hierarchy.levels))} per domain; R robust, S safe, X unsafe, ? unknown): "
            + "; ".join(f"eps {e:g}: " + "/".join(
                "".join(LETTER[r[f"level{lv}"]] for lv in hierarchy.levels)
                for r in rows[-len(eps_list) * len(domains):] if r["eps"] == e) for e in eps_list))
    return rows


def summarise(rows: list[dict], levels) -> tuple[list[str], list[list]]:
    """Per (net, eps, domain): images, robust, abstract-safe per level, unsafe per level, abstract-only."""
    keys = sorted({(r["net"], r["eps"], r["domain"]) for r in rows},
                  key=lambda k: (k[0], k[1], DOMAINS.index(k[2]) if k[2] in DOMAINS else 9))
    headers = ["net", "eps (/255)", "domain", "images", "robust"]
    headers += [f"safe L{lv}" for lv in levels[1:]] + [f"unsafe L{lv}" for lv in levels] + ["safe>robust", "s/image"]
    table = []
    for net, eps, domain in keys:
        sel = [r for r in rows if (r["net"], r["eps"], r["domain"]) == (net, eps, domain)]
        proved = {lv: sum(Status(r[f"level{lv}"]).proved for r in sel) for lv in levels}
        unsafe = {lv: sum(r[f"level{lv}"] == "unsafe" for r in sel) for lv in levels}
        only = sum(r["level0"] != "robust" and any(r[f"level{lv}"] == "safe" for lv in levels[1:]) for r in sel)
        table.append([net, f"{eps:g}", domain, len(sel), proved[0]] + [proved[lv] for lv in levels[1:]]
                     + [unsafe[lv] for lv in levels] + [only, f"{np.mean([r['analysis_s'] for r in sel]):.2f}"])
    return headers, table


def check_implication(headers: list[str], table: list[list]) -> list[str]:
    """Rows where some level has fewer abstract-safe images than robust ones (must be none)."""
    robust = headers.index("robust")
    safe_cols = [i for i, h in enumerate(headers) if h.startswith("safe L")]
    return [f"{row[:3]}: robust {row[robust]} > {headers[i]} {row[i]}" for row in table for i in safe_cols
            if row[i] < row[robust]]


def write_csv(path, headers, table) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(headers)
        w.writerows(table)


def run(args, log=print) -> tuple[list[dict], list[str], list[list]]:
    rows = []
    levels = None
    for name in args.nets.split(","):
        rows += run_network(name, args, log)
    for name in args.nets.split(","):
        levels = bundled(args.hierarchy or load_case(name, 1)[1]).levels
    headers, table = summarise(rows, levels)
    return rows, headers, table


def main(argv=None) -> int:
    args = parse_args(argv)
    nets = args.nets.split(",")
    print("accuracy on the test images (measured input convention vs the other pixel layout):")
    print(format_table(["net", "images", "accuracy", "wrong layout"], accuracy_table(nets, args.images)))
    t0 = time.perf_counter()
    rows, headers, table = run(args, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"\n{len(rows)} verdicts in {time.perf_counter() - t0:.0f} s; counts of images "
          "(safe Lk = robust or safe at level k; unsafe = checked counterexample):")
    print(format_table(headers, table, align="lrl" + "r" * (len(headers) - 3)))
    if args.csv:
        write_csv(args.csv, headers, table)
    if args.per_image:
        keys = list(rows[0])
        write_csv(args.per_image, keys, [[r[k] for k in keys] for r in rows])
    bad = check_implication(headers, table)
    for line in bad:
        print(f"VIOLATION (abstract safety must be implied by robustness): {line}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
