"""Optional one-pass group states (numba): counts, sums, min/max, then the centred sums
of squares, of one field's block, without the GIL.

:func:`core_state` gives the same bits as the numpy path of
:func:`arraystore.ops.groupby.kernels.field_state` (see :mod:`.states_jit`), so which
path a block takes never shows in the results; it only saves the float64 copies, the
index arrays and the several passes of ``bincount``/``ufunc.at``. Used when numba is
installed and the operation reads enough data (:func:`arraystore._native.jit.numba_pays`
with :data:`NUMBA_MIN_BYTES`); float16 fields and empty blocks take the numpy path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from arraystore._native.jit import LazyKernel

#: bytes a grouped reduction reads before it uses numba: the numpy kernels cost ~2.0 s of
#: CPU per GiB of trades (``id:i8,sym:u2,price:f8,qty:i4``, five stats of two fields),
#: these ~0.5 s; importing numba and loading the kernels ~0.5 s (2-core VM, 2026-12)
NUMBA_MIN_BYTES = 512 * 2**20
#: codes come in runs when a sample of this many has under 1/RUNS_FACTOR as many runs
RUN_SAMPLE = 4096
RUNS_FACTOR = 8
#: rows each pass takes at a time over all fields (~1 MiB of 22-byte rows + codes: L2)
SUB_ROWS = 1 << 15
State = dict[str, np.ndarray]


def _build() -> Callable[..., Any]:
    from arraystore.ops.groupby import states_jit  # lazy: imports numba

    def call(name: str, *args: Any) -> Any:
        """Run the kernel ``name`` of :mod:`.states_jit`."""
        return getattr(states_jit, name)(*args)

    return call


KERNEL = LazyKernel(_build)


def _kind(dt: np.dtype) -> str | None:
    if dt.kind == "f":
        return "float" if dt.itemsize in (4, 8) else None
    if dt.kind == "b" or (dt.kind in "iu" and dt.itemsize <= 4):
        return "int"
    return "wide" if dt.kind in "iu" else None


def runs(codes: np.ndarray) -> bool:
    """Do the codes come in long runs (sorted or clustered keys)? Only speed depends on it."""
    head = codes[:RUN_SAMPLE]
    changes = np.count_nonzero(head[1:] != head[:-1])
    return bool(len(head) > 1 and changes * RUNS_FACTOR < len(head))


class _Field:
    """One field's kernel arrays between the two passes of :func:`core_states`."""

    def __init__(self, X: np.ndarray, cells: int, size: np.ndarray, call: Any) -> None:
        kind = _kind(X.dtype)
        self.X, self.kind, self.call, K = X, kind, call, X.shape[1]
        self.x = x = X.view(np.uint8) if X.dtype.kind == "b" else X
        lo_hi = _limits(x.dtype)
        self.mn, self.mx = np.full(cells, lo_hi[0], x.dtype), np.full(cells, lo_hi[1], x.dtype)
        self.high: np.ndarray | None = None
        self.n = np.repeat(size, K) if K > 1 else size.copy()  # less the NaNs (float_pass)
        if kind == "float":
            self.s = np.zeros(cells)
        else:
            self.s = np.zeros(cells, np.int64)
            if kind == "wide":
                self.high = np.zeros(cells, np.int64)
        self.mu = self.m2 = np.zeros(0)

    def first(self, codes: np.ndarray, a: int, b: int, run: bool) -> None:
        """Counts, sums, min and max of rows ``a:b``."""
        x, call = self.x[a:b], self.call
        if self.kind == "float":
            call("float_pass", codes, x, run, self.n, self.s, self.mn, self.mx)
        elif self.kind == "int":
            call("int_pass", codes, x, run, self.s, self.mn, self.mx)
        else:
            t = x.dtype.type
            call("wide_pass", codes, x, t(0xFFFFFFFF), t(32), self.s, self.high, self.mn, self.mx)

    def second(self, codes: np.ndarray, a: int, b: int, run: bool) -> None:
        """The centred squares of rows ``a:b``."""
        self.call("m2_pass", codes, self.x[a:b], self.mu, run, self.m2)


