"""Golden stores (acceptance 7): stores written by an earlier version must keep opening.

``tests/fixtures/golden.store`` is committed (made by ``tests/make_fixtures.py``). This file
opens it read-only and compares shapes, dtypes, chunks and every value with what numpy
computes independently, and checks plain numpy / zarr-python still read the raw files.
Never regenerate the fixture to make these tests pass: a failure here means the format
changed and old stores would break.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

import arraystore
from arraystore.testing import assert_same, listing

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden.store"


def records(n: int, fields: list[tuple[str, str, tuple[int, ...]]]) -> np.ndarray:
    """Record ``i`` holds ``i`` in every field (repeated over subarray dims)."""
    dtype = np.dtype([(name, base, sub) if sub else (name, base) for name, base, sub in fields])
    out = np.zeros(n, dtype)
    for name, base, sub in fields:
        column = np.arange(n).reshape((n,) + (1,) * len(sub))
        out[name] = np.broadcast_to(column, (n, *sub)).astype(base)
    return out


EXPECTED = {
    "mm_plain": dict(
        backend="memmap",
        codec="none",
        chunks=(2, 3),
        values=np.arange(15, dtype="<f8").reshape(5, 3),
    ),
    "mm_struct": dict(
        backend="memmap",
        codec="none",
        chunks=(4,),
        values=records(6, [("id", "<i8", ()), ("price", "<f8", ()), ("vec", "<f4", (3,))]),
    ),
    "zarr_plain": dict(
        backend="zarr",
        codec="zstd:3",
        chunks=(4, 3),
        values=np.arange(24, dtype="<i4").reshape(6, 4),
    ),
    "zarr_struct": dict(
        backend="zarr",
        codec="blosc-lz4",
        chunks=(2,),
        values=records(
            5,
            [("id", "<i8", ()), ("price", "<f4", ()), ("vec", "<f4", (3,)), ("m", "<u2", (2, 3))],
        ),
    ),
}


def snapshot() -> dict[str, bytes | None]:
    return {
        p: (None if (GOLDEN / p).is_dir() else (GOLDEN / p).read_bytes()) for p in listing(GOLDEN)
    }


@pytest.fixture(scope="module")
def golden():
    """The committed store, opened read-only; asserts afterwards that nothing changed."""
    before = snapshot()
    yield arraystore.open(GOLDEN, mode="r")
    assert snapshot() == before, "reading the golden store modified it"


def test_fixture_is_small_and_complete():
    files = [GOLDEN / p for p in listing(GOLDEN) if (GOLDEN / p).is_file()]
    assert sum(f.stat().st_size for f in files) < 50_000
    assert not [p for p in listing(GOLDEN) if Path(p).name.startswith(".")]


def test_names(golden):
    assert golden.names() == sorted(EXPECTED)
    assert not golden.writable


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_golden_array(golden, name):
    exp = EXPECTED[name]
    values: np.ndarray = exp["values"]
    arr = golden[name]
    assert arr.shape == values.shape
    assert arr.dtype == values.dtype
    assert arr.chunks == exp["chunks"]
    assert arr.backend == exp["backend"]
    assert arr.codec == exp["codec"]
    assert arr.attrs == {"golden": name}
    assert arr.fields == (values.dtype.names or ())
    assert_same(arr[...], values)
    assert_same(np.asarray(arr), values)
    assert_same(arr[::-2], values[::-2])
    for field in arr.fields:
        assert_same(arr[field][...], values[field])
        assert_same(arr[field][1:, ...], values[field][1:, ...])
    grid = [-(-s // c) for s, c in zip(values.shape, exp["chunks"], strict=True)]
    assert len(list(arr.iter_chunks())) == int(np.prod(grid))


@pytest.mark.parametrize("name", ["mm_plain", "mm_struct"])
def test_golden_npy_opens_with_numpy(name):
    mm = np.load(GOLDEN / name / "data.npy", mmap_mode="r", allow_pickle=False)
    try:
        assert_same(np.asarray(mm), EXPECTED[name]["values"])
    finally:
        del mm


def test_golden_zarr_opens_with_zarr_python():
    plain = zarr.open_array(GOLDEN / "zarr_plain", mode="r")
    assert plain.chunks == (4, 3)
    assert_same(plain[...], EXPECTED["zarr_plain"]["values"])
    values = EXPECTED["zarr_struct"]["values"]
    for field in values.dtype.names:
        z = zarr.open_array(GOLDEN / "zarr_struct" / field, mode="r")
        assert_same(z[...], values[field])
    group = zarr.open_group(GOLDEN, mode="r")
    assert sorted(group.keys()) == sorted(EXPECTED)


def test_golden_metadata_format():
    """The documents a reader depends on (DESIGN.md §3), as they were written."""
    root = json.loads((GOLDEN / "zarr.json").read_text())
    assert root == {
        "zarr_format": 3,
        "node_type": "group",
        "attributes": {"arraystore": {"format_version": 1}},
    }
    side = json.loads((GOLDEN / "mm_struct" / "arraystore.json").read_text())
    assert side["arraystore_format"] == 1 and side["backend"] == "memmap"
    assert side["dtype"] == [["id", "<i8"], ["price", "<f8"], ["vec", "<f4", [3]]]
    assert side["chunks"] == [4]
    side = json.loads((GOLDEN / "zarr_struct" / "arraystore.json").read_text())
    assert side["backend"] == "zarr" and "chunks" not in side  # zarr.json owns chunks
    assert side["dtype"][-1] == ["m", "<u2", [2, 3]]
    field = json.loads((GOLDEN / "zarr_struct" / "m" / "zarr.json").read_text())
    assert field["shape"] == [5, 2, 3]
    assert field["chunk_grid"]["configuration"]["chunk_shape"] == [2, 2, 3]


def test_golden_store_verifies_and_missing_chunks_stay_fill(golden, tmp_path):
    """Arrays written before the 'every chunk written' flag (issue 15, item 4) open and
    verify as before; a chunk missing there still reads as the fill value (those writers
    skipped chunks equal to it), while a new array treats it as lost data."""
    from arraystore.ops.verify import verify

    report = verify(golden)
    assert not report.corrupt, report.to_dict()
    assert sorted(report.checked) == sorted(EXPECTED)
    copy = tmp_path / "golden.store"
    shutil.copytree(GOLDEN, copy)
    (copy / "zarr_plain" / "c" / "0" / "0").unlink()
    s = arraystore.open(copy, mode="r")
    assert not verify(s).corrupt
    expected = EXPECTED["zarr_plain"]["values"].copy()
    expected[:4, :3] = 0
    assert_same(s["zarr_plain"][...], expected)
