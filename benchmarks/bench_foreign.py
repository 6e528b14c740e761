"""Stats over a zarr v3 group arraystore did not write (issue 18, acceptance 4).

Data: one (N, 64) float64 array, N = ``--size`` / 512 B, written by **zarr-python**
itself (``zarr.create_array`` into a plain zarr v3 group, then ``arr[lo:hi] = block``)
four ways, same values, in ``--dir``/``bench-foreign/foreign-<N>x64-s<seed>.zarr``:

* ``none``: no compressor; chunks (``--chunk-rows``, 64), default 131072 rows = 64 MiB
  (one chunk of a zarr-python user's "tens of MiB" size);
* ``blosc_lz4``: ``compressors=BloscCodec(cname="lz4")``, the rest zarr-python's
  defaults: clevel 5, ``shuffle`` left to zarr, which picks byte ``shuffle`` for an
  8-byte type (typesize 8; the JSON records the codec as written);
* ``none_sharded`` / ``blosc_lz4_sharded``: the same codecs, ``shards=(chunk_rows, 64)``
  (64 MiB shards) of ``chunks=(--inner-rows, 64)`` inner chunks (default 2048 rows =
  1 MiB: 64 inner chunks per shard).

Values: arraystore's ``fill="random"`` generator with chunks of ``--chunk-rows`` rows,
i.e. block ``i`` is ``np.random.default_rng([seed, i]).standard_normal((rows, 64))``, as
in ``bench_stats.py`` / ``bench_shards.py`` (standard normal doubles: blosc-lz4 +
shuffle stores them at ~90 % of their size, as real measurement data would be).

Candidates per array (each run a fresh process, warm page cache, ``common.measure``):

* ``arraystore``: ``arraystore.open(GROUP, mode="r")[NAME]`` (a foreign group, read in
  place) and ``reduce(arr, (count, sum, mean, std, min, max), axis=0, memory=--memory,
  workers=--workers)``; ``arraystore-cli``: ``arraystore stats GROUP NAME --axis 0
  --json --quiet --memory M --workers W``, the whole process timed (start-up included).
* ``dask``: ``da.from_zarr(path)`` (sharded: ``chunks=z.shards``, one task per shard:
  ``from_zarr``'s default is the 1 MiB inner chunk, 16 x more tasks, slower);
  ``dask.compute(x.sum(0), x.mean(0), x.std(0), x.min(0), x.max(0),
  scheduler="threads", num_workers=--workers)``.
* ``dask-zarrs``: the same with the zarrs codec pipeline (PyPI ``zarrs``, Rust):
  ``zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline",
  "codec_pipeline.strict": True, "threading.max_workers": W})``.
* ``tensorstore``: ``bench_anchors.ts_open`` (``zarr3`` driver, concurrency limits W)
  and a W-thread read loop over chunk-aligned row blocks of ``--chunk-rows`` rows (the
  shard for sharded arrays), each block reduced with numpy (``bench_anchors.ts_reduce``).

Answers are checked against dask's (zarr-python's decoder): sum/mean/std within rtol
1e-9 (plus an absolute 1e-12 x std floor for values near 0), min/max exactly. Ratios:
anchor median / arraystore median (``> 1``: arraystore faster); the acceptance is
arraystore >= 3 x the best anchor on every array (also printed: against each anchor's
fastest attempt, contended retries included, and the ratio of median CPU seconds,
which contention disturbs less). JSON:
``benchmarks/results/foreign-<size>-<date>-<host>.json``.

    .venv/bin/python benchmarks/bench_foreign.py --size 256MiB --repeat 1   # smoke
    .venv/bin/python benchmarks/bench_foreign.py --size 4GiB                # issue 18
    # the committed run (a loaded machine: anchors 1 run each, as run.py's suite does)
    .venv/bin/python benchmarks/bench_foreign.py --size 4GiB --repeat 3 --anchor-repeat 1 \
        --retries 1 --quiet-wait 10
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_anchors
import bench_stats
import common
from common import GB, Candidate, MiB, Result

OPS = bench_stats.OPS
VALUES = bench_stats.VALUES
CODECS = ("none", "blosc_lz4")
ANCHORS = ("dask", "dask-zarrs", "tensorstore")
TARGET = 3.0


# ------------------------------------------------------------------- the data
def array_names() -> list[str]:
    return [f"{c}{s}" for s in ("", "_sharded") for c in CODECS]


def ensure_group(
    group: Path, rows: int, chunk_rows: int, inner_rows: int, seed: int
) -> dict[str, Any]:
    """Write (once) the four arrays with zarr-python; returns what was written."""
    import zarr
    from zarr.codecs import BloscCodec

    want = {"rows": rows, "cols": 64, "chunk_rows": chunk_rows, "inner_rows": inner_rows,
            "seed": seed, "zarr": zarr.__version__}  # fmt: skip
    marker = group.with_name(group.name + ".bench.json")
    if marker.exists() and json.loads(marker.read_text()).get("want") == want:
        return dict(json.loads(marker.read_text()))
    common.remove(group)
    common.remove(marker)
    root = zarr.open_group(str(group), mode="w", zarr_format=3)
    created: dict[str, Any] = {}
    for name in array_names():
        sharded = name.endswith("_sharded")
        comp = BloscCodec(cname="lz4") if name.startswith("blosc") else None
        t0 = time.perf_counter()
        print(f"  zarr-python writes {group.name}/{name} ...", end="", flush=True)
        arr = root.create_array(
            name,
            shape=(rows, 64),
            dtype="f8",
            chunks=(inner_rows, 64) if sharded else (chunk_rows, 64),
            shards=(chunk_rows, 64) if sharded else None,
            compressors=comp,
            fill_value=0.0,
        )
        for i, lo in enumerate(range(0, rows, chunk_rows)):
            hi = min(rows, lo + chunk_rows)
            arr[lo:hi] = np.random.default_rng([seed, i]).standard_normal((hi - lo, 64))
        seconds = time.perf_counter() - t0
        files = common.data_files(group / name)
        doc = json.loads((group / name / "zarr.json").read_text())
        created[name] = {
            "write_s": round(seconds, 2),
            "files": len(files),
            "stored_bytes": common.file_bytes(files),
            "chunk_grid": doc["chunk_grid"],
            "codecs": doc["codecs"],
        }
        print(f" {seconds:.1f} s, {len(files)} files, {created[name]['stored_bytes'] / 2**30:.2f} "
              "GiB", flush=True)  # fmt: skip
    info = {"want": want, "arrays": created}
    marker.write_text(json.dumps(info, indent=1))
    return info


# -------------------------------------------------------------- child kinds
def run_arraystore(spec: dict[str, Any]) -> dict[str, Any]:
    import zarr  # noqa: F401

    import arraystore
    from arraystore.ops.reduce.stats import reduce

    t0 = time.perf_counter()
    arr = arraystore.open(spec["group"], mode="r")[spec["name"]]
    res = reduce(arr, OPS, axis=0, memory=spec["memory"], workers=spec["workers"])
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "values": bench_stats._values(next(iter(res.fields.values())))}


def run_dask(spec: dict[str, Any]) -> dict[str, Any]:
    import dask.array as da
    import zarr

    warnings.simplefilter("ignore")
    if spec.get("zarrs"):
        import zarrs  # noqa: F401

        bench_anchors.use_zarrs(spec["workers"])
    t0 = time.perf_counter()
    z = zarr.open_array(spec["zarr"], mode="r")
    x = da.from_zarr(z, chunks=z.shards or z.chunks)
    out = bench_stats._dask_stats(x, spec["workers"])
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "values": bench_stats._values(out),
            "dask_chunks": list(x.chunksize)}  # fmt: skip


def run_tensorstore(spec: dict[str, Any]) -> dict[str, Any]:
    import tensorstore  # noqa: F401

    t0 = time.perf_counter()
    x = bench_anchors.ts_open(spec["zarr"], spec["workers"])
    out = bench_anchors.ts_reduce(x, spec["workers"], step=spec["rows"])
    return {"seconds": time.perf_counter() - t0, "values": bench_stats._values(out)}


KINDS = {"arraystore": run_arraystore, "dask": run_dask, "tensorstore": run_tensorstore}


# ---------------------------------------------------------------- candidates
def candidates(args: argparse.Namespace, group: Path, info: dict[str, Any]) -> list[Candidate]:
    rows = info["want"]["rows"]
    nbytes = rows * 64 * 8
    cli = str(Path(sys.executable).parent / "arraystore")
    w = args.workers
    cands = []
    for name in array_names():
        path = group / name
        files = common.data_files(path)
        meta = info["arrays"][name]
        grp = f"{name}: {meta['stored_bytes'] / 2**30:.2f} GiB in {len(files)} file(s)"
        base: dict[str, Any] = dict(group=grp, nbytes=nbytes, warm_files=files)
        child = dict(zarr=str(path), workers=w)
        cands.append(Candidate(
            f"arraystore/{name}", f"arraystore ({args.memory}, {w} workers)",
            child=dict(kind="arraystore", group=str(group), name=name, memory=args.memory,
                       workers=w), **base))  # fmt: skip
        if args.cli:
            cands.append(Candidate(
                f"arraystore-cli/{name}", "  arraystore stats CLI (process wall)",
                cmd=[cli, "stats", str(group), name, "--axis", "0", "--json", "--quiet",
                     "--memory", args.memory, "--workers", str(w)],
                note="whole process incl. start-up; the CLI skips NaN", **base))  # fmt: skip
        cands.append(Candidate(
            f"dask/{name}", f"dask from_zarr (zarr-python), {w} thr",
            child=dict(kind="dask", **child), **base))  # fmt: skip
        cands.append(Candidate(
            f"dask-zarrs/{name}", f"dask from_zarr + zarrs pipeline, {w} thr",
            child=dict(kind="dask", zarrs=True, **child), **base))  # fmt: skip
        cands.append(Candidate(
            f"tensorstore/{name}", f"tensorstore {w}-thread read loop + numpy",
            child=dict(kind="tensorstore", rows=info["want"]["chunk_rows"], **child),
            **base))  # fmt: skip
    return cands


# ---------------------------------------------------------------- analysis
def check(results: list[Result]) -> None:
    """Every candidate's answers against dask's (zarr-python) on the same array."""
    by_group: dict[str, dict[str, Result]] = {}
    for r in results:
        by_group.setdefault(r.group, {})[r.key.split("/")[0]] = r
    for r in results:
        ref_r = by_group[r.group].get("dask")
        vals = r.runs[-1].payload.get("values") if r.runs else None
        if not vals or ref_r is None or not ref_r.runs:
            continue
        ref = {k: np.asarray(v) for k, v in ref_r.runs[-1].payload["values"].items()}
        v = {k: np.asarray(vals[k]) for k in VALUES}
        floor = 1e-12 * np.maximum(ref["std"], 1e-300)
        ok = all(
            bool(np.all(np.abs(v[k] - ref[k]) <= 1e-9 * np.abs(ref[k]) + floor * scale))
            for k, scale in (("sum", r.nbytes / 512), ("mean", 1), ("std", 1))
        )
        worst = max(
            float(np.max(np.abs(v[k] - ref[k]) / np.maximum(np.abs(ref[k]), 1e-300)))
            for k in ("sum", "mean", "std")
        )
        exact = np.array_equal(v["min"], ref["min"]) and np.array_equal(v["max"], ref["max"])
        r.check = f"ok (rel {worst:.0e})" if ok and exact else f"DIFF rel {worst:.1e}" + (
            "" if exact else " minmax")  # fmt: skip


def ratios(results: list[Result]) -> list[dict[str, Any]]:
    """Per array: each anchor's median / arraystore's; the best anchor; the target."""
    by_group: dict[str, dict[str, Result]] = {}
    for r in results:
        by_group.setdefault(r.group, {})[r.key.split("/")[0]] = r
    rows = []
    for group, g in by_group.items():
        for r in g.values():
            for a in ANCHORS:
                anchor = g.get(a)
                if anchor is not None and anchor is not r and anchor.runs and r.runs:
                    r.ratios[f"/{a}"] = anchor.median / r.median
        done = [g[a] for a in ANCHORS if a in g and g[a].runs]
        us = g.get("arraystore")
        if not done or us is None or not us.runs:
            continue
        best = min(done, key=lambda x: x.median)
        for r in g.values():
            if r.runs and r.key.split("/")[0] not in ANCHORS:
                r.ratios["/best"] = best.median / r.median
        value = best.median / us.median
        # conservative: each anchor's fastest attempt, contended retries included
        fastest = min(min(x.seconds for x in a.runs + a.discarded) for a in done)
        rows.append({
            "array": group.split(":")[0], "arraystore_s": us.median, "arraystore_gbps": us.gbps,
            "arraystore_peak_rss_mib": round(us.peak_rss / MiB), "best_anchor": best.key,
            "best_anchor_s": best.median, "ratio": round(value, 2), "target": TARGET,
            "met": value >= TARGET,
            "ratio_vs_fastest_anchor_attempt": round(fastest / us.median, 2),
            "cpu_ratio": round(min(a.cpu for a in done) / us.cpu, 2),
        })  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_common_args(ap, default_size="4GiB")
    ap.set_defaults(chunk_rows=131_072)
    ap.add_argument("--inner-rows", type=int, default=2048, help="rows per inner chunk (sharded)")
    ap.add_argument("--anchor-repeat", type=int, default=None,
                    help="timed runs per anchor (default --repeat)")  # fmt: skip
    ap.add_argument("--no-cli", dest="cli", action="store_false", help="skip the CLI row")
    ap.add_argument("--cleanup", action="store_true", help="delete the zarr group at the end")
    args = ap.parse_args()
    if args.child:
        common.child_main(args.child, KINDS)
        return
    root = common.check_data_dir(args.dir) / "bench-foreign"
    root.mkdir(exist_ok=True)
    rows = max(1, args.size // 512)
    chunk_rows = min(args.chunk_rows, rows)
    inner = min(args.inner_rows, chunk_rows)
    group = root / f"foreign-{rows}x64-s{args.seed}.zarr"
    info_m = common.machine_info(root)
    print(f"{info_m.get('cpu')}, {info_m['cpus']} CPUs; zarr {info_m['versions']['zarr']}, "
          f"dask {info_m['versions']['dask']}; arraystore {info_m.get('git')}")  # fmt: skip
    print(f"array ({rows}, 64) f8 = {common.human(rows * 512)}: chunks ({chunk_rows}, 64) = "
          f"{common.human(chunk_rows * 512)}; sharded: shards ({chunk_rows}, 64) of inner "
          f"chunks ({inner}, 64) = {common.human(inner * 512)}; group {group}")  # fmt: skip
    t0 = time.perf_counter()
    info = ensure_group(group, rows, chunk_rows, inner, args.seed)
    t_create = time.perf_counter() - t0
    cands = common.selected(candidates(args, group, info), args.only)
    anchor_args = copy.copy(args)
    anchor_args.repeat = args.anchor_repeat or args.repeat
    results = []
    for cand in cands:
        is_anchor = cand.key.split("/")[0] in ANCHORS
        results.append(common.measure(Path(__file__), cand, anchor_args if is_anchor else args))
    check(results)
    accept = ratios(results)
    title = (f"per-column stats (sum, mean, std, min, max; axis 0) of ({rows}, 64) f8 = "
             f"{common.human(rows * 512)} written by zarr-python; GB/s = 1e9 B/s of the "
             f"decoded array; ratios = anchor's median / this row's")  # fmt: skip
    common.print_table(results, title, [f"/{a}" for a in ANCHORS] + ["/best"])
    print(f"\nacceptance (reported, not asserted): arraystore >= {TARGET:g} x the best anchor")
    for a in accept:
        print(f"  {a['array']:<18} arraystore {a['arraystore_s']:.2f} s "
              f"({a['arraystore_gbps']:.2f} GB/s, {a['arraystore_peak_rss_mib']} MiB); best "
              f"{a['best_anchor']} {a['best_anchor_s']:.2f} s: {a['ratio']:.2f}x "
              f"{'MET' if a['met'] else 'NOT MET'} (vs the fastest anchor attempt "
              f"{a['ratio_vs_fastest_anchor_attempt']:.2f}x; CPU s "
              f"{a['cpu_ratio']:.2f}x)")  # fmt: skip
    doc: dict[str, Any] = {
        "benchmark": "foreign",
        "args": {k: v for k, v in vars(args).items() if k != "child"},
        "data": {**info, "group": group, "create_or_reuse_s": t_create, "nbytes": rows * 512,
                 "writer": "zarr-python create_array + arr[lo:hi] = block"},
        "machine": info_m,
        "results": [r.to_json() for r in results],
        "acceptance": accept,
        "gb": GB,
    }  # fmt: skip
    if not args.no_json:
        print(f"\nwrote {common.write_json(f'foreign-{common.human(rows * 512)}', doc)}")
    if args.cleanup:
        common.remove(group)
        common.remove(group.with_name(group.name + ".bench.json"))
        print(f"removed {group}")


if __name__ == "__main__":
    main()
