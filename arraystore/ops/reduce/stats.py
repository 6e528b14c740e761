"""Out-of-core reductions over stored arrays: one engine plan, mergeable kernel states.

Each task reads one region (a storage chunk for zarr; a row block sized from the memory
budget for memmap) into a reusable per-thread buffer and computes partial states for
every requested field; partial states are merged in chunk order (deterministic whatever
the thread timing) and finalised. Exact quantiles and histograms make a few more passes
(see :mod:`.quantiles`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from arraystore._native import buffers as _buffers
from arraystore._native.direct import direct_reads
from arraystore._native.jit import numba_pays
from arraystore._native.pages import drop_behind
from arraystore.backends.base import Handle
from arraystore.core.chunks import Region, iter_chunk_regions, region_shape, split_rows
from arraystore.core.dtypes import Field, dtype_to_spec, field_dtype, is_numeric
from arraystore.core.meta import named_axes
from arraystore.engine import Plan, Task, default_budget, get_executor, run
from arraystore.engine.memory import block_target, max_in_flight, parse_size
from arraystore.errors import FieldNotFound, InvalidArgument
from arraystore.ops.reduce import kernels
from arraystore.ops.reduce.axis_quantiles import axis_quantiles, normalize_axes
from arraystore.ops.reduce.kernels import numba as kernels_numba
from arraystore.ops.reduce.mask import Mask, resolve_mask
from arraystore.ops.reduce.quantiles import exact_quantiles, histogram

if TYPE_CHECKING:
    from arraystore.storage import ArrayView

STATS = ("count", "nan_count", "sum", "mean", "std", "min", "max")
ALL_OPS = (*STATS, "var", "argmin", "argmax", "any", "all", "count_nonzero")
#: kernel temporaries per task beyond the block (cache-blocked kernels need little; a
#: block smaller than a leaf needs at most 8x its bytes: float64 copy and deviations)
KERNEL_OVERHEAD = 4 * 2**20
#: tasks a budget is split into for memmap row blocks (independent of the worker count,
#: so the tiling -- and float results -- are the same for every executor)
TASKS_PER_BUDGET = 4
#: largest memmap row block per task
MAX_BLOCK = 128 * 2**20
#: smallest memmap row block per task (unless the budget's share is smaller)
MIN_BLOCK = 2**20
#: bytes a memmap task reads at a time: the copy out of the page cache and the kernel
#: that reduces it meet in the CPU cache instead of main memory (a 128 MiB block read at
#: once is written to RAM, then read back)
SUB_BLOCK = 4 * 2**20


class FieldStats(dict[str, Any]):
    """One field's results, ``{statistic: value}``, also as attributes (``.mean``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"no statistic {name!r} (computed: {', '.join(self) or 'none'})"
            ) from None


@dataclass
class StatsResult:
    """Per-field results of :func:`stats` / ``Array.stats``; ``to_dict`` / ``to_json``.

    A plain array's (or a field view's, or one field chosen by ``fields="price"``):
    ``res["mean"]`` / ``res.mean``. A structured array's: by field, then statistic,
    ``res["price"]["mean"]`` / ``res["price"].mean``. ``res[NAME]`` -- the results keyed
    by the array's (or field's) name, the old form of a plain array's -- still works;
    where a plain array (or its one field) is named like a statistic, the statistic
    wins (``res.fields[NAME]`` always gives the per-field results). A structured
    array's fields are never confused with statistics: a field named ``"mean"`` is
    ``res["mean"]``, its mean ``res["mean"]["mean"]``.
    """

    array: str
    axis: Any
    fields: dict[str, dict[str, Any]]
    nbytes: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    #: one array's results (a plain array, a field view, one field): statistics index it
    plain: bool = False

    def __post_init__(self) -> None:
        self.fields = {k: FieldStats(d) for k, d in self.fields.items()}

    def _single(self) -> FieldStats | None:
        if self.plain and len(self.fields) == 1:
            return cast(FieldStats, next(iter(self.fields.values())))
        return None

    def __getitem__(self, key: str) -> Any:
        single = self._single()
        if single is not None and key in single:
            return single[key]
        try:
            return self.fields[key]
        except KeyError:
            what = "statistic or " if single is not None else ""
            have = [*(single or ()), *self.fields]
            raise FieldNotFound(
                f"no {what}field {key!r} in the results of {self.array} "
                f"(choose from: {', '.join(map(str, have))})"
            ) from None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("fields", "plain"):
            raise AttributeError(name)  # (copy/pickle probe before __init__ ran)
        single = self._single()
        if single is not None and name in single:
            return single[name]
        hint = (
            f"; a structured array's: res[field].{name}" if single is None and self.fields else ""
        )
        raise AttributeError(f"StatsResult has no statistic {name!r}{hint}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "array": self.array,
            "axis": list(self.axis) if isinstance(self.axis, tuple) else self.axis,
            "fields": {k: {n: to_python(v) for n, v in d.items()} for k, d in self.fields.items()},
            "bytes_read": self.nbytes,
            "seconds": self.seconds,
            "gb_per_s": (self.nbytes / self.seconds / 1e9) if self.seconds else None,
        }

    def to_json(self) -> str:
        """JSON text; NaN/inf become the strings "nan", "inf", "-inf"."""
        return json.dumps(json_safe(self.to_dict()), indent=2)

    def __repr__(self) -> str:
        lines = [f"StatsResult({self.array}, axis={self.axis})"]
        for name, d in self.fields.items():
            vals = ", ".join(f"{k}={_short(v)}" for k, v in d.items())
            lines.append(f"  {name}: {vals}")
        return "\n".join(lines)


