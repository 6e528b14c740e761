"""Chunk-grid maths and index normalisation (arraystore.core.chunks): pure functions."""

from __future__ import annotations

import math
from itertools import pairwise, product
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import basic_indices

from arraystore.core.chunks import (
    DEFAULT_CHUNK_BYTES,
    auto_chunks,
    chunk_region,
    chunks_touching,
    full_region,
    grid_shape,
    intersect,
    iter_chunk_indices,
    iter_chunk_regions,
    normalize_chunks,
    normalize_index,
    normalize_shape,
    region_shape,
    region_size,
    relative,
)
from arraystore.errors import InvalidArgument, InvalidIndex

FAST = settings(max_examples=150, deadline=None)

shapes = st.lists(st.integers(0, 9), min_size=0, max_size=4).map(tuple)


@st.composite
def shapes_chunks(draw: Any, max_ndim: int = 4, max_side: int = 9) -> Any:
    shape = tuple(draw(st.lists(st.integers(0, max_side), min_size=0, max_size=max_ndim)))
    chunks = tuple(draw(st.integers(1, max(1, n))) for n in shape)
    return shape, chunks


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (1000, (1000,)),
        ((1000, 64), (1000, 64)),
        ([3, 0, 2], (3, 0, 2)),
        ((), ()),
        ("1000,64", (1000, 64)),
        ("1000, 64", (1000, 64)),
        ("10x3", (10, 3)),
        ("1_000", (1000,)),
        ("(10, 3)", (10, 3)),  # fixed in chunks.py: parentheses were refused
        ("()", ()),
        (" ( ) ", ()),
        (np.int64(7), (7,)),
        ((np.int32(2), "5"), (2, 5)),
    ],
)
def test_normalize_shape(spec, expected):
    assert normalize_shape(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ((-1, 3), "negative"),
        (-5, "negative"),
        ("4,-2", "negative"),
        (2.5, "integer"),
        ((2.0,), "integer"),
        ((True,), "integer"),
        (("a",), "integer"),
        (None, "integer"),
        ("x", "bad shape"),
        ("(x)", "bad shape"),
        ("0x10", "hexadecimal"),  # issue 15 #17: was read as (0, 10)
        ("(0x10)", "hexadecimal"),
        ("3, 0X4", "hexadecimal"),
        ("", r"empty \(a 0-d array is --shape '\(\)'\)"),  # Q2: was silently 0-d
        ("  ", "empty"),
    ],
)
def test_normalize_shape_refuses(spec, message):
    with pytest.raises(InvalidArgument, match=message):
        normalize_shape(spec)


@given(shapes)
def test_normalize_shape_string_roundtrip(shape):
    assert normalize_shape(",".join(map(str, shape)) or "()") == shape
    assert normalize_shape(str(shape)) == shape  # "(3, 4)", "(3,)", "()"
    assert normalize_shape(list(shape)) == shape


# ---------------------------------------------------------------- chunks


@pytest.mark.parametrize(
    ("chunks", "shape", "expected"),
    [
        (4, (10, 3), (4, 3)),  # an int splits axis 0 only
        ((4, 2), (10, 3), (4, 2)),
        ("4,-1", (10, 3), (4, 3)),
        ((20, None), (10, 3), (10, 3)),  # clamped; None = whole axis
        ((-1, -1), (10, 3), (10, 3)),
        ((5, 5), (0, 0), (1, 1)),  # zero-length axes get chunk 1
        ((), (), ()),
    ],
)
def test_normalize_chunks(chunks, shape, expected):
    assert normalize_chunks(chunks, shape, 8) == expected


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        ((0, 1), ">= 1"),
        (0, ">= 1"),
        ((-2, 1), ">= 1"),
        ((1,), "one entry per dimension"),
        ((1, 1, 1), "one entry per dimension"),
        ((1.5, 1), "integer"),
        ((True, 1), "integer"),
        ("a,b", "integer"),
    ],
)
def test_normalize_chunks_refuses(chunks, message):
    with pytest.raises(InvalidArgument, match=message):
        normalize_chunks(chunks, (10, 3), 8)


