"""Advanced selections (arraystore.core.selection) against numpy, on in-memory arrays.

A selection is run the way the I/O layer runs it -- one read of each touched chunk's
box, gathered (or read, modified and written back) piece by piece -- over a numpy array
standing in for the stored one, and must match numpy's ``a[key]`` / ``a[key] = v``
(advanced indexing), ``a[np.ix_(...)]`` (oindex) and ``a[tuple(arrays)]`` (vindex).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import basic_indices

from arraystore.core.chunks import chunks_touching, grid_shape
from arraystore.core.selection import (
    Selection,
    basic_selection,
    coordinate_selection,
    enclosing_chunk,
    is_advanced,
    numpy_selection,
    orthogonal_selection,
    pieces,
)
from arraystore.errors import InvalidArgument, InvalidIndex, InvalidType

FAST = settings(max_examples=300, deadline=None)


def gather(a: np.ndarray, sel: Selection, chunks: Any, whole: Any = None) -> np.ndarray:
    """What ops.select.read_selection does, over ``a``; checks each piece stays in one
    chunk and no chunk is read twice."""
    out = np.empty(sel.gshape, a.dtype)
    seen = set()
    for p in pieces(sel, chunks, whole):
        touched = list(chunks_touching(p.region, a.shape, chunks))
        ones = [c if not (whole and whole[i]) else 0 for i, c in enumerate(touched[0])]
        assert all(
            [c if not (whole and whole[i]) else 0 for i, c in enumerate(t)] == ones for t in touched
        ), f"piece {p.region} spans chunks"
        assert tuple(ones) not in seen, "a chunk read twice"
        seen.add(tuple(ones))
        out[p.dst] = a[p.region][p.src]
    return sel.finish(out)


def scatter(
    a: np.ndarray, sel: Selection, value: Any, chunks: Any, whole_chunks: bool = False
) -> None:
    """What ops.select.write_selection does (read, modify, write back each box, or each
    whole chunk holding one)."""
    full = np.empty(sel.out_shape, a.dtype)
    full[...] = value
    values = sel.unfinish(full)
    for p in pieces(sel, chunks):
        box = enclosing_chunk(p.region, a.shape, chunks) if whole_chunks else p.region
        assert all(
            b.start <= r.start <= r.stop <= b.stop for r, b in zip(p.region, box, strict=True)
        )
        block = a[box].copy()
        inner = tuple(
            slice(r.start - b.start, r.stop - b.start) for r, b in zip(p.region, box, strict=True)
        )
        block[inner][p.src] = values[p.dst]
        a[box] = block


# ------------------------------------------------------------------ strategies
shapes = st.lists(st.integers(1, 7), min_size=1, max_size=3).map(tuple)


@st.composite
def chunkings(draw: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(draw(st.integers(1, n)) for n in shape)


def int_arrays(n: int, shape: tuple[int, ...]) -> st.SearchStrategy[Any]:
    size = math.prod(shape)
    values = st.lists(st.integers(-n, n - 1), min_size=size, max_size=size)
    return values.map(lambda v: np.array(v, dtype=np.intp).reshape(shape))


@st.composite
def numpy_keys(draw: Any, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """Keys mixing ints, slices, int arrays (broadcastable), lists, masks, None, ..."""
    bshape = draw(st.sampled_from([(0,), (1,), (3,), (2, 1), (1, 3), (2, 3)]))
    key: list[Any] = []
    axis = 0
    while axis < len(shape):
        n = shape[axis]
        kind = draw(st.sampled_from(["int", "slice", "array", "list", "mask", "mask2", "bcast"]))
        if kind == "int":
            key.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            step = draw(st.sampled_from([None, 1, 2, 3, -1, -2]))
            key.append(
                slice(
                    draw(st.none() | st.integers(-9, 9)), draw(st.none() | st.integers(-9, 9)), step
                )
            )
        elif kind == "array":
            key.append(draw(int_arrays(n, bshape)))
        elif kind == "bcast":  # broadcasts against bshape
            key.append(draw(int_arrays(n, bshape[-1:] if draw(st.booleans()) else (1,))))
        elif kind == "list":
            key.append(draw(int_arrays(n, bshape[-1:])).tolist())
        elif kind == "mask2" and axis + 1 < len(shape):
            mask = draw(
                st.lists(st.booleans(), min_size=n * shape[axis + 1], max_size=n * shape[axis + 1])
            )
            key.append(np.array(mask).reshape(n, shape[axis + 1]))
            axis += 1
        else:
            key.append(np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n))))
        axis += 1
    if draw(st.booleans()):
        key.insert(draw(st.integers(0, len(key))), None)
    if draw(st.booleans()):  # drop trailing entries behind an Ellipsis
        cut = draw(st.integers(0, len(key)))
        key = [*key[:cut], Ellipsis, *key[cut + draw(st.integers(0, len(key) - cut)) :]]
    return tuple(key)


def numpy_outcome(fn: Any) -> Any:
    try:
        return fn(), None
    except IndexError as exc:
        return None, exc


# ------------------------------------------------------------------ numpy's arr[...]
@FAST
@given(st.data())
def test_numpy_selection_reads_like_numpy(data):
    shape = data.draw(shapes)
    chunks = data.draw(chunkings(shape))
    a = np.arange(math.prod(shape)).reshape(shape)
    key = data.draw(numpy_keys(shape))
    expected, error = numpy_outcome(lambda: a[key])
    if error is not None:
        with pytest.raises(InvalidIndex):
            numpy_selection(key, shape)
        return
    sel = numpy_selection(key, shape)
    if sel is None:
        assert not is_advanced(key)
        return
    whole = data.draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
    got = gather(a, sel, chunks, whole)
    assert sel.out_shape == expected.shape
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@FAST
@given(st.data())
def test_numpy_selection_writes_like_numpy(data):
    """Values broadcast; of repeated indices the last one wins, as in numpy."""
    shape = data.draw(shapes)
    chunks = data.draw(chunkings(shape))
    key = data.draw(numpy_keys(shape))
    expected = np.zeros(shape, np.int64)
    try:
        result_shape = expected[key].shape
    except IndexError:
        return
    sel = numpy_selection(key, shape)
    if sel is None:
        return
    scalar = data.draw(st.booleans())
    value: Any = 7 if scalar else np.arange(1, math.prod(result_shape) + 1).reshape(result_shape)
    if not scalar and result_shape and data.draw(st.booleans()):
        value = value[..., -1:]  # broadcast along the last dimension
    expected[key] = value
    got = np.zeros(shape, np.int64)
    scatter(got, sel, value, chunks, data.draw(st.booleans()))
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("key", "shape"),
    [
        (([0, 1], slice(None), [0, 1]), (2, 3, 4, 5)),  # separated: broadcast dims first
        ((slice(None), [0, 1], [0, 1]), (2, 3, 4, 5)),  # adjacent: in place
        ((slice(None), 0, [0, 1]), (2, 3, 4, 5)),  # an int counts as advanced
        ((0, slice(None), [0, 1]), (2, 3, 4, 5)),  # ... also for the placement rule
        (([0, 1], None, [0, 1]), (2, 3)),  # None separates too
        ((slice(None), [[0], [1]], slice(None), [0, 2, 1]), (2, 3, 4, 5)),
        ((Ellipsis, [4, 0]), (2, 3, 5)),
        ((np.ones((2, 3), bool),), (2, 3, 4)),  # a mask over leading axes
        ((slice(None), np.eye(3, 4, dtype=bool)), (2, 3, 4)),
        (([],), (3, 4)),  # empty list
        ((np.zeros(3, bool),), (3, 4)),  # all-False mask
    ],
)
def test_numpy_placement_rule(key, shape):
    a = np.arange(math.prod(shape)).reshape(shape)
    sel = numpy_selection(key, shape)
    assert sel is not None and sel.out_shape == a[key].shape
    for chunks in [(1,) * len(shape), shape, tuple(max(1, n // 2) for n in shape)]:
        np.testing.assert_array_equal(gather(a, sel, chunks), a[key])


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ([5], "index 5 is out of bounds for axis 0 with size 5"),
        ([-6], "index -6 is out of bounds"),
        ((slice(None), [0, 3]), "index 3 is out of bounds for axis 1 with size 3"),
        ([0.5, 1], r"integer \(or boolean\) type"),
        (["a"], r"integer \(or boolean\) type"),
        (([0, 1], [0, 1, 2]), "could not be broadcast together with shapes"),
        (np.ones(4, bool), "boolean index did not match indexed array along axis 0"),
        ((slice(None), np.ones(4, bool)), "along axis 1; size of axis is 3"),
        (([0], 0, 0), "too many indices"),
        (([0], ..., ...), "single ellipsis"),
        (([0], 1.5), "only integers, slices"),
        (([0], True), "not supported"),
        ((np.array(True), [0]), "0-d boolean"),
        ([[0, 1], [2]], r"integer \(or boolean\) type"),  # ragged
    ],
)
def test_numpy_selection_refuses(key, message):
    with pytest.raises(InvalidIndex, match=message) as info:
        numpy_selection(key, (5, 3))
    assert isinstance(info.value, IndexError)
    assert "\n" not in str(info.value)


def test_bad_slices_raise_what_numpy_raises():
    with pytest.raises(InvalidArgument, match="step cannot be zero"):
        numpy_selection(([0], slice(None, None, 0)), (5, 3))
    with pytest.raises(InvalidType, match="slice indices must be integers"):
        orthogonal_selection(([0], slice(1.0, 2)), (5, 3))


def test_basic_keys_are_not_advanced():
    for key in [0, slice(1, 3), Ellipsis, None, (0, slice(None)), (), np.int64(2), np.array(1)]:
        assert not is_advanced(key)
        assert numpy_selection(key, (5, 3)) is None
    assert is_advanced([0]) and is_advanced((0, [1])) and is_advanced(np.array([True]))


# ------------------------------------------------------------------ oindex
def oindex_reference(a: np.ndarray, key: tuple[Any, ...]) -> np.ndarray:
    """zarr's orthogonal selection written with numpy: np.ix_ over each axis."""
    idx, drop = [], []
    for axis, k in enumerate(key):
        n = a.shape[axis]
        if isinstance(k, int):
            idx.append(np.array([k % n]))
            drop.append(axis)
        elif isinstance(k, slice):
            idx.append(np.arange(n)[k])
        else:
            k = np.asarray(k)
            idx.append(np.nonzero(k)[0] if k.dtype == bool else k)
    out = a[np.ix_(*idx)] if idx else a
    return out.reshape([s for i, s in enumerate(out.shape) if i not in drop])


