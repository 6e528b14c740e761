"""A memmap data file read around the page cache during a cold scan (``O_DIRECT``).

:class:`DirectScan` holds a second descriptor on the data file, opened with ``O_DIRECT``
(:func:`arraystore._native.direct.reopen_direct`), while a scan reads. Each reading
thread announces the row ranges of its task (:meth:`DirectScan.will_read`); they are
read ahead on I/O threads, in pieces of at most :data:`PIECE` bytes, into aligned
reusable buffers and copied into the reader's buffer (the data file's offsets are not
aligned: the .npy header). A reader may read a whole announced range at once (a
quantile pass, a groupby task): it takes the pieces one after the other while the next
ones are read. A range read ahead or not, a short read at the end of the file is
completed buffered; a refusal (``EINVAL``) is remembered for the device and the read
done buffered.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from arraystore._native import direct

__all__ = ["PIECE", "DirectScan", "forget", "pieces"]

#: the largest single direct read: 4 MiB requests kept up with ``dd iflag=direct`` on
#: the benchmark VM (see :func:`arraystore._native.direct.depth`), and a few of them in
#: flight stay well inside any memory budget
PIECE = 4 * 2**20

#: aligned buffers of direct reads (shared by the scans of this process)
POOL = direct.BufferPool()
#: this thread's read-ahead: (scan, ReadAhead) of its current task
_AHEAD = threading.local()


def forget() -> None:
    """Close this thread's read-ahead (its task is over)."""
    old = getattr(_AHEAD, "job", None)
    if old is not None:
        old[1].close()
        _AHEAD.job = None


def pieces(offset: int, length: int) -> list[tuple[int, int]]:
    """``[offset, offset + length)`` as ``(offset, length)`` pieces of at most
    :data:`PIECE` bytes, from its start (a reader of the same range finds the same ones)."""
    return [(o, min(PIECE, offset + length - o)) for o in range(offset, offset + length, PIECE)]


class DirectScan:
    """A direct scan of one data file: its O_DIRECT descriptor ``fd`` and the read-ahead
    of each reading thread, all closed (reads in flight waited for) before the
    descriptor, so no read outlives it (its number may name another file next)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._jobs: list[direct.ReadAhead] = []
        self._lock = threading.Lock()

    def will_read(self, ranges: Sequence[tuple[int, int]]) -> None:
        """This thread reads the byte ranges ``(offset, length)`` next, in this order."""
        forget()
        fd = self.fd

        def item(offset: int, length: int) -> direct.Item:
            def read(pool: direct.BufferPool) -> Any:
                return direct.read_range(fd, offset, length, pool)

            return (offset, length), read

        items = [item(o, n) for start, size in ranges for o, n in pieces(start, size)]
        job = direct.ReadAhead(
            items, POOL, direct.depth(min(PIECE, max((n for _, n in ranges), default=0)))
        )
        with self._lock:
            self._jobs.append(job)
        _AHEAD.job = (self, job)

    def read(self, buf: memoryview, offset: int, pread: Callable[[memoryview, int], None]) -> None:
        """Fill ``buf`` from ``offset``, piece by piece (:func:`pieces`): read ahead, else
        read now; ``pread(buf, offset)`` reads buffered what a direct read did not (the
        file's end, a refusal)."""
        for o, n in pieces(offset, len(buf)):
            self._read_piece(buf[o - offset : o - offset + n], o, pread)

    def _read_piece(
        self, buf: memoryview, offset: int, pread: Callable[[memoryview, int], None]
    ) -> None:
        job = getattr(_AHEAD, "job", None)
        dst = np.frombuffer(buf, dtype=np.uint8)
        if job is not None and job[0] is self:
            with job[1].take((offset, len(buf))) as data:
                if data is not None:
                    dst[: data.size] = data
                    if data.size < dst.size:
                        pread(buf[data.size :], offset + data.size)
                    return
        try:
            tmp, data = direct.read_range(self.fd, offset, len(buf), POOL)
        except OSError as exc:
            if not direct.is_refusal(exc):
                raise
            direct.refuse(os.fstat(self.fd).st_dev)  # e.g. a stricter alignment than ours
            pread(buf, offset)
            return
        try:
            dst[: data.size] = data
        finally:
            POOL.put(tmp)
        if data.size < dst.size:
            pread(buf[data.size :], offset + data.size)

    def close(self) -> None:
        with self._lock:
            jobs, self._jobs = self._jobs, []
        for job in jobs:
            job.close()
        os.close(self.fd)
        POOL.clear()
