"""Fill a new array chunk by chunk: zeros, ones, range, random, a .npy file, an array-like.

Each chunk is generated (or read) into a buffer and written; at most a few chunks are in
memory at once, whatever the array's size. Random fills are reproducible: chunk ``i`` is
drawn from ``np.random.default_rng([seed, i])`` (values depend on the seed and the chunk
grid, not on thread timing).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from arraystore.backends import check_backend
from arraystore.backends.base import Handle
from arraystore.backends.memmap import open_npy
from arraystore.core.chunks import (
    DEFAULT_CHUNK_BYTES,
    Region,
    chunk_region,
    grid_shape,
    iter_chunk_indices,
    normalize_chunks,
    normalize_shape,
    normalize_shards,
    region_shape,
)
from arraystore.core.create_args import as_data, check_create_args
from arraystore.core.dtypes import fields_of, is_bfloat16, parse_dtype
from arraystore.core.meta import ArrayMeta
from arraystore.engine import Plan, Task, default_budget, get_executor, run
from arraystore.engine.memory import memory_budget
from arraystore.errors import ArrayStoreError, InvalidArgument, ShapeMismatch
from arraystore.storage import NewArray, StoreRoot
from arraystore.storage.killpoints import kill_point

FILLS = ("zeros", "ones", "range", "random", "empty")


def _rng_block(rng: np.random.Generator, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    if is_bfloat16(dtype) or dtype.kind == "f":
        if dtype in (np.float32, np.float64):
            return rng.standard_normal(shape, dtype=dtype)
        return rng.standard_normal(shape, dtype=np.float32).astype(dtype)
    if dtype.kind == "c":
        part = np.float32 if dtype.itemsize == 8 else np.float64
        out = np.empty(shape, dtype=dtype)
        out.real = rng.standard_normal(shape, dtype=part)
        out.imag = rng.standard_normal(shape, dtype=part)
        return out
    if dtype.kind == "b":
        return rng.integers(0, 2, shape, dtype=np.uint8).view(np.bool_)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = max(info.min, -1000), min(info.max, 1000)
        return rng.integers(lo, hi, shape, dtype=dtype, endpoint=True)
    # fixed-width strings: random decimal numbers
    return rng.integers(0, 10**6, shape).astype(dtype)


def _range_block(region: Region, shape: tuple[int, ...]) -> np.ndarray:
    """``np.arange(prod(shape)).reshape(shape)[region]`` without the full arange."""
    idx = np.zeros(region_shape(region), dtype=np.int64)
    stride = 1
    for axis in range(len(shape) - 1, -1, -1):
        r = region[axis]
        ax = np.arange(r.start, r.stop, dtype=np.int64) * stride
        idx += ax.reshape((-1,) + (1,) * (len(shape) - axis - 1))
        stride *= shape[axis]
    return idx


def make_block(
    fill: str, dtype: np.dtype, region: Region, shape: tuple[int, ...], seed: int, index: int
) -> np.ndarray:
    """The block of a generated fill for one chunk region."""
    rshape = region_shape(region)
    out = np.zeros(rshape, dtype=dtype)
    if fill in ("zeros", "empty"):
        return out
    fields = fields_of(dtype) or None
    if fill == "ones":
        if fields:
            for f in fields:
                out[f.name] = 1 if f.dtype.kind not in "SU" else "1"
        else:
            out[...] = 1
        return out
    if fill == "range":
        idx = _range_block(region, shape)
        if fields:
            for f in fields:
                sub = idx.reshape(idx.shape + (1,) * len(f.subshape))
                out[f.name] = sub.astype(f.dtype)
            return out
        return idx.astype(dtype)
    rng = np.random.default_rng([seed, index])
    if fields:
        for f in fields:
            out[f.name] = _rng_block(rng, f.dtype, rshape + f.subshape)
        return out
    return _rng_block(rng, dtype, rshape)


def _fill_task(handle: Handle, fill: str, seed: int, index: int, region: Region) -> int:
    meta = handle.meta
    block = make_block(fill, meta.dtype, region, meta.shape, seed, index)
    handle.write(region, block)
    kill_point("chunk")
    return block.nbytes


def _copy_task(handle: Handle, source: Handle, region: Region) -> int:
    block = source.read(region)
    handle.write(region, block)
    kill_point("chunk")
    return block.nbytes


def _array_task(handle: Handle, data: np.ndarray, region: Region) -> int:
    handle.write(region, data[region])
    kill_point("chunk")
    return handle.meta.dtype.itemsize * math.prod(region_shape(region))


def fill_array(
    handle: Handle,
    fill: str | None = None,
    seed: int = 0,
    source: Handle | None = None,
    data: Any = None,
    memory: int | None = None,
    executor: Any = None,
    progress: Callable[[Any, Any], None] | None = None,
) -> None:
    """Write every chunk of a freshly created array from a fill, a source handle or data."""
    meta = handle.meta
    unit = meta.shards or meta.chunks  # a sharded array is written a whole shard per task
    chunk_bytes = math.prod(unit) * meta.dtype.itemsize
    if fill is not None and fill not in FILLS:
        raise InvalidArgument(f"unknown fill {fill!r} (choose from: {', '.join(FILLS)})")
    if source is not None:
        if source.meta.shape != meta.shape:
            raise ShapeMismatch(f"source shape {source.meta.shape} differs from {meta.shape}")
        make = lambda i, r: Task(i, _copy_task, (handle, source, r), 3 * chunk_bytes)  # noqa: E731
    elif data is not None:
        make = lambda i, r: Task(i, _array_task, (handle, data, r), 2 * chunk_bytes)  # noqa: E731
    elif fill in (None, "zeros", "empty") and meta.backend != "zarr":
        return  # a new .npy file is sparse zeros already
    else:  # zarr: every chunk is written, zeros too (a missing chunk is then corruption)
        f = fill or "zeros"
        make = lambda i, r: Task(i, _fill_task, (handle, f, seed, i, r), 4 * chunk_bytes)  # noqa: E731
    if math.prod(grid_shape(meta.shape, unit)) == 0:
        return
    tasks = tuple(
        make(i, chunk_region(idx, meta.shape, unit))
        for i, idx in enumerate(iter_chunk_indices(meta.shape, unit))
    )
    budget = memory if memory is not None else default_budget()
    with get_executor(executor) as ex:
        run(Plan(tasks, name="create"), ex, budget, progress=progress)


def new_meta(
    shape: tuple[int, ...],
    dtype: np.dtype,
    *,
    chunks: Any = None,
    backend: str = "memmap",
    codec: str | None = None,
    attrs: Mapping[str, Any] | None = None,
    checksum: bool = False,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    shards: Any = None,
) -> ArrayMeta:
    """The metadata of a new array (backend name and codec checked, chunks and shards
    normalized)."""
    check_backend(backend)
    if backend == "memmap" and codec not in (None, "none"):
        raise InvalidArgument("the memmap backend stores raw bytes: --codec needs --backend zarr")
    if backend == "memmap" and shards is not None:
        raise InvalidArgument("the memmap backend has no shards: --shards needs --backend zarr")
    norm = normalize_chunks(chunks, shape, dtype.itemsize, chunk_bytes)
    return ArrayMeta(
        shape=shape,
        dtype=dtype,
        chunks=norm,
        backend=backend,
        codec=codec or "none",
        attrs=dict(attrs or {}),
        checksum=checksum,
        shards=normalize_shards(shards, shape, norm),
    )


def create_inputs(
    shape: Any, dtype: Any, data: Any, source: Handle | None
) -> tuple[tuple[int, ...], np.dtype, np.ndarray | None]:
    """``Store.create``'s shape, dtype and data: given, or taken from ``data`` / the
    ``source`` (.npy) handle, which must agree with what is given. ``data`` of another
    dtype is converted when numpy's ``same_kind`` rule allows it (else ShapeMismatch)."""
    if source is not None:
        src_shape, src_dtype = source.meta.shape, parse_dtype(source.meta.dtype)
        if shape is not None and normalize_shape(shape) != src_shape:
            raise ShapeMismatch(f"--from file has shape {src_shape}, not {normalize_shape(shape)}")
        if dtype is not None and parse_dtype(dtype) != src_dtype:
            raise ShapeMismatch(f"--from file has dtype {src_dtype}, not {parse_dtype(dtype)}")
        shape, dtype = src_shape, src_dtype
    elif data is not None:
        data = as_data(data)
        if dtype is None:
            dtype = data.dtype
        if shape is None:
            shape = data.shape
        elif normalize_shape(shape) != data.shape:
            raise ShapeMismatch(f"data has shape {data.shape}, not {normalize_shape(shape)}")
    if shape is None or dtype is None:
        raise InvalidArgument("shape and dtype are required (or pass data / from_npy)")
    shape = normalize_shape(shape)
    dt = parse_dtype(dtype)
    if math.prod(shape) * dt.itemsize >= 2**62:
        raise InvalidArgument(f"shape {shape} of {dt} is too large ({math.prod(shape)} items)")
    if data is not None and data.dtype != dt:
        if (
            dt.names is not None
            or data.dtype.names is not None
            or not np.can_cast(data.dtype, dt, casting="same_kind")
        ):
            raise ShapeMismatch(
                f"data of dtype {data.dtype} cannot be stored as {dt} without losing "
                "values; cast it first (or use arraystore cast after creating)"
            )
        data = data.astype(dt)
    return shape, dt, data


