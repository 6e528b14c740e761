"""Array: a lazy handle on one stored array (or one field of it).

Cheap to create: it holds metadata and a backend handle, no data. Indexing with
integers, slices and ``...`` reads only the chunks the index touches and returns numpy.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from arraystore.backends.base import Handle
from arraystore.core.assign import assigned_block
from arraystore.core.chunks import Region, check_region, normalize_index, region_shape
from arraystore.core.dtypes import Field, dtype_to_spec, field_dtype, fields_of
from arraystore.core.meta import ArrayMeta
from arraystore.errors import FieldNotFound, InvalidArgument, InvalidType, ReadOnlyError
from arraystore.ops.interop import batches, export_file, to_dask, to_xarray
from arraystore.ops.map.blocks import map_array
from arraystore.ops.reduce.stats import STATS, hist, quantile, reduce

if TYPE_CHECKING:
    from arraystore.store import Store


def _has_ellipsis(key: Any) -> bool:
    return key is Ellipsis or (isinstance(key, tuple) and any(k is Ellipsis for k in key))


class Array:
    """Lazy array: ``shape``, ``dtype``, ``chunks``, ``nbytes``; ``arr[...]`` reads."""

    def __init__(self, store: Store, name: str, handle: Handle, field: str | None = None) -> None:
        self.store = store
        self.name = name
        self.handle = handle
        self.field = field
        self._field: Field | None = field_dtype(handle.meta.dtype, field) if field else None

    # ------------------------------------------------------------ properties
    @property
    def meta(self) -> ArrayMeta:
        return self.handle.meta

    @property
    def _sub(self) -> tuple[int, ...]:
        return self._field.subshape if self._field else ()

    @property
    def shape(self) -> tuple[int, ...]:
        return self.meta.shape + self._sub

    @property
    def dtype(self) -> np.dtype:
        return self._field.dtype if self._field else self.meta.dtype

    @property
    def chunks(self) -> tuple[int, ...]:
        return self.meta.chunks + self._sub

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def backend(self) -> str:
        return self.meta.backend

    @property
    def codec(self) -> str:
        return self.meta.codec

    @property
    def fields(self) -> tuple[str, ...]:
        return () if self._field else self.meta.fields

    @property
    def attrs(self) -> dict[str, Any]:
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
        default: everything) into ``out``."""
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
        with self.store.write_lock(self.name):
            self.handle.check_current()
            self.handle.write(logical, block, self.field)

    # --------------------------------------------------------------- describe
    def info(self) -> dict[str, Any]:
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
        }

    # ------------------------------------------------------------- map, interop
    def map(self, fn: Any, *others: Any, **kwargs: Any) -> Array:
        """Apply ``fn`` (a function of numpy blocks, or an expression over the fields)
        chunk by chunk into a new array ``out=NAME`` (see :mod:`arraystore.ops.map.blocks`)."""
        return cast(Array, map_array(self, fn, *others, **kwargs))  # (self.store is a Store)

    def to_dask(self, fields: Any = None) -> Any:
        """A dask array over the storage chunks (a dict per field for records)."""
        return to_dask(self, fields)

    def to_xarray(self, fields: Any = None) -> Any:
        return to_xarray(self, fields)

    def export(self, path: Any, **kwargs: Any) -> Any:
        """Write this array to a ``.npy``, CSV, Parquet or Arrow IPC file, chunk by chunk
        (see :func:`arraystore.ops.interop.export_file`); returns the path written."""
        return export_file(self, path, **kwargs)

    def batches(self, batch_size: int, **kwargs: Any) -> Any:
        """numpy (or torch with ``to_torch=True``) batches, read chunk-wise with read-ahead."""
        return batches(self, batch_size, **kwargs)

    # ------------------------------------------------------------ reductions
    def stats(
        self,
        fields: Any = None,
        axis: Any = None,
        skipna: bool = True,
        ddof: int = 0,
        memory: Any = None,
        executor: Any = None,
        workers: int | None = None,
        ops: Any = None,
    ) -> Any:
        """count, nan_count, sum, mean, std, min, max per field in one pass (a StatsResult).

        ``skipna=True`` by default here (a data summary); the single reductions below
        follow numpy (``skipna=False``).
        """
        return reduce(
            self,
            ops or STATS,
            axis=axis,
            fields=fields,
            skipna=skipna,
            ddof=ddof,
            memory=memory,
            executor=executor,
            workers=workers,
        )

    def _one(self, op: str, axis: Any, fields: Any, skipna: bool, ddof: int = 0, **kw: Any) -> Any:
        res = reduce(self, (op,), axis=axis, fields=fields, skipna=skipna, ddof=ddof, **kw)
        values = {name: d[op] for name, d in res.fields.items()}
        if self.meta.fields and self.field is None and not isinstance(fields, str):
            return values
        return next(iter(values.values()))

    def sum(self, axis: Any = None, fields: Any = None, skipna: bool = False, **kw: Any) -> Any:
        return self._one("sum", axis, fields, skipna, **kw)

    def mean(self, axis: Any = None, fields: Any = None, skipna: bool = False, **kw: Any) -> Any:
        return self._one("mean", axis, fields, skipna, **kw)

    def var(
        self, axis: Any = None, fields: Any = None, skipna: bool = False, ddof: int = 0, **kw: Any
    ) -> Any:
        return self._one("var", axis, fields, skipna, ddof, **kw)

    def std(
        self, axis: Any = None, fields: Any = None, skipna: bool = False, ddof: int = 0, **kw: Any
    ) -> Any:
        return self._one("std", axis, fields, skipna, ddof, **kw)

    def min(self, axis: Any = None, fields: Any = None, skipna: bool = False, **kw: Any) -> Any:
        return self._one("min", axis, fields, skipna, **kw)

    def max(self, axis: Any = None, fields: Any = None, skipna: bool = False, **kw: Any) -> Any:
        return self._one("max", axis, fields, skipna, **kw)

    def argmin(self, axis: Any = None, fields: Any = None, skipna: bool = False, **kw: Any) -> Any:
        return self._one("argmin", axis, fields, skipna, **kw)

    def argmax(self, axis: Any = None, fields: Any = None, skipna: bool = False, **kw: Any) -> Any:
        return self._one("argmax", axis, fields, skipna, **kw)

    def any(self, axis: Any = None, fields: Any = None, **kw: Any) -> Any:
        return self._one("any", axis, fields, False, **kw)

    def all(self, axis: Any = None, fields: Any = None, **kw: Any) -> Any:
        return self._one("all", axis, fields, False, **kw)

    def count_nonzero(self, axis: Any = None, fields: Any = None, **kw: Any) -> Any:
        return self._one("count_nonzero", axis, fields, False, **kw)

    def quantile(
        self, q: Any, fields: Any = None, skipna: bool = False, axis: Any = None, memory: Any = None
    ) -> Any:
        """Exact quantiles, equal to ``np.quantile(data, q, method="linear")``."""
        res = quantile(self, q, fields=fields, skipna=skipna, memory=memory, axis=axis)
        if self.meta.fields and self.field is None and not isinstance(fields, str):
            return res
        return next(iter(res.values()))

    def median(self, fields: Any = None, skipna: bool = False, memory: Any = None) -> Any:
        return self.quantile(0.5, fields=fields, skipna=skipna, memory=memory)

    def histogram(
        self, bins: Any = 10, range: Any = None, fields: Any = None, memory: Any = None
    ) -> Any:
        """``(counts, edges)`` like ``np.histogram`` (NaN skipped)."""
        res = hist(self, bins=bins, range=range, fields=fields, memory=memory)
        if self.meta.fields and self.field is None and not isinstance(fields, str):
            return res
        return next(iter(res.values()))
