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
window at a time. On the 32 GiB zstd scan (the README's VM, 1 GiB budget, runs paired): 15.36 /
15.41 / 15.73 / 16.44 s with it, 15.85 / 16.00 / 16.14 / 16.68 s without; the blosc-lz4
scan, which reads at the disk's rate (2.55 GB/s for these reads alone, at two files
ahead; three or four ahead were slower), did not change (12.8-15.6 s either way).
Where chunk files are only ever replaced whole (``os.replace``: our own stores), the
read-ahead does not copy a file out of the page cache at all: it waits for its pages
(``sendfile`` to ``/dev/null``: read into the page cache, copied nowhere), then maps it
(``mmap``, ``MAP_POPULATE``) and the decoder reads the cached pages themselves. On the
32 GiB zstd scan the copy (``_copy_to_iter``) was 11-12 % of all CPU time; mapped,
paired runs took 14.40 / 15.38 / 14.83 / 14.51 / 14.65 s against 15.91 / 15.94 / 16.82 /
16.77 / 16.39 s copied, 2.7-3.1 system seconds against 5.3-6.5, the page cache no
fuller after the scan. Mapping without waiting first was slower (17.8-21.1 s): the
population waited for the disk holding the process's memory-map lock, and every worker's
``munmap`` or page fault queued behind it (13 % of the CPU time idle under ``perf``). A
file another program may truncate in place (a foreign array) is copied: a mapping of a
file that shrinks faults (``SIGBUS``). ``ARRAYSTORE_MAP_CHUNKS=0`` copies every file.
Measured and not taken: ``POSIX_FADV_SEQUENTIAL``, each file read in two parallel
halves, three or four files ahead (no faster, or slower).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from functools import partial

import numpy as np

from arraystore._native import direct
from arraystore._native.pages import will_need

__all__ = ["AHEAD_ENV", "MAP_ENV", "DirectChunks", "map_chunks", "read_ahead"]

#: aligned buffers of direct chunk reads (shared by the scans of this process)
POOL = direct.BufferPool()
#: ``0`` turns off the buffered read-ahead of compressed chunk files (for measurements)
AHEAD_ENV = "ARRAYSTORE_READ_AHEAD"
#: ``0`` copies compressed chunk files read ahead instead of mapping them
MAP_ENV = "ARRAYSTORE_MAP_CHUNKS"
_OFF = ("0", "off", "no", "false")


def read_ahead() -> bool:
    """Read compressed chunk files ahead of a buffered scan? (``ARRAYSTORE_READ_AHEAD``)"""
    return os.environ.get(AHEAD_ENV, "").strip() not in _OFF


def map_chunks() -> bool:
    """May the read-ahead map chunk files? (``ARRAYSTORE_MAP_CHUNKS``; Linux only)"""
    if not (hasattr(mmap, "MAP_POPULATE") and hasattr(os, "sendfile")):
        return False
    return os.environ.get(MAP_ENV, "").strip() not in _OFF


def map_file(fd: int, size: int, sink: int) -> np.ndarray:
    """The first ``size`` bytes of the file open on ``fd``: its pages read into the page
    cache (``sendfile`` to ``sink``, ``/dev/null``: no copy), then mapped read-only.
    The mapping goes with the last view of it. Raises OSError where either is refused."""
    done = 0
    while done < size:
        n = os.sendfile(sink, fd, done, size - done)
        if n == 0:
            break  # (truncated: mapped short, the chunk reader reports it)
        done += n
    if done == 0:
        raise OSError(0, "nothing to map")
    flags = mmap.MAP_SHARED | mmap.MAP_POPULATE
    return np.frombuffer(mmap.mmap(fd, done, flags=flags, prot=mmap.PROT_READ), dtype=np.uint8)


class DirectChunks:
    """Reads ahead of the chunk files ``keys`` (in scan order, each about ``size``
    bytes); ``open_chunk(key, flags)`` opens one (relative to the array folder);
    ``o_direct``: with ``O_DIRECT`` (else buffered, through the page cache);
    ``mapped``: buffered reads map the files (only where a chunk file is replaced whole,
    never truncated in place; see the module docstring)."""

    def __init__(
        self,
        open_chunk: Callable[[str, int], int],
        dev: int,
        keys: Sequence[str],
        size: int,
        o_direct: bool = True,
        mapped: bool = False,
    ) -> None:
        self._open = open_chunk
        self._dev = dev
        self._o_direct = o_direct
        self._sink = -1  # /dev/null, when files are mapped
        if mapped and not o_direct and map_chunks():
            with contextlib.suppress(OSError):
                self._sink = os.open(os.devnull, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
        read = self._read if o_direct else self._read_buffered
        items = [(k, partial(read, k)) for k in keys]
        self._ahead = direct.ReadAhead(items, POOL, direct.depth(size))

    def _read_buffered(
        self, key: str, pool: direct.BufferPool
    ) -> tuple[np.ndarray | None, np.ndarray]:
        fd = self._open(key, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise IsADirectoryError(key)
            size = info.st_size
            will_need(fd, size)  # the whole file queued: the disk never waits for a copy
            if self._sink >= 0 and size > 0:
                with contextlib.suppress(OSError, ValueError):  # (refused: copied)
                    return None, map_file(fd, size, self._sink)
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
        if self._sink >= 0:
            os.close(self._sink)
            self._sink = -1
