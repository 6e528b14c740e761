"""Reduction kernels: partial states over random chunkings, merged in C order, vs numpy."""

from __future__ import annotations

import contextlib
import itertools
import math
import pickle
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from arraystore.errors import ArrayStoreError, InvalidArgument
from arraystore.ops.reduce import kernels as K
from arraystore.ops.reduce.kernels import leaf as kernels_leaf

ALL = set(K.OPS)
DTYPES = ["?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"]


# ----------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def leaf_bytes(n: int | None) -> Iterator[None]:
    """Shrink the kernels' leaf size so tiny arrays exercise the multi-leaf paths."""
    old = kernels_leaf.LEAF_BYTES
    kernels_leaf.LEAF_BYTES = old if n is None else n
    try:
        yield
    finally:
        kernels_leaf.LEAF_BYTES = old


def grid_regions(shape: tuple[int, ...], cuts: list[list[int]]) -> list[tuple[slice, ...]]:
    """Regions of a chunk grid (cut points per axis), in C order."""
    per_axis = []
    for n, c in zip(shape, cuts, strict=True):
        pts = [0, *sorted({x for x in c if 0 < x < n}), n]
        per_axis.append([slice(a, b) for a, b in itertools.pairwise(pts) if b > a])
    return [tuple(r) for r in itertools.product(*per_axis)]


def reduce_chunked(
    a: np.ndarray,
    nd: int,
    axis: Any,
    ops: set[str],
    cuts: list[list[int]],
    skipna: bool,
    contiguous: bool = True,
) -> K.Partial:
    """Fold the partials of a chunk grid; contiguous blocks take the 2-d (tiled and fast)
    paths, strided views of ``a`` the N-d leaf path."""
    shape = a.shape[:nd]
    regions = grid_regions(shape, cuts)
    get = (lambda r: np.ascontiguousarray(a[r])) if contiguous else (lambda r: a[r])
    return K.fold(((get(r), r) for r in regions), shape, axis, ops, a.dtype, skipna, a.shape[nd:])


def quiet(fn: Any, *args: Any, **kw: Any) -> Any:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


def elements(dtype: np.dtype) -> st.SearchStrategy[Any]:
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return st.one_of(
            st.integers(max(-5, int(info.min)), min(5, int(info.max))),
            st.sampled_from([info.min, info.max, info.min + 1, info.max - 1]),
            st.integers(info.min, info.max),
        )
    width = 16 if dtype.itemsize == 2 else 32 if dtype in (np.float32, np.complex64) else 64
    fw = min(width, 64) if dtype.kind == "f" else width // 2
    big = 1e150 if fw == 64 else None  # float64: avoid overflow of numpy's own sums
    real = st.one_of(
        st.floats(-100, 100, width=fw),
        st.floats(-big if big else None, big, width=fw, allow_nan=False, allow_infinity=False),
        st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0]),
    )
    if dtype.kind == "c":
        return st.builds(complex, real, real)
    return real


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    nd = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=nd, max_size=nd)))
    trailing = draw(st.sampled_from([(), (), (), (2,)]))
    a = draw(hnp.arrays(dtype, shape + trailing, elements=elements(dtype)))
    cuts = [draw(st.lists(st.integers(1, max(n - 1, 1)), max_size=3)) for n in shape]
    axes: list[Any] = [None, *range(nd), *range(-nd, 0)]
    axes += [c for r in range(nd + 1) for c in itertools.combinations(range(nd), r)]
    axis = draw(st.sampled_from(axes))
    skipna = draw(st.booleans())
    ddof = draw(st.sampled_from([0, 1]))
    leaf = draw(st.sampled_from([None, 8, 64, 512]))
    contiguous = draw(st.booleans())
    return dict(
        a=a, nd=nd, cuts=cuts, axis=axis, skipna=skipna, ddof=ddof, leaf=leaf, contiguous=contiguous
    )


def ops_for(dtype: np.dtype, axis: Any) -> set[str]:
    ops = set(ALL)
    if dtype.kind == "c":
        ops -= {"min", "max", "argmin", "argmax"}
    if isinstance(axis, tuple):
        ops -= {"argmin", "argmax"}
    return ops


