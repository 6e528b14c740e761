"""zarr backend: zarr format 3 through zarr-python; structured dtypes stored columnar.

Plain dtype: the array's directory is one zarr v3 array. Structured dtype: the directory
is a zarr v3 group holding one plain zarr v3 array per field (a subarray field gets
trailing dimensions), so each field opens in any zarr client and reading one field
touches only that field's chunk files. Codecs come from zarr / numcodecs:

=============  ==================================================================
``none``       no compression
``zstd[:L]``   zarr's ``zstd`` codec (level L, default 3)
``gzip[:L]``   zarr's ``gzip`` codec
``blosc-lz4``  zarr's ``blosc`` codec, cname lz4, byte shuffle (``blosc-zstd`` too)
``lz4``        zarr's ``blosc`` codec, cname lz4, no shuffle (format 1 wrote numcodecs'
               ``numcodecs.lz4``, which is not in the zarr v3 spec: still read)
=============  ==================================================================

Our metadata (format 2) is ``attributes["arraystore"]`` of the array's ``zarr.json`` (the
group's for a structured array), written last: :meth:`ZarrBackend.write_meta`.

Sharded (``ArrayMeta.shards``): each array (each field's) is zarr's ``sharding_indexed``
around that codec chain -- the chunk grid is the shards, the logical chunks are the inner
chunks -- read and written by :mod:`.shards` (whole shards; a partial region write is a
read-modify-write of the shard file).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from arraystore.backends.base import Backend, Handle, check_block
from arraystore.backends.zarr.arraydoc import MAX_CHUNKS, MAX_NBYTES, check_array_doc
from arraystore.backends.zarr.chunks import ALL_CHUNKS, ChunkIO, check_same_folder
from arraystore.backends.zarr.codecs import (
    CODECS,
    codec_from_json,
    make_compressors,
    parse_codec,
    quiet,
)
from arraystore.backends.zarr.cold import DirectChunks, read_ahead
from arraystore.backends.zarr.shards import (
    ShardIO,
    drop_region,
    read_region,
    shard_work_chunks,
    write_region,
)
from arraystore.core.chunks import (
    Region,
    chunk_region,
    chunks_touching,
    grid_shape,
    intersect,
    relative,
)
from arraystore.core.dtypes import Field, check_zarr_dtype, dtype_from_json, field_dtype, fields_of
from arraystore.core.meta import ATTR, SIDECAR, ArrayMeta, doc_format, stored_dims
from arraystore.errors import (
    ArrayNotFound,
    ArrayStoreError,
    CorruptData,
    MetadataError,
    ReadOnlyError,
)
from arraystore.fs import file_identity, read_json, tree_state, write_json

if TYPE_CHECKING:
    from arraystore.backends.zarr.chunks import ChunkIO

__all__ = [
    "ALL_CHUNKS",
    "CODECS",
    "MAX_CHUNKS",
    "MAX_NBYTES",
    "ZarrBackend",
    "ZarrHandle",
    "codec_from_json",
    "make_compressors",
    "parse_codec",
]

#: ALL_CHUNKS: zarr.json attribute of every zarr array arraystore creates: each chunk is
#: written (also one equal to the fill value), so a missing chunk file is lost data, not
#: fill value. Arrays written before this flag existed may lack chunks (zeros were never
#: written), so for them a missing chunk still reads as the fill value.


def _zarr_dtype(dtype: np.dtype) -> Any:
    check_zarr_dtype(dtype)
    return np.dtype(dtype.str)  # the canonical sized dtype (zarr has no `longlong`)


def _dims(ndim: int, prefix: str = "", extra: int = 0) -> list[str]:
    names = [f"dim_{i}" for i in range(ndim)]
    return names + [f"{prefix}dim_{i}" for i in range(extra)]


def _ix(region: Region) -> Any:
    """An index that keeps 0-d results as arrays (``block[()]`` would give a scalar)."""
    return (*region, Ellipsis)


class ZarrHandle(Handle):
    #: chunk files are only ever replaced whole (``os.replace``), never truncated in
    #: place: a scan may map them (:mod:`.cold`)
    whole_chunk_files = True

    def __init__(
        self,
        path: Path,
        meta: ArrayMeta,
        writable: bool,
        dir_fd: int | None = None,
        committed: bool = True,
    ) -> None:
        self.path = path
        self.meta = meta
        self.writable = writable
        self.columnar = meta.dtype.names is not None
        self._arrays: dict[str | None, Any] = {}
        self._cio: dict[str | None, ChunkIO | None] = {}
        #: the array has its metadata (False while a create/cast/map builds it)
        self.committed = committed
        # the array folder as opened: chunk files are read relative to it (a commit that
        # replaces the array cannot pair these metadata with the new array's chunks)
        self._dir_fd = None if dir_fd is None else os.dup(dir_fd)
        #: (st_dev, st_ino, generation) of that folder (kept when the handle is pickled)
        self._home: tuple[int, int, int | None] | None = None
        if dir_fd is not None:
            self._home = file_identity(dir_fd)

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_arrays"] = {}  # reopened lazily where the handle lands
        state["_cio"] = {}
        state["_dir_fd"] = None  # file descriptors do not travel to other processes
        return state

    def identity(self) -> list[int | str | None] | None:
        # the array folder (inode, generation): a replaced array is told apart; and its
        # chunk files' state (fs.tree_state: stats only, no data read): a write in place
        if self._home is None or not isinstance(self.path, Path):
            return None
        return [*self._home[1:], *tree_state(self.path, frozenset({SIDECAR}))]

    def check_current(self) -> None:
        if self._home is None or not isinstance(self.path, Path):
            return
        now: tuple[int, int, int | None] | None = None
        try:  # (while the folder is held open its inode number cannot be reused: a
            # pickled or closed handle compares the generation too, see file_identity)
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            pass
        else:
            try:
                now = file_identity(fd)
            finally:
                os.close(fd)
            if self._dir_fd is not None:
                now = (*now[:2], self._home[2])
        if now != self._home:
            raise ArrayNotFound(
                f"array {self.path.name!r} was replaced or removed after it was opened "
                "(open it again)"
            )

    def close(self) -> None:
        fd, self._dir_fd = getattr(self, "_dir_fd", None), None
        if fd is not None:
            os.close(fd)
        self._cio = {}

    def __del__(self) -> None:
        self.close()

    def array(self, field: str | None) -> Any:
        """The zarr-python array holding the data (of one field)."""
        arr = self._arrays.get(field)
        if arr is None:
            import zarr

            where = self.path if field is None else self.path / field
            try:
                with quiet():
                    arr = zarr.open_array(
                        _zarr_store(where, read_only=not self.writable),
                        mode="r+" if self.writable else "r",
                        zarr_format=3,
                    )
                    if self.meta.all_chunks:  # a chunk equal to the fill value is data too
                        arr = arr.with_config({"write_empty_chunks": True})
            except (KeyError, TypeError, ValueError, OverflowError, ZeroDivisionError) as exc:
                raise CorruptData(f"{where}: zarr cannot open it: {exc}") from exc
            self._arrays[field] = arr
        return arr

    def read(
        self, region: Region, field: str | None = None, out: np.ndarray | None = None
    ) -> np.ndarray:
        dtype, shape = self.block_dtype_shape(region, field)
        if out is None:
            out = np.empty(shape, dtype=dtype)
        if out.size == 0:
            return out
        if self.columnar and field is None:
            for f in fields_of(self.meta.dtype):
                out[f.name] = self.read(region, f.name)
            return out
        cio = self.chunk_io(field)
        if cio is not None:
            self._fast_read(cio, region, out)
            return out
        if self._dir_fd is not None:  # zarr-python reads by path: is it still our folder?
            check_same_folder(self._dir_fd, self.path)
        if self.meta.all_chunks:
            self._check_chunks_exist(region, field)
        try:
            out[...] = self.array(field)[region]
        except (ValueError, RuntimeError, TypeError) as exc:
            keys = [
                str(self.chunk_key(i, field).relative_to(self.path.parent))
                for i in chunks_touching(
                    region, self.meta.shape, self.meta.shards or self.meta.chunks
                )
            ]
            shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
            raise CorruptData(f"cannot decode chunk(s) {shown}: {exc}") from exc
        return out

    def _check_chunks_exist(self, region: Region, field: str | None) -> None:
        """Every chunk of an array arraystore wrote completely is a file: zarr-python would
        read a missing one as the fill value, so it is corruption, reported here."""
        trail = (0,) * (0 if field is None else len(field_dtype(self.meta.dtype, field).subshape))
        for idx in chunks_touching(region, self.meta.shape, self.meta.shards or self.meta.chunks):
            key = self.chunk_key(idx + trail, field)
            if not key.is_file():
                raise CorruptData(f"chunk {str(key.relative_to(self.path))!r} missing")

    def write(self, region: Region, block: np.ndarray, field: str | None = None) -> None:
        if not self.writable:
            raise ReadOnlyError(f"{self.path.name} is open read-only")
        dtype, shape = self.block_dtype_shape(region, field)
        block = check_block(block, dtype, shape)
        if block.size == 0:
            return
        if self.columnar and field is None:
            for f in fields_of(self.meta.dtype):
                self.write(region, block[f.name], f.name)
            return
        cio = self.chunk_io(field)
        if cio is not None:
            self._fast_write(cio, region, block)
            return
        self.array(field)[region] = block

    # ----------------------------------------------- direct chunk-file I/O path
    def chunk_io(self, field: str | None) -> ChunkIO | None:
        """Direct chunk-file reader/writer (numcodecs) or None for zarr-python's path."""
        if field not in self._cio:
            if not isinstance(self.path, Path):  # remote: zarr-python's own I/O
                self._cio[field] = None
                return None

            where = self.path if field is None else self.path / field
            kind = ChunkIO if self.meta.shards is None else ShardIO
            if self._dir_fd is None:
                cio = kind.from_path(where)
            else:
                rel = "" if field is None else f"{field}/"
                cio = kind.from_dir(where, self._dir_fd, rel, self.path)
            nd = self.meta.ndim
            if (
                cio is not None
                and cio.shape[:nd] != self.meta.shape  # resized since open
                and hasattr(cio, "with_shape")
            ):
                cio = cio.with_shape(self.meta.shape + cio.shape[nd:])
            self._cio[field] = cio
        return self._cio[field]

    @contextlib.contextmanager
    def read_scan(self, regions: Sequence[Region], direct_io: bool) -> Iterator[None]:
        """The chunk files of ``regions`` (a plain dtype's unsharded local array) are
        read a few ahead of the readers (:mod:`.cold`): with O_DIRECT (``direct_io``),
        else through the page cache when compressed (not: ``ARRAYSTORE_READ_AHEAD=0``)."""
        cio = self.chunk_io(None) if not self.writable and not self.columnar else None
        if cio is None or type(cio) is not ChunkIO or cio.direct is not None:
            yield
            return
        if not direct_io and (cio.compressor == "none" or not read_ahead()):
            yield
            return
        trail = (0,) * (len(cio.shape) - self.meta.ndim)
        keys = {
            cio.chunk_key(idx + trail): None
            for r in regions
            for idx in chunks_touching(r, self.meta.shape, self.meta.chunks)
        }
        if len(keys) < 2 and not direct_io:  # nothing to read ahead of
            yield
            return
        dev = os.stat(cio.path).st_dev
        cio.direct = DirectChunks(
            cio.open_chunk, dev, list(keys), cio.chunk_bytes, direct_io, self.whole_chunk_files
        )
        try:
            yield
        finally:
            cio.direct.close()
            cio.direct = None

    def drop_pages(self, region: Region, field: str | None = None) -> None:
        """Drop the pages of the chunk files wholly inside ``region`` (local stores read
        by the direct chunk reader; a chunk shared with another region is read again)."""
        if self.writable:
            return
        if self.columnar and field is None:
            for f in fields_of(self.meta.dtype):
                self.drop_pages(region, f.name)
            return
        cio = self.chunk_io(field)
        if isinstance(cio, ShardIO):
            drop_region(cio, region)
            return
        if cio is None:
            return
        ntrail = len(cio.shape) - self.meta.ndim
        shape, chunks = self.meta.shape, self.meta.chunks
        for idx in chunks_touching(region, shape, chunks):
            creg = chunk_region(idx, shape, chunks)
            if intersect(region, creg) == creg:  # (a chunk shared with another region: kept)
                cio.drop_chunk(idx + (0,) * ntrail)

    def work_chunks(self, target_bytes: int) -> tuple[int, ...]:
        if self.meta.shards is None:
            return self.meta.chunks
        return shard_work_chunks(
            self.meta.shards, self.meta.chunks, self.meta.dtype.itemsize, target_bytes
        )

    def _fast_read(self, cio: ChunkIO, region: Region, out: np.ndarray) -> None:
        """Read whole chunks straight into ``out`` when aligned, else via a chunk buffer."""
        if isinstance(cio, ShardIO):
            read_region(cio, region, out)
            return
        shape, chunks = self.meta.shape, self.meta.chunks
        ntrail = len(cio.shape) - self.meta.ndim
        for idx in chunks_touching(region, shape, chunks):
            creg = chunk_region(idx, shape, chunks)
            inter = intersect(region, creg)
            if inter is None:
                continue
            full_idx = idx + (0,) * ntrail
            dst = out[_ix(relative(inter, region))]
            if inter == creg == region and dst.flags.c_contiguous:
                cio.read_chunk(full_idx, dst)
                continue
            buf = cio.read_chunk(full_idx)
            dst[...] = buf[_ix(relative(inter, creg))]

    def _fast_write(self, cio: ChunkIO, region: Region, block: np.ndarray) -> None:
        """Write whole chunks directly; partly covered chunks are read, patched, rewritten."""
        if isinstance(cio, ShardIO):  # a new array's missing chunks are fill value
            write_region(cio, region, block, fill_missing=not self.committed)
            return
        shape, chunks = self.meta.shape, self.meta.chunks
        ntrail = len(cio.shape) - self.meta.ndim
        for idx in chunks_touching(region, shape, chunks):
            creg = chunk_region(idx, shape, chunks)
            inter = intersect(region, creg)
            if inter is None:
                continue
            full_idx = idx + (0,) * ntrail
            part = block[_ix(relative(inter, region))]
            if inter == creg:
                cio.write_chunk(full_idx, part if part.flags.c_contiguous else part.copy())
                continue
            # a new array's chunks are written as it is built: a missing one is fill then
            buf = cio.read_chunk(full_idx, fill_missing=not self.committed)
            buf[_ix(relative(inter, creg))] = part
            cio.write_chunk(full_idx, buf)

    def stored_bytes(self) -> int:
        if not isinstance(self.path, Path):  # RemotePath
            return int(self.path.du(skip=("zarr.json", "arraystore.json")))
        total = 0
        for root, _dirs, files in os.walk(self.path):
            for name in files:
                if name not in ("zarr.json", "arraystore.json"):
                    total += os.path.getsize(os.path.join(root, name))
        return total

    def chunk_key(self, index: tuple[int, ...], field: str | None = None) -> Path:
        base = self.path if field is None else self.path / field
        return base.joinpath("c", *map(str, index)) if index else base / "c"


