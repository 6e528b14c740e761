"""Exact quantiles along axes (``np.quantile(x, q, axis=...)``) in bounded memory.

The output positions (the kept axes) are taken in *groups*: a box over the kept axes
small enough that all its values -- every element along the reduced axes, for every
position of the box -- fit the memory budget. A group is gathered piece by piece along
axis 0 (a memmap array reads whole rows, contiguous, and keeps the box's part; zarr
reads the box's part of one chunk row at a time) into one buffer laid out as
``(positions, reduced elements)``, and numpy's own ``np.quantile`` (``np.nanquantile``
with ``skipna``; ``np.median``/``np.nanmedian`` for a median) runs on it, in place, its
rows shared by :data:`THREADS` threads: the result is numpy's, bit for bit, by
construction. Cost: one read of the data per group (``data bytes / budget`` groups,
each reading the whole array when axis 0 is reduced), and numpy's selection.

With a ``where=`` mask, each position's selected values are gathered and
``np.quantile`` runs per position; a position with no selected value gives NaN.

When even one position's values exceed the budget, each position runs the exact
whole-array selection of :mod:`.quantiles` (a radix select over 2-5 passes) on its own
values: ``positions x passes`` reads of the data -- slow, but exact and bounded.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from arraystore.backends.base import Handle
from arraystore.core.chunks import Region, region_shape
from arraystore.engine.memory import format_size
from arraystore.errors import InvalidArgument, MemoryBudgetError
from arraystore.ops.reduce.mask import Mask
from arraystore.ops.reduce.quantiles import Selector, exact_quantiles

#: bytes of one piece read while gathering a group (and of its reordered copy)
PIECE = 8 * 2**20
#: threads selecting the positions of a group (each a share of its rows, in place)
THREADS = min(2, os.cpu_count() or 1)

Box = tuple[slice, ...]


def normalize_axes(axis: Any, nd: int) -> tuple[int, ...]:
    """Sorted reduced axes of ``axis`` (an int or a tuple) over ``nd`` dims."""
    items = list(axis) if isinstance(axis, tuple | list) else [axis]
    out = []
    for a in items:
        if isinstance(a, bool) or not isinstance(a, int | np.integer):
            raise InvalidArgument(f"axis must be None, an int or a tuple of ints, got {axis!r}")
        if not -nd <= a < nd:
            raise InvalidArgument(f"axis {a} is out of bounds for array of dimension {nd}")
        out.append(int(a) % nd)
    if len(set(out)) != len(out):
        raise InvalidArgument(f"duplicate value in axis {axis!r}")
    return tuple(sorted(out))


def _groups(
    shape: tuple[int, ...], kept: tuple[int, ...], unit: int, avail: int
) -> Iterator[dict[int, slice]] | None:
    """Boxes over the kept axes (C order) of at most ``avail`` bytes (``unit`` bytes a
    position); None when one position alone exceeds ``avail``."""
    ext = [shape[a] for a in kept]
    for j in range(len(ext) + 1):
        inner = math.prod(ext[j:]) * unit
        if inner <= avail:
            break
    else:
        return None
    if j == 0:
        return iter([{a: slice(0, shape[a]) for a in kept}])
    per = max(1, avail // (math.prod(ext[j:]) * unit))
    tail = {a: slice(0, shape[a]) for a in kept[j:]}

    def gen() -> Iterator[dict[int, slice]]:
        for outer in np.ndindex(*ext[: j - 1]):
            head = {a: slice(i, i + 1) for a, i in zip(kept[: j - 1], outer, strict=True)}
            for s in range(0, ext[j - 1], per):
                yield {**head, kept[j - 1]: slice(s, min(s + per, ext[j - 1])), **tail}

    return gen()


def _piece_rows(handle: Handle) -> int:
    """Rows (axis 0) of one piece: whole rows (records) of at most :data:`PIECE` where
    any row range reads directly, else one chunk row (zarr decodes whole chunks)."""
    meta = handle.meta
    if not handle.contiguous_rows:
        return max(1, meta.chunks[0])
    return max(1, PIECE // max(math.prod(meta.shape[1:]) * meta.dtype.itemsize, 1))


def _reserve(handle: Handle) -> int:
    """Memory a group's gathering needs beside the group: a piece and its reordered
    copy, or (zarr) the box's part of a chunk row and a decoded chunk."""
    meta = handle.meta
    if handle.contiguous_rows:
        return 2 * PIECE
    return 2 * meta.chunks[0] * math.prod(meta.shape[1:]) * meta.dtype.itemsize


def _read(handle: Handle, field: str | None, region: Region) -> np.ndarray:
    if not handle.contiguous_rows or not region:
        return handle.read(region, field)
    rows = (region[0], *(slice(0, n) for n in handle.meta.shape[1:]))
    return handle.read(rows, field)[(slice(None), *region[1:])]


