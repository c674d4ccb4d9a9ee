"""Batched DeepPoly over many boxes: equals absint.analyze(domain="deeppoly") box by box, and is sound."""

from __future__ import annotations

import numpy as np
import pytest

import absint
from absint.domains.deeppoly_batch import AffineReluChain, SparseAffine, deeppoly_boxes
from absint.network import Affine, Conv2d, Network, Node, ReLU, Reshape
from absint.verify import spec_network
from tests._bench import NO_BENCHMARKS, benchmark_networks


def random_chain(rng, sizes=(4, 12, 12, 6)) -> Network:
    nodes, prev = [], -1
    for k in range(len(sizes) - 1):
        w = rng.normal(size=(sizes[k + 1], sizes[k])) / np.sqrt(sizes[k])
        nodes.append(Node(f"fc{k}", Affine(w, rng.normal(size=sizes[k + 1]) * 0.3), (prev,)))
        prev = len(nodes) - 1
        if k < len(sizes) - 2:
            nodes.append(Node(f"relu{k}", ReLU(), (prev,)))
            prev = len(nodes) - 1
    return Network((sizes[0],), nodes)


def random_boxes(rng, n_boxes, n_in, scale):
    c = rng.normal(size=(n_boxes, n_in))
    w = rng.random((n_boxes, n_in)) * scale
    w[:, 0] = 0.0  # a zero-width dimension
    return c - w, c + w


def _networks():
    nets = [pytest.param(random_chain(np.random.default_rng(s)), id=f"random{s}") for s in range(3)]
    bench = [p for p in benchmark_networks() if "ACASXU_run2a_1_1" in p.name or "256x2" in p.name]
    if bench:
        nets += [pytest.param(p, id=p.stem[:20]) for p in bench]
    else:
        nets.append(pytest.param(None, marks=pytest.mark.skip(reason=NO_BENCHMARKS)))
    return nets


@pytest.mark.parametrize("sound_fp", [True, False])
@pytest.mark.parametrize("net", _networks())
def test_equals_deeppoly_box_by_box(net, sound_fp):
    net = absint.load_onnx(net) if not isinstance(net, Network) else net
    rng = np.random.default_rng(0)
    wrapped = spec_network(net, rng.normal(size=(3, net.output_size)), rng.normal(size=3))
    chain = AffineReluChain.from_network(wrapped)
    lo, hi = random_boxes(rng, 12, net.input_size, 0.3 if net.input_size < 10 else 0.02)
    if net.input_size > 10:
        lo, hi = np.clip(lo, 0, 1), np.clip(np.maximum(hi, lo), 0, 1)
    got = deeppoly_boxes(chain, lo, hi, sound_fp=sound_fp, lower_coef=True)
    for b in range(len(lo)):
        box = absint.Box(lo[b].reshape(net.input_shape), hi[b].reshape(net.input_shape))
        ref = absint.analyze(wrapped, box, domain="deeppoly", sound_fp=sound_fp)
        scale = max(1.0, np.abs(ref.lower).max())
        np.testing.assert_allclose(got.lower[b], ref.lower, rtol=0, atol=1e-9 * scale)
        np.testing.assert_allclose(got.upper[b], ref.upper, rtol=0, atol=1e-9 * scale)
    assert got.lower_coef.shape == (len(lo), 3, net.input_size)


