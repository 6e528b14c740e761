"""Advanced indexing of stored arrays: ``arr[...]`` against numpy, ``arr.oindex`` /
``arr.vindex`` against zarr-python's on an in-memory zarr array, reads and writes, both
backends, ragged chunkings, plain and structured dtypes, and the memory budget.

The selection cases follow the kinds zarr-python's own indexing tests exercise (masks of
several densities, random indices with repeats, sorted, reversed, wrapped negatives,
multi-dimensional coordinates, ints and slices mixed in), written here as data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import arraystore
import arraystore.engine.memory
from arraystore.errors import (
    CastOverflow,
    InvalidIndex,
    MemoryBudgetError,
    ReadOnlyError,
    ShapeMismatch,
)
from arraystore.testing import BackendCase, assert_same, backend_params, tree_hash

zarr = pytest.importorskip("zarr")

CASES = backend_params(lambda c: c.codec in (None, "none", "zstd:1"))

#: shape, chunks (ragged: no axis a multiple of its chunk)
GRIDS = {1: ((1050,), (100,)), 2: ((203, 10), (30, 3)), 3: ((40, 25, 10), (12, 7, 3))}


def _rng() -> np.random.Generator:
    return np.random.default_rng(42)


def masks(n: int) -> list[np.ndarray]:
    rng = _rng()
    return [rng.random(n) < p for p in (0.5, 0.1, 0.01)]


def int_arrays(n: int, unique: bool = False) -> list[np.ndarray]:
    """Random indices (repeats unless ``unique``) of several densities: unordered,
    sorted, reversed."""
    rng = _rng()
    out = []
    for p in (0.5, 0.1, 0.01):
        size = max(1, int(n * p))
        ix = rng.choice(n, size=size, replace=not unique)
        out += [ix, np.sort(ix), np.sort(ix)[::-1]]
    return out


def orthogonal_cases(ndim: int, unique: bool = False) -> list[Any]:
    shape, _ = GRIDS[ndim]
    out: list[Any] = []
    if ndim == 1:
        out += masks(shape[0]) + int_arrays(shape[0], unique)
        out += [[0, 3, 10, -23, -12, -1], [3, 105, 23, 127], np.array([], int)]
        return out
    firsts = masks(shape[0]) + int_arrays(shape[0], unique)[:3]
    for ix0, ix1 in zip(firsts, masks(shape[1]) * 2, strict=True):
        if ndim == 2:
            out += [(ix0, ix1), (ix0, slice(1, 5)), (ix0, slice(1, 5, 2))]
            out += [(slice(50, 150), ix1), (slice(50, 150, 10), ix1), (ix0, 4), (42, ix1)]
            out += [
                (ix0, np.nonzero(ix1)[0]),
                (np.nonzero(ix0)[0] if ix0.dtype == bool else ix0, ix1),
            ]
        else:
            ix2 = masks(shape[2])[1]
            out += [(ix0, ix1, ix2), (ix0, slice(15, 25), slice(1, 5)), (slice(5, 30), ix1, 4)]
            out += [(slice(5, 30, 3), slice(15, 25, 5), ix2), (ix0, 12, 4), (30, ix1, ix2)]
            out += [(ix0, ix1, slice(1, 5)), (ix0, 12, ix2)]
    return out


def coordinate_cases(ndim: int) -> list[Any]:
    shape, _ = GRIDS[ndim]
    rng = _rng()
    out: list[Any] = []
    for p in (2, 0.5, 0.01):
        size = max(1, int(np.prod(shape) * p))
        coords = tuple(rng.choice(n, size=size) for n in shape)
        out.append(coords)
        if ndim > 1:
            out += [(coords[0], *([1] * (ndim - 1))), (*([-1] * (ndim - 1)), coords[-1])]
    out.append(tuple(np.array([[1, 1, 2], [2, 2, 5]]) for _ in shape))
    out.append(np.arange(int(np.prod(shape))).reshape(shape) % 7 == 0)  # a mask
    if ndim == 1:
        out += [[0, 3, 10, -23, -12, -1], [3, 105, 23, 127], (np.array([[2, 4], [6, 8]]),)]
    if ndim == 2:
        out += [([3, 3, 4, 2, 5], [1, 3, 5, 7, 9]), ([1, 1, 2, 2, 5], [1, 3, 2, 1, 0])]
    return out


def numpy_cases(ndim: int) -> list[Any]:
    shape, _ = GRIDS[ndim]
    n = shape[0]
    out: list[Any] = [[1, 5, 9], [-1, 0, -1], np.arange(n)[::-3], masks(n)[0], ([],)]
    out.append(np.arange(int(np.prod(shape))).reshape(shape) % 3 == 0)  # full N-d mask
    out.append(np.zeros(shape, bool))
    if ndim >= 2:
        out += [(slice(None), [0, 3]), ([1, 2, 3], 9 % shape[1]), (Ellipsis, [shape[-1] - 1, 0])]
        out += [([1, 2, 3, 4], [5, 6, 7, 8]), (slice(20, 5, -2), [[1], [2]]), (None, [3, 1])]
        out += [(masks(n)[1], slice(None, None, 2)), ([[1, 2], [3, 4]], -1)]
    if ndim == 3:
        out += [
            ([0, 1], slice(None), [0, 1]),
            (slice(None), [0, 1], [0, 1]),
            (0, slice(2, 9), [1, 2]),
        ]
        out += [(slice(None), np.eye(25, 10, dtype=bool)), ([3], Ellipsis, [2])]
    return out


def stored(store: arraystore.Store, case: BackendCase, ndim: int, name: str = "a") -> Any:
    shape, chunks = GRIDS[ndim]
    data = np.arange(int(np.prod(shape)), dtype="i8").reshape(shape)
    arr = store.create(name, data=data, chunks=chunks, **case.kwargs)
    z = zarr.create_array(store=zarr.storage.MemoryStore(), shape=shape, chunks=chunks, dtype="i8")
    z[...] = data
    return arr, z, data


def _id(key: Any) -> str:
    return repr(key)[:40]


# --------------------------------------------------------------------------- reads
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_reads_match_numpy_and_zarr(store, case, ndim):
    arr, z, data = stored(store, case, ndim)
    for key in numpy_cases(ndim):
        got = arr[key]
        assert_same(got, data[key])
        assert got.flags.c_contiguous  # as numpy's (not a transposed gather block)
    for key in orthogonal_cases(ndim):
        assert_same(arr.oindex[key], z.oindex[key])
    for key in coordinate_cases(ndim):
        assert_same(arr.vindex[key], z.vindex[key])
        assert_same(arr.vindex[key], data[key])  # vindex is numpy's all-array indexing


@pytest.mark.parametrize("case", CASES[:2])  # (codecs do not change what is selected)
def test_writes_match_zarr_and_numpy(store, case):
    """Writes of a scalar, of another array's selected values and of them as a list."""
    for ndim in (1, 2, 3):
        arr, z, data = stored(store, case, ndim, f"w{ndim}")
        other = -np.arange(data.size, dtype="i8").reshape(data.shape)
        zo = zarr.create_array(
            store=zarr.storage.MemoryStore(), shape=data.shape, chunks=z.chunks, dtype="i8"
        )
        zo[...] = other
        for kind, keys in [
            ("oindex", orthogonal_cases(ndim, unique=True)),
            ("vindex", coordinate_cases(ndim)),  # repeated points get equal values
        ]:
            for i, key in enumerate(keys[::2]):  # (every second case: chunk writes are slow)
                value = getattr(zo, kind)[key]
                v = [42, value, value.tolist() if value.size else 42][i % 3]
                z[...] = 0
                arr[...] = 0
                getattr(z, kind)[key] = v
                getattr(arr, kind)[key] = v
                assert_same(arr[...], z[...])
        for key in numpy_cases(ndim):
            expected = data.copy()
            expected[key] = other[key]
            arr[...] = data
            arr[key] = other[key]
            assert_same(arr[...], expected)


