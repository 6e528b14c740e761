"""``arraystore append STORE NAME --from FILE`` (issue 19 item 1): .npy, CSV, Parquet and
Arrow files appended to both backends equal numpy/pandas; bad input is a one-line error
and changes nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

import arraystore
from arraystore.ops.verify import verify
from arraystore.testing import assert_same, run_cli, tree_hash

DT = np.dtype([("price", "f8"), ("qty", "i4")])


def _records(df: pd.DataFrame) -> np.ndarray:
    out = np.zeros(len(df), DT)
    out["price"], out["qty"] = df["price"].to_numpy(), df["qty"].to_numpy()
    return out


@pytest.mark.parametrize("backend", ["memmap", "zarr"])
def test_append_files_of_every_format(store, tmp_path, backend):
    old = np.zeros(3, DT)
    old["price"], old["qty"] = [1.5, 2.5, 3.5], [1, 2, 3]
    store.create("t", data=old, backend=backend, chunks=(2,), checksum=True)
    df = pd.DataFrame({"qty": [7, 8], "price": [0.25, 0.5]})  # other column order
    df.to_csv(tmp_path / "a.csv", index=False)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "a.parquet")
    feather.write_feather(df, tmp_path / "a.arrow", compression="uncompressed")
    rows = np.zeros(2, [("qty", "i8"), ("price", "f8")])  # field order and types differ too
    rows["qty"], rows["price"] = df["qty"], df["price"]
    np.save(tmp_path / "a.npy", rows)
    want = old
    for name in ("a.csv", "a.parquet", "a.arrow", "a.npy"):
        code, out, err = run_cli(["append", str(store.path), "t", "--from", str(tmp_path / name)])
        assert code == 0, err
        want = np.concatenate([want, _records(df)])
        assert out.strip() == f"appended to t: shape ({len(want)},)"
    s = arraystore.open(store.path, mode="r")
    assert_same(s["t"][...], want)
    assert [h["op"] for h in s["t"].meta.history] == ["append"] * 4
    assert not verify(s).corrupt


def test_append_a_plain_array_casts_with_the_value_policy(store, tmp_path):
    store.create("g", data=np.zeros((2, 3), "f4"), chunks=(2, 3))
    np.save(tmp_path / "i.npy", np.arange(6, dtype="i8").reshape(2, 3))
    code, _, err = run_cli(["append", str(store.path), "g", "--from", str(tmp_path / "i.npy")])
    assert code == 0, err
    want = np.concatenate([np.zeros((2, 3), "f4"), np.arange(6, dtype="f4").reshape(2, 3)])
    assert_same(arraystore.open(store.path, mode="r")["g"][...], want)
    np.save(tmp_path / "big.npy", np.full((1, 3), 1e300))
    args = ["append", str(store.path), "g", "--from", str(tmp_path / "big.npy")]
    code, _, err = run_cli([*args, "--casting", "unsafe"])
    assert code == 0, err
    assert np.isinf(arraystore.open(store.path, mode="r")["g"][4]).all()


@pytest.mark.parametrize("backend", ["memmap", "zarr"])
def test_a_table_appends_to_a_plain_2d_array_column_by_column(store, tmp_path, backend):
    store.create("grid", data=np.zeros((2, 3)), backend=backend, chunks=(2, 2))
    (tmp_path / "g.csv").write_text("x,y,z\n1,2,3\n4.5,5,6\n")
    code, _, err = run_cli(["append", str(store.path), "grid", "--from", str(tmp_path / "g.csv")])
    assert code == 0, err
    want = np.concatenate([np.zeros((2, 3)), [[1, 2, 3], [4.5, 5, 6]]])
    assert_same(arraystore.open(store.path, mode="r")["grid"][...], want)
    (tmp_path / "two.csv").write_text("x,y\n1,2\n")
    code, _, err = run_cli(["append", str(store.path), "grid", "--from", str(tmp_path / "two.csv")])
    assert code == 1 and "cannot append a block of shape (1, 2) to (4, 3)" in err


@pytest.mark.parametrize(
    ("file", "data", "message"),
    [
        ("shape.npy", np.zeros((2, 4)), "cannot append a block of shape (2, 4) to (3, 3)"),
        ("lossy.npy", np.full((2, 3), 0.1), "cast float64 -> float32 refused"),
        ("fields.npy", np.zeros((2, 3), [("a", "f4"), ("b", "f4")]), "not plain float32"),
        ("cols.csv", "a,b\n1,2\n", "no column"),
        ("other.npy", np.zeros(2, [("a", "f8"), ("qty", "i4")]), "are not the array's"),
        ("missing.npy", None, "no file"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(store, tmp_path, file, data, message):
    store.create("g", data=np.ones((3, 3), "f4"), chunks=(2, 3), checksum=True)
    store.create("t", data=np.zeros(2, DT), backend="zarr", chunks=(2,))
    src = tmp_path / file
    if isinstance(data, np.ndarray):
        np.save(src, data)
    elif data is not None:
        src.write_text(data)
    before = tree_hash(store.path)
    target = "t" if file in ("cols.csv", "other.npy") else "g"
    code, out, err = run_cli(["append", str(store.path), target, "--from", str(src)])
    assert code == 1 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert tree_hash(store.path) == before


def test_unknown_array_and_bad_casting(store, tmp_path):
    store.create("g", data=np.ones((3, 3)), chunks=(2, 3))
    np.save(tmp_path / "r.npy", np.ones((1, 3)))
    before = tree_hash(store.path)
    code, _, err = run_cli(["append", str(store.path), "nope", "--from", str(tmp_path / "r.npy")])
    assert code == 1 and err.count("\n") == 1 and "no array 'nope'" in err
    args = ["append", str(store.path), "g", "--from", str(tmp_path / "r.npy"), "--casting", "x"]
    code, _, err = run_cli(args)
    assert code == 1 and err.count("\n") == 1 and "casting must be one of" in err
    assert tree_hash(store.path) == before