def _short(v: Any) -> str:
    if isinstance(v, np.ndarray) and v.size > 6:
        return f"array(shape={v.shape}, dtype={v.dtype})"
    return repr(to_python(v))


def to_python(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist() if v.size <= 10_000 else v
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, tuple):
        return [to_python(x) for x in v]
    return v


def json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        if math.isnan(obj):
            return "nan"
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, complex):
        return {"real": json_safe(obj.real), "imag": json_safe(obj.imag)}
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    return obj


# ------------------------------------------------------------------ planning
def select_fields(
    arr: ArrayView, fields: Sequence[str] | str | None
) -> list[tuple[str | None, Field]]:
    """(storage field or None, Field) pairs to reduce; numeric fields only."""
    if isinstance(fields, str):
        fields = [fields]
    elif fields is not None and (
        not isinstance(fields, list | tuple) or not all(isinstance(f, str) for f in fields)
    ):
        raise InvalidArgument(f"fields must be a field name or a list of names, got {fields!r}")
    if arr.field is not None:
        if fields and list(fields) != [arr.field]:
            raise InvalidArgument(f"{arr.name}[{arr.field!r}] is a field view; no other fields")
        return [(arr.field, field_dtype(arr.meta.dtype, arr.field))]
    if not arr.meta.fields:
        if fields:
            raise InvalidArgument(f"{arr.name} has a plain dtype: no fields to select")
        if not is_numeric(arr.dtype):
            raise InvalidArgument(f"{arr.name} has non-numeric dtype {dtype_to_spec(arr.dtype)}")
        return [(None, Field(arr.name, arr.dtype, ()))]
    chosen = list(fields) if fields else [f for f in arr.meta.fields]
    out: list[tuple[str | None, Field]] = []
    for name in chosen:
        f = field_dtype(arr.meta.dtype, name)
        if not is_numeric(f.dtype):
            if fields:
                raise InvalidArgument(
                    f"field {name!r} has non-numeric dtype {dtype_to_spec(f.dtype)}; "
                    "cast it to a number first"
                )
            continue
        out.append((name, f))
    if not out:
        raise InvalidArgument(f"{arr.name} has no numeric fields")
    return out


def task_regions(handle: Handle, budget: int, workers: int) -> list[Region]:
    """The handle's work chunks (:meth:`Handle.work_chunks`): the storage chunks (zarr),
    or row blocks sized from the budget where any row range reads directly (memmap)."""
    target = block_target(
        budget,
        TASKS_PER_BUDGET,  # not `workers`: the same tiling (and float results) for any executor
        read_ahead=1,
        inputs=1,
        per="input",
        overhead=KERNEL_OVERHEAD,
        cap=MAX_BLOCK,
        floor=MIN_BLOCK,
        floor_within_share=True,
    )
    return list(iter_chunk_regions(handle.meta.shape, handle.work_chunks(target)))


