"""Dtype specs: parse, validate, normalise and describe.

Accepted specs (all normalised to little-endian, packed numpy dtypes):

* numpy strings and names: ``f4``, ``float32``, ``<i8``, ``bool``, ``u1``, ``c16``, ``S10``;
* ``bfloat16`` / ``bf16`` through the optional ``ml_dtypes`` package;
* CLI structured specs ``id:i8,price:f8,vec:3f4`` (``vec:(2,3)f4`` for an N-d subarray);
* JSON lists as numpy accepts them: ``[["id", "<i8"], ["vec", "<f4", [3]]]``;
* ``numpy.dtype`` objects and scalar types.

Refused with :class:`~arraystore.errors.DTypeError`: object dtypes, unsized strings
(``S``, ``U``, ``V``), datetimes, nested structured fields and bad field names.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from arraystore.errors import DTypeError, FieldNotFound, InvalidName

NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_PLAIN_KINDS = {"b": "bool", "i": "int", "u": "uint", "f": "float", "c": "complex"}
_BF16_NAMES = {"bfloat16", "bf16"}


@dataclass(frozen=True)
class Field:
    """One field of a structured dtype: its name, base dtype and subarray shape."""

    name: str
    dtype: np.dtype  # base (scalar) dtype
    subshape: tuple[int, ...] = ()

    @property
    def itemsize(self) -> int:
        return int(self.dtype.itemsize * int(np.prod(self.subshape, dtype=np.int64)))


def bfloat16() -> np.dtype:
    """The bfloat16 dtype from ml_dtypes (optional extra ``arraystore[bfloat16]``)."""
    try:
        import ml_dtypes
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DTypeError(
            "bfloat16 needs the optional package ml_dtypes: pip install 'arraystore[bfloat16]'"
        ) from exc
    return np.dtype(ml_dtypes.bfloat16)


def is_bfloat16(dtype: np.dtype) -> bool:
    return dtype.name == "bfloat16"


def check_name(name: str, what: str = "name") -> str:
    """Validate an array or field name: ``[A-Za-z0-9_.-]``, not hidden, no ``..``."""
    if not isinstance(name, str) or not name:
        raise_name(f"{what} must be a non-empty string, got {name!r}")
    if len(name) > 255:
        raise_name(f"{what} {name[:40]!r}... is longer than 255 characters")
    if ".." in name or "/" in name or "\\" in name:
        raise_name(f"{what} {name!r} must not contain '/', '\\' or '..'")
    if not NAME_RE.fullmatch(name):  # (not match: its "$" accepts a trailing newline)
        raise_name(
            f"{what} {name!r} may only use letters, digits, '_', '.', '-' and must not "
            "start with '.' or '-'"
        )
    if name in {"zarr.json", "arraystore.json"}:
        # an array's folder sits next to the store's zarr.json, a structured zarr array's
        # field folders next to the group's zarr.json and arraystore.json ('c', zarr's
        # chunk-key prefix, is only used inside an array's folder: no clash)
        raise_name(f"{what} {name!r} is reserved: it is the name of a metadata file")
    return name


#: the longest array name every command can use (create, cast, mv, rm, map, import): the
#: store derives longer hidden names from it (``storage.layout.DERIVED_NAMES``, which
#: checks this bound) and a file name has at most 255 bytes
MAX_ARRAY_NAME = 221


def check_array_name(name: str) -> str:
    """:func:`check_name` for an array: also short enough for every name derived from it
    (``storage.layout.DERIVED_NAMES``), so that a name accepted here works for every command."""
    check_name(name, "array name")
    if len(name.encode()) > MAX_ARRAY_NAME:
        raise_name(
            f"array name {name[:40]!r}... is {len(name)} characters long; at most "
            f"{MAX_ARRAY_NAME} are allowed (the store derives longer hidden names from it)"
        )
    return name


def raise_name(message: str) -> None:
    raise InvalidName(message)


def split_top(spec: str) -> list[str]:
    """Split on commas outside parentheses/brackets."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in spec:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def _plain(spec: str) -> np.dtype:
    text = spec.strip()
    if text.lower() in _BF16_NAMES:
        return bfloat16()
    if not text:
        raise DTypeError("empty dtype spec")
    if text[:1] == "a" and text[1:].isdigit():
        text = "S" + text[1:]  # numpy's deprecated alias of S
    try:
        return np.dtype(text)
    except (TypeError, ValueError, SyntaxError) as exc:
        raise DTypeError(f"unknown dtype {spec!r}") from exc


