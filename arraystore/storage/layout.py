"""storage.layout: the on-disk names of a store's hidden folders and the renames that
make a finished array visible.

Names derived from array ``NAME`` (``core.dtypes.derived_names`` bounds their length):
``.NAME.tmp-PID-HEX`` a new array being built; ``.NAME.old-HEX`` the replaced version
during a two-rename commit (put back by ``roll_back`` when NAME is missing);
``.NAME.rm-HEX`` an array being deleted; ``.NAME.cast`` a cast's work folder.

:class:`Layout` holds the store root and whether it is an object store; the caller holds
the writer lock of every name it touches. Kill points (``storage.killpoints``) mark each
step for the crash tests.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from arraystore.core.dtypes import MAX_ARRAY_NAME
from arraystore.core.meta import SIDECAR
from arraystore.fs import can_exchange, exchange, fsync_dir, remove_tree, rename_noreplace
from arraystore.fs.remote import commit
from arraystore.storage.killpoints import kill_point
from arraystore.storage.nodes import NODE, is_array

__all__ = ["DERIVED_NAMES", "LEFTOVER", "LOCK", "SPOOL", "Layout", "remove_hidden"]

#: Every file name the store layout derives from an array name NAME, with the widest PID
#: (Linux's ``PID_MAX_LIMIT`` is 2**22: 7 digits) and the 8 hex digits of a random tag:
#: NAME itself must leave room for the longest of them in a 255-byte file name.
DERIVED_NAMES = (
    "{}",  # the array folder
    ".{}.lock",  # its writer lock (fs/lock.py, fs/remote.py)
    ".{}.tmp-4194304-ffffffff",  # a new array being built (Layout.temp_path)
    ".{}.tmp-4194304-ffffffff.spool.arrow",  # the typed spool of a CSV import
    ".{}.old-ffffffff",  # the replaced array of a two-rename commit / an overwriting mv
    ".{}.rm-ffffffff",  # an array being removed
    ".{}.cast",  # a resumable cast's work folder
    ".{}.cast.tmp-4194304-ffffffff",  # ... while its journal is being set up
    ".{}.grow",  # the journal of an append/resize (storage/grow.py)
)
if 255 - max(len(t.format("")) for t in DERIVED_NAMES) != MAX_ARRAY_NAME:
    raise AssertionError("core.dtypes.MAX_ARRAY_NAME does not fit the store layout")

#: hidden entries interrupted writes leave (what ``verify --repair`` removes or finishes)
LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?:tmp-\d+-[0-9a-f]+|old-[0-9a-f]+|rm-[0-9a-f]+|cast)$")
#: the typed spool file of an interrupted CSV import (ops/io/csv.py)
SPOOL = re.compile(r"^\.(?P<name>.+)\.tmp-\d+-[0-9a-f]+\.spool\.arrow$")
#: an array's writer lock file
LOCK = re.compile(r"^\.(?P<name>.+)\.lock$")


class Layout:
    """Hidden names and commits of the store at ``path`` (``remote``: an object store)."""

    def __init__(self, path: Path, remote: bool) -> None:
        self.path = path
        #: called with an array's folder once a new array is committed there (a foreign
        #: group: its consolidated metadata, see storage.foreign)
        self.after_commit: Callable[[Path], None] | None = None
        #: the store is a zarr group arraystore did not write: a new array without
        #: dimension names gets its own (``NAME_dim_0``...), which never conflict in xarray
        self.foreign_group = False
        self.remote = remote

    def temp_path(self, name: str) -> Path:
        return self.path / f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def builds(self, name: str) -> list[Path]:
        """The ``.NAME.tmp-*`` entries: new arrays being built and CSV spools."""
        return list(self.path.glob(f".{name}.tmp-*"))

    def own_build(self, entry: Path) -> bool:
        """``entry`` (a ``.NAME.tmp-*``) was made by this process (e.g. its CSV spool)."""
        return f".tmp-{os.getpid()}-" in entry.name

    def spool_path(self, name: str) -> Path:
        """A fresh ``.NAME.tmp-PID-HEX.spool.arrow`` (a CSV import's typed spool); on an
        object store a local scratch file in the temp directory."""
        tmp = self.temp_path(name)
        if self.remote:
            tag = tmp.name.rpartition(".tmp-")[2]  # PID-hex: NAME may be near the length limit
            return Path(tempfile.gettempdir()) / f"arraystore-{tag}.spool.arrow"
        return tmp.with_name(tmp.name + ".spool.arrow")

    def trash_path(self, name: str) -> Path:
        """A fresh ``.NAME.rm-HEX``: where ``rm`` moves an array before deleting it."""
        return self.path / f".{name}.rm-{uuid.uuid4().hex[:8]}"

    def leftovers_of(self, name: str) -> list[Path]:
        """Half-built cast work folders ``.NAME.cast.tmp-*`` and unfinished removals
        ``.NAME.rm-*`` of ``name``: nothing in them is ever used again."""
        return [*self.path.glob(f".{name}.cast.tmp-*"), *self.path.glob(f".{name}.rm-*")]

    def cast_work(self, name: str) -> Path:
        """The work folder of a cast of ``name`` (found again by its source's name)."""
        return self.path / f".{name}.cast"

    def roll_back(self, name: str) -> None:
        """Put back the replaced version ``.NAME.old-*`` of an interrupted two-rename
        commit (or overwriting rename) when NAME is missing; otherwise (the commit had
        happened) remove it. Only a complete folder (its sidecar still there: removal
        deletes it first) comes back."""
        path = self.path / name
        for old in sorted(self.path.glob(f".{name}.old-*")):
            if (
                not self.remote
                and old.is_dir()
                and not old.is_symlink()
                and is_array(old)
                and not (path.exists() or path.is_symlink())
            ):
                os.replace(old, path)  # the interrupted replace never happened
                fsync_dir(self.path)
            else:
                remove_hidden(old)

    def hide(self, path: Path) -> Path:
        """Move the array at ``path`` to a fresh hidden ``.NAME.old-*`` (the caller holds
        its lock: older ``.NAME.old-*`` are leftovers from after their commit and go
        first, so that at most one version can ever be put back)."""
        for stale in self.path.glob(f".{path.name}.old-*"):
            remove_hidden(stale)
        old = self.path / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(path, old)
        return old

    def commit(self, tmp: Path, path: Path) -> None:
        """Move a finished temp array into place; an old array is removed after the swap.

        On an object store: the old array is deleted, then the new keys are moved in
        (sidecar last) -- not atomic, see :mod:`arraystore.fs.remote`.
        """
        if self.remote:
            commit(tmp, path)  # type: ignore[arg-type]
            return
        old = None
        if path.exists() or path.is_symlink():
            if can_exchange():
                kill_point("swap")
            if exchange(tmp, path):  # atomic swap: the name is never missing
                fsync_dir(self.path)
                fsync_dir(tmp.parent)
                kill_point("remove-old")
                remove_hidden(tmp)  # now holds the old array
                return
            old = self.hide(path)
            kill_point("swap")
        try:
            os.replace(tmp, path)
        except BaseException:
            if old is not None:  # the new one did not go in: the old one comes back
                with contextlib.suppress(OSError):
                    rename_noreplace(old, path)
            raise
        fsync_dir(self.path)
        if old is not None:
            kill_point("remove-old")
            remove_hidden(old)

    def commit_rename(self, src: Path, dst: Path) -> None:
        """Rename the array at ``src`` to ``dst`` (never over an existing name): a ``dst``
        there is hidden first (``hide``) and deleted after (see ``Store.rename``)."""
        if self.remote:
            self.commit(src, dst)
            return
        old = self.hide(dst) if dst.exists() or dst.is_symlink() else None
        kill_point("swap")
        try:
            rename_noreplace(src, dst)
        except BaseException:
            if old is not None:
                with contextlib.suppress(OSError):
                    rename_noreplace(old, dst)
            raise
        fsync_dir(self.path)
        if old is not None:
            kill_point("remove-old")
            remove_hidden(old)


def remove_hidden(path: Path) -> None:
    """Delete a hidden folder (a replaced, removed or abandoned array): its metadata
    first, so that a kill part-way leaves a folder nothing takes for an array (a
    ``.NAME.old-*`` without its sidecar is never put back), then the rest."""
    if isinstance(path, Path) and path.is_dir() and not path.is_symlink():
        for meta_file in (SIDECAR, NODE):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
                (path / meta_file).unlink()
        kill_point("remove-part")
    remove_tree(path)
