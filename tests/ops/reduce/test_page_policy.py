"""A scan larger than the page cache drops the pages it has read (issue 21 item 2).

``ARRAYSTORE_PAGE_POLICY=drop`` makes even a small scan drop them, so the effect is
visible on small files: after ``stats`` (or a quantile pass) the data file's pages are
no longer resident (``mincore``, :func:`arraystore.testing.resident_fraction`); with
``keep`` a warm file stays warm; ``auto`` drops only when the scan is large compared with
the page cache. Results are the same whatever the policy.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore._native import pages
from arraystore.errors import InvalidArgument
from arraystore.testing import BackendCase, resident_fraction, run_cli

ENV = pages.POLICY_ENV
CASES = [
    pytest.param(BackendCase("memmap", None), id="memmap"),
    pytest.param(BackendCase("zarr", "none"), id="zarr-none"),
    pytest.param(BackendCase("zarr", "zstd:1"), id="zarr-zstd"),
]
SHAPE = (64 * 1024, 16)  # 8 MiB of float64 in 1 MiB chunks: several tasks
MEMORY = "16MiB"


def _data_files(folder: Path) -> list[Path]:
    """The files holding an array's data (no metadata, no checksums)."""
    return [
        p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".json") and p.name != "data.crc32c"
    ]


def _warm(files: list[Path]) -> float:
    for p in files:
        with open(p, "rb") as f:
            while f.read(1 << 20):
                pass
    return _resident(files)


def _resident(files: list[Path]) -> float:
    sizes = [os.path.getsize(p) for p in files]
    fractions = [resident_fraction(p) for p in files]
    if any(f is None for f in fractions):
        pytest.skip("mincore is unavailable here")
    return sum(f * s for f, s in zip(fractions, sizes, strict=True)) / sum(sizes)  # type: ignore[operator]


@pytest.fixture
def stored(
    store: arraystore.Store, request: pytest.FixtureRequest
) -> tuple[arraystore.Array, np.ndarray, list[Path]]:
    case: BackendCase = request.param
    data = np.random.default_rng(1).standard_normal(SHAPE)
    store.create("a", data=data, chunks=(8192, 16), **case.kwargs)
    files = _data_files(store.path / "a")
    assert files
    # a file system that keeps pages whatever we advise (tmpfs) cannot show the effect
    _warm(files)
    for p in files:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)  # dirty pages are never dropped: write them back first
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    if _resident(files) > 0.5:
        pytest.skip("this file system keeps the pages (tmpfs?)")
    reader = arraystore.open(store.path, mode="r")["a"]
    return reader, data, files


def _check_stats(arr: arraystore.Array, data: np.ndarray) -> None:
    res = arr.stats(axis=0, memory=MEMORY, ops=["sum", "min", "max", "count"])["a"]
    np.testing.assert_allclose(res["sum"], data.sum(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(res["min"], data.min(axis=0))
    np.testing.assert_array_equal(res["max"], data.max(axis=0))
    np.testing.assert_array_equal(res["count"], np.full(SHAPE[1], SHAPE[0]))


@pytest.mark.parametrize("stored", CASES, indirect=True)
def test_drop_frees_the_pages_a_scan_read(stored, monkeypatch: pytest.MonkeyPatch) -> None:
    arr, data, files = stored
    monkeypatch.setenv(ENV, "drop")
    assert _warm(files) > 0.9
    _check_stats(arr, data)
    assert _resident(files) < 0.1


@pytest.mark.parametrize("stored", CASES, indirect=True)
def test_keep_and_drop_give_the_same_results(stored, monkeypatch: pytest.MonkeyPatch) -> None:
    arr, data, files = stored
    monkeypatch.setenv(ENV, "keep")
    assert _warm(files) > 0.9
    _check_stats(arr, data)
    assert _resident(files) > 0.9  # a warm file stays warm
    monkeypatch.setenv(ENV, "drop")
    _check_stats(arr, data)
    assert _resident(files) < 0.1


@pytest.mark.parametrize("stored", CASES[:1], indirect=True)
def test_auto_drops_only_a_scan_large_for_the_page_cache(
    stored, monkeypatch: pytest.MonkeyPatch
) -> None:
    arr, data, files = stored
    monkeypatch.delenv(ENV, raising=False)
    assert _warm(files) > 0.9
    _check_stats(arr, data)
    assert _resident(files) > 0.9  # 8 MiB: small for any page cache
    # a page cache of 10 MiB: the 8 MiB scan is more than half of it
    monkeypatch.setattr(pages, "page_cache_bytes", lambda: 10 * 2**20)
    _check_stats(arr, data)
    assert _resident(files) < 0.1


@pytest.mark.parametrize("stored", CASES[:2], indirect=True)
def test_quantile_passes_drop_when_asked(stored, monkeypatch: pytest.MonkeyPatch) -> None:
    arr, data, files = stored
    monkeypatch.setenv(ENV, "drop")
    assert _warm(files) > 0.9
    q = arr.quantile([0.1, 0.5, 0.9], memory=MEMORY)
    np.testing.assert_array_equal(np.asarray(q), np.quantile(data, [0.1, 0.5, 0.9]))
    assert _resident(files) < 0.1


def test_policy_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages, "page_cache_bytes", lambda: 1000)
    monkeypatch.setenv(ENV, "keep")
    assert not pages.drop_behind(10**12)
    monkeypatch.setenv(ENV, "DROP")
    assert pages.drop_behind(1)
    monkeypatch.setenv(ENV, "auto")
    assert not pages.drop_behind(500) and pages.drop_behind(501)
    # several passes: only when the data cannot stay cached between them
    assert not pages.drop_behind(1000, passes=2) and pages.drop_behind(1001, passes=2)
    monkeypatch.setenv(ENV, "sometimes")
    with pytest.raises(InvalidArgument, match="ARRAYSTORE_PAGE_POLICY"):
        pages.drop_behind(1)


def test_page_cache_bytes_is_positive() -> None:
    assert pages.page_cache_bytes() > 0


@pytest.mark.parametrize("stored", CASES[:1], indirect=True)
def test_cli_page_policy_option(stored, monkeypatch: pytest.MonkeyPatch) -> None:
    arr, _, files = stored
    monkeypatch.setenv(ENV, "keep")  # (restored after the test: the option sets it)
    assert _warm(files) > 0.9
    store = str(arr.store.path)
    status, _, err = run_cli(["stats", store, "a", "--axis", "0", "--json"])
    assert status == 0, err
    assert _resident(files) > 0.9
    status, _, err = run_cli(
        ["stats", store, "a", "--axis", "0", "--json", "--page-policy", "drop"]
    )
    assert status == 0, err
    assert _resident(files) < 0.1
    status, _, err = run_cli(["stats", store, "a", "--page-policy", "sometimes"])
    assert status != 0 and "sometimes" in err
