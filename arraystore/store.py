"""Store (a directory of named arrays, a zarr v3 group) and Array (a lazy handle).

Opening a store or listing it reads small JSON files only, never array data.
"""

from __future__ import annotations

import os
from typing import Any, cast

from arraystore.core.chunks import DEFAULT_CHUNK_BYTES
from arraystore.ops.create import create_array
from arraystore.ops.interop import import_file
from arraystore.storage.root import StoreRoot


class Store(StoreRoot):
    """A directory of named arrays. ``mode``: ``r`` read-only, ``r+`` read-write, ``a``
    read-write and create the store if missing."""

    def __getitem__(self, name: str) -> Array:
        return Array(self, name, self.open_handle(name))

    def info(self, name: str) -> dict[str, Any]:
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
        executor: Any = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        checksum: bool = False,
        progress: Any = None,
    ) -> Array:
        """Create an array (atomically: built in a hidden temp folder, then renamed in).

        Give ``shape`` and ``dtype`` with an optional ``fill`` (zeros, ones, range, random),
        or ``data`` (an array-like), or ``from_npy`` (a .npy file, streamed; ``shape`` and
        ``dtype``, if given, must agree with it). ``backend``: ``memmap`` (the default for
        a local store) or ``zarr`` (the default, and the only one, for a URL store).
        """
        create_array(
            self,
            name,
            shape,
            dtype,
            chunks=chunks,
            backend=backend,
            codec=codec,
            fill=fill,
            seed=seed,
            data=data,
            from_npy=from_npy,
            attrs=attrs,
            overwrite=overwrite,
            memory=memory,
            executor=executor,
            chunk_bytes=chunk_bytes,
            checksum=checksum,
            progress=progress,
        )
        return self[name]

    def import_file(self, name: str, path: str | os.PathLike[str], **kwargs: Any) -> Array:
        """Import a ``.npy``, CSV, Parquet or Arrow IPC file as array ``name``, streamed and
        committed atomically (see :func:`arraystore.ops.interop.import_file`)."""
        return cast(Array, import_file(self, name, path, **kwargs))

    def __repr__(self) -> str:
        return f"<arraystore.Store {str(self.path)!r} arrays={len(self)} mode={self.mode!r}>"


def open(
    path: str | os.PathLike[str], mode: str = "r+", storage_options: dict[str, Any] | None = None
) -> Store:
    """Open a store (``mode="a"`` creates it when missing). Reads metadata only.

    ``path`` may be an fsspec URL (``s3://bucket/data.store``, ``gs://...``,
    ``memory://...``) for zarr arrays; ``storage_options`` go to the fsspec file system
    (e.g. ``{"endpoint_url": ..., "key": ..., "secret": ...}`` for s3fs).
    """
    return Store(path, mode, storage_options)


from arraystore.array import Array  # noqa: E402

__all__ = ["Array", "Store", "open"]
