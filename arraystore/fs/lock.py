"""Per-array writer locks: a ``.NAME.lock`` file, ``flock``-ed by its holder.

The ``flock`` is the lock: the kernel drops it when its holder dies, whatever killed it,
so a lock file nobody has ``flock``-ed is stale, whatever it says. The file also records
the holder's identity, ``PID START`` (START: the process's start time, so that a reused
PID is not mistaken for the holder), for messages and ``verify`` only. Writing it is best
effort: on a full disk the lock is still taken (removing data must work then).

Two kinds of holders share one lock per array and process (see :func:`hold`): an
*operation* (create, cast, map, mv, rm, import: exclusive, one at a time) and *region
writes* (``arr[...] = x`` from Python: they take the lock for the duration of each write
and share it with the other region writes of the same process, so threads writing
disjoint regions do not refuse each other). Readers never look at locks (commits are
atomic renames, so readers never see a torn array).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import importlib
import os
import shutil
import stat as st
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from arraystore.errors import LockedError


def lock_path(root: Path, name: str) -> Path:
    return root / f".{name}.lock"


# ------------------------------------------------------------- process identity
def process_start(pid: int) -> str | None:
    """When process ``pid`` started (``/proc/PID/stat`` field 22, clock ticks since boot;
    psutil's create time where there is no /proc), or None if unknown / not running."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2 :].split()[19].decode()  # after "pid (comm) "
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return None  # /proc works: the process is gone
    except (OSError, ValueError, IndexError):
        return None
    try:
        psutil = importlib.import_module("psutil")
        return f"{psutil.Process(pid).create_time():.3f}"
    except Exception:  # no psutil, or no such process
        return None


_MY_START: dict[int, str | None] = {}


def my_identity() -> str:
    """``PID START`` of this process (``PID`` alone where the start time is unknown)."""
    pid = os.getpid()
    if pid not in _MY_START:  # (a forked child has a new PID)
        _MY_START[pid] = process_start(pid)
    start = _MY_START[pid]
    return str(pid) if start is None else f"{pid} {start}"


def alive(pid: int, start: str | None = None) -> bool:
    """Process ``pid`` runs (and, with ``start``, is the one that started then)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start is None:
        return True
    now = process_start(pid)
    return now is None or now == start


def parse_identity(text: str) -> tuple[int, str | None] | None:
    """``(pid, start)`` from a lock file's text (``PID`` or ``PID START``), else None."""
    parts = text.split()
    if not parts or not parts[0].isdigit() or len(parts) > 2:
        return None
    return int(parts[0]), (parts[1] if len(parts) == 2 else None)


def recorded(path: Path) -> tuple[int, str | None] | None:
    """The identity written in the lock file at ``path`` (None: none readable)."""
    try:  # (never through a link, never waiting on a FIFO)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not st.S_ISREG(os.fstat(fd).st_mode):
            return None
        text = os.read(fd, 200).decode("ascii", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)
    return parse_identity(text)


def holder(path: Path) -> int | None:
    """PID recorded in the lock file at ``path`` if that process still runs (the same
    process: its start time matches), else None. Says nothing about the ``flock``: see
    :func:`state` for whether the lock is held."""
    ident = recorded(path)
    if ident is None:
        return None
    return ident[0] if alive(*ident) else None


def state(path: Path) -> str:
    """``"absent"``, ``"held"`` (someone holds its flock), ``"stale"`` (a lock file
    nobody holds: removable), ``"directory"`` (a directory nobody holds) or ``"other"``
    (a symlink or special file: never ours). Probing takes the flock for a moment."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return "absent"
    except OSError:
        return "other"
    try:
        mode = os.fstat(fd).st_mode
        if not (st.S_ISREG(mode) or st.S_ISDIR(mode)):
            return "other"
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return "held"
        return "directory" if st.S_ISDIR(mode) else "stale"
    finally:
        os.close(fd)


def remove_stale(path: Path) -> bool:
    """Remove the lock file at ``path`` if nobody holds it (under its flock, as a
    releasing holder does, so a writer that opened it meanwhile retries). True if done."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if not _same_file(fd, path):
            return False
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()
        return True
    finally:
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev)


# ------------------------------------------------------------------ the lock file
def _not_regular(path: Path, name: str) -> LockedError:
    return LockedError(
        f"array {name!r}: its lock file {path.name} is not a regular file: remove it with "
        "'arraystore verify --repair'"
    )


