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
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from arraystore._native import buffers as _buffers
from arraystore.backends.base import Handle
from arraystore.core.casting import (
    CastReport,
    ValueSummary,
    cast_block,
    check_type_rule,
    smallest_dtype,
)
from arraystore.core.casting.rules import check_cast_args, parse_targets, plain_target
from arraystore.core.casting.rules import target_dtype as _target_dtype
from arraystore.core.chunks import Region, auto_chunks, iter_chunk_regions, region_shape
from arraystore.core.dtypes import (
    dtype_to_spec,
    fields_of,
    scalar_str,
)
from arraystore.core.meta import ArrayMeta
from arraystore.engine import Plan, Task, get_executor, run
from arraystore.errors import ArrayExists, ArrayStoreError, CastError, InvalidArgument
from arraystore.fs import remove_tree
from arraystore.ops.reduce.stats import _budget, _sub_regions
from arraystore.storage.journal import CAST_JOURNAL as JOURNAL
from arraystore.storage.journal import check_resume_out, mark_done
from arraystore.storage.journal import read_journal as _read_journal
from arraystore.storage.journal import recover as _recover
from arraystore.storage.transaction import NewArray

if TYPE_CHECKING:
    from arraystore.storage import StoreRoot

#: per-task memory beyond the source and output blocks (audit scalars, numba scratch)
TASK_OVERHEAD = 2**20


@dataclass
class CastResult:
    """The audit of a cast: per-field reports, bytes before/after, time."""

    name: str
    out: str
    plan: dict[str, tuple[str, str]]  # field -> (source dtype, target dtype)
    reports: dict[str, CastReport]
    nbytes_before: int
    nbytes_after: int
    seconds: float = 0.0
    dry_run: bool = False
    resumed_chunks: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.nbytes_before / self.nbytes_after if self.nbytes_after else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {
            "array": self.name,
            "out": self.out,
            "dry_run": self.dry_run,
            "fields": {
                k: {"from": src, "to": dst, "ok": self.reports[k].ok, **self.reports[k].to_dict()}
                for k, (src, dst) in self.plan.items()
            },
            "bytes_before": self.nbytes_before,
            "bytes_after": self.nbytes_after,
            "ratio": self.ratio,
            "seconds": self.seconds,
            "gb_per_s": self.nbytes_before / self.seconds / 1e9 if self.seconds else None,
            "resumed_chunks": self.resumed_chunks,
        }


# ------------------------------------------------------------------- tasks
def _fields_of(handle: Handle) -> list[tuple[str | None, np.dtype, tuple[int, ...]]]:
    dt = handle.meta.dtype
    if dt.names is None:
        return [(None, dt, ())]
    return [(f.name, f.dtype, f.subshape) for f in fields_of(dt)]


def _summary_task(
    handle: Handle, region: Region, names: list[str | None], rtol: float, allow_half: bool
) -> dict[str | None, ValueSummary]:
    from arraystore.ops.reduce.stats import _read_fields

    blocks = _read_fields(handle, region, names)
    return {
        n: ValueSummary.from_block(b, rtol=rtol, allow_half=allow_half) for n, b in blocks.items()
    }


def _merge_dicts(a: dict[Any, Any] | None, b: dict[Any, Any]) -> dict[Any, Any]:
    if a is None:
        return b
    return {k: a[k].merge(b[k]) for k in a}


@dataclass(frozen=True)
class _CastSpec:
    targets: dict[str | None, np.dtype]  # fields that change
    policy: str
    rtol: float
    nan_to: Any
    errors: str
    fill: Any

    def apply(
        self, block: np.ndarray, dt: np.dtype, out: np.ndarray | None = None, **where: Any
    ) -> Any:
        """``cast_block`` with this spec's policy; ``where``: ``region``/``shape`` for the
        indices in the report. Returns ``(result, report)``; violations are reported."""
        return cast_block(
            block,
            dt,
            self.policy,
            rtol=self.rtol,
            nan_to=self.nan_to,
            out=out,
            errors=self.errors,
            fill=self.fill,
            raise_on_violation=False,
            **where,
        )


def _cast_task(
    src: Handle,
    dst: Handle | None,
    region: Region,
    spec: _CastSpec,
    journal: Path | None,
    index: int,
) -> dict[str | None, CastReport]:
    """Read one region, cast the fields that change, write the region (unless dry run)."""
    shape = region_shape(region)
    meta = src.meta
    reports: dict[str | None, CastReport] = {}
    if meta.dtype.names is None:
        dt = spec.targets[None]
        # a memmap source (and so output) is read, cast and written in cache-sized pieces
        for sub in _sub_regions(src, region):
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
        out = _buffers.buffer(shape, dst.meta.dtype if dst else _out_dtype(meta.dtype, spec), 1)
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


