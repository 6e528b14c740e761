"""Per-column stats on a dask cluster: arraystore's dask executor vs its threads executor
vs ``dask.array`` on the same cluster.

One float64 (N, 64) zarr v3 array, uncompressed, ``--chunk-mib`` MiB chunks (clipped so
the array has at least 8 chunks), created once under ``--dir`` (default
``/tmp/arraystore-bench``) with ``fill="random"`` and reused. One ``LocalCluster`` with
2 worker processes of 1 thread each (no dashboard) serves the cluster candidates:

* ``as-dask``: ``reduce(arr, ("sum", "mean", "std", "min", "max"), axis=0,
  executor=DaskExecutor(client=client), memory=--memory)`` -- one task per chunk,
  shipped as (handle, region, ops), read and reduced in the worker processes, partial
  states merged on the client in chunk order;
* ``as-threads``: the same call with ``executor="threads", workers=2`` in this process
  (the default executor; the cluster sits idle);
* ``dask.array``: ``x = da.from_zarr(path)`` (the storage chunks) and
  ``dask.compute(x.sum(0), x.mean(0), x.std(0), x.min(0), x.max(0))`` on the cluster
  (``dask.array`` reads through zarr-python; one graph, so every chunk is read once).

Before the runs the chunk files are read once (``cat``: warm page cache) and every
candidate runs once untimed (worker imports, numba compilation); then the median of
``--repeat`` runs. Reported: GB/s (1e9 B/s of the array), seconds per task (wall time /
tasks: chunks for arraystore, graph tasks for dask.array), the ratio of the arraystore
dask executor's time to dask.array's, and the bare round trip of an empty task through
``DaskExecutor`` (``--noop-tasks`` tasks: scheduler + pickling + client merge loop).
Results of the candidates are checked against each other (``rtol`` 1e-9). The machine
may be shared: ``/proc/loadavg`` is printed before and after; compare numbers of one run.

    .venv/bin/python benchmarks/bench_dask.py --size 64MiB     # smoke
    .venv/bin/python benchmarks/bench_dask.py                  # --size 2GiB
    .venv/bin/python benchmarks/bench_dask.py --size 1GiB --repeat 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DIR = Path("/tmp/arraystore-bench")
OPS = ("sum", "mean", "std", "min", "max")
COLUMNS = 64
MiB = 2**20
GB = 1e9


def parse_size(text: str) -> int:
    units = {"": 1, "B": 1, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "KB": 1e3, "MB": 1e6}
    units |= {"GB": 1e9, "K": 2**10, "M": 2**20, "G": 2**30}
    t = text.strip().upper()
    num = t.rstrip("KMGIB")
    unit = t[len(num) :]
    if unit not in units:
        raise SystemExit(f"bad size {text!r}")
    return int(float(num) * units[unit])


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def ensure_array(root: Path, size: int, chunk_mib: int, seed: int) -> tuple[Any, Path]:
    import arraystore

    if root.resolve().is_relative_to(REPO):
        raise SystemExit(f"--dir {root} is inside the repository; choose another directory")
    rows = max(1, size // (COLUMNS * 8))
    chunk_rows = max(1, min(chunk_mib * MiB // (COLUMNS * 8), math.ceil(rows / 8)))
    name = f"dask_f8_{rows}x{COLUMNS}_c{chunk_rows}_s{seed}"
    root.mkdir(parents=True, exist_ok=True)
    store = arraystore.open(root / "bench-dask.store", mode="a")
    if name not in store:
        t0 = time.perf_counter()
        print(f"creating {name} ({rows * COLUMNS * 8 / GB:.2f} GB) ...", flush=True)
        store.create(
            name,
            (rows, COLUMNS),
            "f8",
            backend="zarr",
            codec="none",
            chunks=(chunk_rows, COLUMNS),
            fill="random",
            seed=seed,
        )
        print(f"  created in {time.perf_counter() - t0:.1f} s", flush=True)
    return store[name], store.path / name


def warm(path: Path) -> None:
    files = [str(p) for p in path.rglob("*") if p.is_file()]
    for i in range(0, len(files), 200):
        subprocess.run(["cat", *files[i : i + 200]], stdout=subprocess.DEVNULL, check=True)


def values(d: dict[str, Any]) -> dict[str, np.ndarray]:
    return {k: np.asarray(d[k], dtype=np.float64) for k in OPS}


def graph_tasks(collections: list[Any]) -> int:
    """Tasks in the optimised graph that ``dask.compute(*collections)`` runs."""
    import dask.base

    to_expr = getattr(dask.base, "collections_to_expr", None)
    if to_expr is not None:  # dask >= 2025: expressions
        return len(to_expr(collections, optimize_graph=True).optimize().__dask_graph__())
    return len(dask.base.collections_to_dsk(collections, optimize_graph=True))  # type: ignore[attr-defined]


def timed(fn: Any, repeat: int) -> tuple[float, list[float], Any]:
    fn()  # untimed warm-up (imports, numba, zarr metadata)
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="2GiB", help="array size (64MiB smoke, default 2GiB)")
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--chunk-mib", type=int, default=128, help="zarr chunk size (MiB)")
    ap.add_argument("--memory", default="1GiB", help="arraystore memory budget")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noop-tasks", type=int, default=200)
    ap.add_argument("--only", default="as-dask,as-threads,dask.array,noop")
    ap.add_argument("--json", type=Path, default=None, help="also write the record here")
    args = ap.parse_args()
    only = set(args.only.split(","))

    import dask
    import dask.array as da
    import distributed

    import arraystore
    from arraystore.engine import Plan, Task, run
    from arraystore.engine.executors.dask import DaskExecutor
    from arraystore.ops.cast.run import _noop
    from arraystore.ops.reduce.stats import reduce

    arr, path = ensure_array(args.dir, parse_size(args.size), args.chunk_mib, args.seed)
    nbytes = arr.nbytes
    chunks = math.ceil(arr.shape[0] / arr.chunks[0])
    print(
        f"array {arr.shape} f8 zarr uncompressed, {chunks} chunks of "
        f"{arr.chunks[0] * COLUMNS * 8 / MiB:.0f} MiB, {nbytes / GB:.2f} GB; "
        f"memory budget {args.memory}; arraystore {arraystore.__version__}, "
        f"dask {dask.__version__}, distributed {distributed.__version__}; "
        f"{os.cpu_count()} CPUs; loadavg before {loadavg()}",
        flush=True,
    )
    warm(path)
    rows: list[dict[str, Any]] = []
    results: dict[str, dict[str, np.ndarray]] = {}
    with (
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": ":0"},  # not 8787: may be taken
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        ex = DaskExecutor(client=client)

        def as_dask() -> Any:
            return reduce(arr, OPS, axis=0, memory=args.memory, executor=ex)

        def as_threads() -> Any:
            return reduce(arr, OPS, axis=0, memory=args.memory, executor="threads", workers=2)

        x = da.from_zarr(str(path))
        da_tasks = graph_tasks([x.sum(0), x.mean(0), x.std(0), x.min(0), x.max(0)])

        def dask_array() -> Any:
            x = da.from_zarr(str(path))
            out = dask.compute(x.sum(0), x.mean(0), x.std(0), x.min(0), x.max(0))
            return dict(zip(OPS, out, strict=True))

        cands = [
            ("as-dask", as_dask, chunks, lambda r: values(next(iter(r.fields.values())))),
            ("as-threads", as_threads, chunks, lambda r: values(next(iter(r.fields.values())))),
            ("dask.array", dask_array, da_tasks, values),
        ]
        for name, fn, tasks, extract in cands:
            if name not in only:
                continue
            med, times, out = timed(fn, args.repeat)
            results[name] = extract(out)
            rows.append(
                {
                    "candidate": name,
                    "seconds": med,
                    "runs": times,
                    "gb_per_s": nbytes / med / GB,
                    "tasks": tasks,
                    "ms_per_task": med / tasks * 1e3,
                }
            )
            print(
                f"  {name:<11} {med:7.3f} s  {nbytes / med / GB:6.2f} GB/s  "
                f"{tasks:5d} tasks  {med / tasks * 1e3:8.2f} ms/task  "
                f"runs {', '.join(f'{t:.3f}' for t in times)}",
                flush=True,
            )
        noop = None
        if "noop" in only and args.noop_tasks > 0:
            plan = Plan(tuple(Task(i, _noop, (), 0) for i in range(args.noop_tasks)), "noop")
            run(plan, ex, budget=2**30)  # warm-up
            t0 = time.perf_counter()
            run(plan, ex, budget=2**30)
            noop = (time.perf_counter() - t0) / args.noop_tasks
            print(f"  noop round trip through DaskExecutor: {noop * 1e3:.2f} ms/task", flush=True)

    # the candidates agree (different summation orders: not bit-identical)
    names = list(results)
    for other in names[1:]:
        for op in OPS:
            np.testing.assert_allclose(
                results[other][op], results[names[0]][op], rtol=1e-9, err_msg=f"{other} {op}"
            )
    by = {r["candidate"]: r for r in rows}
    ratio = None
    if "as-dask" in by and "dask.array" in by:
        ratio = by["as-dask"]["seconds"] / by["dask.array"]["seconds"]
        print(f"ratio time(arraystore dask executor) / time(dask.array) = {ratio:.2f}")
    if "as-dask" in by and "as-threads" in by:
        extra = (by["as-dask"]["seconds"] - by["as-threads"]["seconds"]) / chunks
        print(f"dask executor vs threads executor: {extra * 1e3:+.2f} ms per task")
    print(f"loadavg after {loadavg()} (shared machine: other jobs may disturb the timings)")
    if args.json is not None:
        record = {
            "size": nbytes,
            "shape": list(arr.shape),
            "chunks": list(arr.chunks),
            "memory": args.memory,
            "repeat": args.repeat,
            "rows": rows,
            "ratio_as_dask_over_dask_array": ratio,
            "noop_ms_per_task": None if noop is None else noop * 1e3,
            "python": sys.version,
        }
        args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
