"""Advanced indexing of :class:`~arraystore.Array`: numpy's ``arr[[1, 5]]`` / ``arr[mask]``
and zarr's ``arr.oindex[...]`` / ``arr.vindex[...]``, for reads and writes.

The key is planned by :mod:`arraystore.core.selection` and run chunk by chunk by
:mod:`arraystore.ops.select`: only the touched chunks are read (each once), and a
selection whose result would not fit the memory budget is refused before any read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from arraystore.core.chunks import Region
from arraystore.core.selection import (
    Selection,
    coordinate_selection,
    numpy_selection,
    orthogonal_selection,
)
from arraystore.engine import default_budget
from arraystore.errors import ReadOnlyError
from arraystore.ops.select import (
    check_budget,
    convert_value,
    is_scalar,
    read_selection,
    write_selection,
)

if TYPE_CHECKING:
    from arraystore.array import Array

__all__ = ["Indexer", "get_selection", "set_selection"]

#: the size of the row blocks a selection is cut into where the format reads any row
#: range directly (memmap): small enough that a sparse selection reads little around
#: each index, large enough that a dense one costs few reads
PIECE_BYTES = 4 * 2**20

_PLANS = {
    "numpy": numpy_selection,
    "orthogonal": orthogonal_selection,
    "coordinate": coordinate_selection,
}


def plan(arr: Array, kind: str, key: Any) -> Selection | None:
    """The selection of ``key`` on ``arr`` (None: a basic key, for ``arr[key]``)."""
    return _PLANS[kind](key, arr.shape)


def _whole(arr: Array) -> tuple[bool, ...]:
    """The axes read and written whole: a field's subarray dimensions (the backends take
    them only whole) and, where any row range is one run of bytes (``contiguous_rows``),
    every axis but the first, so that each box is one plain read or write."""
    nd = arr.meta.ndim
    rows = arr.handle.contiguous_rows and nd > 0
    return (False,) * min(nd, 1) + (rows,) * max(0, nd - 1) + (True,) * (arr.ndim - nd)


def _io(arr: Array, budget: int) -> tuple[Any, Any, tuple[int, ...], tuple[bool, ...]]:
    """read(region) and write(region, block) over the view's full shape, the grid the
    selection is cut by (the storage chunks, or row blocks of ``PIECE_BYTES`` -- at most
    an eighth of the budget -- where any row range reads directly) and the axes read
    whole."""
    nd, handle, field = arr.meta.ndim, arr.handle, arr.field
    target = max(1, min(PIECE_BYTES, budget // 8))
    grid = tuple(handle.work_chunks(target)) + arr.chunks[nd:]

    def read(region: Region) -> np.ndarray:
        return handle.read(region[:nd], field)

    def write(region: Region, block: np.ndarray) -> None:
        handle.write(region[:nd], block, field)

    return read, write, grid, _whole(arr)


def get_selection(arr: Array, sel: Selection) -> Any:
    """Read a planned selection (refused before any read if over the memory budget)."""
    budget = default_budget()
    read, _, grid, whole = _io(arr, budget)
    check_budget(sel, arr.dtype, grid, whole, budget=budget)
    return read_selection(sel, arr.dtype, grid, read, whole)


def set_selection(arr: Array, sel: Selection, value: Any) -> None:
    """Write ``value`` into a planned selection, chunk by chunk under the writer lock."""
    if not arr.store.writable:
        raise ReadOnlyError(f"store {arr.store.path} is open read-only")
    arr.upgrade_format()
    budget = default_budget()
    read, write, grid, whole = _io(arr, budget)
    scalar = is_scalar(value)  # (broadcast, not held: arr[mask] = 0 of any size)
    check_budget(sel, arr.dtype, grid, whole, writing=True, budget=budget, scalar=scalar)
    values = convert_value(sel, value, arr.dtype)  # numpy's errors, before any I/O
    with arr.store.write_lock(arr.name):
        arr.handle.check_current()
        # whole chunks where the format rewrites them whole (not where rows are plain bytes)
        whole_chunks = not arr.handle.contiguous_rows
        write_selection(sel, values, grid, read, write, whole, whole_chunks)


class Indexer:
    """``arr.oindex`` (orthogonal) or ``arr.vindex`` (coordinate) selection, as zarr's.

    ``arr.oindex[[0, 2], 1:5]`` selects rows 0 and 2 *and* columns 1..4 (each axis on
    its own); ``arr.vindex[[0, 2], [1, 4]]`` selects the points (0, 1) and (2, 4).
    Both also take assignments: ``arr.oindex[rows, cols] = 0``.
    """

    def __init__(self, arr: Array, kind: str) -> None:
        self.arr = arr
        self.kind = kind

    def __getitem__(self, key: Any) -> Any:
        sel = plan(self.arr, self.kind, key)
        return self.arr[key] if sel is None else get_selection(self.arr, sel)

    def __setitem__(self, key: Any, value: Any) -> None:
        sel = plan(self.arr, self.kind, key)
        if sel is None:
            self.arr[key] = value
        else:
            set_selection(self.arr, sel, value)

    def __repr__(self) -> str:
        return f"<{'oindex' if self.kind == 'orthogonal' else 'vindex'} of {self.arr!r}>"
