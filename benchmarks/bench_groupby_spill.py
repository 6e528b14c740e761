"""High-cardinality grouped reductions in a small memory budget (issue 20, acceptance 2).

Data: ``--rows`` rows ``id:i8, key:i8, x:f8`` with ``--keys`` distinct int64 keys
(``key`` = a random permutation of ``--keys`` spread values, repeated: row ``i`` has key
``perm[i % keys]``; ``x`` normal), created once under ``--dir``. The query is
``stats --by key`` (count, sum, mean, std, min, max of ``id`` and ``x``) with
``--memory`` (default 256MiB): far more groups than the budget holds, so the tables
spill to key-range partitions and the result streams out partition by partition.

Candidates (each a fresh process, peak RSS from ``wait4`` of that process, see
``common.py``):

* ``cli/out``: ``arraystore stats STORE NAME --by key --memory M --out RESULT``;
* ``python/out``: ``arr.groupby("key", memory=M).stats(out=RESULT)``;
* ``cli/parquet``: ``... --to result.parquet``.

The acceptance bound is peak RSS <= budget + 150 MiB. The result array is checked
(group count, sorted keys, sizes summing to the rows) after each run and removed.

    .venv/bin/python benchmarks/bench_groupby_spill.py --rows 1000000 --keys 400000 --repeat 1
    .venv/bin/python benchmarks/bench_groupby_spill.py            # 50M rows, 20M keys
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

BLOCK = 1_000_000
MiB = 1 << 20


def ensure_data(args: argparse.Namespace) -> tuple[Path, str]:
    """The store and array name of the rows (created once)."""
    import arraystore

    root = common.check_data_dir(args.dir)
    name = f"hk-{args.rows}-{args.keys}-{args.seed}"
    store_path = root / "groupby-spill.store"
    s = arraystore.open(store_path, mode="a")
    if name not in s:
        print(f"creating {name} ({common.human(args.rows * 24)}) ...", flush=True)
        rng = np.random.default_rng(args.seed)
        perm = rng.permutation(args.keys).astype(np.int64) * 1_000_003 - 7 * 10**12
        arr = s.create(name, args.rows, "id:i8,key:i8,x:f8", fill="empty")
        for start in range(0, args.rows, BLOCK):
            stop = min(start + BLOCK, args.rows)
            d = np.empty(stop - start, arr.dtype)
            d["id"] = np.arange(start, stop)
            d["key"] = perm[np.arange(start, stop) % args.keys]
            d["x"] = rng.normal(0.0, 1.0, stop - start)
            arr[start:stop] = d
        del perm
    return store_path, name


def run_python(spec: dict[str, Any]) -> dict[str, Any]:
    import arraystore

    arr = arraystore.open(spec["store"], mode="a")[spec["name"]]
    t0 = time.perf_counter()
    done = arr.groupby("key", memory=spec["memory"], workers=spec["workers"]).stats(
        out=spec["out"], overwrite=True
    )
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "groups": done.groups, "partitions": done.spilled_partitions}


KINDS = {"python": run_python}


def check_out(store_path: Path, out: str, rows: int, keys: int) -> str:
    """Group count, sorted distinct keys and sizes of the result array; then removed."""
    import arraystore

    s = arraystore.open(store_path, mode="a")
    res = s[out]
    n = res.shape[0]
    ok, last, total = n == keys, None, 0
    for a in range(0, n, 4 * BLOCK):
        b = res[a : min(a + 4 * BLOCK, n)]
        k = b["key"]
        ok = ok and bool(np.all(k[1:] > k[:-1])) and (last is None or k[0] > last)
        last = k[-1]
        total += int(b["id_count"].sum())
    s.delete(out)
    return "ok" if ok and total == rows else f"MISMATCH (groups {n}, rows {total})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    common.add_common_args(ap, default_size="0")
    ap.set_defaults(memory="256MiB", repeat=1, dir=common.DEFAULT_DIR / "gb-spill")
    ap.add_argument("--rows", type=int, default=50_000_000)
    ap.add_argument("--keys", type=int, default=20_000_000)
    args = ap.parse_args()
    if args.child:
        common.child_main(args.child, KINDS)
        return
    store_path, name = ensure_data(args)
    env = {"PYTHONPATH": str(common.REPO)}
    nbytes = args.rows * 24
    exe = str(Path(sys.executable).parent / "arraystore")
    base = [exe, "stats", str(store_path), name, "--by", "key", "--memory", args.memory]
    base += ["--workers", str(args.workers), "--quiet"]
    parquet = args.dir / "result.parquet"
    cands = [
        common.Candidate("cli/out", "arraystore stats --out", "out", nbytes,
                         cmd=[*base, "--out", "res", "--overwrite"], env=env),
        common.Candidate("python/out", "groupby().stats(out=)", "out", nbytes, env=env,
                         child={"kind": "python", "store": str(store_path), "name": name,
                                "memory": args.memory, "workers": args.workers, "out": "res"}),
        common.Candidate("cli/parquet", "arraystore stats --to .parquet", "parquet", nbytes,
                         cmd=[*base, "--to", str(parquet)], env=env),
    ]  # fmt: skip
    results = []
    for cand in common.selected(cands, args.only):
        cand.warm_files = common.data_files(store_path / name)
        r = common.measure(Path(__file__), cand, args)
        if r.runs and cand.group == "out":
            r.check = check_out(store_path, "res", args.rows, args.keys)
        elif r.runs:
            import pyarrow.parquet as pq

            groups = pq.ParquetFile(parquet).metadata.num_rows
            r.check = "ok" if groups == args.keys else f"MISMATCH (groups {groups})"
            parquet.unlink()
        results.append(r)
    budget = common.parse_size(args.memory)
    for r in results:
        r.note = f"peak RSS {r.peak_rss / MiB:.0f} MiB vs bound {(budget / MiB) + 150:.0f} MiB"
    title = f"groupby spill: {args.rows:,} rows, {args.keys:,} keys, --memory {args.memory}"
    common.print_table(results, title, [])
    if not args.no_json:
        doc = {
            "benchmark": "groupby-spill",
            "rows": args.rows,
            "keys": args.keys,
            "memory": args.memory,
            "bound_rss_bytes": budget + 150 * MiB,
            "workers": args.workers,
            "note": "shared 2-core machine: other helpers ran at the same time (timings "
            "under load; see max_bg_cores)",
            "machine": common.machine_info(args.dir),
            "results": [r.to_json() for r in results],
        }
        print(f"\nwrote {common.write_json(f'groupby-spill-{args.rows}', doc)}")
    if not args.keep:
        shutil.rmtree(args.dir / "tmp", ignore_errors=True)
    os.sync()


if __name__ == "__main__":
    main()
