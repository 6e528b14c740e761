"""Output side of :mod:`.mapping` and :mod:`.map_where`: the hidden work folder, its
journal of finished blocks (resume), building the new array and committing it with one
rename."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arraystore._native import buffers as _buffers
from arraystore.backends import get_backend
from arraystore.backends.zarr.foreign import output_codec
from arraystore.core.meta import ArrayMeta
from arraystore.engine import Plan, Task, run
from arraystore.engine.memory import max_in_flight
from arraystore.errors import ArrayExists, InvalidArgument
from arraystore.ops.map.inputs import Source
from arraystore.storage.journal import MAP_JOURNAL as JOURNAL
from arraystore.storage.journal import read_journal as _read_journal
from arraystore.storage.transaction import NewArray

if TYPE_CHECKING:
    from arraystore.storage import ArrayView, StoreRoot


def _resumable(work: Path) -> bool:
    """A work folder of an interrupted map that can be resumed: its journal (renamed away
    before the commit: after it, ``data`` may hold the replaced array) and a complete new
    array in ``data`` (both backends write its ``zarr.json`` last at creation)."""
    return (work / JOURNAL).is_file() and (work / "data" / "zarr.json").is_file()


def _interrupted(store: StoreRoot, out: str) -> Path | None:
    found = [p for p in store.layout.builds(out) if _resumable(p)]
    if not found:
        return None
    return max(found, key=lambda p: p.stat().st_mtime if isinstance(p, Path) else 0.0)


def _start(
    store: StoreRoot, out: str, overwrite: bool, resume: bool, job_fp: dict[str, Any]
) -> tuple[Path | None, dict[str, Any] | None, set[int]]:
    """Called with the lock held: (interrupted folder, its header, finished blocks)."""
    target = store.path / out
    store.clean_stale(out, keep=_resumable)  # what writers that died left
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
    if meta.shards is not None:
        facts["shards"] = list(meta.shards)
    if meta.dims is not None:  # (a resumed run names the dimensions as the first did)
        facts["dims"] = list(meta.dims)
    return {**meta.to_doc(), "facts": facts}


def _meta_from(doc: dict[str, Any]) -> ArrayMeta:
    doc = dict(doc)
    facts = dict(doc.pop("facts"))
    for key in ("shards", "dims"):
        if facts.get(key) is not None:
            facts[key] = tuple(facts[key])
    return ArrayMeta.from_doc(doc, **facts)


TaskSpec = tuple[int, Callable[..., Any], tuple[Any, ...], int]


def _build(
    store: StoreRoot,
    out: str,
    work: Path | None,
    header: dict[str, Any],
    meta: ArrayMeta,
    specs: list[TaskSpec],
    ex: Any,
    budget: int,
    progress: Any,
    name: str,
) -> ArrayView:
    """Write the tasks' blocks into a temp array (new or resumed), then commit it."""
    max_in_flight(budget, max((s[3] for s in specs), default=0), ex.workers)  # before writing
    if work is None:
        new = NewArray.begin(store.layout, out, meta, journal=JOURNAL, header=header)
    else:
        new = NewArray.resume(store.layout, out, meta, work, JOURNAL)
    try:
        with new:
            dst = new.handle
            dst.prepare()  # open once here, not racily in the workers
            jr = new.chunk_journal
            tasks = tuple(Task(k, fn, (dst, *args, jr), nb) for k, fn, args, nb in specs)
            if tasks:
                run(Plan(tasks, name), ex, budget, progress=progress)
    finally:
        _buffers.release()
    return store[out]


def _out_format(
    sources: Sequence[Source], backend: str | None, codec: str | None
) -> tuple[str, str]:
    stored = [s.handle.meta for s in sources if s.handle is not None]
    backend = backend or (stored[0].backend if stored else "memmap")
    if codec is None:
        same = [output_codec(m) for m in stored if m.backend == backend]  # (foreign: ours)
        codec = same[0] if same and backend == "zarr" else "none"
    if backend == "memmap" and codec != "none":
        raise InvalidArgument("the memmap backend stores raw bytes: a codec needs backend='zarr'")
    get_backend(backend)
    return backend, codec


def _history(op: str, **info: Any) -> dict[str, Any]:
    return {"op": op, **info, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
