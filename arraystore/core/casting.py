"""Value-aware dtype casts, one chunk at a time (DESIGN.md §6).

Pure and I/O-free: the cast operation reads a chunk, calls :func:`cast_block` on one
plain field of it, writes the result into the new array and merges the returned
:class:`CastReport` objects in chunk order. Everything here is vectorized; per-element
Python runs only on the slow path of string parsing (see :func:`cast_block`).

Policies (``POLICIES``):

``unsafe``
    numpy's ``astype(dst, casting="unsafe")``, bit for bit (see :func:`cast_block` for
    the values numpy leaves undefined).
``same_kind`` / ``safe``
    the same results, after numpy's type rule ``np.can_cast(src, dst, casting=policy)``
    accepted the pair (:func:`check_type_rule`).
``value`` (the default of the CLI)
    allowed when every actual value survives: integers that fit, floats whose round trip
    ``src -> dst -> src`` is exact (or within ``rtol``), no NaN/inf into integer or bool
    targets, complex into real only with zero imaginary parts, bool only from 0/1.
    Results equal numpy's ``astype`` wherever this policy allows a value, except for
    float -> integer with ``rtol > 0``, which rounds half to even.
``clip``
    saturate to the target's range: integer targets get ``min``/``max`` (fractional
    values truncated toward zero, as ``astype``; ±inf saturate; NaN becomes ``nan_to``),
    float targets get ``±finfo.max`` instead of an overflow to inf (NaN/inf pass
    through), complex into real drops the imaginary part (counted in ``out_of_range``
    and ``clipped``), bool targets are the integer range ``[0, 1]``.

Every policy fills the same audit counts in the :class:`CastReport`, so an ``unsafe``
cast still tells how many values it changed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeAlias

import numpy as np

from .dtypes import bfloat16, is_bfloat16, parse_dtype
from .errors import CastError, DTypeError, InvalidArgument

__all__ = [
    "POLICIES",
    "CastReport",
    "ValueSummary",
    "cast_block",
    "check_type_rule",
    "smallest_dtype",
]

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


# ------------------------------------------------------------------------------- reports


@dataclass
class CastReport:
    """What one cast did to the values of one field; merge chunk reports with :meth:`merge`.

    Categories are disjoint per value, in this precedence: ``parse_errors``, ``nan_inf``,
    ``out_of_range``, ``rounded``.

    ``count``           values checked.
    ``out_of_range``    values outside the target's range: integers that don't fit, floats
                        that overflow the target float to inf, complex values with a
                        non-zero imaginary part cast to a real type (also in
                        ``nonzero_imag``), bool targets from values other than 0/1.
    ``nan_inf``         NaN/±inf into an integer or bool target.
    ``nonfinite``       NaN/±inf passed through to a float/complex target (not an error).
    ``rounded``         in-range values whose round trip ``src -> dst -> src`` differs.
    ``beyond_rtol``     of those, the ones whose relative error exceeds ``rtol``.
    ``clipped``         values saturated by the ``clip`` policy.
    ``unhandled_nan``   NaN into an integer target under ``clip`` without ``nan_to``.
    ``parse_errors``    strings that are not numbers; ``coerced`` of them replaced
                        (``errors="coerce"``).
    ``violations``      values the policy refuses (the cast fails when non-zero).
    ``max_abs_err`` / ``max_rel_err``  over finite, in-range values that were cast
                        (relative error ``|x - y| / |x|`` for ``x != 0``; complex values
                        per part).
    ``first_bad``       up to 10 flat indices (global when the caller passed ``region`` and
                        ``shape``): the violating values when there are violations, else
                        the values the cast changed beyond ``rtol`` (out of range, NaN/inf
                        into integers, rounded, clipped, unparseable); sorted.
    ``examples``        the source values at the first 5 of ``first_bad``, as text.
    """

    src: str
    dst: str
    policy: str = "value"
    rtol: float = 0.0
    count: int = 0
    out_of_range: int = 0
    nonzero_imag: int = 0
    nan_inf: int = 0
    nonfinite: int = 0
    rounded: int = 0
    beyond_rtol: int = 0
    clipped: int = 0
    unhandled_nan: int = 0
    parse_errors: int = 0
    coerced: int = 0
    violations: int = 0
    max_abs_err: float = 0.0
    max_rel_err: float = 0.0
    first_bad: list[int] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    # examples for every entry of first_bad (None where unknown, after from_dict), so
    # merges keep examples aligned with first_bad
    _pool: list[str | None] = field(default_factory=list, repr=False, compare=False)

    _COUNTS = (
        "count",
        "out_of_range",
        "nonzero_imag",
        "nan_inf",
        "nonfinite",
        "rounded",
        "beyond_rtol",
        "clipped",
        "unhandled_nan",
        "parse_errors",
        "coerced",
        "violations",
    )

    @classmethod
    def empty(cls, src: Any, dst: Any, policy: str = "value", rtol: float = 0.0) -> CastReport:
        """A report of no values (``src``/``dst``: dtypes or their names)."""
        names = [v if isinstance(v, str) else _dtname(_as_dtype(v)) for v in (src, dst)]
        return cls(names[0], names[1], policy, float(rtol))

    @property
    def ok(self) -> bool:
        """True when the policy accepts every value seen so far."""
        return self.violations == 0

    def _set_bad(self, indices: Sequence[int], texts: Sequence[str | None]) -> None:
        pairs = sorted(dict(zip(indices, texts, strict=True)).items())[:MAX_FIRST_BAD]
        self.first_bad = [int(i) for i, _ in pairs]
        self._pool = [t for _, t in pairs]
        self.examples = [t if t is not None else "?" for t in self._pool[:MAX_EXAMPLES]]

    def merge(self, other: CastReport) -> CastReport:
        """A new report covering both; ``first_bad`` keeps the smallest indices.

        Both must describe the same cast (src, dst, policy); a report of no values
        (``count == 0``, e.g. :meth:`empty`) merges with any policy.
        """
        same_policy = (self.policy, self.rtol) == (other.policy, other.rtol)
        if (self.src, self.dst) != (other.src, other.dst) or not (
            same_policy or self.count == 0 or other.count == 0
        ):
            raise InvalidArgument(
                f"cannot merge cast reports of {self.src}->{self.dst} ({self.policy}) and "
                f"{other.src}->{other.dst} ({other.policy})"
            )
        lead = other if self.count == 0 and other.count else self
        merged = CastReport(self.src, self.dst, lead.policy, lead.rtol)
        for name in self._COUNTS:
            setattr(merged, name, getattr(self, name) + getattr(other, name))
        merged.max_abs_err = max(self.max_abs_err, other.max_abs_err)
        merged.max_rel_err = max(self.max_rel_err, other.max_rel_err)
        # violating indices win over merely changed ones
        sides = [r for r in (self, other) if r.violations] or [self, other]
        idx: list[int] = []
        texts: list[str | None] = []
        for r in sides:
            pool = r._pool if len(r._pool) == len(r.first_bad) else _pad(r)
            idx.extend(r.first_bad)
            texts.extend(pool)
        merged._set_bad(idx, texts)
        return merged

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (no private fields)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name[0] != "_"}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CastReport:
        known = {f.name for f in fields(cls) if f.name[0] != "_"}
        report = cls(**{k: v for k, v in data.items() if k in known})
        report.first_bad = [int(i) for i in report.first_bad]
        report.examples = [str(e) for e in report.examples]
        report._pool = _pad(report)
        return report

    def summary(self) -> str:
        """One line naming the violations (or what the cast changed when none)."""
        parts = self._violation_parts() if self.violations else self._audit_parts()
        text = ", ".join(parts) if parts else "all values cast exactly"
        if self.first_bad:
            shown = ", ".join(self.examples)
            total = self.violations or self._changed()
            more = ", ..." if max(total, len(self.first_bad)) > len(self.examples) else ""
            text += f" (first at {self.first_bad}: {shown}{more})"
        return text

    def error_message(self, name: str | None = None) -> str:
        what = (
            f"cast of {name!r} {self.src} -> {self.dst}"
            if name
            else (f"cast {self.src} -> {self.dst}")
        )
        return f"{what} refused: {self.summary()}"

    def raise_if_violations(self, name: str | None = None) -> None:
        """Raise :class:`CastError` with :meth:`error_message` when ``violations > 0``."""
        if self.violations:
            raise CastError(self.error_message(name))

    # -- message parts -------------------------------------------------------------------

    def _changed(self) -> int:
        # clipped values are out of range or ±inf, so they are counted already
        return self.out_of_range + self.nan_inf + self.beyond_rtol + self.parse_errors

    def _violation_parts(self) -> list[str]:
        parts: list[str] = []
        if self.policy == "value":
            if self.out_of_range:
                text = _n(self.out_of_range, "value") + " out of range"
                if self.nonzero_imag:
                    text += f" ({self.nonzero_imag} with a non-zero imaginary part)"
                parts.append(text)
            if self.nan_inf:
                parts.append(f"{self.nan_inf} NaN/inf")
            if self.beyond_rtol:
                text = _n(self.beyond_rtol, "value") + " rounded"
                text += f" beyond rtol={self.rtol:g}" if self.rtol else ""
                text += f" (max rel err {self.max_rel_err:.3g})"
                parts.append(text)
        if self.policy == "clip" and self.unhandled_nan:
            parts.append(f"{self.unhandled_nan} NaN into an integer target (no nan_to given)")
        bad = self.parse_errors - self.coerced
        if bad:
            parts.append(_n(bad, "unparseable string"))
        return parts

    def _audit_parts(self) -> list[str]:
        parts: list[str] = []
        if self.out_of_range:
            parts.append(_n(self.out_of_range, "value") + " out of range")
        if self.clipped:
            parts.append(f"{self.clipped} clipped")
        if self.nan_inf:
            parts.append(f"{self.nan_inf} NaN/inf")
        if self.rounded:
            parts.append(
                f"{self.rounded} rounded (max abs err {self.max_abs_err:.3g}, "
                f"max rel err {self.max_rel_err:.3g})"
            )
        if self.parse_errors:
            parts.append(_n(self.parse_errors, "unparseable string"))
        return parts


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _pad(report: CastReport) -> list[str | None]:
    texts: list[str | None] = list(report.examples[: len(report.first_bad)])
    return texts + [None] * (len(report.first_bad) - len(texts))


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _fmt(value: Any) -> str:
    """A source value as short text: ``300.5``, ``nan``, ``(1+2j)``, ``'abc'``."""
    if isinstance(value, bytes | str) or (
        isinstance(value, np.generic) and value.dtype.kind in "SU"
    ):
        text = repr(value.item() if isinstance(value, np.generic) else value)
        return text if len(text) <= 40 else text[:37] + "..."
    return str(value)


# ------------------------------------------------------------------------ per-value masks


Mask: TypeAlias = np.ndarray | None


def _or(a: Mask, b: Mask) -> Mask:
    if a is None:
        return b
    if b is None:
        return a
    return a | b


def _andnot(a: Mask, b: Mask) -> Mask:
    if a is None or b is None:
        return a
    return a & ~b


def _cnt(a: Mask) -> int:
    return 0 if a is None else int(np.count_nonzero(a))


def _some(a: np.ndarray) -> Mask:
    """``a`` when any element is set, else None (keeps fast paths cheap)."""
    return a if a.any() else None


@dataclass
class _Part:
    """Per-element outcome of converting one numeric array (all masks same length)."""

    oor: Mask = None
    naninf: Mask = None
    nonfinite: Mask = None
    rounded: Mask = None
    tol_bad: Mask = None
    clipped: Mask = None
    unhandled_nan: Mask = None
    nonzero_imag: Mask = None
    text_overflow: Mask = None
    diff: np.ndarray | None = None  # |y - x|, 0 where not applicable (float64)
    rel: np.ndarray | None = None  # diff / |x|, 0 where not applicable (float64)

    MASKS = (
        "oor",
        "naninf",
        "nonfinite",
        "rounded",
        "tol_bad",
        "clipped",
        "unhandled_nan",
        "nonzero_imag",
        "text_overflow",
    )


def _errors(diff: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 ``|y - x|`` (already 0 where not applicable) and ``|y - x| / |x|``."""
    diff = diff.astype(np.float64, copy=False)
    mag = np.abs(x).astype(np.float64, copy=False)
    rel = np.zeros_like(diff)
    np.divide(diff, mag, out=rel, where=diff != 0)  # diff != 0 implies x != 0
    return diff, rel


