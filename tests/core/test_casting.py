"""Value-aware casts (arraystore.core.casting, DESIGN.md §6).

The oracle is numpy itself: ``unsafe`` (and ``safe``/``same_kind`` where ``np.can_cast``
allows) must equal ``astype`` bit for bit; ``value`` must refuse exactly the values whose
numpy round trip ``x.astype(dst).astype(src)`` differs (NaN-aware) or whose integer value
changes; ``clip`` is checked against a per-element Python reference.
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from arraystore.core.casting import (
    POLICIES,
    CastReport,
    ValueSummary,
    cast_block,
    check_type_rule,
    smallest_dtype,
)
from arraystore.errors import CastError, InvalidArgument

NAMES = ["?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"]
DTYPES = [np.dtype(n) for n in NAMES]
HYP = settings(max_examples=150, deadline=None)

_INTS = [0, 1, -1, 2, 3, 127, 128, -128, -129, 255, 256, 2047, 2048, 2049, 4097]
_INTS += [32767, 32768, -32768, -32769, 65504, 65505, 65519, 65520, 65535, 65536, 16777217]
_INTS += [2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**32 - 1, 2**32, 2**53, 2**53 + 1]
_INTS += [2**62 + 1, 2**63 - 1, 2**63 - 512, -(2**63), -(2**63) + 1, 2**63, 2**64 - 1]
_FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 0.9, 1.5, 2.5, -2.5, 0.1, 1 / 3, 127.0, 127.5]
_FLOATS += [128.0, -128.0, -128.5, -129.0, 255.0, 255.9, 256.0, 65504.0, 65519.0, 65520.0]
_FLOATS += [1e10, 2.0**31, -(2.0**31), 2.0**32, 2.0**53 + 2, 2.0**63, -(2.0**63), 2.0**64]
_FLOATS += [-(2.0**63) - 2048, 1e20, 3.4e38, 3.5e38, 1e300, 6.1e-5, 6e-8, 1e-8, 1.2e-38]
_FLOATS += [1e-40, 1e-310, math.inf, -math.inf, math.nan]


def _quiet_astype(x: np.ndarray, dt: Any) -> np.ndarray:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return x.astype(dt)


def samples(dt: np.dtype) -> np.ndarray:
    """Extremes and awkward values of ``dt``: iinfo/finfo limits, tiny, subnormals, ±0,
    ±inf, NaN, and values on both sides of every other dtype's limits."""
    if dt.kind == "b":
        return np.array([False, True, True, False])
    if dt.kind in "iu":
        info = np.iinfo(dt)
        vals = sorted({v for v in _INTS if info.min <= v <= info.max} | {info.min, info.max})
        return np.array(vals, dtype=dt)
    comp = np.dtype(f"f{dt.itemsize // 2}") if dt.kind == "c" else dt
    fi = np.finfo(comp)
    extra = [float(fi.max), -float(fi.max), float(fi.tiny), float(fi.smallest_subnormal)]
    extra += [-float(fi.smallest_subnormal), float(np.nextafter(fi.max, 0, dtype=comp))]
    reals = _quiet_astype(np.array(_FLOATS + extra, dtype=np.float64), comp)
    if dt.kind == "f":
        return reals
    imags = _quiet_astype(np.array([0.0, -0.0, 1.0, 1e-30, math.nan, math.inf]), comp)
    pairs = [complex(r, 0.0) for r in reals.tolist()]
    pairs += [complex(r, i) for r in reals[:6].tolist() for i in imags.tolist()]
    pairs += [complex(math.nan, 0.0), complex(0.0, math.nan), complex(math.inf, -0.0)]
    return _quiet_astype(np.array(pairs, dtype=np.complex128), dt)


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint8)


def defined(x: np.ndarray, dst: np.dtype) -> np.ndarray:
    """Where numpy's complex -> integer cast is defined. For NaN/inf/out-of-range real
    parts numpy's own result depends on the memory layout (``x.astype`` and
    ``x.real.astype`` differ), and cast_block casts the real part, without numpy's
    ComplexWarning; everywhere else the results must be identical."""
    if x.dtype.kind != "c" or dst.kind not in "iu":
        return np.ones(x.shape, bool)
    info = np.iinfo(dst)
    with np.errstate(all="ignore"):
        t = np.trunc(x.real.astype(np.float64))
        return np.isfinite(t) & (t >= float(info.min)) & (t < float(info.max) + 1)


def assert_same_bits(y: np.ndarray, expected: np.ndarray, where: np.ndarray) -> None:
    np.testing.assert_array_equal(bits(y[where]), bits(expected[where]))


def nan_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "c":
        return nan_equal(a.real, b.real) & nan_equal(a.imag, b.imag)
    if a.dtype.kind == "f":
        return (a == b) | (np.isnan(a) & np.isnan(b))
    return np.asarray(a == b)


def value_refused(x: np.ndarray, dst: np.dtype) -> np.ndarray:
    """The oracle of the ``value`` policy: numpy's round trip differs (NaN-aware), NaN/inf
    goes into an integer, a finite value overflows to inf, or an integer changes its value
    (uint64 2**64-1 -> int64 -1 round-trips bitwise)."""
    y = _quiet_astype(x, dst)
    bad = ~nan_equal(_quiet_astype(y, x.dtype), x)
    if x.dtype.kind in "fc" and dst.kind in "biu":  # -inf -> int32 -> float16 is -inf again
        bad |= ~np.isfinite(x.real)
    if dst.kind in "fc":  # int32 -2**31 -> float16 -inf -> int32 -2**31 again
        finite = np.isfinite(x) if x.dtype.kind in "fc" else np.ones(x.shape, bool)
        bad |= finite & ~np.isfinite(y)
    if x.dtype.kind in "biu" and dst.kind in "biu":
        lo, hi = (0, 1) if dst.kind == "b" else (np.iinfo(dst).min, np.iinfo(dst).max)
        bad |= np.array([not (lo <= int(v) <= hi) for v in x.tolist()], dtype=bool)
    return bad