@FAST
@given(
    shape=st.lists(st.integers(0, 10**6), min_size=0, max_size=5).map(tuple),
    itemsize=st.sampled_from([1, 2, 4, 8, 16, 24, 1000, 10**6]),
    target=st.integers(1, 2**30),
)
def test_auto_chunks_invariants(shape, itemsize, target):
    chunks = auto_chunks(shape, itemsize, target)
    assert len(chunks) == len(shape)
    assert all(1 <= c <= max(1, n) for c, n in zip(chunks, shape, strict=True))
    nbytes = math.prod(chunks) * itemsize
    # at most the target, unless one element is already bigger than it
    assert nbytes <= max(target, itemsize)
    # row blocks: leading axes of 1, one split axis, whole trailing axes
    full = [max(1, n) for n in shape]
    differ = [i for i, (c, f) in enumerate(zip(chunks, full, strict=True)) if c != f]
    if differ:
        split = differ[-1]
        assert all(c == 1 for c in chunks[:split])
        assert list(chunks[split + 1 :]) == full[split + 1 :]
        # ... and as large as the target allows along the split axis
        inner = math.prod(full[split + 1 :])
        assert (chunks[split] + 1) * inner * itemsize > target
    assert normalize_chunks(None, shape, itemsize, target) == chunks
    assert normalize_chunks("auto", shape, itemsize, target) == chunks


def test_auto_chunks_examples():
    assert auto_chunks((1000, 64), 8, 64 * 8 * 100) == (100, 64)
    assert auto_chunks((10, 10**6), 8, 8 * 1000) == (1, 1000)  # a row is too big: split it
    assert auto_chunks((5,), 10**9, 1) == (1,)  # one element is bigger than the target
    assert auto_chunks((), 8) == ()
    assert auto_chunks((10**9,), 8) == (DEFAULT_CHUNK_BYTES // 8,)
    with pytest.raises(InvalidArgument):
        auto_chunks((10,), 8, 0)


# ------------------------------------------------------------ chunk grid


@FAST
@given(shapes_chunks())
def test_chunk_regions_tile_once_in_c_order(case):
    shape, chunks = case
    regions = list(iter_chunk_regions(shape, chunks))
    indices = list(iter_chunk_indices(shape, chunks))
    grid = grid_shape(shape, chunks)
    assert len(regions) == len(indices) == math.prod(grid)
    assert indices == sorted(indices)  # C order
    assert regions == [chunk_region(i, shape, chunks) for i in indices]
    count = np.zeros(shape, dtype=np.int64)
    for region in regions:
        assert all(0 <= r.start < r.stop <= n for r, n in zip(region, shape, strict=True))
        assert all(r.stop - r.start <= c for r, c in zip(region, chunks, strict=True))
        assert all(r.start % c == 0 for r, c in zip(region, chunks, strict=True))
        count[region] += 1
    assert (count == 1).all()  # every element exactly once
    if not shape:
        assert regions == [()]


def test_grid_examples():
    assert grid_shape((10, 3), (4, 3)) == (3, 1)
    assert grid_shape((0, 3), (1, 3)) == (0, 1)
    assert list(iter_chunk_regions((5,), (2,))) == [
        (slice(0, 2),),
        (slice(2, 4),),
        (slice(4, 5),),
    ]
    assert list(iter_chunk_regions((0, 3), (1, 3))) == []
    assert list(iter_chunk_regions((), ())) == [()]


@st.composite
def regions_in(draw: Any, shape: tuple[int, ...]) -> tuple[slice, ...]:
    out = []
    for n in shape:
        a, b = sorted((draw(st.integers(0, n)), draw(st.integers(0, n))))
        out.append(slice(a, b))
    return tuple(out)


@FAST
@given(st.data())
def test_chunks_touching_matches_brute_force(data):
    shape, chunks = data.draw(shapes_chunks())
    region = data.draw(regions_in(shape))
    got = list(chunks_touching(region, shape, chunks))
    brute = [
        idx
        for idx in iter_chunk_indices(shape, chunks)
        if intersect(chunk_region(idx, shape, chunks), region) is not None
    ]
    if region_size(region) == 0:
        assert got == []
    else:
        assert got == brute


@FAST
@given(st.data())
def test_intersect_and_relative(data):
    shape = data.draw(st.lists(st.integers(1, 9), min_size=1, max_size=3).map(tuple))
    a, b = data.draw(regions_in(shape)), data.draw(regions_in(shape))
    mask_a, mask_b = np.zeros(shape, bool), np.zeros(shape, bool)
    mask_a[a], mask_b[b] = True, True
    both = intersect(a, b)
    if both is None:
        assert not (mask_a & mask_b).any()
        return
    expect = np.zeros(shape, bool)
    expect[both] = True
    assert (expect == (mask_a & mask_b)).all()
    values = np.arange(math.prod(shape)).reshape(shape)
    assert (values[a][relative(both, a)] == values[both]).all()


def test_region_helpers():
    region = (slice(2, 5), slice(0, 0), slice(1, 2))
    assert region_shape(region) == (3, 0, 1)
    assert region_size(region) == 0
    assert full_region((4, 2)) == (slice(0, 4), slice(0, 2))
    assert full_region(()) == ()


# --------------------------------------------------------------- indexing


def apply(key: Any, data: np.ndarray) -> Any:
    region, post = normalize_index(key, data.shape)
    assert len(region) == data.ndim
    for r, n in zip(region, data.shape, strict=True):
        assert r.step is None and 0 <= r.start <= r.stop <= n
    return data[region][post]


@FAST
@given(st.data())
def test_normalize_index_matches_numpy(data):
    shape = data.draw(shapes)
    key = data.draw(basic_indices(shape, allow_ellipsis=True, allow_newaxis=True))
    values = np.arange(math.prod(shape)).reshape(shape)
    got, exp = np.asarray(apply(key, values)), np.asarray(values[key])
    assert got.shape == exp.shape
    assert (got == exp).all()


@FAST
@given(st.data())
def test_normalize_index_reads_only_a_tight_box(data):
    """The region is the bounding box of what the key selects (no extra chunks read)."""
    shape = data.draw(st.lists(st.integers(1, 9), min_size=1, max_size=4).map(tuple))
    key = data.draw(basic_indices(shape, allow_ellipsis=True))
    region, _ = normalize_index(key, shape)
    selected = np.zeros(shape, bool)
    selected[key] = True
    if not selected.any():
        assert region_size(region) == 0
        return
    where = np.nonzero(selected)
    box = tuple(slice(int(w.min()), int(w.max()) + 1) for w in where)
    assert region == box


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ((0, 0, 0), "too many indices"),
        ((Ellipsis, Ellipsis), "single ellipsis"),
        ((0, Ellipsis, 0, 0), "too many indices"),
        (5, "out of bounds"),
        (-6, "out of bounds"),
        ((0, 3), "out of bounds"),
        ((None, 0, 0, 0), "too many indices"),
        (True, "not supported"),
        (1.5, "only integers"),
        ([0, 1], "only integers"),
        (np.array([0, 1]), "only integers"),
    ],
)
def test_normalize_index_refuses(key, message):
    with pytest.raises(InvalidIndex, match=message):
        normalize_index(key, (5, 3))