def _out_dtype(src: np.dtype, spec: _CastSpec) -> np.dtype:
    if src.names is None:
        return spec.targets.get(None, src)
    out = []
    for f in fields_of(src):
        base = spec.targets.get(f.name, f.dtype)
        out.append((f.name, base, f.subshape) if f.subshape else (f.name, base))
    return np.dtype(out)


def _cast_chunks(src: Handle, budget: int, workers: int) -> tuple[int, ...]:
    """Work-unit chunks: zarr storage chunks; memmap row blocks sized from the budget."""
    meta = src.meta
    if meta.backend != "memmap":
        return meta.chunks
    from arraystore.ops.reduce.stats import TASKS_PER_BUDGET

    per_task = max(1, budget // (TASKS_PER_BUDGET * 3) - TASK_OVERHEAD)  # source + output
    target = max(min(2**20, budget // (TASKS_PER_BUDGET * 3)), min(64 * 2**20, per_task))
    return auto_chunks(meta.shape, meta.dtype.itemsize, target)


def _work_dir(store: StoreRoot, name: str) -> Path:
    return store.layout.cast_work(name)


def cast(store: StoreRoot, name: str, to: Any, **kwargs: Any) -> CastResult:
    """Cast array ``name`` chunk by chunk, holding its writer lock (see the module doc).

    Keyword arguments: ``out``, ``casting`` (value, clip, safe, same_kind, unsafe), ``rtol``,
    ``nan_to``, ``errors``, ``fill``, ``allow_half``, ``allow_float_to_int``, ``dry_run``,
    ``resume``, ``memory``, ``executor``, ``workers``, ``progress``, ``checksum`` (store
    checksums in the output; default None: as the source does).
    """
    if kwargs.get("dry_run"):
        return _cast(store, name, to, **kwargs)
    out = kwargs.get("out")
    with contextlib.ExitStack() as stack:
        stack.enter_context(store.lock(name))
        journal = _work_dir(store, name) / JOURNAL
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
) -> CastResult:
    """Cast array ``name`` chunk by chunk (see the module docstring)."""
    check_cast_args(casting, errors, rtol, out)
    if not dry_run:
        store.check_writable()
        for n in {name, out or name}:  # we hold their locks: undo interrupted replacements
            store.roll_back(n)
    if out is not None and out != name and out in store:
        raise ArrayExists(f"array {out!r} already exists in {store.path}; choose another --out")
    budget = _budget(memory)
    to = plain_target(to)
    work = _work_dir(store, name)
    journal_path = work / JOURNAL
    if not dry_run:  # we hold the writer lock: half-built work dirs are from dead writers
        for stale in store.layout.builds(f"{name}.cast"):  # half-built work folders
            remove_tree(stale)
    if not dry_run and work.exists() and _recover(store, name, work) and resume:
        raise InvalidArgument(
            f"nothing to resume: the interrupted cast of {name!r} had already completed"
        )
    src = store.open_handle(name, "r")
    meta = src.meta
    if resume and not dry_run:
        if not journal_path.exists():
            raise InvalidArgument(f"nothing to resume: no interrupted cast of {name!r}")
        header, done = _read_journal(journal_path)
        to, out = header["to"], header["out"]
        check_resume_out(store, name, out)
        casting, rtol, nan_to, errors, fill = (
            header[k] for k in ("casting", "rtol", "nan_to", "errors", "fill")
        )
        allow_half, allow_float_to_int = header["allow_half"], header["allow_float_to_int"]
        checksum = header.get("checksum", checksum)
    elif not dry_run and work.exists():
        raise InvalidArgument(
            f"an interrupted cast of {name!r} exists: rerun with --resume, or remove it with "
            f"'arraystore verify --repair'"
        )
    targets_spec = parse_targets(meta.dtype, to)
    t0 = time.perf_counter()
    with get_executor(executor, workers=workers) as ex:
        if ex.name != "dask" and any(dt == np.float64 for _, dt, _ in _fields_of(src)):
            from arraystore.core.casting import fast as casting_fast

            casting_fast.prewarm()  # load the f8 -> f4 kernel while the first blocks are read
        chunks = (
            tuple(header["chunks"])
            if resume and not dry_run
            else _cast_chunks(src, budget, ex.workers)
        )
        regions = list(iter_chunk_regions(meta.shape, chunks))
        per_region = math.prod(chunks) * meta.dtype.itemsize
        # auto targets: a first pass gathers value summaries
        autos = [k for k, v in targets_spec.items() if v == "auto"]
        targets: dict[str | None, np.dtype] = {}
        src_fields = {n: dt for n, dt, _ in _fields_of(src)}
        if autos:
            summ_tasks = tuple(
                Task(
                    i, _summary_task, (src, r, autos, rtol, allow_half), per_region + TASK_OVERHEAD
                )
                for i, r in enumerate(regions)
            )
            summaries = (
                run(Plan(summ_tasks, "cast-auto"), ex, budget, merge=_merge_dicts, init=None)
                if summ_tasks
                else {}
            )
            for k in autos:
                dt = src_fields[k]
                if k in summaries:
                    targets[k] = smallest_dtype(
                        summaries[k],
                        dt,
                        allow_half=allow_half,
                        allow_float_to_int=allow_float_to_int,
                        rtol=rtol,
                    )
                else:
                    targets[k] = dt
        for k, v in targets_spec.items():
            if v != "auto":
                targets[k] = _target_dtype(v)
        for k, dt in targets.items():
            check_type_rule(src_fields[k], dt, casting)
        plan = {
            str(k if k is not None else name): (scalar_str(src_fields[k]), scalar_str(dt))
            for k, dt in targets.items()
        }
        spec = _CastSpec(
            {k: v for k, v in targets.items()}, casting, float(rtol), nan_to, errors, fill
        )
        out_dtype = _out_dtype(meta.dtype, spec)
        out_meta = meta.evolve(
            dtype=out_dtype,
            chunks=meta.chunks if meta.backend == "zarr" else chunks,
            checksum=meta.checksum if checksum is None else bool(checksum),
        )
        result = CastResult(
            name,
            out or name,
            plan,
            {
                k: CastReport.empty(src_fields[_key(k, name)], dt)
                for k, dt in ((str(k if k is not None else name), d) for k, d in targets.items())
            },
            meta.nbytes,
            out_meta.nbytes,
            dry_run=dry_run,
        )
        new: NewArray | None = None
        done_reports: dict[str | None, CastReport] | None = None
        skip: set[int] = set()
        if not dry_run:
            if resume:
                new = NewArray.resume(store.layout, out or name, out_meta, work, JOURNAL)
                skip = set(done)
                done_reports = _merge_done(done)
                result.resumed_chunks = len(skip)
            else:
                _validate(src_fields, spec)
                Plan(
                    tuple(Task(0, _noop, (), 3 * per_region + TASK_OVERHEAD) for _ in [0]), "cast"
                ).check(budget, ex.workers)
                header = dict(
                    to=to if not isinstance(to, Mapping) else dict(to),
                    out=out,
                    casting=casting,
                    rtol=rtol,
                    nan_to=nan_to,
                    errors=errors,
                    fill=fill,
                    allow_half=allow_half,
                    allow_float_to_int=allow_float_to_int,
                    chunks=list(chunks),
                    targets={str(k): dtype_to_spec(v) for k, v in targets.items()},
                    checksum=out_meta.checksum,
                )
                new = NewArray.begin(
                    store.layout, out or name, out_meta, journal=JOURNAL, header=header, work=work
                )
        dst = new.handle if new is not None else None
        journal = new.chunk_journal if new is not None else None
        tasks = tuple(
            Task(
                i,
                _cast_task,
                (src, dst, r, spec, journal, i),
                3 * per_region + TASK_OVERHEAD,
            )
            for i, r in enumerate(regions)
            if i not in skip
        )
        try:
            merged = (
                run(
                    Plan(tasks, "cast"),
                    ex,
                    budget,
                    merge=_merge_dicts,
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
    _buffers.release()
    if merged:
        for k, rep in merged.items():
            result.reports[str(k if k is not None else name)] = rep
    result.seconds = time.perf_counter() - t0
    bad = [r.error_message(k) for k, r in result.reports.items() if not r.ok]
    if bad and new is not None:
        new.abort()
        raise CastError("; ".join(bad) + " — nothing was written")
    if new is None:
        return result
    # the audit goes into the new array's history; a cast whose metadata was written
    # is committed by ``recover`` after a crash: its journal is not sealed
    new.commit(_final_meta(meta, out_meta, result, casting, rtol), seal_journal=False)
    return result


def _final_meta(
    meta: ArrayMeta, out_meta: ArrayMeta, result: CastResult, casting: str, rtol: float
) -> ArrayMeta:
    """The cast array's metadata: the audit appended to the source's history."""
    history = {
        "op": "cast",
        "from": dtype_to_spec(meta.dtype),
        "to": dtype_to_spec(out_meta.dtype),
        "casting": casting,
        "rtol": rtol,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "audit": {
            k: v["to"] + ": " + result.reports[k].summary()
            for k, v in result.to_dict()["fields"].items()
        },
        "bytes_before": meta.nbytes,
        "bytes_after": out_meta.nbytes,
    }
    return out_meta.evolve(history=(*meta.history, history))


def _noop() -> None:
    return None


def _validate(src_fields: dict[str | None, np.dtype], spec: _CastSpec) -> None:
    """Catch bad options (nan_to, fill, errors...) before anything is written."""
    for k, dt in spec.targets.items():
        spec.apply(np.empty(0, src_fields[k]), dt)


def _key(k: str, name: str) -> str | None:
    return None if k == name else k
