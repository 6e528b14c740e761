"""Parquet / Arrow IPC import and export (arraystore.ops.io.arrow via interop)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore.ops import interop
from arraystore.testing import assert_same, backend_params, listing, tree_hash

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

BACKENDS = backend_params(lambda c: c.codec in (None, "none", "zstd:1"))


def _table(n: int = 1000) -> Any:
    i = np.arange(n)
    return pa.table(
        {
            "id": pa.array(i),
            "price": pa.array(i * 0.5, mask=i % 7 == 0),
            "qty": pa.array(i.astype(np.int32), mask=i % 5 == 0),
            "name": pa.array([f"item-{k}" if k % 3 else "ü€" for k in i]),
            "flag": pa.array(i % 2 == 0, mask=i % 11 == 0),
            "ts": pa.array(i * 1000, pa.timestamp("ms", tz="UTC")),
            "day": pa.array(i.astype(np.int32), pa.date32()),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(np.arange(3 * n, dtype="f4")), 3),
            "Unit Price": pa.array(i.astype(np.float32)),
            "c": pa.array(i.astype(np.uint16)),
            "cat": pa.array(["a", "b", "c", "a"] * (n // 4)).dictionary_encode(),
        }
    )


@pytest.mark.parametrize("case", BACKENDS)
def test_parquet_round_trip_equals_source(store, tmp_path, case):
    src, out = tmp_path / "t.parquet", tmp_path / "out.parquet"
    table = _table()
    pq.write_table(table, src, row_group_size=300)
    arr = interop.import_file(store, "t", src, chunks=128, **case.kwargs)
    # one field per column, sanitised names, masks only where a non-float column has nulls
    assert arr.dtype.names == (
        "id",
        "price",
        "qty",
        "qty__valid",
        "name",
        "flag",
        "flag__valid",
        "ts",
        "day",
        "vec",
        "Unit_Price",
        "c",
        "cat",
    )
    assert arr.dtype["qty"] == np.dtype("i4") and arr.dtype["name"] == np.dtype("U8")
    assert arr.dtype["vec"] == np.dtype(("f4", (3,))) and arr.dtype["ts"] == np.dtype("i8")
    data = arr[...]
    i = np.arange(1000)
    # the null policy: floats NaN; ints 0 + mask; bool False + mask
    np.testing.assert_array_equal(np.isnan(data["price"]), i % 7 == 0)
    assert (data["qty"][i % 5 == 0] == 0).all()
    np.testing.assert_array_equal(data["qty__valid"], i % 5 != 0)
    np.testing.assert_array_equal(data["qty"][i % 5 != 0], i[i % 5 != 0])
    assert not data["flag"][i % 11 == 0].any()
    np.testing.assert_array_equal(data["ts"], i * 1000)
    np.testing.assert_array_equal(data["vec"].reshape(-1), np.arange(3000, dtype="f4"))
    report = {c["column"]: c for c in arr.attrs["import"]["columns"]}
    assert report["qty"]["nulls"] == 200 and report["qty"]["mask"] == "qty__valid"
    assert report["price"]["nulls"] == 143 and report["price"]["mask"] is None
    assert report["Unit Price"]["field"] == "Unit_Price"

    interop.export_file(arr, out)
    back = pq.read_table(out)
    assert back.schema.remove_metadata().equals(table.schema)  # types and names restored
    assert back.equals(table)  # values and nulls
    again = interop.import_file(store, "t2", out, **case.kwargs)
    assert again.dtype == arr.dtype  # the arraystore metadata makes re-import exact
    got = again[...]
    for f in arr.dtype.names:
        np.testing.assert_array_equal(got[f], data[f])


def test_arrow_ipc_file_and_stream(store, tmp_path):
    table = _table(400)
    f, s = tmp_path / "t.arrow", tmp_path / "t.arrows"
    with pa.ipc.new_file(f, table.schema) as w:
        for b in table.to_batches(max_chunksize=64):
            w.write_batch(b)
    with pa.ipc.new_stream(s, table.schema) as w:
        for b in table.to_batches(max_chunksize=100):
            w.write_batch(b)
    a = interop.import_file(store, "f", f)
    b = interop.import_file(store, "s", s, format="arrow", backend="zarr")
    assert a.shape == b.shape == (400,) and a.dtype == b.dtype
    x, y = a[...], b[...]
    for name in a.fields:
        np.testing.assert_array_equal(x[name], y[name])
    out = tmp_path / "back.feather"
    interop.export_file(b, out)
    with pa.memory_map(str(out)) as m:
        assert pa.ipc.open_file(m).read_all().equals(table)


@pytest.mark.parametrize("case", BACKENDS)
def test_plain_and_nd_arrays_round_trip_exactly(store, tmp_path, case):
    plain = store.create("p", (50, 4, 3), "f4", fill="random", **case.kwargs)
    struct = store.create("s", (40, 2), "id:i8,z:c16,v:3f4,s:S5", fill="range", **case.kwargs)
    for arr in (plain, struct):
        path = tmp_path / f"{arr.name}.parquet"
        interop.export_file(arr, path)
        back = interop.import_file(store, arr.name + "2", path, **case.kwargs)
        assert back.dtype == arr.dtype and back.shape == arr.shape
        if arr.dtype.names is None:
            np.testing.assert_array_equal(back[...], arr[...])
        else:
            for f in arr.dtype.names:
                np.testing.assert_array_equal(back[f][...], arr[f][...])
    col = pq.read_table(tmp_path / "p.parquet").column("p")
    assert col.type == pa.list_(pa.list_(pa.float32(), 3), 4)
    # a field view exports as one column and imports as a plain array
    interop.export_file(struct["v"], tmp_path / "v.parquet")
    v = interop.import_file(store, "v", tmp_path / "v.parquet")
    assert v.dtype == np.dtype("f4") and v.shape == (40, 2, 3)
    np.testing.assert_array_equal(v[...], struct["v"][...])


def test_dtype_overrides_are_value_checked(store, tmp_path):
    """Numeric columns given another dtype are cast on write under ``casting`` (default
    ``value``, as ``cast``): a violation anywhere refuses the import, with the totals."""
    src = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": pa.array([1, 2, 300]), "b": pa.array([1.5, 2.0, 1e39])}), src)
    audits = []
    arr = interop.import_file(store, "ok", src, dtype="a:i2,b:f8", audit=audits.append)
    assert arr.dtype == np.dtype([("a", "i2"), ("b", "f8")])
    assert audits[0].reports["a"].ok and arr.info()["history"][-1]["source"] == "t.parquet"
    before = tree_hash(store.path)
    with pytest.raises(arraystore.CastError, match=r"1 value out of range \(first at \[2\]: 300"):
        interop.import_file(store, "bad", src, dtype={"a": "i1"})
    with pytest.raises(arraystore.CastError, match=r"'b' float64 -> float32.*1e\+39"):
        interop.import_file(store, "bad", src, dtype={"b": "f4"})
    assert tree_hash(store.path) == before
    clipped = interop.import_file(store, "cl", src, dtype="a:i1,b:f4", casting="clip")
    got = clipped[...]
    assert got["a"].tolist() == [1, 2, 127] and got["b"][2] == np.finfo("f4").max
    unsafe = interop.import_file(store, "un", src, dtype="a:u1", casting="unsafe")
    assert_same(unsafe["a"][...], np.array([1, 2, 300]).astype("u1"))
    c = interop.import_file(store, "co", src, dtype="a:i1,b:f4", errors="coerce")
    got = c[...]
    assert got["a"].tolist() == [1, 2, 0] and got["a__valid"].tolist() == [True, True, False]
    assert np.isnan(got["b"][2]) and got["b"][0] == np.float32(1.5)
    cols = {x["column"]: x for x in c.attrs["import"]["columns"]}
    assert cols["a"]["coerced"] == 1 and cols["b"]["coerced"] == 1


def test_null_mask_off_and_columns_selection(store, tmp_path):
    src = tmp_path / "t.parquet"
    pq.write_table(_table(100), src)
    arr = interop.import_file(store, "t", src, columns=["qty", "id", "flag"], null_mask=False)
    assert arr.dtype.names == ("qty", "id", "flag")  # no mask fields: sentinels only
    assert (arr["qty"][::5] == np.iinfo(np.int32).min).all()
    assert not arr["flag"][::11].any()
    with pytest.raises(arraystore.FieldNotFound, match="nope"):
        interop.import_file(store, "u", src, columns=["nope"])


def test_unsupported_types_are_refused_clearly(store, tmp_path):
    src = tmp_path / "t.parquet"
    pq.write_table(pa.table({"l": pa.array([[1], [2, 3]])}), src)
    with pytest.raises(arraystore.DTypeError, match="column 'l' has Arrow type list"):
        interop.import_file(store, "t", src)
    assert "t" not in store


def test_failed_import_leaves_nothing_and_keeps_the_old_array(store, tmp_path, monkeypatch):
    from arraystore.ops.io import arrow as io_arrow

    src = tmp_path / "t.parquet"
    pq.write_table(_table(1000), src, row_group_size=100)
    old = store.create("t", 10, "f8", fill="range")
    before = listing(store.path)
    calls = {"n": 0}
    real = io_arrow.convert

    def failing(arr, plan, errors, *args):  # fail in the middle: after chunks were written
        calls["n"] += 1
        if calls["n"] > 40:
            raise OSError("disk full")
        return real(arr, plan, errors, *args)

    monkeypatch.setattr(io_arrow, "convert", failing)
    with pytest.raises(OSError, match="disk full"):
        interop.import_file(store, "t", src, overwrite=True, chunks=100, batch_rows=100)
    assert listing(store.path) == before
    np.testing.assert_array_equal(store["t"][...], old[...])
    with pytest.raises(arraystore.ArrayExists):
        interop.import_file(store, "t", src)


def test_export_is_atomic_and_refuses_to_overwrite(store, tmp_path):
    arr = store.create("x", 100, "a:i4,b:c8", fill="range")
    out = tmp_path / "x.csv"
    with pytest.raises(arraystore.InvalidArgument, match="complex"):
        interop.export_file(arr, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.store"]
    interop.export_file(arr["a"], out)
    with pytest.raises(arraystore.ArrayExists):
        interop.export_file(arr["a"], out)
    interop.export_file(arr["a"], out, overwrite=True)
    assert out.read_text().splitlines()[:3] == ['"a"', "0", "1"]


def test_text_nulls_bytes_and_bfloat16(store, tmp_path):
    pytest.importorskip("ml_dtypes")
    src, out = tmp_path / "e.parquet", tmp_path / "o.parquet"
    table = pa.table(
        {
            "s": pa.array(["a", None, "ccc"]),
            "b": pa.array([b"x", None, b"yy"]),
            "f": pa.array([1.5, 2.5, None], pa.float32()),
            "u": pa.array(["é", "ü", "x"]),
        }
    )
    pq.write_table(table, src)
    arr = interop.import_file(store, "e", src, dtype={"f": "bfloat16", "u": "S2"})
    assert arr.fields == ("s", "s__valid", "b", "b__valid", "f", "u")
    assert arr.dtype["f"].name == "bfloat16" and arr.dtype["u"] == np.dtype("S2")
    got = arr[...]
    assert got["s"].tolist() == ["a", "", "ccc"] and got["s__valid"].tolist() == [1, 0, 1]
    assert got["u"][0] == "é".encode()  # UTF-8 bytes
    interop.export_file(arr, out)
    back = pq.read_table(out)
    assert back.column("s").equals(table.column("s")) and back.column("u").equals(table.column("u"))
    assert back.column("f").to_pylist() == [1.5, 2.5, None]  # NaN -> null: it had nulls
    again = interop.import_file(store, "e2", out)
    assert again.dtype == arr.dtype


def test_progress_adds_up_to_the_file_size(store, tmp_path):
    src = tmp_path / "t.parquet"
    pq.write_table(_table(1000), src, row_group_size=100)
    seen: list[int] = []
    interop.import_file(store, "t", src, batch_rows=100, progress=lambda _t, n: seen.append(n))
    assert len(seen) == 10 and sum(seen) == src.stat().st_size
    out: list[int] = []
    interop.export_file(store["t"], tmp_path / "o.arrow", progress=lambda _t, n: out.append(n))
    assert sum(out) == store["t"].nbytes
