"""Small file-system helpers shared by the backends and the store: atomic writes."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..core import meta as _meta
from ..core.errors import MetadataError


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: Path, data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` via a temp file and ``os.replace`` (never a torn file)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if fsync:
        fsync_dir(path.parent)


def write_json(path: Path, doc: object) -> None:
    write_atomic(path, _meta.dumps(doc).encode())


def read_json(path: Path, what: str | None = None, dir_fd: int | None = None) -> object:
    """Parse a metadata file (``path.name`` relative to the folder ``dir_fd`` when given)."""
    what = what or str(path)
    try:
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


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported.

    With it, replacing an array never has a moment where its name is missing.
    """
    fn = _libc_renameat2()
    if fn is None:
        return False
    import ctypes

    AT_FDCWD = -100
    rc = fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)  # type: ignore[operator]
    if rc != 0:
        err = ctypes.get_errno()
        if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: file system cannot do it
            return False
        raise OSError(err, os.strerror(err), str(a))
    return True
