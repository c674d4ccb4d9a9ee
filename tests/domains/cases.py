"""Soundness cases shared by the domain tests (import as ``tests.domains.cases``).

Each ``check_*`` function runs the sampling harness (``tests.domains.soundness``) for one domain
on one case: hypothesis-drawn random networks, benchmark networks with their properties' boxes,
and the bundled digits networks. Networks, boxes and sample points are cached per process, so
the tests parametrised over ``DOMAINS`` share the cost of drawing the points.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from absint import load_onnx
from tests._bench import NO_BENCHMARKS, benchmarks_dir
from tests.domains.soundness import check_sound, soundness_points
from tests.random_nets import BOX_MODES, OPS, random_box, random_network

#: every public domain name; the soundness tests are parametrised over these
DOMAINS = ("interval", "zonotope", "deeppoly")

# ------------------------------------------------------------------------ random networks
#: points per random network (small networks: cheap, so many examples instead of many points)
RANDOM_POINTS = 1500
RANDOM_SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def random_cases(draw, forced_op: str | None = None):
    """(ops, seed, box mode): a list of 0-4 random operators, with ``forced_op`` inserted somewhere,
    often followed by an Affine layer: relaxations that lose correlations (symbols, slopes) only
    show once neurons are mixed, the node's own bounds being intersected with interval bounds."""
    ops = draw(st.lists(st.sampled_from(OPS), min_size=0 if forced_op else 1, max_size=4))
    if forced_op is not None:
        ops.insert(draw(st.integers(0, len(ops))), forced_op)
    if ops[-1] != "affine" and draw(st.booleans()):
        ops.append("affine")
    seed = draw(st.integers(0, 2 ** 32 - 1))
    mode = draw(st.sampled_from(BOX_MODES))
    return tuple(ops), seed, mode


@lru_cache(maxsize=128)
def random_case(ops: tuple, seed: int, mode: str, n: int = RANDOM_POINTS):
    """(network, lower, upper, points) of one drawn case; cached, so repeated checks share the points."""
    net = random_network(ops, seed)
    lo, hi = random_box(net.input_shape, mode, seed + 1)
    return net, lo, hi, soundness_points(net, lo, hi, n, seed)


def check_random(domain: str, ops, seed: int, mode: str, n: int = RANDOM_POINTS, **kwargs):
    net, lo, hi, points = random_case(tuple(ops), seed, mode, n)
    return check_sound(net, lo, hi, domain, points=points, **kwargs)


# ------------------------------------------------------------------------- benchmarks
#: (family, onnx, vnnlib (None: the first one listed for the net), number of points); paths relative
#: to the family folder
BENCHMARK_CASES = (
    [("acasxu", f"ACASXU_run2a_{net}_batch_2000.onnx", f"prop_{p}.vnnlib", 6000)
     for net in ("1_1", "3_3", "5_9") for p in (1, 2, 3, 4)]
    + [("mnistfc", f"mnist-net_256x{d}.onnx", f"prop_{img}_{eps}.vnnlib", 3000)
       for d, img, eps in ((2, 0, "0.03"), (2, 2, "0.05"), (4, 4, "0.03"), (4, 6, "0.05"), (6, 8, "0.03"),
                           (6, 10, "0.05"))]
    + [("oval21", "nets/cifar_base_kw.onnx", "vnnlib/cifar_base_kw-img2908-eps0.019869281045751634.vnnlib", 1500),
       ("oval21", "nets/cifar_wide_kw.onnx", None, 1000)]
)
#: (domain, network) pairs whose analysis alone takes many seconds: run only with ABSINT_SLOW_TESTS=1.
#: Empty for now: cifar_wide_kw takes ~2 s in zonotope and deeppoly on an idle 2-core machine.
HEAVY: set[tuple[str, str]] = set()


