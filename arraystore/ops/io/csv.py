"""CSV import: pyarrow's streaming reader, our own types, errors with line numbers.

Bounded approach (the row count of a CSV file is unknown until its end): one streaming
pass parses the file block by block (``pyarrow.csv.open_csv``, ``block_size`` 8 MiB by
default) and appends the converted, typed columns to a temporary Arrow IPC stream (the
*spool*: a hidden ``.NAME.tmp-*.spool.arrow`` file in the store, about the binary size
of the data); then the spool is imported like an Arrow IPC file (``io_arrow``) into an
array created with the now known row count, and removed. Memory: a block or two of
text plus ``workers + 1`` chunk rows; disk: the spool, transiently.

Two passes, same results. The *fast* pass lets pyarrow's multi-threaded CSV converters
parse the chosen types (about a third of the CPU); if anything is off (a cell that does
not parse, a row with the wrong number of cells, an overflow, a text too long...) it
stops and the *exact* pass (:mod:`.io_csv_text`) reads every cell as text and parses it
itself, so each bad cell is found with its position (and ``errors="coerce"`` applies).
A clean file is read once; a file with a problem is read up to the problem, then again.

Types (both passes):

* ``dtype=`` fixes a column's type (``"price:f4,qty:i2,name:U12"``; one plain dtype for
  all columns): the text is parsed as int64/uint64/float64/bool and value-checked into
  that dtype (``300`` as ``i1`` is an error, ``1e39`` as ``f4`` overflows: an error).
  Float columns: decimal fractions round (``0.1``), but a number written with digits
  that overflows to inf (``1e999``, a 400-digit integer) and an integer literal that
  float64 cannot hold exactly (``99999999999999999999999`` is not ``1e+23``) are bad
  cells (``errors="coerce"`` counts them); only the text ``inf`` is infinite.
  Integer cells are read as ``int()`` and numpy read them: decimal ASCII digits with an
  optional sign (``+5`` is 5); ``0x10``, ``0o7``, ``1_000`` are bad cells in an integer
  column (pyarrow's own integer parser reads hex; it is not used on unchecked text).
* Other columns are inferred from the *first block*: int64 if every non-missing value
  parses as an integer, else uint64, float64, bool (``true``/``false``...), else text
  (``U<n>``, n = the longest value in the whole file). A column with no value in the
  first block is float64. An integer column meeting a non-integer number later is
  widened to float64 (the file is read again); other surprises are errors (give a
  ``dtype``).
* Missing values: a cell equal to one of ``null_values`` (pyarrow's list: ``""``,
  ``NA``, ``NULL``, ``nan``, ``N/A``...) is null in a numeric/bool column and follows the
  null policy of :mod:`.io_arrow` (NaN; 0 + a ``<col>__valid`` mask). Text columns
  have no nulls (an empty cell is ``""``), as in pyarrow.
* Surrounding blanks are allowed around numbers.

Errors. ``errors="raise"``: the first block holding bad cells stops the import with
:class:`~arraystore.errors.InvalidArgument` naming the line (1-based, as an editor
shows it) and column, e.g. ``line 17: cannot parse 'abc' as f8 in column 'price'``, plus
the other bad cells of that block. ``errors="coerce"``: bad cells become missing values
(NaN; 0 / "" + mask), rows with the wrong number of cells are skipped; both counted
in ``attrs["import"]`` (``coerced`` per column, ``skipped_rows``). Line numbers assume
one record per line (pyarrow's default ``newlines_in_values=False``); with
``newlines_in_values=True`` errors name the record (``row N``, 0-based) instead.

Options: ``delimiter`` (default ``,``; ``\\t`` for ``.tsv``), ``header`` (default True;
False names the columns ``f0, f1...``), ``skip_rows`` (lines before the header),
``block_size``, ``null_values``, ``quote_char``, ``newlines_in_values``. ``.gz``/``.bz2``
files are decompressed on the fly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from arraystore.core.dtypes import is_bfloat16
from arraystore.errors import DTypeError, FieldNotFound, InvalidArgument
from arraystore.ops.io.arrow import Layout, write_batches
from arraystore.ops.io.arrow_convert import (
    MASK_SUFFIX,
    ColPlan,
    checked_astype,
    field_names,
    parse_overrides,
    to_numpy,
)
from arraystore.ops.io.common import prefetch, require
from arraystore.ops.io.csv_text import (
    CsvOptions,
    _Bad,
    _Col,
    _convert,
    _infer,
    _located,
    _parse_error,
    _spool_type,
    _Widen,
)
from arraystore.storage.killpoints import kill_point

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
else:
    pa = require("pyarrow", "CSV files")
    pc = require("pyarrow.compute", "CSV files")
    pacsv = require("pyarrow.csv", "CSV files")

if TYPE_CHECKING:
    from arraystore.storage import StoreRoot


def _open(
    src: Path,
    opts: CsvOptions,
    column_types: dict[str, Any] | None,
    include: list[str] | None,
    handler: Any = None,
    typed: bool = False,
) -> Any:
    """A streaming reader: text columns (``typed=False``: null detection is ours) or
    pyarrow's typed converters with ``null_values`` (text columns never null)."""
    read = pacsv.ReadOptions(
        block_size=int(opts.block_size),
        skip_rows=int(opts.skip_rows),
        autogenerate_column_names=not opts.header,
        use_threads=True,
    )
    parse = pacsv.ParseOptions(
        delimiter=opts.delimiter,
        quote_char=opts.quote_char,
        newlines_in_values=bool(opts.newlines_in_values),
        invalid_row_handler=handler,
    )
    convert = pacsv.ConvertOptions(
        column_types=column_types or {},
        include_columns=include or [],
        strings_can_be_null=False,
        quoted_strings_can_be_null=typed,
        null_values=list(opts.null_values) if typed else [],
    )
    return pacsv.open_csv(str(src), read_options=read, parse_options=parse, convert_options=convert)


