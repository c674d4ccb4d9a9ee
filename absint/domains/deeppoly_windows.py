"""DeepPoly back-substitution of convolutional neurons on their receptive-field windows.

A neuron of a conv layer depends only on a window of each earlier feature map, so its coefficient
rows are kept as dense windows (k, C, h, w) placed at per-row offsets (oy, ox) of the map (the
"patches" representation of auto_LiRPA, Xu et al. NeurIPS 2020) instead of rows over the whole
map. Through a conv y = W * x + b the window grows to ((h-1)s + d(kh-1) + 1, ...) at offset
(oy s - pad, ...) by a transposed convolution of the window alone; through an elementwise
relaxation it keeps its shape. Cells outside the map hold zero (padding contributes nothing).
Constants, rounding terms (same gamma counts as the dense rows of ``deeppoly``) and the final
concretisation are computed on the windows. When a window covers half its map, or a node of another
kind is reached, the rows are scattered into dense rows and ``deeppoly.finish_backsubstitution``
continues. Cost per row: O(window), not O(map).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..fp import UNIT_ROUNDOFF, gamma, inflate, widen
from kernels.conv_transpose import conv2d_transpose_rows

from ..im2col import IM2COL_CHUNK_BYTES
from ..linear import SPARSE_TRANSPOSE_DENSITY, ConvOp, conv2d_transpose
from ..network import NETWORK_INPUT

#: materialise dense rows once a window covers this share of its feature map
DENSE_SHARE = 0.5


def applicable(graph, target: int) -> bool:
    """Rows of ``target`` can start on windows: it is a convolution read from an earlier node."""
    from .deeppoly import LinearRelax

    relax = graph.relaxations[target]
    return (isinstance(relax, LinearRelax) and isinstance(relax.op, ConvOp)
            and graph.inputs[target] != (NETWORK_INPUT,))


def _gather(values: np.ndarray, shape, oy: np.ndarray, ox: np.ndarray, h: int, w: int) -> np.ndarray:
    """values (flat, a (C, H, W) map) on each row's window: (k, C, h, w), zero outside the map."""
    C, H, W = shape
    pad_y = max(0, -int(oy.min()), int(oy.max()) + h - H)
    pad_x = max(0, -int(ox.min()), int(ox.max()) + w - W)
    padded = np.zeros((C, H + 2 * pad_y, W + 2 * pad_x))
    padded[:, pad_y:pad_y + H, pad_x:pad_x + W] = np.asarray(values).reshape(C, H, W)
    rows = oy[:, None] + pad_y + np.arange(h)            # (k, h)
    cols = ox[:, None] + pad_x + np.arange(w)            # (k, w)
    return padded[:, rows[:, :, None], cols[:, None, :]].transpose(1, 0, 2, 3)


def _inside(shape, oy, ox, h, w) -> np.ndarray:
    """(k, 1, h, w) mask of the window cells that lie on the (C, H, W) map."""
    _, H, W = shape
    ys = oy[:, None] + np.arange(h)
    xs = ox[:, None] + np.arange(w)
    return (((ys >= 0) & (ys < H))[:, :, None] & ((xs >= 0) & (xs < W))[:, None, :])[:, None]


def _dense(win: np.ndarray, shape, oy, ox) -> np.ndarray:
    """Scatter windows (k, C, h, w) into dense rows (k, C*H*W) (cells outside the map are zero)."""
    k, C, h, w = win.shape
    _, H, W = shape
    out = np.zeros((k, C, H, W))
    for r in range(k):
        y0, x0 = int(oy[r]), int(ox[r])
        ya, yb, xa, xb = max(y0, 0), min(y0 + h, H), max(x0, 0), min(x0 + w, W)
        if ya < yb and xa < xb:
            out[r, :, ya:yb, xa:xb] = win[r, :, ya - y0:yb - y0, xa - x0:xb - x0]
    return out.reshape(k, -1)


