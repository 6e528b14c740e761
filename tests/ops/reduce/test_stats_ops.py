"""Reductions, exact quantiles and histograms of *stored* arrays vs numpy (issue 3).

Everything goes through the public API (``Array.sum`` ... ``Array.histogram``,
``Array.stats``) on arrays written to every backend case of ``arraystore.testing.BACKEND_CASES``.

How results are compared with numpy (the reference always runs on the in-RAM copy):

* ``sum``/``mean``/``var``/``std`` of floats and the ``mean``/``var``/``std`` of ints and
  bools are float64 and are compared with numpy on the data converted to float64
  (``np.nan*`` functions when ``skipna=True``) at ``rtol=1e-12``. The summation order
  differs from numpy's pairwise sum, so a cancelling sum (``0.1 + 0.2 - 0.3``) can only
  be compared with an absolute slack tied to the data: ``1e-12 * sum(|x|)`` for sums
  (``mean(|x|)`` for means, ``mean(x**2)`` for variances; ``std`` is compared squared).
  Where numpy gives NaN or ±inf the result must be exactly that.
* integer and bool sums are exact: equal to the Python-int sum, int64 (uint64 for
  unsigned data) when it fits, Python int / object array when it does not.
* ``min``/``max``/``argmin``/``argmax``/``any``/``all``/``count_nonzero`` and counts are
  compared exactly, dtype included (the kernels document that a signed zero may differ:
  ``min`` may give ``0.0`` where numpy gives ``-0.0``, so ``==`` is used, not bits).
* Where numpy raises ``ValueError`` (min of an empty slice, nanargmin of an all-NaN
  slice...) arraystore raises :class:`InvalidArgument` (a ValueError) instead.
* float64 test data stays within ±1e100 so that numpy's own intermediate ``x**2`` never
  overflows (arraystore's Chan merge would then be *more* accurate than numpy, which is
  documented, not a mismatch).

Store creation is the slow part (tens of ms per array), so each hypothesis example
creates one small array and runs every reduction on it.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import warnings
from collections.abc import Callable
from fractions import Fraction
from typing import Any, Literal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import arraystore
from arraystore.engine.memory import format_size
from arraystore.errors import (
    FieldNotFound,
    InvalidArgument,
    MemoryBudgetError,
)
from arraystore.ops.reduce import kernels
from arraystore.ops.reduce import stats as stats_mod
from arraystore.ops.reduce.kernels import numba as kernels_numba
from arraystore.ops.reduce.quantiles import MAX_BINS
from arraystore.ops.reduce.stats import KERNEL_OVERHEAD, StatsResult
from arraystore.testing import LZ4_WARNING, BackendCase, assert_same, backend_params
from tests.ops.reduce.test_quantiles import no_wrap

SETTINGS = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
DTYPES = ["f8", "f4", "f2", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"]
FLOAT_OPS = ("sum", "mean", "var", "std")
EXACT_OPS = ("min", "max", "argmin", "argmax", "any", "all", "count_nonzero")
ARRAY_OPS = FLOAT_OPS + EXACT_OPS
_names = itertools.count()


def fresh(prefix: str = "a") -> str:
    """A new array name (hypothesis examples share one store per test)."""
    return f"{prefix}{next(_names)}"


def quiet(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Run a numpy reference computation without its warnings (all-NaN slices...)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


# ------------------------------------------------------------------ strategies
def elements(dtype: np.dtype) -> st.SearchStrategy[Any]:
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = int(info.min), int(info.max)
        return st.one_of(
            st.sampled_from([lo, hi, lo + 1, hi - 1, 0, 1, max(lo, -1)]),
            st.integers(max(lo, -3), min(hi, 3)),
            st.integers(lo, hi),
        )
    specials = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.5, 0.5])
    width: Literal[16, 32, 64] = {2: 16, 4: 32, 8: 64}[dtype.itemsize]  # type: ignore[assignment]
    # float64 bounded (numpy's own x**2 must not overflow, see the module docstring);
    # float16/float32: every value (their squares fit in float64)
    wide = st.floats(-1e100, 1e100) if dtype.itemsize == 8 else st.floats(width=width)
    return st.one_of(specials, st.floats(-8, 8, width=width), wide)


@st.composite
def chunkings(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A chunk shape giving at most ~3 chunks per axis (zarr I/O is per chunk)."""
    per_axis = 3 if len(shape) == 1 else 2
    return tuple(draw(st.integers(max(1, math.ceil(n / per_axis)), max(1, n))) for n in shape)


@st.composite
def stored_data(
    draw: st.DrawFn, dtypes: list[str] = DTYPES, max_side: int = 5, min_dims: int = 1
) -> tuple[np.ndarray, tuple[int, ...]]:
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=3, min_side=0, max_side=max_side))
    x = draw(hnp.arrays(dtype, shape, elements=elements(dtype)))
    return x, draw(chunkings(shape))


def axes(ndim: int) -> st.SearchStrategy[Any]:
    """None, an int (negative too), or a tuple of distinct axes (any order, maybe ())."""
    one = st.integers(-ndim, ndim - 1)
    many = st.lists(one, unique_by=lambda a: a % ndim, max_size=ndim).map(tuple)
    return st.one_of(st.none(), one, many)


# ------------------------------------------------------------------- reference
def reference(op: str, x: np.ndarray, axis: Any, skipna: bool, ddof: int) -> Any:
    """numpy's answer (see the module docstring for the float64 conversion)."""
    xf = x.astype(np.float64)
    if op == "sum":
        if x.dtype.kind in "biu":  # exact Python ints
            return np.sum(x.astype(object), axis=axis)
        return quiet(np.nansum if skipna else np.sum, xf, axis=axis)
    if op == "mean":
        return quiet(np.nanmean if skipna else np.mean, xf, axis=axis)
    if op in ("var", "std"):
        fn = {
            ("var", False): np.var,
            ("var", True): np.nanvar,
            ("std", False): np.std,
            ("std", True): np.nanstd,
        }[op, skipna]
        return quiet(fn, xf, axis=axis, ddof=ddof)
    if op in ("min", "max", "argmin", "argmax"):
        fn = getattr(np, ("nan" if skipna else "") + op)
        return quiet(fn, x, axis=axis)
    if op == "count_nonzero":
        return np.count_nonzero(x, axis=axis)
    return getattr(np, op)(x, axis=axis)  # any / all


def scale(op: str, x: np.ndarray, axis: Any) -> Any:
    """The absolute size of a float result's inputs (slack for cancellation)."""
    xf = np.abs(x.astype(np.float64))
    if op == "sum":
        return quiet(np.nansum, xf, axis=axis)
    if op == "mean":
        return quiet(np.nanmean, xf, axis=axis)
    return quiet(np.nanmean, xf * xf, axis=axis)  # var, std (compared squared)


def check_float(got: Any, expected: Any, slack: Any, squared: bool = False) -> None:
    got_a, exp_a = np.asarray(got), np.asarray(expected, dtype=np.float64)
    assert got_a.dtype == np.float64, got_a.dtype
    assert got_a.shape == exp_a.shape, (got_a.shape, exp_a.shape)
    bad = ~np.isfinite(exp_a)
    np.testing.assert_array_equal(got_a[bad], exp_a[bad])  # NaN where NaN, same inf
    g, e = got_a[~bad], exp_a[~bad]
    if squared:
        g, e = g * g, e * e
    tol = 1e-12 * np.abs(e) + 1e-12 * np.broadcast_to(slack, exp_a.shape)[~bad]
    assert np.all(np.abs(g - e) <= tol), (got_a, exp_a)


def check_int_sum(got: Any, expected: Any, dtype: np.dtype) -> None:
    """Exact: int64 (uint64 for unsigned data) when every sum fits, else Python ints."""
    exp = np.asarray(expected, dtype=object)
    got_a = np.asarray(got, dtype=object if isinstance(got, int) else None)
    assert got_a.shape == exp.shape
    assert [int(v) for v in got_a.ravel()] == [int(v) for v in exp.ravel()]
    acc = np.dtype(np.uint64 if dtype.kind == "u" else np.int64)
    info = np.iinfo(acc)
    fits = all(info.min <= int(v) <= info.max for v in exp.ravel())
    if fits:
        assert np.asarray(got).dtype == acc, (type(got), np.asarray(got).dtype)
    elif exp.ndim == 0:
        assert type(got) is int, type(got)
    else:
        assert got_a.dtype == object


