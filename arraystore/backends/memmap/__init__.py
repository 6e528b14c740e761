"""memmap backend: one NumPy ``.npy`` file per array, records interleaved.

Format 2: the file is also the single shard of a Zarr v3 array (:mod:`.shard`): it lives
at the array's chunk key (``NAME/c/0/0`` for 2-d) beside the array's ``zarr.json``, whose
sharding codec's inner chunks are the logical row blocks. Format 1 (read; upgraded on
write): ``NAME/data.npy`` beside ``arraystore.json`` (and ``data.crc32c``).
``np.load(path, mmap_mode="r")`` opens the file with plain numpy either way.
Row-contiguous regions are read with ``os.preadv`` into (reusable) caller buffers and
written with ``os.pwrite``, so streaming never fills resident memory with mapped pages;
other regions go through ``np.memmap``. The .npy header is read and written by
:mod:`.npy`, the optional block checksums by :mod:`.crc`.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from arraystore._native import direct
from arraystore._native.pages import drop_range
from arraystore.backends.base import Backend, Handle, check_block
from arraystore.backends.memmap import crc
from arraystore.backends.memmap.cold import DirectScan, forget
from arraystore.backends.memmap.npy import (
    bytes_view,
    check_npy_size,
    read_header,
    same_layout,
    write_header,
)
from arraystore.backends.memmap.shard import ShardLayout, chunk_key, zarr_doc, zarr_type
from arraystore.core.chunks import Region, auto_chunks
from arraystore.core.meta import ATTR, ArrayMeta, doc_format, stored_dims
from arraystore.errors import (
    ArrayNotFound,
    CorruptData,
    InvalidArgument,
    MetadataError,
    ReadOnlyError,
)
from arraystore.fs import file_identity, read_json, start_writeback, write_json

__all__ = [
    "DATA",
    "MemmapBackend",
    "MemmapHandle",
    "bytes_view",
    "check_npy_size",
    "open_npy",
    "read_header",
    "write_header",
]

#: format 1's data file
DATA = "data.npy"
_OPEN_LOCK = threading.Lock()


def data_name(meta: ArrayMeta) -> str:
    """The data file of an array, relative to its folder: its chunk key (format 2) or
    ``data.npy`` (format 1)."""
    if meta.format < 2:
        return DATA
    return chunk_key(meta.ndim + (zarr_type(meta.dtype) is None))  # + the bytes dimension


def shard_layout(meta: ArrayMeta, header: int) -> ShardLayout:
    """Where data, padding, checksums and shard index sit in a format-2 data file."""
    rows = int(meta.chunks[0]) if meta.shape else 1
    return ShardLayout(meta.shape, meta.dtype.itemsize, rows, header, meta.checksum)


def open_npy(file: Path) -> MemmapHandle:
    """A read-only handle on any .npy file (e.g. ``create --from``); never unpickles."""
    shape, dtype, offset = read_header(file)
    check_npy_size(file, shape, dtype, offset)
    # the file's own dtype (maybe big-endian): bytes are read as they are, then converted
    meta = ArrayMeta(shape=shape, dtype=dtype, chunks=auto_chunks(shape, dtype.itemsize))
    return MemmapHandle(file.parent, meta, offset, writable=False, file=file)


def _replaced(path: Path) -> ArrayNotFound:
    return ArrayNotFound(
        f"array {path.name!r} was replaced or removed after it was opened (open it again)"
    )


class MemmapHandle(Handle):
    columnar = False
    contiguous_rows = True

    def __init__(
        self,
        path: Path,
        meta: ArrayMeta,
        offset: int,
        writable: bool,
        file: Path | None = None,
        committed: bool = False,
    ) -> None:
        self.path = path
        self.file = file if file is not None else path / data_name(meta)
        self.meta = meta
        self.offset = offset
        self.writable = writable
        #: the array has its metadata (False while a create/cast/map builds it)
        self.committed = committed
        #: format 2 (an array's own file): where padding, checksums and index are
        self.shard = shard_layout(meta, offset) if file is None and meta.format >= 2 else None
        self._fd: int | None = None
        self.row_bytes = math.prod(meta.shape[1:]) * meta.dtype.itemsize
        #: writes update the checksum table in place (a committed checksummed array, see
        #: :mod:`.crc`); a new array's checksums are computed by ``flush`` instead
        self.crc_live = False
        #: (st_dev, st_ino, generation) of the data file this handle was opened on
        #: (None: not known); see fs.file_identity
        self.ident: tuple[int, int, int | None] | None = None
        #: an O_DIRECT descriptor on the data file while a cold scan reads (read_scan)
        self._direct: DirectScan | None = None

    def fd(self) -> int:
        if self._fd is None:
            with _OPEN_LOCK:  # threads share one descriptor (pread/pwrite need no seek)
                if self._fd is None:
                    fd = os.open(self.file, os.O_RDWR if self.writable else os.O_RDONLY)
                    # reopened by name (after close, or in another process): is it
                    # still that file? (inode and generation: st_dev differs across NFS
                    # clients; a freed inode number is reused by the next new file)
                    if self.ident is not None and file_identity(fd)[1:] != self.ident[1:]:
                        os.close(fd)
                        raise _replaced(self.path)
                    self._fd = fd
        return self._fd

    def prepare(self) -> None:
        self.fd()  # open the data file now, not in several threads at once

    def work_chunks(self, target_bytes: int) -> tuple[int, ...]:
        """Row blocks of about ``target_bytes`` (any row range is one read or write)."""
        return auto_chunks(self.meta.shape, self.meta.dtype.itemsize, target_bytes)

    def identity(self) -> list[int | str | None] | None:
        if self.ident is None:
            return None
        # the data file (inode, generation) and when it was last written
        return [*self.ident[1:], os.fstat(self.fd()).st_mtime_ns]

    def check_current(self) -> None:
        if self.ident is None:
            return
        try:
            st = os.stat(self.file)
            now: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except (FileNotFoundError, NotADirectoryError):
            now = None
        # (while this handle's descriptor is open its inode cannot be reused; a handle
        # without one checks the generation too when fd() reopens the file)
        if now != self.ident[:2]:
            raise _replaced(self.path)

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_fd"] = None  # file descriptors do not travel to other processes
        state["_direct"] = None
        return state

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()

    def _contiguous(self, region: Region) -> bool:
        """Whole trailing dims: the region is one run of bytes in the file."""
        return all(
            r.start == 0 and r.stop == n
            for r, n in zip(region[1:], self.meta.shape[1:], strict=True)
        )

    def _memmap(self, mode: Any) -> np.memmap:
        # through the descriptor: the file this handle was opened on, even if replaced since
        with open(self.fd(), "r+b" if mode == "r+" else "rb", closefd=False) as f:
            return np.memmap(
                f,
                dtype=self.meta.dtype,
                mode=mode,
                offset=self.offset,
                shape=self.meta.shape,
                order="C",
            )

    def read(
        self, region: Region, field: str | None = None, out: np.ndarray | None = None
    ) -> np.ndarray:
        dtype, shape = self.block_dtype_shape(region, field)
        if out is None:
            out = np.empty(shape, dtype=dtype)
        elif out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
            raise InvalidArgument(f"out must be C-contiguous {dtype} of shape {shape}")
        if out.size == 0:
            return out
        if field is not None:
            records = self.read(region)
            out[...] = records[field]
            return out
        if self.meta.ndim == 0 or self._contiguous(region):
            start = self.offset + (region[0].start * self.row_bytes if region else 0)
            if self._direct is not None:
                self._direct.read(bytes_view(out), start, self._pread)
            else:
                self._pread(bytes_view(out), start)
        else:
            mm = self._memmap("r")
            try:
                out[...] = mm[region]
            finally:
                del mm
        return out

    def drop_pages(self, region: Region, field: str | None = None) -> None:
        """Drop the pages of a row-contiguous region (a whole record's bytes, whatever
        ``field``: records are read whole); others are left alone (their pages hold
        data that was not read)."""
        if self.writable or self._fd is None or not region or not self._contiguous(region):
            return
        start = self.offset + region[0].start * self.row_bytes
        length = (region[0].stop - region[0].start) * self.row_bytes
        if length > 0:
            drop_range(self._fd, start, length)

    @contextlib.contextmanager
    def read_scan(self, regions: Sequence[Region], direct_io: bool) -> Iterator[None]:
        """While a scan reads: with ``direct_io``, row-contiguous regions are read with
        ``O_DIRECT`` (a second descriptor on the same file) into aligned buffers and
        copied out; where the filesystem refuses, buffered (:mod:`.cold`)."""
        if not direct_io or self.writable or self._direct is not None:
            yield
            return
        dfd = direct.reopen_direct(self.fd())
        if dfd is None:
            yield
            return
        scan = self._direct = DirectScan(dfd)
        try:
            yield
        finally:
            self._direct = None
            scan.close()

    def will_read(self, regions: Sequence[Region]) -> None:
        """This thread reads ``regions`` next, in this order (during a direct scan:
        they are read ahead, :func:`arraystore._native.direct.depth` at a time)."""
        scan = self._direct
        if scan is None:
            forget()
            return
        rows = [r[0] for r in regions if r and self._contiguous(r)]
        start, size = self.offset, self.row_bytes
        scan.will_read([(start + r.start * size, (r.stop - r.start) * size) for r in rows])

    def _pread(self, buf: memoryview, offset: int) -> None:
        fd, done, total = self.fd(), 0, len(buf)
        while done < total:
            n = os.preadv(fd, [buf[done:]], offset + done)
            if n == 0:
                raise CorruptData(f"{self.file}: unexpected end of file (truncated?)")
            done += n

    def write(self, region: Region, block: np.ndarray, field: str | None = None) -> None:
        if not self.writable:
            raise ReadOnlyError(f"{self.path.name} is open read-only")
        dtype, shape = self.block_dtype_shape(region, field)
        block = check_block(block, dtype, shape)
        if block.size == 0:
            return
        if self.crc_live:  # refuse before writing when the checksums cannot follow
            crc.precheck(self.crc_loc, self.offset, self.meta.nbytes)
        if field is None and (self.meta.ndim == 0 or self._contiguous(region)):
            start = self.offset + (region[0].start * self.row_bytes if region else 0)
            buf = bytes_view(block)
            fd, done = self.fd(), 0
            while done < len(buf):
                done += os.pwrite(fd, buf[done:], start + done)
            start_writeback(fd, start, done)
        else:
            mm = self._memmap("r+")
            try:
                if field is None:
                    mm[region] = block
                else:
                    mm[field][region] = block
                mm.flush()
            finally:
                del mm
        if self.crc_live:
            self._update_crcs(region)

    def _update_crcs(self, region: Region) -> None:
        """Recompute the checksums of the blocks under the rows ``region`` touched."""
        if self.meta.ndim == 0 or not region:
            start, stop = 0, self.meta.nbytes
        else:
            start, stop = region[0].start * self.row_bytes, region[0].stop * self.row_bytes
        crc.update(self.crc_loc, self.file, self.fd(), self.offset, self.meta.nbytes, start, stop)

    def check_layout(self) -> list[str]:
        """Format 2: the shard index at the end of the file must be the one the header
        implies (every inner chunk where the data are), else zarr readers read wrong bytes."""
        if self.shard is None:
            return []
        want = self.shard.index()
        got = os.pread(self.fd(), len(want), self.shard.index_offset)
        if got == want:
            return []
        return [
            f"{self.file.name}: the shard index (bytes {self.shard.index_offset}-"
            f"{self.shard.file_size - 1}) disagrees with the .npy header: zarr readers would "
            "read wrong data ('arraystore upgrade' rewrites it)"
        ]

    @property
    def crc_loc(self) -> crc.Loc:
        """Where this array's checksum table is."""
        if self.shard is None:
            return crc.Loc.beside(self.path)
        return crc.Loc(self.file, self.shard.padded_end, alone=False)

    def stored_bytes(self) -> int:
        return os.path.getsize(self.file)

    def flush(self) -> None:
        """fsync the data file (also when other processes, e.g. dask workers, wrote it).

        A new checksummed array (no metadata yet: not committed) gets its checksums here,
        computed from the finished data, so they are committed with the array.
        """
        os.fsync(self.fd())
        if not (
            self.meta.checksum and self.writable and self.file == self.path / data_name(self.meta)
        ):
            return
        loc = self.crc_loc
        if self.crc_live:
            if loc.alone and loc.file.is_file():  # (a missing one: reported by writes, verify)
                fd = os.open(loc.file, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        elif not self.committed:
            table = crc.compute(self.file, self.offset, self.meta.nbytes)
            crc.write(loc, table)


class MemmapBackend(Backend):
    name = "memmap"

    def create(self, path: Path, meta: ArrayMeta) -> MemmapHandle:
        """A new format-2 array: its ``zarr.json`` (no arraystore metadata until the
        commit) and its data file: header, zeros, shard index."""
        _check_local(path)
        meta = meta.evolve(format=2)
        file = path / data_name(meta)
        file.parent.mkdir(parents=True, exist_ok=True)
        with open(file, "wb") as f:
            offset = write_header(f, meta.dtype, meta.shape)
            layout = shard_layout(meta, offset)
            f.truncate(layout.index_offset)
            f.seek(layout.index_offset)
            f.write(layout.index())
            ident = file_identity(f.fileno())
        write_json(path / "zarr.json", self.node_doc(meta, committed=False))
        handle = MemmapHandle(path, meta, offset, writable=True)
        handle.ident = ident
        return handle

    @staticmethod
    def node_doc(meta: ArrayMeta, committed: bool = True) -> dict[str, Any]:
        """The array's ``zarr.json`` (with our metadata once ``committed``)."""
        rows = int(meta.chunks[0]) if meta.shape else 1
        attrs = {ATTR: _attr_doc(meta)} if committed else {}
        return zarr_doc(meta.shape, meta.dtype, rows, attrs, meta.dims)

    def write_meta(self, path: Path, meta: ArrayMeta) -> None:
        doc = self.node_doc(meta.evolve(format=2))
        if meta.dims is None:  # the dimension names the array was created with stay
            with contextlib.suppress(MetadataError, OSError):
                old: Any = read_json(path / "zarr.json")
                names = old.get("dimension_names") if isinstance(old, dict) else None
                if isinstance(names, list) and len(names) == len(doc["dimension_names"]):
                    doc["dimension_names"] = names
        write_json(path / "zarr.json", doc)

    def open(
        self, path: Path, sidecar: dict, mode: str = "r", dir_fd: int | None = None
    ) -> MemmapHandle:
        """The data file is opened here, once (relative to ``dir_fd``, the array folder,
        when given): the handle keeps reading the file it was opened on, even after a
        commit replaced the array (its metadata describes that file, not the new one)."""
        _check_local(path)
        fmt = doc_format(sidecar)
        node = _read_node(path, dir_fd) if fmt >= 2 else None
        flags = os.O_RDWR if mode != "r" else os.O_RDONLY
        rel = DATA if fmt < 2 else _node_key(node, path)
        try:
            fd = os.open(rel if dir_fd is not None else path / rel, flags, dir_fd=dir_fd)
        except (FileNotFoundError, NotADirectoryError):
            raise CorruptData(f"data file {path / rel} is missing") from None
        except OSError as exc:
            raise CorruptData(f"cannot read {path / rel}: {exc.strerror or exc}") from None
        try:
            meta, offset = _check_file(path, rel, fd, sidecar, node)
        except BaseException:
            os.close(fd)
            raise
        committed = fmt < 2 or ATTR in (node or {}).get("attributes", {})
        if node is not None:  # dimension names of its own (e.g. from a foreign source)
            meta = meta.evolve(dims=stored_dims(node.get("dimension_names"), meta.ndim))
        handle = MemmapHandle(path, meta, offset, writable=(mode != "r"), committed=committed)
        handle._fd = fd
        handle.ident = file_identity(fd)
        # a committed checksummed array: writes keep its checksums up to date
        handle.crc_live = meta.checksum and handle.writable and committed
        return handle


def _attr_doc(meta: ArrayMeta) -> dict[str, Any]:
    """``attributes["arraystore"]``: our metadata, with the logical chunks (their rows
    are the shard's inner chunks, which span whole rows; the chunks may split a row)."""
    return meta.to_doc()


def _read_node(path: Path, dir_fd: int | None) -> dict[str, Any]:
    label = f"{path.name}/zarr.json"
    if dir_fd is None:
        doc = read_json(path / "zarr.json", label)
    else:
        doc = read_json(path / "zarr.json", label, dir_fd=dir_fd)
    if not isinstance(doc, dict) or doc.get("node_type") != "array":
        raise MetadataError(f"{label} is not a zarr array node")
    return doc


def _node_key(node: Any, path: Path) -> str:
    """The data file named by a memmap array's zarr.json (its only chunk's key)."""
    try:
        return chunk_key(len(node["shape"]))
    except (KeyError, TypeError) as exc:
        raise MetadataError(f"{path.name}/zarr.json: not a memmap array ({exc})") from None


def _essentials(node: dict, resizing: bool = False) -> Any:
    """What must agree between a memmap array's zarr.json and its data file (zarr-python
    may rewrite the rest, e.g. attributes, in its own spelling); ``resizing``: not the
    first dimension of the shape and of the shard."""
    try:
        shard = node["codecs"][0]
        conf = shard["configuration"]
        first = 1 if resizing else 0
        return (
            node["zarr_format"],
            node["shape"][first:],
            node["data_type"],
            node["chunk_grid"]["configuration"]["chunk_shape"][first:],
            node.get("chunk_key_encoding", {}).get("configuration", {}).get("separator", "/"),
            len(node["codecs"]),
            shard["name"],
            conf["chunk_shape"],
            [c["name"] for c in conf["codecs"]],
            [c["name"] for c in conf["index_codecs"]],
            conf.get("index_location", "end"),
        )
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


def _check_file(
    path: Path, rel: str, fd: int, doc: dict, node: dict | None
) -> tuple[ArrayMeta, int]:
    """Metadata of an opened data file, checked against its header, size and zarr.json.
    While a resize is settled (storage/grow.py: its journal ``.NAME.grow`` is there) the
    header decides: the file may be longer and zarr.json's shape may lag."""
    file = path / rel
    resizing = node is not None and (path.parent / f".{path.name}.grow").is_file()
    shape, file_dtype, offset = read_header(file, fd)
    if node is None:  # format 1: chunks in the sidecar, the file is header + data
        meta = ArrayMeta.from_doc(doc, shape=shape)
        if "chunks" not in doc:
            raise MetadataError(f"{path.name}: memmap metadata lacks 'chunks'")
        expected = offset + meta.nbytes
    else:
        try:
            inner = node["codecs"][0]["configuration"]["chunk_shape"]
            rows = int(inner[0]) if shape else 1
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise MetadataError(f"{path.name}/zarr.json: no shard inner chunks ({exc})") from None
        chunks = (max(rows, 1), *(max(1, s) for s in shape[1:])) if shape else ()
        meta = ArrayMeta.from_doc(
            doc, **({"shape": shape} if "chunks" in doc else {"shape": shape, "chunks": chunks})
        )
        if meta.chunks[:1] != chunks[:1]:
            raise CorruptData(
                f"{path.name}: chunks {meta.chunks} disagree with the shard's inner chunks "
                f"({rows} rows) in zarr.json"
            )
        want = zarr_doc(shape, meta.dtype, chunks[0] if shape else 1, {})
        if _essentials(node, resizing) != _essentials(want, resizing):
            raise CorruptData(
                f"{path.name}/zarr.json does not describe its data file {rel} "
                f"(shape {shape}, {meta.dtype})"
            )
        expected = shard_layout(meta, offset).file_size
    if not same_layout(file_dtype, meta.dtype):
        raise CorruptData(
            f"{path.name}: data file holds {file_dtype} but metadata says {meta.dtype}"
        )
    size = os.fstat(fd).st_size
    if size < expected or (node is not None and size != expected and not resizing):
        raise CorruptData(
            f"{file} is {size} bytes but shape {shape} of {meta.dtype} needs {expected} "
            f"({'truncated' if size < expected else 'trailing bytes'})"
        )
    return meta, offset


def _check_local(path: Path) -> None:
    if not isinstance(path, Path):
        raise InvalidArgument(
            f"the memmap backend needs a local store, not {path}: use the zarr backend"
        )
