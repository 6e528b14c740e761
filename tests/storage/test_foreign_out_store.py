"""A foreign (read-only) source cast and mapped into *another* store (``--out-store``,
``out_store=``), and dimension names: kept by arrays written from a foreign source
(also after a resumed map), read back from our own zarr.json (``stats --axis NAME``)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore import ArrayExists, CastError, InvalidArgument, ReadOnlyError
from arraystore.testing import FailingExecutor, listing, run_cli, tree_hash

zarr = pytest.importorskip("zarr")

DATA = (np.random.default_rng(3).standard_normal((37, 6)) * 10).astype("f8")
ROWS = np.arange(37.0) - 10


@pytest.fixture
def group(tmp_path: Path) -> Iterator[Path]:
    """A zarr-python v3 group (sharded 2-d, plain 1-d arrays with dimension names),
    made read-only on disk: nothing may be written into it."""
    root = tmp_path / "g.zarr"
    g = zarr.open_group(root, mode="w", zarr_format=3)
    g.create_array("s", data=DATA, chunks=(8, 3), shards=(16, 6), dimension_names=["time", "x"])
    g.create_array("r", data=ROWS, chunks=(10,), dimension_names=["time"])
    for p in (root, *root.rglob("*")):
        if p.is_dir():
            p.chmod(stat.S_IRUSR | stat.S_IXUSR)
    yield root
    for p in (root, *root.rglob("*")):
        if p.is_dir():
            p.chmod(stat.S_IRWXU)


def _names(store_path: Path, name: str) -> Any:
    return json.loads((store_path / name / "zarr.json").read_text()).get("dimension_names")


@pytest.mark.parametrize("backend", ["zarr", "memmap"])
def test_python_cast_and_map_into_another_store(group: Path, tmp_path: Path, backend: str) -> None:
    before = tree_hash(group)
    src = arraystore.open(group)
    dst = arraystore.open(tmp_path / "own.store", mode="a")
    res = src.cast("s", "f4", out="s32", casting="unsafe", out_store=dst)
    assert res.out == "s32" and res.nbytes_after == DATA.size * 4
    arr = dst["s32"]
    np.testing.assert_array_equal(arr[...], DATA.astype("f4"))
    assert (arr.meta.dims, arr.meta.shards, arr.meta.chunks) == (("time", "x"), (16, 6), (8, 3))
    assert not arr.meta.foreign and arr.meta.history[-1]["op"] == "cast"
    out = src.map("s * 2 + 1", "s", out="m", backend=backend, out_store=tmp_path / "own.store")
    np.testing.assert_array_equal(out[...], DATA * 2 + 1)
    assert out.store.path == dst.path and out.meta.dims == ("time", "x")
    pos = src.map(None, "r", where="r > 0", out="pos", backend=backend, out_store=dst)
    np.testing.assert_array_equal(pos[...], ROWS[ROWS > 0])
    assert pos.meta.dims == ("time",)
    again = arraystore.open(tmp_path / "own.store")  # read back from zarr.json
    assert again["m"].meta.dims == ("time", "x") and again["pos"].meta.dims == ("time",)
    np.testing.assert_allclose(again["m"].sum(axis="time"), (DATA * 2 + 1).sum(axis=0))
    assert _names(again.path, "m") == ["time", "x"]
    assert tree_hash(group) == before  # the source is only read
    assert src.names() == ["r", "s"]


def test_cast_into_another_store_refusals(group: Path, tmp_path: Path) -> None:
    src = arraystore.open(group)
    dst = arraystore.open(tmp_path / "own.store", mode="a")
    src.cast("s", "f4", out="a", casting="unsafe", out_store=dst)
    listed = listing(dst.path)
    with pytest.raises(ArrayExists):
        src.cast("s", "f4", out="a", casting="unsafe", out_store=dst)
    with pytest.raises(CastError, match="nothing was written"):
        src.cast("s", "i1", out="b", out_store=dst)
    with pytest.raises(InvalidArgument, match="no --resume"):
        src.cast("s", "f4", out="b", resume=True, out_store=dst)
    with pytest.raises(arraystore.InvalidName):
        src.cast("s", "f4", out="../b", casting="unsafe", out_store=dst)
    with pytest.raises(ReadOnlyError):
        src.cast("s", "f4", out="b", casting="unsafe", out_store=arraystore.open(dst.path, "r"))
    assert listing(dst.path) == listed


def test_cli_out_store(group: Path, tmp_path: Path) -> None:
    before = tree_hash(group)
    own = tmp_path / "new.store"  # created by the first write
    code, out, err = run_cli(
        ["cast", str(group), "s", "--to", "f4", "--casting", "unsafe", "--out-store", str(own)]
    )
    assert code == 0, err
    code, out, err = run_cli(
        ["map", str(group / "s"), "--expr", "s - 1", "--out", "minus", "--out-store", str(own)]
    )
    assert code == 0 and "wrote minus" in out, err
    store = arraystore.open(own)
    assert store.names() == ["minus", "s"]  # cast's --out defaults to NAME
    np.testing.assert_array_equal(store["s"][...], DATA.astype("f4"))
    code, out, err = run_cli(["stats", str(own), "minus", "--axis", "time", "--json"])
    assert code == 0, err
    doc = json.loads(out)
    got = doc["fields"]["minus"] if "fields" in doc else doc
    np.testing.assert_allclose(got["mean"], (DATA - 1).mean(axis=0))
    code, out, _ = run_cli(["info", str(own), "minus", "--json"])
    assert json.loads(out)["dims"] == ["time", "x"]
    code, _, err = run_cli(["cast", str(group), "s", "--to", "i1", "--out-store", str(own),
                            "--out", "bad"])  # fmt: skip
    assert code == 1 and len(err.strip().splitlines()) == 1 and "nothing was written" in err
    code, _, err = run_cli(["stats", str(own), "minus", "--axis", "depth"])
    assert code == 1 and err == "error: unknown axis 'depth' (dimensions: time, x)\n"
    assert arraystore.open(own).names() == ["minus", "s"]
    assert tree_hash(group) == before


@pytest.mark.parametrize("backend", ["zarr", "memmap"])
def test_resumed_map_keeps_dims(group: Path, tmp_path: Path, backend: str) -> None:
    src = arraystore.open(group)
    dst = arraystore.open(tmp_path / "own.store", mode="a")
    with pytest.raises(KeyboardInterrupt):
        src.map("s * 3", "s", out="t", backend=backend, out_store=dst,
                executor=FailingExecutor(1))  # fmt: skip
    assert "t" not in dst
    ex = FailingExecutor()
    out = src.map("s * 3", "s", out="t", backend=backend, out_store=dst, resume=True, executor=ex)
    assert ex.ran >= 1
    np.testing.assert_array_equal(out[...], DATA * 3)
    assert arraystore.open(dst.path)["t"].meta.dims == ("time", "x")
    assert _names(dst.path, "t") == ["time", "x"]
    again = arraystore.open(dst.path).map("t / 3", "t", out="u")  # our array as the source
    assert again.meta.dims == ("time", "x") and _names(dst.path, "u") == ["time", "x"]


def test_default_dimension_names_are_not_dims(tmp_path: Path) -> None:
    store = arraystore.open(tmp_path / "own.store", mode="a")
    for backend in ("zarr", "memmap"):
        arr = store.create(backend, data=DATA, backend=backend)
        assert _names(store.path, backend) == ["dim_0", "dim_1"]
        assert arraystore.open(store.path)[backend].meta.dims is None
        assert "dims" not in store.info(backend)
        with pytest.raises(InvalidArgument, match="no dimension names known"):
            arr.sum(axis="dim_0")


def test_group_written_in_place_is_left_alone_by_out_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writable foreign group given as its own out store (a relative path): the same
    store, written as without out_store."""
    root = tmp_path / "w.zarr"
    zarr.open_group(root, mode="w", zarr_format=3).create_array("a", data=ROWS, chunks=(10,))
    store = arraystore.open(root, mode="r+")
    monkeypatch.chdir(tmp_path)
    store.cast("a", "f4", out="b", casting="unsafe", out_store="w.zarr")
    assert store.names() == ["a", "b"]
    np.testing.assert_array_equal(store["b"][...], ROWS.astype("f4"))
    zarr.create_array(tmp_path / "bare.zarr", data=ROWS, chunks=(10,))
    bare = arraystore.open_array(tmp_path / "bare.zarr", mode="r+").store
    with pytest.raises(InvalidArgument, match=r"folder of the bare array bare\.zarr"):
        bare.cast("bare.zarr", "f4", out="c", casting="unsafe", out_store=bare)