def _pieces(
    handle: Handle, field: str | None, box: Box, mask: Mask | None
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray | None]]:
    """``(a, b, block, mask)`` of the box, rows ``a:b`` of axis 0 at a time."""
    a0, b0 = box[0].start, box[0].stop
    step = _piece_rows(handle)
    for a in range(a0, b0, step):
        b = min(a + step, b0)
        region = (slice(a, b), *box[1:])
        yield a, b, _read(handle, field, region), None if mask is None else mask.block(region)


def axis_quantiles(
    handle: Handle,
    field: str | None,
    dtype: np.dtype,
    trailing: tuple[int, ...],
    axis: Any,
    q: Any,
    skipna: bool,
    budget: int,
    mask: Mask | None = None,
    median: bool = False,
) -> np.ndarray:
    """``np.quantile(data, q, axis=axis, method="linear")`` (``np.nanquantile`` with
    ``skipna``) of one field (``trailing``: its subarray dims, kept), exactly;
    ``median``: ``np.median`` (``np.nanmedian``), the mean of the middle two, with
    ``q=0.5``.
    numpy's warnings are silenced (an all-NaN slice is NaN, quietly, as over the whole
    array): here, in the calling thread, as the filters are the process's."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return _axis_quantiles(
            handle, field, dtype, trailing, axis, q, skipna, budget, mask, median
        )


def _axis_quantiles(
    handle: Handle,
    field: str | None,
    dtype: np.dtype,
    trailing: tuple[int, ...],
    axis: Any,
    q: Any,
    skipna: bool,
    budget: int,
    mask: Mask | None,
    median: bool,
) -> np.ndarray:
    shape = tuple(handle.meta.shape)
    nd = len(shape)
    red = normalize_axes(axis, nd)
    kept = tuple(a for a in range(nd) if a not in red)
    r = math.prod(shape[a] for a in red)
    if r == 0:
        raise InvalidArgument("cannot compute quantiles of an empty array")
    qshape = np.shape(q)
    kshape = tuple(shape[a] for a in kept) + trailing
    unit = r * math.prod(trailing) * (dtype.itemsize + (mask is not None))
    extra = r * dtype.itemsize if (skipna or mask is not None) else 0  # one row's copy
    reserve = _reserve(handle)
    if reserve > budget:  # (zarr: chunk rows are read whole)
        raise MemoryBudgetError(
            f"quantiles along axis {axis!r} read chunk rows of {format_size(reserve // 2)} "
            f"(twice in memory) but --memory is {format_size(budget)}; raise --memory"
        )
    avail = budget - reserve - extra
    groups = _groups(shape, kept, unit, avail)
    if math.prod(kshape) == 0:
        return _np(skipna, median)(np.empty(shape + trailing, dtype), q, axis=red)
    if groups is None:
        if trailing:
            raise InvalidArgument(
                f"quantiles along axis {axis!r}: one position's values exceed the memory "
                "budget and the field has subarray dims; give a larger --memory"
            )
        return _per_position(handle, field, red, kept, q, skipna, budget, mask, median)
    out: np.ndarray | None = None
    for g in groups:
        box = tuple(g.get(a, slice(0, shape[a])) for a in range(nd))
        fn = _np(skipna, median)
        res = _group(handle, field, dtype, trailing, box, red, kept, q, fn, mask)
        if out is None:
            out = np.empty(qshape + kshape, res.dtype)
        kbox = tuple(box[a] for a in kept)
        where: tuple[Any, ...] = (Ellipsis, *kbox, *(slice(None) for _ in trailing))
        out[where] = res.reshape(qshape + region_shape(kbox) + trailing)
    assert out is not None
    return out[()] if out.ndim == 0 else out


def _group(
    handle: Handle,
    field: str | None,
    dtype: np.dtype,
    trailing: tuple[int, ...],
    box: Box,
    red: tuple[int, ...],
    kept: tuple[int, ...],
    q: Any,
    fn: Any,
    mask: Mask | None,
) -> np.ndarray:
    """Quantiles of the positions of one box: its values gathered as ``(P, r)``."""
    nd = len(box)
    r = math.prod(region_shape(tuple(box[a] for a in red)))
    P = math.prod(region_shape(tuple(box[a] for a in kept))) * math.prod(trailing)
    G = np.empty((P, r), dtype)
    GM = None if mask is None else np.empty((P, r), bool)
    perm = (*kept, *range(nd, nd + len(trailing)), *red)
    a0, row0 = box[0].start, 0 in red
    inner = r // max(region_shape(box)[0], 1) if row0 else P // max(region_shape(box)[0], 1)
    for a, b, block, m in _pieces(handle, field, box, mask):
        span = slice((a - a0) * inner, (b - a0) * inner)
        cut = (slice(None), span) if row0 else (span, slice(None))
        _put(G[cut], block.transpose(perm))
        if GM is not None and m is not None:
            m = np.broadcast_to(m[(...,) + (None,) * len(trailing)], block.shape)
            _put(GM[cut], m.transpose(perm))
    if GM is None:  # rows apart in threads (numpy's selection releases the GIL)
        parts = np.array_split(np.arange(P), min(P, THREADS))
        with ThreadPoolExecutor(len(parts)) as pool:
            res = list(
                pool.map(lambda i: fn(G[i[0] : i[-1] + 1], q, axis=1, overwrite_input=True), parts)
            )
        return np.concatenate([np.asarray(v) for v in res], axis=-1)
    rows: list[np.ndarray | None] = []
    for i in range(P):
        vals = G[i][GM[i]]
        if vals.size == 0:
            rows.append(None)
            continue
        rows.append(np.asarray(fn(vals, q)))
    like = next((v for v in rows if v is not None), None)
    if like is None:
        like = np.asarray(fn(np.zeros(1, dtype), q))
    nan = np.full(like.shape, np.nan, like.dtype)
    return np.stack([nan if v is None else v for v in rows], axis=-1)


def _put(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src`` of another shape, element by element in C order: one copy
    into a reshaped view of ``dst`` where one exists."""
    try:
        np.copyto(np.reshape(dst, src.shape, copy=False), src)
    except ValueError:  # no such view: through a contiguous copy
        dst[...] = src.reshape(dst.shape)