def _parse_field(item: str) -> tuple[Any, ...]:
    name, sep, typ = item.partition(":")
    name = name.strip()
    if not sep or not typ.strip():
        raise DTypeError(f"field spec {item!r} must look like NAME:DTYPE (e.g. price:f8)")
    check_name(name, "field name")
    typ = typ.strip()
    m = re.match(r"^(\(\s*[\d\s,]*\)|\d+)\s*(.+)$", typ, re.ASCII)
    if m:
        try:
            sub = tuple(int(x) for x in m.group(1).strip("()").split(",") if x.strip())
        except ValueError as exc:  # pragma: no cover - regex guarantees digits
            raise DTypeError(f"bad subarray shape in {item!r}") from exc
        base = _plain(m.group(2))
        return (name, base, sub)
    return (name, _plain(typ))


def parse_dtype(spec: Any) -> np.dtype:
    """Parse any accepted spec into a validated, native little-endian numpy dtype.

    Parameters
    ----------
    spec : str, list, numpy.dtype or type
        A numpy name (``"f4"``, ``"float32"``, ``"S10"``, ``"bfloat16"``), a structured
        spec (``"id:i8,price:f8,vec:3f4"``), a JSON list (``[["id", "<i8"], ["vec",
        "<f4", [3]]]``, as text or a list), a numpy dtype or a scalar type.

    Returns
    -------
    numpy.dtype
        Little-endian and packed; :class:`DTypeError` for a spec that is refused
        (object, unsized string, datetime, nested structured dtypes, bad field names).
    """
    if isinstance(spec, np.dtype):
        dt = spec
    elif isinstance(spec, str):
        text = spec.strip()
        if text.startswith("["):
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DTypeError(f"dtype spec {spec!r} is not valid JSON: {exc.msg}") from exc
            return parse_dtype(obj)
        if ":" in text:
            fields = [_parse_field(p) for p in split_top(text) if p]
            if not fields:
                raise DTypeError(f"empty structured dtype spec {spec!r}")
            dt = _make_struct(fields, spec)
        else:
            dt = _plain(text)
    elif isinstance(spec, list):
        fields = []
        for item in spec:
            if not isinstance(item, (list, tuple)) or len(item) not in (2, 3):
                raise DTypeError(f"structured dtype entry {item!r} must be [name, dtype(, shape)]")
            name = item[0]
            check_name(name, "field name")
            if item[1] is None:
                raise DTypeError(f"field {name!r} has no dtype")
            base = parse_dtype(item[1])
            if len(item) == 3:
                sub = item[2]
                if isinstance(sub, int) and not isinstance(sub, bool):
                    sub = [sub]
                if not isinstance(sub, (list, tuple)) or not all(
                    isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in sub
                ):
                    raise DTypeError(
                        f"field {name!r}: subarray shape {sub!r} must be positive ints (a "
                        "zero-size subarray would hold no values)"
                    )
                fields.append((name, base, tuple(sub)))
            else:
                fields.append((name, base))
        dt = _make_struct(fields, spec)
    elif spec is None:
        raise DTypeError("a dtype is required (got None)")
    else:
        try:
            dt = np.dtype(spec)
        except (TypeError, ValueError) as exc:
            raise DTypeError(f"unknown dtype {spec!r}") from exc
    return normalize(dt)


def _make_struct(fields: list[tuple[Any, ...]], spec: Any) -> np.dtype:
    try:
        return np.dtype(fields)
    except (TypeError, ValueError) as exc:
        raise DTypeError(f"bad structured dtype {spec!r}: {exc}") from exc


def _check_scalar(dt: np.dtype, where: str) -> None:
    if dt.hasobject or dt.kind == "O":
        raise DTypeError(f"object dtype is not supported{where}: store numbers or fixed strings")
    if is_bfloat16(dt):
        return
    if dt.kind in "SU" and dt.itemsize == 0:
        raise DTypeError(f"unsized string dtype {dt.str!r}{where}: give a length, e.g. S16 or U16")
    if dt.kind in "Mm":
        raise DTypeError(f"datetime dtype {dt.str!r}{where} is not supported; store int64 ticks")
    if dt.kind == "V":
        raise DTypeError(f"raw void dtype {dt.str!r}{where} is not supported")
    if dt.kind not in "biufcSU":
        raise DTypeError(f"dtype {dt.str!r}{where} is not supported")


def normalize(dt: np.dtype) -> np.dtype:
    """Validate and return a packed little-endian dtype (fields rebuilt, subarrays kept)."""
    if dt.names is not None:
        if not dt.names:
            raise DTypeError("structured dtype with no fields")
        out = []
        for f in fields_of_unchecked(dt):
            check_name(f.name, "field name")
            if f.dtype.names is not None:
                raise DTypeError(f"nested structured field {f.name!r} is not supported")
            if f.subshape and 0 in f.subshape:
                raise DTypeError(
                    f"field {f.name!r} has a zero-size subarray shape {f.subshape}: it would "
                    "hold no values (every subarray dimension must be >= 1)"
                )
            _check_scalar(f.dtype, f" (field {f.name!r})")
            base = _le(f.dtype)
            out.append((f.name, base, f.subshape) if f.subshape else (f.name, base))
        return np.dtype(out)
    if dt.subdtype is not None:
        raise DTypeError(
            f"a bare subarray dtype {dt!s} is not an array dtype; add the dimension to the shape"
        )
    _check_scalar(dt, "")
    return _le(dt)


