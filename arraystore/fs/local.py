"""Small file-system helpers shared by the backends and the store: atomic writes."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
from pathlib import Path

from arraystore.core import meta as _meta
from arraystore.errors import MetadataError
from arraystore.fs.remote import move_tree as remote_move
from arraystore.fs.remote import remove_tree as remote_remove

_FS_IOC_GETVERSION = 0x80087601  # _IOR('v', 1, long)


def file_identity(fd: int) -> tuple[int, int, int | None]:
    """``(st_dev, st_ino, generation)`` of the open file or folder ``fd``. The inode
    number alone does not identify a file: ext4 / xfs give a freed number to the next new
    file at once (rm + create of an array reuses it); the generation
    (``FS_IOC_GETVERSION``, changed on every reuse) tells them apart. None where the file
    system has none (tmpfs: its inode numbers are not reused)."""
    st = os.fstat(fd)
    try:
        raw = fcntl.ioctl(fd, _FS_IOC_GETVERSION, bytes(8))
        gen: int | None = int.from_bytes(raw[:4], "little")  # the kernel writes an int
    except OSError:
        gen = None
    return st.st_dev, st.st_ino, gen


def tree_state(path: Path, skip: frozenset[str] = frozenset()) -> list[int | str]:
    """What a resumable job records of the files below ``path`` without reading them:
    their count, total size, newest mtime (ns) and an order-free digest of each file's
    relative path, inode, size and mtime (a file replaced by a rename has a new inode,
    whatever the clock's granularity). ``skip``: names left out at the top. One
    ``stat`` per file, constant memory."""
    count = total = newest = mix = 0
    stack = [("", str(path))]
    while stack:
        rel, folder = stack.pop()
        with os.scandir(folder) as entries:
            for e in entries:
                if not rel and e.name in skip:
                    continue
                if e.is_dir(follow_symlinks=False):
                    stack.append((f"{rel}{e.name}/", e.path))
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except FileNotFoundError:  # (replaced meanwhile)
                    continue
                count += 1
                total += st.st_size
                newest = max(newest, st.st_mtime_ns)
                key = f"{rel}{e.name}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}"
                digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
                mix = (mix + int.from_bytes(digest, "little")) % (1 << 128)
    return [count, total, newest, f"{mix:032x}"]


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: Path, data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` via a temp file and ``os.replace`` (never a torn file).

    A remote path (object store) is written with one PUT, which is atomic per object.
    """
    if not isinstance(path, Path):
        path.write_bytes(data)  # RemotePath
        return
    tmp = path.with_name(f".{path.name}.part-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # e.g. ENOSPC: leave no partial temp file behind
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if fsync:
        fsync_dir(path.parent)


def write_json(path: Path, doc: object) -> None:
    write_atomic(path, _meta.dumps(doc).encode())


def read_json(path: Path, what: str | None = None, dir_fd: int | None = None) -> object:
    """Parse a metadata file (``path.name`` relative to the folder ``dir_fd`` when given)."""
    what = what or str(path)
    try:
        if not isinstance(path, Path):  # RemotePath
            data = path.read_bytes()[: _meta.MAX_METADATA_BYTES + 1]
            return _meta.loads(data, what)
        if dir_fd is not None:
            f = open(os.open(path.name, os.O_RDONLY, dir_fd=dir_fd), "rb")  # noqa: SIM115
        else:
            f = open(path, "rb")  # noqa: SIM115
        with f:
            data = f.read(_meta.MAX_METADATA_BYTES + 1)
    except FileNotFoundError:
        raise MetadataError(f"missing metadata file {what}") from None
    except IsADirectoryError:
        raise MetadataError(f"metadata {what} is a directory") from None
    return _meta.loads(data, what)


def remove_tree(path: Path) -> None:
    """Remove a folder (or file) and everything in it, local or remote; missing is fine."""
    if not isinstance(path, Path):
        remote_remove(path)
        return
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def move_tree(src: Path, dst: Path) -> None:
    """Rename a folder (``os.replace``); on an object store, copy its keys then delete them."""
    if not isinstance(src, Path):
        remote_move(src, dst)
        return
    os.replace(src, dst)


_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_renameat2: object | None = None


def _libc_renameat2() -> object | None:
    global _renameat2
    if _renameat2 is None:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            fn = libc.renameat2
            fn.argtypes = [
                ctypes.c_int,
                ctypes.c_char_p,
                ctypes.c_int,
                ctypes.c_char_p,
                ctypes.c_uint,
            ]
            fn.restype = ctypes.c_int
            _renameat2 = fn
        except (OSError, AttributeError):
            _renameat2 = False
    return _renameat2 or None


def can_exchange() -> bool:
    """Whether ``renameat2`` exists (a file system may still refuse the exchange)."""
    return _libc_renameat2() is not None


def _renameat2_call(a: Path, b: Path, flags: int) -> bool:
    """``renameat2(a, b, flags)``; False if the system or file system cannot do it."""
    fn = _libc_renameat2()
    if fn is None:
        return False
    import ctypes

    AT_FDCWD = -100
    rc = fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), flags)  # type: ignore[operator]
    if rc != 0:
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # cannot do it
            return False
        raise OSError(err, os.strerror(err), str(a), None, str(b))
    return True


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported.

    With it, replacing an array never has a moment where its name is missing.
    """
    return _renameat2_call(a, b, _RENAME_EXCHANGE)


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; :class:`FileExistsError` if ``dst`` exists.

    Linux ``renameat2(RENAME_NOREPLACE)`` checks and renames in one step (a plain
    ``rename`` would silently replace an empty folder at ``dst``). Without it: a check,
    then ``os.rename`` (callers hold the writer locks of both names: only another
    program could slip in between).
    """
    if _renameat2_call(src, dst, _RENAME_NOREPLACE):
        return
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(src), None, str(dst))
    os.rename(src, dst)


_SYNC_FILE_RANGE_WRITE = 2
_sync_file_range: object | None = None
WRITEBACK_MIN_BYTES = 1 << 20


def start_writeback(fd: int, offset: int, nbytes: int) -> None:
    """Start writing ``nbytes`` at ``offset`` of ``fd`` to disk now, without waiting
    (Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``; a no-op elsewhere).

    Bulk writers (create, cast, map, import) call it after each block: the disk writes
    then overlap the computation instead of all waiting for the final ``fsync``, and
    the page cache does not fill with dirty pages. Durability still comes from that
    ``fsync``: this only moves work earlier.
    """
    global _sync_file_range
    if nbytes < WRITEBACK_MIN_BYTES:
        return
    if _sync_file_range is None:
        try:
            import ctypes

            fn = ctypes.CDLL(None, use_errno=True).sync_file_range
            fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
            fn.restype = ctypes.c_int
            _sync_file_range = fn
        except (OSError, AttributeError):
            _sync_file_range = False
    if _sync_file_range:
        _sync_file_range(fd, offset, nbytes, _SYNC_FILE_RANGE_WRITE)  # type: ignore[operator]
