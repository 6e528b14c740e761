"""Parquet -> store import: arraystore (streamed) vs pyarrow + pandas (whole file in RAM).

The source is a Parquet file of ``--size`` logical bytes: 12 float64 columns (standard
normal) and 4 int64 columns (0..2**40), i.e. 128 B per row, written by pyarrow with
snappy compression and row groups of ``--row-group`` rows; it is created once under
``--dir`` (default ``/tmp/arraystore-bench``) and reused. Candidates, each run in a
fresh subprocess on a warm page cache (median of ``--repeat`` runs; see ``common.py``;
peak RSS is the child's ``ru_maxrss``):

* ``arraystore memmap`` / ``arraystore zarr``: ``interop.import_file(store, name, file,
  backend=...)`` -> a structured array, one field per column (record batches streamed
  into chunk-row buffers written by worker threads); the timed region ends with an
  fsync of every output file.
* ``pandas``: ``pyarrow.parquet.read_table(file).to_pandas().to_numpy()``: the usual
  way to get a numpy array out of a Parquet file (a 2-d float64 array: the int columns
  are converted). Everything is in RAM at once; nothing is written.
* ``pyarrow read_table``: ``pyarrow.parquet.read_table(file)`` alone: decoding only,
  the whole table in RAM (a floor for the decode time).

GB/s = 1e9 bytes/s of the logical data (rows x 128 B). Every candidate reports the sum
of columns f0 and i0 so the parent checks that they read the same values.

    .venv/bin/python benchmarks/bench_import.py --size 64MiB     # smoke
    .venv/bin/python benchmarks/bench_import.py                  # 2 GiB (default)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import GB, Candidate, Result

ROW_BYTES = 128
N_FLOAT, N_INT = 12, 4


# ------------------------------------------------------------------ the file
def ensure_parquet(path: Path, rows: int, row_group: int, seed: int) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.exists():
        try:
            if pq.ParquetFile(path).metadata.num_rows == rows:
                return path
        except Exception:  # a broken earlier run: rewrite it
            pass
    print(f"  writing {path} ({rows} rows x {ROW_BYTES} B) ...", end="", flush=True)
    t0 = time.perf_counter()
    tmp = path.with_name(path.name + ".tmp")
    writer = None
    for start in range(0, rows, row_group):
        n = min(row_group, rows - start)
        rng = np.random.default_rng([seed, start // row_group])
        cols: dict[str, Any] = {f"f{i}": rng.standard_normal(n) for i in range(N_FLOAT)}
        cols.update({f"i{i}": rng.integers(0, 2**40, n) for i in range(N_INT)})
        table = pa.table(cols)
        if writer is None:
            writer = pq.ParquetWriter(tmp, table.schema, compression="snappy")
        writer.write_table(table, row_group_size=row_group)
    if writer is not None:
        writer.close()
    tmp.replace(path)
    print(f" {time.perf_counter() - t0:.1f} s", flush=True)
    return path


# -------------------------------------------------------------- child kinds
def run_arraystore(spec: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.parquet  # noqa: F401  (imports outside the timed region)
    import zarr  # noqa: F401

    import arraystore
    from arraystore.ops import interop
    from arraystore.ops.io import arrow  # noqa: F401

    store = arraystore.open(spec["store"], mode="a")
    name = spec["name"]
    t0 = time.perf_counter()
    arr = interop.import_file(
        store, name, spec["file"], backend=spec["backend"], overwrite=True, workers=spec["workers"]
    )
    common.fsync_tree(Path(spec["store"]) / name)
    seconds = time.perf_counter() - t0
    f0, i0 = 0.0, 0  # checked in small slices: the check must not raise the peak RSS
    for a in range(0, arr.shape[0], 1 << 16):
        block = arr[a : a + (1 << 16)]
        f0 += float(block["f0"].sum())
        i0 += int(block["i0"].sum())
    check = f"{f0:.6e}/{i0 % 2**64}"  # int64 sums wrap in pandas and pyarrow
    store.delete(name)
    return {"seconds": seconds, "check": check}


def run_pandas(spec: dict[str, Any]) -> dict[str, Any]:
    import pandas  # noqa: F401
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    x = pq.read_table(spec["file"]).to_pandas().to_numpy()
    seconds = time.perf_counter() - t0
    f0 = sum(float(x[a : a + (1 << 16), 0].sum()) for a in range(0, len(x), 1 << 16))
    check = f"{f0:.6e}/{int(x[:, N_FLOAT].astype(np.int64).sum()) % 2**64}"
    return {"seconds": seconds, "check": check, "shape": list(x.shape), "dtype": str(x.dtype)}


def run_table(spec: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    t = pq.read_table(spec["file"])
    seconds = time.perf_counter() - t0
    f0 = sum(float(c.to_numpy().sum()) for c in t["f0"].chunks)
    check = f"{f0:.6e}/{pc.sum(t['i0']).as_py() % 2**64}"
    return {"seconds": seconds, "check": check}


KINDS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "arraystore": run_arraystore,
    "pandas": run_pandas,
    "table": run_table,
}


def candidates(args: argparse.Namespace, file: Path, store: Path, rows: int) -> list[Candidate]:
    nbytes = rows * ROW_BYTES
    size = file.stat().st_size
    base: dict[str, Any] = dict(
        group=f"parquet {size / 2**20:.0f} MiB on disk, {rows} rows",
        nbytes=nbytes,
        warm_files=[file],
        read_bytes=size,
    )
    out = []
    for backend in ("memmap", "zarr"):
        out.append(
            Candidate(
                f"arraystore/{backend}",
                f"arraystore import -> {backend} ({args.workers} w)",
                child=dict(
                    kind="arraystore",
                    store=str(store),
                    name=f"import-{backend}",
                    file=str(file),
                    backend=backend,
                    workers=args.workers,
                ),
                note="written to disk, fsync included",
                **base,
            )
        )
    out.append(
        Candidate(
            "pandas",
            "read_table().to_pandas().to_numpy()",
            child=dict(kind="pandas", file=str(file)),
            note="all in RAM (float64 2-d), nothing written",
            **base,
        )
    )
    out.append(
        Candidate(
            "table",
            "pyarrow read_table (decode only)",
            child=dict(kind="table", file=str(file)),
            note="Arrow table in RAM, nothing written",
            **base,
        )
    )
    return out


def add_ratios(results: list[Result]) -> None:
    get = {r.key: r for r in results}
    for r in results:
        for name, key in (("/pandas", "pandas"), ("/decode", "table")):
            if key in get and get[key] is not r:
                r.ratios[name] = get[key].median / r.median


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_common_args(ap, default_size="2GiB")
    ap.add_argument("--row-group", type=int, default=1 << 20, help="rows per row group")
    args = ap.parse_args()
    if args.child:
        common.child_main(args.child, KINDS)
        return
    root = common.check_data_dir(args.dir)
    rows = max(1, args.size // ROW_BYTES)
    file = ensure_parquet(
        root / f"import-{rows}-rg{args.row_group}-s{args.seed}.parquet",
        rows,
        args.row_group,
        args.seed,
    )
    store = root / "import.store"
    info = common.machine_info(root)
    print(
        f"{info.get('cpu')}, {info['cpus']} CPUs; arraystore {info.get('git')}; "
        f"{common.human(rows * ROW_BYTES)} logical ({rows} rows x {ROW_BYTES} B)",
        flush=True,
    )
    floor = common.baseline_rss(
        Path(__file__), ["numpy", "zarr", "arraystore", "pyarrow.parquet", "pandas"]
    )
    print(f"  interpreter + imports (numpy, zarr, pyarrow, pandas): {floor / 2**20:.0f} MiB RSS")
    results = []
    cands = common.selected(candidates(args, file, store, rows), args.only)
    for cand in cands:
        results.append(common.measure(Path(__file__), cand, args))
    add_ratios(results)
    checks = {r.check for r in results if r.check}
    title = (
        f"Parquet import, {common.human(rows * ROW_BYTES)} logical; GB/s = 1e9 B/s of "
        f"logical data; peak RSS = ru_maxrss of the child; ratios = throughput / anchor's"
    )
    common.print_table(results, title, ["/pandas", "/decode"])
    print(f"  checks agree: {len(checks) == 1} ({', '.join(sorted(checks))})")
    for r in results:
        if r.note:
            print(f"  note {r.key}: {r.note}")
    if not args.no_json:
        doc = {
            "benchmark": "import",
            "args": {k: v for k, v in vars(args).items() if k != "child"},
            "source": {"file": file, "rows": rows, "bytes_on_disk": file.stat().st_size},
            "machine": info,
            "results": [r.to_json() for r in results],
            "gb": GB,
        }
        print(f"  wrote {common.write_json('import', doc)}")
    if len(checks) > 1:
        raise SystemExit("candidates disagree on the data")


if __name__ == "__main__":
    main()
