"""Growing arrays: append blocks or files along an axis, resize (grow or shrink).

Every change is one journaled, atomic shape change in place
(:mod:`arraystore.storage.grow`: the order of the writes and what a kill leaves), except
that a memmap array changing other than along axis 0 is rewritten into a new array that
is swapped in (``storage.transaction.NewArray``); under the array's writer lock, a
format-1 array upgraded first; readers see the old shape until the commit, then the new.
``resize`` follows zarr: the overlap is kept, new space is zeros, and shrinking drops
what lies beyond the new edge. A block of another dtype is cast with the cast policies
(``casting="value"`` by default: refused, and nothing changed, if any value would not
survive); a structured block needs the array's field names.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from arraystore.backends.memmap import open_npy
from arraystore.core.casting import POLICIES, cast_block
from arraystore.core.chunks import Region, chunk_region, chunks_touching, intersect, relative
from arraystore.core.dtypes import dtype_to_spec
from arraystore.core.meta import ArrayMeta
from arraystore.errors import CastError, InvalidArgument, ShapeMismatch
from arraystore.ops.interop import import_file
from arraystore.storage.grow import Resize, in_place
from arraystore.storage.killpoints import kill_point
from arraystore.storage.transaction import NewArray
from arraystore.storage.upgrade import upgrade_array

if TYPE_CHECKING:
    from arraystore.backends.base import Handle
    from arraystore.storage import StoreRoot

__all__ = ["append", "append_file", "resize"]

#: bytes of the source read (and cast) per block when appending from a file or array
BLOCK_BYTES = 32 << 20


def _entry(op: str, **info: Any) -> dict[str, Any]:
    return {"op": op, **info, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def cast_to(
    block: np.ndarray, dtype: np.dtype, casting: str = "value", rtol: float = 0.0
) -> np.ndarray:
    """``block`` as ``dtype`` under the cast policy ``casting`` (structured: field by
    field, by name); CastError if a value does not survive."""
    if casting not in POLICIES:
        raise InvalidArgument(f"casting must be one of {', '.join(POLICIES)}, got {casting!r}")
    names, have = dtype.names, block.dtype.names
    if names is None and have is not None and len(have) == 1:
        block, have = block[have[0]], None  # a one-column table for a plain array
    if block.dtype == dtype:
        return block
    if names is None or have is None:
        if names is not None or have is not None:
            want = "records with fields " + ", ".join(names) if names else f"plain {dtype}"
            raise ShapeMismatch(f"the data has dtype {dtype_to_spec(block.dtype)}, not {want}")
        return _cast_plain(block, dtype, casting, rtol, None)
    if set(have) != set(names):
        raise ShapeMismatch(
            f"the data's fields ({', '.join(have)}) are not the array's ({', '.join(names)})"
        )
    out = np.empty(block.shape, dtype)
    for name in names:
        sub = dtype.fields[name][0]  # type: ignore[index]
        out[name] = _cast_plain(block[name], sub.base, casting, rtol, name)
    return out


def _cast_plain(
    x: np.ndarray, dst: np.dtype, casting: str, rtol: float, name: str | None
) -> np.ndarray:
    """One plain field cast (strings: numpy's, refused under ``value`` when one would be
    cut short)."""
    if x.dtype == dst:
        return x
    if x.dtype.kind in "SU" and dst.kind in "SU":
        y = x.astype(dst)
        if casting in ("value", "clip", "safe") and not np.array_equal(y.astype(x.dtype), x):
            what = f"field {name!r}: " if name else ""
            raise CastError(f"{what}strings longer than {dst.itemsize} cannot be appended")
        return y
    return cast_block(x, dst, casting, rtol, name=name)[0]


def _locked_handle(store: StoreRoot, name: str) -> Handle:
    """The writable handle of ``name`` (its lock held): interrupted writes settled, a
    format-1 array upgraded."""
    store.settle_held(name)
    handle = store.open_handle(name, "r+")
    if handle.meta.format < 2:
        meta = handle.meta
        handle.close()
        upgrade_array(store.array_path(name), meta)
        handle = store.open_handle(name, "r+")
    if not handle.meta.shape:
        handle.close()
        raise InvalidArgument(f"array {name!r} is 0-d: it cannot grow")
    return handle


def _check_axis(axis: int, ndim: int) -> int:
    if not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise InvalidArgument(f"axis {axis} is out of range for a {ndim}-d array")
    return int(axis) % ndim


def _new_shape(meta: ArrayMeta, shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    """The shape after appending a block of ``shape`` along ``axis``."""
    old = meta.shape
    if len(shape) != len(old) or any(
        a != b for i, (a, b) in enumerate(zip(shape, old, strict=True)) if i != axis
    ):
        want = tuple("n" if i == axis else s for i, s in enumerate(old))
        raise ShapeMismatch(
            f"cannot append a block of shape {shape} to {old} along axis {axis}: "
            f"it must be {want}".replace("'", "")
        )
    return tuple(s + (shape[i] if i == axis else 0) for i, s in enumerate(old))


def _box(old: tuple[int, ...], axis: int, start: int, stop: int) -> Region:
    return tuple(slice(start, stop) if i == axis else slice(0, s) for i, s in enumerate(old))


def _append_blocks(
    store: StoreRoot,
    name: str,
    src: tuple[tuple[int, ...], np.dtype],
    axis: int,
    blocks: Iterator[np.ndarray],
    casting: str,
    rtol: float,
    what: str,
) -> tuple[int, ...]:
    """Append the blocks (consecutive slabs along ``axis``, together of ``src``: shape
    and dtype)."""
    store.check_writable()
    shape = src[0]
    with store.lock(name):
        handle = _locked_handle(store, name)
        try:
            meta = handle.meta
            axis = _check_axis(axis, meta.ndim)
            new = _new_shape(meta, shape, axis)
            # fields and type rules are checked before anything is written
            cast_to(np.empty(0, src[1]), meta.dtype, casting, rtol)
            if new == meta.shape:  # nothing to append
                return new
            rows = int(shape[axis])
            entry = _entry("append", axis=axis, rows=rows, shape=list(new), source=what)
            start = meta.shape[axis]
            with _change(store, name, handle, new, entry) as job:
                for block in blocks:
                    block = cast_to(block, meta.dtype, casting, rtol)
                    stop = start + block.shape[axis]
                    job.handle.write(_box(new, axis, start, stop), block)
                    kill_point("grow-data")
                    start = stop
                if start != new[axis]:  # (a source that changed while it was read)
                    raise ShapeMismatch(
                        f"the data ended after {start - meta.shape[axis]} of {rows}"
                    )
                job.commit()
        finally:
            handle.close()
    return new


def _change(
    store: StoreRoot, name: str, old: Handle, new: tuple[int, ...], entry: dict[str, Any]
) -> Resize | _Rewrite:
    """The shape change of ``name`` to ``new``: in place (:class:`Resize`), or a memmap
    array changing other than along axis 0 (or whose header has no room for the new
    shape) rewritten whole (:class:`_Rewrite`)."""
    if not in_place(old, new):
        return _Rewrite(store, name, old, new, entry)
    return Resize(store.path, name, old, new, entry)


class _Rewrite:
    """A memmap array whose rows change length: a new array is built beside it (the
    overlap copied row block by row block, new space zeros) and swapped in atomically
    (``storage.transaction.NewArray``); readers that opened the old one keep it."""

    def __init__(
        self, store: StoreRoot, name: str, old: Handle, new: tuple[int, ...], entry: dict
    ) -> None:
        meta = old.meta
        chunks = (meta.chunks[0], *(max(1, s) for s in new[1:]))
        self.meta = meta.evolve(shape=new, chunks=chunks, history=(*meta.history, entry))
        self.build = NewArray.begin(store.layout, name, self.meta)
        self.handle = self.build.handle
        try:
            overlap = tuple(min(a, b) for a, b in zip(meta.shape, new, strict=True))
            step = max(1, BLOCK_BYTES // max(1, math.prod(overlap[1:]) * meta.dtype.itemsize))
            for start in range(0, overlap[0] if 0 not in overlap else 0, step):
                reg = (
                    slice(start, min(overlap[0], start + step)),
                    *(slice(0, n) for n in overlap[1:]),
                )
                self.handle.write(reg, old.read(reg))
        except BaseException:
            self.build.abort()
            raise

    def __enter__(self) -> _Rewrite:
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        if exc_type is not None and self.build.state != "committed":
            self.build.abort()

    def commit(self) -> None:
        self.build.commit(self.meta)


def _slabs(arr: np.ndarray, axis: int) -> Iterator[np.ndarray]:
    step = max(1, BLOCK_BYTES // max(1, arr[(slice(None),) * axis + (slice(0, 1),)].nbytes))
    for start in range(0, arr.shape[axis], step):
        yield arr[(slice(None),) * axis + (slice(start, start + step),)]


def append(
    store: StoreRoot,
    name: str,
    data: Any,
    axis: int = 0,
    casting: str = "value",
    rtol: float = 0.0,
) -> tuple[int, ...]:
    """Append ``data`` (an array-like, or a stored array: anything with ``shape``,
    ``dtype`` and ``read(region)``) to array ``name`` along ``axis``; the new shape."""
    if hasattr(data, "handle") and hasattr(data, "read") and not isinstance(data, np.ndarray):
        return _append_handle(store, name, data.handle, axis, casting, rtol, data.name)
    arr = np.asarray(data)
    if arr.dtype.kind == "O":
        raise InvalidArgument("cannot append Python objects: give a numeric or record array")
    ax = axis if arr.ndim == 0 else _check_axis(axis, arr.ndim)
    blocks = _slabs(arr, ax)
    return _append_blocks(store, name, (arr.shape, arr.dtype), ax, blocks, casting, rtol, "array")


def _append_handle(
    store: StoreRoot,
    name: str,
    src: Handle,
    axis: int,
    casting: str,
    rtol: float,
    what: str,
) -> tuple[int, ...]:
    """Append a stored array (or an opened file) row block by row block."""
    shape = src.meta.shape
    if axis not in (0, -len(shape)) and shape:
        raise InvalidArgument("appending a stored array or a file works along axis 0")
    row = max(1, src.meta.nbytes // max(1, shape[0])) if shape else 1
    step = max(1, BLOCK_BYTES // row)

    def blocks() -> Iterator[np.ndarray]:
        for start in range(0, shape[0] if shape else 0, step):
            stop = min(shape[0], start + step)
            yield src.read((slice(start, stop), *(slice(0, s) for s in shape[1:])))

    return _append_blocks(store, name, (shape, src.meta.dtype), 0, blocks(), casting, rtol, what)


def append_file(
    store: StoreRoot,
    name: str,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    casting: str = "value",
    rtol: float = 0.0,
    **options: Any,
) -> tuple[int, ...]:
    """Append the rows of a ``.npy``, CSV, Parquet or Arrow file (streamed: a table is
    first imported, as ``import`` does, into a hidden work array with the target's
    field names and types, which is removed after); the new shape."""
    src = Path(path)
    if not src.is_file():
        raise InvalidArgument(f"no file {src}")
    fmt = format or src.suffix.lower().lstrip(".")
    if fmt == "npy":
        with open_npy(src) as handle:
            return _append_handle(store, name, handle, 0, casting, rtol, src.name)
    with store.open_handle(name, "r") as target:
        dtype, ndim = target.meta.dtype, target.meta.ndim
    work = store.layout.temp_path(name)
    try:
        tmp = type(store)(work, mode="a")  # (the façade's class: import returns a view)
        spec: Any = dtype_to_spec(dtype)
        if dtype.fields:
            spec = {n: dtype_to_spec(f[0]) for n, f in dtype.fields.items()}
        import_file(
            tmp,
            "rows",
            src,
            format=format,
            dtype=spec,
            columns=list(dtype.names) if dtype.names else None,
            backend="memmap",
            null_mask=False,
            **options,
        )
        with tmp.open_handle("rows", "r") as handle:
            rows: Any = _Columns(handle) if dtype.names is None and ndim == 2 else handle
            return _append_handle(store, name, rows, 0, casting, rtol, src.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)


class _Columns:
    """A table's rows as a plain 2-d array, one column per index of the second axis
    (a table appended to a plain 2-d array)."""

    def __init__(self, table: Handle) -> None:
        names = table.meta.dtype.names or ()
        base = np.result_type(*(table.meta.dtype.fields[n][0] for n in names))  # type: ignore[index]
        n, k = table.meta.shape[0], len(names)
        self.table = table
        self.meta = table.meta.evolve(shape=(n, k), dtype=base, chunks=(max(1, n), max(1, k)))

    def read(self, region: Region) -> np.ndarray:
        from numpy.lib.recfunctions import structured_to_unstructured

        return structured_to_unstructured(self.table.read(region[:1]))


def resize(store: StoreRoot, name: str, shape: Any) -> tuple[int, ...]:
    """Resize array ``name`` to ``shape`` (as zarr: the overlap is kept, new space is
    zeros, what lies beyond a smaller edge is dropped); the new shape."""
    try:
        new = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(map(int, shape))
    except (TypeError, ValueError):
        raise InvalidArgument(f"a shape is a tuple of integers, not {shape!r}") from None
    store.check_writable()
    with store.lock(name):
        handle = _locked_handle(store, name)
        old = handle.meta
        if len(new) != old.ndim or any(s < 0 for s in new):
            handle.close()
            raise ShapeMismatch(f"cannot resize a {old.ndim}-d array of shape {old.shape} to {new}")
        if new == old.shape:
            handle.close()
            return new
        entry = _entry("resize", shape=list(new), previous=list(old.shape))
        try:
            with _change(store, name, handle, new, entry) as job:
                if old.backend != "memmap":  # memmap: the file was extended with zeros
                    _fill_zeros(handle, job.handle, old.shape, new)
                job.commit()
        finally:
            handle.close()
    return new


def _fill_zeros(old: Handle, dst: Handle, before: tuple[int, ...], new: tuple[int, ...]) -> None:
    """Write every chunk of the new shape reaching beyond the old one, whole: the old
    values where they are, zeros elsewhere (also over stale values a shrink left in an
    edge chunk)."""
    meta = dst.meta
    inside = tuple(slice(0, s) for s in before)
    touched: set[tuple[int, ...]] = set()
    for i, (b, n) in enumerate(zip(before, new, strict=True)):
        if n > b:  # the slab beyond the old edge along axis i (the others: as far as kept)
            box = tuple(
                slice(b, n) if j == i else slice(0, min(s, t) if j < i else t)
                for j, (s, t) in enumerate(zip(before, new, strict=True))
            )
            touched.update(chunks_touching(box, new, meta.chunks))
    for idx in sorted(touched):
        creg = chunk_region(idx, new, meta.chunks)
        block = np.zeros(tuple(r.stop - r.start for r in creg), meta.dtype)
        keep = intersect(creg, inside)
        if keep is not None and all(r.stop > r.start for r in keep):
            block[relative(keep, creg)] = old.read(keep)
        dst.write(creg, block)
        kill_point("grow-chunk")


def array_append(
    self: Any, data: Any, axis: int = 0, casting: str = "value", rtol: float = 0.0
) -> tuple[int, ...]:
    """Append ``data`` to this array along ``axis``, in place and atomically; returns
    the new shape (``Array.append``, see :mod:`arraystore.ops.grow`).

    Parameters
    ----------
    data : array-like or Array
        A block of the array's shape except along ``axis`` (a stored array is read
        row block by row block); another dtype is cast under ``casting``.
    axis : int, default 0
        The axis to grow (a memmap array grows in place along axis 0; along another
        axis it is rewritten, atomically).
    casting : str, default "value"
        The cast policy (``"value"``: refused, nothing changed, if a value would not
        survive; ``"same_kind"``, ``"unsafe"``, ``"clip"`` ... as in ``cast``).
    rtol : float, default 0.0
        The ``value`` policy's relative tolerance.
    """
    _whole(self)
    shape = append(self.store, self.name, data, axis, casting, rtol)
    self.handle = self.store.open_handle(self.name)
    return shape


def array_resize(self: Any, *shape: Any) -> tuple[int, ...]:
    """Resize this array in place, atomically, as zarr does: the overlap is kept, new
    space is zeros, what lies beyond a smaller edge is dropped (``Array.resize``).

    Parameters
    ----------
    shape : int or tuple of int
        The new shape (``arr.resize(10, 4)`` or ``arr.resize((10, 4))``); a memmap
        array changes in place along axis 0, and is rewritten (atomically) otherwise.
    """
    _whole(self)
    new = resize(self.store, self.name, shape[0] if len(shape) == 1 else shape)
    self.handle = self.store.open_handle(self.name)
    return new


def _whole(arr: Any) -> None:
    if arr.field is not None:
        raise InvalidArgument(
            f"field view {arr.field!r}: append to or resize the whole array {arr.name!r}"
        )
