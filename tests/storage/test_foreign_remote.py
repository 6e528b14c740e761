"""A foreign zarr group at an fsspec URL (``memory://`` here) read in place, read-only
(issue 18): listed, read, reduced and cast into a local store; writes refused with one
line, nothing written."""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore import InvalidArgument, InvalidName, StoreNotFound
from arraystore.testing import run_cli

fsspec = pytest.importorskip("fsspec")
zarr = pytest.importorskip("zarr")

DATA = np.random.default_rng(5).standard_normal((37, 6))


@pytest.fixture
def url() -> Iterator[str]:
    root = f"/arraystore-foreign-{uuid.uuid4().hex[:10]}"
    group = zarr.open_group(f"memory://{root}/g.zarr", mode="w", zarr_format=3)
    group.create_array("plain", data=DATA, chunks=(8, 3), dimension_names=["time", "x"])
    group.create_array("sh", data=DATA, chunks=(8, 3), shards=(16, 6), fill_value=-1.0)
    group.create_group("sub").create_array("ints", data=np.arange(10), chunks=(4,))
    yield f"memory://{root}/g.zarr"
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def _keys(url: str) -> list[str]:
    return sorted(fsspec.filesystem("memory").find(url.removeprefix("memory://")))


def test_read_in_place(url: str) -> None:
    keys = _keys(url)
    store = arraystore.open(url)
    assert store.mode == "r" and store.names() == ["plain", "sh", "sub/ints"]
    arr = store["plain"]
    assert arr.meta.foreign and arr.meta.dims == ("time", "x")
    np.testing.assert_array_equal(arr[...], DATA)
    np.testing.assert_array_equal(store["sh"][3:30, 1:5], DATA[3:30, 1:5])
    np.testing.assert_array_equal(store["sub/ints"][...], np.arange(10))
    np.testing.assert_allclose(arr.sum(axis="time"), DATA.sum(axis=0))
    np.testing.assert_allclose(store["sh"].std(axis=1), DATA.std(axis=1))
    info = store.info("sh")
    assert info["foreign"] and info["read_path"] == "zarr-python (a URL store)"
    assert info["shards"] == [16, 6] and info["stored_bytes"] > 0
    assert not store.verify().corrupt
    assert _keys(url) == keys  # nothing written


def test_writes_refused_and_names_checked(url: str) -> None:
    keys = _keys(url)
    with pytest.raises(InvalidArgument, match="read-only: arraystore adds arrays only to a local"):
        arraystore.open(url, mode="r+")
    store = arraystore.open(url)
    with pytest.raises(arraystore.ReadOnlyError):
        store.cast("plain", "f4", out="p32", casting="unsafe")
    for bad in ("../other", "sub/../../x", "/abs"):
        with pytest.raises(InvalidName):
            store[bad]
    with pytest.raises(StoreNotFound):
        arraystore.open(url + "-missing")
    assert _keys(url) == keys


def test_cast_and_map_into_a_local_store(url: str, tmp_path: Path) -> None:
    keys = _keys(url)
    src = arraystore.open(url)
    mine = arraystore.open(tmp_path / "mine.store", mode="a")
    src.cast("sh", "f4", out="sh32", casting="unsafe", out_store=mine)
    np.testing.assert_array_equal(mine["sh32"][...], DATA.astype("f4"))
    assert mine["sh32"].meta.shards == (16, 6)
    out = src.map("plain * 2", "plain", out="twice", out_store=mine)
    np.testing.assert_array_equal(out[...], DATA * 2)
    assert out.meta.dims == ("time", "x")
    assert _keys(url) == keys


def test_cli(url: str) -> None:
    code, out, err = run_cli(["ls", url, "--json"])
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == {"plain", "sh", "sub/ints"} and rows["plain"]["foreign"] is True
    code, out, err = run_cli(["stats", url, "plain", "--axis", "time", "--json"])
    assert code == 0, err
    doc = json.loads(out)
    got = doc["fields"]["plain"] if "fields" in doc else doc
    np.testing.assert_allclose(got["mean"], DATA.mean(axis=0))
    code, _, err = run_cli(
        ["map", url, "plain", "--expr", "plain + 1", "--out", "p1", "--writable"]
    )
    assert code == 1 and len(err.strip().splitlines()) == 1 and "read-only" in err


def test_xarray_v2_dataset(tmp_path: Path) -> None:
    xr = pytest.importorskip("xarray")
    root = f"/arraystore-foreign-{uuid.uuid4().hex[:10]}"
    ds = xr.Dataset({"t": (("time", "lat"), DATA[:, :4])}, coords={"lat": np.arange(4.0)})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.to_zarr(f"memory://{root}/x.zarr", zarr_format=2)
        store = arraystore.open(f"memory://{root}/x.zarr")
        assert store.names() == ["lat", "t"] and store["t"].meta.dims == ("time", "lat")
        np.testing.assert_allclose(store["t"].max(axis="lat"), DATA[:, :4].max(axis=1))
    finally:
        fsspec.filesystem("memory").rm(root, recursive=True)
