"""Tables <-> structured arrays through pyarrow: Parquet and Arrow IPC import and export.

Import streams record batches (Parquet: ``ParquetFile.iter_batches`` over the row groups;
IPC: one record batch at a time) into chunk-row buffers written by worker threads (see
``interop.ChunkSink``). The row count comes from the file's metadata, so the array is
created first with its final shape; memory stays bounded by a record batch (pyarrow
decodes at most a row group's column chunks at a time), plus ``workers + 1`` chunk rows.

Types (Arrow -> numpy; ``dtype=`` overrides any column, value-checked):

==========================================  ===========================================
bool, int8..uint64, float16/32/64           the same numpy type
string / large_string / binary              ``U<n>`` / ``S<n>``, n = the longest value
dictionary<...>                             its value type (decoded)
timestamp, duration, date64, time64         ``i8`` ticks in the column's unit
date32, time32                              ``i4`` (days / ticks)
fixed_size_list<T>[k] (nested: N-d)         a subarray field ``(k,)`` of T
null                                        ``f8``, all NaN
decimal, list, struct, map                  refused (a decimal may be given a dtype)
==========================================  ===========================================

The original Arrow types are kept in ``attrs["import"]`` and restored on export (a
timestamp column goes back to a timestamp, a dictionary back to a dictionary).

Nulls (the policy):

* float (and complex) columns: null -> NaN; no mask field.
* integer, bool, string and temporal columns *holding nulls*: a bool field
  ``<col>__valid`` (False where the value was null) follows the column, and the value
  slot holds 0 / False / "" (a neutral value: it does not distort min/max, and
  ``cast(..., "auto")`` can still shrink the column). With ``null_mask=False`` there is
  no mask and the slot holds a sentinel instead: the dtype's min (signed ints), its max
  (unsigned), False (bool), "" (strings). Columns without nulls get no mask. A
  fixed-size-list column's mask marks null rows; null *elements* of a list that is not
  null get NaN / the sentinel.
* ``errors="coerce"``: a value that does not fit a requested dtype is treated as null
  (NaN, or 0 + mask) and counted; ``"raise"`` stops at the first one and names its
  row (0-based, in the file) and column.

Per-column counts (``nulls``: values stored as missing, coerced ones included;
``coerced``), the source Arrow type and the column's name are stored in
``attrs["import"]``. Column names that are not valid field names are
sanitised (``"Unit Price"`` -> ``Unit_Price``; a column called ``c`` -> ``c_``); export
writes the original names back.

Export: one record batch per row block (a Parquet row group per chunk row), masks turned
back into nulls, floats with NaN written as null for columns that had nulls at import
(``nan_as_null=None``; ``True``/``False`` for every/no float column), ``U``/``S`` as
string/binary, subarrays as fixed-size lists, bfloat16 as float32, complex as a list of
two floats. The schema metadata key ``arraystore`` records the logical dtype and shape,
so re-importing an exported file gives back exactly the same array.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from arraystore.core.casting.rules import check_cast_args
from arraystore.core.dtypes import fields_of, parse_dtype, scalar_str
from arraystore.errors import CastError, CorruptData, DTypeError, FieldNotFound, InvalidArgument
from arraystore.ops.cast import CastResult, history_entry
from arraystore.ops.create import new_meta
from arraystore.ops.io.arrow_convert import (
    MASK_SUFFIX,
    META_KEY,
    BadValues,
    ColPlan,
    _is_text,
    _is_unicode,
    _leaf,
    _needs_mask,
    bad_values_message,
    convert,
    field_names,
    natural_dtype,
    parse_overrides,
)
from arraystore.ops.io.common import ChunkSink, new_array, prefetch, require

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc
else:
    pa = require("pyarrow", "CSV/Parquet/Arrow files")
    pc = require("pyarrow.compute", "CSV/Parquet/Arrow files")

if TYPE_CHECKING:
    from arraystore.storage import NewArray, StoreRoot


# ------------------------------------------------------------------- plans
@dataclass
class Stats:
    """What a pre-pass learned per column: nulls and the longest string (None: unknown)."""

    nulls: dict[str, int] = field(default_factory=dict)
    maxlen: dict[str, int] = field(default_factory=dict)


@dataclass
class Layout:
    """The output array: plans, record tail dims, and whether the dtype is plain."""

    plans: list[ColPlan]
    tail: tuple[int, ...] = ()
    plain: bool = False

    def dtype(self) -> np.dtype:
        if self.plain:
            return self.plans[0].dtype
        items: list[tuple[Any, ...]] = []
        nt = len(self.tail)
        for p in self.plans:
            sub = p.dims[nt:]
            items.append((p.field, p.dtype, sub) if sub else (p.field, p.dtype))
            if p.mask:
                items.append((p.mask, np.dtype(bool)))
        return parse_dtype(np.dtype(items))


def read_meta(schema: pa.Schema) -> dict[str, Any] | None:
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and doc.get("version") == 1 else None


def plan_columns(
    schema: pa.Schema,
    stats: Stats,
    dtype: Any,
    columns: list[str] | None,
    null_mask: bool,
    errors: str,
) -> Layout:
    """Decide each column's field name, dtype, dims and mask (see the module docstring)."""
    names = list(schema.names)
    if len(set(names)) != len(names):
        raise InvalidArgument(f"duplicate column names in {names}")
    chosen = names if columns is None else list(columns)
    for c in chosen:
        if c not in names:
            raise FieldNotFound(f"no column {c!r} (columns: {', '.join(names)})")
    meta = read_meta(schema) if dtype is None and columns is None else None
    if meta is not None:
        return _plan_from_meta(schema, meta, stats)
    over = parse_overrides(dtype)
    fnames = field_names(chosen)
    unknown = set(over) - set(chosen) - set(fnames) - {"*"}
    if unknown:
        raise FieldNotFound(f"dtype names unknown column(s) {sorted(unknown)} (columns: {chosen})")
    plans = []
    for col, fname in zip(chosen, fnames, strict=True):
        t = schema.field(col).type
        leaf, dims = _leaf(t)
        given = over.get(col) or over.get(fname) or over.get("*")
        if given is not None:
            dt, sub = given
            if sub and sub != dims:
                raise InvalidArgument(f"column {col!r} has list shape {dims}, not {sub}")
            if dt.kind == "c" and (not dims or dims[-1] != 2):
                raise InvalidArgument(f"column {col!r}: complex needs a list of 2 floats")
            if dt.kind == "c":
                dims = dims[:-1]
            try:
                nat = natural_dtype(leaf, col, stats.maxlen.get(col, 1))
            except DTypeError:
                nat = None
            check = dt != nat or dt.kind in "SU"
        else:
            dt = natural_dtype(leaf, col, stats.maxlen.get(col, 1))
            check = False
        text = _is_text(leaf) or pa.types.is_fixed_size_binary(leaf)
        if (dt.kind in "SU") != text:
            raise DTypeError(f"column {col!r} of type {leaf} cannot be stored as {scalar_str(dt)}")
        nulls = stats.nulls.get(col)
        may_null = nulls is None or nulls > 0 or (check and errors == "coerce")
        mask = f"{fname}{MASK_SUFFIX}" if null_mask and _needs_mask(dt) and may_null else None
        plans.append(ColPlan(col, fname, dt, dims, t, mask, check=check))
    return Layout(plans)


