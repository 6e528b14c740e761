"""The zarr.json of an array the zarr backend wrote, validated against our metadata."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from arraystore.backends.zarr.codecs import codec_from_json, quiet
from arraystore.backends.zarr.shards import sharding_config
from arraystore.errors import MetadataError

__all__ = ["MAX_CHUNKS", "MAX_NBYTES", "check_array_doc"]

#: refused on open: more chunks than files could exist, or more bytes than create allows
MAX_CHUNKS = 2**32
MAX_NBYTES = 2**62


def _ints(doc: Any, what: str, low: int) -> tuple[int, ...]:
    """A JSON list of integers >= ``low`` (no floats, bools or strings)."""
    if not isinstance(doc, list) or not all(type(v) is int and v >= low for v in doc):
        raise MetadataError(f"{what} {repr(doc)[:60]} must be a list of integers >= {low}")
    return tuple(doc)


def check_array_doc(
    doc: Any, dtype: np.dtype, label: str, checksum: bool
) -> tuple[tuple[int, ...], tuple[int, ...], str, tuple[int, ...] | None]:
    """Shape, chunks, codec and shards (None unless sharded; then the chunk grid is the
    shards and ``chunks`` the inner ones) of a zarr.json array document, validated and checked
    against our metadata: the data type must be ``dtype`` (the logical dtype or the
    field's), a crc32c codec must be there exactly when ``checksum``, and the shape must
    be possible (at most MAX_NBYTES bytes in at most MAX_CHUNKS chunks)."""
    if not isinstance(doc, dict) or doc.get("node_type") != "array":
        raise ValueError("not a zarr array node")
    if doc.get("zarr_format") != 3:
        raise ValueError(f"zarr_format {doc.get('zarr_format')!r} is not 3")
    shape = _ints(doc["shape"], f"{label}: shape", 0)
    grid = doc["chunk_grid"]
    if grid.get("name") != "regular":
        raise ValueError(f"chunk grid {grid.get('name')!r} is not regular")
    chunks = _ints(grid["configuration"]["chunk_shape"], f"{label}: chunk shape", 1)
    if len(chunks) != len(shape):
        raise MetadataError(f"{label}: chunk shape {chunks} does not match shape {shape}")
    if math.prod(shape) * dtype.itemsize > MAX_NBYTES:
        raise MetadataError(f"{label}: shape {shape} of {dtype} is impossibly large")
    if math.prod(-(-s // c) for s, c in zip(shape, chunks, strict=True)) > MAX_CHUNKS:
        raise MetadataError(f"{label}: shape {shape} in chunks {chunks} has over 2**32 chunks")
    codecs, shards = doc["codecs"], None
    sharding = sharding_config(codecs)
    if sharding is not None:  # sharded: the grid is the shards, the inner chunks are ours
        codecs, shards = sharding["codecs"], chunks
        chunks = _ints(sharding["chunk_shape"], f"{label}: inner chunk shape", 1)
        if len(chunks) != len(shape) or any(s % c for s, c in zip(shards, chunks, strict=True)):
            raise MetadataError(f"{label}: shards {shards} are not a multiple of chunks {chunks}")
    if not isinstance(codecs, list) or not all(isinstance(c, dict) for c in codecs):
        raise ValueError("codecs must be a list of objects")
    if "data_type" not in doc or "fill_value" not in doc:
        raise KeyError("data_type/fill_value")
    stored = _native_dtype(doc["data_type"], label)
    if stored.str.replace(">", "<") != dtype.str:
        raise MetadataError(
            f"{label}: data_type {stored.name} disagrees with our metadata (dtype {dtype.name})"
        )
    if any(c.get("name") == "crc32c" for c in codecs) != checksum:
        says = "checksums" if checksum else "no checksums"
        raise MetadataError(f"{label}: codecs disagree with our metadata, which says {says}")
    return shape, chunks, codec_from_json(codecs), shards


def _native_dtype(data_type: Any, label: str) -> np.dtype:
    from zarr.core.dtype import get_data_type_from_json

    try:
        with quiet():
            return np.dtype(get_data_type_from_json(data_type, zarr_format=3).to_native_dtype())
    except (ValueError, TypeError, KeyError) as exc:
        raise MetadataError(f"{label}: unknown zarr data_type {data_type!r} ({exc})") from None