def _header(src: Path, opts: CsvOptions) -> list[str]:
    try:  # only the names are wanted here: bad rows are reported by the real pass
        reader = _open(src, opts, None, None, lambda row: "skip")
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc):
            raise InvalidArgument(f"{src} is empty (no header line)") from None
        raise InvalidArgument(f"{src}: {exc}") from None
    try:
        names = list(reader.schema.names)
    except UnicodeDecodeError:  # pyarrow decodes the names lazily (a UTF-16 file...)
        raise InvalidArgument(
            f"{src}: the header line is not UTF-8 text (CSV files must be UTF-8; "
            "convert e.g. a UTF-16 file with iconv -f UTF-16 -t UTF-8)"
        ) from None
    finally:
        reader.close()
    if len(set(names)) != len(names):
        raise InvalidArgument(f"{src}: duplicate column names in {names}")
    return names


@dataclass
class _Spooled:
    cols: list[_Col]
    rows: int
    skipped: int


class _Fallback(Exception):
    """The fast pass met something (a bad cell, a bad row, an overflow...) that only the
    exact pass reports (or coerces) properly."""


def _columns(
    src: Path,
    names: list[str],
    over: dict[str, tuple[np.dtype, tuple[int, ...]]],
    widened: set[str],
    columns: list[str] | None,
) -> list[_Col]:
    chosen = names if columns is None else list(columns)
    for c in chosen:
        if c not in names:
            raise FieldNotFound(f"no column {c!r} in {src.name} (columns: {', '.join(names)})")
    fnames = field_names(chosen)
    unknown = set(over) - set(chosen) - set(fnames) - {"*"}
    if unknown:
        raise FieldNotFound(f"dtype names unknown column(s) {sorted(unknown)} (columns: {chosen})")
    cols = []
    for c, f in zip(chosen, fnames, strict=True):
        given = over.get(c) or over.get(f) or over.get("*")
        if given is not None and given[1]:
            raise InvalidArgument(f"column {c!r}: CSV cells are scalars, not subarrays {given[1]}")
        dt = np.dtype("<f8") if c in widened else (given[0] if given else None)
        if dt is not None and dt.kind == "c":
            raise DTypeError(f"column {c!r}: CSV cells cannot be parsed as complex")
        cols.append(_Col(c, f, dt, inferred=given is None))
    return cols


def _schema_for(cols: list[_Col]) -> pa.Schema:
    for col in cols:
        if col.dtype is None:  # no data rows
            col.dtype = np.dtype("<f8")
    return pa.schema([(c.column, _spool_type(_final(c))) for c in cols])


