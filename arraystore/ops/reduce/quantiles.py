"""Histograms and exact quantiles of out-of-core data, in bounded memory.

The data source is a callable ``blocks() -> Iterable[np.ndarray]``; every call re-reads
the data (one block at a time, in any order) and every block is flattened: only the
whole-array reduction (``axis=None``) is offered. Blocks may be views of reused buffers:
nothing here keeps a reference to a block once the next one is requested.

:func:`exact_quantiles` equals ``np.quantile(data, q)`` (``method="linear"``) -- or
``np.nanquantile`` with ``skipna=True`` -- value for value and dtype for dtype, including
numpy's own quirks (its interpolation formula, ``nan`` for ``q=1`` when the maximum is
``inf``) -- with one deliberate exception: numpy computes ``b - a`` of the two integer
neighbours in their own dtype, which wraps for extreme values (``np.quantile`` of int8
``[-128, 127]`` at 0.5 is 127.5); there the result is the exact ``a + (b - a) * gamma``
rounded once to the result dtype (-0.5), so a median is never wrapped. Only the sign of a
zero may differ (numpy's partition does not order ``-0.0`` and ``0.0``). Algorithm: a
radix select over order-preserving unsigned integer keys of the values (floats are
mapped bit-wise, so ``±inf`` and every float are keys; no bin edge is ever rounded):

1. one pass counts values and NaNs, finds min/max and histograms the top 16 key bits;
2. for every needed order statistic keep only the bin holding its rank and histogram the
   next 16 bits of the keys in that bin; at most 4 passes for 64-bit data, 2 for 32-bit,
   1 for 8/16-bit data;
3. as soon as the bins holding the ranks hold at most ``max_select`` values in total, a
   last pass collects them and ``np.partition`` selects the exact values.

Memory: one block, ``max_select`` values and ``O(2**16 * targets)`` counts (at most
:data:`MAX_COUNTS`). Several quantiles share every pass.

:func:`histogram` equals ``np.histogram`` of the concatenated (NaN-free when ``skipna``)
data: same edges, same bin assignment (numpy's own code runs on each block against the
global edges), right edge inclusive. String ``bins`` follow numpy's estimators exactly
(``"auto"``, ``"fd"`` -- via numpy's wrapping IQR --, ``"sturges"``, ``"sqrt"``, ``"rice"``);
``"scott"``, ``"stone"`` and ``"doane"`` are not offered. Bool data is counted as uint8
(as numpy does, but without its warning).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from arraystore.errors import InvalidArgument

Blocks = Callable[[], Iterable[np.ndarray]]

#: Default number of values the final exact selection may hold.
DEFAULT_MAX_SELECT = 1 << 20
#: Bits of the key examined per refinement pass (2**16 bins).
DIGIT_BITS = 16
#: Upper bound on histogram counters held at once (all targets of one pass).
MAX_COUNTS = 1 << 22
_ESTIMATORS = ("auto", "fd", "sturges", "sqrt", "rice")


# --------------------------------------------------------------------------- blocks
def _flat_blocks(blocks: Blocks, dtype: list[np.dtype]) -> Iterator[np.ndarray]:
    """Each block raveled, native byte order, all of one dtype (recorded in ``dtype``)."""
    for b in blocks():
        a = np.asarray(b)
        if a.dtype.fields is not None or a.dtype.kind not in "biuf":
            raise InvalidArgument(f"quantiles/histograms need real numbers, got dtype {a.dtype}")
        if not a.dtype.isnative:
            a = a.astype(a.dtype.newbyteorder("="))
        if not dtype:
            dtype.append(a.dtype)
        elif a.dtype != dtype[0]:
            raise InvalidArgument(f"blocks of different dtypes: {dtype[0]} and {a.dtype}")
        yield a.reshape(-1)


def _strip_nan(a: np.ndarray) -> tuple[np.ndarray, int]:
    if a.dtype.kind != "f":
        return a, 0
    m = np.isnan(a)
    k = int(np.count_nonzero(m))
    return (a[~m] if k else a), k


# ------------------------------------------------------------- order-preserving keys
_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_SINT = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}


def _keys(a: np.ndarray) -> np.ndarray:
    """Unsigned keys with the order of the (non-NaN) values: -inf < ... < -0.0 < 0.0 < inf."""
    size = a.dtype.itemsize
    ut = _UINT[size]
    top = ut(1 << (8 * size - 1))
    if a.dtype.kind == "u":
        return a
    if a.dtype.kind == "i":
        return a.view(ut) ^ top
    key = (a.view(_SINT[size]) >> (8 * size - 1)).view(ut)  # all ones where negative
    key |= top
    key ^= a.view(ut)
    return key


def _value(key: int, dtype: np.dtype) -> Any:
    """The value of an unsigned ``key`` made by :func:`_keys` (inverse transform)."""
    size = dtype.itemsize
    ut = _UINT[size]
    u = np.array(key, dtype=ut)
    top = ut(1 << (8 * size - 1))
    if dtype.kind == "u":
        return u.view(dtype)[()]
    if dtype.kind == "i":
        return (u ^ top).view(dtype)[()]
    bits = u ^ top if key >> (8 * size - 1) else ~u
    return bits.view(dtype)[()]


@dataclass
class _Target:
    """Keys ``k`` with ``k >> shift == prefix``; ``below`` values have smaller keys."""

    prefix: int
    shift: int
    below: int
    inside: int
    ranks: list[int] = field(default_factory=list)


def _members(u: np.ndarray, prefixes: np.ndarray, shift: int, bits: int) -> np.ndarray:
    """Index of the (sorted) prefix each key starts with (``key >> shift``), else -1."""
    ut = u.dtype.type
    T, pbits = len(prefixes), bits - shift
    if T <= 4:
        top = u >> ut(shift)
        out = np.full(u.shape, -1, np.intp)
        for i, p in enumerate(prefixes):
            out[top == p] = i
        return out
    if pbits <= 16:  # a dense lookup table of all prefixes
        table = np.full(1 << pbits, -1, np.intp)
        table[prefixes.astype(np.intp)] = np.arange(T)
        return table[(u >> ut(shift)).astype(np.intp)]
    # keys whose top 16 bits start some prefix, then a binary search on those only
    hit = np.zeros(1 << 16, bool)
    hit[(prefixes >> prefixes.dtype.type(pbits - 16)).astype(np.intp)] = True
    cand = np.flatnonzero(hit[(u >> ut(bits - 16)).astype(np.intp)])
    top = u[cand] >> ut(shift)
    pos = np.minimum(np.searchsorted(prefixes, top), T - 1)
    ok = prefixes[pos] == top
    out = np.full(u.shape, -1, np.intp)
    out[cand[ok]] = pos[ok]
    return out


# ------------------------------------------------------------------- exact quantiles
def _lerp(a: Any, b: Any, t: Any) -> Any:
    """numpy's ``_lerp`` (numpy/lib/_function_base_impl.py), kept identical."""
    diff_b_a = b - a
    lerp_interpolation = np.asarray(np.add(a, diff_b_a * t))
    np.subtract(
        b,
        diff_b_a * (1 - t),
        out=lerp_interpolation,
        where=t >= 0.5,
        casting="unsafe",
        dtype=type(lerp_interpolation.dtype),
    )
    if lerp_interpolation.ndim == 0:
        lerp_interpolation = lerp_interpolation[()]
    return lerp_interpolation


