"""numpy functions on a stored ``Array`` (issue 19): the reductions dispatch through
``__array_function__`` to the out-of-core ones and return what numpy returns on the data
in memory (type, dtype, shape; values exact for integers, booleans, indices, min/max and
counts, at a tolerance tied to the data's precision for float sums, means, variances and
quantiles); any other numpy function is refused with a message saying to read a region.

Before the change ``np.sum(arr)`` raised ``TypeError: ... unexpected keyword argument
'out'`` (numpy called ``Array.sum(axis=..., out=...)``), and ``np.concatenate([arr])``
read the whole array silently.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import arraystore
from arraystore.errors import InvalidArgument, InvalidType
from arraystore.testing import BackendCase, backend_params

SETTINGS = settings(
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CASES = backend_params(lambda c: c.codec in (None, "none"))
_names = itertools.count()

AXIS_FUNCS: list[Callable[..., Any]] = [
    np.sum, np.mean, np.var, np.std, np.min, np.max, np.any, np.all, np.count_nonzero,
    np.argmin, np.argmax,
]  # fmt: skip
NAN_FUNCS: list[Callable[..., Any]] = [
    np.nansum, np.nanmean, np.nanvar, np.nanstd, np.nanmin, np.nanmax,
]  # fmt: skip
#: results compared exactly (dtype and bits), the others at the data's precision
EXACT = {"min", "max", "nanmin", "nanmax", "any", "all", "count_nonzero", "argmin", "argmax"}
#: relative tolerance by the itemsize of numpy's float result
RTOL = {8: 1e-12, 4: 2e-5, 2: 2e-2}


def fresh() -> str:
    return f"a{next(_names)}"


def numpy_result(func: Callable[..., Any], x: np.ndarray, **kw: Any) -> tuple[bool, Any]:
    """(True, numpy's result) or (False, the exception numpy raised), warnings silenced."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            return True, func(x, **kw)
        except Exception as e:  # compared with arraystore's error below
            return False, e


def check(func: Callable[..., Any], arr: Any, x: np.ndarray, **kw: Any) -> None:
    """``func(arr, **kw)`` is what numpy returns for the data ``x`` in memory."""
    ref = x
    if x.dtype.kind in "iu" and any(n in func.__name__ for n in ("quantile", "percentile")):
        ref = x.astype(np.float64)  # numpy's b - a wraps (int8 [-1, 127]: 191, not 63)
    ok, want = numpy_result(func, ref, **kw)
    if not ok:
        # numpy's ValueError (min of an empty slice, all-NaN argmin) is InvalidArgument
        with pytest.raises(type(want)):
            func(arr, **kw)
        return
    got = func(arr, **kw)
    where = f"np.{func.__name__}({x.dtype}{x.shape}, {kw})"
    assert isinstance(got, np.ndarray) == isinstance(want, np.ndarray), where
    assert np.shape(got) == np.shape(want), where
    value_dependent = "quantile" in where or "percentile" in where or "median" in where
    if value_dependent and np.isnan(np.asarray(want, dtype=np.float64)).any():
        # numpy's NaN paths of quantile keep float32 where its others promote to the
        # float64 of q (np.quantile(f4, np.float64(0.5))): the no-NaN dtype is given
        assert np.asarray(got).dtype in (np.asarray(want).dtype, np.float64), where
    elif isinstance(want, np.ndarray | np.generic):
        assert type(got) is type(want), (where, type(got), type(want))
        assert got.dtype == want.dtype, (where, got.dtype, want.dtype)
    w = np.asarray(want)
    if func.__name__ in EXACT or w.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want, err_msg=where, strict=True)
        return
    rtol = RTOL[w.dtype.itemsize]
    xf = np.abs(x.astype(np.float64))
    with np.errstate(all="ignore"):
        scale = np.nansum(xf) + np.nanmax(xf, initial=0) ** 2 + 1
    np.testing.assert_allclose(
        np.asarray(got, dtype=np.float64), w.astype(np.float64), rtol=rtol,
        atol=rtol * scale, equal_nan=True, err_msg=where,
    )  # fmt: skip