def clip_reference(x: np.ndarray, dst: np.dtype, nan_to: int) -> tuple[np.ndarray, int]:
    """Per-element Python reference of ``clip``: (result, number of clipped values)."""
    out = _quiet_astype(x, dst)
    clipped = 0
    for i, v in enumerate(x.tolist()):
        imag = v.imag if isinstance(v, complex) else 0.0
        real = v.real if isinstance(v, complex) else v
        changed = imag != 0 and dst.kind != "c"  # a NaN imaginary part counts
        if dst.kind in "biu":
            lo, hi = (0, 1) if dst.kind == "b" else (int(np.iinfo(dst).min), int(np.iinfo(dst).max))
            if isinstance(real, float) and math.isnan(real):
                t = nan_to
            elif isinstance(real, float) and math.isinf(real):
                t, changed = (hi if real > 0 else lo), True
            else:
                t = int(real) if isinstance(real, bool | int) else math.trunc(real)
                if not lo <= t <= hi:
                    t, changed = min(max(t, lo), hi), True
            out[i] = bool(t) if dst.kind == "b" else t
        else:
            comp = np.dtype(f"f{dst.itemsize // 2}") if dst.kind == "c" else dst
            fmax = float(np.finfo(comp).max)
            parts = [real, imag] if dst.kind == "c" else [real]
            fixed = []
            for p in parts:
                y = float(_quiet_astype(np.array([p]), comp)[0])
                if math.isfinite(float(p)) and not math.isfinite(y):
                    y, changed = math.copysign(fmax, float(p)), True
                fixed.append(y)
            if dst.kind == "c":
                out[i] = complex(fixed[0], fixed[1])
                out.real[i], out.imag[i] = fixed  # keep -0.0 exactly as cast
            else:
                out[i] = fixed[0]
            if not changed:
                out[i] = _quiet_astype(x[i : i + 1], dst)[0]
        clipped += changed
    return out, clipped


# ------------------------------------------------------------------- the full dtype matrix


@pytest.mark.parametrize("src", DTYPES, ids=NAMES)
@pytest.mark.parametrize("dst", DTYPES, ids=NAMES)
def test_matrix_unsafe_safe_same_kind(src: np.dtype, dst: np.dtype) -> None:
    x = samples(src)
    expected = _quiet_astype(x, dst)
    y, report = cast_block(x, dst, "unsafe")
    assert y.dtype == dst
    assert_same_bits(y, expected, defined(x, dst))
    assert report.count == x.size and report.violations == 0
    for policy in ("safe", "same_kind"):
        if np.can_cast(src, dst, casting=policy):
            y, _ = cast_block(x, dst, policy)
            assert_same_bits(y, expected, defined(x, dst))
            check_type_rule(src, dst, policy)
        else:
            with pytest.raises(CastError, match="numpy's type rules"):
                cast_block(x, dst, policy)


@pytest.mark.parametrize("src", DTYPES, ids=NAMES)
@pytest.mark.parametrize("dst", DTYPES, ids=NAMES)
def test_matrix_value(src: np.dtype, dst: np.dtype) -> None:
    x = samples(src)
    refused = value_refused(x, dst)
    y, report = cast_block(x, dst, "value", raise_on_violation=False)
    assert report.violations == int(refused.sum())
    assert report.first_bad == np.flatnonzero(refused)[:10].tolist()
    # where the policy allows, the result is numpy's, bit for bit
    ok = ~refused
    np.testing.assert_array_equal(bits(y[ok]), bits(_quiet_astype(x[ok], dst)))
    # element by element: refused exactly where the oracle says so
    for i in range(x.size):
        one = x[i : i + 1]
        if refused[i]:
            with pytest.raises(CastError, match="refused"):
                cast_block(one, dst, "value")
        else:
            cast_block(one, dst, "value")
    # disjoint categories add up; NaN/inf into floats is not an error
    assert report.violations == report.out_of_range + report.nan_inf + report.beyond_rtol
    if dst.kind in "fc" and src.kind in "fc":
        assert report.nonfinite >= int((~np.isfinite(x)).sum()) - report.out_of_range


@pytest.mark.parametrize("src", DTYPES, ids=NAMES)
@pytest.mark.parametrize("dst", DTYPES, ids=NAMES)
def test_matrix_clip(src: np.dtype, dst: np.dtype) -> None:
    x = samples(src)
    nan_to = 1 if dst.kind in "biu" else None
    y, report = cast_block(x, dst, "clip", nan_to=nan_to)
    expected, clipped = clip_reference(x, dst, nan_to or 0)
    np.testing.assert_array_equal(bits(y), bits(expected))
    assert report.clipped == clipped
    assert report.violations == 0
    if dst.kind in "fc":  # no inf created from finite values
        comp_x = [x.real, x.imag] if src.kind == "c" else [x]
        comp_y = [y.real, y.imag] if dst.kind == "c" else [y]
        for cx, cy in zip(comp_x, comp_y, strict=False):
            finite = np.isfinite(cx) if cx.dtype.kind in "fc" else np.ones(cx.shape, bool)
            assert np.isfinite(cy[finite]).all()


# ------------------------------------------------------------------------ hypothesis


def _arrays(dt: np.dtype) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(dt, st.integers(0, 40))


@st.composite
def _pair(draw: st.DrawFn) -> tuple[np.ndarray, np.dtype]:
    src = draw(st.sampled_from(DTYPES))
    dst = draw(st.sampled_from(DTYPES))
    return draw(_arrays(src)), dst


@HYP
@given(_pair())
def test_hypothesis_unsafe_and_value(pair: tuple[np.ndarray, np.dtype]) -> None:
    x, dst = pair
    y, _ = cast_block(x, dst, "unsafe")
    assert_same_bits(y, _quiet_astype(x, dst), defined(x, dst))
    refused = value_refused(x, dst)
    y, report = cast_block(x, dst, "value", raise_on_violation=False)
    assert report.violations == int(refused.sum())
    assert report.first_bad == np.flatnonzero(refused)[:10].tolist()
    assert_same_bits(y, _quiet_astype(x, dst), ~refused)


