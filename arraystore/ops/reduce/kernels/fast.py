"""Fast paths of :func:`arraystore.ops.reduce.kernels.partial` for the common float layouts.

The generic path (:mod:`kernels_leaf` + :mod:`kernels_merge`) builds and merges one
state dict per ~1 MiB leaf; its Python overhead per leaf is a sizeable part of the time.
These loops do the same in-cache passes (sum, min, max, centred M2 of one leaf while it
is hot) but write per-leaf results into preallocated arrays and merge all leaves of a
block at once, vectorised. They cover bool/int/float data, ops among :data:`FAST_OPS`,
no NaN/inf in a float block (checked via the sums) and 64-bit integer sums that provably
fit in 64 bits (otherwise they return ``None`` and the generic path takes over, with
NaN counting and exact Python-int sums), and two layouts of a C-contiguous block:

* :func:`rows_state` -- ``X (R, K)`` reduced along axis 0 (``axis=None``, or leading
  axes, e.g. per-column stats of a table);
* :func:`cols_state` -- ``X (K, r)`` reduced along axis 1 (trailing axes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arraystore.ops.reduce.kernels import leaf as _kl
from arraystore.ops.reduce.kernels import numba as kernels_numba
from arraystore.ops.reduce.kernels.leaf import Spec, buffer, leaf_state, two_sum
from arraystore.ops.reduce.kernels.merge import State, chan, combine

FAST_OPS = frozenset({"count", "nan_count", "sum", "mean", "var", "std", "min", "max"})
#: Widest regrouped row the rows kernel keeps per-leaf results for.
_MAX_ROW = 4096


def _applies(spec: Spec) -> bool:
    return spec.kind in "fbiu" and spec.ops <= FAST_OPS


def _int_sums_fit(X: np.ndarray, spec: Spec, r: int, lo: object, hi: object) -> bool:
    """Can int64/uint64 partial sums of up to ``r`` values of X not overflow?"""
    if spec.kind not in "iu" or X.dtype.itemsize < 8:
        return True  # |x| < 2**32 and r < 2**31
    if lo is None or hi is None:
        lo, hi = X.min(), X.max()
    bound = max(abs(int(lo)), abs(int(hi))) * r  # type: ignore[call-overload]
    return bound < (1 << 63 if spec.kind == "i" else 1 << 64)


@dataclass
class _RowLeaves:
    """Per-leaf results of :func:`rows_state`, one row per leaf of ``g`` rows: ``(L,)``
    for one column, else ``(L, W)`` over the ``k`` regrouped rows of ``K`` columns."""

    K: int
    k: int
    g: int
    L: int
    S: np.ndarray | None  # sums
    Q: np.ndarray | None  # centred sums of squares
    C: np.ndarray | None  # sums of the deviations (the mean's low digits)
    M0: np.ndarray | None  # each leaf's rounded mean (the centre), (L, K)
    MN: np.ndarray | None
    MX: np.ndarray | None

    @property
    def flat(self) -> bool:
        return self.K == 1

    def per_leaf(self, A: np.ndarray) -> np.ndarray:
        """``A`` as ``(L, K)``: the regrouped rows of each leaf added up."""
        if self.flat:
            return A.reshape(self.L, self.K)
        return np.add.reduce(A.reshape(self.L, self.k, self.K), axis=1)


def rows_state(X: np.ndarray, spec: Spec, fused: bool = True) -> State | None:
    """State of ``X (R, K)`` reduced along axis 0, or ``None`` if not applicable;
    ``fused``: a float block first tries the numba kernel (when installed)."""
    if not _applies(spec) or not X.flags.c_contiguous:
        return None
    if fused and spec.kind == "f":
        one_pass = kernels_numba.rows_state(X, spec.ops)
        if one_pass is not None:
            return one_pass
    R, K = X.shape
    k = 1
    while K != 1 and K * k * 2 <= 1024:
        k *= 2
    if K * k > _MAX_ROW:
        return None
    g = max(k, (_kl.LEAF_BYTES // (K * X.dtype.itemsize)) // k * k)
    if R // g < 2:
        return None
    leaves = _row_leaves(X, spec, k, g)
    if not _row_leaves_usable(X, spec, leaves):
        return None
    st = _row_leaves_state(spec, leaves)
    if leaves.L * g < R:
        st = combine(spec, [st, leaf_state(X[leaves.L * g :], 0, spec)])
    return st


def _row_leaves(X: np.ndarray, spec: Spec, k: int, g: int) -> _RowLeaves:
    """Every pass (min, max, sum, centred M2) over each leaf of ``g`` rows while it is in
    cache, the leaf's rows regrouped ``k`` at a time into rows of ``W = K * k`` values."""
    R, K = X.shape
    L = R // g
    flat = K == 1
    W = K * k
    is_int = spec.kind != "f"
    need_s = spec.need_sum or spec.track_nan
    m2 = spec.need_m2
    lo_op, hi_op = _lo_hi(spec)
    shape = (L,) if flat else (L, W)
    S = np.empty(shape, spec.sum_dtype) if need_s else None
    Q = np.empty(shape) if m2 else None
    C = np.empty(shape) if m2 else None
    M0 = np.empty((L, K)) if m2 else None
    MN = np.empty(shape, X.dtype) if "min" in spec.ops else None
    MX = np.empty(shape, X.dtype) if "max" in spec.ops else None
    conv = X.dtype != np.float64 and (m2 or not is_int)
    T = np.empty((k, K))
    vshape = (g,) if flat else (g // k, W)
    D = buffer(vshape, np.dtype(np.float64), "d")
    F = buffer(vshape, np.dtype(np.float64), "x") if conv else None
    for i in range(L):
        v = X[i * g : (i + 1) * g].reshape(vshape)
        xf = v
        if F is not None:
            np.copyto(F, v)
            xf = F
        if flat:
            if MN is not None:
                MN[i] = lo_op.reduce(v)
            if MX is not None:
                MX[i] = hi_op.reduce(v)
        else:
            if MN is not None:
                lo_op.reduce(v, axis=0, out=MN[i])
            if MX is not None:
                hi_op.reduce(v, axis=0, out=MX[i])
        if S is None:
            continue
        if is_int:
            if flat:
                S[i] = np.add.reduce(v, dtype=S.dtype)
            else:
                np.add.reduce(v, axis=0, dtype=S.dtype, out=S[i])
        elif flat:
            S[i] = np.add.reduce(xf)
        else:
            np.einsum("ij->j", xf, out=S[i])
        if Q is not None:
            assert C is not None and M0 is not None
            if flat:
                M0[i] = S[i] / g
                np.subtract(xf, M0[i], out=D)
                Q[i] = np.einsum("i,i->", D, D)
                C[i] = np.einsum("i->", D)
            else:
                np.divide(np.add.reduce(S[i].reshape(k, K), axis=0), g, out=M0[i])
                T[:] = M0[i]
                np.subtract(xf, T.reshape(W), out=D)
                np.einsum("ij,ij->j", D, D, out=Q[i])
                np.einsum("ij->j", D, out=C[i])
    return _RowLeaves(K, k, g, L, S, Q, C, M0, MN, MX)


def _row_leaves_usable(X: np.ndarray, spec: Spec, lv: _RowLeaves) -> bool:
    """False when the generic path must take over (see the module docstring)."""
    is_int = spec.kind != "f"
    if not is_int and not all(np.isfinite(A).all() for A in (lv.S, lv.Q) if A is not None):
        return False  # NaN/inf somewhere, or squares overflowed: the generic path handles them
    if lv.S is not None and not _int_sums_fit(
        X,
        spec,
        lv.L * lv.g,
        None if lv.MN is None else lv.MN.min(),
        None if lv.MX is None else lv.MX.max(),
    ):
        return False  # exact sums need the generic path's Python ints
    # 64-bit ints beyond 2**52: the generic path centres them exactly
    return lv.M0 is None or not is_int or not (np.abs(lv.M0) > _kl.BIG_MEAN).any()


def _row_leaves_state(spec: Spec, lv: _RowLeaves) -> State:
    """All leaves merged at once, vectorised (Chan's formula for M2)."""
    K, g, L = lv.K, lv.g, lv.L
    lo_op, hi_op = _lo_hi(spec)
    st: State = {"size": np.full(K, L * g, np.int64)}
    st["n"] = st["size"].copy()
    st["nan"] = np.zeros(K, np.int64)
    if lv.MN is not None:
        st["min"] = lo_op.reduce(lv.MN.reshape(-1, K), axis=0)
    if lv.MX is not None:
        st["max"] = hi_op.reduce(lv.MX.reshape(-1, K), axis=0)
    if lv.S is not None:
        total = np.add.reduce(lv.per_leaf(lv.S), axis=0)
        if spec.need_sum:
            st["sum"] = total
        if lv.Q is not None:
            assert lv.C is not None and lv.M0 is not None
            q_leaf = lv.per_leaf(lv.Q)
            c_leaf = lv.per_leaf(lv.C)
            m2_leaf = np.maximum(q_leaf - c_leaf * (c_leaf / g), 0.0)
            mu, mul = two_sum(lv.M0, c_leaf / g)
            n_leaf = np.full((L, K), g, np.int64)
            st["mu"], st["mul"], st["m2"] = chan(n_leaf, mu, mul, m2_leaf)
    return st


def _lo_hi(spec: Spec) -> tuple[np.ufunc, np.ufunc]:
    return (np.fmin, np.fmax) if spec.skipna else (np.minimum, np.maximum)


def cols_state(X: np.ndarray, spec: Spec) -> State | None:
    """State of ``X (K, r)`` reduced along axis 1, or ``None`` if not applicable."""
    if not _applies(spec) or not X.flags.c_contiguous:
        return None
    K, r = X.shape
    if r * X.dtype.itemsize > _kl.LEAF_BYTES // 4 or r == 0 or K == 0:
        return None
    g = max(1, _kl.LEAF_BYTES // (r * X.dtype.itemsize))
    is_int = spec.kind != "f"
    need_s = spec.need_sum or spec.track_nan
    lo_op, hi_op = (np.fmin, np.fmax) if spec.skipna else (np.minimum, np.maximum)
    st: State = {"size": np.full(K, r, np.int64)}
    st["n"] = st["size"].copy()
    st["nan"] = np.zeros(K, np.int64)
    S = np.empty(K, spec.sum_dtype) if need_s else None
    Q = np.empty(K) if spec.need_m2 else None
    C = np.empty(K) if spec.need_m2 else None
    MN = np.empty(K, X.dtype) if "min" in spec.ops else None
    MX = np.empty(K, X.dtype) if "max" in spec.ops else None
    conv = X.dtype != np.float64 and (spec.need_m2 or not is_int)
    for i in range(0, K, g):
        v = X[i : i + g]
        xf = v
        if conv:
            xf = buffer(v.shape, np.dtype(np.float64), "x")
            np.copyto(xf, v)
        if MN is not None:
            lo_op.reduce(v, axis=1, out=MN[i : i + g])
        if MX is not None:
            hi_op.reduce(v, axis=1, out=MX[i : i + g])
        if S is None:
            continue
        s = S[i : i + g]
        if is_int:
            np.add.reduce(v, axis=1, dtype=S.dtype, out=s)
        else:
            np.einsum("ij->i", xf, out=s)
        if Q is not None:
            assert C is not None
            d = np.subtract(xf, (s / r)[:, None], out=buffer(v.shape, np.dtype(np.float64), "d"))
            np.einsum("ij,ij->i", d, d, out=Q[i : i + g])
            np.einsum("ij->i", d, out=C[i : i + g])
    if S is not None:
        if not is_int and not np.isfinite(S).all():
            return None
        lo = None if MN is None else MN.min()
        if not _int_sums_fit(X, spec, r, lo, None if MX is None else MX.max()):
            return None
        if spec.need_sum:
            st["sum"] = S
    if Q is not None:
        assert C is not None and S is not None
        if is_int and (np.abs(S / r) > _kl.BIG_MEAN).any():
            return None  # see rows_state
        st["m2"] = np.maximum(Q - C * (C / r), 0.0)
        if not np.isfinite(st["m2"]).all():
            return None  # overflow: see rows_state
        st["mu"], st["mul"] = two_sum(S / r, C / r)
    if MN is not None:
        st["min"] = MN
    if MX is not None:
        st["max"] = MX
    return st
