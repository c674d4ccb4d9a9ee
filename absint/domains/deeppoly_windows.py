"""DeepPoly back-substitution of convolutional neurons on their receptive-field windows.

A neuron of a conv layer depends only on a window of each earlier feature map, so its coefficient
rows are kept as dense windows placed at per-row offsets (oy, ox) of the map (the "patches"
representation of auto_LiRPA, Xu et al. NeurIPS 2020) instead of rows over the whole map. Through a
conv y = W * x + b the window grows to ((h-1)s + d(kh-1) + 1, ...) at offset (oy s - pad, ...) by a
transposed convolution of the window alone; through an elementwise relaxation it keeps its shape.
Cells outside the map carry no coefficient (padding contributes nothing); margins that lie off the map
for every row of a block are cut off. Constants, rounding terms (same gamma counts as the dense rows of
``deeppoly``) and the final concretisation are computed on the windows. A window as large as its map is
placed on the whole map (offset 0); dense rows of other nodes (an Affine's) that reach a convolution
chain continue the same way (``continue_on_map``). When a node of another kind is reached, the rows are
scattered into dense rows and ``deeppoly.finish_backsubstitution`` continues. Cost per row:
O(window), not O(map).

Layout: a block is one array (R, h, w, C), channel-last, so a transposed convolution is one BLAS
product (R h w, C_out) x (C_out, kh kw C_in) plus a scatter (``kernels.windows.col2im_hwc_add``); the
relaxation, constant and rounding terms of a step are one fused kernel pass. Upper and lower rows share
the array (upper first) once they differ, i.e. from the first relaxation on; before it they are equal and
computed once. The per-node vectors the kernels read (relaxation slopes, rounding magnitudes, channel-last)
are built once per analysis, not once per block.
"""

from __future__ import annotations

import weakref

import numpy as np

from kernels.windows import (col2im_hwc_add, window_concretize, window_diagonal_backsub, window_linear_terms,
                             window_on_map, window_to_dense)

from ..fp import UNIT_ROUNDOFF, addition_error, gamma, inflate, widen
from ..im2col import IM2COL_CHUNK_BYTES
from ..linear import ConvOp
from ..network import NETWORK_INPUT

#: windows as large as this share of their feature map are placed on the whole map (all offsets 0)
FULL_SHARE = 1.0

#: per analysis graph: node -> (the objects the entry was built from, channel-last vectors)
_VECTORS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
#: per conv layer: its weight as (C_out, kh * kw * C_in_g), taps (p, q, c) in channel-last order
_WEIGHTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def applicable(graph, target: int) -> bool:
    """Rows of ``target`` can start on windows: it is a convolution read from an earlier node."""
    from .deeppoly import LinearRelax

    relax = graph.relaxations[target]
    return (isinstance(relax, LinearRelax) and isinstance(relax.op, ConvOp)
            and graph.inputs[target] != (NETWORK_INPUT,))


def _hwc(values: np.ndarray, shape) -> np.ndarray:
    """A flat (C, H, W) map as a flat (H, W, C) one."""
    C, H, W = shape
    return np.ascontiguousarray(np.asarray(values, dtype=np.float64).reshape(C, H, W).transpose(1, 2, 0)).ravel()


def cached(graph, key, sources: tuple, build):
    """``build()`` cached per (graph, key) while ``sources`` (checked by identity) stay the same."""
    cache = _VECTORS.setdefault(graph, {})
    hit = cache.get(key)
    if hit is not None and len(hit[0]) == len(sources) and all(a is b for a, b in zip(hit[0], sources)):
        return hit[1]
    value = build()
    cache[key] = (sources, value)
    return value


def _conv_vectors(graph, j: int, sound: bool):
    """Bias per channel and the rounding magnitudes |L| m + |b| (channel-last) of conv node j."""
    op = graph.relaxations[j].op
    i = graph.inputs[j][0]

    def build():
        if not sound:
            return np.zeros(op.n_out)
        return _hwc(op.apply_abs(graph.magnitude(i)[None])[0] + np.abs(op.bias), op.out_shape)

    v = cached(graph, (j, sound), (graph.relaxations[j], *graph.node_bounds(i)), build)
    return np.ascontiguousarray(op.layer.bias, dtype=np.float64), v