def _tol(rounded: Mask, rel: np.ndarray | None, rtol: float) -> Mask:
    """The rounded values beyond ``rtol`` (all rounded ones when ``rtol == 0``)."""
    if rounded is None or rtol == 0 or rel is None:
        return rounded
    return _some(rounded & (rel > rtol))


def _rounding(part: _Part, diff: np.ndarray, x: np.ndarray, rtol: float) -> None:
    """Fill ``rounded``/``tol_bad``/``diff``/``rel`` from ``diff`` (0 where exact or n/a)."""
    part.rounded = _some(diff != 0)
    if part.rounded is not None:
        part.diff, part.rel = _errors(diff, x)
        part.tol_bad = _tol(part.rounded, part.rel, rtol)


def _int_to_int(x: np.ndarray, y: np.ndarray, policy: str) -> _Part:
    lo, hi = _ibounds(y.dtype)
    slo, shi = _ibounds(x.dtype)
    below = _some(x < lo) if lo > slo else None
    above = _some(x > hi) if hi < shi else None
    oor = _or(below, above)
    part = _Part(oor=oor)
    if policy == "clip" and oor is not None:
        if below is not None:
            np.copyto(y, _scalar(lo, y.dtype), where=below)
        if above is not None:
            np.copyto(y, _scalar(hi, y.dtype), where=above)
        part.clipped = oor
    return part


