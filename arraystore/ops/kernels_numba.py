"""Optional fused one-pass kernel (numba) for per-column float statistics.

:func:`rows_state` computes, for a C-contiguous float32/float64 block ``X (R, K)``
reduced along axis 0, the same state as :func:`arraystore.ops.kernels_fast.rows_state`
(``size, n, nan, sum, m2, min, max``) in **one read** of the block: rows are taken in
groups small enough to stay in L1/L2 cache; each group gets its column sums, min and max,
then the centred sum of squares around the group mean while it is still in cache, and the
groups are merged with Chan's formula. numba compiles it once (cached on disk) and runs
it without the GIL, so threads reduce different chunks in parallel.

It is used only when numba is installed (``pip install 'arraystore[fast]'``); otherwise,
and for blocks holding NaN or ±inf (the numpy path counts and propagates those exactly),
the numpy kernels run. Results equal the numpy path to rounding (float sums are
accumulated in a different order).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.jit import LazyKernel

GROUP_BYTES = 64 * 1024


def _build() -> Any:
    import numba

    @numba.njit(nogil=True, cache=True, fastmath=False)
    def fused(X, g, s_out, m2_out, mn_out, mx_out):
        R, K = X.shape
        gs = np.empty(K)
        gm = np.empty(K)
        n_acc = 0.0
        mean_acc = np.zeros(K)
        for j in range(K):
            mn_out[j] = X[0, j]
            mx_out[j] = X[0, j]
            s_out[j] = 0.0
            m2_out[j] = 0.0
        start = 0
        finite = True
        sh = np.empty(K)
        for j in range(K):
            sh[j] = X[0, j]  # one shift per column: group means are small, merges exact
        while start < R:
            stop = min(start + g, R)
            n = stop - start
            for j in range(K):
                gs[j] = 0.0
            for i in range(start, stop):
                for j in range(K):
                    v = X[i, j]
                    gs[j] += v - sh[j]
                    if v < mn_out[j]:
                        mn_out[j] = v
                    if v > mx_out[j]:
                        mx_out[j] = v
            for j in range(K):
                gm[j] = gs[j] / n
            q = np.zeros(K)
            for i in range(start, stop):
                for j in range(K):
                    d = (X[i, j] - sh[j]) - gm[j]
                    q[j] += d * d
            # Chan: merge (n_acc, mean_acc, m2) with (n, gm, q), means relative to sh
            tot = n_acc + n
            for j in range(K):
                delta = gm[j] - mean_acc[j]
                m2_out[j] += q[j] + delta * delta * n_acc * n / tot
                mean_acc[j] += delta * n / tot
                s_out[j] += gs[j] + n * sh[j]
            n_acc = tot
            start = stop
        for j in range(K):
            if not (np.isfinite(s_out[j]) and np.isfinite(m2_out[j])):
                finite = False
            if mn_out[j] != mn_out[j] or mx_out[j] != mx_out[j]:
                finite = False
        return finite

    return fused


KERNEL = LazyKernel(_build)
_load = KERNEL.get


def available() -> bool:
    return _load() is not None


def rows_state(X: np.ndarray, ops: frozenset[str]) -> dict[str, np.ndarray] | None:
    """State dict of ``X (R, K)`` along axis 0, or None (no numba, NaN/inf, odd layout)."""
    if X.dtype not in (np.float64, np.float32) or not X.flags.c_contiguous or X.ndim != 2:
        return None
    R, K = X.shape
    if R == 0 or K == 0:
        return None
    fused = _load()
    if fused is None:
        return None
    g = max(1, GROUP_BYTES // (K * X.dtype.itemsize))
    s = np.empty(K)
    m2 = np.empty(K)
    mn = np.empty(K, X.dtype)
    mx = np.empty(K, X.dtype)
    if not fused(X, g, s, m2, mn, mx):
        return None
    size = np.full(K, R, np.int64)
    st: dict[str, np.ndarray] = {"size": size, "n": size.copy(), "nan": np.zeros(K, np.int64)}
    if "min" in ops:
        st["min"] = mn
    if "max" in ops:
        st["max"] = mx
    if ops & {"sum", "mean", "var", "std", "nan_count"}:
        st["sum"] = s
    if ops & {"var", "std"}:
        st["m2"] = m2
    return st


def prewarm(dtypes: Any) -> None:
    """Import numba and load the kernel for these block dtypes in the background (see
    :meth:`arraystore.core.jit.LazyKernel.prewarm`); float32/float64 only."""
    wanted = sorted({np.dtype(d).str for d in dtypes if np.dtype(d) in (np.float32, np.float64)})
    if not wanted:
        return

    def samples() -> list[tuple[Any, ...]]:
        out = []
        for d in wanted:
            x = np.zeros((1, 1), d)
            out.append((x, 1, np.empty(1), np.empty(1), np.empty(1, d), np.empty(1, d)))
        return out

    KERNEL.prewarm(samples)