def _spool_exact(
    src: Path,
    spool: Path,
    opts: CsvOptions,
    names: list[str],
    cols: list[_Col],
    errors: str,
    workers: int,
) -> _Spooled:
    """Every cell as text, parsed by arraystore (exact positions; coerce)."""
    invalid: list[Any] = []

    def handler(row: Any) -> str:
        invalid.append(row)
        return "skip" if errors == "coerce" else "error"

    null_set = pa.array(list(opts.null_values), pa.string())
    chosen = [c.column for c in cols]
    try:  # the reader parses its first block right away
        reader = _open(src, opts, {c: pa.string() for c in names}, chosen, handler)
    except pa.ArrowInvalid as exc:
        raise _parse_error(exc, invalid, src, opts) from None
    writer: Any = None
    schema: Any = None
    rows = 0
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="arraystore-csv")
    try:
        with pa.OSFile(str(spool), "wb") as sink:
            try:
                for batch in prefetch(reader):

                    def one(col: _Col, batch: Any = batch) -> pa.Array:
                        raw = batch.column(col.column)
                        if col.dtype is None:
                            col.dtype = _infer(raw, pc.is_in(raw, value_set=null_set))
                        arr, n_null = _convert(raw, col, null_set, errors)
                        col.nulls += n_null
                        return arr

                    try:  # columns convert in parallel (Arrow and numpy release the GIL)
                        arrays = list(pool.map(one, cols))
                    except _Bad as bad:
                        raise _located(bad, rows, src, opts) from None
                    if writer is None:
                        schema = pa.schema(
                            [(c.column, a.type) for c, a in zip(cols, arrays, strict=True)]
                        )
                        writer = pa.ipc.new_stream(sink, schema)
                    writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
                    rows += batch.num_rows
            except pa.ArrowInvalid as exc:
                raise _parse_error(exc, invalid, src, opts) from None
            if writer is None:
                writer = pa.ipc.new_stream(sink, _schema_for(cols))
            writer.close()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        reader.close()
    return _Spooled(cols, rows, len(invalid) if errors == "coerce" else 0)


def _fast_type(dt: np.dtype) -> pa.DataType:
    """The type pyarrow's CSV converter parses a column as in the fast pass."""
    if dt.kind in "SU":
        return pa.string()
    if dt.kind == "f" or is_bfloat16(dt):
        return pa.float64()  # narrower floats: value-checked here (overflow to inf)
    if dt.kind in "iu":
        return pa.string()  # pyarrow's integer converter reads hex: see _fast_int
    return pa.from_numpy_dtype(dt)  # bool


