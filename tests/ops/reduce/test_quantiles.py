"""Exact quantiles and histograms over re-readable block sources vs numpy, bit for bit."""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from arraystore.errors import InvalidArgument
from arraystore.ops.reduce import quantiles
from arraystore.ops.reduce.quantiles import MAX_BINS, exact_quantiles, histogram

#: numpy's private histogram module: only to size numpy's bins without making them
np_hist: Any = importlib.import_module(
    "numpy.lib._histograms_impl"
    if np.lib.NumpyVersion(np.__version__) >= "2.0.0"
    else "numpy.lib.histograms"
)

REALS = ["f8", "f4", "f2", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8"]


class Source:
    """A re-readable block source that records how often it is read."""

    def __init__(self, a: np.ndarray, sizes: list[int], two_d: bool = False) -> None:
        self.a, self.sizes, self.two_d, self.passes = a, sizes or [1], two_d, 0

    def __call__(self) -> Iterator[np.ndarray]:
        self.passes += 1
        i, j = 0, 0
        while i < self.a.size:
            k = max(1, self.sizes[j % len(self.sizes)])
            block = self.a[i : i + k].copy()
            if self.two_d and block.size % 2 == 0:
                block = block.reshape(2, -1)
            yield block
            block[...] = 0  # a reused buffer: the consumer must not keep references
            i, j = i + k, j + 1


def quiet(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


def values(dtype: np.dtype) -> st.SearchStrategy[Any]:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = int(info.min), int(info.max)
        return st.one_of(
            st.sampled_from([lo, hi, lo + 1, hi - 1, 0, 1, max(lo, -1)]),
            st.integers(max(lo, -3), min(hi, 3)),
            st.integers(lo, hi),
        )
    width = {2: 16, 4: 32, 8: 64}[dtype.itemsize]
    return st.one_of(
        st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5]),
        st.floats(-4, 4, width=width),
        st.floats(width=width, allow_nan=False),
    )


@st.composite
def sources(draw: st.DrawFn, dtypes: list[str] = REALS) -> tuple[np.ndarray, Source]:
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    n = draw(st.integers(0, 60))
    pool = draw(st.lists(values(dtype), min_size=1, max_size=6))
    elems = st.one_of(st.sampled_from(pool), values(dtype))  # plenty of duplicates
    a = draw(hnp.arrays(dtype, n, elements=elems))
    sizes = draw(st.lists(st.integers(1, 25), min_size=1, max_size=5))
    return a, Source(a, sizes, draw(st.booleans()))


qs = st.one_of(
    st.floats(0, 1),
    st.sampled_from([0.0, 1.0, 0.5, 0, 1, True]),
    st.lists(st.one_of(st.floats(0, 1), st.sampled_from([0.0, 1.0, 0.5])), max_size=6).map(
        np.array
    ),
    st.floats(0, 1).map(np.float64),
    st.floats(0, 1, width=32).map(np.float32),
    st.floats(0, 1).map(np.array),
)


def no_wrap(a: np.ndarray, q: Any, want: Any) -> Any:
    """numpy's quantile ``want`` of ``a``, except where numpy's ``b - a`` of the two integer
    neighbours wraps around in their dtype (int8 [-128, 127] at 0.5: 127.5): there the
    exact ``a + (b - a) * gamma`` (Fractions) -- arraystore never wraps."""
    if a.dtype.kind not in "iu" or a.size == 0:
        return want
    info, s = np.iinfo(a.dtype), np.sort(a)
    virtual = np.asanyarray((s.size - 1) * np.asanyarray(q))
    out = np.array(want)
    for idx in np.ndindex(*virtual.shape):
        v = virtual[idx]
        lo = min(max(int(np.floor(v)), 0), s.size - 1)
        x, y = int(s[lo]), int(s[min(lo + 1, s.size - 1)])
        if not info.min <= y - x <= info.max:
            out[idx] = float(x + (y - x) * Fraction(float(v - np.floor(v))))
    return out[()] if out.ndim == 0 else out