def exact_sum(a: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
    return np.asarray(a.astype(object).sum(axis=axis), dtype=object)


def assert_close(got: Any, ref: Any, atol: Any = 0.0, rtol: float = 1e-12) -> None:
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape
    if got.dtype.kind == "c" or ref.dtype.kind == "c":
        assert_close(got.real, ref.real, atol, rtol)
        assert_close(got.imag, ref.imag, atol, rtol)
        return
    assert np.array_equal(np.isnan(got), np.isnan(ref)), (got, ref)
    with np.errstate(invalid="ignore"):
        ok = (got == ref) | (np.abs(got - ref) <= atol + rtol * np.abs(ref))
    assert (ok | np.isnan(ref)).all(), (got, ref, atol)


def check_against_numpy(c: dict[str, Any], res: dict[str, Any], err: Exception | None) -> None:
    a, nd, axis, skipna, ddof = c["a"], c["nd"], c["axis"], c["skipna"], c["ddof"]
    dt = a.dtype
    red = tuple(range(nd)) if axis is None else (axis,) if isinstance(axis, int) else axis
    red = tuple(sorted(r % nd for r in red))
    nan_ok = skipna and dt.kind in "fc"
    mask = np.isnan(a) if dt.kind in "fc" else np.zeros(a.shape, bool)
    acc = np.complex128 if dt.kind == "c" else np.float64
    a64 = a.astype(acc)
    # expected errors: min/max/arg over zero elements, nanarg of all-NaN slices
    r_total = int(np.prod([a.shape[i] for i in red]))
    if err is not None:
        assert isinstance(err, InvalidArgument)
        msg = str(err)
        assert r_total == 0 or "All-NaN" in msg, msg
        return
    if "min" in res:
        assert r_total > 0
    count = (~mask).sum(axis=red) if nan_ok else np.full(res["count"].shape, r_total)
    np.testing.assert_array_equal(res["count"], count)
    np.testing.assert_array_equal(res["nan_count"], mask.sum(axis=red))
    np.testing.assert_array_equal(res["count_nonzero"], np.count_nonzero(a, axis=red))
    np.testing.assert_array_equal(res["any"], np.any(a, axis=red))
    np.testing.assert_array_equal(res["all"], np.all(a, axis=red))
    scale = np.abs(np.where(mask, 0, a64)) if dt.kind in "fc" else np.abs(a64)
    if dt.kind in "biu":
        s = exact_sum(a, red)
        raw = res["sum"]
        got = np.asarray(raw, dtype=object) if isinstance(raw, int) else np.asarray(raw)
        assert got.dtype in (np.int64, np.uint64, object)
        assert got.dtype == (np.uint64 if dt.kind == "u" else np.int64) or got.dtype == object
        assert [int(v) for v in got.ravel()] == [int(v) for v in s.ravel()]
        n = np.maximum(np.asarray(count), 1)
        mean = np.array(
            [
                x / int(m)
                for x, m in zip(s.ravel(), np.broadcast_to(n, s.shape).ravel(), strict=True)
            ]
        ).reshape(s.shape)
        mean = np.where(np.asarray(count) == 0, np.nan, mean)
        assert_close(res["mean"], mean)
        tol = 1e-12 * (np.max(scale, initial=1.0) ** 2)
        assert_close(res["var"], quiet(np.var, a64, axis=red, ddof=ddof), atol=tol)
    else:
        fsum, fmean, fvar = (
            (np.nansum, np.nanmean, np.nanvar) if nan_ok else (np.sum, np.mean, np.var)
        )
        assert np.asarray(res["sum"]).dtype == acc
        ssum = np.sum(scale, axis=red)
        assert_close(res["sum"], quiet(fsum, a64, axis=red), atol=1e-12 * ssum)
        n = np.maximum(np.asarray(count), 1)
        assert_close(res["mean"], quiet(fmean, a64, axis=red), atol=1e-12 * ssum / n)
        tol = 1e-11 * np.max(scale, initial=1.0) ** 2
        assert_close(res["var"], quiet(fvar, a64, axis=red, ddof=ddof), atol=tol)
        assert_close(
            res["std"],
            np.sqrt(np.asarray(quiet(fvar, a64, axis=red, ddof=ddof))),
            atol=np.sqrt(tol),
        )
    assert np.asarray(res["var"]).dtype == np.float64
    if "min" in res:
        fmin, fmax = (np.nanmin, np.nanmax) if nan_ok else (np.min, np.max)
        np.testing.assert_array_equal(res["min"], quiet(fmin, a, axis=red))
        np.testing.assert_array_equal(res["max"], quiet(fmax, a, axis=red))
        assert np.asarray(res["min"]).dtype == dt
    if "argmin" in res:
        fam, fax = (np.nanargmin, np.nanargmax) if nan_ok else (np.argmin, np.argmax)
        if a.ndim == nd:
            ax = None if axis is None else axis
            np.testing.assert_array_equal(res["argmin"], quiet(fam, a, axis=ax))
            np.testing.assert_array_equal(res["argmax"], quiet(fax, a, axis=ax))
        else:  # subarray field: one numpy call per trailing cell
            for t in range(a.shape[-1]):
                ax = None if axis is None else axis % nd
                want = quiet(fam, a[..., t], axis=ax)
                np.testing.assert_array_equal(np.asarray(res["argmin"])[..., t], want)


def run_case(c: dict[str, Any]) -> tuple[dict[str, Any], Exception | None]:
    ops = ops_for(c["a"].dtype, c["axis"])
    with leaf_bytes(c["leaf"]):
        p = reduce_chunked(c["a"], c["nd"], c["axis"], ops, c["cuts"], c["skipna"], c["contiguous"])
    try:
        return K.finalize(p, ddof=c["ddof"]), None
    except InvalidArgument as e:
        lean = ops - {"min", "max", "argmin", "argmax"}
        return K.finalize(p, lean, ddof=c["ddof"]), e


# ------------------------------------------------------------------------------- tests
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_matches_numpy(c: dict[str, Any]) -> None:
    res, err = run_case(c)
    check_against_numpy(c, res, err)


@settings(max_examples=60, deadline=None)
@given(cases(), st.data())
def test_chunking_does_not_change_exact_results(c: dict[str, Any], data: st.DataObject) -> None:
    a, nd = c["a"], c["nd"]
    other = [data.draw(st.lists(st.integers(1, max(n - 1, 1)), max_size=3)) for n in a.shape[:nd]]
    r1, e1 = run_case(c)
    r2, e2 = run_case({**c, "cuts": other, "leaf": 16, "contiguous": not c["contiguous"]})
    assert type(e1) is type(e2)
    for op in (
        "count",
        "nan_count",
        "sum",
        "min",
        "max",
        "argmin",
        "argmax",
        "any",
        "all",
        "count_nonzero",
    ):
        if op in r1 and (op != "sum" or a.dtype.kind in "biu"):
            assert np.array_equal(
                np.asarray(r1[op]), np.asarray(r2[op]), equal_nan=a.dtype.kind == "f"
            )


def test_threads_then_ordered_merge_equals_serial() -> None:
    rng = np.random.default_rng(5)
    a = rng.standard_normal((301, 17)) * 1e3
    a[rng.random(a.shape) < 0.01] = np.nan
    regions = grid_regions(a.shape, [[50, 100, 170, 260], [5, 11]])
    for axis in (None, 0, 1):
        with ThreadPoolExecutor(2) as ex:
            parts = list(
                ex.map(lambda r, ax=axis: K.partial(a[r], r, a.shape, ax, ALL, True), regions)
            )
        acc = K.init(a.shape, axis, ALL, a.dtype, True)
        for p in parts:
            acc = K.merge(acc, p)
        serial = K.fold(((a[r], r) for r in regions), a.shape, axis, ALL, a.dtype, True)
        r1, r2 = K.finalize(acc, ddof=1), K.finalize(serial, ddof=1)
        for op in r1:
            assert np.array_equal(np.asarray(r1[op]), np.asarray(r2[op]), equal_nan=True), op


@pytest.mark.parametrize("dtype", ["f8", "f4", "f2", "i8", "i2", "u8", "?", "i8big", "u8big"])
@pytest.mark.parametrize("axis", [None, 0, (0,), -1])
@pytest.mark.parametrize("skipna", [False, True])
def test_fast_paths_many_leaves(dtype: str, axis: Any, skipna: bool) -> None:
    """Contiguous blocks, many leaves (+ a tail), NaN in some blocks, exact int sums."""
    rng = np.random.default_rng(1)
    shape = (1031, 24)
    if dtype[0] == "f":
        a = (rng.standard_normal(shape) * 10 + 1e4).astype(dtype)
        a[:400][rng.random((400, 24)) < 0.002] = np.nan  # only the first chunk row
    elif dtype.endswith("big"):  # partial sums overflow 64 bits: exact Python ints
        info = np.iinfo(dtype[:2])
        a = rng.integers(info.max // 2, info.max, shape, dtype=dtype[:2], endpoint=True)
    elif dtype == "?":
        a = rng.random(shape) < 0.3
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    ops = {"count", "nan_count", "sum", "mean", "var", "std", "min", "max"}
    regions = grid_regions(shape, [[400, 401], [7]])
    red = (0, 1) if axis is None else (axis,) if isinstance(axis, int) else axis
    for leaf in (2048, None):
        with leaf_bytes(leaf):
            pairs = ((np.ascontiguousarray(a[r]), r) for r in regions)
            res = K.finalize(K.fold(pairs, shape, axis, ops, a.dtype, skipna), ddof=1)
        a64 = a.astype(np.float64)
        fsum, fvar, fmin = (np.nansum, np.nanvar, np.nanmin) if skipna else (np.sum, np.var, np.min)
        if a.dtype.kind == "f":
            assert_close(res["sum"], fsum(a64, axis=axis), rtol=1e-13)
            np.testing.assert_array_equal(res["nan_count"], np.isnan(a).sum(axis=red))
        else:
            want = np.asarray(a.astype(object).sum(axis=red))
            got = res["sum"]
            got = np.asarray(got, dtype=object) if isinstance(got, int) else np.asarray(got)
            assert [int(x) for x in got.ravel()] == [int(x) for x in want.ravel()]
        scale = 1e-12 * np.max(np.abs(np.nan_to_num(a64))) ** 2
        assert_close(res["var"], fvar(a64, axis=axis, ddof=1), rtol=1e-10, atol=scale)
        np.testing.assert_array_equal(res["min"], fmin(a, axis=axis))


def test_subarray_field_trailing_dims() -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(-50, 50, size=(13, 6, 3)).astype(np.float32)
    ops = {"sum", "mean", "min", "argmin", "argmax", "count"}
    for axis in (None, 0, 1, -1):
        regions = grid_regions((13, 6), [[4, 9], [2]])
        p = K.fold(((a[r], r) for r in regions), (13, 6), axis, ops, a.dtype, False, (3,))
        res = K.finalize(p)
        red = (0, 1) if axis is None else (axis % 2,)
        assert_close(res["sum"], a.astype(np.float64).sum(axis=red))
        np.testing.assert_array_equal(res["min"], a.min(axis=red))
        assert np.asarray(res["sum"]).shape == a.sum(axis=red).shape
        for t in range(3):
            want = np.argmin(a[..., t], axis=None if axis is None else axis % 2)
            np.testing.assert_array_equal(np.asarray(res["argmin"])[..., t], want)


def test_int64_overflow_is_exact() -> None:
    big = np.iinfo(np.int64).max
    a = np.array([[big, big], [big, -3], [5, big]], dtype=np.int64)
    regions = grid_regions(a.shape, [[1, 2], [1]])
    p = K.fold(((a[r], r) for r in regions), a.shape, None, {"sum", "mean"}, a.dtype)
    res = K.finalize(p)
    assert res["sum"] == 4 * big + 2 and isinstance(res["sum"], int)
    assert res["mean"] == (4 * big + 2) / 6
    p = K.fold(((a[r], r) for r in regions), a.shape, 0, {"sum"}, a.dtype)
    got = K.finalize(p)["sum"]
    assert [int(v) for v in got] == [2 * big + 5, 2 * big - 3]
    u = np.full((5, 3), np.iinfo(np.uint64).max, dtype=np.uint64)
    res = K.finalize(K.partial(u, (slice(0, 5), slice(0, 3)), u.shape, 0, {"sum"}))
    assert [int(v) for v in res["sum"]] == [5 * (2**64 - 1)] * 3
    # fits again after cancelling: back to int64
    a = np.array([big, big, -big, -big], dtype=np.int64)
    p = K.fold(
        ((a[r], r) for r in grid_regions(a.shape, [[1, 2, 3]])), a.shape, None, {"sum"}, "i8"
    )
    s = K.finalize(p)["sum"]
    assert s == 0 and isinstance(s, np.int64)


def test_nan_and_empty_rules() -> None:
    a = np.array([[np.nan, 1.0], [np.nan, np.nan]])
    p = K.partial(a, (slice(0, 2), slice(0, 2)), a.shape, 0, ALL, skipna=True)
    with pytest.raises(InvalidArgument, match="All-NaN"):
        K.finalize(p)
    res = K.finalize(p, ops={"mean", "min", "max", "var", "count", "nan_count"})
    np.testing.assert_array_equal(res["mean"], [np.nan, 1.0])
    np.testing.assert_array_equal(res["min"], [np.nan, 1.0])
    np.testing.assert_array_equal(res["count"], [0, 1])
    np.testing.assert_array_equal(res["nan_count"], [2, 1])
    np.testing.assert_array_equal(res["var"], [np.nan, 0.0])
    nan_inf = K.partial(np.array([np.nan, np.inf]), (slice(0, 2),), (2,), None, {"argmin"}, True)
    assert K.finalize(nan_inf)["argmin"] == 0  # numpy's rule: NaN counts as +inf
    empty = K.init((0, 3), 0, ALL, "f8")
    res = K.finalize(empty, ops={"mean", "sum", "count", "var", "any", "all"})
    assert np.isnan(res["mean"]).all() and (res["sum"] == 0).all() and res["all"].all()
    with pytest.raises(InvalidArgument, match="zero-size array"):
        K.finalize(empty, ops={"min"})
    with pytest.raises(InvalidArgument, match="empty sequence"):
        K.finalize(empty, ops={"argmax"})
    assert K.finalize(K.init((3, 0), 0, ALL, "i2"), ops={"min"})["min"].shape == (0,)


def test_validation_errors() -> None:
    a = np.zeros((4, 5))
    r = (slice(0, 4), slice(0, 5))
    with pytest.raises(InvalidArgument, match="out of bounds"):
        K.partial(a, r, a.shape, 2, {"sum"})
    with pytest.raises(InvalidArgument, match="duplicate"):
        K.partial(a, r, a.shape, (0, -2), {"sum"})
    with pytest.raises(InvalidArgument, match="argmin"):
        K.partial(a, r, a.shape, (0,), {"argmin"})
    with pytest.raises(InvalidArgument, match="complex"):
        K.partial(a.astype("c16"), r, a.shape, 0, {"max"})
    with pytest.raises(InvalidArgument, match="unknown"):
        K.partial(a, r, a.shape, 0, {"median"})
    with pytest.raises(InvalidArgument, match="region"):
        K.partial(a, (slice(0, 3), slice(0, 5)), a.shape, 0, {"sum"})
    with pytest.raises(InvalidArgument, match="axis"):
        K.partial(a, r, a.shape, 1.0, {"sum"})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        K.partial(np.zeros(3, dtype="U2"), (slice(0, 3),), (3,), None, {"sum"})
    p1 = K.partial(a, r, a.shape, 0, {"sum"})
    with pytest.raises(InvalidArgument, match="different"):
        K.merge(p1, K.partial(a, r, a.shape, 1, {"sum"}))
    half = K.partial(a[:2], (slice(0, 2), slice(0, 5)), a.shape, 0, {"sum"})
    with pytest.raises(ArrayStoreError, match="missing or repeated"):
        K.finalize(half)
    with pytest.raises(ArrayStoreError, match="missing or repeated"):
        K.finalize(K.merge(p1, p1))


def test_scalars_dtypes_and_pickle() -> None:
    a = np.arange(24, dtype=np.int8).reshape(2, 3, 4)
    p = K.partial(a, (slice(0, 2), slice(0, 3), slice(0, 4)), a.shape, None, ALL)
    p = pickle.loads(pickle.dumps(p))
    res = K.finalize(p, ddof=1)
    assert isinstance(res["sum"], np.int64) and res["sum"] == a.sum()
    assert isinstance(res["min"], np.int8)
    assert isinstance(res["argmax"], np.int64) and res["argmax"] == 23
    assert isinstance(res["any"], np.bool_)
    assert res["var"] == np.var(a, ddof=1)
    b = np.array([True, False, True])
    res = K.finalize(K.partial(b, (slice(0, 3),), (3,), None, ALL - {"argmin", "argmax"}))
    assert res["sum"] == 2 and res["sum"].dtype == np.int64 and res["max"] == np.True_
    assert res["var"] == np.var(b)
    z = np.array(5.0)  # 0-d array: reduces nothing
    res = K.finalize(K.partial(z, (), (), None, {"sum", "argmin", "min"}))
    assert res == {"argmin": 0, "min": 5.0, "sum": 5.0}


# ------------------------------------------------- variance vs exact rationals (issue 15)
def exact_var(x: np.ndarray, red: tuple[int, ...], ddof: int) -> np.ndarray:
    """The exact variance (Fractions) of the values of ``x`` (floats: as float64, ints:
    as Python ints) over axes ``red``."""
    exact = int if x.dtype.kind in "iub" else float
    moved = np.moveaxis(x.astype(object if exact is int else np.float64), red, range(len(red)))
    flat = moved.reshape(-1, *moved.shape[len(red) :])
    out = np.empty(flat.shape[1:], dtype=object)
    for idx in np.ndindex(*out.shape):
        vals = [Fraction(exact(v)) for v in flat[(slice(None), *idx)]]
        n = len(vals)
        m = sum(vals, Fraction(0)) / n
        out[idx] = sum(((v - m) ** 2 for v in vals), Fraction(0)) / (n - ddof)
    return out


def check_exact_var(got: Any, want: np.ndarray, std: bool = False, rtol: float = 1e-12) -> None:
    """``got`` (var, or std when ``std``) within ``rtol`` of the exact variance ``want``
    (or, below float64's normal range, within 16 subnormal steps: subnormals have fewer
    digits, ``[0, 5e-319]`` has the variance 6e-638 and float64 says 0); a zero variance
    (constant data) must come out 0 or below 1e-300."""
    g = np.asarray(got, dtype=np.float64)
    assert g.shape == want.shape
    for idx in np.ndindex(*want.shape):
        w, v = want[idx], float(g[idx])
        if w == 0:
            assert 0 <= v < 1e-300, (idx, v)
            continue
        if abs(Fraction(v) ** (2 if std else 1) - w) <= 16 * Fraction(2) ** -1074:
            continue  # subnormal (or below): as exact as float64 gets
        ref = Fraction(math.sqrt(w)) if std else w  # sqrt of the exact variance (rounded)
        err = abs(Fraction(v) - ref) / ref
        assert err <= rtol, (idx, v, float(ref), float(err))


@st.composite
def offset_data(draw: st.DrawFn, max_side: int = 9) -> np.ndarray:
    """Unit-scale values on a large offset (up to ±1e12), float64 or float32, 1-d or 2-d."""
    dtype = draw(st.sampled_from(["f8", "f4"]))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=max_side))
    offset = draw(
        st.one_of(
            st.sampled_from([0.0, 1e9, -1e9, 1e12, -1e12, 2.0**39, 123456.789]),
            st.floats(-1e12, 1e12),
        )
    )
    scale = draw(st.sampled_from([1.0, 1e-3, 1e3]))
    noise = draw(hnp.arrays(np.float64, shape, elements=st.floats(-4, 4)))
    return (offset + scale * noise).astype(dtype)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(offset_data(), st.data())
