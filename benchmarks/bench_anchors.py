"""Anchors of the benchmark suite (``run.py``) not covered by the issue scripts.

Child kinds (each measured run is a fresh process started by ``common.measure``):

* ``numpy-naive``: per-column stats of the ``.npy`` the way a numpy user writes it:
  ``x = np.load(npy, mmap_mode="r")``; ``x.sum(0)``, ``x.mean(0)``, ``x.std(0)``,
  ``x.min(0)``, ``x.max(0)`` (five passes; ``std`` allocates a temporary of the array's
  size, so its anonymous memory grows with the data).
* ``cubed-*``: cubed (``cubed.from_zarr``, the threads executor with ``--workers``
  threads, ``Spec(allowed_mem=<arraystore's --memory>)``, intermediates under the
  scratch directory): stats (``cubed.compute`` of ``xp.sum/mean/std/min/max(x,
  axis=0)``), cast (``xp.astype(x, xp.float32)`` -> ``cubed.to_zarr``) and map
  (``a * 2 + b`` -> ``cubed.to_zarr``).
* ``blosc2-*``: python-blosc2 on its own ``.b2nd`` format (blosc2's default chunks,
  blocks and codec: zstd clevel 5 + shuffle), ``blosc2.nthreads = --workers``: stats
  (``b.sum(axis=0)``, ``b.mean``, ``b.std``, ``b.min``, ``b.max``), cast
  (``blosc2.astype(b, "f4", urlpath=...)``) and map (the lazy expression ``a * 2 + b``
  ``.compute(urlpath=...)``).

``ensure_b2nd`` writes the ``.b2nd`` copy of a ``.npy`` (same values) once and reuses it.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_cast
import bench_map
import bench_stats
import common

BLOCK = 64 * common.MiB


# ------------------------------------------------------------------- datasets
def ensure_b2nd(npy: Path, out: Path, workers: int = 2) -> Path:
    """A blosc2 ``.b2nd`` copy of ``npy`` with blosc2's default layout and codec."""
    import blosc2

    stamp = out.with_name(out.name + ".json")
    want = {"source": str(npy), "size": npy.stat().st_size, "mtime": npy.stat().st_mtime}
    if out.exists() and stamp.exists() and json.loads(stamp.read_text()) == want:
        return out
    print(f"  creating {out.name} (blosc2 defaults) ...", end="", flush=True)
    t0 = time.perf_counter()
    blosc2.nthreads = workers
    src = np.load(npy, mmap_mode="r")
    common.remove(out)
    dst = blosc2.empty(src.shape, dtype=src.dtype, urlpath=str(out), mode="w")
    rows = max(1, BLOCK // (src.itemsize * int(np.prod(src.shape[1:]))))
    rows = max(dst.chunks[0], rows // dst.chunks[0] * dst.chunks[0])
    for lo in range(0, src.shape[0], rows):
        dst[lo : lo + rows] = np.asarray(src[lo : lo + rows])
    del dst
    stamp.write_text(json.dumps(want))
    print(f" {time.perf_counter() - t0:.1f} s", flush=True)
    return out


# -------------------------------------------------------------- child kinds
def _values(d: dict[str, Any]) -> dict[str, list[float]]:
    return bench_stats._values(d)


def run_numpy_naive(spec: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    x = np.load(spec["npy"], mmap_mode="r")
    out = {
        "sum": x.sum(axis=0),
        "mean": x.mean(axis=0),
        "std": x.std(axis=0),
        "min": x.min(axis=0),
        "max": x.max(axis=0),
    }
    return {"seconds": time.perf_counter() - t0, "values": _values(out)}


def _cubed(spec: dict[str, Any]) -> tuple[Any, Any, Any]:
    warnings.simplefilter("ignore")
    import cubed
    import cubed.array_api as xp
    from cubed.runtime.executors.local import ThreadsExecutor

    work = Path(spec["work_dir"])
    common.remove(work)
    work.mkdir(parents=True)
    cspec = cubed.Spec(work_dir=str(work), allowed_mem=int(spec["allowed_mem"]))
    return cspec, xp, ThreadsExecutor(max_workers=spec["workers"])


def run_cubed_stats(spec: dict[str, Any]) -> dict[str, Any]:
    import cubed

    cspec, xp, ex = _cubed(spec)
    t0 = time.perf_counter()
    x = cubed.from_zarr(spec["zarr"], spec=cspec)
    s, m, sd, mn, mx = cubed.compute(
        xp.sum(x, axis=0),
        xp.mean(x, axis=0),
        xp.std(x, axis=0),
        xp.min(x, axis=0),
        xp.max(x, axis=0),
        executor=ex,
    )
    seconds = time.perf_counter() - t0
    common.remove(Path(spec["work_dir"]))
    out = {"sum": s, "mean": m, "std": sd, "min": mn, "max": mx}
    return {"seconds": seconds, "values": _values(out)}


def run_cubed_cast(spec: dict[str, Any]) -> dict[str, Any]:
    import cubed
    import zarr

    cspec, xp, ex = _cubed(spec)
    out = Path(spec["out"])
    common.remove(out)
    t0 = time.perf_counter()
    x = cubed.from_zarr(spec["src"], spec=cspec)
    cubed.to_zarr(xp.astype(x, xp.float32), str(out), executor=ex)
    common.fsync_tree(out)
    seconds = time.perf_counter() - t0
    src = zarr.open_array(spec["src"], mode="r")
    dst = zarr.open_array(str(out), mode="r")
    head, tail = bench_cast._head_tail(lambda a, b: dst[a:b], dst.shape[0])
    common.remove(Path(spec["work_dir"]))
    return {"seconds": seconds, "check": bench_cast._check_pair(src, head, tail)}


def run_cubed_map(spec: dict[str, Any]) -> dict[str, Any]:
    import cubed
    import zarr

    cspec, _xp, ex = _cubed(spec)
    out = Path(spec["out"])
    common.remove(out)
    t0 = time.perf_counter()
    a = cubed.from_zarr(spec["a"], spec=cspec)
    b = cubed.from_zarr(spec["b"], spec=cspec)
    cubed.to_zarr(a * 2 + b, str(out), executor=ex)
    common.fsync_tree(out)
    seconds = time.perf_counter() - t0
    common.remove(Path(spec["work_dir"]))
    return {"seconds": seconds, "check": bench_map._sample(zarr.open_array(str(out), mode="r"))}


def _blosc2(spec: dict[str, Any]) -> Any:
    import blosc2

    blosc2.nthreads = spec["workers"]
    return blosc2


def run_blosc2_stats(spec: dict[str, Any]) -> dict[str, Any]:
    blosc2 = _blosc2(spec)
    t0 = time.perf_counter()
    b = blosc2.open(spec["b2nd"], mode="r")
    out = {
        "sum": b.sum(axis=0),
        "mean": b.mean(axis=0),
        "std": b.std(axis=0),
        "min": b.min(axis=0),
        "max": b.max(axis=0),
    }
    return {"seconds": time.perf_counter() - t0, "values": _values(out)}


def run_blosc2_cast(spec: dict[str, Any]) -> dict[str, Any]:
    blosc2 = _blosc2(spec)
    out = Path(spec["out"])
    common.remove(out)
    t0 = time.perf_counter()
    b = blosc2.open(spec["b2nd"], mode="r")
    dst = blosc2.astype(b, np.float32, urlpath=str(out), mode="w")
    del dst
    common.fsync_tree(out)
    seconds = time.perf_counter() - t0
    dst = blosc2.open(str(out), mode="r")
    head, tail = bench_cast._head_tail(lambda lo, hi: dst[lo:hi], dst.shape[0])
    return {"seconds": seconds, "check": bench_cast._check_pair(b, head, tail)}


def run_blosc2_map(spec: dict[str, Any]) -> dict[str, Any]:
    blosc2 = _blosc2(spec)
    out = Path(spec["out"])
    common.remove(out)
    t0 = time.perf_counter()
    a = blosc2.open(spec["a"], mode="r")
    b = blosc2.open(spec["b"], mode="r")
    dst = (a * 2 + b).compute(urlpath=str(out), mode="w")
    del dst
    common.fsync_tree(out)
    seconds = time.perf_counter() - t0
    dst = blosc2.open(str(out), mode="r")
    return {"seconds": seconds, "check": bench_map._sample(dst)}


KINDS = {
    "numpy-naive": run_numpy_naive,
    "cubed-stats": run_cubed_stats,
    "cubed-cast": run_cubed_cast,
    "cubed-map": run_cubed_map,
    "blosc2-stats": run_blosc2_stats,
    "blosc2-cast": run_blosc2_cast,
    "blosc2-map": run_blosc2_map,
}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        common.child_main(sys.argv[2], KINDS)
    else:
        raise SystemExit("bench_anchors.py is run by benchmarks/run.py")
