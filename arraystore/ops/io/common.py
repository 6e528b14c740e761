"""Shared machinery of the interop modules: optional imports, building a new array
atomically, row-block reads with read-ahead, and the chunk-row write pipeline.

Imported by :mod:`.interop`, :mod:`.io_arrow`, :mod:`.io_csv`, :mod:`.io_dask` and
:mod:`arraystore.ops.interop.batching`; imports nothing optional itself.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from arraystore.backends.base import Handle
from arraystore.core.chunks import Region
from arraystore.core.dtypes import fields_of
from arraystore.core.meta import ArrayMeta
from arraystore.errors import InvalidArgument, MissingDependency
from arraystore.storage.killpoints import kill_point
from arraystore.storage.transaction import NewArray

if TYPE_CHECKING:
    from arraystore.storage import StoreRoot

EXTRAS = {
    "pyarrow": "arrow",
    "dask": "dask",
    "distributed": "dask",
    "torch": "torch",
    "xarray": "xarray",
    "ml_dtypes": "bfloat16",
}
#: rows a memmap import buffers before each write (any row range is one pwrite)
MEMMAP_BUFFER = 16 << 20
_T = TypeVar("_T")
_R = TypeVar("_R")


def require(module: str, what: str = "") -> Any:
    """Import an optional package or raise :class:`MissingDependency` saying what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = EXTRAS.get(top, top)
        need = f" for {what}" if what else ""
        raise MissingDependency(
            f"{top} is needed{need}: pip install 'arraystore[{extra}]'"
        ) from exc


# -------------------------------------------------------- building a new array
def new_array(store: StoreRoot, name: str, meta: ArrayMeta, overwrite: bool) -> NewArray:
    """Begin the new array ``name`` (a :class:`storage.transaction.NewArray`; use it as
    a context manager: committed when the block ends, removed on an error).

    The caller holds the array's writer lock (``store.lock(name)``); an existing array
    ``name`` is refused unless ``overwrite`` (then replaced at commit). ``new.meta`` may
    be replaced (e.g. attrs with an import report) before the block ends.
    """
    store.clean_stale(name)  # what writers that died left
    check_target(store, name, overwrite)  # again, under the lock
    return NewArray.begin(store.layout, name, meta)


def check_target(store: StoreRoot, name: str, overwrite: bool) -> None:
    """Fail early when ``name`` exists (and ``overwrite`` is off) or the store is read-only."""
    store.check_writable()
    store.refuse_existing(name, overwrite)


# ------------------------------------------------------------ row-block reads
def row_regions(meta: ArrayMeta, rows: int | None = None) -> list[Region]:
    """Blocks of whole rows (axis 0, every trailing dim complete), one chunk row each.

    ``rows`` defaults to the chunk size along axis 0 (zarr: the storage chunks, so each
    block reads whole chunk files; memmap: the logical row blocks)."""
    if not meta.shape:
        raise InvalidArgument("a 0-d array has no rows")
    step = max(1, rows or (meta.shards or meta.chunks)[0])
    tail = tuple(slice(0, n) for n in meta.shape[1:])
    return [(slice(a, min(a + step, meta.shape[0])), *tail) for a in range(0, meta.shape[0], step)]


def read_fields(
    handle: Handle, region: Region, names: list[str | None]
) -> dict[str | None, np.ndarray]:
    """New C-contiguous arrays of the requested fields (``None``: the plain/records data).

    Columnar (zarr) arrays read only the requested fields' bytes; record (memmap) arrays
    read the records once and copy each field out."""
    meta = handle.meta
    if meta.dtype.names is None or handle.columnar or names == [None]:
        return {n: handle.read(region, n) for n in names}
    records = handle.read(region)
    return {n: np.ascontiguousarray(records[n]) for n in names}


def read_ahead(fn: Callable[[_T], _R], items: Iterable[_T], depth: int = 1) -> Iterator[_R]:
    """``map(fn, items)`` with up to ``depth`` calls running ahead in a background thread.

    Results come in order; an exception in ``fn`` is raised where its result would have
    been yielded. Closing the iterator early cancels what has not started and waits for
    the running call (so at most ``depth + 1`` results exist at a time)."""
    it = iter(items)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="arraystore-readahead") as ex:
        pending: deque[Future[_R]] = deque()
        try:
            for item in it:
                pending.append(ex.submit(fn, item))
                if len(pending) > depth:
                    break
            while pending:
                result = pending.popleft().result()
                nxt = next(it, _END)
                if nxt is not _END:
                    pending.append(ex.submit(fn, nxt))
                yield result
        finally:
            for fut in pending:
                fut.cancel()


_END: Any = object()


