"""Store (a directory of named arrays, a zarr v3 group) and Array (a lazy handle).

Opening a store or listing it reads small JSON files only, never array data.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from arraystore.core.chunks import DEFAULT_CHUNK_BYTES
from arraystore.engine import Executor
from arraystore.ops.create import create_array
from arraystore.ops.interop import from_dask as _from_dask
from arraystore.ops.interop import import_file
from arraystore.storage.foreign import locate
from arraystore.verbs import StoreVerbs

if TYPE_CHECKING:
    from arraystore.ops.cast import CastResult


class Store(StoreVerbs):
    """A directory of named arrays; ``store[name]`` is an :class:`Array`.

    Open one with :func:`arraystore.open`. Every ``arraystore`` command is a method:
    :meth:`create`, :meth:`ls`, :meth:`info`, :meth:`rename` (``mv``), :meth:`remove`
    (``rm``), :meth:`import_file`, :meth:`stats`, :meth:`cast`, :meth:`map`,
    :meth:`verify` (from :class:`arraystore.verbs.StoreVerbs`); ``export`` is
    :meth:`Array.export`.

    Parameters
    ----------
    path : str or os.PathLike
        The store's directory, or an fsspec URL (``s3://...``, ``memory://...``) for
        zarr arrays.
    mode : {"r", "r+", "a"}, optional
        ``r`` read-only, ``r+`` read-write (the default), ``a`` read-write and create the
        store if missing. A zarr group arraystore did not write opens read-only unless
        ``mode`` asks for writes (:mod:`arraystore.storage.foreign`).
    storage_options : dict, optional
        Options of the fsspec file system of a URL.
    only : str, optional
        A bare array (a ``.npy`` file or zarr array folder in ``path``): the store's one
        array (see :func:`open_array`).
    """

    def __getitem__(self, name: str) -> Array:
        return Array(self, name, self.open_handle(name))

    def info(self, name: str) -> dict[str, Any]:
        """The description of array ``name`` (see :meth:`Array.info`).

        Parameters
        ----------
        name : str
            The array.
        """
        return self[name].info()

    def create(
        self,
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
        executor: str | Executor | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        checksum: bool = False,
        progress: Callable[[Any, Any], None] | None = None,
        shards: Any = None,
        casting: str | None = None,
        rtol: float | None = None,
        nan_to: float | None = None,
        audit: Callable[[CastResult], None] | None = None,
    ) -> Array:
        """Create an array (atomically: built in a hidden temp folder, then renamed in).

        Parameters
        ----------
        name : str
            The new array.
        shape, dtype : optional
            Shape (an int or a tuple) and dtype (numpy's or a spec: ``"f8"``,
            ``"price:f4,qty:i4"``); from ``data`` / ``from_npy`` if not given. A ``dtype``
            other than ``from_npy``'s casts the file chunk by chunk as :meth:`cast` does
            (``"f4"``, ``"price:f4,qty:auto"``, ``"auto"``: the smallest lossless dtypes,
            from a first pass over the file); the wide copy is never written.
        chunks, chunk_bytes : optional
            Chunk shape (an int for axis 0, ``-1`` a whole dimension); default: row blocks
            of about ``chunk_bytes`` (64 MiB).
        backend, codec : str, optional
            ``memmap`` (default for a local store) or ``zarr`` (default, and the only one,
            for a URL); the zarr codec (``"zstd"``, ``"zstd:3"``, ``"lz4"``, ``"none"``...).
        fill, seed : optional
            ``"zeros"`` (default), ``"ones"``, ``"range"``, ``"random"`` (reproducible from
            ``seed``, default 0) or ``"empty"``.
        data, from_npy : optional
            The content instead: an array-like, or a ``.npy`` file (streamed).
        attrs : dict, optional
            User attributes (JSON).
        overwrite : bool, default False
            Replace an existing array ``name`` (else :class:`ArrayExists`).
        memory, executor, progress : optional
            Memory budget (bytes or ``"512MiB"``); executor (name or instance, default
            ``"threads"``); ``progress(task, nbytes)`` after each chunk written.
        checksum : bool, default False
            Store checksums (zarr: the crc32c codec; memmap: block checksums).
        shards : optional
            zarr: shard shape (like chunks, multiples of them): one file of chunks + index each.
        casting, rtol, nan_to : optional
            How ``from_npy`` is cast into ``dtype``, as in :meth:`cast` (default
            ``"value"``: refused, with nothing written, unless every value survives; the
            audit goes into the new array's history).
        audit : callable, optional
            ``audit(result)`` gets the cast's :class:`~arraystore.ops.cast.CastResult`.

        Returns
        -------
        Array
        """
        create_array(self, **_forward(locals()))  # the same parameters
        return self[name]

    def import_file(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        format: str | None = None,
        dtype: Any = None,
        columns: list[str] | None = None,
        errors: str = "raise",
        backend: str | None = None,
        codec: str | None = None,
        chunks: Any = None,
        attrs: Mapping[str, Any] | None = None,
        overwrite: bool = False,
        null_mask: bool = True,
        workers: int | None = None,
        progress: Callable[[Any, Any], None] | None = None,
        checksum: bool = False,
        shards: Any = None,
        delimiter: str | None = None,
        header: bool | None = None,
        skip_rows: int | None = None,
        block_size: int | None = None,
        null_values: Sequence[str] | None = None,
        quote_char: str | bool | None = None,
        newlines_in_values: bool | None = None,
        batch_rows: int | None = None,
        casting: str | None = None,
        rtol: float | None = None,
        nan_to: float | None = None,
        audit: Callable[[CastResult], None] | None = None,
    ) -> Array:
        """Import a ``.npy``, CSV, Parquet or Arrow IPC file as array ``name``, streamed and
        committed atomically (see :func:`arraystore.ops.interop.import_file`).

        Parameters
        ----------
        name, path
            The new array's name; the file (str or os.PathLike).
        format : {"npy", "csv", "parquet", "arrow"}, optional (default: the file's extension)
        dtype, columns : optional
            A structured spec (``"price:f4,qty:i4"``) or ``{column: dtype}`` overriding the inferred
            column types, or one dtype for all (``.npy``: the file is cast into it); the columns.
        errors : {"raise", "coerce"}, default "raise"
            ``"coerce"``: values that do not parse / fit become missing.
        backend, codec, chunks, shards, attrs, overwrite, checksum, progress
            As in :meth:`create` (``progress(None, nbytes)``: the file's bytes pro rata).
        null_mask, workers : optional
            Add a ``<col>__valid`` field to integer/bool/string columns holding nulls
            (default True); conversion threads (default ``min(2, cpu_count)``).
        delimiter, header, skip_rows, block_size, null_values, quote_char, newlines_in_values
            CSV options; ``None``: the default (a ``.tsv`` file is tab-separated).
        batch_rows : int, optional
            Parquet / Arrow: rows per batch read.
        casting, rtol, nan_to, audit : optional
            ``.npy``: a ``dtype`` other than the file's casts it on write, as in
            :meth:`create` (``"auto"``: the smallest lossless dtypes).
        """
        arr = import_file(self, **_forward(locals(), _FORMAT_OPTIONS))  # the same parameters
        return cast(Array, arr)

    def __repr__(self) -> str:
        return f"<arraystore.Store {str(self.path)!r} arrays={len(self)} mode={self.mode!r}>"


#: ``import_file``'s format options: passed only when given (the reader refuses others)
_FORMAT_OPTIONS = (
    "delimiter",
    "header",
    "skip_rows",
    "block_size",
    "null_values",
    "quote_char",
    "newlines_in_values",
    "batch_rows",
)


def _forward(args: dict[str, Any], optional: Sequence[str] = ()) -> dict[str, Any]:
    """A façade method's arguments (its ``locals()`` on entry) for the op it wraps, which
    takes the same names: less ``self``, and less the ``optional`` ones left ``None``."""
    return {k: v for k, v in args.items() if k != "self" and not (k in optional and v is None)}


def open(
    path: str | os.PathLike[str],
    mode: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Store:
    """Open a store (``mode="a"`` creates it when missing). Reads metadata only.

    Any zarr v3 or v2 group is a store: one arraystore did not write (zarr-python,
    xarray, tensorstore) lists its arrays by their zarr paths (``group/sub/array``) and
    opens read-only unless ``mode`` asks for writes (``"r+"``: new arrays may be added
    to a v3 group; its own arrays are never written).

    Parameters
    ----------
    path : str or os.PathLike
        The store's directory, or an fsspec URL (``s3://bucket/data.store``, ``gs://...``,
        ``memory://...``) for zarr arrays.
    mode : {"r", "r+", "a"}, optional
        ``r`` read-only, ``r+`` read-write, ``a`` read-write and create the store if
        missing. Default: ``r+`` for a store of ours, ``r`` for a foreign group.
    storage_options : dict, optional
        Options of the fsspec file system (e.g. ``{"endpoint_url": ..., "key": ...,
        "secret": ...}`` for s3fs).

    Returns
    -------
    Store
    """
    return Store(path, mode, storage_options)


def open_array(path: str | os.PathLike[str], mode: str | None = None) -> Array:
    """Open one array by its path: a ``.npy`` file (read in place, read-only), a zarr
    array folder (``data.zarr/temperature``: named from the outermost group holding it)
    or an array folder of a store.

    Parameters
    ----------
    path : str or os.PathLike
        The file or folder.
    mode : {"r", "r+"}, optional
        As in :func:`open`, for the store holding it (a bare array is read-only).

    Returns
    -------
    Array
    """
    root, name, bare = locate(Path(os.fspath(path)))
    store = Store(root, mode, only=name if bare else None)
    return store[name]


def from_dask(
    darr: Any,
    store: Store,
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
    scheduler: Any = None,
    num_workers: int | None = None,
    compute_kwargs: Mapping[str, Any] | None = None,
) -> Array:
    """Store a dask array chunk by chunk as array ``name``.

    Each dask task writes whole storage chunks (see
    :func:`arraystore.ops.interop.dask.from_dask`); committed atomically.

    Parameters
    ----------
    darr : dask.array.Array or dict of dask.array.Array
        The data; a dict ``{field: dask array}`` gives a structured array.
    store : Store
        The store receiving it.
    name : str
        The new array.
    backend, codec, chunks, shards, attrs, overwrite, checksum
        As in :meth:`Store.create` (default chunks: the dask chunks when regular; with
        shards, the dask array is rechunked to them: one task per shard).
    ndim : int, optional
        For a dict: the record dimensions (default: the smallest ndim; the others are
        subarray dimensions of the fields).
    scheduler, num_workers, compute_kwargs : optional
        dask's compute options (``scheduler="threads"``, ...), given to
        ``dask.array.store``.

    Returns
    -------
    Array
    """
    compute = dict(compute_kwargs or {})
    if scheduler is not None:
        compute["scheduler"] = scheduler
    if num_workers is not None:
        compute["num_workers"] = num_workers
    arr = _from_dask(
        darr,
        store,
        name,
        backend=backend,
        codec=codec,
        chunks=chunks,
        attrs=attrs,
        overwrite=overwrite,
        ndim=ndim,
        checksum=checksum,
        shards=shards,
        **compute,
    )
    return cast(Array, arr)


from arraystore.array import Array  # noqa: E402

__all__ = ["Array", "Store", "from_dask", "open", "open_array"]
