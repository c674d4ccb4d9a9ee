"""Kernels on CSR generator rows: 2-d convolution of every row, column sums of |G|, conv support.

A CSR matrix is passed as ``indptr, indices, data`` (scipy layout). A row is a flattened
(C, H, W) tensor with column index ``c*H*W + i*W + j``. Padding is (top, left, bottom, right)
as in ONNX ``pads``; the weight is (C_out, C_in/groups, KH, KW) as in ONNX Conv.

Output pattern of :func:`csr_conv2d`: the *structural* support of each row, i.e. every output
(o, a, b) whose window covers a stored entry of the same group. Exact zeros (cancellation,
zero weights, stored zeros) stay in the pattern, so the non-zero count is predictable from the
input pattern alone (see :func:`conv_support_1d`); columns are sorted and unique in every row.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from ._config import kernel

__all__ = ["csr_conv2d", "csr_conv2d_matrix", "csr_conv2d_scratch_bytes", "csr_abs_row_sum",
           "csr_abs_row_sum_matrix", "conv_support_1d", "conv_support_step", "conv_support_count",
           "conv_output_size"]

_INT32_MAX = np.iinfo(np.int32).max
#: row chunks per numba thread (chunks are balanced by nnz + rows; each owns its scratch)
_CHUNKS_PER_THREAD = 4
#: when a row's touched (group, position) keys exceed this share of all keys, they are
#: ordered by scanning the marker array instead of sorting them.
_SCAN_SHARE = 1.0 / 16.0


# ----------------------------------------------------------------------------- geometry

def conv_output_size(n_in: int, kernel: int, stride: int, pad_before: int, pad_after: int,
                     dilation: int) -> int:
    """floor((n + pad_before + pad_after - dilation*(kernel-1) - 1) / stride) + 1 (may be <= 0)."""
    span = dilation * (kernel - 1) + 1
    return (n_in + pad_before + pad_after - span) // stride + 1


def _tap_table(n_in: int, kernel: int, stride: int, pad_before: int, dilation: int,
               n_out: int) -> np.ndarray:
    """table[t, p] = a with a*stride - pad_before + p*dilation = t and 0 <= a < n_out, else -1."""
    t = np.arange(n_in, dtype=np.int64)[:, None]
    p = np.arange(kernel, dtype=np.int64)[None, :]
    num = t + pad_before - p * dilation
    a = num // stride
    ok = (num - a * stride == 0) & (a >= 0) & (a < n_out)
    return np.ascontiguousarray(np.where(ok, a, -1), dtype=np.int64)


def conv_support_1d(n_in: int, kernel: int, stride: int, pad_before: int, dilation: int,
                    n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Per input index t, the first and last output a whose window covers t.

    Output a covers t iff a*stride - pad_before + p*dilation = t for some 0 <= p < kernel.
    The covering outputs are first, first + step, ..., last with
    step = dilation / gcd(stride, dilation) (:func:`conv_support_step`); an input covered by
    no output has first = 0, last = -1.
    """
    if n_in < 0 or n_out < 0 or kernel < 1 or stride < 1 or dilation < 1:
        raise ValueError(f"bad conv geometry n_in={n_in} kernel={kernel} stride={stride} "
                         f"dilation={dilation} n_out={n_out}")
    table = _tap_table(n_in, kernel, stride, pad_before, dilation, n_out)
    valid = table >= 0
    anyv = valid.any(axis=1)
    big = np.iinfo(np.int64).max
    first = np.where(valid, table, big).min(axis=1, initial=big)
    last = table.max(axis=1, initial=-1)
    first = np.where(anyv, first, 0).astype(np.int64)
    last = np.where(anyv, last, -1).astype(np.int64)
    return first, last


def conv_support_step(stride: int, dilation: int) -> int:
    """Spacing of the outputs covering one input: dilation / gcd(stride, dilation)."""
    return dilation // math.gcd(stride, dilation)


