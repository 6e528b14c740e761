"""Chunk-wise map: functions and expressions over one or more arrays, into a new array.

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

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..backends import get_backend
from ..backends._io import remove_tree, write_json
from ..backends.base import Handle
from ..core.chunks import Region, auto_chunks, iter_chunk_regions, normalize_chunks, region_shape
from ..core.dtypes import check_name, dtype_to_json, field_dtype, parse_dtype
from ..core.errors import ArrayExists, ArrayStoreError, InvalidArgument, ShapeMismatch
from ..core.killpoints import kill_point
from ..core.meta import SIDECAR, ArrayMeta
from ..engine import Plan, Task, get_executor, run
from ..engine.memory import READ_AHEAD, max_in_flight
from . import _buffers, kernels
from .cast import _read_journal, _write_header
from .expr import Expr, compile_expr
from .stats import ALL_OPS, STATS, StatsResult, _budget

if TYPE_CHECKING:
    from ..array import Array
    from ..store import Store

__all__ = ["Source", "map_array", "map_blocks", "map_expr", "reduce_expr", "where"]

JOURNAL = "map-journal.jsonl"
SUB_ELEMS = 1 << 15  # elements per expression sub-block (256 KiB of float64: L2-sized)
MAX_BLOCK = 8 * 2**20  # largest output block per task (streamed: bigger gains nothing)
MIN_BLOCK = 256 * 2**10  # smallest (a smaller budget share fails the budget check)
FN_TEMPS = 2  # temporaries a user function is assumed to need, in output blocks
_SLOT = 1000  # reusable buffer slots: inputs from here up; output and mask just below
_RECORDS = "\x00records"  # internal name of the whole source array in where()


# ------------------------------------------------------------------- inputs
@dataclass(frozen=True, eq=False)
class Source:
    """One input: a stored array (or one field of it), or a numpy array in memory."""

    label: str
    shape: tuple[int, ...]
    dtype: np.dtype
    handle: Handle | None = None
    field: str | None = None
    data: np.ndarray | None = None

    def fingerprint(self) -> list[Any]:
        out = [self.label, list(self.shape), dtype_to_json(self.dtype)]
        if self.data is not None:
            out.append(hashlib.sha1(np.ascontiguousarray(self.data).tobytes()).hexdigest())
        return out

    @property
    def records(self) -> bool:
        """Read as whole records (interleaved memmap fields, or the records themselves)."""
        h = self.handle
        return (
            h is not None
            and h.meta.dtype.names is not None
            and (self.field is None or not h.columnar)
        )


def _source(obj: Any, store: Store | None) -> Source:
    from ..array import Array

    if isinstance(obj, str):
        if store is None:
            raise InvalidArgument(f"array name {obj!r} given without a store")
        obj = store[obj]
    if isinstance(obj, Array):
        label = obj.name if obj.field is None else f"{obj.name}.{obj.field}"
        return Source(label, obj.shape, obj.dtype, obj.handle, obj.field)
    data = np.asarray(obj)
    if data.dtype.hasobject:
        raise InvalidArgument("object arrays cannot be mapped; convert to a numeric dtype")
    return Source(f"<array {data.shape} {data.dtype}>", data.shape, data.dtype, data=data)


def _field_sources(arr: Array) -> dict[str, Source]:
    """Name -> source for the fields of ``arr`` (or the array itself if it has no fields)."""
    meta = arr.meta
    if meta.dtype.names is None:
        return {arr.name: Source(arr.name, meta.shape, meta.dtype, arr.handle)}
    out = {}
    for name in meta.dtype.names:
        f = field_dtype(meta.dtype, name)
        out[name] = Source(f"{arr.name}.{name}", meta.shape + f.subshape, f.dtype, arr.handle, name)
    return out


class _Scope:
    """What bare names mean: the fields of array ``name`` (or ``name`` itself for a plain
    dtype), else the arrays of ``store``. One handle per array, so reads are shared."""

    def __init__(self, store: Store, name: str | None) -> None:
        self.store = store
        self.arr = store[name] if name is not None else None
        self.sources = _field_sources(self.arr) if self.arr is not None else {}
        self.names = list(self.sources) if self.arr is not None else store.names()
        self.what = "arrays" if self.arr is None else "fields" if self.arr.meta.fields else "names"

    def bind(self, text: str | Expr) -> tuple[Expr, list[Source]]:
        x = compile_expr(text, self.names, self.what)
        if not x.names:
            raise InvalidArgument(f"expression {x.text!r} uses no fields or arrays")
        for n in x.names:
            if n not in self.sources:
                self.sources[n] = _source(self.store[n], self.store)
        return x, [self.sources[n] for n in x.names]


def _bcast_region(region: Region, shape: tuple[int, ...]) -> Region:
    """The part of an input of ``shape`` that an output region broadcasts from."""
    off = len(region) - len(shape)
    return tuple(slice(0, 1) if n == 1 else region[off + i] for i, n in enumerate(shape))


def _row_region(shape: tuple[int, ...], a: int, b: int) -> Region:
    return (slice(a, b), *(slice(0, n) for n in shape[1:]))


def _read_key(src: Source, r: Region) -> tuple[Any, ...]:
    """Sources with equal keys share one read (records of interleaved fields too)."""
    assert src.handle is not None
    logical = r[: src.handle.meta.ndim]
    return (id(src.handle), None if src.records else src.field, _key(logical))


def _read(sources: Sequence[Source], regions: Sequence[Region]) -> list[np.ndarray]:
    """Read each source's region into reusable buffers (each distinct read once)."""
    done: dict[tuple[Any, ...], np.ndarray] = {}
    out = []
    for k, (src, r) in enumerate(zip(sources, regions, strict=True)):
        if src.data is not None:
            out.append(src.data[r])
            continue
        h = src.handle
        assert h is not None
        nd = h.meta.ndim
        logical, sub = r[:nd], r[nd:]
        shape = region_shape(logical)
        key = _read_key(src, r)
        block = done.get(key)
        if block is None:
            if src.records or src.field is None:
                buf = _buffers.buffer(shape, h.meta.dtype, _SLOT + k)
                block = h.read(logical, None, buf)
            else:
                buf = _buffers.buffer(shape + src.shape[nd:], src.dtype, _SLOT + k)
                block = h.read(logical, src.field, buf)
            done[key] = block
        if src.records and src.field is not None:
            block = block[src.field]
        if any(s.start != 0 or s.stop != n for s, n in zip(sub, src.shape[nd:], strict=True)):
            block = block[(Ellipsis, *sub)]  # type: ignore[arg-type]
        out.append(block)
    return out


