"""``--io direct`` beyond one-pass ``stats``: exact quantiles and histograms (each of
their passes reads around the page cache) and grouped reductions (each task's rows),
bit for bit the buffered results; memmap ranges larger than one direct request are read
ahead in :data:`~arraystore.backends.memmap.cold.PIECE` pieces (issue 21 item 1)."""

from __future__ import annotations

import itertools
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import arraystore
from arraystore._native import direct
from arraystore.backends.memmap import cold
from arraystore.errors import CorruptData, InvalidArgument
from arraystore.testing import BackendCase, run_cli

ENV = direct.IO_ENV
CASES = [
    pytest.param(BackendCase("memmap", None), id="memmap"),
    pytest.param(BackendCase("zarr", "none"), id="zarr-none"),
    pytest.param(BackendCase("zarr", "zstd:1"), id="zarr-zstd"),
]
ROWS, COLS = 60_011, 37  # 296-byte rows: never on a 4 KiB boundary
CHUNKS = (9001, COLS)
MEMORY = "64MiB"


@pytest.fixture(autouse=True)
def _fresh_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(direct, "_refused", set())


def _store(folder: Path, case: BackendCase) -> tuple[Any, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    data = rng.standard_normal((ROWS, COLS))
    data[17, 3] = np.nan
    keys = rng.integers(0, 97, size=ROWS).astype(np.int32)
    s = arraystore.open(folder, mode="a")
    s.create("a", data=data, chunks=CHUNKS, **case.kwargs)
    s.create("k", data=keys, chunks=(CHUNKS[0],), **case.kwargs)
    return arraystore.open(folder, mode="r"), data, keys


def _read_directly(calls: list[tuple[int, int, str]], folder: Path) -> None:
    assert calls, "nothing was read directly"
    assert any(name.startswith("arraystore-io") for *_, name in calls), "no read-ahead"
    if direct.refused(os.stat(folder).st_dev):
        pytest.skip("this file system refuses O_DIRECT (the results came from buffered reads)")


def _same_both_ways(run: Any, monkeypatch: pytest.MonkeyPatch, calls: list, folder: Path) -> Any:
    """``run()`` buffered (no direct read), then direct (read directly, the same arrays)."""
    monkeypatch.setenv(ENV, "buffered")
    buffered = run()
    assert calls == []
    monkeypatch.setenv(ENV, "direct")
    for got, want in zip(run(), buffered, strict=True):
        np.testing.assert_array_equal(got, want)
    _read_directly(calls, folder)
    return buffered


@pytest.mark.parametrize("case", CASES)
def test_quantiles_and_histograms_read_directly(
    tmp_path: Path, case: BackendCase, monkeypatch: pytest.MonkeyPatch, direct_calls
) -> None:
    s, data, _ = _store(tmp_path / "s", case)
    a = s["a"]

    def run() -> tuple[Any, ...]:
        q = a.quantile([0.0, 0.01, 0.5, 0.99, 1.0], skipna=True, memory=MEMORY)
        h = a.histogram(bins=13, memory=MEMORY)
        return np.asarray(q), *(np.asarray(x) for x in h)

    buffered = _same_both_ways(run, monkeypatch, direct_calls, tmp_path)
    flat = data[~np.isnan(data)]
    np.testing.assert_array_equal(buffered[0], np.quantile(flat, [0.0, 0.01, 0.5, 0.99, 1.0]))


@pytest.mark.parametrize("case", CASES)
def test_groupby_reads_directly(
    tmp_path: Path, case: BackendCase, monkeypatch: pytest.MonkeyPatch, direct_calls
) -> None:
    s, data, keys = _store(tmp_path / "s", case)

    def run() -> tuple[np.ndarray, ...]:
        g = s["a"].groupby(s["k"], memory=MEMORY)
        return g.sum(), g.max(), g.count()

    buffered = _same_both_ways(run, monkeypatch, direct_calls, tmp_path)
    mx = buffered[1]  # records: the key, then the values
    kname, vname = mx.dtype.names
    for i in (0, 50, 96):
        k = mx[kname][i]
        np.testing.assert_array_equal(mx[vname][i], np.nanmax(data[keys == k], axis=0))


def test_structured_memmap_groupby_and_quantiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct_calls
) -> None:
    """Records: read whole, once per task (keys and values from the same read)."""
    rng = np.random.default_rng(6)
    rec = np.zeros(70_001, dtype=[("sym", "i2"), ("px", "f8"), ("qty", "i4")])
    rec["sym"], rec["px"] = rng.integers(0, 50, rec.size), rng.standard_normal(rec.size)
    rec["qty"] = rng.integers(-5, 500, rec.size)
    arraystore.open(tmp_path / "s", mode="a").create("t", data=rec, backend="memmap")
    t = arraystore.open(tmp_path / "s", mode="r")["t"]
    monkeypatch.setenv(ENV, "direct")
    g = t.groupby("sym", memory=MEMORY)
    sums, q = g.sum("qty"), t.quantile(0.25, fields="px", memory=MEMORY)
    _read_directly(direct_calls, tmp_path)
    want = np.bincount(rec["sym"], weights=rec["qty"].astype(np.float64), minlength=50)
    np.testing.assert_array_equal(sums["sym"], np.arange(50))
    np.testing.assert_array_equal(sums["qty"], want.astype(np.int64))
    assert q == np.quantile(rec["px"], 0.25)


