"""Smallest lossless dtypes: :class:`ValueSummary` and :func:`smallest_dtype`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from arraystore.core.casting.rules import (
    _INT_ORDER,
    _as_dtype,
    _component,
    _dtname,
    _ibounds,
    _is_float,
    _is_numeric,
    _superset,
    _wide,
)
from arraystore.core.casting.values import _convert
from arraystore.core.dtypes import bfloat16
from arraystore.errors import DTypeError, InvalidArgument

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