def test_var_of_offset_data_is_exact_to_1e12_for_every_chunking(
    x: np.ndarray, data: st.DataObject
) -> None:
    """Offsets up to ±1e12, any chunk grid (chunks of 1, ragged ones), every kernel path
    (tiny leaves force the multi-leaf fast paths; strided blocks the N-d leaf path):
    var/std within 1e-12 of the exact variance. The merge used to take each state's mean
    as ``sum / n``, rounded to the ulp of the offset (1.2e-4 at 1e12): 1e-5 errors."""
    cuts = [data.draw(st.lists(st.integers(1, max(1, n - 1)), max_size=n)) for n in x.shape]
    axis = data.draw(st.sampled_from([None, 0, -1, (0,)]))
    red = tuple(range(x.ndim)) if axis is None else (0,) if axis in (0, (0,)) else (x.ndim - 1,)
    leaf = data.draw(st.sampled_from([None, 64, 256]))
    contiguous = data.draw(st.booleans())
    with leaf_bytes(leaf):
        p = reduce_chunked(x, x.ndim, axis, {"var", "std", "mean"}, cuts, False, contiguous)
    for ddof in (0, 1):
        if math.prod(x.shape[a] for a in red) <= ddof:
            continue
        res = K.finalize(p, ddof=ddof)
        want = exact_var(x, red, ddof)
        check_exact_var(res["var"], want)
        check_exact_var(res["std"], want, std=True)