def _window_transpose(win: np.ndarray, layer, channels: int, nh: int, nw: int) -> np.ndarray:
    """The adjoint of ``layer`` (without its padding) on windows (k, O, h, w) -> (k, C, nh, nw): the
    zero-skipping numba kernel on sparse windows (one-hot rows at the start), BLAS on dense ones."""
    k, O, h, w = win.shape
    if np.count_nonzero(win) <= SPARSE_TRANSPOSE_DENSITY * win.size:
        out = np.empty((k, channels * nh * nw))
        conv2d_transpose_rows(np.ascontiguousarray(win.reshape(k, -1)), np.ascontiguousarray(layer.weight),
                              (channels, nh, nw), (h, w), layer.stride, (0, 0, 0, 0), layer.dilation,
                              layer.groups, out)
        return out.reshape(k, channels, nh, nw)
    unpadded = replace(layer, padding=(0, 0, 0, 0))
    _, cin_g, kh, kw = layer.weight.shape
    per_row = 8 * (h * w * cin_g * kh * kw * layer.groups + 2 * channels * nh * nw)
    step = max(1, IM2COL_CHUNK_BYTES // per_row)  # temporaries bounded like ConvOp.apply_transpose's
    out = np.empty((k, channels, nh, nw))
    for start in range(0, k, step):
        out[start:start + step] = conv2d_transpose(win[start:start + step], unpadded, (channels, nh, nw))
    return out


def _sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("kchw,kchw->k", a, b)


def backsubstitute_windowed(graph, target: int, rows: np.ndarray, sound: bool):
    """(lower, upper) of neurons ``rows`` of conv node ``target`` (see the module docstring); the same
    bounds as ``deeppoly.backsubstitute`` up to summation order."""
    from .deeppoly import DiagonalRelax, LinearRelax, finish_backsubstitution, input_rounding

    op = graph.relaxations[target].op
    O, OH, OW = op.out_shape
    k = len(rows)
    pos = rows % (OH * OW)
    oy, ox = pos // OW, pos % OW
    C_u = np.zeros((k, O, 1, 1))
    C_u[np.arange(k), rows // (OH * OW), 0, 0] = 1.0
    C_l = C_u.copy()
    const_u, const_l, slack = np.zeros(k), np.zeros(k), np.zeros(k)
    shape = tuple(op.out_shape)     # the map the windows currently live on: node j's output
    j = target
    while j != NETWORK_INPUT:
        relax, inputs = graph.relaxations[j], graph.inputs[j]
        h, w = C_u.shape[2:]
        conv = isinstance(relax, LinearRelax) and isinstance(relax.op, ConvOp)
        if len(inputs) != 1 or not (conv or isinstance(relax, DiagonalRelax)) or h * w >= DENSE_SHARE * shape[1] * shape[2]:
            return finish_backsubstitution(graph, j, _dense(C_u, shape, oy, ox), _dense(C_l, shape, oy, ox),
                                           const_u, const_l, slack, sound)
        m_in = graph.magnitude(inputs[0])
        if conv:
            op = relax.op
            layer = op.layer
            const_u += np.einsum("kohw,o->k", C_u, layer.bias)
            const_l += np.einsum("kohw,o->k", C_l, layer.bias)
            if sound:
                v = _gather(op.apply_abs(m_in[None])[0] + np.abs(op.bias), shape, oy, ox, h, w)
                slack += gamma(max(op.fan_in, op.fan_out) + 3) * np.maximum(_sum(np.abs(C_u), v), _sum(np.abs(C_l), v))
            (sh, sw), (dh, dw) = layer.stride, layer.dilation
            kh, kw = layer.weight.shape[2:]
            nh, nw = (h - 1) * sh + dh * (kh - 1) + 1, (w - 1) * sw + dw * (kw - 1) + 1
            in_shape = tuple(op.in_shape)
            C_u = _window_transpose(C_u, layer, in_shape[0], nh, nw)
            C_l = _window_transpose(C_l, layer, in_shape[0], nh, nw)
            oy, ox = oy * sh - layer.padding[0], ox * sw - layer.padding[1]
            inside = _inside(in_shape, oy, ox, nh, nw)
            C_u, C_l = C_u * inside, C_l * inside
            shape = in_shape
        else:
            n = int(np.prod(shape))
            a_l, b_l, a_u, b_u = (_gather(x, shape, oy, ox, h, w) for x in (relax.a_l, relax.b_l, relax.a_u, relax.b_u))
            if sound:
                v = _gather(np.maximum(np.abs(relax.a_l), np.abs(relax.a_u)) * m_in, shape, oy, ox, h, w)
                bb = np.maximum(np.abs(b_l), np.abs(b_u))
                abs_u, abs_l = np.abs(C_u), np.abs(C_l)
                slack += 2 * UNIT_ROUNDOFF * np.maximum(_sum(abs_u, v), _sum(abs_l, v))
                slack += gamma(n + 2) * np.maximum(_sum(abs_u, bb), _sum(abs_l, bb))
            pos_u, pos_l = C_u > 0, C_l > 0
            const_u += _sum(C_u, np.where(pos_u, b_u, b_l))
            const_l += _sum(C_l, np.where(pos_l, b_l, b_u))
            C_u = C_u * np.where(pos_u, a_u, a_l)
            C_l = C_l * np.where(pos_l, a_l, a_u)
        j = inputs[0]
    h, w = C_u.shape[2:]
    lo_in = _gather(graph.input_lower, shape, oy, ox, h, w)
    hi_in = _gather(graph.input_upper, shape, oy, ox, h, w)
    upper = const_u + _sum(C_u, np.where(C_u > 0, hi_in, lo_in))
    lower = const_l + _sum(C_l, np.where(C_l > 0, lo_in, hi_in))
    if not sound:
        return lower, upper
    m = np.maximum(np.abs(lo_in), np.abs(hi_in))
    mag_m = np.maximum(_sum(np.abs(C_u), m), _sum(np.abs(C_l), m))
    slack += input_rounding(graph) * (mag_m + np.abs(const_u) + np.abs(const_l))
    return widen(lower, upper, inflate(slack))


__all__ = ["applicable", "backsubstitute_windowed"]
