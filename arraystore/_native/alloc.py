"""Large reusable buffers that stay on small pages.

numpy asks the kernel for transparent huge pages (``madvise(MADV_HUGEPAGE)``) on every
array of 4 MiB or more. For the streaming buffers this library fills once per chunk that
is a loss: on the machines measured (a VM, THP ``enabled=madvise``), first-touching such
buffers cost several CPU-seconds of system time per GiB of buffers, more than the whole
computation (a 2 GiB cast: 5.0 s with huge pages, 1.6 s without). Buffers come from an
anonymous ``mmap`` instead, which the kernel backs with normal pages (unless THP is
``always``), and are unmapped when the last view goes.
"""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Iterator

import numpy as np


def raw_buffer(nbytes: int) -> np.ndarray:
    """A writable uint8 array of ``nbytes`` (at least 1) on an anonymous mapping."""
    n = max(1, int(nbytes))
    # private, not mmap's default shared mapping: shared anonymous memory is shmem, whose
    # pages also go through a page cache (measured: several % of a cast's system time)
    flags = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
    if not flags:  # pragma: no cover - Windows
        return np.frombuffer(mmap.mmap(-1, n), dtype=np.uint8)
    return np.frombuffer(mmap.mmap(-1, n, flags=flags), dtype=np.uint8)


@contextlib.contextmanager
def small_pages() -> Iterator[None]:
    """While running a plan, numpy's own temporaries of 4 MiB or more (kernel scratch,
    codec output, casts) are not madvised to huge pages either (see the module doc).
    Process-wide while it lasts (numpy has one switch); the previous setting comes back
    afterwards. A no-op when numpy lacks the switch."""
    try:
        from numpy._core.multiarray import _set_madvise_hugepage  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - other numpy layouts
        yield
        return
    previous = _set_madvise_hugepage(False)
    try:
        yield
    finally:
        _set_madvise_hugepage(previous)