def core_states(
    Xs: list[np.ndarray],
    codes: np.ndarray,
    ngroups: int,
    need: frozenset[str],
    size: np.ndarray,
    finishes: list[Callable[[np.ndarray, np.ndarray, np.ndarray | None], tuple[np.ndarray, Any]]],
) -> list[State | None]:
    """``n``, ``sum``, ``mu``/``m2``, ``min``/``max`` of each block ``X (m, K)`` of ``Xs``
    (row ``i`` in group ``codes[i]``), or None for one (no numba, an unsupported dtype,
    no rows).

    ``finish(n, sums, high)`` turns the kernel's exact sums (``high``: the high halves of
    8-byte ints) into the state's ``sum`` and the float64 sums the means divide, the
    way the numpy path does. The passes go :data:`SUB_ROWS` rows at a time over every
    field (the rows stay in the CPU cache between fields) and add to each cell in row
    order, so the bits are those of one call per field. A block waits while another
    thread loads numba: taking the numpy path meanwhile (the same bits) costs more, each
    GIL hand-over to the importing thread waiting out a switch interval."""
    ok = [_kind(X.dtype) is not None and len(X) > 0 for X in Xs]
    call = KERNEL.get() if any(ok) else None
    if call is None:
        return [None] * len(Xs)
    fields = {i: _Field(X, ngroups * X.shape[1], size, call) for i, X in enumerate(Xs) if ok[i]}
    run, m = runs(codes), len(codes)
    spans = [(a, min(a + SUB_ROWS, m)) for a in range(0, m, SUB_ROWS)]
    groups = _pairs(list(fields.values()), run)
    for a, b in spans:
        for g in groups:
            _first(g, codes[a:b], a, b, run)
    out: list[State | None] = [None] * len(Xs)
    for i, f in fields.items():
        st: State = {"n": f.n}
        total, fsum = finishes[i](f.n, f.s, f.high)
        if "sum" in need:
            st["sum"] = total
        if "m2" in need:
            with np.errstate(invalid="ignore", divide="ignore"):
                f.mu = fsum / np.maximum(f.n, 1)
            f.m2 = np.zeros(len(f.n))
            st["mu"], st["m2"] = f.mu, f.m2
        for key, arr in (("min", f.mn), ("max", f.mx)):
            if key in need:
                st[key] = arr.view(f.X.dtype)
        out[i] = st
    if "m2" in need:
        for a, b in spans:
            for g in groups:
                _second(g, codes[a:b], a, b, run)
    return out


def _pairs(fields: list[_Field], run: bool) -> list[tuple[_Field, ...]]:
    """The fields two by two where one loop can take both (one value per row, floats
    and ints of at most 4 bytes, scattered codes), the others one by one."""
    if run:
        return [(f,) for f in fields]
    two = [f for f in fields if f.kind != "wide" and f.X.shape[1] == 1]
    out = [tuple(two[i : i + 2]) for i in range(0, len(two), 2)]
    return out + [(f,) for f in fields if f not in two]


def _first(g: tuple[_Field, ...], codes: np.ndarray, a: int, b: int, run: bool) -> None:
    if len(g) == 1:
        g[0].first(codes, a, b, run)
        return
    f, h = g
    f.call("pair_pass", codes, f.x[a:b], h.x[a:b], f.n, f.s, f.mn, f.mx, h.n, h.s, h.mn, h.mx)


def _second(g: tuple[_Field, ...], codes: np.ndarray, a: int, b: int, run: bool) -> None:
    if len(g) == 1:
        g[0].second(codes, a, b, run)
        return
    f, h = g
    f.call("m2_pair", codes, f.x[a:b], h.x[a:b], f.mu, h.mu, f.m2, h.m2)


