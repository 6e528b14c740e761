"""Array metadata: a frozen dataclass and its JSON (de)serialisation.

Format 2 (DESIGN.md §3): ``attributes["arraystore"]`` of the array's own ``zarr.json``
(:data:`ATTR`) holds only what zarr's metadata cannot say: format version, backend,
logical dtype (field order, subarrays), attrs and the history of operations, the
checksum flag. Shape, chunks and codecs are read from zarr's own metadata.
Format 1 (read, and upgraded on write): the same facts in a sidecar ``arraystore.json``
(:data:`SIDECAR`) beside the data, with a memmap array's logical chunks.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from arraystore.core.dtypes import check_zarr_dtype, dtype_from_json, dtype_to_json, fields_of
from arraystore.errors import ArrayStoreError, InvalidArgument, MetadataError

FORMAT_VERSION = 2
#: the key of our metadata in a node's zarr.json ``attributes`` (format 2)
ATTR = "arraystore"
#: format 1's metadata file beside the data
SIDECAR = "arraystore.json"
MAX_METADATA_BYTES = 16 * 2**20
BACKENDS = ("memmap", "zarr")
_KEYS_1 = {"arraystore_format", "backend", "dtype", "chunks", "attrs", "history", "checksum"}
_KEYS_2 = {"format", "backend", "dtype", "chunks", "attrs", "history", "checksum"}


@dataclass(frozen=True)
class ArrayMeta:
    """Everything arraystore knows about one array.

    shape: logical shape (records for structured dtypes; subarray dims are in the dtype).
    dtype: logical numpy dtype (plain or structured, little-endian, packed).
    chunks: chunk shape over ``shape``.
    backend: ``"memmap"`` or ``"zarr"``.
    codec: codec spec for zarr (``"none"``, ``"lz4"``, ``"zstd:3"``, ...); ``"none"`` for memmap.
    attrs: user attributes (JSON-able).
    history: operations applied to the array (casts...), oldest first.
    checksum: whether checksums are stored (zarr: the crc32c codec of every chunk;
        memmap: ``data.crc32c``, CRC-32C per 1 MiB block, see backends/memmap/crc.py).
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    chunks: tuple[int, ...]
    backend: str = "memmap"
    codec: str = "none"
    attrs: dict[str, Any] = field(default_factory=dict)
    history: tuple[dict[str, Any], ...] = ()
    checksum: bool = False
    #: zarr: every chunk was written (zarr.json attribute ``arraystore_all_chunks``; a
    #: missing chunk file is then corruption, not fill value). Not stored in the sidecar.
    all_chunks: bool = False
    #: on-disk format of the array: 2 (zarr.json attributes) or 1 (sidecar; upgraded on write)
    format: int = FORMAT_VERSION
    #: zarr: shard shape (a multiple of ``chunks``: the chunk grid of a sharding_indexed
    #: array, whose inner chunks are ``chunks``), None when not sharded. Not in the sidecar.
    shards: tuple[int, ...] | None = None
    #: a zarr array (or .npy file) arraystore did not write, read in place: read-only,
    #: metadata from its own zarr metadata (see arraystore.storage.foreign). Not stored.
    foreign: bool = False
    #: dimension names (zarr ``dimension_names`` / xarray's ``_ARRAY_DIMENSIONS``), when
    #: known; a new zarr array gets them as its ``dimension_names``. Not stored.
    dims: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.chunks) != len(self.shape):
            raise MetadataError(f"chunks {self.chunks} do not match shape {self.shape}")
        if any(int(c) < 1 for c in self.chunks):
            raise MetadataError(f"chunks {self.chunks} must all be >= 1")
        if self.backend not in BACKENDS:
            raise MetadataError(f"unknown backend {self.backend!r} in metadata")
        if self.backend == "zarr":  # before anything is written (create, cast, map, import)
            check_zarr_dtype(self.dtype)
        if self.dims is not None and len(self.dims) != len(self.shape):
            raise MetadataError(f"dimension names {self.dims} do not match shape {self.shape}")

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields_of(self.dtype))

    def evolve(self, **changes: Any) -> ArrayMeta:
        return replace(self, **changes)

    def to_doc(self) -> dict[str, Any]:
        """Our metadata document (format 2): ``attributes["arraystore"]`` of the array's
        ``zarr.json``; the logical chunks of a memmap array are included (they are also
        the inner chunks of its shard: a journal or a worker rebuilds the array from it)."""
        doc: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "backend": self.backend,
            "dtype": dtype_to_json(self.dtype),
        }
        if self.backend == "memmap":
            doc["chunks"] = list(self.chunks)
        doc["attrs"] = self.attrs
        doc["history"] = list(self.history)
        doc["checksum"] = self.checksum
        return doc

    @classmethod
    def from_doc(cls, doc: Any, **backend_facts: Any) -> ArrayMeta:
        """Build from our metadata document (format 2, or a format-1 sidecar) plus facts
        read from the backend (shape...)."""
        version = doc_format(doc)
        unknown = set(doc) - (_KEYS_1 if version == 1 else _KEYS_2)
        if unknown:
            raise MetadataError(f"unknown metadata keys {sorted(unknown)}")
        try:
            dtype = dtype_from_json(doc["dtype"])
            attrs = doc.get("attrs", {})
            history = doc.get("history", [])
            if not isinstance(attrs, dict) or not isinstance(history, list):
                raise MetadataError("attrs must be an object and history a list")
            kw: dict[str, Any] = {
                "dtype": dtype,
                "backend": doc["backend"],
                "attrs": attrs,
                "history": tuple(history),
                "checksum": bool(doc.get("checksum", False)),
                "format": version,
            }
            if "chunks" in doc:
                kw["chunks"] = tuple(int(c) for c in doc["chunks"])
            kw.update(backend_facts)
            kw["shape"] = tuple(int(s) for s in kw["shape"])
            return cls(**kw)
        except MetadataError:
            raise
        except (ArrayStoreError, KeyError, TypeError, ValueError, OverflowError) as exc:
            raise MetadataError(f"invalid metadata: {exc}") from exc


