"""ChunkIO (the zarr fast path) against zarr-python 3.1: same values, same files."""

from __future__ import annotations

import contextlib
import gzip
import json
import pickle
import shutil
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.codecs import BytesCodec, Crc32cCodec, TransposeCodec, ZstdCodec
from zarr.errors import UnstableSpecificationWarning, ZarrUserWarning

from arraystore.backends.zarr import make_compressors
from arraystore.backends.zarr.chunks import ChunkIO
from arraystore.errors import CorruptData, InvalidArgument, ShapeMismatch

CODECS = ["none", "zstd", "gzip", "blosc-lz4", "blosc-zstd", "lz4"]
DTYPES = ["bool", "int8", "uint16", "int64", "float16", "float32", "float64", "complex128"]
#: (shape, chunks): edge chunks in every case, 1-d to 3-d
SHAPES = [((10, 7), (4, 3)), ((37,), (8,)), ((5, 6, 7), (2, 4, 3))]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """zarr warns about numcodecs.lz4 and fixed-length strings (not in the v3 spec)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZarrUserWarning)
        warnings.simplefilter("ignore", UnstableSpecificationWarning)
        yield


@pytest.fixture(autouse=True)
def fixed_gzip_mtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """numcodecs' GZip stamps the current time into the gzip header; pin it so that two
    encodings of the same data are byte-identical (zarr-python's included)."""
    monkeypatch.setattr(gzip, "time", SimpleNamespace(time=lambda: 1_700_000_000.0))


def create(
    path: Path,
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    dtype: str,
    codec: str = "none",
    crc: bool = False,
    fill_value: Any = 0,
    **kwargs: Any,
) -> Any:
    compressors = [*make_compressors(codec), *([Crc32cCodec()] if crc else [])]
    with quiet():
        return zarr.create_array(
            path, shape=shape, chunks=chunks, dtype=dtype, compressors=compressors,
            fill_value=fill_value, zarr_format=3, **kwargs,
        )  # fmt: skip


def open_array(path: Path, **kwargs: Any) -> Any:
    with quiet():
        return zarr.open_array(path, zarr_format=3, **kwargs)


def chunkio(path: Path, **kwargs: Any) -> ChunkIO:
    io = ChunkIO.from_path(path, **kwargs)
    assert io is not None
    return io


def random_data(shape: tuple[int, ...], chunks: tuple[int, ...], dtype: str) -> np.ndarray:
    """Random values over the dtype's range; the first chunk is all zero (zarr stores no
    file for it) and the second all negative zero (a file for floats; for complex, none
    by zarr, one by arraystore, which keeps the sign)."""
    rng = np.random.default_rng(sum(map(ord, dtype)) + len(shape))
    dt = np.dtype(dtype)
    if dt.kind == "b":
        data = rng.random(shape) < 0.5
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        data = rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
    elif dt.kind == "f":
        data = (rng.standard_normal(shape) * 1000).astype(dt)
    else:
        data = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dt)
    first = tuple(slice(0, c) for c in chunks)
    data[first] = 0
    if dt.kind in "fc":
        second = (slice(chunks[0], 2 * chunks[0]), *first[1:])
        data[second] = -0.0
    return data


def chunk_files(path: Path) -> dict[str, bytes]:
    return {
        p.relative_to(path).as_posix(): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name != "zarr.json"
    }


def all_indices(io: ChunkIO) -> list[tuple[int, ...]]:
    return [tuple(int(i) for i in ix) for ix in np.ndindex(*io.grid)]


