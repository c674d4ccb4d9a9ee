"""conv2d_transpose_rows (zero-skipping adjoint of a convolution) against the BLAS adjoint and the
defining identity <conv(x), y> = <x, convᵀ(y)>."""

from __future__ import annotations

import numpy as np
import pytest

from absint.im2col import conv2d_forward
from absint.linear import conv2d_transpose
from absint.network import Conv2d
from kernels.conv_transpose import conv2d_transpose_rows

CASES = [  # (c_in, c_out, kernel, stride, padding, dilation, groups, H)
    (3, 4, 3, 1, (1, 1, 1, 1), (1, 1), 1, 8),
    (4, 6, 3, 2, (0, 1, 1, 0), (1, 1), 2, 9),
    (2, 2, 2, 2, (0, 0, 0, 0), (2, 1), 2, 7),
    (3, 5, 1, 1, (2, 0, 0, 1), (1, 1), 1, 5),
    (4, 4, 3, 3, (0, 0, 0, 0), (1, 1), 4, 10),
    (1, 3, 5, 1, (4, 4, 4, 4), (1, 1), 1, 3),  # padding wider than the input
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("k", [0, 1, 6])
@pytest.mark.parametrize("density", [0.0, 0.1, 1.0])
def test_matches_blas_adjoint_and_inner_product(case, k, density):
    cin, cout, ks, s, pad, dil, g, H = case
    rng = np.random.default_rng(hash((case, k, density)) % 2**32)
    w = rng.normal(size=(cout, cin // g, ks, ks))
    conv = Conv2d(w, np.zeros(cout), (s, s), pad, dil, g)
    oh, ow = conv.output_shape((cin, H, H))[1:]
    Y = rng.normal(size=(k, cout * oh * ow))
    Y[rng.random(Y.shape) >= density] = 0.0
    out = np.full((k, cin * H * H), np.nan)  # the kernel must overwrite every entry
    got = conv2d_transpose_rows(Y, w, (cin, H, H), (oh, ow), (s, s), pad, dil, g, out)
    ref = conv2d_transpose(Y.reshape(k, cout, oh, ow), conv, (cin, H, H)).reshape(k, cin * H * H)
    scale = np.abs(Y) @ np.ones(Y.shape[1]) if k else np.zeros(0)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12 * (scale.max() if k else 1) + 1e-300)
    if k:
        x = rng.normal(size=(k, cin, H, H))
        lhs = np.sum(conv2d_forward(x, w, None, (s, s), pad, dil, g).reshape(k, -1) * Y, axis=1)
        rhs = np.sum(x.reshape(k, -1) * got, axis=1)
        np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("k", [0, 1, 5])
def test_blas_adjoint_satisfies_the_inner_product_identity(case, k):
    """conv2d_transpose (einsum + the col2im_add kernel) is the adjoint: <conv(x), y> = <x, convᵀ(y)>."""
    cin, cout, ks, s, pad, dil, g, H = case
    rng = np.random.default_rng(hash((case, k)) % 2**32)
    w = rng.normal(size=(cout, cin // g, ks, ks))
    conv = Conv2d(w, np.zeros(cout), (s, s), pad, dil, g)
    oh, ow = conv.output_shape((cin, H, H))[1:]
    y = rng.normal(size=(k, cout, oh, ow))
    got = conv2d_transpose(y, conv, (cin, H, H))
    assert got.shape == (k, cin, H, H)
    if k == 0:
        return
    x = rng.normal(size=(k, cin, H, H))
    lhs = np.sum(conv2d_forward(x, w, None, (s, s), pad, dil, g).reshape(k, -1) * y.reshape(k, -1), axis=1)
    rhs = np.sum((x * got).reshape(k, -1), axis=1)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-10)
