"""``groupby_reduce``: the entry point behind ``Array.groupby`` and ``stats --by``."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from arraystore._native.direct import direct_reads
from arraystore._native.jit import numba_pays
from arraystore.core.dtypes import field_dtype
from arraystore.core.expr import compile_expr
from arraystore.errors import InvalidArgument
from arraystore.ops.groupby import fused, kernels
from arraystore.ops.groupby.engine import (
    GroupSpec,
    KeySource,
    block_rows,
    budget_of,
    resolve_keys,
    run_groups,
    value_fields,
)
from arraystore.ops.groupby.result import GroupedResult
from arraystore.ops.groupby.spill import Spiller
from arraystore.ops.groupby.stream import GroupsWritten, Sink, collect, each, write_parts

if TYPE_CHECKING:
    from arraystore.storage import ArrayView

DEFAULT_OPS = ("count", "sum", "mean", "std", "min", "max")


def _check_ops(ops: Iterable[str] | None, q: Any) -> tuple[tuple[str, ...], np.ndarray | None]:
    chosen = tuple(dict.fromkeys(DEFAULT_OPS if ops is None else ops))
    bad = [o for o in chosen if o not in kernels.OPS]
    if bad:
        raise InvalidArgument(f"unknown op {bad[0]!r} (choose from: {', '.join(kernels.OPS)})")
    if q is None:
        if "quantile" in chosen:
            raise InvalidArgument("op 'quantile' needs quantiles (q=0.5 or --quantiles 0.5)")
        return chosen, None
    qs = np.atleast_1d(np.asarray(q, dtype=np.float64))
    if qs.ndim != 1 or qs.size == 0 or not np.all((qs >= 0) & (qs <= 1)):
        raise InvalidArgument(f"quantiles must be numbers in [0, 1], got {q!r}")
    if "quantile" not in chosen:
        chosen = (*chosen, "quantile")
    return chosen, qs


def groupby_reduce(
    arr: ArrayView,
    key: Any,
    fields: Sequence[str] | str | None = None,
    ops: Iterable[str] | None = None,
    ddof: int = 0,
    q: Any = None,
    where: str | None = None,
    dropna: bool = True,
    reduce_inner: bool = False,
    memory: int | str | None = None,
    executor: Any = None,
    workers: int | None = None,
    progress: Callable[[Any, Any], None] | None = None,
    sink: Sink | None = None,
    io: str | None = None,
) -> GroupedResult | GroupsWritten:
    """Reduce ``fields`` of ``arr`` per group of ``key`` (see ``Array.groupby``); with
    ``sink``, write the result to it part by part (:mod:`.stream`) instead."""
    if isinstance(ddof, bool) or not isinstance(ddof, int) or ddof < 0:
        raise InvalidArgument(f"ddof must be a non-negative integer, got {ddof!r}")
    chosen, qs = _check_ops(ops, q)
    if arr.meta.fields and arr.field is None and len(arr.shape) != 1:
        raise InvalidArgument(f"groupby needs a 1-d structured array; {arr.name} is {arr.shape}")
    if not arr.shape:
        raise InvalidArgument(f"{arr.name} is 0-d: nothing to group")
    budget = budget_of(memory)
    keys = resolve_keys(arr, key)
    values = value_fields(arr, fields, keys) if set(chosen) - {"size"} else ()
    structured = arr.meta.fields and arr.field is None
    names = list(arr.meta.fields) if structured else []
    if where is not None and not structured:
        raise InvalidArgument("where= needs a structured array (an expression over its fields)")
    cond = compile_expr(where, names) if where is not None else None
    read = {k.field for k in keys if k.field} | {f for f, _ in values if f}
    for expr in [cond, *(k.expr for k in keys)]:
        read |= set(expr.names) if expr is not None else set()
    if arr.field is not None:  # a field view: read the field only
        read = {arr.field}
    nread = _bytes_read(arr, read, keys)  # one pass: decides numba and direct reads
    spec = GroupSpec(
        arr.handle,
        keys,
        values,
        kernels.needs(chosen),
        cond,
        bool(dropna),
        bool(reduce_inner) and not structured,
        tuple(sorted(read)),
        numba_pays(nread, fused.NUMBA_MIN_BYTES, budget),
    )
    t0 = time.perf_counter()
    store = arr.store
    local = store.writable and not store.remote
    spiller = Spiller(store.layout.temp_path(arr.name) if local else None, budget)
    qtuple = tuple(float(x) for x in qs) if qs is not None else ()
    try:
        table = run_groups(
            spec, arr.shape[0], block_rows(arr), budget, executor, workers, progress, spiller,
            direct_reads(nread, io),  # ``--io`` / ARRAYSTORE_IO
        )  # fmt: skip
        if sink is not None:
            return _stream(arr, spec, sink, table, spiller, (chosen, ddof, qs), t0)
        tables = [table] if table is not None else spiller.partitions()
        del table
        kept = collect((_columns(arr, spec, t, chosen, ddof, qs) for t in tables), budget)
    finally:
        spiller.close()
    kcols, size, out = _concat(kept) if len(kept) != 1 else kept[0]
    del kept
    nbytes = math.prod(arr.shape) * (arr.meta.dtype.itemsize if arr.field is None else 0)
    seconds = time.perf_counter() - t0
    res = GroupedResult(arr.name, kcols, size, out, qtuple, nbytes, seconds)
    res.extra["spilled_partitions"] = max(len(spiller.parts), spiller.reduced)
    return res


def _stream(
    arr: ArrayView,
    spec: GroupSpec,
    sink: Sink,
    table: kernels.Table | None,
    spiller: Spiller,
    what: tuple[Any, int, Any],
    t0: float,
) -> GroupsWritten:
    """Write the groups to ``sink`` part by part: the in-memory table, or each spilled
    partition in key order."""
    chosen, ddof, qs = what
    qtuple = tuple(float(x) for x in qs) if qs is not None else ()
    sink.open(table.ngroups if table is not None else spiller.count())
    tables = [table] if table is not None else spiller.partitions()
    del table

    def rows(t: kernels.Table) -> np.ndarray:
        cols = _columns(arr, spec, t, chosen, ddof, qs)
        return GroupedResult(arr.name, *cols, qtuple).to_array()

    n = write_parts(sink, each(tables, rows))
    secs, nparts = time.perf_counter() - t0, max(len(spiller.parts), spiller.reduced)
    return GroupsWritten(sink.target, n, secs, nparts, getattr(sink, "format", "array"))


def _bytes_read(arr: ArrayView, read: set[str], keys: tuple[KeySource, ...]) -> int:
    """Bytes the tasks read: the fields (or the array), and the key arrays."""
    dt = arr.meta.dtype
    if dt.names:
        nbytes = arr.shape[0] * sum(dt[f].itemsize for f in read)
    else:
        nbytes = math.prod(arr.shape) * dt.itemsize
    for k in keys:
        if k.handle is not None:
            kd = k.handle.meta.dtype
            kd = kd if k.handle_field is None else kd[k.handle_field]
            nbytes += arr.shape[0] * kd.itemsize
    return nbytes


Columns = tuple[np.ndarray, np.ndarray, dict[str, dict[str, np.ndarray]]]


def _columns(
    arr: ArrayView,
    spec: GroupSpec,
    table: kernels.Table,
    ops: tuple[str, ...],
    ddof: int,
    qs: np.ndarray | None,
) -> Columns:
    """The keys (structured), sizes and per-field, per-op results of one table."""
    kdt = np.dtype([(k.name, c.dtype) for k, c in zip(spec.keys, table.keys, strict=True)])
    keys = np.empty(table.ngroups, kdt)
    for k, c in zip(spec.keys, table.keys, strict=True):
        keys[k.name] = c
    structured = arr.meta.fields and arr.field is None
    inner = () if spec.inner or structured else tuple(arr.shape[1:])
    out: dict[str, dict[str, np.ndarray]] = {}
    for f, name in spec.values:
        sub = field_dtype(arr.meta.dtype, f).subshape if f and arr.field is None else inner
        res = {}
        for op in ops:
            v = kernels.finalize(table, name, op, ddof, qs)
            res[op] = v.reshape((table.ngroups, *sub, *v.shape[2:]))
        out[name] = res
    return keys, table.size, out


def _concat(parts: list[Columns]) -> Columns:
    """The groups of several spilled partitions (disjoint keys), sorted by key; the
    parts are emptied column by column, so the peak is the result and one column."""
    if not parts:
        raise InvalidArgument("no groups")  # (unreachable: a spilled run has groups)
    keys = np.concatenate([p[0] for p in parts])
    order = np.lexsort([keys[n] for n in reversed(keys.dtype.names or ())])
    keys = keys[order]
    size = np.concatenate([p[1] for p in parts])[order]
    out: dict[str, dict[str, np.ndarray]] = {}
    for f, ops in parts[0][2].items():
        out[f] = {}
        for op in list(ops):
            out[f][op] = _cat([p[2][f].pop(op) for p in parts])[order]
    return keys, size, out


def _cat(arrays: list[np.ndarray]) -> np.ndarray:
    if any(a.dtype == object for a in arrays):  # exact big int sums next to int64 ones
        return np.concatenate([a.astype(object) for a in arrays])
    return np.concatenate(arrays)
