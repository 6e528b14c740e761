"""CSV cells -> typed Arrow columns, exactly: every cell is read as text and parsed by
arraystore, so a bad cell is found with its position; line numbers for error messages.

The *exact* pass of :mod:`.io_csv` (the fast pass lets pyarrow parse the types and falls
back to this one when anything is off). See :mod:`.io_csv` for the rules.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from arraystore.core.dtypes import is_bfloat16, scalar_str
from arraystore.errors import DTypeError, InvalidArgument
from arraystore.ops.io.arrow_convert import MAX_SHOWN, checked_astype, to_numpy
from arraystore.ops.io.common import require

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc
else:
    pa = require("pyarrow", "CSV files")
    pc = require("pyarrow.compute", "CSV files")

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


# an integer cell as int() and numpy read it: decimal ASCII digits, an optional sign,
# blanks around. pyarrow's integer parser also reads hex (``0x10`` -> 16) and refuses
# ``+5``; cells are checked against this first, and a ``+`` is dropped before it parses.
INT_CELL = r"^\s*[+-]?[0-9]+\s*$"


def _decimal_ints(arr: pa.Array) -> tuple[pa.Array, np.ndarray | None]:
    """Text -> (text pyarrow's integer parser reads as ``int()`` would, with nulls where a
    cell is not a decimal integer; the mask of those cells or None)."""
    ok = pc.fill_null(pc.match_substring_regex(arr, INT_CELL), True)
    bad = None
    if not pc.all(ok).as_py():
        bad = to_numpy(pc.invert(ok))
        arr = pc.if_else(ok, arr, pa.nulls(len(arr), arr.type))
    if pc.any(pc.match_substring(arr, "+")).as_py():
        arr = pc.replace_substring_regex(arr, r"^(\s*)\+", r"\1")
    if pc.any(pc.match_substring(arr, "-0")).as_py():  # -0 is 0, also as uint64
        arr = pc.replace_substring_regex(arr, r"^\s*-0+\s*$", "0")
    return arr, bad


def _cast_text(arr: pa.Array, t: pa.DataType) -> tuple[pa.Array, np.ndarray | None]:
    """Parse text as ``t``: (parsed, with nulls where bad; bad-row mask or None).
    Integers: decimal only (see :data:`INT_CELL`)."""
    if pa.types.is_integer(t):
        text, not_int = _decimal_ints(arr)
        parsed, bad = _cast_any(text, t)
        if not_int is None:
            return parsed, bad
        return parsed, not_int if bad is None else np.asarray(bad | not_int)
    return _cast_any(arr, t)


def _cast_any(arr: pa.Array, t: pa.DataType) -> tuple[pa.Array, np.ndarray | None]:
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


UNFAITHFUL = "beyond its range, or an integer it cannot store exactly"
_INT_LITERAL = re.compile(r"\s*([+-]?)([0-9]+)\s*")
_DIGIT_LITERAL = re.compile(r"\s*[+-]?\.?[0-9]")  # a number written with digits


def _faithful(cell: str, value: float) -> bool:
    """Whether the float64 ``value`` parsed from ``cell`` is the number the cell wrote,
    as far as a float column promises: ``1e999`` or a 400-digit integer overflowing to
    inf is not (the text ``inf`` is); an integer literal must be exact
    (``99999999999999999999999`` is not 1e+23); decimal fractions may round."""
    if math.isnan(value):
        return True
    if math.isinf(value):
        return _DIGIT_LITERAL.match(cell) is None
    m = _INT_LITERAL.fullmatch(cell)
    if m is None:
        return True
    digits = m.group(2).lstrip("0") or "0"
    if len(digits) > 400:  # never for a finite float64; keeps int() linear and in limits
        return False
    return int(value) == int(m.group(1) + digits)


def _unfaithful(text: pa.Array, parsed: pa.Array) -> np.ndarray | None:
    """Rows of a float64 column whose number is not the one written (see
    :func:`_faithful`). Only values of magnitude >= 2**53 (or non-finite) can be, so
    the Python check runs on those rare cells only."""
    vals = to_numpy(pc.fill_null(parsed, 0.0))
    with np.errstate(invalid="ignore"):
        suspect = np.flatnonzero(~(np.abs(vals) < 2.0**53) & ~np.isnan(vals))
    if not len(suspect):
        return None
    bad = np.zeros(len(vals), bool)
    cells = text.take(pa.array(suspect)).to_pylist()
    for i, cell in zip(suspect, cells, strict=True):
        if cell is not None and not _faithful(cell, float(vals[i])):
            bad[i] = True
    return bad if bad.any() else None


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
            if pa.types.is_integer(t):
                text, not_int = _decimal_ints(values)
                if not_int is not None:
                    continue
                pc.cast(text, t)
            else:
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
    why = ""
    if t == pa.float64():
        unfaithful = _unfaithful(text, parsed)
        if unfaithful is not None:
            bad = unfaithful if bad is None else np.asarray(bad | unfaithful)
            why = f"a number {scalar_str(dt)} cannot hold ({UNFAITHFUL})"
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
        _handle_bad(raw, col, bad, errors, why)
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


def _located(bad: _Bad, row0: int, src: Path, opts: CsvOptions) -> InvalidArgument:
    rows = [row0 + int(r) for r in bad.rows]
    where = _Lines(src, opts).describe(rows[:MAX_SHOWN])
    spec = scalar_str(bad.col.dtype) if bad.col.dtype is not None else "?"
    verb = f"cannot parse {_short(bad.values[0])} as {spec}"
    msg = f"{where(rows[0])}: {verb} in column {bad.col.column!r}"
    if len(rows) > 1:
        more = ", ".join(
            f"{where(r)} ({_short(v)})" for r, v in zip(rows[1:], bad.values[1:], strict=False)
        )
        tail = ", ..." if len(rows) > MAX_SHOWN else ""
        msg += f" (and {len(rows) - 1} more in the same block: {more}{tail})"
    if bad.hint:
        msg += f"; {bad.hint}"
    return InvalidArgument(msg + "; errors='coerce' (--errors coerce) stores them as missing")


def _short(value: Any, limit: int = 40) -> str:
    """``repr(value)``, cut to about ``limit`` characters (a cell can be megabytes)."""
    if isinstance(value, str | bytes) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    return repr(value)


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
