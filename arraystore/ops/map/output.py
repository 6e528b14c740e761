"""Output side of :mod:`.mapping` and :mod:`.map_where`: the hidden work folder, its
journal of finished blocks (resume), building the new array and committing it with one
rename."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arraystore._native import buffers as _buffers
from arraystore.backends import get_backend
from arraystore.core.meta import SIDECAR, ArrayMeta
from arraystore.engine import Plan, Task, run
from arraystore.engine.memory import max_in_flight
from arraystore.errors import ArrayExists, InvalidArgument
from arraystore.fs import remove_tree, write_json
from arraystore.ops.journal import read_journal as _read_journal
from arraystore.ops.journal import write_header as _write_header
from arraystore.ops.map.inputs import Source
from arraystore.storage.killpoints import kill_point

if TYPE_CHECKING:
    from arraystore.array import Array
    from arraystore.store import Store

JOURNAL = "map-journal.jsonl"


def _mark_done(journal: Path | None, index: int) -> None:
    if journal is not None:  # one short append per block, after its data is written
        with open(journal, "a") as fh:
            fh.write(json.dumps({"chunk": index, "reports": {}}) + "\n")
    kill_point("chunk")


def _resumable(work: Path) -> bool:
    """A work folder of an interrupted map that can be resumed: its journal (renamed away
    before the commit: after it, ``data`` may hold the replaced array) and a complete new
    array in ``data`` (both backends write its ``zarr.json`` last at creation)."""
    return (work / JOURNAL).is_file() and (work / "data" / "zarr.json").is_file()


def _interrupted(store: Store, out: str) -> Path | None:
    found = [p for p in store.path.glob(f".{out}.tmp-*") if _resumable(p)]
    if not found:
        return None
    return max(found, key=lambda p: p.stat().st_mtime if isinstance(p, Path) else 0.0)


def _start(
    store: Store, out: str, overwrite: bool, resume: bool, job_fp: dict[str, Any]
) -> tuple[Path | None, dict[str, Any] | None, set[int]]:
    """Called with the lock held: (interrupted folder, its header, finished blocks)."""
    target = store.path / out
    store._clean_stale(out, keep=_resumable)  # what writers that died left
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise ArrayExists(f"array {out!r} already exists in {store.path} (use overwrite)")
    old = _interrupted(store, out)
    if not resume:
        if old is not None:
            raise InvalidArgument(
                f"an interrupted map into {out!r} exists: rerun with --resume (resume=True), "
                "or remove it with 'arraystore verify --repair'"
            )
        return None, None, set()
    if old is None:
        raise InvalidArgument(f"nothing to resume: no interrupted map into {out!r}")
    header, done = _read_journal(old / JOURNAL)
    if header.get("job") != json.loads(json.dumps(job_fp)):
        raise InvalidArgument(
            f"the interrupted map into {out!r} was a different job ({header.get('job')}); "
            "remove it with 'arraystore verify --repair' and start again"
        )
    return old, header, set(done)


def _meta_doc(meta: ArrayMeta) -> dict[str, Any]:
    facts = {"shape": list(meta.shape), "chunks": list(meta.chunks), "codec": meta.codec}
    return {**meta.to_sidecar(), "facts": facts}


def _meta_from(doc: dict[str, Any]) -> ArrayMeta:
    doc = dict(doc)
    return ArrayMeta.from_sidecar(doc, **doc.pop("facts"))


TaskSpec = tuple[int, Callable[..., Any], tuple[Any, ...], int]


def _build(
    store: Store,
    out: str,
    work: Path | None,
    header: dict[str, Any],
    meta: ArrayMeta,
    specs: list[TaskSpec],
    ex: Any,
    budget: int,
    progress: Any,
    name: str,
) -> Array:
    """Write the tasks' blocks into a temp array (new or resumed), then commit it."""
    max_in_flight(budget, max((s[3] for s in specs), default=0), ex.workers)  # before writing
    fresh = work is None
    if work is None:
        work = store._temp_path(out)
        work.mkdir()
        kill_point("mkdir")
    journal = work / JOURNAL
    try:
        if fresh:
            _write_header(journal, header)
            kill_point("header")
            (work / "data").mkdir()
            dst = get_backend(meta.backend).create(work / "data", meta)
            if meta.backend == "memmap":  # keep the store a valid zarr hierarchy
                from arraystore.store import _group_doc

                write_json(
                    work / "data" / "zarr.json", _group_doc({"arraystore_backend": "memmap"})
                )
        else:
            dst = get_backend(meta.backend).open(work / "data", meta.to_sidecar(), "r+")
        try:
            if hasattr(dst, "fd"):
                dst.fd()  # open once here, not racily in the workers
            jr = None if store.remote else journal  # remote: resume redoes every block
            tasks = tuple(Task(k, fn, (dst, *args, jr), nb) for k, fn, args, nb in specs)
            if tasks:
                run(Plan(tasks, name), ex, budget, progress=progress)
            flush = getattr(dst, "flush", None)
            if flush is not None:
                flush()
        finally:
            dst.close()
    except Exception:
        remove_tree(work)
        raise
    finally:
        _buffers.release()
    try:
        write_json(work / "data" / SIDECAR, meta.to_sidecar())  # metadata last
        kill_point("sidecar")
        if isinstance(journal, Path):  # not resumable from here on
            os.replace(journal, work / f"{JOURNAL}.committing")
        else:  # an object store: no rename; the journal just goes
            remove_tree(journal)
        store._commit(work / "data", store.path / out)
    except Exception:  # e.g. no space left for the metadata: leave nothing behind
        remove_tree(work)
        raise
    kill_point("committed")
    remove_tree(work)
    return store[out]


def _out_format(
    sources: Sequence[Source], backend: str | None, codec: str | None
) -> tuple[str, str]:
    stored = [s.handle.meta for s in sources if s.handle is not None]
    backend = backend or (stored[0].backend if stored else "memmap")
    if codec is None:
        same = [m.codec for m in stored if m.backend == backend]
        codec = same[0] if same and backend == "zarr" else "none"
    if backend == "memmap" and codec != "none":
        raise InvalidArgument("the memmap backend stores raw bytes: a codec needs backend='zarr'")
    get_backend(backend)
    return backend, codec


def _history(op: str, **info: Any) -> dict[str, Any]:
    return {"op": op, **info, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
