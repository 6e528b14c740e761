"""Direct reads for cold scans (issue 21 item 1): ``--io`` / ``ARRAYSTORE_IO``.

A scan with direct reads reads the data files (memmap) and chunk files (zarr) with
``O_DIRECT`` into aligned buffers, a few requests ahead; the results are bit for bit
those of buffered reads (unaligned row offsets, the .npy header, edge chunks,
compressed chunks). A filesystem refusing ``O_DIRECT`` (tmpfs, or a simulated EINVAL)
is read buffered and remembered per device.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore._native import direct
from arraystore.errors import InvalidArgument
from arraystore.testing import BackendCase, run_cli

ENV = direct.IO_ENV
CASES = [
    pytest.param(BackendCase("memmap", None), id="memmap"),
    pytest.param(BackendCase("zarr", "none"), id="zarr-none"),
    pytest.param(BackendCase("zarr", "zstd:1"), id="zarr-zstd"),
]
# 37 float64 columns: rows (296 bytes) never fall on 4 KiB boundaries; 7001-row chunks
# leave an edge chunk
SHAPE = (50_003, 37)
CHUNKS = (7001, 37)
MEMORY = "64MiB"  # two memmap tasks of several read-ahead pieces each
OPS = ["sum", "min", "max", "count", "mean", "std"]


@pytest.fixture(autouse=True)
def _fresh_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(direct, "_refused", set())


def _make(folder: Path, case: BackendCase) -> tuple[arraystore.Array, np.ndarray]:
    data = np.random.default_rng(3).standard_normal(SHAPE)
    data[123, 4] = np.nan  # (skipped by default: the numpy kernels' path)
    store = arraystore.open(folder, mode="a")
    store.create("a", data=data, chunks=CHUNKS, **case.kwargs)
    return arraystore.open(folder, mode="r")["a"], data


def _stats(arr: arraystore.Array, axis: Any) -> dict[str, np.ndarray]:
    res = arr.stats(axis=axis, memory=MEMORY, ops=OPS)
    return {k: np.asarray(res[k]) for k in OPS}


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("axis", [0, None, 1])
def test_direct_reads_give_the_buffered_results(
    tmp_path: Path, case: BackendCase, axis: Any, monkeypatch: pytest.MonkeyPatch, direct_calls
) -> None:
    arr, data = _make(tmp_path / "s", case)
    monkeypatch.setenv(ENV, "buffered")
    buffered = _stats(arr, axis)
    assert direct_calls == []
    monkeypatch.setenv(ENV, "direct")
    _same(_stats(arr, axis), buffered)
    assert direct_calls, "the scan did not read directly"
    assert any(name.startswith("arraystore-io") for *_, name in direct_calls), "no read-ahead"
    if direct.refused(os.stat(tmp_path).st_dev):
        pytest.skip("this file system refuses O_DIRECT (the results came from buffered reads)")
    np.testing.assert_allclose(buffered["sum"], np.nansum(data, axis=axis), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(buffered["max"], np.nanmax(data, axis=axis))


def test_npy_file_with_its_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct_calls):
    """A bare .npy file: data at the header's offset (not a block boundary)."""
    data = np.random.default_rng(4).integers(-1000, 1000, size=(30_001, 5), dtype=np.int32)
    np.save(tmp_path / "x.npy", data)
    arr = arraystore.open_array(tmp_path / "x.npy")
    monkeypatch.setenv(ENV, "direct")
    res = arr.stats(axis=0, memory=MEMORY, ops=["sum", "min", "max"])
    assert direct_calls and direct_calls[0][0] % direct.ALIGN != 0
    np.testing.assert_array_equal(res["sum"], data.sum(axis=0))
    np.testing.assert_array_equal(res["min"], data.min(axis=0))
    np.testing.assert_array_equal(res["max"], data.max(axis=0))