def stored_dims(names: Any, ndim: int) -> tuple[str, ...] | None:
    """The dimension names of one of our arrays from its zarr.json ``dimension_names``
    (the first ``ndim``: a memmap array of raw records adds ``bytes``), or None when
    there are none or they are the defaults every array gets (``dim_0``, ``dim_1``...)."""
    if not isinstance(names, list) or len(names) < ndim:
        return None
    names = names[:ndim]
    if not all(isinstance(n, str) and n for n in names):
        return None
    if names == [f"dim_{i}" for i in range(ndim)]:
        return None
    return tuple(names)


def named_axes(axis: Any, dims: tuple[str, ...] | None) -> Any:
    """``axis`` (an int, a name or a tuple of them) with dimension names replaced by their
    index in ``dims`` (``"time"`` -> 0); anything else is left for the caller to check."""

    def one(a: Any) -> Any:
        if not isinstance(a, str):
            return a
        if dims is None or a not in dims:
            known = f"dimensions: {', '.join(dims)}" if dims else "no dimension names known"
            raise InvalidArgument(f"unknown axis {a!r} ({known})")
        return dims.index(a)

    if isinstance(axis, tuple | list):
        return tuple(one(a) for a in axis)
    return one(axis)


def doc_format(doc: Any) -> int:
    """The format of our metadata document: 2 (zarr.json attributes) or 1 (sidecar)."""
    if not isinstance(doc, dict):
        raise MetadataError("metadata must be a JSON object")
    version = doc.get("format", doc.get("arraystore_format"))
    if type(version) is not int or version not in (1, 2) or ("format" in doc) == (version == 1):
        raise MetadataError(
            f"unsupported arraystore format version {version!r} (this is {FORMAT_VERSION})"
        )
    return version


def loads(text: str | bytes, what: str = "metadata") -> Any:
    """Parse a JSON document with a size limit; errors become MetadataError."""
    if len(text) > MAX_METADATA_BYTES:
        raise MetadataError(f"{what} is larger than {MAX_METADATA_BYTES} bytes")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MetadataError(f"{what} is not valid JSON ({exc})") from exc


def dumps(doc: Any) -> str:
    return json.dumps(doc, indent=2, allow_nan=False, default=_json_default) + "\n"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
