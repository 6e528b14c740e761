"""storage.locks: the writer locks of a store's arrays (:class:`StoreLocks`, a base of
:class:`arraystore.storage.root.StoreRoot`; see :mod:`arraystore.fs.lock`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from arraystore.core.dtypes import check_array_name
from arraystore.fs import held_here, hold, refuse_pending_cast, remote_lock, writer_lock
from arraystore.storage.grow import settle_resize

__all__ = ["StoreLocks"]


class StoreLocks:
    """Writer locks of the arrays of the store at ``path`` (``remote``: an object store)."""

    path: Path
    remote: bool

    def check_writable(self) -> None:
        raise NotImplementedError

    def lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        """The writer lock of array ``name`` for an operation (fails fast when another
        process, or another operation of this one, holds it).

        Parameters
        ----------
        name : str
            The array name (it need not exist).

        Returns
        -------
        context manager
            Raises :class:`LockedError` on entry when the lock is held elsewhere.
        """
        return self._lock(name, shared=False)

    @contextlib.contextmanager
    def write_lock(self, name: str) -> Iterator[None]:
        """The writer lock of array ``name`` for one region write (``arr[...] = x``):
        shared with the region writes of this process, refused while an operation (or
        another process) holds it, or a crashed cast of it waits (see
        :mod:`arraystore.fs.lock`).

        Parameters
        ----------
        name : str
            The array name.
        """
        if not self.remote:  # an interrupted append/resize is settled first
            settle_resize(self.path, name, self.lock)
        with self._lock(name, shared=True):
            if not self.remote:
                refuse_pending_cast(self.path, name)
            yield

    def lock_unless_held(self, name: str) -> contextlib.AbstractContextManager[None]:
        """``lock(name)``, or nothing if this thread's operation holds it already (e.g.
        settling a crashed ``cast a --out n`` inside ``mv a n``, which holds n's lock).

        Parameters
        ----------
        name : str
            The array name.
        """
        if held_here(self._lock_key(name)):
            return contextlib.nullcontext()
        return self.lock(name)

    def _lock_key(self, name: str) -> str:
        if self.remote:
            return str(self.path / f".{name}.lock")
        return os.path.abspath(self.path / f".{name}.lock")

    def _lock(self, name: str, shared: bool) -> contextlib.AbstractContextManager[None]:
        self.check_writable()
        check_array_name(name)
        key = self._lock_key(name)
        if self.remote:
            return hold(key, name, shared, lambda: remote_lock(self.path, name))  # type: ignore[arg-type]
        return hold(key, name, shared, lambda: writer_lock(self.path, name))