def _read_bytes(sources: Sequence[Source], regions: Sequence[Region]) -> int:
    """Bytes of the buffers :func:`_read` fills for these regions."""
    seen = set()
    total = 0
    for src, r in zip(sources, regions, strict=True):
        if src.handle is None or _read_key(src, r) in seen:
            continue
        seen.add(_read_key(src, r))
        h = src.handle
        rows = math.prod(region_shape(r[: h.meta.ndim]))
        if src.records or src.field is None:
            total += rows * h.meta.dtype.itemsize
        else:
            total += rows * math.prod(src.shape[h.meta.ndim :]) * src.dtype.itemsize
    return total


def _key(region: Region) -> tuple[int, ...]:
    return tuple(x for s in region for x in (s.start, s.stop))


def _fmt(region: Region) -> str:
    return "[" + ", ".join(f"{s.start}:{s.stop}" for s in region) + "]"


# ------------------------------------------------------------------ kernels
def _eval_into(x: Expr, blocks: Sequence[np.ndarray], out: np.ndarray) -> None:
    """``out[...] = x(blocks)``, evaluated in cache-sized sub-blocks along axis 0."""
    names = x.names
    n = out.shape[0] if out.ndim else 0
    if out.ndim == 0 or n <= 1:
        res = x(dict(zip(names, blocks, strict=True)), out)
        if res is not out:
            np.copyto(out, res, casting="same_kind")
        return
    step = max(1, SUB_ELEMS // max(1, math.prod(out.shape[1:])))
    cut = [b.ndim == out.ndim and b.shape[0] == n for b in blocks]
    for a in range(0, n, step):
        b = min(n, a + step)
        env = {nm: blk[a:b] if c else blk for nm, blk, c in zip(names, blocks, cut, strict=True)}
        dst = out[a:b]
        res = x(env, dst)
        if res is not dst:
            np.copyto(dst, res, casting="same_kind")


def _expr_temps(x: Expr) -> int:
    return (x.nodes + 1) * SUB_ELEMS * 16  # at most one temporary per node


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


def _mark_done(journal: Path | None, index: int) -> None:
    if journal is not None:  # one short append per block, after its data is written
        with open(journal, "a") as fh:
            fh.write(json.dumps({"chunk": index, "reports": {}}) + "\n")
    kill_point("chunk")


def _map_task(
    dst: Handle, job: _Job, dtype: np.dtype, region: Region, index: int, journal: Path | None
) -> int:
    regions = job.regions(region)
    block = job.kernel(_read(job.sources, regions), region, dtype)
    dst.write(region, block)
    _mark_done(journal, index)
    return _read_bytes(job.sources, regions)


def _reduce_task(
    job: _Job, dtype: np.dtype, region: Region, axis: Any, ops: tuple[str, ...], skipna: bool
) -> Any:
    block = job.kernel(_read(job.sources, job.regions(region)), region, dtype)
    return kernels.partial(block, region, job.shape, axis, ops, skipna)


# -------------------------------------------------------------- grid, dtype
def _grid(job: _Job, itemsize: int, budget: int, workers: int, chunks: Any) -> tuple[int, ...]:
    shape = job.shape
    if chunks is not None:
        return normalize_chunks(chunks, shape, itemsize)
    for s in job.sources:
        h = s.handle
        if h is not None and h.meta.backend == "zarr" and s.shape == shape:
            return h.meta.chunks + s.shape[h.meta.ndim :]
    per_task = max(1, budget // (workers * READ_AHEAD) - job.kernel.temps(0))
    elem = itemsize * (1 + (FN_TEMPS if isinstance(job.kernel, _FnKernel) else 0))
    seen = set()
    for s in job.sources:
        if s.handle is None or (s.records and id(s.handle) in seen):
            continue
        seen.add(id(s.handle))
        sub = math.prod(s.shape[s.handle.meta.ndim :]) or 1
        elem += (s.handle.meta.dtype.itemsize // sub) if s.records else s.dtype.itemsize
    target = max(MIN_BLOCK, min(MAX_BLOCK, per_task * itemsize // max(1, elem)))
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


# ------------------------------------------------------- output & journal
def _resumable(work: Path) -> bool:
    """A work folder of an interrupted map that can be resumed: its journal (renamed away
    before the commit: after it, ``data`` may hold the replaced array) and a complete new
    array in ``data`` (both backends write its ``zarr.json`` last at creation)."""
    return (work / JOURNAL).is_file() and (work / "data" / "zarr.json").is_file()


def _interrupted(store: Store, out: str) -> Path | None:
    found = [p for p in store.path.glob(f".{out}.tmp-*") if _resumable(p)]
    if not found:
        return None
    return max(found, key=lambda p: p.stat().st_mtime if isinstance(p, Path) else 0.0)


def _start(
    store: Store, out: str, overwrite: bool, resume: bool, job_fp: dict[str, Any]
) -> tuple[Path | None, dict[str, Any] | None, set[int]]:
    """Called with the lock held: (interrupted folder, its header, finished blocks)."""
    target = store.path / out
    store._clean_stale(out, keep=_resumable)  # what writers that died left
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
    return {**meta.to_sidecar(), "facts": facts}


def _meta_from(doc: dict[str, Any]) -> ArrayMeta:
    doc = dict(doc)
    return ArrayMeta.from_sidecar(doc, **doc.pop("facts"))


TaskSpec = tuple[int, Callable[..., Any], tuple[Any, ...], int]


def _build(
    store: Store,
    out: str,
    work: Path | None,
    header: dict[str, Any],
    meta: ArrayMeta,
    specs: list[TaskSpec],
    ex: Any,
    budget: int,
    progress: Any,
    name: str,
) -> Array:
    """Write the tasks' blocks into a temp array (new or resumed), then commit it."""
    max_in_flight(budget, max((s[3] for s in specs), default=0), ex.workers)  # before writing
    fresh = work is None
    if work is None:
        work = store._temp_path(out)
        work.mkdir()
        kill_point("mkdir")
    journal = work / JOURNAL
    try:
        if fresh:
            _write_header(journal, header)
            kill_point("header")
            (work / "data").mkdir()
            dst = get_backend(meta.backend).create(work / "data", meta)
            if meta.backend == "memmap":  # keep the store a valid zarr hierarchy
                from ..store import _group_doc

                write_json(
                    work / "data" / "zarr.json", _group_doc({"arraystore_backend": "memmap"})
                )
        else:
            dst = get_backend(meta.backend).open(work / "data", meta.to_sidecar(), "r+")
        try:
            if hasattr(dst, "fd"):
                dst.fd()  # open once here, not racily in the workers
            jr = None if store.remote else journal  # remote: resume redoes every block
            tasks = tuple(Task(k, fn, (dst, *args, jr), nb) for k, fn, args, nb in specs)
            if tasks:
                run(Plan(tasks, name), ex, budget, progress=progress)
            flush = getattr(dst, "flush", None)
            if flush is not None:
                flush()
        finally:
            dst.close()
    except Exception:
        remove_tree(work)
        raise
    finally:
        _buffers.release()
    write_json(work / "data" / SIDECAR, meta.to_sidecar())  # metadata last
    kill_point("sidecar")
    if isinstance(journal, Path):  # not resumable from here on
        os.replace(journal, work / f"{JOURNAL}.committing")
    else:  # an object store: no rename; the journal just goes
        remove_tree(journal)
    store._commit(work / "data", store.path / out)
    kill_point("committed")
    remove_tree(work)
    return store[out]


def _out_format(
    sources: Sequence[Source], backend: str | None, codec: str | None
) -> tuple[str, str]:
    stored = [s.handle.meta for s in sources if s.handle is not None]
    backend = backend or (stored[0].backend if stored else "memmap")
    if codec is None:
        same = [m.codec for m in stored if m.backend == backend]
        codec = same[0] if same and backend == "zarr" else "none"
    if backend == "memmap" and codec != "none":
        raise InvalidArgument("the memmap backend stores raw bytes: a codec needs backend='zarr'")
    get_backend(backend)
    return backend, codec


def _history(op: str, **info: Any) -> dict[str, Any]:
    return {"op": op, **info, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


# -------------------------------------------------------------------- map
def _map(
    store: Store,
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
) -> Array:
    check_name(out, "array name")
    store._check_writable()
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
            meta = ArrayMeta(job.shape, dt, grid, backend, codec, checksum=checksum)
            header = {"op": "map", "job": fp, "meta": _meta_doc(meta)}
        regions = list(iter_chunk_regions(meta.shape, meta.chunks))
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
    store: Store | None = None,
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
) -> Array:
    """Write ``fn(*blocks)`` for every block of the broadcast of ``arrays`` to array ``out``.

    ``arrays``: Arrays (or field views), names of arrays in ``store``, or small numpy
    arrays. ``store`` (default: the first Array's store) receives ``out``. ``dtype=None``
    infers it from a tiny first block; ``backend``/``codec`` default to the first stored
    input's, ``chunks`` to the grid described in the module doc. ``progress(task,
    nbytes)`` after each block, with the bytes it read (a bar's total: the inputs' size).
    ``checksum=True`` stores checksums in ``out`` (also for map_expr and where; a resumed
    run keeps the setting of the interrupted one).
    See the module docstring for the contract of ``fn``.
    """
    from ..array import Array

    if not callable(fn):
        raise InvalidArgument(f"fn must be callable, got {type(fn).__name__}")
    if not arrays:
        raise InvalidArgument("map_blocks needs at least one input array")
    if store is None:
        store = next((a.store for a in arrays if isinstance(a, Array)), None)
        if store is None:
            raise InvalidArgument("give store= (no input is a stored Array)")
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
    )


def _broadcast(sources: Sequence[Source]) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*(s.shape for s in sources)))
    except ValueError:
        shapes = ", ".join(f"{s.label} {s.shape}" for s in sources)
        raise ShapeMismatch(f"inputs cannot be broadcast together: {shapes}") from None


def map_expr(
    store: Store,
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
) -> Array:
    """Evaluate ``expr`` block by block into array ``out`` (see :mod:`.expr`).

    Bare names are the fields of array ``name`` (or ``name`` itself for a plain dtype);
    without ``name``, whole arrays of ``store`` (broadcast like numpy). ``dtype`` casts
    the result with numpy's ``same_kind`` rule (default: the expression's own dtype).
    """
    x, sources = _Scope(store, name).bind(expr)
    job = _Job(tuple(sources), _broadcast(sources), _ExprKernel(x))
    what = {"expr": x.text, "array": name}
    return _map(
        store,
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
    )


def map_array(arr: Array, fn: Callable[..., Any] | str, *others: Any, **kwargs: Any) -> Array:
    """``Array.map``: a string is an expression over ``arr``'s fields (:func:`map_expr`),
    a callable gets ``arr``'s blocks then the others' (:func:`map_blocks`)."""
    if isinstance(fn, str):
        if others:
            raise InvalidArgument("an expression reads the array's own fields: no other inputs")
        if arr.field is not None:
            raise InvalidArgument("map an expression over the whole array, not a field view")
        return map_expr(arr.store, fn, arr.name, **kwargs)
    return map_blocks(fn, arr, *others, store=kwargs.pop("store", arr.store), **kwargs)


# ------------------------------------------------------------------ where
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
    _mark_done(journal, index)
    return sum(b - a for a, b, _, _ in pieces) * sel.row_bytes()


def where(
    store: Store,
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
) -> Array:
    """Rows (axis 0) where ``cond`` is true, written to array ``out``.

    ``cond`` must give one boolean per row. The rows selected are those of array ``name``
    (all fields) or, with ``expr``, the values of that expression. Names bind as in
    :func:`map_expr`; without ``name`` they are whole arrays aligned on their rows (same
    length along axis 0). Pass 1 counts the rows per block, pass 2 writes each output
    chunk from the blocks holding its rows (an input block spanning two output chunks is
    read twice; blocks with no selected row are not read again).
    """
    check_name(out, "array name")
    store._check_writable()
    if name is None and expr is None:
        raise InvalidArgument("where() without an array name needs expr= (what to select)")
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
    sel = _Select(sources, tuple(named), cx, vx)
    budget = _budget(memory)
    backend, codec = _out_format(sources, backend, codec)
    fp = {
        "op": "where",
        "array": name,
        "cond": cx.text,
        "expr": vx.text if vx else None,
        "inputs": [s.fingerprint() for s in sources],
        "dtype": None if dtype is None else dtype_to_json(parse_dtype(dtype)),
    }
    with store.lock(out), get_executor(executor, workers=workers) as ex:
        work, header, done = _start(store, out, overwrite, resume, fp)
        if header is None:
            dt, trail = _check_select(sel, dtype)
            R = _rows_per_block(sel, dt, trail, budget, ex.workers)
            blocks = [(a, min(n_rows, a + R)) for a in range(0, n_rows, R)]
            row_bytes = sel.row_bytes()
            specs = tuple(
                Task(i, _count_task, (sel, a, b), 2 * (b - a) * row_bytes + _expr_temps(cx))
                for i, (a, b) in enumerate(blocks)
            )
            report = None if progress is None else (lambda t, r: progress(t, r[1]))
            counts = [c for c, _ in run(Plan(specs, "where-count"), ex, budget, progress=report)]
            total = sum(counts)
            shape = (total, *trail)
            meta = ArrayMeta(
                shape,
                dt,
                normalize_chunks((R, *trail), shape, dt.itemsize),
                backend,
                codec,
                checksum=checksum,
            )
            header = {"op": "where", "job": fp, "meta": _meta_doc(meta), "rows": R}
            header["counts"] = counts
        else:
            meta, R, counts = _meta_from(header["meta"]), header["rows"], header["counts"]
        specs2 = _select_specs(sel, meta, R, n_rows, counts, done)
        meta = meta.evolve(
            history=(_history("where", array=name, cond=cx.text, expr=vx.text if vx else None),)
        )
        return _build(store, out, work, header, meta, specs2, ex, budget, progress, "where")


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
        if s.handle is not None and s.handle.meta.backend == "zarr":
            return max(1, s.handle.meta.chunks[0])
    per_row = 2 * sel.row_bytes() + 2 * math.prod(trail) * dtype.itemsize + 1
    per_task = budget // (workers * READ_AHEAD) - _expr_temps(sel.cond) * 2
    return max(1, max(MIN_BLOCK, min(MAX_BLOCK, per_task)) // per_row)


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


# ------------------------------------------------------------------ stats
def reduce_expr(
    store: Store,
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

    Same kernels and result as :func:`arraystore.ops.stats.reduce`; the single field of
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
    with get_executor(executor, workers=workers) as ex:
        regions = list(
            iter_chunk_regions(job.shape, _grid(job, dt.itemsize, budget, ex.workers, None))
        )
        tasks = tuple(
            Task(i, _reduce_task, (job, dt, r, axis, ops, skipna), job.task_bytes(r, dt))
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
            merged = _reduce_task(job, dt, full, axis, ops, skipna)
    _buffers.release()
    values = kernels.finalize(merged, ops, ddof)
    nbytes = sum(sizes)
    label = name if name is not None else store.path.name
    fields = {x.text: {op: values[op] for op in ops}}
    return StatsResult(label, axis, fields, nbytes, time.perf_counter() - t0)
