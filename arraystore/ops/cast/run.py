"""Running a resolved cast: the new array, the chunk tasks, the commit.

:func:`prepare_work` begins the new array in the cast's work folder through
:class:`~arraystore.storage.transaction.NewArray` (with the journal header) or reopens it
on resume; :func:`run_chunks` casts every chunk not yet journaled (:func:`cast_task`:
read, check, cast, write, journal); :func:`commit` merges the audits, removes the new
array on a policy violation, or commits it with the audit in its history.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from arraystore._native import buffers as _buffers
from arraystore.backends.base import Handle
from arraystore.core.casting import CastReport
from arraystore.core.chunks import Region, region_shape
from arraystore.core.dtypes import dtype_to_spec, fields_of
from arraystore.core.meta import ArrayMeta
from arraystore.engine import Executor, Plan, Task, run
from arraystore.errors import CastError
from arraystore.ops.cast.resolve import (
    TASK_OVERHEAD,
    CastJob,
    CastResult,
    CastSpec,
    CastWork,
    merge_dicts,
    out_dtype,
)
from arraystore.ops.reduce.stats import _sub_regions
from arraystore.storage.journal import CAST_JOURNAL as JOURNAL
from arraystore.storage.journal import mark_done
from arraystore.storage.transaction import NewArray


# ------------------------------------------------------------------- tasks
def cast_task(
    src: Handle,
    dst: Handle | None,
    region: Region,
    spec: CastSpec,
    journal: Path | None,
    index: int,
) -> dict[str | None, CastReport]:
    """Read one region, cast the fields that change, write the region (unless dry run)."""
    shape = region_shape(region)
    meta = src.meta
    reports: dict[str | None, CastReport] = {}
    if meta.dtype.names is None:
        dt = spec.targets[None]
        # a memmap source and output are read, cast and written in cache-sized pieces; an
        # output that stores chunks (zarr; a cast on write from a .npy) gets whole regions
        pieces = _sub_regions(src, region) if dst is None or dst.contiguous_rows else [region]
        for sub in pieces:
            sshape = region_shape(sub)
            block = src.read(sub, None, _buffers.buffer(sshape, meta.dtype))
            out, rep = spec.apply(
                block, dt, _buffers.buffer(sshape, dt, 1), region=sub, shape=meta.shape
            )
            reports[None] = rep if None not in reports else reports[None].merge(rep)
            if dst is not None:
                dst.write(sub, out)
    elif not src.columnar:  # interleaved records: one read, one write
        block = src.read(region, None, _buffers.buffer(shape, meta.dtype))
        out = _buffers.buffer(shape, dst.meta.dtype if dst else out_dtype(meta.dtype, spec), 1)
        for f in fields_of(meta.dtype):
            if f.name in spec.targets:
                _, reports[f.name] = spec.apply(
                    block[f.name],
                    spec.targets[f.name],
                    out[f.name],
                    region=region,
                    shape=meta.shape,
                )
            else:
                out[f.name] = block[f.name]
        if dst is not None:
            dst.write(region, out)
    else:  # columnar: each field on its own; unchanged fields are copied
        for slot, f in enumerate(fields_of(meta.dtype)):
            fshape = shape + f.subshape
            if f.name not in spec.targets and dst is None:
                continue
            block = src.read(region, f.name, _buffers.buffer(fshape, f.dtype, 2 * slot))
            if f.name in spec.targets:
                dt = spec.targets[f.name]
                out, reports[f.name] = spec.apply(
                    block,
                    dt,
                    _buffers.buffer(fshape, dt, 2 * slot + 1),
                    region=region,
                    shape=meta.shape,
                )
            else:
                out = block
            if dst is not None:
                dst.write(region, out, f.name)
    if journal is not None and all(r.ok for r in reports.values()):
        mark_done(journal, index, {str(k): r.to_dict() for k, r in reports.items()})
    return reports


def _merge_done(done: dict[int, dict[str, Any]]) -> dict[str | None, CastReport] | None:
    """The audits of the journaled chunks of an interrupted cast, merged."""
    acc: dict[str | None, CastReport] | None = None
    for i in sorted(done):
        reps = {(None if k == "None" else k): CastReport.from_dict(v) for k, v in done[i].items()}
        acc = reps if acc is None else {k: acc[k].merge(reps[k]) for k in acc}
    return acc


def _noop() -> None:
    return None


def validate(src_fields: dict[str | None, np.dtype], spec: CastSpec) -> None:
    """Catch bad options (nan_to, fill, errors...) before anything is written."""
    for k, dt in spec.targets.items():
        spec.apply(np.empty(0, src_fields[k]), dt)


# ------------------------------------------------------------------- steps
def prepare_work(job: CastJob, work: CastWork, ex: Executor) -> NewArray | None:
    """The new array in the cast's work folder: begun, with the journal header, or
    reopened on resume; None on a dry run."""
    if job.dry_run:
        return None
    out_name = job.out or job.name
    if job.resume:
        new = NewArray.resume(job.store.layout, out_name, work.out_meta, job.work, JOURNAL)
        work.result.resumed_chunks = len(job.done)
        return new
    validate(work.src_fields, work.spec)
    Plan(tuple(Task(0, _noop, (), 3 * work.per_region + TASK_OVERHEAD) for _ in [0]), "cast").check(
        job.budget, ex.workers
    )
    to = job.to
    header = dict(
        to=to if not isinstance(to, Mapping) else dict(to),
        out=job.out,
        casting=job.casting,
        rtol=job.rtol,
        nan_to=job.nan_to,
        errors=job.errors,
        fill=job.fill,
        allow_half=job.allow_half,
        allow_float_to_int=job.allow_float_to_int,
        chunks=list(work.chunks),
        targets={str(k): dtype_to_spec(v) for k, v in work.spec.targets.items()},
        checksum=work.out_meta.checksum,
        shards=None if work.out_meta.shards is None else list(work.out_meta.shards),
    )
    return NewArray.begin(
        job.store.layout, out_name, work.out_meta, journal=JOURNAL, header=header, work=job.work
    )


def run_chunks(
    job: CastJob,
    work: CastWork,
    new: NewArray | None,
    ex: Executor,
    progress: Callable[[Any, Any], None] | None,
) -> dict[str | None, CastReport] | None:
    """Cast every chunk not journaled yet; the merged audits, with those of the journal."""
    done_reports = _merge_done(job.done)
    dst = new.handle if new is not None else None
    journal = new.chunk_journal if new is not None else None
    tasks = tuple(
        Task(
            i,
            cast_task,
            (job.src, dst, r, work.spec, journal, i),
            3 * work.per_region + TASK_OVERHEAD,
        )
        for i, r in enumerate(work.regions)
        if i not in job.done
    )
    try:
        return (
            run(
                Plan(tasks, "cast"),
                ex,
                job.budget,
                merge=merge_dicts,
                init=done_reports,
                progress=progress,
            )
            if tasks
            else done_reports
        )
    except BaseException as exc:
        if new is not None:
            # a clean error (a policy violation, a full disk, ...) leaves nothing
            # behind; an interruption (Ctrl-C; a kill never gets here) stays resumable
            new.abort() if isinstance(exc, Exception) else new.close()
        raise


def commit(
    job: CastJob,
    work: CastWork,
    new: NewArray | None,
    merged: dict[str | None, CastReport] | None,
    t0: float,
) -> CastResult:
    """The result with the merged audits; on a policy violation the new array goes and
    :class:`CastError` is raised, otherwise it is committed; ``t0``: when the cast began."""
    result = work.result
    if merged:
        for k, rep in merged.items():
            result.reports[str(k if k is not None else job.name)] = rep
    result.seconds = time.perf_counter() - t0
    if new is None:
        return result
    refuse_violations(result, new)
    # the audit goes into the new array's history; a cast whose metadata was written
    # is committed by ``recover`` after a crash: its journal is not sealed
    meta = final_meta(job.src.meta, work.out_meta, result, job.casting, job.rtol)
    new.commit(meta, seal_journal=False)
    return result


def refuse_violations(result: CastResult, new: NewArray) -> None:
    """On a policy violation in any report, remove the new array and raise
    :class:`CastError` with the totals over every chunk."""
    bad = [r.error_message(k) for k, r in result.reports.items() if not r.ok]
    if bad:
        new.abort()
        raise CastError("; ".join(bad) + " — nothing was written")


def final_meta(
    meta: ArrayMeta,
    out_meta: ArrayMeta,
    result: CastResult,
    casting: str,
    rtol: float,
    **extra: Any,
) -> ArrayMeta:
    """The cast array's metadata: the audit appended to the source's history (``extra``:
    more keys of the history entry, e.g. the source file of a cast on write)."""
    entry = history_entry(result, casting, rtol, **extra)
    entry["from"], entry["to"] = dtype_to_spec(meta.dtype), dtype_to_spec(out_meta.dtype)
    entry["bytes_before"], entry["bytes_after"] = meta.nbytes, out_meta.nbytes
    return out_meta.evolve(history=(*meta.history, entry))


def history_entry(result: CastResult, casting: str, rtol: float, **extra: Any) -> dict[str, Any]:
    """The history entry of a cast (``op: cast``): the dtypes of the fields cast, the
    policy, the time, one audit line per field and the bytes before/after; ``extra``: more
    keys."""
    fields = result.to_dict()["fields"]
    return {
        "op": "cast",
        "from": ",".join(f"{k}:{v['from']}" for k, v in fields.items()),
        "to": ",".join(f"{k}:{v['to']}" for k, v in fields.items()),
        "casting": casting,
        "rtol": rtol,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "audit": {k: v["to"] + ": " + result.reports[k].summary() for k, v in fields.items()},
        "bytes_before": result.nbytes_before,
        "bytes_after": result.nbytes_after,
        **extra,
    }