@pytest.mark.parametrize("case", CASES)
def test_repeated_indices_last_wins_as_numpy(store, case):
    arr, _, data = stored(store, case, 2)
    expected = data.copy()
    rows = [5, 5, 40, 5, -1, 202]
    expected[rows] = np.arange(6)[:, None]
    arr[rows] = np.arange(6)[:, None]
    assert_same(arr[...], expected)
    expected[np.ix_([1, 1, 0], [2, 2])] = [[1, 2], [3, 4], [5, 6]]
    arr.oindex[[1, 1, 0], [2, 2]] = [[1, 2], [3, 4], [5, 6]]
    assert_same(arr[...], expected)
    expected[[7, 7, 7], [1, 1, 1]] = [10, 11, 12]
    arr.vindex[[7, 7, 7], [1, 1, 1]] = [10, 11, 12]
    assert_same(arr[...], expected)


@pytest.mark.parametrize("case", CASES)
def test_structured_and_field_views(store, case):
    dtype = np.dtype([("id", "i8"), ("price", "f8"), ("vec", "f4", (3,))])
    data = np.zeros(53, dtype)
    data["id"] = np.arange(53)
    data["price"] = np.arange(53) * 1.5
    data["vec"] = np.arange(53 * 3).reshape(53, 3)
    arr = store.create("r", data=data, chunks=(10,), **case.kwargs)
    rows = [1, 12, 12, -1, 30]
    assert_same(arr[rows], data[rows])
    assert_same(arr[rows]["price"], data[rows]["price"])
    assert_same(arr["price"][rows], data["price"][rows])
    assert_same(arr["vec"][rows, [0, 2, 1, 1, 0]], data["vec"][rows, [0, 2, 1, 1, 0]])
    assert_same(arr["vec"].oindex[[3, 4], [2, 0]], data["vec"][np.ix_([3, 4], [2, 0])])
    mask = data["price"] > 40
    assert_same(arr[mask], data[mask])
    arr["price"][mask] = -1.0
    data["price"][mask] = -1.0
    arr["vec"][[0, 50], 1] = 9
    data["vec"][[0, 50], 1] = 9
    arr[[2, 3]] = (7, 7.5, [1, 2, 3])
    data[[2, 3]] = (7, 7.5, [1, 2, 3])
    assert_same(arr[...], data)