@st.composite
def orthogonal_keys(draw: Any, shape: tuple[int, ...]) -> tuple[Any, ...]:
    key: list[Any] = []
    for n in shape:
        kind = draw(st.sampled_from(["int", "slice", "array", "mask"]))
        if kind == "int":
            key.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            step = draw(st.sampled_from([None, 1, 2, 3, -1, -3]))
            key.append(
                slice(
                    draw(st.none() | st.integers(-9, 9)), draw(st.none() | st.integers(-9, 9)), step
                )
            )
        elif kind == "array":
            key.append(draw(int_arrays(n, (draw(st.integers(0, 6)),))))
        else:
            key.append(np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n))))
    if not any(isinstance(k, np.ndarray) for k in key):
        key[0] = np.array([0, 0])
    return tuple(key)


@FAST
@given(st.data())
def test_orthogonal_selection_reads_and_writes_like_ix(data):
    shape = data.draw(shapes)
    chunks = data.draw(chunkings(shape))
    a = np.arange(math.prod(shape)).reshape(shape)
    key = data.draw(orthogonal_keys(shape))
    sel = orthogonal_selection(key, shape)
    assert sel is not None
    expected = oindex_reference(a, key)
    np.testing.assert_array_equal(gather(a, sel, chunks), expected)
    # writes: np.ix_ assignment (repeated indices: the last wins)
    value = -np.arange(1, expected.size + 1).reshape(expected.shape)
    want, got = a.copy(), a.copy()
    idx = [
        np.array([k % n])
        if isinstance(k, int)
        else (
            np.arange(n)[k]
            if isinstance(k, slice)
            else (np.nonzero(k)[0] if k.dtype == bool else k)
        )
        for k, n in zip(key, shape, strict=True)
    ]
    want[np.ix_(*idx)] = value.reshape([len(i) for i in idx])
    scatter(got, sel, value, chunks)
    np.testing.assert_array_equal(got, want)


