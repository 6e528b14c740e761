"""Zarr arrays arraystore did not write (zarr-python v2/v3, xarray, tensorstore), read in
place: no import, no copy.

Metadata comes from the array's own zarr metadata (v3 ``zarr.json``; v2 ``.zarray`` and
``.zattrs``): shape, data type, chunk grid, codecs, fill value, dimension names
(``dimension_names`` or xarray's ``_ARRAY_DIMENSIONS``) and attributes become an
:class:`ArrayMeta` with ``foreign=True`` (``all_chunks`` false: a missing chunk is the
fill value). A :class:`ForeignHandle` is read-only: arraystore never writes into a
foreign array's chunks.

Reads take the direct chunk path (:class:`.chunks.ChunkIO`) where the codecs allow: v3
``bytes`` (little or big endian: swapped after decoding), then at most one of blosc,
zstd, gzip, numcodecs.lz4, then optionally crc32c; ``sharding_indexed`` around such a
chain (:mod:`.shards`: each shard's index decoded once, only the inner chunks a read
touches are read; index codecs bytes + crc32c, at the start or end; ``meta.chunks`` are
the inner chunks and ``meta.shards`` the shards, as for our own sharded arrays); v2 (C
order, numeric data types) any compressor and filters numcodecs decodes. Anything else
(nested sharding, transpose, strings, F order...) is read by zarr-python;
:attr:`ForeignHandle.read_path` names the path taken and why (``info`` shows it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from arraystore.backends.zarr import ZarrHandle
from arraystore.backends.zarr.chunks import ChunkIO
from arraystore.backends.zarr.codecs import (
    DATA_TYPES,
    Unsupported,
    codec_from_json,
    named,
    parse_codec,
    parse_codecs,
    parse_fill_value,
    quiet,
)
from arraystore.backends.zarr.shards import foreign_shard_io, sharding_config
from arraystore.core.chunks import Region
from arraystore.core.meta import ArrayMeta
from arraystore.errors import (
    ArrayStoreError,
    CorruptData,
    DTypeError,
    MetadataError,
    ReadOnlyError,
)
from arraystore.fs import read_json

__all__ = ["V2_ARRAY", "V2_ATTRS", "V2_GROUP", "ForeignHandle", "open_foreign", "output_codec"]

V2_ARRAY, V2_ATTRS, V2_GROUP = ".zarray", ".zattrs", ".zgroup"
_DIMS_ATTR = "_ARRAY_DIMENSIONS"
_META_FILES = frozenset({"zarr.json", V2_ARRAY, V2_ATTRS, V2_GROUP, ".zmetadata"})


def output_codec(meta: ArrayMeta) -> str:
    """The codec a new array made from ``meta`` gets: its own when it is one of ours
    (``zstd:3``, ``blosc-lz4``...), else ``none``."""
    try:
        parse_codec(meta.codec)
    except ArrayStoreError:
        return "none"
    return meta.codec


class ForeignHandle(ZarrHandle):
    """A read-only handle on a foreign zarr v2/v3 array (see the module docstring)."""

    whole_chunk_files = False  # (other writers may rewrite a chunk file in place)

    def __init__(self, path: Path, meta: ArrayMeta, zarr_format: int, doc: dict[str, Any]):
        super().__init__(path, meta, writable=False)
        self.zarr_format = zarr_format
        self._doc = doc
        cio, why = _direct(zarr_format, doc, path)
        #: ``direct`` or ``zarr-python (<why>)``: how chunks are read
        self.read_path = "direct" if cio is not None else f"zarr-python ({why})"
        self._cio[None] = cio

    def chunk_io(self, field: str | None) -> ChunkIO | None:
        if field not in self._cio:  # (reset when pickled)
            self._cio[field] = _direct(self.zarr_format, self._doc, self.path)[0]
        return self._cio[field]

    def array(self, field: str | None) -> Any:
        arr = self._arrays.get(field)
        if arr is None:
            import zarr

            where: Any = self.path
            if not isinstance(where, Path):  # a URL (RemotePath): through fsspec
                from zarr.storage import FsspecStore

                opts = where.storage_options()
                where = FsspecStore.from_url(where.url, storage_options=opts, read_only=True)
            try:
                with quiet():
                    fmt: Any = self.zarr_format
                    arr = zarr.open_array(where, mode="r", zarr_format=fmt)
            except (KeyError, TypeError, ValueError, OverflowError, ZeroDivisionError) as exc:
                raise CorruptData(f"{self.path}: zarr cannot open it: {exc}") from exc
            self._arrays[field] = arr
        return arr

    def write(self, region: Region, block: np.ndarray, field: str | None = None) -> None:
        raise ReadOnlyError(
            f"{self.path.name!r} is a zarr array arraystore did not write: it is read-only "
            "(cast/map write a new array)"
        )

    def stored_bytes(self) -> int:
        if not isinstance(self.path, Path):  # a URL (RemotePath)
            return int(self.path.du(skip=tuple(_META_FILES)))
        total = 0
        for root, _dirs, files in os.walk(self.path):
            total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
            total -= sum(os.path.getsize(os.path.join(root, f)) for f in _META_FILES & set(files))
        return total

    def describe(self) -> dict[str, Any]:
        return {
            "foreign": True,
            "zarr_format": self.zarr_format,
            "read_path": self.read_path,
            "dims": list(self.meta.dims) if self.meta.dims else None,
            "fill_value": self._doc.get("fill_value"),
            "zarr_codecs": (
                self._doc.get("codecs")
                if self.zarr_format == 3
                else {k: self._doc.get(k) for k in ("filters", "compressor", "order")}
            ),
        }


def open_foreign(path: Path, name: str) -> ForeignHandle:
    """Open the foreign zarr array in folder ``path`` (``name``: for messages)."""
    fmt, doc, attrs = _read(path, name)
    try:
        meta = _meta_v3(doc, attrs) if fmt == 3 else _meta_v2(doc, attrs)
    except DTypeError as exc:  # a foreign data type arraystore cannot read
        raise DTypeError(f"zarr array {name!r}: {exc}") from None
    except ArrayStoreError as exc:
        raise MetadataError(f"zarr array {name!r}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise MetadataError(f"zarr array {name!r}: invalid zarr metadata ({exc})") from None
    return ForeignHandle(path, meta, fmt, doc)


def _read(path: Path, name: str) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """(zarr_format, array document, attributes) of the array folder ``path``."""
    if (path / "zarr.json").is_file():
        doc = read_json(path / "zarr.json", f"{name}/zarr.json")
        if not isinstance(doc, dict) or doc.get("node_type") != "array":
            raise MetadataError(f"{name!r} is not a zarr array")
        attrs = doc.get("attributes") or {}
        return 3, doc, attrs if isinstance(attrs, dict) else {}
    if (path / V2_ARRAY).is_file():
        doc = read_json(path / V2_ARRAY, f"{name}/{V2_ARRAY}")
        attrs = (
            read_json(path / V2_ATTRS, f"{name}/{V2_ATTRS}") if (path / V2_ATTRS).is_file() else {}
        )
        if not isinstance(doc, dict) or not isinstance(attrs, dict):
            raise MetadataError(f"{name}/{V2_ARRAY} must hold a JSON object")
        return 2, doc, attrs
    raise MetadataError(f"{name!r} is not a zarr array (no zarr metadata)")


def _dims(names: Any, ndim: int) -> tuple[str, ...] | None:
    if isinstance(names, list) and len(names) == ndim and all(isinstance(n, str) for n in names):
        return tuple(names)
    return None


def _ints(doc: Any, low: int) -> tuple[int, ...]:
    if not isinstance(doc, list) or not all(type(v) is int and v >= low for v in doc):
        raise ValueError(f"{doc!r} is not a list of integers >= {low}")
    return tuple(doc)


def _meta_v3(doc: dict[str, Any], attrs: dict[str, Any]) -> ArrayMeta:
    shape = _ints(doc["shape"], 0)
    grid_name, grid = named(doc["chunk_grid"])
    if grid_name != "regular":
        raise MetadataError(f"chunk grid {grid_name!r} is not supported (only regular)")
    chunks = _ints(grid["chunk_shape"], 1)
    dtype = _v3_dtype(doc["data_type"])
    codecs = doc.get("codecs") or []
    inner, shards = _sharded(codecs, chunks)
    dims = _dims(doc.get("dimension_names"), len(shape)) or _dims(attrs.get(_DIMS_ATTR), len(shape))
    return ArrayMeta(
        shape=shape,
        dtype=dtype,
        chunks=chunks if shards is None else inner[1],
        backend="zarr",
        codec=codec_from_json(inner[0]),
        attrs={k: v for k, v in attrs.items() if k != _DIMS_ATTR},
        checksum=any(named(c)[0] == "crc32c" for c in inner[0]),
        foreign=True,
        dims=dims,
        shards=shards,
    )


def _sharded(
    codecs: list[Any], grid: tuple[int, ...]
) -> tuple[tuple[list[Any], tuple[int, ...]], tuple[int, ...] | None]:
    """((codecs applying to a chunk's bytes, chunk shape), shard shape or None): for a
    ``sharding_indexed`` array the inner codecs and chunks and the grid's shards, as for
    our own sharded arrays; the chain as it is otherwise (or when the inner chunk shape
    does not divide the shard shape)."""
    conf = sharding_config(codecs)
    if conf is None:
        return (codecs, grid), None
    inner = conf.get("chunk_shape")
    if not (
        isinstance(inner, list)
        and len(inner) == len(grid)
        and all(type(c) is int and c >= 1 for c in inner)
        and not any(s % c for s, c in zip(grid, inner, strict=True))
    ):
        return (codecs, grid), None
    return (list(conf.get("codecs") or []), tuple(inner)), grid


def _v3_dtype(data_type: Any) -> np.dtype:
    if isinstance(data_type, str) and data_type in DATA_TYPES:  # (no zarr import)
        return np.dtype(data_type)
    from zarr.core.dtype import get_data_type_from_json

    try:
        with quiet():
            dt = np.dtype(get_data_type_from_json(data_type, zarr_format=3).to_native_dtype())
    except (ValueError, TypeError, KeyError) as exc:
        raise MetadataError(f"unknown zarr data_type {data_type!r} ({exc})") from None
    return _logical(dt)


def _logical(dt: np.dtype) -> np.dtype:
    if dt.hasobject or dt.names is not None:
        raise DTypeError(f"data type {dt} (variable-length or structured) is not supported")
    return dt.newbyteorder("<") if dt.byteorder == ">" else dt


def _meta_v2(doc: dict[str, Any], attrs: dict[str, Any]) -> ArrayMeta:
    if doc.get("zarr_format") != 2:
        raise MetadataError(f"zarr_format {doc.get('zarr_format')!r} is not 2")
    shape = _ints(doc["shape"], 0)
    chunks = _ints(doc["chunks"], 1)
    if not isinstance(doc["dtype"], str):
        raise DTypeError(f"data type {doc['dtype']!r} (structured) is not supported")
    dtype = _logical(np.dtype(doc["dtype"]))
    return ArrayMeta(
        shape=shape,
        dtype=dtype,
        chunks=chunks,
        backend="zarr",
        codec=_v2_codec(doc),
        attrs={k: v for k, v in attrs.items() if k != _DIMS_ATTR},
        foreign=True,
        dims=_dims(attrs.get(_DIMS_ATTR), len(shape)),
    )


def _v2_codec(doc: dict[str, Any]) -> str:
    """Our name of a v2 compressor (``blosc-lz4``, ``zstd:3``...), filters first."""
    parts = [str(f.get("id")) for f in doc.get("filters") or [] if isinstance(f, dict)]
    comp = doc.get("compressor")
    if isinstance(comp, dict):
        cid = comp.get("id")
        if cid == "blosc":
            lz4 = comp.get("cname") == "lz4" and comp.get("shuffle") == 0
            parts.append("lz4" if lz4 else f"blosc-{comp.get('cname')}")
        elif cid in ("zstd", "gzip", "zlib"):
            parts.append(f"{cid}:{comp.get('level')}")
        else:
            parts.append(str(cid))
    return "+".join(parts) or "none"


# ------------------------------------------------------------- the direct chunk path
def _direct(fmt: int, doc: dict[str, Any], path: Path) -> tuple[ChunkIO | None, str]:
    """The direct chunk reader of a foreign array, or None and why not."""
    if not isinstance(path, Path):
        return None, "a URL store"
    try:
        return (_direct_v3(doc, path) if fmt == 3 else _direct_v2(doc, path)), ""
    except Unsupported as exc:
        return None, str(exc)


def _little(codecs: Any) -> tuple[Any, bool]:
    """``codecs`` with a big-endian ``bytes`` codec made little-endian, and whether it was
    (the direct reader then swaps the decoded chunks)."""
    if isinstance(codecs, list) and codecs:
        name, conf = named(codecs[0])
        if name == "bytes" and conf.get("endian") == "big":
            return [{"name": "bytes", "configuration": {"endian": "little"}}, *codecs[1:]], True
    return codecs, False


def _direct_v3(doc: dict[str, Any], path: Path) -> ChunkIO:
    if not isinstance(doc.get("data_type"), str) or doc["data_type"] not in DATA_TYPES:
        dt = doc.get("data_type")
        raise Unsupported(f"data type {dt.get('name') if isinstance(dt, dict) else dt!r}")
    dtype = np.dtype(str(doc["data_type"]))
    sharding = sharding_config(doc.get("codecs"))
    if sharding is not None:  # inner chunks in shard files: index decoded, partial reads
        inner, swap = _little(sharding.get("codecs"))
        conf = {**sharding, "codecs": inner}
        sio = foreign_shard_io(
            {**doc, "codecs": [{"name": "sharding_indexed", "configuration": conf}]}, path
        )
        sio.swap = swap and dtype.itemsize > 1
        return sio
    codecs, swap = _little(doc.get("codecs"))
    cio = ChunkIO.from_metadata({**doc, "codecs": codecs}, path, write_empty_chunks=False)
    if cio is None:  # why not: the codec chain, or else the rest of the metadata
        parse_codecs(codecs, dtype)
        raise Unsupported("metadata")
    cio.swap = swap and dtype.itemsize > 1
    return cio


class _Pipeline:
    """A zarr v2 chain decoded by numcodecs: the compressor, then the filters in reverse."""

    def __init__(self, compressor: Any, filters: list[Any]) -> None:
        self.compressor = compressor
        self.filters = filters

    def decode(self, data: Any) -> np.ndarray:
        buf = data if self.compressor is None else self.compressor.decode(data)
        for f in reversed(self.filters):
            buf = f.decode(buf)
        return np.ascontiguousarray(buf).reshape(-1).view(np.uint8)


_FAST_V2 = {"blosc": "blosc", "zstd": "zstd", "gzip": "gzip", "lz4": "lz4"}


def _direct_v2(doc: dict[str, Any], path: Path) -> ChunkIO:
    import sys

    import numcodecs

    if sys.byteorder != "little":
        raise Unsupported("big-endian host")
    if doc.get("order", "C") != "C":
        raise Unsupported(f"order {doc.get('order')!r}")
    stored = np.dtype(doc["dtype"])
    dtype = stored.newbyteorder("<") if stored.byteorder == ">" else stored
    if dtype.name not in DATA_TYPES:
        raise Unsupported(f"data type {stored}")
    shape, chunks = _ints(doc["shape"], 0), _ints(doc["chunks"], 1)
    fill = doc.get("fill_value")
    fill_value = dtype.type(0) if fill is None else parse_fill_value(fill, dtype)
    separator = doc.get("dimension_separator", ".")
    if separator not in (".", "/"):
        raise Unsupported(f"dimension separator {separator!r}")
    try:
        comp = doc.get("compressor")
        compressor = None if comp is None else numcodecs.get_codec(dict(comp))
        filters = [numcodecs.get_codec(dict(f)) for f in doc.get("filters") or []]
    except (ValueError, TypeError, KeyError) as exc:
        raise Unsupported(f"codec: {exc}") from None
    cid = None if comp is None else comp.get("id")
    kind: Any
    codec: Any
    if filters or (cid is not None and cid not in _FAST_V2):
        kind, codec = "pipeline", _Pipeline(compressor, filters)
    else:
        kind, codec = ("none", None) if cid is None else (_FAST_V2[cid], compressor)
    cio = ChunkIO(path, shape, chunks, dtype, fill_value, "", separator, kind, codec, False, False)
    cio.swap = stored.byteorder == ">" and dtype.itemsize > 1
    return cio
