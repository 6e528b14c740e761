"""dask and xarray views of stored arrays, and storing dask arrays (see :mod:`.interop`).

:func:`to_dask`: one dask chunk per storage chunk (zarr) or logical row block (memmap);
a structured array gives ``{field: dask array}`` (columnar, like the zarr layout), never
a record dask array. Graph tasks reopen the store by path, so the graph pickles and runs
on ``distributed`` workers that see the same storage. :func:`from_dask` writes whole
storage chunks per dask task into a temp array committed atomically. :func:`to_xarray`
wraps :func:`to_dask` with the zarr backend's dimension names.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from arraystore.backends import get_backend
from arraystore.core.dtypes import parse_dtype
from arraystore.core.meta import SIDECAR
from arraystore.errors import FieldNotFound, InvalidArgument
from arraystore.ops.create import new_meta
from arraystore.ops.io.common import check_target, new_array, require
from arraystore.storage.nodes import NODE

if TYPE_CHECKING:
    from arraystore.storage import ArrayView, StoreRoot


# --------------------------------------------------------------------- dask
def _dims(
    ndim: int, field: str | None = None, extra: int = 0, known: tuple[str, ...] | None = None
) -> list[str]:
    """Dimension names, the same as the zarr backend writes (``dim_0``, ``vec_dim_0``),
    or the array's own (``known``: a foreign array's ``dimension_names``)."""
    names = list(known) if known else [f"dim_{i}" for i in range(ndim)]
    return names + [f"{field}_dim_{i}" for i in range(extra)]


class _Source:
    """A picklable, lazily opened read view of one array (field) for dask's ``from_array``.

    Each process opens the store by path on first use; dask passes step-1 slices."""

    def __init__(self, store_path: Path, name: str, field: str | None, arr: ArrayView) -> None:
        self.store_path = store_path
        #: the store class to reopen with (the façade's: pickled by reference)
        self.store_type = type(arr.store)
        self.name = name
        self.field = field
        self.shape = arr.shape
        self.dtype = arr.dtype
        self.ndim = len(self.shape)
        self._arr: ArrayView | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_arr"] = state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _open(self) -> ArrayView:
        with self._lock:  # dask's threads share this object: open once
            if self._arr is None:
                arr = self.store_type(self.store_path, mode="r")[self.name]
                arr.handle.prepare()  # open the file now, not racily in several threads
                self._arr = arr[self.field] if self.field else arr
            return self._arr

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self._open()[key])


def to_dask(arr: ArrayView, fields: str | list[str] | None = None) -> Any:
    """A dask array per field, chunked like the storage (see the module docstring).

    Plain arrays and field views give one ``dask.array.Array``; structured arrays give
    ``{field: dask array}`` for ``fields`` (default all; a single name gives one array).
    """
    da = require("dask.array", "to_dask")
    base = require("dask.base", "to_dask")
    names = _field_list(arr, fields)
    stamp: Any
    try:
        meta_file = arr.store.path / arr.name / (SIDECAR if arr.meta.format < 2 else NODE)
        # remote: the metadata's bytes (its history changes on every rewrite)
        stamp = meta_file.read_bytes() if arr.store.remote else os.stat(meta_file).st_mtime_ns
    except OSError:
        stamp = 0
    root = arr.store.path if arr.store.remote else arr.store.path.resolve()
    out: dict[str, Any] = {}
    for fname in names:
        view = arr[fname] if fname and arr.field is None else arr
        src = _Source(root, arr.name, fname or arr.field, view)
        token = base.tokenize(
            str(src.store_path), arr.name, fname, stamp, view.shape, view.dtype.str
        )
        d = da.from_array(
            src,
            chunks=view.chunks,
            name=f"arraystore-{arr.name}-{fname or ''}-{token}",
            lock=False,
            asarray=False,
            fancy=False,
            meta=np.empty((0,) * len(view.shape), dtype=view.dtype),
        )
        out[fname or arr.name] = d
    if len(names) == 1 and (names[0] is None or isinstance(fields, str) or arr.field):
        return next(iter(out.values()))
    return out


def _field_list(arr: ArrayView, fields: str | list[str] | None) -> list[str | None]:
    if arr.field is not None or not arr.meta.fields:
        if fields not in (None, [], arr.field) and fields != [arr.field]:
            raise InvalidArgument(
                f"{arr.name} has no fields to select (plain dtype or a field view)"
            )
        return [None]
    if fields is None:
        return list(arr.meta.fields)
    chosen = [fields] if isinstance(fields, str) else list(fields)
    for f in chosen:
        if f not in arr.meta.fields:
            raise FieldNotFound(f"no field {f!r} (fields: {', '.join(arr.meta.fields)})")
    return list(chosen)


class _Target:
    """A picklable writer for ``dask.array.store``: each block opens the temp array (by
    path, so it works on any worker that sees the storage), writes, closes."""

    def __init__(
        self, path: Path, sidecar: dict[str, Any], backend: str, field: str | None, ndim: int
    ) -> None:
        self.path = path
        self.sidecar = sidecar
        self.backend = backend
        self.field = field
        self.ndim = ndim

    def __setitem__(self, key: tuple[slice, ...], value: np.ndarray) -> None:
        handle = get_backend(self.backend).open(self.path, self.sidecar, "r+")
        try:
            region = tuple(slice(k.start or 0, k.stop) for k in key[: self.ndim])
            handle.write(region, np.asarray(value), self.field)
        finally:
            handle.close()


def _regular(chunks: tuple[tuple[int, ...], ...]) -> tuple[int, ...] | None:
    """The chunk shape if every chunk but the last of each axis is equal, else None."""
    out = []
    for axis in chunks:
        if not axis:
            out.append(1)
            continue
        first = axis[0]
        if any(c != first for c in axis[:-1]) or axis[-1] > first:
            return None
        out.append(max(1, first))
    return tuple(out)


def from_dask(
    darr: Any,
    store: StoreRoot,
    name: str,
    *,
    backend: str | None = None,
    codec: str | None = None,
    chunks: Any = None,
    attrs: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    ndim: int | None = None,
    checksum: bool = False,
    shards: Any = None,
    **compute: Any,
) -> ArrayView:
    """Store a dask array (or ``{field: dask array}``, a structured array) as ``name``.

    Storage chunks are the dask chunks when they are regular (else ``chunks`` / auto,
    and the dask array is rechunked to them), so every dask task writes whole chunks and
    no two tasks touch the same chunk. For a dict, the first ``ndim`` dims (default: the
    smallest ndim of the arrays) are the records; further dims are subarray fields.
    Written with ``dask.array.store(..., lock=False)`` (``compute`` kwargs, e.g.
    ``scheduler=``, are passed on) into a temp array, committed atomically.
    ``checksum=True`` stores checksums (computed after the dask writes, before the commit).
    ``shards`` (zarr): the dask array is rechunked to them, so each task writes a shard.
    """
    da = require("dask.array", "from_dask")
    backend = store.default_backend(backend)
    check_target(store, name, overwrite)
    if isinstance(darr, Mapping):
        if not darr:
            raise InvalidArgument("from_dask needs at least one field")
        items = {str(k): da.asarray(v) for k, v in darr.items()}
        nd = ndim if ndim is not None else min(v.ndim for v in items.values())
        first = next(iter(items.values()))
        shape = tuple(first.shape[:nd])
        for k, v in items.items():
            if v.ndim < nd or tuple(v.shape[:nd]) != shape:
                raise InvalidArgument(f"field {k!r} has shape {v.shape}, not {shape} + subarray")
        dt = parse_dtype(np.dtype([(k, v.dtype, tuple(v.shape[nd:])) for k, v in items.items()]))
        base_chunks = first.chunks[:nd]
    else:
        d = da.asarray(darr)
        items = {"": d}
        nd = d.ndim
        shape = tuple(d.shape)
        dt = parse_dtype(d.dtype)
        base_chunks = d.chunks
    if any(isinstance(s, float) and np.isnan(s) for s in shape):
        raise InvalidArgument("the dask array has unknown chunk sizes; call compute_chunk_sizes()")
    reg = _regular(tuple(base_chunks)) if chunks is None else None
    meta = new_meta(
        shape,
        dt,
        chunks=reg if reg else chunks,
        backend=backend,
        codec=codec,
        attrs=attrs,
        checksum=checksum,
        shards=shards,
    )
    sources, targets = [], []
    with store.lock(name), new_array(store, name, meta, overwrite) as new:
        sidecar = meta.to_doc()
        for k, v in items.items():
            want = (meta.shards or meta.chunks) + tuple(v.shape[nd:])
            if tuple(c[0] if c else 0 for c in v.chunks) != want or _regular(v.chunks) is None:
                v = v.rechunk(want)
            sources.append(v)
            targets.append(_Target(new.path, sidecar, backend, k or None, nd))
        if sources and meta.size:
            da.store(sources, targets, lock=False, compute=True, **compute)
        # the workers' writes are made durable by NewArray's handle.flush() at the commit
    return store[name]


# ------------------------------------------------------------------- xarray
def to_xarray(arr: ArrayView, fields: str | list[str] | None = None) -> Any:
    """An ``xarray.DataArray`` (plain / field view) or ``Dataset`` (structured), lazily
    backed by :func:`to_dask`; dims ``dim_0..`` and ``<field>_dim_0..`` as in zarr (a
    foreign array's own dimension names when it has them)."""
    xr = require("xarray", "to_xarray")
    d = to_dask(arr, fields)
    nd = arr.meta.ndim
    if not isinstance(d, dict):
        label = arr.field or arr.name
        extra = d.ndim - nd
        return xr.DataArray(d, dims=_dims(nd, label, extra, arr.meta.dims), name=label)
    variables = {k: (_dims(nd, k, v.ndim - nd), v) for k, v in d.items()}
    return xr.Dataset(variables, attrs={"arraystore_array": arr.name})