FLOAT_MAX = Fraction(np.finfo(np.float64).max)
HUGE = [1.7e308, -1.7e308, 1e308, -1e308, float(np.finfo(np.float64).max), 2.0**1000, 1e300]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_var_of_finite_data_near_the_float_maximum(data: st.DataObject) -> None:
    """Q2: ``var([1e308, 1e308])`` was NaN (each leaf's ``sum / n`` overflowed to inf, then
    ``inf - inf``) and ``var([1e308, -1e308])`` with chunks of 1 was NaN (the merge's
    difference of means overflowed). Finite input never gives NaN: the exact variance
    when float64 holds it (0 for equal values), else inf; any chunking and kernel path."""
    base = data.draw(st.sampled_from(HUGE))
    others = st.sampled_from([base, -base, np.nextafter(base, 0), 0.0, 1.0, *HUGE])
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=9))
    equal = data.draw(st.booleans())
    x = data.draw(hnp.arrays(np.float64, shape, elements=st.just(base) if equal else others))
    cuts = [data.draw(st.lists(st.integers(1, max(1, n - 1)), max_size=n)) for n in x.shape]
    axis = data.draw(st.sampled_from([None, 0, -1]))
    red = tuple(range(x.ndim)) if axis is None else (axis % x.ndim,)
    with leaf_bytes(data.draw(st.sampled_from([None, 16, 64]))):
        p = reduce_chunked(
            x, x.ndim, axis, {"var", "std", "mean"}, cuts, False, data.draw(st.booleans())
        )
    for ddof in (0, 1):
        if math.prod(x.shape[a] for a in red) <= ddof:
            continue
        res = K.finalize(p, ddof=ddof)
        want = exact_var(x, red, ddof)
        var, std = np.asarray(res["var"]), np.asarray(res["std"])
        assert not np.isnan(var).any() and not np.isnan(std).any()
        over = np.vectorize(lambda w: w > FLOAT_MAX, otypes=[bool])(want)
        assert (var[over] == np.inf).all() and (std[over] == np.inf).all()
        fits = np.where(over, Fraction(0), want)
        check_exact_var(np.where(over, 0.0, var), fits)
        check_exact_var(np.where(over, 0.0, std), fits, std=True)


