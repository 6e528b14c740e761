"""An array or a field named ``c`` (issue 19, item 6): zarr's chunk keys ``c/...`` live
inside an *array* folder, never next to the store's arrays (the store root is a zarr group)
nor next to a structured zarr array's fields (a group folder: no chunk keys), so the name
clashes with nothing and works with every command, on both backends."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

import arraystore
from arraystore.errors import InvalidName
from arraystore.testing import assert_same, run_cli


def _cli(*args: str) -> str:
    code, out, err = run_cli(list(args))
    assert code == 0, err
    return out


def _verify_clean(store: str) -> None:
    """``verify`` finds nothing: the arrays are written with checksums, which it checks."""
    report = json.loads(_cli("verify", store, "--json"))
    assert not report["corrupt"] and report["findings"] == [], report


@pytest.mark.parametrize("backend", ["memmap", "zarr"])
def test_array_named_c_every_command(tmp_path: Path, backend: str) -> None:
    store = str(tmp_path / "s.store")
    data = np.arange(60.0).reshape(12, 5)
    np.save(tmp_path / "in.npy", data)
    _cli("create", store, "c", "--from", str(tmp_path / "in.npy"), "--chunks", "5,2",
         "--backend", backend, "--checksum")  # fmt: skip
    _cli("create", store, "a", "--shape", "12,5", "--dtype", "f8", "--fill", "ones",
         "--chunks", "5,2", "--backend", backend, "--checksum")  # fmt: skip
    _cli("map", store, "--expr", "c * 2 + a", "--out", "b", "--checksum")
    _cli("map", store, "--expr", "b - a", "--out", "c", "--overwrite", "--checksum")
    s = arraystore.open(store, "r")
    assert_same(s["b"][...], data * 2 + 1)
    assert_same(s["c"][...], data * 2)
    _cli("cast", store, "c", "--to", "f4")
    assert arraystore.open(store, "r")["c"].dtype == np.float32
    _verify_clean(store)
    _cli("mv", store, "c", "d")
    _cli("mv", store, "d", "c")
    _cli("mv", store, "a", "c", "--overwrite")
    assert_same(arraystore.open(store, "r")["c"][...], np.ones((12, 5)))
    _verify_clean(store)
    if backend == "zarr":  # still a zarr group of zarr arrays for zarr-python
        group = zarr.open_group(store, mode="r")
        assert sorted(group.array_keys()) == ["b", "c"]
        assert_same(group["c"][...], np.ones((12, 5)))
        assert_same(zarr.open_array(Path(store) / "c", mode="r")[...], np.ones((12, 5)))
    _cli("rm", store, "c")
    assert arraystore.open(store, "r").names() == ["b"]
    _verify_clean(store)


@pytest.mark.parametrize("backend", ["memmap", "zarr"])
def test_field_named_c(tmp_path: Path, backend: str) -> None:
    store = str(tmp_path / "s.store")
    s = arraystore.open(store, mode="a")
    rec = np.zeros(20, dtype=[("a", "i4"), ("c", "f8"), ("v", "f4", (2,))])
    rec["a"] = np.arange(20)
    rec["c"] = np.linspace(0, 1, 20)
    rec["v"] = 7.0
    s.create("r", data=rec, chunks=(6,), backend=backend, checksum=True)
    _cli("map", store, "r", "--expr", "c * a", "--out", "c", "--checksum")
    _cli("cast", store, "r", "--to", "c:f4", "--rtol", "1e-6")
    _verify_clean(store)
    s = arraystore.open(store, "r")
    assert_same(s["c"][...], rec["c"] * rec["a"])
    got = s["r"][...]
    assert got.dtype["c"] == np.float32
    assert_same(got["c"], rec["c"].astype(np.float32))
    assert_same(s["r"]["c"][...], rec["c"].astype(np.float32))
    if backend == "zarr":  # each field, ``c`` too, opens in zarr-python
        group = zarr.open_group(store, mode="r")  # with no warning (format 2)
        assert sorted(group["r"].array_keys()) == ["a", "c", "v"]
        assert_same(zarr.open_array(Path(store) / "r" / "c", mode="r")[...], got["c"])
        assert_same(zarr.open_array(Path(store) / "r" / "a", mode="r")[...], rec["a"])


@pytest.mark.parametrize("name", ["zarr.json", "arraystore.json"])
def test_metadata_file_names_stay_reserved(tmp_path: Path, name: str) -> None:
    """The names that would clash: the metadata files next to arrays and fields."""
    s = arraystore.open(tmp_path / "s.store", mode="a")
    with pytest.raises(InvalidName, match="metadata file"):
        s.create(name, 3, "f8")
    with pytest.raises(InvalidName, match="metadata file"):
        s.create("r", 3, [(name, "f8"), ("x", "i4")])
