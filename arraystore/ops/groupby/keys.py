"""Factorizing group keys (pure numpy, no I/O): key rows -> sorted unique keys + codes.

:func:`factorize` turns one or more key columns (equal length) into the sorted unique
key rows (lexicographic over the columns, like ``pandas.groupby(sort=True)``) and each
row's group code. An int/bool column whose measured range is small takes the dense path
(offsets into a ``bincount`` table: no sort); any other column is sorted once by
``np.unique``. Several columns are factorized one by one and their codes combined
mixed-radix, so the combined code orders rows exactly like the key tuples.

Float keys are normalised first (:func:`normalize`): ``-0.0`` becomes ``0.0`` and every
NaN the same NaN, so equal keys are equal bit for bit whatever chunk they came from; NaN
keys sort last (numpy and pandas agree) and all NaNs form one group.
"""

from __future__ import annotations

import math

import numpy as np

from arraystore.ops.groupby.fused import dense_counts, min_max

#: a dense table is used when an int key's range is below max(DENSE_MIN, 2 * rows)
DENSE_MIN = 1 << 16
_RADIX_MAX = 2**62


def normalize(col: np.ndarray) -> np.ndarray:
    """A key column with ``-0.0`` as ``0.0`` and one NaN bit pattern (floats only)."""
    if col.dtype.kind != "f":
        return col
    out = col + col.dtype.type(0.0)  # -0.0 + 0.0 == +0.0
    nan = np.isnan(out)
    if nan.any():
        out[nan] = np.nan
    return out


#: sorted unique values, each row's code, the rows per value (None: not counted)
Factorized = tuple[np.ndarray, np.ndarray, np.ndarray | None]


def _dense(col: np.ndarray, fused: bool = False) -> Factorized | None:
    n = len(col)
    if col.dtype.kind not in "biu" or n == 0:
        return None
    src = col.view(np.uint8) if col.dtype.kind == "b" else col
    lim = min_max(src) if fused else None
    lo, hi = lim if lim is not None else (src.min(), src.max())
    span = int(hi) - int(lo)
    if span >= max(DENSE_MIN, 2 * n):
        return None
    base = np.asarray(lo).astype(np.intp)  # offsets in intp: no wrap-around in src's dtype
    jit = dense_counts(src, base, span + 1) if fused else None
    if jit is not None:
        counts, off = jit
    else:
        off = src.astype(np.intp) - base
        counts = np.bincount(off, minlength=span + 1)
    present: np.ndarray = counts > 0
    keys = np.flatnonzero(present).astype(src.dtype) + lo  # wraps back into range
    if present.all():  # every value in the range occurs: the offsets are the codes
        return keys.view(col.dtype), off, counts
    remap = np.cumsum(present, dtype=np.intp) - 1
    return keys.view(col.dtype), remap[off], counts[present]


def _factorize_one(col: np.ndarray, fused: bool = False) -> Factorized:
    """:func:`factorize_one`, and the rows per value when the dense path counted them."""
    dense = _dense(col, fused)
    if dense is not None:
        return dense
    uniq, inv = np.unique(col, return_inverse=True)
    return uniq, inv.reshape(-1).astype(np.intp, copy=False), None


def factorize_one(col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique values of one column and each row's index into them (intp)."""
    uniq, inv, _ = _factorize_one(col)
    return uniq, inv


def factorize_sized(
    cols: list[np.ndarray], fused: bool = False
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """:func:`factorize` of one or more columns, and the rows per group (int64);
    ``fused``: count a dense int key with the numba kernel (:func:`.fused.dense_counts`)."""
    if len(cols) == 1:
        uniq, inv, counts = _factorize_one(cols[0], fused)
        keys = [uniq]
    else:
        keys, inv = factorize(cols)
        counts = None
    if counts is None:
        counts = np.bincount(inv, minlength=len(keys[0]))
    return keys, inv, counts.astype(np.int64, copy=False)


def factorize(cols: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Sorted unique key rows (one array per column) and each row's group code."""
    if len(cols) == 1:
        uniq, inv = factorize_one(cols[0])
        return [uniq], inv
    parts = [factorize_one(c) for c in cols]
    sizes = [len(u) for u, _ in parts]
    if len(cols[0]) == 0:
        return [u for u, _ in parts], np.zeros(0, np.intp)
    if math.prod(sizes) < _RADIX_MAX:
        code = parts[0][1].astype(np.int64)
        for (_, c), s in zip(parts[1:], sizes[1:], strict=True):
            code = code * s + c
        ucode, inv = factorize_one(code)
        idx = np.unravel_index(ucode, sizes)
        return [u[i] for (u, _), i in zip(parts, idx, strict=True)], inv
    stacked = np.stack([c for _, c in parts], axis=1)
    urows, inv = np.unique(stacked, axis=0, return_inverse=True)
    return [u[urows[:, j]] for j, (u, _) in enumerate(parts)], inv.reshape(-1).astype(np.intp)


def union(cols: list[np.ndarray], split: int) -> tuple[list[np.ndarray], np.ndarray]:
    """:func:`factorize` of two tables' keys, ``cols[:split]`` and ``cols[split:]``, each
    sorted and unique: one key column is merged with a stable sort (linear for two
    sorted runs); several columns go through :func:`factorize`."""
    if len(cols) != 1 or cols[0].dtype.kind not in "biufSU":
        return factorize(cols)
    col = cols[0]
    order = np.argsort(col, kind="stable")
    s = col[order]
    new = np.ones(len(s), bool)
    if len(s) > 1:
        new[1:] = s[1:] != s[:-1]
        if s.dtype.kind == "f":  # NaN keys are one group
            new[1:] &= ~(np.isnan(s[1:]) & np.isnan(s[:-1]))
    inv = np.empty(len(s), np.intp)
    inv[order] = np.cumsum(new) - 1
    return [s[new]], inv