def test_orthogonal_refuses():
    for key, message in [
        (np.zeros((2, 2), int), "1-d index arrays, got a 2-d one"),
        (np.ones((5, 3), bool), "1-d index arrays, got a 2-d one"),
        ((0, [[True]]), r"1-d index arrays, got a 2-d one \(entry 1\)"),
        ((None, [0]), "None"),
        (([0], 1.5), "orthogonal selection takes integers"),
        (np.zeros(4, bool), "boolean index did not match"),
        ([7], "out of bounds for axis 0 with size 5"),
        (([0], [0], [0]), "too many indices"),
    ]:
        with pytest.raises(InvalidIndex, match=message):
            orthogonal_selection(key, (5, 3))
    assert orthogonal_selection((0, slice(1, 2)), (5, 3)) is None  # basic: arr[key]


# ------------------------------------------------------------------ vindex
@FAST
@given(st.data())
def test_coordinate_selection_reads_and_writes_like_numpy(data):
    shape = data.draw(shapes)
    chunks = data.draw(chunkings(shape))
    a = np.arange(math.prod(shape)).reshape(shape)
    bshape = data.draw(st.sampled_from([(0,), (4,), (2, 3)]))
    if data.draw(st.booleans()):
        key: Any = np.array(
            data.draw(st.lists(st.booleans(), min_size=a.size, max_size=a.size))
        ).reshape(shape)
    else:
        key = tuple(data.draw(int_arrays(n, bshape) | st.integers(-n, n - 1)) for n in shape)
        if not any(isinstance(k, np.ndarray) for k in key):
            return
    sel = coordinate_selection(key, shape)
    assert sel is not None
    np.testing.assert_array_equal(gather(a, sel, chunks), a[key])
    want, got = a.copy(), a.copy()
    value = -np.arange(1, a[key].size + 1).reshape(a[key].shape)
    want[key] = value
    scatter(got, sel, value, chunks)
    np.testing.assert_array_equal(got, want)


