"""The numba-compiled group kernels of :mod:`arraystore.ops.groupby.fused` (its contract).

This module imports numba at its top, so only :func:`.fused._build` (through its
:class:`~arraystore._native.jit.LazyKernel`) imports it. Each kernel makes one pass over
a block ``X (m, K)`` whose row ``i`` belongs to group ``codes[i]`` (cell
``codes[i] * K + j``) and does, value after value in row order, exactly the float
operations of the numpy path (:func:`arraystore.ops.groupby.kernels.field_state`):
``np.bincount`` with weights adds one value after another to its cell starting at 0.0,
so the sums here are the same bits; ``np.minimum(old, new)`` gives ``new`` unless
``old < new`` (of ``0.0`` and ``-0.0`` the later), and so do these. ``runs``: the codes
come in long runs; a cell's running value then stays in a register along its run (the
same additions, in the same order) instead of being stored and loaded again each time.
"""

from __future__ import annotations

import numba
import numpy as np

_jit = numba.njit(nogil=True, cache=True, fastmath=False)


@_jit
def float_pass(codes, X, runs, n, s, mn, mx):
    """Sums, min and max of the non-NaN values of a float block; ``n`` holds the rows
    per cell and loses one per NaN (counts)."""
    m, K = X.shape
    if runs and K == 1:
        prev = -1
        acc, lo, hi = 0.0, 0.0, 0.0
        for i in range(m):
            v = X[i, 0]
            c = codes[i]
            if v != v:
                n[c] -= 1
                continue
            if c != prev:
                if prev >= 0:
                    s[prev], mn[prev], mx[prev] = acc, lo, hi
                acc, lo, hi = s[c], mn[c], mx[c]
                prev = c
            acc += np.float64(v)
            lo = lo if lo < v else v
            hi = hi if hi > v else v
        if prev >= 0:
            s[prev], mn[prev], mx[prev] = acc, lo, hi
        return
    for i in range(m):
        base = codes[i] * K
        for j in range(K):
            v = X[i, j]
            c = base + j
            if v != v:
                n[c] -= 1
                continue
            s[c] += np.float64(v)
            if not mn[c] < v:
                mn[c] = v
            if not mx[c] > v:
                mx[c] = v


@_jit
def int_pass(codes, X, runs, s, mn, mx):
    """Exact int64 sums, min and max of an int block of at most 4-byte values."""
    m, K = X.shape
    if runs and K == 1:
        prev = -1
        acc, lo, hi = np.int64(0), np.int64(0), np.int64(0)
        for i in range(m):
            v = np.int64(X[i, 0])
            c = codes[i]
            if c != prev:
                if prev >= 0:
                    s[prev], mn[prev], mx[prev] = acc, lo, hi
                acc, lo, hi = s[c], np.int64(mn[c]), np.int64(mx[c])
                prev = c
            acc += v
            lo = lo if lo < v else v
            hi = hi if hi > v else v
        if prev >= 0:
            s[prev], mn[prev], mx[prev] = acc, lo, hi
        return
    for i in range(m):
        base = codes[i] * K
        for j in range(K):
            v = X[i, j]
            c = base + j
            s[c] += np.int64(v)
            if not mn[c] < v:
                mn[c] = v
            if not mx[c] > v:
                mx[c] = v


@_jit
def wide_pass(codes, X, low, shift, lo, hi, mn, mx):
    """Exact sums of the low and high 32-bit halves (int64 each), min and max of an
    8-byte int block (``low``/``shift``: 0xFFFFFFFF and 32 in the block's dtype)."""
    m, K = X.shape
    for i in range(m):
        base = codes[i] * K
        for j in range(K):
            v = X[i, j]
            c = base + j
            lo[c] += np.int64(v & low)
            hi[c] += np.int64(v >> shift)
            if not mn[c] < v:
                mn[c] = v
            if not mx[c] > v:
                mx[c] = v


@_jit
def m2_pass(codes, X, mu, runs, m2):
    """Sums of ``(x - mu[cell])**2`` (float64) of the non-NaN values."""
    m, K = X.shape
    if runs and K == 1:
        prev = -1
        acc = 0.0
        mc = 0.0
        for i in range(m):
            v = X[i, 0]
            if v != v:
                continue
            c = codes[i]
            if c != prev:
                if prev >= 0:
                    m2[prev] = acc
                acc = m2[c]
                mc = mu[c]
                prev = c
            d = np.float64(v) - mc
            acc += d * d
        if prev >= 0:
            m2[prev] = acc
        return
    for i in range(m):
        base = codes[i] * K
        for j in range(K):
            v = X[i, j]
            if v != v:
                continue
            c = base + j
            d = np.float64(v) - mu[c]
            m2[c] += d * d


@_jit
def dense_codes(col, base, runs, off, counts):
    """``off[i] = col[i] - base`` (intp) and ``counts[off[i]] += 1``: an int key column
    whose values lie in ``[base, base + len(counts))``."""
    b = np.intp(base)
    if runs:
        prev, cnt = np.intp(-1), 0
        for i in range(col.shape[0]):
            c = np.intp(col[i]) - b
            off[i] = c
            if c != prev:
                if prev >= 0:
                    counts[prev] = cnt
                cnt = counts[c]
                prev = c
            cnt += 1
        if prev >= 0:
            counts[prev] = cnt
        return
    for i in range(col.shape[0]):
        c = np.intp(col[i]) - b
        off[i] = c
        counts[c] += 1


@_jit
def min_max(col):
    """The smallest and largest value of an int column (not empty), in one pass."""
    lo = hi = col[0]
    for i in range(1, col.shape[0]):
        v = col[i]
        if v < lo:
            lo = v
        elif v > hi:
            hi = v
    return lo, hi


@_jit
def pair_pass(codes, A, B, na, sa, mna, mxa, nb, sb, mnb, mxb):
    """:func:`float_pass` / :func:`int_pass` of two one-value fields ``A``, ``B`` (float
    or int of at most 4 bytes, scattered codes) in one loop: the same operations per
    cell, in row order (an int's sum adds it as int64, a float's as float64; ints are
    never NaN)."""
    for i in range(A.shape[0]):
        c = codes[i]
        v = A[i, 0]
        if v != v:
            na[c] -= 1
        else:
            sa[c] += v
            if not mna[c] < v:
                mna[c] = v
            if not mxa[c] > v:
                mxa[c] = v
        w = B[i, 0]
        if w != w:
            nb[c] -= 1
        else:
            sb[c] += w
            if not mnb[c] < w:
                mnb[c] = w
            if not mxb[c] > w:
                mxb[c] = w


@_jit
def m2_pair(codes, A, B, mua, mub, m2a, m2b):
    """:func:`m2_pass` of two one-value fields (scattered codes) in one loop."""
    for i in range(A.shape[0]):
        c = codes[i]
        v = A[i, 0]
        if v == v:
            d = np.float64(v) - mua[c]
            m2a[c] += d * d
        w = B[i, 0]
        if w == w:
            e = np.float64(w) - mub[c]
            m2b[c] += e * e
