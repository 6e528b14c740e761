"""Chunk files read ahead of a scan's readers: around the page cache (``O_DIRECT``,
``--io direct``) or through it (compressed chunks, the default).

:class:`DirectChunks` reads whole chunk files into aligned reusable buffers,
:data:`arraystore._native.direct.DEPTH` files ahead of the scan's readers (in the order
the scan announced), so the device stays busy while the cores decode and reduce. The
chunk reader (:meth:`ChunkIO.read_chunk`) takes the bytes from here; a chunk this cannot
read (missing, not a regular file, a filesystem refusing ``O_DIRECT``: remembered per
device) is read by the normal buffered path, which reports what is wrong with it.

Buffered read-ahead (``o_direct=False``) is for compressed chunks: without it each reader
reads a chunk file, then decodes it, so the disk idles while both cores decode (the
32 GiB blosc-lz4 scan used 1.1 of 2 cores at 1.8 GB/s of compressed reads while ``cat``
read the same files at 3.6 GB/s). An uncompressed chunk is read straight into the
caller's block instead (one copy less). ``ARRAYSTORE_READ_AHEAD=0`` turns it off.

A buffered read first asks for the whole file (``POSIX_FADV_WILLNEED``), then copies it
out as the pages arrive: its reads are all queued while the copy runs, not a readahead
window at a time. On the 32 GiB zstd scan (VM below, 1 GiB budget, runs paired): 15.36 /
15.41 / 15.73 / 16.44 s with it, 15.85 / 16.00 / 16.14 / 16.68 s without; the blosc-lz4
scan, which reads at the disk's rate (2.55 GB/s for these reads alone, at two files
ahead; three or four ahead were slower), did not change (12.8-15.6 s either way).
Measured and not taken: mapping the files (``mmap``, ``MAP_POPULATE`` or
``MADV_POPULATE_READ``) instead of copying them cut the system time from 5-7 s to 3 s
but made the scan slower (17.8-21.1 s against 14.6-18.8 s copied, paired runs);
``POSIX_FADV_SEQUENTIAL`` and each file read in two parallel halves were no faster or
slower.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from functools import partial

import numpy as np

from arraystore._native import direct
from arraystore._native.pages import will_need

__all__ = ["AHEAD_ENV", "DirectChunks", "read_ahead"]

#: aligned buffers of direct chunk reads (shared by the scans of this process)
POOL = direct.BufferPool()
#: ``0`` turns off the buffered read-ahead of compressed chunk files (for measurements)
AHEAD_ENV = "ARRAYSTORE_READ_AHEAD"


def read_ahead() -> bool:
    """Read compressed chunk files ahead of a buffered scan? (``ARRAYSTORE_READ_AHEAD``)"""
    return os.environ.get(AHEAD_ENV, "").strip() not in ("0", "off", "no", "false")


class DirectChunks:
    """Reads ahead of the chunk files ``keys`` (in scan order, each about ``size``
    bytes); ``open_chunk(key, flags)`` opens one (relative to the array folder);
    ``o_direct``: with ``O_DIRECT`` (else buffered, through the page cache)."""

    def __init__(
        self,
        open_chunk: Callable[[str, int], int],
        dev: int,
        keys: Sequence[str],
        size: int,
        o_direct: bool = True,
    ) -> None:
        self._open = open_chunk
        self._dev = dev
        self._o_direct = o_direct
        read = self._read if o_direct else self._read_buffered
        items = [(k, partial(read, k)) for k in keys]
        self._ahead = direct.ReadAhead(items, POOL, direct.depth(size))

    def _read_buffered(self, key: str, pool: direct.BufferPool) -> tuple[np.ndarray, np.ndarray]:
        fd = self._open(key, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise IsADirectoryError(key)
            size = info.st_size
            will_need(fd, size)  # the whole file queued: the disk never waits for a copy
            buf = pool.get(size)
            view, done = buf.data, 0
            try:
                while done < size:
                    n = os.preadv(fd, [view[done:size]], done)
                    if n == 0:
                        break  # (truncated: the chunk reader reports it)
                    done += n
            except BaseException:
                pool.put(buf)
                raise
            return buf, buf[:done]
        finally:
            os.close(fd)

    def _read(self, key: str, pool: direct.BufferPool) -> tuple[np.ndarray, np.ndarray]:
        if direct.refused(self._dev):
            raise OSError(0, "direct reads refused")
        flags = os.O_RDONLY | getattr(os, "O_DIRECT", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = self._open(key, flags)
        except OSError as exc:
            if direct.is_refusal(exc):
                direct.refuse(self._dev)
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise IsADirectoryError(key)
            return direct.read_file(fd, pool)
        except OSError as exc:
            if direct.is_refusal(exc):
                direct.refuse(self._dev)
            raise
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def take(self, key: str) -> Iterator[np.ndarray | None]:
        """The bytes of chunk file ``key`` (valid inside the ``with``), or None: read it
        buffered."""
        with self._ahead.take(key) as data:
            if data is not None:
                yield data
                return
        if not self._o_direct:  # (the chunk reader's own buffered read)
            yield None
            return
        try:
            buf, data = self._read(key, POOL)
        except OSError:
            yield None
            return
        try:
            yield data
        finally:
            POOL.put(buf)

    def close(self) -> None:
        self._ahead.close()
        POOL.clear()