@pytest.mark.parametrize("case", CASES[:2])
def test_reads_only_the_touched_chunks_each_once(store, case, monkeypatch):
    arr, _, data = stored(store, case, 2)  # (203, 10) in chunks of (30, 3)
    reads = count_reads(monkeypatch, arr)
    rows = [150, 5, 5, 7, 29, 151]
    assert_same(arr[rows], data[rows])
    if case.backend != "zarr":  # any row range reads directly: row blocks of <= 4 MiB,
        # whole rows (here one block: the box from the first to the last row asked for)
        assert reads == [(slice(5, 152), slice(0, 10))]
        return
    # storage chunks: rows in chunks 0 and 5, all 4 column chunks, each read once
    assert len(reads) == 8
    boxes = {(r[0].start // 30, r[1].start // 3) for r in reads}
    assert boxes == {(i, j) for i in (0, 5) for j in range(4)}
    for r in reads:  # inside one chunk, from the first to the last row asked for there
        assert r[0].start // 30 == (r[0].stop - 1) // 30
        assert r[1].start // 3 == (r[1].stop - 1) // 3
        assert (r[0].start, r[0].stop) in [(5, 30), (150, 152)]


# --------------------------------------------------------------------------- budget
def count_reads(monkeypatch: pytest.MonkeyPatch, arr: Any) -> list[Any]:
    seen: list[Any] = []
    read = arr.handle.read

    def counting(region: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(region)
        return read(region, *args, **kwargs)

    monkeypatch.setattr(arr.handle, "read", counting)
    return seen


@pytest.mark.parametrize("case", CASES)
def test_selection_over_the_budget_is_refused_before_any_read(store, case, monkeypatch):
    arr, _, data = stored(store, case, 2)
    reads = count_reads(monkeypatch, arr)
    arr[[1, 2]]  # the counter sees reads
    assert reads
    reads.clear()
    # default budget = a quarter of the available memory: 4 KiB here
    monkeypatch.setattr(arraystore.engine.memory, "available_memory", lambda: 16 * 1024)
    before = tree_hash(store.path)
    for select in [
        lambda: arr[np.ones(203, bool)],  # 16 KiB of int64 wanted
        lambda: arr.oindex[np.arange(203), :],
        lambda: arr.vindex[np.arange(2030) % 203, np.arange(2030) % 10],
    ]:
        with pytest.raises(MemoryBudgetError, match=r"needs .*KiB.* budget is 4\.0 KiB.*--where"):
            select()
    with pytest.raises(MemoryBudgetError, match="writing this selection"):
        arr[np.ones(203, bool)] = np.zeros((203, 10), "i8")
    assert reads == []
    assert tree_hash(store.path) == before
    assert_same(arr[[1, 2]], data[[1, 2]])  # small selections still fine
    arr[np.arange(203) % 2 == 0] = -1  # one value is broadcast, not held: any size
    arr[::2, 1] = -2
    data[::2] = -1
    data[::2, 1] = -2
    assert_same(arr[...], data)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("case", CASES[:2])
def test_bad_selections_are_one_line_index_errors(store, case):
    arr, _, _ = stored(store, case, 2)
    before = tree_hash(store.path)
    for call, message in [
        (lambda: arr[[203]], "index 203 is out of bounds for axis 0 with size 203"),
        (lambda: arr[:, [-11]], "index -11 is out of bounds for axis 1 with size 10"),
        (lambda: arr[np.ones(5, bool)], "boolean index did not match"),
        (lambda: arr[[0, 1], [0, 1, 2]], "could not be broadcast"),
        (lambda: arr[[1.5]], r"integer \(or boolean\)"),
        (lambda: arr.oindex[np.zeros((2, 2), int)], "1-d index arrays"),
        (lambda: arr.vindex[1:3, [0]], "vindex takes one integer array per axis"),
        (lambda: arr.vindex[[0, 1]], "one index per dimension"),
        (lambda: arr.__setitem__([[0, 300]], 1), "out of bounds"),
        (lambda: arr.oindex.__setitem__(([0], [10]), 1), "out of bounds"),
    ]:
        with pytest.raises(InvalidIndex, match=message) as info:
            call()
        assert isinstance(info.value, IndexError) and "\n" not in str(info.value)
    small = store.create("i1", shape=(20,), dtype="i1", chunks=(6,), **case.kwargs)
    with pytest.raises(CastOverflow):
        small[[0, 7]] = 300
    with pytest.raises(ShapeMismatch):
        small[[0, 7]] = [1, 2, 3]
    assert tree_hash(store.path) != before  # (the new array) ...
    assert_same(small[...], np.zeros(20, "i1"))  # ... but nothing written into it


def test_writes_refused_on_a_read_only_store(store, reopen):
    store.create("a", shape=(10,), dtype="f8")
    ro = reopen(store)["a"]
    for write in [
        lambda: ro.__setitem__([1, 2], 1.0),
        lambda: ro.oindex.__setitem__([1], 1.0),
        lambda: ro.vindex.__setitem__([1], 1.0),
    ]:
        with pytest.raises(ReadOnlyError):
            write()


def test_indexers_fall_back_to_basic_keys(store):
    arr = store.create("a", data=np.arange(12).reshape(3, 4), chunks=(2, 3))
    assert arr.oindex[1, 1:3].tolist() == [5, 6]
    assert arr.vindex[2, 3] == 11
    arr.oindex[0, :] = 0
    assert arr[0].tolist() == [0, 0, 0, 0]
    assert "oindex" in repr(arr.oindex) and "vindex" in repr(arr.vindex)


# --------------------------------------------------------------------------- random keys
def _axis_keys(n: int) -> st.SearchStrategy[Any]:
    ints = st.integers(-n, n - 1)
    return st.one_of(
        ints,
        st.builds(slice, st.none() | ints, st.none() | ints, st.sampled_from([None, 2, -1, -3])),
        st.lists(ints, max_size=5),
        st.lists(st.booleans(), min_size=n, max_size=n).map(np.array),
    )


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
@pytest.mark.parametrize("case", CASES[:2])
def test_random_keys_read_and_write_like_numpy(store, case, data):
    """Random mixes of ints, slices, lists and masks on a stored 3-d array (ragged
    chunks): arr[key] and arr[key] = v as numpy, oindex as np.ix_."""
    shape, chunks = (9, 7, 4), (4, 3, 3)
    if "r" not in store:
        store.create("r", shape=shape, dtype="i8", chunks=chunks, **case.kwargs)
    arr = store["r"]
    base = np.arange(np.prod(shape), dtype="i8").reshape(shape)
    arr[...] = base
    key = tuple(data.draw(_axis_keys(n)) for n in shape[: data.draw(st.integers(1, 3))])
    try:
        expected = base[key]
    except IndexError:
        with pytest.raises(InvalidIndex):
            arr[key]
        return
    assert_same(np.asarray(arr[key]), np.asarray(expected))
    want = base.copy()
    want[key] = -np.arange(np.size(expected)).reshape(np.shape(expected))
    arr[key] = -np.arange(np.size(expected)).reshape(np.shape(expected))
    assert_same(arr[...], want)
    if any(isinstance(k, list | np.ndarray) for k in key):
        ix = [
            np.arange(n)[k if isinstance(k, slice | np.ndarray) else np.array(k, int).reshape(-1)]
            for k, n in zip(key, shape, strict=False)
        ]
        ortho = want[np.ix_(*ix, *[np.arange(n) for n in shape[len(key) :]])]
        drop = [i for i, k in enumerate(key) if isinstance(k, int)]
        ortho = ortho.reshape([s for i, s in enumerate(ortho.shape) if i not in drop])
        assert_same(arr.oindex[key] - 0, ortho)
