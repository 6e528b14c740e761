"""arraystore: large N-dimensional arrays on disk, processed chunk by chunk.

>>> import arraystore
>>> store = arraystore.open("data.store", mode="a")      # reads metadata only
>>> arr = store.create("x", shape=(1000, 8), dtype="f8", fill="random")
>>> arr[10:20].shape
(10, 8)
"""

from __future__ import annotations

from typing import Any, cast

from arraystore.array import Array
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
from arraystore.ops.interop import from_dask as _from_dask
from arraystore.ops.map.blocks import map_blocks as _map_blocks
from arraystore.store import Store, open


def map_blocks(fn: Any, *arrays: Any, **kwargs: Any) -> Array:
    """Apply ``fn`` to aligned numpy blocks of ``arrays`` into a new array (``out=NAME``);
    see :func:`arraystore.ops.map.blocks.map_blocks`."""
    return cast(Array, _map_blocks(fn, *arrays, **kwargs))  # (views of a Store are Arrays)


def from_dask(darr: Any, store: Store, name: str, **kwargs: Any) -> Array:
    """Store a dask array chunk by chunk as array ``name``."""
    return cast(Array, _from_dask(darr, store, name, **kwargs))


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
    "parse_dtype",
]


def __dir__() -> list[str]:
    """``dir(arraystore)``: the public API only (no submodules or typing helpers)."""
    return [*__all__, "__version__"]
