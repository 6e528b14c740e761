"""memmap backend: one NumPy ``.npy`` file per array (``data.npy``), records interleaved.

``np.load(path, mmap_mode="r")`` opens the file with plain numpy. Logical chunks are
row blocks recorded in ``arraystore.json``. Row-contiguous regions are read with
``os.preadv`` into (reusable) caller buffers and written with ``os.pwrite``, so streaming
never fills resident memory with mapped pages; other regions go through ``np.memmap``.
The .npy header is read and written by :mod:`.npy`, the optional block checksums
(``data.crc32c``) by :mod:`.crc`.
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from arraystore._native.pages import drop_range
from arraystore.backends.base import Backend, Handle, check_block
from arraystore.backends.memmap import crc
from arraystore.backends.memmap.npy import (
    bytes_view,
    check_npy_size,
    read_header,
    same_layout,
    write_header,
)
from arraystore.core.chunks import Region, auto_chunks
from arraystore.core.meta import SIDECAR, ArrayMeta
from arraystore.errors import (
    ArrayNotFound,
    CorruptData,
    InvalidArgument,
    MetadataError,
    ReadOnlyError,
)
from arraystore.fs import file_identity, start_writeback

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

DATA = "data.npy"
_OPEN_LOCK = threading.Lock()


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
        self, path: Path, meta: ArrayMeta, offset: int, writable: bool, file: Path | None = None
    ) -> None:
        self.path = path
        self.file = file if file is not None else path / DATA
        self.meta = meta
        self.offset = offset
        self.writable = writable
        self._fd: int | None = None
        self.row_bytes = math.prod(meta.shape[1:]) * meta.dtype.itemsize
        #: writes update ``data.crc32c`` in place (a committed checksummed array, see
        #: :mod:`.crc`); a new array's checksums are computed by ``flush`` instead
        self.crc_live = False
        #: (st_dev, st_ino, generation) of the data file this handle was opened on
        #: (None: not known); see fs.file_identity
        self.ident: tuple[int, int, int | None] | None = None

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
            crc.precheck(self.path, self.offset, self.meta.nbytes)
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
        crc.update(self.path, self.fd(), self.offset, self.meta.nbytes, start, stop)

    def stored_bytes(self) -> int:
        return os.path.getsize(self.file)

    def flush(self) -> None:
        """fsync the data file (also when other processes, e.g. dask workers, wrote it).

        A new checksummed array (no metadata yet: not committed) gets its checksum file
        here, computed from the finished data, so it is committed with the array.
        """
        os.fsync(self.fd())
        if not (self.meta.checksum and self.writable and self.file == self.path / DATA):
            return
        crc_path = self.path / crc.CRC_FILE
        if self.crc_live:
            if crc_path.is_file():  # (a missing one is reported by writes and verify)
                fd = os.open(crc_path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        elif not (self.path / SIDECAR).exists():
            table = crc.compute(self.file, self.offset, self.meta.nbytes)
            crc.write(self.path, table)


class MemmapBackend(Backend):
    name = "memmap"

    def create(self, path: Path, meta: ArrayMeta) -> MemmapHandle:
        _check_local(path)
        with open(path / DATA, "wb") as f:
            offset = write_header(f, meta.dtype, meta.shape)
            f.truncate(offset + meta.nbytes)
            ident = file_identity(f.fileno())
        handle = MemmapHandle(path, meta, offset, writable=True)
        handle.ident = ident
        return handle

    def open(
        self, path: Path, sidecar: dict, mode: str = "r", dir_fd: int | None = None
    ) -> MemmapHandle:
        """The data file is opened here, once (relative to ``dir_fd``, the array folder,
        when given): the handle keeps reading the file it was opened on, even after a
        commit replaced the array (its metadata describes that file, not the new one)."""
        _check_local(path)
        flags = os.O_RDWR if mode != "r" else os.O_RDONLY
        try:
            fd = os.open(DATA if dir_fd is not None else path / DATA, flags, dir_fd=dir_fd)
        except FileNotFoundError:
            raise CorruptData(f"data file {path / DATA} is missing") from None
        except OSError as exc:
            raise CorruptData(f"cannot read {path / DATA}: {exc.strerror or exc}") from None
        try:
            shape, file_dtype, offset = read_header(path / DATA, fd)
            meta = ArrayMeta.from_sidecar(sidecar, shape=shape)
            if "chunks" not in sidecar:
                raise MetadataError(f"{path.name}: memmap metadata lacks 'chunks'")
            if not same_layout(file_dtype, meta.dtype):
                raise CorruptData(
                    f"{path.name}: data file holds {file_dtype} but metadata says {meta.dtype}"
                )
            check_npy_size(path / DATA, shape, meta.dtype, offset, fd)
        except BaseException:
            os.close(fd)
            raise
        handle = MemmapHandle(path, meta, offset, writable=(mode != "r"))
        handle._fd = fd
        handle.ident = file_identity(fd)
        # a committed checksummed array: writes keep data.crc32c up to date
        handle.crc_live = meta.checksum and handle.writable and (path / SIDECAR).exists()
        return handle


def _check_local(path: Path) -> None:
    if not isinstance(path, Path):
        raise InvalidArgument(
            f"the memmap backend needs a local store, not {path}: use the zarr backend"
        )