def check_exact(op: str, got: Any, expected: Any, x: np.ndarray) -> None:
    got_a, exp_a = np.asarray(got), np.asarray(expected)
    if op in ("argmin", "argmax", "count_nonzero"):
        assert got_a.dtype == np.int64, got_a.dtype
        exp_a = exp_a.astype(np.int64)
    elif op in ("any", "all"):
        assert got_a.dtype == np.bool_
    else:  # min / max keep the input dtype
        assert got_a.dtype == x.dtype, (got_a.dtype, x.dtype)
    np.testing.assert_array_equal(got_a, exp_a, strict=True)


def op_kwargs(op: str, axis: Any, skipna: bool, ddof: int) -> dict[str, Any]:
    """The Array-API keywords of one reduction (any/all/count_nonzero take no skipna)."""
    kw: dict[str, Any] = {"axis": axis}
    if op not in ("any", "all", "count_nonzero"):
        kw["skipna"] = skipna
    if op in ("var", "std"):
        kw["ddof"] = ddof
    return kw


def expect(op: str, x: np.ndarray, axis: Any, skipna: bool, ddof: int) -> tuple[bool, Any]:
    """(True, numpy's result) or (False, None) where numpy refuses with ValueError."""
    try:
        return True, reference(op, x, axis, skipna, ddof)
    except ValueError:  # empty slice, all-NaN nanargmin...
        return False, None


def compare(op: str, got: Any, expected: Any, x: np.ndarray, axis: Any) -> None:
    if op == "sum" and x.dtype.kind in "biu":
        check_int_sum(got, expected, x.dtype)
    elif op in FLOAT_OPS:
        check_float(got, expected, scale(op, x, axis), squared=op == "std")
    else:
        check_exact(op, got, expected, x)


def check_op(arr: Any, x: np.ndarray, op: str, axis: Any, skipna: bool, ddof: int) -> bool:
    """Compare one Array-API reduction with numpy; returns False when both refuse."""
    kw = op_kwargs(op, axis, skipna, ddof)
    if op in ("argmin", "argmax") and isinstance(axis, tuple):
        with pytest.raises(InvalidArgument, match="single int axis"):
            getattr(arr, op)(**kw)
        return False  # numpy refuses a tuple too (TypeError)
    ok, expected = expect(op, x, axis, skipna, ddof)
    if not ok:
        with pytest.raises(InvalidArgument) as info:
            getattr(arr, op)(**kw)
        assert "\n" not in str(info.value), str(info.value)
        return False
    compare(op, getattr(arr, op)(**kw), expected, x, axis)
    return True


def bits_equal(a: Any, b: Any) -> None:
    """Identical results: same type/dtype/shape and the same bytes (ints as ints)."""
    if isinstance(a, int) or isinstance(b, int):
        assert type(a) is type(b) and a == b, (a, b)
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
    if a.dtype == object:
        assert a.tolist() == b.tolist()
    else:
        assert a.tobytes() == b.tobytes(), (a, b)


# ============================================================ 1. reductions
@settings(SETTINGS, max_examples=25)
@given(data=st.data())
def test_reductions_match_numpy_and_executors_agree(
    store: arraystore.Store, backend_case: BackendCase, data: st.DataObject
) -> None:
    x, chunks = data.draw(stored_data())
    axis = data.draw(axes(x.ndim), label="axis")
    skipna = data.draw(st.booleans(), label="skipna")
    ddof = data.draw(st.sampled_from([0, 1]), label="ddof")
    arr = store.create(fresh(), data=x, chunks=chunks, **backend_case.kwargs)
    assert_same(arr[...], x)
    ok = [op for op in ARRAY_OPS if check_op(arr, x, op, axis, skipna, ddof)]
    # every op that succeeded, in one pass, serial vs 2 threads: bit for bit
    if ok:
        kw = {"ops": ok, "axis": axis, "skipna": skipna, "ddof": ddof}
        serial = arr.stats(executor="serial", **kw)
        threads = arr.stats(executor="threads", workers=2, **kw)
        (name,) = serial.fields
        for op in ok:
            bits_equal(serial[name][op], threads[name][op])


@settings(SETTINGS, max_examples=30)
@given(data=st.data())
def test_exact_results_do_not_depend_on_chunking(
    store: arraystore.Store, data: st.DataObject
) -> None:
    """Integer sums, min/max, arg*, counts and any/all: identical for every chunking
    (two zarr chunkings and the memmap backend's budget-sized blocks)."""
    x, chunks_a = data.draw(stored_data(max_side=6))
    chunks_b = data.draw(chunkings(x.shape), label="chunks_b")
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)), label="axis")
    skipna = data.draw(st.booleans(), label="skipna")
    ops = ["count", "nan_count", "any", "all", "count_nonzero"]
    if x.dtype.kind in "biu":
        ops.append("sum")
    reduced = x.size if axis is None else x.shape[axis]
    if reduced:  # min/max/arg* of empty slices refuse (tested above)
        ops += ["min", "max"]
        all_nan = x.dtype.kind == "f" and quiet(np.all, np.isnan(x), axis=axis)
        if not (skipna and np.any(all_nan)):
            ops += ["argmin", "argmax"]
    arrays = [
        store.create(fresh(), data=x, chunks=chunks_a, backend="zarr", codec="none"),
        store.create(fresh(), data=x, chunks=chunks_b, backend="zarr", codec="none"),
        store.create(fresh(), data=x, backend="memmap"),
    ]
    results = [a.stats(ops=ops, axis=axis, skipna=skipna) for a in arrays]
    first = next(iter(results[0].fields.values()))
    for res in results[1:]:
        other = next(iter(res.fields.values()))
        for op in ops:
            if op in ("min", "max"):  # == (a signed zero may differ: documented)
                assert_same(other[op], first[op])
            else:
                bits_equal(other[op], first[op])


# ----------------------------------------------------------- special values
SPECIAL_CASES = [
    # (data, description)
    (np.array([np.nan, 1.0, np.inf]), "nan and inf"),
    (np.array([np.inf, -np.inf, 2.0]), "inf - inf"),
    (np.array([[np.nan, np.nan], [1.0, 2.0]]), "an all-NaN column"),
    (np.array([np.nan, np.inf, -np.inf]), "nanargmin treats NaN as +inf"),
    (np.array([np.iinfo(np.int64).max] * 3 + [np.iinfo(np.int64).min + 1]), "int64 extremes"),
    (np.array([np.iinfo(np.uint64).max] * 2, dtype=np.uint64), "uint64 overflow"),
    (np.array([-0.0, 0.0, -0.0]), "signed zeros"),
    (np.array([65504.0, 65504.0, -65504.0], dtype=np.float16), "float16 at its limits"),
    (np.array([3e38, 3e38, -1e-45], dtype=np.float32), "float32 at its limits"),
    (np.zeros((0, 3)), "empty"),
    (np.zeros((3, 0), dtype=np.int8), "empty int columns"),
    (np.array([5.0]), "one element (ddof=1 -> NaN)"),
]


@pytest.mark.parametrize(("x", "what"), SPECIAL_CASES, ids=[c[1] for c in SPECIAL_CASES])
@pytest.mark.parametrize("case", backend_params(lambda c: c.codec in (None, "none")))
def test_special_values(
    store: arraystore.Store, case: BackendCase, x: np.ndarray, what: str
) -> None:
    arr = store.create(fresh(), data=x, chunks=(1,) * x.ndim, **case.kwargs)
    for axis in [None, *range(x.ndim)]:
        for skipna in (False, True):
            for op in ARRAY_OPS:
                for ddof in (0, 1) if op in ("var", "std") else (0,):
                    check_op(arr, x, op, axis, skipna, ddof)


def large_data(dtype: str) -> np.ndarray:
    rng = np.random.default_rng(11)
    shape = (2400, 160)  # ~3 MiB of f8: several 1 MiB memmap blocks and kernel leaves
    if dtype == "i8":
        x = rng.integers(-(2**63), 2**63 - 1, shape, dtype=np.int64, endpoint=True)
        x[5] = np.iinfo(np.int64).max  # a row of extremes: overflowing column sums
        return x
    x = (rng.standard_normal(shape) * 1e3 + 5e3).astype(dtype)
    x[rng.random(shape) < 0.01] = np.nan
    x[7, :] = np.nan  # whole row NaN
    x[:, 9] = np.nan  # whole column NaN
    x[100, 3] = np.inf
    return x