def _spool_fast(
    src: Path, spool: Path, opts: CsvOptions, names: list[str], cols: list[_Col]
) -> _Spooled:
    """pyarrow parses the types (multi-threaded, ~3x less CPU than the exact pass);
    anything unusual raises :class:`_Fallback`."""
    chosen = [c.column for c in cols]
    null_set = pa.array(list(opts.null_values), pa.string())
    if any(c.dtype is None for c in cols):  # infer from the first block, as the exact pass
        try:
            first = _open(src, opts, {c: pa.string() for c in names}, chosen, lambda r: "skip")
            batch = first.read_next_batch()
            first.close()
        except (StopIteration, pa.ArrowInvalid):
            batch = None
        for col in cols:
            if col.dtype is None and batch is not None:
                raw = batch.column(col.column)
                col.dtype = _infer(raw, pc.is_in(raw, value_set=null_set))
    schema = _schema_for(cols)
    types = {c.column: _fast_type(_final(c)) for c in cols}
    rows = 0
    try:
        reader = _open(src, opts, types, chosen, lambda r: "error", typed=True)
        with pa.OSFile(str(spool), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            for batch in prefetch(reader):
                arrays = [_fast_column(batch.column(c.column), c, null_set) for c in cols]
                writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
                rows += batch.num_rows
        reader.close()
    except pa.ArrowInvalid as exc:
        raise _Fallback(str(exc)) from None
    return _Spooled(cols, rows, 0)


def _fast_int(arr: pa.Array, dt: np.dtype, null_set: pa.Array) -> pa.Array:
    """An integer column read as text -> ``dt``, when every cell is ``-?[0-9]+`` or a null
    value (a cheap check; pyarrow's converter would also read ``0x10`` as 16, which
    ``int()`` and numpy refuse); anything else (``+5``, blanks, hex, overflow): the exact
    pass decides."""
    ok = pc.ascii_is_decimal(pc.utf8_ltrim(arr, "-"))
    if not pc.all(ok).as_py():
        isnull = pc.is_in(arr, value_set=null_set)
        if not pc.all(pc.or_(ok, isnull)).as_py():
            raise _Fallback("not a decimal integer")
        arr = pc.if_else(isnull, pa.nulls(len(arr), arr.type), arr)
    try:
        return pc.cast(arr, pa.from_numpy_dtype(dt))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise _Fallback("integer out of range") from None


def _fast_column(arr: pa.Array, col: _Col, null_set: pa.Array) -> pa.Array:
    dt = col.dtype
    assert dt is not None
    if dt.kind in "iu":
        arr = _fast_int(arr, dt, null_set)
    col.nulls += arr.null_count
    if dt.kind in "SU":
        if arr.null_count:  # text has no nulls (a quoted empty cell, say): exact pass
            raise _Fallback(col.column)
        lengths = pc.utf8_length(arr)
        longest = int(pc.max(lengths).as_py() or 0) if len(arr) else 0
        if col.inferred:
            col.maxlen = max(col.maxlen, longest)
        elif longest > dt.itemsize // (4 if dt.kind == "U" else 1) or dt.kind == "S":
            raise _Fallback(col.column)  # too long, or bytes: the exact pass checks them
        return arr
    if dt.kind == "f" or is_bfloat16(dt):
        parsed = to_numpy(pc.fill_null(arr, 0.0))
        with np.errstate(invalid="ignore"):  # inf, or an integer maybe not exact: the
            if (~(np.abs(parsed) < 2.0**53) & ~np.isnan(parsed)).any():  # exact pass checks
                raise _Fallback(col.column)
        if dt.itemsize == 8:
            return arr
        valid = None if not arr.null_count else to_numpy(arr.is_valid())
        vals, over = checked_astype(parsed, dt)
        if over is not None:
            raise _Fallback(col.column)
        if is_bfloat16(dt):
            vals = vals.astype(np.float32)
        return pa.array(vals, mask=None if valid is None else ~valid)
    return arr


def _final(col: _Col) -> np.dtype:
    assert col.dtype is not None
    if col.inferred and col.dtype.kind == "U":
        return np.dtype(f"<U{max(1, col.maxlen)}")
    return col.dtype


def _read_spool(spool: Path) -> Iterator[pa.RecordBatch]:
    with pa.OSFile(str(spool)) as f:
        yield from pa.ipc.open_stream(f)


def import_csv(
    store: StoreRoot,
    name: str,
    src: Path,
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
) -> None:
    """Import a CSV file (the caller holds the array's lock); see the module docstring."""
    opts = CsvOptions.build(src, options)
    over = parse_overrides(dtype)
    names = _header(src, opts)
    widened, fast = set[str](), True
    while True:
        spool = store.layout.spool_path(name)  # (a local scratch file for an object store)
        try:
            cols = _columns(src, names, over, widened, columns)
            try:
                if fast:
                    spooled = _spool_fast(src, spool, opts, names, cols)
                else:
                    spooled = _spool_exact(src, spool, opts, names, cols, errors, workers)
            except _Fallback:
                fast = False
                continue
            except _Widen as w:
                widened.add(w.column)
                fast = True
                continue
            kill_point("spool")
            plans = []
            for col in spooled.cols:
                dt = _final(col)
                needs = not (dt.kind == "f" or is_bfloat16(dt))
                mask = f"{col.field}{MASK_SUFFIX}" if null_mask and needs and col.nulls else None
                plan = ColPlan(col.column, col.field, dt, (), _spool_type(dt), mask)
                plan.coerced = col.coerced
                plans.append(plan)
            report = {
                "format": "csv",
                "source": src.name,
                "errors": errors,
                "skipped_rows": spooled.skipped,
                "widened": sorted(widened),
            }
            write_batches(
                store,
                name,
                Layout(plans),
                spooled.rows,
                _read_spool(spool),
                errors="raise",
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
            )
            kill_point("committed")
            return
        finally:
            spool.unlink(missing_ok=True)


__all__ = ["CsvOptions", "import_csv"]