@HYP
@given(_pair())
def test_hypothesis_clip(pair: tuple[np.ndarray, np.dtype]) -> None:
    x, dst = pair
    y, report = cast_block(x, dst, "clip", nan_to=0 if dst.kind in "biu" else None)
    expected, clipped = clip_reference(x, dst, 0)
    np.testing.assert_array_equal(bits(y), bits(expected))
    assert report.clipped == clipped


@HYP
@given(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=9)),
    st.sampled_from(["i1", "u2", "f2", "f4", "?"]),
    st.integers(1, 4),
    st.integers(1, 4),
    st.sampled_from(["value", "clip", "unsafe"]),
)
def test_chunk_reports_merge_like_one_block(
    x: np.ndarray, dst: str, c0: int, c1: int, policy: str
) -> None:
    """Reports of chunks (with region + shape) merged in chunk order equal the report of
    the whole array; first_bad holds global flat indices."""
    kw: dict[str, Any] = {"raise_on_violation": False}
    if policy == "clip" and dst in ("i1", "u2", "?"):
        kw["nan_to"] = 0
    whole = cast_block(x, np.dtype(dst), policy, **kw)[1]
    merged = CastReport(whole.src, whole.dst, policy)
    for i in range(0, x.shape[0], c0):
        for j in range(0, x.shape[1], c1):
            region = (slice(i, i + c0), slice(j, j + c1))
            part = cast_block(x[region], np.dtype(dst), policy, region=region, shape=x.shape, **kw)
            merged = merged.merge(part[1])
    assert merged.to_dict() == whole.to_dict()


# ---------------------------------------------------------------- value policy details


def test_value_error_message_names_counts_indices_and_examples() -> None:
    x = np.zeros(120)
    x[17], x[52], x[99], x[110] = 300.5, np.nan, 1000.0, -200.0
    with pytest.raises(CastError) as info:
        cast_block(x, np.dtype("i1"), "value", name="price")
    msg = str(info.value)
    assert msg.startswith("cast of 'price' float64 -> int8 refused: 3 values out of range")
    assert "1 NaN/inf" in msg
    assert "(first at [17, 52, 99, 110]: 300.5, nan, 1000.0, -200.0)" in msg
    assert "\n" not in msg
    assert isinstance(info.value, ValueError)


def test_value_rtol_floats() -> None:
    x = np.array([0.1, 1 / 3, 1e10 + 1, -2.5, 0.0, -0.0])
    with pytest.raises(CastError, match="rounded"):
        cast_block(x, np.dtype("f4"), "value")
    y, report = cast_block(x, np.dtype("f4"), "value", rtol=1e-6)
    np.testing.assert_array_equal(y, x.astype(np.float32))
    assert report.rounded == 3 and report.beyond_rtol == 0
    assert 0 < report.max_rel_err <= 1e-6 and report.max_abs_err > 0
    assert np.signbit(y[5]) and not np.signbit(y[4])
    # a value that underflows to 0 is never within rtol < 1
    with pytest.raises(CastError):
        cast_block(np.array([1e-50]), np.dtype("f4"), "value", rtol=0.5)
    # float16 subnormals that flush to zero count as rounded
    _, r = cast_block(np.array([1e-8, 1e-4]), np.dtype("f2"), "value", raise_on_violation=False)
    assert r.rounded == 2 and r.violations == 2 and r.out_of_range == 0


def test_value_float_to_int_rtol_rounds_half_even() -> None:
    x = np.array([2.9999999, 3.0000001, -7.0000002, 2.5, 100.0])
    with pytest.raises(CastError, match="4 values rounded"):
        cast_block(x, np.dtype("i2"), "value")
    y, report = cast_block(x[[0, 1, 2, 4]], np.dtype("i2"), "value", rtol=1e-6)
    np.testing.assert_array_equal(y, [3, 3, -7, 100])
    assert report.rounded == 3 and report.violations == 0
    _, report = cast_block(x, np.dtype("i2"), "value", rtol=1e-6, raise_on_violation=False)
    assert report.violations == 1 and report.first_bad == [3]  # 2.5 -> 2: rel err 0.2
    # rounding up past the range is out of range
    _, report = cast_block(
        np.array([127.6]), np.dtype("i1"), "value", rtol=0.01, raise_on_violation=False
    )
    assert report.out_of_range == 1


def test_value_int_to_float_exactness() -> None:
    x = np.array([2**53, 2**53 + 1, 2**63 - 1, -(2**63)], dtype=np.int64)
    _, report = cast_block(x, np.dtype("f8"), "value", raise_on_violation=False)
    assert report.violations == 2 and report.first_bad == [1, 2]
    assert report.max_abs_err == 1.0 and report.out_of_range == 0
    _, report = cast_block(x, np.dtype("f8"), "value", rtol=1e-15)
    assert report.violations == 0 and report.rounded == 2
    u = np.array([2**64 - 1, 2**63, 1], dtype=np.uint64)
    _, report = cast_block(u, np.dtype("f4"), "value", raise_on_violation=False)
    assert report.first_bad == [0] and report.max_abs_err == 1.0
    _, report = cast_block(
        np.array([65519, 65520, -70000]), np.dtype("f2"), "value", raise_on_violation=False
    )
    assert report.out_of_range == 2 and report.rounded == 1


def test_same_width_signed_unsigned_reinterpretation_is_refused() -> None:
    """uint64 2**64-1 -> int64 -1 round-trips bitwise, but the value changed."""
    x = np.array([2**64 - 1, 5], dtype=np.uint64)
    with pytest.raises(CastError, match="1 value out of range"):
        cast_block(x, np.dtype("i8"), "value")
    y, r = cast_block(x, np.dtype("i8"), "clip")
    np.testing.assert_array_equal(y, [2**63 - 1, 5])
    assert r.clipped == 1


