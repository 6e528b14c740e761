"""The in-cache 2-d reduction kernel behind :mod:`arraystore.ops.reduce.kernels`.

:func:`leaf_state` reduces one small 2-d array ``X`` along one axis (``ax`` 0 or 1) and
returns the mergeable state of every output cell as a dict of 1-d arrays of length
``X.shape[1 - ax]``. ``X`` is a *leaf*: a piece of a task's block of about
:data:`LEAF_BYTES`, so that all the passes below run on data that sits in the L2 cache.

State keys (present only when an op needs them): ``size`` elements seen, ``n`` elements
considered (non-NaN when skipping NaN), ``nan`` NaN count, ``sum`` (float64, complex128,
int64, uint64 or -- after an int overflow -- object of exact Python ints), ``m2`` sum of
squared deviations from the cell mean (float64), ``mu`` + ``mul`` the cell mean as an
unevaluated sum of two floats (float64 or complex128; ``mul`` holds the digits ``mu``
cannot: Chan's merge needs differences of means far below the ulp of an offset mean, so
they are never derived from ``sum``), ``min``/``max`` (input dtype),
``amin_v``/``amin_i`` and ``amax_v``/``amax_i`` (value and *local* index along the
reduced axis of ``X``), ``any``/``all`` (bool), ``cnz`` (int64).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from arraystore.errors import InvalidArgument

#: Target size of one leaf (the leaf plus its float64 deviation buffer fit in L2).
LEAF_BYTES = 1 << 20
#: Rows of a leaf reduced along axis 0 are regrouped so inner loops have ~this length.
_INNER = 1024

OPS = frozenset(
    {
        "count",
        "nan_count",
        "sum",
        "mean",
        "var",
        "std",
        "min",
        "max",
        "argmin",
        "argmax",
        "any",
        "all",
        "count_nonzero",
    }
)

INT64_MAX = np.iinfo(np.int64).max
#: Beyond this mean magnitude, 64-bit ints lose digits in float64 (see ``_int_centred``).
BIG_MEAN = 2.0**52


@dataclass(frozen=True)
class Spec:
    """What to compute for one dtype and one set of ops (derived once per reduction)."""

    dtype: np.dtype
    ops: frozenset[str]
    skipna: bool
    #: a ``where=`` mask excludes elements: ``n`` counts the selected ones
    masked: bool = False

    @property
    def kind(self) -> str:
        return self.dtype.kind

    @property
    def inexact(self) -> bool:
        return self.kind in "fc"

    @property
    def need_m2(self) -> bool:
        return bool(self.ops & {"var", "std"})

    @property
    def need_sum(self) -> bool:
        return bool(self.ops & {"sum", "mean"}) or self.need_m2

    @property
    def track_nan(self) -> bool:
        return self.inexact and ("nan_count" in self.ops or self.skipna)

    @property
    def sum_dtype(self) -> np.dtype:
        return np.dtype(
            {"f": np.float64, "c": np.complex128, "u": np.uint64}.get(self.kind, np.int64)
        )

    def needs(self, op: str) -> bool:
        return op in self.ops


def make_spec(dtype: np.dtype, ops: frozenset[str], skipna: bool, masked: bool = False) -> Spec:
    """Validate ``dtype`` against ``ops`` and build the :class:`Spec`."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "biufc" or dtype.fields is not None or dtype.subdtype is not None:
        raise InvalidArgument(f"reductions need a plain numeric dtype, got {dtype}")
    unknown = set(ops) - OPS
    if unknown:
        raise InvalidArgument(f"unknown reduction op(s): {sorted(unknown)}; use {sorted(OPS)}")
    if dtype.kind == "c":
        bad = sorted(set(ops) & {"min", "max", "argmin", "argmax"})
        if bad:
            raise InvalidArgument(f"{', '.join(bad)} not defined for complex dtype {dtype}")
    if masked and {"argmin", "argmax"} & set(ops):
        raise InvalidArgument("argmin/argmax take no where= (numpy's neither): select first")
    skip = bool(skipna) and dtype.kind in "fc"
    return Spec(dtype.newbyteorder("="), frozenset(ops), skip, bool(masked))


def _pick_k(ax: int, r: int, K: int) -> int:
    """How many rows to fold side by side into one row (power of two dividing ``r``)."""
    if ax != 0 or K >= _INNER // 2 or r < 2:
        return 1
    k = 1
    while k * 2 * K <= _INNER and r % (k * 2) == 0:
        k *= 2
    return k