def same(got: Any, want: Any) -> None:
    assert type(got) is type(want), (type(got), type(want))
    assert np.asarray(got).dtype == np.asarray(want).dtype, (got, want)
    np.testing.assert_array_equal(got, want)  # == (NaN equal), -0.0 == 0.0


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sources(), qs, st.booleans(), st.sampled_from([1, 2, 3, 5, 8, 1 << 20]))
def test_exact_quantiles_match_numpy(
    src_a: tuple[np.ndarray, Source], q: Any, skipna: bool, max_select: int
) -> None:
    a, src = src_a
    ref = np.nanquantile if skipna else np.quantile
    try:
        want = quiet(ref, a.copy(), q)
    except (IndexError, ValueError):  # numpy's own error on empty input
        with pytest.raises(InvalidArgument):
            exact_quantiles(src, q, skipna=skipna, max_select=max_select)
        return
    if a.size == 0:  # nanquantile of empty data gives NaN; we refuse empty input
        with pytest.raises(InvalidArgument):
            exact_quantiles(src, q, skipna=skipna, max_select=max_select)
        return
    got = exact_quantiles(src, q, skipna=skipna, max_select=max_select)
    same(got, no_wrap(a, q, want))
    assert src.passes <= 1 + 64 // 16 + 1


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["i8", "u8", "f8"]),
    st.lists(st.floats(0, 1), min_size=1, max_size=12).map(np.array),
    st.integers(1, 4),
)
def test_many_quantiles_many_targets(dtype: str, q: np.ndarray, max_select: int) -> None:
    rng = np.random.default_rng(len(q))
    if dtype == "f8":
        a = rng.standard_normal(3000) * np.exp(rng.standard_normal(3000) * 5)
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, 3000, dtype=dtype, endpoint=True)
        a[::7] = a[3]  # long runs of duplicates
    src = Source(a, [97, 3, 500])
    same(exact_quantiles(src, q, max_select=max_select), no_wrap(a, q, quiet(np.quantile, a, q)))


def test_quantile_special_cases() -> None:
    a = np.array([1.0, np.nan, 3.0])
    assert np.isnan(exact_quantiles(Source(a, [2]), 0.5))
    same(exact_quantiles(Source(a, [2]), [0.5, 1.0]), np.quantile(a, [0.5, 1.0]))
    same(exact_quantiles(Source(a, [2]), 0.5, skipna=True), np.nanquantile(a, 0.5))
    nan = np.array([np.nan, np.nan], dtype=np.float32)
    same(exact_quantiles(Source(nan, [1]), 0.5, skipna=True), np.float32(np.nan))
    same(exact_quantiles(Source(np.array([1.0, np.inf]), [1]), 1.0), np.float64(np.nan))
    ext = np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max])
    same(exact_quantiles(Source(ext, [1]), 0.5), np.float64(-0.5))  # numpy wraps: 9.2e18
    for bad in (-0.1, 1.5, np.nan, [0.5, 2.0], "x"):
        with pytest.raises(InvalidArgument):
            exact_quantiles(Source(a, [2]), bad)
    with pytest.raises(InvalidArgument, match="empty"):
        exact_quantiles(Source(np.zeros(0), [1]), 0.5)
    with pytest.raises(InvalidArgument):
        exact_quantiles(Source(np.array([True, False]), [1]), 0.5)
    with pytest.raises(InvalidArgument):
        exact_quantiles(Source(np.array([1j]), [1]), 0.5)
    with pytest.raises(InvalidArgument):
        exact_quantiles(Source(a, [1]), 0.5, axis=0)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        exact_quantiles(Source(a, [1]), 0.5, max_select=0)
    mixed = lambda: iter([np.zeros(2), np.zeros(2, np.float32)])  # noqa: E731
    with pytest.raises(InvalidArgument, match="dtype"):
        exact_quantiles(mixed, 0.5)


def test_quantile_passes_and_memory() -> None:
    a = np.random.default_rng(3).standard_normal(200_000)
    src = Source(a, [10_000])
    got = exact_quantiles(src, [0.001, 0.5, 0.999], max_select=1000)
    same(got, np.quantile(a, [0.001, 0.5, 0.999]))
    assert src.passes <= 4
    f16 = a.astype(np.float16)
    src = Source(f16, [10_000])
    same(exact_quantiles(src, 0.37, max_select=1), np.quantile(f16, 0.37))
    assert src.passes == 1  # 16-bit keys: the first histogram is exact