def _int_to_float(x: np.ndarray, y: np.ndarray, policy: str, rtol: float) -> _Part:
    src, dst = x.dtype, y.dtype
    fi = _finfo(dst)
    bits = np.iinfo(src).bits - (1 if src.kind == "i" else 0)
    if bits <= fi.nmant + 1:  # every integer of src is exact in dst
        return _Part()
    yw = y.astype(np.float64)  # a copy: modified below
    oor = _some(np.isinf(yw)) if float(fi.max) < 2.0**bits else None
    if oor is not None:
        yw[oor] = 0.0
    # Exact round trip without overflow at the top: values that rounded up to 2**bits
    # are shifted down by 2**(bits-1) on both sides before converting back.
    big = yw >= 2.0**bits
    if big.any():
        half = 2 ** (bits - 1)
        back = np.where(big, yw - float(half), yw).astype(src)
        d = np.where(big, x - np.asarray(half, dtype=src), x) - back
    else:
        d = x - yw.astype(src)
    if src.kind == "u":
        d = d.view(np.dtype(f"i{src.itemsize}"))
    if oor is not None:
        d[oor] = 0
    part = _Part(oor=oor)
    _rounding(part, np.abs(d), x, rtol)
    if policy == "clip" and oor is not None:
        np.copyto(y, _scalar(fi.max, dst), where=oor & (x > 0))
        np.copyto(y, _scalar(-fi.max, dst), where=oor & (x < 0))
        part.clipped = oor
    return part


def _float_to_int(x: np.ndarray, y: np.ndarray, policy: str, rtol: float, nan_to: Any) -> _Part:
    dst = y.dtype
    xw = x.astype(_wide(x.dtype), copy=False)
    finite = np.isfinite(xw)
    naninf = _some(~finite)
    use_rint = policy == "value" and rtol > 0
    t = np.rint(xw) if use_rint else np.trunc(xw)
    lo, hi = _ibounds(dst)
    below = t < xw.dtype.type(lo)  # includes -inf
    above = t >= xw.dtype.type(hi + 1)  # hi + 1 is a power of two: exact; includes +inf
    outside = below | above
    oor = _some(outside if naninf is None else outside & finite)
    bad = _or(naninf, oor)
    diff = np.abs(t - xw)
    if bad is not None:
        diff[bad] = 0
    part = _Part(oor=oor, naninf=naninf)
    _rounding(part, diff, xw, rtol)
    if use_rint or (policy == "clip" and dst.kind == "b"):
        np.copyto(y, t, casting="unsafe", where=True if bad is None else ~bad)
    if policy == "clip":
        np.copyto(y, _scalar(lo, dst), where=below)
        np.copyto(y, _scalar(hi, dst), where=above)
        part.clipped = _some(outside)
        if naninf is not None:
            nan = np.isnan(xw)
            if nan_to is not None:
                np.copyto(y, _scalar(nan_to, dst), where=nan)
            else:
                part.unhandled_nan = _some(nan)
    return part


