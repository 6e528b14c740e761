"""Check a store: metadata, file sizes, every chunk decodes, checksums; repair leftovers.

``verify`` reads every chunk of every array (in bounded memory, one chunk at a time) and
returns a list of findings. ``repair=True`` removes only leftovers of interrupted writes:
hidden ``.NAME.tmp-*`` / ``.NAME.old-*`` / ``.NAME.rm-*`` folders, unfinished
``.NAME.cast`` folders whose writer is gone and stale lock files; it never touches an
array that the store lists. An interrupted append/resize (``.NAME.grow``) is settled
first, rolled back or finished as its next writer would, in any writable store.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from arraystore.backends.memmap import crc as memmap_crc
from arraystore.errors import ArrayStoreError, DTypeError, LockedError
from arraystore.fs import lock as _lock
from arraystore.fs import move_tree, remove_tree
from arraystore.storage.grow import GROW
from arraystore.storage.grow import recover as recover_resize
from arraystore.storage.journal import recover
from arraystore.storage.layout import LEFTOVER, LOCK, SPOOL

if TYPE_CHECKING:
    from arraystore.storage import StoreRoot


@dataclass
class Finding:
    """One problem: ``kind`` is "corrupt", "leftover", "unchecked" or "warning" (an entry
    of the store that is no array)."""

    kind: str
    name: str
    message: str
    repaired: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "message": self.message,
            "repaired": self.repaired,
        }


@dataclass
class VerifyReport:
    checked: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def corrupt(self) -> bool:
        return any(f.kind == "corrupt" for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "corrupt": self.corrupt,
            "findings": [f.to_dict() for f in self.findings],
        }


UNCHECKED = (
    "no checksums stored: cannot tell whether the stored values changed (bit flips "
    "cannot be detected; write the array with --checksum)"
)


def verify_array(store: StoreRoot, name: str, report: VerifyReport) -> None:
    try:
        handle = store.open_handle(name, "r")
        report.checked.append(name)
        for problem in handle.check_layout():
            report.findings.append(Finding("corrupt", name, problem))
        if handle.meta.backend == "memmap" and handle.meta.checksum:
            _check_memmap_crcs(handle, name, report)  # reads every byte once
            handle.close()
            return
        for region in handle.chunk_regions():
            if handle.meta.dtype.names is not None and handle.columnar:
                for fname in handle.meta.dtype.names:
                    handle.read(region, fname)
            else:
                handle.read(region)
        handle.close()
    except DTypeError as exc:  # a foreign array of a data type arraystore cannot read
        kind = "unchecked" if store.foreign is not None else "corrupt"
        report.findings.append(Finding(kind, name, str(exc)))
        return
    except ArrayStoreError as exc:
        report.findings.append(Finding("corrupt", name, str(exc)))
        return
    except (OSError, ValueError) as exc:  # anything a decoder raises
        report.findings.append(Finding("corrupt", name, f"{type(exc).__name__}: {exc}"))
        return
    if not handle.meta.checksum:
        report.findings.append(Finding("unchecked", name, UNCHECKED))


def _check_memmap_crcs(handle: Any, name: str, report: VerifyReport) -> None:
    """Recompute the block checksums of a memmap array; one finding per bad block."""
    table = memmap_crc.load(handle.crc_loc, handle.offset, handle.meta.nbytes)
    for m in memmap_crc.check(handle.file, table):
        report.findings.append(Finding("corrupt", name, m.describe(handle.row_bytes)))


def verify(store: StoreRoot, name: str | None = None, repair: bool = False) -> VerifyReport:
    report = VerifyReport()
    if repair:
        store.check_writable()
    if name is not None and name not in store:
        store.open_handle(name)  # raises InvalidName / ArrayNotFound / MetadataError
    running = _settle_resizes(store, report, name)
    names = [name] if name is not None else store.names()
    for n in names:
        if n in running:  # its files change under us: not a finding
            msg = "an append/resize of it is running: not checked"
            report.findings.append(Finding("unchecked", n, msg))
            continue
        verify_array(store, n, report)
    if name is None:
        if store.foreign is None:  # (a zarr group's other folders are its own business)
            _strangers(store, report, set(names))
        _leftovers(store, report, repair)
    return report


def _settle_resizes(store: StoreRoot, report: VerifyReport, name: str | None) -> set[str]:
    """Settle interrupted appends/resizes (``storage.grow``: rolled back or finished, as
    their next writer would) before checking, in a writable store and when no writer
    holds the array; else report them. Returns the arrays a live writer resizes."""
    running: set[str] = set()
    if store.remote:
        return running
    for entry in _entries(store):
        m = GROW.match(entry)
        if not m or (name is not None and m.group("name") != name):
            continue
        owner = m.group("name")
        if _busy(store, owner):
            running.add(owner)
            continue
        if not store.writable:
            msg = f"an interrupted append/resize of {owner!r} ({entry}): its next writer settles it"
            report.findings.append(Finding("leftover", owner, msg, False))
            continue
        try:
            with store.lock(owner):
                msg = recover_resize(store.path, owner) or ""
        except LockedError:
            running.add(owner)
            continue
        if msg:
            report.findings.append(Finding("leftover", owner, msg, True))
    return running


def _entries(store: StoreRoot) -> list[str]:
    if store.remote:
        return sorted({p.name for p in store.path.iterdir()})
    return sorted(os.listdir(store.path))


def _busy(store: StoreRoot, owner: str) -> bool:
    lock = store.path / f".{owner}.lock"
    if store.remote:  # a lock object: its holder may be on another machine
        return lock.exists()
    return _lock.state(lock) == "held"  # the flock decides, not the PID written in it


#: what a folder of an array holds (a zarr array/group, a memmap .npy, chunk folders)
_ARRAY_MARKS = ("zarr.json", "data.npy", "c")
_LOST = "not an array: its metadata (zarr.json attributes.arraystore) is missing"


def _strangers(store: StoreRoot, report: VerifyReport, names: set[str]) -> None:
    """Visible entries that are not arrays: a folder that holds array files but no
    metadata is a damaged array (corrupt); anything else is reported (a warning):
    arraystore ignores it, 'arraystore rm STORE NAME' removes such a folder."""
    for entry in _entries(store):
        if entry.startswith(".") or entry == "zarr.json" or entry in names:
            continue
        path = store.path / entry
        if path.is_dir() and not path.is_symlink():
            if any((path / mark).exists() for mark in _ARRAY_MARKS):
                report.findings.append(Finding("corrupt", entry, _LOST))
                continue
            what = "a folder that is not an array (no zarr.json)"
        else:
            what = "a symlink" if path.is_symlink() else "a file"
            what += ", not an array (ignored)"
        report.findings.append(Finding("warning", entry, what))


def _leftovers(store: StoreRoot, report: VerifyReport, repair: bool) -> None:
    for entry in _entries(store):
        path = store.path / entry
        m = LEFTOVER.match(entry)
        if m and path.is_dir() and not path.is_symlink():
            owner = m.group("name")
            if _busy(store, owner):
                continue  # a live writer is working on it
            msg = f"leftover of an interrupted write of {owner!r}: {entry}"
            if entry.endswith(".cast"):
                if repair:
                    finished = _finish_cast(store, owner, path)
                    if finished is not None:
                        report.findings.append(finished)
                        continue
                msg += " (an interrupted cast: 'cast --resume' can finish it)"
            done = False
            if ".old-" in entry and not (store.path / owner).exists():
                # the only copy of an array whose replacement was interrupted: restore it
                msg = f"array {owner!r} was being replaced; its previous version is {entry}"
                if repair:
                    move_tree(path, store.path / owner)
                    msg += " (restored)"
                report.findings.append(Finding("leftover", owner, msg, False))
                continue
            if repair:
                remove_tree(path)
                done = True
            report.findings.append(Finding("leftover", owner, msg, done))
            continue
        m = SPOOL.match(entry)
        if m and path.is_file() and not _busy(store, m.group("name")):
            if repair:
                path.unlink(missing_ok=True)
            msg = f"leftover of an interrupted import of {m.group('name')!r}: {entry}"
            report.findings.append(Finding("leftover", m.group("name"), msg, repair))
            continue
        m = LOCK.match(entry)
        if m and store.remote:  # cannot tell whether its writer (maybe elsewhere) is alive
            report.findings.append(
                Finding(
                    "leftover",
                    m.group("name"),
                    f"lock object {entry}: delete {path} if no writer is running",
                )
            )
            continue
        if m:
            found = _lock_finding(path, m.group("name"), repair)
            if found is not None:
                report.findings.append(found)


def _finish_cast(store: StoreRoot, owner: str, work: Any) -> Finding | None:
    """Commit the crashed cast in ``work`` if its data was complete (under the locks of
    ``owner`` and of its ``--out``: see ``journal.recover``); its finding, or None if it
    was not complete (then it is a leftover to drop)."""
    try:
        with store.lock_unless_held(owner):
            if not recover(store, owner, work):
                return None
    except LockedError as exc:  # a live writer of its --out: not now
        msg = f"interrupted cast {work.name} left as it is: {exc}"
        return Finding("leftover", owner, msg, False)
    except ArrayStoreError:  # a bad journal: nothing to finish (its source is intact)
        return None
    return Finding("leftover", owner, f"finished the interrupted commit of {work.name}", True)


def _lock_finding(path: Any, owner: str, repair: bool) -> Finding | None:
    """A lock file nobody holds (its flock is free) is stale whatever PID it names: a
    dead writer's, or one a PID reuse or another tool made look alive; a directory or
    symlink in its place blocks every writer. ``repair`` removes them (never a held one)."""
    entry, kind = path.name, _lock.state(path)
    if kind in ("held", "absent"):
        return None  # a writer is running (or it just went)
    if kind == "stale":
        msg = f"stale lock {entry}"
        ident = _lock.recorded(path)
        if ident is not None and _lock.alive(*ident):
            msg += f" (names PID {ident[0]}, a live process that does not hold it)"
        done = repair and _lock.remove_stale(path)
    elif kind == "directory":
        msg = f"lock {entry} is a directory (blocks every writer of {owner!r})"
        done = repair and _lock.remove_stale(path)
    else:  # a symlink, FIFO, socket or device: no writer takes it for its lock
        msg = f"lock {entry} is not a regular file (blocks every writer of {owner!r})"
        done = repair and _remove_not_regular(path)
    return Finding("leftover", owner, msg, done)


def _remove_not_regular(path: Any) -> bool:
    """Unlink the entry at ``path`` (the entry itself: a link, never what it points to)
    if it is still neither a regular file nor a directory: writers refuse such a lock,
    so nobody holds it; a regular lock file that took its place meanwhile stays."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return True
