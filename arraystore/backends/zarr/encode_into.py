"""Compress a chunk into a reusable buffer with the C library numcodecs itself ships.

numcodecs' ``encode`` returns a new ``bytes`` per call; for a 64 MiB chunk that is a
fresh 64 MiB allocation (glibc maps anything above 32 MiB anew), and first-touching its
pages is a page fault per 4 KiB plus clearing: on the benchmark VM that cost more system
time than the compression itself. :func:`encoder` returns, for the codecs where it is
safe, an object whose :meth:`~LZ4Into.encode_into` writes exactly the bytes
``codec.encode`` would into the caller's (thread-local, reused) buffer, calling the same
``LZ4_compress_fast`` symbol of numcodecs' extension module through ctypes (which drops
the GIL during the call). Anything else (another codec, an older numcodecs without the
exported symbol, ``ARRAYSTORE_ENCODE_INTO=0``) returns ``None`` and the caller keeps
``codec.encode``. A test compares the bytes with ``codec.encode`` on several inputs.
"""

from __future__ import annotations

import ctypes
import functools
import os
from typing import Any

import numpy as np

__all__ = ["LZ4Into", "encoder"]

_LZ4_MAX_INPUT = 0x7E000000  # LZ4_MAX_INPUT_SIZE


@functools.cache
def _lz4_lib() -> Any:
    """``(LZ4_compress_fast, LZ4_compressBound)`` from numcodecs' lz4 module, or None."""
    try:
        import numcodecs.lz4 as mod

        lib = ctypes.CDLL(mod.__file__)
        fast, bound = lib.LZ4_compress_fast, lib.LZ4_compressBound
    except (ImportError, OSError, AttributeError):
        return None
    fast.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    fast.restype = ctypes.c_int
    bound.argtypes = [ctypes.c_int]
    bound.restype = ctypes.c_int
    return fast, bound


class LZ4Into:
    """``numcodecs.LZ4(acceleration)``'s frame: the source size as 4 little-endian bytes,
    then one LZ4 block."""

    def __init__(self, acceleration: int, lib: Any) -> None:
        self.acceleration = acceleration
        self._fast, self._bound = lib

    def bound(self, nbytes: int) -> int:
        """Bytes ``out`` needs for a source of ``nbytes``."""
        return int(self._bound(nbytes)) + 4

    def encode_into(self, src: np.ndarray, out: np.ndarray) -> int:
        """Compress C-contiguous uint8 ``src`` into uint8 ``out`` (at least
        :meth:`bound` long); returns the frame's length."""
        n = src.size
        if n > _LZ4_MAX_INPUT:
            raise ValueError("LZ4: a chunk of more than 2 GB")
        out[:4] = np.frombuffer(n.to_bytes(4, "little"), dtype=np.uint8)
        got = self._fast(src.ctypes.data, out.ctypes.data + 4, n, out.size - 4, self.acceleration)
        if got <= 0:
            raise RuntimeError(f"LZ4 compression error: {got}")
        return int(got) + 4


def encoder(compressor: str, codec: Any) -> LZ4Into | None:
    """An in-buffer encoder equivalent to ``codec`` (a numcodecs object), or None."""
    if compressor != "lz4" or os.environ.get("ARRAYSTORE_ENCODE_INTO", "1") == "0":
        return None
    lib = _lz4_lib()
    if lib is None:
        return None
    return LZ4Into(int(codec.acceleration), lib)