def _float_to_float(x: np.ndarray, y: np.ndarray, policy: str, rtol: float) -> _Part:
    src, dst = x.dtype, y.dtype
    wide = _wide(src, dst)
    xw = x.astype(wide, copy=False)
    if _superset(dst, src):
        return _Part(nonfinite=_some(~np.isfinite(xw)))
    yw = y.astype(wide, copy=False)
    fin_y = np.isfinite(yw)
    part = _Part()
    bad: Mask = None
    if not fin_y.all():  # NaN/inf stay NaN/inf, so every non-finite x is here too
        fin_x = np.isfinite(xw)
        part.nonfinite = _some(~fin_x)
        part.oor = _some(fin_x & ~fin_y)
        bad = ~fin_y
    diff = np.abs(yw - xw)
    if bad is not None:
        diff[bad] = 0
    # y != x is the same as a failed round trip: a finite y is representable in src (also
    # for float16 <-> bfloat16, where y has fewer significant bits or lies in range)
    _rounding(part, diff, xw, rtol)
    if policy == "clip" and part.oor is not None:
        fmax = _finfo(dst).max
        np.copyto(y, _scalar(fmax, dst), where=part.oor & (xw > 0))
        np.copyto(y, _scalar(-fmax, dst), where=part.oor & (xw < 0))
        part.clipped = part.oor
    return part


def _real(x: np.ndarray, y: np.ndarray, policy: str, rtol: float, nan_to: Any) -> _Part:
    """Classify real ``x`` into real ``y`` (already holding numpy's cast of ``x``)."""
    if x.dtype.kind == "b":
        return _Part()
    if _int_like(y.dtype):
        if x.dtype.kind in "iu":
            return _int_to_int(x, y, policy)
        return _float_to_int(x, y, policy, rtol, nan_to)
    if x.dtype.kind in "iu":
        return _int_to_float(x, y, policy, rtol)
    return _float_to_float(x, y, policy, rtol)


def _convert(x: np.ndarray, y: np.ndarray, policy: str, rtol: float, nan_to: Any) -> _Part:
    """Cast numeric ``x`` into ``y`` (same shape, target dtype) and classify each value."""
    src, dst = x.dtype, y.dtype
    if src == dst:
        np.copyto(y, x)
        if src.kind in "fc":
            return _Part(nonfinite=_some(~np.isfinite(x)))
        if is_bfloat16(src):
            return _Part(nonfinite=_some(~np.isfinite(x.astype(np.float64))))
        return _Part()
    if src.kind == "c" and dst.kind == "c":
        np.copyto(y, x, casting="unsafe")
        pr = _real(x.real, y.real, policy, rtol, nan_to)
        pi = _real(x.imag, y.imag, policy, rtol, nan_to)
        part = _Part()
        for name in _Part.MASKS:
            setattr(part, name, _or(getattr(pr, name), getattr(pi, name)))
        for name in ("diff", "rel"):
            a, b = getattr(pr, name), getattr(pi, name)
            setattr(part, name, a if b is None else b if a is None else np.maximum(a, b))
        return part
    if src.kind == "c":
        if dst.kind == "b":
            np.not_equal(x, 0, out=y)  # numpy: a complex is True when either part is
        else:
            np.copyto(y, x.real, casting="unsafe")
        part = _real(x.real, y, policy, rtol, nan_to)
        imag = _some(x.imag != 0)  # NaN counts as non-zero
        part.nonzero_imag = imag
        part.oor = _or(part.oor, imag)
        if policy == "clip" and imag is not None:
            part.clipped = _or(part.clipped, imag)
        return part
    np.copyto(y, x, casting="unsafe")
    return _real(x, y.real if dst.kind == "c" else y, policy, rtol, nan_to)


# ---------------------------------------------------------------------------- strings


