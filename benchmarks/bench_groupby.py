"""Grouped reductions (issue 20): arraystore ``groupby`` vs pandas, polars, DuckDB and
dask.dataframe on the same trades.

Data: ``--rows`` trades ``id:i8, sym:u2, price:f8, qty:i4`` (``id`` = row number, ``sym``
uniform over ``--symbols`` symbols, ``price`` normal, ``qty`` uniform 1..1000), created
once under ``--dir`` (default ``/tmp/arraystore-bench``) in the form each tool prefers:
an arraystore memmap array for arraystore, one Parquet file (zstd, 1M-row row groups)
for the others. Two queries, each ``sum, mean, std, min, max`` of ``price`` and ``qty``:

* ``sym``: ``groupby(sym)`` (``--symbols`` groups, 1 000 by default);
* ``id//1000``: ``groupby(id // 1000)`` (rows / 1000 groups).

Candidates (each run is a fresh subprocess, see ``common.py``: median of ``--repeat``
runs, peak RSS of that process, the input files read once before):

* ``arraystore``: ``arr.groupby(key, executor="threads", workers=--workers).stats(...)``;
* ``pandas``: ``pd.read_parquet`` (the needed columns) then ``groupby().agg``;
* ``polars``: ``pl.scan_parquet(...).group_by(...).agg(...).collect(engine="streaming")``;
* ``duckdb``: one SQL query on the Parquet file (``threads=--workers``);
* ``dask.dataframe``: ``dd.read_parquet`` + ``groupby().agg`` on the threaded scheduler
  (``--workers`` threads).

polars and DuckDB are not dependencies of arraystore: install them elsewhere
(``pip install --target DIR polars duckdb``) and pass ``--libs DIR``; a tool that cannot
be imported is reported as failed. Results are checked against arraystore's (exact
``qty`` sums, ``price`` means at rtol 1e-9; ``check`` column).

    .venv/bin/python benchmarks/bench_groupby.py --rows 1000000 --repeat 1     # smoke
    .venv/bin/python benchmarks/bench_groupby.py --rows 100000000 --libs /tmp/benchlibs
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

QUERIES = {"sym": "sym", "id//1000": "id // 1000"}
AGGS = ("sum", "mean", "std", "min", "max")
BLOCK = 1_000_000


# ------------------------------------------------------------------- data
def _block(start: int, stop: int, symbols: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, start])
    n = stop - start
    d = np.empty(n, [("id", "<i8"), ("sym", "<u2"), ("price", "<f8"), ("qty", "<i4")])
    d["id"] = np.arange(start, stop)
    d["sym"] = rng.integers(0, symbols, n)
    d["price"] = rng.normal(100.0, 10.0, n)
    d["qty"] = rng.integers(1, 1001, n)
    return d


def ensure_data(args: argparse.Namespace) -> tuple[Path, str, Path]:
    """The store, array name and Parquet file of the trades (created once)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import arraystore

    root = common.check_data_dir(args.dir)
    name = f"trades-{args.rows}-{args.symbols}-{args.seed}"
    store_path, parquet = root / "groupby.store", root / f"{name}.parquet"
    s = arraystore.open(store_path, mode="a")
    if name not in s:
        print(f"creating {name} ({common.human(args.rows * 22)}) ...", flush=True)
        arr = s.create(name, args.rows, "id:i8,sym:u2,price:f8,qty:i4", fill="empty")
        for start in range(0, args.rows, BLOCK):
            stop = min(start + BLOCK, args.rows)
            arr[start:stop] = _block(start, stop, args.symbols, args.seed)
    if not parquet.exists():
        print(f"writing {parquet.name} ...", flush=True)
        tmp = parquet.with_suffix(".tmp")
        arr = s[name]
        writer = None
        for start in range(0, args.rows, BLOCK):
            d = arr[start : min(start + BLOCK, args.rows)]
            t = pa.table({n: d[n] for n in d.dtype.names})
            writer = writer or pq.ParquetWriter(tmp, t.schema, compression="zstd")
            writer.write_table(t, row_group_size=BLOCK)
        assert writer is not None
        writer.close()
        tmp.rename(parquet)
    return store_path, name, parquet