def test_complex_to_real() -> None:
    x = np.array([1 + 0j, 2 - 0j, 3 + 1j, complex(4, np.nan), complex(np.nan, 0)])
    _, r = cast_block(x, np.dtype("f8"), "value", raise_on_violation=False)
    assert r.out_of_range == 2 and r.nonzero_imag == 2 and r.violations == 2
    assert r.nonfinite == 1
    with pytest.raises(CastError, match=r"2 with a non-zero imaginary part"):
        cast_block(x, np.dtype("f8"), "value")
    y, _ = cast_block(x[[0, 1, 4]], np.dtype("f8"), "value")
    np.testing.assert_array_equal(y, [1.0, 2.0, np.nan])
    y, r = cast_block(x, np.dtype("i4"), "clip", nan_to=-1)
    np.testing.assert_array_equal(y, [1, 2, 3, 4, -1])
    assert r.clipped == 2
    _, r = cast_block(np.array([0j, 1j, 1 + 0j]), np.dtype("?"), "value", raise_on_violation=False)
    assert r.first_bad == [1]


def test_bool_targets_take_only_zero_and_one() -> None:
    x = np.array([0, 1, 2, -1, 1])
    _, r = cast_block(x, np.dtype("?"), "value", raise_on_violation=False)
    assert r.out_of_range == 2 and r.first_bad == [2, 3]
    y, r = cast_block(x, np.dtype("?"), "clip")
    np.testing.assert_array_equal(y, [False, True, True, False, True])
    f = np.array([0.0, -0.0, 1.0, 0.5, np.nan, np.inf])
    _, r = cast_block(f, np.dtype("?"), "value", raise_on_violation=False)
    assert (r.rounded, r.nan_inf, r.violations) == (1, 2, 3)
    y, r = cast_block(f, np.dtype("?"), "clip", nan_to=0)
    np.testing.assert_array_equal(y, [False, False, True, False, False, True])


def test_negative_zero_into_int_is_fine() -> None:
    y, r = cast_block(np.array([-0.0, 0.0], dtype=np.float32), np.dtype("u1"), "value")
    np.testing.assert_array_equal(y, [0, 0])
    assert r.violations == 0 and r.rounded == 0


# --------------------------------------------------------------------------- clip details


def test_clip_ints_and_floats() -> None:
    x = np.array([-1e10, -129.7, -128.9, 3.7, 127.9, 128.0, np.inf, -np.inf, np.nan])
    y, r = cast_block(x, np.dtype("i1"), "clip", nan_to=0)
    np.testing.assert_array_equal(y, [-128, -128, -128, 3, 127, 127, 127, -128, 0])
    assert r.clipped == 5 and r.nan_inf == 3 and r.out_of_range == 3
    y, r = cast_block(np.array([1e39, -1e39, 1.0, np.inf, np.nan]), np.dtype("f4"), "clip")
    fmax = np.finfo(np.float32).max
    np.testing.assert_array_equal(y, [fmax, -fmax, 1.0, np.inf, np.nan])
    assert r.clipped == 2 and r.nonfinite == 2
    y, r = cast_block(np.array([70000, -70000, 5], dtype=np.int32), np.dtype("f2"), "clip")
    np.testing.assert_array_equal(y, [65504, -65504, 5])
    assert r.clipped == 2


def test_clip_nan_into_int_needs_nan_to() -> None:
    x = np.array([1.0, np.nan, 2.0, np.nan])
    with pytest.raises(CastError, match="2 NaN into an integer target"):
        cast_block(x, np.dtype("i4"), "clip")
    _, r = cast_block(x, np.dtype("i4"), "clip", raise_on_violation=False)
    assert r.unhandled_nan == 2 and r.violations == 2 and r.first_bad == [1, 3]
    with pytest.raises(InvalidArgument, match="nan_to"):
        cast_block(x, np.dtype("i1"), "clip", nan_to=1000)
    with pytest.raises(InvalidArgument, match="nan_to"):
        cast_block(x, np.dtype("i1"), "clip", nan_to=1.5)
    with pytest.raises(InvalidArgument, match="clip"):
        cast_block(x, np.dtype("i1"), "value", nan_to=0)


# ------------------------------------------------------------------------------ strings


def test_strings_to_ints() -> None:
    x = np.array([" 1", "2 ", "-3", "+4", "3.0", "1e3", "١٢"])
    y, r = cast_block(x, np.dtype("i2"), "value")
    np.testing.assert_array_equal(y, [1, 2, -3, 4, 3, 1000, 12])
    assert r.parse_errors == 0 and r.violations == 0
    with pytest.raises(CastError, match="1 value rounded"):
        cast_block(np.array(["1.5", "2"]), np.dtype("i2"), "value")
    y, _ = cast_block(np.array(["1.5", "-1.5"]), np.dtype("i2"), "clip")
    np.testing.assert_array_equal(y, [1, -1])
    big = np.array(["99999999999999999999", "18446744073709551615", "-1"])
    _, r = cast_block(big, np.dtype("u8"), "value", raise_on_violation=False)
    assert r.out_of_range == 2 and r.first_bad == [0, 2]
    y, _ = cast_block(big[1:2], np.dtype("u8"), "value")
    assert int(y[0]) == 2**64 - 1
    with pytest.raises(CastError, match="NaN/inf"):
        cast_block(np.array(["nan", "1"]), np.dtype("i4"), "value")
    y, _ = cast_block(np.array(["0", "1"]), np.dtype("?"), "value")
    np.testing.assert_array_equal(y, [False, True])


def test_strings_to_floats() -> None:
    x = np.array([b"1.5", b" -2 ", b"nan", b"-inf", b"1e3", b"1_000"], dtype="S8")
    y, r = cast_block(x, np.dtype("f8"), "value")
    np.testing.assert_array_equal(y, [1.5, -2.0, np.nan, -np.inf, 1000.0, 1000.0])
    assert r.nonfinite == 2 and r.violations == 0 and r.src == "S8"
    # decimal text is compared with its float64 (or int64) parse
    with pytest.raises(CastError, match="rounded"):
        cast_block(np.array(["0.1"]), np.dtype("f4"), "value")
    cast_block(np.array(["0.1"]), np.dtype("f4"), "value", rtol=1e-7)
    with pytest.raises(CastError, match="rounded"):
        cast_block(np.array(["9007199254740993"]), np.dtype("f8"), "value")
    # text that overflows the float is out of range, not a passed-through inf
    _, r = cast_block(np.array(["1e999", "inf"]), np.dtype("f8"), "value", raise_on_violation=False)
    assert (r.out_of_range, r.nonfinite, r.first_bad) == (1, 1, [0])
    y, _ = cast_block(np.array(["-1e999", "1e39"]), np.dtype("f4"), "clip")
    np.testing.assert_array_equal(y, [-np.finfo(np.float32).max, np.finfo(np.float32).max])
    y, _ = cast_block(np.array(["1+2j", "3", "-0.5j"]), np.dtype("c8"), "value")
    np.testing.assert_array_equal(y, np.array([1 + 2j, 3, -0.5j], dtype=np.complex64))


