"""Optional fused one-pass kernel (numba) for per-column float statistics.

:func:`rows_state` computes, for a C-contiguous float32/float64 block ``X (R, K)``
reduced along axis 0, the same state as :func:`arraystore.ops.reduce.kernels.fast.rows_state`
(``size, n, nan, sum, m2, min, max``) in **one read** of the block: rows are taken in
groups small enough to stay in L1/L2 cache; each group gets its column sums, min and max,
then the centred sum of squares around the group mean while it is still in cache, and the
groups are merged with Chan's formula. numba compiles it once (cached on disk) and runs
it without the GIL, so threads reduce different chunks in parallel.

:class:`RowsCarry` folds consecutive row blocks (a memmap task's cache-sized pieces) into
one running state, so a piece costs one kernel call instead of a state dict and a merge.

It is used only when numba is installed (``pip install 'arraystore[fast]'``); otherwise,
and for blocks holding NaN or ±inf (the numpy path counts and propagates those exactly),
the numpy kernels run. Results equal the numpy path to rounding (float sums are
accumulated in a different order).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from arraystore._native.jit import LazyKernel
from arraystore.ops.reduce.kernels.leaf import two_sum

GROUP_BYTES = 64 * 1024


def _build() -> Any:
    # numba is imported there, at module level: the helpers the kernel calls must be
    # module globals for numba's disk cache (closures over them are compiled again)
    from arraystore.ops.reduce.kernels import rows_jit  # lazy: imports numba

    return rows_jit.carry


KERNEL = LazyKernel(_build)
_load = KERNEL.get


def available() -> bool:
    return _load() is not None


class RowsCarry:
    """The running state of consecutive row blocks ``X (R_i, K)`` of one float array,
    folded by the kernel one block after another (a task's cache-sized pieces): the same
    arithmetic as one :func:`rows_state` call whose groups restart at each block."""

    def __init__(self, K: int, dtype: np.dtype) -> None:
        self.kernel = _load()
        self.dtype = np.dtype(dtype)
        self.rows = 0
        self._acc = np.zeros(1)
        self._sh = np.empty(K)
        self._mean = np.empty(K)
        self._s = np.empty(K)
        self._m2 = np.empty(K)
        self._mn = np.empty(K, self.dtype)
        self._mx = np.empty(K, self.dtype)

    @classmethod
    def create(cls, K: int, dtype: Any) -> RowsCarry | None:
        """A carry for ``(R, K)`` blocks of ``dtype``, or None (not float32/64, no numba)."""
        if np.dtype(dtype) not in (np.float32, np.float64) or K == 0 or _load() is None:
            return None
        return cls(K, dtype)

    def add(self, X: np.ndarray) -> bool:
        """Fold ``X``; False once a value is NaN/inf (the state is then unusable)."""
        if X.shape[0] == 0:
            return True
        g = max(1, GROUP_BYTES // (X.shape[1] * X.dtype.itemsize))
        ok = bool(
            self.kernel(
                X, g, self.rows == 0, self._acc, self._sh, self._mean, self._s, self._m2,
                self._mn, self._mx,
            )
        )  # fmt: skip
        self.rows += X.shape[0]
        return ok

    def state(self, ops: frozenset[str]) -> dict[str, np.ndarray]:
        """The state dict of every row folded so far (at least one)."""
        size = np.full(self._s.shape[0], self.rows, np.int64)
        st: dict[str, np.ndarray] = {"size": size, "n": size.copy(), "nan": np.zeros_like(size)}
        if "min" in ops:
            st["min"] = self._mn.copy()
        if "max" in ops:
            st["max"] = self._mx.copy()
        if ops & {"sum", "mean", "var", "std", "nan_count"}:
            st["sum"] = self._s.copy()
        if ops & {"var", "std"}:
            st["m2"] = self._m2.copy()
            # the mean is the exact pivot plus the small running mean relative to it
            st["mu"], st["mul"] = two_sum(self._sh.copy(), self._mean.copy())
        return st


def rows_state(X: np.ndarray, ops: frozenset[str]) -> dict[str, np.ndarray] | None:
    """State dict of ``X (R, K)`` along axis 0, or None (no numba, NaN/inf, odd layout)."""
    if X.dtype not in (np.float64, np.float32) or not X.flags.c_contiguous or X.ndim != 2:
        return None
    R, K = X.shape
    if R == 0:
        return None
    c = RowsCarry.create(K, X.dtype)
    if c is None or not c.add(X):
        return None
    return c.state(ops)


def prewarm(dtypes: Any) -> None:
    """Import numba and load the kernel for these block dtypes in the background (see
    :meth:`arraystore._native.jit.LazyKernel.prewarm`); float32/float64 only."""
    wanted = sorted({np.dtype(d).str for d in dtypes if np.dtype(d) in (np.float32, np.float64)})
    if not wanted:
        return

    def samples() -> list[tuple[Any, ...]]:
        out = []
        for d in wanted:
            x = np.zeros((1, 1), d)
            f = [np.empty(1) for _ in range(5)]
            out.append((x, 1, True, *f, np.empty(1, d), np.empty(1, d)))
        return out

    KERNEL.prewarm(samples)
