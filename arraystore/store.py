"""Store (a directory of named arrays, a zarr v3 group) and Array (a lazy handle).

Opening a store or listing it reads small JSON files only, never array data.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from arraystore.backends import get_backend
from arraystore.backends.base import Handle
from arraystore.core.chunks import DEFAULT_CHUNK_BYTES, normalize_chunks, normalize_shape
from arraystore.core.create_args import as_data, check_create_args
from arraystore.core.dtypes import check_array_name, parse_dtype
from arraystore.core.meta import FORMAT_VERSION, SIDECAR, ArrayMeta
from arraystore.engine.memory import memory_budget
from arraystore.errors import (
    ArrayExists,
    ArrayNotFound,
    ArrayStoreError,
    InvalidArgument,
    InvalidName,
    InvalidStore,
    MetadataError,
    ReadOnlyError,
    ShapeMismatch,
    StoreNotFound,
)
from arraystore.fs import (
    fsync_dir,
    held_here,
    is_remote,
    location,
    read_json,
    refuse_pending_cast,
    remove_tree,
    write_json,
)
from arraystore.storage.killpoints import kill_point
from arraystore.storage.layout import Layout, remove_hidden

ROOT_ATTR = "arraystore"
MODES = ("r", "r+", "a")


def _group_doc(attributes: dict[str, Any]) -> dict[str, Any]:
    return {"zarr_format": 3, "node_type": "group", "attributes": attributes}


class Store:
    """A directory of named arrays. ``mode``: ``r`` read-only, ``r+`` read-write, ``a``
    read-write and create the store if missing."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        mode: str = "r+",
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        if mode not in MODES:
            raise InvalidArgument(f"mode must be one of {MODES}, got {mode!r}")
        self.path: Path = location(path, storage_options)
        self.mode = mode
        #: True for an fsspec URL (s3://, gs://, memory://...): zarr backend only
        self.remote = is_remote(self.path)
        #: the store's hidden names and commits (arraystore.storage.layout)
        self.layout = Layout(self.path, self.remote)
        if self.remote:
            self._init_remote()
            return
        if not self.path.exists():
            if mode != "a":
                raise StoreNotFound(f"no store at {self.path}")
            self.path.mkdir(parents=True)
            write_json(
                self.path / "zarr.json", _group_doc({ROOT_ATTR: {"format_version": FORMAT_VERSION}})
            )
            fsync_dir(self.path.parent)
        elif not self.path.is_dir():
            raise InvalidStore(f"{self.path} is a file, not a store directory")
        doc = self._root_doc()
        if doc is None:
            if mode == "a" and not any(self.path.iterdir()):
                write_json(
                    self.path / "zarr.json",
                    _group_doc({ROOT_ATTR: {"format_version": FORMAT_VERSION}}),
                )
            else:
                raise InvalidStore(f"{self.path} is not an arraystore store (no zarr.json)")

    def _init_remote(self) -> None:
        try:
            found = (self.path / "zarr.json").exists()
        except (ArrayStoreError, KeyboardInterrupt):
            raise
        except Exception as exc:  # unreachable endpoint, bad credentials, missing bucket
            msg = " ".join(str(exc).split()) or type(exc).__name__
            raise StoreNotFound(f"cannot open store {self.path}: {msg}") from exc
        if found:
            self._root_doc()
            return
        if self.mode != "a":
            raise StoreNotFound(f"no store at {self.path}")
        if any(True for _ in self.path.iterdir()):
            raise InvalidStore(f"{self.path} is not an arraystore store (no zarr.json)")
        doc = _group_doc({ROOT_ATTR: {"format_version": FORMAT_VERSION}})
        write_json(self.path / "zarr.json", doc)

    def _root_doc(self) -> dict[str, Any] | None:
        p = self.path / "zarr.json"
        if not p.exists():
            return None
        doc = read_json(p, f"{self.path.name}/zarr.json")
        if not isinstance(doc, dict) or doc.get("node_type") != "group":
            raise InvalidStore(f"{self.path} is a zarr array, not a store (group)")
        attrs = doc.get("attributes") or {}
        if not isinstance(attrs, dict) or ROOT_ATTR not in attrs:
            raise InvalidStore(f"{self.path} is a zarr group but not an arraystore store")
        return doc

    @property
    def writable(self) -> bool:
        return self.mode != "r"

    def _check_writable(self) -> None:
        if not self.writable:
            raise ReadOnlyError(f"store {self.path} is open read-only")

    # ----------------------------------------------------------------- listing
    def names(self) -> list[str]:
        """Names of the arrays, sorted. Reads directory entries only."""
        if self.remote:
            found = {p.parent.name for p in self.path.glob(f"*/{SIDECAR}")}
            return sorted(n for n in found if not n.startswith("."))
        out = []
        for entry in os.scandir(self.path):
            if (
                entry.is_dir(follow_symlinks=False)
                and not entry.name.startswith(".")
                and os.path.exists(os.path.join(entry.path, SIDECAR))
            ):
                out.append(entry.name)
        return sorted(out)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            check_array_name(name)
        except InvalidName:
            return False
        p = self.path / name
        return p.is_dir() and not p.is_symlink() and (p / SIDECAR).exists()

    def is_folder(self, name: str) -> bool:
        """``name`` is a valid array name and a folder in the store (an array or not:
        e.g. one whose metadata was lost, which ``delete`` still removes)."""
        try:
            p = self._array_path(name)
        except InvalidName:
            return False
        return p.is_dir() and not p.is_symlink()

    def _array_path(self, name: str) -> Path:
        check_array_name(name)
        return self.path / name

    def open_handle(self, name: str, mode: str | None = None) -> Handle:
        path = self._array_path(name)
        if path.is_symlink() or not (path / SIDECAR).exists():
            if path.is_dir() and not path.is_symlink():
                raise MetadataError(f"array {name!r} has no {SIDECAR} (corrupt or incomplete)")
            raise ArrayNotFound(
                f"no array {name!r} in {self.path} (arrays: {', '.join(self.names()) or 'none'})"
            )
        mode = mode or ("r+" if self.writable else "r")
        if self.remote:  # object stores: no folder to hold open
            doc = read_json(path / SIDECAR, f"{name}/{SIDECAR}")
            if not isinstance(doc, dict):
                raise MetadataError(f"{name}/{SIDECAR} must hold a JSON object")
            backend = get_backend(str(doc.get("backend")))
            if self.remote and backend.name != "zarr":
                raise InvalidArgument(
                    f"array {name!r} uses the {backend.name} backend, which needs a local store "
                    f"(not {self.path})"
                )
            return backend.open(path, doc, mode)
        # the folder is opened once and the sidecar and data are read relative to it: a
        # commit swapping NAME meanwhile cannot pair old metadata with new data
        for attempt in range(3):
            try:
                dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            except (FileNotFoundError, NotADirectoryError):
                if attempt < 2:  # a two-rename commit moves it away for a moment
                    time.sleep(0.01)
                    continue
                raise ArrayNotFound(f"no array {name!r} in {self.path}") from None
            try:
                doc = read_json(path / SIDECAR, f"{name}/{SIDECAR}", dir_fd=dir_fd)
                if not isinstance(doc, dict):
                    raise MetadataError(f"{name}/{SIDECAR} must hold a JSON object")
                backend = get_backend(str(doc.get("backend")))
                return backend.open(path, doc, mode, dir_fd=dir_fd)
            finally:
                os.close(dir_fd)
        raise AssertionError("unreachable")

    def __getitem__(self, name: str) -> Array:
        return Array(self, name, self.open_handle(name))

    def info(self, name: str) -> dict[str, Any]:
        return self[name].info()

    # ---------------------------------------------------------------- creating
    # -------------------------------------------- hidden names and commits (storage)
    def _temp_path(self, name: str) -> Path:
        return self.layout.temp_path(name)

    def _roll_back(self, name: str) -> None:
        self.layout.roll_back(name)

    def _commit(self, tmp: Path, path: Path) -> None:
        self.layout.commit(tmp, path)

    def create(
        self,
        name: str,
        shape: Any = None,
        dtype: Any = None,
        *,
        chunks: Any = None,
        backend: str | None = None,
        codec: str | None = None,
        fill: str | None = None,
        seed: int = 0,
        data: Any = None,
        from_npy: str | os.PathLike[str] | None = None,
        attrs: dict[str, Any] | None = None,
        overwrite: bool = False,
        memory: int | str | None = None,
        executor: Any = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        checksum: bool = False,
        progress: Any = None,
    ) -> Array:
        """Create an array (atomically: built in a hidden temp folder, then renamed in).

        Give ``shape`` and ``dtype`` with an optional ``fill`` (zeros, ones, range, random),
        or ``data`` (an array-like), or ``from_npy`` (a .npy file, streamed; ``shape`` and
        ``dtype``, if given, must agree with it). ``backend``: ``memmap`` (the default for
        a local store) or ``zarr`` (the default, and the only one, for a URL store).
        """
        self._check_writable()
        backend = self.default_backend(backend)
        path = self._array_path(name)
        check_create_args(seed, attrs, from_npy)
        if (path.exists() or path.is_symlink()) and not overwrite:
            raise ArrayExists(
                f"array {name!r} already exists in {self.path} (use overwrite / --overwrite)"
            )
        get_backend(backend)  # validate the name early
        source: Handle | None = None
        if sum(x is not None for x in (fill, data, from_npy)) > 1:
            raise InvalidArgument("give only one of fill, data and from_npy")
        if from_npy is not None:
            from arraystore.backends.memmap import open_npy

            source = open_npy(Path(from_npy))
            src_shape, src_dtype = source.meta.shape, parse_dtype(source.meta.dtype)
            if shape is not None and normalize_shape(shape) != src_shape:
                raise ShapeMismatch(
                    f"--from file has shape {src_shape}, not {normalize_shape(shape)}"
                )
            if dtype is not None and parse_dtype(dtype) != src_dtype:
                raise ShapeMismatch(f"--from file has dtype {src_dtype}, not {parse_dtype(dtype)}")
            shape, dtype = src_shape, src_dtype
        elif data is not None:
            data = as_data(data)
            if dtype is None:
                dtype = data.dtype
            if shape is None:
                shape = data.shape
            elif normalize_shape(shape) != data.shape:
                raise ShapeMismatch(f"data has shape {data.shape}, not {normalize_shape(shape)}")
        if shape is None or dtype is None:
            raise InvalidArgument("shape and dtype are required (or pass data / from_npy)")
        shape = normalize_shape(shape)
        dt = parse_dtype(dtype)
        if math.prod(shape) * dt.itemsize >= 2**62:
            raise InvalidArgument(f"shape {shape} of {dt} is too large ({math.prod(shape)} items)")
        if data is not None and data.dtype != dt:
            if (
                dt.names is not None
                or data.dtype.names is not None
                or not np.can_cast(data.dtype, dt, casting="same_kind")
            ):
                raise ShapeMismatch(
                    f"data of dtype {data.dtype} cannot be stored as {dt} without losing "
                    "values; cast it first (or use arraystore cast after creating)"
                )
            data = data.astype(dt)
        chunks = normalize_chunks(chunks, shape, dt.itemsize, chunk_bytes)
        meta = ArrayMeta(
            shape=shape,
            dtype=dt,
            chunks=chunks,
            backend=backend,
            codec=codec or "none",
            attrs=dict(attrs or {}),
            checksum=checksum,
        )
        if backend == "memmap" and codec not in (None, "none"):
            raise InvalidArgument(
                "the memmap backend stores raw bytes: --codec needs --backend zarr"
            )
        with self.lock(name):
            self._clean_stale(name)
            if (path.exists() or path.is_symlink()) and not overwrite:
                raise ArrayExists(f"array {name!r} already exists in {self.path}")
            tmp = self._temp_path(name)
            tmp.mkdir()
            kill_point("mkdir")
            try:
                handle = get_backend(backend).create(tmp, meta)
                if backend == "memmap":  # keep the store a valid zarr hierarchy
                    write_json(tmp / "zarr.json", _group_doc({"arraystore_backend": "memmap"}))
                from arraystore.ops.create import fill_array

                fill_array(
                    handle,
                    fill=fill,
                    seed=seed,
                    source=source,
                    data=data,
                    memory=memory_budget(memory),  # "abc" refused even if nothing is filled
                    executor=executor,
                    progress=progress,
                )
                flush = getattr(handle, "flush", None)
                if flush is not None:
                    flush()
                handle.close()
                write_json(tmp / SIDECAR, meta.to_sidecar())  # metadata last
                kill_point("sidecar")
                self._commit(tmp, path)
            except BaseException:
                remove_tree(tmp)
                raise
            finally:
                if source is not None:
                    source.close()
        return self[name]

    def _clean_stale(self, name: str, keep: Any = None) -> None:
        """Called by a writer of ``name`` holding its lock: what writers of ``name`` that
        died left behind goes. Temp folders / spool files ``.NAME.tmp-PID-*`` of other
        processes are removed (except those ``keep(path)`` accepts: a resumable job); a
        ``.NAME.old-*`` (killed inside a two-rename commit) is put back when NAME is
        missing, else removed; a crashed cast of NAME is settled (``_settle``)."""
        mine = f".{name}.tmp-{os.getpid()}-"  # this process's own (e.g. a CSV spool)
        for stale in self.path.glob(f".{name}.tmp-*"):
            if not stale.name.startswith(mine) and (keep is None or not keep(stale)):
                remove_hidden(stale)
        self._settle(name)  # (a crashed cast of NAME must not come back over our content)

    def _settle(self, name: str) -> None:
        """Called holding the lock of ``name`` before ``rm``/``mv`` remove, rename or
        replace it: what interrupted writers of ``name`` left is resolved now, so that
        nothing can act on the name later (a replaced version put back over the array
        that took the name, a cast of the old content committed or resumed over it):
        an interrupted replacement is rolled back, a cast whose data was complete is
        committed (what ``verify --repair`` does) and an unfinished one dropped (its
        source is going away), removals of killed ``rm``s are finished. A cast to
        another name OUT is committed under OUT's lock: LockedError (nothing changed)
        while another writer holds it."""
        if self.remote:
            return
        self._roll_back(name)
        work = self.path / f".{name}.cast"
        if work.is_dir() and not work.is_symlink():
            from arraystore.ops.journal import recover  # (imports the casting machinery: only here)

            recover(self, name, work)
            remove_hidden(work)
        for stale in (*self.path.glob(f".{name}.cast.tmp-*"), *self.path.glob(f".{name}.rm-*")):
            remove_hidden(stale)

    def settle(self, name: str) -> None:
        """Resolve what interrupted writers of ``name`` left (see ``_settle``), under its
        lock: ``rm`` calls it for a name it does not find (an interrupted replacement
        may have moved the array aside)."""
        with self.lock(name):
            self._settle(name)

    # ------------------------------------------------------- delete / rename
    def import_file(self, name: str, path: str | os.PathLike[str], **kwargs: Any) -> Array:
        """Import a ``.npy``, CSV, Parquet or Arrow IPC file as array ``name``, streamed and
        committed atomically (see :func:`arraystore.ops.interop.import_file`)."""
        from arraystore.ops.interop import import_file

        return import_file(self, name, path, **kwargs)

    def delete(self, name: str) -> None:
        """Remove an array: renamed to a hidden ``.NAME.rm-*`` first (atomic: it is listed
        whole or not at all), then deleted. A kill during the deletion leaves only that
        hidden folder (removed by the next writer of NAME or ``verify --repair``)."""
        self._check_writable()
        path = self._array_path(name)
        if self.remote:
            if name not in self:
                raise ArrayNotFound(f"no array {name!r} in {self.path}")
            with self.lock(name):
                remove_tree(path)  # the sidecar goes first: the array vanishes at once
            return
        with self.lock(name):
            self._settle(name)
            if name not in self and not self.is_folder(name):  # no metadata: it goes too
                raise ArrayNotFound(f"no array {name!r} in {self.path}")
            trash = self.path / f".{name}.rm-{uuid.uuid4().hex[:8]}"
            os.replace(path, trash)
            fsync_dir(self.path)
        kill_point("remove-old")
        remove_hidden(trash)

    def rename(self, old: str, new: str, overwrite: bool = False) -> None:
        """Rename array ``old`` to ``new`` (``overwrite``: replacing an array ``new``).

        Atomic for readers of ``old`` and idempotent: a re-run after the rename happened
        finds no ``old`` and changes nothing. Replacing ``new``: it is moved to a hidden
        ``.NEW.old-*``, ``old`` is renamed to ``new`` (never over an existing name), then
        the hidden one is deleted. Killed in between, ``new`` is missing until the next
        writer of ``new`` or ``verify --repair`` puts the hidden one back: ``old`` never
        holds anything but its own data, and no visible array is ever half deleted.
        """
        self._check_writable()
        src, dst = self._array_path(old), self._array_path(new)
        if old == new:
            if old in self:
                return
            raise ArrayNotFound(f"no array {old!r} in {self.path}")
        with self.lock(old), self.lock(new):
            self._settle(old)
            self._settle(new)
            if old not in self:
                raise ArrayNotFound(f"no array {old!r} in {self.path}")
            if (dst.exists() or dst.is_symlink()) and not overwrite:
                raise ArrayExists(f"array {new!r} already exists in {self.path}")
            self.layout.commit_rename(src, dst)

    def update_meta(self, name: str, meta: ArrayMeta) -> None:
        """Rewrite an array's sidecar (attrs, history) atomically."""
        self._check_writable()
        with self.write_lock(name):  # not while a cast/mv/rm/... of it runs
            with self.open_handle(name) as handle:
                now = handle.meta
            if now.evolve(attrs=meta.attrs, history=meta.history) != meta:
                raise ArrayNotFound(
                    f"array {name!r} is not the array these metadata describe (replaced "
                    "since it was opened? open it again); update_meta changes attrs and "
                    "history only"
                )
            write_json(self._array_path(name) / SIDECAR, meta.to_sidecar())

    def lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        """The writer lock of array ``name`` for an operation (fails fast when another
        process, or another operation of this one, holds it)."""
        return self._lock(name, shared=False)

    @contextlib.contextmanager
    def write_lock(self, name: str) -> Iterator[None]:
        """The writer lock of array ``name`` for one region write (``arr[...] = x``):
        shared with the region writes of this process, refused while an operation (or
        another process) holds it, or a crashed cast of it waits (see
        :mod:`arraystore.fs.lock`)."""
        with self._lock(name, shared=True):
            if not self.remote:
                refuse_pending_cast(self.path, name)
            yield

    def lock_unless_held(self, name: str) -> contextlib.AbstractContextManager[None]:
        """``lock(name)``, or nothing if this thread's operation holds it already (e.g.
        settling a crashed ``cast a --out n`` inside ``mv a n``, which holds n's lock)."""
        if held_here(self._lock_key(name)):
            return contextlib.nullcontext()
        return self.lock(name)

    def _lock_key(self, name: str) -> str:
        if self.remote:
            return str(self.path / f".{name}.lock")
        return os.path.abspath(self.path / f".{name}.lock")

    def _lock(self, name: str, shared: bool) -> contextlib.AbstractContextManager[None]:
        from arraystore.fs import hold, writer_lock

        self._check_writable()
        check_array_name(name)
        key = self._lock_key(name)
        if self.remote:
            from arraystore.fs import remote_lock

            return hold(key, name, shared, lambda: remote_lock(self.path, name))  # type: ignore[arg-type]
        return hold(key, name, shared, lambda: writer_lock(self.path, name))

    def default_backend(self, backend: str | None) -> str:
        """``backend`` checked against the store: memmap needs a local store."""
        if backend is None:
            return "zarr" if self.remote else "memmap"
        if self.remote and backend == "memmap":
            raise InvalidArgument(
                f"the memmap backend needs a local store; {self.path} is a URL: use --backend zarr"
            )
        return backend

    def __repr__(self) -> str:
        return f"<arraystore.Store {str(self.path)!r} arrays={len(self)} mode={self.mode!r}>"


def open(
    path: str | os.PathLike[str], mode: str = "r+", storage_options: dict[str, Any] | None = None
) -> Store:
    """Open a store (``mode="a"`` creates it when missing). Reads metadata only.

    ``path`` may be an fsspec URL (``s3://bucket/data.store``, ``gs://...``,
    ``memory://...``) for zarr arrays; ``storage_options`` go to the fsspec file system
    (e.g. ``{"endpoint_url": ..., "key": ..., "secret": ...}`` for s3fs).
    """
    return Store(path, mode, storage_options)


from arraystore.array import Array  # noqa: E402

__all__ = ["Array", "Store", "open"]
