"""ops.describe: the JSON-able description of an array (``arraystore info``)."""

from __future__ import annotations

from typing import Any

from arraystore.backends.base import Handle
from arraystore.core.dtypes import dtype_to_spec, fields_of

__all__ = ["describe"]


def describe(name: str, handle: Handle) -> dict[str, Any]:
    """Name, backend, shape, dtype, fields, chunks, shards, codec, checksum, nbytes, stored_bytes,
    ratio, attrs, history, format; dims when known (zarr ``dimension_names`` other than
    the default ``dim_0``...); a foreign array also: foreign, read_path (how chunks are
    read: ``direct`` or ``zarr-python (why)``) and zarr_format.

    Parameters
    ----------
    name : str
        The array's name.
    handle : Handle
        Its open handle.
    """
    stored = handle.stored_bytes()
    meta = handle.meta
    doc: dict[str, Any] = {
        "name": name,
        "backend": meta.backend,
        "shape": list(meta.shape),
        "dtype": dtype_to_spec(meta.dtype),
        "fields": [
            {"name": f.name, "dtype": dtype_to_spec(f.dtype), "subshape": list(f.subshape)}
            for f in fields_of(meta.dtype)
        ],
        "chunks": list(meta.chunks),
        "shards": None if meta.shards is None else list(meta.shards),
        "codec": meta.codec,
        "checksum": meta.checksum,
        "nbytes": meta.nbytes,
        "stored_bytes": stored,
        "ratio": (meta.nbytes / stored) if stored else None,
        "attrs": meta.attrs,
        "history": list(meta.history),
        "format": meta.format,
    }
    if meta.dims:
        doc["dims"] = list(meta.dims)
    if meta.foreign:
        doc["foreign"] = True
        doc["dims"] = list(meta.dims) if meta.dims else None
        doc["read_path"] = "direct (memmap, in place)"
        doc.update(handle.describe())
    return doc
