"""Optional numba kernels, built once per process, thread-safely, and warmed early.

A :class:`LazyKernel` wraps a function that imports numba and returns an ``njit``
kernel (or None without numba, or with ``ARRAYSTORE_NO_NUMBA=1``). :meth:`get` builds it
under a lock, so every thread sees the same answer: two workers asking at once must not
run one block on the numba path and the other on the numpy path (their float sums round
differently, and results would depend on thread timing).

Importing numba and loading a cached kernel costs about half a second of CPU per
process. :meth:`prewarm` does that in a background thread while the first blocks are
being read (reads release the GIL), instead of after them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import Any


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
