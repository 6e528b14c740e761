"""The Handle interface's optional parts: layout flags, work chunks, prepare and flush."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from arraystore.backends.base import Handle
from arraystore.core.chunks import Region, auto_chunks
from arraystore.core.meta import ArrayMeta
from arraystore.engine.executors import SerialExecutor, ThreadExecutor
from arraystore.engine.executors.base import Executor
from arraystore.errors import CorruptData


class _Bare(Handle):
    """A handle implementing only the abstract methods."""

    def __init__(self, meta: ArrayMeta) -> None:
        self.meta = meta
        self.path = Path("nowhere")
        self.writable = True

    def read(self, region: Region, field: str | None = None, out: np.ndarray | None = None):
        raise NotImplementedError

    def write(self, region: Region, block: np.ndarray, field: str | None = None) -> None:
        raise NotImplementedError

    def stored_bytes(self) -> int:
        return 0


def test_defaults_follow_the_storage_chunks() -> None:
    meta = ArrayMeta(shape=(1000, 3), dtype=np.dtype("f8"), chunks=(64, 3), backend="zarr")
    h = _Bare(meta)
    assert h.columnar is False and h.contiguous_rows is False
    assert h.work_chunks(1) == h.work_chunks(1 << 30) == (64, 3)
    h.prepare()  # no-ops
    h.flush()


def test_layout_flags(store, backend_case) -> None:
    store.create("a", (10, 2), "f8", **backend_case.kwargs)
    store.create("r", (10,), "i4,f8", **backend_case.kwargs)
    a, r = store.open_handle("a"), store.open_handle("r")
    assert a.contiguous_rows == r.contiguous_rows == (not backend_case.is_zarr)
    assert a.columnar is False
    assert r.columnar == backend_case.is_zarr


def test_work_chunks(store, backend_case) -> None:
    store.create("a", (100_000, 4), "f8", chunks=(1000, 4), **backend_case.kwargs)
    h = store.open_handle("a")
    for target in (4096, 1 << 20, 1 << 30):
        want = (1000, 4) if backend_case.is_zarr else auto_chunks((100_000, 4), 8, target)
        assert h.work_chunks(target) == want
    if not backend_case.is_zarr:
        assert h.work_chunks(4096) == (128, 4)


def test_memmap_prepare_opens_the_data_file(store) -> None:
    store.create("a", (10,), "f8", backend="memmap")
    h = store.open_handle("a")
    h.close()
    before = len(os.listdir("/proc/self/fd"))
    h.prepare()
    assert len(os.listdir("/proc/self/fd")) == before + 1
    h.prepare()  # once
    assert len(os.listdir("/proc/self/fd")) == before + 1
    h.close()


def test_memmap_flush_writes_a_new_arrays_checksums(tmp_path: Path) -> None:
    from arraystore.backends import get_backend
    from arraystore.backends.memmap import crc

    meta = ArrayMeta(shape=(10,), dtype=np.dtype("f8"), chunks=(10,), checksum=True)
    h = get_backend("memmap").create(tmp_path, meta)
    h.write((slice(0, 10),), np.arange(10.0))
    loc = h.crc_loc  # format 2: a table inside the data file
    with pytest.raises(CorruptData, match="bad magic"):
        crc.load(loc, h.offset, meta.nbytes)
    h.flush()
    table = crc.load(loc, h.offset, meta.nbytes)
    assert table.crcs[0] == crc.crc32c(np.arange(10.0).tobytes())
    h.close()


@pytest.mark.parametrize("cls", [SerialExecutor, ThreadExecutor])
def test_executors_run_tasks_in_process(cls: type[Executor]) -> None:
    with cls() as ex:
        assert ex.in_process is True


def test_dask_executor_is_not_in_process() -> None:
    pytest.importorskip("distributed")
    from arraystore.engine.executors.dask import DaskExecutor

    assert DaskExecutor.in_process is False
