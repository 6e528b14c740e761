"""What a cast will do, decided before any chunk is written.

:func:`resolve_job` checks the arguments, undoes what dead writers left behind and, on
``resume``, takes the arguments back from the interrupted cast's journal.
:func:`resolve_targets` picks the work units and the target dtype of every field that
changes (``auto`` ones from a first pass over the values, :func:`auto_pass`), checks
them against the type rule and builds the output's metadata and an empty
:class:`CastResult`. Nothing here writes into the store but the clean-up of leftovers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from arraystore.backends.base import Handle
from arraystore.core.casting import (
    CastReport,
    ValueSummary,
    cast_block,
    check_type_rule,
    smallest_dtype,
)
from arraystore.core.casting import fast as casting_fast
from arraystore.core.casting.rules import check_cast_args, parse_targets, plain_target
from arraystore.core.casting.rules import target_dtype as _target_dtype
from arraystore.core.chunks import Region, iter_chunk_regions, normalize_shards
from arraystore.core.dtypes import fields_of, scalar_str
from arraystore.core.meta import ArrayMeta
from arraystore.engine import Executor, Plan, Task, run
from arraystore.engine.memory import block_target
from arraystore.errors import ArrayExists, InvalidArgument
from arraystore.fs import remove_tree
from arraystore.ops.reduce.stats import TASKS_PER_BUDGET, _budget, _read_fields
from arraystore.storage.journal import CAST_JOURNAL as JOURNAL
from arraystore.storage.journal import check_resume_out
from arraystore.storage.journal import read_journal as _read_journal
from arraystore.storage.journal import recover as _recover

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


@dataclass(frozen=True)
class CastSpec:
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


@dataclass(frozen=True)
class CastRules:
    """How a cast judges values and picks ``auto`` dtypes (``cast``'s value options)."""

    casting: str = "value"
    rtol: float = 0.0
    allow_half: bool = False
    allow_float_to_int: bool = False


@dataclass
class CastJob:
    """A cast's arguments, checked; on resume, as the interrupted cast's journal has them."""

    store: StoreRoot
    name: str
    src: Handle
    to: Any
    out: str | None
    casting: str
    rtol: float
    nan_to: Any
    errors: str
    fill: Any
    allow_half: bool
    allow_float_to_int: bool
    checksum: bool | None
    dry_run: bool
    resume: bool
    budget: int
    work: Path  # the hidden work folder ``.NAME.cast``
    header: dict[str, Any] | None = None  # the journal header of the cast being resumed
    done: dict[int, dict[str, Any]] = field(default_factory=dict)  # its journaled chunks
    targets_spec: dict[str | None, Any] = field(default_factory=dict)  # field -> target
    shards: Any = None  # the output's shards (None: the source's)

    @property
    def rules(self) -> CastRules:
        return CastRules(self.casting, float(self.rtol), self.allow_half, self.allow_float_to_int)


@dataclass
class CastWork:
    """What the cast does: its work units, target dtypes and the output's metadata."""

    chunks: tuple[int, ...]
    regions: list[Region]
    per_region: int  # bytes of one source region
    src_fields: dict[str | None, np.dtype]
    spec: CastSpec
    out_meta: ArrayMeta
    result: CastResult


# ------------------------------------------------------------------- helpers
def _fields_of(handle: Handle) -> list[tuple[str | None, np.dtype, tuple[int, ...]]]:
    dt = handle.meta.dtype
    if dt.names is None:
        return [(None, dt, ())]
    return [(f.name, f.dtype, f.subshape) for f in fields_of(dt)]


def _summary_task(
    handle: Handle, region: Region, names: list[str | None], rtol: float, allow_half: bool
) -> dict[str | None, ValueSummary]:
    blocks = _read_fields(handle, region, names)
    return {
        n: ValueSummary.from_block(b, rtol=rtol, allow_half=allow_half) for n, b in blocks.items()
    }


def source_fields(handle: Handle) -> dict[str | None, np.dtype]:
    """{field (None: a plain array): base dtype} of ``handle``'s array."""
    return {n: dt for n, dt, _ in _fields_of(handle)}


def merge_dicts(a: dict[Any, Any] | None, b: dict[Any, Any]) -> dict[Any, Any]:
    if a is None:
        return b
    return {k: a[k].merge(b[k]) for k in a}


def out_dtype(src: np.dtype, spec: CastSpec) -> np.dtype:
    if src.names is None:
        return spec.targets.get(None, src)
    out = []
    for f in fields_of(src):
        base = spec.targets.get(f.name, f.dtype)
        out.append((f.name, base, f.subshape) if f.subshape else (f.name, base))
    return np.dtype(out)


def cast_chunks(src: Handle, budget: int, workers: int) -> tuple[int, ...]:
    """Work-unit chunks (:meth:`Handle.work_chunks`): zarr storage chunks; memmap row
    blocks sized from the budget."""
    target = block_target(
        budget,
        TASKS_PER_BUDGET,  # as stats: the tiling does not depend on the executor
        read_ahead=1,
        inputs=1,  # a task holds 3 source blocks' bytes (see its Task.nbytes)
        output=1,
        temps=1,
        per="input",
        overhead=3 * TASK_OVERHEAD,  # as before: TASK_OVERHEAD off each third of the share
        cap=64 * 2**20,
        floor=2**20,
        floor_within_share=True,
    )
    return src.work_chunks(target)


def _out_shards(job: CastJob) -> tuple[int, ...] | None:
    """The output's shards: ``job.shards`` checked against the (zarr) source's chunks,
    else the source's."""
    meta = job.src.meta
    if job.shards is None:
        return meta.shards
    if meta.backend != "zarr":
        raise InvalidArgument("the memmap backend has no shards: --shards needs a zarr array")
    return normalize_shards(job.shards, meta.shape, meta.chunks)


# ------------------------------------------------------------------- the job
def resolve_job(
    store: StoreRoot,
    name: str,
    to: Any,
    *,
    out: str | None,
    casting: str,
    rtol: float,
    nan_to: Any,
    errors: str,
    fill: Any,
    allow_half: bool,
    allow_float_to_int: bool,
    dry_run: bool,
    resume: bool,
    memory: Any,
    checksum: bool | None,
    shards: Any = None,
) -> CastJob:
    """Check the arguments, clean up after dead writers, open the source; on ``resume``
    take the arguments from the journal of the interrupted cast."""
    check_cast_args(casting, errors, rtol, out)
    if not dry_run:
        store.check_writable()
        for n in {name, out or name}:  # we hold their locks: undo interrupted replacements
            store.roll_back(n)
    if out is not None and out != name and out in store:
        raise ArrayExists(f"array {out!r} already exists in {store.path}; choose another --out")
    budget = _budget(memory)
    to = plain_target(to)
    work = _clean_work(store, name, dry_run, resume)
    src = store.open_handle(name, "r")
    job = CastJob(
        store=store,
        name=name,
        src=src,
        to=to,
        out=out,
        casting=casting,
        rtol=rtol,
        nan_to=nan_to,
        errors=errors,
        fill=fill,
        allow_half=allow_half,
        allow_float_to_int=allow_float_to_int,
        checksum=checksum,
        dry_run=dry_run,
        resume=resume,
        budget=budget,
        work=work,
        shards=shards,
    )
    if resume and not dry_run:
        _resume_args(job)
    elif not dry_run and work.exists():
        raise InvalidArgument(
            f"an interrupted cast of {name!r} exists: rerun with --resume, or remove it with "
            f"'arraystore verify --repair'"
        )
    job.targets_spec = parse_targets(src.meta.dtype, job.to)
    return job


def _clean_work(store: StoreRoot, name: str, dry_run: bool, resume: bool) -> Path:
    """The cast's work folder, after removing half-built ones and finishing (or removing)
    one a crashed cast left."""
    work = store.layout.cast_work(name)
    if not dry_run:  # we hold the writer lock: half-built work dirs are from dead writers
        for stale in store.layout.builds(f"{name}.cast"):  # half-built work folders
            remove_tree(stale)
    if not dry_run and work.exists() and _recover(store, name, work) and resume:
        raise InvalidArgument(
            f"nothing to resume: the interrupted cast of {name!r} had already completed"
        )
    return work


def _resume_args(job: CastJob) -> None:
    """Take the arguments of the interrupted cast from its journal, with its chunks done."""
    journal_path = job.work / JOURNAL
    if not journal_path.exists():
        raise InvalidArgument(f"nothing to resume: no interrupted cast of {job.name!r}")
    header, job.done = _read_journal(journal_path)
    job.header = header
    job.to, job.out = header["to"], header["out"]
    check_resume_out(job.store, job.name, job.out)
    job.casting, job.rtol, job.nan_to, job.errors, job.fill = (
        header[k] for k in ("casting", "rtol", "nan_to", "errors", "fill")
    )
    job.allow_half, job.allow_float_to_int = header["allow_half"], header["allow_float_to_int"]
    job.checksum = header.get("checksum", job.checksum)
    job.shards = header.get("shards", job.shards)


# ------------------------------------------------------------------- the targets
def resolve_targets(job: CastJob, ex: Executor) -> CastWork:
    """The work units, the target dtype of every field that changes (checked against
    the type rule), the output's metadata and an empty result."""
    src, meta = job.src, job.src.meta
    if ex.in_process and any(dt == np.float64 for _, dt, _ in _fields_of(src)):
        casting_fast.prewarm()  # load the f8 -> f4 kernel while the first blocks are read
    shards = _out_shards(job)
    chunks = (
        tuple(job.header["chunks"])
        if job.header is not None
        else shards or cast_chunks(src, job.budget, ex.workers)  # whole output shards
    )
    regions = list(iter_chunk_regions(meta.shape, chunks))
    per_region = math.prod(chunks) * meta.dtype.itemsize
    src_fields = source_fields(src)
    targets = target_dtypes(src, job.targets_spec, job.rules, ex, regions, per_region, job.budget)
    spec = CastSpec(
        {k: v for k, v in targets.items()},
        job.casting,
        float(job.rtol),
        job.nan_to,
        job.errors,
        job.fill,
    )
    out_meta = meta.evolve(
        dtype=out_dtype(meta.dtype, spec),
        chunks=meta.chunks if meta.backend == "zarr" else chunks,
        checksum=meta.checksum if job.checksum is None else bool(job.checksum),
        shards=shards,
    )
    result = _empty_result(job, targets, src_fields, out_meta)
    return CastWork(chunks, regions, per_region, src_fields, spec, out_meta, result)


def target_dtypes(
    src: Handle,
    targets_spec: dict[str | None, Any],
    rules: CastRules,
    ex: Executor,
    regions: list[Region],
    per_region: int,
    budget: int,
) -> dict[str | None, np.dtype]:
    """The target dtype of every field of ``src`` that changes: ``auto`` ones from a first
    pass over ``regions`` (:func:`auto_pass`), the others as given; checked against the
    type rule of ``rules.casting``."""
    src_fields = source_fields(src)
    autos = [k for k, v in targets_spec.items() if v == "auto"]
    targets = auto_pass(src, autos, rules, ex, regions, per_region, budget)
    for k, v in targets_spec.items():
        if v != "auto":
            targets[k] = _target_dtype(v)
    for k, dt in targets.items():
        check_type_rule(src_fields[k], dt, rules.casting)
    return {k: targets[k] for k in src_fields if k in targets}  # in field order


def auto_pass(
    src: Handle,
    autos: list[str | None],
    rules: CastRules,
    ex: Executor,
    regions: list[Region],
    per_region: int,
    budget: int,
) -> dict[str | None, np.dtype]:
    """The ``auto`` targets: a first pass over ``src`` gathers value summaries, then each
    field of ``autos`` gets the smallest dtype that holds its values."""
    targets: dict[str | None, np.dtype] = {}
    if not autos:
        return targets
    summ_tasks = tuple(
        Task(
            i,
            _summary_task,
            (src, r, autos, rules.rtol, rules.allow_half),
            per_region + TASK_OVERHEAD,
        )
        for i, r in enumerate(regions)
    )
    summaries = (
        run(Plan(summ_tasks, "cast-auto"), ex, budget, merge=merge_dicts, init=None)
        if summ_tasks
        else {}
    )
    src_fields = source_fields(src)
    for k in autos:
        dt = src_fields[k]
        if k in summaries:
            targets[k] = smallest_dtype(
                summaries[k],
                dt,
                allow_half=rules.allow_half,
                allow_float_to_int=rules.allow_float_to_int,
                rtol=rules.rtol,
            )
        else:
            targets[k] = dt
    return targets


def _empty_result(
    job: CastJob,
    targets: dict[str | None, np.dtype],
    src_fields: dict[str | None, np.dtype],
    out_meta: ArrayMeta,
) -> CastResult:
    """The result before any chunk is cast: the plan and empty reports."""
    return empty_result(
        job.name,
        job.out or job.name,
        targets,
        src_fields,
        (job.src.meta.nbytes, out_meta.nbytes),
        dry_run=job.dry_run,
    )


def empty_result(
    name: str,
    out: str,
    targets: dict[str | None, np.dtype],
    src_fields: dict[str | None, np.dtype],
    nbytes: tuple[int, int],
    *,
    dry_run: bool = False,
    label: str | None = None,
) -> CastResult:
    """A cast's result before any chunk is cast: the plan and empty reports of casting
    ``name`` into ``out``; ``nbytes``: (before, after); ``label``: a plain array's name in
    the reports (default ``name``)."""
    label = name if label is None else label
    plan = {
        str(k if k is not None else label): (scalar_str(src_fields[k]), scalar_str(dt))
        for k, dt in targets.items()
    }
    reports = {
        str(k if k is not None else label): CastReport.empty(src_fields[k], dt)
        for k, dt in targets.items()
    }
    return CastResult(name, out, plan, reports, *nbytes, dry_run=dry_run)
