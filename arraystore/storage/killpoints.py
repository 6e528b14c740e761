"""A test hook for the crash-consistency tests: SIGKILL this process at a named point.

``ARRAYSTORE_TEST_KILL_AT=PHASE`` (or ``PHASE:N``) makes the N-th (default: first) call
of ``kill_point(PHASE)`` kill the process with SIGKILL, the way a power cut or the OOM
killer would. The variable is read once at import; without it ``kill_point`` is a no-op
(one ``is None`` test). The phases of the write paths (tests/storage/test_crash_points.py):

``mkdir``       the hidden work folder exists, nothing in it yet
``header``      (map) the journal header is written, the new array not created yet
``spool``       (CSV import) the typed spool file is complete, the array not created yet
``chunk``       after a chunk / block of the new array was written (and journaled)
``sidecar``     the new array is complete with its metadata, not yet renamed into place
``swap``        in ``Layout.commit``: right before the atomic exchange with the old array
                (without renameat2: between moving the old array away and the new one in);
                in ``mv --overwrite``: the old destination moved to ``.NEW.old-*``, the
                source not yet renamed
``remove-old``  in ``Layout.commit`` / ``mv --overwrite``: the new array is in place, the
                old one (hidden) not deleted; in ``rm``: the array renamed to
                ``.NAME.rm-*``, not yet deleted
``remove-part`` deleting a hidden folder (``storage.layout.remove_hidden``): its
                metadata files are gone, the rest not
``committed``   the commit returned; the work folder / spool file not yet removed
``upgrade-data``   (upgrade of a format-1 memmap array) the shard file is complete beside
                ``data.npy``, the zarr.json not switched yet
``upgrade-switch`` (upgrade) the zarr.json holds our metadata; format 1's files not removed

An append / resize in place (``storage/grow.py``, tests/storage/test_grow_crash.py):

``grow-journal``  its journal ``.NAME.grow`` is written, the array not touched yet
``grow-extend``   (memmap) the file cut at the old data's end and extended to its new size
``grow-data``     after a block of the appended data was written (not yet visible)
``grow-chunk``    (zarr resize) after a chunk of the new region was written
``grow-tail``     (memmap) the new checksum table and shard index are written (growing:
                  before the header; shrinking: after it)
``grow-header``   (memmap) the .npy header holds the new shape: the commit
``grow-field``    (zarr, structured) after a field's zarr.json got the new shape
``grow-meta``     the array's zarr.json holds the new shape and history entry (zarr: the
                  commit); the journal not yet removed
``grow-drop``     (zarr shrink) after a chunk file beyond the new edge was deleted
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "ARRAYSTORE_TEST_KILL_AT"


def _parse(spec: str | None) -> tuple[str, int] | None:
    if not spec:
        return None
    phase, _, count = spec.partition(":")
    return phase, int(count) if count else 1


_TARGET = _parse(os.environ.get(ENV))
_lock = threading.Lock()
_seen = [0]


def kill_point(phase: str) -> None:
    """SIGKILL this process if ``ARRAYSTORE_TEST_KILL_AT`` names this point (see above)."""
    if _TARGET is None or _TARGET[0] != phase:
        return
    with _lock:
        _seen[0] += 1
        if _seen[0] < _TARGET[1]:
            return
    os.kill(os.getpid(), signal.SIGKILL)
