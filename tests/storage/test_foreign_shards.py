"""Sharded zarr v3 arrays (``sharding_indexed``) written by zarr-python and tensorstore,
read in place through the direct shard reader (issue 18, item 2): each shard's index
decoded once, only the inner chunks a read touches are read. Every read and reduction
is compared with numpy (and with what the writer itself reads back)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore import CorruptData
from arraystore.testing import run_cli

zarr = pytest.importorskip("zarr")

#: 37 rows: the last row of shards (rows 32..36) are partial edge shards
SHAPE, INNER, SHARDS, FILL = (37, 6), (4, 3), (16, 3), -7.5


def _data(dtype: Any = "f8", seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(SHAPE) * 100).astype(dtype)


def _write_sparse(arr: Any, data: np.ndarray) -> np.ndarray:
    """Rows 0..19 (shards (1, *) partly written: missing inner chunks), of the last row
    of shards only rows 33..34, columns 0..2 (one inner chunk of shard (2, 0); shard
    (2, 1) has no file); the expected contents."""
    arr[:20] = data[:20]
    arr[33:35, 0:3] = data[33:35, 0:3]
    want = np.full(SHAPE, FILL, dtype=data.dtype)
    want[:20] = data[:20]
    want[33:35, 0:3] = data[33:35, 0:3]
    return want


def _zarr_cases() -> dict[str, dict[str, Any]]:
    from zarr import codecs as zc

    return {
        "none": {"compressors": None},
        "blosc": {"compressors": [zc.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")]},
        "zstd": {},  # zarr-python's default: zstd
        "gzip": {"compressors": [zc.GzipCodec(level=5)]},
        "crc32c": {"compressors": [zc.ZstdCodec(level=1), zc.Crc32cCodec()]},
        "crc32c-none": {"compressors": [zc.Crc32cCodec()]},
        "big-endian": {"serializer": zc.BytesCodec(endian="big"), "dtype": ">f8"},
        "start": {"serializer": "start"},
        "index-no-crc": {"serializer": "no-crc"},
    }


def _create(group: Any, name: str, kw: dict[str, Any]) -> Any:
    from zarr import codecs as zc

    kw = {"dtype": "<f8", **kw}
    if kw.get("serializer") in ("start", "no-crc"):  # the sharding codec spelled out
        where = kw.pop("serializer")
        index = [zc.BytesCodec(), zc.Crc32cCodec()] if where == "start" else [zc.BytesCodec()]
        codec = zc.ShardingCodec(
            chunk_shape=INNER,
            codecs=[zc.BytesCodec(), zc.ZstdCodec(level=2)],
            index_codecs=index,
            index_location=where if where == "start" else "end",
        )
        return group.create_array(
            name, shape=SHAPE, chunks=SHARDS, serializer=codec, compressors=None,
            fill_value=FILL, **kw,
        )  # fmt: skip
    return group.create_array(name, shape=SHAPE, chunks=INNER, shards=SHARDS, fill_value=FILL, **kw)


@pytest.fixture(scope="module")
def zarr_group(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("sh") / "sharded.zarr"
    group = zarr.open_group(root, mode="w", zarr_format=3)
    expected = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, (name, kw) in enumerate(_zarr_cases().items()):
            arr = _create(group, name, kw)
            expected[name] = _write_sparse(arr, _data(kw.get("dtype", "<f8"), i))
    return root, expected


def test_zarr_python_sharded_arrays_read_directly(
    zarr_group: tuple[Path, dict[str, np.ndarray]],
) -> None:
    root, expected = zarr_group
    store = arraystore.open(root)
    for name, want in expected.items():
        info = store.info(name)
        assert info["read_path"] == "direct", (name, info["read_path"])
        assert (info["chunks"], info["shards"]) == (list(INNER), list(SHARDS)), name
        arr = store[name]
        assert (root / name / "c" / "2" / "0").is_file()
        assert not (root / name / "c" / "2" / "1").exists()  # (a missing shard file)
        mine = zarr.open_array(root / name, mode="r")
        for sel in (np.s_[...], np.s_[3:29, 1:5], np.s_[30:37], np.s_[17:18, 4], np.s_[::5, ::2]):
            np.testing.assert_array_equal(arr[sel], want[sel], err_msg=f"{name} {sel}")
            np.testing.assert_array_equal(arr[sel], mine[sel], err_msg=f"{name} {sel}")
    assert store.info("crc32c")["checksum"] is True
    assert store.info("big-endian")["dtype"] == "f8"


@pytest.mark.parametrize("name", ["zstd", "big-endian", "start", "crc32c"])
def test_reductions_match_numpy(zarr_group: tuple[Path, dict[str, np.ndarray]], name: str) -> None:
    root, expected = zarr_group
    arr, want = arraystore.open(root)[name], expected[name]
    for axis in (None, 0, 1):
        np.testing.assert_allclose(arr.sum(axis=axis), want.sum(axis=axis))
        np.testing.assert_allclose(arr.mean(axis=axis), want.mean(axis=axis))
        np.testing.assert_allclose(arr.std(axis=axis), want.std(axis=axis))
        np.testing.assert_array_equal(arr.min(axis=axis), want.min(axis=axis))
        np.testing.assert_array_equal(arr.max(axis=axis), want.max(axis=axis))
    qs = [0.0, 0.3, 0.5, 1.0]
    np.testing.assert_allclose(arr.quantile(qs), np.quantile(want, qs))


def test_cli_stats_axis_0(zarr_group: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, expected = zarr_group
    code, out, err = run_cli(["stats", str(root / "blosc"), "--axis", "0", "--json"])
    assert code == 0, err
    doc = json.loads(out)
    got = doc["fields"]["blosc"] if "fields" in doc else doc
    want = expected["blosc"]
    np.testing.assert_allclose(got["sum"], want.sum(axis=0))
    np.testing.assert_allclose(got["mean"], want.mean(axis=0))
    np.testing.assert_allclose(got["std"], want.std(axis=0))
    np.testing.assert_array_equal(got["min"], want.min(axis=0))
    np.testing.assert_array_equal(got["max"], want.max(axis=0))
    code, out, err = run_cli(["info", str(root / "blosc")])
    assert code == 0 and "direct" in out and "zarr-python" not in out, out + err


def test_unusual_sharding_stays_on_zarr_python(tmp_path: Path) -> None:
    from zarr import codecs as zc

    root = tmp_path / "odd.zarr"
    group = zarr.open_group(root, mode="w", zarr_format=3)
    nested = zc.ShardingCodec(
        chunk_shape=(8, 3),
        codecs=[zc.ShardingCodec(chunk_shape=INNER, codecs=[zc.BytesCodec()])],
    )
    data = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = group.create_array("nested", shape=SHAPE, chunks=SHARDS, serializer=nested,
                               compressors=None, dtype="f8", fill_value=FILL)  # fmt: skip
        b = group.create_array("transpose", shape=SHAPE, chunks=INNER, shards=SHARDS,
                               filters=[zc.TransposeCodec(order=(1, 0))], dtype="f8",
                               fill_value=FILL)  # fmt: skip
        want = {"nested": _write_sparse(a, data), "transpose": _write_sparse(b, data)}
    store = arraystore.open(root)
    for name, why in (("nested", "'sharding_indexed'"), ("transpose", "'transpose'")):
        path = store.info(name)["read_path"]
        assert path.startswith("zarr-python (sharding_indexed:") and why in path, path
        np.testing.assert_array_equal(store[name][...], want[name])
        np.testing.assert_allclose(store[name].sum(axis=0), want[name].sum(axis=0))


def test_region_reads_only_the_inner_chunks_it_touches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, preadv_sizes: list[int]
) -> None:
    x = np.random.default_rng(4).random((4096, 16))  # 512 KiB; 8 KiB inner chunks
    root = tmp_path / "big.zarr"
    group = zarr.open_group(root, mode="w", zarr_format=3)
    group.create_array("r", data=x, chunks=(64, 16), shards=(2048, 16), compressors=None)
    read = preadv_sizes
    read.clear()

    def no_zarr(*args: Any, **kw: Any) -> Any:
        raise AssertionError("zarr-python read the array")

    monkeypatch.setattr(zarr, "open_array", no_zarr)
    arr = arraystore.open(root)["r"]
    np.testing.assert_array_equal(arr[130:190], x[130:190])  # inner chunk 2 only
    index = 16 * 32 + 4  # 32 inner chunks per shard, then the crc
    assert sum(read) == 64 * 16 * 8 + index
    read.clear()
    np.testing.assert_array_equal(arr[64:256], x[64:256])  # 3 chunks back to back: one read
    assert read == [3 * 64 * 16 * 8]  # (the index is cached)


def test_truncated_shard_is_one_line_error(tmp_path: Path) -> None:
    root = tmp_path / "t.zarr"
    group = zarr.open_group(root, mode="w", zarr_format=3)
    group.create_array("c", data=_data(), chunks=INNER, shards=SHARDS)
    shard = root / "c" / "c" / "1" / "0"
    os.truncate(shard, shard.stat().st_size // 2)
    arr = arraystore.open(root)["c"]
    np.testing.assert_array_equal(arr[:16], _data()[:16])  # the other shards are fine
    with pytest.raises(CorruptData, match="shard"):
        arr[20:24]
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    code, _out, err = run_cli(["stats", str(root / "c")])
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "shard" in err
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def _ts_spec(path: Path, inner_codecs: list[Any], location: str, crc: bool) -> dict[str, Any]:
    index = [{"name": "bytes", "configuration": {"endian": "little"}}]
    return {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(path)},
        "metadata": {
            "shape": list(SHAPE),
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(SHARDS)}},
            "data_type": "float32",
            "fill_value": FILL,
            "dimension_names": ["time", "x"],
            "codecs": [
                {
                    "name": "sharding_indexed",
                    "configuration": {
                        "chunk_shape": list(INNER),
                        "codecs": inner_codecs,
                        "index_codecs": index + ([{"name": "crc32c"}] if crc else []),
                        "index_location": location,
                    },
                }
            ],
        },
        "create": True,
    }


def test_tensorstore_sharded_arrays(tmp_path: Path) -> None:
    ts = pytest.importorskip("tensorstore")
    little = {"name": "bytes", "configuration": {"endian": "little"}}
    big = {"name": "bytes", "configuration": {"endian": "big"}}
    blosc = {"cname": "lz4", "clevel": 5, "shuffle": "shuffle", "typesize": 4}
    gzip = {"name": "gzip", "configuration": {"level": 4}}
    cases = {
        "none": ([little], "end", True),
        "zstd": ([little, {"name": "zstd", "configuration": {"level": 3}}], "end", True),
        "blosc-start": ([little, {"name": "blosc", "configuration": blosc}], "start", True),
        "gzip-crc": ([little, gzip, {"name": "crc32c"}], "end", True),
        "big-no-index-crc": ([big], "start", False),
    }
    root = tmp_path / "ts.zarr"
    zarr.open_group(root, mode="w", zarr_format=3)
    expected = {}
    for i, (name, (codecs, location, crc)) in enumerate(cases.items()):
        t = ts.open(_ts_spec(root / name, codecs, location, crc)).result()
        data = _data("f4", i)
        t[:20].write(data[:20]).result()
        t[33:35, 0:3].write(data[33:35, 0:3]).result()
        expected[name] = _write_sparse(np.full(SHAPE, FILL, "f4"), data)
    store = arraystore.open(root)
    assert store.names() == sorted(cases)
    for name, want in expected.items():
        assert store.info(name)["read_path"] == "direct", (name, store.info(name)["read_path"])
        arr = store[name]
        assert arr.meta.dims == ("time", "x")
        np.testing.assert_array_equal(arr[...], want, err_msg=name)
        np.testing.assert_array_equal(arr[5:35:3, 1:], want[5:35:3, 1:], err_msg=name)
        np.testing.assert_allclose(arr.sum(axis="time"), want.sum(axis=0, dtype="f8"), rtol=1e-6)
        np.testing.assert_array_equal(arr.max(axis=1), want.max(axis=1))


def test_pickled_handle_reads_directly(zarr_group: tuple[Path, dict[str, np.ndarray]]) -> None:
    """What a worker process gets: the shard reader is rebuilt (big-endian swap too)."""
    import pickle

    root, expected = zarr_group
    for name in ("big-endian", "start", "index-no-crc"):
        handle = pickle.loads(pickle.dumps(arraystore.open(root)[name].handle))
        assert handle.read_path == "direct"
        got = handle.read((slice(5, 37), slice(0, 6)))
        np.testing.assert_array_equal(got, expected[name][5:], err_msg=name)
