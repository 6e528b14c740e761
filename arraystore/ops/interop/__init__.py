"""Interop: import/export files, dask, xarray and torch (DESIGN.md §8).

Everything heavy is optional and imported inside the functions, so ``import arraystore``
never imports pyarrow, dask, xarray or torch; a missing package raises
:class:`MissingDependency` with the ``pip install 'arraystore[...]'`` line to run.

Files (:func:`import_file` / :func:`export_file`; the format comes from the extension or
``format=``):

=============  =====================================================================
``npy``        ``.npy``: streamed chunk by chunk (``Store.create(from_npy=...)``); export
               writes the header, then each chunk with ``pwrite`` (no mapping).
``csv``        ``.csv`` / ``.tsv`` / ``.csv.gz``: pyarrow's streaming CSV reader; see
               :mod:`.io_csv` for types, parse errors (with line numbers) and ``errors``.
``parquet``    ``.parquet`` / ``.pq``: streamed by record batches of each row group.
``arrow``      ``.arrow`` / ``.feather`` / ``.ipc`` (IPC file) and ``.arrows`` (IPC
               stream): streamed by record batch.
=============  =====================================================================

Tables become *structured* arrays with one field per column (a fixed-size list column
becomes a subarray field); the null policy, type mapping and names are documented in
:mod:`.io_arrow`. Every import builds the new array in a hidden temp folder of the store
while holding the array's writer lock and renames it in only when complete, as
``Store.create`` does: a failed or interrupted import leaves nothing behind (and an
existing array of that name untouched). Exports write ``.FILE.part-*`` beside the target
and ``os.replace`` it at the end.

dask (:func:`to_dask` / :func:`from_dask`): one dask chunk per storage chunk (zarr) or
logical row block (memmap); a structured array gives a ``dict`` of dask arrays, one per
field (columnar, like the zarr layout), never a record dask array. Graph tasks reopen
the store by path, so they run on ``distributed`` workers that see the same storage.

xarray: a zarr-backed *structured* array is a zarr v3 group with one array per field and
``dimension_names`` set, so ``xarray.open_zarr(STORE/NAME, consolidated=False)`` opens
it as a Dataset with one variable per field, with no warning (format 2: our metadata is
in the group's ``zarr.json``). Quirks: the variables come in directory order (not field
order), and subarray fields get a second dimension ``<field>_dim_0``. A *plain* zarr
array is a bare zarr array, which ``open_zarr`` does not open (it wants a group; the
store root holds every array, whose ``dim_0`` sizes conflict). :func:`to_xarray` works
for every backend: it wraps :func:`to_dask` in a ``DataArray`` (plain) or ``Dataset``
(structured) with the same dimension names.

torch: see :mod:`arraystore.ops.interop.batching` (:func:`batches`, :func:`to_torch`).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from arraystore.backends.memmap import bytes_view, write_header
from arraystore.core.chunks import Region
from arraystore.errors import ArrayExists, InvalidArgument
from arraystore.fs import fsync_dir
from arraystore.ops.create import create_array
from arraystore.ops.interop.batching import Batches
from arraystore.ops.interop.batching import to_torch as _to_torch
from arraystore.ops.interop.dask import from_dask as _from_dask
from arraystore.ops.interop.dask import to_dask as _to_dask
from arraystore.ops.interop.dask import to_xarray as _to_xarray
from arraystore.ops.io.common import (
    MissingDependency,
    check_target,
    read_ahead,
    read_fields,
    require,
    row_regions,
)

if TYPE_CHECKING:
    from arraystore.storage import ArrayView, StoreRoot

__all__ = [
    "FORMATS",
    "MissingDependency",
    "batches",
    "detect_format",
    "export_file",
    "from_dask",
    "import_file",
    "require",
    "to_dask",
    "to_torch",
    "to_xarray",
]

FORMATS = ("npy", "csv", "parquet", "arrow")
_EXPORT_OPTIONS = {"compression", "delimiter", "nan_as_null", "masks"}


# ------------------------------------------------------------------- formats
_EXT = {
    ".npy": "npy",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".arrow": "arrow",
    ".arrows": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
}
_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")


def detect_format(path: str | os.PathLike[str], format: str | None = None) -> str:
    """``npy``, ``csv``, ``parquet`` or ``arrow`` from ``format`` or the file extension."""
    if format is not None:
        fmt = format.strip().lower()
        fmt = {"ipc": "arrow", "feather": "arrow", "pq": "parquet", "tsv": "csv"}.get(fmt, fmt)
        if fmt not in FORMATS:
            raise InvalidArgument(f"unknown format {format!r} (choose from: {', '.join(FORMATS)})")
        return fmt
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in _EXT:
        return _EXT[suffixes[-1]]
    raise InvalidArgument(
        f"cannot tell the format of {os.fspath(path)!r} from its extension; pass format= "
        f"(--format) one of: {', '.join(FORMATS)}"
    )


# ------------------------------------------------------------------- import
def import_file(
    store: StoreRoot,
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
    casting: str | None = None,
    rtol: float | None = None,
    nan_to: Any = None,
    audit: Callable[[Any], None] | None = None,
    **options: Any,
) -> ArrayView:
    """Import a ``.npy``, CSV, Parquet or Arrow IPC file as array ``name`` (atomically).

    ``dtype``: for tables, a structured spec (``"price:f4,qty:i4"``) or ``{column: dtype}``
    overriding the inferred type of those columns (others are inferred), or one plain
    dtype for every column; for ``.npy``, the file's dtype must equal it. ``columns``:
    the columns to import (default all). ``errors``: ``"raise"`` (default) or
    ``"coerce"`` (values that do not parse/fit become missing: NaN, or 0 + a mask field,
    counted in ``attrs["import"]``). ``null_mask``: add a ``<col>__valid`` field to
    integer/bool/string columns holding nulls (else a sentinel, the dtype's min, marks
    them; see :mod:`.io_arrow`).
    ``options`` are format options (CSV: ``delimiter``, ``header``, ``skip_rows``,
    ``block_size``, ``null_values``, ``quote_char``, ``newlines_in_values``; Parquet/Arrow:
    ``batch_rows``). ``progress(None, nbytes)`` is called as rows are written, with
    ``nbytes`` the source file's bytes pro rata (they add up to the file size, a progress
    bar's total; a CSV file reports during its second, binary pass). ``checksum``: store
    checksums (zarr: crc32c codec; memmap: block checksums, see ``verify``); ``shards``
    the zarr shard shape. Returns the new :class:`Array`.

    ``.npy`` into another ``dtype`` (or ``"auto"``), Parquet/Arrow numeric columns into
    others: cast on write as ``Store.create`` does, under ``casting`` (default
    ``"value"``), ``rtol``, ``nan_to``; ``audit(CastResult)``.
    """
    if errors not in ("raise", "coerce"):
        raise InvalidArgument(f"errors must be 'raise' or 'coerce', got {errors!r}")
    src = _source_file(path)
    fmt = detect_format(src, format)
    backend = store.default_backend(backend)
    common = dict(
        dtype=dtype,
        columns=columns,
        errors=errors,
        backend=backend,
        codec=codec,
        chunks=chunks,
        attrs=attrs,
        null_mask=null_mask,
        overwrite=overwrite,
        workers=workers or min(2, os.cpu_count() or 1),
        progress=progress,
        checksum=checksum,
        shards=shards,
    )
    cast = dict(casting=casting, rtol=rtol, nan_to=nan_to, audit=audit)
    if fmt == "npy":
        return _import_npy(store, name, src, options, common, cast)
    check_target(store, name, overwrite)
    with store.lock(name):
        _import_table(store, name, src, fmt, options, common, cast)
    return store[name]


def _source_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, which must be a regular file."""
    src = Path(path)
    if not src.is_file():
        if src.is_dir():
            raise InvalidArgument(f"{src} is a directory, not a file")
        if src.exists():
            raise InvalidArgument(f"{src} is not a regular file")
        raise InvalidArgument(f"no such file: {src}")
    return src