def dense_counts(
    col: np.ndarray, base: np.ndarray, cells: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Rows per value and each row's offset ``col - base`` (intp) of an int key column
    whose values lie in ``[base, base + cells)``, in one pass; None without numba."""
    call = KERNEL.get()
    if call is None:
        return None
    counts, off = np.zeros(cells, np.int64), np.empty(len(col), np.intp)
    call("dense_codes", col, int(base), runs(col), off, counts)
    return counts, off


def min_max(col: np.ndarray) -> tuple[Any, Any] | None:
    """The smallest and largest value of a non-empty int column in one pass (as its
    dtype's scalars); None without numba."""
    call = KERNEL.get()
    if call is None:
        return None
    lo, hi = call("min_max", col)
    return col.dtype.type(lo), col.dtype.type(hi)


def _limits(dt: np.dtype) -> tuple[Any, Any]:
    if dt.kind == "f":
        return dt.type(np.inf), dt.type(-np.inf)
    info = np.iinfo(dt)
    return info.max, info.min


def _pair_samples(dtypes: list[np.dtype]) -> list[tuple[Any, ...]]:
    """Sample calls of the two-field kernels for the fields ``dtypes`` paired in order
    as :func:`_pairs` pairs them (when each holds one value per row)."""
    two = [np.uint8 if d.kind == "b" else d for d in dtypes if _kind(d) in ("float", "int")]
    out: list[tuple[Any, ...]] = []
    c = np.zeros(1, np.intp)
    for da, db in zip(two[0::2], two[1::2], strict=False):
        a, b = np.zeros((1, 1), da), np.zeros((1, 1), db)
        st = [np.zeros(1, np.int64), np.zeros(1, np.float64 if a.dtype.kind == "f" else np.int64)]
        sb = [np.zeros(1, np.int64), np.zeros(1, np.float64 if b.dtype.kind == "f" else np.int64)]
        ea, eb = np.zeros(1, a.dtype), np.zeros(1, b.dtype)
        out.append(("pair_pass", c, a, b, *st, ea, ea, *sb, eb, eb))
        out.append(("m2_pair", c, a, b, np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1)))
    return out


def prewarm(dtypes: Iterable[np.dtype], key_dtypes: Iterable[np.dtype] = ()) -> None:
    """Import numba and load the kernels for these field (and int key) dtypes in the
    background (:meth:`arraystore._native.jit.LazyKernel.prewarm`)."""
    order = [np.dtype(d) for d in dtypes]
    wanted = {d.str: d for d in order if _kind(d)}
    keys = {np.dtype(d).str: np.dtype(d) for d in key_dtypes if np.dtype(d).kind in "iu"}
    keys |= {"|u1": np.dtype(np.uint8)} if any(np.dtype(d).kind == "b" for d in key_dtypes) else {}

    def samples() -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        c, z = np.zeros(1, np.intp), np.zeros(1, np.int64)
        for dt in wanted.values():
            x = np.zeros((1, 1), np.uint8 if dt.kind == "b" else dt)
            kind, e = _kind(dt), np.zeros(1, x.dtype)
            if kind == "float":
                out.append(("float_pass", c, x, False, np.zeros(1, np.int64), np.zeros(1), e, e))
            elif kind == "int":
                out.append(("int_pass", c, x, False, np.zeros(1, np.int64), e, e))
            else:
                t, z = x.dtype.type, np.zeros(1, np.int64)
                out.append(("wide_pass", c, x, t(1), t(32), z, z, e, e))
            out.append(("m2_pass", c, x, np.zeros(1), False, np.zeros(1)))
        out.extend(_pair_samples(order))
        for k in keys:
            out.append(("dense_codes", np.zeros(1, k), 0, False, c, z))
            out.append(("min_max", np.zeros(1, k)))
        return out

    KERNEL.prewarm(samples)
