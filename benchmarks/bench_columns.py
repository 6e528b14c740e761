"""One column of a structured array: stats, exact median, histogram (used by ``run.py``).

Data: a structured array of ``--size`` bytes, 8 float64 fields ``f0..f7`` (64 B per
row, arraystore's ``fill="random"``: standard normal), stored twice with the same
values: as a ``.npy`` memmap (records interleaved: reading one field reads every byte)
and as zarr v3 without codec (arraystore stores structured zarr arrays columnar: one
zarr array per field, so one field is 1/8 of the bytes). The column is ``f3``.

Scenarios and child kinds:

* ``field-stats``: count/sum/mean/std/min/max of the field. arraystore
  ``reduce(arr, ops, fields="f3")``; numpy ``m = np.load(npy, mmap_mode="r")["f3"]``
  then ``m.sum()``, ``m.mean()``, ``m.std()``, ``m.min()``, ``m.max()``; dask (with
  zarr-python's codec pipeline and with zarrs'), cubed and tensorstore (a 2-thread read
  loop, ``bench_anchors.ts_reduce``) on the field's zarr array (``STORE/NAME/f3``, a
  plain zarr v3 array).
* ``median``: arraystore ``quantile(arr, 0.5, fields="f3")`` (exact); numpy
  ``np.median(m)`` (copies the column into RAM); dask ``da.median(x, axis=0)`` (exact:
  rechunks the column into one chunk).
* ``hist``: 100 bins over the data's range. arraystore ``hist(arr, 100, fields="f3")``;
  numpy ``np.histogram(m, 100)``; dask ``da.histogram(x, 100, range=(min, max))`` with
  ``min``/``max`` computed first (dask needs the range).

Every child returns its answer; ``check`` compares them with numpy's (stats within
1e-9 relative, median exactly, histogram counts exactly).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import Candidate, Result

FIELDS = 8
FIELD = "f3"
BINS = 100
DTYPE = ",".join(f"f{i}:f8" for i in range(FIELDS))
OPS = ("count", "sum", "mean", "std", "min", "max")
STAT_KEYS = ("sum", "mean", "std", "min", "max")
SCENARIOS = ("field-stats", "median", "hist")


# ------------------------------------------------------------------- datasets
def ensure_records(store_path: Path, rows: int, chunk_rows: int, seed: int) -> dict[str, Path]:
    """``rec`` (memmap, interleaved) and ``rec_z`` (zarr, columnar), equal values."""
    import arraystore

    store = arraystore.open(store_path, mode="a")
    out = {}
    for name, backend in (("rec", "memmap"), ("rec_z", "zarr")):
        want = {"rows": rows, "chunk_rows": chunk_rows, "dtype": DTYPE, "seed": seed}
        if name in store and store[name].attrs.get("bench") == want:
            out[name] = store_path / name
            continue
        t0 = time.perf_counter()
        print(
            f"  creating {store_path.name}/{name}: ({rows},) {FIELDS} x f8, {backend} ...",
            end="",
            flush=True,
        )
        store.create(
            name,
            shape=(rows,),
            dtype=DTYPE,
            chunks=(chunk_rows,),
            backend=backend,
            codec=None if backend == "memmap" else "none",
            fill="random",
            seed=seed,
            attrs={"bench": want},
            overwrite=True,
            memory=2 * common.GiB,
        )
        print(f" {time.perf_counter() - t0:.1f} s", flush=True)
        out[name] = store_path / name
    return out


# -------------------------------------------------------------- child kinds
def _stats(m: Any) -> dict[str, float]:
    return {
        "sum": float(m.sum()),
        "mean": float(m.mean()),
        "std": float(m.std()),
        "min": float(m.min()),
        "max": float(m.max()),
    }


def run_arraystore(spec: dict[str, Any]) -> dict[str, Any]:
    import zarr  # noqa: F401

    import arraystore
    from arraystore.ops.reduce.stats import hist, quantile, reduce

    what = spec["what"]
    t0 = time.perf_counter()
    arr = arraystore.open(spec["store"], mode="r")[spec["name"]]
    if what == "field-stats":
        res = reduce(arr, OPS, fields=FIELD, memory=spec["memory"], workers=spec["workers"])
        v = res.fields[FIELD]
        answer: Any = {k: float(v[k]) for k in STAT_KEYS}
    elif what == "median":
        answer = float(np.asarray(quantile(arr, 0.5, fields=FIELD, memory=spec["memory"])[FIELD]))
    else:
        counts, edges = hist(arr, bins=BINS, fields=FIELD, memory=spec["memory"])[FIELD]
        answer = {"counts": np.asarray(counts).tolist(), "edges": np.asarray(edges).tolist()}
    return {"seconds": time.perf_counter() - t0, "answer": answer}


def run_numpy(spec: dict[str, Any]) -> dict[str, Any]:
    what = spec["what"]
    t0 = time.perf_counter()
    m = np.load(spec["npy"], mmap_mode="r")[FIELD]
    if what == "field-stats":
        answer: Any = _stats(m)
    elif what == "median":
        answer = float(np.median(m))
    else:
        counts, edges = np.histogram(m, bins=BINS)
        answer = {"counts": counts.tolist(), "edges": edges.tolist()}
    return {"seconds": time.perf_counter() - t0, "answer": answer}


def run_dask(spec: dict[str, Any]) -> dict[str, Any]:
    import dask
    import dask.array as da

    warnings.simplefilter("ignore")
    what = spec["what"]
    if spec.get("zarrs"):
        import bench_anchors

        bench_anchors.use_zarrs(spec["workers"])
    with dask.config.set(scheduler="threads", num_workers=spec["workers"]):
        t0 = time.perf_counter()
        x = da.from_zarr(spec["zarr"])
        if what == "field-stats":
            vals = dask.compute(x.sum(), x.mean(), x.std(), x.min(), x.max())
            answer: Any = {k: float(v) for k, v in zip(STAT_KEYS, vals, strict=True)}
        elif what == "median":
            answer = float(da.median(x, axis=0).compute())
        else:
            lo, hi = dask.compute(x.min(), x.max())
            counts, edges = da.histogram(x, bins=BINS, range=(float(lo), float(hi)))
            c, e = dask.compute(counts, edges)
            answer = {"counts": np.asarray(c).tolist(), "edges": np.asarray(e).tolist()}
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "answer": answer}


def run_cubed(spec: dict[str, Any]) -> dict[str, Any]:
    import bench_anchors
    import cubed

    cspec, xp, ex = bench_anchors._cubed(spec)
    t0 = time.perf_counter()
    x = cubed.from_zarr(spec["zarr"], spec=cspec)
    vals = cubed.compute(xp.sum(x), xp.mean(x), xp.std(x), xp.min(x), xp.max(x), executor=ex)
    seconds = time.perf_counter() - t0
    common.remove(Path(spec["work_dir"]))
    return {
        "seconds": seconds,
        "answer": {k: float(v) for k, v in zip(STAT_KEYS, vals, strict=True)},
    }


def run_tensorstore(spec: dict[str, Any]) -> dict[str, Any]:
    import bench_anchors
    import tensorstore  # noqa: F401

    t0 = time.perf_counter()
    x = bench_anchors.ts_open(spec["zarr"], spec["workers"])
    out = bench_anchors.ts_reduce(x, spec["workers"])
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "answer": {k: float(out[k]) for k in STAT_KEYS}}


KINDS = {
    "arraystore": run_arraystore,
    "numpy": run_numpy,
    "dask": run_dask,
    "cubed": run_cubed,
    "tensorstore": run_tensorstore,
}


# ---------------------------------------------------------------- candidates
def candidates(
    args: argparse.Namespace, store: Path, paths: dict[str, Path], rows: int, scratch: Path
) -> dict[str, list[Candidate]]:
    """Scenario -> candidates (memmap group: records; zarr group: the column)."""
    npy = common.data_files(paths["rec"])[0]
    col = paths["rec_z"] / FIELD
    col_files = common.data_files(col)
    nbytes = rows * 8  # the column's logical bytes
    mm_base: dict[str, Any] = dict(
        group=f"memmap records ({FIELDS} fields interleaved)", nbytes=nbytes, warm_files=[npy]
    )
    z_base: dict[str, Any] = dict(
        group=f"zarr columnar (field {FIELD}: {len(col_files)} file(s))",
        nbytes=nbytes,
        warm_files=col_files,
    )
    budget = common.parse_size(args.memory)
    out: dict[str, list[Candidate]] = {}
    for what in SCENARIOS:
        cands = []
        for name, base in (("rec", mm_base), ("rec_z", z_base)):
            fmt = "memmap" if name == "rec" else "zarr"
            cands.append(
                Candidate(
                    f"arraystore/{fmt}",
                    f"arraystore ({args.memory}, {args.workers} w)",
                    child=dict(
                        kind="arraystore",
                        what=what,
                        store=str(store),
                        name=name,
                        memory=args.memory,
                        workers=args.workers,
                    ),
                    **base,
                )
            )
        cands.append(
            Candidate(
                "numpy-naive/memmap",
                "numpy np.load(mmap)[field]",
                child=dict(kind="numpy", what=what, npy=str(npy)),
                **mm_base,
            )
        )
        cands.append(
            Candidate(
                "dask/zarr",
                f"dask from_zarr(column), {args.workers} thr",
                child=dict(kind="dask", what=what, zarr=str(col), workers=args.workers),
                **z_base,
            )
        )
        if what == "field-stats":
            zarrs = dict(kind="dask", what=what, zarr=str(col), workers=args.workers, zarrs=True)
            cands.append(
                Candidate("dask-zarrs/zarr", "dask + zarrs pipeline", child=zarrs, **z_base)
            )
            cands.append(
                Candidate(
                    "tensorstore/zarr",
                    f"tensorstore {args.workers}-thread loop",
                    child=dict(kind="tensorstore", zarr=str(col), workers=args.workers),
                    **z_base,
                )
            )
            cands.append(
                Candidate(
                    "cubed/zarr",
                    f"cubed from_zarr(column), {args.workers} thr",
                    child=dict(
                        kind="cubed",
                        zarr=str(col),
                        workers=args.workers,
                        allowed_mem=budget,
                        work_dir=str(scratch / "cubed"),
                    ),
                    **z_base,
                )
            )
            cands.append(
                Candidate(
                    "dd/memmap",
                    "dd bs=16M of the records file",
                    cmd=["dd", f"if={npy}", "of=/dev/null", "bs=16M", "status=none"],
                    read_bytes=npy.stat().st_size,
                    **mm_base,
                )
            )
            cands.append(
                Candidate(
                    "dd/zarr",
                    "cat of the column's chunk files",
                    cmd=["cat", *map(str, col_files)],
                    read_bytes=common.file_bytes(col_files),
                    **z_base,
                )
            )
        out[what] = cands
    return out


def check(results: list[Result], what: str, rows: int) -> None:
    """Compare every candidate's answer with numpy's."""
    ref_r = next((r for r in results if r.key.startswith("numpy") and r.runs), None)
    if ref_r is None:
        return
    ref = ref_r.runs[-1].payload["answer"]
    for r in results:
        if not r.runs or "answer" not in r.runs[-1].payload:
            continue
        got = r.runs[-1].payload["answer"]
        if what == "field-stats":
            err = max(
                abs(got[k] - ref[k]) / max(abs(ref["std"]), 1e-300) for k in STAT_KEYS if k != "sum"
            )
            err = max(err, abs(got["sum"] - ref["sum"]) / max(abs(ref["std"]) * rows, 1e-300))
            exact = got["min"] == ref["min"] and got["max"] == ref["max"]
            r.check = "ok" if err <= 1e-9 and exact else f"DIFF {err:.1e}"
        elif what == "median":
            r.check = "ok" if got == ref else f"DIFF {got!r} != {ref!r}"
        else:
            same = got["counts"] == ref["counts"]
            close = np.allclose(got["edges"], ref["edges"], rtol=1e-12, atol=0)
            r.check = "ok" if same and close else "DIFF counts" if not same else "DIFF edges"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        common.child_main(sys.argv[2], KINDS)
    else:
        raise SystemExit("bench_columns.py is run by benchmarks/run.py")
