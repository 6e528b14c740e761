"""Store format 2 (issue 17): a pure Zarr v3 hierarchy that zarr-python, tensorstore,
xarray and numpy read with no warning; memmap data files that are also zarr shards."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

import arraystore
from arraystore.testing import assert_same, run_cli

#: zarr arrays: codec -> dtype (every codec arraystore writes)
CODECS = ["none", "lz4", "zstd", "zstd:7", "gzip", "blosc-lz4", "blosc-zstd"]
#: memmap arrays: name -> (shape, dtype, chunks)
MEMMAP = {
    "mm_f8": ((1003, 4), "f8", (100, 4)),
    "mm_i2": ((37,), "i2", (8,)),
    "mm_bool": ((5, 3, 2), "bool", (2, 3, 2)),
    "mm_c8": ((9,), "c8", (4,)),
    "mm_0d": ((), "f4", ()),
    "mm_empty": ((0, 3), "f8", (4, 3)),
    "mm_zero_cols": ((4, 0), "u1", (2, 1)),
    "mm_rec": ((50,), "id:i8,price:f8,vec:3f4,tag:S3", (16,)),
    "mm_str": ((7,), "U3", (3,)),
}


def _fill(arr: arraystore.Array, seed: int) -> np.ndarray:
    """Write reproducible values over the whole array; return them."""
    rng = np.random.default_rng(seed)
    dt = arr.dtype
    raw = rng.integers(0, 256, size=arr.nbytes, dtype=np.uint8)
    values = raw.view(dt).reshape(arr.shape) if arr.nbytes else np.zeros(arr.shape, dt)
    if dt.names is None and dt.kind in "fc":
        values = rng.normal(size=arr.shape).astype(dt)
    elif dt.names is None and dt.kind == "b":
        values = rng.integers(0, 2, size=arr.shape).astype(bool)
    elif dt.names is None and dt.kind == "U":
        values = np.array(["ab", "ç", "xyz"] * 3, dtype=dt)[: arr.size].reshape(arr.shape)
    elif dt.names is not None:
        values = np.zeros(arr.shape, dt)
        for name in dt.names:
            sub = values[name]
            if dt[name].kind == "S":
                values[name] = rng.choice([b"a", b"bc", b"def"], size=sub.shape)
            else:
                values[name] = rng.normal(size=sub.shape) * 100
    arr[...] = values
    return values


@pytest.fixture(scope="module")
def every_kind(tmp_path_factory):
    """A store holding every kind of array; name -> the values written."""
    path = tmp_path_factory.mktemp("f2") / "every.store"
    s = arraystore.open(path, mode="a")
    expected: dict[str, np.ndarray] = {}
    for i, (name, (shape, dtype, chunks)) in enumerate(MEMMAP.items()):
        s.create(name, shape=shape, dtype=dtype, chunks=chunks)
        expected[name] = _fill(s[name], i)
    s.create("mm_crc", shape=(3000, 5), dtype="i4", chunks=(256, 5), fill="range", checksum=True)
    expected["mm_crc"] = np.arange(15000, dtype="i4").reshape(3000, 5)
    for i, codec in enumerate(CODECS):
        name = f"z_{codec.replace(':', '_')}"
        s.create(name, shape=(101, 7), dtype="f4", chunks=(16, 4), backend="zarr", codec=codec)
        expected[name] = _fill(s[name], 100 + i)
    for i, codec in enumerate(["none", "blosc-zstd"]):
        name = f"z_sharded_{codec}"
        s.create(name, shape=(101, 7), dtype="f8", chunks=(16, 4), shards=(32, 4), codec=codec,
                 backend="zarr", checksum=bool(i))  # fmt: skip
        expected[name] = _fill(s[name], 300 + i)
    s.create(
        "z_rec",
        shape=(33,),
        dtype="id:i8,price:f8,vec:3f4,m:(2,3)u2",
        chunks=(8,),
        backend="zarr",
        codec="zstd",
        checksum=True,
    )
    expected["z_rec"] = _fill(s["z_rec"], 200)
    return path, expected


def _zarr_values(path: Path, arr: arraystore.Array) -> np.ndarray:
    got = zarr.open_array(path, mode="r")[...]
    if got.dtype == np.uint8 and arr.dtype != np.uint8:  # records/strings: raw bytes
        got = np.ascontiguousarray(got).view(arr.dtype).reshape(arr.shape)
    return got


def test_zarr_tree_and_arrays_raise_no_warning(every_kind):
    path, expected = every_kind
    s = arraystore.open(path, mode="r")
    assert s.names() == sorted(expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zarr.open_group(path, mode="r").tree()
        for name, values in expected.items():
            arr = s[name]
            assert_same(arr[...], values)
            if arr.backend == "zarr" and arr.dtype.names is not None:
                for field in arr.dtype.names:
                    assert_same(zarr.open_array(path / name / field, mode="r")[...], values[field])
            else:
                assert_same(_zarr_values(path / name, arr), values)


def test_no_file_a_zarr_reader_does_not_know(every_kind):
    path, _ = every_kind
    names = {p.name for p in path.rglob("*") if p.is_file()}
    assert "arraystore.json" not in names and "data.npy" not in names
    assert "data.crc32c" not in names
    root = json.loads((path / "zarr.json").read_text())
    assert root["attributes"]["arraystore"] == {"format": 2}
    node = json.loads((path / "mm_f8" / "zarr.json").read_text())
    assert node["node_type"] == "array"
    ours = node["attributes"]["arraystore"]
    assert ours["format"] == 2 and ours["backend"] == "memmap" and ours["chunks"] == [100, 4]
    shard = node["codecs"][0]
    assert shard["name"] == "sharding_indexed"
    assert shard["configuration"]["chunk_shape"] == [100, 4]
    assert shard["configuration"]["index_location"] == "end"


def test_xarray_opens_structured_zarr_array(every_kind):
    xr = pytest.importorskip("xarray")
    path, expected = every_kind
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(path / "z_rec", consolidated=False)
        for field in expected["z_rec"].dtype.names:
            assert_same(ds[field].values, expected["z_rec"][field])


def test_tensorstore_reads_every_plain_array(every_kind):
    ts = pytest.importorskip("tensorstore")
    path, expected = every_kind
    s = arraystore.open(path, mode="r")
    for name, values in expected.items():
        arr = s[name]
        if arr.backend == "zarr" and arr.dtype.names is not None:
            continue
        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path / name)}}
        got = ts.open(spec).result().read().result()
        if got.dtype == np.uint8 and arr.dtype != np.uint8:
            got = np.ascontiguousarray(got).view(arr.dtype).reshape(arr.shape)
        assert_same(got, values)


def _npy(arr: arraystore.Array) -> np.ndarray:
    return np.load(arr.handle.file, mmap_mode="r")


def test_memmap_file_is_npy_after_every_writer(tmp_path):
    s = arraystore.open(tmp_path / "s", mode="a")
    a = s.create("a", shape=(1000, 3), dtype="f8", chunks=(64, 3), fill="range")
    assert_same(np.asarray(_npy(a)), a[...])
    a[10:20] = -1.0  # a region write
    a[999, 2] = 7.0
    assert_same(np.asarray(_npy(a)), a[...])
    assert_same(np.load(a.handle.file), a[...])
    a.map("a * 2", out="b")
    b = s["b"]
    assert b.backend == "memmap"
    assert_same(np.asarray(_npy(b)), a[...] * 2)
    assert run_cli(["cast", str(tmp_path / "s"), "a", "--to", "f4", "--out", "c"])[0] == 0
    assert_same(np.asarray(_npy(s["c"])), a[...].astype("f4"))
    src = tmp_path / "x.npy"
    np.save(src, np.arange(10.0))
    s.import_file("d", src)
    assert_same(np.asarray(_npy(s["d"])), np.arange(10.0))
    zarr_b = zarr.open_array(s.array_path("b"), mode="r")[...]
    assert_same(zarr_b, a[...] * 2)
    from arraystore.ops.verify import verify

    assert not verify(s).corrupt


def test_zarr_reads_one_inner_chunk_not_the_whole_file(tmp_path, monkeypatch):
    from zarr.storage import LocalStore

    s = arraystore.open(tmp_path / "s", mode="a")
    a = s.create("a", shape=(64_000, 16), dtype="f8", chunks=(1000, 16), fill="range")
    file_size = a.handle.file.stat().st_size
    read = []
    real = LocalStore.get

    async def counting(self, key, prototype, byte_range=None):
        buf = await real(self, key, prototype, byte_range)
        if buf is not None:
            read.append((key, len(buf)))
        return buf

    monkeypatch.setattr(LocalStore, "get", counting)
    z = zarr.open_array(s.array_path("a"), mode="r")
    got = z[5000:6000]
    assert_same(got, a[5000:6000])
    data = sum(n for k, n in read if k != "zarr.json")
    inner = 1000 * 16 * 8
    assert data <= inner + 16 * 64 + 4 + 64  # one inner chunk and the index
    assert data < file_size / 10


def test_verify_reports_a_damaged_shard_index(tmp_path):
    from arraystore.ops.verify import verify

    s = arraystore.open(tmp_path / "s", mode="a")
    a = s.create("a", shape=(100, 2), dtype="f8", chunks=(10, 2), fill="range")
    f = a.handle.file
    with open(f, "r+b") as fh:
        fh.seek(-20, 2)
        fh.write(b"\x01")
    report = verify(arraystore.open(tmp_path / "s", mode="r"))
    assert report.corrupt
    assert any("shard index" in x.message for x in report.findings)


def test_metadata_update_keeps_zarr_json_valid(tmp_path):
    s = arraystore.open(tmp_path / "s", mode="a")
    a = s.create("a", shape=(10,), dtype="f8", fill="range")
    s.update_meta("a", a.meta.evolve(attrs={"units": "m"}))
    assert s["a"].attrs == {"units": "m"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        z = zarr.open_array(s.array_path("a"), mode="r")
        assert z.attrs["arraystore"]["attrs"] == {"units": "m"}
        assert_same(z[...], np.arange(10.0))
