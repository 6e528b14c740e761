"""``where``: the rows (axis 0) of an array, or of an expression, where a condition
holds (:mod:`.mapping` explains the shared guarantees). Two passes: count the selected
rows per input block, then write each output chunk from the blocks holding its rows, so
the output size is known before anything is written."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from arraystore._native import buffers as _buffers
from arraystore.backends.base import Handle
from arraystore.core.chunks import normalize_chunks
from arraystore.core.dtypes import check_array_name, dtype_to_json, parse_dtype
from arraystore.core.expr import Expr
from arraystore.core.meta import ArrayMeta
from arraystore.engine import Executor, Plan, Task, get_executor, run
from arraystore.engine.memory import block_target
from arraystore.errors import ArrayStoreError, InvalidArgument, ShapeMismatch
from arraystore.ops.map.inputs import (
    _SLOT,
    Source,
    _eval_into,
    _expr_temps,
    _read,
    _read_bytes,
    _row_region,
    _Scope,
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
from arraystore.ops.reduce.stats import _budget
from arraystore.storage.journal import mark_done

if TYPE_CHECKING:
    from arraystore.storage import ArrayView, StoreRoot

MAX_BLOCK = 8 * 2**20  # largest output block per task (streamed: bigger gains nothing)
MIN_BLOCK = 256 * 2**10  # smallest (a smaller budget share fails the budget check)
CHUNKED_BLOCK = 64 * 2**20  # a chunked input's work piece, where it has a choice (shards)
_RECORDS = "\x00records"  # internal name of the whole source array in where()


@dataclass(frozen=True, eq=False)
class _Select:
    sources: tuple[Source, ...]
    keys: tuple[str, ...]  # name of each source in the expressions
    cond: Expr
    value: Expr | None  # None: the records of the array

    def read(self, a: int, b: int) -> dict[str, np.ndarray]:
        blocks = _read(self.sources, [_row_region(s.shape, a, b) for s in self.sources])
        return dict(zip(self.keys, blocks, strict=True))

    def mask(self, env: dict[str, np.ndarray], n: int) -> np.ndarray:
        mask = _buffers.buffer((n,), np.dtype(bool), _SLOT - 2)
        _eval_into(self.cond, [env[k] for k in self.cond.names], mask)
        return mask

    def row_bytes(self) -> int:
        return _read_bytes(self.sources, [_row_region(s.shape, 0, 1) for s in self.sources])


def _count_task(sel: _Select, a: int, b: int) -> tuple[int, int]:
    env = sel.read(a, b)
    return int(np.count_nonzero(sel.mask(env, b - a))), (b - a) * sel.row_bytes()


def _select_task(
    dst: Handle,
    sel: _Select,
    dtype: np.dtype,
    o0: int,
    o1: int,
    pieces: list[tuple[int, int, int, int]],
    index: int,
    journal: Path | None,
) -> int:
    """Output rows [o0, o1): the selected rows lo:hi of each input row block a:b."""
    shape = (o1 - o0, *dst.meta.shape[1:])
    out = _buffers.buffer(shape, dtype, _SLOT - 1)
    pos = 0
    for a, b, lo, hi in pieces:
        env = sel.read(a, b)
        idx = np.flatnonzero(sel.mask(env, b - a))[lo:hi]
        part = out[pos : pos + len(idx)]
        if sel.value is None:
            part[...] = env[_RECORDS][idx]
        else:
            try:
                _eval_into(sel.value, [env[k][idx] for k in sel.value.names], part)
            except Exception as exc:
                raise ArrayStoreError(
                    f"expression {sel.value.text!r} failed on rows [{a}:{b}]: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        pos += len(idx)
    dst.write(_row_region(dst.meta.shape, o0, o1), out)
    mark_done(journal, index)
    return sum(b - a for a, b, _, _ in pieces) * sel.row_bytes()


def where(
    store: StoreRoot,
    name: str | None,
    cond: str,
    out: str,
    *,
    expr: str | None = None,
    dtype: Any = None,
    backend: str | None = None,
    codec: str | None = None,
    memory: int | str | None = None,
    executor: Any = None,
    workers: int | None = None,
    progress: Callable[[Any, Any], None] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    checksum: bool = False,
    out_store: StoreRoot | None = None,
) -> ArrayView:
    """Rows (axis 0) where ``cond`` is true, written to array ``out`` (of ``out_store``
    when given: ``store`` is then only read).

    ``cond`` must give one boolean per row. The rows selected are those of array ``name``
    (all fields) or, with ``expr``, the values of that expression. Names bind as in
    :func:`map_expr`; without ``name`` they are whole arrays aligned on their rows (same
    length along axis 0). Pass 1 counts the rows per block, pass 2 writes each output
    chunk from the blocks holding its rows (an input block spanning two output chunks is
    read twice; blocks with no selected row are not read again).
    """
    check_array_name(out)
    dst = store if out_store is None else out_store
    dst.check_writable()
    if name is None and expr is None:
        raise InvalidArgument("where() without an array name needs expr= (what to select)")
    sel, n_rows = _bind_select(store, name, cond, expr)
    cx, vx = sel.cond, sel.value
    budget = _budget(memory)
    backend, codec = _out_format(sel.sources, backend, codec)
    fp = {
        "op": "where",
        "array": name,
        "cond": cx.text,
        "expr": vx.text if vx else None,
        "inputs": [s.fingerprint() for s in sel.sources],
        "dtype": None if dtype is None else dtype_to_json(parse_dtype(dtype)),
    }
    with dst.lock(out), get_executor(executor, workers=workers) as ex:
        work, header, done = _start(dst, out, overwrite, resume, fp)
        if header is None:
            meta, R, counts, header = _count_pass(
                sel, n_rows, dtype, fp, budget, ex, progress, (backend, codec, checksum)
            )
        else:
            meta, R, counts = _meta_from(header["meta"]), header["rows"], header["counts"]
        specs2 = _select_specs(sel, meta, R, n_rows, counts, done)
        meta = meta.evolve(
            history=(_history("where", array=name, cond=cx.text, expr=vx.text if vx else None),)
        )
        return _build(dst, out, work, header, meta, specs2, ex, budget, progress, "where")


def _bind_select(
    store: StoreRoot, name: str | None, cond: str, expr: str | None
) -> tuple[_Select, int]:
    """Bind ``cond`` and ``expr`` (or the records of array ``name``) to their sources,
    which must all have the same number of rows; the selection and that number."""
    scope = _Scope(store, name)
    cx, csrc = scope.bind(cond)
    vx, vsrc = scope.bind(expr) if expr is not None else (None, [])
    named = dict(zip(cx.names, csrc, strict=True))
    named.update(zip(vx.names if vx else (), vsrc, strict=True))
    if vx is None:
        arr = scope.arr
        assert arr is not None
        named[_RECORDS] = Source(arr.name, arr.meta.shape, arr.meta.dtype, arr.handle)
    sources = tuple(named.values())
    rows = {s.shape[0] if s.shape else None for s in sources}
    if None in rows:
        raise InvalidArgument("where() selects rows: 0-d arrays have none")
    if len(rows) != 1:
        listed = ", ".join(f"{s.label} {s.shape}" for s in sources)
        raise ShapeMismatch(f"where() inputs must have the same number of rows: {listed}")
    n_rows = int(rows.pop())  # type: ignore[arg-type]
    return _Select(sources, tuple(named), cx, vx), n_rows


def _count_pass(
    sel: _Select,
    n_rows: int,
    dtype: Any,
    fp: dict[str, Any],
    budget: int,
    ex: Executor,
    progress: Callable[[Any, Any], None] | None,
    out_format: tuple[str, str, bool],
) -> tuple[ArrayMeta, int, list[int], dict[str, Any]]:
    """Pass 1: count the selected rows of each input block of R rows; the output's
    metadata (``out_format``: backend, codec, checksum), R, the counts and the journal
    header."""
    backend, codec, checksum = out_format
    dt, trail = _check_select(sel, dtype)
    R = _rows_per_block(sel, dt, trail, budget, ex.workers)
    blocks = [(a, min(n_rows, a + R)) for a in range(0, n_rows, R)]
    row_bytes = sel.row_bytes()
    specs = tuple(
        Task(i, _count_task, (sel, a, b), 2 * (b - a) * row_bytes + _expr_temps(sel.cond))
        for i, (a, b) in enumerate(blocks)
    )
    report = None if progress is None else (lambda t, r: progress(t, r[1]))
    counts = [c for c, _ in run(Plan(specs, "where-count"), ex, budget, progress=report)]
    total = sum(counts)
    shape = (total, *trail)
    dims = [s.handle.meta.dims for s in sel.sources if s.handle and len(s.shape) == len(shape)]
    meta = ArrayMeta(
        shape,
        dt,
        normalize_chunks((R, *trail), shape, dt.itemsize),
        backend,
        codec,
        checksum=checksum,
        dims=next((d for d in dims if d), None),  # a source's dimension names
    )
    header = {"op": "where", "job": fp, "meta": _meta_doc(meta), "rows": R}
    header["counts"] = counts
    return meta, R, counts, header


def _check_select(sel: _Select, dtype: Any) -> tuple[np.dtype, tuple[int, ...]]:
    """Check cond and value on zero rows (dtypes do not depend on values); the output
    dtype and trailing shape."""
    n = 0
    try:
        env = sel.read(0, n)
        c = np.asarray(sel.cond({k: env[k] for k in sel.cond.names}))
        if c.dtype != bool or c.shape != (n,):
            shape = ", ".join(["rows", *map(str, c.shape[1:])]) + ("," if c.ndim < 2 else "")
            raise InvalidArgument(
                f"where condition {sel.cond.text!r} must give one boolean per row, got "
                f"{c.dtype} of shape ({shape}) (e.g. 'price > 0')"
            )
        if sel.value is None:
            res = env[_RECORDS]
        else:
            try:
                res = np.asarray(sel.value({k: env[k] for k in sel.value.names}))
            except Exception as exc:
                raise InvalidArgument(
                    f"cannot evaluate expression {sel.value.text!r}: {type(exc).__name__}: {exc}"
                ) from None
            if res.shape[:1] != (n,):
                raise InvalidArgument(
                    f"expression {sel.value.text!r} must give one value (or row) per input "
                    f"row, got shape {res.shape} for {n} rows"
                )
    finally:
        _buffers.release()
    dt = parse_dtype(res.dtype) if dtype is None else parse_dtype(dtype)
    if not np.can_cast(res.dtype, dt, "same_kind"):
        raise InvalidArgument(f"selected values of dtype {res.dtype} cannot be stored as {dt}")
    return dt, tuple(res.shape[1:])


def _rows_per_block(
    sel: _Select, dtype: np.dtype, trail: tuple[int, ...], budget: int, workers: int
) -> int:
    for s in sel.sources:
        if s.handle is not None and not s.handle.contiguous_rows:  # follow its chunks
            return max(1, s.handle.work_chunks(CHUNKED_BLOCK)[0])  # (shards up to 64 MiB)
    return block_target(
        budget,
        workers,
        inputs=2 * sel.row_bytes(),
        output=2 * math.prod(trail) * dtype.itemsize,
        temps=1,  # the mask
        overhead=_expr_temps(sel.cond) * 2,
        cap=MAX_BLOCK,
        floor=MIN_BLOCK,
        per="row",
    )


def _select_specs(
    sel: _Select,
    meta: ArrayMeta,
    R: int,
    n_rows: int,
    counts: list[int],
    done: set[int],
) -> list[TaskSpec]:
    total = meta.shape[0]
    C = meta.chunks[0]
    ends = np.cumsum(np.asarray(counts, dtype=np.int64))
    starts = ends - np.asarray(counts, dtype=np.int64)
    per_row = 2 * sel.row_bytes() + 2 * math.prod(meta.shape[1:]) * meta.dtype.itemsize + 1
    temps = _expr_temps(sel.cond) + (_expr_temps(sel.value) if sel.value else 0)
    specs: list[TaskSpec] = []
    for k, o0 in enumerate(range(0, total, C)):
        if k in done:
            continue
        o1 = min(total, o0 + C)
        pieces = []
        i = int(np.searchsorted(ends, o0, side="right"))
        while i < len(counts) and starts[i] < o1:
            if counts[i]:
                lo, hi = max(o0, int(starts[i])), min(o1, int(ends[i]))
                a = i * R
                pieces.append((a, min(n_rows, a + R), lo - int(starts[i]), hi - int(starts[i])))
            i += 1
        nbytes = (R + C) * per_row + temps
        specs.append((k, _select_task, (sel, meta.dtype, o0, o1, pieces, k), nbytes))
    return specs
