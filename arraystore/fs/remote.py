"""Remote stores: fsspec URLs (``s3://``, ``gs://``, ``memory://``...) for the zarr backend.

A :class:`RemotePath` stands in for :class:`pathlib.Path` where the store and the zarr
backend need one: it joins names, lists, reads and writes small objects through an
fsspec file system built from the URL's protocol and the *storage options*. It is
picklable (protocol, path and options; the file system is rebuilt where it lands), so
dask tasks carry it instead of data. It refuses ``os.fspath`` so that no code path
can silently turn a remote key into a local file.

Object stores have no directories and no atomic rename. The protocol here:

* a new array is written under a hidden temp prefix, its top ``zarr.json`` (which holds
  our metadata) last; it is then moved (server-side copy + delete, object by object) to
  its name, that ``zarr.json`` (and format 1's ``arraystore.json``) moved last, so a
  reader never lists an array whose data is missing;
* replacing an array (``--overwrite``, in-place cast, ``mv --overwrite``) first deletes
  the old metadata (the name disappears), then the old objects, then moves the new ones
  in: *not* atomic — a reader in that window finds no array;
* writer locks are ``.NAME.lock`` objects created with a conditional put
  (``If-None-Match: *`` on S3; exclusive on ``memory://``), holding host, PID and a token;
  a lock left by a dead process of the same host is taken over, any other one must be
  deleted by hand (``verify`` lists it).

fsspec is imported lazily; ``file://`` URLs are plain local paths (full local guarantees).
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

from arraystore.errors import ArrayStoreError, InvalidArgument, LockedError
from arraystore.fs.lock import alive, my_identity

_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://(.*)$")
SIDECAR = "arraystore.json"
#: an array's metadata objects: moved last, deleted first
_META = ("arraystore.json", "zarr.json")


def split_url(text: str) -> tuple[str, str] | None:
    """``("s3", "bucket/key")`` for a URL, None for a local path."""
    m = _URL.match(text)
    return (m.group(1).lower(), m.group(2)) if m else None


def is_remote(path: object) -> bool:
    return isinstance(path, RemotePath)


def location(path: Any, storage_options: dict[str, Any] | None = None) -> Any:
    """A local :class:`~pathlib.Path` or a :class:`RemotePath` for a store argument."""
    from pathlib import Path

    if isinstance(path, RemotePath):
        return path
    if not isinstance(path, str | os.PathLike):
        raise InvalidArgument(f"a store path must be a string or a path, got {path!r}")
    text = os.fspath(path)
    parts = split_url(text) if isinstance(text, str) else None
    if parts is None or parts[0] == "file":
        if storage_options:
            raise InvalidArgument("storage options apply only to URL stores (s3://, gs://...)")
        return Path(parts[1] if parts else text)
    protocol = parts[0]
    try:
        import fsspec
    except ImportError:  # pragma: no cover - zarr depends on fsspec in practice
        raise ArrayStoreError("URL stores need fsspec: pip install 'arraystore[remote]'") from None
    try:
        cls = fsspec.get_filesystem_class(protocol)
    except (ValueError, ImportError) as exc:
        raise InvalidArgument(f"cannot open {text}: {_one_line(exc)}") from None
    key = cls._strip_protocol(text).rstrip("/")
    if not key or key == "/":
        raise InvalidArgument(f"{text}: a store needs a path below the bucket/root")
    return RemotePath(protocol, key, dict(storage_options or {}))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class RemotePath:
    """A key prefix in an fsspec file system, with the few ``Path`` methods arraystore uses."""

    __slots__ = ("key", "options", "protocol")

    def __init__(self, protocol: str, key: str, options: dict[str, Any]) -> None:
        self.protocol = protocol
        self.key = key
        self.options = options

    # --------------------------------------------------------------- naming
    @property
    def fs(self) -> Any:
        """The (cached) synchronous fsspec file system."""
        import fsspec

        return fsspec.filesystem(self.protocol, **self.options)

    @property
    def url(self) -> str:
        return f"{self.protocol}://{self.key}"

    @property
    def name(self) -> str:
        return posixpath.basename(self.key)

    @property
    def parent(self) -> RemotePath:
        return RemotePath(self.protocol, posixpath.dirname(self.key), self.options)

    def __truediv__(self, part: str) -> RemotePath:
        return RemotePath(self.protocol, f"{self.key}/{part}", self.options)

    def joinpath(self, *parts: str) -> RemotePath:
        out = self
        for p in parts:
            out = out / p
        return out

    def relative_to(self, other: RemotePath) -> PurePosixPath:
        return PurePosixPath(self.key).relative_to(other.key)

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"RemotePath({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, RemotePath)
            and (self.protocol, self.key) == (other.protocol, other.key)
            and self.options == other.options
        )

    def __hash__(self) -> int:
        return hash((self.protocol, self.key))

    def __fspath__(self) -> str:
        raise TypeError(f"{self.url} is a remote location, not a local file")

    # -------------------------------------------------------------- queries
    def _fresh(self) -> Any:
        fs = self.fs
        fs.invalidate_cache()  # zarr writes through its own (async) instance
        return fs

    def exists(self) -> bool:
        return bool(self._fresh().exists(self.key))

    def is_dir(self) -> bool:
        return bool(self._fresh().isdir(self.key))

    def is_file(self) -> bool:
        return bool(self._fresh().isfile(self.key))

    def is_symlink(self) -> bool:
        return False

    def iterdir(self) -> Iterator[RemotePath]:
        fs = self._fresh()
        try:
            entries = fs.ls(self.key, detail=False)
        except FileNotFoundError:
            return iter(())
        return iter(
            [self / posixpath.basename(str(e).rstrip("/")) for e in entries if str(e) != self.key]
        )

    def glob(self, pattern: str) -> Iterator[RemotePath]:
        fs = self._fresh()
        return iter(
            [self / posixpath.relpath(str(p), self.key) for p in fs.glob(f"{self.key}/{pattern}")]
        )

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Object stores have no directories: a prefix exists once a key is under it."""

    # ---------------------------------------------------------------- bytes
    def read_bytes(self) -> bytes:
        return bytes(self._fresh().cat_file(self.key))

    def write_bytes(self, data: bytes) -> None:
        self.fs.pipe_file(self.key, data)

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.rm_file(self.key)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def files(self) -> list[str]:
        """Every key under this prefix."""
        fs = self._fresh()
        try:
            return sorted(str(p) for p in fs.find(self.key))
        except FileNotFoundError:
            return []

    def du(self, skip: tuple[str, ...] = ()) -> int:
        fs = self._fresh()
        try:
            found = fs.find(self.key, detail=True)
        except FileNotFoundError:
            return 0
        return sum(
            int(v.get("size") or 0)
            for k, v in found.items()
            if posixpath.basename(str(k)) not in skip
        )

    def storage_options(self) -> dict[str, Any]:
        return dict(self.options)