def _import_table(
    store: StoreRoot,
    name: str,
    src: Path,
    fmt: str,
    options: dict[str, Any],
    common: dict[str, Any],
    cast: dict[str, Any],
) -> None:
    """A CSV, Parquet or Arrow IPC file into array ``name`` (its lock held); ``cast``: how
    Parquet/Arrow columns are cast into ``dtype`` (CSV parses into it: none taken)."""
    dtype = common["dtype"]
    specs = dtype.values() if isinstance(dtype, Mapping) else str(dtype or "").split(",")
    if any(str(v).split(":")[-1].strip() == "auto" for v in specs):
        raise InvalidArgument(
            f"--dtype auto needs a file read twice (.npy); import the {fmt} file, then "
            "'arraystore cast --auto' it"
        )
    if fmt == "csv":
        from arraystore.ops.io.csv import import_csv  # lazy: needs pyarrow (optional)

        given = [k for k in ("casting", "rtol", "nan_to") if cast[k] is not None]
        if given:
            raise InvalidArgument(
                f"{'/'.join(given)} {'apply' if len(given) > 1 else 'applies'} to .npy, "
                "Parquet and Arrow imports; a CSV import parses straight into --dtype"
            )
        import_csv(store, name, src, options=options, **common)
    else:
        from arraystore.ops.io.arrow import import_table  # lazy: needs pyarrow (optional)

        import_table(store, name, src, fmt, options=options, cast=cast, **common)


