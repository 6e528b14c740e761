"""Sharded zarr-backend arrays (``shards=``): round trips against numpy, zarr-python and
tensorstore reading them, partial reads touching only their inner chunks, corruption."""

from __future__ import annotations

import itertools
import math
import os
import pickle
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zarr.errors import UnstableSpecificationWarning, ZarrUserWarning

import arraystore
from arraystore.backends.zarr.shards import ShardIO, read_region, shard_work_chunks
from arraystore.errors import CorruptData, InvalidArgument
from arraystore.ops.verify import verify
from arraystore.testing import resident_fraction, run_cli

CODECS = ["none", "lz4", "zstd", "gzip", "blosc-lz4", "blosc-zstd"]
#: (shape, chunks, shards): ragged against both the chunks and the shards
SHAPES = [
    ((103,), (10,), (30,)),
    ((103, 7), (10, 3), (30, 6)),
    ((9, 10, 11), (2, 3, 4), (4, 6, 8)),
]


def zarr_read(path: Path) -> np.ndarray:
    with warnings.catch_warnings():  # numcodecs.lz4 is not in the zarr v3 spec
        warnings.simplefilter("ignore", ZarrUserWarning)
        warnings.simplefilter("ignore", UnstableSpecificationWarning)
        return np.asarray(zarr.open_array(path, mode="r")[...])


def data_files(arr: Any) -> list[Path]:
    """The array's data files (anything but its JSON metadata), found, not named."""
    root = Path(arr.handle.path)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix != ".json")


@pytest.fixture
def store(tmp_path: Path) -> Any:
    return arraystore.open(tmp_path / "s.store", mode="a")


