"""Bit-packed ReLU activation patterns: packing, popcount and Hamming nearest-pattern search.

A pattern of n neurons is ``ceil(n / 64)`` uint64 words; neuron j is bit ``j % 64`` of word
``j // 64`` (bits past n are zero). The Hamming distance of two patterns is
``sum_w popcount(a_w XOR b_w)``; popcount is LLVM's ``ctpop`` (one POPCNT instruction on x86-64,
vectorised where the loop allows). The nearest-pattern search takes the stored patterns word-major
(words, n_stored) so that each word of a block of candidates is one contiguous vector.
"""

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from ._config import kernel, serial_when_small

WORD_BITS = 64


@intrinsic
def _ctpop64(typingctx, x):
    """popcount of a uint64 through the llvm.ctpop intrinsic, as int64 (so sums stay integers)."""
    if not isinstance(x, types.Integer):  # pragma: no cover - typing guard
        return None
    sig = types.int64(types.uint64)

    def codegen(context, builder, signature, args):
        value = args[0]
        if value.type != ir.IntType(64):  # pragma: no cover - uint64 is i64 in LLVM
            value = builder.zext(value, ir.IntType(64))
        return builder.ctpop(value)

    return sig, codegen


@kernel
def popcount64(x):
    """Number of set bits of one uint64 word."""
    return _ctpop64(np.uint64(x))


def n_words(n_bits: int) -> int:
    """Words needed for n_bits neurons: ceil(n_bits / 64)."""
    return (int(n_bits) + WORD_BITS - 1) // WORD_BITS


@kernel(parallel=True)
def _pack_positive_parallel(x, out):
    n, d = x.shape
    w = out.shape[1]
    for i in prange(n):
        for k in range(w):
            word = np.uint64(0)
            j0 = k * 64
            j1 = min(d, j0 + 64)
            for j in range(j0, j1):
                if x[i, j] > 0.0:
                    word |= np.uint64(1) << np.uint64(j - j0)
            out[i, k] = word


@serial_when_small(work=lambda x, out: x.size)
def pack_positive(x, out):
    """out[i, k] bit b = (x[i, 64k + b] > 0): the ReLU pattern of pre-activations x (n, d) float64.

    ``out`` is a C-contiguous uint64 (n, ceil(d / 64)) buffer; NaN packs as 0 (NaN > 0 is false).
    """
    _pack_positive_parallel(x, out)
    return out


@kernel
def popcount_rows(P, out):
    """out[i] = number of set bits of row i of P (n, w) uint64: active neurons per pattern."""
    n, w = P.shape
    for i in range(n):
        c = 0
        for k in range(w):
            c += _ctpop64(P[i, k])
        out[i] = c
    return out


@kernel(parallel=True)
def hamming_matrix(Q, D, out):
    """out[i, j] = Hamming distance of Q[i] and D[j]; Q (nq, w), D (nd, w) uint64, out (nq, nd) int64."""
    nq, w = Q.shape
    nd = D.shape[0]
    for i in prange(nq):
        for j in range(nd):
            c = 0
            for k in range(w):
                c += _ctpop64(Q[i, k] ^ D[j, k])
            out[i, j] = c
    return out


#: stored patterns compared per block in the nearest-pattern search (an int32 buffer of this length)
SEARCH_BLOCK = 1024


@kernel
def _nearest_in_range(Q, i, DW, start, stop):
    """(distance, index) of the stored pattern in columns start:stop of DW nearest to Q[i]; first index
    wins ties; (-1, -1) if the range is empty.

    DW is word-major (words, n_stored): each block of SEARCH_BLOCK candidates accumulates
    popcount(q_k XOR DW[k, j]) word by word into an int32 buffer (contiguous, so LLVM vectorises the
    popcounts), then takes the block minimum; the search stops at distance 0.
    """
    w = DW.shape[0]
    if stop <= start:
        return -1, -1
    if w == 0:                     # zero-width patterns: every stored one is at distance 0
        return 0, start
    buf = np.empty(SEARCH_BLOCK, np.int32)
    best = np.int32(2147483647)
    arg = -1
    for j0 in range(start, stop, SEARCH_BLOCK):
        n = min(stop, j0 + SEARCH_BLOCK) - j0
        q = Q[i, 0]
        row = DW[0, j0:j0 + n]
        for j in range(n):
            buf[j] = np.int32(_ctpop64(q ^ row[j]))
        for k in range(1, w):
            q = Q[i, k]
            row = DW[k, j0:j0 + n]
            for j in range(n):
                buf[j] += np.int32(_ctpop64(q ^ row[j]))
        m = best
        for j in range(n):
            m = min(m, buf[j])
        if m < best:
            for j in range(n):
                if buf[j] == m:
                    arg = j0 + j
                    break
            best = m
        if best == 0:
            break
    if arg < 0:
        return -1, -1
    return int(best), arg


@kernel(parallel=True)
def hamming_nearest(Q, DW, dist, idx):
    """dist[i], idx[i] = min_j Hamming(Q[i], D[j]) and its first argmin; -1, -1 when D is empty.

    Q (nq, words) row-major; the stored patterns D are passed word-major, DW = D.T (words, n_stored)."""
    nd = DW.shape[1]
    for i in prange(Q.shape[0]):
        d, a = _nearest_in_range(Q, i, DW, 0, nd)
        dist[i] = d
        idx[i] = a
    return dist, idx


@kernel(parallel=True)
def hamming_nearest_grouped(Q, group, DW, group_ptr, dist, idx):
    """Nearest pattern of Q[i] among the stored columns group_ptr[g]:group_ptr[g + 1] of DW (word-major,
    columns sorted by group, e.g. predicted class), g = group[i]: distance and column index; -1, -1 when
    that group is empty or g is out of range."""
    n_groups = group_ptr.shape[0] - 1
    for i in prange(Q.shape[0]):
        g = group[i]
        if g < 0 or g >= n_groups:
            dist[i] = -1
            idx[i] = -1
            continue
        d, a = _nearest_in_range(Q, i, DW, group_ptr[g], group_ptr[g + 1])
        dist[i] = d
        idx[i] = a
    return dist, idx


def _warmup():
    """Compile every pattern kernel on a 2x70 batch (two words per pattern)."""
    x = np.array([[1.0, -1.0] * 35, [-1.0, 2.0] * 35])
    P = np.zeros((2, 2), dtype=np.uint64)
    _pack_positive_parallel(x, P)
    popcount_rows(P, np.zeros(2, dtype=np.int64))
    hamming_matrix(P, P, np.zeros((2, 2), dtype=np.int64))
    dist, idx = np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.int64)
    PW = np.ascontiguousarray(P.T)
    hamming_nearest(P, PW, dist, idx)
    hamming_nearest_grouped(P, np.zeros(2, dtype=np.int64), PW, np.array([0, 2], dtype=np.int64), dist, idx)
    popcount64(np.uint64(3))