def _import_npy(
    store: StoreRoot,
    name: str,
    src: Path,
    options: Mapping[str, Any],
    common: Mapping[str, Any],
    cast: Mapping[str, Any],
) -> ArrayView:
    """A .npy file through ``create --from`` (cast on write when ``dtype`` is not its own);
    ``common``: :func:`import_file`'s options (those of tables are ignored)."""
    if common["columns"] is not None or options:
        raise InvalidArgument(
            f".npy import takes no columns/format options (got {sorted(options) or 'columns'})"
        )
    keep = ("dtype", "backend", "codec", "chunks", "overwrite", "progress", "checksum", "shards")
    create_array(
        store,
        name,
        from_npy=src,
        attrs={**(common["attrs"] or {}), "import": {"format": "npy", "source": src.name}},
        **{k: common[k] for k in keep},
        **cast,
    )
    return store[name]


# ------------------------------------------------------------------- export
def export_file(
    arr: ArrayView,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    overwrite: bool = False,
    progress: Callable[[Any, Any], None] | None = None,
    **options: Any,
) -> Path:
    """Write ``arr`` to a ``.npy``, CSV, Parquet or Arrow IPC file, chunk by chunk.

    Tables get one column per field (masks ``<col>__valid`` turn back into nulls; the
    original column names and Arrow types recorded at import are restored). The file is
    written beside the target under a temp name, fsynced and renamed at the end. Options:
    CSV ``delimiter`` (a ``.csv.gz`` / ``.bz2`` / ``.zst`` name compresses the stream);
    Parquet ``compression`` (default ``snappy``); ``nan_as_null`` (floats written as null
    where NaN: ``None`` = only columns that had nulls at import); ``masks=False`` keeps
    ``<col>__valid`` fields as columns. Returns the path written.
    """
    dst = Path(path)
    fmt = detect_format(dst, format)
    if dst.exists() and not overwrite:
        raise ArrayExists(f"{dst} exists (use overwrite / --overwrite)")
    if dst.is_dir():
        raise InvalidArgument(f"{dst} is a directory")
    known = set() if fmt == "npy" else _EXPORT_OPTIONS
    if set(options) - known:
        raise InvalidArgument(
            f"unknown {fmt} export options {sorted(set(options) - known)} "
            f"(known: {', '.join(sorted(known)) or 'none'})"
        )
    tmp = dst.with_name(f".{dst.name}.part-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        if fmt == "npy":
            _export_npy(arr, tmp, progress)
        else:
            suffix = dst.suffix.lower()
            stream = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}.get(suffix)
            if stream is not None and fmt != "csv":
                raise InvalidArgument(f"{dst.name}: only CSV exports can be compressed whole")
            from arraystore.ops.io.arrow_export import export_table  # lazy: pyarrow (optional)

            export_table(arr, tmp, fmt, progress=progress, stream=stream, **options)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, dst)
        fsync_dir(dst.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return dst


def _export_npy(arr: ArrayView, tmp: Path, progress: Any) -> None:
    """Header, then each row block ``pwrite`` at its offset (bounded memory, no mmap)."""
    dtype, shape = arr.dtype, arr.shape
    names: list[str | None] = [arr.field]
    with open(tmp, "wb") as f:
        offset = write_header(f, dtype, shape)
        f.truncate(offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
        if not shape:
            block = np.ascontiguousarray(arr.read())
            os.pwrite(f.fileno(), bytes_view(block), offset)
            return
        row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        regions = row_regions(arr.meta)

        def read(region: Region) -> np.ndarray:
            return read_fields(arr.handle, region, names)[arr.field]

        fd = f.fileno()
        for region, block in zip(regions, read_ahead(read, regions), strict=True):
            buf = bytes_view(np.ascontiguousarray(block))
            pos, done = offset + region[0].start * row_bytes, 0
            while done < len(buf):
                done += os.pwrite(fd, buf[done:], pos + done)
            if progress is not None:
                progress(None, block.nbytes)
        os.fsync(fd)


# ------------------------------------------------------------- dask, xarray
def to_dask(arr: ArrayView, fields: str | list[str] | None = None) -> Any:
    """A dask array per field, chunked like the storage; see :func:`.io_dask.to_dask`."""
    return _to_dask(arr, fields)


def from_dask(darr: Any, store: StoreRoot, name: str, **kwargs: Any) -> ArrayView:
    """Store a dask array (or ``{field: dask array}``); see :func:`.io_dask.from_dask`."""
    return _from_dask(darr, store, name, **kwargs)


def to_xarray(arr: ArrayView, fields: str | list[str] | None = None) -> Any:
    """An xarray DataArray / Dataset view; see :func:`.io_dask.to_xarray`."""
    return _to_xarray(arr, fields)


# -------------------------------------------------------------------- torch
def batches(arr: ArrayView, batch_size: int, **kwargs: Any) -> Any:
    """Numpy (or torch) batches of rows; see :class:`arraystore.ops.interop.batching.Batches`."""
    return Batches(arr, batch_size, **kwargs)


def to_torch(batch: Any, torch_dtype: Any = None) -> Any:
    """A numpy batch (array or dict of arrays) as torch tensors, zero-copy where the
    dtype maps; see :func:`arraystore.ops.interop.batching.to_torch`."""
    return _to_torch(batch, torch_dtype)