def test_cli_io_with_by_and_quantiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct_calls
) -> None:
    """``--io direct`` is honoured with ``--by`` and ``--quantiles`` (it was ignored)."""
    rec = np.zeros(40_000, dtype=[("g", "i4"), ("v", "f8")])
    rec["g"], rec["v"] = np.arange(rec.size) % 7, np.linspace(-1, 1, rec.size)
    arraystore.open(tmp_path / "s", mode="a").create("t", data=rec, backend="memmap")
    monkeypatch.setenv(ENV, "auto")  # (restored after the test: the option sets it)
    docs = []
    for extra in (["--by", "g"], ["--quantiles", "0.5"]):
        for mode in ("buffered", "direct"):
            before = len(direct_calls)
            args = ["stats", str(tmp_path / "s"), "t", *extra, "--json", "--io", mode]
            status, out, err = run_cli(args)
            assert status == 0, err
            doc = json.loads(out)
            docs.append({k: v for k, v in doc.items() if k not in ("seconds", "gb_per_s")})
            assert (len(direct_calls) > before) == (mode == "direct"), (extra, mode)
    assert docs[0] == docs[1] and docs[2] == docs[3]


def test_a_large_range_is_read_in_pieces_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct_calls
) -> None:
    """A memmap range over several pieces, announced then read at once: read ahead on the
    I/O threads in pieces of at most PIECE bytes, none read twice."""
    monkeypatch.setattr(cold, "PIECE", 64 * 1024)
    data = np.arange(300_007, dtype=np.float64)  # ~2.3 MiB: 37 pieces
    arraystore.open(tmp_path / "s", mode="a").create("x", data=data, backend="memmap")
    h = arraystore.open(tmp_path / "s", mode="r")["x"].handle
    region = (slice(5, 300_000),)
    with h.read_scan([region], True):
        h.will_read([region])
        got = h.read(region)
    np.testing.assert_array_equal(got, data[5:300_000])
    _read_directly(direct_calls, tmp_path)
    assert max(n for _, n, _ in direct_calls) <= cold.PIECE
    offsets = [o for o, _, _ in direct_calls]
    assert len(offsets) == len(set(offsets)) == len(cold.pieces(0, 299_995 * 8))


@given(st.integers(0, 10**12), st.integers(0, 10**9), st.sampled_from([1, 4096, 4 << 20]))
def test_pieces_cover_the_range_in_order(offset: int, length: int, piece: int) -> None:
    old, cold.PIECE = cold.PIECE, piece
    try:
        got = cold.pieces(offset, length) if length // piece < 10_000 else None
    finally:
        cold.PIECE = old
    if got is None:
        return
    assert sum(n for _, n in got) == length
    assert all(0 < n <= piece for _, n in got)
    assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(got))
    assert not got or got[0][0] == offset


def test_python_io_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct_calls) -> None:
    """``io=`` of quantile / median / histogram / groupby wins over the environment."""
    s, data, _ = _store(tmp_path / "s", BackendCase("zarr", "none"))
    a = s["a"]
    monkeypatch.setenv(ENV, "buffered")
    calls = {
        "quantile": lambda io: a.quantile(0.3, skipna=True, memory=MEMORY, io=io),
        "median": lambda io: a.median(skipna=True, memory=MEMORY, io=io),
        "histogram": lambda io: a.histogram(bins=5, memory=MEMORY, io=io)[0],
        "groupby": lambda io: a.groupby(s["k"], memory=MEMORY, io=io).min(),
    }
    for what, call in calls.items():
        before = len(direct_calls)
        want = call(None)
        assert len(direct_calls) == before, what
        got = call("direct")
        assert len(direct_calls) > before, what
        if isinstance(want, np.ndarray) and want.dtype.names:
            for n in want.dtype.names:
                np.testing.assert_array_equal(got[n], want[n], err_msg=what)
        else:
            np.testing.assert_array_equal(got, want, err_msg=what)
        with pytest.raises(InvalidArgument, match="io must be one of"):
            call("sideways")
    assert calls["median"](None) == np.nanmedian(data)


