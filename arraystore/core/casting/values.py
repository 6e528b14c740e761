"""Per-value conversion with the audit masks (numbers and strings), for cast_block."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np

from arraystore.core.casting.rules import (
    _BAD_PARSE,
    _PARSE_BLOCK,
    _PARSE_LEAF,
    _finfo,
    _ibounds,
    _int_like,
    _scalar,
    _superset,
    _wide,
)
from arraystore.core.dtypes import is_bfloat16

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


def _negative_zeros(y: np.ndarray, zeros: np.ndarray, codes: np.ndarray) -> None:
    """``"-0"`` is -0.0 for numpy and ``float()``; the exact int64 parse of the
    integer-looking strings lost the sign: put it back (float/complex targets)."""
    if len(zeros):
        y[zeros[(codes[zeros] == ord("-")).any(axis=1)]] = -0.0


def _int_text(raw: bytes) -> int | None:
    """The integer an integer-looking string writes (None: too long for any float)."""
    text = raw.strip(_WS.encode() + b"\0")
    digits = text.lstrip(b"+-").lstrip(b"0") or b"0"
    if len(digits) > 400:  # beyond every finite float: counted out of range already
        return None
    return -int(digits) if text.startswith(b"-") else int(digits)


def _exact_big_ints(
    full: _Part, idx: np.ndarray, codes: np.ndarray, y: np.ndarray, rtol: float
) -> None:
    """Integer-looking strings beyond int64/uint64 were parsed as float64; like any
    integer -> float cast, a value the target holds inexactly is *rounded*
    (``"99999999999999999999999"`` is not 1e+23): mark them against the exact integer."""
    if not len(idx):
        return
    got = (y[idx].real if y.dtype.kind == "c" else y[idx]).astype(np.float64)
    rounded = np.zeros(len(idx), bool)
    diff = np.zeros(len(idx))
    for k, (raw, v) in enumerate(zip(_ascii(codes, idx), got, strict=True)):
        exact = _int_text(bytes(raw)) if math.isfinite(v) else None
        if exact is not None and exact != int(v):
            rounded[k] = True
            diff[k] = float(abs(exact - int(v)))
    n = len(y)
    rel = diff / np.maximum(np.abs(got), 1.0)
    for name, sub, kind in (
        ("rounded", rounded, bool),
        ("tol_bad", _tol(rounded, rel, rtol), bool),
        ("diff", diff, np.float64),
        ("rel", rel, np.float64),
    ):
        target = getattr(full, name)
        if target is None:
            if not rounded.any():
                continue
            target = np.zeros(n, kind)
            setattr(full, name, target)
        target[idx] = False if sub is None else sub


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
    if not _int_like(dst):
        _negative_zeros(y, ci[iok][ivals[iok] == 0], codes)
        big = np.zeros(n, bool)
        big[ci[~iok]] = True
        big[num_idx[~nok]] = False
        if full.oor is not None:  # overflowed (clip: saturated): counted, not "rounded"
            big &= ~full.oor
        _exact_big_ints(full, np.flatnonzero(big), codes, y, rtol)
    if bad.any():
        if errors == "coerce":
            value = fill if fill is not None else np.nan
        else:
            value = 0 if _int_like(dst) else np.nan
        np.copyto(y, _scalar(value, dst), where=bad)
        return full, bad
    return full, None