def conv_support_count(n_in: int, kernel: int, stride: int, pad_before: int, dilation: int,
                       n_out: int) -> np.ndarray:
    """Per input index, how many outputs cover it: (last - first) // step + 1, 0 if none."""
    first, last = conv_support_1d(n_in, kernel, stride, pad_before, dilation, n_out)
    step = conv_support_step(stride, dilation)
    return np.maximum((last - first) // step + 1, 0)


# ----------------------------------------------------------------------------- conv kernels

@kernel(parallel=True)
def _conv_count(indptr, indices, bounds, HW, W, ah, aw, cin_g, OHW, OW, cout_g, n_keys, counts):
    """counts[r] = cout_g * #distinct (group, a, b) covered by the entries of row r."""
    n_chunks = bounds.shape[0] - 1
    KH = ah.shape[1]
    KW = aw.shape[1]
    for ch in prange(n_chunks):
        r0 = bounds[ch]
        r1 = bounds[ch + 1]
        if r1 > r0:
            stamp = np.zeros(n_keys, np.int64)
            for r in range(r0, r1):
                mark = r + 1
                total = 0
                for k in range(indptr[r], indptr[r + 1]):
                    col = indices[k]
                    c = col // HW
                    rem = col - c * HW
                    i = rem // W
                    j = rem - i * W
                    gbase = (c // cin_g) * OHW
                    for p in range(KH):
                        a = ah[i, p]
                        if a < 0:
                            continue
                        rowbase = gbase + a * OW
                        for q in range(KW):
                            b = aw[j, q]
                            if b < 0:
                                continue
                            key = rowbase + b
                            if stamp[key] != mark:
                                stamp[key] = mark
                                total += 1
                counts[r] = total * cout_g


@kernel(parallel=True)
def _conv_fill(indptr, indices, data, bounds, HW, W, ah, aw, wt, cin_g, OHW, OW, cout_g,
               n_keys, scan_min, out_indptr, out_indices, out_data):
    """Row r of the output: acc[s*C_out + o] += wt[c_local, p, q, o] * x for every entry x at
    (c, i, j) and tap (p, q) landing on position s = a*OW + b; then gather in column order."""
    n_chunks = bounds.shape[0] - 1
    KH = ah.shape[1]
    KW = aw.shape[1]
    C_out = wt.shape[3]
    w2 = wt.reshape((wt.shape[0] * KH * KW, C_out))
    for ch in prange(n_chunks):
        r0 = bounds[ch]
        r1 = bounds[ch + 1]
        if r1 > r0:
            stamp = np.zeros(n_keys, np.int64)
            keys = np.empty(n_keys, np.int64)
            acc = np.zeros(OHW * C_out, np.float64)
            for r in range(r0, r1):
                mark = r + 1
                nk = 0
                for k in range(indptr[r], indptr[r + 1]):
                    col = indices[k]
                    v = data[k]
                    c = col // HW
                    rem = col - c * HW
                    i = rem // W
                    j = rem - i * W
                    g = c // cin_g
                    cl = c - g * cin_g
                    o0 = g * cout_g
                    gbase = g * OHW
                    for p in range(KH):
                        a = ah[i, p]
                        if a < 0:
                            continue
                        for q in range(KW):
                            b = aw[j, q]
                            if b < 0:
                                continue
                            s = a * OW + b
                            key = gbase + s
                            if stamp[key] != mark:
                                stamp[key] = mark
                                keys[nk] = key
                                nk += 1
                            # slice views let LLVM vectorise the update over channels
                            dst = acc[s * C_out + o0: s * C_out + o0 + cout_g]
                            src = w2[(cl * KH + p) * KW + q, o0: o0 + cout_g]
                            for t in range(cout_g):
                                dst[t] += src[t] * v
                # keys in increasing order: (group, position)
                if nk >= scan_min:
                    m = 0
                    for key in range(n_keys):
                        if stamp[key] == mark:
                            keys[m] = key
                            m += 1
                else:
                    keys[:nk].sort()
                pos = out_indptr[r]
                kk = 0
                while kk < nk:
                    g = keys[kk] // OHW
                    gbase = g * OHW
                    kend = kk + 1
                    while kend < nk and keys[kend] < gbase + OHW:
                        kend += 1
                    o0 = g * cout_g
                    for t in range(cout_g):
                        o = o0 + t
                        obase = o * OHW - gbase
                        for m in range(kk, kend):
                            s = keys[m] - gbase
                            out_indices[pos] = obase + keys[m]
                            out_data[pos] = acc[s * C_out + o]
                            pos += 1
                    for m in range(kk, kend):
                        base = (keys[m] - gbase) * C_out + o0
                        for t in range(cout_g):
                            acc[base + t] = 0.0
                    kk = kend


def _pair(v, name: str) -> tuple[int, int]:
    t = tuple(int(x) for x in v)
    if len(t) != 2:
        raise ValueError(f"{name} must have 2 entries, got {v!r}")
    return t


def _row_chunks(indptr: np.ndarray, n_chunks: int) -> np.ndarray:
    """Contiguous row ranges of about equal cost nnz + rows; bounds (n_chunks + 1,) int64."""
    m = indptr.shape[0] - 1
    cost = indptr.astype(np.int64) + np.arange(m + 1, dtype=np.int64)
    targets = np.linspace(0, cost[-1], n_chunks + 1)
    bounds = np.searchsorted(cost, targets, side="left").astype(np.int64)
    bounds[0] = 0
    bounds[-1] = m
    return np.maximum.accumulate(bounds)


def _index_array(a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.int32 and a.dtype != np.int64:
        if a.size and not np.issubdtype(a.dtype, np.integer):
            raise TypeError(f"{name} must be an integer array, got {a.dtype}")
        a = a.astype(np.int64)
    return np.ascontiguousarray(a)


def csr_conv2d(indptr, indices, data, weight, in_chw, out_chw, stride=(1, 1), padding=(0, 0, 0, 0),
               dilation=(1, 1), groups=1):
    """Every CSR row x (a flattened (C, H, W) tensor) mapped to conv(x) without bias.

    y[o, a, b] = sum_{c in group(o), p, q} w[o, c - g*C_in/groups, p, q] * x[c, a*sh - top + p*dh,
    b*sw - left + q*dw]. Returns (out_indptr int64, out_indices int32 (int64 if C_out*OH*OW
    does not fit), out_data float64) with sorted, unique columns per row; the pattern is the
    structural support, so exact zeros may stay. Duplicate input columns are summed.
    """
    C, H, W = (int(x) for x in in_chw)
    Co, OH, OW = (int(x) for x in out_chw)
    sh, sw = _pair(stride, "stride")
    dh, dw = _pair(dilation, "dilation")
    pads = tuple(int(x) for x in padding)
    if len(pads) != 4:
        raise ValueError(f"padding must be (top, left, bottom, right), got {padding!r}")
    top, left, bottom, right = pads
    groups = int(groups)
    weight = np.ascontiguousarray(weight, dtype=np.float64)
    if weight.ndim != 4:
        raise ValueError(f"weight must be (C_out, C_in/groups, KH, KW), got shape {weight.shape}")
    wo, cin_g, KH, KW = weight.shape
    if min(sh, sw, dh, dw) < 1 or min(pads) < 0 or groups < 1:
        raise ValueError(f"bad conv parameters stride={stride} padding={padding} "
                         f"dilation={dilation} groups={groups}")
    if wo != Co or wo % groups or cin_g * groups != C or min(C, H, W, KH, KW) < 1:
        raise ValueError(f"weight {weight.shape} with groups={groups} does not map {in_chw} to {out_chw}")
    eh = conv_output_size(H, KH, sh, top, bottom, dh)
    ew = conv_output_size(W, KW, sw, left, right, dw)
    if (eh, ew) != (OH, OW) or OH < 1 or OW < 1:
        raise ValueError(f"out_chw {out_chw} does not match the conv output ({Co}, {eh}, {ew})")
    n_in = C * H * W
    n_out = Co * OH * OW

    indptr = _index_array(indptr, "indptr")
    indices = _index_array(indices, "indices")
    data = np.ascontiguousarray(data, dtype=np.float64)
    if indptr.ndim != 1 or indptr.shape[0] < 1:
        raise ValueError("indptr must be a 1-d array with at least one entry")
    m = indptr.shape[0] - 1
    nnz = int(indptr[-1])
    if int(indptr[0]) != 0 or indices.shape[0] < nnz or data.shape[0] < nnz or (
            m and np.any(np.diff(indptr) < 0)):
        raise ValueError("malformed CSR arrays (indptr must start at 0, be non-decreasing, "
                         "and end at most at len(indices))")
    if nnz and (int(indices[:nnz].min()) < 0 or int(indices[:nnz].max()) >= n_in):
        raise ValueError(f"column index out of range for {n_in} input columns")

    out_indptr = np.zeros(m + 1, dtype=np.int64)
    idx_dtype = np.int32 if n_out <= _INT32_MAX else np.int64
    if m == 0 or nnz == 0:
        return out_indptr, np.empty(0, idx_dtype), np.empty(0, np.float64)

    ah = _tap_table(H, KH, sh, top, dh, OH)
    aw = _tap_table(W, KW, sw, left, dw, OW)
    cout_g = Co // groups
    OHW = OH * OW
    n_keys = groups * OHW
    # weight transposed to (C_in/groups, KH, KW, C_out): output channels contiguous
    wt = np.ascontiguousarray(weight.transpose(1, 2, 3, 0))
    n_chunks = _n_chunks(m)
    bounds = _row_chunks(indptr, n_chunks)

    counts = np.zeros(m, dtype=np.int64)
    _conv_count(indptr, indices, bounds, H * W, W, ah, aw, cin_g, OHW, OW, cout_g, n_keys, counts)
    np.cumsum(counts, out=out_indptr[1:])
    total = int(out_indptr[-1])
    out_indices = np.empty(total, dtype=idx_dtype)
    out_data = np.empty(total, dtype=np.float64)
    scan_min = max(1, int(n_keys * _SCAN_SHARE))
    _conv_fill(indptr, indices, data, bounds, H * W, W, ah, aw, wt, cin_g, OHW, OW, cout_g,
               n_keys, scan_min, out_indptr, out_indices, out_data)
    return out_indptr, out_indices, out_data


def _n_chunks(m: int) -> int:
    return max(1, min(m, _CHUNKS_PER_THREAD * numba.get_num_threads()))


def csr_conv2d_scratch_bytes(m: int, out_chw, groups: int = 1) -> int:
    """Temporary bytes of :func:`csr_conv2d` besides input and output: per row chunk two int64
    marker/key arrays of groups*OH*OW and one float64 accumulator of C_out*OH*OW; 8 bytes per row."""
    Co, OH, OW = (int(x) for x in out_chw)
    per_chunk = 16 * groups * OH * OW + 8 * Co * OH * OW
    return _n_chunks(m) * per_chunk + 8 * (m + 1) if m else 0


def csr_conv2d_matrix(G, weight, in_chw, out_chw, stride=(1, 1), padding=(0, 0, 0, 0),
                      dilation=(1, 1), groups=1):
    """scipy.sparse wrapper of :func:`csr_conv2d`: rows of G (m, C*H*W) -> csr_matrix (m, C_out*OH*OW)."""
    import scipy.sparse as sp

    G = sp.csr_matrix(G)
    n_in = int(np.prod([int(x) for x in in_chw]))
    if G.shape[1] != n_in:
        raise ValueError(f"G has {G.shape[1]} columns, in_chw {tuple(in_chw)} needs {n_in}")
    ip, ix, dt = csr_conv2d(G.indptr, G.indices, G.data, weight, in_chw, out_chw, stride,
                            padding, dilation, groups)
    n_out = int(np.prod([int(x) for x in out_chw]))
    if ip[-1] <= _INT32_MAX and ix.dtype == np.int32:
        ip = ip.astype(np.int32)  # scipy keeps one index dtype for indptr and indices
    out = sp.csr_matrix((dt, ix, ip), shape=(G.shape[0], n_out), copy=False)
    out.has_sorted_indices = True
    return out


# ----------------------------------------------------------------------------- reductions

@kernel
def csr_abs_row_sum(indptr, indices, data, out):
    """out[j] += sum_i |G[i, j]| (column sums of |G|), rows in order: the same summation
    order as the dense ``reductions.abs_row_sum``, hence bitwise-equal results."""
    m = indptr.shape[0] - 1
    for r in range(m):
        for k in range(indptr[r], indptr[r + 1]):
            out[indices[k]] += abs(data[k])
    return out


def csr_abs_row_sum_matrix(G, out=None):
    """Column sums of |G| for a scipy CSR matrix, accumulated into ``out`` (zeros if None)."""
    if out is None:
        out = np.zeros(G.shape[1], dtype=np.float64)
    csr_abs_row_sum(_index_array(G.indptr, "indptr"), _index_array(G.indices, "indices"),
                    np.ascontiguousarray(G.data, dtype=np.float64), out)
    return out


# ----------------------------------------------------------------------------- warmup

def _warmup() -> None:
    """Compile every kernel of this module on tiny inputs (int32 and int64 index arrays)."""
    w = np.ones((2, 1, 2, 2))
    for it in (np.int32, np.int64):
        indptr = np.array([0, 2, 2, 3], dtype=it)
        indices = np.array([0, 5, 7], dtype=it)
        data = np.array([1.0, -2.0, 0.5])
        csr_conv2d(indptr, indices, data, w, (2, 2, 2), (2, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2)
        out = np.zeros(8)
        csr_abs_row_sum(indptr, indices, data, out)