# --------------------------------------------------------------- tree operations
def remove_tree(path: RemotePath) -> None:
    """Delete every key under ``path`` (the metadata first: the array vanishes at once)."""
    fs = path.fs
    for name in _META:
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(f"{path.key}/{name}")
    keys = path.files()
    if keys:
        with contextlib.suppress(FileNotFoundError):
            fs.rm(keys)
    with contextlib.suppress(FileNotFoundError, OSError):
        if fs.exists(path.key):  # memory:// keeps pseudo directories
            fs.rm(path.key, recursive=True)
    fs.invalidate_cache()


def move_tree(src: RemotePath, dst: RemotePath) -> None:
    """Move every key of ``src`` under ``dst`` (copy + delete), the metadata last."""
    fs = src.fs
    keys = src.files()
    rel = [posixpath.relpath(k, src.key) for k in keys]
    first = [(k, r) for k, r in zip(keys, rel, strict=True) if r not in _META]
    last = [(k, r) for k, r in zip(keys, rel, strict=True) if r in _META]
    for group in (first, last):
        if group:
            fs.copy([k for k, _ in group], [f"{dst.key}/{r}" for _, r in group])
    remove_tree(src)


def commit(tmp: RemotePath, path: RemotePath) -> None:
    """Put the finished array ``tmp`` at ``path``, replacing (not atomically) an old one."""
    if path.exists():
        remove_tree(path)
    move_tree(tmp, path)


# ------------------------------------------------------------------------ locks
@contextlib.contextmanager
def remote_lock(root: RemotePath, name: str) -> Iterator[None]:
    """A writer lock object ``.NAME.lock`` created with a conditional (exclusive) put."""
    lock = root / f".{name}.lock"
    token = uuid.uuid4().hex
    start = my_identity().partition(" ")[2] or None  # tells a reused PID from ours
    doc = {"host": socket.gethostname(), "pid": os.getpid(), "start": start, "token": token}
    fs = lock.fs
    try:
        try:
            _create(fs, lock, json.dumps(doc).encode())
        except Exception:
            if not _stale(lock):
                raise
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(lock.key)  # left by a dead process of this machine
            _create(fs, lock, json.dumps(doc).encode())
    except Exception as exc:
        held = _holder(lock)
        if held is None and not isinstance(exc, (FileExistsError, OSError)):
            raise ArrayStoreError(f"cannot create lock {lock.url}: {_one_line(exc)}") from exc
        raise LockedError(
            f"array {name!r} is locked by a writer ({held or 'unknown holder'}); if no writer "
            f"is running, delete {lock.url}"
        ) from None
    held_doc = _read(lock)
    if held_doc is None or held_doc.get("token") != token:  # lost a race (non-atomic put)
        raise LockedError(f"array {name!r} is locked by another writer ({_describe(held_doc)})")
    try:
        yield
    finally:
        current = _read(lock)
        if current is not None and current.get("token") == token:
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(lock.key)


def _create(fs: Any, lock: RemotePath, data: bytes) -> None:
    """An exclusive put; fsspec before ``pipe_file(mode="create")``: check, then put."""
    try:
        fs.pipe_file(lock.key, data, mode="create")
    except TypeError:
        if lock.exists():
            raise FileExistsError(lock.url) from None
        fs.pipe_file(lock.key, data)


def _stale(lock: RemotePath) -> bool:
    """True for a lock object of a process of this host that no longer runs."""
    doc = _read(lock)
    if doc is None or doc.get("host") != socket.gethostname():
        return False
    pid, start = doc.get("pid"), doc.get("start")
    start = start if isinstance(start, str) else None
    return isinstance(pid, int) and pid != os.getpid() and not alive(pid, start)


def _read(lock: RemotePath) -> dict[str, Any] | None:
    try:
        doc = json.loads(lock.read_bytes())
    except (FileNotFoundError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _describe(doc: dict[str, Any] | None) -> str:
    if doc is None:
        return "unknown holder"
    return f"host {doc.get('host')}, PID {doc.get('pid')}"


def _holder(lock: RemotePath) -> str | None:
    doc = _read(lock)
    return None if doc is None else _describe(doc)