@pytest.mark.parametrize("case", CASES)
def test_refused_o_direct_falls_back_and_is_remembered(
    tmp_path: Path, case: BackendCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    arr, _ = _make(tmp_path / "s", case)
    monkeypatch.setenv(ENV, "buffered")
    buffered = _stats(arr, 0)
    real_open, refusals = os.open, []

    def open_(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        if flags & os.O_DIRECT:
            refusals.append(path)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setenv(ENV, "direct")
    _same(_stats(arr, 0), buffered)
    assert refusals and direct.refused(os.stat(tmp_path).st_dev)
    tried = len(refusals)
    _same(_stats(arr, 0), buffered)
    assert len(refusals) == tried  # remembered: not tried again on that device


@pytest.mark.parametrize("case", CASES[:2])
def test_a_read_refused_midway_falls_back(
    tmp_path: Path, case: BackendCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EINVAL from the read itself (a stricter alignment than ours): read buffered."""
    arr, _ = _make(tmp_path / "s", case)
    monkeypatch.setenv(ENV, "buffered")
    buffered = _stats(arr, 0)

    def refuse(fd: int, buf: Any, offset: int) -> int:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(direct, "pread_aligned", refuse)
    monkeypatch.setenv(ENV, "direct")
    _same(_stats(arr, 0), buffered)
    assert direct.refused(os.stat(tmp_path).st_dev)


@pytest.mark.parametrize("case", CASES[:2])
def test_tmpfs_is_read_buffered(case: BackendCase, monkeypatch: pytest.MonkeyPatch) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        pytest.skip("no /dev/shm")
    import tempfile

    with tempfile.TemporaryDirectory(dir=shm) as tmp:
        arr, _ = _make(Path(tmp) / "s", case)
        monkeypatch.setenv(ENV, "buffered")
        buffered = _stats(arr, 0)
        monkeypatch.setenv(ENV, "direct")
        _same(_stats(arr, 0), buffered)
        dev = os.stat(tmp).st_dev
        fd = os.open(tmp, os.O_RDONLY)
        try:
            probe = direct.open_direct(Path(tmp) / "probe-missing", os.fstat(fd).st_dev)
        except FileNotFoundError:
            probe = -1  # accepted the flag: a filesystem that does direct I/O
        finally:
            os.close(fd)
        if probe == -1:
            pytest.skip("/dev/shm accepts O_DIRECT here")
        assert direct.refused(dev)


def test_writable_handles_read_buffered(tmp_path: Path, monkeypatch, direct_calls) -> None:
    store = arraystore.open(tmp_path / "s", mode="a")
    data = np.arange(200_000.0).reshape(-1, 8)
    store.create("a", data=data, backend="memmap")
    monkeypatch.setenv(ENV, "direct")
    assert store["a"].stats(memory=MEMORY, ops=["sum"])["sum"] == data.sum()
    assert direct_calls == []


def test_auto_reads_buffered_and_direct_only_when_asked(monkeypatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert not direct.direct_reads(500) and not direct.direct_reads(10**15)
    monkeypatch.setenv(ENV, "BUFFERED")
    assert not direct.direct_reads(10**12)
    monkeypatch.setenv(ENV, "direct")
    assert direct.direct_reads(1)
    assert not direct.direct_reads(1, io="buffered")  # the argument wins
    monkeypatch.setenv(ENV, "sometimes")
    with pytest.raises(InvalidArgument, match=ENV):
        direct.direct_reads(1)


def test_cli_io_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct_calls) -> None:
    _make(tmp_path / "s", BackendCase("memmap", None))
    monkeypatch.setenv(ENV, "auto")  # (restored after the test: the option sets it)
    store = str(tmp_path / "s")
    docs = []
    for mode in ("buffered", "direct"):
        status, out, err = run_cli(["stats", store, "a", "--axis", "0", "--json", "--io", mode])
        assert status == 0, err
        docs.append(json.loads(out)["fields"])
    assert docs[0] == docs[1] and direct_calls
    status, out, err = run_cli(["stats", store, "a", "--io", "sometimes"])
    assert status == 1 and "--io must be one of" in err and "sometimes" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    monkeypatch.setenv(ENV, "sideways")
    status, out, err = run_cli(["stats", store, "a"])
    assert status == 1 and ENV in err and len(err.strip().splitlines()) == 1


def test_python_io_argument(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct_calls) -> None:
    arr, data = _make(tmp_path / "s", BackendCase("zarr", "none"))
    monkeypatch.setenv(ENV, "buffered")
    res = arr.stats(axis=0, io="direct", memory=MEMORY)
    assert direct_calls
    np.testing.assert_array_equal(res["max"], np.nanmax(data, axis=0))
    with pytest.raises(InvalidArgument, match="io must be one of"):
        arr.stats(io="fast")


def test_read_ahead_depth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(direct.DEPTH_ENV, raising=False)
    assert direct.depth() == direct.depth(4 << 20) == direct.DEPTH
    assert direct.depth(direct.AHEAD_BYTES) == direct.depth(10 * direct.AHEAD_BYTES) == 1
    monkeypatch.setenv(direct.DEPTH_ENV, "0")
    assert direct.depth(4 << 20) == 0
    monkeypatch.setenv(direct.DEPTH_ENV, "3")
    assert direct.depth() == 3 and direct.depth(direct.AHEAD_BYTES // 2) == 2


@pytest.mark.parametrize("case", CASES[:2])
def test_a_scan_leaves_no_descriptor_or_read_behind(
    tmp_path: Path, case: BackendCase, monkeypatch: pytest.MonkeyPatch, direct_calls
) -> None:
    """The O_DIRECT descriptor is closed after the scan, and only after every read
    ahead on it has ended (reads still pending are not issued)."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("no /proc/self/fd")
    arr, _ = _make(tmp_path / "s", case)
    arr.stats(memory=MEMORY, ops=["sum"])  # (the handle opens its data file once)
    before = sorted(os.listdir("/proc/self/fd"))
    monkeypatch.setenv(ENV, "direct")
    arr.stats(memory=MEMORY, ops=["sum"])
    assert direct_calls
    done = len(direct_calls)
    assert sorted(os.listdir("/proc/self/fd")) == before
    threading.Event().wait(0.2)
    assert len(direct_calls) == done  # nothing read after the scan ended
