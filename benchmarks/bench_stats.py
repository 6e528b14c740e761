"""Per-column stats of a float64 (N, 64) array: arraystore vs numpy vs dask vs dd (issue 3).

One array, stored three ways with the same chunks and the same values (arraystore's
``fill="random"``: standard normal draws, chunk ``i`` from ``default_rng([seed, i])``):
``.npy`` memmap, zarr v3 uncompressed, zarr v3 blosc-lz4. Per column, over axis 0:
count, sum, mean, std, min, max. Candidates, each run in a fresh subprocess on a warm
page cache (median of ``--repeat`` runs; see ``common.py``):

* ``arraystore``: ``arraystore.ops.reduce.stats.reduce(arr, ops, axis=0, memory=--memory,
  workers=--workers)`` on each format; for memmap also the CLI (``arraystore stats
  --axis 0 --json``: process wall time including start-up; the CLI skips NaN).
* ``numpy``: a tuned np.memmap block loop (memmap only): 16 MiB windows mapped with
  ``np.memmap(offset=...)`` and unmapped after use (bounded RSS), each processed in
  1 MiB sub-blocks: ``t = b - shift``, ``einsum("ij->j", t)``, ``einsum("ij,ij->j", t,
  t)``, ``b.min(0)``, ``b.max(0)`` into per-thread accumulators (shift = row 0, so the
  variance is stable); 1 and 2 threads.
* ``dask``: ``da.from_zarr(path)`` for zarr, ``da.from_array(np.load(npy,
  mmap_mode="r"), chunks=(R, 64))`` for memmap; ``dask.compute(x.sum(0), x.mean(0),
  x.std(0), x.min(0), x.max(0), scheduler="threads", num_workers=--workers)``.
  (``from_array`` on a memmap maps the whole file: its pages count in peak RSS.)
* ``dd``/``cat``: ``dd if=data.npy of=/dev/null bs=16M`` (the anchor of issue 3), ``cat``
  (128 KiB reads, usually faster than dd's 16 MiB blocks, which miss the CPU caches) and
  two parallel ``dd bs=128k`` streams over the two halves; for zarr ``cat`` of the chunk
  files and two parallel ``cat`` over half of the files each. Page-cache read bandwidth:
  the physical limit for reading the bytes once (1 or 2 cores).

    .venv/bin/python benchmarks/bench_stats.py --size 64MiB      # smoke
    .venv/bin/python benchmarks/bench_stats.py --size 8GiB       # issue 3 (default)
    .venv/bin/python benchmarks/bench_stats.py --size 32GiB --repeat 1   # > RAM
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import GB, ArraySpec, Candidate, MiB, Result

OPS = ("count", "sum", "mean", "std", "min", "max")
VALUES = ("sum", "mean", "std", "min", "max")
FORMATS = (
    ArraySpec("memmap", "memmap"),
    ArraySpec("zarr-none", "zarr", "none"),
    ArraySpec("zarr-blosc-lz4", "zarr", "blosc-lz4"),
)
NUMPY_WINDOW = 16 * MiB
NUMPY_SUB = 1 * MiB


# -------------------------------------------------------------- child kinds
def _values(d: dict[str, Any]) -> dict[str, list[float]]:
    return {k: np.asarray(d[k], dtype=np.float64).tolist() for k in VALUES}


def run_arraystore(spec: dict[str, Any]) -> dict[str, Any]:
    import zarr  # noqa: F401

    import arraystore
    import arraystore.backends.zarr
    from arraystore.ops.reduce.stats import reduce

    times = []
    for _ in range(spec.get("calls", 1)):  # calls=2: time the second call in this process
        t0 = time.perf_counter()
        arr = arraystore.open(spec["store"], mode="r")[spec["name"]]
        res = reduce(arr, OPS, axis=0, memory=spec["memory"], workers=spec["workers"])
        times.append(time.perf_counter() - t0)
    values = _values(next(iter(res.fields.values())))
    return {"seconds": times[-1], "first_seconds": times[0], "values": values}


def run_numpy(spec: dict[str, Any]) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    t0 = time.perf_counter()
    path = spec["npy"]
    (n, cols), dtype, offset = common.npy_offset(Path(path))
    row_bytes = cols * dtype.itemsize
    win = max(1, spec["window_bytes"] // row_bytes)
    sub = max(1, spec["sub_bytes"] // row_bytes)
    first = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(1, cols))
    shift = np.array(first[0], dtype=np.float64)
    del first
    windows = [(lo, min(n, lo + win)) for lo in range(0, n, win)]
    threads = spec["threads"]

    def work(mine: list[tuple[int, int]]) -> tuple[np.ndarray, ...]:
        s1, s2 = np.zeros(cols), np.zeros(cols)
        mn, mx = np.full(cols, np.inf), np.full(cols, -np.inf)
        tmp = np.empty((sub, cols))
        for lo, hi in mine:
            mm = np.memmap(
                path, dtype=dtype, mode="r", offset=offset + lo * row_bytes, shape=(hi - lo, cols)
            )
            for s in range(0, hi - lo, sub):
                b = mm[s : s + sub]
                t = tmp[: len(b)]
                np.subtract(b, shift, out=t)
                s1 += np.einsum("ij->j", t)
                s2 += np.einsum("ij,ij->j", t, t)
                np.minimum(mn, b.min(axis=0), out=mn)
                np.maximum(mx, b.max(axis=0), out=mx)
            del b, mm  # unmap: resident memory stays at one window per thread
        return s1, s2, mn, mx

    with ThreadPoolExecutor(threads) as ex:
        parts = list(ex.map(work, [windows[k::threads] for k in range(threads)]))
    s1 = sum(p[0] for p in parts)
    s2 = sum(p[1] for p in parts)
    mn = np.minimum.reduce([p[2] for p in parts])
    mx = np.maximum.reduce([p[3] for p in parts])
    mean_t = s1 / n
    var = np.maximum(s2 / n - mean_t**2, 0.0)
    out = {"sum": s1 + n * shift, "mean": mean_t + shift, "std": np.sqrt(var), "min": mn, "max": mx}
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "values": _values(out)}


def _dask_stats(x: Any, workers: int) -> dict[str, Any]:
    import dask

    s, m, sd, mn, mx = dask.compute(
        x.sum(axis=0),
        x.mean(axis=0),
        x.std(axis=0),
        x.min(axis=0),
        x.max(axis=0),
        scheduler="threads",
        num_workers=workers,
    )
    return {"sum": s, "mean": m, "std": sd, "min": mn, "max": mx}


def run_dask_zarr(spec: dict[str, Any]) -> dict[str, Any]:
    import warnings

    import dask.array as da
    import zarr  # noqa: F401

    warnings.simplefilter("ignore")  # zarr: non-spec codecs / dtypes
    t0 = time.perf_counter()
    x = da.from_zarr(spec["zarr"])
    out = _dask_stats(x, spec["workers"])
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "values": _values(out), "dask_chunks": list(x.chunksize)}


def run_dask_memmap(spec: dict[str, Any]) -> dict[str, Any]:
    import dask.array as da

    t0 = time.perf_counter()
    x = da.from_array(np.load(spec["npy"], mmap_mode="r"), chunks=(spec["chunk_rows"], 64))
    out = _dask_stats(x, spec["workers"])
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "values": _values(out)}


KINDS = {
    "arraystore": run_arraystore,
    "numpy": run_numpy,
    "dask-zarr": run_dask_zarr,
    "dask-memmap": run_dask_memmap,
}


# ---------------------------------------------------------------- candidates
def candidates(
    args: argparse.Namespace,
    store: Path,
    paths: dict[str, Path],
    rows: int,
    chunk_rows: int,
    formats: tuple[ArraySpec, ...] = FORMATS,
) -> list[Candidate]:
    nbytes = rows * 64 * 8
    cands: list[Candidate] = []
    py = sys.executable
    cli = str(Path(py).parent / "arraystore")
    for fmt in formats:
        path = paths[fmt.name]
        files = common.data_files(path)
        fbytes = common.file_bytes(files)
        group = f"{fmt.name}: {fbytes / 2**30:.2f} GiB in {len(files)} file(s)"
        base: dict[str, Any] = dict(group=group, nbytes=nbytes, warm_files=files)
        spec = dict(kind="arraystore", store=str(store), name=fmt.name, memory=args.memory,
                    workers=args.workers)  # fmt: skip
        cands.append(
            Candidate(
                f"arraystore/{fmt.name}",
                f"arraystore ({args.memory}, {args.workers} workers)",
                child=spec,
                **base,
            )
        )
        if args.variants or fmt.backend == "memmap":  # memmap: the pass's bandwidth (issue 3)
            cands.append(
                Candidate(
                    f"arraystore-2nd/{fmt.name}",
                    "  same, 2nd call in the process",
                    child={**spec, "calls": 2},
                    note="times only a second reduce() in the same process (warm imports, "
                    "JIT, buffers): the pass without numba's one-time load; RSS is the "
                    "process's",
                    **base,
                )
            )
        if args.variants:
            cands.append(
                Candidate(
                    f"arraystore-nonumba/{fmt.name}",
                    "  same, ARRAYSTORE_NO_NUMBA=1",
                    child=spec,
                    env={"ARRAYSTORE_NO_NUMBA": "1"},
                    note="numpy kernels (what an install without the 'fast' extra runs)",
                    **base,
                )
            )
        if fmt.backend == "memmap":
            npy = str(files[0])
            cands.append(
                Candidate(
                    f"arraystore-cli/{fmt.name}",
                    "arraystore CLI (wall, skipna)",
                    cmd=[
                        cli,
                        "stats",
                        str(store),
                        fmt.name,
                        "--axis",
                        "0",
                        "--json",
                        "--quiet",
                        "--memory",
                        args.memory,
                        "--workers",
                        str(args.workers),
                    ],
                    note="whole process incl. start-up; CLI default skips NaN",
                    **base,
                )
            )
            for threads in (1, 2):
                cands.append(
                    Candidate(
                        f"numpy/{fmt.name}/{threads}t",
                        f"numpy memmap loop, {threads} thread(s)",
                        child=dict(
                            kind="numpy",
                            npy=npy,
                            threads=threads,
                            window_bytes=NUMPY_WINDOW,
                            sub_bytes=NUMPY_SUB,
                        ),
                        **base,
                    )
                )
            cands.append(
                Candidate(
                    f"dask/{fmt.name}",
                    f"dask from_array(memmap), {args.workers} thr",
                    child=dict(
                        kind="dask-memmap", npy=npy, chunk_rows=chunk_rows, workers=args.workers
                    ),
                    note="from_array on a np.memmap: mapped pages count in RSS",
                    **base,
                )
            )
            cands.append(
                Candidate(
                    f"dd/{fmt.name}",
                    "dd bs=16M (1 stream)",
                    cmd=["dd", f"if={npy}", "of=/dev/null", "bs=16M", "status=none"],
                    read_bytes=fbytes,
                    **base,
                )
            )
            cands.append(
                Candidate(
                    f"cat/{fmt.name}",
                    "cat (128 KiB reads, 1 stream)",
                    cmd=["sh", "-c", f"cat {shlex.quote(npy)} > /dev/null"],
                    read_bytes=fbytes,
                    **base,
                )
            )
            blocks = -(-fbytes // (128 * 1024))
            half = blocks // 2
            two = (
                f"dd if={shlex.quote(npy)} of=/dev/null bs=128k count={half} status=none & "
                f"dd if={shlex.quote(npy)} of=/dev/null bs=128k skip={half} status=none; wait"
            )
            cands.append(
                Candidate(
                    f"2dd/{fmt.name}",
                    "2 x dd bs=128k (2 streams)",
                    cmd=["sh", "-c", two],
                    read_bytes=fbytes,
                    **base,
                )
            )
        else:
            cands.append(
                Candidate(
                    f"dask/{fmt.name}",
                    f"dask from_zarr, {args.workers} threads",
                    child=dict(kind="dask-zarr", zarr=str(path), workers=args.workers),
                    **base,
                )
            )
            quoted = [shlex.quote(str(p)) for p in files]
            cands.append(
                Candidate(
                    f"cat/{fmt.name}",
                    "cat chunk files (1 stream)",
                    cmd=["sh", "-c", f"cat {' '.join(quoted)} > /dev/null"],
                    read_bytes=fbytes,
                    **base,
                )
            )
            a, b = quoted[0::2], quoted[1::2] or ["/dev/null"]
            two = f"cat {' '.join(a)} > /dev/null & cat {' '.join(b)} > /dev/null; wait"
            cands.append(
                Candidate(
                    f"2cat/{fmt.name}",
                    "2 x cat chunk files (2 streams)",
                    cmd=["sh", "-c", two],
                    read_bytes=fbytes,
                    **base,
                )
            )
    return cands


# ---------------------------------------------------------------- analysis
def reference(results: list[Result]) -> Result | None:
    """The result the others are checked against: the 2-thread numpy loop, else another
    numpy one; without memmap, dask's (zarr-python's decoder); else the first with values."""

    def rank(r: Result) -> int:
        heads = ("numpy/memmap/2t", "numpy", "dask/")
        return next((i for i, h in enumerate(heads) if r.key.startswith(h)), len(heads))

    done = [r for r in results if r.runs and r.runs[-1].payload.get("values")]
    return min(done, key=rank, default=None)


def check_values(results: list[Result], ref: dict[str, np.ndarray], rows: int) -> None:
    """Candidates agree with the reference (numpy 1 thread, else the first) within
    1e-9 std (mean, std; sum: 1e-9 std x N) and exactly for min/max."""
    std = np.maximum(ref["std"], 1e-300)
    for r in results:
        vals = r.runs[-1].payload.get("values") if r.runs else None
        if not vals:
            continue
        v = {k: np.asarray(vals[k]) for k in VALUES}
        err = max(
            float(np.max(np.abs(v["mean"] - ref["mean"]) / std)),
            float(np.max(np.abs(v["std"] - ref["std"]) / std)),
            float(np.max(np.abs(v["sum"] - ref["sum"]) / (std * rows))),
        )
        exact = np.array_equal(v["min"], ref["min"]) and np.array_equal(v["max"], ref["max"])
        r.check = "ok" if err <= 1e-9 and exact else f"DIFF {err:.1e}{'' if exact else ' minmax'}"
        if err > 0 and r.check == "ok":
            r.check = f"ok ({err:.0e})"


def add_ratios(results: list[Result]) -> None:
    by_group: dict[str, dict[str, Result]] = {}
    for r in results:
        by_group.setdefault(r.group, {})[r.key.split("/")[0]] = r
    for r in results:
        g = by_group[r.group]
        anchors = {
            "/dask": g.get("dask"),
            "/dd": g.get("dd") or g.get("cat"),
            "/cat": g.get("cat"),
            "/2strm": g.get("2dd") or g.get("2cat"),
            "/numpy": g.get("numpy"),
        }
        for name, a in anchors.items():
            if (
                a is not None
                and a is not r
                and a.runs
                and r.runs
                and not r.key.startswith(("dd", "cat", "2"))
            ):
                r.ratios[name] = a.median / r.median


def acceptance(results: list[Result], budget: int) -> list[dict[str, Any]]:
    get = {r.key: r for r in results if r.runs}
    checks: list[dict[str, Any]] = []

    def ratio(a: str, b: str, target: float, what: str) -> None:
        if a in get and b in get:
            value = get[b].median / get[a].median
            checks.append(
                dict(what=what, value=round(value, 3), target=target, met=value >= target)
            )

    ratio(
        "arraystore-2nd/memmap",
        "dd/memmap",
        0.85,
        "memmap: stats pass bandwidth (2nd call in a process) / dd bs=16M >= 0.85",
    )
    ratio(
        "arraystore/memmap",
        "dd/memmap",
        0.85,
        "memmap: cold process (incl. ~0.3 s numba load) / dd bs=16M >= 0.85",
    )
    ratio("arraystore/memmap", "dask/memmap", 3.5, "memmap: arraystore / dask-on-memmap >= 3.5")
    ratio("arraystore/zarr-none", "dask/zarr-none", 4.0, "zarr none: arraystore / dask >= 4")
    ratio(
        "arraystore/zarr-blosc-lz4",
        "dask/zarr-blosc-lz4",
        3.5,
        "zarr blosc-lz4: arraystore / dask >= 3.5",
    )
    for fmt in FORMATS:
        r = get.get(f"arraystore/{fmt.name}")
        if r is not None:
            limit = budget + 150 * MiB
            checks.append(
                dict(
                    what=f"{fmt.name}: arraystore peak RSS <= budget + 150 MiB",
                    value=f"{r.peak_rss / MiB:.0f} MiB",
                    target=f"{limit / MiB:.0f} MiB",
                    met=r.peak_rss <= limit,
                )
            )
    # informational: the variants against dask / dd, and the faster readers
    for fmt in FORMATS:
        for variant in ("arraystore-2nd", "arraystore-nonumba")[fmt.backend == "memmap" :]:
            key = f"{variant}/{fmt.name}"
            for anchor in (f"dask/{fmt.name}", f"dd/{fmt.name}"):
                if key in get and anchor in get:
                    value = get[anchor].median / get[key].median
                    checks.append(
                        dict(
                            what=f"(info) {fmt.name}: {variant} / {anchor.split('/')[0]}",
                            value=round(value, 3),
                            target=None,
                            met=None,
                        )
                    )
    for anchor in ("cat/memmap", "2dd/memmap"):
        if "arraystore/memmap" in get and anchor in get:
            value = get[anchor].median / get["arraystore/memmap"].median
            checks.append(
                dict(
                    what=f"(info) memmap: arraystore / {anchor.split('/')[0]}",
                    value=round(value, 3),
                    target=None,
                    met=None,
                )
            )
    return checks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_common_args(ap, default_size="8GiB")
    ap.add_argument("--cleanup", action="store_true", help="delete the data store at the end")
    ap.add_argument(
        "--no-variants",
        dest="variants",
        action="store_false",
        help="skip the arraystore variants (2nd call in a process; ARRAYSTORE_NO_NUMBA=1)",
    )
    args = ap.parse_args()
    if args.child:
        common.child_main(args.child, KINDS)
        return
    root = common.check_data_dir(args.dir)
    rows = max(1, args.size // (64 * 8))
    chunk_rows = min(args.chunk_rows, rows)
    store = root / f"stats-f8-{rows}x64-c{chunk_rows}-s{args.seed}.store"
    budget = common.parse_size(args.memory)
    info = common.machine_info(root)
    print(
        f"{info.get('cpu')}, {info['cpus']} CPUs, {info.get('ram_bytes', 0) / 2**30:.1f} GiB "
        f"RAM; numpy {info['versions']['numpy']}, zarr {info['versions']['zarr']}, dask "
        f"{info['versions']['dask']}; arraystore {info.get('git')}"
    )
    print(
        f"array: ({rows}, 64) float64 = {common.human(rows * 512)}, chunks ({chunk_rows}, 64) "
        f"= {common.human(chunk_rows * 512)}; store {store}"
    )
    t0 = time.perf_counter()
    paths = common.ensure_arrays(store, rows, chunk_rows, FORMATS, "f8", args.seed)
    t_create = time.perf_counter() - t0
    cands = common.selected(candidates(args, store, paths, rows, chunk_rows), args.only)
    print(
        f"median of {args.repeat} runs after {args.warmup} warm-up run(s), page cache warmed "
        f"with cat; each run a fresh process",
        flush=True,
    )
    base = {
        "arraystore": common.baseline_rss(
            Path(__file__), ["arraystore", "arraystore.ops.reduce.stats", "zarr"]
        ),
        "dask": common.baseline_rss(Path(__file__), ["dask.array", "zarr"]),
    }
    print(
        "peak RSS of a child that only imports: "
        + ", ".join(f"{k} {v / MiB:.0f} MiB" for k, v in base.items())
    )
    results = []
    for cand in cands:
        results.append(common.measure(Path(__file__), cand, args))
    ref_run = next((r for r in results if r.key.startswith("numpy/") and r.runs), None) or next(
        (r for r in results if r.runs and r.runs[-1].payload.get("values")), None
    )
    if ref_run is not None:
        ref = {k: np.asarray(v) for k, v in ref_run.runs[-1].payload["values"].items()}
        check_values(results, ref, rows)
    add_ratios(results)
    names = ["/dask", "/dd", "/cat", "/2strm", "/numpy"]
    title = (
        f"per-column stats over axis 0 of ({rows}, 64) f8 = {common.human(rows * 512)}; "
        f"GB/s = 1e9 B/s of the decoded array; ratios = throughput / anchor's "
        f"(/dd: dd bs=16M for memmap, cat for zarr; /2strm: 2 parallel readers)"
    )
    common.print_table(results, title, names)
    for r in results:
        if r.note:
            print(f"  note {r.key}: {r.note}")
    checks = acceptance(results, budget)
    print("\nacceptance targets (reported, not asserted):")
    for c in checks:
        met = {True: "MET", False: "NOT MET", None: ""}[c["met"]]
        target = f" (target {c['target']})" if c["target"] is not None else ""
        print(f"  {c['what']}: {c['value']}{target} {met}")
    doc: dict[str, Any] = {
        "benchmark": "stats",
        "args": {k: v for k, v in vars(args).items() if k != "child"},
        "array": {
            "rows": rows,
            "cols": 64,
            "dtype": "f8",
            "chunk_rows": chunk_rows,
            "nbytes": rows * 512,
            "store": store,
            "create_or_reuse_s": t_create,
        },
        "machine": info,
        "baseline_rss_bytes": base,
        "results": [r.to_json() for r in results],
        "acceptance": checks,
        "gb": GB,
    }
    if not args.no_json:
        print(f"\nwrote {common.write_json(f'stats-{common.human(args.size)}', doc)}")
    if args.cleanup:
        common.remove(store)
        print(f"removed {store}")


if __name__ == "__main__":
    main()
