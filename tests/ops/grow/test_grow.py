"""Growing arrays (issue 19 item 1): any sequence of appends and resizes equals the same
operations on a numpy array, on both backends and ragged chunkings; after each step
``np.load`` (memmap), zarr-python and ``verify`` agree."""

from __future__ import annotations

import itertools
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import arraystore
from arraystore.errors import ArrayNotFound, CastError, InvalidArgument, ShapeMismatch
from arraystore.ops.verify import verify
from arraystore.testing import assert_same, data_file
from tests.storage.test_fixtures import EXPECTED, GOLDEN

_names = itertools.count()


def _resized(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """zarr's resize: the overlap kept, new space zeros (not np.resize's repetition)."""
    out = np.zeros(shape, x.dtype)
    overlap = tuple(slice(0, min(a, b)) for a, b in zip(x.shape, shape, strict=True))
    out[overlap] = x[overlap]
    return out


def _as(block: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype.names is None:
        return block.astype(dtype)
    out = np.zeros(block.shape, dtype)
    for f in dtype.names:
        out[f] = block[f]
    return out


def _check(store: arraystore.Store, path: Path, name: str, want: np.ndarray) -> None:
    arr = store[name]
    assert arr.shape == want.shape
    assert_same(arr[...], want)
    again = arraystore.open(path, mode="r")[name]  # a new reader sees the same
    assert_same(again[...], want)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if want.dtype.names is None:
            z = zarr.open_array(path / name, mode="r")
            assert tuple(z.shape) == want.shape
            assert_same(np.asarray(z[...]), want)
        elif arr.backend == "memmap":  # records declared as bytes: a view gives them back
            raw = np.ascontiguousarray(zarr.open_array(path / name, mode="r")[...])
            assert_same(raw.view(want.dtype)[..., 0], want)
        else:  # one zarr array per field
            for f in want.dtype.names:
                assert_same(np.asarray(zarr.open_array(path / name / f, mode="r")[...]), want[f])
    if arr.backend == "memmap":
        assert_same(np.load(data_file(path, name), mmap_mode="r"), want)
    report = verify(store)
    assert not report.corrupt, report.findings
    assert not [f for f in report.findings if f.kind == "leftover"]


@st.composite
def _case(draw: st.DrawFn) -> tuple:
    backend = draw(st.sampled_from(["memmap", "zarr"]))
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(0, 7), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    checksum = draw(st.booleans())
    structured = draw(st.booleans())
    ops = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            axis = draw(st.integers(0, ndim - 1))  # (memmap: in place along 0, else rewritten)
            ops.append(("append", axis, draw(st.integers(0, 6))))
        else:
            first = draw(st.integers(0, 9))
            rest = [draw(st.sampled_from([s, draw(st.integers(0, 7))])) for s in shape[1:]]
            ops.append(("resize", (first, *rest)))
    return backend, shape, chunks, checksum, structured, ops


#: a structured case: a subarray field (trailing dimensions in zarr), blocks in another
#: field order and narrower types (cast losslessly under the value policy)
REC = np.dtype([("a", "f8"), ("b", "i2", (2,))])
REC_BLOCK = np.dtype([("b", "i1", (2,)), ("a", "f4")])


def _values(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if dtype.names is None:
        return rng.integers(-50, 50, size=shape).astype(dtype)
    out = np.zeros(shape, dtype)
    out["a"] = rng.integers(-50, 50, size=shape)
    out["b"] = rng.integers(-50, 50, size=(*shape, 2))
    return out


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=_case())
def test_appends_and_resizes_equal_numpy(tmp_path, case):
    backend, shape, chunks, checksum, structured, ops = case
    path = tmp_path / f"s{next(_names)}"
    store = arraystore.open(path, mode="a")
    rng = np.random.default_rng(len(ops))
    dtype, block_dtype = (REC, REC_BLOCK) if structured else (np.dtype("f8"), np.dtype("i2"))
    want = _values(rng, shape, dtype)
    arr = store.create("a", data=want, backend=backend, chunks=chunks, checksum=checksum)
    changed = []
    for op in ops:
        before, reader, old = want.shape, arraystore.open(path, mode="r")["a"], want
        if op[0] == "append":
            _, axis, n = op
            block_shape = tuple(n if i == axis else s for i, s in enumerate(want.shape))
            block = _values(rng, block_shape, block_dtype)  # cast: lossless
            assert arr.append(block, axis=axis) == (
                *want.shape[:axis],
                want.shape[axis] + n,
                *want.shape[axis + 1 :],
            )
            want = np.concatenate([want, _as(block, dtype)], axis=axis)
        else:
            assert arr.resize(op[1]) == op[1]
            want = _resized(want, op[1])
        _check(store, path, "a", want)
        if want.shape != before:
            changed.append(op[0])
        if all(a >= b for a, b in zip(want.shape, before, strict=True)):
            assert reader.shape == before  # a reader opened before keeps the old array
            assert_same(reader[...], old)
    assert [h["op"] for h in store["a"].meta.history] == changed


@pytest.mark.parametrize("backend", ["memmap", "zarr"])
def test_structured_append_and_readers_keep_their_shape(store, store_path, backend):
    dt = np.dtype([("price", "f8"), ("qty", "i4"), ("tag", "S3")])
    x = np.zeros(5, dt)
    x["price"] = np.arange(5)
    store.create("t", data=x, backend=backend, chunks=(2,), checksum=True)
    before = arraystore.open(store_path, mode="r")["t"]
    block = np.array([(1, 7.5, b"ab")], dtype=[("qty", "i8"), ("price", "f4"), ("tag", "S3")])
    arr = store["t"]
    assert arr.append(block) == (6,)
    want = np.concatenate([x, np.array([(7.5, 1, b"ab")], dt)])
    assert_same(arr[...], want)
    assert before.shape == (5,)  # a reader that opened before keeps the old shape
    assert_same(before[...], x)
    assert [h["op"] for h in arr.meta.history] == ["append"]
    assert not verify(store).corrupt


@pytest.mark.parametrize("backend", ["memmap", "zarr"])
def test_bad_appends_change_nothing(store, store_path, backend):
    x = np.arange(12.0).reshape(6, 2)
    arr = store.create("a", data=x, backend=backend, chunks=(4, 2), checksum=True)
    with pytest.raises(ShapeMismatch, match="must be"):
        arr.append(np.zeros((2, 3)))
    with pytest.raises(ShapeMismatch, match="not plain float64"):
        arr.append(np.zeros((1, 2), dtype=[("a", "f8"), ("b", "f8")]))
    with pytest.raises(CastError, match="refused"):
        store.append("a", np.full((3, 2), 2**60 + 1, dtype="i8"))  # not exact in f8
    f4 = store.create("f4", data=np.zeros((2, 2), "f4"), backend=backend)
    with pytest.raises(CastError):
        f4.append(np.full((3, 2), 1e300))
    assert f4.append(np.full((1, 2), 1e300), casting="unsafe") == (3, 2)
    with pytest.raises(ArrayNotFound):
        store.append("nope", x)
    with pytest.raises(ShapeMismatch):
        arr.resize(-1, 2)
    with pytest.raises(ShapeMismatch):
        arr.resize(6)
    with pytest.raises(InvalidArgument, match="tuple of integers"):
        arr.resize("six")
    assert_same(store["a"][...], x)
    assert store["a"].meta.history == ()
    report = verify(store)
    assert not report.corrupt and not [f for f in report.findings if f.kind == "leftover"]


def test_a_lossy_value_in_a_later_block_rolls_back(store, store_path, monkeypatch):
    from arraystore.ops import grow

    monkeypatch.setattr(grow, "BLOCK_BYTES", 16)  # one row per block
    for backend in ("memmap", "zarr"):
        x = np.arange(6, dtype="i2").reshape(3, 2)
        arr = store.create(backend, data=x, backend=backend, chunks=(2, 2), checksum=True)
        block = np.ones((5, 2), dtype="i4")
        block[4, 1] = 2**20  # only the last block is lossy in i2
        with pytest.raises(CastError):
            arr.append(block)
        _check(store, store_path, backend, x)


def test_memmap_grows_along_other_axes_by_a_rewrite(store, store_path):
    x = np.arange(6.0).reshape(2, 3)
    arr = store.create("m", data=x, backend="memmap", chunks=(1, 3), checksum=True)
    before = arraystore.open(store_path, mode="r")["m"]
    assert arr.append(np.ones((2, 1)), axis=1) == (2, 4)
    assert arr.resize(3, 2) == (3, 2)
    want = _resized(np.concatenate([x, np.ones((2, 1))], axis=1), (3, 2))
    _check(store, store_path, "m", want)
    assert [h["op"] for h in arr.meta.history] == ["append", "resize"]
    assert_same(before[...], x)  # a reader that opened before keeps the old array
    with pytest.raises(InvalidArgument, match="field view"):
        store.create("r", data=np.zeros(2, [("a", "f8")]))["a"].append(np.zeros(1))


def test_a_format_1_array_is_upgraded_first(tmp_path):
    copy = tmp_path / "g1.store"
    shutil.copytree(GOLDEN, copy)  # (a copy: hard links would let the upgrade write the fixture)
    s = arraystore.open(copy, mode="r+")
    for name in ("mm_plain", "zarr_plain"):
        x = EXPECTED[name]["values"]
        assert s.array_format(name) == 1
        s[name].append(x[:2])
        assert s.array_format(name) == 2
        assert_same(s[name][...], np.concatenate([x, x[:2]]))
    assert not verify(s).corrupt


@pytest.mark.parametrize("backend", ["memmap", "zarr"])
def test_append_a_stored_array_and_itself(store, store_path, backend, monkeypatch):
    from arraystore.ops import grow

    monkeypatch.setattr(grow, "BLOCK_BYTES", 48)  # two rows per block: several blocks
    x = np.arange(15.0).reshape(5, 3)
    arr = store.create("x", data=x, backend=backend, chunks=(2, 3), checksum=True)
    other = store.create("y", data=np.arange(9, dtype="i4").reshape(3, 3), backend="zarr")
    assert store.append("x", other) == (8, 3)
    want = np.concatenate([x, np.arange(9.0).reshape(3, 3)])
    assert arr.append(store["x"]) == (16, 3)  # its own rows, as they were before
    _check(store, store_path, "x", np.concatenate([want, want]))


def test_store_append_passes_the_table_options(store, tmp_path):
    store.create("t", data=np.zeros(1, [("a", "i4"), ("b", "f8")]), backend="zarr")
    src = tmp_path / "in.csv"
    src.write_text("junk line\nb;a\n2.5;1\n")
    assert store.append("t", src, delimiter=";", skip_rows=1) == (2,)
    assert store["t"][1].tolist() == (1, 2.5)
