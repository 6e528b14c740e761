"""Block checksums of a memmap array: a table inside its data file (format 2: between
the padding and the shard index, see :mod:`.shard`) or the ``data.crc32c`` file beside
``data.npy`` (format 1). A :class:`Loc` says which.

The data region of the data file (the bytes after the .npy header) is cut into fixed
blocks of ``block_size`` bytes (1 MiB; the last block may be shorter) and each block's
CRC-32C (Castagnoli, the same checksum as zarr's ``crc32c`` codec, computed by the
``google-crc32c`` library) is stored. The .npy header has its own CRC-32C.

Table layout (little-endian)::

    magic      8 bytes  b"ASCRC32C"
    version    u4       1
    reserved   u4       0
    block_size u8       bytes per block (a power of two, 4 KiB .. 1 GiB)
    offset     u8       where the data region starts in the data file (= header length)
    nbytes     u8       length of the data region
    header_crc u4       CRC-32C of the data file's first ``offset`` bytes
    reserved   u4       0
    crcs       u4 * ceil(nbytes / block_size)

Nothing in the file decides how much is read: the number of blocks follows from the
array's shape and dtype (already checked against the data file's size), and a table whose
size or fields disagree is rejected as :class:`CorruptData` before its table is read.

Lifecycle: a new array's checksums are computed once, by reading the finished data
back, when the writer flushes it (``MemmapHandle.flush``), i.e. before its metadata is
written and the temp folder is committed — the checksums are part of the atomic commit.
Later writes to a committed array (``arr[...] = x``) update the checksums of
the blocks they touch, in place, under a lock; a crash between a data write and its
checksum update makes ``verify`` report the touched blocks (as it should: their state
is unknown).
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arraystore.errors import CorruptData
from arraystore.fs import write_atomic

CRC_FILE = "data.crc32c"
BLOCK_SIZE = 1 << 20
MAGIC = b"ASCRC32C"
VERSION = 1
_HEAD = struct.Struct("<8sIIQQQII")
HEAD_SIZE = _HEAD.size  # 48
_MIN_BLOCK, _MAX_BLOCK = 1 << 12, 1 << 30
# in-process locks around read-crc-store, one per array folder (fcntl locks are per process)
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(loc: Loc) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(os.path.abspath(loc.file), threading.Lock())


@dataclass(frozen=True)
class Loc:
    """Where a checksum table lives: ``base`` bytes into ``file``; ``alone``: the file is
    the table (format 1's ``data.crc32c``), else the table is inside the data file."""

    file: Path
    base: int = 0
    alone: bool = True

    @classmethod
    def beside(cls, array_dir: Path) -> Loc:
        """Format 1: ``data.crc32c`` in the array folder."""
        return cls(array_dir / CRC_FILE)

    @property
    def label(self) -> str:
        where = f"{self.file.parent.name}/{self.file.name}"
        return where if self.alone else f"the checksum table of {where}"


def crc32c(data: bytes) -> int:
    import google_crc32c

    return int(google_crc32c.value(data))


def nblocks(nbytes: int, block_size: int) -> int:
    return math.ceil(nbytes / block_size)


@dataclass(frozen=True)
class Table:
    """A parsed checksum file."""

    block_size: int
    offset: int
    nbytes: int
    header_crc: int
    crcs: np.ndarray  # uint32, one per block

    def encode(self) -> bytes:
        head = _HEAD.pack(
            MAGIC, VERSION, 0, self.block_size, self.offset, self.nbytes, self.header_crc, 0
        )
        return head + self.crcs.astype("<u4").tobytes()


def _pread(fd: int, size: int, offset: int, where: Path) -> bytes:
    parts, done = [], 0
    while done < size:
        b = os.pread(fd, size - done, offset + done)
        if not b:
            raise CorruptData(f"{where}: unexpected end of file (truncated?)")
        parts.append(b)
        done += len(b)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def block_crcs(
    fd: int, where: Path, offset: int, nbytes: int, block_size: int, first: int, stop: int
) -> Iterator[tuple[int, int]]:
    """(block index, CRC-32C) of blocks ``first..stop-1`` read from the data file."""
    for i in range(first, stop):
        start = i * block_size
        size = min(block_size, nbytes - start)
        yield i, crc32c(_pread(fd, size, offset + start, where))


def compute(data_file: Path, offset: int, nbytes: int, block_size: int = BLOCK_SIZE) -> Table:
    """Checksums of a whole data file (reads it once, one block at a time)."""
    fd = os.open(data_file, os.O_RDONLY)
    try:
        header_crc = crc32c(_pread(fd, offset, 0, data_file))
        n = nblocks(nbytes, block_size)
        crcs = np.empty(n, dtype=np.uint32)
        for i, c in block_crcs(fd, data_file, offset, nbytes, block_size, 0, n):
            crcs[i] = c
    finally:
        os.close(fd)
    return Table(block_size, offset, nbytes, header_crc, crcs)


def write(loc: Loc, table: Table) -> None:
    """Store a table: a new ``data.crc32c`` (atomic), or in place in the data file."""
    if loc.alone:
        write_atomic(loc.file, table.encode())
        return
    fd = os.open(loc.file, os.O_WRONLY)
    try:
        data, done = table.encode(), 0
        while done < len(data):
            done += os.pwrite(fd, data[done:], loc.base + done)
        os.fsync(fd)
    finally:
        os.close(fd)


def _parse_head(fd: int, loc: Loc, offset: int, nbytes: int) -> tuple[int, int, int]:
    """Validate the header against the data region and the file's size: (block size,
    header CRC, number of blocks). Raises CorruptData."""
    label = loc.label
    size = os.fstat(fd).st_size - loc.base
    head = os.pread(fd, HEAD_SIZE, loc.base)
    if len(head) < HEAD_SIZE:
        raise CorruptData(f"{label} is {size} bytes: too short for a checksum file")
    magic, version, _r1, bs, off, nb, hcrc, _r2 = _HEAD.unpack(head)
    if magic != MAGIC:
        raise CorruptData(f"{label} is not an arraystore checksum file (bad magic)")
    if version != VERSION:
        raise CorruptData(f"{label}: unsupported checksum file version {version}")
    if not (_MIN_BLOCK <= bs <= _MAX_BLOCK) or bs & (bs - 1):
        raise CorruptData(f"{label}: invalid block size {bs}")
    if off != offset or nb != nbytes:
        raise CorruptData(
            f"{label} describes {nb} data bytes at offset {off}, but the data file holds "
            f"{nbytes} at offset {offset}"
        )
    n = nblocks(nbytes, bs)
    if size != HEAD_SIZE + 4 * n if loc.alone else size < HEAD_SIZE + 4 * n:
        raise CorruptData(
            f"{label} is {size} bytes; {n} blocks of {bs} bytes need {HEAD_SIZE + 4 * n}"
        )
    return bs, hcrc, n


def _open(loc: Loc, flags: int) -> int:
    label = loc.label
    try:
        fd = os.open(loc.file, flags)
    except FileNotFoundError:
        raise CorruptData(
            f"{label} is missing but the metadata says the array is checksummed (if it "
            "predates memmap checksums: 'arraystore cast STORE NAME --to DTYPE --checksum' "
            "rewrites it with them)"
        ) from None
    except IsADirectoryError:
        raise CorruptData(f"{label} is a directory, not a checksum file") from None
    except OSError as exc:
        raise CorruptData(f"cannot open {label}: {exc.strerror or exc}") from None
    if not _is_file(fd):
        os.close(fd)
        raise CorruptData(f"{label} is not a regular file")
    return fd


def _is_file(fd: int) -> bool:
    import stat

    return stat.S_ISREG(os.fstat(fd).st_mode)


def load(loc: Loc, offset: int, nbytes: int) -> Table:
    """Read and validate the checksum table of an array whose data region is known."""
    label = loc.label
    fd = _open(loc, os.O_RDONLY)
    try:
        bs, hcrc, n = _parse_head(fd, loc, offset, nbytes)
        body = os.pread(fd, 4 * n, loc.base + HEAD_SIZE) if n else b""
    except OSError as exc:
        if isinstance(exc, CorruptData):
            raise
        raise CorruptData(f"cannot read {label}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(body) != 4 * n:
        raise CorruptData(f"{label} changed while being read")
    crcs = np.frombuffer(body, dtype="<u4").astype(np.uint32)
    return Table(bs, offset, nbytes, hcrc, crcs)


def precheck(loc: Loc, offset: int, nbytes: int) -> None:
    """Raise CorruptData unless the checksum table can be updated (before a data write)."""
    fd = _open(loc, os.O_RDONLY)
    try:
        _parse_head(fd, loc, offset, nbytes)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Mismatch:
    """One block (``index`` -1: the .npy header) whose bytes do not match its checksum."""

    index: int
    start: int  # byte range in the data region (header: in the file)
    stop: int

    def describe(self, row_bytes: int) -> str:
        if self.index < 0:
            return f".npy header (bytes 0-{self.stop - 1}): checksum mismatch"
        rows = ""
        if row_bytes > 0:
            rows = f", rows {self.start // row_bytes}-{(self.stop - 1) // row_bytes}"
        return (
            f"block {self.index} (data bytes {self.start}-{self.stop - 1}{rows}): checksum mismatch"
        )


def check(data_file: Path, table: Table) -> list[Mismatch]:
    """Recompute every checksum; the blocks that differ (empty: all good)."""
    out = []
    fd = os.open(data_file, os.O_RDONLY)
    try:
        if crc32c(_pread(fd, table.offset, 0, data_file)) != table.header_crc:
            out.append(Mismatch(-1, 0, table.offset))
        n = len(table.crcs)
        bs = table.block_size
        for i, c in block_crcs(fd, data_file, table.offset, table.nbytes, bs, 0, n):
            if c != int(table.crcs[i]):
                out.append(Mismatch(i, i * bs, min((i + 1) * bs, table.nbytes)))
    finally:
        os.close(fd)
    return out


def update(
    loc: Loc, data: Path, data_fd: int, offset: int, nbytes: int, start: int, stop: int
) -> None:
    """Recompute the checksums of the blocks holding data bytes ``start..stop-1`` after a
    write, in place. Each writer recomputes after its own write and the recomputations
    are serialised (threads: a lock, processes: ``lockf``), so the last one sees every
    write that came before it: concurrent writes sharing a block leave a valid checksum.
    """
    if stop <= start:
        return
    with _lock_for(loc):
        fd = _open(loc, os.O_RDWR)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            try:
                bs = _parse_head(fd, loc, offset, nbytes)[0]
                first, last = start // bs, (stop - 1) // bs
                for i, c in block_crcs(data_fd, data, offset, nbytes, bs, first, last + 1):
                    os.pwrite(fd, struct.pack("<I", c), loc.base + HEAD_SIZE + 4 * i)
            finally:
                with contextlib.suppress(OSError):
                    fcntl.lockf(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
