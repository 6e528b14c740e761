"""Per-thread reusable read buffers: streaming reads land in memory that is already
mapped, so resident memory stays bounded and no page faults are paid per chunk."""

from __future__ import annotations

import math
import threading

import numpy as np

from arraystore._native.alloc import raw_buffer

_local = threading.local()


def buffer(shape: tuple[int, ...], dtype: np.dtype, slot: int = 0) -> np.ndarray:
    """A C-contiguous array of ``shape``/``dtype`` backed by this thread's buffer ``slot``."""
    nbytes = math.prod(shape) * dtype.itemsize
    bufs: dict[int, np.ndarray] = getattr(_local, "bufs", None) or {}
    _local.bufs = bufs
    raw = bufs.get(slot)
    if raw is None or raw.nbytes < nbytes:
        raw = raw_buffer(nbytes)
        bufs[slot] = raw
    return raw[:nbytes].view(dtype).reshape(shape)


def release() -> None:
    """Drop this thread's buffers."""
    _local.bufs = {}