@pytest.fixture
def ahead_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(chunk key, thread name) of every buffered read-ahead of a chunk file."""
    from arraystore.backends.zarr import cold as zcold

    calls: list[tuple[str, str]] = []
    real = zcold.DirectChunks._read_buffered

    def spy(self: Any, key: str, pool: Any) -> Any:
        calls.append((key, threading.current_thread().name))
        return real(self, key, pool)

    monkeypatch.setattr(zcold.DirectChunks, "_read_buffered", spy)
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv(zcold.AHEAD_ENV, raising=False)
    return calls


@pytest.mark.parametrize("codec", ["zstd:1", "blosc-lz4"])
def test_compressed_chunks_are_read_ahead_buffered(
    tmp_path: Path, codec: str, monkeypatch: pytest.MonkeyPatch, ahead_reads, direct_calls
) -> None:
    """The default (buffered) scan of a compressed zarr array reads its chunk files on
    the I/O threads ahead of the readers: same results as without, no O_DIRECT."""
    s, data, _ = _store(tmp_path / "s", BackendCase("zarr", codec))
    a = s["a"]
    got = a.stats(axis=0, memory=MEMORY, ops=["sum", "max", "count"])
    q = a.quantile(0.5, skipna=True, memory=MEMORY)
    assert ahead_reads and all(t.startswith("arraystore-io") for _, t in ahead_reads)
    assert direct_calls == []
    n = len(ahead_reads)
    monkeypatch.setenv("ARRAYSTORE_READ_AHEAD", "0")
    want = a.stats(axis=0, memory=MEMORY, ops=["sum", "max", "count"])
    assert a.quantile(0.5, skipna=True, memory=MEMORY) == q == np.nanquantile(data, 0.5)
    assert len(ahead_reads) == n
    for op in ("sum", "max", "count"):
        np.testing.assert_array_equal(np.asarray(got[op]), np.asarray(want[op]))
    np.testing.assert_array_equal(np.asarray(got["max"]), np.nanmax(data, axis=0))


def test_read_ahead_asks_for_each_whole_file_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ahead_reads
) -> None:
    """Each chunk file read ahead is first asked for whole (``POSIX_FADV_WILLNEED``)."""
    from arraystore.backends.zarr import cold as zcold

    asked: list[int] = []
    real = zcold.will_need

    def spy(fd: int, length: int) -> None:
        asked.append(length)
        real(fd, length)

    monkeypatch.setattr(zcold, "will_need", spy)
    s, data, _ = _store(tmp_path / "s", BackendCase("zarr", "zstd:1"))
    np.testing.assert_array_equal(s["a"].stats(axis=0, memory=MEMORY)["max"], np.nanmax(data, 0))
    files = {p.stat().st_size for p in (tmp_path / "s").rglob("c/*/*") if "/a/" in str(p)}
    assert len(asked) == len(ahead_reads) > 1
    assert set(asked) <= files


def test_uncompressed_chunks_are_not_read_ahead_buffered(tmp_path: Path, ahead_reads) -> None:
    s, data, _ = _store(tmp_path / "s", BackendCase("zarr", "none"))
    np.testing.assert_array_equal(s["a"].stats(axis=0, memory=MEMORY)["max"], np.nanmax(data, 0))
    assert ahead_reads == []


def test_read_ahead_of_a_truncated_or_missing_chunk(tmp_path: Path, ahead_reads) -> None:
    """A chunk file gone or cut short: the normal read reports it (one error, no hang)."""
    s, *_ = _store(tmp_path / "s", BackendCase("zarr", "zstd:1"))
    files = sorted(p for p in (tmp_path / "s").rglob("c/*/*") if p.is_file() and "/a/" in str(p))
    assert len(files) == -(-ROWS // CHUNKS[0])
    os.truncate(files[2], files[2].stat().st_size // 2)
    with pytest.raises(CorruptData, match="c/2/0"):
        s["a"].stats(memory=MEMORY, ops=["sum"])
    assert ahead_reads
    files[2].unlink()
    with pytest.raises(CorruptData, match="c/2/0"):  # (written complete: a hole is corrupt)
        s["a"].stats(memory=MEMORY, ops=["sum"])


@given(st.lists(st.tuples(st.integers(1, 3 << 20), st.booleans()), max_size=60))
def test_buffer_pool_holds_no_more_than_was_in_use(ops: list[tuple[int, bool]]) -> None:
    """Chunk files of varying sizes: buffers are reused or replaced, never hoarded."""
    pool, out, most = direct.BufferPool(), [], 0
    for size, give_back in ops:
        buf = pool.get(size)
        assert buf.nbytes >= size and buf.ctypes.data % direct.ALIGN == 0
        buf[-1] = 1  # writable to its end
        out.append(buf)
        most = max(most, len(out))
        if give_back:
            for b in out:
                pool.put(b)
            out = []
        assert len(pool._free) + len(out) <= most
