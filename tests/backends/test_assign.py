"""Writes follow numpy's assignment rules exactly (issue 15 item 8): the same stored
values as ``a[key] = value`` on an in-memory numpy array of the dtype, and the same
exception class (also an :class:`arraystore.ArrayStoreError`) where numpy refuses.
Both backends; moved out of test_backends.py (size limit)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import basic_indices

import arraystore
from arraystore.errors import ArrayStoreError, CastOverflow
from arraystore.testing import assert_same, backend_params
from tests.backends.test_backends import HYPOTHESIS, PLAIN_DTYPES, shapes_and_chunks, unique


def test_python_ints_follow_numpy(store, backend_case):
    """Issue 15 #8: ``i1[0:2] = 300`` wrapped to 44; ``u1[0:2] = 42`` was refused."""
    i1 = store.create("i1", (4,), "i1", **backend_case.kwargs)
    with pytest.raises(OverflowError) as info:
        i1[0:2] = 300
    assert isinstance(info.value, CastOverflow) and "out of bounds" in str(info.value)
    with pytest.raises(ValueError, match="NaN"):
        i1[0] = float("nan")
    assert_same(i1[...], np.zeros(4, "i1"))  # nothing written
    for dtype, value in (("u1", 42), ("u8", 2**64 - 1), ("bool", 42), ("f4", 2**70)):
        arr = store.create(unique(), (3,), dtype, **backend_case.kwargs)
        arr[0:2] = value
        exp = np.zeros(3, dtype)
        exp[0:2] = value
        assert_same(arr[...], exp)
    zero_d = store.create("z0", (), "u1", **backend_case.kwargs)  # zarr's selection test
    zero_d[()] = 42
    zero_d[...] = 43
    assert zero_d[()] == 43


#: dtypes of every family for the assignment property test (one record dtype)
ASSIGN_DTYPES = [*PLAIN_DTYPES, "S3", "U3", "a:i2,b:f4", "k:u1,v:2f4"]
_SMALL_INTS = st.integers(-3, 9)
_EDGE_INTS = st.sampled_from(
    [127, 128, -129, 255, 256, -1, 2**15, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64]
)


@st.composite
def assigned_values(draw: Any, target_shape: tuple[int, ...]) -> Any:
    """Python scalars (in and out of every range), strings, None, tuples, numpy scalars,
    numpy arrays and nested lists (of the target's shape or a broadcastable one)."""
    kind = draw(st.integers(0, 6))
    if kind == 0:
        return draw(st.one_of(_SMALL_INTS, _EDGE_INTS, st.integers(-(2**70), 2**70)))
    if kind == 1:
        return draw(st.one_of(st.floats(), st.booleans(), st.complex_numbers(max_magnitude=1e3)))
    if kind == 2:
        return draw(
            st.one_of(
                st.sampled_from(["12", "-0", " 7 ", "nan", "1e3", "abcd", "", b"5", b"x"]),
                st.none(),
                st.tuples(_SMALL_INTS, st.floats(-5, 5)),
                st.tuples(_SMALL_INTS, st.floats(-5, 5), st.floats(-5, 5)),
            )
        )
    if kind == 3:
        dtype = draw(st.sampled_from(PLAIN_DTYPES))
        return np.dtype(dtype).type(draw(st.integers(0, 1 if dtype == "bool" else 100)))
    dims = list(target_shape)
    dims = dims[draw(st.integers(0, len(dims))) :]  # broadcast from fewer dimensions
    dims = [1 if draw(st.booleans()) else n for n in dims]
    if draw(st.booleans()) and dims:  # sometimes a shape that does not broadcast
        dims[0] += 1
    dtype = draw(st.sampled_from([*PLAIN_DTYPES, "S2"]))
    values = np.arange(int(np.prod(dims)), dtype=np.int64).reshape(dims) % 7 - 2
    arr = values.astype(np.dtype(dtype)) if dtype != "bool" else values > 0
    return arr.tolist() if kind == 6 else arr


@settings(HYPOTHESIS, max_examples=60)
@given(data=st.data())
@pytest.mark.parametrize("case", backend_params(lambda c: c.codec in (None, "none")))
def test_assignment_follows_numpy(store, case, data):
    """``arr[key] = value`` gives what the same assignment gives on a numpy array, and
    raises an arraystore error of numpy's exception class (leaving the data as it was)."""
    dtype = data.draw(st.sampled_from(ASSIGN_DTYPES), "dtype")
    shape, chunks = data.draw(shapes_and_chunks(max_ndim=3, max_side=4), "shape, chunks")
    np_data = np.zeros(shape, arraystore.parse_dtype(dtype))
    arr = store.create(unique(), data=np_data, chunks=chunks, **case.kwargs)
    key = data.draw(basic_indices(shape, allow_ellipsis=True, allow_newaxis=True), "key")
    value = data.draw(assigned_values(np.shape(np_data[key])), "value")
    before = np_data.copy()
    expected: BaseException | None = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            np_data[key] = value
        except Exception as exc:  # numpy's exception class is the reference
            expected = exc
        try:
            arr[key] = value
            got: BaseException | None = None
        except Exception as exc:
            got = exc
    if expected is None:
        assert got is None, got
        assert_same(arr[...], np_data)
    else:
        assert isinstance(got, ArrayStoreError) and isinstance(got, type(expected)), (
            expected,
            got,
        )
        assert_same(arr[...], before)  # nothing written
