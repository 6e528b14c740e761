"""Combining reduction states cell by cell (see :mod:`arraystore.ops.reduce.kernels.leaf`).

Every function here works on state dicts whose arrays all have the same shape (one value
per output cell). :func:`combine` merges states covering the *same* cells: counts and
sums add (integers exactly, switching to Python ints on overflow), ``m2`` uses the
parallel (Chan et al.) formula ``M2 = sum M2_i + sum n_i (mean_i - mean)^2`` on means
kept as two floats (:func:`chan`: the differences ``mean_i - mean`` are exact to far
below the ulp of an offset mean like 1e12, so merging costs no digits), min/max
use ``minimum``/``fmin``, arg states keep the better value and, on ties, the smaller
global index (so the result does not depend on the merge order or the chunking).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from arraystore.ops.reduce.kernels.leaf import INT64_MAX, Spec, saturate, two_sum

State = dict[str, np.ndarray]


def identity(spec: Spec, shape: tuple[int, ...]) -> State:
    """The state of cells that have seen no element yet (neutral for :func:`combine`)."""
    dt = spec.dtype
    if dt.kind == "f":
        lo, hi = dt.type(np.inf), dt.type(-np.inf)
    elif dt.kind == "b":
        lo, hi = True, False
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        lo, hi = info.max, info.min
    else:
        lo = hi = 0
    st: State = {k: np.zeros(shape, np.int64) for k in ("size", "n", "nan")}
    ops = spec.ops
    if spec.need_sum:
        st["sum"] = np.zeros(shape, spec.sum_dtype)
    if spec.need_m2:
        st["m2"] = np.zeros(shape, np.float64)
        mean_dtype = np.complex128 if spec.kind == "c" else np.float64
        st["mu"] = np.zeros(shape, mean_dtype)
        st["mul"] = np.zeros(shape, mean_dtype)
    if "min" in ops:
        st["min"] = np.full(shape, lo, dt)
    if "max" in ops:
        st["max"] = np.full(shape, hi, dt)
    if "argmin" in ops:
        st["amin_v"] = np.full(shape, lo, dt)
        st["amin_i"] = np.full(shape, INT64_MAX, np.int64)
    if "argmax" in ops:
        st["amax_v"] = np.full(shape, hi, dt)
        st["amax_i"] = np.full(shape, INT64_MAX, np.int64)
    if "any" in ops:
        st["any"] = np.zeros(shape, bool)
    if "all" in ops:
        st["all"] = np.ones(shape, bool)
    if "count_nonzero" in ops:
        st["cnz"] = np.zeros(shape, np.int64)
    return st


def add_int(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer addition: int64/uint64 while it fits, else object (Python ints)."""
    if a.dtype != object and b.dtype != object:
        with np.errstate(over="ignore"):
            r = np.asarray(np.add(a, b))
        ovf = (r < a) if a.dtype.kind == "u" else ((a ^ r) & (b ^ r)) < 0
        if not ovf.any():
            return r
    return np.asarray(a.astype(object) + b.astype(object), dtype=object)


def _arg(spec: Spec, va: np.ndarray, ia: np.ndarray, vb: np.ndarray, ib: np.ndarray, is_min: bool):
    """Pick (value, index) from b where b beats a; NaN beats numbers unless skipping NaN."""
    with np.errstate(invalid="ignore"):
        better = (vb < va) if is_min else (vb > va)
        tie = vb == va
        if spec.kind == "f" and not spec.skipna:
            na, nb = np.isnan(va), np.isnan(vb)
            better = (better & ~na) | (nb & ~na)
            tie = tie | (na & nb)
    take = better | (tie & (ib < ia))
    return np.where(take, vb, va), np.where(take, ib, ia)


def combine(spec: Spec, states: Sequence[State]) -> State:
    """Merge states that cover the same cells (in chunk order; see module docstring)."""
    if len(states) == 1:
        return dict(states[0])
    first = states[0]
    out: State = {}
    for key in ("size", "n", "nan", "cnz"):
        if key in first:
            out[key] = np.add.reduce([s[key] for s in states], axis=0)
    if "sum" in first:
        if spec.kind in "fc":
            out["sum"] = np.add.reduce([s["sum"] for s in states], axis=0)
        else:
            acc = first["sum"]
            for s in states[1:]:
                acc = add_int(acc, s["sum"])
            out["sum"] = acc
    if "m2" in first:
        stack = [np.stack([s[k] for s in states]) for k in ("n", "mu", "mul", "m2")]
        out["mu"], out["mul"], out["m2"] = chan(*stack)
    lo_op, hi_op = (np.fmin, np.fmax) if spec.skipna else (np.minimum, np.maximum)
    if "min" in first:
        out["min"] = lo_op.reduce([s["min"] for s in states], axis=0)
    if "max" in first:
        out["max"] = hi_op.reduce([s["max"] for s in states], axis=0)
    for key, is_min in (("amin", True), ("amax", False)):
        if key + "_v" in first:
            v, i = first[key + "_v"], first[key + "_i"]
            for s in states[1:]:
                v, i = _arg(spec, v, i, s[key + "_v"], s[key + "_i"], is_min)
            out[key + "_v"], out[key + "_i"] = v, i
    if "any" in first:
        out["any"] = np.logical_or.reduce([s["any"] for s in states], axis=0)
    if "all" in first:
        out["all"] = np.logical_and.reduce([s["all"] for s in states], axis=0)
    return out


def chan(
    n: np.ndarray, mu: np.ndarray, mul: np.ndarray, m2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge states stacked along axis 0 (in order): ``(mu, mul, m2)`` of their union.

    The means are taken relative to a pivot ``p`` (the first non-empty state's ``mu``):
    ``e_i = (mu_i - p) + mul_i`` with ``mu_i - p`` split exactly by TwoSum, so ``e_i`` and
    the deviations ``e_i - E`` carry full float64 precision whatever the offset; the
    merged mean is ``p + E``, again kept as two floats. Plain float64 arithmetic, same
    operations in the same order for every run (results independent of thread timing).
    """
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        has = n > 0
        total = n.sum(axis=0)
        first = np.argmax(has, axis=0)[None]
        p = np.take_along_axis(mu, first, axis=0)[0]
        hi, lo = two_sum(mu, -p)
        e = np.where(has, hi + (lo + mul), 0)
        E = (n * e).sum(axis=0) / np.maximum(total, 1)
        dev = e - E
        dev2 = (dev * np.conj(dev)).real if dev.dtype.kind == "c" else dev * dev
        terms = np.where(has, n * dev2, 0.0)
        out_m2 = np.add.reduce(m2, axis=0) + terms.sum(axis=0)
        hi, lo = two_sum(p, E)
        hi, lo = two_sum(hi, lo)
        if not np.isfinite(out_m2).all():  # NaN/inf data, or means far apart overflowed
            fin = ((np.isfinite(mu) & np.isfinite(mul)) | ~has) & ~np.isnan(m2)
            hi, lo, out_m2 = saturate(p, hi, lo, out_m2, np.all(fin, axis=0))
    return hi, lo, out_m2


def place(spec: Spec, dense: State, sub: tuple[slice, ...], st: State) -> None:
    """Combine ``st`` into the cells ``dense[sub]`` in place."""
    if not dense["size"][sub].any():
        new = st
    else:
        new = combine(spec, [{k: v[sub] for k, v in dense.items()}, st])
    for key, val in new.items():
        if val.dtype == object and dense[key].dtype != object:
            dense[key] = dense[key].astype(object)
        dense[key][sub] = val