@pytest.mark.parametrize("offset", [1e9, 1e12, -1e12])
def test_var_of_offset_data_pieces_of_a_running_state(offset: float) -> None:
    """The numba running state (memmap pieces) exports its mean exactly (pivot + small
    running mean): merging several such task states keeps every digit."""
    x = offset + np.random.default_rng(5).standard_normal((997, 3))
    cuts = [[1, 2, 50, 51, 300, 777], []]
    for axis in (None, 0):
        p = reduce_chunked(x, 2, axis, {"var"}, cuts, False)
        red = (0, 1) if axis is None else (0,)
        check_exact_var(K.finalize(p)["var"], exact_var(x, red, 0))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_var_of_big_64bit_ints_is_exact_to_1e12(data: st.DataObject) -> None:
    """int64/uint64 near their extremes (ns timestamps are ~1.7e18): ``float(x)`` rounds
    each value by up to 1024, so deviations are taken in integers first."""
    dtype = np.dtype(data.draw(st.sampled_from(["i8", "u8"])))
    info = np.iinfo(dtype)
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=8))
    base = data.draw(st.integers(int(info.min), int(info.max)))
    spread = data.draw(st.sampled_from([1, 1000, 10**9, 2**40]))
    lo, hi = max(int(info.min), base - spread), min(int(info.max), base + spread)
    x = data.draw(hnp.arrays(dtype, shape, elements=st.integers(lo, hi)))
    cuts = [data.draw(st.lists(st.integers(1, max(1, n - 1)), max_size=n)) for n in shape]
    axis = data.draw(st.sampled_from([None, 0, -1]))
    red = tuple(range(x.ndim)) if axis is None else (axis % x.ndim,)
    with leaf_bytes(data.draw(st.sampled_from([None, 64]))):
        p = reduce_chunked(x, x.ndim, axis, {"var", "sum"}, cuts, False, data.draw(st.booleans()))
    check_exact_var(K.finalize(p)["var"], exact_var(x, red, 0))
