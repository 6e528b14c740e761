"""Store: opening, listing, create/delete/rename/overwrite, info, attrs, imports.

Most tests run for every backend/codec (``backend_case``); see conftest.py.
"""

from __future__ import annotations

import builtins
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore.core.chunks import iter_chunk_regions
from arraystore.errors import InvalidArgument
from arraystore.testing import assert_same, data_file, listing

STRUCT = "id:i8,price:f8,vec:3f4"


# ------------------------------------------------------------- opening


def test_open_creates_a_zarr_group(store_path):
    assert not store_path.exists()
    store = arraystore.open(store_path, mode="a")
    doc = json.loads((store_path / "zarr.json").read_text())
    assert doc["zarr_format"] == 3 and doc["node_type"] == "group"
    assert doc["attributes"]["arraystore"] == {"format": 2}
    assert store.names() == [] and len(store) == 0 and list(store) == []
    assert store.writable and store.mode == "a"
    assert "s.store" in repr(store)
    # opening again (any mode) changes nothing
    before = listing(store_path)
    for mode in ("r", "r+", "a"):
        assert arraystore.open(store_path, mode).names() == []
    assert listing(store_path) == before
    assert arraystore.Store(store_path, "r").writable is False


def test_open_empty_dir_in_append_mode(tmp_path):
    (tmp_path / "empty").mkdir()
    store = arraystore.open(tmp_path / "empty", mode="a")
    assert (tmp_path / "empty" / "zarr.json").exists()
    assert store.names() == []


def test_default_mode_is_read_write(store):
    store.create("x", 3, "f8")
    again = arraystore.open(store.path)
    assert again.mode == "r+" and again.writable
    again["x"][0] = 5
    assert store["x"][0] == 5


# ------------------------------------------------------------- listing


def test_names_contains_len(store, backend_case):
    for name in ("b", "a-1", "C.x", "_z"):
        store.create(name, (2, 2), "f4", **backend_case.kwargs)
    (store.path / ".a.tmp-123-abcd").mkdir()  # a crashed writer's temp folder
    (store.path / "stray").mkdir()  # no zarr.json with our metadata
    (store.path / "notes.txt").write_text("hi")
    assert store.names() == sorted(["b", "a-1", "C.x", "_z"])
    assert list(store) == store.names() and len(store) == 4
    assert "b" in store and "a-1" in store
    assert "stray" not in store and "notes.txt" not in store
    assert "missing" not in store