def benchmark_params():
    return [pytest.param(fam, net, prop, n, id=f"{fam}-{Path(net).stem}-{Path(prop).stem if prop else 'first'}")
            for fam, net, prop, n in BENCHMARK_CASES]


def skip_if_heavy(domain: str, net_file: str) -> None:
    if (domain, net_file) in HEAVY and not os.environ.get("ABSINT_SLOW_TESTS"):
        pytest.skip(f"{domain} analysis of {net_file} is slow; set ABSINT_SLOW_TESTS=1 to run it")


def _benchmark_root() -> Path:
    root = benchmarks_dir()
    if root is None:
        pytest.skip(NO_BENCHMARKS)
    return root


@lru_cache(maxsize=None)
def load_net(path: str):
    return load_onnx(path)


def _load_vnnlib():
    try:
        from absint.vnnlib import load_vnnlib
    except ImportError as exc:
        pytest.skip(f"absint.vnnlib.load_vnnlib is not available: {exc}")
    return load_vnnlib


def _first_property(root: Path, family: str, net: str) -> str:
    """The first property listed for ``net`` in the family's instances.csv."""
    for line in (root / family / "instances.csv").read_text().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2 and parts[0] == net:
            return parts[1]
    pytest.skip(f"{family}/instances.csv lists no property for {net}")


@lru_cache(maxsize=None)
def benchmark_case(family: str, net_file: str, prop: str | None, n: int):
    """(network, lower, upper, points) for the first region of the property."""
    root = _benchmark_root()
    path = root / family / net_file
    if not path.is_file():
        pytest.skip(f"benchmark network {path} is missing")
    prop = prop or _first_property(root, family, net_file)
    net = load_net(str(path))
    spec = _load_vnnlib()(root / family / prop, net)
    lower, upper, _ = spec.regions[0]
    lower = np.asarray(lower, dtype=np.float64).reshape(net.input_shape)
    upper = np.asarray(upper, dtype=np.float64).reshape(net.input_shape)
    return net, lower, upper, soundness_points(net, lower, upper, n, seed=len(prop))


def check_benchmark(domain: str, family: str, net_file: str, prop: str | None, n: int, **kwargs):
    skip_if_heavy(domain, net_file)
    net, lower, upper, points = benchmark_case(family, net_file, prop, n)
    return check_sound(net, lower, upper, domain, points=points, **kwargs)


# ---------------------------------------------------------------------------- zoo
#: (network, test image index, eps, number of points)
ZOO_CASES = [("digits_mlp", 0, 0.05, 6000), ("digits_mlp", 7, 0.02, 4000),
             ("digits_cnn", 0, 0.05, 4000), ("digits_cnn", 7, 0.02, 3000)]


def zoo_params():
    return [pytest.param(*c, id=f"{c[0]}-img{c[1]}-eps{c[2]}") for c in ZOO_CASES]


@lru_cache(maxsize=None)
def _digits_test_images() -> np.ndarray:
    pytest.importorskip("sklearn")
    from absint.zoo import digits_data

    return digits_data()[2]


@lru_cache(maxsize=None)
def zoo_case(name: str, image: int, eps: float, n: int) -> tuple:
    from absint import zoo

    net = zoo.load(name)
    x = _digits_test_images()[image]
    lower, upper = np.clip(x - eps, 0.0, 1.0), np.clip(x + eps, 0.0, 1.0)
    return net, lower, upper, soundness_points(net, lower, upper, n, seed=image)


def check_zoo(domain: str, name: str, image: int, eps: float, n: int, **kwargs):
    net, lower, upper, points = zoo_case(name, image, eps, n)
    return check_sound(net, lower, upper, domain, points=points, **kwargs)


__all__ = ["DOMAINS", "OPS", "HEAVY", "skip_if_heavy", "RANDOM_SETTINGS", "random_cases", "random_case",
           "check_random", "benchmark_params", "benchmark_case", "check_benchmark", "zoo_params", "zoo_case",
           "check_zoo", "load_net"]