class ZarrBackend(Backend):
    name = "zarr"

    def create(self, path: Path, meta: ArrayMeta) -> ZarrHandle:
        import zarr
        from zarr.storage import LocalStore

        compressors = make_compressors(meta.codec)
        if meta.checksum:
            from zarr.codecs import Crc32cCodec

            compressors = [*compressors, Crc32cCodec()]
        store = LocalStore(path) if isinstance(path, Path) else _zarr_store(path, read_only=False)
        with quiet():
            if meta.dtype.names is None:
                zarr.create_array(
                    store,
                    shape=meta.shape,
                    chunks=meta.chunks,
                    shards=meta.shards,
                    dtype=_zarr_dtype(meta.dtype),
                    compressors=compressors,
                    fill_value=0,
                    dimension_names=list(meta.dims) if meta.dims else _dims(meta.ndim),
                    zarr_format=3,
                    overwrite=True,
                    write_data=False,
                    attributes={ALL_CHUNKS: True},
                )
            else:
                group = zarr.open_group(store, mode="w", zarr_format=3)
                for f in fields_of(meta.dtype):
                    self._create_field(group, meta, f, compressors)
        meta = meta.evolve(all_chunks=True, format=2)
        return ZarrHandle(path, meta, writable=True, committed=False)

    def write_meta(self, path: Path, meta: ArrayMeta) -> None:
        """Our metadata into the node's zarr.json (the array's, or the structured array's
        group's), atomically; zarr's own keys are kept as they are."""
        label = f"{path.name}/zarr.json"
        doc = read_json(path / "zarr.json", label)
        if not isinstance(doc, dict) or doc.get("node_type") not in ("array", "group"):
            raise MetadataError(f"{label} is not a zarr node")
        attrs = doc.get("attributes")
        attrs = dict(attrs) if isinstance(attrs, dict) else {}
        attrs.pop("arraystore_structured", None)  # format 1's marker
        attrs[ATTR] = meta.evolve(format=2).to_doc()
        attrs[ATTR].pop("chunks", None)  # zarr.json says it
        write_json(path / "zarr.json", {**doc, "attributes": attrs})

    @staticmethod
    def _create_field(group: Any, meta: ArrayMeta, f: Field, compressors: list[Any]) -> None:
        fill: Any = b"" if f.dtype.kind == "S" else ("" if f.dtype.kind == "U" else 0)
        group.create_array(
            f.name,
            shape=meta.shape + f.subshape,
            chunks=meta.chunks + f.subshape,
            shards=None if meta.shards is None else meta.shards + f.subshape,
            dtype=_zarr_dtype(f.dtype),
            compressors=compressors,
            fill_value=fill,
            dimension_names=_dims(meta.ndim, f"{f.name}_", len(f.subshape)),
            write_data=False,
            attributes={ALL_CHUNKS: True},
        )

    def open(
        self, path: Path, sidecar: dict, mode: str = "r", dir_fd: int | None = None
    ) -> ZarrHandle:
        try:
            dtype = dtype_from_json(sidecar.get("dtype"))  # validates field names first
        except ArrayStoreError as exc:
            raise MetadataError(f"{path.name}: bad dtype in metadata: {exc}") from None
        fields: list[Field | None] = list(fields_of(dtype)) or [None]
        docs = []
        for f in fields:
            where = path if f is None else path / f.name
            label = f"{path.name}/zarr.json" if f is None else f"{path.name}/{f.name}/zarr.json"
            docs.append((f, label, _read_doc(where, label, dir_fd, f)))
        checksum = sidecar.get("checksum") is True
        logical: tuple[Any, ...] | None = None
        pending = _resizing(path, dir_fd) if fields[0] is not None else None
        codec, complete = "none", True
        for f, label, doc in docs:
            expected = dtype if f is None else f.dtype
            try:
                shape, chunks, this_codec, shards = check_array_doc(doc, expected, label, checksum)
            except MetadataError:
                raise
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
                raise CorruptData(f"{label} is not a valid zarr v3 array: {exc}") from None
            sub = () if f is None else f.subshape
            nd = len(shape) - len(sub)
            bad_shards = shards is not None and shards[nd:] != sub
            if nd < 0 or shape[nd:] != sub or chunks[nd:] != sub or bad_shards:
                raise MetadataError(f"{label}: shape {shape} does not end with subarray {sub}")
            this = (shape[:nd], chunks[:nd], None if shards is None else shards[:nd])
            if logical is None:
                logical, codec = this, this_codec
            elif logical[1:] != this[1:] or (logical[0] != this[0] and not pending):
                raise MetadataError(f"{label}: shape/chunks differ from the other fields")
            complete = complete and (doc.get("attributes") or {}).get(ALL_CHUNKS) is True
        assert logical is not None
        if pending is not None:  # the fields' shapes may differ: the journal decides
            logical = (pending, *logical[1:])
        meta = ArrayMeta.from_doc(
            sidecar, shape=logical[0], chunks=logical[1], codec=codec, all_chunks=complete
        )
        if logical[2] is not None:  # sharded (sharding_indexed): chunks are the inner ones
            meta = meta.evolve(shards=logical[2])
        if fields[0] is None:  # dimension names of its own (e.g. from a foreign source)
            meta = meta.evolve(dims=stored_dims(docs[0][2].get("dimension_names"), meta.ndim))
        committed = _committed(path, dir_fd, doc_format(sidecar))
        handle = ZarrHandle(path, meta, writable=(mode != "r"), dir_fd=dir_fd, committed=committed)
        unit = meta.shards or meta.chunks
        grid = grid_shape(meta.shape, unit)
        if committed and meta.all_chunks and 0 not in grid:
            # a grown shape (or lost tail) is caught here, before a plan over the grid
            last = chunk_region(tuple(n - 1 for n in grid), meta.shape, unit)
            for name in meta.dtype.names or (None,):
                handle._check_chunks_exist(last, name)
        return handle


