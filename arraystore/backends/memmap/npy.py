"""The ``.npy`` file format as the memmap backend reads and writes it.

A memmap array's data file is a plain NumPy ``.npy`` file (format 1.0, or 2.0 when the
header is too large for 1.0): a header naming dtype, shape and C order, then the raw
C-order data. Headers are parsed with ``numpy.lib.format`` and never unpickle anything;
object dtypes and Fortran order are refused as :class:`CorruptData`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from arraystore.core.dtypes import is_bfloat16
from arraystore.errors import CorruptData

__all__ = ["bytes_view", "check_npy_size", "read_header", "same_layout", "write_header"]


def write_header(f: Any, dtype: np.dtype, shape: tuple[int, ...]) -> int:
    """Write a C-order .npy header at the start of the open file ``f``; returns its length
    (the data offset)."""
    d = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    try:
        np.lib.format.write_array_header_1_0(f, d)
    except ValueError:  # header too large for format 1.0
        f.seek(0)
        np.lib.format.write_array_header_2_0(f, d)
    return int(f.tell())


def read_header(path: Path, fd: int | None = None) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of a .npy file (or of the open file ``fd``), never
    unpickling anything."""
    try:
        with open(path if fd is None else fd, "rb", closefd=fd is None) as f:
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise CorruptData(f"{path}: unsupported .npy version {version}")
            except (ValueError, SyntaxError, EOFError) as exc:
                raise CorruptData(f"{path} is not a valid .npy file: {exc}") from None
            offset = f.tell()
    except FileNotFoundError:
        raise CorruptData(f"data file {path} is missing") from None
    except OSError as exc:
        raise CorruptData(f"cannot read {path}: {exc.strerror or exc}") from None
    if fortran:
        raise CorruptData(f"{path} is Fortran-ordered; arraystore stores C order")
    if dtype.hasobject:
        raise CorruptData(f"{path} holds an object dtype, which arraystore never loads")
    return tuple(int(s) for s in shape), dtype, offset


def check_npy_size(
    path: Path, shape: tuple[int, ...], dtype: np.dtype, offset: int, fd: int | None = None
) -> None:
    """Raise :class:`CorruptData` unless the file is exactly header + data long."""
    expected = offset + math.prod(shape) * dtype.itemsize
    actual = os.path.getsize(path) if fd is None else os.fstat(fd).st_size
    if actual != expected:
        raise CorruptData(
            f"{path} is {actual} bytes but shape {shape} of {dtype} needs {expected} "
            f"({'truncated' if actual < expected else 'trailing bytes'})"
        )


def same_layout(file_dtype: np.dtype, dtype: np.dtype) -> bool:
    """The file's dtype is the logical one (extension types like bfloat16 may read as void)."""
    if file_dtype == dtype:
        return True
    if file_dtype.itemsize != dtype.itemsize:
        return False
    if dtype.names is None:
        return is_bfloat16(dtype) and file_dtype.kind == "V"
    return file_dtype.names == dtype.names


def bytes_view(arr: np.ndarray) -> memoryview:
    """A writable/readable byte view of a C-contiguous array (no copy)."""
    return memoryview(arr.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
