"""Direct chunk I/O for local zarr v3 arrays: the zarr backend's fast path (DESIGN §4).

zarr-python 3.1 reads a 128 MiB chunk at well under 1 GB/s; reading the same chunk file
with one ``readv`` into a preallocated buffer and decoding it with numcodecs straight
into the caller's array is several times faster. :class:`ChunkIO` does exactly that for
the arrays whose codecs it understands (:mod:`.codecs` parses them), and produces the
*same files* zarr-python 3.1.6 does (same keys, same bytes), so the array stays a plain
zarr v3 array.

What it accepts (anything else: :meth:`ChunkIO.from_metadata` returns ``None`` and the
caller uses zarr-python):

* a regular chunk grid, no storage transformers, unknown extension fields only with
  ``must_understand: false``;
* chunk key encoding ``default`` (``c/i/j`` or ``c.i.j``) or ``v2`` (``i/j`` or ``i.j``);
* data type ``bool``, ``int8``..``int64``, ``uint8``..``uint64``, ``float16/32/64``,
  ``complex64/128`` with a fill value representable in it;
* codecs: ``bytes`` (little endian), then at most one of ``blosc``, ``zstd``, ``gzip``,
  ``numcodecs.lz4``, then optionally ``crc32c`` last. No transpose; sharded arrays
  (``sharding_indexed`` around such a chain) are read by :mod:`.shards`.

Bytes on disk, for a chunk buffer ``b`` (always the *full* chunk shape, C order; edge
chunks are padded with the fill value, as zarr-python does)::

    file = compress(b.tobytes()) [+ crc32c(compressed) as 4 little-endian bytes]

with the numcodecs object zarr-python itself uses (``Blosc`` with the stored typesize,
single-threaded like zarr, which sets ``numcodecs.blosc.use_threads = False``; ``Zstd``;
``GZip``; ``LZ4``). The only bytes that can differ from a file zarr-python writes for the
same data are gzip's 4-byte MTIME header field, which numcodecs' ``GZip`` sets to the
current time (so two zarr-python writes differ there too).

Empty chunks: zarr-python 3.1 (``array.write_empty_chunks`` is ``False`` by default)
does not store a chunk whose every element equals the fill value (bitwise for a float
fill of zero, so ``-0.0`` is data; NaN equals a NaN fill) and *deletes* the chunk file if
one exists. :meth:`ChunkIO.write_chunk` does the same unless ``write_empty_chunks`` is
true, so the chunk files match zarr-python's (but a complex fill compares bitwise: zarr
drops a chunk of complex -0.0s, losing the sign). A missing chunk reads as fill value.

Writes go to ``<key>.<uuid>.partial`` beside the chunk (zarr's LocalStore naming) and are
moved into place with ``os.replace``: readers never see a torn chunk. No fsync (zarr's
LocalStore does not fsync either). Chunk files of 1 MiB or more are written with
``O_DIRECT`` where the filesystem allows it (:mod:`.direct`): same bytes, no page cache.

Thread safety: a :class:`ChunkIO` is immutable after construction except for one scratch
buffer *per thread* (``threading.local``) that holds the compressed bytes of the chunk
being read; the numcodecs codecs it uses keep no state between calls. Reading and writing
*different* chunks from several threads at once is safe; two concurrent writes of the
same chunk leave one of the two complete files. The GIL is released by the file reads,
the codecs and crc32c (on buffers of 1 MiB or more).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import stat
import sys
import threading
import uuid
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from arraystore._native.alloc import raw_buffer
from arraystore._native.pages import drop_range
from arraystore.backends.zarr.codecs import (
    DATA_TYPES,
    Compressor,
    Unsupported,
    declared_size,
    json_int,
    named,
    parse_codecs,
    parse_fill_value,
    single_threaded_blosc,
    u32,
)
from arraystore.backends.zarr.direct import write_new_file
from arraystore.backends.zarr.encode_into import encoder
from arraystore.errors import ArrayNotFound, CorruptData, InvalidArgument, ShapeMismatch

if TYPE_CHECKING:
    from arraystore.backends.zarr.cold import DirectChunks

__all__ = ["ALL_CHUNKS", "ChunkIO"]

ALL_CHUNKS = "arraystore_all_chunks"  # see backends/zarr/__init__.py

_KNOWN_FIELDS = frozenset({
    "zarr_format", "node_type", "shape", "data_type", "chunk_grid", "chunk_key_encoding",
    "fill_value", "codecs", "attributes", "dimension_names", "storage_transformers",
})  # fmt: skip
_DECODE_ERRORS = (RuntimeError, ValueError, EOFError, OSError, zlib.error)
_STEP_BYTES = 1 << 20  # block size for the early-exit "all fill value?" scan


def _advance(views: list[memoryview], n: int) -> None:
    """Drop ``n`` transferred bytes from the front of a list of buffers."""
    while n and views:
        if n >= len(views[0]):
            n -= len(views.pop(0))
        else:
            views[0] = views[0][n:]
            n = 0


def _read_into(fd: int, buffers: Sequence[np.ndarray]) -> int:
    """Fill ``buffers`` in order from ``fd``; returns the bytes read (less only at EOF)."""
    views = [b.data for b in buffers if b.nbytes]
    total = 0
    while views:
        n = os.readv(fd, views)
        if n == 0:
            break
        total += n
        _advance(views, n)
    return total


def _write_all(fd: int, buffers: Sequence[Any]) -> None:
    views = [memoryview(b) for b in buffers]
    views = [v for v in views if v.nbytes]
    while views:
        _advance(views, os.writev(fd, views))


def check_same_folder(dir_fd: int, home: Path) -> None:
    """Raise :class:`ArrayNotFound` unless ``home`` still is the folder open as ``dir_fd``
    (a commit replaced or removed the array since a handle opened it)."""
    mine = os.fstat(dir_fd)
    try:
        now = os.stat(home)
    except FileNotFoundError:
        now = None
    if now is None or (now.st_ino, now.st_dev) != (mine.st_ino, mine.st_dev):
        raise ArrayNotFound(
            f"array {home.name!r} was replaced or removed after it was opened (open it again)"
        )


class ChunkIO:
    """Reads and writes the chunk files of one local zarr v3 array directly.

    Build it with :meth:`from_metadata` (or :meth:`from_path`); both return ``None`` when
    the array uses anything this fast path does not understand.

    Attributes: ``path`` (array directory), ``shape``, ``chunks`` (chunk shape), ``grid``
    (chunks per dimension), ``dtype``, ``fill_value`` (numpy scalar), ``compressor``
    (``"none"``, ``"blosc"``, ``"zstd"``, ``"gzip"`` or ``"lz4"``), ``checksum`` (crc32c
    in the chain), ``write_empty_chunks`` and ``chunk_bytes`` (decoded bytes of one full
    chunk).
    """

    def __init__(
        self,
        path: Path,
        shape: tuple[int, ...],
        chunks: tuple[int, ...],
        dtype: np.dtype,
        fill_value: np.generic,
        key_prefix: str,
        separator: str,
        compressor: Compressor,
        codec: Any,
        checksum: bool,
        write_empty_chunks: bool,
    ) -> None:
        self.path = Path(path)
        self.shape = shape
        self.chunks = chunks
        self.grid = tuple(-(-s // c) for s, c in zip(shape, chunks, strict=True))
        self.dtype = dtype
        self.fill_value = fill_value
        self.compressor: Compressor = compressor
        self.checksum = checksum
        self.write_empty_chunks = write_empty_chunks
        self.chunk_bytes = math.prod(chunks) * dtype.itemsize
        self._prefix = key_prefix
        self._sep = separator
        self._codec = codec
        # zarr compares a float fill of +-0 bitwise, the rest with == (complex: bitwise here)
        self._bitwise_fill = bool(dtype.kind == "c" or (dtype.kind == "f" and fill_value == 0))
        self._local = threading.local()
        self._dir: tuple[int, str, Path] | None = None  # see from_dir
        #: every chunk was written (zarr.json attribute ALL_CHUNKS): a missing one is lost
        self.complete = False
        #: the stored bytes are big-endian (a foreign array): swapped after decoding; never
        #: written (arraystore writes little-endian chunks only)
        self.swap = False
        #: while a cold scan reads (ZarrHandle.read_scan): chunk files read with O_DIRECT
        self.direct: DirectChunks | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_metadata(
        cls, doc: dict[str, Any], path: Path, *, write_empty_chunks: bool | None = None
    ) -> ChunkIO | None:
        """A ChunkIO for the array at ``path`` described by ``doc`` (its parsed zarr.json).

        ``write_empty_chunks=None`` follows zarr-python's ``array.write_empty_chunks``
        config (``False`` by default). Returns ``None`` if the fast path does not apply.
        """
        try:
            return cls._parse(doc, Path(path), write_empty_chunks)
        except Unsupported:
            return None

    @classmethod
    def from_path(cls, path: Path, *, write_empty_chunks: bool | None = None) -> ChunkIO | None:
        """Read ``path/zarr.json`` and call :meth:`from_metadata`."""
        import json

        try:
            doc = json.loads((Path(path) / "zarr.json").read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict):
            return None
        return cls.from_metadata(doc, path, write_empty_chunks=write_empty_chunks)

    @classmethod
    def from_dir(cls, path: Path, dir_fd: int, rel: str, home: Path) -> ChunkIO | None:
        """Like :meth:`from_path`, but ``zarr.json`` and the chunk files are read relative
        to ``dir_fd``, an open descriptor of the array folder ``home`` (``rel``: ``path``
        relative to it, "" or "FIELD/"): the folder as it was when the handle was opened.
        A chunk file missing there while ``home`` is now another folder (or gone) raises
        :class:`ArrayNotFound`: the array was replaced, not a fill-value chunk."""
        import json

        try:
            fd = os.open(f"{rel}zarr.json", os.O_RDONLY, dir_fd=dir_fd)
            with open(fd, "rb") as f:
                doc = json.loads(f.read())
        except FileNotFoundError:
            check_same_folder(dir_fd, home)
            return None
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict):
            return None
        cio = cls.from_metadata(doc, path)
        if cio is not None:
            cio._dir = (dir_fd, rel, home)
        return cio

    def open_chunk(self, key: str, flags: int = os.O_RDONLY) -> int:
        if self._dir is None:
            return os.open(self.path.joinpath(*key.split("/")), flags)
        dir_fd, rel, home = self._dir
        try:
            return os.open(rel + key, flags, dir_fd=dir_fd)
        except FileNotFoundError:
            check_same_folder(dir_fd, home)  # else: a chunk never written (fill value)
            raise

    @classmethod
    def _parse(cls, doc: dict[str, Any], path: Path, write_empty: bool | None) -> ChunkIO:
        if sys.byteorder != "little":
            raise Unsupported("big-endian host")
        if doc.get("zarr_format") != 3 or doc.get("node_type") != "array":
            raise Unsupported("not a zarr v3 array")
        for key in set(doc) - _KNOWN_FIELDS:
            ext = doc[key]
            if not (isinstance(ext, dict) and ext.get("must_understand") is False):
                raise Unsupported(f"extension field {key!r}")
        if doc.get("storage_transformers"):
            raise Unsupported("storage transformers")
        shape_doc = doc.get("shape")
        if not isinstance(shape_doc, list):
            raise Unsupported("bad shape")
        shape = tuple(json_int(s, 0) for s in shape_doc)
        grid_name, grid_conf = named(doc.get("chunk_grid"))
        chunk_doc = grid_conf.get("chunk_shape")
        if grid_name != "regular" or not isinstance(chunk_doc, list):
            raise Unsupported("chunk grid is not regular")
        chunks = tuple(json_int(c, 1) for c in chunk_doc)
        if len(chunks) != len(shape):
            raise Unsupported("chunk shape and shape differ in length")

        data_type = doc.get("data_type")
        if not isinstance(data_type, str) or data_type not in DATA_TYPES:
            raise Unsupported(f"data type {data_type!r}")
        dtype = np.dtype(data_type).newbyteorder("<")
        fill_value = parse_fill_value(doc.get("fill_value"), dtype)

        enc_name, enc_conf = named(doc.get("chunk_key_encoding", "default"))
        if enc_name not in ("default", "v2") or set(enc_conf) - {"separator"}:
            raise Unsupported(f"chunk key encoding {enc_name!r}")
        separator = enc_conf.get("separator", "/" if enc_name == "default" else ".")
        if separator not in ("/", "."):
            raise Unsupported(f"chunk key separator {separator!r}")
        prefix = "c" if enc_name == "default" else ""

        compressor, codec, checksum = parse_codecs(doc.get("codecs"), dtype)
        attrs = doc.get("attributes")
        complete = isinstance(attrs, dict) and attrs.get(ALL_CHUNKS) is True
        if write_empty is None:
            write_empty = complete or _zarr_write_empty_chunks()
        cio = cls(
            path, shape, chunks, dtype, fill_value, prefix, separator,
            compressor, codec, checksum, bool(write_empty),
        )  # fmt: skip
        cio.complete = complete
        return cio

    def with_shape(self, shape: tuple[int, ...]) -> ChunkIO:
        """This array seen with another ``shape`` over the same chunks (a handle opened
        before an append/resize keeps its own: chunks are stored whole, edge ones too)."""
        other = copy.copy(self)
        other.shape = shape
        other.grid = tuple(-(-s // c) for s, c in zip(shape, self.chunks, strict=True))
        return other

    # ------------------------------------------------------------------ geometry
    def _check_index(self, index: Sequence[int]) -> tuple[int, ...]:
        idx = tuple(int(i) for i in index)
        if len(idx) != len(self.grid) or any(
            not 0 <= i < n for i, n in zip(idx, self.grid, strict=True)
        ):
            raise InvalidArgument(f"chunk index {idx} outside the chunk grid {self.grid}")
        return idx

    def chunk_key(self, index: Sequence[int]) -> str:
        """The store key of a chunk, e.g. ``"c/3/0"`` (``"c"`` for a 0-d array)."""
        parts = [str(i) for i in self._check_index(index)]
        if self._prefix:
            return self._sep.join([self._prefix, *parts])
        return self._sep.join(parts) if parts else "0"

    def chunk_path(self, index: Sequence[int]) -> Path:
        return self.path.joinpath(*self.chunk_key(index).split("/"))

    def chunk_region(self, index: Sequence[int]) -> tuple[slice, ...]:
        """The part of the array a chunk covers (clipped at the array's edge)."""
        idx = self._check_index(index)
        return tuple(
            slice(i * c, min((i + 1) * c, s))
            for i, c, s in zip(idx, self.chunks, self.shape, strict=True)
        )

    def valid_shape(self, index: Sequence[int]) -> tuple[int, ...]:
        """Shape of the chunk's region: ``chunks`` except for edge chunks."""
        return tuple(s.stop - s.start for s in self.chunk_region(index))

    # ------------------------------------------------------------------ reading
    def _scratch(self, nbytes: int) -> np.ndarray:
        """This thread's reusable byte buffer, at least ``nbytes`` long."""
        buf: np.ndarray | None = getattr(self._local, "buf", None)
        if buf is None or buf.size < nbytes:
            buf = raw_buffer(nbytes + nbytes // 16)
            self._local.buf = buf
        return buf[:nbytes]

    def read_chunk(
        self, index: Sequence[int], out: np.ndarray | None = None, fill_missing: bool = False
    ) -> np.ndarray:
        """Decode one chunk into ``out`` (allocated if None) and return it.

        ``out``: C-contiguous, writeable, of the array's dtype and the full chunk shape
        (an edge chunk's padding is read too) or, for an edge chunk, its clipped
        :meth:`valid_shape` (decoded through a temporary full-size buffer). A missing
        chunk file (or a directory in its place) fills ``out`` with the fill value, unless
        the array is :attr:`complete` and not ``fill_missing``: then it is corrupt. Raises
        :class:`CorruptData` naming the chunk key on a bad checksum, size or encoding.
        """
        key = self.chunk_key(index)
        if out is None:
            out = np.empty(self.chunks, dtype=self.dtype)
        elif out.shape != self.chunks and out.shape == self.valid_shape(index):
            self._check_buffer(out, out.shape, "out")
            full = self.read_chunk(index, fill_missing=fill_missing)
            out[...] = full[tuple(slice(0, n) for n in out.shape)]
            return out
        self._check_buffer(out, self.chunks, "out")
        if not out.flags.writeable:
            raise InvalidArgument("out is read-only")
        flat = out.reshape(-1).view(np.uint8)
        if self.direct is not None:
            with self.direct.take(key) as data:
                if data is not None:
                    return self._from_bytes(key, data, out, flat)
        try:
            fd = self.open_chunk(key)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return self._missing(key, out, fill_missing, "missing")
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):  # zarr's LocalStore: a directory is no chunk
                return self._missing(key, out, fill_missing, "missing (not a file)")
            size = info.st_size
            if self.compressor == "none":
                crc = np.empty(4 if self.checksum else 0, dtype=np.uint8)
                expected = self.chunk_bytes + crc.size
                if size != expected or _read_into(fd, [flat, crc]) != expected:
                    raise self._corrupt(key, f"{size} bytes on disk, expected {expected}")
                if self.checksum:
                    self._verify_crc(key, flat, crc)
                return out.byteswap(inplace=True) if self.swap else out
            data = self._scratch(size)
            if _read_into(fd, [data]) != size:
                raise self._corrupt(key, "file shrank while reading")
        finally:
            os.close(fd)
        return self._from_bytes(key, data, out, flat)

    def _from_bytes(
        self, key: str, data: np.ndarray, out: np.ndarray, flat: np.ndarray
    ) -> np.ndarray:
        """Decode a chunk file's bytes ``data`` into ``out`` (``flat``: its bytes)."""
        size, expected = data.size, self.chunk_bytes + 4 * self.checksum
        if self.compressor == "none" and size != expected:
            raise self._corrupt(key, f"{size} bytes on disk, expected {expected}")
        if self.checksum:
            if size < 4:
                raise self._corrupt(key, f"{size} bytes: too short for a crc32c checksum")
            data, crc = data[:-4], data[-4:]
            self._verify_crc(key, data, crc)
        if self.compressor == "none":
            flat[...] = data
        else:
            self._decode(key, data, flat)
        return out.byteswap(inplace=True) if self.swap else out

    def drop_chunk(self, index: Sequence[int]) -> None:
        """Drop the page-cache pages of one chunk file just read (a missing file: none)."""
        self.drop_file(self.chunk_key(index))

    def drop_file(self, key: str) -> None:
        """Drop the page-cache pages of the whole file ``key`` (a missing file: none)."""
        try:
            fd = self.open_chunk(key)
        except OSError:
            return
        try:
            drop_range(fd, 0, 0)
        finally:
            os.close(fd)

    def _missing(self, key: str, out: np.ndarray, fill_missing: bool, why: str) -> np.ndarray:
        if self.complete and not fill_missing:  # named as in its array folder
            raise CorruptData(f"chunk {(self._dir[1] if self._dir else '') + key!r} {why}")
        out.fill(self.fill_value)
        return out

    def _verify_crc(self, key: str, data: np.ndarray, stored: np.ndarray) -> None:
        import google_crc32c

        if google_crc32c.value(data) != u32(stored, 0):
            raise self._corrupt(key, "crc32c checksum mismatch")

    def _decode(self, key: str, data: np.ndarray, flat: np.ndarray) -> None:
        try:
            declared = declared_size(self.compressor, data, self.chunk_bytes)
            if declared is None:  # zstd frame without a content size: decode, then copy
                decoded = np.frombuffer(self._codec.decode(data), dtype=np.uint8)
                if decoded.size != flat.size:
                    raise ValueError(f"decoded {decoded.size} bytes, expected {flat.size}")
                flat[...] = decoded
            elif declared != flat.size:
                raise ValueError(f"decodes to {declared} bytes, expected {flat.size}")
            else:
                self._codec.decode(data, out=flat)
        except _DECODE_ERRORS as exc:
            raise self._corrupt(key, f"cannot decode {self.compressor} data: {exc}") from exc

    def _corrupt(self, key: str, why: str) -> CorruptData:
        return CorruptData(f"{self.path}: chunk {key!r}: {why}")

    def _check_buffer(
        self, arr: np.ndarray, shape: tuple[int, ...], what: str, contiguous: bool = True
    ) -> None:
        if not isinstance(arr, np.ndarray) or arr.dtype != self.dtype or arr.shape != shape:
            got = (arr.shape, arr.dtype) if isinstance(arr, np.ndarray) else type(arr)
            raise ShapeMismatch(f"{what} must be {shape} {self.dtype}, got {got}")
        if contiguous and not arr.flags.c_contiguous:
            raise InvalidArgument(f"{what} must be C-contiguous")

    # ------------------------------------------------------------------ writing
    def is_fill(self, block: np.ndarray) -> bool:
        """True when ``block`` is all fill value: like zarr 3.1, a float fill of (+/-) zero
        compares bitwise (``-0.0`` is data), others ``np.array_equal(..., equal_nan=True)``
        -- but complex ones bitwise (zarr's ``==`` drops the sign of zeros). Scans 1 MiB at
        a time, stops at a difference."""
        flat: Any = block.reshape(-1)
        fill: Any = self.fill_value
        nan_fill = self.dtype.kind in "fc" and bool(np.isnan(fill))
        if self._bitwise_fill and not nan_fill:  # complex: (real, imag) uint pairs
            uint = np.dtype(f"u{self.dtype.itemsize // (2 if self.dtype.kind == 'c' else 1)}")
            flat = np.ascontiguousarray(flat).view(uint).reshape(len(flat), -1)
            fill = np.asarray(fill, self.dtype).reshape(1).view(uint)
        step = max(1, _STEP_BYTES // self.dtype.itemsize)
        for start in (0, *range(1, len(flat), step)):
            piece = flat[start : start + (1 if start == 0 else step)]
            if not (np.isnan(piece) if nan_fill else piece == fill).all():
                return False
        return True

    def write_chunk(self, index: Sequence[int], block: np.ndarray) -> bool:
        """Encode ``block`` like zarr-python 3.1.6 and store it atomically as the chunk.

        ``block``: the array's dtype (any layout; C order avoids a copy) and the full chunk
        shape (an edge chunk's padding should hold the fill value, as zarr writes it) or
        an edge chunk's clipped :meth:`valid_shape` (padded with the fill value here).
        Returns False when the chunk equals the fill value and ``write_empty_chunks`` is
        off: then, like zarr-python, no file is written and an existing one is deleted.
        """
        key = self.chunk_key(index)
        path = self.path.joinpath(*key.split("/"))
        if self.swap:
            raise InvalidArgument(f"{self.path}: big-endian chunks are read-only")
        if block.shape != self.chunks and block.shape == self.valid_shape(index):
            self._check_buffer(block, block.shape, "block", contiguous=False)
            full = np.full(self.chunks, self.fill_value, dtype=self.dtype)
            full[tuple(slice(0, n) for n in block.shape)] = block
            block = full
        self._check_buffer(block, self.chunks, "block", contiguous=False)
        block = np.ascontiguousarray(block)
        if not self.write_empty_chunks and self.is_fill(block):
            with contextlib.suppress(NotADirectoryError):
                path.unlink(missing_ok=True)
            return False
        raw = block.reshape(-1).view(np.uint8)
        parts: list[Any] = [raw if self._codec is None else self._encode(raw)]
        if self.checksum:
            import google_crc32c

            crc = google_crc32c.value(parts[0])
            parts.append(int(crc).to_bytes(4, "little"))
        self._replace(path, parts)
        return True

    def _encode(self, raw: np.ndarray) -> Any:
        """The compressed chunk: in this thread's scratch buffer when the codec allows
        (:mod:`.encode_into`: no fresh allocation per chunk), else ``codec.encode``."""
        into = self.__dict__.get("_into", False)
        if into is False:
            into = self._into = encoder(self.compressor, self._codec)
        if into is None:
            return self._codec.encode(raw)
        buf = self._scratch(into.bound(raw.size))
        return buf[: into.encode_into(raw, buf)]

    @staticmethod
    def _replace(path: Path, parts: list[Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{uuid.uuid4().hex}.partial")  # as zarr's LocalStore
        try:
            if not write_new_file(tmp, parts):  # large chunks: around the page cache
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                try:
                    _write_all(fd, parts)
                finally:
                    os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_local"]
        state["direct"] = None  # (a scan of this process)
        state.pop("_into", None)  # ctypes functions: found again where it is used
        state["_dir"] = None  # file descriptors do not travel to other processes
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()
        if self.compressor == "blosc":  # e.g. unpickled in a worker that never saw zarr
            single_threaded_blosc()

    def __repr__(self) -> str:
        codec = self.compressor + ("+crc32c" if self.checksum else "")
        return (
            f"ChunkIO({str(self.path)!r}, shape={self.shape}, chunks={self.chunks}, "
            f"dtype={self.dtype.str}, codec={codec})"
        )


def _zarr_write_empty_chunks() -> bool:
    """zarr-python's default (``array.write_empty_chunks``, False in zarr 3.1)."""
    try:
        import zarr
    except ImportError:  # pragma: no cover - zarr is a dependency
        return False
    return bool(zarr.config.get("array.write_empty_chunks", False))
