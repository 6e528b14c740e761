"""Page policy: should a scan drop the file pages it has read behind itself?

A buffered scan larger than the page cache would otherwise push everything else out of
it (the user's hot files, other programs' data) and keep nothing useful in return: by
the time the scan ends its own first pages are gone too. Such a scan advises
``posix_fadvise(POSIX_FADV_DONTNEED)`` on the byte ranges it has read and consumed
(:func:`drop_range`), so the kernel frees those pages first and leaves the rest alone.

The decision is made once per operation, from the bytes it reads (:func:`drop_behind`),
like :func:`arraystore._native.jit.numba_pays`. The environment variable
``ARRAYSTORE_PAGE_POLICY`` chooses:

``auto`` (default)
    drop when one pass reads more than :data:`DROP_FRACTION` of the page cache's
    capacity (:func:`page_cache_bytes`); an operation making several passes (quantiles,
    histograms) drops only when its data cannot stay cached anyway (more than the whole
    capacity), so its later passes still hit the cache when they can;
``keep``
    never advise (the kernel's own LRU decides);
``drop``
    always drop what was read.

Only ranges this process has just read are advised, never written files; where
``posix_fadvise`` is missing (macOS, Windows) or refused, nothing happens.
"""

from __future__ import annotations

import contextlib
import os

from arraystore.errors import InvalidArgument

POLICY_ENV = "ARRAYSTORE_PAGE_POLICY"
POLICIES = ("auto", "keep", "drop")
#: ``auto`` drops the pages of a one-pass scan reading more than this fraction of
#: :func:`page_cache_bytes`
DROP_FRACTION = 0.5


def page_policy() -> str:
    """``ARRAYSTORE_PAGE_POLICY`` (``auto`` when unset or empty)."""
    text = os.environ.get(POLICY_ENV, "").strip().lower() or "auto"
    if text not in POLICIES:
        raise InvalidArgument(
            f"{POLICY_ENV} must be one of {', '.join(POLICIES)}, got {os.environ[POLICY_ENV]!r}"
        )
    return text


def page_cache_bytes() -> int:
    """What the page cache can hold now without swapping: ``MemAvailable`` of
    /proc/meminfo (free memory plus reclaimable cache), else the machine's RAM."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 2**63  # unknown: never "large"


def drop_behind(nbytes: int, passes: int = 1) -> bool:
    """Should an operation reading ``nbytes`` (per pass, ``passes`` passes) drop the
    pages it reads? Decided once per operation (see the module docstring)."""
    policy = page_policy()
    if policy != "auto":
        return policy == "drop"
    if not hasattr(os, "posix_fadvise"):
        return False
    fraction = DROP_FRACTION if passes <= 1 else 1.0
    return nbytes > fraction * page_cache_bytes()


def drop_range(fd: int, offset: int, length: int) -> None:
    """Advise the kernel that bytes ``[offset, offset + length)`` of ``fd`` (0: to the
    end) will not be read again; their clean pages are freed (whole pages only).
    Silently nothing where ``posix_fadvise`` is unavailable or refused."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None or length < 0:
        return
    with contextlib.suppress(OSError):
        advise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def will_need(fd: int, length: int, offset: int = 0) -> None:
    """Ask the kernel to read bytes ``[offset, offset + length)`` of ``fd`` into the page
    cache now (``POSIX_FADV_WILLNEED``: all of it queued at once, not a readahead window
    at a time). Silently nothing where ``posix_fadvise`` is unavailable or refused."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None or length <= 0:
        return
    with contextlib.suppress(OSError):
        advise(fd, offset, length, os.POSIX_FADV_WILLNEED)