def _read_fields(
    handle: Handle, region: Region, names: list[str | None]
) -> dict[str | None, np.ndarray]:
    """Read the needed fields of a region into reusable buffers (records once for memmap)."""
    shape = region_shape(region)
    meta = handle.meta
    if meta.dtype.names is None or not handle.columnar:
        block = handle.read(region, None, _buffers.buffer(shape, meta.dtype))
        if meta.dtype.names is None:
            return {None: block}
        return {n: block[n] for n in names}
    out = {}
    for slot, n in enumerate(names):
        f = field_dtype(meta.dtype, n)  # type: ignore[arg-type]
        out[n] = handle.read(region, n, _buffers.buffer(shape + f.subshape, f.dtype, slot))
    return out


def _reduce_task(
    handle: Handle,
    region: Region,
    names: list[str | None],
    axis: Any,
    ops: tuple[str, ...],
    skipna: bool,
    fused: bool,
    drop: bool = False,
    mask: Mask | None = None,
) -> dict[str | None, Any]:
    acc = _reduce_region(handle, region, names, axis, ops, skipna, fused, mask)
    if drop:  # consumed: its pages will not be read again by this scan
        _drop_pages(handle, region, names)
    return acc


def _drop_pages(handle: Handle, region: Region, names: list[str | None]) -> None:
    for n in names if handle.columnar else [None]:
        handle.drop_pages(region, n)


def _reduce_region(
    handle: Handle,
    region: Region,
    names: list[str | None],
    axis: Any,
    ops: tuple[str, ...],
    skipna: bool,
    fused: bool,
    mask: Mask | None = None,
) -> dict[str | None, Any]:
    shape = handle.meta.shape
    subs = _sub_regions(handle, region)
    if len(subs) > 1:
        handle.will_read(subs)  # (a direct scan reads them ahead)
    # finite float pieces: one running numba state per task (else a state per piece)
    if fused and mask is None and len(subs) > 1 and names == [None] and not handle.meta.dtype.names:
        folded = kernels.rows_partial(
            lambda sub: _read_fields(handle, sub, names)[None],
            subs, shape, axis, ops, handle.meta.dtype, skipna,
        )  # fmt: skip
        if folded is not None:
            return {None: folded}
    acc: dict[str | None, Any] | None = None
    for sub in subs:
        blocks = _read_fields(handle, sub, names)
        where = None if mask is None else mask.block(sub)
        part = {
            n: kernels.partial(b, sub, shape, axis, ops, skipna, fused=fused, where=where)
            for n, b in blocks.items()
        }
        acc = _merge(acc, part)
    assert acc is not None
    return acc


def _sub_regions(handle: Handle, region: Region) -> list[Region]:
    """A task's row block in cache-sized pieces (:data:`SUB_BLOCK`) where any row range
    reads directly (memmap: each piece is copied from the page cache and reduced while
    it is still in cache); else the chunk itself (zarr: it is decoded whole)."""
    meta = handle.meta
    if not handle.contiguous_rows or meta.ndim == 0:
        return [region]
    row = math.prod(region_shape(region[1:])) * meta.dtype.itemsize
    return split_rows(region, row, SUB_BLOCK)


def _merge(a: dict[str | None, Any] | None, b: dict[str | None, Any]) -> dict[str | None, Any]:
    if a is None:
        return b
    return {k: kernels.merge(a[k], b[k]) for k in a}


def _block_bytes(handle: Handle, region: Region, names: list[str | None]) -> int:
    meta = handle.meta
    rows = math.prod(region_shape(region))
    if meta.dtype.names is None or not handle.columnar:
        return rows * meta.dtype.itemsize
    return sum(rows * field_dtype(meta.dtype, str(n)).itemsize for n in names)


def _task_bytes(handle: Handle, region: Region, names: list[str | None]) -> int:
    """A task's peak memory: its block and the kernel's temporaries (a tiny array
    needs about its size, not :data:`KERNEL_OVERHEAD`)."""
    nbytes = _block_bytes(handle, region, names)
    return nbytes + min(KERNEL_OVERHEAD, 8 * nbytes)


def _mask_bytes(handle: Handle, region: Region, mask: Mask | None) -> int:
    """A ``where=`` mask's memory in a task: it is evaluated piece by piece."""
    if mask is None:
        return 0
    return max(mask.nbytes(sub) for sub in _sub_regions(handle, region))


