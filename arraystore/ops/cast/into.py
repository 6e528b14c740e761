"""Cast on write: data entering the store is cast chunk by chunk into the new array.

``create --from FILE --dtype T`` and ``import --dtype`` (a ``.npy`` file) do not copy the
source and then cast it: :func:`plan_cast` settles the target dtypes (``auto`` ones from a
first pass over the source, :func:`.resolve.auto_pass`), the caller begins the new array
(:class:`~arraystore.storage.transaction.NewArray`) with the target dtype, and
:func:`write_cast` reads each block of the source, casts it with ``cast``'s policy and
kernel (:func:`.run.cast_task`) and writes it -- the source's dtype is never written.
The audits are merged as ``cast`` merges them: a violation of the policy removes the new
array (the store is byte-for-byte unchanged) and raises :class:`CastError` with the
totals; otherwise the audit goes into the new array's history (an ``op: cast`` entry, as
``cast`` writes, with the ``source`` file) before the caller commits.

The source is any readable :class:`Handle` (a ``.npy`` file opened by ``open_npy``, an
array of a store): the same per-region cast and auto pass as ``cast`` runs.
:func:`cast_to_store` casts an array of one store into a new array of *another* store
(``cast --out-store``: e.g. a foreign, read-only source), the same way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from arraystore.backends.base import Handle
from arraystore.core.casting import fast as casting_fast
from arraystore.core.casting.rules import check_cast_args, parse_targets, plain_target
from arraystore.core.chunks import Region, iter_chunk_regions, normalize_shards, region_shape
from arraystore.core.dtypes import check_array_name
from arraystore.engine import Executor, Plan, Task, get_executor, run
from arraystore.engine.memory import default_budget, memory_budget
from arraystore.errors import InvalidArgument
from arraystore.ops.cast.resolve import (
    TASK_OVERHEAD,
    CastResult,
    CastRules,
    CastSpec,
    cast_chunks,
    empty_result,
    merge_dicts,
    out_dtype,
    source_fields,
    target_dtypes,
)
from arraystore.ops.cast.run import cast_task, final_meta, refuse_violations, validate
from arraystore.storage.transaction import NewArray

if TYPE_CHECKING:
    from arraystore.storage import ArrayView, StoreRoot

__all__ = ["CastOnWrite", "cast_to_store", "plan_cast", "write_cast"]


@dataclass(frozen=True)
class CastOnWrite:
    """A cast on write: the target (as ``cast --to``: ``"f4"``, ``"price:f4,qty:auto"``,
    ``{"price": "f4"}``, ``"auto"``) and ``cast``'s value options."""

    to: Any
    casting: str = "value"
    rtol: float = 0.0
    nan_to: Any = None
    errors: str = "raise"
    fill: Any = None
    allow_half: bool = False
    allow_float_to_int: bool = False

    @property
    def rules(self) -> CastRules:
        return CastRules(self.casting, float(self.rtol), self.allow_half, self.allow_float_to_int)


def plan_cast(src: Handle, how: CastOnWrite, budget: int, ex: Executor) -> CastSpec:
    """The cast of ``src``'s values: target dtypes checked against the type rule (``auto``
    ones from a pass over ``src``) and the options checked on an empty block, before
    anything is written."""
    check_cast_args(how.casting, how.errors, how.rtol, None)
    meta = src.meta
    if ex.in_process and any(dt == np.float64 for dt in source_fields(src).values()):
        casting_fast.prewarm()  # load the f8 -> f4 kernel while the first blocks are read
    targets_spec = parse_targets(meta.dtype, plain_target(how.to))
    chunks = cast_chunks(src, budget, ex.workers)
    regions = list(iter_chunk_regions(meta.shape, chunks))
    per_region = math.prod(chunks) * meta.dtype.itemsize
    targets = target_dtypes(src, targets_spec, how.rules, ex, regions, per_region, budget)
    spec = CastSpec(targets, how.casting, float(how.rtol), how.nan_to, how.errors, how.fill)
    validate(source_fields(src), spec)
    return spec


