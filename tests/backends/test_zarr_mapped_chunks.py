"""Compressed chunk files read ahead by mapping them (``backends/zarr/cold.py``): our own
arrays' files are waited for (``sendfile`` to /dev/null) and mapped instead of copied,
with the same results; foreign arrays' files (another writer may truncate one in place)
are copied; a refused mapping falls back to the copy; a scan that drops what it read
behind it leaves none of the mapped files' pages cached."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore._native import direct
from arraystore.backends.zarr import cold
from arraystore.errors import CorruptData
from arraystore.testing import resident_fraction

ROWS, COLS = 40_003, 24
CHUNKS = (5000, COLS)
MEMORY = "64MiB"
OPS = ["sum", "min", "max", "count"]

pytestmark = pytest.mark.skipif(not cold.map_chunks(), reason="no mmap MAP_POPULATE/sendfile")


@pytest.fixture(autouse=True)
def _defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in (cold.MAP_ENV, cold.AHEAD_ENV, direct.IO_ENV):
        monkeypatch.delenv(env, raising=False)


@pytest.fixture
def mapped(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the chunk files mapped (successfully) by the read-ahead."""
    sizes: list[int] = []
    real = cold.map_file

    def spy(fd: int, size: int, sink: int) -> np.ndarray:
        out = real(fd, size, sink)
        sizes.append(out.size)
        return out

    monkeypatch.setattr(cold, "map_file", spy)
    return sizes


def _data() -> np.ndarray:
    x = np.random.default_rng(7).standard_normal((ROWS, COLS))
    x[123, 4] = np.nan
    return x


def _ours(folder: Path, codec: str = "zstd:1") -> Any:
    s = arraystore.open(folder, mode="a")
    s.create("a", data=_data(), chunks=CHUNKS, backend="zarr", codec=codec)
    return arraystore.open(folder, mode="r")["a"]


def _check(got: Any, x: np.ndarray) -> None:
    np.testing.assert_array_equal(got["min"], np.nanmin(x, axis=0))
    np.testing.assert_array_equal(got["max"], np.nanmax(x, axis=0))
    np.testing.assert_array_equal(got["count"], (~np.isnan(x)).sum(axis=0))
    np.testing.assert_allclose(got["sum"], np.nansum(x, axis=0), rtol=1e-12)


def _chunk_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("c/*/*") if p.is_file())


@pytest.mark.parametrize("codec", ["zstd:1", "blosc-lz4"])
def test_our_compressed_chunks_are_mapped(
    tmp_path: Path, codec: str, mapped: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    a = _ours(tmp_path / "s", codec)
    got = a.stats(axis=0, ops=OPS, skipna=True, memory=MEMORY)
    files = _chunk_files(tmp_path / "s")
    assert len(files) == -(-ROWS // CHUNKS[0])
    assert len(mapped) >= len(files) - 1  # (the first may be read before the read-ahead)
    assert set(mapped) <= {p.stat().st_size for p in files}
    _check(got, _data())
    mapped.clear()
    monkeypatch.setenv(cold.MAP_ENV, "0")
    copied = a.stats(axis=0, ops=OPS, skipna=True, memory=MEMORY)
    assert mapped == []
    for op in OPS:
        np.testing.assert_array_equal(got[op], copied[op])


def test_foreign_chunks_are_copied(
    tmp_path: Path, mapped: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """zarr-python may rewrite a chunk file in place: a mapping of it could fault."""
    import zarr

    ahead: list[str] = []
    real = cold.DirectChunks._read_buffered

    def spy(self: Any, key: str, pool: Any) -> Any:
        ahead.append(key)
        return real(self, key, pool)

    monkeypatch.setattr(cold.DirectChunks, "_read_buffered", spy)

    x = _data()
    group = zarr.open_group(tmp_path / "g", mode="w", zarr_format=3)
    group.create_array("f", data=x, chunks=CHUNKS)  # (zstd: zarr-python's default)
    got = arraystore.open(tmp_path / "g")["f"].stats(axis=0, ops=OPS, skipna=True, memory=MEMORY)
    _check(got, x)
    assert len(ahead) > 1 and mapped == []  # read ahead, copied


def test_a_refused_mapping_falls_back_to_the_copy(
    tmp_path: Path, mapped: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    a = _ours(tmp_path / "s")

    def refuse(*args: Any) -> int:
        raise OSError(errno.EINVAL, "sendfile refused")

    monkeypatch.setattr(os, "sendfile", refuse)
    _check(a.stats(axis=0, ops=OPS, skipna=True, memory=MEMORY), _data())
    assert mapped == []


def test_a_truncated_chunk_is_still_one_error(tmp_path: Path, mapped: list[int]) -> None:
    a = _ours(tmp_path / "s")
    files = _chunk_files(tmp_path / "s")
    os.truncate(files[3], files[3].stat().st_size // 2)
    with pytest.raises(CorruptData, match="c/3/0"):
        a.stats(ops=["sum"], memory=MEMORY)


def test_a_dropping_scan_leaves_no_mapped_page_cached(
    tmp_path: Path, mapped: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mapping of a chunk is gone before its pages are dropped behind the scan (a
    mapped page cannot be dropped: the page cache would fill up)."""
    a = _ours(tmp_path / "s")
    files = _chunk_files(tmp_path / "s")
    if resident_fraction(files[0]) is None:
        pytest.skip("mincore is unavailable here")
    for p in files:  # all written out (a dirty page is not dropped), then cached
        with p.open("rb+") as f:
            os.fsync(f.fileno())
        p.read_bytes()
    monkeypatch.setenv("ARRAYSTORE_PAGE_POLICY", "drop")
    _check(a.stats(axis=0, ops=OPS, skipna=True, memory=MEMORY), _data())
    assert mapped
    left = {str(p.relative_to(tmp_path)): resident_fraction(p) for p in files}
    assert all(f == 0.0 for f in left.values()), left