def _plan_from_meta(schema: pa.Schema, meta: dict[str, Any], stats: Stats) -> Layout:
    """Exactly the array an export wrote (its logical dtype, shape and masks)."""
    dt = parse_dtype(meta["dtype"])
    tail = tuple(int(x) for x in meta.get("tail", []))
    cols: dict[str, str] = meta.get("columns", {})
    masks: dict[str, str] = meta.get("masks", {})
    by_field = {f: c for c, f in cols.items()}
    plans = []
    fields: list[Any] = list(fields_of(dt)) or [None]
    for f in fields:
        fname = f.name if f is not None else ""
        if fname in masks.values():
            continue
        col = by_field.get(fname, fname)
        if col not in schema.names:
            raise CorruptData(f"column {col!r} named in the file's arraystore metadata is missing")
        base = f.dtype if f is not None else dt
        sub = f.subshape if f is not None else ()
        t = schema.field(col).type
        plans.append(ColPlan(col, fname, base, tail + sub, t, masks.get(col), check=True))
    if dt.names is None:
        tail = ()
    return Layout(plans, tail=tail, plain=dt.names is None)


# ----------------------------------------------------------------- writing
def write_batches(
    store: StoreRoot,
    name: str,
    layout: Layout,
    nrows: int,
    batches: Iterable[pa.RecordBatch],
    *,
    errors: str,
    backend: str,
    codec: str | None,
    chunks: Any,
    attrs: Mapping[str, Any] | None,
    report: dict[str, Any],
    overwrite: bool,
    workers: int,
    progress: Callable[[Any, Any], None] | None,
    source_bytes: int = 0,
    where: Callable[[int], str] = lambda r: f"row {r}",
    checksum: bool = False,
    shards: Any = None,
    policy: Mapping[str, Any] | None = None,
) -> None:
    """Create the array (temp folder), stream the batches into it, commit it; ``policy``:
    how ``dtype`` columns are cast on write (:func:`cast_policy`)."""
    dtype = layout.dtype()
    shape = (nrows, *(layout.plans[0].dims if layout.plain else layout.tail))
    meta = new_meta(
        shape,
        dtype,
        chunks=chunks,
        backend=backend,
        codec=codec,
        attrs=attrs,
        checksum=checksum,
        shards=shards,
    )
    with new_array(store, name, meta, overwrite) as new:
        sink = ChunkSink(new.handle, workers)
        try:
            row = reported = 0
            for batch in batches:
                n = batch.num_rows
                if row + n > nrows:
                    raise CorruptData(f"the file holds more rows than its metadata says ({nrows})")
                cols: dict[str | None, np.ndarray] = {}
                for p in layout.plans:
                    try:
                        values, valid, _bad = convert(
                            batch.column(p.column), p, errors, policy, (row, nrows)
                        )
                    except BadValues as exc:

                        def at(r: int, start: int = row) -> str:
                            return where(start + r)

                        raise InvalidArgument(bad_values_message(exc, at)) from None
                    cols[None if layout.plain else p.field] = values
                    if p.mask:
                        cols[p.mask] = valid if valid is not None else _ones(n)
                sink.put(cols, n)
                row += n
                if progress is not None:  # source-file bytes, pro rata of the rows written
                    done = source_bytes * row // max(1, nrows)
                    progress(None, done - reported)
                    reported = done
            if row != nrows:
                raise CorruptData(f"the file holds {row} rows, its metadata says {nrows}")
            sink.close()
        except BaseException:
            sink.abort()
            raise
        report = {**report, "rows": nrows, "columns": [p.report() for p in layout.plans]}
        new.meta = meta.evolve(attrs={**dict(attrs or {}), "import": report})
        if policy is not None:
            audit_casts(layout, policy, name, new)


