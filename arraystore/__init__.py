"""arraystore: large N-dimensional arrays on disk, processed chunk by chunk.

>>> import arraystore
>>> store = arraystore.open("data.store", mode="a")      # reads metadata only
>>> arr = store.create("x", shape=(1000, 8), dtype="f8", fill="random")
>>> arr[10:20].shape
(10, 8)
"""

from __future__ import annotations

from typing import Any

from arraystore.array import Array, map_blocks
from arraystore.core.dtypes import parse_dtype
from arraystore.errors import (
    ArrayExists,
    ArrayNotFound,
    ArrayStoreError,
    CastError,
    CastOverflow,
    CorruptData,
    DTypeError,
    FieldNotFound,
    InvalidArgument,
    InvalidIndex,
    InvalidName,
    InvalidStore,
    InvalidType,
    LockedError,
    MemoryBudgetError,
    MetadataError,
    MissingDependency,
    ReadOnlyError,
    ShapeMismatch,
    StoreNotFound,
    UnknownBackend,
    UnknownCodec,
    UnknownExecutorError,
)
from arraystore.store import Store, from_dask, open, open_array


def __getattr__(name: str) -> Any:
    """``__version__``, read from the package metadata on first use: importing
    :mod:`importlib.metadata` costs ~25 ms, a tenth of a small command's start-up."""
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("arraystore")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            value = "0+unknown"
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Array",
    "ArrayExists",
    "ArrayNotFound",
    "ArrayStoreError",
    "CastError",
    "CastOverflow",
    "CorruptData",
    "DTypeError",
    "FieldNotFound",
    "InvalidArgument",
    "InvalidIndex",
    "InvalidName",
    "InvalidStore",
    "InvalidType",
    "LockedError",
    "MemoryBudgetError",
    "MetadataError",
    "MissingDependency",
    "ReadOnlyError",
    "ShapeMismatch",
    "Store",
    "StoreNotFound",
    "UnknownBackend",
    "UnknownCodec",
    "UnknownExecutorError",
    "from_dask",
    "map_blocks",
    "open",
    "open_array",
    "parse_dtype",
]


def __dir__() -> list[str]:
    """``dir(arraystore)``: the public API only (no submodules or typing helpers)."""
    return [*__all__, "__version__"]
