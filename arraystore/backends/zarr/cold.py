"""Chunk files read around the page cache during a cold scan (``O_DIRECT``).

:class:`DirectChunks` reads whole chunk files into aligned reusable buffers,
:data:`arraystore._native.direct.DEPTH` files ahead of the scan's readers (in the order
the scan announced), so the device stays busy while the cores decode and reduce. The
chunk reader (:meth:`ChunkIO.read_chunk`) takes the bytes from here; a chunk this cannot
read (missing, not a regular file, a filesystem refusing ``O_DIRECT``: remembered per
device) is read by the normal buffered path, which reports what is wrong with it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from functools import partial

import numpy as np

from arraystore._native import direct

__all__ = ["DirectChunks"]

#: aligned buffers of direct chunk reads (shared by the scans of this process)
POOL = direct.BufferPool()


class DirectChunks:
    """Direct reads of the chunk files ``keys`` (in scan order, each about ``size``
    bytes); ``open_chunk(key, flags)`` opens one (relative to the array folder)."""

    def __init__(
        self, open_chunk: Callable[[str, int], int], dev: int, keys: Sequence[str], size: int
    ) -> None:
        self._open = open_chunk
        self._dev = dev
        items = [(k, partial(self._read, k)) for k in keys]
        self._ahead = direct.ReadAhead(items, POOL, direct.depth(size))

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