def reduce(
    arr: ArrayView,
    ops: Iterable[str] = STATS,
    axis: Any = None,
    fields: Sequence[str] | str | None = None,
    skipna: bool = False,
    ddof: int = 0,
    memory: int | str | None = None,
    executor: Any = None,
    workers: int | None = None,
    progress: Callable[[Any, Any], None] | None = None,
    where: Any = None,
    io: str | None = None,
) -> StatsResult:
    """Compute ``ops`` over ``axis`` (indices, or dimension names where the array has
    them) for every selected field in one pass of the data; ``where``: numpy's ``where=``
    (see :mod:`.mask`), read with each block; ``io``: ``auto``, ``direct`` or
    ``buffered`` reads (default: ``$ARRAYSTORE_IO``, see :mod:`arraystore._native.direct`)."""
    axis = named_axes(axis, arr.meta.dims)
    ops = tuple(dict.fromkeys(ops))
    bad = [o for o in ops if o not in ALL_OPS]
    if bad:
        raise InvalidArgument(f"unknown reduction {bad[0]!r} (choose from: {', '.join(ALL_OPS)})")
    if isinstance(ddof, bool) or not isinstance(ddof, int) or ddof < 0:
        raise InvalidArgument(f"ddof must be a non-negative integer, got {ddof!r}")
    budget = _budget(memory)
    chosen = select_fields(arr, fields)
    mask = resolve_mask(arr, where)
    names = [n for n, _ in chosen]
    handle = arr.handle
    nbytes = _bytes_read(arr, chosen)
    fused = numba_pays(nbytes)  # else the numpy kernels, without importing numba
    drop = drop_behind(nbytes)  # a scan bigger than the page cache: do not fill it
    direct = direct_reads(nbytes, io)  # ... or read around it
    t0 = time.perf_counter()
    with get_executor(executor, workers=workers) as ex:
        if fused and ex.in_process:  # blocks are reduced here: load it while reading
            kernels_numba.prewarm(f.dtype for _, f in chosen)
        regions = task_regions(handle, budget, ex.workers)
        tasks = tuple(
            Task(
                i,
                _reduce_task,
                (handle, r, names, axis, ops, skipna, fused, drop, mask),
                _task_bytes(handle, r, names) + _mask_bytes(handle, r, mask),
            )
            for i, r in enumerate(regions)
        )
        if not tasks:  # an empty array: reduce one empty block so numpy's rules apply
            empty = tuple(slice(0, n) for n in handle.meta.shape)
            merged = _reduce_task(handle, empty, names, axis, ops, skipna, fused, mask=mask)
        else:
            with handle.read_scan(regions, direct) if ex.in_process else nullcontext():
                merged = run(
                    Plan(tasks, name="stats"), ex, budget, merge=_merge, init=None,
                    progress=progress,
                )  # fmt: skip
    _buffers.release()
    results = {}
    for name, f in chosen:
        values = kernels.finalize(merged[name], ops, ddof)
        results[f.name] = {op: values[op] for op in ops}
    plain = arr.field is not None or not arr.meta.fields or isinstance(fields, str)
    return StatsResult(arr.name, axis, results, nbytes, time.perf_counter() - t0, plain=plain)


def _bytes_read(arr: ArrayView, chosen: list[tuple[str | None, Field]]) -> int:
    """Bytes one pass over the ``chosen`` fields reads (memmap records: whole records)."""
    columnar = arr.handle.columnar
    return sum(
        math.prod(arr.meta.shape)
        * (f.itemsize if arr.meta.dtype.names is None or columnar else arr.meta.dtype.itemsize)
        for _, f in chosen[: (len(chosen) if columnar else 1)]
    )


def _budget(memory: int | str | None) -> int:
    if memory is None:
        return default_budget()
    budget = parse_size(memory) if isinstance(memory, str) else int(memory)
    if budget <= 0:
        raise InvalidArgument("memory budget must be positive (e.g. --memory 512MiB)")
    return budget


# ------------------------------------------------------ quantiles, histograms
def _iter_blocks(
    handle: Handle,
    name: str | None,
    budget: int,
    drop: bool = False,
    mask: Mask | None = None,
    direct: bool = False,
) -> Iterator[np.ndarray]:
    regions = task_regions(handle, budget, 1)
    with handle.read_scan(regions, direct):  # (direct: read around the page cache, ahead)
        handle.will_read(regions)
        for region in regions:
            blocks = _read_fields(handle, region, [name])
            if mask is None:
                yield blocks[name]
            else:  # the selected values (a subarray field's: every value of a selected one)
                yield blocks[name][mask.block(region)]  # (a subarray field: whole subarrays)
            if drop:  # the consumer has taken the block: its pages are not needed this pass
                _drop_pages(handle, region, [name])