def cast_policy(cast: Mapping[str, Any] | None, errors: str) -> dict[str, Any] | None:
    """How Parquet/Arrow columns given another numeric ``dtype`` are cast: ``cast``'s
    ``casting`` (default ``value``), ``rtol``, ``nan_to``, ``audit``, ``source``; None with
    ``errors="coerce"``, whose value check turns the values that do not fit into nulls."""
    cast = dict(cast or {})
    given = [k for k in ("casting", "rtol", "nan_to") if cast.get(k) is not None]
    if errors == "coerce":
        if given:
            raise InvalidArgument(f"{'/'.join(given)} cannot be combined with errors='coerce'")
        return None
    casting = "value" if cast.get("casting") is None else str(cast["casting"])
    rtol = 0.0 if cast.get("rtol") is None else cast["rtol"]
    check_cast_args(casting, "raise", rtol, None)
    return {**cast, "casting": casting, "rtol": rtol, "nan_to": cast.get("nan_to")}


def audit_casts(layout: Layout, policy: Mapping[str, Any], name: str, new: NewArray) -> None:
    """After every batch: a violation of the policy in any cast column raises
    :class:`CastError` with the totals (the caller's ``NewArray`` is then removed);
    otherwise the audit goes into ``new.meta``'s history and to ``policy["audit"]``."""
    plans = [p for p in layout.plans if p.audit is not None]
    if not plans:
        return
    reports = {p.field: p.audit for p in plans if p.audit is not None}
    bad = [r.error_message(k) for k, r in reports.items() if not r.ok]
    if bad:
        raise CastError("; ".join(bad) + " — nothing was written")
    src = {k: np.dtype(r.src) for k, r in reports.items()}
    result = CastResult(
        str(policy.get("source") or name),
        name,
        {k: (scalar_str(src[k]), scalar_str(np.dtype(r.dst))) for k, r in reports.items()},
        dict(reports),
        sum(r.count * src[k].itemsize for k, r in reports.items()),
        sum(r.count * np.dtype(r.dst).itemsize for r in reports.values()),
    )
    entry = history_entry(
        result, policy["casting"], policy["rtol"], source=policy.get("source") or name
    )
    new.meta = new.meta.evolve(history=(*new.meta.history, entry))
    if policy.get("audit") is not None:
        policy["audit"](result)