def _np(skipna: bool, median: bool) -> Any:
    """numpy's function, called as ``fn(a, q, **kw)`` (a median ignores ``q``)."""
    if median:
        med = np.nanmedian if skipna else np.median
        call = lambda a, q, **kw: med(a, **kw)  # noqa: E731
    else:
        fn = np.nanquantile if skipna else np.quantile
        call = lambda a, q, **kw: fn(a, q, method="linear", **kw)  # noqa: E731
    return call


def exact_median(blocks: Any, skipna: bool, max_select: int) -> Any:
    """``np.median`` (``np.nanmedian``) of all blocks: numpy's own mean of the exact
    middle order statistics (found by :class:`.quantiles.Selector`'s radix select)."""
    dts: list[np.dtype] = []
    sel = Selector(blocks, dts, max_select)
    if sel.count == 0:
        raise InvalidArgument("cannot compute quantiles of an empty array")
    n = sel.count - sel.nan
    if n == 0 or (sel.nan and not skipna):
        return np.median(np.array([np.nan], dts[0]))
    ranks = sorted({(n - 1) // 2, n // 2})
    vals = sel.select(ranks, n)
    return np.median(np.array([vals[k] for k in ranks], dts[0]))


def _per_position(
    handle: Handle,
    field: str | None,
    red: tuple[int, ...],
    kept: tuple[int, ...],
    q: Any,
    skipna: bool,
    budget: int,
    mask: Mask | None,
    median: bool,
) -> np.ndarray:
    """One exact whole-array selection (:func:`exact_quantiles`) per position."""
    shape = tuple(handle.meta.shape)
    kshape = tuple(shape[a] for a in kept)
    first = red[0]
    item = handle.meta.dtype.itemsize
    row = math.prod(shape[first + 1 :]) * item
    step = max(1, PIECE // max(row, 1))
    out: np.ndarray | None = None
    for pos in np.ndindex(*kshape):
        fixed = dict(zip(kept, pos, strict=True))

        def blocks(fixed: dict[int, int] = fixed) -> Iterator[np.ndarray]:
            for s in range(0, shape[first], step):
                region = tuple(
                    slice(fixed[a], fixed[a] + 1)
                    if a in fixed
                    else slice(s, min(s + step, shape[a]))
                    if a == first
                    else slice(0, shape[a])
                    for a in range(len(shape))
                )
                block = handle.read(region, field)
                yield block if mask is None else block[mask.block(region)]

        try:
            if median:
                v = exact_median(blocks, skipna, max(1024, budget // 64))
            else:
                v = exact_quantiles(
                    blocks, q, skipna=skipna, max_select=max(1024, budget // 64), numpy_wrap=True
                )
        except InvalidArgument as e:
            if mask is None or "empty" not in str(e):
                raise
            v = np.full(np.shape(q), np.nan)[()]  # where= selects nothing here
        if out is None:
            out = np.empty(np.shape(q) + kshape, np.asarray(v).dtype)
        out[(Ellipsis, *pos)] = v
    assert out is not None
    return out


__all__ = ["axis_quantiles", "exact_median", "normalize_axes"]
