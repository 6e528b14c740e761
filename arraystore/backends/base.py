"""The backend interface: how arrays are laid out on disk, hidden behind regions.

A backend creates and opens arrays in a directory; a :class:`Handle` reads and writes
*regions* (tuples of step-1 slices over the logical shape) and lists its chunk regions.
Everything above this layer works with regions and numpy blocks, never with file names
or zarr objects.

Contract:
* ``read(region, field=None, out=None)`` returns a new (or the given ``out``) C-contiguous
  array of shape ``region_shape`` (+ the field's subarray shape) — the logical dtype for
  ``field=None``, the field's base dtype otherwise.
* ``write(region, block, field=None)`` writes a block of exactly that shape; writes of
  disjoint chunk-aligned regions may run concurrently from several threads.
* ``chunk_regions()`` yields the chunk regions in C order.
* ``work_chunks(target_bytes)`` is the chunk shape operations cut their work into: the
  storage chunks unless the format reads any row range directly (``contiguous_rows``).
* ``prepare()`` opens what reads and writes need before the handle is shared;
  ``flush()`` makes all writes durable before a new array is committed. Both are
  no-ops unless the format needs them.
* ``columnar`` and ``contiguous_rows`` describe the layout, so callers never test a
  backend's name: whether a structured array's fields are stored apart, and whether
  work may be cut into row pieces of any size.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np

from arraystore.core.chunks import Region, iter_chunk_regions, region_shape
from arraystore.core.dtypes import field_dtype
from arraystore.core.meta import ArrayMeta
from arraystore.errors import ShapeMismatch


class Handle(ABC):
    """An open array. Cheap to create; holds at most a file descriptor."""

    meta: ArrayMeta
    path: Path
    writable: bool
    #: True when fields are stored separately (reading one field reads only its bytes)
    columnar: bool = False
    #: True when any range of rows is one run of plain bytes (no chunk to decode), so
    #: work may be cut into row pieces of any size at no cost; False when the storage
    #: chunks are read and written whole, so work should follow them
    contiguous_rows: bool = False

    @abstractmethod
    def read(
        self, region: Region, field: str | None = None, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Read a region (of one field) into a new array or ``out``."""

    @abstractmethod
    def write(self, region: Region, block: np.ndarray, field: str | None = None) -> None:
        """Write a block into a region (of one field)."""

    def chunk_regions(self) -> Iterator[Region]:
        return iter_chunk_regions(self.meta.shape, self.meta.chunks)

    def work_chunks(self, target_bytes: int) -> tuple[int, ...]:
        """The chunk shape to cut work (tasks) into.

        Parameters
        ----------
        target_bytes : int
            About how many bytes of the array one piece should hold, where the format
            lets the caller choose (``contiguous_rows``). The default ignores it and
            returns the storage chunks, which are read and written whole.
        """
        return self.meta.chunks

    @abstractmethod
    def stored_bytes(self) -> int:
        """Bytes the array's data occupies on disk."""

    def check_current(self) -> None:  # noqa: B027 - optional hook
        """Raise :class:`ArrayNotFound` if the array this handle was opened on is no
        longer the one at ``path`` (a commit replaced it, or it was removed or moved).
        Region writes call it under the array's writer lock, before writing."""

    def identity(self) -> list[int | str | None] | None:
        """What tells this array's stored data apart from any other array's (or from the
        same array's after a write that changed it), for a resumable job's journal: a
        resume with another identity would mix two contents. None: not known."""
        return None

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Open what reads and writes will need (e.g. the data file) now, before several
        threads share the handle. The default does nothing."""

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Make every write so far durable, also writes made through other handles or
        processes (e.g. dask workers), and complete what is derived from the data (e.g.
        checksums): called before a new array's metadata is written and it is committed.
        The default does nothing (nothing to sync)."""

    def drop_pages(self, region: Region, field: str | None = None) -> None:  # noqa: B027
        """Tell the kernel that the file pages holding ``region`` (of one field), which
        this process has just read and consumed, will not be read again (a scan larger
        than the page cache, see :mod:`arraystore._native.pages`). Only read-only
        handles advise. The default does nothing (no local file pages)."""

    def read_scan(self, regions: Sequence[Region], direct_io: bool) -> AbstractContextManager[None]:
        """A context in which this process reads ``regions`` (about in this order, from
        several threads): a scan. With ``direct_io`` (a cold scan larger than the page
        cache, see :mod:`arraystore._native.direct`) a local backend may read around the
        page cache and ahead of the readers. The default changes nothing."""
        return contextlib.nullcontext()

    def will_read(self, regions: Sequence[Region]) -> None:  # noqa: B027 - optional hook
        """The calling thread reads ``regions`` next, in this order (inside
        :meth:`read_scan`: they may be read ahead). The default does nothing."""

    def check_layout(self) -> list[str]:
        """What ``verify`` finds wrong in the array's files besides the chunk data (a
        memmap shard index that disagrees with the header...). Default: nothing."""
        return []

    def describe(self) -> dict[str, Any]:
        """Backend facts for ``info`` beyond the metadata (a foreign array: how it is read)."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release file descriptors (the handle stays usable: it reopens lazily)."""

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # helpers for implementations
    def block_dtype_shape(
        self, region: Region, field: str | None
    ) -> tuple[np.dtype, tuple[int, ...]]:
        shape = region_shape(region)
        if field is None:
            return self.meta.dtype, shape
        f = field_dtype(self.meta.dtype, field)
        return f.dtype, shape + f.subshape


class Backend(ABC):
    """Creates and opens arrays of one on-disk format."""

    name: str

    @abstractmethod
    def create(self, path: Path, meta: ArrayMeta) -> Handle:
        """Create the array's files in the (existing, empty) directory ``path``."""

    @abstractmethod
    def open(self, path: Path, sidecar: dict, mode: str = "r", dir_fd: int | None = None) -> Handle:
        """Open an existing array; ``sidecar`` is its parsed metadata document
        (``attributes["arraystore"]`` of its zarr.json, or format 1's ``arraystore.json``;
        a build not yet committed: ``meta.to_doc()``); ``dir_fd`` (optional) an open
        descriptor of the folder ``path`` to read from."""

    @abstractmethod
    def write_meta(self, path: Path, meta: ArrayMeta) -> None:
        """Write the metadata of the array at ``path`` into its ``zarr.json`` (format 2,
        atomically): the commit of a new array, or new attrs/history. Only for arrays
        whose data are format 2 (a new one, or one ``upgrade`` rewrote)."""


def check_block(block: np.ndarray, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Return ``block`` as a C-contiguous array of ``dtype`` and ``shape`` or raise."""
    arr = np.asarray(block)
    if arr.dtype != dtype:
        if arr.dtype.names != dtype.names or (arr.dtype.names is None and arr.dtype.kind == "O"):
            raise ShapeMismatch(f"block dtype {arr.dtype} does not match the array dtype {dtype}")
        try:
            arr = arr.astype(dtype, casting="same_kind" if dtype.names is None else "unsafe")
        except TypeError as exc:
            raise ShapeMismatch(
                f"block dtype {arr.dtype} cannot be stored as {dtype}: {exc}"
            ) from exc
    if arr.shape != shape:
        try:
            arr = np.broadcast_to(arr, shape)
        except ValueError:
            raise ShapeMismatch(
                f"block of shape {arr.shape} does not fit region of shape {shape}"
            ) from None
    return arr if arr.flags.c_contiguous else arr.copy(order="C")