hist_values = st.one_of(st.floats(-1e6, 1e6), st.sampled_from([0.0, 1.0, 2.5, -3.0, np.nan]))


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["f8", "f4", "i4", "i8", "u1", "?"]),
    st.lists(hist_values, max_size=50),
    st.one_of(st.integers(1, 20), st.sampled_from(["auto", "fd", "sturges", "sqrt", "rice"])),
    st.one_of(st.none(), st.tuples(st.floats(-10, 10), st.floats(0, 100))),
    st.lists(st.integers(1, 20), min_size=1, max_size=4),
)
def test_histogram_matches_numpy(
    dtype: str, data: list[float], bins: Any, rng: Any, sizes: list[int]
) -> None:
    a = np.array(data, dtype=np.float64)
    if dtype[0] != "f":
        a = np.nan_to_num(a)
    a = quiet(a.astype, dtype)
    clean = (
        a[~np.isnan(a)] if a.dtype.kind == "f" else a.astype(np.uint8 if dtype == "?" else a.dtype)
    )
    rng = None if rng is None else (rng[0], rng[0] + rng[1])
    try:
        histogram(Source(a, sizes), bins=bins, range=rng, dtype=a.dtype)
    except InvalidArgument as e:  # over MAX_BINS: numpy would allocate them (GBs)
        if "bins (more than" in str(e):
            assert int(str(e).split(" gives ")[-1].split()[0]) > MAX_BINS
            return
    try:
        want = quiet(np.histogram, clean, bins=bins, range=rng)
    except ValueError:
        with pytest.raises(InvalidArgument):
            histogram(Source(a, sizes), bins=bins, range=rng, dtype=a.dtype)
        return
    counts, edges = histogram(Source(a, sizes), bins=bins, range=rng, dtype=a.dtype)
    np.testing.assert_array_equal(counts, want[0])
    np.testing.assert_array_equal(edges, want[1])
    assert counts.dtype == np.int64 and edges.dtype == want[1].dtype


def test_histogram_edges_nan_and_errors() -> None:
    a = np.array([0.0, 1.0, 1.0, 2.0, 10.0, np.nan])
    counts, edges = histogram(Source(a, [4]), bins=[0, 1, 5, 10])
    want = np.histogram(a[:-1], bins=[0, 1, 5, 10])
    np.testing.assert_array_equal(counts, want[0])
    np.testing.assert_array_equal(edges, want[1])
    with pytest.raises(InvalidArgument, match="not finite"):
        histogram(Source(a, [4]), bins=3, skipna=False)
    counts, _ = histogram(Source(a, [4]), bins=3, range=(0, 3), skipna=False)
    np.testing.assert_array_equal(counts, np.histogram(a, bins=3, range=(0, 3))[0])
    for bad in (0, "scott", [[1, 2]], [3, 1, 2], 2.5):
        with pytest.raises(InvalidArgument):
            histogram(Source(a, [4]), bins=bad)
    with pytest.raises(InvalidArgument):
        histogram(Source(a, [4]), range=(2, 1))
    counts, edges = histogram(lambda: iter(()), bins=4)
    np.testing.assert_array_equal(counts, [0, 0, 0, 0])
    np.testing.assert_array_equal(edges, np.histogram(np.zeros(0), bins=4)[1])


