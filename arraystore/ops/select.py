"""Reading and writing advanced selections (``arr[[1, 5]]``, ``arr[mask]``, ``oindex``,
``vindex``) chunk by chunk, planned by :mod:`arraystore.core.selection`.

A read gathers every touched chunk's bounding box (one read per chunk, in chunk order)
into a preallocated block of the result's size; a write converts the value first (numpy's
rules, before any I/O), then reads, modifies and writes back each touched box. Both are
refused with :class:`MemoryBudgetError` *before any read* when the result (plus the value
being written, one chunk and the index arrays) would exceed the memory budget: the
out-of-core way to select rows is ``arraystore map --where``.

The caller passes ``read(region)`` / ``write(region, block)`` over the selection's full
shape (a field view's subarray dimensions are read and written whole, see ``whole``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from arraystore.core.assign import assigned_block
from arraystore.core.chunks import Region
from arraystore.core.selection import Selection, enclosing_chunk, pieces
from arraystore.engine.memory import default_budget, format_size
from arraystore.errors import MemoryBudgetError

__all__ = ["check_budget", "convert_value", "is_scalar", "read_selection", "write_selection"]

Reader = Callable[[Region], np.ndarray]
Writer = Callable[[Region, np.ndarray], None]


def check_budget(
    sel: Selection,
    dtype: np.dtype,
    chunks: Sequence[int],
    whole: Sequence[bool] | None = None,
    writing: bool = False,
    budget: int | None = None,
    scalar: bool = False,
) -> int:
    """The bytes a read (or write) of ``sel`` holds at once; refused over ``budget``
    (default: :func:`~arraystore.engine.memory.default_budget`) before anything is read.

    The result (a write: the value converted, and in the gather layout once more; a
    ``scalar`` value: nothing, it is broadcast), one chunk's box (``whole`` axes at full
    length) and the index arrays.
    """
    budget = default_budget() if budget is None else budget
    result = sel.size * dtype.itemsize
    whole = whole or (False,) * len(chunks)
    box = [n if w else min(c, n) for c, n, w in zip(chunks, sel.shape, whole, strict=True)]
    chunk = math.prod(box) * dtype.itemsize
    held = 0 if writing and scalar else result * (2 if writing else 1)
    need = held + chunk + sel.index_bytes
    if need > budget:
        what = "writing" if writing else "reading"
        raise MemoryBudgetError(
            f"{what} this selection of shape {sel.out_shape} ({dtype}) needs "
            f"{format_size(need)} in memory but the budget is {format_size(budget)}; "
            "select less (or in pieces), or select rows out of core with "
            "`arraystore map STORE NAME --where COND --out NEW`"
        )
    return need


def read_selection(
    sel: Selection,
    dtype: np.dtype,
    chunks: Sequence[int],
    read: Reader,
    whole: Sequence[bool] | None = None,
) -> Any:
    """The selected data in numpy's layout (a scalar for a 0-d result, as numpy).

    The result is allocated C-contiguous, as numpy's, and gathered into through a view
    in the gather layout (a copy only if no such view exists).
    """
    out = np.empty(sel.out_shape, dtype)
    gathered = sel.unfinish(out)
    if not np.may_share_memory(gathered, out):
        gathered = np.empty(sel.gshape, dtype)
    for piece in pieces(sel, chunks, whole):
        gathered[piece.dst] = read(piece.region)[piece.src]
    if not np.may_share_memory(gathered, out):
        out = sel.finish(gathered)
    return out[()] if out.ndim == 0 else out


def is_scalar(value: Any) -> bool:
    """One value (a number, a string, a 0-d array), not a sequence or an array."""
    if isinstance(value, np.ndarray):
        return value.ndim == 0
    if isinstance(value, list | tuple):  # (a tuple is a record: held, as any sequence)
        return False
    try:
        return np.ndim(value) == 0
    except ValueError:
        return False


def convert_value(sel: Selection, value: Any, dtype: np.dtype) -> np.ndarray:
    """``value`` broadcast to the selection's shape and converted by numpy's rules (and
    errors, see :mod:`arraystore.core.assign`), in the gather layout: done before any
    I/O, so a refused value writes nothing."""
    if is_scalar(value):  # one value, broadcast without memory (0 strides)
        one = assigned_block(value, dtype, (), (), True)
        return sel.unfinish(np.broadcast_to(one, sel.out_shape))
    return sel.unfinish(assigned_block(value, dtype, sel.out_shape, (), True))


def write_selection(
    sel: Selection,
    values: np.ndarray,
    chunks: Sequence[int],
    read: Reader,
    write: Writer,
    whole: Sequence[bool] | None = None,
    whole_chunks: bool = False,
) -> None:
    """Write ``values`` (from :func:`convert_value`) into each touched box: read it,
    assign (of repeated indices the last one wins, as in numpy), write it back.

    ``whole_chunks``: read and write each touched chunk whole (a format that rewrites
    whole chunks would otherwise read a partly written one again).
    """
    for piece in pieces(sel, chunks, whole):
        box = enclosing_chunk(piece.region, sel.shape, chunks) if whole_chunks else piece.region
        block = read(box)
        inner = tuple(
            slice(r.start - b.start, r.stop - b.start)
            for r, b in zip(piece.region, box, strict=True)
        )
        block[inner][piece.src] = values[piece.dst]
        write(box, block)
