"""Per-array writer locks: a ``.NAME.lock`` file, ``flock``-ed by its holder.

The file holds the writer's PID. A lock file whose holder died is taken over (its flock
went with the process). Readers never look at locks (writes are atomic renames, so readers
never see a torn array).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from ..core.errors import LockedError


def lock_path(root: Path, name: str) -> Path:
    return root / f".{name}.lock"


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder(path: Path) -> int | None:
    """PID holding the lock at ``path`` if that process is alive, else None."""
    try:
        text = path.read_text().strip()
    except (FileNotFoundError, IsADirectoryError):
        return None
    pid = int(text) if text.isdigit() else -1
    return pid if _alive(pid) else None


@contextlib.contextmanager
def writer_lock(root: Path, name: str) -> Iterator[None]:
    """Hold the writer lock of array ``name`` or fail fast with :class:`LockedError`.

    The lock file carries an exclusive ``flock`` while held (the kernel drops it when
    the holder dies, whatever killed it) and the holder's PID (for the message, and a
    live PID written by another tool also counts as held). Taking it: open or create the
    file, ``flock(LOCK_EX | LOCK_NB)``, check it is still the file at ``path`` (a
    releasing holder unlinks it first), check the PID inside names no other live process,
    then write ours. No window where two processes both think they hold it: a file left
    by a dead holder is never unlinked by the next one, only re-locked."""
    path = lock_path(root, name)
    for _ in range(50):
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise _locked(path, name) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # released (unlinked) between our open and our flock: again
                continue
            pid = holder(path)
            if pid is not None and pid != os.getpid():
                raise LockedError(f"array {name!r} is locked by a writer (PID {pid})")
            if pid == os.getpid():
                raise LockedError(f"array {name!r} is already locked by this process")
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # before the flock goes: a waiter then sees a new file
            os.close(fd)
        return
    raise LockedError(f"array {name!r}: could not take its lock file {path}")


def _locked(path: Path, name: str) -> LockedError:
    """The error for a lock whose flock another process holds (its PID may not be
    written yet: it just took the lock)."""
    for _ in range(20):
        pid = holder(path)
        if pid is not None:
            if pid == os.getpid():
                return LockedError(f"array {name!r} is already locked by this process")
            return LockedError(f"array {name!r} is locked by a writer (PID {pid})")
        time.sleep(0.005)
    return LockedError(f"array {name!r} is locked by another writer")
