"""``where=`` of the reductions and quantiles: numpy's ``where=`` (or numpy on the
filtered data), on both backends and ragged chunkings; masks as expressions, stored
boolean arrays and numpy arrays; one-line errors for bad masks."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import arraystore
from arraystore.errors import InvalidArgument, ShapeMismatch
from arraystore.testing import assert_same

_count = itertools.count()


def quiet(fn: Any, *args: Any, **kw: Any) -> Any:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    nd = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(0 if nd > 1 else 1, 9), min_size=nd, max_size=nd)))
    dtype = np.dtype(draw(st.sampled_from(["f8", "f4", "i4", "i8", "u2", "i1", "?"])))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype.kind == "f":
        x = rng.normal(size=shape).astype(dtype)
        x[rng.random(shape) < draw(st.sampled_from([0, 0.2]))] = np.nan
        x[rng.random(shape) < draw(st.sampled_from([0, 0.1]))] = np.inf
    elif dtype.kind == "b":
        x = rng.random(shape) < 0.5
    else:
        x = rng.integers(0, 100, size=shape).astype(dtype)
    w = rng.random(shape) < draw(st.sampled_from([0.0, 0.3, 0.9, 1.0]))
    axes = sorted(set(draw(st.lists(st.integers(0, nd - 1), max_size=nd))))
    axis: Any = None if not axes else axes[0] if len(axes) == 1 else tuple(axes)
    return {
        "x": x,
        "w": w,
        "axis": axis,
        "skipna": draw(st.booleans()),
        "backend": draw(st.sampled_from(["memmap", "zarr"])),
        "chunks": tuple(draw(st.integers(1, max(n, 1))) for n in shape),
        "memory": draw(st.sampled_from([None, 2**20 + 4096])),
        "form": draw(st.sampled_from(["array", "numpy", "expr"])),
    }


def _make(tmp_path: Path, case: dict[str, Any]) -> tuple[Any, Any, np.ndarray]:
    """The stored array, its ``where=`` and the mask it means."""
    s = arraystore.open(tmp_path / "s.store", mode="a")
    kw: dict[str, Any] = {"backend": case["backend"]}
    if case["backend"] == "zarr":
        kw["chunks"] = case["chunks"]
    name = f"x{next(_count)}"
    x, w = case["x"], case["w"]
    arr = s.create(name, data=x, **kw)
    if case["form"] == "numpy":
        return arr, w, w
    if case["form"] == "array":
        return arr, s.create(name + "m", data=w, **kw), w
    # an expression over the plain array's own name (NaN compares False)
    if x.dtype.kind == "b":
        return arr, f"~{name}", ~x
    t = 50 if x.dtype.kind in "iu" else 0.1
    return arr, f"({name} > {t}) | ({name} < 3)", quiet(lambda: (x > t) | (x < 3))


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cases())
def test_where_matches_numpy(tmp_path: Path, case: dict[str, Any]) -> None:
    x, axis, skipna = case["x"], case["axis"], case["skipna"]
    arr, where, w = _make(tmp_path, case)
    kw = {"axis": axis, "skipna": skipna, "memory": case["memory"], "where": where}
    valid = w & ~np.isnan(x) if skipna and x.dtype.kind == "f" else w
    n = np.sum(valid, axis=axis)
    f = (lambda a, b: a) if not skipna else (lambda a, b: b)
    assert_same(
        np.asarray(arr.count_nonzero(axis=axis, where=where)),
        np.asarray(np.sum((x != 0) & w, axis=axis)),
    )
    res = arr.stats(ops=("count", "sum", "mean", "var", "any", "all"), **kw)
    assert np.array_equal(res["count"], n)
    sum_fn = f(np.sum, np.nansum)
    if x.dtype.kind == "f":
        exp_sum = sum_fn(x, axis=axis, where=w, dtype=np.float64)
        np.testing.assert_allclose(res["sum"], exp_sum, rtol=1e-9, atol=1e-9)
    else:
        assert np.array_equal(res["sum"], np.sum(x, axis=axis, where=w))
    exp_mean = quiet(f(np.mean, np.nanmean), x.astype(np.float64), axis=axis, where=w)
    np.testing.assert_allclose(res["mean"], exp_mean, rtol=1e-9, atol=1e-12)
    exp_var = quiet(f(np.var, np.nanvar), x.astype(np.float64), axis=axis, where=w)
    np.testing.assert_allclose(res["var"], exp_var, rtol=1e-7, atol=1e-9)
    assert np.array_equal(res["any"], np.any(x, axis=axis, where=w))
    assert np.array_equal(res["all"], np.all(x, axis=axis, where=w))
    if x.size == 0:
        return
    for op in ("min", "max"):
        if x.dtype.kind == "f":
            init = np.inf if op == "min" else -np.inf
            fn = f(getattr(np, op), getattr(np, "nan" + op))
            exact = quiet(fn, x, axis=axis, where=w, initial=init)
            exp = np.asarray(np.where(n == 0, np.nan, exact)).astype(x.dtype)
            assert_same(np.asarray(getattr(arr, op)(**kw)), exp)
        elif (n == 0).any():
            with pytest.raises(InvalidArgument, match=rf"^{op} of .* where= selects nothing"):
                getattr(arr, op)(**kw)
        else:
            info = np.iinfo(x.dtype) if x.dtype.kind != "b" else None
            init = (info.max if op == "min" else info.min) if info else op == "min"
            exp = getattr(np, op)(x, axis=axis, where=w, initial=init)
            assert_same(np.asarray(getattr(arr, op)(**kw)), np.asarray(exp))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cases())
def test_quantiles_where_match_numpy_on_the_selection(tmp_path: Path, case: dict[str, Any]) -> None:
    x, skipna = case["x"], case["skipna"]
    if x.size == 0 or x.dtype.kind == "b":  # (numpy refuses quantiles of bools)
        return
    arr, where, w = _make(tmp_path, case)
    fn = np.nanquantile if skipna else np.quantile
    q = [0.1, 0.5]
    got = arr.quantile(q, skipna=skipna, where=where, memory="64MiB")
    sel = x[w]
    exp = quiet(fn, sel, q) if sel.size else np.full(2, np.nan)
    assert_same(np.asarray(got, dtype=np.asarray(exp).dtype), np.asarray(exp))
    got0 = arr.quantile(q, axis=0, skipna=skipna, where=where)
    exp0 = np.stack(
        [
            quiet(fn, x[(slice(None), *i)][w[(slice(None), *i)]], q)
            if w[(slice(None), *i)].any()
            else np.full(2, np.nan)
            for i in np.ndindex(*x.shape[1:])
        ],
        axis=-1,
    ).reshape((2, *x.shape[1:]))
    assert_same(got0, exp0.astype(got0.dtype))


def test_expression_where_on_records_and_plain(store: arraystore.Store) -> None:
    dt = np.dtype([("price", "f8"), ("qty", "i4"), ("v", "f4", (2,))])
    x = np.zeros(300, dt)
    rng = np.random.default_rng(2)
    x["price"] = rng.normal(100, 10, 300)
    x["qty"] = rng.integers(-5, 10, 300)
    x["v"] = rng.normal(size=(300, 2))
    recs = store.create("recs", data=x, backend="zarr", chunks=(37,))
    sel = x[(x["qty"] > 0) & (x["price"] < 105)]
    assert recs.sum(fields="qty", where="(qty > 0) & (price < 105)") == sel["qty"].sum()
    assert recs.count_nonzero(fields="qty", where="qty > 0") == np.count_nonzero(x["qty"] > 0)
    np.testing.assert_allclose(
        recs.mean(fields="v", axis=0, where="qty > 0"), x["v"][x["qty"] > 0].mean(axis=0), rtol=1e-6
    )
    rows = store.create("rows", data=x["qty"] > 3)  # one boolean per record
    assert recs.max(fields="price", where=rows) == x["price"][x["qty"] > 3].max()
    assert recs.median(fields="price", where=rows) == np.median(x["price"][x["qty"] > 3])
    counts, edges = recs.histogram(5, fields="price", where=rows)
    e_counts, e_edges = np.histogram(x["price"][x["qty"] > 3], 5)
    assert_same(counts, e_counts)
    assert_same(edges, e_edges)
    g = rng.normal(size=(40, 5))
    plain = store.create("grid", data=g)
    np.testing.assert_allclose(plain.sum(axis=0, where="grid > 0"), np.sum(g, axis=0, where=g > 0))
    np.testing.assert_allclose(
        plain.std(axis=1, where="abs(grid) < 1"), np.std(g, axis=1, where=np.abs(g) < 1)
    )


def test_all_excluded_slices(store: arraystore.Store) -> None:
    f = store.create("f", data=np.arange(12.0).reshape(3, 4))
    i = store.create("i", data=np.arange(12).reshape(3, 4))
    none = np.zeros((3, 4), bool)
    none[:, 0] = True
    assert_same(f.min(axis=0, where=none), np.array([0.0, np.nan, np.nan, np.nan]))
    assert_same(f.max(where=np.zeros((3, 4), bool)), np.float64(np.nan))
    assert_same(f.median(axis=0, where=none), np.array([4.0, np.nan, np.nan, np.nan]))
    assert np.isnan(f.mean(where=np.zeros((3, 4), bool)))
    assert f.sum(where=np.zeros((3, 4), bool)) == 0
    assert_same(np.asarray(i.count_nonzero(axis=0, where=none)), np.array([2, 0, 0, 0]))
    with pytest.raises(InvalidArgument, match=r"^max of int64 data where where= selects nothing"):
        i.max(axis=0, where=none)
    assert_same(i.max(axis=1, where=none), np.array([0, 4, 8]))


def test_bad_where_one_line_errors(store: arraystore.Store) -> None:
    x = store.create("x", data=np.arange(12.0).reshape(3, 4))
    store.create("wrong", data=np.ones((4, 3), bool))
    store.create("ints", data=np.ones((3, 4), np.int8))
    recs = store.create("recs", data=np.zeros(3, [("a", "f8"), ("b", "i4")]))
    cases: list[tuple[Any, Any, type[Exception], str]] = [
        (
            x,
            store["wrong"],
            ShapeMismatch,
            r"^where array wrong has shape \(4, 3\); x needs \(3, 4\)$",
        ),
        (x, store["ints"], InvalidArgument, r"^where array ints must be boolean, got dtype int8$"),
        (
            x,
            np.ones((3, 4)),
            InvalidArgument,
            r"^where must be a boolean array, got dtype float64$",
        ),
        (x, "x >", InvalidArgument, r"syntax"),
        (x, "y > 0", InvalidArgument, r"'y'"),
        (
            x,
            "x + 1",
            InvalidArgument,
            r"^where expression 'x \+ 1' must give booleans, got float64$",
        ),
        (x, 3, InvalidArgument, r"^where must be an expression, a boolean Array or None, got int$"),
        (recs, "c > 0", InvalidArgument, r"'c'"),
        (recs, np.ones(4, bool), ShapeMismatch, r"\(3,\) \(one per record\)$"),
    ]
    for arr, where, exc, message in cases:
        for method, args in (("sum", ()), ("stats", ()), ("quantile", (0.5,))):
            with pytest.raises(exc, match=message) as info:
                getattr(arr, method)(*args, where=where)
            assert "\n" not in str(info.value)
    with pytest.raises(InvalidArgument, match=r"^argmin/argmax take no where="):
        x.stats(ops=("argmin",), where="x > 0")


def test_numpy_where_argument_out_of_core(store: arraystore.Store) -> None:
    """``np.sum(arr, where=mask)`` (mean, var, std, any, all): a bool array (broadcast as
    numpy does) or a stored boolean Array; min/max keep refusing it (numpy needs
    ``initial=`` there, which is not offered)."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(50, 4))
    arr = store.create("x", data=x, backend="zarr", chunks=(7, 3))
    w = x > -0.3
    m = store.create("m", data=w)
    np.testing.assert_allclose(np.sum(arr, where=w), np.sum(x, where=w), rtol=1e-12)
    np.testing.assert_allclose(np.mean(arr, axis=0, where=m), np.mean(x, axis=0, where=w))
    row = np.array([True, False, True, True])  # broadcast along axis 0
    np.testing.assert_allclose(
        np.std(arr, axis=1, ddof=1, where=row), np.std(x, axis=1, ddof=1, where=row), rtol=1e-12
    )
    assert_same(np.any(arr, axis=0, where=row), np.any(x, axis=0, where=row))
    np.testing.assert_allclose(quiet(np.nanvar, arr, where=m), np.nanvar(x, where=w), rtol=1e-12)
    with pytest.raises(InvalidArgument, match=r"^np\.min\(arr, where=\.\.\.\) is not supported"):
        np.min(arr, where=w)
    with pytest.raises(ValueError):  # numpy's own broadcasting error
        np.sum(arr, where=np.ones((3, 3), bool))