@st.composite
def data_and_chunks(draw: st.DrawFn) -> tuple[np.ndarray, tuple[int, ...]]:
    dtype = np.dtype(draw(st.sampled_from(["f8", "f4", "i4", "i8", "u1", "i1", "b1"])))
    shape = draw(st.tuples(st.integers(1, 7), st.integers(1, 6)))
    if dtype.kind == "f":
        elems = st.floats(-1e3, 1e3, width=8 * dtype.itemsize) | st.just(float("nan"))
        x = draw(hnp.arrays(dtype, shape, elements=elems))
    else:
        x = draw(hnp.arrays(dtype, shape))
    chunks = tuple(draw(st.integers(1, n)) for n in shape)
    return x, chunks


@pytest.mark.parametrize("case", CASES)
@SETTINGS
@given(st.data())
def test_numpy_reductions_match_numpy(
    store: arraystore.Store, case: BackendCase, data: st.DataObject
) -> None:
    """Every dispatched reduction over axis None/0/1 (-1 too), on floats with NaN, ints
    and bools: numpy's result type, dtype, shape and values."""
    x, chunks = data.draw(data_and_chunks())
    arr = store.create(fresh(), data=x, chunks=chunks, **case.kwargs)
    for func, axis in itertools.product(AXIS_FUNCS + NAN_FUNCS, [None, 0, 1, -1]):
        if func in (np.argmin, np.argmax) and x.dtype.kind == "b":
            continue
        check(func, arr, x, axis=axis)
    for func in (np.var, np.std, np.nanvar, np.nanstd):
        check(func, arr, x, axis=data.draw(st.sampled_from([None, 0, 1])), ddof=1)
    if x.dtype.kind != "b":
        q = data.draw(st.sampled_from([0.5, 0.0, 1.0, [0.1, 0.9], [[0.25], [0.75]]]))
        for func in (np.quantile, np.nanquantile):
            check(func, arr, x, q=q)
        for func in (np.median, np.nanmedian):
            check(func, arr, x)
        check(np.percentile, arr, x, q=np.multiply(q, 100))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)])
def test_numpy_reductions_keepdims_ddof_dtype(
    store: arraystore.Store, case: BackendCase, axis: Any
) -> None:
    """keepdims, ddof (and numpy 2's ``correction``), a safe ``dtype=``, positional
    arguments, and a float32 array (numpy's float32 results, not arraystore's float64)."""
    x = np.random.default_rng(7).normal(10, 3, size=(9, 5)).astype(np.float32)
    x[2, 3] = np.nan
    arr = store.create(fresh(), data=x, chunks=(4, 2), **case.kwargs)
    for func in (np.sum, np.mean, np.min, np.max, np.any, np.all, np.nansum, np.nanmean):
        check(func, arr, x, axis=axis, keepdims=True)
    for func in (np.var, np.std, np.nanvar, np.nanstd):
        check(func, arr, x, axis=axis, ddof=2, keepdims=True)
        check(func, arr, x, axis=axis, correction=1)
    check(np.count_nonzero, arr, x, axis=axis, keepdims=True)
    for func in (np.sum, np.mean, np.nansum, np.nanmean):
        check(func, arr, x, axis=axis, dtype=np.float64)
    assert np.nanstd(arr, 0, None, None, 1) == pytest.approx(np.nanstd(x, 0, None, None, 1))
    check(np.quantile, arr, x, q=[0.2, 0.5], keepdims=True)
    check(np.nanmedian, arr, x, keepdims=True)


@pytest.mark.parametrize("case", CASES)
def test_numpy_reductions_of_a_field_view(store: arraystore.Store, case: BackendCase) -> None:
    """A structured array's field view reduces like the field in memory; the structured
    array itself is refused as numpy refuses it (a TypeError), naming a field to pick."""
    data = np.zeros((6, 3), dtype=[("price", "f8"), ("qty", "i4"), ("v", "f4", (2,))])
    rng = np.random.default_rng(3)
    data["price"] = rng.normal(size=(6, 3))
    data["price"][4, 1] = np.nan
    data["qty"] = rng.integers(-5, 5, size=(6, 3))
    data["v"] = rng.normal(size=(6, 3, 2))
    arr = store.create(fresh(), data=data, chunks=(4, 2), **case.kwargs)
    for name, axis in itertools.product(["price", "qty"], [None, 0, 1]):
        for func in (np.sum, np.nanmean, np.max, np.argmin, np.std, np.count_nonzero):
            check(func, arr[name], data[name], axis=axis)
    check(np.nanquantile, arr["price"], data["price"], q=[0.3, 0.6])
    check(np.median, arr["qty"], data["qty"])
    check(np.sum, arr["v"], data["v"], axis=0)
    check(np.nanmean, arr["v"], data["v"], axis=(0, 1))
    check(np.median, arr["v"], data["v"])
    for axis in (None, 2, (0, 2), -1):  # the subarray axes: not out of core
        with pytest.raises(InvalidArgument, match="subarray axes of field 'v'"):
            np.sum(arr["v"], axis=axis)
    ok, _ = numpy_result(np.sum, data)
    assert not ok  # numpy cannot add records either
    with pytest.raises(TypeError, match=r"np.sum\(arr\['price'\]\)"):
        np.sum(arr)
    with pytest.raises(InvalidType, match="structured"):
        np.mean(arr, axis=0)