def _resizing(path: Path, dir_fd: int | None) -> tuple[int, ...] | None:
    """The shape of a structured array whose resize was interrupted (storage/grow.py:
    its journal ``.NAME.grow`` is there): its fields' documents may disagree until it is
    settled; the new shape once the group's document is the journal's new one (the
    commit), else the old one. None: no resize pending."""
    if not isinstance(path, Path):
        return None
    journal = path.parent / f".{path.name}.grow"
    if not journal.is_file():
        return None
    try:
        doc = read_json(journal, journal.name)
        node = read_json(
            path / "zarr.json", path.name, **({} if dir_fd is None else {"dir_fd": dir_fd})
        )
        done = isinstance(doc, dict) and node == doc["new_docs"]["zarr.json"]
        return tuple(int(n) for n in doc["new_shape" if done else "old_shape"])  # type: ignore[index]
    except (MetadataError, OSError, KeyError, TypeError, ValueError):
        return None


def _read_doc(where: Path, label: str, dir_fd: int | None, f: Field | None) -> Any:
    """``where/zarr.json``, read relative to the array folder ``dir_fd`` when given."""
    if dir_fd is None:
        return read_json(where / "zarr.json", label)
    if f is None:
        return read_json(where / "zarr.json", label, dir_fd=dir_fd)
    try:
        sub = os.open(f.name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        raise MetadataError(f"missing metadata file {label}") from None
    try:
        return read_json(where / "zarr.json", label, dir_fd=sub)
    finally:
        os.close(sub)


def _zarr_store(where: Path, read_only: bool) -> Any:
    """What zarr opens: the local path itself, or an FsspecStore for a RemotePath."""
    if isinstance(where, Path):
        return where
    from zarr.storage import FsspecStore

    return FsspecStore.from_url(
        where.url,
        storage_options=where.storage_options(),
        read_only=read_only,
    )


def _committed(path: Path, dir_fd: int | None, fmt: int) -> bool:
    """The array has its metadata: its zarr.json has our attributes (format 2), or its
    sidecar exists (format 1)."""
    if fmt < 2:
        if dir_fd is None:
            return bool((path / SIDECAR).exists())
        try:
            os.stat(SIDECAR, dir_fd=dir_fd)
        except FileNotFoundError:
            return False
        return True
    label = f"{path.name}/zarr.json"
    try:
        doc = read_json(path / "zarr.json", label, **({} if dir_fd is None else {"dir_fd": dir_fd}))
    except MetadataError:
        return False
    attrs = doc.get("attributes") if isinstance(doc, dict) else None
    return isinstance(attrs, dict) and ATTR in attrs
