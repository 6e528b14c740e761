"""Zarr groups and arrays arraystore did not write, read in place (issue 18).

Foreign data is built with the real writers (zarr-python v2 and v3, xarray, tensorstore
when importable); every read and reduction is compared with numpy.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore import ArrayNotFound, InvalidName, ReadOnlyError

zarr = pytest.importorskip("zarr")

SHAPE, CHUNKS = (37, 6), (8, 4)


def _data(dtype: Any = "f8", seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(SHAPE) * 100).astype(dtype)


def _v3_codecs() -> dict[str, dict[str, Any]]:
    from numcodecs.zarr3 import LZ4
    from zarr import codecs as zc

    return {
        "none": {"compressors": None},
        "blosc": {"compressors": [zc.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")]},
        "zstd": {"compressors": [zc.ZstdCodec(level=3)]},
        "gzip": {"compressors": [zc.GzipCodec(level=5)]},
        "lz4": {"compressors": [LZ4()]},
        "crc32c": {"compressors": [zc.ZstdCodec(level=1), zc.Crc32cCodec()]},
        "big-endian": {"serializer": zc.BytesCodec(endian="big"), "compressors": None},
        "big-endian-zstd": {"serializer": zc.BytesCodec(endian="big")},
        "sharded": {"shards": (16, 4)},
        "transpose": {"filters": [zc.TransposeCodec(order=(1, 0))]},
    }


#: the codec chains the direct chunk path reads (the others: zarr-python)
DIRECT = {"none", "blosc", "zstd", "gzip", "lz4", "crc32c", "big-endian", "big-endian-zstd",
          "sharded"}  # fmt: skip


@pytest.fixture(scope="module")
def v3_group(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """A zarr v3 group written by zarr-python: one array per codec chain, with missing
    chunks and a fill value; nested groups."""
    root = tmp_path_factory.mktemp("v3") / "foreign.zarr"
    group = zarr.open_group(root, mode="w", zarr_format=3)
    expected = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr: "transpose is not ... stable" and the like
        for i, (name, kw) in enumerate(_v3_codecs().items()):
            data = _data("f8", i)
            arr = group.create_array(
                name, shape=SHAPE, chunks=CHUNKS, dtype="f8", fill_value=-7.5, **kw
            )
            arr[:16] = data[:16]  # rows 16.. are never written: missing chunks
            expected[name] = np.concatenate([data[:16], np.full((21, 6), -7.5)])
        sub = group.create_group("g").create_group("sub")
        ints = np.arange(60, dtype="i4").reshape(6, 10)
        sub.create_array("ints", data=ints, chunks=(4, 4), dimension_names=["y", "x"])
        expected["g/sub/ints"] = ints
    return root, expected


def test_v3_group_lists_and_reads(v3_group: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, expected = v3_group
    store = arraystore.open(root)
    assert store.mode == "r"  # foreign: read-only by default
    assert store.names() == sorted(expected)
    for name, want in expected.items():
        arr = store[name]
        assert arr.meta.foreign
        np.testing.assert_array_equal(arr[...], want, err_msg=name)
        np.testing.assert_array_equal(arr[3:29, 1:5], want[3:29, 1:5], err_msg=name)
        info = store.info(name)
        assert info["foreign"] is True
        if name in DIRECT or name == "g/sub/ints":
            assert info["read_path"] == "direct", name
        else:
            assert info["read_path"].startswith("zarr-python"), (name, info["read_path"])
    assert store.info("g/sub/ints")["dims"] == ["y", "x"]
    assert store.info("crc32c")["checksum"] is True
    rows = {r["name"]: r for r in store.ls()}
    assert set(rows) == set(expected) and all("error" not in r for r in rows.values())


@pytest.mark.parametrize("name", ["zstd", "big-endian", "sharded", "none"])
def test_v3_reductions_match_numpy(v3_group: tuple[Path, dict[str, np.ndarray]], name: str) -> None:
    root, expected = v3_group
    arr, want = arraystore.open(root)[name], expected[name]
    for axis in (None, 0, 1):
        np.testing.assert_allclose(arr.sum(axis=axis), want.sum(axis=axis))
        np.testing.assert_allclose(arr.mean(axis=axis), want.mean(axis=axis))
        np.testing.assert_allclose(arr.std(axis=axis), want.std(axis=axis))
        np.testing.assert_array_equal(arr.min(axis=axis), want.min(axis=axis))
        np.testing.assert_array_equal(arr.max(axis=axis), want.max(axis=axis))
    qs = [0.0, 0.1, 0.5, 0.99, 1.0]
    np.testing.assert_allclose(arr.quantile(qs), np.quantile(want, qs))
    counts, edges = arr.histogram(bins=7)
    want_counts, want_edges = np.histogram(want, bins=7)
    np.testing.assert_array_equal(counts, want_counts)
    np.testing.assert_allclose(edges, want_edges)


def test_v3_interop_and_verify(
    v3_group: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    root, expected = v3_group
    store = arraystore.open(root)
    pytest.importorskip("dask")
    np.testing.assert_array_equal(store["blosc"].to_dask().compute(), expected["blosc"])
    xr = pytest.importorskip("xarray")
    da = store["g/sub/ints"].to_xarray()
    assert isinstance(da, xr.DataArray) and da.dims == ("y", "x")
    report = store.verify()
    assert not report.corrupt and sorted(report.checked) == sorted(expected)
    out = tmp_path / "e.npy"
    store["gzip"].export(out)
    np.testing.assert_array_equal(np.load(out), expected["gzip"])


@pytest.fixture(scope="module")
def v2_group(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """A zarr v2 group written by zarr-python: compressors, filters, big-endian, fill
    value NaN with missing chunks, '/' separator, F order."""
    import numcodecs

    root = tmp_path_factory.mktemp("v2") / "foreign2.zarr"
    group = zarr.open_group(root, mode="w", zarr_format=2)
    cases: dict[str, dict[str, Any]] = {
        "none": {"compressors": None},
        "blosc": {"compressors": numcodecs.Blosc(cname="zstd", clevel=3, shuffle=2)},
        "zstd": {"compressors": numcodecs.Zstd(level=2)},
        "gzip": {"compressors": numcodecs.GZip(level=4)},
        "zlib": {"compressors": numcodecs.Zlib(level=4)},
        "lz4": {"compressors": numcodecs.LZ4()},
        "delta": {  # (a NaN fill would leak through delta's running sum in edge chunks)
            "filters": [numcodecs.Delta(dtype="<i8")],
            "compressors": numcodecs.Zstd(),
            "dtype": "<i8",
            "fill_value": 0,
        },
        "big-endian": {"dtype": ">f8"},
        "slash": {"chunk_key_encoding": {"name": "v2", "separator": "/"}},
        "fortran": {"order": "F"},
    }
    expected = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, (name, kw) in enumerate(cases.items()):
            kw = {"dtype": "<f8", "fill_value": np.nan, **kw}
            data = _data(kw["dtype"], i)
            arr = group.create_array(name, shape=SHAPE, chunks=CHUNKS, **kw)
            arr[8:] = data[8:]  # rows 0..7: missing chunks, read as the fill value
            fill = np.full((8, 6), kw["fill_value"], dtype=data.dtype)
            expected[name] = np.concatenate([fill, data[8:]])
    return root, expected


def test_v2_group_reads(v2_group: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, expected = v2_group
    store = arraystore.open(root)
    assert store.mode == "r" and store.names() == sorted(expected)
    for name, want in expected.items():
        arr = store[name]
        np.testing.assert_array_equal(arr[...], want, err_msg=name)
        np.testing.assert_array_equal(arr[5:30:3, ::2], want[5:30:3, ::2], err_msg=name)
        np.testing.assert_allclose(arr.sum(axis=0, skipna=True), np.nansum(want, axis=0))
        np.testing.assert_allclose(arr.mean(skipna=True), np.nanmean(want), err_msg=name)
        np.testing.assert_array_equal(arr.max(axis=1), want.max(axis=1), err_msg=name)
        want_path = "zarr-python" if name == "fortran" else "direct"
        assert store.info(name)["read_path"].startswith(want_path), name
    assert store.info("big-endian")["dtype"] == "f8"


def test_v2_group_refuses_writes(v2_group: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, _ = v2_group
    with pytest.raises(arraystore.InvalidArgument, match="only to a zarr v3 group"):
        arraystore.open(root, mode="r+")


def test_writes_refused_unless_asked(tmp_path: Path) -> None:
    root = tmp_path / "g.zarr"
    group = zarr.open_group(root, mode="w", zarr_format=3)
    group.create_array("a", data=np.arange(10.0), chunks=(4,))
    store = arraystore.open(root)
    with pytest.raises(ReadOnlyError, match="never changes"):
        store["a"][0] = 5.0
    with pytest.raises(ReadOnlyError, match=r"open read-only .*--writable"):
        store.cast("a", "f4", out="b")
    assert store.names() == ["a"]
    store = arraystore.open(root, mode="r+")
    with pytest.raises(ReadOnlyError, match="did not write"):
        store["a"][0] = 5.0
    with pytest.raises(ReadOnlyError, match="did not write"):
        store["a"].handle.write((slice(0, 1),), np.zeros(1))
    for fn in (lambda: store.remove("a"), lambda: store.rename("a", "z")):
        with pytest.raises(ReadOnlyError, match="never changes, removes or renames"):
            fn()
    store.cast("a", "f4", out="b")
    assert store.names() == ["a", "b"]
    np.testing.assert_array_equal(store["b"][...], np.arange(10.0, dtype="f4"))
    assert not store["b"].meta.foreign
    store.remove("b")
    assert store.names() == ["a"]
    np.testing.assert_array_equal(zarr.open_array(root / "a")[...], np.arange(10.0))


def test_names_cannot_escape(tmp_path: Path) -> None:
    root = tmp_path / "g.zarr"
    group = zarr.open_group(root, mode="w", zarr_format=3)
    group.create_group("sub").create_array("a", data=np.arange(4), chunks=(4,))
    outside = zarr.open_group(tmp_path / "other.zarr", mode="w", zarr_format=3)
    outside.create_array("secret", data=np.arange(3), chunks=(3,))
    os.symlink(tmp_path / "other.zarr", root / "link")
    store = arraystore.open(root)
    assert store.names() == ["sub/a"]
    for bad in ("../other.zarr/secret", "sub/../../other.zarr/secret", "/etc", "sub//a"):
        with pytest.raises(InvalidName):
            store[bad]
    with pytest.raises(InvalidName, match="leads out of the store"):
        store["link/secret"]
    with pytest.raises(ArrayNotFound):
        store["sub/b"]


def test_xarray_groups(tmp_path: Path) -> None:
    xr = pytest.importorskip("xarray")
    ds = xr.Dataset(
        {"temperature": (("time", "lat"), _data()[:, :4]), "p": (("time",), np.arange(37.0))},
        coords={"time": np.arange(37), "lat": np.linspace(0, 1, 4)},
    )
    for fmt in (2, 3):
        root = tmp_path / f"x{fmt}.zarr"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zarr: consolidated metadata is not in the v3 spec
            ds.to_zarr(root, zarr_format=fmt)
        store = arraystore.open(root)
        assert store.names() == ["lat", "p", "temperature", "time"]
        t = store["temperature"]
        assert t.meta.dims == ("time", "lat")
        np.testing.assert_array_equal(t[...], ds.temperature.values)
        np.testing.assert_allclose(t.std(axis=0), ds.temperature.values.std(axis=0))
        assert store.info("time")["dims"] == ["time"]


def test_cast_and_map_into_xarray_group(tmp_path: Path) -> None:
    """Acceptance 2: new arrays in the xarray-written group; xarray opens all, no warning."""
    xr = pytest.importorskip("xarray")
    data = _data()[:, :4]
    ds = xr.Dataset({"temperature": (("time", "lat"), data)}, coords={"lat": np.arange(4.0)})
    root = tmp_path / "x.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr: consolidated metadata is not in the v3 spec
        ds.to_zarr(root, zarr_format=3)
    store = arraystore.open(root, mode="r+")
    store.cast("temperature", "f4", out="t32", casting="unsafe")
    store["temperature"].map("temperature * 2", out="twice")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = xr.open_zarr(root)
        np.testing.assert_array_equal(back.temperature.values, data)
        np.testing.assert_array_equal(back.t32.values, data.astype("f4"))
        np.testing.assert_array_equal(back.twice.values, data * 2)
        assert back.t32.dims == ("time", "lat")
        np.testing.assert_array_equal(back.lat.values, np.arange(4.0))
    store.create(
        "made", shape=(7,), data=np.arange(7.0)
    )  # dims of its own, made_dim_0 (kept by mv)
    store.rename("made", "renamed")
    store.update_meta("renamed", store["renamed"].meta.evolve(attrs={"k": 1}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = xr.open_zarr(root)
        assert back.renamed.dims == ("made_dim_0",) and "made" not in back
        np.testing.assert_array_equal(back.renamed.values, np.arange(7.0))
    store.remove("twice")  # and out of the consolidated metadata again
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sorted(xr.open_zarr(root).data_vars) == ["renamed", "t32", "temperature"]


def test_tensorstore_array(tmp_path: Path) -> None:
    ts = pytest.importorskip("tensorstore")
    data = _data("f4")
    root = tmp_path / "t.zarr"
    zarr.open_group(root, mode="w", zarr_format=3)
    spec = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(root / "v")},
        "metadata": {
            "shape": list(SHAPE),
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(CHUNKS)}},
            "data_type": "float32",
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "zstd"}],
        },
        "create": True,
    }
    ts.open(spec).result().write(data).result()
    store = arraystore.open(root)
    arr = store["v"]
    assert store.info("v")["read_path"] == "direct"
    np.testing.assert_array_equal(arr[...], data)
    np.testing.assert_allclose(arr.sum(axis=1), data.sum(axis=1, dtype="f8"), rtol=1e-6)


@pytest.mark.parametrize("fmt", [2, 3])
def test_bare_zarr_array_and_pickled_handle(tmp_path: Path, fmt: int) -> None:
    import pickle

    data = _data("<i8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.create_array(tmp_path / "a.zarr", data=data, chunks=CHUNKS, zarr_format=fmt)
    arr = arraystore.open_array(tmp_path / "a.zarr")
    assert arr.name == "a.zarr" and arr.store.names() == ["a.zarr"]
    np.testing.assert_array_equal(arr[...], data)
    np.testing.assert_array_equal(arr.max(axis=0), data.max(axis=0))
    handle = pickle.loads(pickle.dumps(arr.handle))  # what a worker process gets
    np.testing.assert_array_equal(handle.read((slice(3, 20), slice(0, 6))), data[3:20])
    with pytest.raises(arraystore.InvalidStore, match="open_array"):
        arraystore.open(tmp_path / "a.zarr")


def test_map_and_cast_from_a_sharded_source(tmp_path: Path) -> None:
    """Outputs of a sharded source keep its shards, its inner codec and its dimension
    names."""
    root = tmp_path / "s.zarr"
    data = _data()
    group = zarr.open_group(root, mode="w", zarr_format=3)
    group.create_array(
        "s", data=data, chunks=CHUNKS, shards=(16, 4), dimension_names=["row", "col"]
    )
    store = arraystore.open(root, mode="r+")
    assert store.info("s")["read_path"] == "direct"
    out = store["s"].map("s + 1", out="m")
    np.testing.assert_array_equal(out[...], data + 1)
    assert store.info("m")["codec"] == "zstd:0"  # zarr-python's default inside shards
    assert (store.info("m")["chunks"], store.info("m")["shards"]) == ([8, 4], [16, 4])
    assert zarr.open_array(root / "m").metadata.dimension_names == ("row", "col")
    store.cast("s", "f4", out="c", casting="unsafe")
    np.testing.assert_array_equal(store["c"][...], data.astype("f4"))
    assert zarr.open_array(root / "c").metadata.dimension_names == ("row", "col")


def test_unsupported_data_types_are_listed_not_corrupt(tmp_path: Path) -> None:
    xr = pytest.importorskip("xarray")
    ds = xr.Dataset(
        {"v": (("x",), np.arange(3.0))}, coords={"x": np.array(["a", "bb", "c"], object)}
    )
    root = tmp_path / "o.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.to_zarr(root, zarr_format=2)
    store = arraystore.open(root)
    rows = {r["name"]: r for r in store.ls()}
    assert "not supported" in rows["x"]["error"] and rows["x"]["unsupported"] is True
    assert rows["v"]["shape"] == [3] and rows["v"]["foreign"] is True
    with pytest.raises(arraystore.DTypeError, match="zarr array 'x': data type object"):
        store["x"]
    report = store.verify()
    assert not report.corrupt
    assert [f.kind for f in report.findings if f.name == "x"] == ["unchecked"]
