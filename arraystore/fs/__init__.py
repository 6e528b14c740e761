"""fs: the file-system layer — local and remote (fsspec) paths, atomic writes, locks.

Everything above it imports from here (``from arraystore.fs import write_json``); the
modules behind it are ``local`` (POSIX: atomic replace, renameat2 exchange, fsync),
``lock`` (the per-array writer lock: flock + PID/start-time identity) and ``remote``
(fsspec URLs, their lock objects and non-atomic commits). Imports only ``core`` and
``errors`` (contract R2 in ``.importlinter``).
"""

from arraystore.fs.local import (
    WRITEBACK_MIN_BYTES,
    can_exchange,
    exchange,
    file_identity,
    fsync_dir,
    move_tree,
    read_json,
    remove_tree,
    rename_noreplace,
    start_writeback,
    tree_state,
    write_atomic,
    write_json,
)
from arraystore.fs.lock import held_here, hold, my_identity, refuse_pending_cast, writer_lock
from arraystore.fs.remote import RemotePath, is_remote, location, remote_lock, split_url

__all__ = [
    "WRITEBACK_MIN_BYTES",
    "RemotePath",
    "can_exchange",
    "exchange",
    "file_identity",
    "fsync_dir",
    "held_here",
    "hold",
    "is_remote",
    "location",
    "move_tree",
    "my_identity",
    "read_json",
    "refuse_pending_cast",
    "remote_lock",
    "remove_tree",
    "rename_noreplace",
    "split_url",
    "start_writeback",
    "tree_state",
    "write_atomic",
    "write_json",
    "writer_lock",
]
