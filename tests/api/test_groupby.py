"""``Array.groupby`` / ``unique`` / ``value_counts`` / ``nunique`` on stored arrays vs pandas.

Float results are compared with pandas at a tolerance (the summation order differs);
counts, sizes, int sums, min/max, first/last and quantiles exactly. Results must be the
same bits for every chunking, backend, executor and worker count: the engine tiles the
rows in fixed blocks (``engine.BLOCK_ELEMENTS``, lowered here so that a small array
spans many tasks and their merge is exercised).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from arraystore.errors import FieldNotFound, InvalidArgument, MemoryBudgetError
from arraystore.ops.groupby import engine
from arraystore.testing import listing

OPS = ("size", "count", "sum", "mean", "std", "var", "min", "max", "first", "last")
DT = np.dtype([("k", "i2"), ("s", "S3"), ("f", "f8"), ("x", "f4"), ("q", "i8"), ("b", "?")])


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "BLOCK_ELEMENTS", 16)


def _data(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = np.zeros(n, DT)
    d["k"] = rng.integers(-3, 4, n)
    d["s"] = rng.choice([b"a", b"bc", b"", b"zzz"], n)
    d["f"] = rng.normal(0, 1e3, n)
    d["f"][rng.random(n) < 0.2] = np.nan
    d["x"] = rng.choice([np.nan, 1.5, -2.0, 0.0, 7.0], n)
    d["q"] = rng.integers(-(2**40), 2**40, n)
    d["b"] = rng.random(n) < 0.5
    return d


def _check(res, df: pd.DataFrame, by: list[str], fields: list[str], dropna: bool = True) -> None:
    g = df.groupby(by, dropna=dropna, sort=True)
    size = g.size()
    assert res.size.tolist() == size.tolist()
    for i, name in enumerate(by):
        want = size.index.get_level_values(i).to_numpy()
        got = res.keys[name]
        np.testing.assert_array_equal(got, want.astype(got.dtype))
    for f in fields:
        col = g[f]
        for op in ("count", "min", "max", "first", "last"):
            np.testing.assert_array_equal(res[f][op], getattr(col, op)().to_numpy())
        if df[f].dtype.kind in "iub":
            assert res[f]["sum"].tolist() == col.sum().tolist()
        else:
            np.testing.assert_allclose(res[f]["sum"], col.sum(), rtol=1e-10, atol=1e-6)
        np.testing.assert_allclose(res[f]["mean"], col.mean(), rtol=1e-10, atol=1e-9)
        for ddof in (1,):
            np.testing.assert_allclose(res[f]["std"], col.std(ddof=ddof), rtol=1e-8, atol=1e-9)
            np.testing.assert_allclose(res[f]["var"], col.var(ddof=ddof), rtol=1e-8, atol=1e-9)
        if df[f].dtype.kind == "b":  # pandas refuses quantiles of bools
            continue
        np.testing.assert_allclose(res[f]["quantile"][:, 0], col.quantile(0.3), rtol=1e-12)
        np.testing.assert_allclose(res[f]["quantile"][:, 1], col.quantile(1.0), rtol=1e-12)


@pytest.mark.parametrize(
    "by", [["k"], ["s"], ["b"], ["x"], ["k", "s"], ["s", "x"]], ids=lambda b: "+".join(b)
)
@pytest.mark.parametrize("dropna", [True, False])
def test_groupby_equals_pandas(store, small_blocks, by, dropna) -> None:
    d = _data(300)
    arr = store.create("t", data=d, chunks=37)
    fields = [f for f in ("f", "q", "b", "x") if f not in by]
    res = arr.groupby(by, dropna=dropna).stats(fields, (*OPS, "quantile"), ddof=1, q=[0.3, 1])
    # float32 is accumulated in float64 (documented): compare with pandas on float64
    cols = {n: d[n].astype(object) if n == "s" else d[n] for n in DT.names}
    df = pd.DataFrame({**cols, "x": d["x"].astype(np.float64)})
    _check(res, df, by, fields, dropna)


@pytest.fixture(scope="module")
def dask_ex() -> Iterator[Any]:
    """A DaskExecutor on an in-process cluster (None without ``distributed``)."""
    try:
        import distributed
    except ImportError:
        yield None
        return
    from arraystore.engine.executors.dask import DaskExecutor

    with distributed.Client(
        processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
    ) as client:
        yield DaskExecutor(client=client)


def test_same_bits_for_every_chunking_backend_and_executor(store, small_blocks, dask_ex) -> None:
    d = _data(500, seed=1)
    results = []
    runs = [
        (500, "memmap", "serial", None),
        (7, "memmap", "threads", 2),
        (64, "zarr", "threads", 1),
        (33, "zarr", "dask", None),
    ]
    for i, (chunks, backend, ex, workers) in enumerate(runs):
        if ex == "dask" and dask_ex is None:
            continue
        arr = store.create(f"t{i}", data=d, chunks=chunks, backend=backend)
        gb = arr.groupby(["s", "k"], executor=dask_ex if ex == "dask" else ex, workers=workers)
        results.append(gb.stats(["f", "x", "q"], OPS, ddof=1, q=0.5).to_array())
    for r in results[1:]:
        assert r.tobytes() == results[0].tobytes()


def test_single_op_methods(store) -> None:
    d = _data(200, seed=2)
    arr = store.create("t", data=d)
    df = pd.DataFrame({n: d[n] for n in ("k", "f", "q")})
    gb = arr.groupby("k")
    s = gb.sum(["f", "q"])
    assert s.dtype.names == ("k", "f", "q")
    assert s["q"].tolist() == df.groupby("k").q.sum().tolist()
    np.testing.assert_allclose(gb.std("f", ddof=0)["f"], df.groupby("k").f.std(ddof=0))
    np.testing.assert_allclose(gb.var("f")["f"], df.groupby("k").f.var())
    np.testing.assert_allclose(gb.quantile(0.5, "f")["f"], df.groupby("k").f.quantile(0.5))
    assert gb.quantile([0.1, 0.9], "q")["q"].shape == (7, 2)
    assert gb.size()["size"].tolist() == df.groupby("k").size().tolist()
    assert gb.count("f")["f"].tolist() == df.groupby("k").f.count().tolist()
    assert gb.nunique("q")["q"].tolist() == df.groupby("k").q.nunique().tolist()
    for op in ("mean", "min", "max", "first", "last"):
        np.testing.assert_allclose(getattr(gb, op)("f")["f"], getattr(df.groupby("k").f, op)())


def test_expression_keys_and_where(store) -> None:
    d = _data(400, seed=3)
    arr = store.create("t", data=d)
    df = pd.DataFrame({n: d[n] for n in ("k", "f", "q")})
    res = arr.groupby({"bucket": "floor(f / 500)"}).stats("q", ("sum", "size"))
    want = df.groupby(np.floor(df.f / 500)).q.sum()
    assert res.keys["bucket"].tolist() == want.index.tolist()
    assert res["q"]["sum"].tolist() == want.tolist()
    res = arr.groupby(["k", "f > 0"]).stats("q", ("count",), where="q > 0")
    sub = df[df.q > 0]
    want = sub.groupby([sub.k, sub.f > 0]).q.count()
    assert res["q"]["count"].tolist() == want.tolist()
    assert res.keys["f > 0"].tolist() == want.index.get_level_values(1).tolist()


def test_every_row_its_own_group_and_one_group(store, small_blocks) -> None:
    d = _data(100, seed=4)
    d["q"] = np.arange(100)[::-1]
    arr = store.create("t", data=d, chunks=9)
    res = arr.groupby("q").stats("f", ("size", "sum", "first"))
    assert res.keys["q"].tolist() == list(range(100))
    np.testing.assert_array_equal(res["f"]["first"], d["f"][::-1])
    one = arr.groupby("b == b").stats("q", ("sum", "size"))
    assert one.size.tolist() == [100] and one["q"]["sum"].tolist() == [int(d["q"].sum())]


def test_plain_nd_array_with_key_array(store, small_blocks) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(60, 3, 2))
    keys = rng.integers(0, 4, 60).astype(np.int32)
    arr = store.create("x", data=x, chunks=(7, 3, 2))
    karr = store.create("key", data=keys)
    res = arr.groupby(karr).stats(ops=("sum", "mean", "max"))
    assert res["x"]["mean"].shape == (4, 3, 2)
    for g in range(4):
        np.testing.assert_allclose(res["x"]["mean"][g], x[keys == g].mean(axis=0), rtol=1e-12)
        np.testing.assert_array_equal(res["x"]["max"][g], x[keys == g].max(axis=0))
    flat = arr.groupby(karr, reduce_inner=True).mean()
    np.testing.assert_allclose(flat["x"], [x[keys == g].mean() for g in range(4)], rtol=1e-12)
    assert flat.dtype.names == ("key", "x")


def test_unique_value_counts_nunique(store) -> None:
    d = _data(300, seed=6)
    arr = store.create("t", data=d)
    s = pd.Series(d["x"])
    np.testing.assert_array_equal(arr.unique("x"), np.unique(d["x"][~np.isnan(d["x"])]))
    assert np.isnan(arr.unique("x", dropna=False)[-1])
    assert arr.nunique("x") == s.nunique()
    assert arr.nunique("x", dropna=False) == s.nunique(dropna=False)
    vc = arr.value_counts("k")
    want = pd.Series(d["k"]).value_counts()
    assert sorted(zip(vc["k"].tolist(), vc["count"].tolist(), strict=True)) == sorted(want.items())
    assert list(vc["count"]) == sorted(vc["count"], reverse=True)
    plain = store.create("p", data=d["k"])
    assert plain.nunique() == len(set(d["k"].tolist()))


@given(
    hnp.arrays(np.int8, st.integers(1, 40), elements=st.integers(-2, 2)),
    st.integers(1, 40),
    st.sampled_from(["serial", "threads"]),
)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_hypothesis_int_keys_any_chunking(store, small_blocks, keys, chunk, ex) -> None:
    n = len(keys)
    d = np.zeros(n, [("k", "i1"), ("v", "f8"), ("w", "u8")])
    d["k"] = keys
    d["v"] = np.where(np.arange(n) % 3 == 0, np.nan, np.arange(n) * 0.1)
    d["w"] = np.uint64(2**63) + np.arange(n, dtype=np.uint64)
    name = f"h{store_counter()}"
    arr = store.create(name, data=d, chunks=chunk)
    res = arr.groupby("k", executor=ex).stats(ops=OPS, ddof=1)
    df = pd.DataFrame({"k": d["k"], "v": d["v"], "w": d["w"]})
    g = df.groupby("k")
    assert res["w"]["sum"].tolist() == [sum(int(x) for x in d["w"][i]) for i in g.indices.values()]
    np.testing.assert_allclose(res["v"]["mean"], g.v.mean(), rtol=1e-12)
    np.testing.assert_array_equal(res["v"]["last"], g.v.last())


_COUNTER = [0]


def store_counter() -> int:
    _COUNTER[0] += 1
    return _COUNTER[0]


def test_bad_input_one_line_errors(store, small_blocks) -> None:
    d = _data(10)
    arr = store.create("t", data=d)
    with pytest.raises(FieldNotFound, match="no field 'nope' in t"):
        arr.groupby("nope").sum()
    with pytest.raises(InvalidArgument, match="unknown name"):
        arr.groupby("nope + 1").sum()
    other = store.create("o", data=np.arange(11))
    with pytest.raises(InvalidArgument, match="one key per row of t"):
        arr.groupby(other).sum()
    plain = store.create("p", data=np.arange(10.0))
    with pytest.raises(InvalidArgument, match="key array of the same length"):
        plain.groupby("p").sum()
    with pytest.raises(InvalidArgument, match="where= needs a structured array"):
        plain.groupby(store.create("pk", data=np.zeros(10, "i1"))).stats(where="p > 0")
    with pytest.raises(InvalidArgument, match="unknown op"):
        arr.groupby("k").stats(ops=["median"])
    with pytest.raises(InvalidArgument, match="not numeric"):
        arr.groupby("k").sum("s")
    one = store.create("one", data=np.zeros(20000, np.int8))  # one group of 20000 values
    with pytest.raises(MemoryBudgetError, match="a spilled partition of 1 groups needs"):
        store.create("u", data=np.arange(20000.0)).groupby(
            one, memory="256KiB", executor="serial"
        ).quantile(0.5)
    for err in (FieldNotFound, InvalidArgument):
        assert "\n" not in str(err("x"))


def test_empty_array_all_nan_group_and_field_view_key(store) -> None:
    empty = store.create("e", data=np.zeros(0, DT))
    res = empty.groupby("k").stats(["f", "q"], OPS, q=0.5)
    assert len(res) == 0 and res["q"]["sum"].shape == (0,) and res.keys.dtype.names == ("k",)
    d = np.zeros(6, [("k", "i1"), ("v", "f8")])
    d["k"] = [0, 0, 1, 1, 2, 2]
    d["v"] = [np.nan, np.nan, 1.0, np.nan, 2.0, 3.0]
    arr = store.create("n", data=d)
    res = arr.groupby("k").stats("v", ("count", "size", "sum", "mean", "min", "first"))
    df = pd.DataFrame(d).groupby("k").v
    assert res["v"]["count"].tolist() == df.count().tolist() == [0, 1, 2]
    np.testing.assert_array_equal(res["v"]["sum"], df.sum())  # 0.0 for the all-NaN group
    for op in ("mean", "min", "first"):
        np.testing.assert_array_equal(res["v"][op], getattr(df, op)())  # NaN there
    labels = store.create("lab", data=np.array([(5, 1.0)] * 3 + [(4, 2.0)] * 3, "i4,f8"))
    by_view = arr.groupby(labels["f0"]).sum("v")
    assert by_view.dtype.names == ("f0", "v") and by_view["f0"].tolist() == [4, 5]
    np.testing.assert_array_equal(by_view["v"], [5.0, 1.0])


@pytest.mark.parametrize("key", ["k", "s", ["s", "x"]], ids=["int", "bytes", "bytes+float"])
def test_spilled_groups_stream_out_with_the_same_bits(store, small_blocks, key, tmp_path) -> None:
    """Many groups and a small budget: the tables go to spill files in key-range
    partitions, written out one by one (``out=``, ``to=``) with the bits of the in-memory
    run; the in-memory result is refused; no spill or staging file is left behind."""
    rng = np.random.default_rng(7)
    n = 4000
    d = _data(n, seed=7)
    d["k"] = rng.permutation(n).astype("i2")  # every row its own group
    d["s"] = np.char.encode(rng.integers(0, 1500, n).astype("U3"))
    arr = store.create("t", data=d, chunks=333)
    before = listing(store.path)
    ops = (*OPS, "quantile")
    small = arr.groupby(key, memory="320KiB", executor="threads", workers=2)
    with pytest.raises(MemoryBudgetError, match="write it with --out NAME or --to FILE"):
        small.stats(["f", "q", "x"], ops, ddof=1, q=0.5)
    assert listing(store.path) == before
    done = small.stats(["f", "q", "x"], ops, ddof=1, q=0.5, out="g")
    assert done.spilled_partitions >= 4 and done.target == "g"
    in_memory = arr.groupby(key, executor="serial").stats(["f", "q", "x"], ops, ddof=1, q=0.5)
    assert in_memory.extra["spilled_partitions"] == 0
    want = in_memory.to_array()
    got = store["g"][...]
    assert done.groups == len(want) and got.dtype == want.dtype
    assert got.tobytes() == want.tobytes()
    small.stats(["q", "x"], ("count", "sum", "max"), to=tmp_path / "g.parquet")
    back = pd.read_parquet(tmp_path / "g.parquet")
    ref = arr.groupby(key).stats(["q", "x"], ("count", "sum", "max")).to_array()
    for name in ref.dtype.names:
        want_col = ref[name].astype(str) if ref[name].dtype.kind == "S" else ref[name]
        np.testing.assert_array_equal(back[name].to_numpy(), want_col)
    store.delete("g")
    assert listing(store.path) == before
    df = pd.DataFrame({"k": d["k"], "s": d["s"].astype(object), "x": d["x"].astype("f8")})
    by = key if isinstance(key, list) else [key]
    assert done.groups == df.groupby(by, sort=True).ngroups


def test_streamed_nan_keys_and_composite_keys_keep_pandas_order(store, small_blocks) -> None:
    """dropna=False: NaN keys are one group, last within their prefix, also when the
    key ranges are cut at sampled quantiles and the partitions are written in order."""
    rng = np.random.default_rng(11)
    n = 3000
    d = _data(n, seed=11)
    d["q"] = rng.integers(0, 900, n)
    arr = store.create("t", data=d, chunks=500)
    key = ["x", "q"]
    done = arr.groupby(key, dropna=False, memory="256KiB").stats(["f"], ("count", "sum"), out="g")
    assert done.spilled_partitions >= 2
    got = store["g"][...]
    ref = arr.groupby(key, dropna=False, executor="serial").stats(["f"], ("count", "sum"))
    assert got.tobytes() == ref.to_array().tobytes()
    df = pd.DataFrame({"x": d["x"].astype("f8"), "q": d["q"], "f": d["f"]})
    want = df.groupby(key, dropna=False, sort=True).f
    assert got["f_count"].tolist() == want.count().tolist()
    np.testing.assert_array_equal(got["q"], want.count().index.get_level_values(1))


def test_skewed_sample_cuts_partitions_again(store, small_blocks, monkeypatch) -> None:
    """Sorted keys and no sample: the key ranges come from the first rows' keys, so the
    last partition gets almost every group; it is cut again (keys read, then pieces),
    and the result keeps its bits and order."""
    from arraystore.ops.groupby import spill

    cuts = []
    real_cut = spill.Spiller._cut
    monkeypatch.setattr(engine, "sample_keys", lambda spec, nrows: [])
    monkeypatch.setattr(
        spill.Spiller, "_cut", lambda self, *a: cuts.append(a) or real_cut(self, *a)
    )
    n = 6000
    d = np.zeros(n, [("k", "i8"), ("v", "f8")])
    d["k"] = np.arange(n) // 2 * 7
    d["v"] = np.random.default_rng(3).normal(size=n)
    arr = store.create("t", data=d, chunks=1000)
    before = listing(store.path)
    done = arr.groupby("k", memory="256KiB", executor="serial").stats(out="g")
    assert cuts and done.spilled_partitions > 2
    df = pd.DataFrame(d).groupby("k").v
    got = store["g"][...]
    assert got["k"].tolist() == sorted(set(d["k"].tolist()))
    np.testing.assert_allclose(got["v_mean"], df.mean())
    np.testing.assert_allclose(got["v_std"], df.std(ddof=0), atol=1e-12)
    ref = arr.groupby("k", executor="serial").stats().to_array()
    assert got.tobytes() == ref.tobytes()
    store.delete("g")
    assert listing(store.path) == before


@pytest.mark.parametrize("to", [None, "g.parquet", "g.csv"])
def test_failing_streamed_write_leaves_nothing(store, small_blocks, monkeypatch, tmp_path, to):
    """A write failing after some partitions: no output array or file, no staging or
    spill file."""
    from arraystore.ops.groupby import export, stream

    d = _data(3000, seed=5)
    d["q"] = np.arange(3000)
    arr = store.create("t", data=d)
    before, files = listing(store.path), listing(tmp_path)
    sink = export.FileSink if to else stream.StoreSink
    real = sink.write
    calls = []

    def failing(self, rows):
        calls.append(len(rows))
        if len(calls) == 3:
            raise OSError("disk full")
        real(self, rows)

    monkeypatch.setattr(sink, "write", failing)
    target = {"to": tmp_path / to} if to else {"out": "g"}
    with pytest.raises(OSError, match="disk full"):
        arr.groupby("q", memory="256KiB", executor="serial").stats(["f"], **target)
    assert len(calls) == 3
    assert listing(store.path) == before and listing(tmp_path) == files


def test_spill_files_removed_after_a_failure(store, small_blocks) -> None:
    d = _data(3000, seed=8)
    d["q"] = np.arange(3000)
    arr = store.create("t", data=d)
    before = listing(store.path)
    with pytest.raises(InvalidArgument, match="not a group key"):  # fails in a late task
        arr.groupby(["q", "where(q > 2500, 1j, q)"], memory="256KiB", executor="serial").sum()
    assert listing(store.path) == before


def test_spilled_nd_array_keeps_its_axes_and_quantiles(store, small_blocks) -> None:
    rng = np.random.default_rng(9)
    x = rng.normal(size=(3000, 2, 2))
    x[rng.random(x.shape) < 0.1] = np.nan
    keys = rng.integers(0, 2500, 3000)
    arr = store.create("x", data=x, chunks=(500, 2, 2))
    karr = store.create("key", data=keys)
    ops = ("count", "sum", "std", "min", "last", "quantile")
    done = arr.groupby(karr, memory="512KiB").stats(ops=ops, q=[0.25, 0.5], ddof=1, out="g")
    assert done.spilled_partitions >= 2
    ref = arr.groupby(karr, executor="serial").stats(ops=ops, q=[0.25, 0.5], ddof=1)
    spilled = store["g"][...]
    assert spilled.dtype["x_std"].shape == (2, 2)
    assert spilled.tobytes() == ref.to_array().tobytes()
    g = int(np.flatnonzero(np.bincount(keys) > 2)[0])
    rows = x[keys == g]
    at = int(np.flatnonzero(spilled["key"] == g)[0])
    np.testing.assert_allclose(spilled["x_q0.5"][at], np.nanquantile(rows, 0.5, axis=0))
    np.testing.assert_allclose(spilled["x_std"][at], np.nanstd(rows, axis=0, ddof=1))