def _open_lock(path: Path, name: str) -> int:
    """Open (or create) the lock file: a regular file, never through a symlink; a FIFO,
    socket or device in its place is refused (O_NONBLOCK: opening a FIFO never waits)."""
    flags = os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except IsADirectoryError:
        raise LockedError(
            f"array {name!r}: its lock {path.name} is a directory, not a lock file "
            "(run 'arraystore verify --repair' to remove it)"
        ) from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.ENODEV, errno.EOPNOTSUPP):
            raise _not_regular(path, name) from None
        raise
    if not st.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _not_regular(path, name)
    return fd


def _acquire(path: Path, name: str) -> int:
    """Open (or create) the lock file and flock it; returns the descriptor. No window
    where two processes both think they hold it: a file left by a dead holder is never
    unlinked by the next one, only re-locked; a releasing holder unlinks it before its
    flock goes, so whoever flocked a file no longer at ``path`` tries again."""
    for _ in range(50):
        fd = _open_lock(path, name)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise _locked(path, name) from None
            if not _same_file(fd, path):  # released (unlinked) between open and flock
                os.close(fd)
                continue
            _write_identity(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        return fd
    raise LockedError(f"array {name!r}: could not take its lock file {path}")


def _write_identity(fd: int) -> None:
    """Best effort: a full disk (or quota) leaves the file empty, the lock still held."""
    data = my_identity().encode()
    try:
        if os.fstat(fd).st_size:  # (a new file: no truncate, which makes ext4 flush on close)
            os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS):
            raise
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)


def _release(path: Path, fd: int) -> None:
    try:
        if _same_file(fd, path):
            path.unlink()  # before the flock goes: a waiter then sees a new file
    except FileNotFoundError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def writer_lock(root: Path, name: str) -> Iterator[None]:
    """Hold the writer lock of array ``name`` or fail fast with :class:`LockedError`
    (exclusive, also within this process: see :func:`hold` for sharing)."""
    path = lock_path(root, name)
    fd = _acquire(path, name)
    try:
        yield
    finally:
        _release(path, fd)


def _locked(path: Path, name: str) -> LockedError:
    """The error for a lock whose flock another process holds (its identity may not be
    written yet: it just took the lock; or it could not be written: disk full)."""
    for _ in range(20):
        ident = recorded(path)
        if ident is not None and alive(*ident):
            if ident[0] == os.getpid():
                return LockedError(f"array {name!r} is already locked by this process")
            return LockedError(f"array {name!r} is locked by a writer (PID {ident[0]})")
        time.sleep(0.005)
    return LockedError(f"array {name!r} is locked by another writer")


# ------------------------------------------------- sharing within one process
@dataclass
class _Held:
    stack: contextlib.ExitStack
    shared: bool  # taken by region writes (shared by them), else by an operation
    thread: int
    count: int = 1


_HELD: dict[str, _Held] = {}
_GUARD = threading.Lock()


@contextlib.contextmanager
def hold(
    key: str, name: str, shared: bool, take: Callable[[], contextlib.AbstractContextManager[None]]
) -> Iterator[None]:
    """Hold the lock ``key`` of array ``name`` (``take()`` enters the real lock) for an
    operation (``shared=False``: refused while anything of this process holds it) or a
    region write (``shared=True``: joins the region writes of this process that hold it,
    and an operation of the same thread — writes inside ``with store.lock(name)`` —
    and is refused by an operation of another thread)."""
    me = threading.get_ident()
    with _GUARD:
        held = _HELD.get(key)
        if held is None:
            stack = contextlib.ExitStack()
            stack.enter_context(take())
            held = _HELD[key] = _Held(stack, shared, me)
        elif shared and (held.shared or held.thread == me):
            held.count += 1
        elif shared:  # an operation of another thread of this process
            raise LockedError(f"array {name!r} is locked by a writer (PID {os.getpid()})")
        else:
            raise LockedError(f"array {name!r} is already locked by this process")
    try:
        yield
    finally:
        with _GUARD:
            held.count -= 1
            if held.count == 0:
                del _HELD[key]
                held.stack.close()


def held_here(key: str) -> bool:
    """This thread holds the lock ``key`` for an operation (see :func:`hold`)."""
    with _GUARD:
        held = _HELD.get(key)
        return held is not None and not held.shared and held.thread == threading.get_ident()


def refuse_pending_cast(root: Path, name: str) -> None:
    """Raise :class:`LockedError` if a crashed cast of array ``name`` waits in
    ``.NAME.cast`` (region writes check it under the lock): its resume, or ``verify
    --repair`` committing it, would put the cast of the old content over what is
    written now. Operations (create, import, map, rm, mv) settle it instead."""
    work = root / f".{name}.cast"
    if os.path.lexists(work):
        raise LockedError(
            f"array {name!r} has an interrupted cast ({work.name}): finish it with "
            f"'arraystore cast STORE {name} --resume' or drop it with 'arraystore verify "
            "STORE --repair' before writing"
        )