def test_strings_parse_errors() -> None:
    x = np.array(["1", "abc", "", "2.5", "  ", "1.5.", "0x10"])
    with pytest.raises(CastError) as info:
        cast_block(x, np.dtype("f8"), "unsafe", name="col")
    assert "5 unparseable strings" in str(info.value)
    assert "(first at [1, 2, 4, 5, 6]: 'abc', '', '  ', '1.5.', '0x10')" in str(info.value)
    y, r = cast_block(x, np.dtype("f8"), "value", errors="coerce")
    np.testing.assert_array_equal(y, [1, np.nan, np.nan, 2.5, np.nan, np.nan, np.nan])
    assert (r.parse_errors, r.coerced, r.violations) == (5, 5, 0)
    with pytest.raises(CastError, match="fill"):
        cast_block(x, np.dtype("i4"), "value", errors="coerce")
    y, r = cast_block(x[[0, 1, 2]], np.dtype("i4"), "value", errors="coerce", fill=-1)
    np.testing.assert_array_equal(y, [1, -1, -1])
    _, r = cast_block(x, np.dtype("f8"), "value", raise_on_violation=False)
    assert r.violations == 5 and r.parse_errors == 5
    with pytest.raises(InvalidArgument, match="errors"):
        cast_block(x, np.dtype("f8"), "value", errors="ignore")


def test_strings_slow_path_finds_every_bad_entry() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(-(10**6), 10**6, 5000).astype(str).astype(object)
    bad = np.sort(rng.choice(5000, 37, replace=False))
    for k, i in enumerate(bad):
        x[i] = ["NA", "", "n/a", "1,5", "--3"][k % 5]
    x = x.astype("U12")
    y, r = cast_block(x, np.dtype("i4"), "value", errors="coerce", fill=-(2**31))
    assert r.parse_errors == 37 and r.first_bad == bad[:10].tolist()
    good = np.ones(5000, bool)
    good[bad] = False
    np.testing.assert_array_equal(y[good], x[good].astype(np.int64))
    assert (y[bad] == -(2**31)).all()


# ------------------------------------------------------------------------- type rules


def test_type_rules() -> None:
    check_type_rule(np.dtype("i8"), np.dtype("i1"), "unsafe")
    with pytest.raises(CastError) as info:
        check_type_rule(np.dtype("i8"), np.dtype("i1"), "safe")
    assert str(info.value) == (
        "cannot cast int64 to int8 under casting='safe' (numpy's type rules); "
        "use --casting value to cast when every value fits"
    )
    check_type_rule(np.dtype("f8"), np.dtype("f4"), "same_kind")
    for policy in ("value", "clip"):
        with pytest.raises(CastError, match="casting to strings is not supported"):
            check_type_rule(np.dtype("f8"), np.dtype("U10"), policy)
        with pytest.raises(CastError, match="object"):
            check_type_rule(np.dtype("O"), np.dtype("f8"), policy)
        with pytest.raises(CastError):
            check_type_rule(np.dtype("M8[s]"), np.dtype("f8"), policy)
        check_type_rule(np.dtype("S5"), np.dtype("f8"), policy)
    with pytest.raises(InvalidArgument, match="policy"):
        check_type_rule(np.dtype("f8"), np.dtype("f4"), "nope")
    with pytest.raises(InvalidArgument, match="field"):
        check_type_rule(np.dtype([("a", "f8")]), np.dtype("f4"), "unsafe")
    assert set(POLICIES) == {"unsafe", "same_kind", "safe", "value", "clip"}
    y, r = cast_block(np.array([1.5, 2.0]), np.dtype("U8"), "unsafe")
    np.testing.assert_array_equal(y, np.array([1.5, 2.0]).astype("U8"))
    assert r.count == 2


