"""Optional fused cast-and-audit kernel (numba) for float64 -> float32.

One pass over the block converts every value and gathers the whole audit: non-finite
inputs, overflows to inf (out of range), rounded values, values beyond ``rtol``, max
absolute and relative error and the first offending indices — the same numbers the
numpy path of :func:`arraystore.core.casting.cast_block` computes with several full-size
temporaries. Used only when numba is installed; the numpy path is the reference and the
fallback (tests compare the two).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from arraystore._native.jit import LazyKernel

MAX_FIRST = 10


def _build() -> Any:
    import numba

    @numba.njit(nogil=True, cache=True)
    def f8_to_f4(x, y, rtol, clip, fmax, first, counts, errs):
        # counts: [nonfinite, oor, rounded, beyond, n_first]; errs: [max_abs, max_rel].
        # Branches are ordered so that the common cases (exact, or rounded within rtol)
        # take one predictable path and no division: |w - v| > m * |v| is tested by a
        # multiplication first, and the exact quotient is taken only when it may matter.
        nonfinite = 0
        oor = 0
        rounded = 0
        beyond = 0
        nf = 0
        max_abs = 0.0
        max_rel = 0.0
        near = rtol * (1.0 - 1e-12)  # d < near * |v|  =>  d / |v| <= rtol, surely
        for i in range(x.shape[0]):
            v = x[i]
            w = np.float32(v)
            y[i] = w
            d = abs(np.float64(w) - v)
            if d == 0.0:
                continue
            if d < np.inf:  # a finite value, rounded
                rounded += 1
                a = abs(v)
                if d > max_abs:
                    max_abs = d
                if d >= max_rel * a * (1.0 - 1e-12):  # may be a new maximum: divide
                    r = d / a
                    if r > max_rel:
                        max_rel = r
                if rtol == 0.0 or (d >= near * a and d / a > rtol):
                    beyond += 1
                    if nf < first.shape[0]:
                        first[nf] = i
                        nf += 1
            elif not np.isfinite(v):  # NaN or inf (inf - inf is NaN)
                nonfinite += 1
            else:  # a finite value beyond the float32 range
                oor += 1
                if clip:
                    y[i] = np.float32(fmax) if v > 0 else np.float32(-fmax)
                if nf < first.shape[0]:
                    first[nf] = i
                    nf += 1
        counts[0] = nonfinite
        counts[1] = oor
        counts[2] = rounded
        counts[3] = beyond
        counts[4] = nf
        errs[0] = max_abs
        errs[1] = max_rel

    return f8_to_f4


KERNEL = LazyKernel(_build)
_load = KERNEL.get


def float_narrow(xf: np.ndarray, yf: np.ndarray, policy: str, rtol: float) -> dict[str, Any] | None:
    """Cast 1-d float64 ``xf`` into float32 ``yf`` with the audit, or None (not handled)."""
    if (
        xf.dtype != np.float64
        or yf.dtype != np.float32
        or policy not in ("value", "clip", "unsafe", "same_kind")
    ):
        return None
    if not (xf.flags.c_contiguous and yf.flags.c_contiguous):
        return None
    kernel = _load()
    if kernel is None:
        return None
    first = np.empty(MAX_FIRST, np.int64)
    counts = np.zeros(5, np.int64)
    errs = np.zeros(2)
    fmax = float(np.finfo(np.float32).max)
    kernel(xf, yf, float(rtol), policy == "clip", fmax, first, counts, errs)
    return {
        "nonfinite": int(counts[0]),
        "oor": int(counts[1]),
        "rounded": int(counts[2]),
        "beyond": int(counts[3]),
        "first": first[: int(counts[4])],
        "max_abs": float(errs[0]),
        "max_rel": float(errs[1]),
    }


def prewarm() -> None:
    """Import numba and load the kernel in the background (a cast from float64 is about
    to start): see :meth:`arraystore._native.jit.LazyKernel.prewarm`."""

    def samples() -> list[tuple[Any, ...]]:
        x, y = np.zeros(1), np.zeros(1, np.float32)
        first, counts, errs = np.empty(MAX_FIRST, np.int64), np.zeros(5, np.int64), np.zeros(2)
        return [(x, y, 0.0, False, 1.0, first, counts, errs)]

    KERNEL.prewarm(samples)
