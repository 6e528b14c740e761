"""Array: a lazy handle on one stored array (or one field of it).

Cheap to create: it holds metadata and a backend handle, no data. Indexing with
integers, slices and ``...`` reads only the chunks the index touches and returns numpy.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from arraystore.backends.base import Handle
from arraystore.core.assign import assigned_block
from arraystore.core.chunks import Region, check_region, normalize_index, region_shape
from arraystore.core.dtypes import Field, dtype_to_spec, field_dtype, fields_of
from arraystore.core.meta import ArrayMeta
from arraystore.engine import Executor
from arraystore.errors import FieldNotFound, InvalidArgument, InvalidType, ReadOnlyError
from arraystore.ops import grow
from arraystore.ops.interop import batches, export_file, to_dask, to_xarray
from arraystore.ops.interop.batching import Batches
from arraystore.ops.map.blocks import map_array
from arraystore.ops.map.blocks import map_blocks as _map_blocks
from arraystore.reductions import Reductions

if TYPE_CHECKING:
    from arraystore.store import Store


#: export options and their defaults (``.npy`` takes none: only those changed are passed)
_EXPORT_DEFAULTS: dict[str, Any] = {
    "compression": "snappy",
    "delimiter": ",",
    "nan_as_null": None,
    "masks": True,
}


def _has_ellipsis(key: Any) -> bool:
    return key is Ellipsis or (isinstance(key, tuple) and any(k is Ellipsis for k in key))


class Array(Reductions):
    """Lazy array: ``shape``, ``dtype``, ``chunks``, ``nbytes``; ``arr[...]`` reads.

    Get one with ``store[name]`` (and a field view with ``arr["field"]``); the reductions
    (``stats``, ``sum`` ... ``histogram``) come from :class:`arraystore.reductions.Reductions`.

    Parameters
    ----------
    store : Store
        The store holding the array.
    name : str
        The array's name.
    handle : Handle
        Its open backend handle (``store.open_handle(name)``).
    field : str, optional
        A field of a structured array: this is a view of that field.
    """

    def __init__(self, store: Store, name: str, handle: Handle, field: str | None = None) -> None:
        self.store = store
        self.name = name
        self.handle = handle
        self.field = field
        self._field: Field | None = field_dtype(handle.meta.dtype, field) if field else None

    # ------------------------------------------------------------ properties
    @property
    def meta(self) -> ArrayMeta:
        """The stored metadata (shape, dtype, chunks, backend, codec, attrs, history)."""
        return self.handle.meta

    @property
    def _sub(self) -> tuple[int, ...]:
        return self._field.subshape if self._field else ()

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape (a field view adds its subarray dimensions)."""
        return self.meta.shape + self._sub

    @property
    def dtype(self) -> np.dtype:
        """The dtype (a field view: the field's base dtype)."""
        return self._field.dtype if self._field else self.meta.dtype

    @property
    def chunks(self) -> tuple[int, ...]:
        """The storage chunk shape (a field view adds its subarray dimensions)."""
        return self.meta.chunks + self._sub

    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """The number of elements."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """The size of the data in bytes, uncompressed."""
        return self.size * self.dtype.itemsize

    @property
    def backend(self) -> str:
        """The storage backend: ``"memmap"`` or ``"zarr"``."""
        return self.meta.backend

    @property
    def codec(self) -> str:
        """The zarr codec (``"none"`` for memmap)."""
        return self.meta.codec

    @property
    def fields(self) -> tuple[str, ...]:
        """The field names of a structured array (``()`` for a plain one or a field view)."""
        return () if self._field else self.meta.fields

    @property
    def attrs(self) -> dict[str, Any]:
        """A copy of the user attributes."""
        return dict(self.meta.attrs)

    def __len__(self) -> int:
        if not self.shape:
            raise InvalidType("len() of a 0-d array")
        return self.shape[0]

    def __repr__(self) -> str:
        what = f"{self.name}[{self.field!r}]" if self.field else self.name
        return (
            f"<arraystore.Array {what} shape={self.shape} dtype={dtype_to_spec(self.dtype)} "
            f"chunks={self.chunks} backend={self.backend}>"
        )

    # --------------------------------------------------------------- reading
    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            if self._field is not None or not self.meta.fields:
                raise FieldNotFound(
                    f"no field {key!r}: {self.field or self.name} has a plain dtype"
                )
            return Array(self.store, self.name, self.handle, key)
        if isinstance(key, list) and key and all(isinstance(k, str) for k in key):
            raise InvalidArgument("select one field at a time: arr['price'], not arr[['a', 'b']]")
        region, post = normalize_index(key, self.shape)
        result = self._read(region)[post]
        if not isinstance(result, np.ndarray) and _has_ellipsis(key):
            return np.asarray(result)  # numpy: arr[..., i] is 0-d, not a scalar
        return result

    def _split(self, region: Region) -> tuple[Region, tuple[slice, ...]]:
        nd = self.meta.ndim
        return region[:nd], region[nd:]

    def _read(self, region: Region, out: np.ndarray | None = None) -> np.ndarray:
        logical, sub = self._split(region)
        if self._field is not None and any(
            s.start != 0 or s.stop != n for s, n in zip(sub, self._sub, strict=True)
        ):
            block = self.handle.read(logical, self.field)
            return block[(Ellipsis, *sub)]  # type: ignore[arg-type]
        return self.handle.read(logical, self.field, out)

    def read(self, region: Region | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Read a region (one step-1 slice per dimension, bounds as numpy's slices;
        default: everything) into ``out``.

        Parameters
        ----------
        region : tuple of slice, optional
            One step-1 slice per dimension (default: everything).
        out : numpy.ndarray, optional
            A C-contiguous array of the region's shape and the dtype to read into.

        Returns
        -------
        numpy.ndarray
            The region's data.
        """
        if region is None:
            region = tuple(slice(0, n) for n in self.shape)
        region = check_region(region, self.shape)
        if out is not None:
            shape = region_shape(region)
            if out.shape != shape or out.dtype != self.dtype or not out.flags.c_contiguous:
                raise InvalidArgument(f"out must be C-contiguous {self.dtype} of shape {shape}")
        return self._read(region, out)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self.read()
        return data if dtype is None else data.astype(dtype)

    def iter_chunks(self) -> Iterator[tuple[Region, np.ndarray]]:
        """(region, block) for each chunk, in C order (one chunk in memory at a time)."""
        for region in self.handle.chunk_regions():
            yield region, self.handle.read(region, self.field)

    # --------------------------------------------------------------- writing
    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(key, str):
            self[key][...] = value
            return
        if not self.store.writable:
            raise ReadOnlyError(f"store {self.store.path} is open read-only")
        region, post = normalize_index(key, self.shape)
        if any(isinstance(p, slice) and p.step not in (None, 1) for p in post):
            raise InvalidArgument("writes need step-1 slices (read, modify and write a region)")
        logical, sub = self._split(region)
        if any(s.start != 0 or s.stop != n for s, n in zip(sub, self._sub, strict=True)):
            raise InvalidArgument(
                f"writes to field {self.field!r} must cover its whole subarray {self._sub}"
            )
        # numpy's own conversion (and errors) into a scratch block, before touching disk
        block = assigned_block(value, self.dtype, region_shape(region), post, _has_ellipsis(key))
        # under the array's writer lock (refused while a cast/map/mv/rm/... runs), and
        # only into the array this handle was opened on (not one that replaced it)
        if self.handle.meta.format < 2:  # a write to a format-1 array upgrades it first
            self.store.upgrade(self.name)
            self.handle = self.store.open_handle(self.name)
        with self.store.write_lock(self.name):
            self.handle.check_current()
            self.handle.write(logical, block, self.field)

    append = grow.array_append  # in place, atomic (arraystore.ops.grow)
    resize = grow.array_resize

    # --------------------------------------------------------------- describe
    def info(self) -> dict[str, Any]:
        """A JSON-able description: name, backend, shape, dtype, fields, chunks, codec,
        checksum, nbytes, stored_bytes, ratio (nbytes / stored_bytes), attrs, history,
        format (on disk: 2, or 1 for an array not yet upgraded)."""
        stored = self.handle.stored_bytes()
        meta = self.meta
        return {
            "name": self.name,
            "backend": meta.backend,
            "shape": list(meta.shape),
            "dtype": dtype_to_spec(meta.dtype),
            "fields": [
                {"name": f.name, "dtype": dtype_to_spec(f.dtype), "subshape": list(f.subshape)}
                for f in fields_of(meta.dtype)
            ],
            "chunks": list(meta.chunks),
            "codec": meta.codec,
            "checksum": meta.checksum,
            "nbytes": meta.nbytes,
            "stored_bytes": stored,
            "ratio": (meta.nbytes / stored) if stored else None,
            "attrs": meta.attrs,
            "history": list(meta.history),
            "format": meta.format,
        }

    # ------------------------------------------------------------- map, interop
    def map(
        self,
        fn: Callable[..., np.ndarray] | str,
        *others: Any,
        out: str,
        store: Store | None = None,
        dtype: Any = None,
        backend: str | None = None,
        codec: str | None = None,
        chunks: Any = None,
        attrs: dict[str, Any] | None = None,
        memory: int | str | None = None,
        executor: str | Executor | None = None,
        workers: int | None = None,
        progress: Callable[[Any, Any], None] | None = None,
        overwrite: bool = False,
        resume: bool = False,
        checksum: bool = False,
    ) -> Array:
        """Apply ``fn`` (a function of numpy blocks, or an expression over the fields)
        chunk by chunk into a new array ``out=NAME`` (see :mod:`arraystore.ops.map.blocks`).

        Parameters
        ----------
        fn : callable or str
            ``fn(block, *other_blocks) -> block`` of the output's shape and dtype, or an
            expression over this array's fields (``"price * qty"``).
        *others : Array, str or numpy.ndarray
            More inputs of a function (arrays, array names, small arrays), broadcast.
        out : str
            The new array.
        store : Store, optional
            The store receiving ``out`` (default this array's); a function only.
        dtype : optional
            The output dtype (default: inferred from a tiny first block).
        backend, codec, chunks, attrs, overwrite, checksum, memory, executor, progress
            As in :meth:`Store.create`, but backend and codec default to this array's,
            chunks to the map's grid; ``progress(task, nbytes)`` gets the bytes read.
        workers : int, optional
            Workers of an executor given by name.
        resume : bool, default False
            Finish an interrupted run of the same job, skipping its finished blocks.

        Returns
        -------
        Array
        """
        arr = map_array(
            self,
            fn,
            *others,
            out=out,
            store=store,
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
        return cast(Array, arr)  # (self.store is a Store)

    def astype(
        self,
        dtype: Any,
        *,
        out: str | None = None,
        casting: str = "value",
        rtol: float = 0.0,
        nan_to: float | None = None,
        errors: str = "raise",
        fill: float | None = None,
        checksum: bool | None = None,
        memory: int | str | None = None,
        executor: str | Executor | None = None,
        workers: int | None = None,
        progress: Callable[[Any, Any], None] | None = None,
    ) -> Array:
        """This array cast to ``dtype`` as a NEW stored array ``out``, chunk by chunk with
        the value audit of :meth:`Store.cast` (never an in-memory copy: for that, read
        first, ``np.asarray(arr[...]).astype(dtype)``).

        Parameters
        ----------
        dtype : dtype, str or dict
            The target, as ``to`` of :meth:`Store.cast` (``"f4"``, ``"price:f4,qty:auto"``,
            ``"auto"``...).
        out : str
            The new array (required; it must not exist).
        casting, rtol, nan_to, errors, fill, checksum, memory, executor, workers, progress
            As in :meth:`Store.cast` (default ``casting="value"``: every value survives,
            else :class:`CastError` and nothing is written).

        Returns
        -------
        Array
            The new array ``out``.
        """
        if out is None:
            raise InvalidArgument(
                "astype writes a new stored array: give out=NAME "
                "(np.asarray(arr[...]).astype(dtype) copies in memory)"
            )
        if self.field is not None:
            raise InvalidArgument(
                f"astype of field view {self.field!r}: cast the array, "
                f"store.cast({self.name!r}, {{{self.field!r}: dtype}}, out=...)"
            )
        if out == self.name:
            raise InvalidArgument(
                f"astype writes a new array: out must differ from {self.name!r} "
                f"(store.cast({self.name!r}, dtype) casts in place)"
            )
        self.store.cast(
            self.name,
            dtype,
            out=out,
            casting=casting,
            rtol=rtol,
            nan_to=nan_to,
            errors=errors,
            fill=fill,
            checksum=checksum,
            memory=memory,
            executor=executor,
            workers=workers,
            progress=progress,
        )
        return self.store[out]

    def to_dask(self, fields: str | list[str] | None = None) -> Any:
        """A dask array over the storage chunks (a dict per field for records).

        Parameters
        ----------
        fields : str or list of str, optional
            Fields of a structured array (default all; one name gives one dask array).

        Returns
        -------
        dask.array.Array or dict of dask.array.Array
        """
        return to_dask(self, fields)

    def to_xarray(self, fields: str | list[str] | None = None) -> Any:
        """An xarray view backed by :meth:`to_dask`, dims ``dim_0...`` as in zarr.

        Parameters
        ----------
        fields : str or list of str, optional
            Fields of a structured array (default all).

        Returns
        -------
        xarray.DataArray or xarray.Dataset
            A DataArray for a plain array, a field view or one field; else a Dataset.
        """
        return to_xarray(self, fields)

    def export(
        self,
        path: str | os.PathLike[str],
        *,
        format: str | None = None,
        overwrite: bool = False,
        progress: Callable[[Any, Any], None] | None = None,
        compression: str = "snappy",
        delimiter: str = ",",
        nan_as_null: bool | None = None,
        masks: bool = True,
    ) -> Path:
        """Write this array to a ``.npy``, CSV, Parquet or Arrow IPC file, chunk by chunk
        (see :func:`arraystore.ops.interop.export_file`); returns the path written.

        Parameters
        ----------
        path : str or os.PathLike
            The file (written under a temp name, then renamed).
        format : {"npy", "csv", "parquet", "arrow"}, optional
            Default: from the extension (``.csv.gz`` / ``.bz2`` / ``.zst``: compressed CSV).
        overwrite : bool, default False
            Replace an existing file (else :class:`ArrayExists`).
        progress : callable, optional
            ``progress(None, nbytes)`` after each block written.
        compression : str, default "snappy"
            Parquet compression.
        delimiter : str, default ","
            CSV delimiter.
        nan_as_null : bool, optional
            Write NaN as null (default: in the columns that had nulls at import).
        masks : bool, default True
            Turn ``<col>__valid`` fields back into nulls (``False``: keep them as columns).

        Returns
        -------
        Path
        """
        given = {
            "compression": compression,
            "delimiter": delimiter,
            "nan_as_null": nan_as_null,
            "masks": masks,
        }
        options = {k: v for k, v in given.items() if v != _EXPORT_DEFAULTS[k]}
        return export_file(
            self, path, format=format, overwrite=overwrite, progress=progress, **options
        )

    def batches(
        self,
        batch_size: int,
        *,
        fields: str | list[str] | None = None,
        shuffle: bool = False,
        seed: int = 0,
        to_torch: bool = False,
        torch_dtype: Any = None,
        drop_last: bool = False,
        prefetch: int = 1,
    ) -> Batches:
        """numpy (or torch with ``to_torch=True``) batches, read chunk-wise with read-ahead.

        See :mod:`arraystore.ops.interop.batching` for the shuffle and the torch dtypes.

        Parameters
        ----------
        batch_size : int
            Rows (along axis 0) per batch.
        fields : str or list of str, optional
            Fields of a structured array (default all: ``{field: batch}``; one name gives
            plain batches).
        shuffle, seed : optional
            Shuffle rows within row blocks and the order of the blocks, reproducibly from
            ``seed`` (default 0) and the epoch (``set_epoch``).
        to_torch, torch_dtype : optional
            Yield torch tensors (zero-copy where the dtype maps), converted to
            ``torch_dtype`` (one dtype or ``{field: dtype}``) if given.
        drop_last : bool, default False
            Drop a last, shorter batch.
        prefetch : int, default 1
            Row blocks read ahead by a background thread.

        Returns
        -------
        Batches
            An iterable (one pass per ``iter()``) with ``len()``.
        """
        return batches(
            self,
            batch_size,
            fields=fields,
            shuffle=shuffle,
            seed=seed,
            to_torch=to_torch,
            torch_dtype=torch_dtype,
            drop_last=drop_last,
            prefetch=prefetch,
        )


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
    executor: str | Executor | None = None,
    workers: int | None = None,
    progress: Callable[[Any, Any], None] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    checksum: bool = False,
) -> Array:
    """Apply ``fn`` to aligned numpy blocks of ``arrays`` into a new array (``out=NAME``);
    see :func:`arraystore.ops.map.blocks.map_blocks`.

    Parameters
    ----------
    fn : callable
        ``fn(*blocks) -> block``: one block per input (a view, valid during the call),
        returning a numpy array of the block's broadcast shape and the output dtype.
    *arrays : Array, str or numpy.ndarray
        The inputs, broadcast like numpy: arrays (or field views), names of arrays in
        ``store``, small numpy arrays.
    out : str
        The new array.
    store : Store, optional
        The store receiving ``out`` (default: the first input Array's).
    dtype : optional
        The output dtype (default: inferred from a tiny first block).
    backend, codec, chunks, attrs, overwrite, checksum, memory, executor, progress
        As in :meth:`Store.create`, but backend and codec default to the first stored
        input's, chunks to the map's grid; ``progress(task, nbytes)`` gets the bytes read.
    workers : int, optional
        Workers of an executor given by name.
    resume : bool, default False
        Finish an interrupted run of the same job, skipping its finished blocks.

    Returns
    -------
    Array
    """
    arr = _map_blocks(
        fn,
        *arrays,
        out=out,
        store=store,
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
    return cast(Array, arr)  # (views of a Store are Arrays)