# ------------------------------------------------------------------- children
def _summary(keys: np.ndarray, qty_sum: np.ndarray, price_mean: np.ndarray) -> dict[str, Any]:
    order = np.argsort(keys, kind="stable")
    return {
        "groups": len(keys),
        "qty_sum": [int(x) for x in np.asarray(qty_sum)[order][:: max(1, len(keys) // 50)]],
        "price_mean": [float(x) for x in np.asarray(price_mean)[order][:: max(1, len(keys) // 50)]],
    }


def run_arraystore(spec: dict[str, Any]) -> dict[str, Any]:
    import arraystore

    arr = arraystore.open(spec["store"], mode="r")[spec["name"]]
    t0 = time.perf_counter()
    res = arr.groupby(spec["key"], executor="threads", workers=spec["workers"]).stats(
        ["price", "qty"], AGGS, ddof=1
    )
    secs = time.perf_counter() - t0
    keys = res.keys[res.key_names[0]]
    return {"seconds": secs, **_summary(keys, res["qty"]["sum"], res["price"]["mean"])}


def run_pandas(spec: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    t0 = time.perf_counter()
    df = pd.read_parquet(spec["parquet"], columns=["id", "sym", "price", "qty"])
    key = df["sym"] if spec["query"] == "sym" else (df["id"] // 1000).rename("k")
    out = df[["price", "qty"]].groupby(key).agg(list(AGGS))
    secs = time.perf_counter() - t0
    return {
        "seconds": secs,
        **_summary(out.index.to_numpy(), out[("qty", "sum")], out[("price", "mean")]),
    }


def _sql_key(query: str) -> str:
    return "sym" if query == "sym" else "id // 1000"


def run_polars(spec: dict[str, Any]) -> dict[str, Any]:
    import polars as pl

    key = pl.col("sym") if spec["query"] == "sym" else (pl.col("id") // 1000)
    aggs = [getattr(pl.col(c), a)().alias(f"{c}_{a}") for c in ("price", "qty") for a in AGGS]
    t0 = time.perf_counter()
    out = (
        pl.scan_parquet(spec["parquet"])
        .group_by(key.alias("k"))
        .agg(aggs)
        .collect(engine="streaming")
    )
    secs = time.perf_counter() - t0
    return {
        "seconds": secs,
        **_summary(out["k"].to_numpy(), out["qty_sum"].to_numpy(), out["price_mean"].to_numpy()),
    }


def run_duckdb(spec: dict[str, Any]) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {int(spec['workers'])}")
    fn = {"sum": "sum", "mean": "avg", "std": "stddev_samp", "min": "min", "max": "max"}
    cols = ", ".join(f"{fn[a]}({c}) AS {c}_{a}" for c in ("price", "qty") for a in AGGS)
    key = _sql_key(spec["query"])
    sql = f"SELECT {key} AS k, {cols} FROM read_parquet('{spec['parquet']}') GROUP BY 1"
    t0 = time.perf_counter()
    out = con.execute(sql).fetchnumpy()
    secs = time.perf_counter() - t0
    return {"seconds": secs, **_summary(out["k"], out["qty_sum"], out["price_mean"])}


def run_dask(spec: dict[str, Any]) -> dict[str, Any]:
    import dask
    import dask.dataframe as dd

    t0 = time.perf_counter()
    df = dd.read_parquet(spec["parquet"], columns=["id", "sym", "price", "qty"])
    if spec["query"] == "sym":
        g = df[["sym", "price", "qty"]].groupby("sym")
    else:
        df = df.assign(k=df["id"] // 1000)
        g = df[["k", "price", "qty"]].groupby("k")
    with dask.config.set(scheduler="threads", num_workers=spec["workers"]):
        out = g.agg(list(AGGS)).compute()
    secs = time.perf_counter() - t0
    return {
        "seconds": secs,
        **_summary(out.index.to_numpy(), out[("qty", "sum")], out[("price", "mean")]),
    }


KINDS = {
    "arraystore": run_arraystore,
    "pandas": run_pandas,
    "polars": run_polars,
    "duckdb": run_duckdb,
    "dask.dataframe": run_dask,
}


# ------------------------------------------------------------------- parent
def _check(ref: dict[str, Any], got: dict[str, Any]) -> str:
    if not ref or not got:
        return ""
    if ref["groups"] != got["groups"] or ref["qty_sum"] != got["qty_sum"]:
        return "MISMATCH"
    ok = np.allclose(ref["price_mean"], got["price_mean"], rtol=1e-9)
    return "ok" if ok else "MISMATCH (price mean)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    common.add_common_args(ap, default_size="0")
    ap.add_argument("--rows", type=int, default=100_000_000)
    ap.add_argument("--symbols", type=int, default=1000)
    ap.add_argument("--libs", default="", help="extra sys.path entry for polars/duckdb")
    args = ap.parse_args()
    if args.child:
        common.child_main(args.child, KINDS)
        return
    store_path, name, parquet = ensure_data(args)
    env = {"PYTHONPATH": os.pathsep.join(p for p in (args.libs, str(common.REPO)) if p)}
    arr_files = common.data_files(store_path / name)
    nbytes = args.rows * 22
    results = []
    for qname, key in QUERIES.items():
        for tool in KINDS:
            if args.only and not any(o in f"{tool}/{qname}" for o in args.only.split(",")):
                continue
            spec = {"kind": tool, "query": qname, "key": key, "workers": args.workers}
            spec |= {"store": str(store_path), "name": name, "parquet": str(parquet)}
            cand = common.Candidate(
                f"{tool}/{qname}",
                tool,
                f"groupby({key})",
                nbytes,
                warm_files=arr_files if tool == "arraystore" else [parquet],
                child=spec,
                env=env,
            )
            results.append(common.measure(Path(__file__), cand, args))
    by_group: dict[str, common.Result] = {}
    for r in results:
        if r.label == "arraystore" and r.runs:
            by_group[r.group] = r
    for r in results:
        ref = by_group.get(r.group)
        if ref is not None and r.runs:
            r.check = _check(ref.runs[-1].payload, r.runs[-1].payload)
            r.ratios["as/this"] = r.median / ref.median
    title = f"groupby, {args.rows:,} trades ({common.human(nbytes)}), {args.workers} workers"
    common.print_table(results, title, ["as/this"])
    if not args.no_json:
        doc = {
            "benchmark": "groupby",
            "rows": args.rows,
            "symbols": args.symbols,
            "workers": args.workers,
            "machine": common.machine_info(args.dir),
            "results": [r.to_json() for r in results],
        }
        print(f"\nwrote {common.write_json(f'groupby-{args.rows}', doc)}")


if __name__ == "__main__":
    main()
