"""kernels.conv.conv2d_rows against the einsum reference and the im2col + BLAS path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from absint.im2col import conv2d_forward
from kernels.conv import _dense_channel, _sparse_row, conv2d_rows, conv2d_rows_parallel, conv2d_rows_serial
from tests import reference as ref

# (k, in_chw, out_ch, kernel, stride, padding, dilation, groups)
CASES = [
    (0, (3, 5, 5), 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (1, (3, 5, 5), 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (1, (1, 1, 1), 1, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    (5, (2, 7, 6), 3, (3, 2), (2, 1), (0, 1, 2, 0), (1, 1), 1),
    (4, (4, 8, 8), 6, (3, 3), (2, 2), (1, 1, 1, 1), (2, 2), 2),
    (3, (6, 6, 5), 6, (2, 3), (1, 3), (3, 0, 1, 2), (2, 1), 6),   # depthwise
    (2, (4, 5, 5), 8, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 4),
    (2, (2, 3, 3), 2, (2, 2), (1, 1), (4, 4, 4, 4), (1, 1), 1),   # padding wider than the kernel
    (7, (3, 9, 4), 5, (1, 1), (3, 2), (0, 0, 0, 0), (1, 1), 1),   # 1x1, strided
    (2, (2, 4, 4), 2, (4, 4), (1, 1), (0, 0, 0, 0), (1, 1), 2),   # one output pixel
]


KERNELS = [conv2d_rows_serial, conv2d_rows_parallel]


def _run(G, weight, in_chw, stride, padding, dilation, groups, fn=conv2d_rows):
    O, _, KH, KW = weight.shape
    oh, ow = ref.conv_output_hw(in_chw[1:], (KH, KW), stride, padding, dilation)
    out = np.full((G.shape[0], O * oh * ow), np.nan)  # the kernel must overwrite every entry
    fn(G, weight, in_chw, stride, padding, dilation, groups, out)
    return out


def _check(G, weight, in_chw, stride, padding, dilation, groups):
    """Serial and parallel kernels: bitwise equal, and close to the reference."""
    got = _run(G, weight, in_chw, stride, padding, dilation, groups, KERNELS[0])
    for fn in KERNELS[1:] + [conv2d_rows]:
        assert np.array_equal(_run(G, weight, in_chw, stride, padding, dilation, groups, fn), got)
    want = ref.conv2d_rows(G, weight, in_chw, stride, padding, dilation, groups)
    scale = ref.conv2d_rows_scale(G, weight, in_chw, stride, padding, dilation, groups)
    assert got.shape == want.shape
    atol = 1e-13 * scale.max() if scale.size else 0.0
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=atol)
    return got


def _case_arrays(rng, k, in_chw, out_ch, kernel, groups, density=1.0):
    G = rng.standard_normal((k, int(np.prod(in_chw))))
    if density < 1.0:
        G[rng.random(G.shape) >= density] = 0.0
    weight = rng.standard_normal((out_ch, in_chw[0] // groups) + tuple(kernel))
    return G, weight


@pytest.mark.parametrize("density", [1.0, 0.02])
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_matches_reference_and_im2col(case, density):
    k, in_chw, out_ch, kernel, stride, padding, dilation, groups = case
    rng = np.random.default_rng(hash((case, density)) % 2**32)
    G, weight = _case_arrays(rng, k, in_chw, out_ch, kernel, groups, density)
    got = _check(G, weight, in_chw, stride, padding, dilation, groups)
    blas = conv2d_forward(G.reshape((k,) + in_chw), weight, None, stride, padding, dilation, groups).reshape(got.shape)
    scale = ref.conv2d_rows_scale(G, weight, in_chw, stride, padding, dilation, groups)
    np.testing.assert_allclose(got, blas, rtol=1e-12, atol=1e-13 * scale.max() if scale.size else 0.0)


def test_one_hot_rows_every_position():
    """Every one-hot row (the new symbols of a ReLU) is the weight's footprint at that position."""
    in_chw, groups = (4, 5, 6), 2
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((6, 2, 3, 3))
    G = np.eye(int(np.prod(in_chw))) * rng.uniform(0.5, 2.0, size=int(np.prod(in_chw)))[:, None]
    _check(G, weight, in_chw, (2, 1), (1, 2, 0, 1), (1, 2), groups)


def test_mixed_sparse_and_dense_rows_in_one_block():
    in_chw = (3, 6, 6)
    rng = np.random.default_rng(2)
    weight = rng.standard_normal((5, 3, 3, 3))
    G = rng.standard_normal((6, 108))
    G[::2] = 0.0
    G[0, 17] = 1.5
    G[4, [3, 50, 90]] = [-1.0, 2.0, 0.25]
    _check(G, weight, in_chw, (1, 1), (1, 1, 1, 1), (1, 1), 1)


@pytest.mark.parametrize("case", CASES[1:], ids=[f"case{i}" for i in range(1, len(CASES))])
def test_sparse_and_dense_paths_bitwise_equal(case):
    """Both code paths add an output's terms in the same (c, p, q) order: identical floats."""
    k, in_chw, out_ch, kernel, stride, padding, dilation, groups = case
    rng = np.random.default_rng(3)
    G, weight = _case_arrays(rng, 1, in_chw, out_ch, kernel, groups, density=0.3)
    C, H, W = in_chw
    oh, ow = ref.conv_output_hw((H, W), kernel, stride, padding, dilation)
    top, left = padding[:2]
    sparse = np.full((1, out_ch * oh * ow), np.nan)
    dense = np.full((1, out_ch * oh * ow), np.nan)
    _sparse_row(G, weight, 0, groups, C, H, W, oh, ow, *stride, top, left, *dilation, sparse)
    cin_g, cout_g = C // groups, out_ch // groups
    acc = np.empty(oh * ow)
    for o in range(out_ch):
        _dense_channel(G, weight, 0, o, cin_g, (o // cout_g) * cin_g, H, W, oh, ow, *stride, top, left, *dilation,
                       acc, dense)
    assert np.array_equal(sparse, dense)


@st.composite
def conv_problems(draw):
    groups = draw(st.integers(1, 3))
    cin_g = draw(st.integers(1, 3))
    cout_g = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, 3)) for _ in range(4))
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    oh, ow = ref.conv_output_hw((h, w), (kh, kw), stride, padding, dilation)
    if oh < 1 or ow < 1:
        h += dilation[0] * (kh - 1)
        w += dilation[1] * (kw - 1)
    k = draw(st.integers(0, 4))
    density = draw(st.sampled_from([0.0, 0.05, 0.5, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    return k, (groups * cin_g, h, w), groups * cout_g, (kh, kw), stride, padding, dilation, groups, density, seed


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_problems())
def test_random_geometry(problem):
    k, in_chw, out_ch, kernel, stride, padding, dilation, groups, density, seed = problem
    rng = np.random.default_rng(seed)
    G, weight = _case_arrays(rng, k, in_chw, out_ch, kernel, groups, density)
    _check(G, weight, in_chw, stride, padding, dilation, groups)