def _lerp_ints(a: Any, b: Any, t: Any) -> Any:
    """:func:`_lerp`, except where numpy's ``b - a`` wraps around in the integer dtype:
    there the exact ``a + (b - a) * t`` (Fractions), rounded once."""
    res = _lerp(a, b, t)
    A, B = np.asarray(a), np.asarray(b)
    if A.dtype.kind not in "iu":
        return res
    info = np.iinfo(A.dtype)
    A, B, T = np.broadcast_arrays(A, B, np.asarray(t))
    out = np.array(res)
    for idx in np.ndindex(*A.shape):
        lo, hi = int(A[idx]), int(B[idx])
        if not info.min <= hi - lo <= info.max:
            exact = lo + (hi - lo) * Fraction(float(T[idx]))
            out[idx] = float(exact)  # int / int: correctly rounded
    return out[()] if out.ndim == 0 else out


def _check_q(q: Any) -> tuple[np.ndarray, bool]:
    weak_q = type(q) in (int, float)
    qa = np.asanyarray(q)
    if qa.dtype.kind not in "biuf":
        raise InvalidArgument(f"quantiles must be real numbers in [0, 1], got {q!r}")
    if qa.ndim > 2:
        raise InvalidArgument("q must be a scalar or 1d")
    if qa.size and not (qa.min() >= 0 and qa.max() <= 1):
        raise InvalidArgument(f"Quantiles must be in the range [0, 1], got {q!r}")
    return qa, weak_q


