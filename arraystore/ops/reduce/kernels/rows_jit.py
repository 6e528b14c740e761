"""The numba-compiled parts of :mod:`arraystore.ops.reduce.kernels.numba` (its contract).

This module imports numba at its top, so only :func:`.numba._build` (through its
:class:`~arraystore._native.jit.LazyKernel`) imports it: without numba that import fails
and the numpy kernels run. The helpers :func:`carry` calls are module globals, not
closures, so numba's disk cache (``cache=True``) finds every one of them again in the
next process instead of compiling :func:`carry` anew.
"""

from __future__ import annotations

import numba
import numpy as np

_jit = numba.njit(nogil=True, cache=True, fastmath=False)


@_jit
def start_state(X, acc, sh, mean_acc, s_out, m2_out, mn_out, mx_out):
    """A new running state from the first row of ``X``: zero rows, shift ``sh = X[0]``."""
    acc[0] = 0.0
    for j in range(X.shape[1]):
        sh[j] = X[0, j]  # one shift per column: group means are small, merges exact
        mn_out[j] = X[0, j]
        mx_out[j] = X[0, j]
        s_out[j] = 0.0
        m2_out[j] = 0.0
        mean_acc[j] = 0.0


@_jit
def sums_pass(X, start, stop, sh, gs, mn_out, mx_out):
    """First pass over the rows ``start:stop``: ``gs[j] = sum(X[rows, j] - sh[j])``, and
    the rows folded into the running ``mn_out``/``mx_out``."""
    K = X.shape[1]
    for j in range(K):
        gs[j] = 0.0
    # rows four at a time: one load/store of each running value per four rows,
    # the same sequence of operations per column as one row at a time
    i = start
    while i + 4 <= stop:
        for j in range(K):
            h = sh[j]
            v0, v1, v2, v3 = X[i, j], X[i + 1, j], X[i + 2, j], X[i + 3, j]
            gs[j] = (((gs[j] + (v0 - h)) + (v1 - h)) + (v2 - h)) + (v3 - h)
            lo = mn_out[j]
            lo = v0 if v0 < lo else lo
            lo = v1 if v1 < lo else lo
            lo = v2 if v2 < lo else lo
            mn_out[j] = v3 if v3 < lo else lo
            hi = mx_out[j]
            hi = v0 if v0 > hi else hi
            hi = v1 if v1 > hi else hi
            hi = v2 if v2 > hi else hi
            mx_out[j] = v3 if v3 > hi else hi
        i += 4
    for r in range(i, stop):
        for j in range(K):
            v = X[r, j]
            gs[j] += v - sh[j]
            if v < mn_out[j]:
                mn_out[j] = v
            if v > mx_out[j]:
                mx_out[j] = v


@_jit
def m2_pass(X, start, stop, sh, gm, q):
    """Second pass over the rows ``start:stop`` (still in cache): the centred sums of
    squares ``q[j] = sum(((X[rows, j] - sh[j]) - gm[j]) ** 2)``."""
    K = X.shape[1]
    for j in range(K):
        q[j] = 0.0
    i = start
    while i + 4 <= stop:
        for j in range(K):
            h, m = sh[j], gm[j]
            d0, d1 = (X[i, j] - h) - m, (X[i + 1, j] - h) - m
            d2, d3 = (X[i + 2, j] - h) - m, (X[i + 3, j] - h) - m
            q[j] = (((q[j] + d0 * d0) + d1 * d1) + d2 * d2) + d3 * d3
        i += 4
    for r in range(i, stop):
        for j in range(K):
            d = (X[r, j] - sh[j]) - gm[j]
            q[j] += d * d


@_jit
def state_finite(s_out, m2_out, mn_out, mx_out):
    """False when a sum or M2 is NaN/inf, or a min/max is NaN."""
    for j in range(s_out.shape[0]):
        if not (np.isfinite(s_out[j]) and np.isfinite(m2_out[j])):
            return False
        if mn_out[j] != mn_out[j] or mx_out[j] != mx_out[j]:
            return False
    return True


@_jit
def carry(X, g, first, acc, sh, mean_acc, s_out, m2_out, mn_out, mx_out):
    """Fold ``X (R, K)`` into a running state (``first``: start a new one). ``acc[0]``
    is the row count so far; ``sh`` the per-column shift (the first row seen)."""
    R, K = X.shape
    gs = np.empty(K)
    gm = np.empty(K)
    q = np.empty(K)
    if first:
        start_state(X, acc, sh, mean_acc, s_out, m2_out, mn_out, mx_out)
    n_acc = acc[0]
    start = 0
    while start < R:
        stop = min(start + g, R)
        n = stop - start
        sums_pass(X, start, stop, sh, gs, mn_out, mx_out)
        for j in range(K):
            gm[j] = gs[j] / n
        m2_pass(X, start, stop, sh, gm, q)
        # Chan: merge (n_acc, mean_acc, m2) with (n, gm, q), means relative to sh
        tot = n_acc + n
        for j in range(K):
            delta = gm[j] - mean_acc[j]
            m2_out[j] += q[j] + delta * delta * n_acc * n / tot
            mean_acc[j] += delta * n / tot
            s_out[j] += gs[j] + n * sh[j]
        n_acc = tot
        start = stop
    acc[0] = n_acc
    return state_finite(s_out, m2_out, mn_out, mx_out)
