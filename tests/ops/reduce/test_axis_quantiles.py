"""Exact quantiles along axes (``Array.quantile(q, axis=...)``, ``np.quantile(arr, ...)``)
vs numpy, bit for bit, on both backends and ragged chunkings, in small memory budgets
(groups of a few positions, pieces of a few rows, the per-position fallback)."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import arraystore
from arraystore.errors import InvalidArgument, MemoryBudgetError
from arraystore.ops.reduce import axis_quantiles
from arraystore.testing import assert_same

_count = itertools.count()


def quiet(fn: Any, *args: Any, **kw: Any) -> Any:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    nd = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 7), min_size=nd, max_size=nd)))
    dtype = np.dtype(draw(st.sampled_from(["f8", "f4", "i4", "u1", "i8"])))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if dtype.kind == "f":
        x = rng.normal(size=shape).astype(dtype)
        x[rng.random(shape) < draw(st.sampled_from([0, 0.1, 0.5]))] = np.nan
        if draw(st.booleans()):
            x = np.round(x, 1)  # ties
    else:
        info = np.iinfo(dtype)
        lo, hi = max(info.min, -50), min(info.max, 50)
        x = rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)
    axes = draw(st.lists(st.integers(-nd, nd - 1), min_size=1, max_size=nd, unique=True))
    if len({a % nd for a in axes}) != len(axes):
        axes = axes[:1]
    axis: Any = axes[0] if len(axes) == 1 and draw(st.booleans()) else tuple(axes)
    q: Any = draw(
        st.one_of(
            st.sampled_from([0.0, 0.5, 1.0, 0.3]),
            st.lists(st.floats(0, 1), min_size=1, max_size=3),
        )
    )
    return {
        "x": x,
        "axis": axis,
        "q": q,
        "skipna": draw(st.booleans()),
        "chunks": tuple(draw(st.integers(1, n)) for n in shape),
        "backend": draw(st.sampled_from(["memmap", "zarr"])),
        "piece": draw(st.sampled_from([1, 40, 10**6])),
        "room": draw(st.integers(1, 400)),
        "median": draw(st.booleans()),
    }


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cases())
def test_axis_quantiles_equal_numpy(tmp_path: Path, case: dict[str, Any]) -> None:
    x = case["x"]
    s = arraystore.open(tmp_path / "s.store", mode="a")
    name = f"a{next(_count)}"
    kw: dict[str, Any] = {"backend": case["backend"]}
    if case["backend"] == "zarr":
        kw["chunks"] = case["chunks"]
    arr = s.create(name, data=x, **kw)
    fn = np.nanquantile if case["skipna"] else np.quantile
    expected = quiet(fn, x, case["q"], axis=case["axis"], method="linear")
    axes = case["axis"] if isinstance(case["axis"], tuple) else (case["axis"],)
    whole = len(axes) == x.ndim  # the whole-array selection, in its own budget
    if case["median"]:  # along axes numpy's median (the mean of the middle two); over
        # the whole array quantile(0.5), exactly rounded (issue 15)
        fn = np.nanmedian if case["skipna"] else np.median
        expected = (
            quiet(fn, x, axis=case["axis"])
            if not whole
            else np.asarray(
                quiet(np.nanquantile if case["skipna"] else np.quantile, x, 0.5, axis=case["axis"])
            )
        )
    piece = case["piece"]
    # a budget just above the two pieces: groups of a few positions, or one position
    # too big for it (the per-position selection)
    band = case["chunks"][0] * x[0].nbytes  # zarr reads chunk rows (memmap: pieces)
    reserve = 2 * (band if case["backend"] == "zarr" else piece)
    memory = "64MiB" if whole else reserve + case["room"]
    with mock.patch.object(axis_quantiles, "PIECE", piece):
        if case["median"]:
            got = arr.median(axis=case["axis"], skipna=case["skipna"], memory=memory)
        else:
            got = arr.quantile(case["q"], axis=case["axis"], skipna=case["skipna"], memory=memory)
    if np.ndim(expected) == 0:
        assert np.ndim(got) == 0
        got, expected = np.asarray(got), np.asarray(expected)
    assert_same(got, expected)


def test_numpy_dispatch_and_median_shapes(store: arraystore.Store) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 4, 3))
    x[7, 1, 2] = np.nan
    arr = store.create("x", data=x, backend="zarr", chunks=(9, 3, 2))
    for axis in (0, 1, 2, (0, 1), (0, 2), (1, 2), (0, 1, 2), -1):
        assert_same(np.median(arr, axis=axis), np.median(x, axis=axis))
        assert_same(quiet(np.nanmedian, arr, axis=axis), quiet(np.nanmedian, x, axis=axis))
        assert_same(np.quantile(arr, [0.1, 0.7], axis=axis), np.quantile(x, [0.1, 0.7], axis=axis))
    assert_same(
        np.percentile(arr, 30, axis=0, keepdims=True), np.percentile(x, 30, axis=0, keepdims=True)
    )
    assert_same(arr.median(axis=1, skipna=True), quiet(np.nanmedian, x, axis=1))


def test_subarray_field_along_axis(store: arraystore.Store) -> None:
    dt = np.dtype([("a", "f8"), ("v", "f4", (3,))])
    x = np.zeros((30, 2), dt)
    rng = np.random.default_rng(1)
    x["a"] = rng.normal(size=(30, 2))
    x["v"] = rng.normal(size=(30, 2, 3))
    arr = store.create("r", data=x)
    res = arr.quantile([0.25, 0.5], axis=0, memory="64MiB")
    assert_same(res["a"], np.quantile(x["a"], [0.25, 0.5], axis=0))
    assert_same(res["v"], np.quantile(x["v"], [0.25, 0.5], axis=0))
    assert_same(arr.quantile(0.5, fields="v", axis=(0, 1)), np.quantile(x["v"], 0.5, axis=(0, 1)))


def test_errors(store: arraystore.Store) -> None:
    arr = store.create("x", data=np.arange(12.0).reshape(3, 4))
    with pytest.raises(
        InvalidArgument, match=r"^axis 2 is out of bounds for array of dimension 2$"
    ):
        arr.quantile(0.5, axis=2)
    with pytest.raises(InvalidArgument, match=r"^duplicate value in axis"):
        arr.quantile(0.5, axis=(0, 0))
    b = store.create("b", data=np.zeros((3, 4), bool))
    with pytest.raises(InvalidArgument, match="bool"):
        b.quantile(0.5, axis=0)
    z = store.create("z", data=np.zeros((1000, 4)), backend="zarr", chunks=(1000, 4))
    with pytest.raises(MemoryBudgetError, match=r"^quantiles along axis 0 read chunk rows of"):
        z.quantile(0.5, axis=0, memory="40KiB")
    e = store.create("e", data=np.zeros((0, 4)))
    with pytest.raises(InvalidArgument, match="empty"):
        e.quantile(0.5, axis=0)
    assert_same(e.quantile(0.5, axis=1), np.quantile(np.zeros((0, 4)), 0.5, axis=1))
