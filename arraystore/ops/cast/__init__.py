"""Chunk-wise cast on write: value-aware policies, audit report, auto dtypes, resume.

Read chunk -> check -> cast -> write into a *new* array built in a hidden folder of the
store (``.NAME.cast``). The source is never modified: when every chunk is written and
no policy violation was found, the new array gets its metadata (with the audit in its
history) and is swapped in atomically (in place) or renamed to ``out``. A violation
removes the new array and raises :class:`CastError` with totals over the whole array;
the store is then byte-for-byte what it was.

A journal (``.NAME.cast/journal.jsonl``: the parameters, then one line per finished
chunk with its audit) makes a crashed cast resumable: ``resume=True`` reopens the
partial array, skips the chunks already written and merges their audits.

:mod:`.resolve` decides what the cast does (arguments, resume journal, target dtypes,
the ``auto`` pass); :mod:`.run` builds the new array, runs the chunk tasks and commits.
:mod:`.into` runs the same per-region cast and auto pass on any source :class:`Handle`
into a new array being built (cast on write: ``create --from FILE --dtype``, ``import``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from arraystore._native import buffers as _buffers
from arraystore.engine import get_executor
from arraystore.errors import ArrayStoreError
from arraystore.ops.cast.into import CastOnWrite, plan_cast, write_cast
from arraystore.ops.cast.resolve import CastResult, out_dtype, resolve_job, resolve_targets
from arraystore.ops.cast.run import commit, history_entry, prepare_work, run_chunks
from arraystore.storage.journal import CAST_JOURNAL as JOURNAL
from arraystore.storage.journal import read_journal as _read_journal

if TYPE_CHECKING:
    from arraystore.storage import StoreRoot

__all__ = [
    "CastOnWrite",
    "CastResult",
    "cast",
    "history_entry",
    "out_dtype",
    "plan_cast",
    "write_cast",
]


def cast(store: StoreRoot, name: str, to: Any, **kwargs: Any) -> CastResult:
    """Cast array ``name`` chunk by chunk, holding its writer lock (see the module doc).

    Keyword arguments: ``out``, ``casting`` (value, clip, safe, same_kind, unsafe), ``rtol``,
    ``nan_to``, ``errors``, ``fill``, ``allow_half``, ``allow_float_to_int``, ``dry_run``,
    ``resume``, ``memory``, ``executor``, ``workers``, ``progress``, ``checksum`` (store
    checksums in the output; default None: as the source does), ``shards`` (zarr: the
    output's shard shape; default None: as the source's).
    """
    if kwargs.get("dry_run"):
        return _cast(store, name, to, **kwargs)
    out = kwargs.get("out")
    with contextlib.ExitStack() as stack:
        stack.enter_context(store.lock(name))
        journal = store.layout.cast_work(name) / JOURNAL
        if kwargs.get("resume") and out is None and journal.exists():
            with contextlib.suppress(ArrayStoreError, OSError):
                out = _read_journal(journal)[0].get("out")
        if out is not None and out != name:
            stack.enter_context(store.lock(out))
        return _cast(store, name, to, **kwargs)


def _cast(
    store: StoreRoot,
    name: str,
    to: Any,
    *,
    out: str | None = None,
    casting: str = "value",
    rtol: float = 0.0,
    nan_to: Any = None,
    errors: str = "raise",
    fill: Any = None,
    allow_half: bool = False,
    allow_float_to_int: bool = False,
    dry_run: bool = False,
    resume: bool = False,
    memory: Any = None,
    executor: Any = None,
    workers: int | None = None,
    progress: Callable[[Any, Any], None] | None = None,
    checksum: bool | None = None,
    shards: Any = None,
) -> CastResult:
    """Cast array ``name`` chunk by chunk (see the module docstring)."""
    job = resolve_job(
        store,
        name,
        to,
        out=out,
        casting=casting,
        rtol=rtol,
        nan_to=nan_to,
        errors=errors,
        fill=fill,
        allow_half=allow_half,
        allow_float_to_int=allow_float_to_int,
        dry_run=dry_run,
        resume=resume,
        memory=memory,
        checksum=checksum,
        shards=shards,
    )
    t0 = time.perf_counter()
    with get_executor(executor, workers=workers) as ex:
        work = resolve_targets(job, ex)  # with the auto pass
        new = prepare_work(job, work, ex)
        merged = run_chunks(job, work, new, ex, progress)
    _buffers.release()
    return commit(job, work, new, merged, t0)
