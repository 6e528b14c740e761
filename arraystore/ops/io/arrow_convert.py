"""Arrow <-> numpy conversions for :mod:`.io_arrow`: names, the type mapping, the null
policy's sentinels, value-checked casts and bad-value reports (see :mod:`.io_arrow`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from arraystore.core.casting import CastReport, cast_block
from arraystore.core.dtypes import fields_of, is_bfloat16, parse_dtype, scalar_str
from arraystore.errors import DTypeError
from arraystore.ops.io.common import require

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc
else:
    pa = require("pyarrow", "CSV/Parquet/Arrow files")
    pc = require("pyarrow.compute", "CSV/Parquet/Arrow files")

META_KEY = b"arraystore"
MASK_SUFFIX = "__valid"
MAX_SHOWN = 5
_RESERVED = {"zarr.json", "arraystore.json"}


# ------------------------------------------------------------------ names
def field_names(columns: list[str]) -> list[str]:
    """Valid, unique field names for ``columns`` (unchanged where already valid)."""
    out: list[str] = []
    seen: set[str] = set()
    for i, col in enumerate(columns):
        name = re.sub(r"[^A-Za-z0-9_.\-]", "_", col)[:200] or f"f{i}"
        name = name.replace("..", "_.")
        if name[0] in ".-":
            name = "_" + name
        if name in _RESERVED or name.endswith(MASK_SUFFIX):
            name += "_"
        base, k = name, 2
        while name in seen:
            name = f"{base}_{k}"
            k += 1
        seen.add(name)
        out.append(name)
    return out


# ------------------------------------------------------------------ types
def _leaf(t: pa.DataType) -> tuple[pa.DataType, tuple[int, ...]]:
    """(value type, list sizes) of nested fixed-size lists; dictionaries decoded."""
    dims: list[int] = []
    while pa.types.is_fixed_size_list(t):
        dims.append(t.list_size)
        t = t.value_type
    if pa.types.is_dictionary(t):
        t = t.value_type
    return t, tuple(dims)


def natural_dtype(t: pa.DataType, column: str, maxlen: int = 1) -> np.dtype:
    """The numpy dtype an Arrow (leaf) type is stored as (see the module table)."""
    if pa.types.is_boolean(t):
        return np.dtype(bool)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return np.dtype(t.to_pandas_dtype())
    if pa.types.is_string(t) or pa.types.is_large_string(t) or _is_view(t, "string"):
        return np.dtype(f"<U{max(1, maxlen)}")
    if pa.types.is_fixed_size_binary(t):
        return np.dtype(f"S{max(1, t.byte_width)}")
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or _is_view(t, "binary"):
        return np.dtype(f"S{max(1, maxlen)}")
    if pa.types.is_date32(t) or pa.types.is_time32(t):
        return np.dtype("<i4")
    if pa.types.is_temporal(t):
        return np.dtype("<i8")
    if pa.types.is_null(t):
        return np.dtype("<f8")
    hint = " (pass dtype= for it, e.g. f8)" if pa.types.is_decimal(t) else ""
    raise DTypeError(f"column {column!r} has Arrow type {t}, which arraystore cannot store{hint}")


def _is_view(t: pa.DataType, kind: str) -> bool:
    return str(t) == f"{kind}_view"


def _is_text(t: pa.DataType) -> bool:
    return (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or _is_view(t, "string")
        or _is_view(t, "binary")
    )


def _is_unicode(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or _is_view(t, "string")


def sentinel(dt: np.dtype, masked: bool = False) -> Any:
    """The value stored where a value is missing (see the null policy above): NaN for
    floats; with a mask field 0 / False / ""; without one the dtype's min (signed) or
    max (unsigned)."""
    if dt.kind in "fc" or is_bfloat16(dt):
        return np.nan
    if dt.kind in "iu" and not masked:
        return np.iinfo(dt).min if dt.kind == "i" else np.iinfo(dt).max
    if dt.kind in "iu":
        return 0
    if dt.kind == "b":
        return False
    return b"" if dt.kind == "S" else ""


def _needs_mask(dt: np.dtype) -> bool:
    return not (dt.kind in "fc" or is_bfloat16(dt))


def parse_overrides(dtype: Any) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """``dtype=`` -> {column or "*": (base dtype, subshape)}."""
    if dtype is None:
        return {}
    if isinstance(dtype, Mapping):
        out = {}
        for k, v in dtype.items():
            spec = v if isinstance(v, str) else parse_dtype(v).str
            f = fields_of(parse_dtype(f"x:{spec}"))[0]
            out[str(k)] = (f.dtype, f.subshape)
        return out
    dt = parse_dtype(dtype)
    if dt.names is None:
        return {"*": (dt, ())}
    return {f.name: (f.dtype, f.subshape) for f in fields_of(dt)}


# ------------------------------------------------------------------- plans
@dataclass
class ColPlan:
    """How one source column becomes a field (and maybe a ``__valid`` mask field)."""

    column: str
    field: str
    dtype: np.dtype  # stored base dtype
    dims: tuple[int, ...]  # list dims of the column = array tail + subarray shape
    source: pa.DataType
    mask: str | None = None
    nulls: int = 0
    coerced: int = 0
    check: bool = False  # values need a checked conversion (overridden dtype)
    audit: CastReport | None = None  # a cast on write's report (see :func:`convert`)

    def report(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "field": self.field,
            "dtype": scalar_str(self.dtype),
            "arrow_type": str(self.source),
            "nulls": self.nulls,
            "coerced": self.coerced,
            "mask": self.mask,
        }


# ------------------------------------------------------------- conversion
class BadValues(Exception):
    """Rows of one column whose values do not convert (raised with errors="raise")."""

    def __init__(self, column: str, dtype: np.dtype, rows: np.ndarray, values: list[Any]) -> None:
        super().__init__(column)
        self.column = column
        self.dtype = dtype
        self.rows = rows
        self.values = values


def checked_astype(vals: np.ndarray, dt: np.dtype) -> tuple[np.ndarray, np.ndarray | None]:
    """``vals.astype(dt)`` and a mask of values that do not survive (None: all fine).

    Integers must fit, floats into integers must be integral and in range, bool only
    from 0/1, floats must not overflow to inf (rounding is accepted)."""
    src = vals.dtype
    if src == dt:
        return vals, None
    bad: np.ndarray | None = None
    if dt.kind in "iu" and src.kind in "iub":
        info = np.iinfo(dt)
        if vals.size and src.kind != "b":
            lo, hi = int(vals.min()), int(vals.max())
            if lo < info.min or hi > info.max:
                bad = np.zeros(vals.shape, bool)
                if lo < info.min:
                    bad |= vals < info.min
                if hi > info.max:
                    bad |= vals > info.max
    elif dt.kind in "iu" and (src.kind == "f" or is_bfloat16(src)):
        info = np.iinfo(dt)
        v = vals.astype(np.float64) if is_bfloat16(src) else vals
        with np.errstate(invalid="ignore"):
            limit = 2.0 ** (info.bits - (1 if dt.kind == "i" else 0))
            low = -limit if dt.kind == "i" else 0.0
            bad = ~np.isfinite(v) | (v != np.trunc(v)) | (v < low) | (v >= limit)
        if not bad.any():
            bad = None
        else:
            vals = np.where(bad, 0, vals)
    elif dt.kind == "b" and src.kind != "b":
        bad = (vals != 0) & (vals != 1)
        if not bad.any():
            bad = None
    elif (dt.kind == "f" or is_bfloat16(dt)) and (src.kind in "fiub" or is_bfloat16(src)):
        with np.errstate(over="ignore", invalid="ignore"):
            out = vals.astype(dt)
            if src.kind in "iub":
                return out, None
            over = np.isinf(out.astype(np.float32) if is_bfloat16(dt) else out) & np.isfinite(
                vals.astype(np.float64) if is_bfloat16(src) else vals
            )
        return out, (over if over.any() else None)
    elif (dt.kind == "c" and src.kind in "fiuc") or dt.kind in "SU" or src.kind in "SU":
        pass
    else:
        raise DTypeError(f"cannot convert {src} to {dt}")
    with np.errstate(invalid="ignore", over="ignore"):
        return vals.astype(dt), bad


def _flat_numpy(arr: pa.Array, dt: np.dtype) -> tuple[np.ndarray, np.ndarray | None]:
    """A flat, null-free (filled) Arrow array as numpy, before the cast to ``dt``.

    Returns (values, string-length violations for S/U targets)."""
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if pa.types.is_null(t):
        return np.zeros(len(arr), dtype=np.float64), None
    if pa.types.is_decimal(t):
        arr = arr.cast(pa.float64())
    elif pa.types.is_temporal(t):
        arr = arr.cast(pa.int32() if pa.types.is_date32(t) or pa.types.is_time32(t) else pa.int64())
    if dt.kind == "S" and _is_unicode(arr.type):
        arr = arr.cast(pa.binary())  # UTF-8 bytes (numpy would encode str as ASCII)
    if _is_text(arr.type) or pa.types.is_fixed_size_binary(arr.type):
        too_long = None
        if dt.kind in "SU":
            width = dt.itemsize // (4 if dt.kind == "U" else 1)
            lengths = pc.utf8_length(arr) if _is_unicode(arr.type) else pc.binary_length(arr)
            if len(arr) and pc.max(lengths).as_py() > width:
                too_long = to_numpy(pc.greater(lengths, width))
        return arr.to_numpy(zero_copy_only=False), too_long
    return to_numpy(arr), None


def to_numpy(arr: pa.Array) -> np.ndarray:
    """A null-free numeric/bool Arrow array as numpy: a zero-copy (read-only) view of
    its buffer (``Array.to_numpy`` imports pandas on first use, ~0.7 s and ~60 MiB)."""
    t = arr.type
    if arr.null_count == 0 and (pa.types.is_integer(t) or pa.types.is_floating(t)):
        dt = np.dtype(t.to_pandas_dtype())
        buf = arr.buffers()[1]
        if buf is None:
            return np.zeros(len(arr), dt)
        return np.frombuffer(buf, dtype=dt, count=len(arr), offset=arr.offset * dt.itemsize)
    if arr.null_count == 0 and pa.types.is_boolean(t):
        buf = arr.buffers()[1]
        if buf is None:
            return np.zeros(len(arr), bool)
        start = arr.offset
        nbytes = (start + len(arr) + 7) // 8
        bits = np.unpackbits(np.frombuffer(buf, np.uint8, count=nbytes), bitorder="little")
        return bits[start : start + len(arr)].view(bool)
    return arr.to_numpy(zero_copy_only=False)


def _fill(arr: pa.Array) -> pa.Array:
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if pa.types.is_null(t):
        return arr
    if _is_text(t):
        zero = pa.scalar(b"" if not _is_unicode(t) else "", type=t)
    elif pa.types.is_fixed_size_binary(t):
        zero = pa.scalar(b"\0" * t.byte_width, type=t)
    elif pa.types.is_boolean(t):
        zero = pa.scalar(False)
    elif pa.types.is_decimal(t):
        arr = arr.cast(pa.float64())
        zero = pa.scalar(0.0)
    else:
        zero = pa.scalar(0, type=t)
    return pc.fill_null(arr, zero)


def convert(
    arr: pa.Array,
    plan: ColPlan,
    errors: str,
    policy: Mapping[str, Any] | None = None,
    rows: tuple[int, int] = (0, 0),
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """One column of a record batch -> (values (n, *dims), row validity or None, bad rows).

    ``bad`` holds the row offsets whose value could not be converted (with
    ``errors="raise"`` the caller reports them; with ``"coerce"`` they are already
    invalid). Nulls and bad values hold :func:`sentinel`.

    ``policy`` (``casting``, ``rtol``, ``nan_to``): a numeric column given another numeric
    dtype is cast with :func:`cast_block` under that policy instead, its report merged
    into ``plan.audit`` (violations are left to the caller, after every batch); ``rows``:
    (first row of the batch, rows of the file), for the report's indices."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    valid = None
    if arr.null_count or pa.types.is_null(arr.type):
        valid = to_numpy(arr.is_valid())
    leaf = arr
    sizes: list[int] = []
    while pa.types.is_fixed_size_list(leaf.type):
        k = leaf.type.list_size
        sizes.append(k)
        leaf = leaf.values.slice(leaf.offset * k, len(leaf) * k)
    inner_valid = None
    if sizes and leaf.null_count:
        inner_valid = to_numpy(leaf.is_valid())
    filled = _fill(leaf) if (leaf.null_count or pa.types.is_null(leaf.type)) else leaf
    dt = plan.dtype
    raw, too_long = _flat_numpy(filled, dt)
    if dt.kind == "c":
        part = np.dtype(f"<f{dt.itemsize // 2}")
        floats, bad_el = checked_astype(raw, part)
        values = np.ascontiguousarray(floats).view(dt).reshape(-1)
        if bad_el is not None:
            bad_el = np.asarray(bad_el.reshape(-1, 2).any(axis=1))
        if inner_valid is not None:
            inner_valid = np.asarray(inner_valid.reshape(-1, 2).all(axis=1))
    elif dt.kind in "SU":
        values = raw.astype(dt) if too_long is None else np.where(too_long, "", raw).astype(dt)
        bad_el = too_long
    elif policy is not None and plan.check and _castable(raw.dtype) and _castable(dt):
        values, bad_el = _policy_cast(raw.reshape(n, *plan.dims), plan, policy, rows), None
    else:
        values, bad_el = checked_astype(raw, dt)
    shape = (n, *plan.dims)
    values = values.reshape(shape)
    bad_rows: np.ndarray | None = None
    if bad_el is not None:
        per_row = bad_el.reshape(n, -1).any(axis=1) if plan.dims else bad_el
        bad_rows = np.asarray(per_row & valid if valid is not None else per_row)
        if not bad_rows.any():
            bad_rows = None
    if bad_rows is not None:
        if errors == "raise":
            idx = np.flatnonzero(bad_rows)
            shown = [_show(arr, int(i)) for i in idx[:MAX_SHOWN]]
            raise BadValues(plan.column, dt, idx, shown)
        valid = np.asarray(~bad_rows if valid is None else valid & ~bad_rows)
        plan.coerced += int(bad_rows.sum())
    if valid is not None or inner_valid is not None:
        if not values.flags.writeable:
            values = values.copy()
        if inner_valid is not None:
            values.reshape(-1)[~inner_valid] = sentinel(dt, False)
        if valid is not None:
            values[~valid] = sentinel(dt, plan.mask is not None)
            plan.nulls += int(n - valid.sum())
    return values, valid, bad_rows


