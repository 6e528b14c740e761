"""Chunk-wise map: functions and expressions over one or more arrays, into a new array.

Inputs and reads live in :mod:`.map_inputs`, the work folder, journal and commit in
:mod:`.map_output`, row selection in :mod:`.map_where`.

* :func:`map_blocks` — ``fn(*blocks) -> block`` over aligned regions of its inputs.
* :func:`map_expr` — a safe expression (:mod:`.expr`) over the fields of one array or
  over whole arrays of a store.
* :func:`where` — the rows (axis 0) of an array, or of an expression, where a condition
  holds.
* :func:`reduce_expr` — stats of an expression without storing it.

**Grid.** The output is computed block by block on one grid. When a zarr input has the
output's shape, the grid is its storage chunk grid (each of its chunks is read once);
otherwise row blocks sized from the memory budget (at most 8 MiB of output each). Other
inputs are read on that grid whatever their own chunking. A zarr output gets the grid as
its chunks, so every task writes whole chunks.

**Broadcasting** follows numpy: the output shape is ``np.broadcast_shapes`` of the
inputs. The broadcast is never materialised: each input reads the part of itself that
the output region needs (whole or length-1 along broadcast dims) and numpy broadcasts
the blocks. In :func:`where` the inputs are aligned on their rows (axis 0) instead.

**Blocks** given to ``fn`` are views into per-thread buffers that are reused for the
next block: valid during the call only (copy what you keep). ``fn`` must return a numpy
array of exactly the block's shape and of the output dtype. Rows can be dropped only with
:func:`where` (its two passes know the output size before writing), not by ``fn``.
``dtype=None``: ``fn`` is first applied to a tiny block (at most one element along each
axis of the first region; an expression to zero rows, as numpy's result dtypes do not
depend on values) and its result's dtype is the output dtype; this also checks the
function and the expression before anything is written.

**Atomic, resumable.** The output is built in a hidden ``.OUT.tmp-*`` folder of the store
(data in ``data/``, a journal of finished blocks in ``map-journal.jsonl``) and committed
with one rename only when every block succeeded. A function or expression that fails
removes the folder; a crash or Ctrl-C keeps it, and ``resume=True`` finishes the same job
(same inputs, expression/function name and grid), skipping the journalled blocks.
``arraystore verify --repair`` removes such leftovers.

**Memory.** Each task declares its projected peak (input buffers, output block,
temporaries: expressions are evaluated in cache-sized sub-blocks of ~1 MiB, a function is
assumed to need two output blocks of temporaries); the engine checks the plan against
the budget before anything runs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from arraystore._native import buffers as _buffers
from arraystore._native.jit import numba_pays
from arraystore.backends.base import Handle
from arraystore.core.chunks import (
    Region,
    auto_chunks,
    iter_chunk_regions,
    normalize_chunks,
    normalize_shards,
    region_shape,
    split_rows,
)
from arraystore.core.dtypes import check_array_name, dtype_to_json, parse_dtype
from arraystore.core.expr import Expr
from arraystore.core.meta import ArrayMeta
from arraystore.engine import Plan, Task, get_executor, run
from arraystore.engine.memory import block_target
from arraystore.errors import ArrayStoreError, InvalidArgument, ShapeMismatch
from arraystore.ops.map.inputs import (
    _SLOT,
    Source,
    _bcast_region,
    _broadcast,
    _eval_into,
    _expr_temps,
    _fmt,
    _read,
    _read_bytes,
    _Scope,
    _source,
)
from arraystore.ops.map.output import (
    TaskSpec,
    _build,
    _history,
    _meta_doc,
    _meta_from,
    _out_format,
    _start,
)
from arraystore.ops.map.where import MAX_BLOCK, MIN_BLOCK, where
from arraystore.ops.reduce import kernels
from arraystore.ops.reduce.stats import ALL_OPS, STATS, SUB_BLOCK, StatsResult, _budget
from arraystore.storage import ArrayView
from arraystore.storage.journal import mark_done

if TYPE_CHECKING:
    from arraystore.storage import ArrayView, StoreRoot

__all__ = ["Source", "map_array", "map_blocks", "map_expr", "reduce_expr", "where"]

FN_TEMPS = 2  # temporaries a user function is assumed to need, in output blocks


# ------------------------------------------------------------------ kernels


class _FnKernel:
    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def temps(self, out_bytes: int) -> int:
        return FN_TEMPS * out_bytes

    def __call__(self, blocks: list[np.ndarray], region: Region, dtype: np.dtype | None) -> Any:
        try:
            res = self.fn(*blocks)
        except Exception as exc:
            raise ArrayStoreError(
                f"map function failed on region {_fmt(region)}: {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(res, np.generic):
            res = np.asarray(res)
        shape = region_shape(region)
        if not isinstance(res, np.ndarray):
            raise ShapeMismatch(
                f"map function returned {type(res).__name__} on region {_fmt(region)}, "
                "not a numpy array"
            )
        if res.shape != shape:
            raise ShapeMismatch(
                f"map function returned shape {res.shape} on region {_fmt(region)}, expected "
                f"{shape} (map keeps the block shape; use where() to drop rows)"
            )
        if dtype is not None and res.dtype != dtype and not _same_layout(res.dtype, dtype):
            raise ShapeMismatch(
                f"map function returned dtype {res.dtype} on region {_fmt(region)}, expected "
                f"{dtype} (the declared dtype; use .astype() in the function)"
            )
        return res


def _same_layout(a: np.dtype, b: np.dtype) -> bool:
    try:
        return bool(parse_dtype(a) == b)
    except ArrayStoreError:
        return False


class _ExprKernel:
    def __init__(self, x: Expr) -> None:
        self.x = x

    def temps(self, out_bytes: int) -> int:
        return _expr_temps(self.x)

    def __call__(self, blocks: list[np.ndarray], region: Region, dtype: np.dtype | None) -> Any:
        if dtype is None:
            return np.asarray(self.x(dict(zip(self.x.names, blocks, strict=True))))
        out = _buffers.buffer(region_shape(region), dtype, _SLOT - 1)
        try:
            _eval_into(self.x, blocks, out)
        except Exception as exc:
            raise ArrayStoreError(
                f"expression {self.x.text!r} failed on region {_fmt(region)}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return out


_Kernel = _FnKernel | _ExprKernel


@dataclass(frozen=True, eq=False)
class _Job:
    sources: tuple[Source, ...]
    shape: tuple[int, ...]
    kernel: _Kernel

    def regions(self, region: Region) -> list[Region]:
        return [_bcast_region(region, s.shape) for s in self.sources]

    def task_bytes(self, region: Region, dtype: np.dtype) -> int:
        out = math.prod(region_shape(region)) * dtype.itemsize
        return _read_bytes(self.sources, self.regions(region)) + out + self.kernel.temps(out)


def _map_task(
    dst: Handle, job: _Job, dtype: np.dtype, region: Region, index: int, journal: Path | None
) -> int:
    for sub in _pieces(dst, job, region, dtype):
        block = job.kernel(_read(job.sources, job.regions(sub)), sub, dtype)
        dst.write(sub, block)
    mark_done(journal, index)
    return _read_bytes(job.sources, job.regions(region))


def _pieces(dst: Handle, job: _Job, region: Region, dtype: np.dtype) -> list[Region]:
    """An expression from inputs whose rows read directly (memmap; or in-memory inputs)
    into such an output runs in cache-sized row pieces
    (:data:`~arraystore.ops.reduce.stats.SUB_BLOCK` of inputs and output): each input
    piece is copied from the page cache, evaluated and written while it is still in
    cache. A user function gets the whole block (its documented contract); a chunked
    input or output (zarr) works on whole chunks."""
    if (
        not isinstance(job.kernel, _ExprKernel)
        or not dst.contiguous_rows
        or not region
        or any(s.handle is not None and not s.handle.contiguous_rows for s in job.sources)
    ):
        return [region]
    row = (slice(region[0].start, region[0].start + 1), *region[1:])
    per_row = _read_bytes(job.sources, job.regions(row)) + math.prod(region_shape(row)) * (
        dtype.itemsize
    )
    return split_rows(region, per_row, SUB_BLOCK)


def _reduce_task(
    job: _Job,
    dtype: np.dtype,
    region: Region,
    axis: Any,
    ops: tuple[str, ...],
    skipna: bool,
    fused: bool,
) -> Any:
    block = job.kernel(_read(job.sources, job.regions(region)), region, dtype)
    return kernels.partial(block, region, job.shape, axis, ops, skipna, fused=fused)


# -------------------------------------------------------------- grid, dtype
def _out_shards(
    job: _Job, grid: tuple[int, ...], chunks: Any, shards: Any, backend: str
) -> tuple[int, ...] | None:
    """The output's shards: ``shards`` checked against the grid; by default (zarr, no
    ``chunks`` given) those of the sharded input whose chunks the grid follows, so the
    output has as few files as that input."""
    if shards is not None and backend != "zarr":
        raise InvalidArgument("the memmap backend has no shards: shards needs backend='zarr'")
    if shards is not None or chunks is not None or backend != "zarr":
        return normalize_shards(shards, job.shape, grid)
    for s in job.sources:
        h = s.handle
        if h is not None and h.meta.shards and s.shape == job.shape:
            trail = s.shape[h.meta.ndim :]
            if h.meta.chunks + trail == grid:
                return h.meta.shards + trail
    return None


def _grid(job: _Job, itemsize: int, budget: int, workers: int, chunks: Any) -> tuple[int, ...]:
    shape = job.shape
    if chunks is not None:
        return normalize_chunks(chunks, shape, itemsize)
    for s in job.sources:
        h = s.handle
        if h is not None and not h.contiguous_rows and s.shape == shape:  # its chunks
            return h.meta.chunks + s.shape[h.meta.ndim :]
    inputs = 0
    seen = set()
    for s in job.sources:
        if s.handle is None or (s.records and id(s.handle) in seen):
            continue
        seen.add(id(s.handle))
        sub = math.prod(s.shape[s.handle.meta.ndim :]) or 1
        inputs += (s.handle.meta.dtype.itemsize // sub) if s.records else s.dtype.itemsize
    target = block_target(
        budget,
        workers,
        inputs=inputs,
        output=itemsize,
        temps=itemsize * FN_TEMPS if isinstance(job.kernel, _FnKernel) else 0,
        overhead=job.kernel.temps(0),
        cap=MAX_BLOCK,
        floor=MIN_BLOCK,
    )
    return auto_chunks(shape, itemsize, target)


def _infer(job: _Job, dtype: Any) -> np.dtype:
    """Apply the kernel to a tiny block: the output dtype (checks fn / expression early)."""
    declared = None if dtype is None else parse_dtype(dtype)
    rows = 1 if isinstance(job.kernel, _FnKernel) else 0  # numpy's dtypes ignore values
    region = tuple(slice(0, min(1 if i else rows, n)) for i, n in enumerate(job.shape))
    blocks = _read(job.sources, job.regions(region))
    try:
        if isinstance(job.kernel, _FnKernel):
            return parse_dtype(job.kernel(blocks, region, declared).dtype)
        try:
            res = job.kernel(blocks, region, None)
        except Exception as exc:
            raise InvalidArgument(
                f"cannot evaluate expression {job.kernel.x.text!r}: {type(exc).__name__}: {exc}"
            ) from None
        if declared is not None and not np.can_cast(res.dtype, declared, "same_kind"):
            raise InvalidArgument(
                f"expression {job.kernel.x.text!r} gives {res.dtype}, which cannot be stored as "
                f"{declared} without losing values (cast in the expression, e.g. "
                f"{declared.name}(round(...)))"
            )
        return declared if declared is not None else parse_dtype(res.dtype)
    finally:
        _buffers.release()


# -------------------------------------------------------------------- map
def _map(
    store: StoreRoot,
    out: str,
    job: _Job,
    what: dict[str, Any],
    *,
    dtype: Any,
    backend: str | None,
    codec: str | None,
    chunks: Any,
    attrs: dict[str, Any] | None,
    memory: Any,
    executor: Any,
    workers: int | None,
    progress: Any,
    overwrite: bool,
    resume: bool,
    checksum: bool = False,
    shards: Any = None,
) -> ArrayView:
    check_array_name(out)
    store.check_writable()
    try:
        json.dumps(attrs or {}, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"attrs must be JSON-serialisable (no NaN): {exc}") from None
    budget = _budget(memory)
    backend, codec = _out_format(job.sources, backend, codec)
    fp = {
        **what,
        "inputs": [s.fingerprint() for s in job.sources],
        "shape": list(job.shape),
        "dtype": None if dtype is None else dtype_to_json(parse_dtype(dtype)),
    }
    with store.lock(out), get_executor(executor, workers=workers) as ex:
        work, header, done = _start(store, out, overwrite, resume, fp)
        if header is not None:
            meta = _meta_from(header["meta"])
        else:
            dt = _infer(job, dtype)
            grid = _grid(job, dt.itemsize, budget, ex.workers, chunks)
            dims = [s.handle.meta.dims for s in job.sources if s.handle and s.shape == job.shape]
            dims = [d for d in dims if d] + [None]  # a foreign source's dimension names
            meta = ArrayMeta(
                job.shape, dt, grid, backend, codec, checksum=checksum,
                shards=_out_shards(job, grid, chunks, shards, backend), dims=dims[0],
            )  # fmt: skip
            header = {"op": "map", "job": fp, "meta": _meta_doc(meta)}
        regions = list(iter_chunk_regions(meta.shape, meta.shards or meta.chunks))
        specs: list[TaskSpec] = [
            (i, _map_task, (job, meta.dtype, r, i), job.task_bytes(r, meta.dtype))
            for i, r in enumerate(regions)
            if i not in done
        ]
        meta = meta.evolve(
            attrs=dict(attrs or {}),
            history=(_history("map", **what, inputs=[s.label for s in job.sources]),),
        )
        return _build(store, out, work, header, meta, specs, ex, budget, progress, "map")


def map_blocks(
    fn: Callable[..., np.ndarray],
    *arrays: Any,
    out: str,
    store: StoreRoot | None = None,
    dtype: Any = None,
    backend: str | None = None,
    codec: str | None = None,
    chunks: Any = None,
    attrs: dict[str, Any] | None = None,
    memory: int | str | None = None,
    executor: Any = None,
    workers: int | None = None,
    progress: Callable[[Any, Any], None] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    checksum: bool = False,
    shards: Any = None,
) -> ArrayView:
    """Write ``fn(*blocks)`` for every block of the broadcast of ``arrays`` to array ``out``.

    ``arrays``: Arrays (or field views), names of arrays in ``store``, or small numpy
    arrays. ``store`` (default: the first Array's store) receives ``out``. ``dtype=None``
    infers it from a tiny first block; ``backend``/``codec`` default to the first stored
    input's, ``chunks`` to the grid described in the module doc. ``progress(task,
    nbytes)`` after each block, with the bytes it read (a bar's total: the inputs' size).
    ``checksum=True`` stores checksums in ``out`` (also for map_expr and where; a resumed
    run keeps the setting of the interrupted one). ``shards`` (zarr): ``out``'s shard
    shape, multiples of its chunks (a task then writes a whole shard); by default a
    sharded input's whose chunks the output's grid follows.
    See the module docstring for the contract of ``fn``.
    """
    if not callable(fn):
        raise InvalidArgument(f"fn must be callable, got {type(fn).__name__}")
    if not arrays:
        raise InvalidArgument("map_blocks needs at least one input array")
    if store is None:
        store = next((a.store for a in arrays if isinstance(a, ArrayView)), None)
        if store is None:
            raise InvalidArgument("give store= (no input is a stored ArrayView)")
    sources = tuple(_source(a, store) for a in arrays)
    shape = _broadcast(sources)
    name = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__name__)}"
    return _map(
        store,
        out,
        _Job(sources, shape, _FnKernel(fn)),
        {"function": name},
        dtype=dtype,
        backend=backend,
        codec=codec,
        chunks=chunks,
        attrs=attrs,
        memory=memory,
        executor=executor,
        workers=workers,
        progress=progress,
        overwrite=overwrite,
        resume=resume,
        checksum=checksum,
        shards=shards,
    )


def map_expr(
    store: StoreRoot,
    expr: str,
    name: str | None = None,
    *,
    out: str,
    dtype: Any = None,
    backend: str | None = None,
    codec: str | None = None,
    chunks: Any = None,
    attrs: dict[str, Any] | None = None,
    memory: int | str | None = None,
    executor: Any = None,
    workers: int | None = None,
    progress: Callable[[Any, Any], None] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    checksum: bool = False,
    shards: Any = None,
    out_store: StoreRoot | None = None,
) -> ArrayView:
    """Evaluate ``expr`` block by block into array ``out`` (see :mod:`.expr`).

    Bare names are the fields of array ``name`` (or ``name`` itself for a plain dtype);
    without ``name``, whole arrays of ``store`` (broadcast like numpy). ``dtype`` casts
    the result with numpy's ``same_kind`` rule (default: the expression's own dtype).
    ``out_store``: the store receiving ``out`` (default ``store``, then only read).
    """
    x, sources = _Scope(store, name).bind(expr)
    job = _Job(tuple(sources), _broadcast(sources), _ExprKernel(x))
    what = {"expr": x.text, "array": name}
    return _map(
        store if out_store is None else out_store,
        out,
        job,
        what,
        dtype=dtype,
        backend=backend,
        codec=codec,
        chunks=chunks,
        attrs=attrs,
        memory=memory,
        executor=executor,
        workers=workers,
        progress=progress,
        overwrite=overwrite,
        resume=resume,
        checksum=checksum,
        shards=shards,
    )


def map_array(
    arr: ArrayView,
    fn: Callable[..., Any] | str,
    *others: Any,
    out: str,
    store: StoreRoot | None = None,
    dtype: Any = None,
    backend: str | None = None,
    codec: str | None = None,
    chunks: Any = None,
    attrs: dict[str, Any] | None = None,
    memory: int | str | None = None,
    executor: Any = None,
    workers: int | None = None,
    progress: Callable[[Any, Any], None] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    checksum: bool = False,
    shards: Any = None,
) -> ArrayView:
    """``Array.map``: a string is an expression over ``arr``'s fields (:func:`map_expr`),
    a callable gets ``arr``'s blocks then the others' (:func:`map_blocks`, into ``store``,
    default ``arr``'s); the other arguments are theirs."""
    options: dict[str, Any] = dict(
        out=out,
        dtype=dtype,
        backend=backend,
        codec=codec,
        chunks=chunks,
        attrs=attrs,
        memory=memory,
        executor=executor,
        workers=workers,
        progress=progress,
        overwrite=overwrite,
        resume=resume,
        checksum=checksum,
        shards=shards,
    )
    if isinstance(fn, str):
        if others:
            raise InvalidArgument("an expression reads the array's own fields: no other inputs")
        if arr.field is not None:
            raise InvalidArgument("map an expression over the whole array, not a field view")
        if store is not None:
            raise TypeError("an expression is mapped into its array's store: no store argument")
        return map_expr(arr.store, fn, arr.name, **options)
    return map_blocks(fn, arr, *others, store=arr.store if store is None else store, **options)


# ------------------------------------------------------------------ stats
def reduce_expr(
    store: StoreRoot,
    expr: str,
    name: str | None = None,
    ops: Iterable[str] = STATS,
    axis: Any = None,
    skipna: bool = True,
    ddof: int = 0,
    memory: int | str | None = None,
    executor: Any = None,
    workers: int | None = None,
    progress: Callable[[Any, Any], None] | None = None,
) -> StatsResult:
    """Stats of ``expr`` (bound as in :func:`map_expr`) in one pass, nothing stored.

    Same kernels and result as :func:`arraystore.ops.reduce.stats.reduce`; the single field of
    the result is named by the expression text. ``skipna=True`` by default (a summary,
    like ``Array.stats`` and the CLI).
    """
    ops = tuple(dict.fromkeys(ops))
    bad = [o for o in ops if o not in ALL_OPS]
    if bad:
        raise InvalidArgument(f"unknown reduction {bad[0]!r} (choose from: {', '.join(ALL_OPS)})")
    if isinstance(ddof, bool) or not isinstance(ddof, int) or ddof < 0:
        raise InvalidArgument(f"ddof must be a non-negative integer, got {ddof!r}")
    x, sources = _Scope(store, name).bind(expr)
    job = _Job(tuple(sources), _broadcast(sources), _ExprKernel(x))
    budget = _budget(memory)
    t0 = time.perf_counter()
    full = tuple(slice(0, n) for n in job.shape)
    dt = _infer(job, None)
    fused = numba_pays(math.prod(job.shape) * dt.itemsize)  # numba for big data only
    with get_executor(executor, workers=workers) as ex:
        regions = list(
            iter_chunk_regions(job.shape, _grid(job, dt.itemsize, budget, ex.workers, None))
        )
        tasks = tuple(
            Task(i, _reduce_task, (job, dt, r, axis, ops, skipna, fused), job.task_bytes(r, dt))
            for i, r in enumerate(regions)
        )
        sizes = [_read_bytes(sources, job.regions(r)) for r in regions]
        report = None if progress is None else (lambda t, r: progress(t, sizes[t.key]))
        if tasks:
            merged = run(
                Plan(tasks, "stats"),
                ex,
                budget,
                merge=lambda a, b: b if a is None else kernels.merge(a, b),
                progress=report,
            )
        else:
            merged = _reduce_task(job, dt, full, axis, ops, skipna, fused)
    _buffers.release()
    values = kernels.finalize(merged, ops, ddof)
    nbytes = sum(sizes)
    label = name if name is not None else store.path.name
    fields = {x.text: {op: values[op] for op in ops}}
    return StatsResult(label, axis, fields, nbytes, time.perf_counter() - t0, plain=True)