def test_out_parameter_and_shapes() -> None:
    x = np.arange(12, dtype=np.int64).reshape(3, 4) * 20
    out = np.empty((3, 4), np.uint8)
    y, r = cast_block(x, np.dtype("u1"), "clip", out=out)
    assert y is out
    np.testing.assert_array_equal(out, np.minimum(x, 255))
    base = np.zeros((3, 8), np.uint8)
    strided = base[:, ::2]
    y, _ = cast_block(x, np.dtype("u1"), "clip", out=strided)
    assert y is strided
    np.testing.assert_array_equal(base[:, ::2], np.minimum(x, 255))
    with pytest.raises(InvalidArgument, match="out"):
        cast_block(x, np.dtype("u1"), "clip", out=np.empty((3, 4), np.int8))
    y, r = cast_block(np.array(3.0), np.dtype("i1"), "value")
    assert y.shape == () and y == 3
    y, r = cast_block(np.zeros((0, 3)), np.dtype("i1"), "value")
    assert y.shape == (0, 3) and r.count == 0
    _, r = cast_block(
        x,
        np.dtype("i1"),
        "value",
        region=(slice(4, 7), 10),
        shape=(10, 20),
        raise_on_violation=False,
    )
    assert r.first_bad == [(4 + i // 4) * 20 + 10 + i % 4 for i in range(7, 12)]
    with pytest.raises(InvalidArgument, match="region"):
        cast_block(x, np.dtype("i1"), "value", region=(slice(8, 11), 0), shape=(10, 20))
    # a subarray field: block (records, 4) of an array of 10 records
    _, r = cast_block(
        x, np.dtype("i1"), "value", region=(slice(5, 8),), shape=(10,), raise_on_violation=False
    )
    assert r.first_bad == [5 * 4 + i for i in range(7, 12)]
    with pytest.raises(InvalidArgument):
        cast_block(x, np.dtype("i1"), "value", region=(0, 0))
    with pytest.raises(InvalidArgument, match="rtol"):
        cast_block(x, np.dtype("i1"), "value", rtol=-1)


# ------------------------------------------------------------------------------ reports


def test_report_merge_and_json() -> None:
    a = cast_block(
        np.array([1.5, 300.0, 2.0]),
        np.dtype("i1"),
        "value",
        region=(slice(10, 13),),
        shape=(20,),
        raise_on_violation=False,
    )[1]
    b = cast_block(
        np.array([np.nan, 1.0, 2.0]),
        np.dtype("i1"),
        "value",
        region=(slice(0, 3),),
        shape=(20,),
        raise_on_violation=False,
    )[1]
    m = a.merge(b)
    assert (m.count, m.violations, m.out_of_range, m.nan_inf, m.rounded) == (6, 3, 1, 1, 1)
    assert m.first_bad == [0, 10, 11] and m.examples == ["nan", "1.5", "300.0"]
    data = json.loads(json.dumps(m.to_dict()))
    back = CastReport.from_dict(data)
    assert back.to_dict() == m.to_dict()
    assert back.merge(CastReport("float64", "int8", "value")).to_dict() == m.to_dict()
    with pytest.raises(InvalidArgument, match="merge"):
        m.merge(CastReport("float32", "int8", "value"))
    with pytest.raises(InvalidArgument, match="merge"):
        m.merge(cast_block(np.array([1.0]), np.dtype("i1"), "clip")[1])
    # an empty report (e.g. the start of a cast) merges with any policy
    empty = CastReport.empty(np.dtype("f8"), np.dtype("i1"))
    assert (empty.src, empty.dst, empty.count) == ("float64", "int8", 0)
    clip = cast_block(np.array([1e9]), np.dtype("i1"), "clip")[1]
    assert empty.merge(clip).to_dict() == clip.to_dict() == clip.merge(empty).to_dict()
    # violating indices win over merely changed ones
    audit = cast_block(np.array([1.0, 1.0]), np.dtype("i1"), "value")[1]
    assert audit.first_bad == [] and audit.ok
    c = cast_block(np.array([0.5]), np.dtype("f2"), "value", rtol=0.1, region=(0,), shape=(5,))[1]
    assert c.rounded == 0 and c.first_bad == []
    d = cast_block(
        np.array([0.1, 1e9]),
        np.dtype("f2"),
        "value",
        rtol=0.01,
        region=(3,),
        shape=(5,),
        raise_on_violation=False,
    )[1]
    assert d.first_bad == [4]
    e = cast_block(
        np.array([0.1, 0.2]), np.dtype("f2"), "value", rtol=0.01, region=(1,), shape=(5,)
    )[1]
    assert e.first_bad == [] and e.rounded == 2
    assert d.merge(e).first_bad == [4] and e.merge(d).first_bad == [4]


def test_report_summary_of_an_unsafe_cast() -> None:
    _, r = cast_block(np.array([1.25, 300.0, np.nan]), np.dtype("i1"), "unsafe")
    assert r.violations == 0 and r.ok
    assert r.summary().startswith("1 value out of range, 1 NaN/inf, 1 rounded")
    assert r.first_bad == [0, 1, 2]


# ------------------------------------------------------------------------ smallest_dtype


def _auto(x: np.ndarray, **kw: Any) -> np.dtype:
    rtol = kw.pop("rtol", 0.0)
    s = ValueSummary.from_block(x, rtol=rtol, allow_half=kw.get("allow_half", False))
    return smallest_dtype(s, x.dtype, rtol=rtol, **kw)


def test_smallest_dtype_examples() -> None:
    assert _auto(np.arange(201, dtype=np.int64)) == np.uint8
    assert _auto(np.array([-5, 30000], dtype=np.int64)) == np.int16
    assert _auto(np.array([-5, 100], dtype=np.int32)) == np.int8
    assert _auto(np.array([0, 2**40], dtype=np.int64)) == np.int64
    assert _auto(np.array([0, 2**63], dtype=np.uint64)) == np.uint64
    assert _auto(np.array([True, False])) == np.bool_
    assert _auto(np.zeros(0, np.int64)) == np.int64
    assert _auto(np.zeros(0, np.float64), allow_float_to_int=True) == np.float64
    f32 = np.random.default_rng(1).standard_normal(100).astype(np.float32).astype(np.float64)
    assert _auto(f32) == np.float32
    assert _auto(np.array([0.1, 0.2])) == np.float64
    assert _auto(np.array([0.1, 0.2]), rtol=1e-6) == np.float32
    assert _auto(np.array([0.1, 0.2]), rtol=1e-3, allow_half=True) == np.float16
    assert _auto(np.array([0.5, 1.0, np.nan, np.inf]), allow_half=True) == np.float16
    assert _auto(np.array([0.5, 1.0, 1e6]), allow_half=True) == np.float32
    integral = np.arange(1001, dtype=np.float64)
    assert _auto(integral, allow_float_to_int=True) == np.uint16
    assert _auto(integral) == np.float32
    assert _auto(np.append(integral, np.nan), allow_float_to_int=True) == np.float32
    assert _auto(np.array([-3.0, 100.0], dtype=np.float16), allow_float_to_int=True) == np.int8
    assert _auto(np.array([2.0**100]), allow_float_to_int=True) == np.float32
    assert _auto(np.array([1 + 2j, 0.5j])) == np.complex64
    assert _auto(np.array([1 + 0.1j])) == np.complex128
    # summaries are mergeable and JSON-able
    s = ValueSummary.from_block(integral[:500]).merge(ValueSummary.from_block(integral[500:]))
    assert s.to_dict() == ValueSummary.from_block(integral).to_dict()
    d = json.loads(json.dumps(s.to_dict()))
    assert smallest_dtype(d, np.dtype("f8"), allow_float_to_int=True) == np.uint16
    with pytest.raises(InvalidArgument, match="rtol"):
        smallest_dtype(s, np.dtype("f8"), rtol=0.1)


def _roundtrips(x: np.ndarray, dt: np.dtype) -> bool:
    return bool(nan_equal(_quiet_astype(_quiet_astype(x, dt), x.dtype), x).all())


@HYP
@given(
    st.sampled_from(["i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8"]),
    st.data(),
)
def test_smallest_dtype_ints_property(name: str, data: st.DataObject) -> None:
    x = data.draw(hnp.arrays(np.dtype(name), st.integers(1, 30)))
    chunks = [x[: len(x) // 2], x[len(x) // 2 :]]
    s = ValueSummary.from_block(chunks[0]).merge(ValueSummary.from_block(chunks[1]))
    dt = smallest_dtype(s, x.dtype)
    assert dt.itemsize <= x.dtype.itemsize
    assert int(x.min()) >= np.iinfo(dt).min and int(x.max()) <= np.iinfo(dt).max
    assert _roundtrips(x, dt)
    smaller = [
        t
        for t in (
            np.dtype("u1"),
            np.dtype("i1"),
            np.dtype("u2"),
            np.dtype("i2"),
            np.dtype("u4"),
            np.dtype("i4"),
        )
        if t.itemsize < dt.itemsize
    ]
    for t in smaller:
        assert not (np.iinfo(t).min <= int(x.min()) and int(x.max()) <= np.iinfo(t).max)


@HYP
@given(
    st.sampled_from(["f2", "f4", "f8", "c8", "c16"]),
    st.sampled_from(["f2", "f4", "f8", "c8", "c16"]),
    st.booleans(),
    st.booleans(),
    st.data(),
)
def test_smallest_dtype_floats_property(
    origin: str, store_as: str, half: bool, to_int: bool, data: st.DataObject
) -> None:
    """Values born in ``origin`` stored as ``store_as``: the pick round-trips every value
    and is never larger than the source."""
    if (origin[0] == "c") != (store_as[0] == "c"):
        store_as = origin
    x = _quiet_astype(data.draw(hnp.arrays(np.dtype(origin), st.integers(0, 30))), store_as)
    if data.draw(st.booleans()):
        x = np.round(x.real if x.dtype.kind == "c" else x)
    s = ValueSummary.from_block(x, allow_half=half)
    dt = smallest_dtype(s, x.dtype, allow_half=half, allow_float_to_int=to_int)
    assert dt.itemsize <= x.dtype.itemsize
    assert _roundtrips(x, dt)
    if dt.kind in "iu":
        assert np.isfinite(x).all()
    if origin == "f4" and store_as == "f8" and not to_int and x.size:  # empty: kept
        assert dt.itemsize <= 4


# ------------------------------------------------------------------------------- bfloat16


def test_bfloat16_target_and_source() -> None:
    pytest.importorskip("ml_dtypes")
    from arraystore.core.dtypes import bfloat16

    bf = bfloat16()
    x = np.array([1.0, 1.01, 3.4e38, -3.4e38, np.nan, 2.0**-130, 256.0, 257.0], dtype=np.float32)
    y, r = cast_block(x, bf, "unsafe")
    np.testing.assert_array_equal(bits(y), bits(x.astype(bf)))
    assert (r.out_of_range, r.nonfinite) == (2, 1)
    _, r = cast_block(x, bf, "value", raise_on_violation=False)
    assert r.violations == int(value_refused(x, bf).sum()) and r.first_bad[:3] == [1, 2, 3]
    y, _ = cast_block(x[[0, 1, 6, 7]], bf, "value", rtol=1e-2)
    np.testing.assert_array_equal(bits(y), bits(x[[0, 1, 6, 7]].astype(bf)))
    y, r = cast_block(x, bf, "clip")
    assert float(y[2]) == float(np.asarray(3.3895313892515355e38).astype(bf))
    assert float(y[3]) < 0 and np.isfinite(y[:4].astype(np.float32)).all() and r.clipped == 2
    # bfloat16 source: exact into float32, value rules into ints / float16
    b = np.array([1.5, 300.0, np.nan, 1e10], dtype=bf)
    y, r = cast_block(b, np.dtype("f4"), "value")
    np.testing.assert_array_equal(bits(y), bits(b.astype(np.float32)))
    _, r = cast_block(b, np.dtype("i2"), "value", raise_on_violation=False)
    assert (r.rounded, r.out_of_range, r.nan_inf) == (1, 1, 1)
    _, r = cast_block(b, np.dtype("f2"), "value", raise_on_violation=False)
    assert r.out_of_range == 1 and r.first_bad == [3]


def test_bfloat16_smallest_dtype() -> None:
    pytest.importorskip("ml_dtypes")
    x = np.array([2.0**33, 0.5, -3.0, np.nan])
    assert _auto(x, allow_half=True).name == "bfloat16"
    assert _auto(np.array([0.5, 3.0]), allow_half=True) == np.float16
    assert _auto(x) == np.float32


REALS = [d for d in DTYPES if d.kind != "c"]


@pytest.mark.parametrize("other", REALS, ids=[d.str for d in REALS])
def test_bfloat16_matrix(other: np.dtype) -> None:
    """bfloat16 both ways against numpy's casts (ml_dtypes registers them)."""
    pytest.importorskip("ml_dtypes")
    from arraystore.core.dtypes import bfloat16

    bf = bfloat16()

    def as_f8(a: np.ndarray) -> np.ndarray:
        return _quiet_astype(a, np.float64) if a.dtype == bf else a

    for x, dst in ((samples(other), bf), (_quiet_astype(samples(np.dtype("f4")), bf), other)):
        y, _ = cast_block(x, dst, "unsafe")
        if x.dtype.kind in "fV" and dst.kind in "iu":  # NaN/inf/out of range: undefined
            where = defined(_quiet_astype(as_f8(x), np.complex128), dst)
        else:
            where = np.ones(x.shape, bool)
        assert_same_bits(y, _quiet_astype(x, dst), where)
        back = as_f8(_quiet_astype(_quiet_astype(x, dst), x.dtype))
        xf = as_f8(x)
        refused = ~nan_equal(back, xf)
        yf = as_f8(_quiet_astype(x, dst))
        if dst.kind in "biu":
            refused |= ~np.isfinite(xf)
            if xf.dtype.kind in "biu":
                lo, hi = (0, 1) if dst.kind == "b" else (np.iinfo(dst).min, np.iinfo(dst).max)
                refused |= np.array([not lo <= int(v) <= hi for v in xf.tolist()], dtype=bool)
        else:
            finite = np.isfinite(xf) if xf.dtype.kind == "f" else np.ones(x.shape, bool)
            refused |= finite & ~np.isfinite(yf)
        _, report = cast_block(x, dst, "value", raise_on_violation=False)
        assert report.violations == int(refused.sum())
        assert report.first_bad == np.flatnonzero(refused)[:10].tolist()


def test_big_endian_sources() -> None:
    x = np.array(["12", "-3", "4.5"], dtype=">U4")
    y, _ = cast_block(x, np.dtype("f8"), "value")
    np.testing.assert_array_equal(y, [12.0, -3.0, 4.5])
    f = np.array([1.5, 300.0, 2.0], dtype=">f8")
    _, r = cast_block(f, np.dtype("i1"), "value", raise_on_violation=False)
    assert (r.src, r.violations, r.first_bad) == ("float64", 2, [0, 1])
    y, r = cast_block(f, np.dtype("<f8"), "value")
    np.testing.assert_array_equal(y, f)
    assert y.dtype == np.dtype("<f8") and r.violations == 0


_TEXT = st.one_of(
    st.floats().map(repr),
    st.integers(-(2**70), 2**70).map(str),
    st.text(alphabet="0123456789+-.eE_ \tnaifINFx", max_size=8),
)


@HYP
@given(st.lists(_TEXT, max_size=40), st.sampled_from(["U", "S"]))
def test_hypothesis_string_parsing_matches_numpy(texts: list[str], kind: str) -> None:
    """Into float64 every string gets numpy's own parse of that one string, or NaN and a
    parse error when numpy refuses it."""
    x = np.array(texts, dtype=kind if texts else f"{kind}1")
    expected = np.full(len(texts), np.nan)
    bad = np.zeros(len(texts), bool)
    for i in range(len(texts)):
        try:
            expected[i] = x[i : i + 1].astype(np.float64)[0]
        except (ValueError, OverflowError):
            bad[i] = True
    y, r = cast_block(x, np.dtype("f8"), "unsafe", errors="coerce")
    np.testing.assert_array_equal(bits(y), bits(expected))
    assert r.parse_errors == int(bad.sum()) == r.coerced and r.violations == 0
    y, r = cast_block(x, np.dtype("f8"), "unsafe", raise_on_violation=False)
    np.testing.assert_array_equal(bits(y), bits(expected))
    assert r.violations == int(bad.sum())
    if bad.any():  # else first_bad lists the values the cast changed (rounded ints)
        assert r.first_bad == np.flatnonzero(bad)[:10].tolist()


SIGNED_ZEROS = ["-0", "-0.0", "-0e5", "  -0 ", "-00", "\t-0\n", "+0", "0", "-0.", "-.0", "-0E-3"]


@pytest.mark.parametrize("kind", ["U", "S"])
@pytest.mark.parametrize("dst", ["f2", "f4", "f8", "c8", "c16", "bfloat16"])
@pytest.mark.parametrize("policy", ["value", "unsafe", "clip"])
def test_signed_zero_strings(kind: str, dst: str, policy: str) -> None:
    """Issue 15 #10: ``'-0'`` parsed to +0.0 (the exact int64 parse of integer-looking
    strings lost the sign); numpy and ``float()`` give -0.0."""
    from arraystore.core.dtypes import parse_dtype

    x = np.array(SIGNED_ZEROS, dtype=kind)
    y, r = cast_block(x, parse_dtype(dst), policy)
    assert r.violations == 0 and r.rounded == 0
    real = (y.real if y.dtype.kind == "c" else y).astype(np.float64)
    want = np.array([math.copysign(1.0, float(s)) < 0 for s in SIGNED_ZEROS])
    np.testing.assert_array_equal(np.signbit(real), want)
    np.testing.assert_array_equal(real, 0.0)
    if dst != "bfloat16":
        np.testing.assert_array_equal(bits(y), bits(x.astype(dst)))  # numpy's own parse


def test_integer_strings_beyond_int64_are_checked_exactly() -> None:
    """Issue 15 #16 (cast side): integer literals beyond int64/uint64 were parsed as
    float64 and never value-checked, so ``'99999999999999999999999'`` became 1e+23 under
    the value policy; like any integer -> float cast the rounding is now counted."""
    x = np.array(["99999999999999999999999", "18446744073709551616", "-36893488147419103232", "7"])
    with pytest.raises(CastError, match="rounded"):
        cast_block(x, np.dtype("f8"), "value")
    y, r = cast_block(x, np.dtype("f8"), "unsafe")
    np.testing.assert_array_equal(y, x.astype("f8"))  # numpy's values
    assert (r.rounded, r.first_bad) == (1, [0])  # 2**64 and -2**65 are exact
    assert r.max_abs_err == float(99999999999999999999999 - int(1e23))
    _, r = cast_block(x, np.dtype("f8"), "value", rtol=1e-15)  # within the tolerance
    assert r.violations == 0
    _, r = cast_block(x, np.dtype("f4"), "value", raise_on_violation=False)
    assert r.first_bad == [0]  # 2**64 and -2**65 are exact in float32 too
    huge = np.array(["9" * 100_000, "-0"], dtype="S")  # overflows: out of range, fast
    _, r = cast_block(huge, np.dtype("f8"), "value", raise_on_violation=False)
    assert (r.out_of_range, r.violations) == (1, 1)
    # clip saturates an overflowing literal (309..400 digits reached a float() of the
    # exact integer: OverflowError); it is clipped, not also "rounded"
    big = np.array(["1" * 400, "-" + "9" * 330, "1" * 50, "-0"])
    for dst in ("f8", "f4", "c16"):
        y, r = cast_block(big, np.dtype(dst), "clip", raise_on_violation=False)
        top = np.finfo(dst).max
        real = y.real if dst == "c16" else y
        np.testing.assert_array_equal(real[:2], [top, -top])
        # '1' * 50 is rounded in float64 (1.111e49), clipped in float32
        assert (r.clipped, r.rounded) == ((3, 0) if dst == "f4" else (2, 1))
