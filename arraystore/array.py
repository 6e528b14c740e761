"""Array: a lazy handle on one stored array (or one field of it).

Cheap to create: it holds metadata and a backend handle, no data. Indexing with
integers, slices and ``...`` reads only the chunks the index touches and returns numpy;
integer arrays and boolean masks (``arr[[1, 5]]``, ``arr[mask]``, ``arr.oindex``,
``arr.vindex``) go through :mod:`arraystore.indexing`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from arraystore.backends.base import Handle
from arraystore.core.assign import assigned_block
from arraystore.core.chunks import Region, check_region, normalize_index, region_shape
from arraystore.core.dtypes import Field, dtype_to_spec, field_dtype
from arraystore.core.meta import ArrayMeta
from arraystore.core.selection import basic_selection
from arraystore.engine import Executor
from arraystore.errors import FieldNotFound, InvalidArgument, InvalidType, ReadOnlyError
from arraystore.grouping import Grouping
from arraystore.indexing import Indexer, get_selection, plan, set_selection
from arraystore.ops import grow
from arraystore.ops.describe import describe
from arraystore.ops.map.blocks import map_array
from arraystore.ops.map.blocks import map_blocks as _map_blocks
from arraystore.reductions import Reductions
from arraystore.transfers import Transfers

if TYPE_CHECKING:
    from arraystore.store import Store


#: export options and their defaults (``.npy`` takes none: only those changed are passed)
def _has_ellipsis(key: Any) -> bool:
    return key is Ellipsis or (isinstance(key, tuple) and any(k is Ellipsis for k in key))


class Array(Reductions, Transfers, Grouping):
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
    def shards(self) -> tuple[int, ...] | None:
        """The shard shape of a sharded zarr array (its chunks are then the inner chunks
        of each shard file), else None."""
        return None if self.meta.shards is None else self.meta.shards + self._sub

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
        sel = plan(self, "numpy", key)
        if sel is not None:  # integer arrays, boolean masks: numpy's advanced indexing
            return get_selection(self, sel)
        region, post = normalize_index(key, self.shape)
        result = self._read(region)[post]
        if not isinstance(result, np.ndarray) and _has_ellipsis(key):
            return np.asarray(result)  # numpy: arr[..., i] is 0-d, not a scalar
        return result

    @property
    def oindex(self) -> Indexer:
        """Orthogonal selection as zarr's: each axis on its own by an integer, a slice, an
        integer array or a boolean mask (``arr.oindex[[0, 2], [1, 3]]`` is a 2x2 block)."""
        return Indexer(self, "orthogonal")

    @property
    def vindex(self) -> Indexer:
        """Coordinate selection as zarr's: one integer array per axis, broadcast together
        (``arr.vindex[[0, 2], [1, 3]]`` is the 2 points), or one boolean mask."""
        return Indexer(self, "coordinate")

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
    def upgrade_format(self) -> None:
        """Before a write: an array still in format 1 (written before format 2) is
        upgraded in place (``Store.upgrade``) and this view reopened on it."""
        if self.handle.meta.format < 2:
            self.store.upgrade(self.name)
            self.handle = self.store.open_handle(self.name)

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(key, str):
            self[key][...] = value
            return
        self.store.refuse_foreign(self.name)  # (in any mode: never written)
        if not self.store.writable:
            raise ReadOnlyError(f"store {self.store.path} is open read-only")
        self.upgrade_format()
        sel = plan(self, "numpy", key)
        if sel is not None:
            set_selection(self, sel, value)
            return
        region, post = normalize_index(key, self.shape)
        if any(isinstance(p, slice) and p.step not in (None, 1) for p in post):
            set_selection(self, basic_selection(key, self.shape), value)  # strided: by chunk
            return
        logical, sub = self._split(region)
        # numpy's own conversion (and errors) into a scratch block, before touching disk
        block = assigned_block(value, self.dtype, region_shape(region), post, _has_ellipsis(key))
        # under the array's writer lock (refused while a cast/map/mv/rm/... runs), and
        # only into the array this handle was opened on (not one that replaced it)
        with self.store.write_lock(self.name):
            self.handle.check_current()
            if any(s.start != 0 or s.stop != n for s, n in zip(sub, self._sub, strict=True)):
                part: tuple[Any, ...] = (Ellipsis, *sub)  # part of a subarray field: the
                whole = self.handle.read(logical, self.field)  # backends write it whole
                whole[part] = block
                block = whole
            self.handle.write(logical, block, self.field)

    append = grow.array_append  # in place, atomic (arraystore.ops.grow)
    resize = grow.array_resize

    # --------------------------------------------------------------- describe
    def info(self) -> dict[str, Any]:
        """A JSON-able description: name, backend, shape, dtype, fields, chunks, shards
        (zarr: the shard shape, chunks then being the inner chunks; else None), codec,
        checksum, nbytes, stored_bytes, ratio (nbytes / stored_bytes), attrs, history,
        format (on disk: 2, or 1 for an array not yet upgraded); a foreign array (a zarr
        array or .npy arraystore did not write) also: foreign, dims, read_path."""
        return describe(self.name, self.handle)

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
        shards: Any = None,
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
        backend, codec, chunks, shards, attrs, overwrite, checksum, memory, executor, progress
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
            shards=shards,
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
    shards: Any = None,
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
    backend, codec, chunks, shards, attrs, overwrite, checksum, memory, executor, progress
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
        shards=shards,
    )
    return cast(Array, arr)  # (views of a Store are Arrays)