@pytest.mark.parametrize("checksum", [False, True])
@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_every_codec(store: Any, codec: str, checksum: bool) -> None:
    rng = np.random.default_rng(1)
    for k, (shape, chunks, shards) in enumerate(SHAPES):
        x = rng.normal(size=shape)
        name = f"a{k}"
        store.create(
            name, data=x, chunks=chunks, shards=shards, backend="zarr", codec=codec,
            checksum=checksum,
        )  # fmt: skip
        a = store[name]
        assert a.shards == shards and a.chunks == chunks
        np.testing.assert_array_equal(a[...], x)
        sub = tuple(slice(1, max(2, n - 2)) for n in shape)
        np.testing.assert_array_equal(a[sub], x[sub])
        np.testing.assert_array_equal(zarr_read(a.handle.path), x)
        # a region write that covers some shards partly: read-modify-write of those
        y = x.copy()
        y[sub] = -x[sub]
        a[sub] = -x[sub]
        np.testing.assert_array_equal(store[name][...], y)
        np.testing.assert_array_equal(zarr_read(a.handle.path), y)
        n_shards = int(np.prod([-(-n // s) for n, s in zip(shape, shards, strict=True)]))
        assert len(data_files(a)) == n_shards
    assert not verify(store).corrupt


def test_structured_columnar(store: Any) -> None:
    x = np.zeros(1003, dtype=[("a", "f8"), ("v", "f4", (3,)), ("k", "i2")])
    rng = np.random.default_rng(2)
    x["a"], x["v"], x["k"] = rng.random(1003), rng.random((1003, 3)), rng.integers(0, 99, 1003)
    a = store.create("st", data=x, backend="zarr", chunks=64, shards=256, checksum=True)
    assert a.shards == (256,) and a["v"].shards == (256, 3)
    np.testing.assert_array_equal(store["st"][...], x)
    np.testing.assert_array_equal(store["st"]["v"][10:900], x["v"][10:900])
    for f in ("a", "v", "k"):  # each field is a sharded zarr array of its own
        np.testing.assert_array_equal(zarr_read(Path(a.handle.path) / f), x[f])
    y = x.copy()
    y[5:300] = x[::-1][5:300]
    a[5:300] = x[::-1][5:300]
    np.testing.assert_array_equal(store["st"][...], y)
    assert store.info("st")["shards"] == [256]
    assert not verify(store).corrupt


def test_tensorstore_reads_it(store: Any) -> None:
    ts = pytest.importorskip("tensorstore")
    x = np.random.default_rng(3).random((103, 7))
    a = store.create("t", data=x, chunks=(10, 7), shards=(40, 7), backend="zarr", codec="zstd",
                     checksum=True)  # fmt: skip
    t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(a.handle.path)}})
    np.testing.assert_array_equal(t.result().read().result(), x)


@pytest.mark.parametrize("location", ["end", "start"])
@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_reads_what_zarr_python_wrote(tmp_path: Path, codec: str, location: str) -> None:
    """ShardIO on a sharded array zarr-python wrote: inner chunks zarr-python left out
    (all fill value) read as fill value; the index may come first."""
    from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec, ZstdCodec

    x = np.arange(103 * 4, dtype="f8").reshape(103, 4)
    x[20:40] = 0  # zarr-python leaves these all-zero inner chunks out of their shard
    inner = [BytesCodec(), *([ZstdCodec(level=1)] if codec == "zstd" else []), Crc32cCodec()]
    sharding = ShardingCodec(chunk_shape=(10, 4), codecs=inner, index_location=location)
    z = zarr.create_array(tmp_path / "z", shape=x.shape, chunks=(50, 4), dtype="f8",
                          fill_value=0, serializer=sharding, compressors=None)  # fmt: skip
    z[...] = x
    sio = ShardIO.from_path(tmp_path / "z")
    assert isinstance(sio, ShardIO) and sio.shards == (50, 4) and sio.chunks == (10, 4)
    out = np.empty((103, 4))
    read_region(sio, (slice(0, 103), slice(0, 4)), out)
    np.testing.assert_array_equal(out, x)
    sio.complete = True  # an array arraystore wrote has every chunk: a missing one is lost
    with pytest.raises(CorruptData, match="missing"):
        read_region(sio, (slice(25, 26), slice(0, 4)), out[:1])


def test_missing_inner_chunk_of_a_complete_array_is_corrupt(store: Any) -> None:
    x = np.arange(103 * 4, dtype="f8").reshape(103, 4)
    x[20:40] = 0
    a = store.create("z", shape=x.shape, dtype="f8", chunks=(10, 4), shards=(50, 4),
                     backend="zarr", codec="zstd", fill="empty")  # fmt: skip
    with warnings.catch_warnings():  # zarr-python leaves the zero inner chunks out
        warnings.simplefilter("ignore", ZarrUserWarning)
        z = zarr.open_array(a.handle.path, mode="r+")
        z.with_config({"write_empty_chunks": False})[...] = x
    b = arraystore.open(store.path, mode="r")["z"]
    np.testing.assert_array_equal(b[:20], x[:20])
    with pytest.raises(CorruptData, match="missing"):
        b[...]


def test_one_chunk_region_reads_only_that_chunk(store: Any, preadv_sizes: list[int]) -> None:
    x = np.random.default_rng(4).random((4096, 16))  # 512 KiB; 8 KiB inner chunks
    a = store.create("r", data=x, chunks=(64, 16), shards=(2048, 16), backend="zarr",
                     checksum=True)  # fmt: skip
    files = data_files(a)
    assert len(files) == 2
    b = arraystore.open(store.path, mode="r")["r"]
    read = preadv_sizes
    read.clear()
    np.testing.assert_array_equal(b[130:190], x[130:190])  # inner chunk 2 only
    index = 16 * 32 + 4  # 32 inner chunks per shard, then the crc
    assert sum(read) == 64 * 16 * 8 + 4 + index
    assert sum(read) < files[0].stat().st_size // 16
    read.clear()
    np.testing.assert_array_equal(b[64:256], x[64:256])  # 3 chunks back to back: one read
    assert read == [3 * (64 * 16 * 8 + 4)]  # (the index is cached)


def _flip(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_corrupt_index_crc(store: Any, capsys: pytest.CaptureFixture[str]) -> None:
    x = np.random.default_rng(5).random((100, 4))
    a = store.create("c", data=x, chunks=(10, 4), shards=(50, 4), backend="zarr")
    shard = data_files(a)[-1]
    _flip(shard, shard.stat().st_size - 10)  # a byte of the index (at the end)
    b = arraystore.open(store.path, mode="r")["c"]
    np.testing.assert_array_equal(b[:50], x[:50])  # the other shard is fine
    with pytest.raises(CorruptData, match="index crc32c"):
        b[60:70]
    report = verify(store)
    assert report.corrupt and "index crc32c" in report.findings[0].message
    code, out, err = run_cli(["verify", str(store.path)])
    assert code == 1 and "index crc32c" in out + err


def test_corrupt_inner_chunk_checksum(store: Any) -> None:
    x = np.random.default_rng(6).random((100, 4))
    a = store.create("c", data=x, chunks=(10, 4), shards=(50, 4), backend="zarr", checksum=True)
    _flip(data_files(a)[0], 5)  # inside the first inner chunk
    with pytest.raises(CorruptData, match="crc32c checksum mismatch"):
        arraystore.open(store.path, mode="r")["c"][:3]
    assert verify(store).corrupt


def test_truncated_shard_is_one_line_error(store: Any, capsys: pytest.CaptureFixture[str]) -> None:
    x = np.random.default_rng(7).random((100, 4))
    a = store.create("c", data=x, chunks=(10, 4), shards=(50, 4), backend="zarr", codec="lz4")
    shard = data_files(a)[0]
    os.truncate(shard, shard.stat().st_size // 2)
    with pytest.raises(CorruptData):
        arraystore.open(store.path, mode="r")["c"][...]
    code, _out, err = run_cli(["stats", str(store.path), "c"])
    assert code == 1 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "shard" in err
    os.truncate(shard, 3)  # shorter than its index
    code, _out, err = run_cli(["stats", str(store.path), "c"])
    assert code == 1 and "shorter than its index" in err and len(err.strip().splitlines()) == 1


def test_missing_shard_of_a_complete_array_is_corrupt(store: Any) -> None:
    x = np.random.default_rng(8).random((100, 4))
    a = store.create("c", data=x, chunks=(10, 4), shards=(50, 4), backend="zarr")
    data_files(a)[0].unlink()
    with pytest.raises(CorruptData, match="missing"):
        arraystore.open(store.path, mode="r")["c"][:10]


def test_bad_shards_refused(store: Any) -> None:
    with pytest.raises(InvalidArgument, match="multiples of the chunks"):
        store.create("b", (100, 4), "f8", chunks=(10, 4), shards=(25, 4), backend="zarr")
    with pytest.raises(InvalidArgument, match="memmap backend has no shards"):
        store.create("b", (100, 4), "f8", chunks=(10, 4), shards=(20, 4), backend="memmap")
    with pytest.raises(InvalidArgument, match="one entry per dimension"):
        store.create("b", (100, 4), "f8", chunks=(10, 4), shards=(20, 4, 1), backend="zarr")
    assert "b" not in store
    a = store.create("ok", (100, 4), "f8", chunks=(10, 4), shards=1000, backend="zarr")
    assert a.shards == (100, 4)  # cut to the fewest chunks covering the axis


def test_pickled_handle_reads_and_writes(store: Any) -> None:
    """A handle shipped to another process (dask workers) reopens its shard reader."""
    x = np.random.default_rng(9).random((100, 4))
    a = store.create("p", data=x, chunks=(10, 4), shards=(50, 4), backend="zarr", codec="zstd")
    h = a.handle
    h.read((slice(0, 100), slice(0, 4)))  # the reader and its index cache exist now
    h2 = pickle.loads(pickle.dumps(h))
    np.testing.assert_array_equal(h2.read((slice(5, 95), slice(0, 4))), x[5:95])
    with pytest.raises(InvalidArgument, match="0-d array has no shards"):
        store.create("z", (), "f8", shards=(), backend="zarr")


def test_work_chunks() -> None:
    shards, chunks = (64, 8), (4, 8)
    assert shard_work_chunks(shards, chunks, 8, 64 * 8 * 8) == shards
    assert shard_work_chunks(shards, chunks, 8, 64 * 8 * 8 - 1) == (32, 8)
    assert shard_work_chunks(shards, chunks, 8, 20 * 8 * 8) == (16, 8)
    assert shard_work_chunks(shards, chunks, 8, 1) == chunks


def test_many_inner_chunks_per_shard(store: Any) -> None:
    """More inner chunks in one run than one preadv takes (IOV_MAX buffers)."""
    x = np.random.default_rng(10).random(3000)
    a = store.create("many", data=x, chunks=2, shards=3000, backend="zarr", checksum=True)
    np.testing.assert_array_equal(arraystore.open(store.path, mode="r")["many"][...], x)
    assert len(data_files(a)) == 1


@pytest.mark.parametrize("codec", ["zstd", "blosc-lz4"])
def test_compressed_shard_read_in_runs_asked_for_first(
    store: Any, codec: str, monkeypatch: pytest.MonkeyPatch, preadv_sizes: list[int]
) -> None:
    """A compressed shard is read in runs of about COMPRESSED_RUN_BYTES, the whole
    span asked for first (WILLNEED); an uncompressed one in one run, not asked for."""
    from arraystore.backends.zarr import shards

    monkeypatch.setattr(shards, "COMPRESSED_RUN_BYTES", 40_000)
    asked: list[tuple[int, int]] = []
    monkeypatch.setattr(shards, "will_need", lambda fd, n, off=0: asked.append((off, n)))
    x = np.random.default_rng(11).normal(size=(4096, 8))  # 256 KiB; 16 KiB inner chunks
    for c in (codec, "none"):
        a = store.create(f"w{c}", data=x, chunks=(256, 8), shards=(4096, 8), backend="zarr",
                         codec=c)  # fmt: skip
        [shard] = data_files(a)
        b = arraystore.open(store.path, mode="r")[f"w{c}"]
        asked.clear()
        reads = preadv_sizes
        reads.clear()
        np.testing.assert_array_equal(b[...], x)
        np.testing.assert_array_equal(b.stats(axis=0, ops=["max"])["max"], x.max(axis=0))
        index = 16 * 16 + 4  # 16 inner chunks, then the index's crc
        data = shard.stat().st_size - index
        if c == "none":
            assert asked == [] and data in reads
            continue
        assert asked and all(n == data for _, n in asked), (asked, data)
        runs = [n for n in reads if n != index]
        assert sum(runs) == 2 * data and len(runs) >= 2 * -(-data // 60_000)
        assert max(runs) <= 40_000 + data // 16 * 2  # (a run ends past its limit by a chunk)


@given(
    sizes=st.lists(st.integers(1, 50), min_size=0, max_size=40),
    gaps=st.lists(st.booleans(), min_size=40, max_size=40),
    limit=st.integers(1, 200),
)
def test_runs_are_back_to_back_and_bounded(sizes: list[int], gaps: list[bool], limit: int) -> None:
    located, off = [], 0
    for k, n in enumerate(sizes):
        off += 7 if gaps[k] else 0
        located.append((off, n, k, None))
        off += n
    runs = list(ShardIO._runs(located, limit))  # type: ignore[arg-type]
    assert [e for r in runs for e in r] == located
    for r in runs:
        assert all(b[0] == a[0] + a[1] for a, b in itertools.pairwise(r))
        assert r[-1][0] - r[0][0] <= limit or len(r) == 1
    for r, nxt in itertools.pairwise(runs):  # split only where it had to
        gap = nxt[0][0] != r[-1][0] + r[-1][1]
        assert gap or nxt[0][0] - r[0][0] > limit


def _resident(path: Path) -> float:
    frac = resident_fraction(path)
    if frac is None:
        pytest.skip("mincore is unavailable here")
    return frac


def test_drop_pages_of_whole_shards_and_of_inner_chunks(store: Any) -> None:
    """A scan's page dropping (arraystore._native.pages): whole shard files, or the inner
    chunks of a shard a region covers only partly."""
    x = np.random.default_rng(11).random((65536, 16))  # 8 MiB in 4 shards of 16 inner chunks
    a = store.create("d", data=x, chunks=(1024, 16), shards=(16384, 16), backend="zarr")
    files = data_files(a)
    assert len(files) == 4
    for p in files:  # written back and dropped: a file system that keeps them cannot tell
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    if max(_resident(p) for p in files) > 0.5:
        pytest.skip("this file system keeps the pages (tmpfs?)")
    h = arraystore.open(store.path, mode="r")["d"]
    np.testing.assert_array_equal(h[...], x)
    assert min(_resident(p) for p in files) > 0.9
    h.handle.drop_pages((slice(0, 8192), slice(0, 16)))  # the first half of shard 0
    assert 0.4 < _resident(files[0]) < 0.6
    assert min(_resident(p) for p in files[1:]) > 0.9
    h.handle.drop_pages((slice(0, 65536), slice(0, 16)))
    assert max(_resident(p) for p in files) < 0.1


def test_remote_store_through_zarr_python() -> None:
    """A URL store has no direct chunk path: zarr-python reads and writes the shards."""
    fsspec = pytest.importorskip("fsspec")
    url = f"memory://{uuid.uuid4().hex}/data.store"
    try:
        s = arraystore.open(url, mode="a")
        x = np.random.default_rng(12).random((1003, 4))
        a = s.create("r", data=x, chunks=(10, 4), shards=(100, 4), codec="zstd", checksum=True)
        assert a.backend == "zarr" and a.shards == (100, 4)
        a[5:250] = -x[5:250]
        x[5:250] *= -1
        np.testing.assert_array_equal(arraystore.open(url, mode="r")["r"][...], x)
    finally:
        fsspec.filesystem("memory").rm(url.removeprefix("memory://").split("/")[0], recursive=True)


@st.composite
def _sharded_layout(draw: Any) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(st.integers(1, n)) for n in shape)
    shards = tuple(c * draw(st.integers(1, 3)) for c in chunks)
    return shape, chunks, shards


def _region(draw: Any, shape: tuple[int, ...]) -> tuple[slice, ...]:
    out = []
    for n in shape:
        a = draw(st.integers(0, n - 1))
        out.append(slice(a, draw(st.integers(a + 1, n))))
    return tuple(out)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_region_reads_and_writes_follow_numpy(tmp_path_factory: Any, data: Any) -> None:
    """Random layouts (ragged against chunks and shards), random region writes (partial
    shards: read-modify-write) and reads, against a numpy model."""
    shape, chunks, shards = data.draw(_sharded_layout(), "layout")
    codec = data.draw(st.sampled_from(["none", "lz4"]), "codec")
    s = arraystore.open(tmp_path_factory.mktemp("h") / "s.store", mode="a")
    model = np.arange(math.prod(shape), dtype="i4").reshape(shape)
    a = s.create("a", data=model, chunks=chunks, shards=shards, backend="zarr", codec=codec,
                 checksum=True)  # fmt: skip
    for k in range(3):
        region = _region(data.draw, shape)
        block = np.full(tuple(r.stop - r.start for r in region), -k - 1, dtype="i4")
        a[region] = block
        model[region] = block
        read = _region(data.draw, shape)
        np.testing.assert_array_equal(arraystore.open(s.path, mode="r")["a"][read], model[read])
    np.testing.assert_array_equal(zarr_read(a.handle.path), model)