def test_coordinate_refuses():
    for key, message in [
        ((slice(0, 2), [0, 1]), "vindex takes one integer array per axis"),
        ((Ellipsis, [0, 1]), r"got \.\.\. on axis 0"),
        ([0, 1], "one index per dimension"),
        (np.ones(5, bool), "needs a 2-d mask"),
        (np.ones((5, 2), bool), "boolean index did not match"),
        (([0, 1], [True, False, True]), "mask only alone"),
        (([0, 9], [0, 1]), "index 9 is out of bounds for axis 0"),
    ]:
        with pytest.raises(InvalidIndex, match=message):
            coordinate_selection(key, (5, 3))


# ------------------------------------------------------------------ chunk grouping
def test_pieces_read_each_touched_chunk_once_in_order():
    shape, chunks = (100, 10), (10, 5)
    rows = np.array([95, 3, 3, 41, 7, 99, 40])
    sel = numpy_selection((rows, slice(None)), shape)
    assert sel is not None
    regions = [p.region for p in pieces(sel, chunks)]
    # chunks 0, 4 and 9 along axis 0, both chunks along axis 1: six reads
    assert [(r[0].start, r[0].stop) for r in regions] == [(3, 8)] * 2 + [(40, 42)] * 2 + [
        (95, 100)
    ] * 2
    boxes = [tuple((r.start, r.stop) for r in region) for region in regions]
    assert len(set(boxes)) == len(boxes) <= math.prod(grid_shape(shape, chunks))


def test_pieces_of_a_slice_with_a_large_step_skip_untouched_chunks():
    sel = orthogonal_selection((slice(3, 100, 40), [0]), (100, 2))
    assert sel is not None
    regions = [p.region[0] for p in pieces(sel, (10, 2))]
    assert regions == [slice(3, 4), slice(43, 44), slice(83, 84)]


def test_enclosing_chunk():
    shape, chunks = (100, 10), (30, 4)
    assert enclosing_chunk((slice(95, 99), slice(5, 6)), shape, chunks) == (
        slice(90, 100),
        slice(4, 8),
    )
    assert enclosing_chunk((slice(0, 100), slice(8, 9)), shape, chunks) == (
        slice(0, 100),
        slice(8, 10),
    )


@FAST
@given(st.data())
def test_basic_selection_writes_like_numpy(data):
    """Basic keys with strided slices (and None, ...) as selections, for writes."""
    shape = data.draw(shapes)
    chunks = data.draw(chunkings(shape))
    key = data.draw(basic_indices(shape, allow_ellipsis=True, allow_newaxis=True))
    sel = basic_selection(key, shape)
    a = np.arange(math.prod(shape)).reshape(shape)
    assert sel.out_shape == np.shape(a[key])
    np.testing.assert_array_equal(gather(a, sel, chunks), a[key])
    want, got = a.copy(), a.copy()
    value = -np.arange(1, np.size(a[key]) + 1).reshape(np.shape(a[key]))
    want[key] = value
    scatter(got, sel, value, chunks, data.draw(st.booleans()))
    np.testing.assert_array_equal(got, want)
