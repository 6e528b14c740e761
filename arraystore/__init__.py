"""arraystore: large N-dimensional arrays on disk, processed chunk by chunk.

>>> import arraystore
>>> store = arraystore.open("data.store", mode="a")      # reads metadata only
>>> arr = store.create("x", shape=(1000, 8), dtype="f8", fill="random")
>>> arr[10:20].shape
(10, 8)
"""

from __future__ import annotations

from .array import Array
from .core.dtypes import parse_dtype
from .core.errors import (
    ArrayExists,
    ArrayNotFound,
    ArrayStoreError,
    CastError,
    CorruptData,
    DTypeError,
    FieldNotFound,
    InvalidArgument,
    InvalidName,
    InvalidStore,
    MemoryBudgetError,
    MetadataError,
    ReadOnlyError,
    ShapeMismatch,
    StoreNotFound,
    UnknownBackend,
    UnknownCodec,
)
from .store import Store, open

__version__ = "0.1.0"

__all__ = [
    "Array",
    "ArrayExists",
    "ArrayNotFound",
    "ArrayStoreError",
    "CastError",
    "CorruptData",
    "DTypeError",
    "FieldNotFound",
    "InvalidArgument",
    "InvalidName",
    "InvalidStore",
    "MemoryBudgetError",
    "MetadataError",
    "ReadOnlyError",
    "ShapeMismatch",
    "Store",
    "StoreNotFound",
    "UnknownBackend",
    "UnknownCodec",
    "open",
    "parse_dtype",
]