INTS = ["i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_int_median_and_quantiles_never_wrap(data: st.DataObject) -> None:
    """Issue 15: the median of int8 [-128, 127, 127, -128] was 127.5 (numpy's quantile
    wraps ``b - a``). Every int dtype, extreme values: the median and quantiles are within
    an ulp of the exact rational ``a + (b - a) * gamma`` (and equal numpy's where numpy
    does not wrap)."""
    dtype = np.dtype(data.draw(st.sampled_from(INTS)))
    info = np.iinfo(dtype)
    ext = st.sampled_from([int(info.min), int(info.max), int(info.min) + 1, int(info.max) - 1])
    elems = st.one_of(ext, st.integers(int(info.min), int(info.max)))
    a = data.draw(hnp.arrays(dtype, st.integers(1, 12), elements=elems))
    q = data.draw(st.one_of(st.just(0.5), st.lists(st.floats(0, 1), min_size=1, max_size=4)))
    got = np.asarray(exact_quantiles(Source(a, [3]), q))
    s = sorted(int(v) for v in a)
    for idx, qq in np.ndenumerate(np.asarray(q, dtype=np.float64)):
        v = (len(s) - 1) * qq
        lo = min(math.floor(v), len(s) - 1)
        x, y = s[lo], s[min(lo + 1, len(s) - 1)]
        exact = x + (y - x) * (Fraction(v) - lo)
        ulp = math.ulp(max(abs(x), abs(y)))
        assert abs(Fraction(float(got[idx])) - exact) <= ulp, (a, q, got, float(exact))
    same(exact_quantiles(Source(a, [3]), q), no_wrap(a, q, quiet(np.quantile, a, q)))
    # numpy_wrap (for the histogram estimators): numpy's value, wrapped or not
    same(exact_quantiles(Source(a, [3]), q, numpy_wrap=True), quiet(np.quantile, a, q))
    if a.size % 2 == 0 and dtype.itemsize < 8:  # np.median averages in float64: exact here
        assert float(exact_quantiles(Source(a, [5]), 0.5)) == quiet(np.median, a)


ESTIMATORS = ["auto", "fd", "sturges", "sqrt", "rice"]
#: bin counts the extremes test builds at most (an estimator on extreme integers can ask
#: for 2**64 bins): MAX_BINS is lowered to this, and the refusal must name numpy's count
TEST_MAX_BINS = 100_000


def numpy_bin_count(x: np.ndarray, name: str, rng: Any) -> int:
    """The number of bins ``np.histogram(x, bins=name, range=rng)`` makes, from numpy's
    own estimator code (the string branch of its ``_get_bin_edges``) without making the
    edges: a wrong count in arraystore must fail the test, not allocate gigabytes."""
    first, last = np_hist._get_outer_edges(x, rng)
    if rng is not None:
        x = x[(x >= first) & (x <= last)]
    if x.size == 0:
        return 1
    width = np_hist._hist_bin_selectors[name](x, (first, last))
    if not width:
        return 1
    if np.issubdtype(x.dtype, np.integer) and width < 1:
        width = 1
    return int(np.ceil(np_hist._unsigned_subtract(last, first) / width))


def capped_histogram(a: np.ndarray, sizes: list[int], **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    """:func:`histogram` of ``a`` refusing more than :data:`TEST_MAX_BINS` bins."""
    with mock.patch.object(quantiles, "MAX_BINS", TEST_MAX_BINS):
        return histogram(Source(a, sizes), **kw)


def extremes(dtype: np.dtype) -> st.SearchStrategy[Any]:
    """Values at the dtype's limits, plus (floats) NaN/inf and values a few ulps apart."""
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = int(info.min), int(info.max)
        edge = st.sampled_from([lo, hi, lo + 1, hi - 1, 0, 1, max(lo, -1), lo // 2, hi // 2])
        return st.one_of(edge, st.integers(lo, hi))
    fi, t = np.finfo(dtype), dtype.type
    base = st.sampled_from([1.0, -3.5, 1e-3, float(fi.tiny), 1000.0])
    near = st.tuples(base, st.integers(-3, 3)).map(lambda b: t(b[0]) + b[1] * np.spacing(t(b[0])))
    edge = st.sampled_from([fi.max, -fi.max, fi.max / 4, fi.tiny, 0.0, -0.0, np.nan, np.inf])
    return st.one_of(edge, near, st.floats(width=8 * dtype.itemsize))  # type: ignore[arg-type]


@st.composite
def hist_ranges(draw: st.DrawFn, a: np.ndarray) -> Any:
    """None, or a (lo, hi) of Python numbers: data values, the dtype's limits, small ints
    (floats: within +-max/4, so that numpy's own ``x - lo`` cannot overflow the dtype)."""
    if draw(st.booleans()):
        return None
    if a.dtype.kind in "iu":
        info = np.iinfo(a.dtype)
        cap = float(2**62)
        lo, hi = max(int(info.min), -(2**63)), min(int(info.max), 2**63 - 1)
        bound: st.SearchStrategy[Any] = st.one_of(st.integers(lo, hi), st.integers(-3, 3))
    else:
        cap = float(np.finfo(a.dtype).max) / 4 if a.dtype.kind == "f" else 300.0
        bound = st.floats(-cap, cap)
    vals = a.astype(np.uint8) if a.dtype.kind == "b" else a  # numpy cannot subtract bools
    inside = [v.item() for v in vals.ravel() if np.isfinite(v) and abs(float(v)) <= cap]
    if inside:
        bound = st.one_of(bound, st.sampled_from(inside))
    lo, hi = sorted([draw(bound), draw(bound)])
    return lo, hi


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_histogram_estimators_match_numpy_at_extremes(data: st.DataObject) -> None:
    """Every string estimator, every int dtype (and bool, floats) at its limits: the same
    bin count, edges and counts as ``np.histogram``. int8 [-128, 127, 127] with 'auto'
    gave 3 bins, numpy 4: numpy's IQR (``np.percentile``) wraps ``b - a`` of extreme
    integers (25th percentile 127.5), and the estimators must use that IQR, not the
    exact quantiles' (-0.5). Where numpy fails (a float range overflowing to inf)
    arraystore raises InvalidArgument."""
    dtype = np.dtype(data.draw(st.sampled_from([*INTS, "?", "f2", "f4", "f8"])))
    a = data.draw(hnp.arrays(dtype, st.integers(1, 12), elements=extremes(dtype)))
    name = data.draw(st.sampled_from(ESTIMATORS))
    rng = data.draw(hist_ranges(a))
    skipna = data.draw(st.booleans())
    sizes = data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=3))
    ref = a.astype(np.uint8) if dtype.kind == "b" else a
    if skipna and dtype.kind == "f":
        ref = ref[~np.isnan(ref)]

    def ours() -> tuple[np.ndarray, np.ndarray]:
        # quiet: numpy's own linspace may warn of float16 overflow (as np.histogram does)
        return quiet(capped_histogram, a, sizes, bins=name, range=rng, skipna=skipna, dtype=dtype)

    try:
        n = quiet(numpy_bin_count, ref, name, rng)
    except (ValueError, OverflowError):  # non-finite range, NaN/inf bin count
        with pytest.raises(InvalidArgument):
            ours()
        return
    if n > TEST_MAX_BINS:
        with pytest.raises(InvalidArgument, match=rf"gives {n} bins \(more than"):
            ours()
        return
    try:
        want = quiet(np.histogram, ref, bins=name, range=rng)
    except ValueError:  # e.g. a negative count from a negative (wrapped) IQR
        with pytest.raises(InvalidArgument):
            ours()
        return
    counts, edges = ours()
    assert len(counts) == n
    np.testing.assert_array_equal(counts, want[0].astype(np.int64), strict=True)
    np.testing.assert_array_equal(edges, want[1], strict=True)


def test_histogram_auto_of_int8_extremes() -> None:
    """int8 [-128, 127, 127] with 'auto' gave 3 bins, numpy 4 (np.percentile's 25th
    percentile wraps to 127.5, so numpy's IQR is -0.5 and its FD width the sqrt one)."""
    counts, edges = histogram(Source(np.array([-128, 127, 127], np.int8), [2]), bins="auto")
    np.testing.assert_array_equal(counts, [1, 0, 0, 2])
    np.testing.assert_array_equal(edges, [-128.0, -64.25, -0.5, 63.25, 127.0])


@pytest.mark.parametrize("name", ESTIMATORS)
@pytest.mark.parametrize("dtype", INTS)
def test_histogram_estimators_of_int_extremes(dtype: str, name: str) -> None:
    """min and max of every int dtype, numpy's bins (the extremes test's example's kin)."""
    info = np.iinfo(dtype)
    for vals in (
        [info.min, info.max, info.max],
        [info.min, info.min, info.max],
        [info.min, info.max],
    ):
        a = np.array(vals, dtype)
        n = quiet(numpy_bin_count, a, name, None)
        if n > TEST_MAX_BINS:
            with pytest.raises(InvalidArgument, match=rf"gives {n} bins"):
                capped_histogram(a, [1], bins=name)
            continue
        want = quiet(np.histogram, a, bins=name)
        counts, edges = histogram(Source(a, [1]), bins=name)
        np.testing.assert_array_equal(counts, want[0].astype(np.int64), strict=True)
        np.testing.assert_array_equal(edges, want[1], strict=True)


@pytest.mark.parametrize("dtype", ["f2", "f4", "f8"])
def test_histogram_estimator_overflowing_float_range(dtype: str) -> None:
    """numpy fails with ValueError/OverflowError (``int(nan)``, ``int(inf)``) when the data's
    range overflows the float dtype; arraystore refuses with InvalidArgument."""
    fmax = float(np.finfo(dtype).max)
    a = np.array([-fmax, 0.0, fmax], dtype)
    for name in ESTIMATORS:
        with pytest.raises((ValueError, OverflowError)):
            quiet(np.histogram, a, bins=name)
        with pytest.raises(
            InvalidArgument, match=rf"^bins='{name}': {a.dtype} bin count .* not finite"
        ):
            histogram(Source(a, [2]), bins=name)