def _check_pass_budget(arr: ArrayView, name: str | None, budget: int) -> None:
    """Refuse a multi-pass op before reading when one block cannot fit the budget."""
    regions = task_regions(arr.handle, budget, 1)
    if regions:
        block = max(_block_bytes(arr.handle, r, [name]) for r in regions)
        max_in_flight(budget, block, 1)


def field_blocks(
    arr: ArrayView, name: str | None, budget: int, mask: Mask | None = None, io: str | None = None
) -> Callable[[], Iterator[np.ndarray]]:
    handle = arr.handle
    meta = handle.meta
    columnar = name is not None and handle.columnar
    item = field_dtype(meta.dtype, name).itemsize if columnar else meta.dtype.itemsize  # type: ignore[arg-type]
    nbytes = math.prod(meta.shape) * item
    # several passes: drop only what could not stay cached between them anyway
    drop = drop_behind(nbytes, passes=2)
    direct = direct_reads(nbytes, io)  # ``--io direct``: each pass reads around the cache
    return lambda: _iter_blocks(handle, name, budget, drop, mask, direct)


def quantile(
    arr: ArrayView,
    q: Any,
    fields: Sequence[str] | str | None = None,
    skipna: bool = False,
    memory: int | str | None = None,
    axis: Any = None,
    where: Any = None,
    median: bool = False,
    io: str | None = None,
) -> dict[str, Any]:
    """Exact quantiles (numpy's ``method="linear"``) per field, in bounded memory: over
    the whole array, or along ``axis`` (:mod:`.axis_quantiles`; ``median``: numpy's
    median there, ``q`` 0.5; over the whole array, ``quantile(0.5)`` exactly rounded);
    ``where``: as in :func:`reduce` (a slice where it selects nothing gives NaN); ``io``:
    as in :func:`reduce`, for the passes over the whole array (along an axis: buffered)."""
    qs = np.asarray(q)
    if qs.dtype.kind not in "iuf":
        raise InvalidArgument(f"quantiles must be numbers in [0, 1], got {q!r}")
    if qs.size == 0 or np.any(~np.isfinite(qs)) or np.any((qs < 0) | (qs > 1)):
        raise InvalidArgument(f"quantiles must be in [0, 1], got {q!r}")
    budget = _budget(memory)
    max_select = max(1024, budget // 64)
    chosen = select_fields(arr, fields)
    mask = resolve_mask(arr, where)
    nd = arr.meta.ndim
    if (
        axis is not None
        and normalize_axes(axis, nd) == tuple(range(nd))
        and not any(f.subshape for _, f in chosen)
    ):
        axis = None  # all the axes: the whole array
    out = {}
    for name, f in chosen:
        if f.dtype.kind == "c":
            raise InvalidArgument(f"quantiles are not defined for complex field {f.name!r}")
        if axis is not None:
            if f.dtype.kind == "b":
                raise InvalidArgument("quantiles of bool data are not defined (numpy refuses them)")
            out[f.name] = axis_quantiles(
                arr.handle, name, f.dtype, f.subshape, axis, q, skipna, budget, mask, median
            )
            continue
        _check_pass_budget(arr, name, budget)
        try:
            res = exact_quantiles(
                field_blocks(arr, name, budget, mask, io), q, skipna=skipna, max_select=max_select
            )
        except InvalidArgument as e:
            if mask is None or "empty" not in str(e):
                raise
            res = np.full(qs.shape, np.nan)[()]  # where= selects nothing
        out[f.name] = res
    _buffers.release()
    return out


def hist(
    arr: ArrayView,
    bins: Any = 10,
    range: tuple[float, float] | None = None,
    fields: Sequence[str] | str | None = None,
    memory: int | str | None = None,
    where: Any = None,
    io: str | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Histogram per field (``np.histogram`` semantics, NaN skipped) of the values
    ``where`` selects (all by default); ``io``: as in :func:`reduce`."""
    budget = _budget(memory)
    mask = resolve_mask(arr, where)
    out = {}
    for name, f in select_fields(arr, fields):
        if f.dtype.kind == "c":
            raise InvalidArgument(f"histograms are not defined for complex field {f.name!r}")
        _check_pass_budget(arr, name, budget)
        out[f.name] = histogram(
            field_blocks(arr, name, budget, mask, io), bins=bins, range=range, dtype=f.dtype
        )
    _buffers.release()
    return out
