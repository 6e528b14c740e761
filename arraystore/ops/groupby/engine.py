"""Grouped reductions over a stored array: one engine plan of fixed row blocks.

Each task reads rows ``[start, stop)`` of the fields it needs (and of a key array),
evaluates the key expressions and the ``where`` condition, and returns a partial
:class:`~arraystore.ops.groupby.kernels.Table`; the engine merges the tables in row
order. The row blocks depend only on the array's shape and dtype (never on its storage
chunks, the memory budget, the executor or the worker count), so float results are the
same bits for every chunking and executor; int sums, counts, min/max, first/last and
quantiles are exact anyway.

Memory: a task holds its block and its table; the merged table (one state per group)
lives in memory until it passes 1/:data:`SPILL_AT` of the budget, then the tables go to partitioned
spill files (:mod:`.spill`) that are reduced one partition at a time. Per-group
quantiles hold every value of the quantile fields and are refused up front when those
exceed the budget.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from arraystore.backends.base import Handle
from arraystore.core.dtypes import field_dtype
from arraystore.core.expr import Expr, compile_expr
from arraystore.engine import Plan, Task, default_budget, get_executor, run
from arraystore.engine.memory import format_size, parse_size
from arraystore.errors import FieldNotFound, InvalidArgument, MemoryBudgetError
from arraystore.ops.groupby import fused, kernels
from arraystore.ops.groupby.kernels import BLOCK_ELEMENTS, Table
from arraystore.ops.groupby.spill import Spiller

if TYPE_CHECKING:
    from arraystore.storage import ArrayView

#: the merged table spills past 1/SPILL_AT of the budget (a merge needs a few times the
#: table in temporaries: the union of the keys, both tables expanded, the result)
SPILL_AT = 8
#: largest block a task reads (bytes of whole rows)
MAX_BLOCK_BYTES = 64 * 2**20
#: temporaries per value a task allocates (codes, float64 copies, positions)
_TEMP_PER_VALUE = 48
#: the spill partitions' key ranges come from this many row blocks ...
SAMPLE_BLOCKS = 256
#: ... of about 1/SAMPLE_SHARE of the rows together (at most 2**20 rows)
SAMPLE_SHARE = 32
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
KEY_KINDS = "biufSU"


@dataclass(frozen=True)
class KeySource:
    """One key column: a field, an expression over the fields, or another array."""

    name: str
    field: str | None = None
    expr: Expr | None = None
    handle: Handle | None = None
    handle_field: str | None = None


@dataclass(frozen=True)
class GroupSpec:
    """What every task does (small and picklable: shipped to process/dask workers)."""

    handle: Handle
    keys: tuple[KeySource, ...]
    #: (field read, or None for a plain array; name in the results)
    values: tuple[tuple[str | None, str], ...]
    need: frozenset[str]
    where: Expr | None
    dropna: bool
    #: reduce a plain array's trailing axes too (else kept per group)
    inner: bool
    #: fields of a structured array the task reads
    read: tuple[str, ...]
    #: try the numba kernels (:mod:`.fused`; decided once per operation, by its size)
    fused: bool = False


# ------------------------------------------------------------------ resolving keys
def resolve_keys(arr: ArrayView, key: Any) -> tuple[KeySource, ...]:
    """The key columns of ``key`` (a field, expression, array, dict or list of them)."""
    items: list[tuple[str | None, Any]]
    if isinstance(key, dict):
        items = list(key.items())
    elif isinstance(key, list | tuple):
        items = [i for k in key for i in (k.items() if isinstance(k, dict) else [(None, k)])]
    else:
        items = [(None, key)]
    if not items:
        raise InvalidArgument("groupby needs at least one key")
    out = tuple(_one_key(arr, name, k) for name, k in items)
    names = [k.name for k in out]
    if len(set(names)) != len(names):
        raise InvalidArgument(f"groupby keys must have distinct names, got {names}")
    return out


def _one_key(arr: ArrayView, name: str | None, key: Any) -> KeySource:
    fields = list(arr.meta.fields or ())
    if hasattr(key, "handle") and hasattr(key, "meta"):
        return _array_key(arr, name, key)
    if not isinstance(key, str):
        raise InvalidArgument(
            f"a groupby key is a field name, an expression or a stored array, got {key!r}"
        )
    if not fields or arr.field is not None:
        raise InvalidArgument(
            f"{arr.name} has no fields to group by: pass a key array of the same length "
            f"(arr.groupby(store['keys']))"
        )
    if key in fields:
        kind = field_dtype(arr.meta.dtype, key)
        if kind.subshape or kind.dtype.kind not in KEY_KINDS:
            raise InvalidArgument(f"field {key!r} cannot be a group key (dtype {arr.dtype[key]})")
        return KeySource(name or key, field=key)
    if _IDENT.match(key.strip()):
        raise FieldNotFound(f"no field {key!r} in {arr.name} (fields: {', '.join(fields)})")
    return KeySource(name or key.strip(), expr=compile_expr(key, fields))


def _array_key(arr: ArrayView, name: str | None, key: Any) -> KeySource:
    kmeta = key.meta
    if key.field is None and kmeta.fields:
        raise InvalidArgument(
            f"key array {key.name} has fields: group by one of them ({key.name}[FIELD])"
        )
    dt = kmeta.dtype if key.field is None else field_dtype(kmeta.dtype, key.field).dtype
    if len(key.shape) != 1 or key.shape[0] != _rows(arr):
        raise InvalidArgument(
            f"key array {key.name} has shape {tuple(key.shape)}; it must be 1-d with one "
            f"key per row of {arr.name} ({_rows(arr)} rows)"
        )
    if dt.kind not in KEY_KINDS:
        raise InvalidArgument(f"key array {key.name} has dtype {dt}: not a group key")
    label = name or (key.field if key.field is not None else key.name)
    return KeySource(label, handle=key.handle, handle_field=key.field)


def _rows(arr: ArrayView) -> int:
    return arr.shape[0] if arr.shape else 1


def value_fields(
    arr: ArrayView, fields: Sequence[str] | str | None, keys: tuple[KeySource, ...]
) -> tuple[tuple[str | None, str], ...]:
    """(field read, result name) of the values to reduce; numeric fields only."""
    if not arr.meta.fields or arr.field is not None:
        if fields:
            raise InvalidArgument(f"{arr.name} has a plain dtype: no fields to select")
        if arr.dtype.kind not in "biuf":
            raise InvalidArgument(f"{arr.name} has dtype {arr.dtype}: not numeric")
        return ((arr.field, arr.field or arr.name),)
    names = [fields] if isinstance(fields, str) else list(fields or ())
    key_fields = {k.field for k in keys}
    chosen = names or [f for f in arr.meta.fields if f not in key_fields]
    out = []
    for f in chosen:
        kind = field_dtype(arr.meta.dtype, f).dtype.kind  # FieldNotFound for unknown names
        if kind in "biuf":
            out.append((f, f))
        elif names:
            raise InvalidArgument(f"field {f!r} has dtype {arr.dtype[f]}: not numeric")
    return tuple(out)


# ------------------------------------------------------------------ tasks
def block_rows(arr: ArrayView) -> int:
    """Rows per task: fixed by the array's shape and dtype alone (see module docstring)."""
    per_row = math.prod(arr.meta.shape[1:])
    cells = max([per_row] + [math.prod(s.shape) for s in _subdtypes(arr.meta.dtype)])
    row_bytes = max(1, per_row * arr.meta.dtype.itemsize)
    return max(1, min(BLOCK_ELEMENTS // max(cells, 1), MAX_BLOCK_BYTES // row_bytes))


def _subdtypes(dt: np.dtype) -> list[np.dtype]:
    return [dt.fields[n][0] for n in dt.names or ()]  # type: ignore[index]


def _value_dtypes(spec: GroupSpec) -> list[np.dtype]:
    dt = spec.handle.meta.dtype
    return [dt if f is None else field_dtype(dt, f).dtype for f, _ in spec.values]


def _key_dtypes(spec: GroupSpec) -> list[np.dtype]:
    """The dtypes of the int key columns (an expression's: int64, the usual case)."""
    dt = spec.handle.meta.dtype
    out = [np.dtype(np.int64)]
    for k in spec.keys:
        if k.field is not None:
            out.append(field_dtype(dt, k.field).dtype)
        elif k.handle is not None:
            kd = k.handle.meta.dtype
            out.append(kd if k.handle_field is None else field_dtype(kd, k.handle_field).dtype)
    return out


def _read_block(spec: GroupSpec, region: tuple[slice, ...]) -> dict[str | None, np.ndarray]:
    h = spec.handle
    if h.meta.dtype.names is None:
        return {None: h.read(region, None)}
    if h.columnar:
        return {f: h.read(region, f) for f in spec.read}
    block = h.read(region, None)
    return {f: block[f] for f in spec.read}


def _key_column(ks: KeySource, data: dict[str | None, np.ndarray], region: Any, m: int) -> Any:
    if ks.field is not None:
        return data[ks.field]
    if ks.expr is not None:
        col = np.asarray(ks.expr(_env(data)))
        if col.dtype.kind not in KEY_KINDS:
            raise InvalidArgument(f"key {ks.name!r} gives dtype {col.dtype}: not a group key")
        return np.broadcast_to(col, (m,)).copy() if col.shape != (m,) else col
    assert ks.handle is not None
    return ks.handle.read(region[:1], ks.handle_field)


def _env(data: dict[str | None, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v for k, v in data.items() if k is not None}


def group_task(spec: GroupSpec, start: int, stop: int) -> Table:
    """The partial table of rows ``[start, stop)`` (a top-level function: picklable)."""
    shape = spec.handle.meta.shape
    region = (slice(start, stop), *(slice(0, n) for n in shape[1:]))
    spec.handle.will_read([region])  # (a direct scan reads it ahead, piece by piece)
    data = _read_block(spec, region)
    m = stop - start
    keys = [_key_column(k, data, region, m) for k in spec.keys]
    first_last = bool(spec.need & {"first", "last"})
    rows = np.arange(start, stop, dtype=np.int64) if first_last else None
    values = {}
    for f, out in spec.values:
        block = data[f]
        values[out] = block.reshape(m, math.prod(block.shape[1:]))
    if spec.where is not None:
        mask: np.ndarray = np.broadcast_to(np.asarray(spec.where(_env(data))).astype(bool), (m,))
        keys = [k[mask] for k in keys]
        rows = rows[mask] if rows is not None else None
        values = {k: v[mask] for k, v in values.items()}
    if spec.inner:  # every value of a row is one more value of the row's group
        K = math.prod(shape[1:])
        keys = [np.repeat(k, K) for k in keys]
        rows = (rows[:, None] * K + np.arange(K)).ravel() if rows is not None else None
        values = {k: v.reshape(-1, 1) for k, v in values.items()}
    return kernels.partial(keys, values, spec.need, rows, spec.dropna, spec.fused)


def _merge_within(
    budget: int, spiller: Spiller | None, share: float
) -> Callable[[Table | None, Table], Table | None]:
    """The engine's merge: in memory until the table passes ``budget / SPILL_AT``, then
    spilled (``share``: the fraction of the rows one task reads)."""
    merged = [0]

    def merge(a: Table | None, b: Table) -> Table | None:
        merged[0] += 1
        if spiller is not None and spiller.active:
            spiller.add(b)
            return None
        out = kernels.merge(a, b)
        if out.nbytes * SPILL_AT > budget:
            if spiller is None:
                raise MemoryBudgetError(
                    f"grouped states of {out.ngroups} groups need {format_size(out.nbytes)}, "
                    f"over half the memory budget {format_size(budget)}; raise --memory or "
                    "group by fewer keys"
                )
            spiller.start(out, min(1.0, merged[0] * share))
            return None
        return out

    return merge


def sample_keys(spec: GroupSpec, nrows: int) -> list[np.ndarray]:
    """The key columns of the groups of :data:`SAMPLE_BLOCKS` small row blocks spread
    evenly over the rows (about :data:`SAMPLE_SHARE` of them): the spill partitions'
    key ranges are cut at the quantiles of these keys."""
    rows = min(nrows, max(SAMPLE_BLOCKS * 64, nrows // SAMPLE_SHARE), 1 << 20)
    m = max(1, rows // SAMPLE_BLOCKS)
    starts = sorted({(i * nrows) // SAMPLE_BLOCKS for i in range(SAMPLE_BLOCKS)})
    tables = [group_task(spec, s, min(s + m, nrows)) for s in starts if s < nrows]
    return [np.concatenate(c) for c in zip(*(t.keys for t in tables), strict=True)]


def budget_of(memory: int | str | None) -> int:
    if memory is None:
        return default_budget()
    budget = parse_size(memory) if isinstance(memory, str) else int(memory)
    if budget <= 0:
        raise InvalidArgument("memory budget must be positive (e.g. --memory 512MiB)")
    return budget


def run_groups(
    spec: GroupSpec,
    nrows: int,
    rows_per_task: int,
    budget: int,
    executor: Any = None,
    workers: int | None = None,
    progress: Callable[[Any, Any], None] | None = None,
    spiller: Spiller | None = None,
    direct: bool = False,
) -> Table | None:
    """Run the plan and merge its tables in row order (None: ``spiller`` holds them);
    ``direct``: read around the page cache (``--io direct``, in-process executors)."""
    meta = spec.handle.meta
    row_bytes = max(1, math.prod(meta.shape[1:]) * meta.dtype.itemsize)
    cells = max(1, math.prod(meta.shape[1:]))
    per_row = row_bytes + _TEMP_PER_VALUE * cells * max(1, len(spec.values)) + 32
    starts = range(0, nrows, rows_per_task)
    stops = [min(s + rows_per_task, nrows) for s in starts]
    tasks = tuple(
        Task(i, group_task, (spec, s, e), (e - s) * per_row)
        for i, (s, e) in enumerate(zip(starts, stops, strict=True))
    )
    if not tasks:
        return group_task(spec, 0, 0)
    if spiller is not None:
        spiller.sampler = functools.partial(sample_keys, spec, nrows)
    with get_executor(executor, workers=workers) as ex:
        if spec.fused and ex.in_process:  # blocks are reduced here: load numba while reading
            fused.prewarm(_value_dtypes(spec), _key_dtypes(spec))
        merge = _merge_within(budget, spiller, rows_per_task / max(nrows, 1))
        regions = [
            (slice(s, e), *(slice(0, n) for n in meta.shape[1:]))
            for s, e in zip(starts, stops, strict=True)
        ]
        with spec.handle.read_scan(regions, direct) if ex.in_process else nullcontext():
            return run(Plan(tasks, name="groupby"), ex, budget, merge=merge, progress=progress)