_ONES = np.ones(0, bool)


def _ones(n: int) -> np.ndarray:
    global _ONES
    if len(_ONES) < n:
        _ONES = np.ones(n, bool)
    return _ONES[:n]


def schema_b64(schema: pa.Schema) -> str:
    return base64.b64encode(schema.remove_metadata().serialize().to_pybytes()).decode()


# ------------------------------------------------------------------ import
def import_table(
    store: StoreRoot,
    name: str,
    src: Path,
    fmt: str,
    *,
    options: Mapping[str, Any],
    dtype: Any,
    columns: list[str] | None,
    errors: str,
    backend: str,
    codec: str | None,
    chunks: Any,
    attrs: Mapping[str, Any] | None,
    null_mask: bool,
    overwrite: bool,
    workers: int,
    progress: Callable[[Any, Any], None] | None,
    checksum: bool = False,
    shards: Any = None,
    cast: Mapping[str, Any] | None = None,
) -> None:
    """Import a Parquet or Arrow IPC file (the caller holds the array's lock); ``cast``:
    how ``dtype`` columns are cast on write (:func:`cast_policy`)."""
    policy = cast_policy({**(cast or {}), "source": src.name}, errors)
    opts = dict(options)
    batch_rows = opts.pop("batch_rows", None)
    if opts:
        raise InvalidArgument(f"unknown {fmt} options {sorted(opts)} (known: batch_rows)")
    source: _Source = _Parquet(src) if fmt == "parquet" else _open_ipc(src)
    schema = source.schema
    cols = list(schema.names) if columns is None else list(columns)
    for c in cols:
        if c not in schema.names:
            raise FieldNotFound(f"no column {c!r} in {src.name} (columns: {schema.names})")
    stats = source.stats(cols, dtype)
    layout = plan_columns(schema, stats, dtype, columns, null_mask, errors)
    need = [p.column for p in layout.plans]
    row_bytes = max(1, layout.dtype().itemsize * math.prod(layout.tail or (1,)))
    rows = int(batch_rows or max(1024, min(1 << 20, (16 << 20) // row_bytes)))
    report = {
        "format": fmt,
        "source": src.name,
        "errors": errors,
        "arrow_schema": schema_b64(pa.schema([schema.field(c) for c in need])),
    }
    write_batches(
        store,
        name,
        layout,
        source.num_rows,
        source.batches(need, rows),
        errors=errors,
        backend=backend,
        codec=codec,
        chunks=chunks,
        attrs=attrs,
        report=report,
        overwrite=overwrite,
        workers=workers,
        progress=progress,
        source_bytes=src.stat().st_size,
        checksum=checksum,
        shards=shards,
        policy=policy,
    )


class _Source:
    schema: pa.Schema
    num_rows: int

    def batches(self, columns: list[str], rows: int) -> Iterator[pa.RecordBatch]:
        raise NotImplementedError

    def stats(self, columns: list[str], dtype: Any) -> Stats:
        """Null counts and string lengths the plan needs, by one pass over those columns
        (only where the file's metadata does not tell)."""
        over = parse_overrides(dtype)
        stats = Stats()
        scan_nulls, scan_len = [], []
        known = self.known_nulls()
        for c in columns:
            f = self.schema.field(c)
            leaf, dims = _leaf(f.type)
            if not f.nullable:
                stats.nulls[c] = 0
            elif c in known and not dims:
                stats.nulls[c] = known[c]
            elif not pa.types.is_floating(leaf):
                scan_nulls.append(c)
            if _is_text(leaf) and c not in over and "*" not in over:
                scan_len.append(c)
        scan = list(dict.fromkeys(scan_nulls + scan_len))
        if not scan:
            return stats
        for c in scan_nulls:
            stats.nulls[c] = 0
        for batch in self.batches(scan, 1 << 16):
            for c in scan_nulls:
                stats.nulls[c] += batch.column(c).null_count
            for c in scan_len:
                stats.maxlen[c] = max(stats.maxlen.get(c, 0), _maxlen(batch.column(c)))
        return stats

    def known_nulls(self) -> dict[str, int]:
        return {}


def _maxlen(arr: pa.Array) -> int:
    while pa.types.is_fixed_size_list(arr.type):
        arr = arr.flatten()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary
    if not len(arr) or arr.null_count == len(arr):
        return 0
    lengths = pc.utf8_length(arr) if _is_unicode(arr.type) else pc.binary_length(arr)
    return int(pc.max(lengths).as_py() or 0)


class _Parquet(_Source):
    def __init__(self, src: Path) -> None:
        import pyarrow.parquet as pq

        try:
            # no pre-buffering: it holds a whole row group's column chunks in memory
            self.file = pq.ParquetFile(src, pre_buffer=False, buffer_size=1 << 20)
        except (pa.ArrowInvalid, OSError) as exc:
            raise CorruptData(f"{src} is not a readable Parquet file: {exc}") from None
        self.schema = self.file.schema_arrow
        self.num_rows = self.file.metadata.num_rows

    def batches(self, columns: list[str], rows: int) -> Iterator[pa.RecordBatch]:
        it = self.file.iter_batches(batch_size=rows, columns=columns, use_threads=True)
        yield from prefetch(it)  # decode the next batch while this one is written

    def known_nulls(self) -> dict[str, int]:
        md = self.file.metadata
        leaf_index = {}
        for j in range(md.num_columns):
            path = md.schema.column(j).path
            if path in self.schema.names:
                leaf_index[path] = j
        out: dict[str, int] = {}
        for name, j in leaf_index.items():
            total = 0
            for g in range(md.num_row_groups):
                st = md.row_group(g).column(j).statistics
                if st is None or not st.has_null_count:
                    break
                total += st.null_count
            else:
                out[name] = total
        return out


class _IpcFile(_Source):
    def __init__(self, src: Path, reader: Any) -> None:
        self.src = src
        self.schema = reader.schema
        self.count = reader.num_record_batches
        self.num_rows = sum(reader.get_batch(i).num_rows for i in range(self.count))

    def batches(self, columns: list[str], rows: int) -> Iterator[pa.RecordBatch]:
        with pa.OSFile(str(self.src)) as f:  # read, not mapped: bounded RSS
            reader = pa.ipc.open_file(f)
            for i in range(self.count):
                yield reader.get_batch(i).select(columns)


class _IpcStream(_Source):
    """An IPC stream has no footer: one extra pass counts the rows."""

    def __init__(self, src: Path) -> None:
        self.src = src
        with pa.OSFile(str(src)) as f:
            reader = pa.ipc.open_stream(f)
            self.schema = reader.schema
            self.num_rows = sum(b.num_rows for b in reader)

    def batches(self, columns: list[str], rows: int) -> Iterator[pa.RecordBatch]:
        with pa.OSFile(str(self.src)) as f:
            for b in pa.ipc.open_stream(f):
                yield b.select(columns)


def _open_ipc(src: Path) -> _Source:
    try:
        with pa.memory_map(str(src)) as m:
            return _IpcFile(src, pa.ipc.open_file(m))
    except pa.ArrowInvalid:
        pass
    try:
        return _IpcStream(src)
    except (pa.ArrowInvalid, OSError) as exc:
        raise CorruptData(f"{src} is not an Arrow IPC file or stream: {exc}") from None
