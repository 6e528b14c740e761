"""CSV import: pyarrow's streaming reader, our own types, errors with line numbers.

Bounded approach (the row count of a CSV file is unknown until its end): one streaming
pass parses the file block by block (``pyarrow.csv.open_csv``, ``block_size`` 8 MiB by
default) and appends the converted, typed columns to a temporary Arrow IPC stream (the
*spool*: a hidden ``.NAME.tmp-*.spool.arrow`` file in the store, about the binary size
of the data); then the spool is imported like an Arrow IPC file (``io_arrow``) into an
array created with the now known row count, and removed. Memory: a block or two of
text plus ``workers + 1`` chunk rows; disk: the spool, transiently.

Types. Every cell is read as text and converted by arraystore, so a bad cell is found
with its exact position:

* ``dtype=`` fixes a column's type (``"price:f4,qty:i2,name:U12"``; one plain dtype for
  all columns): the text is parsed as int64/uint64/float64/bool and value-checked into
  that dtype (``300`` as ``i1`` is an error, ``1e39`` as ``f4`` overflows: an error).
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
:class:`~arraystore.core.errors.InvalidArgument` naming the line (1-based, as an editor
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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.dtypes import is_bfloat16, scalar_str
from ..core.errors import DTypeError, FieldNotFound, InvalidArgument
from .io_arrow import Layout, write_batches
from .io_arrow_convert import (
    MASK_SUFFIX,
    MAX_SHOWN,
    ColPlan,
    checked_astype,
    field_names,
    parse_overrides,
    to_numpy,
)
from .io_common import MissingDependency, prefetch

try:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise MissingDependency(
        "pyarrow is needed for CSV files: pip install 'arraystore[arrow]'"
    ) from _exc

if TYPE_CHECKING:
    from ..store import Store

BLOCK_SIZE = 8 << 20
NULL_VALUES = [
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "n/a",
    "nan",
    "null",
]
_OPTIONS = {
    "delimiter",
    "header",
    "skip_rows",
    "block_size",
    "null_values",
    "quote_char",
    "newlines_in_values",
}


@dataclass
class CsvOptions:
    delimiter: str = ","
    header: bool = True
    skip_rows: int = 0
    block_size: int = BLOCK_SIZE
    null_values: tuple[str, ...] = tuple(NULL_VALUES)
    quote_char: str | bool = '"'
    newlines_in_values: bool = False

    @classmethod
    def build(cls, src: Path, options: Mapping[str, Any]) -> CsvOptions:
        unknown = set(options) - _OPTIONS
        if unknown:
            raise InvalidArgument(
                f"unknown CSV options {sorted(unknown)} (known: {', '.join(sorted(_OPTIONS))})"
            )
        opts = cls(delimiter="\t" if ".tsv" in [s.lower() for s in src.suffixes] else ",")
        for k, v in options.items():
            if v is not None:
                setattr(opts, k, tuple(v) if k == "null_values" else v)
        if not isinstance(opts.delimiter, str) or len(opts.delimiter) != 1:
            raise InvalidArgument(f"delimiter must be one character, got {opts.delimiter!r}")
        if int(opts.block_size) < 1024 or int(opts.skip_rows) < 0:
            raise InvalidArgument("block_size must be >= 1024 and skip_rows >= 0")
        return opts


class _Widen(Exception):
    """An inferred integer column holds a non-integer number: read again as float64."""

    def __init__(self, column: str) -> None:
        super().__init__(column)
        self.column = column


@dataclass
class _Col:
    column: str
    field: str
    dtype: np.dtype | None  # None: infer from the first block
    inferred: bool = False
    nulls: int = 0
    coerced: int = 0
    maxlen: int = 0


def _parse_type(dt: np.dtype) -> pa.DataType:
    """The Arrow type text is parsed as before the value-checked cast to ``dt``."""
    if dt.kind == "b":
        return pa.bool_()
    if dt.kind == "i":
        return pa.int64()
    if dt.kind == "u":
        return pa.uint64()
    if dt.kind == "f" or is_bfloat16(dt):
        return pa.float64()
    raise DTypeError(f"CSV cells cannot be parsed as {dt} (complex)")


def _spool_type(dt: np.dtype) -> pa.DataType:
    if is_bfloat16(dt):
        return pa.float32()
    if dt.kind == "U":
        return pa.string()
    if dt.kind == "S":
        return pa.binary()
    return pa.from_numpy_dtype(dt)


def _bad_positions(arr: pa.Array, t: pa.DataType) -> list[int]:
    """Offsets of the values of ``arr`` that do not cast to ``t`` (bisection: a few casts
    of shrinking halves per bad value)."""
    try:
        pc.cast(arr, t)
        return []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if len(arr) == 1:
            return [0]
    mid = len(arr) // 2
    return _bad_positions(arr.slice(0, mid), t) + [
        mid + i for i in _bad_positions(arr.slice(mid), t)
    ]


def _cast_text(arr: pa.Array, t: pa.DataType) -> tuple[pa.Array, np.ndarray | None]:
    """Parse text as ``t``: (parsed, with nulls where bad; bad-row mask or None)."""
    try:
        return pc.cast(arr, t), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    arr = pc.utf8_trim_whitespace(arr)
    try:
        return pc.cast(arr, t), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    bad = np.zeros(len(arr), bool)
    bad[_bad_positions(arr, t)] = True
    cleaned = pc.if_else(pa.array(bad), pa.nulls(len(arr), arr.type), arr)
    return pc.cast(cleaned, t), bad


def _infer(arr: pa.Array, nulls: pa.Array) -> np.dtype:
    values = arr.filter(pc.invert(nulls))
    if not len(values):
        return np.dtype("<f8")
    values = pc.utf8_trim_whitespace(values)
    for t, dt in (
        (pa.int64(), "<i8"),
        (pa.uint64(), "<u8"),
        (pa.float64(), "<f8"),
        (pa.bool_(), "?"),
    ):
        try:
            pc.cast(values, t)
            return np.dtype(dt)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return np.dtype("<U1")


class _Bad(Exception):
    def __init__(self, col: _Col, rows: np.ndarray, values: list[Any], hint: str) -> None:
        super().__init__(col.column)
        self.col, self.rows, self.values, self.hint = col, rows, values, hint


def _convert(raw: pa.Array, col: _Col, null_set: pa.Array, errors: str) -> tuple[pa.Array, int]:
    """One text column of a block -> a typed Arrow column for the spool (and its nulls)."""
    if raw.type != pa.string():
        raw = raw.cast(pa.string())
    dt = col.dtype
    assert dt is not None
    if dt.kind in "SU":
        lengths = pc.utf8_length(raw) if dt.kind == "U" else pc.binary_length(raw)
        longest = int(pc.max(lengths).as_py() or 0) if len(raw) else 0
        if col.inferred:
            col.maxlen = max(col.maxlen, longest)
            return raw, 0
        width = dt.itemsize // (4 if dt.kind == "U" else 1)
        out = raw if dt.kind == "U" else raw.cast(pa.binary())
        if longest <= width:
            return out, 0
        too_long = to_numpy(pc.greater(lengths, width))
        _handle_bad(raw, col, too_long, errors, f"longer than {scalar_str(dt)}")
        cleared = pc.if_else(pa.array(too_long), pa.nulls(len(out), out.type), out)
        return cleared, int(too_long.sum())
    isnull = pc.is_in(raw, value_set=null_set)
    has_null = bool(pc.any(isnull).as_py()) if len(raw) else False
    text = pc.if_else(isnull, pa.nulls(len(raw), pa.string()), raw) if has_null else raw
    t = _parse_type(dt)
    parsed, bad = _cast_text(text, t)
    if bad is not None and col.inferred and dt.kind in "iu":
        sub = text.filter(pa.array(bad))
        with_float = _cast_text(sub, pa.float64())[1]
        if with_float is None:
            raise _Widen(col.column)
    nulls_np = None
    if parsed.null_count:
        nulls_np = to_numpy(parsed.is_null())
        parsed = pc.fill_null(parsed, pa.scalar(False if t == pa.bool_() else 0, t))
    values, over = checked_astype(to_numpy(parsed), dt)
    if over is not None:
        bad = over if bad is None else np.asarray(bad | over)
    if bad is not None:
        _handle_bad(raw, col, bad, errors, "")
    invalid = nulls_np
    if bad is not None:
        invalid = bad if invalid is None else invalid | bad
    n_null = 0 if invalid is None else int(invalid.sum())
    if is_bfloat16(dt):
        values = values.astype(np.float32)
    return pa.array(values, mask=invalid), n_null


def _handle_bad(raw: pa.Array, col: _Col, bad: np.ndarray, errors: str, why: str) -> None:
    idx = np.flatnonzero(bad)
    if not len(idx):
        return
    if errors == "coerce":
        col.coerced += len(idx)
        return
    hint = why
    if col.inferred:
        hint = (
            f"type inferred from the first block; pass dtype='{col.field}:U<n>' (or another "
            "dtype) to choose it"
        )
    raise _Bad(col, idx, [raw[int(i)].as_py() for i in idx[:MAX_SHOWN]], hint)


class _Lines:
    """Maps data rows (0-based) to 1-based line numbers by reading the file again (only
    on the error path): skipped lines, the header and empty lines are not rows."""

    def __init__(self, src: Path, opts: CsvOptions) -> None:
        self.src, self.opts = src, opts

    def find(self, rows: list[int]) -> dict[int, int]:
        want = sorted(set(rows))
        out: dict[int, int] = {}
        if not want or self.opts.newlines_in_values:
            return out
        lineno, data_row, skip, header = 0, -1, int(self.opts.skip_rows), self.opts.header
        k = 0
        with pa.input_stream(str(self.src)) as f:
            rest = b""
            while k < len(want):
                block = f.read(1 << 24)
                if not block:
                    lines, rest = ([rest] if rest else []), b""
                else:
                    lines = (rest + block).split(b"\n")
                    rest = lines.pop()
                for line in lines:
                    lineno += 1
                    if skip:
                        skip -= 1
                        continue
                    if not line.strip(b"\r"):
                        continue
                    if header:
                        header = False
                        continue
                    data_row += 1
                    while k < len(want) and want[k] == data_row:
                        out[data_row] = lineno
                        k += 1
                    if k == len(want):
                        break
                if not block:
                    break
        return out

    def describe(self, rows: list[int]) -> Callable[[int], str]:
        found = self.find(rows)

        def where(r: int) -> str:
            return f"line {found[r]}" if r in found else f"row {r}"

        return where


def _open(
    src: Path,
    opts: CsvOptions,
    column_types: dict[str, Any] | None,
    include: list[str] | None,
    handler: Any = None,
) -> Any:
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
        quoted_strings_can_be_null=False,
        null_values=[],
    )
    return pacsv.open_csv(str(src), read_options=read, parse_options=parse, convert_options=convert)


def _header(src: Path, opts: CsvOptions) -> list[str]:
    try:  # only the names are wanted here: bad rows are reported by the real pass
        reader = _open(src, opts, None, None, lambda row: "skip")
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc):
            raise InvalidArgument(f"{src} is empty (no header line)") from None
        raise InvalidArgument(f"{src}: {exc}") from None
    names = list(reader.schema.names)
    reader.close()
    if len(set(names)) != len(names):
        raise InvalidArgument(f"{src}: duplicate column names in {names}")
    return names


@dataclass
class _Spooled:
    cols: list[_Col]
    rows: int
    skipped: int


def _spool(
    src: Path,
    spool: Path,
    opts: CsvOptions,
    over: dict[str, tuple[np.dtype, tuple[int, ...]]],
    widened: set[str],
    columns: list[str] | None,
    errors: str,
) -> _Spooled:
    names = _header(src, opts)
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
    invalid: list[Any] = []

    def handler(row: Any) -> str:
        invalid.append(row)
        return "skip" if errors == "coerce" else "error"

    null_set = pa.array(list(opts.null_values), pa.string())
    try:  # the reader parses its first block right away
        reader = _open(src, opts, {c: pa.string() for c in names}, chosen, handler)
    except pa.ArrowInvalid as exc:
        raise _parse_error(exc, invalid, src, opts) from None
    writer: Any = None
    schema: Any = None
    rows = 0
    try:
        with pa.OSFile(str(spool), "wb") as sink:
            try:
                for batch in prefetch(reader):
                    arrays = []
                    for col in cols:
                        raw = batch.column(col.column)
                        if col.dtype is None:
                            col.dtype = _infer(raw, pc.is_in(raw, value_set=null_set))
                        try:
                            arr, n_null = _convert(raw, col, null_set, errors)
                        except _Bad as bad:
                            raise _located(bad, rows, src, opts) from None
                        col.nulls += n_null
                        arrays.append(arr)
                    if writer is None:
                        schema = pa.schema(
                            [(c.column, a.type) for c, a in zip(cols, arrays, strict=True)]
                        )
                        writer = pa.ipc.new_stream(sink, schema)
                    writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
                    rows += batch.num_rows
            except pa.ArrowInvalid as exc:
                raise _parse_error(exc, invalid, src, opts) from None
            if writer is None:  # no data rows
                for col in cols:
                    if col.dtype is None:
                        col.dtype = np.dtype("<f8")
                schema = pa.schema([(c.column, _spool_type(_final(c))) for c in cols])
                writer = pa.ipc.new_stream(sink, schema)
            writer.close()
    finally:
        reader.close()
    return _Spooled(cols, rows, len(invalid) if errors == "coerce" else 0)


def _final(col: _Col) -> np.dtype:
    assert col.dtype is not None
    if col.inferred and col.dtype.kind == "U":
        return np.dtype(f"<U{max(1, col.maxlen)}")
    return col.dtype


def _located(bad: _Bad, row0: int, src: Path, opts: CsvOptions) -> InvalidArgument:
    rows = [row0 + int(r) for r in bad.rows]
    where = _Lines(src, opts).describe(rows[:MAX_SHOWN])
    spec = scalar_str(bad.col.dtype) if bad.col.dtype is not None else "?"
    verb = f"cannot parse {bad.values[0]!r} as {spec}"
    msg = f"{where(rows[0])}: {verb} in column {bad.col.column!r}"
    if len(rows) > 1:
        more = ", ".join(
            f"{where(r)} ({v!r})" for r, v in zip(rows[1:], bad.values[1:], strict=False)
        )
        tail = ", ..." if len(rows) > MAX_SHOWN else ""
        msg += f" (and {len(rows) - 1} more in the same block: {more}{tail})"
    if bad.hint:
        msg += f"; {bad.hint}"
    return InvalidArgument(msg + "; errors='coerce' (--errors coerce) stores them as missing")


def _parse_error(
    exc: Exception, invalid: list[Any], src: Path, opts: CsvOptions
) -> InvalidArgument:
    text = str(exc)
    if invalid:
        row = invalid[-1]
        line = getattr(row, "number", None)
        where = f"line {line}" if line is not None else _find_text(src, row.text)
        return InvalidArgument(
            f"{where}: expected {row.expected_columns} cells, got {row.actual_columns}: "
            f"{row.text[:80]!r}; errors='coerce' (--errors coerce) skips such rows"
        )
    return InvalidArgument(f"{src.name}: cannot read CSV: {text}")


def _find_text(src: Path, text: str) -> str:
    target = text.encode()
    with pa.input_stream(str(src)) as f:
        lineno, rest = 0, b""
        while True:
            block = f.read(1 << 24)
            lines = (rest + block).split(b"\n")
            rest = lines.pop() if block else b""
            for line in lines:
                lineno += 1
                if line.rstrip(b"\r") == target:
                    return f"line {lineno}"
            if not block:
                return "a row"


def _read_spool(spool: Path) -> Iterator[pa.RecordBatch]:
    with pa.OSFile(str(spool)) as f:
        yield from pa.ipc.open_stream(f)


def import_csv(
    store: Store,
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
) -> None:
    """Import a CSV file (the caller holds the array's lock); see the module docstring."""
    opts = CsvOptions.build(src, options)
    over = parse_overrides(dtype)
    widened: set[str] = set()
    while True:
        tmp = store._temp_path(name)
        spool = tmp.with_name(tmp.name + ".spool.arrow")
        try:
            try:
                spooled = _spool(src, spool, opts, over, widened, columns, errors)
            except _Widen as w:
                widened.add(w.column)
                continue
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
            )
            return
        finally:
            spool.unlink(missing_ok=True)


__all__ = ["CsvOptions", "import_csv"]
