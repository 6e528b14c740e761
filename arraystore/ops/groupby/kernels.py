"""Grouped reduction states (pure numpy, no I/O): partial tables, ordered merge, results.

A :class:`Table` is what one task returns: the sorted unique keys it saw and, per value
field, the mergeable state of every group (arrays of ``G * K`` cells, ``K`` the values
per row: 1 for a record field, the trailing size of a plain N-d array kept per column):

* ``n`` values seen (NaN skipped, as pandas does), ``size`` rows per group;
* ``sum``: float64 for floats (float16/32 accumulated in float64); exact for ints and
  bools -- int64 (uint64 for unsigned) while it fits, else Python ints (object);
* ``mu`` + ``m2``: the group mean and centred sum of squares of the block, merged with
  Chan's parallel formula (never sums of squares of raw values);
* ``min`` / ``max`` in the input dtype; ``fi``/``fv`` and ``li``/``lv``: the global row
  index and value of the first / last non-NaN value;
* ``qc``/``qv``: every value (float64) with its cell code, sorted by (cell, value), for
  exact quantiles.

All accumulation is vectorised (``np.bincount`` with weights, ``ufunc.at``; exact parts
of codes that come in long runs are reduced per run first, :class:`Cells`); float sums
and centred squares add one value after another in row order (``bincount``), which the
numba kernels of :mod:`.fused` repeat to the bit; integer sums go through ``bincount``
in 32-bit halves, exact since a block holds at most :data:`BLOCK_ELEMENTS` values.
:func:`merge` combines two tables (the union of their keys, sorted; tables in key order
are appended); the engine merges task tables in row order, so with a fixed tiling the
float results are the same bits for every executor and worker count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arraystore.ops.groupby.fused import core_states
from arraystore.ops.groupby.keys import factorize_sized, normalize, union

#: most values per block (exact int sums through float64 bincount need <= 2**21)
BLOCK_ELEMENTS = 1 << 20
INT64_MAX = np.iinfo(np.int64).max
OPS = ("size", "count", "sum", "mean", "var", "std", "min", "max", "first", "last", "quantile")
_NEEDS = {
    "count": (),
    "size": (),
    "sum": ("sum",),
    "mean": ("sum",),
    "var": ("sum", "m2"),
    "std": ("sum", "m2"),
    "min": ("min",),
    "max": ("max",),
    "first": ("first",),
    "last": ("last",),
    "quantile": ("quantile",),
}
State = dict[str, np.ndarray]


def needs(ops: tuple[str, ...]) -> frozenset[str]:
    """The state parts ``ops`` need."""
    return frozenset(p for op in ops for p in _NEEDS[op])


@dataclass
class Table:
    """Sorted unique keys (one array per key column) and the group states."""

    keys: list[np.ndarray]
    size: np.ndarray
    states: dict[str, State] = field(default_factory=dict)
    #: values per row of each field (the trailing cells kept per group)
    cells: dict[str, int] = field(default_factory=dict)

    @property
    def ngroups(self) -> int:
        return len(self.size)

    @property
    def nbytes(self) -> int:
        keys = sum(k.nbytes for k in self.keys) + self.size.nbytes
        return keys + sum(a.nbytes for st in self.states.values() for a in st.values())


def _lo_hi(dtype: np.dtype) -> tuple[Any, Any]:
    if dtype.kind == "f":
        return dtype.type(np.inf), dtype.type(-np.inf)
    if dtype.kind == "b":
        return True, False
    info = np.iinfo(dtype)
    return info.max, info.min


def _fill(key: str, arr: np.ndarray) -> Any:
    """The value of a cell that has seen nothing (neutral for :func:`_combine`)."""
    if key == "min":
        return _lo_hi(arr.dtype)[0]
    if key == "max":
        return _lo_hi(arr.dtype)[1]
    if key == "fi":
        return INT64_MAX
    if key == "li":
        return -1
    return 0


#: codes come in runs when a sample of this many has under 1/RUNS_FACTOR as many runs
RUN_SAMPLE = 4096
RUNS_FACTOR = 8


class Cells:
    """Accumulation into ``cells`` cells by code ``cv`` (one per value).

    ``np.bincount`` and ``ufunc.at`` add to one cell after another; where the codes come
    in long runs (sorted or clustered keys, e.g. ``id // 1000``) each add waits for the
    previous one to the same cell, several times slower than on scattered codes. Then
    the values are first reduced per run (``ufunc.reduceat``) and the run results
    accumulated into the cells: for exact results only (counts, int sums, min/max,
    first/last), since float sums would round differently. Which way a block goes
    depends only on its codes.
    """

    def __init__(self, cv: np.ndarray, cells: int) -> None:
        self.cv, self.cells = cv, cells
        self.starts: np.ndarray | None = None
        head = cv[:RUN_SAMPLE]
        if len(cv) >= RUN_SAMPLE and np.count_nonzero(head[1:] != head[:-1]) * RUNS_FACTOR < len(
            head
        ):
            change = np.flatnonzero(cv[1:] != cv[:-1]) + 1
            if (len(change) + 1) * RUNS_FACTOR < len(cv):
                self.starts = np.concatenate([np.zeros(1, np.intp), change])
                self.run_cv = cv[self.starts]

    def sum(self, w: np.ndarray) -> np.ndarray:
        """float64 sums of ``w`` per cell (exact for ints while they stay below 2**53)."""
        if self.starts is None:
            return _wsum(self.cv, w, self.cells)
        runs = np.add.reduceat(w, self.starts, dtype=np.float64) if len(w) else w
        return _wsum(self.run_cv, runs, self.cells)

    def at(self, ufunc: np.ufunc, out: np.ndarray, values: np.ndarray) -> None:
        """``ufunc.at(out, cv, values)`` (min/max)."""
        if self.starts is None:
            ufunc.at(out, self.cv, values)
        elif len(values):
            ufunc.at(out, self.run_cv, ufunc.reduceat(values, self.starts))

    def positions(self, first: bool) -> np.ndarray:
        """The position of each cell's first (or last) value; ``len(cv)`` / -1 if none."""
        n = len(self.cv)
        out = np.full(self.cells, n if first else -1, np.intp)
        if self.starts is None:
            (np.minimum if first else np.maximum).at(out, self.cv, np.arange(n))
        elif n:
            ends = np.append(self.starts[1:], n) - 1
            (np.minimum if first else np.maximum).at(
                out, self.run_cv, self.starts if first else ends
            )
        return out


def _wsum(code: np.ndarray, weights: np.ndarray, minlength: int) -> np.ndarray:
    """``np.bincount`` with weights, always float64 (it gives int64 for no values)."""
    return np.bincount(code, weights=weights, minlength=minlength).astype(np.float64, copy=False)


def _int_sum(acc: Cells, x: np.ndarray) -> np.ndarray:
    """Exact per-cell sums of ints/bools (int64 or uint64, object where they overflow)."""
    target = _sum_dtype(x.dtype)
    if x.dtype.kind == "b" or x.dtype.itemsize <= 4:  # |sum| < 2**53: float64 is exact
        return acc.sum(x.astype(np.float64)).astype(target)
    lo = acc.sum((x & 0xFFFFFFFF).astype(np.float64))
    hi = acc.sum((x >> 32).astype(np.float64))
    return join_halves(lo.astype(np.int64), hi.astype(np.int64), target)


def _sum_dtype(dt: np.dtype) -> np.dtype:
    return np.dtype(np.uint64 if dt.kind == "u" else np.int64)


def join_halves(slo: np.ndarray, shi: np.ndarray, target: np.dtype) -> np.ndarray:
    """Exact sums from the sums of the low and high 32-bit halves of 8-byte ints."""
    if not len(shi) or np.abs(shi).max() < 2**30:
        return (shi * 2**32 + slo).astype(target)
    return narrow(shi.astype(object) * 2**32 + slo.astype(object), target)


def narrow(values: np.ndarray, target: np.dtype) -> np.ndarray:
    """Exact Python-int sums as ``target`` when every one fits, else kept as objects."""
    info = np.iinfo(target)
    if all(info.min <= int(v) <= info.max for v in values):
        return values.astype(target)
    return values


def add_int(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer addition: int64/uint64 while it fits, else object (Python ints)."""
    if a.dtype != object and b.dtype != object:
        with np.errstate(over="ignore"):
            r = np.asarray(np.add(a, b))
        ovf = (r < a) if a.dtype.kind == "u" else ((a ^ r) & (b ^ r)) < 0
        if not ovf.any():
            return r
    return np.asarray(a.astype(object) + b.astype(object), dtype=object)


def as_float(s: np.ndarray) -> np.ndarray:
    """Sums as float64 (exact Python ints rounded once)."""
    if s.dtype == object:
        return np.array([float(v) for v in s], dtype=np.float64)
    return s.astype(np.float64)


def field_state(
    X: np.ndarray,
    inv: np.ndarray,
    ngroups: int,
    need: frozenset[str],
    rows: np.ndarray | None,
    size: np.ndarray | None = None,
    fused: bool = False,
    pre: State | None = None,
) -> State:
    """The states of one field's block ``X`` (``(m, K)``; row ``i`` in group ``inv[i]``).

    ``rows`` holds each row's global index (for first/last; None when not needed);
    ``size`` the rows per group (the counts when no value is NaN), if known. ``fused``:
    try the numba kernels (:mod:`.fused`; the same bits as the numpy path here);
    ``pre``: their states of ``X``, if already computed (:func:`partial`).
    """
    K = X.shape[1]
    cells = ngroups * K
    st = pre
    if st is None and fused and size is not None:
        st = core_states([X], inv, ngroups, need, size, [_finish_sums(X.dtype)])[0]
    if st is not None and not need & {"first", "last", "quantile"}:
        return st
    code = inv if K == 1 else (inv[:, None] * K + np.arange(K)).ravel()
    x = X.ravel()
    nan = np.isnan(x) if x.dtype.kind == "f" else None
    pos = np.flatnonzero(~nan) if nan is not None and nan.any() else None
    cv, xv = (code, x) if pos is None else (code[pos], x[pos])
    acc = Cells(cv, cells)
    if st is None:
        st = _numpy_state(acc, xv, need, size if pos is None and K == 1 else None)
    if need & {"first", "last"}:
        assert rows is not None
        if pos is None and K == 1:
            vrows = rows
        else:  # the row of each kept value
            flat = np.arange(len(x)) if pos is None else pos
            vrows = rows[flat // K]
        _first_last(st, need, acc, xv, vrows)
    if "quantile" in need:
        order = np.lexsort((xv, cv))
        st["qc"], st["qv"] = cv[order].astype(np.int64), xv[order].astype(np.float64)
    return st


def _numpy_state(acc: Cells, xv: np.ndarray, need: frozenset[str], n: np.ndarray | None) -> State:
    """``n``, ``sum``, ``mu``/``m2``, ``min``/``max`` of the values ``xv`` (NaN dropped)
    of cells ``acc.cv``; ``n``: the counts, if known. Float sums add one value after
    another in row order (``np.bincount``), as :mod:`.fused` does."""
    cv, cells = acc.cv, acc.cells
    if n is not None:
        n = n.copy()
    elif acc.starts is None:
        n = np.bincount(cv, minlength=cells).astype(np.int64)
    else:
        runs = np.diff(np.append(acc.starts, len(cv)))
        n = np.bincount(acc.run_cv, weights=runs, minlength=cells).astype(np.int64)
    st: State = {"n": n}
    if "sum" in need:
        st["sum"] = _wsum(cv, xv, cells) if xv.dtype.kind == "f" else _int_sum(acc, xv)
    if "m2" in need:
        with np.errstate(invalid="ignore", divide="ignore"):
            mu = as_float(st["sum"]) / np.maximum(st["n"], 1)
        d = xv - mu[cv]  # float64 (ints and float16/32 promote)
        np.multiply(d, d, out=d)
        st["mu"], st["m2"] = mu, _wsum(cv, d, cells)
    for key, ufunc in (("min", np.minimum), ("max", np.maximum)):
        if key in need:
            st[key] = np.full(cells, _fill(key, xv), xv.dtype)
            acc.at(ufunc, st[key], xv)
    return st


def _finish_sums(dt: np.dtype) -> Any:
    """The ``finish`` of :func:`.fused.core_state` for a field of dtype ``dt``: the
    state's sums as the numpy path holds them, and as float64."""

    def finish(
        n: np.ndarray, s: np.ndarray, high: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if dt.kind == "f":
            return s, s
        target = _sum_dtype(dt)
        out = s.astype(target) if high is None else join_halves(s, high, target)
        return out, as_float(out)

    return finish


def _first_last(
    st: State, need: frozenset[str], acc: Cells, xv: np.ndarray, rows: np.ndarray
) -> None:
    """First/last value per cell and its global row (``rows``: the row of each value)."""
    cells = len(st["n"])
    hit = st["n"] > 0
    for key in ("first", "last"):
        if key in need:  # positions in xv follow the rows: the first is the smallest
            at = np.where(hit, acc.positions(key == "first"), 0)
            gi = rows[at] if len(xv) else np.zeros(cells, np.int64)
            st[key[0] + "i"] = np.where(hit, gi, _fill(key[0] + "i", xv)).astype(np.int64)
            st[key[0] + "v"] = np.where(hit, xv[at] if len(xv) else 0, 0).astype(xv.dtype)


def partial(
    key_cols: list[np.ndarray],
    values: dict[str, np.ndarray],
    need: frozenset[str],
    rows: np.ndarray | None,
    dropna: bool = True,
    fused: bool = False,
) -> Table:
    """The table of one block: key columns and ``(m, K)`` value blocks of the same rows.

    ``rows`` holds each row's global index (None: no first/last asked); with ``dropna``
    rows whose key holds NaN belong to no group (pandas' ``dropna=True``); ``fused``:
    try the numba kernels (:func:`field_state`).
    """
    if dropna:
        keep = None
        for col in key_cols:
            if col.dtype.kind == "f":
                ok = ~np.isnan(col)
                keep = ok if keep is None else keep & ok
        if keep is not None and not keep.all():
            key_cols = [c[keep] for c in key_cols]
            values = {k: v[keep] for k, v in values.items()}
            rows = rows[keep] if rows is not None else None
    keys, inv, size = factorize_sized([normalize(c) for c in key_cols], fused)
    ngroups = len(keys[0])
    table = Table(keys, size)
    blocks = list(values.values())
    pre: list[State | None] = [None] * len(blocks)
    if fused:  # all fields at once: each pass reads the rows once for every field
        finishes = [_finish_sums(X.dtype) for X in blocks]
        pre = core_states(blocks, inv, ngroups, need, table.size, finishes)
    for (name, X), st in zip(values.items(), pre, strict=True):
        table.states[name] = field_state(X, inv, ngroups, need, rows, table.size, fused, st)
        table.cells[name] = X.shape[1]
    return table


def _expand(st: State, where: np.ndarray, ngroups: int, K: int) -> State:
    """A table's states placed at rows ``where`` of a table of ``ngroups`` groups."""
    out: State = {}
    for key, arr in st.items():
        if key == "qc":
            out[key] = where[arr // K] * K + arr % K
        elif key == "qv":
            out[key] = arr
        else:
            full = np.full((ngroups, K), _fill(key, arr), arr.dtype)
            full[where] = arr.reshape(-1, K)
            out[key] = full.ravel()
    return out


def _chan(a: State, b: State) -> tuple[np.ndarray, np.ndarray]:
    na, nb = a["n"], b["n"]
    n = na + nb
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        delta = b["mu"] - a["mu"]
        f = nb / np.maximum(n, 1)
        mu = np.where(na == 0, b["mu"], np.where(nb == 0, a["mu"], a["mu"] + delta * f))
        both = a["m2"] + b["m2"] + delta * delta * na * f
        m2 = np.where(na == 0, b["m2"], np.where(nb == 0, a["m2"], both))
    return mu, m2


def _combine(a: State, b: State) -> State:
    """Merge the states of the same cells; ``b`` holds later rows than ``a``."""
    out: State = {"n": a["n"] + b["n"]}
    if "sum" in a:
        fl = a["sum"].dtype.kind == "f"
        if fl:  # a cell one side has not seen keeps the other's bits (-0.0 stays -0.0)
            both = a["sum"] + b["sum"]
            out["sum"] = np.where(b["n"] == 0, a["sum"], np.where(a["n"] == 0, b["sum"], both))
        else:
            out["sum"] = add_int(a["sum"], b["sum"])
    if "m2" in a:
        out["mu"], out["m2"] = _chan(a, b)
    if "min" in a:
        out["min"] = np.minimum(a["min"], b["min"])
    if "max" in a:
        out["max"] = np.maximum(a["max"], b["max"])
    if "fi" in a:
        take = b["fi"] < a["fi"]
        out["fi"], out["fv"] = np.where(take, b["fi"], a["fi"]), np.where(take, b["fv"], a["fv"])
    if "li" in a:
        take = b["li"] > a["li"]
        out["li"], out["lv"] = np.where(take, b["li"], a["li"]), np.where(take, b["lv"], a["lv"])
    if "qc" in a:
        qc, qv = np.concatenate([a["qc"], b["qc"]]), np.concatenate([a["qv"], b["qv"]])
        order = np.lexsort((qv, qc))
        out["qc"], out["qv"] = qc[order], qv[order]
    return out


def _in_order(a: Table, b: Table) -> int | None:
    """How many keys ``a`` and ``b`` share (0 or 1) when all of ``a``'s keys sort before
    ``b``'s but its last may be ``b``'s first (one int/bytes key column: sorted or
    clustered keys such as ``id // 1000`` reach the merge in this order), else None."""
    if len(a.keys) != 1 or not a.ngroups or not b.ngroups:
        return None
    ka, kb = a.keys[0], b.keys[0]
    if ka.dtype.kind not in "biuSU":
        return None
    if ka[-1] < kb[0]:
        return 0
    return 1 if ka[-1] == kb[0] else None


def _slice(t: Table, g0: int, g1: int) -> Table:
    """The groups ``g0:g1`` of ``t``."""
    out = Table([k[g0:g1] for k in t.keys], t.size[g0:g1], cells=dict(t.cells))
    for name, K in t.cells.items():
        st = {k: v[g0 * K : g1 * K] for k, v in t.states[name].items() if k not in ("qc", "qv")}
        if "qc" in t.states[name]:
            qc, qv = t.states[name]["qc"], t.states[name]["qv"]
            lo, hi = np.searchsorted(qc, [g0 * K, g1 * K])
            st["qc"], st["qv"] = qc[lo:hi] - g0 * K, qv[lo:hi]
        out.states[name] = st
    return out


def _append(parts: list[Table]) -> Table:
    """:func:`merge` of tables whose keys do not overlap, in key order: the states side
    by side (the same values as merging each with the other's empty cells)."""
    parts = [p for p in parts if p.ngroups] or parts[:1]
    first = parts[0]
    keys = [np.concatenate([p.keys[0] for p in parts])]
    out = Table(keys, np.concatenate([p.size for p in parts]), cells=dict(first.cells))
    offsets = np.cumsum([0] + [p.ngroups for p in parts])
    for name, K in first.cells.items():
        sts = [p.states[name] for p in parts]
        st = {k: _cat([x[k] for x in sts]) for k in sts[0] if k != "qc"}
        if "qc" in sts[0]:
            st["qc"] = np.concatenate([x["qc"] + o * K for x, o in zip(sts, offsets, strict=False)])
        out.states[name] = st
    return out


def _cat(arrays: list[np.ndarray]) -> np.ndarray:
    if any(x.dtype == object for x in arrays):  # exact big int sums next to int64 ones
        return np.concatenate([x.astype(object) for x in arrays])
    return np.concatenate(arrays)


def merge(a: Table | None, b: Table) -> Table:
    """The table of the rows of ``a`` then ``b`` (their keys' union, sorted)."""
    if a is None:
        return b
    shared = _in_order(a, b)
    if shared == 0:
        return _append([a, b])
    if shared == 1:  # the group at the seam is in both: merged on its own
        ga, gb = a.ngroups, b.ngroups
        seam = _merge_keys(_slice(a, ga - 1, ga), _slice(b, 0, 1))
        return _append([_slice(a, 0, ga - 1), seam, _slice(b, 1, gb)])
    return _merge_keys(a, b)


def _merge_keys(a: Table, b: Table) -> Table:
    """:func:`merge` through the union of the keys."""
    same = a.ngroups == b.ngroups and all(
        np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
        for x, y in zip(a.keys, b.keys, strict=True)
    )
    if same:
        keys, ngroups = a.keys, a.ngroups
        wa = wb = np.arange(ngroups)
    else:
        cols = [np.concatenate([x, y]) for x, y in zip(a.keys, b.keys, strict=True)]
        keys, inv = union(cols, a.ngroups)
        ngroups = len(keys[0])
        wa, wb = inv[: a.ngroups], inv[a.ngroups :]
    size = np.zeros(ngroups, np.int64)
    size[wa] += a.size
    size[wb] += b.size
    out = Table(keys, size, cells=dict(a.cells))
    for name, K in a.cells.items():
        sa, sb = a.states[name], b.states[name]
        if not same:
            sa, sb = _expand(sa, wa, ngroups, K), _expand(sb, wb, ngroups, K)
        out.states[name] = _combine(sa, sb)
    return out


def quantiles(st: State, q: np.ndarray) -> np.ndarray:
    """Exact quantiles per cell, ``(cells, len(q))``: linear interpolation between the
    sorted values like pandas' ``quantile(interpolation="linear")``; NaN for empty cells."""
    n, qv = st["n"], st["qv"]
    out = np.full((len(n), len(q)), np.nan)
    has = n > 0
    if not has.any():
        return out
    starts = (np.cumsum(n) - n)[has]
    last = (n - 1)[has]
    for j, qj in enumerate(q):
        h = qj * last
        lo = np.floor(h).astype(np.int64)
        frac = h - lo
        hi = np.minimum(lo + 1, last)
        vlo, vhi = qv[starts + lo], qv[starts + hi]
        with np.errstate(invalid="ignore"):
            out[has, j] = np.where(frac == 0, vlo, vlo + (vhi - vlo) * frac)
    return out


def finalize(
    table: Table, name: str, op: str, ddof: int = 0, q: np.ndarray | None = None
) -> np.ndarray:
    """One op's result for field ``name``: ``(groups, K)`` (``(groups, K, len(q))`` for
    quantiles); NaN where a group has no value (floats only: ints always have one)."""
    st, K = table.states[name], table.cells[name]
    G = table.ngroups
    n = st["n"]
    empty = n == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        if op == "count":
            res: np.ndarray = n
        elif op == "size":
            res = np.repeat(table.size, K)
        elif op == "sum":
            res = st["sum"]
        elif op == "mean":
            res = np.where(empty, np.nan, as_float(st["sum"]) / np.maximum(n, 1))
        elif op in ("var", "std"):
            dof = n - ddof
            res = np.where(dof > 0, st["m2"] / np.maximum(dof, 1), np.nan)
            res = np.sqrt(res) if op == "std" else res
        elif op == "quantile":
            assert q is not None
            return quantiles(st, q).reshape(G, K, len(q))
        else:
            res = st[{"min": "min", "max": "max", "first": "fv", "last": "lv"}[op]]
            if empty.any():
                res = np.where(empty, np.nan, res)
    return res.reshape(G, K)