def test_sound_on_samples_and_lower_coefficients_bound_below():
    """Sampled outputs lie within the bounds, and y_i >= Λ_i x + c_i holds with c_i = lower_i - min_box Λ_i x."""
    rng = np.random.default_rng(1)
    net = random_chain(rng, (3, 16, 16, 16, 4))
    chain = AffineReluChain.from_network(net)
    lo, hi = random_boxes(rng, 40, 3, 1.0)
    res = deeppoly_boxes(chain, lo, hi, lower_coef=True)
    x = lo[:, None] + rng.random((40, 500, 3)) * (hi - lo)[:, None]
    corners = np.where(rng.random((40, 64, 3)) < 0.5, lo[:, None], hi[:, None])
    x = np.concatenate([x, corners], axis=1)
    y = net.forward(x.reshape(-1, 3)).reshape(40, x.shape[1], -1)
    assert (y >= res.lower[:, None]).all() and (y <= res.upper[:, None]).all()
    assert np.mean(res.upper - res.lower) < np.inf
    # the lower bound's linear function, shifted to its concretised value, stays below the samples
    C = res.lower_coef
    minimum = np.einsum("boi,bi->bo", np.maximum(C, 0), lo) + np.einsum("boi,bi->bo", np.minimum(C, 0), hi)
    lin = np.einsum("boi,bsi->bso", C, x) - minimum[:, None] + res.lower[:, None]
    assert (y >= lin - 1e-9).all()
    # the returned constants: y_i >= Λ_i x + c_i pointwise, and min_box Λ_i x + c_i is the lower bound
    own = np.einsum("boi,bsi->bso", C, x) + res.lower_const[:, None]
    assert (y >= own).all()
    np.testing.assert_allclose(minimum + res.lower_const, res.lower, rtol=0, atol=1e-9)


def test_chain_detection():
    rng = np.random.default_rng(2)
    assert AffineReluChain.from_network(random_chain(rng)) is not None
    flat = Network((2, 2), [Node("flat", Reshape((4,)), (-1,)), Node("fc", Affine(np.eye(4), np.zeros(4)), (0,))])
    assert AffineReluChain.from_network(flat) is not None
    conv = Network((1, 3, 3), [Node("c", Conv2d(np.ones((1, 1, 2, 2)), np.zeros(1)), (-1,))])
    assert AffineReluChain.from_network(conv) is None
    with pytest.raises(ValueError, match="boxes must be"):
        deeppoly_boxes(AffineReluChain.from_network(random_chain(rng)), np.zeros((2, 3)), np.zeros((2, 3)))


def test_convolutions_made_explicit_give_deeppoly_bounds():
    """A conv net whose convolutions become explicit (sparse) matrices: bounds equal analyze(deeppoly)."""
    rng = np.random.default_rng(7)
    net = Network((2, 6, 6), [Node("c1", Conv2d(rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3), stride=(2, 2),
                                                 padding=(1, 0, 1, 1)), (-1,)),
                              Node("r1", ReLU(), (0,)),
                              Node("c2", Conv2d(rng.normal(size=(4, 3, 2, 2)), rng.normal(size=4)), (1,)),
                              Node("r2", ReLU(), (2,)),
                              Node("flat", Reshape((16,)), (3,)),
                              Node("fc", Affine(rng.normal(size=(3, 16)), rng.normal(size=3)), (4,))])
    chain = AffineReluChain.from_network(net, materialise_bytes=1 << 24)
    assert chain is not None and any(isinstance(l, SparseAffine) for l in chain.layers)
    lo, hi = random_boxes(rng, 5, net.input_size, 0.5)
    got = deeppoly_boxes(chain, lo, hi)
    for b in range(len(lo)):
        ref = absint.analyze(net, absint.Box(lo[b].reshape(net.input_shape), hi[b].reshape(net.input_shape)),
                             domain="deeppoly")
        scale = max(1.0, np.abs(ref.lower).max())
        np.testing.assert_allclose(got.lower[b], ref.lower, rtol=0, atol=1e-9 * scale)
        np.testing.assert_allclose(got.upper[b], ref.upper, rtol=0, atol=1e-9 * scale)
    with pytest.raises(absint.errors.MemoryBudgetError, match="c1"):
        AffineReluChain.from_network(net, materialise_bytes=1000)


