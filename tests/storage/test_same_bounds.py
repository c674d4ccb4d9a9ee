"""Every storage gives the same bounds as the dense run (1e-9 relative) at every node, on real networks."""

from __future__ import annotations

import numpy as np
import pytest

import absint
from absint import zoo
from tests._bench import NO_BENCHMARKS, benchmark_instances

STORAGES = ("csr", "hdf5", "auto")


def assert_same_bounds(reference, other, rtol=1e-9, what=""):
    assert len(reference.layer_bounds) == len(other.layer_bounds)
    for k, ((l0, u0), (l1, u1)) in enumerate(zip(reference.layer_bounds, other.layer_bounds)):
        scale = np.maximum(np.maximum(np.abs(l0), np.abs(u0)), 1e-12)
        for name, a, b in (("lower", l0, l1), ("upper", u0, u1)):
            rel = np.abs(a - b) / scale
            assert rel.max() <= rtol, f"{what}: node {k} {name} differs by {rel.max():.3g} relative"


def _cases():
    cases = [pytest.param("digits_cnn", id="zoo-digits_cnn"), pytest.param("cifar_conv4", id="zoo-cifar_conv4")]
    seen = set()
    for family, net, prop, _ in benchmark_instances("oval21"):
        if net not in seen:  # each oval21 conv network once, with its first property's box
            seen.add(net)
            cases.append(pytest.param((family, net, prop), id=f"{family}-{net.stem}-{prop.stem}"))
    if not seen:
        cases.append(pytest.param(None, marks=pytest.mark.skip(reason=NO_BENCHMARKS), id="oval21"))
    return cases


def _load(case):
    if case == "digits_cnn":
        net = zoo.load("digits_cnn")
        x = zoo.digits_data()[0][0].reshape(net.input_shape)
        return net, absint.Box.linf(x, 0.05)
    if case == "cifar_conv4":
        return zoo.cifar_conv(4), absint.Box.linf(zoo.cifar_conv_input(), zoo.CIFAR_EPS)
    family, net_path, prop_path = case
    net = absint.load_onnx(net_path)
    lower, upper, _ = absint.load_vnnlib(prop_path, net).regions[0]
    return net, absint.Box(lower, upper)


@pytest.mark.parametrize("case", _cases())
def test_storages_agree_with_dense(case, tmp_path):
    net, box = _load(case)
    dense = absint.analyze(net, box, domain="zonotope", storage="dense")
    for storage in STORAGES:
        other = absint.analyze(net, box, domain="zonotope", storage=storage, scratch_dir=tmp_path)
        assert_same_bounds(dense, other, what=storage)
        assert other.stats["n_symbols"] == dense.stats["n_symbols"]
    assert list(tmp_path.iterdir()) == [], "scratch files left behind"


def test_auto_uses_csr_through_the_conv_prefix():
    net, box = _load("cifar_conv4")
    result = absint.analyze(net, box, storage="auto")
    kinds = result.stats["storage"]
    first_dense_layer = next(k for k, n in enumerate(net.nodes) if isinstance(n.layer, absint.network.Affine))
    assert set(kinds[:first_dense_layer - 1]) == {"csr"}, kinds
