"""Slow numpy references for kernels/patterns.py: bits as bool arrays, no packing tricks."""

from __future__ import annotations

import numpy as np


def pack(bits: np.ndarray) -> np.ndarray:
    """Bool (n, d) -> uint64 (n, ceil(d/64)); bit j of a row is bit j % 64 of word j // 64."""
    bits = np.asarray(bits, dtype=bool)
    n, d = bits.shape
    w = (d + 63) // 64
    out = np.zeros((n, w), dtype=np.uint64)
    for j in range(d):
        out[:, j // 64] |= bits[:, j].astype(np.uint64) << np.uint64(j % 64)
    return out


def unpack(P: np.ndarray, d: int) -> np.ndarray:
    """Inverse of ``pack``: uint64 (n, w) -> bool (n, d)."""
    P = np.asarray(P, dtype=np.uint64)
    return np.stack([(P[:, j // 64] >> np.uint64(j % 64)) & np.uint64(1) for j in range(d)], axis=1).astype(bool) \
        if d else np.zeros((P.shape[0], 0), dtype=bool)


def hamming_matrix(Q: np.ndarray, D: np.ndarray, d: int) -> np.ndarray:
    """Pairwise Hamming distances by counting differing unpacked bits."""
    a, b = unpack(Q, d), unpack(D, d)
    return (a[:, None, :] != b[None, :, :]).sum(axis=2).astype(np.int64)


def nearest(Q: np.ndarray, D: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Min distance and first argmin per query; -1, -1 for an empty D."""
    if D.shape[0] == 0:
        return np.full(Q.shape[0], -1, np.int64), np.full(Q.shape[0], -1, np.int64)
    m = hamming_matrix(Q, D, d)
    return m.min(axis=1), m.argmin(axis=1)


def nearest_grouped(Q, group, D, group_ptr, d):
    """Nearest among the rows of D in the query's group (rows sorted by group); -1, -1 if none."""
    dist = np.full(Q.shape[0], -1, np.int64)
    idx = np.full(Q.shape[0], -1, np.int64)
    for i, g in enumerate(group):
        if not 0 <= g < len(group_ptr) - 1:
            continue
        lo, hi = group_ptr[g], group_ptr[g + 1]
        if hi > lo:
            m = hamming_matrix(Q[i:i + 1], D[lo:hi], d)[0]
            dist[i], idx[i] = m.min(), lo + m.argmin()
    return dist, idx
