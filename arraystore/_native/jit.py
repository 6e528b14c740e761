"""Optional numba kernels, built once per process, thread-safely, and warmed early.

A :class:`LazyKernel` wraps a function that imports numba and returns an ``njit``
kernel (or None without numba, or with ``ARRAYSTORE_NO_NUMBA=1``). :meth:`get` builds it
under a lock, so every thread sees the same answer: two workers asking at once must not
run one block on the numba path and the other on the numpy path (their float sums round
differently, and results would depend on thread timing).

Importing numba and loading a cached kernel costs about half a second of CPU per
process. :meth:`prewarm` does that in a background thread while the first blocks are
being read (reads release the GIL), instead of after them. An operation on less data than
:data:`NUMBA_MIN_BYTES` does not pay that back and takes the numpy kernels without
importing numba at all (:func:`numba_pays`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from arraystore.errors import InvalidArgument

#: Bytes an operation reads before it uses the numba kernels; less data takes the numpy
#: kernels (same results to rounding) and never imports numba. Importing numba and
#: loading the cached stats kernel costs ~0.4 s of CPU per process; the fused kernel
#: saves ~0.25 s of CPU per GiB over numpy's for per-column stats (8 or 64 columns), and
#: costs ~0.1 s more per GiB for one column (a 1-d array, ``axis=None``) (2-core VM,
#: 2026-12), so it pays from about 2 GiB. The environment variable
#: ``ARRAYSTORE_NUMBA_MIN_BYTES`` (an integer number of bytes; 0: always) overrides it.
NUMBA_MIN_BYTES = 2 * 2**30
MIN_BYTES_ENV = "ARRAYSTORE_NUMBA_MIN_BYTES"


def numba_min_bytes(default: int = NUMBA_MIN_BYTES) -> int:
    """``default`` (:data:`NUMBA_MIN_BYTES`), or ``ARRAYSTORE_NUMBA_MIN_BYTES`` when set."""
    text = os.environ.get(MIN_BYTES_ENV, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise InvalidArgument(
            f"{MIN_BYTES_ENV} must be a number of bytes (an integer >= 0), got {text!r}"
        )
    return value


#: numba's import and loaded kernels cost about 100 MiB of resident memory (measured:
#: ``import numba`` alone +55 MiB); an operation under a memory budget below this keeps
#: to the numpy kernels unless ``ARRAYSTORE_NUMBA_MIN_BYTES`` is set
NUMBA_MIN_BUDGET = 512 * 2**20


def numba_pays(nbytes: int, min_bytes: int = NUMBA_MIN_BYTES, budget: int | None = None) -> bool:
    """Should an operation reading ``nbytes`` use the numba kernels (when installed)?
    Decided once per operation, from its size (and budget) only, so every block of it and
    every executor take the same path. ``min_bytes``: the operation's own threshold,
    where its kernels pay sooner; ``budget``: its memory budget (see
    :data:`NUMBA_MIN_BUDGET`)."""
    small = budget is not None and budget < NUMBA_MIN_BUDGET
    if small and not os.environ.get(MIN_BYTES_ENV, "").strip():
        return False
    return nbytes >= numba_min_bytes(min_bytes)


class LazyKernel:
    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._done = False
        self._kernel: Any = None

    def get(self) -> Any:
        """The kernel, or None (numba missing or disabled). Thread-safe; built once."""
        if self._done:
            return self._kernel
        with self._lock:
            if not self._done:
                kernel = None
                if not os.environ.get("ARRAYSTORE_NO_NUMBA"):
                    try:
                        kernel = self._build()
                    except ImportError:
                        kernel = None
                self._kernel = kernel
                self._done = True
        return self._kernel

    def reset(self) -> None:
        """Forget the kernel (tests)."""
        with self._lock:
            self._done = False
            self._kernel = None

    def prewarm(self, samples: Callable[[], Iterable[tuple[Any, ...]]] | None = None) -> None:
        """Build the kernel (and compile or load from the disk cache the signatures of
        ``samples()``, tiny argument tuples) in a daemon thread; returns at once."""
        if self._done and samples is None:
            return

        def warm() -> None:
            kernel = self.get()
            if kernel is not None and samples is not None:
                for args in samples():
                    kernel(*args)

        threading.Thread(target=warm, name="arraystore-jit-warmup", daemon=True).start()
