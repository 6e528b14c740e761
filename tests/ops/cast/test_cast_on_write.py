"""Cast on write (issue 19 item 5): ``create --from FILE --dtype T`` and ``import --dtype``
cast the file chunk by chunk into the new array, with ``cast``'s policies and audit."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore import CastError
from arraystore.core.casting import ValueSummary, smallest_dtype
from arraystore.testing import BackendCase, assert_same, run_cli, tree_hash


def _npy(tmp_path: Path, data: np.ndarray, name: str = "src.npy") -> Path:
    path = tmp_path / name
    np.save(path, data)
    return path


def _disk(path: Path) -> tuple[int, int]:
    """(apparent bytes, allocated bytes) of every file under ``path``."""
    sizes = [p.stat() for p in path.rglob("*") if p.is_file()]
    return sum(s.st_size for s in sizes), sum(s.st_blocks * 512 for s in sizes)


# ------------------------------------------------------------------- results and audit
def test_create_casts_f8_to_f4_and_reports(
    store: arraystore.Store, tmp_path: Path, backend_case: BackendCase
) -> None:
    data = np.random.default_rng(0).standard_normal(10_000)
    src = _npy(tmp_path, data)
    audits: list[Any] = []
    arr = store.create(
        "a",
        from_npy=src,
        dtype="f4",
        casting="unsafe",
        chunks=999,
        audit=audits.append,
        **backend_case.kwargs,
    )
    assert_same(arr[...], data.astype("f4"))
    (res,) = audits
    doc = res.to_dict()
    assert (doc["array"], doc["out"]) == ("src.npy", "a")
    assert doc["fields"]["a"]["from"] == "f8" and doc["fields"]["a"]["to"] == "f4"
    assert doc["fields"]["a"]["count"] == data.size and doc["fields"]["a"]["rounded"] > 0
    assert (doc["bytes_before"], doc["bytes_after"]) == (data.nbytes, data.size * 4)
    entry = arr.info()["history"][-1]
    assert entry["op"] == "cast" and entry["source"] == "src.npy"
    assert (entry["from"], entry["to"], entry["casting"]) == ("f8", "f4", "unsafe")
    assert "rounded" in entry["audit"]["a"]


@pytest.mark.parametrize(
    ("values", "dtype", "policy"),
    [
        (np.array([1.0, 1.1, -2.0]), "i4", "unsafe"),
        (np.array([1.0, 1e40, -1e40, 2.5]), "f4", "clip"),
        (np.array([1.0, 1e40, 2.5]), "f4", "unsafe"),
        (np.array([0, 300, -5, 70000]), "i2", "clip"),
        (np.array([0, 300, -5, 70000]), "u1", "unsafe"),
    ],
)
def test_lossy_cast_refused_by_default_and_leaves_nothing(
    store: arraystore.Store,
    tmp_path: Path,
    backend_case: BackendCase,
    values: np.ndarray,
    dtype: str,
    policy: str,
) -> None:
    src = _npy(tmp_path, values)
    store.create("keep", data=np.arange(3))
    before = tree_hash(store.path)
    with pytest.raises(CastError, match=r"refused.*nothing was written"):
        store.create("n", from_npy=src, dtype=dtype, **backend_case.kwargs)
    assert tree_hash(store.path) == before
    arr = store.create("n", from_npy=src, dtype=dtype, casting=policy, **backend_case.kwargs)
    with np.errstate(all="ignore"):
        expected = values.astype(dtype)
    if policy == "clip":
        info = np.finfo(dtype) if np.dtype(dtype).kind == "f" else np.iinfo(dtype)
        expected = np.clip(values, info.min, info.max).astype(dtype)
    assert_same(arr[...], expected)


def test_value_cast_allowed_when_every_value_survives(
    store: arraystore.Store, tmp_path: Path, backend_case: BackendCase
) -> None:
    data = np.arange(-500, 500, dtype="i8").reshape(100, 10)
    src = _npy(tmp_path, data)
    arr = store.create("v", from_npy=src, dtype="i2", chunks=(7, 10), **backend_case.kwargs)
    assert_same(arr[...], data.astype("i2"))
    f = _npy(tmp_path, np.linspace(0, 1, 101), "f.npy")  # rounding within rtol passes
    assert_same(store.create("r", from_npy=f, dtype="f4", rtol=1e-6)[...], np.load(f).astype("f4"))


def test_structured_source_per_field_targets(
    store: arraystore.Store, tmp_path: Path, backend_case: BackendCase
) -> None:
    rec = np.zeros(1000, dtype=[("price", "f8"), ("qty", "i8"), ("vec", "f8", (3,))])
    rec["price"] = np.arange(1000) / 4
    rec["qty"] = np.arange(1000) * 7
    rec["vec"] = np.arange(3000).reshape(1000, 3)
    src = _npy(tmp_path, rec)
    arr = store.create(
        "t", from_npy=src, dtype="price:f4,qty:auto", chunks=64, **backend_case.kwargs
    )
    assert arr.dtype == np.dtype([("price", "f4"), ("qty", "u2"), ("vec", "f8", (3,))])
    got = arr[...]
    assert_same(got["price"], rec["price"].astype("f4"))
    assert_same(got["qty"], rec["qty"].astype("u2"))
    assert_same(got["vec"], rec["vec"])
    whole = store.create("w", from_npy=src, dtype="f4", **backend_case.kwargs)  # every field
    assert whole.dtype == np.dtype([("price", "f4"), ("qty", "f4"), ("vec", "f4", (3,))])
    assert_same(whole["vec"][...], rec["vec"].astype("f4"))


def test_auto_picks_the_smallest_lossless_dtype(
    store: arraystore.Store, tmp_path: Path, backend_case: BackendCase
) -> None:
    data = np.array([-3, 0, 120, 40_000] * 50, dtype="i8")
    src = _npy(tmp_path, data)
    arr = store.create("a", from_npy=src, dtype="auto", chunks=33, **backend_case.kwargs)
    expected = smallest_dtype(ValueSummary.from_block(data), data.dtype)
    assert arr.dtype == expected == np.dtype("i4")
    assert_same(arr[...], data.astype("i4"))


def test_same_dtype_is_a_plain_copy(store: arraystore.Store, tmp_path: Path) -> None:
    src = _npy(tmp_path, np.arange(10.0))
    audits: list[Any] = []
    arr = store.create("c", from_npy=src, dtype="f8", casting="clip", audit=audits.append)
    assert_same(arr[...], np.arange(10.0)) and not audits
    assert not arr.info()["history"]


# ------------------------------------------------------------------- peak disk use
@pytest.mark.parametrize("backend", ["memmap", "zarr"])
def test_create_writes_only_the_narrow_array(
    store: arraystore.Store, tmp_path: Path, backend: str
) -> None:
    """The store's bytes, sampled after every chunk written (and at the end), never
    exceed the f4 array's size (plus its metadata): the f8 copy is never written."""
    n = 1 << 20
    src = _npy(tmp_path, np.arange(n, dtype="f8"))  # 8 MiB, exact in f4
    samples: list[tuple[int, int]] = []
    arr = store.create(
        "a",
        from_npy=src,
        dtype="f4",
        chunks=n // 16,
        backend=backend,
        memory="16MiB",  # memmap: budget-sized work units; zarr: its 16 chunks
        progress=lambda _t, _b: samples.append(_disk(store.path)),
    )
    samples.append(_disk(store.path))
    assert len(samples) >= 5, len(samples)
    narrow, slack = n * 4, 64 << 10
    peak_apparent = max(a for a, _ in samples)
    peak_allocated = max(b for _, b in samples)
    assert peak_apparent <= narrow + slack, (peak_apparent, narrow)
    assert peak_allocated <= narrow + slack, (peak_allocated, narrow)
    assert samples[-1][0] >= narrow  # the f4 array is all there
    assert_same(arr[...], np.arange(n, dtype="f4"))
    # the measure sees a wide array: the same create without --dtype (an f8 copy) exceeds it
    wide: list[tuple[int, int]] = []
    store.create(
        "w",
        from_npy=src,
        chunks=n // 16,
        backend=backend,
        progress=lambda _t, _b: wide.append(_disk(store.path)),
    )
    assert max(b for _, b in wide) - samples[-1][1] > narrow