def test_normalize_index_examples():
    region, post = normalize_index((), (4,))
    assert region == (slice(0, 4),) and list(np.arange(4)[region][post]) == [0, 1, 2, 3]
    assert normalize_index(..., ()) == ((), ())
    assert normalize_index((), ()) == ((), ())
    assert normalize_index(-1, (4,)) == ((slice(3, 4),), (0,))
    assert normalize_index(np.int64(2), (4,)) == ((slice(2, 3),), (0,))
    region, post = normalize_index(slice(None, None, -2), (5,))
    assert region == (slice(0, 5),) and post == (slice(None, None, -2),)
    region, post = normalize_index(slice(7, 1, -3), (9,))  # 7, 4
    assert region == (slice(4, 8),)
    assert list(np.arange(9)[region][post]) == [7, 4]


def test_product_of_grids_is_consistent():
    shape, chunks = (5, 4, 3), (2, 3, 3)
    assert list(iter_chunk_indices(shape, chunks)) == list(product(range(3), range(2), range(1)))


@given(
    a=st.integers(0, 50),
    n=st.integers(0, 300),
    trail=st.lists(st.integers(1, 5), max_size=2),
    row_bytes=st.integers(0, 4096),
    target=st.integers(0, 20_000),
)
def test_split_rows_covers_the_region_in_order(
    a: int, n: int, trail: list[int], row_bytes: int, target: int
) -> None:
    from arraystore.core.chunks import split_rows

    region = (slice(a, a + n), *(slice(0, t) for t in trail))
    pieces = split_rows(region, row_bytes, target)
    step = max(1, target // max(1, row_bytes))
    assert [p[1:] for p in pieces] == [region[1:]] * len(pieces)
    assert pieces[0][0].start == a and pieces[-1][0].stop == a + n
    for p, q in pairwise(pieces):
        assert p[0].stop == q[0].start  # consecutive, no gap, no overlap
    assert all(0 < p[0].stop - p[0].start <= step for p in pieces) or n == 0
    assert len(pieces) == max(1, -(-n // step))


def test_normalize_index_newaxis():
    """Issue 15 #17: ``arr[None, 5]`` said "too many indices"; None adds a length-1 axis."""
    values = np.arange(12).reshape(4, 3)
    for key in [(None, 2), (2, None), (None, ..., None), (None, 1, None, slice(0, 2)), None]:
        region, post = normalize_index(key, values.shape)
        assert np.array_equal(values[region][post], values[key])
        assert values[region][post].shape == values[key].shape