def test_failed_or_dry_run_leaves_no_new_store(group: Path, tmp_path: Path) -> None:
    """An --out-store that did not exist is not left behind by a command that fails (or
    only plans): nothing written."""
    new = tmp_path / "never.store"
    for args in (
        ["cast", str(group), "s", "--to", "i1", "--out-store", str(new)],  # policy violation
        ["cast", str(group), "s", "--to", "f4", "--out-store", str(new), "--dry-run"],
        ["map", str(group), "s", "--expr", "s + nope", "--out", "m", "--out-store", str(new)],
        ["map", str(group), "r", "--where", "r", "--out", "m", "--out-store", str(new)],
    ):
        code, _, err = run_cli(args)
        assert (code == 0) == ("--dry-run" in args), err
        assert code == 0 or len(err.strip().splitlines()) == 1
        assert not new.exists(), args
    src = arraystore.open(group)
    with pytest.raises(CastError):
        src.cast("s", "i1", out="x", out_store=new)
    with pytest.raises(arraystore.ArrayStoreError):
        src.map("s + nope", "s", out="x", out_store=os.fspath(new))
    assert not new.exists()
    existing = arraystore.open(tmp_path / "kept.store", mode="a")  # not created by us: kept
    with pytest.raises(CastError):
        src.cast("s", "i1", out="x", out_store=existing.path)
    assert listing(existing.path) == ["zarr.json"]
