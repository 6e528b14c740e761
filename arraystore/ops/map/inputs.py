"""Inputs of :mod:`.mapping`: sources (stored arrays, fields, numpy arrays), what bare
names of an expression mean, reading a region of each input into reusable buffers
(each distinct read once), and evaluating an expression into a preallocated block in
cache-sized sub-blocks."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from arraystore._native import buffers as _buffers
from arraystore.backends.base import Handle
from arraystore.core.chunks import Region, region_shape
from arraystore.core.dtypes import dtype_to_json, field_dtype
from arraystore.core.expr import Expr, compile_expr
from arraystore.errors import InvalidArgument, ShapeMismatch
from arraystore.storage import ArrayView

if TYPE_CHECKING:
    from arraystore.storage import StoreRoot

SUB_ELEMS = 1 << 15  # elements per expression sub-block (256 KiB of float64: L2-sized)
_SLOT = 1000  # reusable buffer slots: inputs from here up; output and mask just below


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
        if self.handle is not None:  # a resume must read the same data the run read
            out.append(self.handle.identity())
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


def _source(obj: Any, store: StoreRoot | None) -> Source:
    if isinstance(obj, str):
        if store is None:
            raise InvalidArgument(f"array name {obj!r} given without a store")
        obj = store[obj]
    if isinstance(obj, ArrayView):
        label = obj.name if obj.field is None else f"{obj.name}.{obj.field}"
        return Source(label, obj.shape, obj.dtype, obj.handle, obj.field)
    data = np.asarray(obj)
    if data.dtype.hasobject:
        raise InvalidArgument("object arrays cannot be mapped; convert to a numeric dtype")
    return Source(f"<array {data.shape} {data.dtype}>", data.shape, data.dtype, data=data)


def _field_sources(arr: ArrayView) -> dict[str, Source]:
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

    def __init__(self, store: StoreRoot, name: str | None) -> None:
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


def _broadcast(sources: Sequence[Source]) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*(s.shape for s in sources)))
    except ValueError:
        shapes = ", ".join(f"{s.label} {s.shape}" for s in sources)
        raise ShapeMismatch(f"inputs cannot be broadcast together: {shapes}") from None