class _Red:
    """Reductions of a 2-d array along ``ax``: flat when one cell (``K == 1``), else rows
    regrouped ``k`` at a time (axis 0) so numpy's inner loops stay long."""

    def __init__(self, ax: int, r: int, K: int, k: int) -> None:
        self.ax, self.r, self.K, self.k = ax, r, K, k
        self.flat = K == 1

    def view(self, a: np.ndarray) -> np.ndarray:
        if self.flat:
            return a.reshape(-1)
        if self.ax == 1 or self.k == 1:
            return a
        return a.reshape(self.r // self.k, self.K * self.k)

    def fold(self, v: np.ndarray, ufunc: np.ufunc) -> np.ndarray:
        if self.flat:
            return np.asarray(v).reshape(1)
        if self.ax == 1 or self.k == 1:
            return v
        return ufunc.reduce(v.reshape(self.k, self.K), axis=0)

    def reduce(self, ufunc: np.ufunc, a: np.ndarray, dtype: np.dtype | None = None) -> np.ndarray:
        axis = 0 if self.flat else self.ax
        return self.fold(ufunc.reduce(self.view(a), axis=axis, dtype=dtype), ufunc)

    def esum(self, a: np.ndarray) -> np.ndarray:
        """Float sum (einsum along axis 0 is the fastest numpy sum on C-order rows)."""
        if self.flat or self.ax == 1:
            return self.reduce(np.add, a)
        return self.fold(np.einsum("ij->j", self.view(a)), np.add)

    def sumsq(self, d: np.ndarray) -> np.ndarray:
        """Sum of squares of the centred ``d`` (as returned by :meth:`center`)."""
        if d.dtype.kind == "c":
            return self.sumsq(d.real) + self.sumsq(d.imag)
        if self.flat:
            return np.asarray(np.einsum("i,i->", d, d)).reshape(1)  # no BLAS threads
        if self.ax == 1:
            return np.einsum("ij,ij->i", d, d)
        return self.fold(np.einsum("ij,ij->j", d, d), np.add)

    def center(self, a: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """``a - mean`` (in the layout of :meth:`view`), in a reused per-thread buffer."""
        v = self.view(a)
        if self.flat:
            m: np.ndarray | np.generic = mean.reshape(())[()]
        elif self.ax == 1:
            m = mean[:, None]
        else:
            m = np.tile(mean, self.k)
        return np.subtract(v, m, out=buffer(v.shape, np.result_type(v, mean)))


_local = threading.local()


def buffer(shape: tuple[int, ...], dtype: np.dtype, tag: str = "d") -> np.ndarray:
    """A scratch array of this thread (reused across leaves: no page faults per leaf)."""
    n = math.prod(shape)
    key = tag + np.dtype(dtype).str
    bufs = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = {}
    buf = bufs.get(key)
    if buf is None or buf.size < n:
        buf = bufs[key] = np.empty(max(n, 1), dtype)
    return buf[:n].reshape(shape)


def _converted(X: np.ndarray, dtype: np.dtype) -> np.ndarray:
    out = buffer(X.shape, dtype, "x")
    np.copyto(out, X, casting="unsafe")
    return out


def int_sum(X: np.ndarray, red: _Red, spec: Spec, lo: Any, hi: Any) -> np.ndarray:
    """Exact integer sum along the reduced axis (int64/uint64, else object of Python ints)."""
    if spec.kind == "b":
        return np.asarray(np.count_nonzero(X, axis=red.ax), dtype=np.int64)
    acc = spec.sum_dtype
    if spec.dtype.itemsize < 8:  # |x| < 2**32 and r < 2**31: cannot overflow
        return red.reduce(np.add, X, dtype=acc)
    if lo is None or hi is None:
        lo, hi = X.min(), X.max()
    bound = max(abs(int(lo)), abs(int(hi))) * red.r
    if bound < (1 << 63 if spec.kind == "i" else 1 << 64):
        return red.reduce(np.add, X, dtype=acc)
    # Slow exact path: split every value in 32-bit halves, sum each half exactly.
    mask = acc.type(0xFFFFFFFF)
    low = np.add.reduce(X & mask, axis=red.ax, dtype=acc).astype(object)
    high = np.add.reduce(X >> acc.type(32), axis=red.ax, dtype=acc).astype(object)
    return np.asarray(high * (1 << 32) + low, dtype=object)


def as_float(s: np.ndarray) -> np.ndarray:
    """A float64 (or complex128) view of a sum array, exact Python ints rounded once."""
    if s.dtype == object:
        return np.array([float(v) for v in s.ravel()], dtype=np.float64).reshape(s.shape)
    if s.dtype.kind == "c":
        return s.astype(np.complex128, copy=False)
    return s.astype(np.float64, copy=False)


def two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knuth's TwoSum: ``s = fl(a + b)`` and its exact rounding error ``a + b - s``."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def centred(
    red: _Red, d: np.ndarray, mu0: np.ndarray, n: np.ndarray, clean: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mu, mul, m2)`` from ``d = x - mu0`` (the corrected two-pass algorithm): the
    deviations' own sum ``c`` corrects both the mean (``mu0 + c/n``, kept as two floats)
    and ``m2 = sum d**2 - |c|**2/n``, so a rounded ``mu0`` costs no digits."""
    nn = np.maximum(n, 1)
    c = red.esum(d)
    cn = c / nn  # |c|**2 / n as c * (c / n): no overflow when the result is finite
    cc = (cn * np.conj(c)).real if c.dtype.kind == "c" else cn * c
    m2 = np.maximum(red.sumsq(d) - cc, 0.0)
    mu, mul = two_sum(mu0, cn)
    if not np.isfinite(m2).all():
        fin = np.isfinite(mu0) if clean is None else clean  # cells of finite values
        mu, mul, m2 = saturate(mu0, mu, mul, m2, fin)
    return mu, mul, m2


def saturate(
    p: np.ndarray, mu: np.ndarray, mul: np.ndarray, m2: np.ndarray, clean: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells of finite data (``clean``) whose ``m2`` overflowed (inf, or NaN from
    ``inf - inf``): their sum of squared deviations exceeds float64's range, so ``m2``
    is +inf, and the mean is kept finite (the centre ``p``) so that later merges of
    the state stay inf, not NaN. Cells holding NaN or inf data keep their NaN."""
    over = clean & ~np.isfinite(m2)
    m2 = np.where(over, np.inf, m2)
    return np.where(over, p, mu), np.where(over, 0, mul), m2


def safe_centre(Xf: np.ndarray, ax: int, mu0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(centre, clean)``: ``mu0`` (``sum / n``) where finite, else -- the sum of finite
    values near float64's maximum overflowed -- the value of largest magnitude, so that
    equal values deviate by exactly 0 (a centre off by one ulp of 1e308 would square to
    inf); ``clean``: the cells whose values are all finite."""
    idx = np.expand_dims(np.argmax(np.abs(Xf), axis=ax), ax)
    big = np.take_along_axis(Xf, idx, axis=ax).reshape(mu0.shape)
    ok = np.isfinite(mu0)
    clean = ok | np.isfinite(Xf).all(axis=ax).reshape(mu0.shape)
    return np.where(ok | ~clean, mu0, big), clean


def _float_m2(
    red: _Red,
    Xf: np.ndarray,
    mu0: np.ndarray,
    n: np.ndarray,
    clean: np.ndarray | None,
    left_out: tuple[np.ndarray | None, np.ndarray | None],
) -> tuple[Any, Any, Any]:
    """``(mu, mul, m2)`` of float cells centred on ``mu0``, the values ``left_out`` (NaN
    skipped, ``where=`` excluded) deviating by 0. Finite values near float64's maximum
    whose mean is one ulp off (``10 * 1e300 / 10``) deviate by ~1e284, which squares to
    inf although the values may all be equal: those cells are centred again on a data
    value (equal values then deviate by exactly 0)."""

    def deviations(centre: np.ndarray) -> np.ndarray:
        d = red.center(Xf, centre)
        mask, exclude = left_out
        if mask is not None:
            d[mask.reshape(d.shape)] = 0
        if exclude is not None:  # (a product: much faster than a masked store)
            np.multiply(d, ~exclude.reshape(d.shape), out=d)
        return d

    mu, mul, m2 = centred(red, deviations(mu0), mu0, n, clean)
    if not np.isfinite(m2).all():  # (rare: a pass over the data to find finite cells)
        fin = np.isfinite(Xf).all(axis=red.ax).reshape(m2.shape)
        mu1, clean = safe_centre(Xf, red.ax, np.where(np.isfinite(m2) | ~fin, mu0, np.inf))
        mu, mul, m2 = centred(red, deviations(mu1), mu1, n, clean)
    return mu, mul, m2


def split_int(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int64/uint64 values as exact unevaluated sums ``hi + lo`` of two float64."""
    high = (v >> v.dtype.type(32)).astype(np.float64) * 4294967296.0
    return two_sum(high, (v & v.dtype.type(0xFFFFFFFF)).astype(np.float64))


def _int_centred(X: np.ndarray, red: _Red, n: np.ndarray) -> tuple[Any, Any, Any]:
    """``(mu, mul, m2)`` of 64-bit ints whose mean is beyond 2**52 (ns timestamps...):
    ``float(x)`` would round every value, so each cell's deviations from its minimum are
    taken exactly in 64-bit integers (``x - min`` is in [0, 2**64)) before converting."""
    piv = red.reduce(np.minimum, X)
    u = X.view(np.uint64)
    pv = piv.astype(X.dtype).view(np.uint64)
    D = buffer(X.shape, np.dtype(np.float64), "x")
    np.copyto(D, u - (pv[None, :] if red.ax == 0 else pv[:, None]), casting="unsafe")
    mu0 = red.esum(D) / np.maximum(n, 1)
    mu_r, mul_r, m2 = centred(red, red.center(D, mu0), mu0, n)
    hi, lo = split_int(piv.astype(X.dtype))
    mu, e = two_sum(hi, mu_r)
    return (*two_sum(mu, e + (lo + mul_r)), m2)


def means(s: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Per-cell mean ``s / n`` (0 where n == 0); exact for Python-int sums."""
    safe = np.maximum(n, 1)
    if s.dtype == object:
        flat = np.broadcast_to(safe, s.shape).ravel()
        vals = [a / int(b) for a, b in zip(s.ravel(), flat, strict=True)]
        return np.array(vals, dtype=np.float64).reshape(s.shape)
    return as_float(s) / safe


def leaf_state(
    X: np.ndarray, ax: int, spec: Spec, exclude: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Reduce the 2-d ``X`` along ``ax``; see the module docstring for the state layout.

    ``exclude`` (bool, ``X``'s shape): elements left out (a ``where=`` mask's False),
    seen (``size``) but not counted (``n``), like skipped NaN."""
    r, K = X.shape[ax], X.shape[1 - ax]
    if ax == 0:
        X = np.ascontiguousarray(X)
    if exclude is not None:
        exclude = np.ascontiguousarray(exclude).reshape(X.shape)
        X = _neutral(X, exclude)
    red = _Red(ax, r, K, 1 if exclude is not None else _pick_k(ax, r, K))
    ops = spec.ops
    st: dict[str, np.ndarray] = {"size": np.full(K, r, dtype=np.int64)}
    nan = np.zeros(K, dtype=np.int64)
    mask: np.ndarray | None = None
    s: np.ndarray | None = None

    if spec.inexact:
        Xf = X
        if spec.need_sum or spec.track_nan:
            if X.dtype != spec.sum_dtype:
                Xf = _converted(X, spec.sum_dtype)
            s = red.esum(Xf)
            if spec.track_nan and not np.isfinite(s).all():
                mask = np.isnan(X)  # (excluded elements are 0 by now)
                nan = np.asarray(np.count_nonzero(mask, axis=ax), dtype=np.int64)
                if not nan.any():
                    mask = None
        n = r - nan
        if exclude is not None:
            n = n - np.count_nonzero(exclude, axis=ax)
        if spec.skipna and mask is not None and s is not None:
            red = _Red(ax, r, K, 1)
            Xf = np.where(mask, 0, Xf)
            s = red.esum(Xf)
        if spec.need_m2:
            assert s is not None
            mu0 = s / np.maximum(n, 1)
            clean = None
            if not np.isfinite(mu0).all():  # NaN/inf data, or a sum that overflowed
                mu0, clean = safe_centre(Xf, ax, mu0)
            left_out = (mask if spec.skipna else None, exclude)
            st["mu"], st["mul"], st["m2"] = _float_m2(red, Xf, mu0, n, clean, left_out)
        lo_op, hi_op = (np.fmin, np.fmax) if spec.skipna else (np.minimum, np.maximum)
    else:
        n = np.full(K, r, dtype=np.int64)
        if exclude is not None:
            n = n - np.count_nonzero(exclude, axis=ax)
        lo_op, hi_op = np.minimum, np.maximum
        Xf = X

    if "min" in ops:
        st["min"] = red.reduce(lo_op, X if exclude is None else _fill(X, exclude, True))
    if "max" in ops:
        st["max"] = red.reduce(hi_op, X if exclude is None else _fill(X, exclude, False))
    if not spec.inexact and spec.need_sum:
        s = _int_moments(st, X, red, spec, n, exclude)
    if spec.need_sum:
        assert s is not None
        st["sum"] = s
    st["n"] = np.asarray(n, dtype=np.int64)
    st["nan"] = nan
    _other_ops(st, X, ax, spec, mask, exclude)
    return st


def _int_moments(
    st: dict[str, np.ndarray],
    X: np.ndarray,
    red: _Red,
    spec: Spec,
    n: np.ndarray,
    exclude: np.ndarray | None,
) -> np.ndarray:
    """The exact sum of integer ``X`` (returned) and its ``mu``/``mul``/``m2`` in ``st``."""
    bounds = (None, None) if exclude is not None else (st.get("min"), st.get("max"))
    s = int_sum(X, red, spec, _glob(bounds[0], np.min), _glob(bounds[1], np.max))
    if spec.need_m2:
        mu0 = means(s, n)
        if exclude is None and spec.dtype.itemsize == 8 and (np.abs(mu0) > BIG_MEAN).any():
            st["mu"], st["mul"], st["m2"] = _int_centred(X, red, n)
        else:
            d = red.center(_converted(X, np.dtype(np.float64)), mu0)
            if exclude is not None:
                np.multiply(d, ~exclude.reshape(d.shape), out=d)
            st["mu"], st["mul"], st["m2"] = centred(red, d, mu0, n)
    return s


def _other_ops(
    st: dict[str, np.ndarray],
    X: np.ndarray,
    ax: int,
    spec: Spec,
    mask: np.ndarray | None,
    exclude: np.ndarray | None,
) -> None:
    """argmin/argmax, any/all and count_nonzero of ``X`` into ``st``."""
    ops, K = spec.ops, X.shape[1 - ax]
    for op, key, fill in (("argmin", "amin", np.inf), ("argmax", "amax", -np.inf)):
        if op in ops:
            Xa = X
            if spec.skipna and mask is not None:
                Xa = np.where(mask, X.dtype.type(fill), X)
            idx = np.asarray(np.argmin(Xa, axis=ax) if key == "amin" else np.argmax(Xa, axis=ax))
            st[key + "_i"] = idx.astype(np.int64)
            st[key + "_v"] = np.take_along_axis(Xa, np.expand_dims(idx, ax), axis=ax).reshape(K)
    if "any" in ops:
        st["any"] = np.any(X, axis=ax)
    if "all" in ops:
        st["all"] = np.all(X if exclude is None else (X != 0) | exclude, axis=ax)
    if "count_nonzero" in ops:
        st["cnz"] = np.asarray(np.count_nonzero(X, axis=ax), dtype=np.int64)


def _neutral(X: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """``X`` with excluded elements 0 (neutral for sums, any, count_nonzero; min/max and
    all take :func:`_fill` of it). A product by the mask, not ``np.where``: a masked
    select of a random mask runs ~8x slower (branch misses)."""
    if X.dtype.kind == "b":
        return X & ~exclude
    Z = np.multiply(X, ~exclude, dtype=X.dtype)
    if X.dtype.kind in "fc" and not np.isfinite(Z).all():  # NaN/inf: 0 * inf is NaN
        return np.where(exclude, X.dtype.type(0), X)
    return Z


def _fill(X: np.ndarray, exclude: np.ndarray, low: bool) -> np.ndarray:
    """``X`` (excluded elements 0) with excluded elements the identity of min (``low``)
    or max, added: ``inf * excluded`` would be NaN where kept, so floats add
    ``±(1 / kept - 1)`` (0 or inf) and ints ``excluded * limit``."""
    dt = X.dtype
    if dt.kind == "b":
        return X | exclude if low else X
    if dt.kind == "f":
        with np.errstate(divide="ignore"):
            pen = np.divide(dt.type(1), ~exclude, dtype=dt)
        pen -= dt.type(1)
        return X + pen if low else X - pen
    info = np.iinfo(dt)
    return X + np.multiply(exclude, dt.type(info.max if low else info.min), dtype=dt)


def _glob(cells: np.ndarray | None, fn: object) -> object | None:
    """Leaf-wide min or max from per-cell values, when those were computed anyway."""
    if cells is None or cells.size == 0:
        return None
    return fn(cells)  # type: ignore[operator]
