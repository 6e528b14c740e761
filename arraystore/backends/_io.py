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


def read_json(path: Path, what: str | None = None) -> object:
    what = what or str(path)
    try:
        with open(path, "rb") as f:
            data = f.read(_meta.MAX_METADATA_BYTES + 1)
    except FileNotFoundError:
        raise MetadataError(f"missing metadata file {what}") from None
    except IsADirectoryError:
        raise MetadataError(f"metadata {what} is a directory") from None
    return _meta.loads(data, what)
