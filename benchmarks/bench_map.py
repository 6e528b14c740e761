"""``a * 2 + b`` over two float64 arrays: arraystore map vs dask vs a tuned numpy loop (issue 5).

Data: two (N, 64) float64 arrays ``a`` and ``b`` of ``--size`` each, created once through
arraystore (``fill="random"``, seeds ``--seed`` and ``--seed + 1``) as ``.npy`` memmaps
and as uncompressed zarr v3 arrays with the same chunks. Candidates, each run in a fresh
subprocess on a warm page cache (median of ``--repeat``; see ``common.py``); every run
writes a new output array (the previous run's output is deleted first, untimed):

* ``arraystore``: ``map_expr(store, "a * 2 + b", out=...)`` with ``--memory`` and
  ``--workers``, memmap in -> memmap out and zarr in -> zarr out. The timed region
  includes arraystore's durability: fsync of the output, atomic rename into the store.
* ``dask``: ``(a * 2 + b).to_zarr(path, compressors=None)`` (threads scheduler,
  ``--workers`` threads) from ``da.from_zarr`` and from ``da.from_array(np.load(npy,
  mmap_mode="r"), chunks=(--chunk-rows, 64))``. No fsync.
* ``numpy``: a tuned loop over the .npy files: 16 MiB windows ``preadv`` into two reused
  buffers, ``np.multiply(x, 2, out=x); np.add(x, y, out=x)`` in 256 KiB (L2-sized)
  sub-blocks, ``pwrite`` into a new .npy file; 1 and 2 threads; with a final fsync (what
  arraystore does) and without.

GB/s = 1e9 bytes of the *two inputs* per second (``2 * --size``). A check compares a few
output rows of every candidate with numpy. The machine may be shared: each run records
the cores other processes used meanwhile (``bg``).

    .venv/bin/python benchmarks/bench_map.py --size 64MiB     # smoke
    .venv/bin/python benchmarks/bench_map.py --size 1GiB
    .venv/bin/python benchmarks/bench_map.py                  # issue 5: 4 GiB each
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import GB, ArraySpec, Candidate, MiB, Result

EXPR = "a * 2 + b"
WINDOW = 16 * MiB
SUB = 256 * 1024
FORMATS = {"memmap": ("a", "b"), "zarr": ("za", "zb")}


# -------------------------------------------------------------- child kinds
def _sample(out: np.ndarray | Any) -> list[float]:
    n = out.shape[0]
    return [float(np.asarray(out[i]).sum()) for i in (0, n // 2, n - 1)]


def run_arraystore(spec: dict[str, Any]) -> dict[str, Any]:
    import zarr  # noqa: F401

    import arraystore
    from arraystore.ops.map.blocks import map_expr

    store = arraystore.open(spec["store"], mode="r+")
    if spec["out"] in store:
        store.delete(spec["out"])
    os.sync()
    t0 = time.perf_counter()
    arr = map_expr(
        store, spec["expr"], out=spec["out"], memory=spec["memory"], workers=spec["workers"]
    )
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "check": _sample(arr), "chunks": list(arr.chunks)}


def run_dask(spec: dict[str, Any]) -> dict[str, Any]:
    import warnings

    import dask
    import dask.array as da

    warnings.simplefilter("ignore")
    out = Path(spec["out"])
    common.remove(out)
    os.sync()
    t0 = time.perf_counter()
    if spec["source"] == "zarr":
        a, b = da.from_zarr(spec["a"]), da.from_zarr(spec["b"])
    else:
        chunks = (spec["chunk_rows"], 64)
        a = da.from_array(np.load(spec["a"], mmap_mode="r"), chunks=chunks)
        b = da.from_array(np.load(spec["b"], mmap_mode="r"), chunks=chunks)
    with dask.config.set(scheduler="threads", num_workers=spec["workers"]):
        (a * 2 + b).to_zarr(str(out), compressors=None)
    seconds = time.perf_counter() - t0
    import zarr

    return {"seconds": seconds, "check": _sample(zarr.open_array(str(out), mode="r"))}


def run_numpy(spec: dict[str, Any]) -> dict[str, Any]:
    out = spec["out"]
    common.remove(Path(out))
    os.sync()
    t0 = time.perf_counter()
    (n, cols), dtype, off_a = common.npy_offset(Path(spec["a"]))
    _, _, off_b = common.npy_offset(Path(spec["b"]))
    total = n * cols
    with open(out, "wb") as f:
        header = {"descr": dtype.str, "fortran_order": False, "shape": (n, cols)}
        np.lib.format.write_array_header_1_0(f, header)
        off_o = f.tell()
        f.truncate(off_o + total * dtype.itemsize)
    fa, fb = os.open(spec["a"], os.O_RDONLY), os.open(spec["b"], os.O_RDONLY)
    fo = os.open(out, os.O_RDWR)
    win, sub = WINDOW // dtype.itemsize, SUB // dtype.itemsize

    def work(lo: int, hi: int) -> None:
        bufa, bufb = np.empty(win, dtype), np.empty(win, dtype)
        for s in range(lo, hi, win):
            k = min(hi, s + win) - s
            x, y = bufa[:k], bufb[:k]
            os.preadv(fa, [x.data.cast("B")], off_a + s * dtype.itemsize)
            os.preadv(fb, [y.data.cast("B")], off_b + s * dtype.itemsize)
            for j in range(0, k, sub):
                xs = x[j : j + sub]
                np.multiply(xs, 2, out=xs)
                np.add(xs, y[j : j + sub], out=xs)
            os.pwrite(fo, x.data.cast("B"), off_o + s * dtype.itemsize)

    threads = spec["threads"]
    step = -(-total // threads // win) * win
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(lambda i: work(i * step, min(total, (i + 1) * step)), range(threads)))
    if spec["fsync"]:
        os.fsync(fo)
    for fd in (fa, fb, fo):
        os.close(fd)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "check": _sample(np.load(out, mmap_mode="r"))}


KINDS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "arraystore": run_arraystore,
    "dask": run_dask,
    "numpy": run_numpy,
}


# ---------------------------------------------------------------- candidates
def candidates(
    args: argparse.Namespace, store: Path, paths: dict[str, Path], rows: int, scratch: Path
) -> list[Candidate]:
    nbytes = 2 * rows * 64 * 8
    cands: list[Candidate] = []
    for fmt, (na, nb) in FORMATS.items():
        files = common.data_files(paths[na]) + common.data_files(paths[nb])
        group = f"{fmt}: 2 x {common.human(rows * 512)} in {len(files)} file(s)"
        base: dict[str, Any] = dict(group=group, nbytes=nbytes, warm_files=files)
        expr = EXPR.replace("a", na).replace("b", nb)
        cands.append(
            Candidate(
                f"arraystore/{fmt}",
                f"arraystore map_expr ({args.memory}, {args.workers} thr)",
                child=dict(
                    kind="arraystore",
                    store=str(store),
                    expr=expr,
                    out=f"out_{fmt}",
                    memory=args.memory,
                    workers=args.workers,
                ),
                note="includes fsync of the output and the atomic commit",
                **base,
            )
        )
        src = (
            dict(a=str(paths[na]), b=str(paths[nb]))
            if fmt == "zarr"
            else dict(a=str(files[0]), b=str(files[1]))
        )
        cands.append(
            Candidate(
                f"dask/{fmt}",
                f"dask {'from_zarr' if fmt == 'zarr' else 'from_array(memmap)'}.to_zarr, "
                f"{args.workers} thr",
                child=dict(
                    kind="dask",
                    source=fmt,
                    out=str(scratch / f"dask-{fmt}.zarr"),
                    workers=args.workers,
                    chunk_rows=args.chunk_rows,
                    **src,
                ),
                **base,
            )
        )
        if fmt != "memmap":
            continue
        for threads in (1, 2):
            for fsync in (True, False):
                cands.append(
                    Candidate(
                        f"numpy{'' if fsync else '-nofsync'}/{fmt}/{threads}t",
                        f"numpy pread/pwrite loop, {threads} thr{'' if fsync else ', no fsync'}",
                        child=dict(
                            kind="numpy",
                            a=str(files[0]),
                            b=str(files[1]),
                            out=str(scratch / "numpy.npy"),
                            threads=threads,
                            fsync=fsync,
                        ),
                        **base,
                    )
                )
    return cands


def check(results: list[Result], rows: int, store: Path) -> None:
    import arraystore

    st = arraystore.open(store, mode="r")
    a, b = st["a"], st["b"]
    want = [float((a[i] * 2 + b[i]).sum()) for i in (0, rows // 2, rows - 1)]
    for r in results:
        got = r.runs[-1].payload.get("check")
        r.check = "ok" if got == want else f"DIFF {got} != {want}"


def acceptance(results: list[Result], budget: int) -> list[dict[str, Any]]:
    get = {r.key: r for r in results}
    checks: list[dict[str, Any]] = []

    def ratio(a: str, b: str, target: float, what: str) -> None:
        if a in get and b in get:
            value = get[b].median / get[a].median
            checks.append(
                dict(what=what, value=round(value, 3), target=target, met=value >= target)
            )

    for fmt in FORMATS:
        ratio(f"arraystore/{fmt}", f"dask/{fmt}", 3.0, f"{fmt}: arraystore / dask >= 3")
    best = [k for k in get if k.startswith("numpy/")]
    if best and "arraystore/memmap" in get:
        k = min(best, key=lambda k: get[k].median)
        ratio("arraystore/memmap", k, 0.8, f"memmap: arraystore / best {k} (fsync) >= 0.8")
    nofsync = [k for k in get if k.startswith("numpy-nofsync/")]
    if nofsync and "arraystore/memmap" in get:
        k = min(nofsync, key=lambda k: get[k].median)
        ratio("arraystore/memmap", k, 0.8, f"memmap: arraystore / best {k} >= 0.8")
    for fmt in FORMATS:
        r = get.get(f"arraystore/{fmt}")
        if r is not None:
            limit = budget + 150 * MiB
            checks.append(
                dict(
                    what=f"{fmt}: arraystore peak RSS <= budget + 150 MiB",
                    value=f"{r.peak_rss / MiB:.0f} MiB",
                    target=f"{limit / MiB:.0f} MiB",
                    met=r.peak_rss <= limit,
                )
            )
    return checks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_common_args(ap, default_size="4GiB")
    ap.add_argument("--cleanup", action="store_true", help="delete the data store at the end")
    args = ap.parse_args()
    if args.child:
        common.child_main(args.child, KINDS)
        return
    root = common.check_data_dir(args.dir)
    rows = max(1, args.size // (64 * 8))
    args.chunk_rows = min(args.chunk_rows, rows)
    store = root / f"map-f8-{rows}x64-c{args.chunk_rows}-s{args.seed}.store"
    scratch = root / "map-scratch"
    scratch.mkdir(exist_ok=True)
    budget = common.parse_size(args.memory)
    info = common.machine_info(root)
    print(
        f"{info.get('cpu')}, {info['cpus']} CPUs, {info.get('ram_bytes', 0) / 2**30:.1f} GiB "
        f"RAM; numpy {info['versions']['numpy']}, zarr {info['versions']['zarr']}, dask "
        f"{info['versions']['dask']}; arraystore {info.get('git')}"
    )
    print(f"arrays: 2 x ({rows}, 64) float64 = 2 x {common.human(rows * 512)}; store {store}")
    paths: dict[str, Path] = {}
    for k, (na, nb) in enumerate(FORMATS.values()):
        backend = "memmap" if k == 0 else "zarr"
        for seed, name in ((args.seed, na), (args.seed + 1, nb)):
            spec = ArraySpec(name, backend, "none")
            paths.update(common.ensure_arrays(store, rows, args.chunk_rows, [spec], "f8", seed))
    cands = common.selected(candidates(args, store, paths, rows, scratch), args.only)
    print(
        f"median of {args.repeat} runs after {args.warmup} warm-up run(s), page cache warmed "
        "with cat; each run a fresh process; GB/s = 1e9 B/s of the two inputs",
        flush=True,
    )
    base = {
        "arraystore": common.baseline_rss(Path(__file__), ["arraystore.ops.map.blocks", "zarr"]),
        "dask": common.baseline_rss(Path(__file__), ["dask.array", "zarr"]),
    }
    print("peak RSS of a child that only imports: " + ", ".join(
        f"{k} {v / MiB:.0f} MiB" for k, v in base.items()))  # fmt: skip
    results = [common.measure(Path(__file__), cand, args) for cand in cands]
    check(results, rows, store)
    for r in results:
        for anchor in ("dask", "numpy/memmap/2t", "numpy-nofsync/memmap/2t"):
            a = next((x for x in results if x.key.startswith(anchor) and x.group == r.group), None)
            if a is not None and a is not r:
                r.ratios["/" + anchor.split("/")[0]] = a.median / r.median
    title = f"{EXPR} over 2 x ({rows}, 64) f8; ratios = throughput / anchor's (numpy: 2 thr)"
    common.print_table(results, title, ["/dask", "/numpy", "/numpy-nofsync"])
    for r in results:
        if r.note:
            print(f"  note {r.key}: {r.note}")
    checks = acceptance(results, budget)
    print("\nacceptance targets (reported, not asserted):")
    for c in checks:
        met = {True: "MET", False: "NOT MET", None: ""}[c["met"]]
        print(f"  {c['what']}: {c['value']} (target {c['target']}) {met}")
    doc = {
        "benchmark": "map",
        "expr": EXPR,
        "args": {k: v for k, v in vars(args).items() if k != "child"},
        "arrays": {"rows": rows, "cols": 64, "dtype": "f8", "chunk_rows": args.chunk_rows},
        "machine": info,
        "baseline_rss_bytes": base,
        "results": [r.to_json() for r in results],
        "acceptance": checks,
        "gb": GB,
    }
    if not args.no_json:
        print(f"\nwrote {common.write_json(f'map-{common.human(args.size)}', doc)}")
    shutil.rmtree(scratch, ignore_errors=True)
    if args.cleanup:
        common.remove(store)
        print(f"removed {store}")


if __name__ == "__main__":
    main()