def test_listing_reads_no_data(store, backend_case, monkeypatch):
    """Opening a store, listing it and describing arrays reads metadata only: JSON files
    and the header of a .npy file (its descriptor is kept: a handle reads the file it was
    opened on); no chunk file ``c/...`` (zarr) is opened."""
    store.create("p", (50, 4), "f8", chunks=(10, 4), fill="random", **backend_case.kwargs)
    store.create("r", (50,), STRUCT, chunks=10, fill="random", **backend_case.kwargs)
    # a memmap array's .npy (its header is read): relative to the array folder
    npy = set()
    if backend_case.backend == "memmap":
        for n in ("p", "r"):  # opened by path, or relative to the array folder
            npy.add(data_file(store.path, n).relative_to(store.path.parent))
            npy.add(data_file(store.path, n).relative_to(store.path / n))
    opened: list[tuple[str, Path]] = []
    real_open, real_io_open, real_os_open = builtins.open, io.open, os.open

    def spy(kind: str, real: Any) -> Any:
        def wrapper(file: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(file, (str, os.PathLike)):
                opened.append((kind, Path(os.fsdecode(file))))
            return real(file, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(builtins, "open", spy("open", real_open))
    monkeypatch.setattr(io, "open", spy("open", real_io_open))
    monkeypatch.setattr(os, "open", spy("os.open", real_os_open))
    again = arraystore.open(store.path, "r")
    assert again.names() == ["p", "r"]
    for name in again.names():
        arr = again[name]
        assert arr.shape and arr.dtype and arr.chunks and arr.nbytes
        assert again.info(name)["name"] == name
    monkeypatch.undo()
    assert opened
    for kind, path in opened:
        # relative paths: opened relative to the array folder (dir_fd), which handles pin
        rel = path.relative_to(store.path.parent) if path.is_absolute() else path
        assert "c" not in rel.parts or rel in npy, f"chunk file read: {rel}"
        assert (
            path.suffix == ".json"
            or rel in npy  # its header (the handle keeps the descriptor)
            # an array folder (or a zarr field's, relative to it): O_DIRECTORY descriptors
            or (kind == "os.open" and (rel.parent == Path(store.path.name) or rel == path))
        ), (kind, rel)


# ------------------------------------------------------------- creating


def test_create_from_data(store, reopen, backend_case):
    arr = store.create("l", data=[[1, 2, 3], [4, 5, 6]], **backend_case.kwargs)
    assert arr.dtype == np.int64 and arr.shape == (2, 3)
    assert_same(reopen(store)["l"][...], np.array([[1, 2, 3], [4, 5, 6]]))
    arr = store.create("f", (2, 3), "f4", data=np.arange(6).reshape(2, 3), **backend_case.kwargs)
    assert_same(arr[...], np.arange(6, dtype=np.float32).reshape(2, 3))
    big = np.arange(12, dtype=">i4").reshape(3, 4)  # big-endian in, little-endian stored
    arr = store.create("be", data=big, **backend_case.kwargs)
    assert arr.dtype == np.dtype("<i4")
    assert_same(arr[...], big.astype("<i4"))


def test_array_properties(store, backend_case):
    arr = store.create("p", (6, 5), STRUCT, chunks=(4, 5), **backend_case.kwargs)
    assert (arr.ndim, arr.size, len(arr)) == (2, 30, 6)
    assert arr.nbytes == 30 * (8 + 8 + 12)
    assert arr.fields == ("id", "price", "vec")
    assert arr.backend == backend_case.backend
    assert arr.codec == (backend_case.codec or "none")
    assert arr.attrs == {}
    assert "p" in repr(arr) and "id:i8,price:f8,vec:3f4" in repr(arr)
    assert "vec" in repr(arr["vec"])
    one = store.create("z", (), "f8")
    with pytest.raises(TypeError):
        len(one)


def test_info(store, backend_case):
    kw = dict(chunks=(3, 3), fill="ones", attrs={"unit": "EUR"}, **backend_case.kwargs)
    store.create("i", (8, 3), STRUCT, **kw)
    info = store.info("i")
    assert info["name"] == "i"
    assert info["backend"] == backend_case.backend
    assert info["shape"] == [8, 3] and info["chunks"] == [3, 3]
    assert info["dtype"] == STRUCT
    assert info["fields"] == [
        {"name": "id", "dtype": "i8", "subshape": []},
        {"name": "price", "dtype": "f8", "subshape": []},
        {"name": "vec", "dtype": "f4", "subshape": [3]},
    ]
    assert info["nbytes"] == 8 * 3 * 28
    assert info["stored_bytes"] > 0
    assert info["attrs"] == {"unit": "EUR"} and info["history"] == []
    json.dumps(info)  # JSON-able for --json
    assert info["codec"] == (backend_case.codec or "none")


def test_attrs_persist(store, reopen, backend_case):
    store.create("a", 3, "f8", attrs={"unit": "m", "n": [1, 2]}, **backend_case.kwargs)
    assert reopen(store)["a"].attrs == {"unit": "m", "n": [1, 2]}
    arr = store["a"]
    arr.attrs["unit"] = "km"  # a copy: does not change the stored attrs
    assert store["a"].attrs["unit"] == "m"
    store.update_meta("a", arr.meta.evolve(attrs={"unit": "km"}))
    assert reopen(store)["a"].attrs == {"unit": "km"}


def test_overwrite_replaces(store, reopen, backend_case):
    store.create("o", (4,), "f8", fill="ones")
    arr = store.create("o", (2, 3), "i2", fill="range", overwrite=True, **backend_case.kwargs)
    assert arr.backend == backend_case.backend
    assert_same(reopen(store)["o"][...], np.arange(6, dtype=np.int16).reshape(2, 3))
    assert listing(store.path) == sorted(
        p for p in listing(store.path) if not Path(p).name.startswith(".")
    )


def test_delete(store, backend_case):
    store.create("d", (3, 2), STRUCT, fill="ones", **backend_case.kwargs)
    store.create("keep", 3, "f8")
    store.delete("d")
    assert "d" not in store and store.names() == ["keep"]
    assert listing(store.path) == sorted(
        ["zarr.json", "keep", "keep/c", "keep/c/0", "keep/zarr.json"]
    )
    store.create("d", 2, "u1", **backend_case.kwargs)  # the name is free again
    assert store["d"].shape == (2,)


def test_rename(store, reopen, backend_case):
    data = np.arange(12.0).reshape(4, 3)
    store.create("a", data=data, chunks=(3, 2), **backend_case.kwargs)
    store.create("b", 2, "i4")
    store.rename("a", "c2")
    assert store.names() == ["b", "c2"]
    assert_same(reopen(store)["c2"][...], data)
    store.rename("c2", "b", overwrite=True)
    assert store.names() == ["b"]
    assert_same(reopen(store)["b"][...], data)
    assert not any(Path(p).name.startswith(".") for p in listing(store.path))


# ------------------------------------------------------------ from_npy


@pytest.mark.parametrize(
    "values",
    [
        np.arange(24.0).reshape(2, 3, 4),
        np.arange(7, dtype=">u2"),
        np.zeros((0, 3), np.int8),
        np.array(
            [(1, 2.5, [1, 2, 3]), (4, -1.0, [0, 0, 1])],
            dtype=[("id", "<i8"), ("price", "<f8"), ("vec", "<f4", 3)],
        ),
    ],
    ids=["f8-3d", "u2-bigendian", "empty", "structured"],
)
def test_from_npy(store, reopen, backend_case, tmp_path, values):
    np.save(tmp_path / "src.npy", values)
    arr = store.create("n", from_npy=tmp_path / "src.npy", chunks=2, **backend_case.kwargs)
    expected = values.astype(arraystore.parse_dtype(values.dtype))
    assert arr.shape == values.shape and arr.dtype == expected.dtype
    assert_same(reopen(store)["n"][...], expected)
    # shape/dtype may be given when they agree
    src = tmp_path / "src.npy"
    arr = store.create("m", values.shape, values.dtype, from_npy=src, **backend_case.kwargs)
    assert_same(arr[...], expected)
    assert (tmp_path / "src.npy").exists()  # the source is untouched


# --------------------------------------------------------- chunk access


def test_iter_chunks(store, backend_case):
    data = np.arange(35).reshape(7, 5)
    arr = store.create("it", data=data, chunks=(3, 2), **backend_case.kwargs)
    seen = list(arr.iter_chunks())
    assert [r for r, _ in seen] == list(iter_chunk_regions((7, 5), (3, 2)))
    for region, block in seen:
        assert_same(block, data[region])
    zeros = np.zeros(5, arraystore.parse_dtype(STRUCT))
    fields = store.create("f", data=zeros, chunks=2, **backend_case.kwargs)
    assert [b.shape for _, b in fields["vec"].iter_chunks()] == [(2, 3), (2, 3), (1, 3)]


def test_read_into_out(store, backend_case):
    data = np.arange(20.0).reshape(4, 5)
    arr = store.create("r", data=data, chunks=(2, 2), **backend_case.kwargs)
    out = np.empty((2, 3))
    assert arr.read((slice(1, 3), slice(2, 5)), out=out) is out
    assert_same(out, data[1:3, 2:5])
    assert_same(arr.read(), data)


def test_read_region_follows_slice_rules(store, backend_case):
    """Array.read(region) passed the region to the backend unchecked: a step was ignored
    (rows 0..3 for slice(0, 4, 2)), slice(0, 20) of 10 rows read 10 rows of garbage
    (zarr) or raised CorruptData (memmap), slice(-1, 2) read from offset -1, None
    bounds and extra slices were TypeErrors or ignored. Now: numpy's slice bounds,
    step 1 only, one slice per dimension."""
    data = np.arange(40.0).reshape(10, 4)
    arr = store.create("rr", data=data, chunks=(3, 3), **backend_case.kwargs)
    for region in [
        (slice(0, 20), slice(0, 4)),
        (slice(None, 5), slice(1, None)),
        (slice(-3, None), slice(-2, 99)),
        (slice(-1, 2), slice(0, 4)),
        (slice(5, 2), slice(0, 4)),
        [slice(2, 4), slice(0, 1)],
    ]:
        assert_same(arr.read(region), data[tuple(region)])
    zeros = np.zeros(5, arraystore.parse_dtype("x:i4,v:3f4"))
    vec = store.create("rv", data=zeros, **backend_case.kwargs)
    assert vec["v"].read((slice(0, 2), slice(1, 9))).shape == (2, 2)
    for bad in [
        (slice(0, 4, 2), slice(0, 4)),
        (slice(4, 0, -1), slice(0, 4)),
        (slice(0, 2),),
        (slice(0, 2), slice(0, 4), slice(0, 1)),
        (1, 2),
        5,
        (slice(0.0, 2), slice(0, 4)),
    ]:
        with pytest.raises(InvalidArgument):
            arr.read(bad)
    with pytest.raises(InvalidArgument):
        vec["v"].read((slice(0, 2), slice(0, 3, 2)))


def test_concurrent_chunk_writes(store, reopen, backend_case):
    """Disjoint chunk-aligned writes may run from several threads (backend contract)."""
    arr = store.create("cw", (40, 6), "i8", chunks=(5, 3), **backend_case.kwargs)
    handle = store.open_handle("cw")
    regions = list(handle.chunk_regions())
    expected = np.arange(240).reshape(40, 6)

    def write(region: tuple[slice, ...]) -> None:
        handle.write(region, expected[region])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, regions))
    assert_same(arr[...], expected)
    assert_same(reopen(store)["cw"][...], expected)


def test_many_handles_see_the_same_data(store, backend_case):
    store.create("h", (10,), "f8", chunks=3, **backend_case.kwargs)
    a, b = store["h"], store["h"]
    a[0:5] = 1.0
    b[5:10] = 2.0
    assert_same(store["h"][...], np.repeat([1.0, 2.0], 5))
