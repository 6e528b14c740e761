"""Cast policies, numpy's type rules and the dtype helpers of the cast modules."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from arraystore.core.dtypes import (
    check_array_name,
    fields_of,
    is_bfloat16,
    is_numeric,
    parse_dtype,
    split_top,
)
from arraystore.errors import ArrayStoreError, CastError, FieldNotFound, InvalidArgument

POLICIES = ("unsafe", "same_kind", "safe", "value", "clip")
ERRORS = ("raise", "coerce")

#: How many offending flat indices (and example values) a report keeps.
MAX_FIRST_BAD = 10
MAX_EXAMPLES = 5

_INT_ORDER = tuple(np.dtype(t) for t in ("u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8"))
_BAD_PARSE = (ValueError, OverflowError, TypeError)
_PARSE_BLOCK = 1024  # strings per astype once a whole group failed to parse
_PARSE_LEAF = 32  # failing runs this short are parsed one string at a time


# --------------------------------------------------------------------------- dtype helpers


def _dtname(dt: np.dtype) -> str:
    """A short, stable name: ``int8``, ``float64``, ``bfloat16``, ``S10``, ``U3``."""
    if dt.kind in "SU":
        return f"{dt.kind}{dt.itemsize // (4 if dt.kind == 'U' else 1)}"
    return str(dt.name)


def _is_float(dt: np.dtype) -> bool:
    return dt.kind == "f" or is_bfloat16(dt)


def _is_numeric(dt: np.dtype) -> bool:
    return dt.names is None and (dt.kind in "biufc" or is_bfloat16(dt))


def _int_like(dt: np.dtype) -> bool:
    return dt.kind in "biu"


def _ibounds(dt: np.dtype) -> tuple[int, int]:
    if dt.kind == "b":
        return 0, 1
    info = np.iinfo(dt)
    return int(info.min), int(info.max)


@dataclass(frozen=True)
class _FInfo:
    nmant: int
    minexp: int
    maxexp: int
    max: Any  # a scalar of the dtype itself


def _finfo(dt: np.dtype) -> _FInfo:
    if is_bfloat16(dt):
        import ml_dtypes

        fi: Any = ml_dtypes.finfo(dt)
    else:
        fi = np.finfo(dt)
    return _FInfo(int(fi.nmant), int(fi.minexp), int(fi.maxexp), fi.max)


def _component(dt: np.dtype) -> np.dtype:
    """The real dtype of one part of a complex dtype (complex64 -> float32)."""
    return np.dtype(f"f{dt.itemsize // 2}") if dt.kind == "c" else dt


def _wide(*dts: np.dtype) -> np.dtype:
    """float64, or longdouble when a float wider than 8 bytes is involved."""
    for dt in dts:
        if dt.kind == "f" and dt.itemsize > 8:
            return np.dtype(np.longdouble)
    return np.dtype(np.float64)


def _as_dtype(spec: Any) -> np.dtype:
    return spec if isinstance(spec, np.dtype) else parse_dtype(spec)


def _superset(dst: np.dtype, src: np.dtype) -> bool:
    """True when float ``dst`` holds every value of float ``src`` exactly."""
    d, s = _finfo(dst), _finfo(src)
    return d.nmant >= s.nmant and d.maxexp >= s.maxexp and d.minexp - d.nmant <= s.minexp - s.nmant


def _scalar(value: Any, dt: np.dtype) -> np.ndarray:
    """A 0-d array of ``dt`` holding ``value`` (for ``np.copyto(..., where=...)``)."""
    return np.asarray(np.array(value).astype(dt, casting="unsafe"))


# ----------------------------------------------------------------------------- type rules


def check_type_rule(src: Any, dst: Any, policy: str) -> None:
    """Refuse, before any value is read, casts the policy never allows.

    ``safe``/``same_kind`` follow ``np.can_cast``; ``unsafe`` allows everything;
    ``value``/``clip`` allow bool/integer/float/complex (and bfloat16) targets from
    numeric or string (``S``/``U``) sources. Structured or subarray dtypes are refused
    with :class:`InvalidArgument` (cast them field by field).
    """
    if policy not in POLICIES:
        raise InvalidArgument(f"unknown casting policy {policy!r}; expected one of {POLICIES}")
    src, dst = _as_dtype(src), _as_dtype(dst)
    for dt in (src, dst):
        if dt.names is not None or dt.subdtype is not None:
            raise InvalidArgument(
                f"cast_block works on one plain field; got structured/subarray dtype {dt}"
            )
    if policy == "unsafe":
        return
    if policy in ("safe", "same_kind"):
        rule: Literal["safe", "same_kind"] = "safe" if policy == "safe" else "same_kind"
        if not np.can_cast(src, dst, casting=rule):
            raise CastError(
                f"cannot cast {_dtname(src)} to {_dtname(dst)} under casting={policy!r} "
                "(numpy's type rules); use --casting value to cast when every value fits"
            )
        return
    if src.kind == "O" or dst.kind == "O":
        raise CastError("casting to or from object dtypes is not supported")
    if dst.kind in "SU":
        raise CastError(
            f"casting to strings is not supported (cannot cast {_dtname(src)} to "
            f"{_dtname(dst)} under casting={policy!r})"
        )
    if not _is_numeric(dst):
        raise CastError(
            f"cannot cast {_dtname(src)} to {_dtname(dst)} under casting={policy!r}: the "
            "target must be a bool, integer, float or complex dtype"
        )
    if not (_is_numeric(src) or src.kind in "SU"):
        raise CastError(
            f"cannot cast {_dtname(src)} to {_dtname(dst)} under casting={policy!r}: the "
            "source must be a bool, integer, float, complex or string dtype"
        )


# ------------------------------------------------------------ cast targets
def parse_targets(src: np.dtype, to: Any) -> dict[str | None, str]:
    """``"f4"`` / ``"auto"`` / ``"price:f4,qty:auto"`` / ``{"price": "f4"}`` ->
    {field (None for a plain array): dtype spec or "auto"}; unnamed fields stay."""
    fields = fields_of(src)
    if isinstance(to, Mapping):
        mapping = {str(k): str(v) for k, v in to.items()}
    elif isinstance(to, str) and ":" in to:
        mapping = {}
        for part in split_top(to.strip()):
            if not part:
                continue
            key, sep, val = part.partition(":")
            if not sep or not key.strip() or not val.strip():
                raise InvalidArgument(
                    f"cast spec {part!r} must look like FIELD:DTYPE (or FIELD:auto)"
                )
            mapping[key.strip()] = val.strip()
    elif isinstance(to, (str, np.dtype, type)):
        whole = str(to) if isinstance(to, str) else parse_dtype(to).str
        if not fields:
            return {None: whole}
        return {f.name: whole for f in fields if is_numeric(f.dtype)}
    else:
        raise InvalidArgument(f"bad cast target {to!r}")
    if not fields:
        raise InvalidArgument("per-field targets need a structured array; use e.g. --to f4")
    known = {f.name: f for f in fields}
    for key, val in mapping.items():
        if key not in known:
            raise FieldNotFound(f"no field {key!r} (fields: {', '.join(known)})")
        sub = known[key].subshape
        if val != "auto":  # allow "vec:3f4" for a subarray field of shape (3,)
            dt = parse_dtype(f"x:{val}") if sub else None
            if dt is not None:
                base = fields_of(dt)[0]
                if base.subshape and base.subshape != sub:
                    raise InvalidArgument(
                        f"field {key!r} has subarray shape {sub}, not {base.subshape}"
                    )
                mapping[key] = base.dtype.str if base.subshape else val
    out: dict[str | None, str] = {}
    out.update(mapping)
    return out


def target_dtype(spec: str) -> np.dtype:
    dt = parse_dtype(spec)
    if dt.names is not None:
        raise InvalidArgument(f"cast target {spec!r} must be a plain dtype")
    if dt.kind in "SU":
        raise CastError(f"casting to strings ({spec}) is not supported")
    return dt


def check_cast_args(casting: str, errors: str, rtol: Any, out: str | None) -> None:
    """``cast``'s plain arguments (policy, errors mode, rtol, out name), checked before
    anything is opened."""
    if casting not in POLICIES:
        raise InvalidArgument(f"unknown casting {casting!r} (choose from: {', '.join(POLICIES)})")
    if errors not in ("raise", "coerce"):
        raise InvalidArgument(f"errors must be 'raise' or 'coerce', got {errors!r}")
    if not (isinstance(rtol, (int, float)) and math.isfinite(rtol) and rtol >= 0):
        raise InvalidArgument(f"rtol must be a finite number >= 0, got {rtol!r}")
    if out is not None:
        check_array_name(out)


def plain_target(to: Any) -> Any:
    """numpy dtypes/types in a target become their string form (JSON-able journal)."""
    if isinstance(to, Mapping):
        return {str(k): plain_target(v) for k, v in to.items()}
    if to is None or isinstance(to, str):
        return to  # None: only with resume (the target comes from the journal)
    try:
        return parse_dtype(to).str
    except ArrayStoreError:
        raise InvalidArgument(f"bad cast target {to!r}") from None