@pytest.mark.parametrize(
    ("case", "dtype", "sub_block"),
    [
        pytest.param(BackendCase("memmap", None), "f8", None, id="memmap-f8"),
        pytest.param(BackendCase("memmap", None), "i8", None, id="memmap-i8"),
        # tasks read in pieces of 78 rows (not a divisor of the 1 MiB blocks' rows)
        pytest.param(BackendCase("memmap", None), "f8", 100_000, id="memmap-f8-sub-blocks"),
        pytest.param(BackendCase("memmap", None), "i8", 100_000, id="memmap-i8-sub-blocks"),
        pytest.param(BackendCase("zarr", "zstd:1"), "f8", None, id="zarr-zstd:1-f8"),
        pytest.param(BackendCase("zarr", "zstd:1"), "f4", None, id="zarr-zstd:1-f4"),
        pytest.param(BackendCase("zarr", "none"), "i8", None, id="zarr-none-i8"),
    ],
)
def test_large_arrays_many_tasks(
    store: arraystore.Store,
    case: BackendCase,
    dtype: str,
    sub_block: int | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Arrays bigger than a kernel leaf and split into several tasks (zarr chunks, or
    1 MiB memmap row blocks under a small budget), memmap tasks also read in several
    cache-sized pieces (``SUB_BLOCK``): numpy's results, serial == threads."""
    if sub_block is not None:
        monkeypatch.setattr(stats_mod, "SUB_BLOCK", sub_block)
    x = large_data(dtype)
    arr = store.create(fresh(), data=x, chunks=(700, 96), **case.kwargs)
    reads: list[Any] = []
    real = arr.handle.read

    def counting(*args: Any, **kw: Any) -> Any:
        reads.append(args)
        return real(*args, **kw)

    monkeypatch.setattr(arr.handle, "read", counting)
    for axis in (None, 0, 1, (0, 1)):
        ops = [op for op in ARRAY_OPS if not (op.startswith("arg") and isinstance(axis, tuple))]
        for skipna in (False, True):
            if skipna and axis in (0, 1) and dtype != "i8":  # all-NaN column 9 / row 7
                ops = [op for op in ops if not op.startswith("arg")]
            kw: dict[str, Any] = {"ops": ops, "axis": axis, "skipna": skipna, "ddof": 1}
            kw["memory"] = "16MiB"  # memmap: 1 MiB row blocks
            reads.clear()
            res = arr.stats(executor="threads", workers=2, **kw)
            assert len(reads) >= 2  # several tasks
            if sub_block is not None:  # every task read in pieces of <= 78 rows
                piece = sub_block // (160 * 8)
                assert max(r[0][0].stop - r[0][0].start for r in reads) == piece
                assert len(reads) >= math.ceil(2400 / piece)
            (name,) = res.fields
            for op in ops:
                check_field(res[name][op], x, op, axis, skipna, 1, x.ndim)
            serial = arr.stats(executor="serial", **kw)
            for op in ops:
                if case.is_zarr or op not in FLOAT_OPS or (dtype == "i8" and op == "sum"):
                    bits_equal(serial[name][op], res[name][op])
                # memmap float results: see test_memmap_serial_threads_bit_identical
    if dtype != "i8":  # numpy: ValueError "All-NaN slice encountered"
        with pytest.raises(InvalidArgument, match=r"^All-NaN slice encountered in nanargmin$"):
            arr.argmin(axis=0, skipna=True)


@pytest.mark.skipif(not kernels_numba.available(), reason="numba not installed")
def test_memmap_pieces_fold_into_one_running_state(
    store: arraystore.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finite float memmap tasks read in pieces take the running-state path (one kernel
    state per task, no per-piece merge): numpy's results, serial == threads bits."""
    monkeypatch.setenv("ARRAYSTORE_NUMBA_MIN_BYTES", "0")  # numba for this 3 MiB array too
    monkeypatch.setattr(stats_mod, "SUB_BLOCK", 97 * 160 * 8)  # 97 rows per piece
    folded: list[int] = []
    real = kernels.rows_partial

    def counting(read: Any, pieces: Any, *args: Any) -> Any:
        folded.append(len(pieces))
        return real(read, pieces, *args)

    monkeypatch.setattr(kernels, "rows_partial", counting)
    x = np.random.default_rng(4).standard_normal((2400, 160)) * 7 + 1e3
    arr = store.create(fresh(), data=x, backend="memmap")
    ops = ["sum", "mean", "std", "min", "max"]
    for axis in (0, None):
        kw: dict[str, Any] = {"ops": ["count", *ops], "axis": axis, "memory": "16MiB"}
        folded.clear()
        res = arr.stats(executor="threads", workers=2, **kw)
        assert len(folded) >= 2 and min(folded) >= 2  # several tasks, each in pieces
        assert np.all(res[arr.name]["count"] == x.size // np.size(res[arr.name]["sum"]))
        for op in ops:
            check_field(res[arr.name][op], x, op, axis, False, 0, x.ndim)
        serial = arr.stats(executor="serial", **kw)
        for op in ops:
            bits_equal(serial[arr.name][op], res[arr.name][op])


def test_memmap_serial_threads_bit_identical(store: arraystore.Store) -> None:
    x = np.random.default_rng(0).standard_normal((2400, 160))  # 3 MiB
    arr = store.create(fresh(), data=x, backend="memmap")
    ops = ["sum", "mean", "var", "std"]
    serial = arr.stats(ops=ops, memory="40MiB", executor="serial")
    threads = arr.stats(ops=ops, memory="40MiB", executor="threads", workers=2)
    for op in ops:
        bits_equal(serial[arr.name][op], threads[arr.name][op])


def test_big_int_sum_along_an_axis(store: arraystore.Store) -> None:
    """An axis sum where only some cells overflow int64: an object array of exact ints."""
    big = np.iinfo(np.int64).max
    x = np.array([[big, 1], [big, 2]], dtype=np.int64)
    arr = store.create(fresh(), data=x, chunks=(1, 1), backend="zarr", codec="none")
    got = arr.sum(axis=0)
    assert got.dtype == object and got.tolist() == [2 * big, 3]
    assert arr.sum(axis=1).dtype == object
    assert arr.sum() == 2 * big + 3 and type(arr.sum()) is int


# ------------------------------------------------------------- structured
STRUCT = np.dtype(
    [("id", "<i8"), ("price", "<f8"), ("vec", "<f4", (3,)), ("qty", "<u2"), ("name", "S8")]
)


def structured_data(shape: tuple[int, ...] = (9, 4), seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros(shape, STRUCT)
    x["id"] = rng.integers(-(2**62), 2**62, shape)
    x["price"] = rng.normal(100, 5, shape)
    x["price"].flat[[2, 7]] = np.nan
    x["vec"] = rng.standard_normal((*shape, 3)).astype(np.float32)
    x["vec"][..., 1].flat[5] = np.nan
    x["qty"] = rng.integers(0, 2**16, shape)
    x["name"] = b"abc"
    return x


NUMERIC = ("id", "price", "vec", "qty")


def check_field(
    got: Any, x: np.ndarray, op: str, axis: Any, skipna: bool, ddof: int, ndim: int
) -> None:
    """A field's result vs numpy; a subarray field reduces each element separately."""
    sub = x.shape[ndim:]
    if not sub:
        ok, expected = expect(op, x, axis, skipna, ddof)
        assert ok
        compare(op, got, expected, x, axis)
        return
    assert np.asarray(got).shape[-len(sub) :] == sub
    for e in np.ndindex(*sub):
        xe = x[(Ellipsis, *e)]
        ok, expected = expect(op, xe, axis, skipna, ddof)
        assert ok
        compare(op, np.asarray(got)[(Ellipsis, *e)], expected, xe, axis)


def test_structured_per_field(store: arraystore.Store, backend_case: BackendCase) -> None:
    """Every field reduced in one pass (Array.stats) and through the Array API; the
    subarray field ``vec`` (3 f4 per record) is reduced per element: axes name the
    array's logical dims (records), never the subarray's."""
    x = structured_data()
    arr = store.create(fresh(), data=x, chunks=(4, 3), **backend_case.kwargs)
    for axis in (None, 0, -1, (1, 0), ()):
        ops = [op for op in ARRAY_OPS if not (op.startswith("arg") and isinstance(axis, tuple))]
        for skipna in (False, True):
            res = arr.stats(ops=ops, axis=axis, skipna=skipna, ddof=1)
            assert list(res.fields) == list(NUMERIC)  # the S8 field is skipped
            for name in NUMERIC:
                for op in ops:
                    check_field(res[name][op], x[name], op, axis, skipna, 1, x.ndim)
    for op, axis in [("sum", None), ("min", 1), ("argmax", 0), ("count_nonzero", (0, 1))]:
        kw = op_kwargs(op, axis, False, 0)
        every = getattr(arr, op)(**kw)  # a dict over the numeric fields
        assert list(every) == list(NUMERIC)
        for name in NUMERIC:
            one = getattr(arr[name], op)(**kw)  # a field view
            check_field(one, x[name], op, axis, False, 0, x.ndim)
            bits_equal(one, every[name])
        bits_equal(getattr(arr, op)(fields="vec", **kw), every["vec"])  # a field by name


def test_structured_field_selection_and_dicts(store: arraystore.Store) -> None:
    x = structured_data()
    arr = store.create(fresh(), data=x, chunks=(4, 4), backend="zarr", codec="none")
    every = arr.mean()
    assert list(every) == list(NUMERIC)  # storage order, the S8 field skipped
    np.testing.assert_allclose(
        every["vec"], x["vec"].astype(np.float64).mean(axis=(0, 1)), rtol=1e-12
    )
    assert every["vec"].shape == (3,)
    sel = arr.max(fields=["qty", "id"], skipna=True)
    assert sorted(sel) == ["id", "qty"]
    assert sel["qty"] == x["qty"].max() and sel["id"] == x["id"].max()
    assert arr.max(fields="qty") == x["qty"].max()  # a str: the bare value
    assert arr.sum(fields=["qty"]) == {"qty": x["qty"].sum(dtype=np.uint64)}
    # field views reduce the field only
    assert arr["id"].sum() == int(np.sum(x["id"].astype(object)))
    np.testing.assert_array_equal(
        arr["vec"].argmax(axis=1), np.argmax(x["vec"], axis=1), strict=True
    )


def test_structured_stats_all_fields_one_pass(
    store: arraystore.Store, backend_case: BackendCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = structured_data((10, 3))
    arr = store.create(fresh(), data=x, chunks=(4, 3), **backend_case.kwargs)
    calls: list[Any] = []
    real = arr.handle.read

    def counting(region: Any, field: Any = None, out: Any = None) -> Any:
        calls.append((tuple((s.start, s.stop) for s in region), field))
        return real(region, field, out)

    monkeypatch.setattr(arr.handle, "read", counting)
    res = arr.stats(axis=0)
    assert isinstance(res, StatsResult) and list(res.fields) == list(NUMERIC)
    # one pass: every (region, field) read exactly once
    assert len(calls) == len(set(calls))
    if backend_case.is_zarr:  # columnar: numeric fields only, each once per chunk
        assert {f for _, f in calls} == set(NUMERIC) and len(calls) == 3 * len(NUMERIC)
    for name in NUMERIC:
        f = x[name].astype(np.float64)
        d = res[name]
        np.testing.assert_array_equal(d["count"], np.sum(~np.isnan(f), axis=0), strict=False)
        np.testing.assert_array_equal(d["nan_count"], np.sum(np.isnan(f), axis=0))
        check_float(d["mean"], quiet(np.nanmean, f, axis=0), quiet(np.nanmean, np.abs(f), axis=0))
        check_float(
            d["std"], quiet(np.nanstd, f, axis=0), quiet(np.nanmean, f * f, axis=0), squared=True
        )
        np.testing.assert_array_equal(d["min"], quiet(np.nanmin, x[name], axis=0), strict=True)
        np.testing.assert_array_equal(d["max"], quiet(np.nanmax, x[name], axis=0), strict=True)
        assert d["count"].shape == x[name].shape[1:]
    # ddof and a subset
    res = arr.stats(fields=["price"], ddof=1, skipna=False)
    assert list(res.fields) == ["price"] and math.isnan(res["price"]["std"])
    res = arr.stats(fields=["id"], ddof=1)
    check_float(
        res["id"]["std"],
        np.std(x["id"].astype(np.float64), ddof=1),
        np.mean(x["id"].astype(np.float64) ** 2),
        squared=True,
    )


# ============================================================ 2. quantiles
QS = st.one_of(
    st.floats(0, 1),
    st.sampled_from([0.0, 1.0, 0.5, 0.25, 0.75, 0.01, 0.99]),
    st.lists(st.floats(0, 1), min_size=1, max_size=5),
)


def np_quantile(x: np.ndarray, q: Any, skipna: bool) -> Any:
    fn = np.nanquantile if skipna else np.quantile
    return no_wrap(x.ravel(), q, quiet(fn, x, q, method="linear"))


def check_quantile(got: Any, expected: Any) -> None:
    """Exactly numpy's value and dtype (NaN == NaN; -0.0 == 0.0, see module docstring)."""
    assert type(got) is type(expected) or np.asarray(got).shape == np.asarray(expected).shape
    np.testing.assert_array_equal(got, expected, strict=True)


@settings(SETTINGS, max_examples=30)
@given(data=st.data())
@pytest.mark.parametrize("case", backend_params(lambda c: c.codec in (None, "none", "blosc-lz4")))
def test_quantiles_exact(store: arraystore.Store, case: BackendCase, data: st.DataObject) -> None:
    dtypes = [d for d in DTYPES if d != "b1"]  # numpy refuses bool quantiles
    x, chunks = data.draw(stored_data(dtypes, max_side=7))
    if x.size == 0:  # refused: see test_bad_input below
        x = data.draw(hnp.arrays(x.dtype, (1,), elements=elements(x.dtype)))
        chunks = (1,)
    if data.draw(st.booleans(), label="duplicates"):
        x = np.repeat(x, 3, axis=0)
        chunks = (chunks[0] * 3, *chunks[1:])
    q = data.draw(QS, label="q")
    small_float = x.dtype.kind == "f" and x.dtype.itemsize < 8
    if small_float and not isinstance(q, list):  # scalar q: see the xfail test below
        q = [q]
    skipna = data.draw(st.booleans(), label="skipna")
    memory = data.draw(st.sampled_from(["64KiB", "256KiB", None]), label="memory")
    arr = store.create(fresh(), data=x, chunks=chunks, **case.kwargs)
    check_quantile(arr.quantile(q, skipna=skipna, memory=memory), np_quantile(x, q, skipna))
    if not small_float:
        check_quantile(arr.median(skipna=skipna, memory=memory), np_quantile(x, 0.5, skipna))


@pytest.mark.parametrize("dtype", ["f4", "f2"])
def test_scalar_quantile_keeps_small_float_dtype(store: arraystore.Store, dtype: str) -> None:
    x = np.array([1.0, 2.0, 7.0], dtype)
    arr = store.create(fresh(), data=x)
    check_quantile(arr.quantile(0.3), np.quantile(x, 0.3))  # float32(1.6) / float16(1.6)
    check_quantile(arr.median(), np.quantile(x, 0.5))


@pytest.mark.parametrize("case", backend_params(lambda c: c.codec in (None, "none")))
@pytest.mark.parametrize(
    ("dtype", "make", "passes_min"),
    [
        # 64-bit keys, all in one top-16-bit bin: count pass + 2 refinements + select
        ("f8", lambda r: 1.0 + r.random(6000) * 1e-9, 4),
        ("i8", lambda r: 2**40 + r.integers(0, 2**30, 6000), 3),
        ("f8", lambda r: np.where(r.random(6000) < 0.1, np.nan, 1 + r.random(6000) * 1e-6), 3),
        # 32-bit keys: at most one refinement; 16-bit: the first pass decides
        ("f4", lambda r: 1.0 + r.random(6000) * 1e-4, 2),
        ("i4", lambda r: r.integers(-(2**31), 2**31, 6000), 2),
        ("u2", lambda r: r.integers(0, 40, 6000), 1),  # heavy duplicates
    ],
    ids=["f8-narrow", "i8-narrow", "f8-nan", "f4-narrow", "i4", "u2-dups"],
)
def test_quantiles_with_refinement_passes(
    store: arraystore.Store,
    case: BackendCase,
    dtype: str,
    make: Callable[[np.random.Generator], np.ndarray],
    passes_min: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """memory=64KiB -> max_select = max(1024, 64KiB // 64) = 1024 values may be sorted
    at once, so 6000 values in one histogram bin need refinement passes (one pass = one
    call of ``stats._iter_blocks``) before the final selection."""
    x = make(np.random.default_rng(7)).astype(dtype).reshape(60, 100)
    arr = store.create(fresh(), data=x, chunks=(16, 40), **case.kwargs)
    passes: list[int] = []
    real = stats_mod._iter_blocks

    def counting(*args: Any) -> Any:
        passes.append(1)
        return real(*args)

    monkeypatch.setattr(stats_mod, "_iter_blocks", counting)
    q = [0.0, 0.001, 0.25, 0.5, 0.5001, 0.9, 0.999, 1.0]
    has_nan = bool(np.isnan(x).any()) if x.dtype.kind == "f" else False
    for skipna in (False, True):
        passes.clear()
        check_quantile(arr.quantile(q, skipna=skipna, memory="64KiB"), np_quantile(x, q, skipna))
        if has_nan and not skipna:
            assert len(passes) == 1  # NaN wins: no selection needed
            continue
        tight = len(passes)
        assert tight >= passes_min, tight
        passes.clear()
        check_quantile(arr.quantile(q, skipna=skipna), np_quantile(x, q, skipna))
        if passes_min > 2:  # a roomy default budget collects right after the first pass
            assert len(passes) == 2 < tight
    if dtype != "f4":  # (float32 with a scalar q: see the xfail test above)
        check_quantile(arr.median(memory="64KiB", skipna=True), np_quantile(x, 0.5, True))


def test_quantiles_structured(store: arraystore.Store, backend_case: BackendCase) -> None:
    x = structured_data()
    arr = store.create(fresh(), data=x, chunks=(4, 3), **backend_case.kwargs)
    res = arr.quantile([0.1, 0.5], skipna=True, memory="64KiB")
    assert list(res) == list(NUMERIC)
    for name in NUMERIC:
        check_quantile(res[name], np_quantile(x[name], [0.1, 0.5], True))
    check_quantile(arr.quantile(0.3, fields="price"), np_quantile(x["price"], 0.3, False))
    check_quantile(arr["vec"].quantile([0.5], skipna=True), np_quantile(x["vec"], [0.5], True))


# ============================================================ 3. histograms
@settings(SETTINGS, max_examples=30)
@given(data=st.data())
@pytest.mark.parametrize("case", backend_params(lambda c: c.codec in (None, "zstd:1")))
def test_histogram_matches_numpy(
    store: arraystore.Store, case: BackendCase, data: st.DataObject
) -> None:
    x, chunks = data.draw(stored_data(max_side=6))
    if x.size == 0 and x.dtype.kind == "f" and x.dtype.itemsize < 8:
        x = x.astype(np.float64)  # empty float32/16: see the xfail test below
    kind = data.draw(st.sampled_from(["int", "int+range", "edges", "auto"]), label="bins")
    kw: dict[str, Any] = {}
    if kind == "edges":
        edges = data.draw(st.lists(st.floats(-100, 100), min_size=2, max_size=6).map(sorted))
        kw["bins"] = np.array(edges)
    elif kind == "auto":
        kw["bins"] = data.draw(st.sampled_from(["auto", "sturges", "sqrt", "rice", "fd"]))
    else:
        kw["bins"] = data.draw(st.integers(1, 12))
    if kind == "int+range":
        lo = data.draw(st.floats(-50, 50))
        kw["range"] = (lo, lo + data.draw(st.floats(0, 50)))
    arr = store.create(fresh(), data=x, chunks=chunks, **case.kwargs)
    # np.histogram of the NaN-free data (arraystore skips NaN)
    clean = x[~np.isnan(x)] if x.dtype.kind == "f" else x
    if x.dtype.kind == "b":
        clean = clean.astype(np.uint8)
    try:
        arr.histogram(**kw)
    except InvalidArgument as e:  # billions of bins: numpy would try to allocate them
        if "bins (more than" in str(e):
            assert int(str(e).split(" gives ")[-1].split()[0]) > MAX_BINS
            return
    try:
        counts, edges = quiet(np.histogram, clean, **kw)
    except (ValueError, OverflowError):  # an infinite range or bin count, too many bins
        with pytest.raises(InvalidArgument):
            arr.histogram(**kw)
        return
    got_counts, got_edges = arr.histogram(**kw)
    np.testing.assert_array_equal(got_counts, counts.astype(np.int64), strict=True)
    np.testing.assert_array_equal(got_edges, edges, strict=True)


@pytest.mark.parametrize("case", backend_params(lambda c: c.codec in (None, "zstd:1")))
def test_histogram_auto_of_int_extremes(store: arraystore.Store, case: BackendCase) -> None:
    """int8 [-128, 127, 127] with bins='auto' gave [1 0 2], numpy [1 0 0 2] (numpy's IQR
    wraps ``b - a`` of the extreme neighbours; its estimators use that IQR)."""
    x = np.array([-128, 127, 127], np.int8)
    arr = store.create(fresh(), data=x, chunks=(2,), **case.kwargs)
    for bins in ("auto", "fd"):
        counts, edges = arr.histogram(bins=bins)
        want = np.histogram(x, bins=bins)
        np.testing.assert_array_equal(counts, want[0].astype(np.int64), strict=True)
        np.testing.assert_array_equal(edges, want[1], strict=True)


def test_histogram_refuses_billions_of_bins(store: arraystore.Store) -> None:
    """'fd' on a far outlier asks for 14e9 bins (numpy tries to allocate 104 GiB): a
    one-line error instead; an integer count over the cap too."""
    arr = store.create(fresh(), data=np.array([1.63931376e10, 1.0, 0.5, 0.0, 0.0]))
    with pytest.raises(InvalidArgument, match=r"^bins='fd' gives 14015935\d+ bins \(more"):
        arr.histogram(bins="fd")
    with pytest.raises(InvalidArgument, match=r"^asked for 100000001 bins"):
        arr.histogram(bins=MAX_BINS + 1)
    assert arr.histogram(bins="sturges")[0].sum() == 5


@pytest.mark.parametrize("dtype", ["f4", "f2"])
def test_histogram_of_empty_small_float_array(store: arraystore.Store, dtype: str) -> None:
    x = np.zeros((0, 3), dtype)
    arr = store.create(fresh(), data=x, backend="zarr", codec="none")
    counts, edges = arr.histogram(2)
    ref = np.histogram(x, 2)
    np.testing.assert_array_equal(counts, ref[0])
    np.testing.assert_array_equal(edges, ref[1], strict=True)  # float64 != float32
    with pytest.raises(InvalidArgument, match="Too many bins"):
        arr.histogram(1, range=(0.0, 1e-46))  # 1e-46 is 0 in float32


@pytest.mark.filterwarnings(LZ4_WARNING)
def test_histogram_structured(store: arraystore.Store) -> None:
    x = structured_data()
    arr = store.create(fresh(), data=x, chunks=(4, 3), backend="zarr", codec="lz4")
    res = arr.histogram(bins=7, range=(-3, 3), memory="64KiB")
    assert list(res) == list(NUMERIC)
    counts, edges = res["vec"]
    ref = np.histogram(x["vec"][~np.isnan(x["vec"])], bins=7, range=(-3, 3))
    np.testing.assert_array_equal(counts, ref[0].astype(np.int64))
    np.testing.assert_array_equal(edges, ref[1], strict=True)
    counts, edges = arr.histogram(bins=5, fields="price")
    ref = np.histogram(x["price"][~np.isnan(x["price"])], bins=5)
    np.testing.assert_array_equal(counts, ref[0])
    np.testing.assert_array_equal(edges, ref[1], strict=True)


# ============================================================ 5. memory budget
@pytest.fixture
def big_chunked(store: arraystore.Store) -> Any:
    """A zarr array whose single chunk (8 MiB) cannot fit a 1 MiB budget."""
    return store.create(
        "big", (1 << 20,), "f8", chunks=(1 << 20,), backend="zarr", codec="none", fill="zeros"
    )


def count_reads(monkeypatch: pytest.MonkeyPatch, arr: Any) -> list[Any]:
    calls: list[Any] = []
    for meth in ("read", "array"):
        real = getattr(arr.handle, meth, None)
        if real is None:
            continue

        def wrapper(*args: Any, _real: Any = real, **kw: Any) -> Any:
            calls.append(args)
            return _real(*args, **kw)

        monkeypatch.setattr(arr.handle, meth, wrapper)
    return calls


@pytest.mark.parametrize("executor", ["serial", "threads"])
def test_budget_refused_before_reading(
    big_chunked: Any, monkeypatch: pytest.MonkeyPatch, executor: str
) -> None:
    calls = count_reads(monkeypatch, big_chunked)
    need = format_size(8 * 2**20 + KERNEL_OVERHEAD)
    with pytest.raises(MemoryBudgetError) as info:
        big_chunked.sum(memory="1MiB", executor=executor)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"at least {need}" in msg and "1.0 MiB" in msg, msg
    with pytest.raises(MemoryBudgetError, match=f"at least {need}"):
        big_chunked.stats(memory=2**20, executor=executor)
    assert calls == []
    # the same plan with room to run
    assert big_chunked.sum(memory="64MiB", executor=executor) == 0.0


def test_budget_refused_memmap(store: arraystore.Store, monkeypatch: pytest.MonkeyPatch) -> None:
    arr = store.create("m", (100_000, 4), "f8", fill="range")  # blocks of 256 KiB
    calls = count_reads(monkeypatch, arr)
    with pytest.raises(MemoryBudgetError, match=r"needs at least .* but --memory is 1\.0 MiB"):
        arr.mean(memory="1MiB")
    assert calls == []


@pytest.mark.parametrize("case", backend_params(lambda c: c.codec in (None, "none")))
def test_tiny_arrays_need_only_their_size(store: arraystore.Store, case: BackendCase) -> None:
    """Q2: a 4-element array under --memory 1MiB was refused ("plan needs at least 4.0 MiB
    per task"): every task counted 4 MiB of kernel room. A block smaller than a leaf
    needs at most 8x its bytes of temporaries."""
    x = np.array([1.0, 2.0, 3.0, 6.0])  # var 3.5, mean 3, median 2.5: exact
    arr = store.create("t", data=x, **case.kwargs)
    for memory in ("1MiB", "4KiB", 1024):
        assert arr.var(memory=memory) == np.var(x)
        assert arr.stats(memory=memory)["t"]["mean"] == np.mean(x)
        assert arr.quantile(0.5, memory=memory) == np.median(x)
    with pytest.raises(
        MemoryBudgetError, match=r"needs at least \d+ B per task but --memory is 100 B"
    ):
        arr.sum(memory=100)


@pytest.mark.parametrize("what", ["quantile", "histogram"])
def test_quantile_and_histogram_budget_refused_before_reading(
    big_chunked: Any, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    calls = count_reads(monkeypatch, big_chunked)
    with pytest.raises(MemoryBudgetError, match="MiB"):
        if what == "quantile":
            big_chunked.quantile(0.5, memory="1MiB")
        else:
            big_chunked.histogram(10, memory="1MiB")
    assert calls == []


# ============================================================ 6. bad input
@pytest.fixture(scope="module")
def bad_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Arrays for the bad-input cases (module scope: nothing below writes to them)."""
    store = arraystore.open(tmp_path_factory.mktemp("bad") / "s.store", mode="a")
    x = structured_data((6, 2))
    return {
        "s": store.create("s", data=x, chunks=(3, 2), backend="zarr", codec="none"),
        "f": store.create("f", data=np.arange(12.0).reshape(3, 4)),
        "z": store.create("z", data=np.array([1 + 2j, 3 - 1j]), backend="zarr"),
        "e": store.create("e", data=np.zeros((0, 2))),
    }


BAD = [
    (
        "unknown field",
        lambda a: a["s"].sum(fields="nope"),
        FieldNotFound,
        r"^no field 'nope' \(fields: id, price, vec, qty, name\)$",
    ),
    (
        "unknown field in list",
        lambda a: a["s"].stats(fields=["price", "nope"]),
        FieldNotFound,
        r"^no field 'nope'",
    ),
    (
        "unknown field quantile",
        lambda a: a["s"].quantile(0.5, fields="nope"),
        FieldNotFound,
        r"^no field 'nope'",
    ),
    ("unknown field view", lambda a: a["s"]["nope"], FieldNotFound, r"^no field 'nope'"),
    (
        "fields on a plain array",
        lambda a: a["f"].sum(fields="x"),
        InvalidArgument,
        r"plain dtype: no fields to select",
    ),
    (
        "axis out of range",
        lambda a: a["f"].sum(axis=2),
        InvalidArgument,
        r"^axis 2 is out of bounds for array of dimension 2$",
    ),
    (
        "negative axis out of range",
        lambda a: a["f"].mean(axis=-3),
        InvalidArgument,
        r"^axis -3 is out of bounds for array of dimension 2$",
    ),
    (
        "axis in a tuple out of range",
        lambda a: a["s"].stats(axis=(0, 5)),
        InvalidArgument,
        r"^axis 5 is out of bounds",
    ),
    ("duplicate axis", lambda a: a["f"].sum(axis=(0, -2)), InvalidArgument, r"duplicate"),
    ("float axis", lambda a: a["f"].sum(axis=1.0), InvalidArgument, r"axis must be None"),
    (
        "argmin tuple axis",
        lambda a: a["f"].argmin(axis=(0, 1)),
        InvalidArgument,
        r"single int axis",
    ),
    (
        "quantile above 1",
        lambda a: a["f"].quantile(1.5),
        InvalidArgument,
        r"^quantiles must be in \[0, 1\], got 1\.5$",
    ),
    (
        "quantile below 0",
        lambda a: a["f"].quantile([0.5, -0.1]),
        InvalidArgument,
        r"^quantiles must be in \[0, 1\]",
    ),
    (
        "quantile nan",
        lambda a: a["f"].quantile(np.nan),
        InvalidArgument,
        r"^quantiles must be in \[0, 1\]",
    ),
    (
        "quantile of nothing",
        lambda a: a["f"].quantile([]),
        InvalidArgument,
        r"^quantiles must be in \[0, 1\]",
    ),
    (
        "quantile with a bad axis",
        lambda a: a["f"].quantile(0.5, axis=3),
        InvalidArgument,
        r"^axis 3 is out of bounds for array of dimension \d$",
    ),
    (
        "quantile of an empty array",
        lambda a: a["e"].quantile(0.5),
        InvalidArgument,
        r"^cannot compute quantiles of an empty array$",
    ),
    (
        "non-numeric field requested",
        lambda a: a["s"].sum(fields=["price", "name"]),
        InvalidArgument,
        r"^field 'name' has non-numeric dtype S8; cast it to a number first$",
    ),
    (
        "non-numeric field stats",
        lambda a: a["s"].stats(fields="name"),
        InvalidArgument,
        r"^field 'name' has non-numeric dtype S8",
    ),
    (
        "non-numeric field quantile",
        lambda a: a["s"].quantile(0.5, fields=["name"]),
        InvalidArgument,
        r"^field 'name' has non-numeric dtype S8",
    ),
    (
        "non-numeric field histogram",
        lambda a: a["s"].histogram(fields="name"),
        InvalidArgument,
        r"^field 'name' has non-numeric dtype S8",
    ),
    (
        "complex min",
        lambda a: a["z"].min(),
        InvalidArgument,
        r"^min not defined for complex dtype complex128$",
    ),
    (
        "complex argmax",
        lambda a: a["z"].argmax(),
        InvalidArgument,
        r"^argmax not defined for complex dtype complex128$",
    ),
    (
        "complex quantile",
        lambda a: a["z"].quantile(0.5),
        InvalidArgument,
        r"^quantiles are not defined for complex field 'z'$",
    ),
    (
        "complex histogram",
        lambda a: a["z"].histogram(),
        InvalidArgument,
        r"^histograms are not defined for complex field 'z'$",
    ),
    (
        "memory=0",
        lambda a: a["f"].sum(memory=0),
        InvalidArgument,
        r"^memory budget must be positive \(e\.g\. --memory 512MiB\)$",
    ),
    (
        "memory='0'",
        lambda a: a["f"].stats(memory="0B"),
        InvalidArgument,
        r"^memory budget must be positive",
    ),
    (
        "memory<0",
        lambda a: a["f"].sum(memory=-5),
        InvalidArgument,
        r"^memory budget must be positive",
    ),
    ("memory junk", lambda a: a["f"].sum(memory="lots"), InvalidArgument, r"^invalid size 'lots'"),
    (
        "memory=0 quantile",
        lambda a: a["f"].median(memory=0),
        InvalidArgument,
        r"^memory budget must be positive",
    ),
    (
        "memory=0 histogram",
        lambda a: a["f"].histogram(memory=0),
        InvalidArgument,
        r"^memory budget must be positive",
    ),
    (
        "unknown reduction",
        lambda a: a["f"].stats(ops=["sum", "median"]),
        InvalidArgument,
        r"^unknown reduction 'median' \(choose from: count, nan_count, sum, mean, std, min, "
        r"max, var, argmin, argmax, any, all, count_nonzero\)$",
    ),
    (
        "negative ddof",
        lambda a: a["f"].std(ddof=-1),
        InvalidArgument,
        r"^ddof must be a non-negative integer, got -1$",
    ),
    (
        "min of empty",
        lambda a: a["e"].min(),
        InvalidArgument,
        r"^zero-size array to reduction operation minimum which has no identity$",
    ),
    ("bad bins", lambda a: a["f"].histogram(bins=0), InvalidArgument, r"must be positive"),
    (
        "bad range",
        lambda a: a["f"].histogram(range=(2, 1)),
        InvalidArgument,
        r"max must be larger than min",
    ),
]


@pytest.mark.parametrize(("what", "call", "error", "match"), BAD, ids=[b[0] for b in BAD])
def test_bad_input(
    bad_store: dict[str, Any], what: str, call: Callable[[Any], Any], error: type, match: str
) -> None:
    with pytest.raises(error) as info:
        call(bad_store)
    assert type(info.value) is error, type(info.value)
    msg = str(info.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    assert re.search(match, msg), msg


# ============================================================ StatsResult
def test_stats_result_to_dict_to_json_round_trip(store: arraystore.Store) -> None:
    x = structured_data((5, 2))
    x["price"][0, 0] = np.inf
    x["vec"][1, 1, 2] = -np.inf
    x["price"][1] = np.nan  # the whole row: a NaN mean without skipping
    arr = store.create(fresh(), data=x, chunks=(2, 2), backend="zarr", codec="none")
    for axis, skipna in [(None, True), ((0, 1), False), (1, False), (0, True)]:
        res = arr.stats(axis=axis, skipna=skipna)
        d = res.to_dict()
        assert d["array"] == arr.name
        assert d["axis"] == (list(axis) if isinstance(axis, tuple) else axis)
        assert list(d["fields"]) == list(NUMERIC)
        assert d["bytes_read"] == res.nbytes and d["seconds"] == res.seconds
        assert d["gb_per_s"] is None or d["gb_per_s"] >= 0
        back = json.loads(res.to_json())
        assert back["axis"] == d["axis"] and back["array"] == d["array"]
        for name, stats in res.fields.items():
            for op, value in stats.items():
                plain = d["fields"][name][op]
                assert not isinstance(plain, (np.ndarray, np.generic))  # JSON-ready types
                np.testing.assert_array_equal(np.asarray(plain), np.asarray(value))
                # JSON: the same numbers (floats round-trip exactly), NaN/inf as strings
                decoded = np.asarray(
                    decode_specials(back["fields"][name][op]),
                    dtype=np.asarray(value).dtype,
                )
                np.testing.assert_array_equal(decoded, np.asarray(value), strict=True)
        text = json.dumps(back)
        assert "NaN" not in text and "Infinity" not in text
    res = arr.stats(skipna=False)
    back = json.loads(res.to_json())
    assert back["fields"]["price"]["mean"] == "nan"
    assert back["fields"]["vec"]["min"][2] == "-inf"
    assert back["fields"]["price"]["max"] == "nan"  # NaN propagates in max (numpy)
    res = arr.stats(skipna=True)
    assert json.loads(res.to_json())["fields"]["price"]["max"] == "inf"
    assert "price" in repr(res) and "StatsResult" in repr(res)


def decode_specials(v: Any) -> Any:
    if isinstance(v, list):
        return [decode_specials(i) for i in v]
    return {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}.get(v, v) if isinstance(v, str) else v


# ------------------------------------------ variance of offset data vs exact rationals
def exact_variance(x: np.ndarray, axis: int | None, ddof: int) -> np.ndarray:
    """Exact variance (Fractions) of the float64 values of ``x`` along ``axis``."""
    cols = x.astype(np.float64).reshape(-1, 1) if axis is None else np.moveaxis(x, axis, 0)
    out = np.empty(cols.shape[1:], dtype=object)
    for idx in np.ndindex(*out.shape):
        vals = [Fraction(float(v)) for v in cols[(slice(None), *idx)]]
        m = sum(vals, Fraction(0)) / len(vals)
        out[idx] = sum(((v - m) ** 2 for v in vals), Fraction(0)) / (len(vals) - ddof)
    return out.reshape(()) if axis is None else out


def tiny_or_zero_free(v: float) -> bool:
    """Zero, or large enough that its square is a normal float64."""
    return v == 0 or abs(v) >= 1e-100


def assert_exact(got: Any, exact: np.ndarray, sqrt: bool = False, rtol: float = 1e-12) -> None:
    """Relative error <= rtol vs the exact value (``sqrt``: vs sqrt of the exact variance);
    an exactly zero variance must come out (essentially) zero."""
    g = np.asarray(got, dtype=np.float64)
    assert g.shape == exact.shape
    for idx in np.ndindex(*exact.shape):
        want, v = exact[idx], float(g[idx])
        ref = Fraction(math.sqrt(want)) if sqrt else want
        if ref == 0:
            assert 0 <= v < 1e-300, (idx, v)
        else:
            assert abs(Fraction(v) - ref) <= rtol * ref, (idx, v, float(ref))


@settings(SETTINGS, max_examples=60)
@given(data=st.data())
@pytest.mark.parametrize("case", backend_params(lambda c: c.codec in (None, "none")))
def test_var_std_of_offset_data_exact_to_1e12(
    store: arraystore.Store, case: BackendCase, data: st.DataObject
) -> None:
    """Issue 15: ``1e9 + N(0,1)`` in zarr chunks of 50 had var relative error 9e-10
    (offset 1e12: 5e-6) because merges took each chunk's mean as its rounded sum / n.
    Offsets up to ±1e12, float64/float32, chunks of 1 and ragged ones, axis None and per
    axis, var/std (ddof 0, 1) and stats()' std/mean: within 1e-12 of exact rationals."""
    dtype = data.draw(st.sampled_from(["f8", "f4"]))
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=12))
    offset = data.draw(
        st.one_of(st.sampled_from([1e9, -1e9, 1e12, -1e12, 0.0]), st.floats(-1e12, 1e12))
    )
    # no |noise| in (0, 1e-100): squared deviations of ~1e-220 underflow float64 (numpy too)
    noise = data.draw(
        hnp.arrays(np.float64, shape, elements=st.floats(-3, 3).filter(tiny_or_zero_free))
    )
    x = (offset + noise).astype(dtype)
    chunks = tuple(data.draw(st.integers(1, n)) for n in shape)
    arr = store.create(fresh(), data=x, chunks=chunks, **case.kwargs)
    axis = data.draw(st.sampled_from([None, *range(x.ndim)]))
    executor = data.draw(st.sampled_from(["serial", "threads"]))
    n = x.size if axis is None else x.shape[axis]
    for ddof in (0, 1):
        if n <= ddof:
            continue
        exact = exact_variance(x, axis, ddof)
        assert_exact(arr.var(axis=axis, ddof=ddof, executor=executor), exact)
        assert_exact(arr.std(axis=axis, ddof=ddof, executor=executor), exact, sqrt=True)
        res = arr.stats(axis=axis, ddof=ddof, executor=executor)[arr.name]
        assert_exact(res["std"], exact, sqrt=True)
    cols = x.astype(np.float64).reshape(-1, 1) if axis is None else np.moveaxis(x, axis, 0)
    mean = np.asarray(arr.stats(axis=axis, executor=executor)[arr.name]["mean"])
    for idx in np.ndindex(*cols.shape[1:]):
        vals = [Fraction(float(v)) for v in cols[(slice(None), *idx)]]
        want = sum(vals, Fraction(0)) / len(vals)
        slack = Fraction(1, 10**12) * max(abs(want), max(abs(v) for v in vals) / 10)
        assert abs(Fraction(float(mean.reshape(cols.shape[1:])[idx])) - want) <= slack


NEAR_MAX = [
    ([1e308, 1e308], 0.0),
    ([1e308, -1e308], np.inf),  # 1e616: beyond float64
    ([1.7e308] * 3, 0.0),
    ([-1.7e308] * 3, 0.0),
    ([1.7e308, -1.7e308, 1.7e308], np.inf),
    ([1e308, 1e308, 1e307], np.inf),
    ([1.3e200, -1.3e200] * 3000, np.inf),  # the sum is finite, the squares are not
    ([1.7e308] * 300_000, 0.0),  # many leaves and tasks: the fast and numba paths too
]


@pytest.mark.parametrize(
    ("values", "want"), NEAR_MAX, ids=[f"{v[0]:g}x{len(v)}" for v, _ in NEAR_MAX]
)
@pytest.mark.parametrize("case", backend_params(lambda c: c.codec in (None, "none")))
@pytest.mark.parametrize("min_bytes", [None, "0"], ids=["default", "numba-always"])
def test_var_of_finite_values_near_the_float_maximum(
    store: arraystore.Store,
    case: BackendCase,
    values: list[float],
    want: float,
    min_bytes: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Q2: var([1e308, 1e308]) was NaN (0.0 in chunks of 1) and var([1e308, -1e308]) in
    chunks of 1 was NaN. Finite data: the exact 0 for equal values, inf when the exact
    variance exceeds float64 (numpy gives inf for both); never NaN. On the kernels small
    arrays take by default (numpy) and on the numba ones (when installed)."""
    if min_bytes is not None:
        monkeypatch.setenv("ARRAYSTORE_NUMBA_MIN_BYTES", min_bytes)
    x = np.array(values)
    for chunks in {(1,), (2,), (len(x),)}:
        if chunks != (len(x),) and len(x) > 10:
            continue
        arr = store.create(fresh(), data=x, chunks=chunks, **case.kwargs)
        for executor in ("serial", "threads"):
            assert arr.var(executor=executor) == want
            assert arr.std(executor=executor) == (0.0 if want == 0 else np.inf)
            assert arr.stats(executor=executor, ops=["var"])[arr.name]["var"] == want
        y = np.stack([x, x[::-1]], axis=1)  # per column (axis 0) and per row (axis 1)
        arr2 = store.create(fresh(), data=y, chunks=(chunks[0], 1), **case.kwargs)
        np.testing.assert_array_equal(arr2.var(axis=0), [want, want])
        row = arr2.var(axis=1)
        assert not np.isnan(row).any()
        np.testing.assert_array_equal(row, np.where(x == x[::-1], 0.0, np.inf))


@pytest.mark.parametrize("dtype", ["i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8"])
@pytest.mark.parametrize("case", backend_params(lambda c: c.codec in (None, "none")))
def test_median_of_extreme_ints_does_not_wrap(
    store: arraystore.Store, case: BackendCase, dtype: str
) -> None:
    """Issue 15: ``median()`` of int8 [-128, 127, 127, -128] gave 127.5 (numpy's quantile
    wraps ``b - a``); the median is -0.5. Exact Fraction medians, every int dtype."""
    info = np.iinfo(dtype)
    lo, hi = int(info.min), int(info.max)
    for vals in ([lo, hi, hi, lo], [lo, hi], [hi, hi], [lo, lo], [lo, 0, hi], [hi - 1, lo + 1]):
        x = np.array(vals, dtype=dtype)
        arr = store.create(fresh(), data=x, chunks=(1,), **case.kwargs)
        s = sorted(vals)
        k = len(s) // 2
        exact = Fraction(s[k]) if len(s) % 2 else Fraction(s[k - 1] + s[k], 2)
        got = arr.median()
        assert got == np.float64(float(exact)), (vals, got, float(exact))
        assert arr.quantile([0.5])[0] == got


# ------------------------------------------------ StatsResult indexed by statistic
@pytest.mark.parametrize("case", backend_params(lambda c: c.codec in (None, "none")))
@pytest.mark.parametrize("axis", [None, 0, 1])
def test_plain_stats_result_is_indexed_by_statistic(
    store: arraystore.Store, case: BackendCase, axis: Any
) -> None:
    """Issue 19: ``grid.stats(axis=0)["mean"]`` raised KeyError (the results were only
    keyed by the array's name). A plain array's result is indexed by statistic and has
    them as attributes; the old ``res[name][stat]`` still works; to_dict/JSON unchanged."""
    x = np.random.default_rng(5).normal(size=(6, 5))
    x[1, 2] = np.nan
    arr = store.create("grid", data=x, chunks=(4, 2), **case.kwargs)
    res = arr.stats(axis=axis, ops=["count", "nan_count", "sum", "mean", "std", "min", "max"])
    want = {
        "count": np.sum(~np.isnan(x), axis=axis),
        "nan_count": np.sum(np.isnan(x), axis=axis),
        "sum": np.nansum(x, axis=axis),
        "mean": np.nanmean(x, axis=axis),
        "std": np.nanstd(x, axis=axis),
        "min": np.nanmin(x, axis=axis),
        "max": np.nanmax(x, axis=axis),
    }
    for op, w in want.items():
        np.testing.assert_allclose(res[op], w, rtol=1e-12)
        np.testing.assert_array_equal(getattr(res, op), res[op])
        np.testing.assert_array_equal(res["grid"][op], res[op])  # the old form
        np.testing.assert_array_equal(getattr(res["grid"], op), res[op])
    doc = res.to_dict()
    assert list(doc["fields"]) == ["grid"]
    assert list(doc["fields"]["grid"]) == list(want)
    assert json.loads(res.to_json())["fields"]["grid"]["count"] == json_list(want["count"])
    with pytest.raises(KeyError, match="median"):
        res["median"]
    with pytest.raises(AttributeError, match="median"):
        res.median  # noqa: B018
    # a field view, and one field chosen by name, are one array's results too
    rec = np.zeros(6, dtype=[("price", "f8"), ("qty", "i4")])
    rec["price"] = x[:, 0]
    trades = store.create("trades", data=rec, **case.kwargs)
    for one in (trades["price"].stats(), trades.stats(fields="price")):
        assert one["mean"] == one.mean == one["price"]["mean"] == np.nanmean(x[:, 0])


def json_list(v: Any) -> Any:
    return np.asarray(v).tolist()


@pytest.mark.parametrize("case", backend_params(lambda c: c.codec in (None, "none")))
def test_structured_stats_result_field_then_statistic(
    store: arraystore.Store, case: BackendCase
) -> None:
    """A structured array's result: field, then statistic (``res["price"]["mean"]`` and
    ``res["price"].mean``); a field named like a statistic is a field (documented
    precedence), and ``res.mean`` is no shortcut for a structured array."""
    data = np.zeros(5, dtype=[("price", "f8"), ("mean", "i4"), ("qty", "u2")])
    data["price"] = [1.5, 2.5, np.nan, 4.0, -1.0]
    data["mean"] = [7, 8, 9, 10, 11]
    data["qty"] = [3, 0, 2, 1, 4]
    arr = store.create(fresh("t"), data=data, chunks=(2,), **case.kwargs)
    res = arr.stats(ddof=1)
    assert res["price"]["mean"] == res["price"].mean == np.nanmean(data["price"])
    assert res["price"].std == pytest.approx(np.nanstd(data["price"], ddof=1), rel=1e-12)
    assert res["mean"]["mean"] == res["mean"].mean == 9.0  # the field named "mean"
    assert res["mean"].max == 11
    assert res["qty"].sum == 10
    with pytest.raises(AttributeError, match=r"res\[field\]\.std"):
        res.std  # noqa: B018
    with pytest.raises(KeyError, match="price, mean, qty"):
        res["std"]
    with pytest.raises(AttributeError, match="median"):
        res["price"].median  # noqa: B018
    assert list(res.to_dict()["fields"]) == ["price", "mean", "qty"]
    assert isinstance(res["price"], dict)


def test_plain_array_named_like_a_statistic(store: arraystore.Store) -> None:
    """A plain array named like a statistic: the statistic wins over the old by-name form
    (``res.fields[name]`` still holds the per-array results)."""
    x = np.arange(6.0)
    arr = store.create("mean", data=x)
    res = arr.stats()
    assert res["mean"] == 2.5
    assert res.fields["mean"]["max"] == 5.0
    assert res["max"] == 5.0


def test_expression_stats_result_is_indexed_by_statistic(store: arraystore.Store) -> None:
    """``store`` expression stats (the CLI's ``stats --expr``) give one result too."""
    from arraystore.ops.map.blocks import reduce_expr

    data = np.zeros(4, dtype=[("price", "f8"), ("qty", "i4")])
    data["price"] = [1.0, 2.0, 3.0, 4.0]
    data["qty"] = [1, 2, 3, 4]
    store.create("t", data=data)
    res = reduce_expr(store, "price * qty", "t")
    assert res["mean"] == res.mean == np.mean(data["price"] * data["qty"])
    assert res["price * qty"]["sum"] == 30.0