def _diagonal_vectors(graph, j: int, shape):
    """a_l, b_l, a_u, b_u, max|a| m, max|b| of elementwise node j, channel-last."""
    relax = graph.relaxations[j]
    i = graph.inputs[j][0]

    def build():
        v = np.maximum(np.abs(relax.a_l), np.abs(relax.a_u)) * graph.magnitude(i)
        b = np.maximum(np.abs(relax.b_l), np.abs(relax.b_u))
        return tuple(_hwc(x, shape) for x in (relax.a_l, relax.b_l, relax.a_u, relax.b_u, v, b))

    return cached(graph, j, (relax, *graph.node_bounds(i)), build)


def _input_vectors(graph, shape):
    lo, hi = graph.input_lower, graph.input_upper

    def build():
        return tuple(_hwc(x, shape) for x in (lo, hi, np.maximum(np.abs(lo), np.abs(hi))))

    return cached(graph, "input", (lo, hi), build)


def _weight_hwc(layer) -> np.ndarray:
    w = _WEIGHTS.get(layer)
    if w is None:
        O = layer.weight.shape[0]
        w = _WEIGHTS[layer] = np.ascontiguousarray(layer.weight.transpose(0, 2, 3, 1)).reshape(O, -1)
    return w


def _first_transpose(channel: np.ndarray, layer, channels: int, nh: int, nw: int) -> np.ndarray:
    """The adjoint of ``layer`` on one-hot rows (output channel ``channel`` at one position): each row's
    window is that channel's filter (placed on the dilated taps, in its group's input channels)."""
    O, cin_g, kh, kw = layer.weight.shape
    cout_g = O // layer.groups
    dh, dw = layer.dilation
    filters = layer.weight.transpose(0, 2, 3, 1)  # (O, kh, kw, cin_g)
    out = np.zeros((len(channel), nh, nw, channels))
    group = channel // cout_g
    for g in np.unique(group):
        sel = np.flatnonzero(group == g)
        out[sel, ::dh, ::dw, g * cin_g:(g + 1) * cin_g] = filters[channel[sel]]
    return out