def _le(dt: np.dtype) -> np.dtype:
    """Little-endian and canonical: numpy's aliases (``q``/``longlong``, ``Q``, ``l``...)
    become the one sized dtype of their ``str`` (``<i8``), so every library that looks
    dtypes up by scalar type (zarr does) sees ``int64``, not ``longlong``."""
    if is_bfloat16(dt):
        return dt
    canonical = np.dtype(dt.str.replace(">", "<"))
    return canonical.newbyteorder("<") if canonical.itemsize > 1 else canonical


#: zarr v3 data types arraystore stores (zarr-python 3.1 has no float128/complex256 type)
_ZARR_SIZES = {"b": (1,), "i": (1, 2, 4, 8), "u": (1, 2, 4, 8), "f": (2, 4, 8), "c": (8, 16)}


def check_zarr_dtype(dt: np.dtype) -> None:
    """Raise DTypeError unless every (field) dtype of ``dt`` has a zarr v3 data type."""
    for f in fields_of(dt) or [Field("", dt)]:
        where = f" (field {f.name!r})" if f.name else ""
        base = f.dtype
        if is_bfloat16(base):
            raise DTypeError(f"bfloat16{where} cannot be stored by the zarr backend; use memmap")
        if base.kind in "SU" or base.itemsize in _ZARR_SIZES.get(base.kind, ()):
            continue
        raise DTypeError(
            f"dtype {base.str!r}{where} ({base.name}) has no zarr data type: the zarr backend "
            "cannot store it (use --backend memmap or a smaller dtype)"
        )


def fields_of_unchecked(dt: np.dtype) -> list[Field]:
    out = []
    for name in dt.names or ():
        fdt = dt.fields[name][0]  # type: ignore[index]
        if fdt.subdtype is not None:
            base, sub = fdt.subdtype
            out.append(Field(name, base, tuple(int(s) for s in sub)))
        else:
            out.append(Field(name, fdt, ()))
    return out


def fields_of(dt: np.dtype) -> list[Field]:
    """The fields of a structured dtype, in order; ``[]`` for a plain dtype."""
    return fields_of_unchecked(dt)


def field_dtype(dt: np.dtype, name: str) -> Field:
    """Look up one field; raises FieldNotFound with the list of fields."""
    for f in fields_of(dt):
        if f.name == name:
            return f
    known = ", ".join(dt.names or ()) or "none: the array has a plain dtype"
    raise FieldNotFound(f"no field {name!r} (fields: {known})")


def scalar_str(dt: np.dtype) -> str:
    """A short, parseable name for a scalar dtype: ``f8``, ``i4``, ``S10``, ``bfloat16``."""
    if is_bfloat16(dt):
        return "bfloat16"
    if dt.kind == "b":
        return "bool"
    if dt.kind == "U":
        return f"U{dt.itemsize // 4}"
    if dt.kind in "S":
        return f"S{dt.itemsize}"
    return f"{dt.kind}{dt.itemsize}"


def dtype_to_spec(dt: np.dtype) -> str:
    """The CLI spec that parses back to ``dt``: ``f8`` or ``id:i8,vec:3f4``."""
    if dt.names is None:
        return scalar_str(dt)
    parts = []
    for f in fields_of(dt):
        if f.subshape:
            sub = (
                str(f.subshape[0])
                if len(f.subshape) == 1
                else "(" + ",".join(map(str, f.subshape)) + ")"
            )
        else:
            sub = ""
        parts.append(f"{f.name}:{sub}{scalar_str(f.dtype)}")
    return ",".join(parts)


def dtype_to_json(dt: np.dtype) -> Any:
    """JSON form: a string for plain dtypes, ``[[name, dtype, shape?], ...]`` for structured."""
    if dt.names is None:
        return "bfloat16" if is_bfloat16(dt) else dt.str
    out: list[list[Any]] = []
    for f in fields_of(dt):
        item: list[Any] = [f.name, dtype_to_json(f.dtype)]
        if f.subshape:
            item.append(list(f.subshape))
        out.append(item)
    return out


def dtype_from_json(obj: Any) -> np.dtype:
    return parse_dtype(obj)


def kind_name(dt: np.dtype) -> str:
    if is_bfloat16(dt):
        return "float"
    return _PLAIN_KINDS.get(dt.kind, {"S": "bytes", "U": "str"}.get(dt.kind, dt.kind))


def is_numeric(dt: np.dtype) -> bool:
    return is_bfloat16(dt) or dt.kind in "biufc"