def write_cast(
    src: Handle,
    new: NewArray,
    spec: CastSpec,
    budget: int,
    ex: Executor,
    *,
    source: str,
    progress: Callable[[Any, Any], None] | None = None,
) -> CastResult:
    """Cast every chunk of ``src`` into the new array (its dtype: ``out_dtype(src, spec)``,
    its shape ``src``'s) and merge the audits; on a violation abort ``new`` and raise
    :class:`CastError`, else put the audit in ``new.meta``'s history. ``source`` names the
    source in the audit; ``progress(task, nbytes)`` gets the source bytes of each block."""
    t0 = time.perf_counter()
    dst = new.handle
    meta = dst.meta
    # an output taking any row range (memmap) is written in cast's budget-sized work
    # units; a chunked one (zarr) in whole chunks (sharded: whole shards, so no two tasks
    # rewrite the same shard file)
    grid = cast_chunks(src, budget, ex.workers) if dst.contiguous_rows else None
    grid = grid or meta.shards or meta.chunks
    regions = list(iter_chunk_regions(meta.shape, grid))
    src_item, dst_item = src.meta.dtype.itemsize, meta.dtype.itemsize

    def need(r: Region) -> int:  # as cast's tasks: 3 source blocks, or 2 and the cast one
        n = math.prod(region_shape(r))
        return n * max(3 * src_item, 2 * src_item + dst_item) + TASK_OVERHEAD

    tasks = tuple(
        Task(i, cast_task, (src, dst, r, spec, None, i), need(r)) for i, r in enumerate(regions)
    )

    def advance(task: Task, _: Any) -> None:
        if progress is not None:
            progress(task, math.prod(region_shape(task.args[2])) * src_item)

    try:
        merged = run(
            Plan(tasks, "cast"), ex, budget, merge=merge_dicts, init=None, progress=advance
        )
    except BaseException:
        new.abort()
        raise
    src_fields = source_fields(src)
    result = empty_result(
        source,
        new.target,
        spec.targets,
        src_fields,
        (src.meta.nbytes, meta.nbytes),
        label=new.target,
    )
    for k, rep in (merged or {}).items():
        result.reports[str(k if k is not None else new.target)] = rep
    result.seconds = time.perf_counter() - t0
    refuse_violations(result, new)
    new.meta = final_meta(src.meta, new.meta, result, spec.policy, spec.rtol, source=source)
    return result


def cast_to_store(
    src: ArrayView,
    dst: StoreRoot,
    out: str,
    how: CastOnWrite,
    *,
    memory: Any = None,
    executor: Any = None,
    workers: int | None = None,
    progress: Callable[[Any, Any], None] | None = None,
    checksum: bool | None = None,
    shards: Any = None,
) -> CastResult:
    """Cast the stored array ``src`` into the new array ``out`` of another store ``dst``
    (``cast --out-store``): same chunks, shards, dimension names and (when ours) codec as
    ``src`` -- a backend ``dst`` cannot hold (memmap into a URL store) becomes zarr --,
    audited and atomic as :func:`write_cast` makes it; ``src``'s store is only read."""
    check_array_name(out)
    dst.check_writable()
    dst.refuse_existing(out, False)
    meta = src.meta
    backend = dst.default_backend(None) if dst.remote else meta.backend
    if shards is not None:
        if backend != "zarr":
            raise InvalidArgument("the memmap backend has no shards: --shards needs a zarr array")
        shards = normalize_shards(shards, meta.shape, meta.chunks)
    budget = memory_budget(memory) or default_budget()
    label = f"{src.store.path}/{src.name}"
    with get_executor(executor, workers=workers) as ex:
        spec = plan_cast(src.handle, how, budget, ex)
        out_meta = meta.evolve(
            dtype=out_dtype(meta.dtype, spec),
            backend=backend,
            codec=meta.codec if backend == meta.backend else "none",
            checksum=meta.checksum if checksum is None else bool(checksum),
            shards=meta.shards if shards is None else shards,
            history=(),
        )
        with dst.lock(out):
            dst.clean_stale(out)
            dst.refuse_existing(out, False)
            with NewArray.begin(dst.layout, out, out_meta) as new:
                result = write_cast(src.handle, new, spec, budget, ex, source=label,
                                    progress=progress)  # fmt: skip
    result.name, result.out = src.name, out
    return result
