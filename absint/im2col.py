"""Window geometry of 2-d convolution and pooling, and numpy im2col views.

Shapes are per sample, channels first: an input is (C, H, W); padding is
(top, left, bottom, right) as in ONNX ``pads`` for two spatial axes.
"""

from __future__ import annotations

import numpy as np

Pair = tuple[int, int]
Pads = tuple[int, int, int, int]

#: im2col buffers larger than this are built batch-chunk by batch-chunk.
IM2COL_CHUNK_BYTES = 1 << 25


def window_output_hw(hw: Pair, kernel: Pair, stride: Pair, padding: Pads, dilation: Pair = (1, 1)) -> Pair:
    """Output height and width: floor((H + pad_t + pad_b - dil*(k-1) - 1) / stride) + 1."""
    out = []
    for axis in range(2):
        span = dilation[axis] * (kernel[axis] - 1) + 1
        padded = hw[axis] + padding[axis] + padding[axis + 2]
        n = (padded - span) // stride[axis] + 1
        out.append(int(n))
    return out[0], out[1]


def pad_hw(x: np.ndarray, padding: Pads, value: float = 0.0) -> np.ndarray:
    """Pad the last two axes of ``x`` by (top, left, bottom, right) with ``value``."""
    top, left, bottom, right = padding
    if not any(padding):
        return x
    widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
    return np.pad(x, widths, mode="constant", constant_values=value)


def windows(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pads, dilation: Pair = (1, 1),
            pad_value: float = 0.0) -> np.ndarray:
    """Strided view of every window: (..., C, H, W) -> (..., C, OH, OW, KH, KW).

    The view reads from a padded copy; no window is materialised.
    """
    xp = pad_hw(x, padding, pad_value)
    span = (dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1)
    view = np.lib.stride_tricks.sliding_window_view(xp, span, axis=(-2, -1))
    view = view[..., ::stride[0], ::stride[1], ::dilation[0], ::dilation[1]]
    oh, ow = window_output_hw(x.shape[-2:], kernel, stride, padding, dilation)
    return view[..., :oh, :ow, :, :]


def conv2d_work_bytes(batch: int, in_channels: int, weight_shape: tuple[int, ...], out_hw: Pair,
                      groups: int = 1) -> int:
    """Temporaries of ``conv2d_forward`` on ``batch`` samples besides input and output: the padded
    copy, one chunk of im2col columns and its product with the weights."""
    out_ch, cin_g, kh, kw = weight_shape
    cols_row = 8 * cin_g * kh * kw * out_hw[0] * out_hw[1]
    res_row = 8 * out_hw[0] * out_hw[1] * (out_ch // groups)
    per_sample = 8 * in_channels * kh * kw * out_hw[0] * out_hw[1]
    chunk = min(batch, max(1, IM2COL_CHUNK_BYTES // max(per_sample, 1)))
    return chunk * (cols_row + res_row)


def conv2d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: Pair,
                   padding: Pads, dilation: Pair, groups: int) -> np.ndarray:
    """Cross-correlation of a batch (B, C, H, W) with weight (O, C/groups, KH, KW), by im2col + BLAS."""
    batch = x.shape[0]
    out_ch, cin_g, kh, kw = weight.shape
    oh, ow = window_output_hw(x.shape[-2:], (kh, kw), stride, padding, dilation)
    out = np.empty((batch, out_ch, oh, ow), dtype=np.float64)
    per_sample = x.shape[1] * kh * kw * oh * ow * 8
    chunk = max(1, IM2COL_CHUNK_BYTES // max(per_sample, 1))
    cout_g = out_ch // groups
    for start in range(0, batch, chunk):
        xs = x[start:start + chunk]
        win = windows(xs, (kh, kw), stride, padding, dilation)  # (b, C, OH, OW, KH, KW)
        for g in range(groups):
            cols = win[:, g * cin_g:(g + 1) * cin_g]                       # (b, Cg, OH, OW, KH, KW)
            cols = np.ascontiguousarray(cols.transpose(0, 2, 3, 1, 4, 5)).reshape(len(xs), oh * ow, -1)
            wg = weight[g * cout_g:(g + 1) * cout_g].reshape(cout_g, -1)  # (Og, Cg*KH*KW)
            res = cols @ wg.T                                              # (b, OH*OW, Og)
            out[start:start + len(xs), g * cout_g:(g + 1) * cout_g] = (
                res.reshape(len(xs), oh, ow, cout_g).transpose(0, 3, 1, 2))
    if bias is not None:
        out += bias[None, :, None, None]
    return out
