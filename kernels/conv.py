"""Direct 2-d convolution of blocks of generator rows (each row one flattened (C, H, W) tensor).

out[r, o, y, x] = sum_{c in group(o), p, q} weight[o, c, p, q] * G[r, c, y*sh - top + p*dh, x*sw - left + q*dw]
(ONNX Conv without bias, zero padding). Both code paths (dense gather, sparse scatter) add the terms of one
output in the same (c, p, q) order, so a row's result does not depend on which path computed it.
"""

import numpy as np
from numba import prange

from ._config import kernel

#: a row takes the scatter path when SPARSE_RATIO * nnz(row) < C * OH * OW (measured in perf/bench_kernels.py)
SPARSE_RATIO = 4
#: blocks needing fewer multiply-adds than this (~1-3 ms serial) run on one thread (see perf/bench_kernels.py)
SERIAL_BELOW_MACS = 1 << 20


@kernel
def _out_range(n_out, n_in, stride, offset):
    """Half-open range of output indices y with 0 <= y*stride + offset < n_in, clipped to [0, n_out)."""
    if offset >= 0:
        lo = 0
    else:
        lo = (-offset + stride - 1) // stride
    last = n_in - 1 - offset
    if last < 0:
        return 0, 0
    hi = min(n_out, last // stride + 1)
    if hi < lo:
        hi = lo
    return lo, hi


@kernel
def _dense_channel(G, weight, r, o, cin_g, c0, H, W, OH, OW, sh, sw, top, left, dh, dw, acc, out):
    """out[r, o, :, :] by gathering: acc[y, x] += w[o, c, p, q] * G[r, c, iy, ix] over (c, p, q) in order.

    acc (OH*OW,) is scratch owned by the caller's thread (a buffer that cannot alias G lets LLVM vectorise).
    """
    KH = weight.shape[2]
    KW = weight.shape[3]
    acc[:] = 0.0
    row = G[r]
    for c in range(cin_g):
        ib = (c0 + c) * H * W
        for p in range(KH):
            y0, y1 = _out_range(OH, H, sh, p * dh - top)
            for q in range(KW):
                w = weight[o, c, p, q]
                if w == 0.0:
                    continue
                x0, x1 = _out_range(OW, W, sw, q * dw - left)
                for y in range(y0, y1):
                    src = ib + (y * sh - top + p * dh) * W - left + q * dw
                    dst = y * OW
                    for x in range(x0, x1):
                        acc[dst + x] += w * row[src + x * sw]
    out[r, o * OH * OW:(o + 1) * OH * OW] = acc


@kernel
def _sparse_row(G, weight, r, groups, C, H, W, OH, OW, sh, sw, top, left, dh, dw, out):
    """out[r] by scattering each non-zero G[r, c, iy, ix] to the outputs whose windows contain it."""
    O, cin_g, KH, KW = weight.shape
    cout_g = O // groups
    for i in range(out.shape[1]):
        out[r, i] = 0.0
    for c in range(C):
        g = c // cin_g
        cl = c - g * cin_g
        for iy in range(H):
            for ix in range(W):
                v = G[r, (c * H + iy) * W + ix]
                if v == 0.0:
                    continue
                for o in range(g * cout_g, (g + 1) * cout_g):
                    ob = o * OH * OW
                    for p in range(KH):
                        ty = iy + top - p * dh
                        if ty < 0 or ty % sh != 0:
                            continue
                        y = ty // sh
                        if y >= OH:
                            continue
                        for q in range(KW):
                            tx = ix + left - q * dw
                            if tx < 0 or tx % sw != 0:
                                continue
                            x = tx // sw
                            if x >= OW:
                                continue
                            out[r, ob + y * OW + x] += weight[o, cl, p, q] * v


@kernel
def _geometry(in_chw, stride, padding, dilation, weight):
    """(OH, OW) = floor((H + pad_t + pad_b - d (K - 1) - 1) / s) + 1 per spatial axis."""
    C, H, W = in_chw
    KH = weight.shape[2]
    KW = weight.shape[3]
    OH = (H + padding[0] + padding[2] - dilation[0] * (KH - 1) - 1) // stride[0] + 1
    OW = (W + padding[1] + padding[3] - dilation[1] * (KW - 1) - 1) // stride[1] + 1
    return OH, OW


@kernel
def _row_is_sparse(G, r, limit):
    """SPARSE_RATIO * nnz(G[r]) < limit."""
    nnz = 0
    for i in range(G.shape[1]):
        if G[r, i] != 0.0:
            nnz += 1
    return SPARSE_RATIO * nnz < limit


@kernel(parallel=True)
def conv2d_rows_parallel(G, weight, in_chw, stride, padding, dilation, groups, out):
    """conv2d_rows with threads: sparse rows one thread per row, dense rows one per (row, output channel)."""
    k = G.shape[0]
    C, H, W = in_chw
    O, cin_g = weight.shape[0], weight.shape[1]
    OH, OW = _geometry(in_chw, stride, padding, dilation, weight)
    cout_g = O // groups
    sparse = np.zeros(k, dtype=np.bool_)
    for r in prange(k):
        if _row_is_sparse(G, r, C * OH * OW):
            sparse[r] = True
            _sparse_row(G, weight, r, groups, C, H, W, OH, OW, stride[0], stride[1], padding[0], padding[1],
                        dilation[0], dilation[1], out)
    for t in prange(k * O):
        r = t // O
        if sparse[r]:
            continue
        o = t - r * O
        acc = np.empty(OH * OW)
        _dense_channel(G, weight, r, o, cin_g, (o // cout_g) * cin_g, H, W, OH, OW, stride[0], stride[1],
                       padding[0], padding[1], dilation[0], dilation[1], acc, out)


@kernel
def conv2d_rows_serial(G, weight, in_chw, stride, padding, dilation, groups, out):
    """conv2d_rows on one thread (same arithmetic, same results bit for bit)."""
    C, H, W = in_chw
    O, cin_g = weight.shape[0], weight.shape[1]
    OH, OW = _geometry(in_chw, stride, padding, dilation, weight)
    cout_g = O // groups
    acc = np.empty(OH * OW)
    for r in range(G.shape[0]):
        if _row_is_sparse(G, r, C * OH * OW):
            _sparse_row(G, weight, r, groups, C, H, W, OH, OW, stride[0], stride[1], padding[0], padding[1],
                        dilation[0], dilation[1], out)
        else:
            for o in range(O):
                _dense_channel(G, weight, r, o, cin_g, (o // cout_g) * cin_g, H, W, OH, OW, stride[0],
                               stride[1], padding[0], padding[1], dilation[0], dilation[1], acc, out)


def conv2d_rows(G, weight, in_chw, stride, padding, dilation, groups, out):
    """out[r] = conv(G[r].reshape(C, H, W), weight) for every row; G (k, C*H*W), out (k, O*OH*OW) overwritten.

    weight (O, C/groups, KH, KW) C-contiguous; padding (top, left, bottom, right); tuples of ints.
    Rows with few non-zeros (one-hot symbols) are scattered, the others gathered. Blocks with fewer than
    SERIAL_BELOW_MACS multiply-adds (estimated from the non-zeros) run on one thread. Returns out.
    """
    in_chw, stride, dilation = (tuple(int(v) for v in t) for t in (in_chw, stride, dilation))
    padding, groups = tuple(int(v) for v in padding), int(groups)
    O, cin_g, KH, KW = weight.shape
    dense_macs = G.shape[0] * out.shape[1] * cin_g * KH * KW
    if dense_macs >= SERIAL_BELOW_MACS:  # rows of few non-zeros are scattered: estimate that work instead
        dense_macs = min(dense_macs, np.count_nonzero(G) * (O // groups) * KH * KW + G.size // 8)
    if dense_macs < SERIAL_BELOW_MACS:
        conv2d_rows_serial(G, weight, in_chw, stride, padding, dilation, groups, out)
    else:
        conv2d_rows_parallel(G, weight, in_chw, stride, padding, dilation, groups, out)
    return out


def _warmup():
    """Compile conv2d_rows on a tiny input (a dense and a one-hot row)."""
    G = np.zeros((2, 2 * 3 * 3))
    G[0] = 1.0
    G[1, 4] = 1.0
    w = np.ones((2, 1, 2, 2))
    out = np.empty((2, 2 * 2 * 2))
    for fn in (conv2d_rows_serial, conv2d_rows_parallel):
        fn(G, w, (2, 3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 2, out)