# ------------------------------------------------------------------- import
def test_import_npy_casts_on_write(
    store: arraystore.Store, tmp_path: Path, backend_case: BackendCase
) -> None:
    data = np.array([0.5, 1.0, 1e40])
    src = _npy(tmp_path, data)
    before = tree_hash(store.path)
    with pytest.raises(CastError, match="out of range"):
        store.import_file("i", src, dtype="f4", **backend_case.kwargs)
    assert tree_hash(store.path) == before
    audits: list[Any] = []
    arr = store.import_file(
        "i", src, dtype="f4", casting="clip", audit=audits.append, **backend_case.kwargs
    )
    assert_same(arr[...], np.array([0.5, 1.0, np.finfo("f4").max], "f4"))
    assert audits[0].reports["i"].clipped == 1
    assert arr.attrs["import"]["format"] == "npy"
    assert store.import_file("j", src, dtype="auto").dtype == np.dtype("f8")


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_import_table_columns_cast_on_write(
    store: arraystore.Store, tmp_path: Path, backend_case: BackendCase, fmt: str
) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    price = np.linspace(0, 1, 5000)
    qty = np.arange(5000) * 13
    table = pa.table({"price": price, "qty": qty, "id": np.arange(5000)})
    src = tmp_path / f"t.{fmt}"
    if fmt == "parquet":
        pq.write_table(table, src, row_group_size=700)
    else:
        with pa.ipc.new_file(src, table.schema) as w:
            w.write_table(table, max_chunksize=700)
    before = tree_hash(store.path)
    with pytest.raises(CastError, match=r"'price' float64 -> float32 refused: 49\d\d values"):
        store.import_file("t", src, dtype="price:f4,qty:i2", batch_rows=512, **backend_case.kwargs)
    assert tree_hash(store.path) == before
    audits: list[Any] = []
    arr = store.import_file(
        "t",
        src,
        dtype="price:f4,qty:i4",
        casting="same_kind",
        audit=audits.append,
        batch_rows=512,
        **backend_case.kwargs,
    )
    got = arr[...]
    assert_same(got["price"], price.astype("f4"))
    assert_same(got["qty"], qty.astype("i4"))
    assert_same(got["id"], np.arange(5000))
    assert set(audits[0].reports) == {"price", "qty"}
    assert audits[0].reports["price"].count == 5000 and audits[0].reports["price"].rounded > 0
    with pytest.raises(arraystore.InvalidArgument, match="cannot be combined with errors"):
        store.import_file("u", src, dtype="qty:i2", casting="clip", errors="coerce")
    for auto in ("auto", "price:f4,qty:auto", {"qty": "auto"}):
        with pytest.raises(arraystore.InvalidArgument, match=r"auto needs a file read twice"):
            store.import_file("u", src, dtype=auto)
    assert "u" not in store


