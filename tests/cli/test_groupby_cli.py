"""``arraystore stats --by``: table, JSON, ``--out`` (a stored array), ``--to`` (Parquet/CSV)
against pandas, and one-line errors (exit 1, no traceback)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest

from arraystore.ops.groupby import engine
from arraystore.testing import run_cli


@pytest.fixture
def trades(store):
    rng = np.random.default_rng(0)
    n = 500
    d = np.zeros(n, [("id", "i8"), ("sym", "S3"), ("price", "f8"), ("qty", "i4")])
    d["id"] = np.arange(n)
    d["sym"] = rng.choice([b"AAA", b"BB", b"C"], n)
    d["price"] = rng.normal(100, 5, n)
    d["price"][::11] = np.nan
    d["qty"] = rng.integers(1, 100, n)
    store.create("t", data=d, chunks=64)
    df = pd.DataFrame({"id": d["id"], "sym": d["sym"].astype(str), "price": d["price"]})
    return store, df.assign(qty=d["qty"])


def test_table_and_json(trades) -> None:
    store, df = trades
    code, out, err = run_cli(["stats", str(store.path), "t", "--by", "sym", "--field", "qty"])
    assert code == 0, err
    assert "t by sym: 3 groups" in out and "qty_mean" in out and "AAA" in out
    code, out, err = run_cli(
        ["stats", str(store.path), "t", "--by", "sym", "--by", "b=id // 100",
         "--field", "price,qty", "--ops", "count,mean", "--quantiles", "0.5", "--json"]
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    g = df.groupby(["sym", df.id // 100])
    assert doc["by"] == ["sym", "b"] and doc["groups"] == g.ngroups
    cols = doc["columns"]
    assert cols["price_count"] == g.price.count().tolist()
    np.testing.assert_allclose(cols["qty_mean"], g.qty.mean())
    np.testing.assert_allclose(cols["price_q0.5"], g.price.quantile(0.5))


def test_out_writes_a_sorted_structured_array(trades) -> None:
    store, df = trades
    code, _, err = run_cli(
        ["stats", str(store.path), "t", "--by", "sym", "--ops", "sum,std", "--out", "g"]
    )
    assert code == 0, err
    g = store["g"][...]
    assert g.dtype.names[0] == "sym"
    assert g["sym"].tolist() == [b"AAA", b"BB", b"C"]
    want = df.groupby("sym")
    assert g["qty_sum"].tolist() == want.qty.sum().tolist()
    np.testing.assert_allclose(g["price_std"], want.price.std(ddof=0))
    code, _, err = run_cli(["stats", str(store.path), "t", "--by", "sym", "--out", "g"])
    assert code == 1 and "exists" in err and "Traceback" not in err


def test_to_parquet_and_csv(trades, tmp_path) -> None:
    store, df = trades
    pq = tmp_path / "g.parquet"
    code, _, err = run_cli(["stats", str(store.path), "t", "--by", "sym", "--to", str(pq)])
    assert code == 0, err
    back = pd.read_parquet(pq)
    assert back["sym"].tolist() == ["AAA", "BB", "C"]
    np.testing.assert_allclose(back["price_mean"], df.groupby("sym").price.mean())
    path = tmp_path / "g.csv"
    code, _, err = run_cli(
        ["stats", str(store.path), "t", "--by", "sym", "--field", "qty", "--ops", "sum",
         "--to", str(path)]
    )  # fmt: skip
    assert code == 0, err
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["sym", "qty_sum"]
    assert [int(r[1]) for r in rows[1:]] == df.groupby("sym").qty.sum().tolist()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--by", "nope"], "no field 'nope' in t"),
        (["--ops", "sum"], "need --by"),
        (["--by", "sym", "--ops", "median"], "unknown op 'median'"),
        (["--by", "id // 100", "--out", "x"], "name it: --by 'NAME=id // 100'"),
        (["--by", "sym", "--to", "x.txt"], "use .parquet or .csv"),
        (["--by", "sym", "--axis", "0"], "no --expr, --axis or --hist"),
    ],
)
def test_one_line_errors(trades, args, message) -> None:
    store, _ = trades
    code, _, err = run_cli(["stats", str(store.path), "t", *args])
    assert code == 1
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_many_groups_stream_out_in_a_small_budget(store, tmp_path, monkeypatch) -> None:
    """More groups than the budget holds: the table output is refused in one line naming
    --out; --out and --to stream the result, equal to pandas."""
    monkeypatch.setattr(engine, "BLOCK_ELEMENTS", 2000)  # tasks small enough for 512KiB
    rng = np.random.default_rng(1)
    n = 20000
    d = np.zeros(n, [("key", "i8"), ("x", "f8")])
    d["key"] = rng.permutation(n) % 9000 - 4000
    d["x"] = rng.normal(size=n)
    store.create("big", data=d, chunks=3000)
    base = ["stats", str(store.path), "big", "--by", "key", "--memory", "512KiB"]
    code, _, err = run_cli([*base, "--json"])
    assert code == 1 and "--out NAME" in err and len(err.strip().splitlines()) == 1, err
    code, out, err = run_cli([*base, "--out", "g"])
    assert code == 0 and "wrote g: 9000 groups" in out, err
    g = store["g"][...]
    want = pd.DataFrame(d).groupby("key").x
    assert g["key"].tolist() == want.size().index.tolist()
    np.testing.assert_allclose(g["x_mean"], want.mean())
    np.testing.assert_array_equal(g["x_max"], want.max())
    path = tmp_path / "g.csv"
    code, out, err = run_cli([*base, "--ops", "count,min", "--to", str(path)])
    assert code == 0, err
    back = pd.read_csv(path)
    assert back["key"].tolist() == g["key"].tolist()
    np.testing.assert_array_equal(back["x_min"], want.min())
    assert back["x_count"].tolist() == want.count().tolist()