def exact_quantiles(
    blocks: Blocks,
    q: Any,
    skipna: bool = False,
    *,
    max_select: int = DEFAULT_MAX_SELECT,
    axis: None = None,
    numpy_wrap: bool = False,
) -> Any:
    """``np.quantile(data, q)`` (or ``np.nanquantile`` when ``skipna``) of all blocks.

    Returns what numpy returns: a numpy scalar for a scalar ``q``, else an array of
    ``q``'s shape. Raises :class:`InvalidArgument` for empty data, ``q`` outside
    [0, 1], complex/bool data or ``axis`` other than None. An all-NaN input gives NaN
    (numpy's ``nanquantile`` warns; this does not). ``numpy_wrap``: wrap as numpy does (see above).
    """
    if axis is not None:
        raise InvalidArgument("exact quantiles are computed over the whole array (axis=None)")
    if isinstance(max_select, bool) or operator.index(max_select) < 1:
        raise InvalidArgument(f"max_select must be a positive int, got {max_select!r}")
    qa, weak_q = _check_q(q)
    dts: list[np.dtype] = []
    sel = Selector(blocks, dts, int(max_select))
    if sel.count == 0:
        raise InvalidArgument("cannot compute quantiles of an empty array")
    dtype = dts[0]
    if dtype.kind == "b":
        raise InvalidArgument("quantiles of bool data are not defined (numpy refuses them)")
    has_nan = sel.nan > 0 and not skipna
    n = sel.count - sel.nan
    if n == 0 and not has_nan:  # all NaN, skipped: nanquantile's NaN, quietly
        return np.full(qa.shape, np.nan, dtype=dtype)[()]
    if has_nan:
        n = sel.count  # numpy sorts the NaNs last; only the dtype/shape logic matters
    with np.errstate(all="ignore"):
        virtual = np.asanyarray((n - 1) * qa)
        if np.issubdtype(virtual.dtype, np.integer):
            ranks = np.asarray(virtual, dtype=np.intp)
            lo_r = hi_r = ranks
        else:
            prev = np.asarray(np.floor(virtual))
            nxt = np.asarray(prev + 1)
            above = virtual >= n - 1
            prev[above] = -1
            nxt[above] = -1
            below = virtual < 0
            prev[below] = 0
            nxt[below] = 0
            lo_r, hi_r = prev.astype(np.intp), nxt.astype(np.intp)
        if has_nan:
            wanted: dict[int, np.generic] = {}
        else:
            need = sorted({int(r) % n for r in np.concatenate([lo_r.ravel(), hi_r.ravel()])})
            wanted = sel.select(need, n)
        lookup = {r: i for i, r in enumerate(sorted(wanted))}
        stats = np.array([wanted[r] for r in sorted(wanted)], dtype=dtype)

        def pick(idx: np.ndarray) -> Any:
            if has_nan:
                return np.full(idx.shape, np.nan, dtype=dtype)[()]
            pos = np.vectorize(lambda r: lookup[int(r) % n], otypes=[np.intp])(idx)
            return stats[np.asarray(pos, dtype=np.intp)]

        if np.issubdtype(virtual.dtype, np.integer):
            result = pick(lo_r)
        else:
            gamma = np.asanyarray(virtual - lo_r)
            gamma = np.asanyarray(gamma, dtype=virtual.dtype)
            g: Any = float(gamma) if weak_q else gamma.reshape(virtual.shape)
            result = (_lerp if numpy_wrap else _lerp_ints)(pick(lo_r), pick(hi_r), g)
        if has_nan:
            if np.ndim(result) == 0:
                return dtype.type(np.nan)
            result = np.asarray(result)
            np.copyto(result, np.nan, casting="unsafe")
    return result


