"""storage.journal: journals of resumable writes (cast and map) -- a header line with the
job's parameters, then one line per finished chunk (``mark_done``); a torn last line from
a crash is ignored (that chunk is redone). Also what ``verify --repair``, a new cast and
the writers of a name do with a crashed cast's folder (``recover``)."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arraystore.errors import ArrayExists, ArrayStoreError, LockedError
from arraystore.fs import remove_tree
from arraystore.storage.killpoints import kill_point
from arraystore.storage.nodes import array_doc

if TYPE_CHECKING:
    from arraystore.storage.root import StoreRoot


#: the journal of a cast's work folder ``.NAME.cast``
CAST_JOURNAL = "journal.jsonl"
#: the journal of a map's work folder ``.OUT.tmp-*``
MAP_JOURNAL = "map-journal.jsonl"


def write_header(path: Path, header: dict[str, Any]) -> None:
    if not isinstance(path, Path):  # remote: the header only, chunks are not journalled
        path.write_bytes((json.dumps({"header": header}) + "\n").encode())
        return
    with open(path, "w") as fh:
        fh.write(json.dumps({"header": header}) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_journal(path: Path) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    header: dict[str, Any] | None = None
    done: dict[int, dict[str, Any]] = {}
    with open(path) if isinstance(path, Path) else io.StringIO(path.read_text()) as fh:
        for line in fh:
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line from a crash: that chunk is redone
            if "header" in doc:
                header = doc["header"]
            elif "chunk" in doc:
                done[int(doc["chunk"])] = doc["reports"]
    if header is None:
        raise ArrayStoreError(f"cast journal {path} has no header; remove it with verify --repair")
    return header, done


def mark_done(journal: Path | None, index: int, reports: dict[str, Any] | None = None) -> None:
    """Journal chunk ``index`` as written (after its data is): one short append; with
    ``journal`` None (an object store, a dry run) nothing is journaled."""
    if journal is not None:
        with open(journal, "a") as fh:
            fh.write(json.dumps({"chunk": index, "reports": reports or {}}) + "\n")
    kill_point("chunk")


def history_len(path: Path) -> int:
    doc = array_doc(path)
    return len(doc.get("history", [])) if isinstance(doc, dict) else -1


def recover(store: StoreRoot, name: str, work: Path) -> bool:
    """Finish or clean a cast work dir left by a crash. True if that cast had completed.

    * no ``data`` inside: the new array was already renamed into place -> clean;
    * ``data`` with its metadata written: the data phase completed; if the swap did not
      happen yet, do it now (the array whose history is longer is the new one);
    * otherwise the cast is partial: leave it for ``--resume``.
    """
    data = work / "data"
    if not (work / CAST_JOURNAL).exists():
        remove_tree(work)  # cannot be resumed: nothing was committed
        return False
    if not data.exists():
        remove_tree(work)
        return True
    if array_doc(data) is None:
        return False
    header, _ = read_journal(work / CAST_JOURNAL)
    out = header.get("out") or name
    with contextlib.ExitStack() as stack:
        try:  # (the caller holds NAME's lock)
            stack.enter_context(store.lock_unless_held(out))
        except LockedError as exc:  # a live writer of OUT: committing now would race it
            raise LockedError(
                f"the interrupted cast of {name!r} to {out!r} cannot be committed now: "
                f"{exc}; retry when that writer is done"
            ) from None
        target = store.path / out
        if out != name:  # OUT replaced by a writer killed in a two-rename commit: put back
            store.roll_back(out)
        there = target.exists() or target.is_symlink()
        if not there or (out == name and history_len(data) > history_len(target)):
            store.commit(data, target)
    remove_tree(work)
    return True


def check_resume_out(store: StoreRoot, name: str, out: str | None) -> None:
    """Resuming ``cast NAME --out OUT``: OUT did not exist when the cast started (a new
    cast refuses an existing --out); if it exists now, another writer made it after the
    crash (``mv y OUT``, ``create OUT``): finishing would replace it, so refuse. (We hold
    OUT's lock: an interrupted replacement of it is put back first.)"""
    if out is None or out == name:
        return
    store.roll_back(out)
    if out in store:
        raise ArrayExists(
            f"array {out!r} was made after the interrupted cast of {name!r} to it; "
            f"finishing the cast would replace it: rename or remove {out!r} first, or drop "
            "the cast with 'arraystore verify --repair'"
        )