def prefetch(items: Iterable[_T], depth: int = 1) -> Iterator[_T]:
    """Pull the next ``depth`` items of ``items`` in a background thread (e.g. decode the
    next record batch while the current one is converted and written)."""
    it = iter(items)

    def pull(_: int) -> Any:
        return next(it, _END)

    for item in read_ahead(pull, itertools.count(), depth):
        if item is _END:
            return
        yield item


class ChunkSink:
    """Collects rows into chunk-row buffers and writes each full one in a worker thread.

    ``put(columns, n)`` copies ``n`` rows (a dict field -> array, or ``{None: array}`` for
    a plain dtype) into the current buffer, one contiguous array per field (a memcpy); a
    full buffer goes to one of ``workers`` threads, which writes it (zarr: field by field,
    encoding the chunks; memmap: interleaves the fields into records ~1 MiB at a time,
    while they are in cache, then one ``pwrite``) while the next buffer fills. At most
    ``workers + 1`` buffers of one chunk row exist (memmap: of ``MEMMAP_BUFFER`` bytes,
    since any row range is one contiguous write), plus one records buffer per worker.
    """

    def __init__(self, handle: Handle, workers: int = 1) -> None:
        self.handle = handle
        meta = handle.meta
        row_bytes = max(1, meta.dtype.itemsize * math.prod(meta.shape[1:]))
        self.rows = (meta.shards or meta.chunks)[0] if meta.shape else 1
        if meta.backend == "memmap":  # any row range is one pwrite: smaller buffers do
            self.rows = min(self.rows, max(1, MEMMAP_BUFFER // row_bytes))
        self._block = max(1, (1 << 20) // row_bytes)
        self.total = meta.shape[0] if meta.shape else 1
        self.tail = meta.shape[1:]
        self.fields = fields_of(meta.dtype)
        self.columnar = handle.columnar
        self._free: list[Any] = []
        self._records: list[np.ndarray] = []
        self._buf: Any = None
        self._fill = 0
        self._start = 0
        self._pending: deque[Future[Any]] = deque()
        self._workers = max(1, workers)
        self._ex = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="arraystore-w")
        self._lock = threading.Lock()

    def _new_buffer(self) -> Any:
        with self._lock:
            if self._free:
                return self._free.pop()
        n = self.rows
        if not self.fields:
            return {None: np.empty((n, *self.tail), dtype=self.handle.meta.dtype)}
        return {f.name: np.empty((n, *self.tail, *f.subshape), f.dtype) for f in self.fields}

    def put(self, columns: Mapping[str | None, np.ndarray], n: int) -> None:
        done = 0
        while done < n:
            if self._buf is None:
                self._buf = self._new_buffer()
                self._fill = 0
            room = min(self.rows, self.total - self._start) - self._fill
            if room <= 0:
                raise InvalidArgument("more rows than the array holds")
            k = min(room, n - done)
            a = self._fill
            for name, values in columns.items():
                self._buf[name][a : a + k] = values[done : done + k]
            self._fill += k
            done += k
            if self._fill == min(self.rows, self.total - self._start):
                self._flush()

    def _flush(self) -> None:
        buf, rows, start = self._buf, self._fill, self._start
        self._buf = None
        self._start += rows
        while len(self._pending) >= self._workers:
            self._pending.popleft().result()
        self._pending.append(self._ex.submit(self._write, buf, start, rows))

    def _write(self, buf: dict[str | None, np.ndarray], start: int, rows: int) -> None:
        region = (slice(start, start + rows), *(slice(0, n) for n in self.tail))
        if None in buf:
            self.handle.write(region, buf[None][:rows])
        elif self.columnar:
            for name, arr in buf.items():
                self.handle.write(region, arr[:rows], name)
        else:
            with self._lock:
                rec = self._records.pop() if self._records else None
            if rec is None:
                rec = np.empty((self.rows, *self.tail), dtype=self.handle.meta.dtype)
            for r in range(0, rows, self._block):  # interleave ~1 MiB of records at a time
                m = min(self._block, rows - r)
                for name, arr in buf.items():
                    rec[name][r : r + m] = arr[r : r + m]
            self.handle.write(region, rec[:rows])
            with self._lock:
                self._records.append(rec)
        kill_point("chunk")
        with self._lock:
            self._free.append(buf)

    @property
    def written(self) -> int:
        return self._start + self._fill

    def close(self) -> None:
        """Write the last partial buffer and wait for every write (raising their errors)."""
        try:
            if self._buf is not None and self._fill:
                self._flush()
            while self._pending:
                self._pending.popleft().result()
        finally:
            self.abort()

    def abort(self) -> None:
        for fut in self._pending:
            fut.cancel()
        self._ex.shutdown(wait=True)
        self._pending.clear()
        self._free.clear()
        self._records.clear()
        self._buf = None
