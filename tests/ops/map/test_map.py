"""Issue 5: chunk-wise map over stored arrays (``arraystore.ops.map.blocks``).

Every result is compared with the same computation done by numpy in memory, on every
backend case: ``map_blocks`` (functions; broadcasting incl. (3, 3) with (3,); inputs of
different chunkings; numpy inputs), ``map_expr`` (fields of one array, whole arrays),
``where`` (two passes; zero, some and all rows), ``reduce_expr`` (stats without storing).
Failures (a raising function, a wrong shape or dtype, a refused budget) name the region
and leave the store exactly as it was; an interrupted map resumes from its journal.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import arraystore
from arraystore.core.expr import evaluate
from arraystore.errors import (
    ArrayExists,
    ArrayStoreError,
    InvalidArgument,
    MemoryBudgetError,
    ShapeMismatch,
)
from arraystore.ops.map import blocks as mapping
from arraystore.ops.map import output as map_output
from arraystore.ops.map import where as map_where
from arraystore.ops.map.blocks import map_array, map_blocks, map_expr, reduce_expr, where
from arraystore.ops.verify import verify
from arraystore.testing import (
    LZ4_WARNING,
    BackendCase,
    FailingExecutor,
    assert_same,
    backend_params,
    listing,
)

pytestmark = pytest.mark.filterwarnings(LZ4_WARNING)

SETTINGS = settings(
    deadline=None,
    max_examples=8,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
REC = np.dtype([("id", "i8"), ("price", "f8"), ("qty", "i4"), ("flags", "u1"), ("vec", "f8", (3,))])
REPO = Path(__file__).resolve().parents[3]
_names = itertools.count()


@pytest.fixture(params=backend_params(lambda c: c.codec in (None, "none", "zstd:1")))
def backend_case(request: pytest.FixtureRequest) -> BackendCase:
    """memmap, zarr uncompressed and zarr zstd (the codecs are the backend's business,
    tested in test_backends.py; ``every_case`` below runs all of them)."""
    return request.param


@pytest.fixture(params=backend_params())
def every_case(request: pytest.FixtureRequest) -> BackendCase:
    return request.param


def fresh(prefix: str = "a") -> str:
    return f"{prefix}{next(_names)}"


def hidden(store: arraystore.Store) -> list[str]:
    return sorted(e for e in os.listdir(store.path) if e.startswith("."))


def records(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(n, dtype=REC)
    out["id"] = np.arange(n)
    out["price"] = rng.normal(size=n) * 10
    out["price"][:: max(1, n // 7)] = np.nan if n > 3 else 0
    out["qty"] = rng.integers(-5, 100, size=n)
    out["flags"] = rng.integers(0, 4, size=n)
    out["vec"] = rng.normal(size=(n, 3))
    return out


@st.composite
def broadcast_pair(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two numpy-broadcastable shapes (trailing dims dropped or set to 1)."""
    nd = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(0 if i else 1, 30 if i == 0 else 6)) for i in range(nd))
    keep = draw(st.integers(0, nd))
    other = list(shape[nd - keep :])
    for i in range(len(other)):
        if draw(st.booleans()):
            other[i] = 1
    if draw(st.booleans()):
        return tuple(other), shape
    return shape, tuple(other)


def chunking(shape: tuple[int, ...], draw: Callable[..., Any]) -> tuple[int, ...]:
    return tuple(draw(st.integers(1, max(1, n))) for n in shape)


