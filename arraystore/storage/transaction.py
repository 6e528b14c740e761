"""storage.transaction: the one way a new array comes into a store.

:class:`NewArray` builds the array in a hidden work folder ``W`` of the store: ``W/data``
is the new array, ``W/JOURNAL`` an optional journal of finished chunks (resumable writers:
map, cast). Commit: flush and close the array, write its metadata (into its zarr.json) last,
seal the journal, rename ``W/data`` over the target name (``Layout.commit``: atomic
exchange, or a two-rename commit that ``Layout.roll_back`` undoes), then remove ``W``.
Abort removes ``W``; an interruption (not an error) of a journaled build keeps ``W`` for a
resume. Every writer of a new array -- ``Store.create``, import, map, cast -- goes through
here, so the crash tests (tests/test_crash_points.py) cover one code path.

The caller holds the writer lock of the target (and has settled what dead writers of it
left: ``Store.clean_stale``).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any

from arraystore.backends import get_backend
from arraystore.backends.base import Handle
from arraystore.backends.zarr.foreign import output_codec
from arraystore.core.meta import ArrayMeta
from arraystore.fs import move_tree, remove_tree
from arraystore.storage.journal import write_header
from arraystore.storage.killpoints import kill_point
from arraystore.storage.layout import Layout

__all__ = ["NewArray", "group_doc"]

#: where the new array lives inside its work folder
DATA = "data"


def group_doc(attributes: dict[str, Any]) -> dict[str, Any]:
    """A zarr v3 group node's ``zarr.json`` with ``attributes``."""
    return {"zarr_format": 3, "node_type": "group", "attributes": attributes}


class NewArray:
    """A new array ``target`` being built in the work folder ``work`` (see the module doc).

    Make one with :meth:`begin` (a fresh build) or :meth:`resume` (an interrupted
    journaled one); write through :attr:`handle`; end with :meth:`commit` or
    :meth:`abort`. As a context manager: commit when the block ends normally (unless it
    committed or aborted itself), abort on an error. An interruption that is not an
    error (KeyboardInterrupt) keeps a journaled build for a resume.
    """

    def __init__(
        self,
        layout: Layout,
        target: str,
        meta: ArrayMeta,
        work: Path,
        handle: Handle,
        journal: str | None,
    ) -> None:
        self.layout = layout
        self.target = target
        #: the metadata written at commit (callers may replace it, e.g. with a report)
        self.meta = meta
        self.work = work
        self.handle = handle
        self.journal_name = journal
        self.state = "open"

    # ------------------------------------------------------------ making one
    @classmethod
    def begin(
        cls,
        layout: Layout,
        target: str,
        meta: ArrayMeta,
        *,
        journal: str | None = None,
        header: dict[str, Any] | None = None,
        work: Path | None = None,
    ) -> NewArray:
        """Build an empty new array ``target`` in a fresh work folder.

        Parameters
        ----------
        layout
            The store's layout (its hidden names and commits).
        target
            The array name the commit gives the new array.
        meta
            The new array's metadata (shape, dtype, chunks, backend, codec).
        journal, header
            A resumable build: the journal file's name in the work folder and its header
            line (the job's parameters).
        work
            A fixed work folder (a cast's ``.NAME.cast``: found again by its source's
            name); it is built under a temporary name and renamed in complete. Default: a
            fresh ``.TARGET.tmp-PID-HEX``.
        """
        building = layout.temp_path(target if work is None else work.name[1:])
        building.mkdir()
        kill_point("mkdir")
        try:
            if journal is not None:
                write_header(building / journal, header or {})
                kill_point("header")
            (building / DATA).mkdir()
            backend = get_backend(meta.backend)
            meta = meta.evolve(format=2)
            if meta.foreign:  # from a foreign source: an array of ours, its codec if ours
                meta = meta.evolve(foreign=False, codec=output_codec(meta))
            if layout.foreign_group and meta.dims is None:
                meta = meta.evolve(dims=tuple(f"{target}_dim_{i}" for i in range(meta.ndim)))
            handle = backend.create(building / DATA, meta)
            if work is not None:  # the work folder appears complete or not at all
                handle.close()
                move_tree(building, work)
                building = work
                handle = backend.open(work / DATA, meta.to_doc(), "r+")
        except BaseException:
            remove_tree(building)
            raise
        return cls(layout, target, meta, building, handle, journal)

    @classmethod
    def resume(
        cls, layout: Layout, target: str, meta: ArrayMeta, work: Path, journal: str
    ) -> NewArray:
        """Reopen the partial array of an interrupted journaled build in ``work``."""
        meta = meta.evolve(format=2)
        handle = get_backend(meta.backend).open(work / DATA, meta.to_doc(), "r+")
        return cls(layout, target, meta, work, handle, journal)

    # ------------------------------------------------------------ properties
    @property
    def path(self) -> Path:
        """The folder of the new array (inside the work folder)."""
        return self.work / DATA

    @property
    def chunk_journal(self) -> Path | None:
        """The journal the writers append finished chunks to (``storage.journal.mark_done``);
        None without a journal or on an object store (a resume there redoes every chunk)."""
        if self.journal_name is None or self.layout.remote:
            return None
        return self.work / self.journal_name

    # ------------------------------------------------------------ ending
    def commit(self, meta: ArrayMeta | None = None, *, seal_journal: bool = True) -> None:
        """Flush, write the metadata last, rename the array in; then drop the work folder.

        ``seal_journal``: rename the journal away first, so a kill after this point
        leaves nothing to resume (map). A cast keeps it: ``storage.journal.recover``
        finishes the commit of a cast whose metadata was written.
        An error removes the work folder: the store is as it was; an interruption
        (KeyboardInterrupt) of a journaled build leaves it to ``recover`` / a resume.
        """
        if meta is not None:  # (the dimension names given at the start stay)
            self.meta = meta if meta.dims is not None else meta.evolve(dims=self.meta.dims)
        self.meta = self.meta.evolve(format=2, foreign=False)
        try:
            self.handle.flush()
            self.handle.close()
            # metadata last: the array's zarr.json gets attributes["arraystore"]
            get_backend(self.meta.backend).write_meta(self.path, self.meta)
            kill_point("sidecar")
            if self.journal_name is not None and seal_journal:
                journal = self.work / self.journal_name
                if isinstance(journal, Path):  # not resumable from here on
                    os.replace(journal, self.work / f"{self.journal_name}.committing")
                else:  # an object store: no rename; the journal just goes
                    remove_tree(journal)
            self.layout.commit(self.path, self.layout.path / self.target)
            if self.layout.after_commit is not None:
                self.layout.after_commit(self.layout.path / self.target)
        except BaseException as exc:
            if self.journal_name is not None and not isinstance(exc, Exception):
                self.close()  # interrupted: a cast's recover (or a resume) decides
            else:
                self.abort()
            raise
        self.state = "committed"
        kill_point("committed")
        remove_tree(self.work)

    def abort(self) -> None:
        """Close the new array and remove the work folder (nothing of it stays)."""
        self.handle.close()
        if self.state != "committed":
            self.state = "aborted"
        if self.work.exists():
            remove_tree(self.work)

    def close(self) -> None:
        """Close the new array, keeping the work folder (an interrupted journaled build)."""
        self.handle.close()
        self.state = "closed"

    def __enter__(self) -> NewArray:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.state != "open":
            return
        if exc_type is None:
            self.commit()
        elif self.journal_name is not None and not issubclass(exc_type, Exception):
            self.close()  # Ctrl-C: resumable
        else:
            self.abort()