@pytest.mark.skipif(not [p for p in benchmark_networks() if "cifar_base" in p.name], reason=NO_BENCHMARKS)
def test_oval21_explicit_chain_matches_analyze():
    path = next(p for p in benchmark_networks() if "cifar_base" in p.name)
    net = absint.load_onnx(path)
    chain = AffineReluChain.from_network(net, materialise_bytes=1 << 30)
    rng = np.random.default_rng(0)
    c = rng.random(net.input_size)
    lo, hi = (c - 0.004)[None], (c + 0.004)[None]
    got = deeppoly_boxes(chain, lo, hi)
    ref = absint.analyze(net, absint.Box(lo[0].reshape(net.input_shape), hi[0].reshape(net.input_shape)), domain="deeppoly")
    scale = max(1.0, np.abs(ref.lower).max())
    np.testing.assert_allclose(got.lower[0], ref.lower, rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(got.upper[0], ref.upper, rtol=0, atol=1e-9 * scale)


@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("sound_fp", [True, False])
def test_kernels_equal_numpy_backsubstitution(monkeypatch, sound_fp, grouped):
    """The row kernels and the products that skip inactive columns (per box or on all boxes) give the
    bounds of the former numpy back-substitution, also with ReLU splits (branch and bound)."""
    from absint.domains import deeppoly_batch
    from tests.reference.batch_backsub_reference import backsubstitute_numpy

    rng = np.random.default_rng(3)
    net = random_chain(rng, (5, 40, 40, 40, 3))
    chain = AffineReluChain.from_network(net)
    lo, hi = random_boxes(rng, 16, 5, 0.5)
    phases = {j: np.where(rng.random((16, 40)) < 0.1, rng.choice([-1, 1], size=(16, 40)), 0)
              for j, layer in enumerate(chain.layers) if isinstance(layer, ReLU)}
    monkeypatch.setattr(deeppoly_batch, "GROUP_CALL", 0 if grouped else 10**12)
    for splits in (None, deeppoly_batch.ReluSplits(phases)):
        got = deeppoly_boxes(chain, lo, hi, sound_fp=sound_fp, lower_coef=splits is None, splits=splits)
        with monkeypatch.context() as m:
            m.setattr(deeppoly_batch, "_backsubstitute", backsubstitute_numpy)
            ref = deeppoly_boxes(chain, lo, hi, sound_fp=sound_fp, lower_coef=splits is None, splits=splits)
        scale = max(1.0, np.abs(ref.upper).max())
        np.testing.assert_allclose(got.lower, ref.lower, rtol=0, atol=1e-12 * scale)
        np.testing.assert_allclose(got.upper, ref.upper, rtol=0, atol=1e-12 * scale)
        if splits is None:
            np.testing.assert_allclose(got.lower_coef, ref.lower_coef, rtol=0, atol=1e-12 * scale)
            np.testing.assert_allclose(got.lower_const, ref.lower_const, rtol=0, atol=1e-12 * scale)
        else:
            np.testing.assert_array_equal(got.infeasible, ref.infeasible)


def test_product_skips_only_zero_columns(monkeypatch):
    from absint.domains import deeppoly_batch
    from absint.domains.deeppoly_batch import _product

    rng = np.random.default_rng(4)
    B, n, m = 5, 30, 7
    a_u = np.where(rng.random((B, n)) < 0.6, 0.0, rng.random((B, n)))
    a_u[:, :3] = 0.0  # dead on every box
    a_l = np.where(a_u > 0.5, 1.0, 0.0)
    relax = (a_l, None, a_u, None)
    boxes = np.sort(rng.integers(0, B, 40))
    C = rng.normal(size=(2, 40, n)) * ((a_l != 0) | (a_u != 0))[boxes]
    W = rng.normal(size=(n, m))
    for call in (0, 10**12):  # per box / columns dead on all boxes
        monkeypatch.setattr(deeppoly_batch, "GROUP_CALL", call)
        np.testing.assert_allclose(_product(C, W, boxes, relax), C @ W, rtol=0, atol=1e-12)
    np.testing.assert_allclose(_product(C, W, boxes, None), C @ W, rtol=0, atol=1e-12)
    assert _product(C[:, :0], W, boxes[:0], relax).shape == (2, 0, m)
    dead = (np.zeros((B, n)), None, np.zeros((B, n)), None)  # every neuron inactive: C = 0
    for call in (0, 10**12):
        monkeypatch.setattr(deeppoly_batch, "GROUP_CALL", call)
        np.testing.assert_array_equal(_product(np.zeros_like(C), W, boxes, dead), np.zeros((2, 40, m)))