def test_import_csv_refuses_casting(store: arraystore.Store, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    src = tmp_path / "t.csv"
    src.write_text("a\n1.5\n2\n")
    with pytest.raises(arraystore.InvalidArgument, match="CSV import parses straight into"):
        store.import_file("t", src, dtype="a:f4", casting="clip")
    assert "t" not in store


# ------------------------------------------------------------------- CLI
def test_cli_create_prints_the_audit(tmp_path: Path) -> None:
    src = _npy(tmp_path, np.array([1.0, 2.5, 1e40]))
    s = str(tmp_path / "s")
    code, out, err = run_cli(["create", s, "a", "--from", str(src), "--dtype", "f4"])
    assert code == 1 and err.count("\n") == 1 and "out of range" in err
    assert "nothing was written" in err and not os.path.exists(os.path.join(s, "a"))
    code, out, err = run_cli(
        ["create", s, "a", "--from", str(src), "--dtype", "f4", "--casting", "clip"]
    )
    assert code == 0, err
    assert "cast: src.npy -> a" in out and "created a" in out and "f4" in out
    code, out, err = run_cli(["import", s, "b", str(src), "--dtype", "f8"])
    assert code == 0 and "cast:" not in out  # the file's own dtype: nothing cast
    code, out, err = run_cli(["import", s, "c", str(src), "--dtype", "f4", "--casting", "unsafe"])
    assert code == 0 and "cast: src.npy -> c" in out
    code, out, err = run_cli(
        ["create", s, "d", "--from", str(src), "--dtype", "f4", "--json", "--casting", "clip"]
    )
    assert code == 0 and '"cast"' in out and '"clipped": 1' in out


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--dtype", "f17"], "unknown dtype 'f17'"),
        (["--dtype", "f4", "--casting", "bogus"], "unknown casting 'bogus'"),
        (["--casting", "clip"], "--casting only applies .*give --dtype"),
        (["--rtol", "0.1", "--nan-to", "0"], "--rtol/--nan-to only apply"),
        (["--dtype", "f4", "--shape", "3"], r"has shape \(5,\), not \(3,\)"),
        (["--dtype", "x:f4"], "per-field targets need a structured array"),
        (["--dtype", "i4", "--casting", "safe"], "cannot cast float64 to int32"),
        (["--dtype", "f4", "--rtol", "-1"], "rtol must be"),
    ],
)
def test_cli_bad_input_one_line(tmp_path: Path, args: list[str], match: str) -> None:
    src = _npy(tmp_path, np.arange(5.0))
    s = tmp_path / "s"
    code, _out, err = run_cli(["create", str(s), "a", "--from", str(src), *args])
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith("error: ")
    assert re.search(match, err), err
    assert not (s / "a").exists()


def test_cli_casting_needs_from(tmp_path: Path) -> None:
    code, _, err = run_cli(
        ["create", str(tmp_path / "s"), "a", "--shape", "3", "--casting", "clip"]
    )
    assert code == 1 and "give --from FILE and --dtype" in err


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (np.zeros(0), np.dtype("f8")),  # no values: auto keeps the dtype
        (np.array(2.5), np.dtype("f4")),  # 0-d
        (np.zeros((0, 3), dtype=[("a", "f8")]), np.dtype([("a", "f8")])),
    ],
)
def test_empty_and_0d_sources(
    store: arraystore.Store,
    tmp_path: Path,
    backend_case: BackendCase,
    data: np.ndarray,
    expected: np.dtype,
) -> None:
    src = _npy(tmp_path, data)
    arr = store.create("e", from_npy=src, dtype="auto", **backend_case.kwargs)
    assert arr.dtype == expected and arr.shape == data.shape
    assert_same(arr[...], data.astype(expected))
