"""float64 -> float32 cast of an (N, 64) array: arraystore vs dask vs a numpy loop (issue 4).

The source is arraystore's ``fill="random"`` float64 (standard normal draws, chunk ``i``
from ``default_rng([seed, i])``), stored as a ``.npy`` memmap and as zarr v3 with the
``lz4`` codec, same chunks. These are genuine float64 values, so a float32 cast rounds
every one of them: the audit is made to do real work with ``casting="value",
rtol=1e-6`` (every value's round trip ``f8 -> f4 -> f8`` is checked against the
tolerance, which float32's 2**-24 relative rounding always meets, so the cast passes;
the audit counts ``rounded`` values and the largest error). Candidates, each run in a
fresh subprocess on a warm page cache (median of ``--repeat`` runs; see ``common.py``);
every timed region ends with an ``fsync`` of every output file (and directory):

* ``arraystore`` memmap -> memmap and zarr lz4 -> zarr lz4:
  ``arraystore.ops.cast.cast(store, name, "f4", out=..., casting="value", rtol=1e-6,
  memory=--memory, workers=--workers)``; for memmap also ``casting="unsafe"`` (numpy's
  ``astype``; the audit counts are still collected).
* ``dask``: ``da.from_zarr(src).astype("f4").to_zarr(z)`` into a zarr v3 array ``z``
  created with the same chunks and the same ``numcodecs.lz4`` codec; threaded
  scheduler, ``--workers`` threads. No audit.
* ``numpy``: ``out = np.lib.format.open_memmap(..., "w+", "f4")``; for each 16 MiB block
  of rows ``out[a:b] = src[a:b].astype("f4")`` (``src`` an ``np.load(mmap_mode="r")``);
  ``out.flush()``. One thread, no audit. (Both mappings count in its RSS.)
* ``dd``: ``dd if=/dev/zero of=scratch bs=16M count=<output size> conv=fsync``: writing
  and syncing the output's bytes, a floor for any candidate's time.

    .venv/bin/python benchmarks/bench_cast.py --size 64MiB     # smoke
    .venv/bin/python benchmarks/bench_cast.py --size 8GiB      # issue 4 (default)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import GB, ArraySpec, Candidate, MiB, Result

SOURCES = (ArraySpec("memmap", "memmap"), ArraySpec("zarr-lz4", "zarr", "lz4"))
RTOL = 1e-6
NUMPY_BLOCK = 16 * MiB
CHECK_ROWS = 4096


# -------------------------------------------------------------- child kinds
def _head_tail(get: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(CHECK_ROWS, n)
    return np.asarray(get(0, k)), np.asarray(get(n - k, n))


def run_arraystore(spec: dict[str, Any]) -> dict[str, Any]:
    import zarr  # noqa: F401  (imports outside the timed region)

    import arraystore
    import arraystore.backends.zarr
    from arraystore.ops.cast import cast

    store = arraystore.open(spec["store"], mode="a")
    out = spec["out"]
    if out in store:
        store.delete(out)
    common.remove(Path(spec["store"]) / f".{spec['name']}.cast")  # a crashed earlier run
    t0 = time.perf_counter()
    res = cast(
        store,
        spec["name"],
        "f4",
        out=out,
        casting=spec["casting"],
        rtol=spec["rtol"],
        memory=spec["memory"],
        workers=spec["workers"],
    )
    common.fsync_tree(Path(spec["store"]) / out)
    seconds = time.perf_counter() - t0
    report = next(iter(res.reports.values()))
    audit = {k: getattr(report, k) for k in ("count", "rounded", "beyond_rtol", "max_rel_err")} | {
        "violations": report.violations
    }
    dst = store[out]
    n = dst.shape[0]
    head, tail = _head_tail(lambda a, b: dst[a:b], n)
    src = store[spec["name"]]
    check = _check_pair(src, head, tail)
    return {"seconds": seconds, "audit": audit, "check": check}


def _check_pair(src: Any, head: np.ndarray, tail: np.ndarray) -> str:
    n = src.shape[0]
    k = min(CHECK_ROWS, n)
    want_h = np.asarray(src[:k]).astype(np.float32)
    want_t = np.asarray(src[n - k : n]).astype(np.float32)
    ok = head.dtype == np.float32 and np.array_equal(head, want_h) and np.array_equal(tail, want_t)
    return "ok" if ok else "DIFF"


def run_dask(spec: dict[str, Any]) -> dict[str, Any]:
    import warnings

    import dask
    import dask.array as da
    import zarr
    from zarr.codecs.numcodecs import LZ4

    warnings.simplefilter("ignore")  # numcodecs.lz4 is not in the zarr v3 spec
    out = Path(spec["out"])
    common.remove(out)
    t0 = time.perf_counter()
    x = da.from_zarr(spec["src"])
    z = zarr.create_array(
        str(out),
        shape=x.shape,
        chunks=x.chunksize,
        dtype="float32",
        compressors=[LZ4()],
        fill_value=0,
        zarr_format=3,
        overwrite=True,
    )
    with dask.config.set(scheduler="threads", num_workers=spec["workers"]):
        x.astype("f4").to_zarr(z)
    common.fsync_tree(out)
    seconds = time.perf_counter() - t0
    src = zarr.open_array(spec["src"], mode="r")
    dst = zarr.open_array(str(out), mode="r")
    head, tail = _head_tail(lambda a, b: dst[a:b], dst.shape[0])
    return {"seconds": seconds, "check": _check_pair(src, head, tail)}


def run_numpy(spec: dict[str, Any]) -> dict[str, Any]:
    out = Path(spec["out"])
    common.remove(out)
    t0 = time.perf_counter()
    src = np.load(spec["npy"], mmap_mode="r")
    dst = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=src.shape)
    rows = max(1, spec["block_bytes"] // (src.shape[1] * src.itemsize))
    for lo in range(0, len(src), rows):
        dst[lo : lo + rows] = src[lo : lo + rows].astype(np.float32)
    dst.flush()
    del dst
    common.fsync_tree(out)
    seconds = time.perf_counter() - t0
    dst = np.load(out, mmap_mode="r")
    head, tail = _head_tail(lambda a, b: dst[a:b], len(dst))
    return {"seconds": seconds, "check": _check_pair(src, head, tail)}


KINDS = {"arraystore": run_arraystore, "dask": run_dask, "numpy": run_numpy}


# ---------------------------------------------------------------- candidates
def candidates(
    args: argparse.Namespace,
    store: Path,
    paths: dict[str, Path],
    rows: int,
    scratch: Path,
    sources: tuple[ArraySpec, ...] = SOURCES,
) -> list[Candidate]:
    nbytes = rows * 64 * 8
    out_bytes = rows * 64 * 4
    cands: list[Candidate] = []
    for src in sources:
        files = common.data_files(paths[src.name])
        fbytes = common.file_bytes(files)
        group = f"{src.name} -> f4: {fbytes / 2**30:.2f} GiB in {len(files)} file(s)"
        base: dict[str, Any] = dict(group=group, nbytes=nbytes, warm_files=files)
        policies = [("value", RTOL)] + ([("unsafe", 0.0)] if src.backend == "memmap" else [])
        for casting, rtol in policies:
            label = f"arraystore {casting}" + (f" rtol={rtol:g}" if rtol else "")
            cands.append(
                Candidate(
                    f"arraystore/{src.name}/{casting}",
                    f"{label} ({args.memory}, {args.workers} w)",
                    child=dict(
                        kind="arraystore",
                        store=str(store),
                        name=src.name,
                        out=f"{src.name}-f4",
                        casting=casting,
                        rtol=rtol,
                        memory=args.memory,
                        workers=args.workers,
                    ),
                    **base,
                )
            )
        if src.backend == "memmap":
            cands.append(
                Candidate(
                    f"numpy/{src.name}",
                    "numpy memmap loop (no audit, 1 thr)",
                    child=dict(
                        kind="numpy",
                        npy=str(files[0]),
                        out=str(scratch / "numpy-f4.npy"),
                        block_bytes=NUMPY_BLOCK,
                    ),
                    note="plain np.memmap in and out: mapped pages count in RSS",
                    **base,
                )
            )
            count = -(-out_bytes // (16 * MiB))
            cands.append(
                Candidate(
                    f"dd/{src.name}",
                    "dd write+fsync of the output size",
                    cmd=[
                        "dd",
                        "if=/dev/zero",
                        f"of={scratch / 'dd-out'}",
                        "bs=16M",
                        f"count={count}",
                        "conv=fsync",
                        "status=none",
                    ],
                    note="writes count*16 MiB >= the f4 output, no reads",
                    **base,
                )
            )
        else:
            cands.append(
                Candidate(
                    f"dask/{src.name}",
                    f"dask from_zarr.astype.to_zarr ({args.workers} thr)",
                    child=dict(
                        kind="dask",
                        src=str(paths[src.name]),
                        out=str(scratch / "dask-f4.zarr"),
                        workers=args.workers,
                    ),
                    **base,
                )
            )
    return cands


def add_ratios(results: list[Result]) -> None:
    get = {r.key: r for r in results if r.runs}
    for r in results:
        if not r.key.startswith("arraystore/") or not r.runs:
            continue
        fmt = r.key.split("/")[1]
        for name, key in (("/dask", f"dask/{fmt}"), ("/numpy", f"numpy/{fmt}")):
            if key in get:
                r.ratios[name] = get[key].median / r.median
    dd = get.get("dd/memmap")
    if dd is not None:
        for r in results:
            if r is not dd and r.runs:
                r.ratios["/dd-write"] = dd.median / r.median


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_common_args(ap, default_size="8GiB")
    ap.add_argument("--cleanup", action="store_true", help="delete the source store at the end")
    args = ap.parse_args()
    if args.child:
        common.child_main(args.child, KINDS)
        return
    root = common.check_data_dir(args.dir)
    rows = max(1, args.size // (64 * 8))
    chunk_rows = min(args.chunk_rows, rows)
    store = root / f"cast-f8-{rows}x64-c{chunk_rows}-s{args.seed}.store"
    scratch = root / f"cast-scratch-{rows}"
    scratch.mkdir(parents=True, exist_ok=True)
    info = common.machine_info(root)
    print(
        f"{info.get('cpu')}, {info['cpus']} CPUs, {info.get('ram_bytes', 0) / 2**30:.1f} GiB "
        f"RAM; numpy {info['versions']['numpy']}, zarr {info['versions']['zarr']}, dask "
        f"{info['versions']['dask']}; arraystore {info.get('git')}"
    )
    print(
        f"source: ({rows}, 64) float64 = {common.human(rows * 512)}, chunks ({chunk_rows}, 64); "
        f"store {store}"
    )
    t0 = time.perf_counter()
    paths = common.ensure_arrays(store, rows, chunk_rows, SOURCES, "f8", args.seed)
    t_create = time.perf_counter() - t0
    cands = common.selected(candidates(args, store, paths, rows, scratch), args.only)
    print(
        f"median of {args.repeat} runs after {args.warmup} warm-up run(s); source in page "
        f"cache (cat); each run a fresh process; timed region ends with fsync of the output",
        flush=True,
    )
    results = []
    try:
        for cand in cands:
            results.append(common.measure(Path(__file__), cand, args))
    finally:
        if not args.keep:
            import arraystore

            s = arraystore.open(store, mode="a")
            for src in SOURCES:
                if f"{src.name}-f4" in s:
                    s.delete(f"{src.name}-f4")
            common.remove(scratch)
    add_ratios(results)
    title = (
        f"cast ({rows}, 64) float64 -> float32 = {common.human(rows * 512)} in, "
        f"{common.human(rows * 256)} out; GB/s = 1e9 B/s of input; time includes fsync; "
        f"ratios = throughput / anchor's"
    )
    common.print_table(results, title, ["/dask", "/numpy", "/dd-write"])
    for r in results:
        audit = r.runs[-1].payload.get("audit") if r.runs else None
        if audit:
            print(f"  audit {r.key}: {audit}")
        if r.note:
            print(f"  note {r.key}: {r.note}")
    doc: dict[str, Any] = {
        "benchmark": "cast",
        "args": {k: v for k, v in vars(args).items() if k != "child"},
        "source": {
            "rows": rows,
            "cols": 64,
            "dtype": "f8",
            "chunk_rows": chunk_rows,
            "nbytes": rows * 512,
            "store": store,
            "create_or_reuse_s": t_create,
            "audit": f"casting='value', rtol={RTOL} (plus 'unsafe' for memmap)",
        },
        "machine": info,
        "results": [r.to_json() for r in results],
        "gb": GB,
    }
    for r, rj in zip(results, doc["results"], strict=True):
        rj["audit"] = r.runs[-1].payload.get("audit") if r.runs else None
    if not args.no_json:
        print(f"\nwrote {common.write_json(f'cast-{common.human(args.size)}', doc)}")
    if args.cleanup:
        common.remove(store)
        print(f"removed {store}")


if __name__ == "__main__":
    main()