def create_array(
    store: StoreRoot,
    name: str,
    shape: Any = None,
    dtype: Any = None,
    *,
    chunks: Any = None,
    backend: str | None = None,
    codec: str | None = None,
    fill: str | None = None,
    seed: int = 0,
    data: Any = None,
    from_npy: str | os.PathLike[str] | None = None,
    attrs: dict[str, Any] | None = None,
    overwrite: bool = False,
    memory: int | str | None = None,
    executor: Any = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    checksum: bool = False,
    progress: Any = None,
    shards: Any = None,
    casting: str | None = None,
    rtol: float | None = None,
    nan_to: Any = None,
    audit: Callable[[Any], None] | None = None,
) -> None:
    """``Store.create``: the new array ``name`` built and committed by one
    :class:`storage.NewArray` transaction, filled by :func:`fill_array`, or cast on write
    from ``from_npy`` into ``dtype`` (:func:`cast_options`; ``audit(CastResult)``)."""
    store.check_writable()
    backend = store.default_backend(backend)
    check_create_args(seed, attrs, from_npy)
    store.refuse_existing(name, overwrite)
    check_backend(backend)  # validate the name early
    if sum(x is not None for x in (fill, data, from_npy)) > 1:
        raise InvalidArgument("give only one of fill, data and from_npy")
    source = open_npy(Path(from_npy)) if from_npy is not None else None
    try:
        how = cast_options(dtype, source, casting, rtol, nan_to)
        shape, dt, data = create_inputs(shape, dtype if how is None else None, data, source)
        meta_for = partial(new_meta, shape, chunks=chunks, backend=backend, codec=codec)
        meta_for = partial(meta_for, attrs=attrs, checksum=checksum, chunk_bytes=chunk_bytes)
        meta_for = partial(meta_for, shards=shards)
        meta = meta_for(dt)  # the arguments checked before any pass over the source
        budget = memory_budget(memory)  # "abc" refused even if nothing is filled
        if how is not None and source is not None:
            how.update(audit=audit, source=Path(os.fspath(from_npy or "")).name)
            _create_cast(store, name, source, how, meta_for, overwrite, budget, executor, progress)
            return
        with store.lock(name):
            store.clean_stale(name)
            store.refuse_existing(name, overwrite)
            with NewArray.begin(store.layout, name, meta) as new:
                fill_array(
                    new.handle,
                    fill=fill,
                    seed=seed,
                    source=source,
                    data=data,
                    memory=budget,
                    executor=executor,
                    progress=progress,
                )
    finally:
        if source is not None:
            source.close()