def values(shape: tuple[int, ...], dtype: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return (rng.normal(size=shape) * 10).astype(dtype)
    if np.dtype(dtype).kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.integers(0, 50, size=shape).astype(dtype)


# ========================================================== 1. map_blocks
@settings(SETTINGS)
@given(data=st.data())
def test_map_blocks_equals_numpy_with_broadcasting(
    store: arraystore.Store, backend_case: BackendCase, data: st.DataObject
) -> None:
    sa, sb = data.draw(broadcast_pair(), label="shapes")
    da, db = data.draw(st.sampled_from(["f8", "f4", "i4", "i8", "u1", "b1"]), label="dtypes"), "f8"
    x, y = values(sa, da, 1), values(sb, db, 2)
    a = store.create(fresh(), data=x, chunks=chunking(sa, data.draw), **backend_case.kwargs)
    b = store.create(fresh(), data=y, chunks=chunking(sb, data.draw), **backend_case.kwargs)
    out_shape = np.broadcast_shapes(sa, sb)
    grid = chunking(out_shape, data.draw) if data.draw(st.booleans()) else None
    res = map_blocks(lambda p, q: p * 2 + q, a, b, out=fresh("o"), chunks=grid, workers=2)
    assert_same(res[...], x * 2 + y)
    assert res.backend == backend_case.backend
    assert hidden(store) == []


def test_broadcast_3x3_with_3(store: arraystore.Store, every_case: BackendCase) -> None:
    backend_case = every_case
    x = np.arange(9.0).reshape(3, 3)
    v = np.array([10, 20, 30], dtype="i4")
    a = store.create("m", data=x, chunks=(1, 2), **backend_case.kwargs)
    b = store.create("v", data=v, chunks=(2,), **backend_case.kwargs)
    for args, want in [((a, b), x + v), ((b, a), v + x)]:
        res = map_blocks(np.add, *args, out="r", overwrite=True)
        assert_same(res[...], want)
    # an in-memory numpy input broadcasts the same way, and names work as inputs
    res = map_blocks(lambda p, q: p * q, "m", np.array([1.0, 0.0, -1.0]), out="r2", store=store)
    assert_same(res[...], x * np.array([1.0, 0.0, -1.0]))
    # (4, 1) with (1, 3): neither input is materialised at (4, 3)
    c = store.create("col", data=np.arange(4.0).reshape(4, 1), **backend_case.kwargs)
    d = store.create("row", data=np.arange(3.0).reshape(1, 3), **backend_case.kwargs)
    seen: list[tuple[tuple[int, ...], tuple[int, ...]]] = []

    def outer(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        seen.append((p.shape, q.shape))
        return p * q

    res = map_blocks(outer, c, d, out="outer", chunks=(2, 3), executor="serial")
    assert_same(res[...], np.arange(4.0).reshape(4, 1) * np.arange(3.0).reshape(1, 3))
    assert set(seen) == {((1, 1), (1, 1)), ((2, 1), (1, 3))}  # tiny probe, then 2 blocks
    with pytest.raises(ShapeMismatch, match=r"cannot be broadcast together: m \(3, 3\)"):
        map_blocks(np.add, a, np.zeros(4), out="bad")


def test_inputs_of_different_chunkings_and_grid(store: arraystore.Store) -> None:
    x, y = values((50, 7), "f8", 1), values((50, 7), "i4", 2)
    a = store.create("a", data=x, chunks=(9, 4), backend="zarr")
    b = store.create("b", data=y, chunks=(4, 7), backend="zarr", codec="zstd:1")
    res = map_blocks(lambda p, q: p - q, a, b, out="d")
    assert_same(res[...], x - y)
    assert res.chunks == (9, 4) and res.codec == "none"  # the first zarr input's grid
    res = map_blocks(lambda p, q: p - q, b, a, out="e")
    assert res.chunks == (4, 7) and res.codec.startswith("zstd")
    m = store.create("mm", data=x)
    res = map_blocks(lambda p, q: p - q, m, b, out="f", backend="memmap")
    assert_same(res[...], x - y)
    assert res.backend == "memmap"


def test_structured_and_field_inputs(store: arraystore.Store, backend_case: BackendCase) -> None:
    data = records(500)
    t = store.create("t", data=data, chunks=(64,), **backend_case.kwargs)
    w = np.array([1.0, -2.0, 0.5])
    res = map_blocks(lambda v, w: v * w, t["vec"], w, out="vw", chunks=(100, 2))
    assert_same(res[...], data["vec"] * w)
    res = map_blocks(np.multiply, t["price"], t["qty"], out="pq", chunks=(90,))
    assert_same(res[...], data["price"] * data["qty"])

    def rescale(rec: np.ndarray) -> np.ndarray:
        out = rec.copy()
        out["price"] *= 2
        return out

    res = map_blocks(rescale, t, out="t2")
    want = data.copy()
    want["price"] *= 2
    assert_same(res[...], want)
    assert res.dtype == REC


def test_dtype_inferred_or_declared(store: arraystore.Store) -> None:
    x = np.arange(100, dtype="i2")
    a = store.create("a", data=x, chunks=(30,))
    res = map_blocks(lambda b: b / 2, a, out="half")  # inferred from a one-element block
    assert res.dtype == np.float64
    res = map_blocks(lambda b: (b / 2).astype("f4"), a, out="h4", dtype="f4")
    assert_same(res[...], (x / 2).astype("f4"))
    with pytest.raises(ShapeMismatch, match=r"returned dtype float64 on region \[0:1\], expected"):
        map_blocks(lambda b: b / 2, a, out="bad", dtype="f4")
    assert "bad" not in store


def test_history_attrs_and_overwrite(store: arraystore.Store) -> None:
    a = store.create("a", data=np.arange(10.0))
    res = map_blocks(np.sqrt, a, out="s", attrs={"unit": "m"})
    assert res.attrs == {"unit": "m"}
    (h,) = res.meta.history
    assert h["op"] == "map" and h["function"] == "numpy.sqrt" and h["inputs"] == ["a"]
    with pytest.raises(ArrayExists):
        map_blocks(np.sqrt, a, out="s")
    res = map_blocks(np.negative, a, out="s", overwrite=True)
    assert_same(res[...], -np.arange(10.0))
    # out may replace one of its own inputs (the source is untouched until the commit)
    res = map_blocks(lambda b: b + 1, a, out="a", overwrite=True)
    assert_same(store["a"][...], np.arange(10.0) + 1)
    assert hidden(store) == []


def test_map_array_dispatch(store: arraystore.Store) -> None:
    t = store.create("t", data=records(40))
    assert_same(map_array(t, "price * 2", out="p2")[...], records(40)["price"] * 2)
    res = map_array(t["qty"], lambda q, w: q * w, np.int32(3), out="q3")
    assert_same(res[...], records(40)["qty"] * np.int32(3))
    with pytest.raises(InvalidArgument, match="no other inputs"):
        map_array(t, "price", t, out="x")


# ============================================================ 2. failures
def test_failing_function_names_region_and_leaves_nothing(
    store: arraystore.Store, backend_case: BackendCase
) -> None:
    x = np.arange(1000.0).reshape(100, 10)
    a = store.create("a", data=x, chunks=(25, 10), **backend_case.kwargs)
    before = listing(store.path)

    def boom(b: np.ndarray) -> np.ndarray:
        if b.size > 1 and b.min() >= 500:
            raise ZeroDivisionError("no good")
        return b

    msg = r"map function failed on region \[50:75, 0:10\]: ZeroDivisionError: no good"
    with pytest.raises(ArrayStoreError, match=msg) as info:
        map_blocks(boom, a, out="o", chunks=(25, 10), executor="serial")
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert listing(store.path) == before

    def short(b: np.ndarray) -> np.ndarray:
        return b if b.shape[0] == 1 else b[:-1]

    with pytest.raises(ShapeMismatch, match=r"shape \(24, 10\) on region \[0:25, 0:10\]"):
        map_blocks(short, a, out="o", chunks=(25, 10), workers=2)
    assert listing(store.path) == before

    def drift(b: np.ndarray) -> np.ndarray:
        return b if b.flat[0] < 500 else b.astype("f4")

    with pytest.raises(ShapeMismatch, match=r"dtype float32 on region \[50:75, 0:10\]"):
        map_blocks(drift, a, out="o", chunks=(25, 10), executor="serial")
    with pytest.raises(ShapeMismatch, match=r"returned list on region \[0:1, 0:1\]"):
        map_blocks(lambda b: b.tolist(), a, out="o")
    with pytest.raises(InvalidArgument, match="must be callable"):
        map_blocks("sqrt", a, out="o")  # type: ignore[arg-type]
    assert listing(store.path) == before


def test_failing_expression_leaves_nothing(store: arraystore.Store) -> None:
    store.create("t", data=records(100))
    before = listing(store.path)
    for expr, match in [
        ("~price", r"cannot evaluate expression '~price': TypeError"),
        ("price + nope", r"unknown name 'nope'.*\(fields: flags, id, price, qty, vec\)"),
        ("price.__class__", "attribute access"),
        ("1 + 2", "uses no fields or arrays"),
    ]:
        with pytest.raises(InvalidArgument, match=match):
            map_expr(store, expr, "t", out="o")
    with pytest.raises(ShapeMismatch, match=r"broadcast together: t.price \(100,\), t.vec"):
        map_expr(store, "price * vec", "t", out="o")
    with pytest.raises(InvalidArgument, match="cannot be stored as int32"):
        map_expr(store, "price * 2", "t", out="o", dtype="i4")
    with pytest.raises(InvalidArgument, match=r"arrays: t\)"):
        map_expr(store, "price * 2", out="o")
    assert listing(store.path) == before


def test_budget_is_checked_before_writing(
    store: arraystore.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = values((1_000_000,), "f8", 1)
    store.create("a", data=x)
    store.create("b", data=x[::-1].copy())
    before = listing(store.path)
    with pytest.raises(MemoryBudgetError):
        map_expr(store, "a * 2 + b", out="o", memory="1MiB")
    assert listing(store.path) == before
    plans: list[tuple[int, int]] = []
    orig = map_output.run

    def spy(plan: Any, ex: Any, budget: int, **kw: Any) -> Any:
        plans.append((plan.check(budget, ex.workers) * plan.max_task_bytes, budget))
        return orig(plan, ex, budget, **kw)

    monkeypatch.setattr(map_output, "run", spy)
    res = map_expr(store, "a * 2 + b", out="o", memory="24MiB", workers=2)
    assert_same(res[...], x * 2 + x[::-1])
    ((in_flight_bytes, budget),) = plans
    assert in_flight_bytes <= budget
    assert len(list(res.handle.chunk_regions())) > 1  # several row blocks


def test_progress_reports_bytes_read(store: arraystore.Store) -> None:
    x = values((1_000, 8), "f8", 1)
    a = store.create("a", data=x)
    store.create("b", data=x[::-1].copy(), backend="zarr", chunks=(100, 8))
    seen: list[int] = []
    map_expr(store, "a + b", out="o", progress=lambda t, n: seen.append(n))
    assert len(seen) == 10 and sum(seen) == 2 * a.nbytes  # the zarr input's 10 chunks
    seen.clear()
    reduce_expr(store, "a - b", progress=lambda t, n: seen.append(n))
    assert sum(seen) == 2 * a.nbytes
    with pytest.raises(InvalidArgument, match="attrs must be JSON"):
        map_expr(store, "a + b", out="o2", attrs={"x": float("nan")})
    assert "o2" not in store and hidden(store) == []


# ============================================================ 3. map_expr
EXPRS = [
    "price * qty",
    "log1p(abs(price))",
    "where(isnan(price), 0, price) + flags",
    "0 < price <= 5 and qty > 10 or flags == 3",
    "float32(price) * 2.5",
    "price if qty > 50 else -qty",
    "vec * 2 - 1",
    "clip(qty, 0, 10) // 3 % 2",
]


@pytest.mark.parametrize("expr", EXPRS)
def test_map_expr_over_fields_equals_numpy(
    store: arraystore.Store, backend_case: BackendCase, expr: str
) -> None:
    data = records(3_000)
    store.create("t", data=data, chunks=(256,), **backend_case.kwargs)
    env = {k: data[k] for k in REC.names or ()}
    want = evaluate(expr, env)
    res = map_expr(store, expr, "t", out="o", chunks=(500, 3) if "vec" in expr else 500)
    assert_same(res[...], np.asarray(want))
    assert res.meta.history[0]["expr"] == expr


def test_map_expr_known_values(store: arraystore.Store) -> None:
    data = records(1_000)
    store.create("t", data=data)
    p, q = data["price"], data["qty"]
    assert_same(map_expr(store, "price * qty", "t", out="n")[...], p * q)
    with np.errstate(all="ignore"):
        assert_same(map_expr(store, "log(price)", "t", out="l")[...], np.log(p))
    res = map_expr(store, "price * qty", "t", out="n4", dtype="f4")
    assert_same(res[...], (p * q).astype("f4"))


@settings(SETTINGS)
@given(data=st.data())
def test_map_expr_whole_arrays_broadcast(
    store: arraystore.Store, backend_case: BackendCase, data: st.DataObject
) -> None:
    sa, sb = data.draw(broadcast_pair(), label="shapes")
    x, y = values(sa, "f8", 3), values(sb, "i4", 4)
    na, nb = fresh("x"), fresh("y")
    store.create(na, data=x, chunks=chunking(sa, data.draw), **backend_case.kwargs)
    store.create(nb, data=y, chunks=chunking(sb, data.draw), **backend_case.kwargs)
    expr = data.draw(st.sampled_from(["{a} * 2 + {b}", "maximum({a}, {b}) - {a}", "{b} - {a}"]))
    text = expr.format(a=na, b=nb)
    res = map_expr(store, text, out=fresh("o"), workers=2)
    assert_same(res[...], np.asarray(evaluate(text, {na: x, nb: y})))


def test_plain_array_by_name(store: arraystore.Store, backend_case: BackendCase) -> None:
    x = values((40, 5), "f4", 1)
    store.create("x", data=x, chunks=(7, 2), **backend_case.kwargs)
    assert_same(map_expr(store, "x * x", "x", out="sq")[...], x * x)
    with pytest.raises(InvalidArgument, match=r"unknown name 'y'.*\(names: x\)"):
        map_expr(store, "y", "x", out="o")


def test_executors_agree(store: arraystore.Store) -> None:
    data = records(5_000)
    store.create("t", data=data, chunks=(300,), backend="zarr")
    a = map_expr(store, "sqrt(abs(price)) * qty", "t", out="a", executor="serial")[...]
    b = map_expr(store, "sqrt(abs(price)) * qty", "t", out="b", workers=2)[...]
    assert a.tobytes() == b.tobytes()


# =============================================================== 4. where
@settings(SETTINGS, max_examples=5)
@given(threshold=st.sampled_from([-1e9, -5.0, 0.0, 3.0, 1e9]), chunk=st.integers(50, 400))
def test_where_equals_numpy(
    store: arraystore.Store, backend_case: BackendCase, threshold: float, chunk: int
) -> None:
    data = records(1_200, seed=chunk)
    name = fresh("t")
    store.create(name, data=data, chunks=(chunk,), **backend_case.kwargs)
    cond = f"price > {threshold}"
    res = where(store, name, cond, fresh("w"), memory="8MiB")
    assert_same(res[...], data[data["price"] > threshold])
    assert res.backend == backend_case.backend
    assert res.meta.history[0]["op"] == "where"
    res = where(store, name, f"{cond} and qty % 3 == 0", fresh("w"), expr="price * qty")
    keep = (data["price"] > threshold) & (data["qty"] % 3 == 0)
    assert_same(res[...], data["price"][keep] * data["qty"][keep])
    assert hidden(store) == []


def test_where_zero_rows(store: arraystore.Store, every_case: BackendCase) -> None:
    backend_case = every_case
    data = records(500)
    store.create("t", data=data, chunks=(64,), **backend_case.kwargs)
    res = where(store, "t", "price > 1e300", "none")
    assert res.shape == (0,) and res.dtype == REC
    assert_same(res[...], data[:0])
    res = where(store, "t", "qty < -100", "none2", expr="vec * 2")
    assert res.shape == (0, 3) and res.dtype == np.float64
    res = where(store, "t", "flags >= 0", "all")
    assert_same(res[...], data)
    empty = store.create("e", data=records(0), **backend_case.kwargs)
    assert where(store, "e", "price > 0", "e2").shape == (0,)
    assert empty.shape == (0,)


def test_where_many_chunks_and_sparse(store: arraystore.Store) -> None:
    """A selective condition: output chunks gather rows from many input blocks."""
    n = 50_000
    x = np.arange(n, dtype="i8")
    store.create("x", data=x, chunks=(1_000,), backend="zarr")
    res = where(store, "x", "x % 997 == 0", "sel", workers=2)
    assert_same(res[...], x[x % 997 == 0])
    res = where(store, "x", "(x % 3 == 0) | (x > 40000)", "dense", workers=2)
    assert_same(res[...], x[(x % 3 == 0) | (x > 40_000)])
    assert res.chunks == (1_000,)


def test_where_memmap_row_blocks(store: arraystore.Store) -> None:
    """A small budget: many memmap row blocks (records read once per block for both the
    condition and the selected rows); serial and threads agree."""
    data = records(20_000)
    store.create("t", data=data)
    for cond in ("price > 0", "qty % 7 == 0 and flags != 1", "isnan(price)"):
        want = data[evaluate(cond, {k: data[k] for k in REC.names or ()})]
        a = where(store, "t", cond, "a", memory="4MiB", executor="serial", overwrite=True)
        b = where(store, "t", cond, "b", memory="4MiB", workers=2, overwrite=True)
        assert_same(a[...], want)
        assert_same(b[...], want)
        assert a.chunks[0] < 2_000 or len(a) < 2_000


def test_where_whole_arrays_and_errors(store: arraystore.Store) -> None:
    a, b = values((300, 4), "f8", 1), values((300,), "i4", 2)
    store.create("a", data=a, chunks=(50, 4))
    store.create("b", data=b, backend="zarr", chunks=(70,))
    res = where(store, None, "b > 20", "sel", expr="a")
    assert_same(res[...], a[b > 20])
    before = listing(store.path)
    with pytest.raises(InvalidArgument, match="one boolean per row"):
        where(store, None, "a > 0", "bad", expr="b")
    with pytest.raises(InvalidArgument, match="one boolean per row, got int32"):
        where(store, None, "b", "bad", expr="a")
    with pytest.raises(InvalidArgument, match="needs expr="):
        where(store, None, "b > 0", "bad")
    store.create("z", data=np.zeros(10))
    before = listing(store.path)
    with pytest.raises(ShapeMismatch, match="same number of rows"):
        where(store, None, "b > 0", "bad", expr="z")
    assert listing(store.path) == before


# =============================================================== 5. stats
@pytest.mark.parametrize("axis", [None, 0])
def test_reduce_expr_equals_numpy(
    store: arraystore.Store, backend_case: BackendCase, axis: int | None
) -> None:
    data = records(4_000)
    store.create("t", data=data, chunks=(512,), **backend_case.kwargs)
    before = listing(store.path)
    res = reduce_expr(store, "price * qty", "t", axis=axis)
    with np.errstate(all="ignore"):
        v = data["price"] * data["qty"]
    d = res["price * qty"]
    assert d["count"] == np.count_nonzero(~np.isnan(v))
    np.testing.assert_allclose(d["mean"], np.nanmean(v), rtol=1e-12)
    np.testing.assert_allclose(d["std"], np.nanstd(v), rtol=1e-12)
    assert d["min"] == np.nanmin(v) and d["max"] == np.nanmax(v)
    assert listing(store.path) == before  # nothing stored
    res = reduce_expr(store, "vec * 2", "t", ops=("sum", "max"), axis=axis, skipna=False)
    np.testing.assert_allclose(res["vec * 2"]["sum"], (data["vec"] * 2).sum(axis=axis))
    res = reduce_expr(store, "price > 0", "t", ops=("mean", "count_nonzero"))
    assert res["price > 0"]["count_nonzero"] == np.count_nonzero(data["price"] > 0)


def test_reduce_expr_whole_arrays(store: arraystore.Store) -> None:
    x, y = values((64, 3), "f4", 1), values((3,), "f8", 2)
    store.create("x", data=x, chunks=(10, 3), backend="zarr")
    store.create("y", data=y)
    res = reduce_expr(store, "x * y", ops=("sum", "min"), axis=0, executor="serial")
    np.testing.assert_allclose(res["x * y"]["sum"], (x * y).sum(axis=0), rtol=1e-12)
    assert_same(res["x * y"]["min"], (x * y).min(axis=0))
    assert res.to_dict()["array"] == store.path.name
    with pytest.raises(InvalidArgument, match="unknown reduction"):
        reduce_expr(store, "x", ops=("median",))


# ============================================================== 6. resume
def _interrupt_after(monkeypatch: pytest.MonkeyPatch, name: str, n: int) -> list[int]:
    """The n-th task ``<name>`` (of :mod:`.mapping` or :mod:`.map_where`) raises
    KeyboardInterrupt after writing its block. Only where a ``FailingExecutor`` cannot
    aim: at the second (select) pass of ``where``, whatever the first pass's length."""
    module = map_where if name == "_select_task" else mapping
    orig = getattr(module, name)
    calls = [0]

    def task(*args: Any) -> Any:
        result = orig(*args)
        calls[0] += 1
        if calls[0] == n:
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(module, name, task)
    return calls


def test_interrupted_map_resumes(store: arraystore.Store, backend_case: BackendCase) -> None:
    data = records(2_000)
    store.create("t", data=data, chunks=(100,), **backend_case.kwargs)
    with pytest.raises(KeyboardInterrupt):
        map_expr(store, "price * qty", "t", out="n", chunks=200, executor=FailingExecutor(3))
    (tmp,) = hidden(store)
    assert tmp.startswith(".n.tmp-") and "n" not in store
    with pytest.raises(InvalidArgument, match=r"interrupted map into 'n' exists.*--resume"):
        map_expr(store, "price * qty", "t", out="n")
    with pytest.raises(InvalidArgument, match="different job"):
        map_expr(store, "price + qty", "t", out="n", resume=True)
    ex = FailingExecutor()
    res = map_expr(store, "price * qty", "t", out="n", resume=True, executor=ex)
    assert ex.ran == 10 - 3  # the journalled blocks are not redone
    assert_same(res[...], data["price"] * data["qty"])
    assert hidden(store) == []
    with pytest.raises(InvalidArgument, match="nothing to resume"):
        map_expr(store, "price * qty", "t", out="m", resume=True)


@pytest.mark.parametrize(
    ("backend", "how"),
    [
        ("memmap", "create"),
        ("memmap", "mv"),
        ("memmap", "write"),
        ("zarr", "create"),
        ("zarr", "mv"),
        ("zarr", "write"),
        ("zarr", "write-one"),  # one value of one chunk, at once (no clock tick between)
    ],
)
def test_resume_refused_when_an_input_changed(
    store: arraystore.Store, backend: str, how: str
) -> None:
    """An interrupted map whose input was replaced (create --overwrite, mv --overwrite:
    same name, shape and dtype) or written to since (memmap: the data file's mtime; zarr,
    was not detected: its chunk files' names, inodes, sizes and mtimes): a resume would
    mix blocks of the old input with blocks of the new one. Refused as a different job."""
    x = np.arange(2_000.0)
    store.create("x", data=x, chunks=(100,), backend=backend)
    with pytest.raises(KeyboardInterrupt):
        map_expr(store, "x * 2", out="n", chunks=200, executor=FailingExecutor(3))
    y = np.full(2_000, 7.0)
    if how == "create":
        store.create("x", data=y, chunks=(100,), backend=backend, overwrite=True)
    elif how == "mv":
        store.create("y", data=y, chunks=(100,), backend=backend)
        store.rename("y", "x", overwrite=True)
    elif how == "write-one":
        y = x.copy()
        y[1_234] = -1.0
        store["x"][1_234] = -1.0
    else:
        time.sleep(0.01)  # (a coarse file system clock)
        store["x"][...] = y
    with pytest.raises(InvalidArgument, match="different job"):
        map_expr(store, "x * 2", out="n", chunks=200, resume=True, executor="serial")
    verify(store, repair=True)
    res = map_expr(store, "x * 2", out="n", chunks=200, executor="serial")
    assert_same(res[...], y * 2)


@pytest.mark.parametrize("backend", ["memmap", "zarr"])
def test_interrupted_where_resumes_and_verify_repairs(
    store: arraystore.Store, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    data = records(20_000)
    store.create("t", data=data, chunks=(2_500,), backend=backend)
    with monkeypatch.context() as m:
        _interrupt_after(m, "_select_task", 2)
        with pytest.raises(KeyboardInterrupt):
            where(store, "t", "qty > 20", "w", executor="serial", memory="4MiB")
    assert len(hidden(store)) == 1
    res = where(store, "t", "qty > 20", "w", resume=True, memory="4MiB")
    assert_same(res[...], data[data["qty"] > 20])
    # a leftover of an interrupted map is what `verify --repair` removes
    with pytest.raises(KeyboardInterrupt):
        map_expr(store, "qty * 2", "t", out="q", executor=FailingExecutor(1))
    report = verify(store, repair=True)
    assert [f.kind for f in report.findings if f.name == "q"] == ["leftover"]
    assert hidden(store) == []


# ============================================================= 7. example
def test_feature_engineering_example(tmp_path: Path) -> None:
    script = REPO / "examples" / "feature_engineering.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--rows", "20000", "--store", str(tmp_path / "fe.store")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "notional" in proc.stdout and "rows kept" in proc.stdout
    store = arraystore.open(tmp_path / "fe.store", mode="r")
    assert {"trades", "notional", "logp", "positive"} <= set(store.names())


def test_memmap_expression_runs_in_cache_sized_pieces(
    store: arraystore.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """memmap inputs and output: each task evaluates its block in row pieces
    (``SUB_BLOCK``), broadcasting included; a user function still gets whole blocks."""
    rng = np.random.default_rng(8)
    a = rng.standard_normal((1_000, 6))
    b = rng.standard_normal((6,))
    store.create("a", data=a, backend="memmap")
    store.create("b", data=b, backend="memmap")
    monkeypatch.setattr(mapping, "SUB_BLOCK", 3 * 6 * 8 * 41)  # 41 rows of a, b, out
    rows: list[int] = []
    real = type(store["a"].handle).read

    def counting(self: Any, region: Any, *args: Any, **kw: Any) -> Any:
        if self.meta.shape == a.shape:
            rows.append(region[0].stop - region[0].start)
        return real(self, region, *args, **kw)

    monkeypatch.setattr(type(store["a"].handle), "read", counting)
    out = map_expr(store, "a * 2 + b", out="o", memory="64MiB")
    got = rows.copy()
    assert_same(out[...], a * 2 + b)
    assert max(got) == 41 and sum(got) == 1_000  # (the dtype probe reads 0 rows)
    rows.clear()
    seen: list[int] = []

    def fn(x: np.ndarray) -> np.ndarray:
        seen.append(len(x))
        return x * 3

    out = map_blocks(fn, store["a"], out="f", chunks=(500, 6))
    assert_same(out[...], a * 3)
    assert sorted(seen)[-2:] == [500, 500]  # whole blocks (after the 1-row probe)