def _parse(texts: np.ndarray, dt: np.dtype, dedupe: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Parse a 1-d string array with numpy's own cast; returns (values, ok mask).

    Fast path: one ``astype`` for the whole array. When it fails (some strings are not
    numbers), runs of ``_PARSE_BLOCK`` strings are cast one ``astype`` each, failing runs
    are bisected, and only failing runs of at most ``_PARSE_LEAF`` strings are parsed one
    by one in Python. ``dedupe`` first reduces the strings to distinct ones (for groups
    like "NA"/"null" that repeat a few values).
    """
    n = len(texts)
    try:
        return texts.astype(dt), np.ones(n, bool)
    except _BAD_PARSE:
        pass
    if dedupe:
        uniq, inverse = np.unique(texts, return_inverse=True)
        values, ok = _parse_runs(uniq, dt)
        inverse = inverse.reshape(-1)
        return values[inverse], ok[inverse]
    return _parse_runs(texts, dt)


def _parse_runs(texts: np.ndarray, dt: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    n = len(texts)
    values = np.zeros(n, dt)
    ok = np.zeros(n, bool)
    stack = [(a, min(a + _PARSE_BLOCK, n)) for a in range(0, n, _PARSE_BLOCK)][::-1]
    while stack:
        a, b = stack.pop()
        try:
            values[a:b] = texts[a:b].astype(dt)
            ok[a:b] = True
            continue
        except _BAD_PARSE:
            pass
        if b - a <= _PARSE_LEAF:
            for i in range(a, b):  # slow path: only inside a failing run
                try:
                    values[i] = texts[i : i + 1].astype(dt)[0]
                    ok[i] = True
                except _BAD_PARSE:
                    pass
        else:
            mid = (a + b) // 2
            stack += [(mid, b), (a, mid)]
    return values, ok


_WS = " \t\n\r\x0b\x0c"
_INT_CHARS = "0123456789+-" + _WS
_NUM_CHARS = _INT_CHARS + ".eE_"
# byte -> class bits: 1 blank, 2 integer-looking, 4 number-looking (NUL padding: all)
_CLASS = np.zeros(256, np.uint8)
for _bit, _chars in ((1, _WS), (2, _INT_CHARS), (4, _NUM_CHARS)):
    _CLASS[[0, *(ord(c) for c in _chars)]] |= _bit


def _text_classes(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per string: blank, integer-looking (ASCII digits, signs, spaces), number-looking
    (also ``.eE_``), and the strings as a uint8 matrix (code points above 255 -> 255)."""
    n = len(s)
    width = s.dtype.itemsize // (4 if s.dtype.kind == "U" else 1)
    if s.dtype.kind == "U":
        codes = np.empty((n, width), np.uint8)
        wide = s.view(np.uint32).reshape(n, width)
        np.minimum(wide, 255, out=codes, casting="unsafe")
    else:
        codes = s.view(np.uint8).reshape(n, width)
    acc = np.bitwise_and.reduce(_CLASS[codes], axis=1)  # width 0: all bits (blank)
    blank = (acc & 1).astype(bool)
    isint = (acc & 2).astype(bool) & ~blank
    isnum = (acc & 4).astype(bool) & ~blank & ~isint
    return blank, isint, isnum, codes


def _ascii(codes: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The (ASCII-only) strings at ``idx`` as bytes: numpy parses ``S`` 3-4x faster."""
    return np.ascontiguousarray(codes[idx]).view(f"S{max(codes.shape[1], 1)}").reshape(-1)


def _scatter(full: _Part, idx: np.ndarray, sub: _Part, n: int) -> None:
    for name in _Part.MASKS:
        m = getattr(sub, name)
        if m is None:
            continue
        target = getattr(full, name)
        if target is None:
            target = np.zeros(n, bool)
            setattr(full, name, target)
        target[idx] = m
    for name in ("diff", "rel"):
        v = getattr(sub, name)
        if v is None:
            continue
        target = getattr(full, name)
        if target is None:
            target = np.zeros(n, np.float64)
            setattr(full, name, target)
        target[idx] = v


def _cast_strings(
    xf: np.ndarray, y: np.ndarray, policy: str, rtol: float, nan_to: Any, errors: str, fill: Any
) -> tuple[_Part, Mask]:
    """Parse strings into numeric ``y``; returns the classification and the parse failures.

    Strings are sorted into groups by a vectorized code point lookup: integer-looking
    (digits, signs, spaces) are parsed as int64 (uint64 for a uint64 target) so big
    integers stay exact; number-looking (also ``.eE_``) and the integers that failed
    (too big) as float64 (complex128 for complex targets), from bytes; everything else
    ("nan", "inf", "NA", non-ASCII digits, "1+2j") with numpy's parse of the original
    strings, deduplicated first. The parsed value is then cast with the numeric rules, so
    ``"0.1"`` into float32 is a rounded value as float64 0.1 is. A number-looking string
    that parses to ±inf (``"1e999"``) is out of range (clip saturates it).
    """
    dst = y.dtype
    n = len(xf)
    s = np.ascontiguousarray(xf)
    if not s.dtype.isnative:  # code points are read as native integers
        s = s.astype(s.dtype.newbyteorder("="))
    blank, isint, isnum, codes = _text_classes(s)
    other = ~(blank | isint | isnum)
    full = _Part()
    int_dt = np.dtype(np.uint64) if dst == np.dtype(np.uint64) else np.dtype(np.int64)
    fdt = np.dtype(np.complex128) if dst.kind == "c" else np.dtype(np.float64)
    ci = np.flatnonzero(isint)
    ivals, iok = _parse(_ascii(codes, ci), int_dt)
    num_idx = np.sort(np.concatenate([np.flatnonzero(isnum), ci[~iok]]))
    nvals, nok = _parse(_ascii(codes, num_idx), fdt)
    oth_idx = np.flatnonzero(other)
    ovals, ook = _parse(s[oth_idx], fdt, dedupe=True)
    bad = blank.copy()
    bad[num_idx[~nok]] = True
    bad[oth_idx[~ook]] = True

    def put(idx: np.ndarray, vals: np.ndarray, overflow: Mask) -> None:
        if not len(idx):
            return
        if overflow is not None and policy == "clip":  # saturate like any other overflow
            big = np.finfo(np.float64).max
            vals = vals.copy()
            for part in (vals.real, vals.imag) if vals.dtype.kind == "c" else (vals,):
                part[np.isinf(part)] = np.copysign(big, part[np.isinf(part)])
        ysub = np.empty(len(idx), dst)
        sub = _convert(vals, ysub, policy, rtol, nan_to)
        if overflow is not None:
            sub.oor = _or(sub.oor, overflow)
            sub.naninf = _andnot(sub.naninf, overflow)
            sub.nonfinite = _andnot(sub.nonfinite, overflow)
            if policy == "clip":
                sub.clipped = _or(sub.clipped, overflow)
        y[idx] = ysub
        _scatter(full, idx, sub, n)

    put(ci[iok], ivals[iok], None)
    good = nvals[nok]
    put(num_idx[nok], good, _some(~np.isfinite(good)))  # no "inf"/"nan" text in this group
    put(oth_idx[ook], ovals[ook], None)
    if bad.any():
        if errors == "coerce":
            value = fill if fill is not None else np.nan
        else:
            value = 0 if _int_like(dst) else np.nan
        np.copyto(y, _scalar(value, dst), where=bad)
        return full, bad
    return full, None


# ------------------------------------------------------------------------------ cast_block


def _check_value(value: Any, dst: np.dtype, what: str) -> None:
    """``value`` (nan_to / fill) must be representable in ``dst`` exactly."""
    if _int_like(dst):
        ok = isinstance(value, bool | int | np.integer | np.bool_) or (
            isinstance(value, float | np.floating) and math.isfinite(value) and value == int(value)
        )
        if ok:
            lo, hi = _ibounds(dst)
            ok = lo <= int(value) <= hi
        if not ok:
            raise InvalidArgument(f"{what}={value!r} does not fit the target dtype {_dtname(dst)}")
    elif not isinstance(value, int | float | complex | np.number | np.bool_):
        raise InvalidArgument(f"{what}={value!r} must be a number")


def _global_indices(
    local: np.ndarray, block_shape: tuple[int, ...], region: Any, shape: Any
) -> list[int]:
    if region is None and shape is None:
        return [int(i) for i in local]
    if not block_shape:  # 0-d block: its one value
        return [0 for _ in local]
    if region is None or shape is None:
        raise InvalidArgument("pass both region and shape (or neither) to get global indices")
    shape = tuple(int(s) for s in shape)
    region = tuple(region) if isinstance(region, Sequence) else (region,)
    if len(region) <= len(shape) < len(block_shape):  # subarray field: whole trailing dims
        shape += block_shape[len(shape) :]
    if len(shape) != len(block_shape) or len(region) > len(block_shape):
        raise InvalidArgument(
            f"region {region} / shape {shape} do not match a block of shape {block_shape}"
        )
    starts = []
    for r in region:
        start = r.start if isinstance(r, slice) else r
        starts.append(int(start or 0))
    starts += [0] * (len(block_shape) - len(starts))
    for st, b, s in zip(starts, block_shape, shape, strict=True):
        if st < 0 or st + b > s:
            raise InvalidArgument(f"region {region} does not fit in shape {shape}")
    if not len(local):
        return []
    coords = np.unravel_index(local, block_shape)
    moved = tuple(c + st for c, st in zip(coords, starts, strict=True))
    return [int(i) for i in np.ravel_multi_index(moved, shape)]


def cast_block(
    block: np.ndarray,
    dst: Any,
    policy: str,
    rtol: float = 0.0,
    nan_to: float | int | None = None,
    region: Any = None,
    shape: Sequence[int] | None = None,
    out: np.ndarray | None = None,
    errors: str = "raise",
    fill: Any = None,
    *,
    raise_on_violation: bool = True,
    name: str | None = None,
) -> tuple[np.ndarray, CastReport]:
    """Cast one block (a chunk of one plain field) to ``dst`` under ``policy``.

    Returns ``(result, report)``; ``result`` is ``out`` when given (same shape, dtype
    ``dst``). With ``raise_on_violation`` (default) a :class:`CastError` naming the counts,
    first offending indices and example values is raised when the policy refuses any
    value; with ``raise_on_violation=False`` the report's ``violations`` says so and the
    caller decides after merging every chunk (``report.raise_if_violations(name)``).

    ``rtol``: relative tolerance of the ``value`` policy for rounding (float targets:
    ``|y - x| <= rtol * |x|``; float -> integer rounds half to even when ``rtol > 0``).
    ``nan_to``: the value NaN becomes in an integer/bool target under ``clip`` (required
    when NaN occurs there). ``region`` (slices or start offsets of the block in the whole
    array, leading dimensions) and ``shape`` (the whole array's shape; for a subarray field
    the block's trailing dimensions are appended) turn ``first_bad`` into global flat
    indices (for a subarray field: over every element of the field, ``record *
    prod(subshape) + offset``). ``name`` (the field name) is
    used in error messages.

    Strings (``S``/``U``) are parsed (see ``_cast_strings``) under every policy;
    unparseable ones are counted in ``parse_errors`` and refused with ``errors="raise"``,
    or replaced by ``fill`` (default NaN for float targets; required for integer targets)
    with ``errors="coerce"``. Parsing is numpy's ``astype`` on whole groups of strings;
    only when a group fails, runs of 1024 strings are cast separately, failing runs are
    bisected, and failing runs of at most 32 strings are parsed one by one in Python.

    Integer results of NaN/inf/out-of-range values under ``unsafe``/``safe``/
    ``same_kind`` are whatever numpy's cast gives (platform and memory-layout dependent
    in numpy itself); complex sources cast into real types go through their real part,
    which avoids numpy's ``ComplexWarning`` and gives identical results for every value
    numpy defines.
    """
    x = np.asarray(block)
    dst = _as_dtype(dst)
    src = x.dtype
    check_type_rule(src, dst, policy)
    if not (isinstance(rtol, int | float) and math.isfinite(rtol) and rtol >= 0):
        raise InvalidArgument(f"rtol must be a finite number >= 0, got {rtol!r}")
    rtol = float(rtol)
    if errors not in ERRORS:
        raise InvalidArgument(f"errors must be one of {ERRORS}, got {errors!r}")
    if nan_to is not None:
        if policy != "clip":
            raise InvalidArgument("nan_to applies to the clip policy only")
        _check_value(nan_to, dst, "nan_to")
    if fill is not None:
        _check_value(fill, dst, "fill")
    strings = src.kind in "SU"
    if strings and errors == "coerce" and _int_like(dst) and fill is None:
        raise CastError(
            f"errors='coerce' into {_dtname(dst)} needs a fill value for unparseable strings"
        )
    if out is not None and (out.shape != x.shape or out.dtype != dst):
        raise InvalidArgument(
            f"out has shape {out.shape} and dtype {out.dtype}; expected {x.shape} {dst}"
        )

    n = x.size
    xf = x.reshape(-1)
    direct = out is not None and out.flags.c_contiguous and out.flags.writeable
    yf = out.reshape(-1) if direct and out is not None else np.empty(n, dst)
    parse_bad: Mask = None
    with np.errstate(all="ignore"):
        if strings and _is_numeric(dst):
            part, parse_bad = _cast_strings(xf, yf, policy, rtol, nan_to, errors, fill)
        elif _is_numeric(src) and _is_numeric(dst):
            from .casting_fast import float_narrow

            fast = float_narrow(xf, yf, policy, rtol)
            if fast is not None:
                report = _fast_report(x, xf, dst, policy, rtol, fast, region, shape)
                if raise_on_violation and report.violations:
                    raise CastError(report.error_message(name))
                if out is not None:
                    if not direct:  # a strided out (a field of records): copy into it
                        np.copyto(out, yf.reshape(x.shape))
                    return out, report
                return yf.reshape(x.shape), report
            part = _convert(xf, yf, policy, rtol, nan_to)
        else:  # unsafe/same_kind/safe into strings etc.: numpy's cast, nothing to audit
            np.copyto(yf, xf, casting="unsafe")
            part = _Part()
        report = _make_report(x, xf, dst, policy, rtol, errors, part, parse_bad, region, shape)
    if raise_on_violation and report.violations:
        raise CastError(report.error_message(name))
    if out is not None:
        if not direct:
            np.copyto(out, yf.reshape(x.shape))
        return out, report
    return yf.reshape(x.shape), report


def _fast_report(
    x: np.ndarray,
    xf: np.ndarray,
    dst: np.dtype,
    policy: str,
    rtol: float,
    fast: dict[str, Any],
    region: Any,
    shape: Any,
) -> CastReport:
    """The report of the fused float narrowing kernel (same fields as _make_report)."""
    report = CastReport(_dtname(x.dtype), _dtname(dst), policy, rtol, count=int(x.size))
    report.out_of_range = fast["oor"]
    report.nonfinite = fast["nonfinite"]
    report.rounded = fast["rounded"]
    report.beyond_rtol = fast["beyond"]
    report.clipped = fast["oor"] if policy == "clip" else 0
    report.violations = fast["oor"] + fast["beyond"] if policy == "value" else 0
    report.max_abs_err = fast["max_abs"]
    report.max_rel_err = fast["max_rel"]
    local = fast["first"]
    if local.size:
        texts: list[str | None] = [_fmt(xf[i]) for i in local]
        report._set_bad(_global_indices(local, x.shape, region, shape), texts)
    elif region is not None or shape is not None:
        _global_indices(np.zeros(0, np.intp), x.shape, region, shape)
    return report


def _make_report(
    x: np.ndarray,
    xf: np.ndarray,
    dst: np.dtype,
    policy: str,
    rtol: float,
    errors: str,
    part: _Part,
    parse_bad: Mask,
    region: Any,
    shape: Any,
) -> CastReport:
    naninf = part.naninf
    oor = _andnot(part.oor, naninf)
    rounded = _andnot(_andnot(part.rounded, oor), naninf)
    tol = None if rounded is None or part.tol_bad is None else _some(part.tol_bad & rounded)
    imag = _andnot(part.nonzero_imag, naninf)
    fatal_parse = parse_bad if errors == "raise" else None
    if policy == "value":
        viol = _or(_or(_or(oor, naninf), tol), fatal_parse)
    elif policy == "clip":
        viol = _or(part.unhandled_nan, fatal_parse)
    else:
        viol = fatal_parse
    report = CastReport(_dtname(x.dtype), _dtname(dst), policy, rtol, count=int(x.size))
    report.out_of_range = _cnt(oor)
    report.nonzero_imag = _cnt(imag)
    report.nan_inf = _cnt(naninf)
    report.nonfinite = _cnt(part.nonfinite)
    report.rounded = _cnt(rounded)
    report.beyond_rtol = _cnt(tol)
    report.clipped = _cnt(part.clipped)
    report.unhandled_nan = _cnt(part.unhandled_nan)
    report.parse_errors = _cnt(parse_bad)
    report.coerced = report.parse_errors if errors == "coerce" else 0
    report.violations = _cnt(viol)
    if part.diff is not None:
        keep = _or(oor, naninf)
        where = np.ones(part.diff.shape, bool) if keep is None else ~keep
        report.max_abs_err = float(np.max(part.diff, where=where, initial=0.0))
        if part.rel is not None:
            report.max_rel_err = float(np.max(part.rel, where=where, initial=0.0))
    marks = viol
    if marks is None:
        marks = _or(_or(_or(_or(oor, naninf), tol), parse_bad), part.clipped)
    if marks is not None:
        local = np.flatnonzero(marks)[:MAX_FIRST_BAD]
        texts: list[str | None] = [_fmt(xf[i]) for i in local]
        report._set_bad(_global_indices(local, x.shape, region, shape), texts)
    elif region is not None or shape is not None:
        _global_indices(np.zeros(0, np.intp), x.shape, region, shape)  # validate anyway
    return report


# --------------------------------------------------------------------------- smallest_dtype


@dataclass
class ValueSummary:
    """Mergeable per-field statistics for :func:`smallest_dtype` (gathered in a first pass).

    ``min``/``max``/``max_abs`` are over finite values (Python ints for bool/integer
    sources; for complex sources over both parts), None when there is none.
    ``all_integral``: every finite value (both parts of complex ones) is a whole number.
    ``fits_f32`` / ``fits_f16`` / ``fits_bf16``: every finite value survives a round trip
    through that float (complex: per part, through complex64 for ``fits_f32``) exactly or
    within ``rtol``, without overflow; None when not computed (integer sources; half
    types without ``allow_half``; bfloat16 without ml_dtypes; complex for halves).
    """

    dtype: str
    rtol: float = 0.0
    count: int = 0
    min: int | float | None = None
    max: int | float | None = None
    max_abs: int | float | None = None
    has_nan: bool = False
    has_inf: bool = False
    all_integral: bool = True
    fits_f32: bool | None = None
    fits_f16: bool | None = None
    fits_bf16: bool | None = None

    @classmethod
    def from_block(
        cls, block: np.ndarray, rtol: float = 0.0, allow_half: bool = False
    ) -> ValueSummary:
        x = np.asarray(block).reshape(-1)
        src = x.dtype
        if not _is_numeric(src):
            raise InvalidArgument(f"cannot summarise values of dtype {src} for --auto")
        summary = cls(_dtname(src), float(rtol), int(x.size))
        if src.kind in "biu":
            if x.size:
                lo, hi = int(x.min()), int(x.max())
                summary.min, summary.max, summary.max_abs = lo, hi, max(abs(lo), abs(hi))
            return summary
        with np.errstate(all="ignore"):
            parts = [x.real, x.imag] if src.kind == "c" else [x]
            for p in parts:
                pw = p.astype(_wide(p.dtype))
                finite = np.isfinite(pw)
                summary.has_nan |= bool(np.isnan(pw).any())
                summary.has_inf |= bool(np.isinf(pw).any())
                if finite.any():
                    vals = pw[finite] if not finite.all() else pw
                    flo, fhi = float(vals.min()), float(vals.max())
                    summary.min = flo if summary.min is None else min(summary.min, flo)
                    summary.max = fhi if summary.max is None else max(summary.max, fhi)
                    summary.all_integral &= bool(np.all(np.trunc(vals) == vals))
            if summary.min is not None and summary.max is not None:
                summary.max_abs = max(abs(summary.min), abs(summary.max))
            summary.fits_f32 = _fits(x, np.dtype("c8" if src.kind == "c" else "f4"), rtol)
            if allow_half and src.kind != "c":
                summary.fits_f16 = _fits(x, np.dtype(np.float16), rtol)
                try:
                    summary.fits_bf16 = _fits(x, bfloat16(), rtol)
                except DTypeError:  # ml_dtypes not installed: unknown
                    summary.fits_bf16 = None
        return summary

    def merge(self, other: ValueSummary) -> ValueSummary:
        if (self.dtype, self.rtol) != (other.dtype, other.rtol):
            raise InvalidArgument(
                f"cannot merge value summaries of {self.dtype} (rtol={self.rtol}) and "
                f"{other.dtype} (rtol={other.rtol})"
            )

        def pick(a: Any, b: Any, fn: Any) -> Any:
            return b if a is None else a if b is None else fn(a, b)

        def both(a: bool | None, b: bool | None) -> bool | None:
            return None if a is None or b is None else a and b

        return ValueSummary(
            self.dtype,
            self.rtol,
            self.count + other.count,
            pick(self.min, other.min, min),
            pick(self.max, other.max, max),
            pick(self.max_abs, other.max_abs, max),
            self.has_nan or other.has_nan,
            self.has_inf or other.has_inf,
            self.all_integral and other.all_integral,
            both(self.fits_f32, other.fits_f32),
            both(self.fits_f16, other.fits_f16),
            both(self.fits_bf16, other.fits_bf16),
        )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValueSummary:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _fits(x: np.ndarray, target: np.dtype, rtol: float) -> bool:
    src = x.dtype
    comp = _component(src)
    if _is_float(comp) and _superset(_component(target), comp):
        return True
    y = np.empty(x.shape, target)
    with np.errstate(all="ignore"):
        part = _convert(x, y, "value", rtol, None)
    return part.oor is None and part.tol_bad is None


def _smallest_int(lo: int, hi: int) -> np.dtype | None:
    for dt in _INT_ORDER:
        dlo, dhi = _ibounds(dt)
        if dlo <= lo and hi <= dhi:
            return dt
    return None


def smallest_dtype(
    stats: ValueSummary | Mapping[str, Any],
    src: Any,
    allow_half: bool = False,
    allow_float_to_int: bool = False,
    rtol: float = 0.0,
) -> np.dtype:
    """The smallest dtype that holds every summarised value losslessly (within ``rtol``).

    bool stays bool; integers get the smallest of uint8/int8/uint16/.../int64 holding
    ``[min, max]`` (unsigned first when ``min >= 0``); floats get, by itemsize, an integer
    type (``allow_float_to_int``, all values whole, no NaN/inf), float16 then bfloat16
    (``allow_half``), float32, else stay; complex128 becomes complex64 when both parts
    fit float32. Ties in itemsize go to the earlier of that list; a candidate no smaller
    than the source keeps the source. Empty fields keep the source dtype.
    """
    summary = stats if isinstance(stats, ValueSummary) else ValueSummary.from_dict(stats)
    src = _as_dtype(src)
    if summary.rtol != rtol:
        raise InvalidArgument(
            f"the value summary was gathered with rtol={summary.rtol}, not rtol={rtol}"
        )
    if summary.count == 0 or src.kind == "b" or not _is_numeric(src):
        return src
    if src.kind in "iu":
        if summary.min is None or summary.max is None:
            return src
        best = _smallest_int(int(summary.min), int(summary.max))
        return best if best is not None and best.itemsize < src.itemsize else src
    candidates: list[np.dtype] = []
    if src.kind == "c":
        if summary.fits_f32:
            candidates.append(np.dtype(np.complex64))
    else:
        if (
            allow_float_to_int
            and summary.all_integral
            and not (summary.has_nan or summary.has_inf)
            and summary.min is not None
            and summary.max is not None
        ):
            as_int = _smallest_int(int(summary.min), int(summary.max))
            if as_int is not None:
                candidates.append(as_int)
        if allow_half and summary.fits_f16:
            candidates.append(np.dtype(np.float16))
        if allow_half and summary.fits_bf16:
            candidates.append(bfloat16())
        if summary.fits_f32:
            candidates.append(np.dtype(np.float32))
    best = src
    for dt in candidates:
        if dt.itemsize < best.itemsize:
            best = dt
    return best
