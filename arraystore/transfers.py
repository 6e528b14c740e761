"""The transfer methods of :class:`arraystore.Array` (``to_dask``, ``to_xarray``,
``export``, ``batches``): a mixin of the façade, kept apart from ``array.py`` like the
reductions (``reductions.py``); thin, typed, documented methods over
:mod:`arraystore.ops.interop`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from arraystore.ops.interop import batches, export_file, to_dask, to_xarray
from arraystore.ops.interop.batching import Batches
from arraystore.storage import ArrayView

__all__ = ["Transfers"]

_EXPORT_DEFAULTS: dict[str, Any] = {
    "compression": "snappy",
    "delimiter": ",",
    "nan_as_null": None,
    "masks": True,
}


class Transfers:
    """Transfer methods of :class:`arraystore.Array` (which mixes this in)."""

    @property
    def _me(self) -> ArrayView:
        return cast(ArrayView, self)  # (only ever mixed into Array, an ArrayView)

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
        return to_dask(self._me, fields)

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
        return to_xarray(self._me, fields)

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
            self._me, path, format=format, overwrite=overwrite, progress=progress, **options
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
            self._me,
            batch_size,
            fields=fields,
            shuffle=shuffle,
            seed=seed,
            to_torch=to_torch,
            torch_dtype=torch_dtype,
            drop_last=drop_last,
            prefetch=prefetch,
        )