def cast_options(
    dtype: Any, source: Handle | None, casting: str | None, rtol: float | None, nan_to: Any
) -> dict[str, Any] | None:
    """The cast on write ``create`` does (``ops.cast.CastOnWrite``'s arguments), or None:
    ``dtype`` given with a ``source`` whose dtype it is not; ``casting``, ``rtol`` and
    ``nan_to`` only go with such a cast."""
    given = [
        k for k, v in (("casting", casting), ("rtol", rtol), ("nan_to", nan_to)) if v is not None
    ]
    if given and (source is None or dtype is None):
        names = "/".join(f"--{k.replace('_', '-')}" for k in given)
        need = "--dtype (the target dtype)" if source is not None else "--from FILE and --dtype"
        verb = "apply" if len(given) > 1 else "applies"
        raise InvalidArgument(f"{names} only {verb} when a file is cast on write: give {need}")
    if source is None or dtype is None:
        return None
    try:
        if parse_dtype(dtype) == parse_dtype(source.meta.dtype):
            return None  # nothing to cast: a plain copy
    except ArrayStoreError:
        pass  # "auto", "price:f4,qty:auto", or a bad spec the cast's parser names
    return dict(
        to=dtype,
        casting="value" if casting is None else casting,
        rtol=0.0 if rtol is None else rtol,
        nan_to=nan_to,
    )


def _create_cast(
    store: StoreRoot,
    name: str,
    source: Handle,
    how: dict[str, Any],
    meta_for: Callable[[np.dtype], ArrayMeta],
    overwrite: bool,
    budget: int | None,
    executor: Any,
    progress: Any,
) -> None:
    """``create --from FILE --dtype T``: ``source`` cast chunk by chunk into the new array
    (see :mod:`arraystore.ops.cast.into`); the wide copy is never written. ``how``:
    :func:`cast_options` with ``audit`` (a callable or None) and ``source`` (a label)."""
    from arraystore.ops.cast import (  # lazy: start-up (casting modules)
        CastOnWrite,
        out_dtype,
        plan_cast,
        write_cast,
    )

    budget = budget if budget is not None else default_budget()
    audit, label = how.pop("audit"), how.pop("source")
    with get_executor(executor) as ex:
        spec = plan_cast(source, CastOnWrite(**how), budget, ex)
        meta = meta_for(parse_dtype(out_dtype(source.meta.dtype, spec)))
        with store.lock(name):
            store.clean_stale(name)
            store.refuse_existing(name, overwrite)
            with NewArray.begin(store.layout, name, meta) as new:
                result = write_cast(source, new, spec, budget, ex, source=label, progress=progress)
    if audit is not None:
        audit(result)
