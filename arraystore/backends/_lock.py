"""Per-array writer locks: a ``.NAME.lock`` file created with ``O_CREAT | O_EXCL``.

The file holds the writer's PID. A lock whose PID no longer runs is stale and is taken
over. Readers never look at locks (writes are atomic renames, so readers never see a
torn array).
"""

from __future__ import annotations

import contextlib
import os
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
    """Hold the writer lock of array ``name`` or fail fast with :class:`LockedError`."""
    path = lock_path(root, name)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid = holder(path)
            if pid is not None and pid != os.getpid():
                raise LockedError(f"array {name!r} is locked by a writer (PID {pid})") from None
            if pid == os.getpid():
                raise LockedError(f"array {name!r} is already locked by this process") from None
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # stale: its process is gone
            continue
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return
    raise LockedError(f"array {name!r}: could not take its lock file {path}")