# ---------------------------------------------------------------------------- (a) read
@pytest.mark.parametrize("crc", [False, True], ids=["plain", "crc32c"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("codec", CODECS)
def test_reads_what_zarr_wrote(tmp_path: Path, codec: str, dtype: str, crc: bool) -> None:
    for n, (shape, chunks) in enumerate(SHAPES):
        path = tmp_path / f"a{n}"
        data = random_data(shape, chunks, dtype)
        create(path, shape, chunks, dtype, codec, crc)[...] = data
        io = chunkio(path)
        assert io.chunk_bytes == np.prod(chunks) * np.dtype(dtype).itemsize
        assert not io.chunk_path((0,) * len(shape)).exists()  # zarr skipped the zero chunk
        out = np.empty(chunks, dtype=dtype)  # one buffer reused for every chunk
        for index in all_indices(io):
            region = io.chunk_region(index)
            valid = tuple(slice(0, s.stop - s.start) for s in region)
            assert io.read_chunk(index, out) is out
            np.testing.assert_array_equal(out[valid], data[region])
            padding = np.ones(chunks, dtype=bool)
            padding[valid] = False
            assert (out[padding] == 0).all()  # zarr pads edge chunks with the fill value
            clipped = io.read_chunk(index, np.empty(io.valid_shape(index), dtype=dtype))
            np.testing.assert_array_equal(clipped, data[region])


# ---------------------------------------------------------------------------- (b) write
@pytest.mark.parametrize("crc", [False, True], ids=["plain", "crc32c"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("codec", CODECS)
def test_writes_what_zarr_writes(tmp_path: Path, codec: str, dtype: str, crc: bool) -> None:
    for n, (shape, chunks) in enumerate(SHAPES):
        data = random_data(shape, chunks, dtype)
        create(tmp_path / f"z{n}", shape, chunks, dtype, codec, crc)[...] = data
        create(tmp_path / f"c{n}", shape, chunks, dtype, codec, crc)
        io = chunkio(tmp_path / f"c{n}")
        for k, index in enumerate(all_indices(io)):
            block = data[io.chunk_region(index)]
            if k % 2 and block.shape != chunks:  # edge chunk passed padded by the caller
                full = np.zeros(chunks, dtype=dtype)
                full[tuple(slice(0, s) for s in block.shape)] = block
                block = full
            written = io.write_chunk(index, np.ascontiguousarray(block))
            assert written == io.chunk_path(index).exists()
        np.testing.assert_array_equal(open_array(tmp_path / f"c{n}")[...], data)
        ours, theirs = chunk_files(tmp_path / f"c{n}"), chunk_files(tmp_path / f"z{n}")
        if np.dtype(dtype).kind == "c" and io.grid[0] > 1:  # the -0.0 chunk: ours only
            assert set(ours) - set(theirs) == {io.chunk_key((1,) + (0,) * (len(shape) - 1))}
            ours = {k: v for k, v in ours.items() if k in theirs}
        assert sorted(ours) == sorted(theirs)
        for key in theirs:
            assert ours[key] == theirs[key], key


def test_overwrite_and_empty_chunk_deletes_file(tmp_path: Path) -> None:
    arr = create(tmp_path / "a", (10,), (4,), "float64", "zstd", crc=True)
    io = chunkio(tmp_path / "a")
    assert io.write_empty_chunks is False  # zarr-python 3.1's default
    assert io.write_chunk((1,), np.arange(4.0))
    assert io.write_chunk((1,), np.arange(4.0) + 1)  # replaces the file
    np.testing.assert_array_equal(arr[4:8], np.arange(4.0) + 1)
    assert not io.write_chunk((1,), np.zeros(4))  # all fill value: file removed, like zarr
    assert not io.chunk_path((1,)).exists()
    assert io.write_chunk((1,), np.array([0.0, -0.0, 0.0, 0.0]))  # -0.0 is data for zarr
    assert list(io.chunk_path((1,)).parent.iterdir()) == [io.chunk_path((1,))]  # no temp


def test_write_empty_chunks_true_matches_zarr(tmp_path: Path) -> None:
    data = np.zeros((8, 3), dtype="int16")
    create(tmp_path / "z", (8, 3), (4, 3), "int16", "blosc-lz4",
           config={"write_empty_chunks": True})[...] = data  # fmt: skip
    create(tmp_path / "c", (8, 3), (4, 3), "int16", "blosc-lz4")
    io = chunkio(tmp_path / "c", write_empty_chunks=True)
    for index in all_indices(io):
        assert io.write_chunk(index, data[io.chunk_region(index)].copy())
    assert chunk_files(tmp_path / "c") == chunk_files(tmp_path / "z")
    assert len(chunk_files(tmp_path / "c")) == 2


@pytest.mark.parametrize(
    ("dtype", "fill", "empty", "data"),
    [
        ("float64", "nan", np.full(4, np.nan), np.array([np.nan, 1, np.nan, np.nan])),
        ("float32", 1.5, np.full(4, 1.5), np.array([1.5, 1.5, 1.5, -1.5])),
        ("complex128", 0, np.zeros(4), np.array([0, 1j, 0, 0])),
        ("bool", True, np.ones(4, bool), np.array([True, False, True, True])),
        ("uint16", 7, np.full(4, 7), np.array([7, 7, 7, 8])),
    ],
)
def test_empty_chunk_rule_matches_zarr(
    tmp_path: Path, dtype: str, fill: Any, empty: np.ndarray, data: np.ndarray
) -> None:
    fill_value = float(fill) if fill == "nan" else fill
    for name, block in (("empty", empty), ("data", data)):
        z = create(tmp_path / f"z{name}", (4,), (4,), dtype, "none", fill_value=fill_value)
        z[...] = block.astype(dtype)
        create(tmp_path / f"c{name}", (4,), (4,), dtype, "none", fill_value=fill_value)
        io = chunkio(tmp_path / f"c{name}")
        assert io.is_fill(block.astype(dtype)) is (name == "empty")
        io.write_chunk((0,), block.astype(dtype))
        assert chunk_files(tmp_path / f"c{name}") == chunk_files(tmp_path / f"z{name}")


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
@pytest.mark.parametrize("fill", [0, 1, complex(-0.0, 0)])
def test_complex_zero_signs_are_data(tmp_path: Path, dtype: str, fill: complex) -> None:
    """Q2: a chunk of complex -0.0s equals a fill of 0 for zarr's ``==``, so it was not
    written and read back as +0 (and ``1-0j`` against a fill of 1). Complex fills are
    compared bitwise: the chunk is written and every sign bit comes back."""
    create(tmp_path / "c", (4,), (4,), dtype, "none", fill_value=fill)
    io = chunkio(tmp_path / "c")
    assert io.write_empty_chunks is False
    f, same = complex(fill), np.full(4, fill, dtype=dtype)
    for parts in ([(-0.0, 0.0)] * 4, [(0.0, -0.0)] * 4, [(f.real, -f.imag or -0.0)] * 4):
        block = np.array([complex(*p) for p in parts], dtype=dtype)
        if block.tobytes() == same.tobytes():
            continue
        assert not io.is_fill(block)
        assert io.write_chunk((0,), block)
        got = np.asarray(open_array(tmp_path / "c")[...])
        assert got.tobytes() == block.tobytes()
    assert io.is_fill(same) and not io.write_chunk((0,), same)


# ---------------------------------------------------------------------------- (c) fill value
@pytest.mark.parametrize(
    ("dtype", "fill"),
    [
        ("float64", 0),
        ("float64", float("nan")),
        ("float32", float("-inf")),
        ("float16", 2.5),
        ("int8", -5),
        ("uint64", 2**64 - 1),
        ("bool", True),
        ("complex64", complex(float("nan"), 1.0)),
        ("complex128", complex(1, -2)),
    ],
)
def test_missing_chunk_reads_fill_value(tmp_path: Path, dtype: str, fill: Any) -> None:
    arr = create(tmp_path / "a", (6, 5), (4, 4), dtype, "zstd", fill_value=fill)
    io = chunkio(tmp_path / "a")
    out = np.ones((4, 4), dtype=dtype)
    io.read_chunk((1, 1), out)
    np.testing.assert_array_equal(out, np.full((4, 4), fill, dtype=dtype))
    np.testing.assert_array_equal(out[:2, :1], arr[4:, 4:])
    assert np.array_equal(io.fill_value, np.asarray(fill, dtype=dtype), equal_nan=True)


def test_fill_value_json_forms(tmp_path: Path) -> None:
    create(tmp_path / "a", (4,), (4,), "float32", "none")
    doc = json.loads((tmp_path / "a" / "zarr.json").read_text())

    def fill(value: Any, dtype: str = "float32") -> Any:
        io = ChunkIO.from_metadata({**doc, "data_type": dtype, "fill_value": value}, tmp_path)
        return None if io is None else io.fill_value

    assert np.isnan(fill("NaN")) and fill("Infinity") == np.inf and fill("-Infinity") < 0
    assert fill("0x3fc00000") == np.float32(1.5)
    assert fill(["NaN", 2.0], "complex128").imag == 2.0
    assert fill(-128, "int8") == -128
    for bad, dtype in [(128, "int8"), (-1, "uint8"), (1.5, "int32"), (True, "int8"),
                       (1e6, "float16"), ("nan", "float64"), ("0x00", "float32"),
                       (0, "bool"), ([1.0], "complex64"), (None, "float64")]:  # fmt: skip
        assert fill(bad, dtype) is None, (bad, dtype)


def test_zero_dimensional(tmp_path: Path) -> None:
    arr = create(tmp_path / "a", (), (), "float64", "blosc-lz4", crc=True)
    arr[()] = 3.25
    io = chunkio(tmp_path / "a")
    assert io.chunk_key(()) == "c" and io.grid == ()
    assert io.read_chunk(())[()] == 3.25
    io.write_chunk((), np.array(-1.0))
    assert open_array(tmp_path / "a")[()] == -1.0


@pytest.mark.parametrize(
    ("encoding", "key"),
    [
        ({"name": "default", "separator": "/"}, "c/1/0"),
        ({"name": "default", "separator": "."}, "c.1.0"),
        ({"name": "v2", "separator": "."}, "1.0"),
        ({"name": "v2", "separator": "/"}, "1/0"),
    ],
)
def test_chunk_key_encodings(tmp_path: Path, encoding: dict[str, str], key: str) -> None:
    data = np.arange(30, dtype="int32").reshape(6, 5)
    create(tmp_path / "z", (6, 5), (4, 5), "int32", "zstd", chunk_key_encoding=encoding)[...] = data
    create(tmp_path / "c", (6, 5), (4, 5), "int32", "zstd", chunk_key_encoding=encoding)
    io = chunkio(tmp_path / "c")
    assert io.chunk_key((1, 0)) == key
    for index in all_indices(io):
        io.write_chunk(index, data[io.chunk_region(index)].copy())
    assert chunk_files(tmp_path / "c") == chunk_files(tmp_path / "z")
    assert key in chunk_files(tmp_path / "c")
    np.testing.assert_array_equal(chunkio(tmp_path / "z").read_chunk((1, 0))[:2], data[4:])


# ---------------------------------------------------------------------------- (d) corruption
@pytest.mark.parametrize("codec", CODECS)
def test_flipped_byte_fails_crc32c(tmp_path: Path, codec: str) -> None:
    arr = create(tmp_path / "a", (20, 3), (8, 3), "float64", codec, crc=True)
    arr[...] = np.arange(60.0).reshape(20, 3)
    io = chunkio(tmp_path / "a")
    path = io.chunk_path((1, 0))
    raw = bytearray(path.read_bytes())
    for at in (0, len(raw) // 2, len(raw) - 1):  # payload and the checksum itself
        bad = raw.copy()
        bad[at] ^= 0x10
        path.write_bytes(bytes(bad))
        with pytest.raises(CorruptData, match=r"'c/1/0'.*crc32c"):
            io.read_chunk((1, 0))
    path.write_bytes(bytes(raw))
    np.testing.assert_array_equal(io.read_chunk((1, 0)), arr[8:16])


@pytest.mark.parametrize("codec", CODECS)
def test_damaged_chunk_without_checksum(tmp_path: Path, codec: str) -> None:
    arr = create(tmp_path / "a", (16, 3), (8, 3), "float64", codec)
    arr[...] = np.random.default_rng(1).random((16, 3))
    create(tmp_path / "b", (32, 3), (16, 3), "float64", codec)[...] = 1.0
    io = chunkio(tmp_path / "a")
    path = io.chunk_path((1, 0))
    raw = path.read_bytes()
    damaged = [raw[: len(raw) // 2], raw + b"\0", b"", b"garbage!" * 3]
    damaged.append((tmp_path / "b" / "c" / "0" / "0").read_bytes())  # decodes to 2x the size
    for bad in damaged:
        path.write_bytes(bad)
        with pytest.raises(CorruptData, match=r"'c/1/0'"):
            io.read_chunk((1, 0))


# ---------------------------------------------------------------------------- (e) unsupported
def test_unsupported_metadata_gives_none(tmp_path: Path) -> None:
    zarr.create_array(tmp_path / "shard", shape=(8, 8), chunks=(2, 2), shards=(4, 4), dtype="f8")
    zarr.create_array(tmp_path / "transpose", shape=(8, 8), chunks=(2, 2), dtype="f8",
                      filters=[TransposeCodec(order=(1, 0))])  # fmt: skip
    zarr.create_array(tmp_path / "big", shape=(8,), chunks=(2,), dtype="f8",
                      serializer=BytesCodec(endian="big"))  # fmt: skip
    zarr.create_array(tmp_path / "crc_first", shape=(8,), chunks=(2,), dtype="f8",
                      compressors=[Crc32cCodec(), ZstdCodec()])  # fmt: skip
    with quiet():
        zarr.create_array(tmp_path / "str", shape=(8,), chunks=(2,), dtype="S4", fill_value=b"")
        zarr.create_array(tmp_path / "dt", shape=(8,), chunks=(2,), dtype="M8[s]")
    for name in ("shard", "transpose", "big", "crc_first", "str", "dt"):
        assert ChunkIO.from_path(tmp_path / name) is None, name

    create(tmp_path / "ok", (8,), (2,), "float64", "zstd")
    doc = json.loads((tmp_path / "ok" / "zarr.json").read_text())
    assert ChunkIO.from_metadata(doc, tmp_path / "ok") is not None
    codecs = doc["codecs"]
    for change in [
        {"zarr_format": 2},
        {"node_type": "group"},
        {"chunk_grid": {"name": "rectilinear", "configuration": {"chunk_shape": [2]}}},
        {"chunk_key_encoding": {"name": "custom", "configuration": {"separator": "/"}}},
        {"chunk_key_encoding": {"name": "default", "configuration": {"separator": "-"}}},
        {"storage_transformers": [{"name": "x"}]},
        {"some_extension": {"must_understand": True}},
        {"codecs": [*codecs, {"name": "numcodecs.delta", "configuration": {"dtype": "<f8"}}]},
        {"codecs": [codecs[0], {"name": "zstd", "configuration": {"level": 3, "x": 1}}]},
        {"codecs": [codecs[0], *codecs[1:], *codecs[1:]]},
        {"codecs": codecs[1:]},
        {"data_type": "bfloat16"},
        {"data_type": {"name": "fixed_length_utf32", "configuration": {"length_bytes": 4}}},
        {"shape": [8, 8]},
    ]:
        assert ChunkIO.from_metadata({**doc, **change}, tmp_path / "ok") is None, change
    ok = {**doc, "some_extension": {"must_understand": False}, "attributes": {"a": 1}}
    assert ChunkIO.from_metadata(ok, tmp_path / "ok") is not None


def test_bad_arguments(tmp_path: Path) -> None:
    create(tmp_path / "a", (10, 4), (4, 4), "float32", "lz4")
    io = chunkio(tmp_path / "a")
    for index in [(3, 0), (0, 1), (-1, 0), (0,)]:
        with pytest.raises(InvalidArgument):
            io.read_chunk(index)
    with pytest.raises(ShapeMismatch):
        io.read_chunk((0, 0), np.empty((4, 4), dtype="float64"))
    with pytest.raises(ShapeMismatch):
        io.read_chunk((0, 0), np.empty((2, 4), dtype="float32"))
    with pytest.raises(InvalidArgument):
        io.read_chunk((0, 0), np.empty((4, 8), dtype="float32")[:, ::2])
    with pytest.raises(ShapeMismatch):
        io.write_chunk((0, 0), np.ones((4, 4), dtype="float64"))
    fortran = np.asfortranarray(np.arange(16, dtype="float32").reshape(4, 4))
    assert io.write_chunk((0, 0), fortran)  # any layout is fine for writing (copied)
    np.testing.assert_array_equal(io.read_chunk((0, 0)), fortran)


# ---------------------------------------------------------------------------- threads, pickle
def test_concurrent_reads_and_writes(tmp_path: Path) -> None:
    data = np.random.default_rng(2).standard_normal((4000, 3))
    create(tmp_path / "z", (4000, 3), (50, 3), "float64", "blosc-lz4", crc=True)[...] = data
    create(tmp_path / "c", (4000, 3), (50, 3), "float64", "blosc-lz4", crc=True)
    reader, writer = chunkio(tmp_path / "z"), chunkio(tmp_path / "c")
    indices = all_indices(reader)

    def copy(index: tuple[int, ...]) -> bool:
        block = reader.read_chunk(index)  # per-thread scratch buffers inside
        np.testing.assert_array_equal(block, data[reader.chunk_region(index)])
        return writer.write_chunk(index, block)

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(copy, indices))
    assert chunk_files(tmp_path / "c") == chunk_files(tmp_path / "z")


@pytest.mark.parametrize("codec", CODECS)
def test_pickle_roundtrip(tmp_path: Path, codec: str) -> None:
    data = np.arange(10, dtype="int64") + 1
    create(tmp_path / "z", (10,), (4,), "int64", codec, crc=True)[...] = data
    create(tmp_path / "c", (10,), (4,), "int64", codec, crc=True)
    io = chunkio(tmp_path / "z")
    io.read_chunk((0,))  # populate this thread's scratch buffer
    clone = pickle.loads(pickle.dumps(io))
    np.testing.assert_array_equal(clone.read_chunk((2,))[:2], [9, 10])
    family = "blosc" if codec == "lz4" else codec.partition("-")[0]  # lz4: blosc (format 2)
    assert f"{family}+crc32c" in repr(clone)
    writer = pickle.loads(pickle.dumps(chunkio(tmp_path / "c")))
    for index in all_indices(writer):
        writer.write_chunk(index, data[writer.chunk_region(index)])
    assert chunk_files(tmp_path / "c") == chunk_files(tmp_path / "z")


def test_not_a_file_is_missing(tmp_path: Path) -> None:
    create(tmp_path / "a", (4, 4), (2, 2), "int8", "none", fill_value=3)
    io = chunkio(tmp_path / "a")
    io.chunk_path((0, 0)).mkdir(parents=True)  # a directory where a chunk would be
    np.testing.assert_array_equal(io.read_chunk((0, 0)), np.full((2, 2), 3, "int8"))
    shutil.rmtree(tmp_path / "a" / "c")
    (tmp_path / "a" / "c").write_bytes(b"")  # a file where a directory would be
    np.testing.assert_array_equal(io.read_chunk((1, 1)), np.full((2, 2), 3, "int8"))