def _window_transpose(win: np.ndarray, oy: np.ndarray, ox: np.ndarray, layer, in_shape):
    """The adjoint of ``layer`` on windows (R, h, w, O) at offsets (oy, ox) of its output map: windows on its
    input map (R, nh, nw, C) and their offsets. Per group one BLAS product with the channel-last filters and a
    scatter of its columns, in chunks of bounded size; the margins that lie off the map for every row (padding)
    are cut off, so windows on the whole map stay that size."""
    R, h, w, O = win.shape
    channels, H, W = in_shape
    _, cin_g, kh, kw = layer.weight.shape
    groups = layer.groups
    cout_g = O // groups
    (sh, sw), (dh, dw) = layer.stride, layer.dilation
    nh, nw = (h - 1) * sh + dh * (kh - 1) + 1, (w - 1) * sw + dw * (kw - 1) + 1
    oy, ox = oy * sh - layer.padding[0], ox * sw - layer.padding[1]
    top, left = int(min(nh - 1, max(0, -oy.max()))), int(min(nw - 1, max(0, -ox.max())))
    bottom = int(min(nh - 1 - top, max(0, (oy + nh - H).min())))
    right = int(min(nw - 1 - left, max(0, (ox + nw - W).min())))
    weight = _weight_hwc(layer)
    per_row = 8 * (h * w * cin_g * kh * kw * groups + 2 * channels * nh * nw)
    step = max(1, IM2COL_CHUNK_BYTES // per_row)  # temporaries bounded like ConvOp.apply_transpose's
    out = np.zeros((R, nh - top - bottom, nw - left - right, channels))
    for start in range(0, R, step):
        block = win[start:start + step]
        n = block.shape[0]
        for g in range(groups):
            rows = block[..., g * cout_g:(g + 1) * cout_g].reshape(n * h * w, cout_g)
            cols = (rows @ weight[g * cout_g:(g + 1) * cout_g]).reshape(n, h * w, -1)
            col2im_hwc_add(cols, w, kh, kw, sh, sw, dh, dw, g * cin_g, top, left, out[start:start + n])
    return out, oy + top, ox + left


def _halves(x: np.ndarray, k: int) -> np.ndarray:
    """max over the upper and the lower row of each neuron (one row each while they are equal)."""
    return x if x.size == k else np.maximum(x[:k], x[k:])


def _stack(*arrays):
    return tuple(np.concatenate([x, x]) for x in arrays)


def map_shape(graph, j: int):
    """(C, H, W) of node j's output when windows can step through node j (a convolution, or an elementwise
    relaxation of one), else None."""
    from .deeppoly import DiagonalRelax, LinearRelax

    while j != NETWORK_INPUT:
        relax = graph.relaxations[j]
        if isinstance(relax, LinearRelax) and isinstance(relax.op, ConvOp):
            return tuple(relax.op.out_shape)
        if not isinstance(relax, DiagonalRelax) or len(graph.inputs[j]) != 1:
            return None
        j = graph.inputs[j][0]
    return None


def row_bytes(graph, target: int) -> int | None:
    """Bytes a row of conv node ``target`` needs at its widest windowed step (upper and lower windows in and
    out; BLAS columns are chunked separately), or None when its windows end on dense rows."""
    from .deeppoly import DiagonalRelax, LinearRelax

    op = graph.relaxations[target].op
    kh, kw = op.layer.weight.shape[2:]
    (dh, dw) = op.layer.dilation
    (C, H, W), h, w = op.in_shape, dh * (kh - 1) + 1, dw * (kw - 1) + 1
    widest = 2 * h * w * C
    j = graph.inputs[target][0]
    while j != NETWORK_INPUT:
        relax, inputs = graph.relaxations[j], graph.inputs[j]
        conv = isinstance(relax, LinearRelax) and isinstance(relax.op, ConvOp)
        if len(inputs) != 1 or not (conv or isinstance(relax, DiagonalRelax)):
            return None
        if h * w >= FULL_SHARE * H * W:
            widest = max(widest, h * w * C + H * W * C)
            h, w = H, W
        if conv:
            layer = relax.op.layer
            (sh, sw), (dh, dw) = layer.stride, layer.dilation
            kh, kw = layer.weight.shape[2:]
            nh, nw = (h - 1) * sh + dh * (kh - 1) + 1, (w - 1) * sw + dw * (kw - 1) + 1
            C, H, W = relax.op.in_shape
            widest = max(widest, 2 * h * w * relax.op.out_shape[0] + nh * nw * C)
            h, w = nh, nw
        else:
            widest = max(widest, 2 * h * w * C)
        j = inputs[0]
    return 8 * 2 * widest


def backsubstitute_windowed(graph, target: int, rows: np.ndarray, sound: bool):
    """(lower, upper) of neurons ``rows`` of conv node ``target`` (see the module docstring); the same
    bounds as ``deeppoly.backsubstitute`` up to summation order."""
    op = graph.relaxations[target].op
    layer = op.layer
    O, OH, OW = op.out_shape
    k = len(rows)
    rows = np.asarray(rows, dtype=np.int64)
    channel, pos = rows // (OH * OW), rows % (OH * OW)
    oy, ox = pos // OW, pos % OW
    # the target itself: one-hot rows, equal for the upper and the lower bound
    bias, v = _conv_vectors(graph, target, sound)
    const = bias[channel].copy()
    slack = np.zeros(k)
    if sound:
        slack += gamma(max(op.fan_in, op.fan_out) + 3) * v[(oy * OW + ox) * O + channel]
    (sh, sw), (dh, dw) = layer.stride, layer.dilation
    kh, kw = layer.weight.shape[2:]
    shape = tuple(op.in_shape)
    win = _first_transpose(channel, layer, shape[0], dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    oy, ox = oy * sh - layer.padding[0], ox * sw - layer.padding[1]
    return _continue(graph, graph.inputs[target][0], win, oy, ox, shape, const, slack, k, sound)


def continue_on_map(graph, j: int, shape, C_u, C_l, const_u, const_l, slack, sound):
    """Continue a dense back-substitution (rows C_u, C_l on node j's output, a (C, H, W) map) on windows
    covering the whole map."""
    k = C_u.shape[0]
    C, H, W = shape
    if C_l is C_u and np.array_equal(const_u, const_l):  # equal rows: carried once
        win, const = C_u.reshape(k, C, H, W), const_u
    else:
        win = np.concatenate([C_u.reshape(k, C, H, W), C_l.reshape(k, C, H, W)])
        const = np.concatenate([const_u, const_l])
    zero = np.zeros(win.shape[0], dtype=np.int64)
    return _continue(graph, j, np.ascontiguousarray(win.transpose(0, 2, 3, 1)), zero, zero.copy(), shape,
                     const, slack, k, sound)


def _continue(graph, j, win, oy, ox, shape, const, slack, k, sound):
    """Back-substitute windows ``win`` (R, h, w, C) at offsets (oy, ox) of node j's output map ``shape``
    down to the input; R = k while upper and lower rows are equal, else 2k (upper first)."""
    from .deeppoly import DiagonalRelax, LinearRelax, finish_backsubstitution, input_rounding

    while j != NETWORK_INPUT:
        relax, inputs = graph.relaxations[j], graph.inputs[j]
        R, h, w, _ = win.shape
        C, H, W = shape
        conv = isinstance(relax, LinearRelax) and isinstance(relax.op, ConvOp)
        if len(inputs) != 1 or not (conv or isinstance(relax, DiagonalRelax)):
            dense = np.empty((R, C * H * W))
            window_to_dense(win, oy, ox, H, W, dense)
            if R == k:
                return finish_backsubstitution(graph, j, dense, dense, const, const.copy(), slack, sound,
                                               windows=True)
            return finish_backsubstitution(graph, j, dense[:k], dense[k:], const[:k].copy(), const[k:].copy(),
                                           slack, sound, windows=True)
        if h * w >= FULL_SHARE * H * W and ((h, w) != (H, W) or oy.any() or ox.any()):
            on_map = np.empty((R, H, W, C))
            window_on_map(win, oy, ox, on_map)
            win, oy, ox = on_map, np.zeros_like(oy), np.zeros_like(ox)
        if conv:
            op = relax.op
            bias, v = _conv_vectors(graph, j, sound)
            mag = np.empty(R)
            window_linear_terms(win, oy, ox, H, W, bias, v, const, mag)
            if sound:
                slack += gamma(max(op.fan_in, op.fan_out) + 3) * _halves(mag, k) + _halves(addition_error(const), k)
            shape = tuple(op.in_shape)
            win, oy, ox = _window_transpose(win, oy, ox, op.layer, shape)
        else:
            if R == k:
                win, oy, ox, const = _stack(win, oy, ox, const)
                R = 2 * k
            a_l, b_l, a_u, b_u, v, bmag = _diagonal_vectors(graph, j, shape)
            mag_v, mag_b = np.empty(R), np.empty(R)
            window_diagonal_backsub(win, k, oy, ox, H, W, a_l, b_l, a_u, b_u, v, bmag, const, mag_v, mag_b)
            if sound:
                slack += 2 * UNIT_ROUNDOFF * _halves(mag_v, k) + gamma(C * H * W + 2) * _halves(mag_b, k) \
                    + _halves(addition_error(const), k)
        j = inputs[0]
    if win.shape[0] == k:
        win, oy, ox, const = _stack(win, oy, ox, const)
    lo_in, hi_in, m = _input_vectors(graph, shape)
    out, mag = const.copy(), np.empty(2 * k)
    window_concretize(win, k, oy, ox, shape[1], shape[2], lo_in, hi_in, m, out, mag)
    upper, lower = out[:k], out[k:]
    if not sound:
        return lower, upper
    slack += input_rounding(graph) * (_halves(mag, k) + np.abs(const[:k]) + np.abs(const[k:]))
    return widen(lower, upper, inflate(slack))


__all__ = ["applicable", "backsubstitute_windowed", "cached", "continue_on_map", "map_shape", "row_bytes"]
