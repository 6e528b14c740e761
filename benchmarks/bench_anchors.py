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

* ``tensorstore-stats``: tensorstore on a zarr v3 array (``{"driver": "zarr3",
  "kvstore": {"driver": "file", ...}}``, context limits ``data_copy_concurrency`` and
  ``file_io_concurrency`` = ``--workers``), read the way a user writes it: ``--workers``
  threads, each looping over its share of chunk-aligned row blocks with
  ``x[lo:hi].read().result()`` and reducing each block with numpy (``b.sum(0)``,
  ``b.var(0)``, ``b.min(0)``, ``b.max(0)``); the blocks' (count, mean, M2) are merged
  with Chan's formula. tensorstore reads the standard codecs (bytes, blosc, zstd,
  gzip, crc32c, ...) but not ``numcodecs.lz4`` (arraystore's ``lz4``).
* ``dask-zarrs-stats``: ``bench_stats``'s dask-on-zarr anchor with the zarrs codec
  pipeline (Rust; PyPI ``zarrs``) set in the process: ``zarr.config.set({
  "codec_pipeline.path": "zarrs.ZarrsCodecPipeline", "codec_pipeline.strict": True,
  "threading.max_workers": --workers})`` (strict: an unsupported codec fails instead of
  silently falling back to zarr-python's pipeline; zarrs has no ``numcodecs.lz4``).

``ensure_b2nd`` writes the ``.b2nd`` copy of a ``.npy`` (same values) once and reuses it.
``zarr_stats_anchors`` builds the tensorstore, dask+zarrs and ``dd iflag=direct``
candidates of the suite's ``stats`` scenario for its zarr formats.
"""

from __future__ import annotations

import json
import shlex
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
# (system, format) pairs that cannot run: recorded under "skipped" in the suite JSON
UNREADABLE = {
    ("tensorstore", "zarr-lz4"): "arraystore's lz4 is numcodecs.lz4 (not in the zarr v3 "
    "spec): tensorstore cannot read it",
    ("dask-zarrs", "zarr-lz4"): "arraystore's lz4 is numcodecs.lz4: the zarrs pipeline has "
    "no such codec (non-strict, it would silently fall back to zarr-python's = dask/)",
}


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


# ---------------------------------------------------------------- tensorstore
def use_zarrs(workers: int) -> None:
    """Make the zarrs (Rust) codec pipeline zarr-python's, for this process."""
    import zarr

    zarr.config.set(
        {
            "codec_pipeline.path": "zarrs.ZarrsCodecPipeline",
            "codec_pipeline.strict": True,
            "threading.max_workers": workers,
        }
    )


def ts_open(path: str, workers: int) -> Any:
    import tensorstore as ts

    limits = {"limit": workers}
    ctx = ts.Context({"data_copy_concurrency": limits, "file_io_concurrency": limits})
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": path}}
    return ts.open(spec, read=True, context=ctx).result()


def ts_reduce(x: Any, workers: int, step: int | None = None) -> dict[str, np.ndarray]:
    """sum/mean/std/min/max over axis 0 of a tensorstore array: ``workers`` threads,
    each reading its chunk-aligned row blocks (interleaved; ``step`` rows each, default
    the read chunk's) and reducing them with numpy; the partial (count, mean, M2) merge
    with Chan's formula."""
    from concurrent.futures import ThreadPoolExecutor

    n = x.shape[0]
    step = step or int(x.chunk_layout.read_chunk.shape[0])
    blocks = [(lo, min(n, lo + step)) for lo in range(0, n, step)]

    def work(mine: list[tuple[int, int]]) -> list[tuple[Any, ...]]:
        parts = []
        for lo, hi in mine:
            b = x[lo:hi].read().result()
            s = b.sum(axis=0)
            parts.append((hi - lo, s, s / (hi - lo), b.var(axis=0) * (hi - lo), b.min(0), b.max(0)))
        return parts

    with ThreadPoolExecutor(workers) as ex:
        parts = [p for ps in ex.map(work, [blocks[k::workers] for k in range(workers)]) for p in ps]
    cnt, total, mean, m2, mn, mx = parts[0]
    for nb, sb, mb, m2b, mnb, mxb in parts[1:]:
        both = cnt + nb
        delta = mb - mean
        mean = mean + delta * (nb / both)
        m2 = m2 + m2b + delta * delta * (cnt * nb / both)
        total, cnt = total + sb, both
        mn, mx = np.minimum(mn, mnb), np.maximum(mx, mxb)
    return {"sum": total, "mean": mean, "std": np.sqrt(m2 / cnt), "min": mn, "max": mx}


def run_tensorstore_stats(spec: dict[str, Any]) -> dict[str, Any]:
    import tensorstore  # noqa: F401

    t0 = time.perf_counter()
    out = ts_reduce(ts_open(spec["zarr"], spec["workers"]), spec["workers"])
    return {"seconds": time.perf_counter() - t0, "values": _values(out)}


def run_dask_zarrs_stats(spec: dict[str, Any]) -> dict[str, Any]:
    import zarrs  # noqa: F401

    use_zarrs(spec["workers"])
    return bench_stats.run_dask_zarr(spec)


def zarr_stats_anchors(
    args: Any, paths: dict[str, Path], systems: list[str], groups: dict[str, str], nbytes: int
) -> tuple[list[common.Candidate], list[dict[str, str]]]:
    """tensorstore, dask+zarrs and ``dd iflag=direct`` on each zarr format in ``groups``
    (format name -> the table group of arraystore's row); returns the candidates and
    the (system, format) pairs skipped because the system cannot read the format."""
    cands, skipped = [], []
    for fmt, group in groups.items():
        files = common.data_files(paths[fmt])
        base: dict[str, Any] = dict(group=group, nbytes=nbytes, warm_files=files)
        child = dict(zarr=str(paths[fmt]), workers=args.workers)
        for system, kind, label in (
            ("tensorstore", "tensorstore-stats", f"tensorstore {args.workers}-thread read loop"),
            ("dask-zarrs", "dask-zarrs-stats", f"dask from_zarr + zarrs, {args.workers} thr"),
        ):
            if system not in systems:
                continue
            if (system, fmt) in UNREADABLE:
                skipped.append({"system": system, "format": fmt, "reason": UNREADABLE[system, fmt]})
                continue
            cands.append(
                common.Candidate(f"{system}/{fmt}", label, child=dict(kind=kind, **child), **base)
            )
        loop = " ".join(shlex.quote(str(f)) for f in files)
        direct = (
            f'for f in {loop}; do dd if="$f" of=/dev/null bs=16M iflag=direct status=none '
            "|| exit 1; done"
        )
        cands.append(
            common.Candidate(
                f"dd-direct/{fmt}",
                "dd bs=16M iflag=direct, chunk files",
                cmd=["sh", "-c", direct],
                read_bytes=common.file_bytes(files),
                **base,
            )
        )
    return cands, skipped


KINDS = {
    "numpy-naive": run_numpy_naive,
    "cubed-stats": run_cubed_stats,
    "cubed-cast": run_cubed_cast,
    "cubed-map": run_cubed_map,
    "blosc2-stats": run_blosc2_stats,
    "blosc2-cast": run_blosc2_cast,
    "blosc2-map": run_blosc2_map,
    "tensorstore-stats": run_tensorstore_stats,
    "dask-zarrs-stats": run_dask_zarrs_stats,
}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        common.child_main(sys.argv[2], KINDS)
    else:
        raise SystemExit("bench_anchors.py is run by benchmarks/run.py")
