"""storage.root: a store on disk -- a directory (or object-store prefix) of named arrays,
a zarr v3 group -- without the façade: listing, opening handles, writer locks, settling
what interrupted writers left, removing and renaming arrays.

:class:`StoreRoot` is what the operations (``arraystore.ops``) work on;
``arraystore.Store`` adds the façade (``store[name]`` returns an ``Array``, ``create``,
``import_file``). Opening a store or listing it reads small JSON files only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from arraystore.backends import get_backend
from arraystore.backends.base import Handle
from arraystore.core.dtypes import check_array_name
from arraystore.core.meta import FORMAT_VERSION, SIDECAR, ArrayMeta
from arraystore.errors import (
    ArrayExists,
    ArrayNotFound,
    ArrayStoreError,
    InvalidArgument,
    InvalidName,
    InvalidStore,
    ReadOnlyError,
    StoreNotFound,
)
from arraystore.fs import (
    fsync_dir,
    is_remote,
    location,
    read_json,
    remove_tree,
    write_json,
)
from arraystore.storage.foreign import ForeignRoot, node_kind
from arraystore.storage.grow import settle_resize
from arraystore.storage.journal import recover
from arraystore.storage.killpoints import kill_point
from arraystore.storage.layout import Layout, remove_hidden
from arraystore.storage.locks import StoreLocks
from arraystore.storage.nodes import NODE, array_format, is_array, require_doc
from arraystore.storage.transaction import group_doc
from arraystore.storage.upgrade import upgrade_array
from arraystore.storage.view import ArrayView

ROOT_ATTR = "arraystore"
_USE = ": open it with arraystore.open_array, or give its path alone to a command"
MODES = ("r", "r+", "a")


class StoreRoot(StoreLocks):
    """A directory of named arrays (a zarr v3 group), without the façade.

    Parameters
    ----------
    path : str or os.PathLike
        The store's directory, or an fsspec URL (``s3://...``, ``memory://...``).
    mode : {"r", "r+", "a"}, optional
        ``r`` read-only, ``r+`` read-write, ``a`` read-write and create the store if
        missing. Default: ``r+``, but ``r`` for a zarr group arraystore did not write
        (:mod:`arraystore.storage.foreign`: ``r+`` adds new arrays to it).
    storage_options : dict, optional
        Options of the fsspec file system of a URL.
    only : str, optional
        A bare array (a ``.npy`` file or zarr array folder in ``path``): the store's one
        array, read-only.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        mode: str | None = None,
        storage_options: dict[str, Any] | None = None,
        *,
        only: str | None = None,
    ) -> None:
        if mode is not None and mode not in MODES:
            raise InvalidArgument(f"mode must be one of {MODES}, got {mode!r}")
        self.path: Path = location(path, storage_options)
        #: True for an fsspec URL (s3://, gs://, memory://...): zarr backend only
        self.remote = is_remote(self.path)
        #: the store's hidden names and commits (arraystore.storage.layout)
        self.layout = Layout(self.path, self.remote)
        #: a store arraystore did not write (a zarr group, a bare array), else None
        self.foreign = ForeignRoot(self.path, 0, only) if only is not None else None
        if self.foreign is None and (self.remote or self.path.is_dir()):
            self.foreign = self._probe()
        self.mode = mode = mode or ("r" if self.foreign is not None else "r+")
        if self.foreign is not None:
            self._init_foreign()
            return
        if self.remote:
            self._init_remote()
            return
        if not self.path.exists():
            if mode != "a":
                raise StoreNotFound(f"no store at {self.path}")
            self.path.mkdir(parents=True)
            write_json(self.path / "zarr.json", group_doc({ROOT_ATTR: {"format": FORMAT_VERSION}}))
            fsync_dir(self.path.parent)
        elif not self.path.is_dir():
            raise InvalidStore(f"{self.path} is a file, not a store directory")
        doc = self._root_doc()
        if doc is None:
            if mode == "a" and not any(self.path.iterdir()):
                write_json(
                    self.path / "zarr.json",
                    group_doc({ROOT_ATTR: {"format": FORMAT_VERSION}}),
                )
            elif node_kind(self.path) == "array":  # a zarr v2 array
                raise InvalidStore(f"{self.path} is a zarr array, not a store (group){_USE}")
            else:
                raise InvalidStore(f"{self.path} is not an arraystore store (no zarr.json)")

    def _probe(self) -> ForeignRoot | None:
        """The foreign zarr group at this store's path, or None."""
        if not self.remote:
            return ForeignRoot.probe(self.path)
        try:
            return ForeignRoot.probe(self.path)
        except (ArrayStoreError, KeyboardInterrupt):
            raise
        except Exception as exc:  # unreachable endpoint, bad credentials, missing bucket
            msg = " ".join(str(exc).split()) or type(exc).__name__
            raise StoreNotFound(f"cannot open store {self.path}: {msg}") from exc

    def _init_foreign(self) -> None:
        assert self.foreign is not None
        if self.writable and (self.foreign.zarr_format == 2 or self.remote):
            why = "a zarr v3 group" if not self.remote else "a local zarr v3 group"
            raise InvalidArgument(
                f"{self.foreign.describe()} is read-only: arraystore adds arrays only to {why}"
            )
        foreign = self.foreign
        self.layout.after_commit = lambda folder: foreign.consolidate(folder, True)
        self.layout.foreign_group = self.foreign.only is None

    def refuse_foreign(self, name: str) -> None:
        """Raise :class:`ReadOnlyError` if ``name`` is an array arraystore did not write.

        Parameters
        ----------
        name : str
            The array name.
        """
        if self.foreign is not None and self.foreign.is_foreign(name):
            raise ReadOnlyError(
                f"{name!r} is a zarr array arraystore did not write: arraystore never "
                "changes, removes or renames it"
            )

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
        doc = group_doc({ROOT_ATTR: {"format": FORMAT_VERSION}})
        write_json(self.path / "zarr.json", doc)

    def _root_doc(self) -> dict[str, Any] | None:
        p = self.path / "zarr.json"
        if not p.exists():
            return None
        doc = read_json(p, f"{self.path.name}/zarr.json")
        if not isinstance(doc, dict) or doc.get("node_type") != "group":
            raise InvalidStore(f"{self.path} is a zarr array, not a store (group){_USE}")
        attrs = doc.get("attributes") or {}
        if not isinstance(attrs, dict) or ROOT_ATTR not in attrs:
            raise InvalidStore(f"{self.path} is a zarr group but not an arraystore store")
        if isinstance(attrs[ROOT_ATTR], dict) and "backend" in attrs[ROOT_ATTR]:
            raise InvalidStore(
                f"{self.path} is a zarr group but not an arraystore store (it is an array "
                f"of the store {self.path.parent})"
            )
        return doc

    @property
    def writable(self) -> bool:
        """Whether the store was opened for writing (``mode`` is not ``"r"``)."""
        return self.mode != "r"

    def check_writable(self) -> None:
        """Raise :class:`ReadOnlyError` unless the store is writable."""
        if self.writable:
            return
        if self.foreign is not None:
            raise ReadOnlyError(
                f"{self.foreign.describe()} is open read-only (open it with mode='r+', "
                "CLI --writable, to add arraystore arrays to it)"
            )
        raise ReadOnlyError(f"store {self.path} is open read-only")

    def names(self) -> list[str]:
        """Names of the arrays, sorted. Reads directory entries and each folder's small
        metadata file (``zarr.json``) only.

        Returns
        -------
        list of str
        """
        if self.foreign is not None:
            return self.foreign.names()
        if self.remote:
            found = {p.parent.name for p in self.path.glob(f"*/{NODE}")}
            found |= {p.parent.name for p in self.path.glob(f"*/{SIDECAR}")}
            return sorted(n for n in found if not n.startswith(".") and is_array(self.path / n))
        out = []
        for entry in os.scandir(self.path):
            if (
                entry.is_dir(follow_symlinks=False)
                and not entry.name.startswith(".")
                and is_array(Path(entry.path))
            ):
                out.append(entry.name)
        return sorted(out)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __getitem__(self, name: str) -> ArrayView:
        """A view of array ``name``: the façade (``arraystore.Store``) gives an ``Array``."""
        raise NotImplementedError("open stores with arraystore.open() for array views")

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if self.foreign is not None:
            return name in self.foreign.names()
        try:
            check_array_name(name)
        except InvalidName:
            return False
        p = self.path / name
        return p.is_dir() and not p.is_symlink() and is_array(p)

    def is_folder(self, name: str) -> bool:
        """``name`` is a valid array name and a folder in the store (an array or not:
        e.g. one whose metadata was lost, which ``delete`` still removes).

        Parameters
        ----------
        name : str
            Any string (an invalid array name gives ``False``).
        """
        try:
            p = self.array_path(name)
        except InvalidName:
            return False
        return p.is_dir() and not p.is_symlink()

    def array_path(self, name: str) -> Path:
        """The folder of array ``name`` (which need not exist).

        Parameters
        ----------
        name : str
            An array name; :class:`InvalidName` if it is not a valid one.
        """
        if self.foreign is not None:
            return self.foreign.array_path(name)
        check_array_name(name)
        return self.path / name

    def open_handle(self, name: str, mode: str | None = None) -> Handle:
        """Open the backend handle of array ``name`` (its metadata and data access).

        Parameters
        ----------
        name : str
            The array; :class:`ArrayNotFound` if missing, :class:`MetadataError` if its
            folder has no sidecar.
        mode : {"r", "r+"}, optional
            Default: ``"r+"`` in a writable store, else ``"r"``.

        Returns
        -------
        Handle
        """
        path = self.array_path(name)
        if self.foreign is not None and self.foreign.is_foreign(name):
            return self.foreign.open(name)
        if path.is_symlink() or not (is_array(path) if self.remote else path.is_dir()):
            raise ArrayNotFound(
                f"no array {name!r} in {self.path} (arrays: {', '.join(self.names()) or 'none'})"
            )
        mode = mode or ("r+" if self.writable else "r")
        if self.remote:  # object stores: no folder to hold open
            doc = require_doc(path, name, None)
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
                doc = require_doc(path, name, dir_fd)  # (read once, relative to the folder)
                backend = get_backend(str(doc.get("backend")))
                return backend.open(path, doc, mode, dir_fd=dir_fd)
            finally:
                os.close(dir_fd)
        raise AssertionError("unreachable")

    def roll_back(self, name: str) -> None:
        """Put back the version of ``name`` an interrupted replacement moved aside, or
        remove it if the replacement happened (:meth:`Layout.roll_back`).

        Parameters
        ----------
        name : str
            The array name.
        """
        self.layout.roll_back(name)

    def commit(self, tmp: Path, path: Path) -> None:
        """Move the finished temp array ``tmp`` into place at ``path``, replacing what is
        there (:meth:`Layout.commit`).

        Parameters
        ----------
        tmp : Path
            The complete array built in a hidden temp folder of the store.
        path : Path
            Its final folder (``array_path(name)``).
        """
        self.layout.commit(tmp, path)

    def refuse_existing(self, name: str, overwrite: bool) -> None:
        """Raise :class:`ArrayExists` if ``name`` exists and ``overwrite`` is false.

        Parameters
        ----------
        name : str
            The array name.
        overwrite : bool
            Whether an existing array may be replaced.
        """
        path = self.array_path(name)
        if (path.exists() or path.is_symlink()) and not overwrite:
            raise ArrayExists(
                f"array {name!r} already exists in {self.path} (use overwrite / --overwrite)"
            )

    def clean_stale(self, name: str, keep: Callable[[Path], bool] | None = None) -> None:
        """Called by a writer of ``name`` holding its lock: what writers of ``name`` that
        died left behind goes. Temp folders / spool files ``.NAME.tmp-PID-*`` of other
        processes are removed (except those ``keep(path)`` accepts: a resumable job); a
        ``.NAME.old-*`` (killed inside a two-rename commit) is put back when NAME is
        missing, else removed; a crashed cast of NAME is settled (``settle_held``).

        Parameters
        ----------
        name : str
            The array name; its lock must be held.
        keep : callable, optional
            ``keep(path) -> bool``: temp folders it accepts stay (a resumable job).
        """
        for stale in self.layout.builds(name):
            if not self.layout.own_build(stale) and (keep is None or not keep(stale)):
                remove_hidden(stale)
        self.settle_held(name)  # (a crashed cast of NAME must not come back over our content)

    def settle_held(self, name: str) -> None:
        """Called holding the lock of ``name`` before ``rm``/``mv`` remove, rename or
        replace it: what interrupted writers of ``name`` left is resolved now, so that
        nothing can act on the name later (a replaced version put back over the array
        that took the name, a cast of the old content committed or resumed over it):
        an interrupted replacement is rolled back, a cast whose data was complete is
        committed (what ``verify --repair`` does) and an unfinished one dropped (its
        source is going away), removals of killed ``rm``s are finished. A cast to
        another name OUT is committed under OUT's lock: LockedError (nothing changed)
        while another writer holds it.

        Parameters
        ----------
        name : str
            The array name; its lock must be held.
        """
        if self.remote:
            return
        self.roll_back(name)
        settle_resize(self.path, name)  # an interrupted append/resize (storage.grow)
        work = self.layout.cast_work(name)
        if work.is_dir() and not work.is_symlink():
            recover(self, name, work)
            remove_hidden(work)
        for stale in self.layout.leftovers_of(name):
            remove_hidden(stale)

    def settle(self, name: str) -> None:
        """Resolve what interrupted writers of ``name`` left (see ``settle_held``), under its
        lock: ``rm`` calls it for a name it does not find (a replacement moved it aside).

        Parameters
        ----------
        name : str
            The array name.
        """
        with self.lock(name):
            self.settle_held(name)

    def delete(self, name: str) -> None:
        """Remove an array: renamed to a hidden ``.NAME.rm-*`` first (atomic: it is listed
        whole or not at all), then deleted. A kill during the deletion leaves only that
        hidden folder (removed by the next writer of NAME or ``verify --repair``).

        Parameters
        ----------
        name : str
            The array to remove; :class:`ArrayNotFound` if there is none.
        """
        self.check_writable()
        self.refuse_foreign(name)
        path = self.array_path(name)
        if self.remote:
            if name not in self:
                raise ArrayNotFound(f"no array {name!r} in {self.path}")
            with self.lock(name):
                remove_tree(path)  # the sidecar goes first: the array vanishes at once
            return
        with self.lock(name):
            self.settle_held(name)
            if name not in self and not self.is_folder(name):  # no metadata: it goes too
                raise ArrayNotFound(f"no array {name!r} in {self.path}")
            trash = self.layout.trash_path(name)
            os.replace(path, trash)
            fsync_dir(self.path)
            if self.foreign is not None:
                self.foreign.consolidate(path, False)
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

        Parameters
        ----------
        old : str
            The array to rename; :class:`ArrayNotFound` if there is none.
        new : str
            Its new name.
        overwrite : bool, default False
            Replace an array ``new``; without it, :class:`ArrayExists`.
        """
        self.check_writable()
        self.refuse_foreign(old)
        src, dst = self.array_path(old), self.array_path(new)
        if old == new:
            if old in self:
                return
            raise ArrayNotFound(f"no array {old!r} in {self.path}")
        with self.lock(old), self.lock(new):
            self.settle_held(old)
            self.settle_held(new)
            if old not in self:
                raise ArrayNotFound(f"no array {old!r} in {self.path}")
            if (dst.exists() or dst.is_symlink()) and not overwrite:
                raise ArrayExists(f"array {new!r} already exists in {self.path}")
            self.layout.commit_rename(src, dst)
            if self.foreign is not None:
                self.foreign.consolidate(src, False)
                self.foreign.consolidate(dst, True)

    def update_meta(self, name: str, meta: ArrayMeta) -> None:
        """Rewrite an array's sidecar (attrs, history) atomically.

        Parameters
        ----------
        name : str
            The array.
        meta : ArrayMeta
            Its current metadata with new ``attrs`` / ``history`` (e.g. from
            ``arr.meta.evolve(attrs=...)``); anything else changed, or the array replaced
            since, raises :class:`ArrayNotFound`.
        """
        self.check_writable()
        self.refuse_foreign(name)
        with self.write_lock(name):  # not while a cast/mv/rm/... of it runs
            with self.open_handle(name) as handle:
                now = handle.meta
            if now.evolve(attrs=meta.attrs, history=meta.history) != meta:
                raise ArrayNotFound(
                    f"array {name!r} is not the array these metadata describe (replaced "
                    "since it was opened? open it again); update_meta changes attrs and "
                    "history only"
                )
            path = self.array_path(name)
            if meta.format < 2:  # any write to a format-1 array upgrades it first
                upgrade_array(path, now)
            get_backend(meta.backend).write_meta(path, meta.evolve(format=2))
            if self.foreign is not None:
                self.foreign.consolidate(path, True)

    def upgrade(self, name: str) -> bool:
        """Rewrite array ``name`` in format 2, in place (``storage.upgrade``); True if it
        was format 1. Atomic: a kill leaves format 1 or format 2, both readable.

        Parameters
        ----------
        name : str
            The array.
        """
        self.check_writable()
        with self.lock(name):
            self.settle_held(name)
            with self.open_handle(name, "r") as handle:
                meta = handle.meta
            return upgrade_array(self.array_path(name), meta)

    def mark_format(self) -> None:
        """Say format 2 in the store's own zarr.json once every array is format 2 (after
        ``upgrade``; otherwise nothing changes)."""
        self.check_writable()
        if all(array_format(self.array_path(n)) == 2 for n in self.names()):
            write_json(self.path / NODE, group_doc({ROOT_ATTR: {"format": FORMAT_VERSION}}))

    def array_format(self, name: str) -> int:
        """The on-disk format of array ``name`` (1 or 2; 0: no metadata).

        Parameters
        ----------
        name : str
            The array.
        """
        return array_format(self.array_path(name))

    def default_backend(self, backend: str | None) -> str:
        """``backend`` checked against the store: memmap needs a local store.

        Parameters
        ----------
        backend : str or None
            A backend name, or ``None`` for the store's default (``memmap`` for a local
            store, ``zarr`` for a URL).

        Returns
        -------
        str
        """
        if backend is None:
            return "zarr" if self.remote else "memmap"
        if self.remote and backend == "memmap":
            raise InvalidArgument(
                f"the memmap backend needs a local store; {self.path} is a URL: use --backend zarr"
            )
        return backend


__all__ = ["MODES", "ROOT_ATTR", "ArrayView", "StoreRoot"]
