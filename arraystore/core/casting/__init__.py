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
from collections.abc import Sequence
from typing import Any

import numpy as np

from arraystore.core.casting.auto import ValueSummary, smallest_dtype
from arraystore.core.casting.fast import float_narrow
from arraystore.core.casting.report import CastReport, _fmt
from arraystore.core.casting.rules import (
    ERRORS,
    MAX_FIRST_BAD,
    POLICIES,
    _as_dtype,
    _dtname,
    _ibounds,
    _int_like,
    _is_numeric,
    check_type_rule,
)
from arraystore.core.casting.values import (
    Mask,
    _andnot,
    _cast_strings,
    _cnt,
    _convert,
    _or,
    _Part,
    _some,
)
from arraystore.errors import CastError, InvalidArgument

__all__ = [
    "POLICIES",
    "CastReport",
    "ValueSummary",
    "cast_block",
    "check_type_rule",
    "smallest_dtype",
]

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
    rtol = _check_cast_args(x, dst, policy, rtol, nan_to, errors, fill, out)
    xf = x.reshape(-1)
    direct = out is not None and out.flags.c_contiguous and out.flags.writeable
    yf = out.reshape(-1) if direct and out is not None else np.empty(x.size, dst)
    with np.errstate(all="ignore"):
        report = _cast_flat(x, xf, yf, dst, policy, rtol, nan_to, errors, fill, region, shape)
    if raise_on_violation and report.violations:
        raise CastError(report.error_message(name))
    if out is not None:
        if not direct:  # a strided out (a field of records): copy into it
            np.copyto(out, yf.reshape(x.shape))
        return out, report
    return yf.reshape(x.shape), report


def _check_cast_args(
    x: np.ndarray,
    dst: np.dtype,
    policy: str,
    rtol: Any,
    nan_to: Any,
    errors: str,
    fill: Any,
    out: np.ndarray | None,
) -> float:
    """Refuse the arguments :func:`cast_block` cannot honour; ``rtol`` as a float."""
    src = x.dtype
    check_type_rule(src, dst, policy)
    if not (isinstance(rtol, int | float) and math.isfinite(rtol) and rtol >= 0):
        raise InvalidArgument(f"rtol must be a finite number >= 0, got {rtol!r}")
    if errors not in ERRORS:
        raise InvalidArgument(f"errors must be one of {ERRORS}, got {errors!r}")
    if nan_to is not None:
        if policy != "clip":
            raise InvalidArgument("nan_to applies to the clip policy only")
        _check_value(nan_to, dst, "nan_to")
    if fill is not None:
        _check_value(fill, dst, "fill")
    if src.kind in "SU" and errors == "coerce" and _int_like(dst) and fill is None:
        raise CastError(
            f"errors='coerce' into {_dtname(dst)} needs a fill value for unparseable strings"
        )
    if out is not None and (out.shape != x.shape or out.dtype != dst):
        raise InvalidArgument(
            f"out has shape {out.shape} and dtype {out.dtype}; expected {x.shape} {dst}"
        )
    return float(rtol)


def _cast_flat(
    x: np.ndarray,
    xf: np.ndarray,
    yf: np.ndarray,
    dst: np.dtype,
    policy: str,
    rtol: float,
    nan_to: Any,
    errors: str,
    fill: Any,
    region: Any,
    shape: Any,
) -> CastReport:
    """Cast the flat ``xf`` (``x`` raveled) into ``yf``; the audit report."""
    src = x.dtype
    parse_bad: Mask = None
    if src.kind in "SU" and _is_numeric(dst):
        part, parse_bad = _cast_strings(xf, yf, policy, rtol, nan_to, errors, fill)
    elif _is_numeric(src) and _is_numeric(dst):
        fast = float_narrow(xf, yf, policy, rtol)
        if fast is not None:
            return _fast_report(x, xf, dst, policy, rtol, fast, region, shape)
        part = _convert(xf, yf, policy, rtol, nan_to)
    else:  # unsafe/same_kind/safe into strings etc.: numpy's cast, nothing to audit
        np.copyto(yf, xf, casting="unsafe")
        part = _Part()
    return _make_report(x, xf, dst, policy, rtol, errors, part, parse_bad, region, shape)


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