@pytest.mark.parametrize("dtype", ["i8", "u8"])
def test_integer_sum_wraps_as_numpy(store: arraystore.Store, dtype: str) -> None:
    """numpy's integer sums wrap silently at 64 bits; ``np.sum(arr)`` returns numpy's
    int64/uint64 result (``arr.sum()`` keeps the exact Python int)."""
    big = np.iinfo(dtype).max // 2 + 1
    x = np.array([[big, big], [big, 3]], dtype=dtype)
    arr = store.create(fresh(), data=x, chunks=(1, 2))
    check(np.sum, arr, x)
    check(np.sum, arr, x, axis=0)
    check(np.sum, arr, x, axis=1)
    assert arr.sum() == 3 * int(big) + 3  # the method stays exact


def test_unsupported_arguments_are_refused_by_name(store: arraystore.Store) -> None:
    """``out``, ``where``, ``initial``, other quantile methods, weights, unsafe dtypes:
    InvalidArgument naming the argument, before anything is read."""
    x = np.arange(12.0).reshape(3, 4)
    arr = store.create(fresh(), data=x)
    refused: list[tuple[Callable[[], Any], str]] = [
        (lambda: np.sum(arr, out=np.zeros(())), "out"),
        (lambda: np.mean(arr, axis=0, out=np.zeros(4)), "out"),
        (lambda: np.min(arr, where=x > 2), "where"),  # (sum, mean, ... take it)
        (lambda: np.max(arr, initial=100.0), "initial"),
        (lambda: np.nanmax(arr, where=x > 2), "where"),
        (lambda: np.quantile(arr, 0.5, method="nearest"), "method"),
        (lambda: np.quantile(arr, 0.5, weights=np.ones_like(x), method="inverted_cdf"), "method"),
        (lambda: np.var(arr, mean=np.zeros((1, 1))), "mean"),
        (lambda: np.sum(arr, dtype=np.int8), "dtype"),
        (lambda: np.min(arr, out=np.zeros(())), "out"),
    ]
    for call, name in refused:
        with pytest.raises(InvalidArgument, match=rf"{name}=.*not supported.*'{name}'"):
            call()
    # what numpy itself refuses stays numpy's error
    with pytest.raises(np.exceptions.AxisError):
        np.sum(arr, axis=2)
    with pytest.raises(TypeError):
        np.argmin(arr, axis=(0, 1))
    with pytest.raises(TypeError, match="nope"):
        np.sum(arr, nope=1)
    np.testing.assert_array_equal(np.sum(arr, where=True), np.sum(x))  # a no-op where


def test_other_numpy_functions_say_to_read_a_region(store: arraystore.Store) -> None:
    """Any other numpy function raises a TypeError saying to read a region first;
    ``np.asarray(arr)`` / ``np.array(arr)`` and ufuncs read the array as before."""
    x = np.arange(12, dtype=np.int16).reshape(3, 4)
    arr = store.create(fresh(), data=x)
    for call in (
        lambda: np.concatenate([arr, arr]),
        lambda: np.cumsum(arr),
        lambda: np.sort(arr),
        lambda: np.where(x > 3, arr, 0),
        lambda: np.quantile(x, arr),  # the stored array in another argument
        lambda: np.allclose(arr, x),
    ):
        with pytest.raises(TypeError, match=r"read a region.*np.asarray\(arr\[\.\.\.\]\)"):
            call()
    assert (np.shape(arr), np.ndim(arr), np.size(arr), np.size(arr, 1)) == ((3, 4), 2, 12, 4)
    np.testing.assert_array_equal(np.asarray(arr), x, strict=True)
    np.testing.assert_array_equal(np.array(arr, dtype="f8"), x.astype("f8"), strict=True)
    np.testing.assert_array_equal(np.asarray(arr[1:]), x[1:], strict=True)
    np.testing.assert_array_equal(np.add(arr, 1), x + 1)
