"""Reads around the page cache (Linux ``O_DIRECT``) for cold scans.

A buffered scan of data that is not cached copies every byte twice through memory (the
device writes page-cache pages, the reader copies them out) and spends CPU time on
page-cache bookkeeping (allocating, reclaiming and, with drop-behind, freeing pages):
the 32 GiB memmap ``stats`` read 1.68 GB/s with ~15 s of CPU over 20 s of wall time,
against 2.17 GB/s for ``dd bs=16M iflag=direct``. A direct read lands in an aligned
buffer this process owns; :class:`ReadAhead` keeps a few such reads in flight (on I/O
threads: ``preadv`` releases the GIL) while the cores reduce the previous buffers, so the
device queue does not drain.

The decision is made once per operation from the bytes one pass reads
(:func:`direct_reads`), like :func:`arraystore._native.pages.drop_behind`. The
environment variable ``ARRAYSTORE_IO`` (the CLI's ``--io``) chooses:

``auto`` (default)
    buffered, for now (the page policy of :mod:`arraystore._native.pages` still drops
    what a large scan read behind itself). Measured on the benchmark VM (virtio disk,
    ``read_ahead_kb`` 8192): a cold 32 GiB ``stats --axis 0`` of a memmap array read
    1.72 GB/s buffered against 1.37 GB/s direct (``dd bs=16M iflag=direct``: 1.13), and
    14.2 s against 34.8 s in another pair; the kernel's read-ahead keeps more requests in
    flight than our read-ahead threads did. Direct reads win when the cores are the
    bottleneck (about half the CPU time: 3.5 against 5.8 CPU-seconds per 8 GiB; 2-4x
    faster than buffered when other jobs used the cores), so they are a choice, not the
    default;
``direct``
    always (where the filesystem accepts it);
``buffered``
    never.

Filesystems that refuse ``O_DIRECT`` (tmpfs, some network and FUSE mounts) are
remembered per device (:func:`refused`) and read buffered; the bytes are the same either
way. Only read-only handles read directly.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import os
import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence

import numpy as np

from arraystore._native.alloc import raw_buffer
from arraystore.errors import InvalidArgument

__all__ = [
    "ALIGN",
    "IO_ENV",
    "IO_MODES",
    "Item",
    "BufferPool",
    "ReadAhead",
    "depth",
    "direct_reads",
    "is_refusal",
    "io_mode",
    "open_direct",
    "pread_aligned",
    "read_file",
    "read_range",
    "reopen_direct",
    "refuse",
    "refused",
]

IO_ENV = "ARRAYSTORE_IO"
IO_MODES = ("auto", "direct", "buffered")
#: reads kept in flight ahead of the consumer (per task for memmap, per scan for zarr);
#: ``ARRAYSTORE_IO_DEPTH`` overrides it (for measurements)
DEPTH = 2
DEPTH_ENV = "ARRAYSTORE_IO_DEPTH"
#: at most this many bytes read ahead per :class:`ReadAhead` (but always one item):
#: large zarr chunks are read one ahead (memory beyond the budget, see :func:`depth`)
AHEAD_BYTES = 256 * 2**20
#: alignment of buffer addresses, file offsets and lengths (the largest logical block
#: size in use; buffers are page-aligned anonymous mappings)
ALIGN = 4096
#: errors meaning "this file system does not do O_DIRECT (for this request)"
_REFUSALS = (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP)

_refused: set[int] = set()  # st_dev of filesystems that refused O_DIRECT reads
_pool_lock = threading.Lock()
_io_pool: concurrent.futures.ThreadPoolExecutor | None = None


def io_mode(value: str | None = None, what: str = "io") -> str:
    """``value`` (named ``what`` in errors), else ``ARRAYSTORE_IO``, checked (``auto``
    when unset or empty)."""
    where = what if value is not None else IO_ENV
    raw = value if value is not None else os.environ.get(IO_ENV, "")
    text = raw.strip().lower() or "auto"
    if text not in IO_MODES:
        raise InvalidArgument(f"{where} must be one of {', '.join(IO_MODES)}, got {raw!r}")
    return text


def direct_reads(nbytes: int, io: str | None = None) -> bool:
    """Should an operation reading ``nbytes`` in one pass read around the page cache?
    Only when asked (``direct``): ``auto`` reads buffered (see the module docstring)."""
    del nbytes  # kept for a size-dependent ``auto``
    return io_mode(io) == "direct" and hasattr(os, "O_DIRECT")


def depth(item_bytes: int = 0) -> int:
    """Reads in flight ahead of a consumer (:data:`DEPTH` or ``ARRAYSTORE_IO_DEPTH``) of
    ``item_bytes`` each: at most :data:`AHEAD_BYTES` of them, but one. Measured on the
    benchmark VM (virtio disk, 8 GiB cold ``stats --axis 0``): memmap 4 MiB pieces keep
    up with ``dd iflag=direct`` at any depth; zarr's 128 MiB chunk files read 0.56 GB/s
    without read-ahead, 0.66 one ahead, 1.12 two ahead, 1.14 four ahead (the disk 1.0).
    Reads alone through :class:`ReadAhead` (3 GiB, no reduction): 4 MiB requests at
    depth 1-4 read 1.11-1.50 GB/s against 1.30-1.52 for ``dd bs=16M iflag=direct`` just
    before; 16 MiB requests were no faster (0.90-1.83). The machine was shared: load 3-7."""
    text = os.environ.get(DEPTH_ENV, "").strip()
    want = max(0, int(text)) if text.isdecimal() else DEPTH
    if item_bytes <= 0 or want == 0:
        return want
    return max(1, min(want, AHEAD_BYTES // item_bytes))


def refused(dev: int) -> bool:
    """Did the filesystem of device ``dev`` refuse a direct read in this process?"""
    return dev in _refused


def refuse(dev: int) -> None:
    """Remember that device ``dev`` refuses direct reads (its files are read buffered)."""
    _refused.add(dev)


def is_refusal(exc: OSError) -> bool:
    return exc.errno in _REFUSALS


def open_direct(path: str | os.PathLike[str], dev: int, dir_fd: int | None = None) -> int | None:
    """``path`` opened read-only with ``O_DIRECT``, or None where the filesystem of
    device ``dev`` refuses it (remembered). Other errors propagate."""
    if dev in _refused or not hasattr(os, "O_DIRECT"):
        return None
    flags = os.O_RDONLY | os.O_DIRECT | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, flags, dir_fd=dir_fd)
    except OSError as e:
        if not is_refusal(e):
            raise
        _refused.add(dev)
        return None


def reopen_direct(fd: int) -> int | None:
    """A second descriptor with ``O_DIRECT`` on the very file ``fd`` is open on (through
    /proc/self/fd: not a path that may name another file by now), or None."""
    dev = os.fstat(fd).st_dev
    try:
        return open_direct(f"/proc/self/fd/{fd}", dev)
    except FileNotFoundError:  # no /proc: no direct reads
        _refused.add(dev)
        return None


def span(offset: int, length: int) -> tuple[int, int]:
    """The aligned byte range ``(start, nbytes)`` covering ``[offset, offset + length)``."""
    start = offset - offset % ALIGN
    stop = -(-(offset + length) // ALIGN) * ALIGN
    return start, stop - start


def pread_aligned(fd: int, buf: np.ndarray, offset: int) -> int:
    """Fill the aligned uint8 ``buf`` (its size a multiple of :data:`ALIGN`) from the
    aligned ``offset`` of the ``O_DIRECT`` descriptor ``fd``; returns the bytes read (less
    only at the end of the file)."""
    view, done, total = buf.data, 0, buf.nbytes
    while done < total:
        n = os.preadv(fd, [view[done:]], offset + done)
        if n == 0:
            break
        done += n
        if done % ALIGN:  # the end of the file (not on a block boundary)
            break
    return done


def read_range(
    fd: int, offset: int, length: int, pool: BufferPool
) -> tuple[np.ndarray, np.ndarray]:
    """Bytes ``[offset, offset + length)`` of the ``O_DIRECT`` descriptor ``fd``: the
    aligned range around them is read into a buffer of ``pool``; returns the buffer (to
    give back) and the view of the wanted bytes (shorter at the end of the file: the
    caller reads the rest buffered)."""
    start, n = span(offset, length)
    buf = pool.get(n)
    try:
        got = pread_aligned(fd, buf, start)
    except BaseException:
        pool.put(buf)
        raise
    skip = offset - start
    return buf, buf[skip : skip + max(0, min(length, got - skip))]


def read_file(fd: int, pool: BufferPool) -> tuple[np.ndarray, np.ndarray]:
    """The whole file open on the ``O_DIRECT`` descriptor ``fd`` (see :func:`read_range`)."""
    return read_range(fd, 0, os.fstat(fd).st_size, pool)


class BufferPool:
    """Aligned reusable byte buffers of at least a given size (thread-safe). The pool
    holds no more buffers than were in use at once: when no free buffer is large
    enough, a free one is let go before a new one (with 1/16 to spare, so compressed
    chunk files of slightly different sizes reuse it) is mapped."""

    def __init__(self) -> None:
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    def get(self, nbytes: int) -> np.ndarray:
        n = -(-max(nbytes, 1) // ALIGN) * ALIGN
        with self._lock:
            fits = [i for i, buf in enumerate(self._free) if buf.nbytes >= n]
            if fits:  # the smallest that fits
                return self._free.pop(min(fits, key=lambda i: self._free[i].nbytes))[:n]
            if self._free:  # all too small: one goes (unmapped once unreferenced)
                self._free.pop(0)
        room = n + (n // 16 if n >= 1 << 20 else 0)
        return raw_buffer(-(-room // ALIGN) * ALIGN)[:n]  # an anonymous mapping: page-aligned

    def put(self, buf: np.ndarray) -> None:
        base = buf.base if isinstance(buf.base, np.ndarray) else buf
        with self._lock:
            self._free.append(base)

    def clear(self) -> None:
        with self._lock:
            self._free.clear()


def _io_threads() -> concurrent.futures.ThreadPoolExecutor:
    global _io_pool
    with _pool_lock:
        if _io_pool is None:
            _io_pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=8, thread_name_prefix="arraystore-io"
            )
        return _io_pool


#: a read to do ahead: its key and the read itself, which takes a buffer from the pool
#: it is given and returns it with the view of it holding the data (or None and data
#: needing no buffer of the pool, such as a mapped file)
Read = Callable[["BufferPool"], tuple[np.ndarray | None, np.ndarray]]
Item = tuple[Hashable, Read]


class ReadAhead:
    """Reads of a known sequence of items, up to ``ahead`` items ahead of the consumer,
    into buffers of ``pool``. :meth:`take` hands the data of an item over (None when it
    was not read ahead, or its read failed: the caller reads it itself, which reports
    the error or falls back); items are taken in about the order given, by any thread."""

    def __init__(self, items: Sequence[Item], pool: BufferPool, ahead: int | None = None) -> None:
        self._todo: deque[Item] = deque(items)
        self._pending: dict[Hashable, concurrent.futures.Future] = {}
        self._pool = pool
        self._depth = depth() if ahead is None else ahead
        self._lock = threading.Lock()
        self._top_up()

    def _top_up(self) -> None:
        with self._lock:
            while self._todo and len(self._pending) < self._depth:
                key, read = self._todo.popleft()
                if key not in self._pending:
                    self._pending[key] = _io_threads().submit(_fetch, read, self._pool)

    @contextlib.contextmanager
    def take(self, key: Hashable) -> Iterator[np.ndarray | None]:
        """The data read ahead for ``key`` (valid inside the ``with``), or None."""
        with self._lock:
            fut = self._pending.pop(key, None)
            if fut is None and self._todo and self._todo[0][0] == key:
                self._todo.popleft()  # read by the caller itself
        if fut is None:
            yield None
            return
        buf, data = fut.result()
        self._top_up()
        try:
            yield data
        finally:
            if buf is not None:
                self._pool.put(buf)

    def close(self) -> None:
        """Wait for the reads in flight (their buffers go back to the pool); drop the rest."""
        with self._lock:
            self._todo.clear()
            pending, self._pending = list(self._pending.values()), {}
        for fut in pending:
            buf, _ = fut.result()
            if buf is not None:
                self._pool.put(buf)


def _fetch(read: Read, pool: BufferPool) -> tuple[np.ndarray | None, np.ndarray | None]:
    try:
        return read(pool)
    except Exception:  # the consumer reads it again itself and sees the error
        return None, None