def _castable(dt: np.dtype) -> bool:
    return dt.kind in "biuf" or is_bfloat16(dt)


def _policy_cast(
    block: np.ndarray, plan: ColPlan, policy: Mapping[str, Any], rows: tuple[int, int]
) -> np.ndarray:
    """``block`` (n, *dims) cast into ``plan.dtype`` under ``policy``; the report merged
    into ``plan.audit``. Null slots hold 0 here (every dtype holds it)."""
    start, total = rows
    values, report = cast_block(
        block,
        plan.dtype,
        policy["casting"],
        rtol=policy["rtol"],
        nan_to=policy["nan_to"],
        region=(slice(start, start + len(block)),),
        shape=(total,),
        raise_on_violation=False,
    )
    plan.audit = report if plan.audit is None else plan.audit.merge(report)
    return values.reshape(-1)


def _show(arr: pa.Array, i: int) -> Any:
    v = arr[i].as_py()
    return v if not isinstance(v, list) or len(v) <= 4 else [*v[:4], "..."]


def bad_values_message(exc: BadValues, where: Callable[[int], str]) -> str:
    spec = scalar_str(exc.dtype)
    first = int(exc.rows[0])
    msg = f"{where(first)}: cannot convert {exc.values[0]!r} to {spec} in column {exc.column!r}"
    if len(exc.rows) > 1:
        more = ", ".join(
            f"{where(int(r))} ({v!r})" for r, v in zip(exc.rows[1:], exc.values[1:], strict=False)
        )
        msg += f" (and {len(exc.rows) - 1} more in the same block: {more}"
        msg += ", ...)" if len(exc.rows) > MAX_SHOWN else ")"
    return msg + "; pass errors='coerce' (--errors coerce) to store them as missing values"