class Selector:
    """Pass 1 on construction (count, NaNs, min/max keys, top-digit histogram)."""

    def __init__(self, blocks: Blocks, dts: list[np.dtype], max_select: int) -> None:
        self.blocks, self.dts, self.max_select = blocks, dts, max_select
        self.count = self.nan = 0
        kmin: int | None = None
        kmax: int | None = None
        hist: np.ndarray | None = None
        for a in _flat_blocks(blocks, dts):
            self.count += a.size
            if a.dtype.kind == "b":
                continue
            x, k = _strip_nan(a)
            self.nan += k
            if not x.size:
                continue
            u = _keys(x)
            lo, hi = int(u.min()), int(u.max())
            kmin = lo if kmin is None else min(kmin, lo)
            kmax = hi if kmax is None else max(kmax, hi)
            bits = 8 * u.dtype.itemsize
            d = min(DIGIT_BITS, bits)
            top = (u >> u.dtype.type(bits - d)) if d < bits else u
            h = np.bincount(top.astype(np.intp), minlength=1 << d)
            hist = h if hist is None else hist + h
        self.kmin, self.kmax, self.hist = kmin, kmax, hist

    def _pass(self) -> Iterator[np.ndarray]:
        dts: list[np.dtype] = []
        for a in _flat_blocks(self.blocks, dts):
            if dts[0] != self.dts[0]:
                raise InvalidArgument("the data source changed dtype between passes")
            x = _strip_nan(a)[0] if self.nan else a
            yield _keys(x)

    def select(self, ranks: list[int], n: int) -> dict[int, np.generic]:
        """Exact order statistics (0-based ranks among the non-NaN values)."""
        dtype = self.dts[0]
        bits = 8 * dtype.itemsize
        out: dict[int, np.generic] = {}
        assert self.kmin is not None and self.kmax is not None and self.hist is not None
        rest = []
        for r in ranks:
            if r == 0:
                out[r] = _value(self.kmin, dtype)
            elif r == n - 1:
                out[r] = _value(self.kmax, dtype)
            else:
                rest.append(r)
        if not rest:
            return out
        d = min(DIGIT_BITS, bits)
        root = _Target(0, bits, 0, n, rest)
        targets = self._split([root], [self.hist], d, bits, out, dtype)
        while targets:
            targets = self._refine(targets, bits, out, dtype)
        return out

    def _split(
        self,
        parents: list[_Target],
        hists: list[np.ndarray],
        d: int,
        bits: int,
        out: dict[int, np.generic],
        dtype: np.dtype,
    ) -> list[_Target]:
        """Children of ``parents`` holding their ranks; resolves single-key children."""
        children: list[_Target] = []
        for t, h in zip(parents, hists, strict=True):
            cum = np.cumsum(h)
            byb: dict[int, _Target] = {}
            for r in t.ranks:
                b = int(np.searchsorted(cum, r - t.below, side="right"))
                if b not in byb:
                    start = t.below + (int(cum[b - 1]) if b else 0)
                    byb[b] = _Target((t.prefix << d) | b, t.shift - d, start, int(h[b]))
                byb[b].ranks.append(r)
            for c in byb.values():
                if c.shift == 0:
                    for r in c.ranks:
                        out[r] = _value(c.prefix, dtype)
                else:
                    children.append(c)
        return sorted(children, key=lambda c: c.prefix)

    def _refine(
        self, targets: list[_Target], bits: int, out: dict[int, np.generic], dtype: np.dtype
    ) -> list[_Target]:
        """One pass: collect small targets, histogram the next digit of the others."""
        budget = self.max_select
        collect, refine = [], []
        for t in targets:
            if t.inside <= budget:
                collect.append(t)
                budget -= t.inside
            else:
                refine.append(t)
        shift = targets[0].shift
        d = min(DIGIT_BITS, shift)
        while refine and d > 1 and len(refine) << d > MAX_COUNTS:
            d -= 1
        dmask = (1 << d) - 1
        hists = [np.zeros(1 << d, np.int64) for _ in refine]
        got: list[list[np.ndarray]] = [[] for _ in collect]
        everyone = collect + refine
        order = sorted(range(len(everyone)), key=lambda i: everyone[i].prefix)
        prefixes = np.array([everyone[i].prefix for i in order], dtype=_UINT[bits // 8])
        # sorted position -> index in collect (>= 0) or -(1 + index in refine)
        slot = np.array([i if i < len(collect) else len(collect) - 1 - i for i in order])
        nc, nr = len(collect), len(refine)
        for u in self._pass():
            m = _members(u, prefixes, shift, bits)
            inside = m >= 0
            ids, keys = slot[m[inside]], u[inside]
            if nc:
                ci = ids >= 0
                cid, ckeys = ids[ci], keys[ci]
                order_c = np.argsort(cid, kind="stable")
                cuts = np.cumsum(np.bincount(cid, minlength=nc))[:-1]
                for i, part in enumerate(np.split(ckeys[order_c], cuts)):
                    got[i].append(part)
            if nr:
                ri = ids < 0
                digit = (keys[ri] >> keys.dtype.type(shift - d)) & keys.dtype.type(dmask)
                flat = (-1 - ids[ri]) * (1 << d) + digit.astype(np.intp)
                counts = np.bincount(flat, minlength=nr << d)
                for i in range(nr):
                    hists[i] += counts[i << d : (i + 1) << d]
        for t, parts in zip(collect, got, strict=True):
            keys = np.concatenate(parts) if parts else np.empty(0, np.uint8)
            ks = sorted({r - t.below for r in t.ranks})
            if keys.size != t.inside:
                raise InvalidArgument("the data source changed between passes")
            part = np.partition(keys, ks)
            for r in t.ranks:
                out[r] = _value(int(part[r - t.below]), dtype)
        return self._split(refine, hists, d, bits, out, dtype)


# ------------------------------------------------------------------------ histogram
def _unsigned_subtract(a: Any, b: Any) -> Any:
    """numpy's ``_unsigned_subtract`` (numpy/lib/_histograms_impl.py)."""
    signed_to_unsigned = {
        np.byte: np.ubyte,
        np.short: np.ushort,
        np.intc: np.uintc,
        np.int_: np.uint,
        np.longlong: np.ulonglong,
    }
    dt = np.result_type(a, b)
    try:
        unsigned_dt = signed_to_unsigned[dt.type]
    except KeyError:
        return np.subtract(a, b, dtype=dt)
    return np.subtract(
        np.asarray(a, dtype=dt), np.asarray(b, dtype=dt), casting="unsafe", dtype=unsigned_dt
    )


def _hist_blocks(blocks: Blocks, skipna: bool) -> Callable[[], Iterator[np.ndarray]]:
    def gen() -> Iterator[np.ndarray]:
        dts: list[np.dtype] = []
        for a in _flat_blocks(blocks, dts):
            if a.dtype.kind == "b":
                a = a.astype(np.uint8)
            yield _strip_nan(a)[0] if skipna else a

    return gen


def _min_max(blocks: Callable[[], Iterator[np.ndarray]]) -> tuple[Any, Any, int, np.dtype | None]:
    lo = hi = None
    n = 0
    dtype = None
    for a in blocks():
        dtype = a.dtype
        n += a.size
        if a.size:
            bmin, bmax = a.min(), a.max()
            lo = bmin if lo is None else np.minimum(lo, bmin)
            hi = bmax if hi is None else np.maximum(hi, bmax)
    return lo, hi, n, dtype


def _outer_edges(lo: Any, hi: Any, n: int, range: Any) -> tuple[Any, Any]:
    """numpy's ``_get_outer_edges`` on data whose min/max/size are lo/hi/n."""
    if range is not None:
        try:  # values kept as given: their type sets the edges' dtype, as in numpy
            first_edge, last_edge = range
            finite = bool(np.isfinite(first_edge) and np.isfinite(last_edge))
        except (TypeError, ValueError):
            raise InvalidArgument(f"range must be two numbers (min, max), got {range!r}") from None
        if first_edge > last_edge:
            raise InvalidArgument("max must be larger than min in range parameter.")
        if not finite:
            raise InvalidArgument(f"supplied range of [{first_edge}, {last_edge}] is not finite")
    elif n == 0:
        first_edge, last_edge = 0, 1
    else:
        first_edge, last_edge = lo, hi
        if not (np.isfinite(first_edge) and np.isfinite(last_edge)):
            raise InvalidArgument(
                f"autodetected range of [{first_edge}, {last_edge}] is not finite"
            )
    if first_edge == last_edge:
        first_edge = first_edge - 0.5
        last_edge = last_edge + 0.5
    return first_edge, last_edge


def _estimate_bins(
    name: str, src: Callable[[], Iterator[np.ndarray]], first: Any, last: Any, range: Any
) -> int:
    """numpy's string estimators, on the data trimmed to ``range``."""
    data = src
    if range is not None:

        def data() -> Iterator[np.ndarray]:
            for a in src():
                keep = (a >= first) & (a <= last)
                yield a if keep.all() else a[keep]

    lo, hi, n, dtype = _min_max(data)
    if n == 0:
        return 1
    assert dtype is not None
    with np.errstate(all="ignore"):
        ptp = _unsigned_subtract(hi, lo)
        sturges = ptp / (np.log2(n) + 1.0)
        sqrt = ptp / np.sqrt(n)
        if name in ("fd", "auto"):
            q = np.true_divide([75, 25], 100)  # np.percentile's IQR, numpy's wrap included
            iqr = np.subtract(*exact_quantiles(data, q, numpy_wrap=True))
            fd = 2.0 * iqr * n ** (-1.0 / 3.0)
        width = {
            "sturges": lambda: sturges,
            "sqrt": lambda: sqrt,
            "rice": lambda: ptp / (2.0 * n ** (1.0 / 3)),
            "fd": lambda: fd,
            "auto": lambda: min(max(fd, sqrt / 2), sturges),
        }[name]()
        if not width:
            return 1
        if np.issubdtype(dtype, np.integer) and width < 1:
            width = 1
        delta = _unsigned_subtract(last, first)
        count = np.ceil(delta / width)
    if not np.isfinite(count):  # float16 [-65504, 65504]: numpy fails too, on int(nan)
        raise InvalidArgument(f"bins={name!r}: {dtype} bin count {delta} / {width} is not finite")
    return int(count)


#: More bins than this are refused (counts and edges: 16 bytes a bin, 1.6 GB here); an
#: estimator such as ``"fd"`` on data with a few far outliers can ask for billions.
MAX_BINS = 100_000_000


def histogram(
    blocks: Blocks,
    bins: Any = 10,
    range: tuple[float, float] | None = None,
    skipna: bool = True,
    dtype: np.typing.DTypeLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``np.histogram`` of all blocks: ``(counts int64, edges)`` (see module docstring).

    Edges have numpy's dtype (float64, or the data's float dtype when ``range`` is not
    given). ``skipna=True`` drops NaNs first; with ``skipna=False`` NaNs make the
    automatic range non-finite (an error, as in numpy) and are ignored by an explicit one.
    ``dtype`` is the data's dtype when the source yields no block (an empty array).
    """
    src = _hist_blocks(blocks, skipna)
    edges: np.ndarray | None = None
    n_bins: int | None = None
    first = last = None
    if isinstance(bins, str):
        if bins not in _ESTIMATORS:
            raise InvalidArgument(f"{bins!r} is not a supported estimator for bins ({_ESTIMATORS})")
        lo, hi, n, _ = _min_max(src)
        first, last = _outer_edges(lo, hi, n, range)
        n_bins = _estimate_bins(bins, src, first, last, range)
    elif np.ndim(bins) == 0:
        try:
            n_bins = operator.index(bins)
        except TypeError:
            raise InvalidArgument("`bins` must be an integer, a string, or an array") from None
        if n_bins < 1:
            raise InvalidArgument("`bins` must be positive, when an integer")
        lo, hi, n, _ = _min_max(src) if range is None else (None, None, 1, None)
        first, last = _outer_edges(lo, hi, n, range)
    elif np.ndim(bins) == 1:
        edges = np.asarray(bins)
        if np.any(edges[:-1] > edges[1:]):
            raise InvalidArgument("`bins` must increase monotonically, when an array")
    else:
        raise InvalidArgument("`bins` must be 1d, when an array")
    if n_bins is not None and n_bins > MAX_BINS:  # numpy would allocate 16 bytes a bin
        how = f"bins={bins!r} gives" if isinstance(bins, str) else "asked for"
        raise InvalidArgument(
            f"{how} {n_bins} bins (more than {MAX_BINS}); pass fewer bins or explicit edges"
        )
    kw: dict[str, Any] = {"bins": edges} if edges is not None else {"bins": n_bins}
    if edges is None:
        kw["range"] = (first, last)
    counts: np.ndarray | None = None
    if dtype is not None:
        dtype = np.dtype(dtype)
        dtype = np.dtype(np.uint8) if dtype.kind == "b" else dtype
    try:
        for a in src():
            dtype = a.dtype
            c, _ = np.histogram(a, **kw)
            counts = c.astype(np.int64) if counts is None else counts + c
        empty = np.empty(0, dtype if dtype is not None else np.float64)
        c, out_edges = np.histogram(empty, **kw)
    except ValueError as e:  # e.g. too many bins for the data range
        raise InvalidArgument(str(e)) from None
    return (c.astype(np.int64) if counts is None else counts), out_edges
