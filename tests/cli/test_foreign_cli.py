"""The command line on data arraystore did not write (issue 18): bare array paths
(``.npy`` files, zarr arrays), foreign zarr groups, ``--writable``, ``--axis NAME``, and
one-line errors for bad input that write nothing."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from arraystore.testing import listing, run_cli

zarr = pytest.importorskip("zarr")
xr = pytest.importorskip("xarray")


def _state(root: Path) -> dict[str, bytes | None]:
    return {r: None if (root / r).is_dir() else (root / r).read_bytes() for r in listing(root)}


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, np.ndarray]:
    data = np.random.default_rng(1).standard_normal((30, 5))
    ds = xr.Dataset({"temperature": (("time", "lat"), data)}, coords={"lat": np.arange(5.0)})
    root = tmp_path / "data.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr: consolidated metadata is not in the v3 spec
        ds.to_zarr(root, zarr_format=3)
    return root, data


def _stats(args: list[str]) -> dict:
    code, out, err = run_cli(["stats", *args, "--json"])
    assert code == 0, err
    return json.loads(out)


def test_stats_of_a_zarr_array_path_by_dimension_name(
    dataset: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, data = dataset
    for axis in ("time", "0"):
        doc = _stats([str(root / "temperature"), "--axis", axis])
        got = doc["fields"]["temperature"] if "fields" in doc else doc
        np.testing.assert_allclose(got["sum"], data.sum(axis=0))
        np.testing.assert_allclose(got["std"], data.std(axis=0))
        np.testing.assert_allclose(got["max"], data.max(axis=0))
    monkeypatch.chdir(root)  # a relative path inside the group: named from the group all the same
    doc = _stats(["temperature", "--axis", "lat"])
    got = doc["fields"]["temperature"] if "fields" in doc else doc
    np.testing.assert_allclose(got["min"], data.min(axis=1))
    code, _, err = run_cli(["stats", str(root / "temperature"), "--axis", "depth"])
    assert code == 1 and err == "error: unknown axis 'depth' (dimensions: time, lat)\n"


def test_info_and_ls_mark_foreign(dataset: tuple[Path, np.ndarray]) -> None:
    root, _ = dataset
    code, out, err = run_cli(["info", str(root / "temperature"), "--json"])
    assert code == 0, err
    doc = json.loads(out)
    assert doc["foreign"] is True and doc["read_path"] == "direct"
    assert doc["dims"] == ["time", "lat"] and doc["zarr_format"] == 3
    assert doc["fill_value"] == "NaN" and doc["zarr_codecs"][0]["name"] == "bytes"
    code, out, _ = run_cli(["info", str(root), "temperature"])
    assert code == 0 and "read path" in out and "foreign" in out
    code, out, _ = run_cli(["ls", str(root), "--json"])
    assert code == 0 and [r["name"] for r in json.loads(out)] == ["lat", "temperature"]


def test_npy_in_place(tmp_path: Path) -> None:
    big = tmp_path / "big.npy"
    data = np.arange(600.0).reshape(100, 6) ** 1.5
    np.save(big, data)
    rec = tmp_path / "rec.npy"
    records = np.zeros(50, dtype=[("a", "<i4"), ("b", "<f8")])
    records["a"], records["b"] = np.arange(50), np.linspace(0, 1, 50)
    np.save(rec, records)
    doc = _stats([str(big), "--axis", "0"])
    got = doc["fields"]["big.npy"] if "fields" in doc else doc
    np.testing.assert_allclose(got["mean"], data.mean(axis=0))
    doc = _stats([str(rec), "--field", "b"])
    np.testing.assert_allclose(doc["fields"]["b"]["sum"], records["b"].sum())
    code, _, err = run_cli(
        ["cast", str(big), "--to", "f4", "--out", "small.npy", "--casting", "unsafe"]
    )
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "small.npy"), data.astype("f4"))
    assert sorted(os.listdir(tmp_path)) == ["big.npy", "rec.npy", "small.npy"]
    code, _, err = run_cli(["export", str(rec), str(tmp_path / "copy.npy")])
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "copy.npy"), records)


def test_writes_into_a_foreign_group_need_writable(dataset: tuple[Path, np.ndarray]) -> None:
    root, data = dataset
    before = _state(root)
    args = ["cast", str(root), "temperature", "--to", "f4", "--out", "t4", "--casting", "unsafe"]
    code, _, err = run_cli(args)
    assert code == 1 and err.count("\n") == 1 and "--writable" in err
    assert _state(root) == before
    code, _, err = run_cli([*args, "--writable"])
    assert code == 0, err
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = xr.open_zarr(root)
    np.testing.assert_array_equal(back.t4.values, data.astype("f4"))
    assert back.t4.dims == ("time", "lat")


def _bad(args: list[str], root: Path, match: str) -> None:
    before = _state(root)
    code, out, err = run_cli(args)
    assert code == 1, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert match in err, err
    assert _state(root) == before


def test_bad_input(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("hi")
    _bad(["stats", str(tmp_path / "plain")], tmp_path, "neither a store, a zarr group")
    _bad(["info", str(tmp_path / "plain" / "notes.txt")], tmp_path, "neither a store")
    root = tmp_path / "g.zarr"
    group = zarr.open_group(root, mode="w", zarr_format=3)
    group.create_array("plain", data=np.arange(100.0), chunks=(40,), compressors=None)
    group.create_array("packed", data=np.arange(100.0), chunks=(40,))
    odd = group.create_array("odd", data=np.arange(10.0), chunks=(5,), compressors=None)
    meta = json.loads((root / "odd" / "zarr.json").read_text())
    meta["codecs"].append({"name": "no-such-codec"})
    (root / "odd" / "zarr.json").write_text(json.dumps(meta))
    del odd
    for name in ("plain", "packed"):  # a truncated chunk file
        chunk = root / name / "c" / "1"
        chunk.write_bytes(chunk.read_bytes()[:-9])
        _bad(["stats", str(root), name], tmp_path, "chunk")
        code, out, _ = run_cli(["verify", str(root), name])
        assert code == 1 and f"CORRUPT: {name}: " in out, out
    _bad(["stats", str(root), "odd"], tmp_path, "odd")
    os.symlink(tmp_path / "plain", root / "link")
    _bad(["stats", str(root), "../plain"], tmp_path, "inside the store")
    _bad(["info", str(root), "link/notes.txt"], tmp_path, "leads out of the store")
